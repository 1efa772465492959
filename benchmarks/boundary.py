"""Speed of the distance-based losses and of the distance engine, side by side with the references.

Run:  python benchmarks/boundary.py [--repeats 7] [--shape 2 4 64 64 64] [--threads N]

On CPU tensors of ``--shape`` (default (2, 4, 64, 64, 64), the issue's size), interleaved in one
process (reference and ours alternate within each repeat, so machine load hits both alike):

* ``hausdorff`` forward + backward vs MONAI's ``HausdorffDTLoss(include_background=False,
  softmax=True, to_onehot_y=True)`` -- the same loss (values are checked equal). Target <= 0.5x.
* ``boundary`` forward + backward with precomputed signed distance maps vs our ``dice``
  forward + backward. Target <= 1.5x.
* the distance engine: ``distance_transform`` with ``edt`` vs scipy's ``distance_transform_edt``
  on one 64^3 mask, and ``signed_distance_map`` of the whole target with each backend.

Prints a Markdown table of medians and ratios (wall time, seconds -> milliseconds). Not a test:
numbers depend on the machine and its load; the lead re-runs this on a quiet machine.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
import torch.nn.functional as F


def _case(shape, seed=0):
    """Blob-like multi-class label map and logits correlated with it (a mid-training prediction)."""
    g = torch.Generator().manual_seed(seed)
    n, c = shape[:2]
    spatial = shape[2:]
    scores = torch.rand((n, c) + spatial, generator=g)
    pool = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[len(spatial)]
    for _ in range(3):
        scores = pool(scores, 5, stride=1, padding=2, count_include_pad=False)
    target = scores.argmax(1)
    logits = torch.randn(shape, generator=g) * 2 + 2 * F.one_hot(target, c).movedim(-1, 1).float()
    return logits, target


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _fwd_bwd(loss_fn, logits, *args, **kwargs):
    def run():
        x = logits.detach().clone().requires_grad_(True)
        value = loss_fn(x, *args, **kwargs)
        value.backward()
        return value

    return run


def _pairs(ref, ours, repeats):
    """Interleaved timings (warm-up once each); alternate which goes first."""
    ref()
    ours()
    t_ref, t_ours = [], []
    for i in range(repeats):
        if i % 2:
            t_ours.append(_time(ours))
            t_ref.append(_time(ref))
        else:
            t_ref.append(_time(ref))
            t_ours.append(_time(ours))
    return statistics.median(t_ours), statistics.median(t_ref)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--shape", type=int, nargs="+", default=[2, 4, 64, 64, 64])
    parser.add_argument("--threads", type=int, default=None, help="torch (and edt) threads; default torch's")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from monai.losses import HausdorffDTLoss
    from scipy.ndimage import distance_transform_edt

    from seglosses.distance import distance_transform, signed_distance_map
    from seglosses.functional import boundary_loss, dice_loss, hausdorff_loss

    shape = tuple(args.shape)
    logits, target = _case(shape)
    c = shape[1]
    rows = []

    # hausdorff vs MONAI (same configuration; values must agree)
    monai_hd = HausdorffDTLoss(include_background=False, softmax=True, to_onehot_y=True)
    v_ref = float(monai_hd(logits, target.unsqueeze(1)))
    v_ours = float(hausdorff_loss(logits, target))
    assert abs(v_ref - v_ours) <= 1e-4 * max(1.0, abs(v_ref)), (v_ref, v_ours)
    ours, ref = _pairs(
        _fwd_bwd(monai_hd, logits, target.unsqueeze(1)), _fwd_bwd(hausdorff_loss, logits, target), args.repeats
    )
    rows.append(("`hausdorff` fwd+bwd vs MONAI `HausdorffDTLoss`", ours, ref, "<= 0.5x"))

    # boundary with precomputed maps vs dice
    phi = signed_distance_map(target, c)
    ours, ref = _pairs(
        _fwd_bwd(dice_loss, logits, target), _fwd_bwd(boundary_loss, logits, target, distance_map=phi), args.repeats
    )
    rows.append(("`boundary` fwd+bwd, precomputed maps, vs our `dice`", ours, ref, "<= 1.5x"))

    # distance engine
    mask = (target[0] == 1).numpy()
    ours, ref = _pairs(lambda: distance_transform_edt(mask), lambda: distance_transform(mask, backend="edt"), args.repeats)
    rows.append((f"`distance_transform` (edt) vs scipy, one {mask.shape} mask", ours, ref, "-"))
    ours, ref = _pairs(
        lambda: signed_distance_map(target, c, backend="scipy"),
        lambda: signed_distance_map(target, c, backend="edt"),
        args.repeats,
    )
    rows.append((f"`signed_distance_map` (edt) vs scipy backend, {tuple(target.shape)} x {c} classes", ours, ref, "-"))

    print(f"shape {shape}, CPU, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{platform.processor() or platform.machine()}, median of {args.repeats}\n")
    print("| measurement | ours (ms) | reference (ms) | ratio | target |")
    print("|---|---:|---:|---:|---|")
    for name, o, r, target_txt in rows:
        print(f"| {name} | {o * 1e3:.1f} | {r * 1e3:.1f} | {o / r:.2f}x | {target_txt} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
