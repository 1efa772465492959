"""Speed of the surface metrics, side by side with DeepMind ``surface-distance`` and MONAI.

Task timed (issue 4): NSD + HD95 of one pair of 3D masks, from one ``surface_distances`` call.

* ``seglosses`` (default ``method="surface"``) vs DeepMind ``compute_surface_distances`` +
  ``compute_surface_dice_at_tolerance`` + ``compute_robust_hausdorff(95)`` (same definition, the
  values must agree);
* ``seglosses`` (``method="voxel"``) vs MONAI ``compute_surface_dice`` +
  ``compute_hausdorff_distance(percentile=95)`` (MONAI's edge-voxel definition, the values must
  agree); the default ``method="surface"`` is also timed against MONAI.

Scenarios (all ``--size``^3, default 192^3, anisotropic spacing 2.0 x 0.8 x 0.8 mm):

* ``stray``: a smooth random blob as ground truth; the prediction is the blob shifted, dilated, with
  a false-positive voxel in each of the 8 corners (defeats bounding-box cropping) — the target case;
* ``cropped``: the same without the stray voxels (cropping works);
* ``hollow``: a small ball deep inside a large ball — the worst case known for the k-d tree
  (every query is nearly equidistant from the whole target surface).

Each timing is the best of ``--repeats`` runs (wall clock, ``time.perf_counter``). Run::

    python benchmarks/metrics.py [--size 192] [--repeats 3] [--tolerance 1.6] [--scenarios stray,cropped,hollow]

Prints a Markdown table for the README, then PASS/FAIL against the targets of the stray scenario
(<= 0.25x DeepMind, <= 0.5x MONAI, equal values).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings

import numpy as np
import torch
from scipy import ndimage

from seglosses.metrics import surface_distances

SPACING = (2.0, 0.8, 0.8)


def make_case(name: str, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    if name == "hollow":
        z, y, x = np.ogrid[:n, :n, :n]
        c = (n - 1) / 2
        r = np.sqrt(((z - c) * SPACING[0]) ** 2 + ((y - c) * SPACING[1]) ** 2 + ((x - c) * SPACING[2]) ** 2)
        return r < 0.35 * n * SPACING[1], r < 0.08 * n * SPACING[1]
    z, y, x = np.ogrid[:n, :n, :n]
    c = n / 2
    r = ((z - c) / (0.30 * n)) ** 2 + ((y - c) / (0.25 * n)) ** 2 + ((x - c) / (0.22 * n)) ** 2
    coarse = ndimage.gaussian_filter(rng.standard_normal((n // 4 + 1,) * 3), 2)
    noise = ndimage.zoom(coarse, 4, order=1)[:n, :n, :n]
    gt = r + 3 * noise < 1.0
    pred = ndimage.binary_dilation(np.roll(gt, 2, axis=1))
    if name == "stray":
        for corner in np.ndindex(2, 2, 2):
            pred[tuple(1 if k == 0 else n - 2 for k in corner)] = True
    return gt, pred


def best_of(fn, repeats: int):
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def run_ours(gt, pred, tol, method, workers):
    s = surface_distances(pred=pred, gt=gt, spacing=SPACING, method=method, workers=workers)
    return s.normalized_surface_dice(tol), s.hausdorff(95)


def run_deepmind(gt, pred, tol):
    import surface_distance as sd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = sd.compute_surface_distances(gt, pred, SPACING)
    return float(sd.compute_surface_dice_at_tolerance(d, tol)), float(sd.compute_robust_hausdorff(d, 95))


def run_monai(gt, pred, tol):
    from monai.metrics import compute_hausdorff_distance, compute_surface_dice

    yp = torch.from_numpy(pred)[None, None].float()
    yt = torch.from_numpy(gt)[None, None].float()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nsd = compute_surface_dice(yp, yt, [tol], include_background=True, spacing=SPACING).item()
        hd95 = compute_hausdorff_distance(
            yp, yt, include_background=True, spacing=SPACING, percentile=95
        ).item()
    return nsd, hd95


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=192)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--tolerance", type=float, default=1.6, help="NSD tolerance in mm (default 1.6 = 2 voxels)"
    )
    ap.add_argument("--scenarios", default="stray,cropped,hollow")
    args = ap.parse_args()

    print(
        f"# {args.size}^3, spacing {SPACING} mm, NSD@{args.tolerance} mm + HD95, best of {args.repeats}; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"numpy {np.__version__}"
    )
    rows, verdict = [], []
    for name in args.scenarios.split(","):
        gt, pred = make_case(name, args.size)
        t_dm, v_dm = best_of(lambda g=gt, p=pred: run_deepmind(g, p, args.tolerance), args.repeats)
        t_mo, v_mo = best_of(lambda g=gt, p=pred: run_monai(g, p, args.tolerance), args.repeats)
        t_s1, v_s1 = best_of(lambda g=gt, p=pred: run_ours(g, p, args.tolerance, "surface", 1), args.repeats)
        t_s, v_s = best_of(lambda g=gt, p=pred: run_ours(g, p, args.tolerance, "surface", -1), args.repeats)
        t_v, v_v = best_of(lambda g=gt, p=pred: run_ours(g, p, args.tolerance, "voxel", -1), args.repeats)
        same_dm = abs(v_s[0] - v_dm[0]) <= 1e-6 and abs(v_s[1] - v_dm[1]) <= 1e-4
        same_mo = abs(v_v[0] - v_mo[0]) <= 1e-6 and abs(v_v[1] - v_mo[1]) <= 1e-4
        rows += [
            (name, "DeepMind surface-distance", t_dm, "1.00", v_dm),
            (name, "seglosses surface, 1 thread", t_s1, f"{t_s1 / t_dm:.3f}", v_s1),
            (name, "seglosses surface", t_s, f"{t_s / t_dm:.3f}", v_s),
            (name, "MONAI (edge voxels)", t_mo, f"{t_mo / t_dm:.3f}", v_mo),
            (name, "seglosses voxel", t_v, f"{t_v / t_dm:.3f}", v_v),
        ]
        verdict.append(
            f"{name}: seglosses/DeepMind = {t_s / t_dm:.3f} (1 thread {t_s1 / t_dm:.3f}), "
            f"seglosses voxel/MONAI = {t_v / t_mo:.3f}, seglosses surface/MONAI = {t_s / t_mo:.3f} "
            f"(1 thread {t_s1 / t_mo:.3f}); values equal DeepMind: {same_dm}, voxel values equal MONAI: {same_mo}"
        )
        if name == "stray":
            ok = t_s <= 0.25 * t_dm and t_v <= 0.5 * t_mo and t_s <= 0.5 * t_mo and same_dm and same_mo
            verdict.append(
                f"stray targets (<= 0.25x DeepMind, <= 0.5x MONAI, same values): {'PASS' if ok else 'FAIL'}"
            )

    print()
    print("| scenario | implementation | time (s) | / DeepMind | NSD | HD95 (mm) |")
    print("|---|---|---:|---:|---:|---:|")
    for name, impl, t, ratio, (nsd, hd95) in rows:
        print(f"| {name} | {impl} | {t:.3f} | {ratio} | {nsd:.6f} | {hd95:.4f} |")
    print()
    for line in verdict:
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
