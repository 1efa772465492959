"""Speed and memory of seglosses' losses next to MONAI's (and kornia's Lovász), in one process.

Forward + backward of each loss on float32 CPU logits with an integer label-map target, timed
interleaved (every repeat runs every loss once, in turn, so a noisy neighbour slows all of them
alike) and summarised by the median. Reported as ratios: ours / the matching reference loss, and
ours / the *floor* (softmax forward + backward of the same logits: no loss can be cheaper).

Timings run with glibc's ``malloc`` told to keep freed memory (no ``mmap``, no trimming): large
blocks are reused without page faults, as in the steady state of a training loop, and the time of
a call does not depend on what the previous call freed (glibc's default dynamic mmap threshold
makes it order-dependent).

Peak memory (measured first, in its own phase): the peak resident set size above the resident
size before the call, read from ``/proc/self/status`` (``VmHWM``) after resetting it with
``/proc/self/clear_refs`` (Linux), with every allocation >= 64 KiB served by its own ``mmap``
and given back when freed. This counts everything the call allocates (tensors, autograd
buffers, library temporaries, the gradient of the logits), not only PyTorch's allocator. Where
``clear_refs`` is not available the column is empty.

Usage::

    python benchmarks/losses.py                       # every loss without a distance map, both shapes
    python benchmarks/losses.py --losses 'dice*' focal --repeats 7 --csv results.csv
    python benchmarks/losses.py --shapes 2d --no-memory
    python benchmarks/losses.py --device cuda            # on a GPU: synchronised timings, allocator peak

Targets (issue 2, on a 2-core machine): dice (sample and batch), dice_ce, dice_focal, gdice,
tversky and focal at most 0.75x the matching MONAI loss; every non-Lovász loss at most 2.5x the
floor; Lovász at most 0.5x kornia's per-image Lovász; no full-size float one-hot built from a
label-map target (see the peak-memory column, in units of the logits' size).

Targets (issue 12): cldice, dice_cldice, mcc, gwdl, unified_focal (binary) and lovasz_hinge at most
0.75x their MONAI / kornia counterpart (``cldice`` against MONAI's ``SoftclDiceLoss`` with the same
``iters``: the soft skeletons must not be slower). Binary losses (``lovasz_hinge``,
``unified_focal[binary]``) run on the first channel of the logits with the target ``label > 0``;
``skeleton_recall`` is timed with its skeleton precomputed (as in training, by
``PrecomputeSkeletons``), without a reference; ``boundary_dou`` has none either.
"""

from __future__ import annotations

import argparse
import csv
import ctypes
import fnmatch
import gc
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import torch

import seglosses
from seglosses import build_loss, list_losses, loss_info

SHAPES = {"3d": (2, 4, 64, 64, 64), "2d": (16, 6, 256, 256), "small": (2, 3, 32, 32)}
DEFAULT_SHAPES = ["3d", "2d"]  # "small": a quick check that every entry runs
MONAI_TARGET = 0.75
REF_TARGET = 0.75  # issue 12: the new losses against their MONAI / kornia counterpart
FLOOR_TARGET = 2.5
LOVASZ_TARGET = 0.5


# ----------------------------------------------------------------------------- memory probe

