"""The plan before the work: data fingerprint, timing probe, memory-aware patch and batch, time budget.

Before any training, ``seglosses bench`` fingerprints every task's data (:func:`fingerprint`),
times a few training steps of the planned network on this device (:func:`probe`) and prints a
:class:`Plan`: network dimensionality, patch size, batch size, iterations per run, folds, seeds,
number of runs and the estimated wall time (ETA). ``--plan`` prints it and exits; ``--budget``
makes the planner choose the settings so that the whole grid fits the given time.

Cost model (:func:`run_seconds`, :func:`grid_seconds`, :func:`iterations_for_budget`)
---------------------------------------------------------------------------------------
One run costs ``iterations * step + epochs * n_val * predict + n_test * (predict + metrics)``:
the training steps, the validation Dice after every epoch (``validate_every_epoch``) and the test
evaluation. ``step`` is measured by the probe (the mean of at least 2 s of steps after one warm-up step, the
same sampling, forward, loss, backward and Adam step as :func:`seglosses.bench.train.train_run`);
``predict`` is the number of sliding windows a case needs times the measured time of one
window's forward pass; ``metrics`` is the measured time of :func:`seglosses.metrics.evaluate_case`
on one case of median size. Runs go to ``workers`` parallel slots, so the grid takes
``ceil(runs / workers)`` run times (a loaded machine is slower than the probe says: the budget
keeps a reserve, :data:`BUDGET_RESERVE`).

Step time and activation memory of a fully convolutional network grow about linearly with
``batch * patch voxels``; the planner probes the configured candidate (at most
:data:`PROBE_MAX_VOXELS` voxels per sample), extrapolates linearly to smaller candidates while it
searches, and probes the chosen one again, so the printed ETA comes from a measurement of the
settings that will run.

Memory (nnU-Net-like)
---------------------
Patch and batch respect the device's memory with headroom: on CUDA the probe's
``torch.cuda.max_memory_allocated``; on the CPU a documented estimate (PyTorch's CPU allocator
has no peak counter): the bytes of the distinct tensors the network's leaf modules return in the
forward pass (what autograd keeps for the backward), times 1.5 for the backward's transient
gradients, plus four copies of the parameters (weights, gradients, Adam's two moments) and the
input batch. The limit is :data:`MEMORY_HEADROOM` of the free memory (``MemAvailable`` / CUDA
free memory) shared by the ``workers`` concurrent runs. For a dataset on disk without
``--patch-size``, the patch starts at the median image shape (nnU-Net's choice: as much context
as possible) and its largest axis shrinks until it fits at a batch of at least 2
(:data:`BATCH_FLOOR`).

Budget: what is sacrificed, in this order (:data:`SACRIFICE_ORDER`)
-------------------------------------------------------------------
With ``--budget``, iterations fill the budget (up to :data:`ITERATION_CAP_FACTOR` times the
configured number), and when even :data:`ITERATION_FLOOR` iterations do not fit, the planner
gives up, one step at a time and re-fitting the iterations after each:

1. **iterations**, down to the floor: beyond a few hundred iterations of these small networks
   the ranking changes little, below the floor it reflects how fast a loss starts, not the loss;
2. **3-D training of 3-D data**, replaced by 2-D training on slices (evaluation stays per 3-D
   case): a 2-D network is one to two orders of magnitude cheaper per case on a CPU, and every
   loss is still compared under the same network and data; it loses through-plane context;
3. **patch size**, the largest axis first, down to :data:`PATCH_FLOOR` voxels: less context per
   sample, still whole-image inference;
4. **batch size**, halved down to 2: noisier gradients, nnU-Net's own minimum;
5. **folds**, from 5 down to 2 (every case is still tested once, on models trained on fewer
   cases), then a single split (fewer test cases: the ranking is the first thing to lose
   evidence, so this goes last);
6. if nothing is left, iterations go below the floor and the plan says that the budget is too
   small for a meaningful ranking.

Explicit flags win: a setting given on the command line is never changed by the planner.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

__all__ = [
    "BATCH_FLOOR",
    "BUDGET_RESERVE",
    "DEFAULT_FOLDS",
    "Fingerprint",
    "ITERATION_FLOOR",
    "MEMORY_HEADROOM",
    "PATCH_FLOOR",
    "Plan",
    "PlanSettings",
    "Probe",
    "SACRIFICE_ORDER",
    "fingerprint",
    "format_bytes",
    "format_duration",
    "grid_seconds",
    "iterations_for_budget",
    "make_plan",
    "memory_limit",
    "needs_confirmation",
    "bench_plans",
    "confirmation_message",
    "parse_budget",
    "probe",
    "run_seconds",
    "sliding_windows",
]

#: below this many iterations per run the ranking reflects how fast a loss starts, not the loss
ITERATION_FLOOR = 100
#: with a budget, iterations fill it up to this many times the configured number
ITERATION_CAP_FACTOR = 10
#: smallest patch side (voxels) the budget may shrink to (never above the image's own size)
PATCH_FLOOR = 32
#: smallest batch (nnU-Net's minimum)
BATCH_FLOOR = 2
#: folds tried first when a budget is given and ``--folds`` is not (nnU-Net's 5-fold CV)
DEFAULT_FOLDS = 5
#: fraction of the free memory a plan may use (shared by the concurrent runs)
MEMORY_HEADROOM = 0.5
#: share of the budget kept for loading, the probe, the report and a loaded machine (at least 15 s)
BUDGET_RESERVE = 0.15
#: largest voxels per sample of the first (extrapolated) probe
PROBE_MAX_VOXELS = 64**3
#: the order in which ``--budget`` gives settings up (module docstring)
SACRIFICE_ORDER = ("iterations", "train_dims", "patch_size", "batch_size", "folds")


# ----------------------------------------------------------------------------------------------
# Durations and budgets
# ----------------------------------------------------------------------------------------------

_BUDGET = re.compile(r"^(?:(?P<h>\d+(?:\.\d+)?)h)?(?:(?P<m>\d+(?:\.\d+)?)m(?:in)?)?(?:(?P<s>\d+(?:\.\d+)?)s)?$")


def parse_budget(text) -> float:
    """``--budget`` in seconds: ``"90s"``, ``"30m"``, ``"2h"``, ``"1h30m"``, ``"1.5h"``; a bare number is seconds.

    >>> parse_budget("1h30m"), parse_budget("30m"), parse_budget("90s"), parse_budget("120")
    (5400.0, 1800.0, 90.0, 120.0)
    """
    raw = str(text)
    s = raw.strip().lower().replace(" ", "")
    seconds = None
    try:
        seconds = float(s)
    except ValueError:
        m = _BUDGET.match(s)
        if m and any(m.group(k) for k in "hms"):
            seconds = sum(float(m.group(k) or 0) * f for k, f in (("h", 3600), ("m", 60), ("s", 1)))
    if seconds is None or not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"--budget: expected a positive duration such as 90s, 30m, 2h or 1h30m, got {raw!r}")
    return float(seconds)


def format_duration(seconds: float) -> str:
    """``4210 -> "1 h 10 min"``, ``407 -> "6 min 47 s"``, ``40 -> "40 s"``.

    >>> format_duration(4210), format_duration(407), format_duration(40.2)
    ('1 h 10 min', '6 min 47 s', '40 s')
    """
    s = int(round(max(0.0, float(seconds))))
    if s >= 3600:
        return f"{s // 3600} h {(s % 3600) // 60} min"
    if s >= 60:
        return f"{s // 60} min {s % 60} s"
    return f"{s} s"


def format_bytes(n: float) -> str:
    """``3 * 2**20 -> "3.0 MiB"``."""
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover


def _shape_text(shape) -> str:
    return " x ".join(str(int(s)) for s in shape)


# ----------------------------------------------------------------------------------------------
# Fingerprint
# ----------------------------------------------------------------------------------------------


@dataclass
class Fingerprint:
    """What the planner knows about a dataset (nnU-Net's "dataset fingerprint", in memory).

    Intensities are those of the loaded cases, i.e. *after* the normalisation named in
    ``normalization`` (z-scored data: mean near 0, standard deviation near 1).
    """

    name: str
    n_cases: int
    spatial_dims: int
    in_channels: int
    num_classes: int
    label_names: Tuple[str, ...]
    shapes: List[Tuple[int, ...]]
    spacings: List[Tuple[float, ...]]
    median_shape: Tuple[int, ...]
    min_shape: Tuple[int, ...]
    max_shape: Tuple[int, ...]
    median_spacing: Tuple[float, ...]
    intensity: List[dict]
    class_fraction: Dict[str, float]
    class_presence: Dict[str, float]
    normalization: Tuple[str, ...] = ()

    def lines(self) -> List[str]:
        sp = " x ".join(f"{s:.3g}" for s in self.median_spacing)
        out = [
            f"data       {self.n_cases} cases, {self.spatial_dims}-D, {self.in_channels} channel(s), "
            f"{self.num_classes} classes ({', '.join(self.label_names)})",
            f"shapes     median {_shape_text(self.median_shape)} (min {_shape_text(self.min_shape)}, "
            f"max {_shape_text(self.max_shape)}), median spacing {sp} mm",
        ]
        for c, st in enumerate(self.intensity):
            out.append(
                f"intensity  channel {c}: mean {st['mean']:.3g}, std {st['std']:.3g}, "
                f"[0.5, 99.5] % percentiles [{st['p0.5']:.3g}, {st['p99.5']:.3g}] (after normalisation)"
            )
        fr = ", ".join(
            f"{k} {100 * v:.2g} % of voxels, in {100 * self.class_presence[k]:.0f} % of cases"
            for k, v in self.class_fraction.items()
        )
        out.append(f"classes    {fr}")
        return out


def fingerprint(dataset, max_voxels_per_case: int = 100_000) -> Fingerprint:
    """The :class:`Fingerprint` of a :class:`~seglosses.bench.data.Dataset`.

    Intensity statistics use at most ``max_voxels_per_case`` voxels per case and channel, drawn
    with a fixed seed, so the fingerprint of a dataset never changes.
    """
    shapes = [tuple(int(s) for s in c.spatial_shape) for c in dataset.cases]
    spacings = [tuple(float(s) for s in c.spacing) for c in dataset.cases]
    arr = np.array(shapes)
    rng = np.random.default_rng(0)
    intensity = []
    for ch in range(dataset.in_channels):
        samples = []
        for case in dataset.cases:
            v = case.image[ch].ravel()
            if v.size > max_voxels_per_case:
                v = v[rng.choice(v.size, max_voxels_per_case, replace=False)]
            samples.append(v.astype(np.float64))
        v = np.concatenate(samples)
        lo, hi = np.percentile(v, [0.5, 99.5])
        intensity.append({"mean": float(v.mean()), "std": float(v.std()), "p0.5": float(lo), "p99.5": float(hi)})
    counts = dataset.class_voxel_counts()
    total = max(int(counts.sum()), 1)
    present = np.zeros(dataset.num_classes)
    for case in dataset.cases:
        present += np.bincount(case.label.ravel(), minlength=dataset.num_classes)[: dataset.num_classes] > 0
    names = dataset.label_names
    return Fingerprint(
        name=dataset.name,
        n_cases=len(dataset),
        spatial_dims=dataset.spatial_dims,
        in_channels=dataset.in_channels,
        num_classes=dataset.num_classes,
        label_names=tuple(names),
        shapes=shapes,
        spacings=spacings,
        median_shape=tuple(int(round(s)) for s in np.median(arr, axis=0)),
        min_shape=tuple(int(s) for s in arr.min(axis=0)),
        max_shape=tuple(int(s) for s in arr.max(axis=0)),
        median_spacing=tuple(float(s) for s in np.median(np.array(spacings), axis=0)),
        intensity=intensity,
        class_fraction={names[c]: float(counts[c]) / total for c in range(1, dataset.num_classes)},
        class_presence={names[c]: float(present[c]) / len(dataset) for c in range(1, dataset.num_classes)},
        normalization=tuple(dataset.normalization),
    )


# ----------------------------------------------------------------------------------------------
# Cost model (pure arithmetic)
# ----------------------------------------------------------------------------------------------


def sliding_windows(shape: Sequence[int], patch: Sequence[int], overlap: float = 0.25) -> int:
    """Windows MONAI's ``sliding_window_inference`` evaluates for one image of ``shape``.

    Per axis: 1 when the image is no larger than the patch, else ``ceil((size - patch) /
    interval) + 1`` with ``interval = max(1, int(patch * (1 - overlap)))``.

    >>> sliding_windows((64, 64), (64, 64)), sliding_windows((100, 64), (64, 64)), sliding_windows((256,) * 3, (64,) * 3)
    (1, 2, 125)
    """
    n = 1
    for s, p in zip(shape, patch):
        s, p = int(s), int(p)
        if s <= p:
            continue
        interval = max(1, int(p * (1 - overlap)))
        n *= math.ceil((s - p) / interval) + 1
    return n


def run_seconds(
    step: float,
    predict: float,
    metrics: float,
    iterations: int,
    epoch_length: int,
    n_val: int,
    n_test: int,
    validate_every_epoch: bool = True,
) -> float:
    """Seconds of one run: training steps, validation after every epoch, test evaluation.

    >>> run_seconds(0.1, 1.0, 0.5, iterations=100, epoch_length=25, n_val=2, n_test=4)
    24.0
    """
    epochs = math.ceil(iterations / epoch_length) if iterations > 0 else 0
    val_passes = (epochs if validate_every_epoch else min(epochs, 1)) if n_val else 0
    return iterations * step + val_passes * n_val * predict + n_test * (predict + metrics)


def grid_seconds(per_run: float, n_runs: int, workers: int = 1) -> float:
    """Wall time of ``n_runs`` runs of ``per_run`` seconds on ``workers`` parallel slots.

    >>> grid_seconds(20.0, 10, 2), grid_seconds(20.0, 11, 2)
    (100.0, 120.0)
    """
    if n_runs <= 0:
        return 0.0
    return math.ceil(n_runs / max(1, min(int(workers), n_runs))) * per_run


def iterations_for_budget(
    budget: float,
    step: float,
    predict: float,
    metrics: float,
    *,
    n_runs: int,
    workers: int,
    epoch_length: int,
    n_val: int,
    n_test: int,
    validate_every_epoch: bool = True,
) -> int:
    """The most iterations per run such that the grid's :func:`grid_seconds` stays within ``budget``.

    Rounded down to whole epochs when at least one epoch fits; 0 when not even the evaluation fits.

    >>> iterations_for_budget(100.0, 0.1, 0.0, 0.0, n_runs=10, workers=2, epoch_length=25, n_val=0, n_test=0)
    200
    """
    rounds = math.ceil(n_runs / max(1, min(int(workers), n_runs))) if n_runs > 0 else 1
    per_run = budget / rounds
    fixed = n_test * (predict + metrics)
    val_per_epoch = (n_val * predict) if (n_val and validate_every_epoch) else 0.0
    val_once = (n_val * predict) if (n_val and not validate_every_epoch) else 0.0
    # per_run >= it * step + ceil(it / E) * val_per_epoch + fixed + val_once;
    # ceil(it / E) <= it / E + 1 gives a safe closed form, then exact refinement
    rate = step + val_per_epoch / epoch_length
    if rate <= 0:
        return 0
    it = int(max(0.0, (per_run - fixed - val_once - val_per_epoch) / rate))
    def cost(i: int) -> float:
        return run_seconds(step, predict, metrics, i, epoch_length, n_val, n_test, validate_every_epoch)

    while it > 0 and cost(it) > per_run:
        it -= 1
    while cost(it + 1) <= per_run:  # the bound above is loose by at most one epoch's validation
        it += 1
    if it >= epoch_length:
        it -= it % epoch_length
    return it


# ----------------------------------------------------------------------------------------------
# Probe
# ----------------------------------------------------------------------------------------------


@dataclass
class Probe:
    """What a few training steps of one candidate measured on this device."""

    train_dims: int
    patch: Tuple[int, ...]
    batch: int
    step: float  # seconds per training iteration (median)
    window: float  # seconds of one inference window's forward pass
    metrics: float  # seconds of the metrics of one median case
    peak_bytes: float  # peak memory of a training step
    fixed_bytes: float  # the part that does not grow with batch x patch (parameters, optimiser state)
    memory_source: str
    steps: int

    @property
    def voxels(self) -> int:
        return int(self.batch * np.prod(self.patch))

    def scaled(self, patch: Sequence[int], batch: int) -> "Probe":
        """The same measurement extrapolated linearly in ``batch * patch voxels``."""
        ratio = batch * float(np.prod(patch)) / self.voxels
        wratio = float(np.prod(patch)) / float(np.prod(self.patch))
        return replace(
            self,
            patch=tuple(int(p) for p in patch),
            batch=int(batch),
            step=self.step * ratio,
            window=self.window * wratio,
            peak_bytes=self.fixed_bytes + (self.peak_bytes - self.fixed_bytes) * ratio,
            memory_source=self.memory_source + ", extrapolated",
        )


def _cpu_memory_estimate(model, images, step_fn) -> float:
    """Bytes of one training step on the CPU (see the module docstring)."""
    seen = {}

    def hook(_module, _inputs, output):
        outs = output if isinstance(output, (tuple, list)) else (output,)
        for t in outs:
            if hasattr(t, "untyped_storage"):
                st = t.untyped_storage()
                seen[st.data_ptr()] = st.nbytes()

    handles = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
    try:
        step_fn()
    finally:
        for h in handles:
            h.remove()
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    return 1.5 * sum(seen.values()) + 4 * params + images.numel() * images.element_size()


def probe(
    cases: Sequence,
    *,
    train_dims: int,
    patch: Sequence[int],
    batch: int,
    in_channels: int,
    num_classes: int,
    model_size: str = "tiny",
    arch: str = "dynunet",
    device: str = "cpu",
    loss_spec: str = "ce",
    steps: int = 3,
    metric_case=None,
    tolerance: float = 1.0,
    seed: int = 0,
    max_seconds: float = 5.0,
    min_seconds: float = 2.0,
    concurrent: int = 1,
) -> Probe:
    """Time ``steps`` training steps (after one warm-up step) of the planned network.

    Timing goes on until the timed steps took ``min_seconds`` (a loaded machine is measured over
    its scheduling, not in one burst) and stops early, after at least one step, once they took
    ``max_seconds``; the step time is their mean.
    ``concurrent`` copies of the model train at once in threads, as ``--workers`` runs do, so the
    step time includes their competition for the cores and the interpreter lock.

    ``cases`` are training cases at ``train_dims`` (2-D slices for 2-D training of 3-D data).
    The model, optimizer and sampler are built here from ``seed`` and thrown away; a bench run
    reseeds everything (:func:`seglosses.bench.train.seed_everything`), so probing changes no result.
    ``metric_case`` (a case at the data's dims) times :func:`seglosses.metrics.evaluate_case`.
    """
    import torch

    from seglosses import build_loss

    from .data_sampling import sample_batch
    from .model import build_model

    patch = tuple(int(p) for p in patch)
    model = build_model(in_channels, num_classes, train_dims, model_size, arch).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    rng = np.random.default_rng([seed, 99])
    images, labels = sample_batch(cases, batch, patch, rng, as_torch=True)
    images, labels = images.to(device), labels.to(device)
    try:  # the grid's first loss; one that cannot take this network's output (binary-only) -> CE
        loss_fn = build_loss(loss_spec).to(device)
        with torch.no_grad():
            loss_fn(model(images), labels)
    except (ValueError, TypeError, RuntimeError):
        loss_fn = build_loss("ce").to(device)

    def step():
        loss = loss_fn(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize(device)

    cuda = device.startswith("cuda")
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    if cuda:
        step()  # warm-up (allocations, kernel selection)
        sync()
        peak = float(torch.cuda.max_memory_allocated(device))
        fixed = float(base + 3 * params)
        source = "measured (torch.cuda.max_memory_allocated)"
    else:  # the warm-up step, with hooks counting the activations
        peak = _cpu_memory_estimate(model, images, step)
        fixed = float(4 * params)
        source = "estimated (activations + parameters)"
    def timed(net, opt, gen) -> List[float]:
        out: List[float] = []
        # at least ``steps`` steps and ``min_seconds`` of them (short probes of tiny steps see the
        # bursts a loaded machine grants, not its throughput), at most ``max_seconds`` or 200 steps
        while (len(out) < max(1, steps) or sum(out) < min_seconds) and len(out) < 200 and (
            not out or sum(out) < max_seconds
        ):
            t0 = time.perf_counter()
            x, y = sample_batch(cases, batch, patch, gen, as_torch=True)
            loss = loss_fn(net(x.to(device)), y.to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sync()
            out.append(time.perf_counter() - t0)
        return out

    if concurrent > 1:  # as many runs at once as the grid runs (threads share the GIL and the cores)
        import copy
        from concurrent.futures import ThreadPoolExecutor

        nets = [model] + [copy.deepcopy(model) for _ in range(concurrent - 1)]
        opts = [optimizer] + [torch.optim.Adam(n.parameters(), lr=1e-4) for n in nets[1:]]
        gens = [rng] + [np.random.default_rng([seed, 99, i]) for i in range(1, concurrent)]
        with ThreadPoolExecutor(max_workers=concurrent) as pool:
            results = list(pool.map(timed, nets, opts, gens))
        times = [t for r in results for t in r]
    else:
        times = timed(model, optimizer, rng)
    model.eval()
    with torch.no_grad():  # inference batches up to 8 windows (seglosses.bench.evaluate)
        x = images[:1].repeat(8, *([1] * (images.dim() - 1)))
        model(x)
        sync()
        t0, reps = time.perf_counter(), 0
        while reps < 20 and (reps == 0 or time.perf_counter() - t0 < min_seconds / 4):
            model(x)
            sync()
            reps += 1
        window = (time.perf_counter() - t0) / (reps * x.shape[0])
    metric_seconds = 0.0
    if metric_case is not None:
        from seglosses.metrics import evaluate_case

        t0 = time.perf_counter()
        evaluate_case(
            pred_labels=metric_case.label,
            gt_labels=metric_case.label,
            labels=list(range(1, num_classes)),
            spacing=metric_case.spacing,
            tolerance=tolerance,
        )
        metric_seconds = time.perf_counter() - t0
    return Probe(
        train_dims=train_dims,
        patch=patch,
        batch=int(batch),
        step=float(np.mean(times)),  # the mean: slow (pre-empted) steps are part of the throughput
        window=float(window) * 1.2,  # blending and stitching of the sliding window
        metrics=metric_seconds,
        peak_bytes=peak,
        fixed_bytes=fixed,
        memory_source=source,
        steps=len(times),
    )


def memory_limit(device: str = "cpu", workers: int = 1) -> Tuple[float, str]:
    """Bytes one run may use: :data:`MEMORY_HEADROOM` of the free memory over ``workers`` runs."""
    workers = max(1, int(workers))
    if device.startswith("cuda"):
        import torch

        free, _total = torch.cuda.mem_get_info(torch.device(device))
        return MEMORY_HEADROOM * free / workers, f"{MEMORY_HEADROOM:.0%} of the GPU's free {format_bytes(free)} / {workers} run(s)"
    free = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    free = float(line.split()[1]) * 1024
                    break
    except OSError:  # pragma: no cover - not Linux
        pass
    if free is None:  # pragma: no cover
        import os

        free = float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))
    return MEMORY_HEADROOM * free / workers, f"{MEMORY_HEADROOM:.0%} of the available {format_bytes(free)} / {workers} run(s)"


# ----------------------------------------------------------------------------------------------
# The plan
# ----------------------------------------------------------------------------------------------


@dataclass
class PlanSettings:
    """The requested settings of one task's grid; ``explicit`` names those given on the command line."""

    n_losses: int
    n_lrs: int = 1
    seeds: Tuple[int, ...] = (0,)
    folds: Optional[int] = None  # None: 1 without a budget, DEFAULT_FOLDS with one
    run_folds: Optional[Tuple[int, ...]] = None  # --fold F: only these folds
    train_dims: Optional[int] = None  # None: the data's dims
    patch_size: object = None  # int side, a tuple (a stored plan), or None: the median image, memory-capped
    batch_size: int = 8
    iterations: int = 300
    epoch_length: int = 25
    model_size: str = "tiny"
    arch: str = "dynunet"
    device: str = "cpu"
    workers: int = 1
    test_fraction: float = 0.2
    val_fraction: float = 0.2
    overlap: float = 0.25
    tolerance: float = 1.0
    validate_every_epoch: bool = True
    budget: Optional[float] = None  # seconds for this task's share of the grid
    explicit: frozenset = frozenset()
    loss_spec: str = "ce"  # the loss the probe trains with


@dataclass
class Choice:
    setting: str
    value: str
    reason: str


@dataclass
class Plan:
    """The settings one task's runs will use, the reasons, and the estimated time."""

    task: str
    train_dims: int
    patch: Tuple[int, ...]
    batch: int
    iterations: int
    epoch_length: int
    folds: int
    run_folds: Tuple[int, ...]
    seeds: Tuple[int, ...]
    n_runs: int
    run_seconds: float
    eta_seconds: float
    probe: Probe
    memory_bytes: float
    memory_limit: float
    memory_text: str
    device: str
    workers: int
    budget: Optional[float]
    choices: List[Choice] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)
    fingerprint: Optional[Fingerprint] = None

    def choice(self, setting: str) -> Choice:
        return next(c for c in self.choices if c.setting == setting)

    def lines(self) -> List[str]:
        out = [f"plan for task {self.task}:"]
        if self.fingerprint is not None:
            out += ["  " + line for line in self.fingerprint.lines()]
        for c in self.choices:
            out.append(f"  {c.setting:<10} {c.value:<28} {c.reason}")
        p = self.probe
        out.append(
            f"  {'probe':<10} {p.step:.3g} s per iteration ({p.steps} steps at batch {p.batch}, patch {_shape_text(p.patch)}), "
            f"memory {format_bytes(self.memory_bytes)} {p.memory_source.split(' (')[0]} of {format_bytes(self.memory_limit)} allowed "
            f"({self.memory_text})"
        )
        budget = f" (budget {format_duration(self.budget)})" if self.budget else ""
        out.append(
            f"  {'ETA':<10} {format_duration(self.eta_seconds)} for {self.n_runs} run(s) of about "
            f"{format_duration(self.run_seconds)} on {self.device} with {self.workers} worker(s){budget}"
        )
        out += [f"  warning: {w}" for w in self.warnings]
        return out

    def to_dict(self) -> dict:
        return {
            "task": self.task,
            "train_dims": self.train_dims,
            "patch": list(self.patch),
            "batch": self.batch,
            "iterations": self.iterations,
            "folds": self.folds,
            "run_folds": list(self.run_folds),
            "seeds": list(self.seeds),
            "n_runs": self.n_runs,
            "eta_seconds": self.eta_seconds,
            "step_seconds": self.probe.step,
            "budget": self.budget,
            "choices": [c.__dict__ for c in self.choices],
            "warnings": list(self.warnings),
        }


def _train_shapes(dataset, train_dims: int) -> List[Tuple[int, ...]]:
    shapes = [tuple(c.spatial_shape) for c in dataset.cases]
    if train_dims < dataset.spatial_dims:
        shapes = [
            tuple(s for a, s in enumerate(sh) if a != dataset.slice_axis_of(c)) for sh, c in zip(shapes, dataset.cases)
        ]
    return shapes


def _round_up(v: int, div: int) -> int:
    return max(div, ((int(v) + div - 1) // div) * div)


def _fold_sizes(n: int, folds: int, test_fraction: float, val_fraction: float) -> Tuple[int, int]:
    """(validation cases, test cases) of the largest fold (see :func:`seglosses.bench.data.fold_split`)."""
    if folds == 1:
        n_test = min(max(int(round(n * test_fraction)), 1), n - 1) if test_fraction > 0 else 0
    else:
        n_test = math.ceil(n / folds)
    n_train = n - n_test
    n_val = min(max(int(round(n_train * val_fraction)), 1), n_train - 1) if val_fraction > 0 and n_train >= 3 else 0
    return n_val, n_test


@dataclass
class _Candidate:
    train_dims: int
    patch: Tuple[int, ...]
    batch: int
    folds: int


def make_plan(dataset, settings: PlanSettings, *, probe_fn: Callable = probe, limit: Optional[Tuple[float, str]] = None) -> Plan:
    """Plan one task's runs (module docstring); ``probe_fn`` and ``limit`` are for tests."""
    from .model import size_divisor

    s = settings
    ex = s.explicit
    n = len(dataset)
    div = size_divisor(s.model_size, s.arch)
    budget = s.budget
    mem_limit, mem_text = limit if limit is not None else memory_limit(s.device, s.workers)
    choices: Dict[str, Choice] = {}
    warnings: List[str] = []

    # ---- starting point ------------------------------------------------------------------------
    dims = s.train_dims or dataset.spatial_dims
    dims_reason = "given (--spatial-dims)" if "train_dims" in ex else f"the data are {dataset.spatial_dims}-D"
    if s.folds is not None:
        folds = s.folds
        folds_reason = "given (--folds)"
    elif budget is not None:
        folds = min(DEFAULT_FOLDS, n)
        folds_reason = f"{folds}-fold cross-validation (nnU-Net) when the budget allows it"
    else:
        folds = 1
        folds_reason = "single split (the default without --budget; --folds K for cross-validation)"
    if folds < 1 or folds > n:
        raise ValueError(f"--folds: expected an integer in [1, {n}] (the number of cases of task {dataset.name!r}), got {folds}")

    def default_patch(d: int) -> Tuple[Tuple[int, ...], str]:
        shapes = _train_shapes(dataset, d)
        if isinstance(s.patch_size, (tuple, list)) and len(s.patch_size) == d:
            why = "given (--patch-size)" if "patch_size" in ex else "the stored plan's"
            return tuple(int(p) for p in s.patch_size), why
        if s.patch_size and isinstance(s.patch_size, (tuple, list)):
            return tuple(_round_up(max(s.patch_size), div) for _ in range(d)), "the stored plan's (largest side)"
        if s.patch_size:
            why = "given (--patch-size)" if "patch_size" in ex else "the preset's"
            return tuple(_round_up(s.patch_size, div) for _ in range(d)), why
        if "patch_size" in ex:  # --patch-size 0: whole images (the largest)
            big = np.max(np.array(shapes), axis=0)
            return tuple(_round_up(int(m), div) for m in big), "whole images (--patch-size 0)"
        med = np.median(np.array(shapes), axis=0)
        return tuple(_round_up(int(round(m)), div) for m in med), "the median image shape (nnU-Net: the largest patch)"

    patch, patch_reason = default_patch(dims)
    batch = int(s.batch_size)
    batch_reason = "given (--batch-size)" if "batch_size" in ex else "the preset's"
    cand = _Candidate(dims, patch, batch, folds)
    train_cases_cache: Dict[int, list] = {}

    def train_cases(d: int) -> list:
        if d not in train_cases_cache:
            ds = dataset if d == dataset.spatial_dims else _as_2d(dataset)
            train_cases_cache[d] = ds.training_cases()
        return train_cases_cache[d]

    median_case = sorted(dataset.cases, key=lambda c: int(np.prod(c.spatial_shape)))[n // 2]
    probes: Dict[int, Probe] = {}

    measured: Dict[tuple, Probe] = {}

    def measure(d: int, patch_: Tuple[int, ...], batch_: int) -> Probe:
        key = (d, tuple(patch_), int(batch_))
        if key not in measured:
            measured[key] = _measure(d, tuple(patch_), int(batch_))
        return measured[key]

    def _measure(d: int, patch_: Tuple[int, ...], batch_: int) -> Probe:
        return probe_fn(
            train_cases(d),
            train_dims=d,
            patch=patch_,
            batch=batch_,
            in_channels=dataset.in_channels,
            num_classes=dataset.num_classes,
            model_size=s.model_size,
            arch=s.arch,
            device=s.device,
            loss_spec=s.loss_spec,
            metric_case=median_case,
            tolerance=s.tolerance,
            concurrent=max(1, min(int(s.workers), n_runs(cand))),
        )

    def base_probe(d: int, patch_: Tuple[int, ...], batch_: int) -> Probe:
        if d not in probes:  # at most 2 * PROBE_MAX_VOXELS per step: batch down to 2, then patch
            p, b = tuple(patch_), int(batch_)
            while b > BATCH_FLOOR and b * np.prod(p) > 2 * PROBE_MAX_VOXELS:
                b = max(BATCH_FLOOR, b // 2)
            while np.prod(p) > PROBE_MAX_VOXELS and max(p) > div:
                i = int(np.argmax(p))
                p = p[:i] + (max(div, _round_up(p[i] // 2, div)),) + p[i + 1 :]
            probes[d] = measure(d, p, b)
        return probes[d].scaled(patch_, batch_)

    def n_runs(c: _Candidate) -> int:
        folds_run = len(s.run_folds) if s.run_folds else c.folds
        return s.n_losses * s.n_lrs * len(s.seeds) * folds_run

    def costs(c: _Candidate, pr: Probe) -> Tuple[float, float]:
        """(seconds per case prediction, seconds of metrics per case)."""
        shape = median_case.spatial_shape
        if c.train_dims < dataset.spatial_dims:
            ax = dataset.slice_axis_of(median_case)
            windows = shape[ax] * sliding_windows([v for a, v in enumerate(shape) if a != ax], c.patch, s.overlap)
        else:
            windows = sliding_windows(shape, c.patch, s.overlap)
        return windows * pr.window, pr.metrics

    def fits_memory(c: _Candidate) -> bool:
        return base_probe(c.train_dims, c.patch, c.batch).peak_bytes <= mem_limit

    def shrink_patch(c: _Candidate, floor: int) -> Optional[_Candidate]:
        p = list(c.patch)
        i = int(np.argmax(p))
        smaller = max(_round_up(floor, div), _round_up(p[i] // 2 if p[i] >= 4 * div else p[i] - div, div))
        if smaller >= p[i]:
            return None
        p[i] = smaller
        return replace(c, patch=tuple(p))

    # ---- memory: largest patch that fits at batch >= 2, then the largest batch up to the preset's
    def fit_memory(c: _Candidate) -> _Candidate:
        nonlocal patch_reason, batch_reason
        if fits_memory(c):
            return c
        if "batch_size" not in ex:
            while c.batch > BATCH_FLOOR and not fits_memory(c):
                c = replace(c, batch=max(BATCH_FLOOR, c.batch // 2))
                batch_reason = f"largest batch (>= {BATCH_FLOOR}) that fits the memory"
        if "patch_size" not in ex:
            while not fits_memory(c):
                nxt = shrink_patch(c, div)
                if nxt is None:
                    break
                c = nxt
                patch_reason = "largest patch that fits the memory at this batch"
        if not fits_memory(c):
            warnings.append(
                f"the estimated memory of a step ({format_bytes(base_probe(c.train_dims, c.patch, c.batch).peak_bytes)}) "
                f"exceeds the limit ({format_bytes(mem_limit)}); lower --patch-size or --batch-size"
            )
        return c

    cand = fit_memory(cand)

    def fit(c: _Candidate, pr: Probe) -> int:
        """Iterations per run that fit the budget (less its reserve) with this candidate."""
        predict, metric = costs(c, pr)
        n_val, n_test = _fold_sizes(n, c.folds, s.test_fraction, s.val_fraction)
        reserve = max(15.0, BUDGET_RESERVE * budget)
        return iterations_for_budget(
            max(0.0, budget - reserve),
            pr.step,
            predict,
            metric,
            n_runs=n_runs(c),
            workers=s.workers,
            epoch_length=s.epoch_length,
            n_val=n_val,
            n_test=n_test,
            validate_every_epoch=s.validate_every_epoch,
        )

    iterations = int(s.iterations)
    it_reason = "given (--iterations)" if "iterations" in ex else "the preset's (no --budget)"
    sacrificed: List[str] = []
    cap = ITERATION_CAP_FACTOR * int(s.iterations)
    floor = min(ITERATION_FLOOR, int(s.iterations))
    def grid_cost(c: _Candidate) -> float:
        """Seconds of the grid at the iteration floor (what a sacrifice must reduce)."""
        pr = base_probe(c.train_dims, c.patch, c.batch)
        predict, metric = costs(c, pr)
        n_val, n_test = _fold_sizes(n, c.folds, s.test_fraction, s.val_fraction)
        it = iterations if "iterations" in ex else floor
        per_run = run_seconds(pr.step, predict, metric, it, s.epoch_length, n_val, n_test, s.validate_every_epoch)
        return grid_seconds(per_run, n_runs(c), s.workers)

    def fits_budget(c: _Candidate) -> bool:
        pr = base_probe(c.train_dims, c.patch, c.batch)
        if "iterations" not in ex:
            return fit(c, pr) >= floor
        predict, metric = costs(c, pr)
        n_val, n_test = _fold_sizes(n, c.folds, s.test_fraction, s.val_fraction)
        per_run = run_seconds(pr.step, predict, metric, iterations, s.epoch_length, n_val, n_test, s.validate_every_epoch)
        return grid_seconds(per_run, n_runs(c), s.workers) <= budget - max(15.0, BUDGET_RESERVE * budget)

    steps_left = [k for k in SACRIFICE_ORDER[1:] if not (k in ex or (k == "folds" and s.folds is not None))]
    for _attempt in range(3):  # the chosen candidate is measured; if it is slower than extrapolated, go on
        if budget is not None:
            while True:
                if fits_budget(cand) or not steps_left:
                    break
                key = steps_left[0]
                if key == "train_dims":
                    steps_left.pop(0)
                    if cand.train_dims == 3:
                        p2, _ = default_patch(2)
                        cand = fit_memory(replace(cand, train_dims=2, patch=p2, batch=int(s.batch_size)))
                        dims_reason = "2-D training on slices of the 3-D data: 3-D training does not fit the budget (evaluation stays 3-D)"
                        patch_reason = "the median slice shape"
                        sacrificed.append("3-D training")
                elif key == "patch_size":
                    nxt = shrink_patch(cand, PATCH_FLOOR)
                    if nxt is None or grid_cost(nxt) >= grid_cost(cand):
                        # a smaller patch that costs more (more inference windows) is no sacrifice worth making
                        steps_left.pop(0)
                        continue
                    cand = nxt
                    patch_reason = f"smaller patch to fit the budget (floor {PATCH_FLOOR})"
                    if "patch" not in sacrificed:
                        sacrificed.append("patch")
                elif key == "batch_size":
                    if cand.batch <= BATCH_FLOOR:
                        steps_left.pop(0)
                        continue
                    cand = replace(cand, batch=max(BATCH_FLOOR, cand.batch // 2))
                    batch_reason = f"smaller batch to fit the budget (floor {BATCH_FLOOR})"
                    if "batch" not in sacrificed:
                        sacrificed.append("batch")
                elif key == "folds":
                    if cand.folds <= 1:
                        steps_left.pop(0)
                        continue
                    cand = replace(cand, folds=cand.folds - 1 if cand.folds > 2 else 1)
                    folds_reason = (
                        f"{cand.folds}-fold cross-validation: more folds do not fit the budget"
                        if cand.folds > 1
                        else "single split: not even 2 folds fit the budget"
                    )
                    if "folds" not in sacrificed:
                        sacrificed.append("folds")
        # ---- the chosen candidate, measured (not extrapolated) when small enough to probe ----------
        if cand.batch * np.prod(cand.patch) <= 2 * PROBE_MAX_VOXELS:
            final = measure(cand.train_dims, cand.patch, cand.batch)
        else:
            final = base_probe(cand.train_dims, cand.patch, cand.batch)
        if budget is None or "iterations" in ex or fit(cand, final) >= floor or not steps_left:
            break
        probes[cand.train_dims] = final  # extrapolate from the measured candidate from now on
    if budget is not None and "iterations" not in ex:
        it = fit(cand, final)
        iterations = max(1, min(it, cap))
        if it >= floor:
            it_reason = "fills the budget" + (
                f" (capped at {ITERATION_CAP_FACTOR} x the preset's {s.iterations})" if it > cap else ""
            )
            if sacrificed:
                it_reason += f"; given up to fit: {', '.join(sacrificed)}"
        else:
            it_reason = f"below the floor of {floor}: the budget is too small for a meaningful ranking"
            warnings.append(
                f"budget {format_duration(budget)} is too small for task {dataset.name!r}: only {iterations} "
                "iteration(s) per run fit; give a larger --budget or fewer losses"
            )
    predict, metric = costs(cand, final)
    n_val, n_test = _fold_sizes(n, cand.folds, s.test_fraction, s.val_fraction)
    per_run = run_seconds(final.step, predict, metric, iterations, s.epoch_length, n_val, n_test, s.validate_every_epoch)
    total = grid_seconds(per_run, n_runs(cand), s.workers)
    run_folds = tuple(s.run_folds) if s.run_folds else tuple(range(cand.folds))
    bad = [f for f in run_folds if not 0 <= f < cand.folds]
    if bad:
        raise ValueError(f"--fold: expected fold numbers in [0, {cand.folds - 1}], got {bad}")
    names = ["network", "patch", "batch", "iterations", "folds", "seeds", "runs"]
    values = [
        f"{cand.train_dims}-D {s.model_size} {s.arch}",
        _shape_text(cand.patch),
        str(cand.batch),
        f"{iterations} per run",
        f"{cand.folds}" + (f" (running {', '.join(map(str, run_folds))})" if s.run_folds else ""),
        ",".join(map(str, s.seeds)),
        str(n_runs(cand)),
    ]
    n_val, n_test = _fold_sizes(n, cand.folds, s.test_fraction, s.val_fraction)
    reasons = [
        dims_reason,
        patch_reason,
        batch_reason,
        it_reason,
        folds_reason + f"; about {n - n_val - n_test} train / {n_val} validation / {n_test} test cases per fold",
        ("given (--seeds)" if "seeds" in ex else "default") + "; the split does not depend on the training seed",
        f"{s.n_losses} loss(es) x {s.n_lrs} learning rate(s) x {len(run_folds)} fold(s) x {len(s.seeds)} seed(s)",
    ]
    for k, v, r in zip(names, values, reasons):
        choices[k] = Choice(k, v, r)
    if budget is not None and total > 1.25 * budget:
        warnings.append(f"the estimated {format_duration(total)} exceeds the budget {format_duration(budget)}")
    return Plan(
        task=dataset.name,
        train_dims=cand.train_dims,
        patch=cand.patch,
        batch=cand.batch,
        iterations=iterations,
        epoch_length=s.epoch_length,
        folds=cand.folds,
        run_folds=run_folds,
        seeds=tuple(s.seeds),
        n_runs=n_runs(cand),
        run_seconds=per_run,
        eta_seconds=total,
        probe=final,
        memory_bytes=final.peak_bytes,
        memory_limit=mem_limit,
        memory_text=mem_text,
        device=s.device,
        workers=s.workers,
        budget=budget,
        choices=list(choices.values()),
        warnings=warnings,
        fingerprint=fingerprint(dataset),
    )


def _as_2d(dataset):
    from dataclasses import replace as dc_replace

    return dc_replace(dataset, train_dims=2)


def needs_confirmation(eta_seconds: float, device: str, threshold: float = 3600.0) -> bool:
    """A grid estimated at more than an hour on a CPU asks before it starts (``--yes`` skips)."""
    return not str(device).startswith("cuda") and eta_seconds > threshold


def bench_plans(cfg, datasets: Sequence, *, stored: Optional[Dict[str, dict]] = None, probe_fn: Callable = probe) -> Dict[str, Plan]:
    """The plan of every task of a bench configuration (:class:`seglosses.bench.runner.BenchConfig`).

    ``datasets``: ``[(loader spec, Dataset)]``. The budget is shared equally by the tasks.
    ``stored``: ``{task: Plan.to_dict()}`` of a resumed OUT folder; a stored plan's training
    settings are kept (the resumed runs train like the first ones), only the ETA is measured again.
    A dataset on disk without ``--patch-size`` starts from its median image shape (nnU-Net);
    a built-in task from the preset's patch.
    """
    explicit = frozenset(getattr(cfg, "explicit", ()) or ())
    seeds = tuple(getattr(cfg, "seeds", None) or (cfg.seed,))
    budget = getattr(cfg, "budget", None)
    n_tasks = max(1, len(datasets))
    plans: Dict[str, Plan] = {}
    loss_spec = cfg.losses[0].spec if cfg.losses else "ce"
    for spec, ds in datasets:
        patch = cfg.patch_size
        if spec.get("kind") == "path" and "patch_size" not in explicit:
            patch = None
        # --spatial-dims of a built-in task chooses the generated data's dims (the planner may still
        # train them on 2-D slices); of a dataset on disk, the training dims (never changed)
        task_explicit = explicit - {"train_dims"}
        if ds.train_dims != ds.spatial_dims or (spec.get("kind") == "path" and "train_dims" in explicit):
            task_explicit = task_explicit | {"train_dims"}
        settings = PlanSettings(
            n_losses=len(cfg.losses),
            n_lrs=len(cfg.lrs),
            seeds=seeds,
            folds=getattr(cfg, "folds", None),
            run_folds=tuple(getattr(cfg, "run_folds", None) or ()) or None,
            train_dims=ds.train_dims if ds.train_dims != ds.spatial_dims else None,
            patch_size=patch,
            batch_size=cfg.batch_size,
            iterations=cfg.iterations,
            epoch_length=cfg.epoch_length,
            model_size=cfg.model_size,
            arch=cfg.arch,
            device=cfg.device,
            workers=max(1, int(cfg.workers or 1)),
            test_fraction=cfg.test_fraction,
            val_fraction=cfg.val_fraction,
            overlap=cfg.overlap,
            tolerance=cfg.tolerance,
            validate_every_epoch=getattr(cfg, "validate_every_epoch", True),
            budget=None if budget is None else float(budget) / n_tasks,
            explicit=task_explicit,
            loss_spec=loss_spec,
        )
        old = (stored or {}).get(ds.name)
        if old:
            settings = replace(
                settings,
                train_dims=int(old["train_dims"]),
                patch_size=tuple(old["patch"]),
                batch_size=int(old["batch"]),
                iterations=int(old["iterations"]),
                folds=int(old["folds"]),
                budget=None,
                explicit=settings.explicit | {"train_dims", "patch_size", "batch_size", "iterations"},
            )
        plan = make_plan(ds, settings, probe_fn=probe_fn)
        if old:
            for c in plan.choices:
                if c.setting in ("network", "patch", "batch", "iterations", "folds"):
                    c.reason = "the stored plan of this OUT folder (--resume)"
        plans[ds.name] = plan
    return plans


def confirmation_message(plans: Dict[str, Plan], device: str) -> Optional[str]:
    """The question asked before a CPU grid estimated at more than an hour (``None``: no question)."""
    total = sum(p.eta_seconds for p in plans.values())
    if not needs_confirmation(total, device):
        return None
    return (
        f"the grid is estimated at {format_duration(total)} on {device}. Give a time budget (e.g. --budget 1h or "
        "--budget 30m: the planner then fits iterations, dimensionality, patch, batch and folds into it), "
        "or pass --yes to run it as planned. Continue? [y/N] "
    )
