"""The benchmark grid: tasks x loss configurations x learning rates, trained, evaluated, stored.

:func:`run_bench` is what ``seglosses bench`` calls. For each task it loads or generates the data,
splits the cases (test 20 %, then validation 20 % of the rest, seeded), stores the split, and
runs every (loss, learning rate) pair not yet in ``OUT/results.sqlite``: train
(:func:`seglosses.bench.train.train_run`), evaluate on the test cases
(:func:`seglosses.bench.evaluate.evaluate_model`), then write the run in one transaction. A run
that fails (NaN/inf loss, exception) is stored as failed with the reason and the grid goes on.
At the end it prints a summary table (:func:`seglosses.bench.results.summary_lines`). The
report is the caller's: ``seglosses bench`` (:func:`seglosses.bench.cli.bench`) writes it after
the grid, so the runner and the report never import each other.

Layers
------
The runner is the *driver*: it plans the jobs (:mod:`seglosses.bench.job` describes one), hands
them to an executor (:mod:`seglosses.bench.executors` decides where they run) and alone writes
``OUT/results.sqlite`` (:mod:`seglosses.bench.store`), one transaction per run as each outcome
arrives.

Resume semantics
----------------
* ``OUT/results.sqlite`` is the single source of truth; a run is either entirely in it or not
  at all (one transaction per run, written after the run completes).
* Without ``--resume`` an OUT folder that already holds runs is refused (nothing is
  overwritten). With ``--resume``, every (task, loss, lr, seed) already stored -- finished *or*
  failed -- is skipped; ``--retry-failed`` runs the failed ones again (the old row is replaced in
  the same transaction as the new one is written).
* The protocol (iterations, patch size, batch, model, data, split fractions, seed, tolerance,
  ...) is stored on the first run; resuming with a different protocol is refused, with the
  differences listed. New tasks, losses and learning rates may be added on resume.

Learning-rate selection
-----------------------
Every (task, loss, lr) is a run of its own; the model is trained on the *train* cases, its Dice
on the *validation* cases (``val_dice``) picks the learning rate per task and loss (Ma et al.
3.2), and the *test* metrics of the picked run are reported and ranked
(:func:`select_runs`).
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Tuple

from .executors import get_executor
from .job import display_index, failed_result, load_task
from .presets import LossConfig, Preset
from .results import select_runs, summary_lines
from .store import ResultStore

# ``select_runs`` and ``load_task`` are re-exported for callers of the previous layout.
__all__ = ["BenchConfig", "run_bench", "select_runs", "load_task"]


@dataclass
class BenchConfig:
    """Everything ``seglosses bench`` needs (the CLI builds one from a preset and the flags)."""

    out: str = "seglosses_out"
    preset: str = "quick"
    tasks: List[str] = field(default_factory=list)
    data: List[str] = field(default_factory=list)
    losses: List[LossConfig] = field(default_factory=list)
    lrs: List[float] = field(default_factory=lambda: [3e-3])
    iterations: int = 200
    epoch_length: int = 25
    batch_size: int = 8
    patch_size: Optional[int] = 64
    image_size: Optional[int] = 64
    n_cases: int = 40
    spatial_dims: Optional[int] = 2
    model_size: str = "tiny"
    arch: str = "dynunet"
    plateau_patience: int = 3
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    overlap: float = 0.25
    tolerance: float = 1.0
    seed: int = 0
    device: str = "cpu"
    resume: bool = False
    retry_failed: bool = False
    workers: int = 1
    executor: str = "thread"
    ray_address: Optional[str] = None  # --executor ray: None (local runtime), "auto" or host:port
    gpus_per_run: Optional[float] = None  # --executor ray with CUDA: GPUs per run (default 1)
    max_retries: int = 2  # --executor ray: retries of a run whose worker died
    threads: Optional[int] = 1
    #: read by :func:`seglosses.bench.cli.bench` (``--no-report``): write the report after the grid
    report: bool = True
    progress: bool = True
    validate_every_epoch: bool = True
    #: DynUNet's deep-supervision heads with nnU-Net's weights (``--deep-supervision``)
    deep_supervision: bool = False
    #: clDice and Betti-number errors per test case: None = for the built-in topology tasks
    #: (``vessels``), True = for every task, False = never (``--topology-metrics``)
    topology_metrics: Optional[bool] = None

    @classmethod
    def from_preset(cls, preset: Preset, **overrides) -> "BenchConfig":
        base = dict(
            preset=preset.name,
            tasks=list(preset.tasks),
            lrs=list(preset.lrs),
            iterations=preset.iterations,
            epoch_length=preset.epoch_length,
            batch_size=preset.batch_size,
            patch_size=preset.patch_size,
            image_size=preset.image_size,
            n_cases=preset.n_cases,
            spatial_dims=preset.spatial_dims,
            model_size=preset.model_size,
            plateau_patience=preset.plateau_patience,
            val_fraction=preset.val_fraction,
            test_fraction=preset.test_fraction,
            overlap=preset.overlap,
            workers=preset.workers,
            deep_supervision=preset.deep_supervision,
        )
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**base)

    def protocol(self) -> dict:
        """The settings every run of one OUT folder must share (checked on ``--resume``).
        ``deep_supervision`` appears only when on (folders made before it existed resume)."""
        extra = {"deep_supervision": True} if self.deep_supervision else {}
        return {**extra, **{
            "iterations": self.iterations,
            "epoch_length": self.epoch_length,
            "batch_size": self.batch_size,
            "patch_size": self.patch_size,
            "image_size": self.image_size,
            "n_cases": self.n_cases,
            "spatial_dims": self.spatial_dims,
            "model_size": self.model_size,
            "arch": self.arch,
            "plateau_patience": self.plateau_patience,
            "val_fraction": self.val_fraction,
            "test_fraction": self.test_fraction,
            "overlap": self.overlap,
            "tolerance": self.tolerance,
            "seed": self.seed,
        }}


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------


def _loader_specs(cfg: BenchConfig) -> List[dict]:
    specs = []
    for name in cfg.tasks:
        specs.append(
            {
                "kind": "synthetic",
                "name": name,
                "n_cases": cfg.n_cases,
                "spatial_dims": cfg.spatial_dims or 2,
                "size": cfg.image_size,
                "seed": cfg.seed,
            }
        )
    for path in cfg.data:
        specs.append({"kind": "path", "path": str(Path(path).resolve()), "spatial_dims": cfg.spatial_dims})
    return specs


def _split(dataset, cfg: BenchConfig) -> dict:
    from .data import split_cases

    ids = dataset.case_ids
    if len(ids) < 2:
        raise ValueError(f"task {dataset.name!r}: at least 2 cases are needed (train + test), got {len(ids)}")
    train, test = split_cases(ids, cfg.test_fraction, seed=cfg.seed)
    val: List[str] = []
    if cfg.val_fraction > 0 and len(train) >= 3:
        train, val = split_cases(train, cfg.val_fraction, seed=cfg.seed + 1)
    return {"train": train, "val": val, "test": test}


def _display_slices(dataset, case_ids):
    from .data import display_slice

    out = []
    for cid in case_ids:
        case = dataset[cid]
        axis, idx = display_index(dataset, case)
        if axis < 0:
            pic, lab = display_slice(case)
        else:
            pic, lab = display_slice(case, axis=axis, index=idx)
        out.append((cid, axis, idx, pic, lab))
    return out


def _patch_size(dataset, cfg: BenchConfig) -> Tuple[int, ...]:
    from .model import round_patch, size_divisor

    dims = dataset.train_dims
    div = size_divisor(cfg.model_size, cfg.arch)
    if cfg.patch_size:
        patch = (int(cfg.patch_size),) * dims
    else:  # whole (largest) training image
        shapes = [c.spatial_shape for c in dataset.cases]
        if dims < dataset.spatial_dims:
            shapes = [
                tuple(s for a, s in enumerate(sh) if a != dataset.slice_axis_of(c))
                for sh, c in zip(shapes, dataset.cases)
            ]
        patch = tuple(max(sh[a] for sh in shapes) for a in range(dims))
    return round_patch(patch, div)


def _task_info(dataset, split: dict) -> dict:
    ratios = {}
    try:
        ratios = {k: (v if math.isfinite(v) else None) for k, v in dataset.class_ratios().items()}
    except Exception as exc:  # pragma: no cover - informative only (the report shows "?"), but said
        warnings.warn(f"task {dataset.name!r}: class ratios not computed ({type(exc).__name__}: {exc})", stacklevel=2)
    return {
        "task": dataset.name,
        "label_names": list(dataset.label_names),
        "num_classes": dataset.num_classes,
        "in_channels": dataset.in_channels,
        "spatial_dims": dataset.spatial_dims,
        "train_dims": dataset.train_dims,
        "source": dataset.source,
        "description": dataset.description,
        "class_ratios": ratios,
        "split": split,
        "n_cases": len(dataset),
    }


# ----------------------------------------------------------------------------------------------
# One run
# ----------------------------------------------------------------------------------------------


def _train_config(cfg: BenchConfig, lr: float, patch: Tuple[int, ...]):
    from .train import TrainConfig

    return TrainConfig(
        lr=float(lr),
        iterations=int(cfg.iterations),
        epoch_length=int(cfg.epoch_length),
        batch_size=int(cfg.batch_size),
        patch_size=tuple(patch),
        plateau_patience=int(cfg.plateau_patience),
        model_size=cfg.model_size,
        arch=cfg.arch,
        seed=int(cfg.seed),
        device=cfg.device,
        overlap=float(cfg.overlap),
        validate_every_epoch=cfg.validate_every_epoch,
        deep_supervision=bool(cfg.deep_supervision),
    )


def _topology_metrics(dataset, cfg: BenchConfig) -> bool:
    """Whether the test cases of ``dataset`` get the topology metrics (see ``BenchConfig``)."""
    if cfg.topology_metrics is not None:
        return bool(cfg.topology_metrics)
    from .synthetic import TASKS

    spec = TASKS.get(dataset.name)
    return bool(spec is not None and spec.topology and str(dataset.source).startswith("synthetic:"))


# ----------------------------------------------------------------------------------------------
# The grid
# ----------------------------------------------------------------------------------------------


def _environment(cfg: BenchConfig) -> dict:
    import torch

    import seglosses

    env = {
        "seglosses": getattr(seglosses, "__version__", "?"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": cfg.device,
    }
    try:
        import monai

        env["monai"] = monai.__version__
    except ImportError:  # pragma: no cover
        pass
    if cfg.device.startswith("cuda"):
        env["gpu"] = torch.cuda.get_device_name(torch.device(cfg.device))
    return env


def _check_protocol(store: ResultStore, cfg: BenchConfig) -> None:
    stored = store.get_meta("protocol")
    n_runs = store.conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    if n_runs and not cfg.resume:
        raise ValueError(
            f"{store.path} already holds {n_runs} run(s); pass --resume to continue that benchmark, "
            "or choose another --out"
        )
    current = json.loads(json.dumps(cfg.protocol()))
    if stored is not None and stored != current:
        diffs = [
            f"{k}: stored {stored.get(k)!r}, now {current.get(k)!r}"
            for k in sorted(set(stored) | set(current))
            if stored.get(k) != current.get(k)
        ]
        raise ValueError(
            f"{store.path} was run with a different protocol ({'; '.join(diffs)}); resume with the same settings "
            "or choose another --out"
        )
    store.set_meta("protocol", current)


def _plan_jobs(cfg: BenchConfig, store: ResultStore, datasets) -> Tuple[List[dict], int]:
    """Split every task (stored, and saved as ``OUT/splits/TASK.json``) and list the jobs of the
    grid not yet in ``store``: ``(jobs, number skipped as already stored)``. One job per
    (task, loss, lr); a stored loss of the same name with another spec or options is an error."""
    splits_dir = Path(cfg.out) / "splits"
    splits_dir.mkdir(parents=True, exist_ok=True)
    jobs = []
    done = store.finished_runs()
    skipped = 0
    for spec, ds in datasets:
        split = _split(ds, cfg)
        store.put_task(_task_info(ds, split), _display_slices(ds, split["test"]))
        (splits_dir / f"{ds.name}.json").write_text(
            json.dumps({"seed": cfg.seed, **split}, indent=2) + "\n"
        )
        patch = _patch_size(ds, cfg)
        topology = _topology_metrics(ds, cfg)
        for loss in cfg.losses:
            for lr in cfg.lrs:
                key = (ds.name, loss.name, float(lr), int(cfg.seed))
                previous = done.get(key)
                if previous is not None:
                    if previous["spec"] != loss.spec or previous["options"] != json.loads(
                        loss.options_json()
                    ):
                        raise ValueError(
                            f"{store.path}: loss {loss.name!r} of task {ds.name!r} was run as {previous['spec']} "
                            f"{previous['options']}, now {loss.spec} {loss.options}; rename it or use another --out"
                        )
                    if not (cfg.retry_failed and previous["status"] == "failed"):
                        skipped += 1
                        continue
                jobs.append(
                    {
                        "task": ds.name,
                        "loader": spec,
                        "loss": loss.to_dict(),
                        "lr": float(lr),
                        "split": split,
                        "train": _train_config(cfg, lr, patch).to_dict(),
                        "tolerance": cfg.tolerance,
                        "replace": previous["run_id"] if previous is not None else None,
                        **({"topology": True} if topology else {}),
                    }
                )
    return jobs, skipped


def run_bench(cfg: BenchConfig, log=print) -> dict:
    """Run the grid; return ``{"out", "ran", "skipped", "failed", "seconds", "report"}``.

    ``report`` is None: the runner does not write the report (``cfg.report`` is for the caller,
    :func:`seglosses.bench.cli.bench`).
    """
    from tqdm.auto import tqdm

    from .train import resolve_device

    cfg.device = resolve_device(cfg.device)
    get_executor(cfg.executor)  # an unknown name is an error before any work
    if cfg.executor == "ray":  # a missing Ray is an error before any work
        from .executors.ray import import_ray

        import_ray()
    if cfg.threads:
        import torch

        # one thread per run by default: on a shared 2-core machine, 2 OpenMP threads per op were
        # measured 4-12x SLOWER than 1 (oversubscription); use --workers for parallelism
        torch.set_num_threads(int(cfg.threads))
    if not cfg.losses:
        raise ValueError("no loss to run (--losses is empty)")
    if not cfg.lrs or any(not (lr > 0) for lr in cfg.lrs):
        raise ValueError(f"--lrs: expected positive learning rates, got {cfg.lrs}")
    if not cfg.tasks and not cfg.data:
        raise ValueError("no task: give built-in --tasks or --data PATH")
    t_start = time.perf_counter()
    out = Path(cfg.out)

    # Load and validate every dataset before any training (errors name the file).
    loaders = _loader_specs(cfg)
    datasets = []
    for spec in loaders:
        ds = load_task(spec)
        datasets.append((spec, ds))
    names = [ds.name for _, ds in datasets]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"two datasets share the task name(s) {dup}; rename a data folder")

    store = ResultStore(out, create=True)
    try:
        _check_protocol(store, cfg)
        store.set_meta("environment", _environment(cfg))
        store.set_meta(
            "last_command",
            {"preset": cfg.preset, "argv": sys.argv[1:], "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
        )
        jobs, skipped = _plan_jobs(cfg, store, datasets)
        by_name = {ds.name: ds for _, ds in datasets}
        if skipped:
            log(f"resume: {skipped} run(s) already in {store.path}, skipped")
        failed = 0
        grid = tqdm(
            total=len(jobs), desc="grid", unit="run", disable=not cfg.progress, dynamic_ncols=True, position=0
        )

        def record(job, result):
            nonlocal failed
            run = result["run"]
            store.record_run(
                run,
                result["metrics"],
                result["curves"],
                result["predictions"],
                replace_run_id=job.get("replace"),
            )
            if run["status"] == "failed":
                failed += 1
                grid.write(f"[{run['task']} / {run['loss']} / lr {run['lr']:g}] FAILED: {run.get('reason')}")
            grid.update(1)

        chosen = get_executor(cfg.executor)
        name = cfg.executor if chosen.always or (cfg.workers > 1 and len(jobs) > 1) else "local"
        executor = get_executor(name)(
            **get_executor(name).options(cfg),
            workers=cfg.workers,
            threads=int(cfg.threads) if cfg.threads else 1,
            datasets=by_name,
            progress=cfg.progress,
            on_start=lambda job: grid.set_postfix_str(
                f"{job['task']} / {job['loss']['name']} / lr {job['lr']:g}"
            ),
        )
        outcomes = executor.run(jobs)
        try:
            for job, outcome in outcomes:
                record(job, failed_result(job, outcome) if isinstance(outcome, BaseException) else outcome)
        finally:
            outcomes.close()  # an early exit cancels the executor (Executor.run)
        grid.close()
        for line in summary_lines(store):
            log(line)
    finally:
        store.close()
    return {
        "out": str(out),
        "ran": len(jobs),
        "skipped": skipped,
        "failed": failed,
        "seconds": time.perf_counter() - t_start,
        "report": None,
    }