def _malloc_policy(kind: str) -> bool:
    """Fix glibc's allocation policy, so that a call's cost does not depend on the call before.

    glibc's default *dynamic* mmap threshold makes the price of a large allocation depend on what
    was freed before (a fresh ``mmap`` with page faults, or a reused heap block): the time of a
    loss then depends on the loss timed before it. Two fixed policies:

    * ``"warm"`` (timings): no ``mmap``, no trimming -- freed blocks are reused without page
      faults, as in the steady state of a training loop (and as a caching allocator does);
    * ``"cold"`` (peak memory): every block >= 64 KiB is its own ``mmap``, given back when freed,
      so the resident set size follows the live tensors.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_MMAP_MAX = -1, -3, -4
    if kind == "warm":
        ok = libc.mallopt(M_MMAP_MAX, 0) and libc.mallopt(M_TRIM_THRESHOLD, 2**30)
    else:
        ok = libc.mallopt(M_MMAP_MAX, 65536) and libc.mallopt(M_MMAP_THRESHOLD, 1 << 16) and libc.mallopt(M_TRIM_THRESHOLD, 0)
        libc.malloc_trim(0)
    return bool(ok)


def _setup_memory_probe() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        _status()
        return True
    except (OSError, AttributeError, KeyError):
        return False


def _status() -> Dict[str, int]:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":")
                out[key] = int(value.split()[0]) * 1024
    return {"rss": out["VmRSS"], "hwm": out["VmHWM"]}


def peak_bytes(fn: Callable[[], None]) -> int:
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    base = _status()["rss"]
    fn()
    return _status()["hwm"] - base


# ----------------------------------------------------------------------------- entries

@dataclass
class Entry:
    name: str  # display name, e.g. "dice[batch]"
    base: str  # registry name, for --losses selection
    ours: Callable
    ref_name: str = ""
    ref: Optional[Callable] = None
    target: str = "floor"  # "monai" | "kornia" | "ref" (issue 12: ratio only) | "floor"
    times: Dict[str, List[float]] = field(default_factory=lambda: {"ours": [], "ref": []})
    peak: Dict[str, Optional[int]] = field(default_factory=lambda: {"ours": None, "ref": None})


def _monai():
    import monai.losses as ml

    return ml


def _kornia_lovasz(logits, target):
    import kornia

    if logits.ndim == 5:  # kornia is 2-D only; it flattens the pixels, so fold D into H
        n, c, d, h, w = logits.shape
        logits = logits.reshape(n, c, d * h, w)
        target = target.reshape(n, d * h, w)
    return kornia.losses.lovasz_softmax_loss(logits, target)


def _fold_2d(logits, target):
    """kornia is 2-D only; it flattens the pixels, so fold D into H."""
    if logits.ndim == 5:
        n, c, d, h, w = logits.shape
        return logits.reshape(n, c, d * h, w), target.reshape(n, d * h, w)
    return logits, target


def _binary(fn):
    """Run a binary loss on the first logit channel, with the target ``label > 0``."""
    return lambda x, t: fn(x[:, :1], (t > 0).long())


def _with_skeleton(loss):
    """``skeleton_recall`` with its skeleton computed once per target (as a data-loader transform
    would), outside the timed call after the first."""
    from seglosses.skeleton import skeleton_map

    cache = {}

    def run(x, t):
        key = (id(t), tuple(t.shape))
        if key not in cache:
            cache.clear()
            cache[key] = skeleton_map(t, num_classes=x.shape[1])
        return loss(x, t, skeleton=cache[key])

    return run


def _issue12_refs(ml):
    """References of the issue-12 losses: (display name, callable, target kind)."""
    import kornia
    import numpy as np

    mk = dict(softmax=True, to_onehot_y=True)
    m_cldice = ml.SoftclDiceLoss(iter_=3, include_background=False, **mk)
    m_dice_cldice = ml.SoftDiceclDiceLoss(iter_=3, **mk)
    m_mcc = ml.MCCLoss(**mk)
    gwdl = {}

    def m_gwdl(x, t):
        c = x.shape[1]
        if c not in gwdl:
            gwdl[c] = ml.GeneralizedWassersteinDiceLoss(dist_matrix=(1 - np.eye(c)).astype(np.float32))
        return gwdl[c](x, t)

    m_ufl = ml.AsymmetricUnifiedFocalLoss(weight=0.5, delta=0.6, gamma=0.5)
    return {
        "cldice": ("monai.SoftclDiceLoss(iter_=3)", lambda x, t: m_cldice(x, t.unsqueeze(1)), "ref"),
        "dice_cldice": ("monai.SoftDiceclDiceLoss", lambda x, t: m_dice_cldice(x, t.unsqueeze(1)), "ref"),
        "mcc": ("monai.MCCLoss", lambda x, t: m_mcc(x, t.unsqueeze(1)), "ref"),
        "gwdl": ("monai.GeneralizedWassersteinDiceLoss", m_gwdl, "ref"),
        "unified_focal[binary]": (
            "monai.AsymmetricUnifiedFocalLoss (sigmoid outside)",
            _binary(lambda x, t: m_ufl(torch.sigmoid(x), t.unsqueeze(1).float())),
            "ref",
        ),
        "lovasz_hinge": (
            "kornia lovasz_hinge (per image)",
            _binary(lambda x, t: kornia.losses.lovasz_hinge_loss(*_fold_2d(x, t))),
            "ref",
        ),
    }


def make_entries(patterns: List[str]) -> List[Entry]:
    ml = _monai()
    mk = dict(softmax=True, to_onehot_y=True)
    m_dice, m_dice_b = ml.DiceLoss(**mk), ml.DiceLoss(batch=True, **mk)
    m_dice_ce = ml.DiceCELoss(**mk)
    m_dice_focal = ml.DiceFocalLoss(**mk)
    m_gdice = ml.GeneralizedDiceLoss(**mk)
    m_tversky = ml.TverskyLoss(alpha=0.3, beta=0.7, **mk)
    m_focal = ml.FocalLoss(to_onehot_y=True, use_softmax=True)
    refs = {
        "dice": ("monai.DiceLoss", lambda x, t: m_dice(x, t.unsqueeze(1)), "monai"),
        "dice_ce": ("monai.DiceCELoss", lambda x, t: m_dice_ce(x, t.unsqueeze(1)), "monai"),
        "dice_focal": ("monai.DiceFocalLoss", lambda x, t: m_dice_focal(x, t.unsqueeze(1)), "monai"),
        "gdice": ("monai.GeneralizedDiceLoss", lambda x, t: m_gdice(x, t.unsqueeze(1)), "monai"),
        "tversky": ("monai.TverskyLoss", lambda x, t: m_tversky(x, t.unsqueeze(1)), "monai"),
        "focal": ("monai.FocalLoss", lambda x, t: m_focal(x, t.unsqueeze(1)), "monai"),
        "ce": ("torch cross_entropy", lambda x, t: torch.nn.functional.cross_entropy(x, t), "floor"),
        "lovasz": ("kornia lovasz (per image)", _kornia_lovasz, "kornia"),
        **_issue12_refs(ml),
    }
    # multiclass losses that need no per-call input (distance maps are benchmarked elsewhere)
    names = [
        n for n in list_losses()
        if "multiclass" in loss_info(n).modes and not loss_info(n).needs_distance_map and not loss_info(n).call_args
    ]
    entries: List[Entry] = []

    def add(display, base, loss, ref_key=None):
        if patterns and not any(fnmatch.fnmatchcase(display, p) or fnmatch.fnmatchcase(base, p) for p in patterns):
            return
        ref_name, ref, target = refs.get(ref_key, ("", None, "floor"))
        entries.append(Entry(display, base, loss, ref_name, ref, target))

    for n in names:
        add(n, n, build_loss(n), n)
        if n == "dice":
            m = build_loss("dice", batch=True)
            if not patterns or any(fnmatch.fnmatchcase("dice", p) or fnmatch.fnmatchcase("dice[batch]", p) for p in patterns):
                entries.append(Entry("dice[batch]", "dice", m, "monai.DiceLoss(batch=True)", lambda x, t: m_dice_b(x, t.unsqueeze(1)), "monai"))
        if n == "lovasz":
            add("lovasz[per_image,all]", n, build_loss("lovasz", per_image=True, classes="all"), n)
        if n == "unified_focal":
            add("unified_focal[binary]", n, _binary(build_loss("unified_focal", mode="binary")), "unified_focal[binary]")
    add("lovasz_hinge", "lovasz_hinge", _binary(build_loss("lovasz_hinge")), "lovasz_hinge")
    add("skeleton_recall[precomputed]", "skeleton_recall", _with_skeleton(build_loss("skeleton_recall")))
    return entries


# ----------------------------------------------------------------------------- timing

def _fwd_bwd(fn, x, t):
    x.grad = None
    loss = fn(x, t)
    loss.backward()


def _floor(x, t):
    return torch.softmax(x, 1).sum()


DEVICE = torch.device("cpu")  # --device


def _sync() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)


def _inputs(shape, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g).to(DEVICE).requires_grad_(True)
    t = torch.randint(0, shape[1], (shape[0],) + tuple(shape[2:]), generator=g).to(DEVICE)
    return x, t


def _cuda_peak_bytes(fn: Callable[[], None]) -> int:
    """CUDA: the peak of PyTorch's allocator during ``fn`` above what was allocated before."""
    _sync()
    torch.cuda.reset_peak_memory_stats(DEVICE)
    base = torch.cuda.memory_allocated(DEVICE)
    fn()
    _sync()
    return torch.cuda.max_memory_allocated(DEVICE) - base


def _jobs(floor: Entry, entries: List[Entry]):
    jobs = [(floor, "ours", floor.ours)]
    for e in entries:
        jobs.append((e, "ours", e.ours))
        if e.ref is not None:
            jobs.append((e, "ref", e.ref))
    return jobs


def measure_memory(shape, floor: Entry, entries: List[Entry]) -> None:
    x, t = _inputs(shape)
    for e, side, fn in _jobs(floor, entries):
        _fwd_bwd(fn, x, t)  # one-off initialisation (thread pools, caches) outside the peak
        x.grad = None  # the gradient buffer counts in the call's peak
        probe = _cuda_peak_bytes if DEVICE.type == "cuda" else peak_bytes
        e.peak[side] = probe(lambda: _fwd_bwd(fn, x, t))


def measure_time(shape, floor: Entry, entries: List[Entry], repeats: int) -> None:
    x, t = _inputs(shape)
    jobs = _jobs(floor, entries)
    for e, side, fn in jobs:  # warm-up outside the timings
        _fwd_bwd(fn, x, t)
    for _ in range(repeats):
        for e, side, fn in jobs:
            gc.collect()
            _sync()
            t0 = time.perf_counter()
            _fwd_bwd(fn, x, t)
            _sync()  # CUDA runs asynchronously: time until the kernels are done
            e.times[side].append(time.perf_counter() - t0)


def _ms(v):
    return f"{1000 * v:.1f}" if v is not None else ""


def _mb(v):
    return f"{v / 2**20:.0f}" if v is not None else ""


def report(shape, floor: Entry, logits_bytes: int, entries: List[Entry], rows: List[dict]):
    f = statistics.median(floor.times["ours"])
    print(f"\n### logits {tuple(shape)} float32, label-map target; floor (softmax fwd+bwd) = {1000 * f:.1f} ms, "
          f"logits = {logits_bytes / 2**20:.0f} MB, floor peak = {_mb(floor.peak['ours'])} MB\n")
    print("| loss | ours ms | ours / floor | reference | ref ms | ours / ref | ours peak MB (x logits) | ref peak MB | target | met |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---|---|")
    for e in entries:
        o = statistics.median(e.times["ours"])
        r = statistics.median(e.times["ref"]) if e.times["ref"] else None
        ratio = o / r if r else None
        if e.target == "monai":
            goal, met = f"<= {MONAI_TARGET}x ref, <= {FLOOR_TARGET}x floor", ratio <= MONAI_TARGET and o / f <= FLOOR_TARGET
        elif e.target == "kornia":
            goal, met = f"<= {LOVASZ_TARGET}x kornia", ratio <= LOVASZ_TARGET
        elif e.target == "ref":
            goal, met = f"<= {REF_TARGET}x ref", ratio <= REF_TARGET
        else:
            goal, met = f"<= {FLOOR_TARGET}x floor", o / f <= FLOOR_TARGET
        po, pr = e.peak["ours"], e.peak["ref"]
        peak = f"{_mb(po)} ({po / logits_bytes:.1f})" if po is not None else ""
        print(f"| `{e.name}` | {_ms(o)} | {o / f:.2f} | {e.ref_name} | {_ms(r)} | "
              f"{'' if ratio is None else f'{ratio:.2f}'} | {peak} | {_mb(pr)} | {goal} | {'yes' if met else '**no**'} |")
        rows.append({
            "shape": "x".join(map(str, shape)), "loss": e.name, "ours_ms": 1000 * o, "floor_ms": 1000 * f,
            "ours_over_floor": o / f, "reference": e.ref_name, "ref_ms": None if r is None else 1000 * r,
            "ours_over_ref": ratio, "ours_peak_mb": None if po is None else po / 2**20,
            "ref_peak_mb": None if pr is None else pr / 2**20, "logits_mb": logits_bytes / 2**20,
            "target": goal, "met": met,
        })


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--losses", nargs="*", default=[], help="fnmatch patterns of loss names (default: all without a distance map)")
    ap.add_argument("--shapes", nargs="*", default=DEFAULT_SHAPES, choices=list(SHAPES))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--csv", help="write the results to this CSV file")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]: where logits and targets live")
    args = ap.parse_args(argv)
    global DEVICE
    DEVICE = torch.device(args.device)
    if DEVICE.type == "cuda" and not torch.cuda.is_available():
        ap.error(f"--device: {args.device!r} asked for, but torch.cuda.is_available() is False")
    if args.threads:
        torch.set_num_threads(args.threads)
    if DEVICE.type == "cuda":  # PyTorch's CUDA allocator peak (the glibc policies are CPU-only)
        memory = not args.no_memory
    elif args.no_memory or not _malloc_policy("cold"):
        memory = False
    else:
        memory = _setup_memory_probe()
    entries = make_entries(args.losses)
    if not entries:
        print(f"no loss matches {args.losses}", file=sys.stderr)
        return 1
    import kornia
    import monai

    print(f"seglosses {seglosses.__version__}, torch {torch.__version__}, monai {monai.__version__}, kornia {kornia.__version__}; "
          f"{torch.get_num_threads()} threads, {os.cpu_count()} CPUs; median of {args.repeats} interleaved repeats "
          f"(glibc malloc: no mmap, no trim); peak memory: {'VmHWM above VmRSS, mmap per block' if memory else 'not measured'}")
    if DEVICE.type == "cuda":
        print(f"device {torch.cuda.get_device_name(DEVICE)}: times synchronised, peak = PyTorch's CUDA allocator peak")
    results = {}
    for key in args.shapes:  # peak memory first, under the "cold" policy, for every shape
        floor = Entry("floor (softmax fwd+bwd)", "floor", _floor)
        fresh = [Entry(e.name, e.base, e.ours, e.ref_name, e.ref, e.target) for e in entries]
        if memory:
            measure_memory(SHAPES[key], floor, fresh)
        results[key] = (floor, fresh)
    _malloc_policy("warm")
    rows: List[dict] = []
    for key in args.shapes:
        floor, fresh = results[key]
        measure_time(SHAPES[key], floor, fresh, args.repeats)
        report(SHAPES[key], floor, math.prod(SHAPES[key]) * 4, fresh, rows)
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        print(f"\nwrote {args.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
