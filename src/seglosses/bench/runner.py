"""The benchmark grid: tasks x loss configurations x learning rates, trained, evaluated, stored.

:func:`run_bench` is what ``seglosses bench`` calls. For each task it loads or generates the data,
splits the cases (test 20 %, then validation 20 % of the rest, seeded), stores the split, and
runs every (loss, learning rate) pair not yet in ``OUT/results.sqlite``: train
(:func:`seglosses.bench.train.train_run`), evaluate on the test cases
(:func:`seglosses.bench.evaluate.evaluate_model`), then write the run in one transaction. A run
that fails (NaN/inf loss, exception) is stored as failed with the reason and the grid goes on.
At the end it prints a summary table and writes the report.

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
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from .presets import LossConfig, Preset
from .store import ResultStore

__all__ = ["BenchConfig", "run_bench", "select_runs", "load_task", "plan_grid"]


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
    threads: Optional[int] = 1
    report: bool = True
    progress: bool = True
    validate_every_epoch: bool = True

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
        )
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**base)

    def protocol(self) -> dict:
        """The settings every run of one OUT folder must share (checked on ``--resume``)."""
        return {
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
        }


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


def load_task(spec: dict):
    """A :class:`~seglosses.bench.data.Dataset` from a loader spec (built-in task or path)."""
    if spec["kind"] == "synthetic":
        from .synthetic import make_task

        return make_task(
            spec["name"],
            n_cases=spec["n_cases"],
            spatial_dims=spec["spatial_dims"],
            size=spec.get("size"),
            seed=spec["seed"],
        )
    from .data import load_dataset

    path = Path(spec["path"])
    if not path.exists():
        raise FileNotFoundError(f"--data: {path} does not exist")
    dims = spec.get("spatial_dims")
    return load_dataset(path, spatial_dims=dims)


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


def _display_index(dataset, case) -> Tuple[int, int]:
    """``(axis, index)`` of the slice shown for a case (-1, -1 for a 2D case)."""
    if case.spatial_dims == 2:
        return -1, -1
    axis = dataset.slice_axis_of(case)
    fg = np.nonzero(case.label)
    index = int(round(fg[axis].mean())) if fg[axis].size else case.label.shape[axis] // 2
    return axis, index


def _display_slices(dataset, case_ids):
    from .data import display_slice

    out = []
    for cid in case_ids:
        case = dataset[cid]
        axis, idx = _display_index(dataset, case)
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
    except Exception:  # pragma: no cover - statistics are informative only
        pass
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
    )


def execute_run(job: dict, dataset, progress=None) -> dict:
    """Train and evaluate one (task, loss, lr); never raises for a failing loss.

    Returns a dict with ``run`` (the runs row), ``metrics``, ``curves`` and ``predictions``
    (display slices), ready for :meth:`ResultStore.record_run`.
    """
    from .evaluate import evaluate_model
    from .train import NonFiniteLoss, TrainConfig, train_run

    loss_cfg = LossConfig(**job["loss"])
    tcfg = TrainConfig(**{**job["train"], "patch_size": tuple(job["train"]["patch_size"])})
    split = job["split"]
    train_ds = dataset.subset(split["train"])
    train_cases = train_ds.training_cases()
    val_cases = [dataset[c] for c in split["val"]]
    test_cases = [dataset[c] for c in split["test"]]
    run = {
        "task": job["task"],
        "loss": loss_cfg.name,
        "spec": loss_cfg.spec,
        "options": loss_cfg.options,
        "lr": tcfg.lr,
        "seed": tcfg.seed,
        "iterations": tcfg.iterations,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": {
            "train": tcfg.to_dict(),
            "loss": loss_cfg.to_dict(),
            "tolerance": job["tolerance"],
            "torch_threads": _torch_threads(),
            "task_source": dataset.source,
        },
    }
    result = {"run": run, "metrics": [], "curves": [], "predictions": []}
    t0 = time.perf_counter()
    try:
        trained = train_run(
            train_cases,
            val_cases,
            loss_cfg,
            tcfg,
            num_classes=dataset.num_classes,
            in_channels=dataset.in_channels,
            train_dims=dataset.train_dims,
            slice_axis_of=dataset.slice_axis_of,
            progress=progress,
        )
        run["train_seconds"] = time.perf_counter() - t0
        run["iterations_done"] = trained.iterations_done
        run["val_dice"] = trained.val_dice
        run["config"]["stages"] = trained.stages
        result["curves"] = trained.curves
        t1 = time.perf_counter()
        rows, preds = evaluate_model(
            trained.model,
            test_cases,
            num_classes=dataset.num_classes,
            label_names=dataset.label_names,
            patch_size=tcfg.patch_size,
            train_dims=dataset.train_dims,
            slice_axis_of=dataset.slice_axis_of,
            device=tcfg.device,
            tolerance=job["tolerance"],
            overlap=tcfg.overlap,
        )
        run["eval_seconds"] = time.perf_counter() - t1
        result["metrics"] = rows
        for case in test_cases:
            axis, idx = _display_index(dataset, case)
            pred = preds[case.case_id]
            result["predictions"].append(
                (case.case_id, axis, idx, pred if axis < 0 else np.take(pred, idx, axis=axis))
            )
        run["status"] = "finished"
    except NonFiniteLoss as exc:
        run.update(
            status="failed",
            reason=str(exc),
            train_seconds=time.perf_counter() - t0,
            iterations_done=getattr(exc, "iterations_done", None),
        )
        result["curves"] = list(getattr(exc, "curves", []))
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # a failing loss must not stop the grid
        run.update(
            status="failed", reason=f"{type(exc).__name__}: {exc}", train_seconds=time.perf_counter() - t0
        )
        run["config"]["traceback"] = traceback.format_exc(limit=8)
    run["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    return result


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


# worker-process state (``--workers``): datasets are loaded once per worker
_WORKER_DATASETS: Dict[str, object] = {}


def _worker_init(threads: int) -> None:
    import torch

    torch.set_num_threads(max(1, threads))


def _worker_execute(job: dict) -> dict:
    key = json.dumps(job["loader"], sort_keys=True)
    if key not in _WORKER_DATASETS:
        _WORKER_DATASETS[key] = load_task(job["loader"])
    return execute_run(job, _WORKER_DATASETS[key])


# ----------------------------------------------------------------------------------------------
# The grid
# ----------------------------------------------------------------------------------------------


def plan_grid(cfg: BenchConfig) -> List[Tuple[str, LossConfig, float]]:
    """``[(task, loss, lr)]`` in run order, for built-in task names (data tasks are named on load)."""
    return [(t, loss, lr) for t in cfg.tasks for loss in cfg.losses for lr in cfg.lrs]


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


def _fmt(v, digits=3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return f"{v:.{digits}f}"


def _seconds(v) -> float:
    return 0.0 if v is None or v != v else float(v)


def summary_lines(store: ResultStore) -> List[str]:
    """The end-of-grid summary: one line per run (selected learning rate marked with *)."""
    runs = store.runs_frame()
    if runs.empty:
        return ["no runs stored"]
    metrics = store.metrics_frame()
    per_run = (
        metrics.groupby("run_id").agg(dsc=("dsc", "mean"), nsd=("nsd", "mean"), hd95=("hd95", "median"))
        if not metrics.empty
        else None
    )
    selected = set(select_runs(runs)["run_id"]) if not runs.empty else set()
    lines = [
        f"{'task':<12} {'loss':<22} {'lr':>8} {'status':<8} {'val DSC':>7} {'DSC':>6} {'NSD':>6} {'HD95 md':>7} {'time':>7}"
    ]
    for _, r in runs.sort_values(["task", "loss", "lr"]).iterrows():
        m = per_run.loc[r.run_id] if per_run is not None and r.run_id in per_run.index else None
        mark = (
            "*"
            if r.run_id in selected and len(runs[(runs.task == r.task) & (runs.loss == r.loss)]) > 1
            else " "
        )
        secs = _seconds(r.train_seconds) + _seconds(r.eval_seconds)
        lines.append(
            f"{r.task:<12} {r.loss:<22} {r.lr:>8.0e}{mark}{r.status:<8} {_fmt(r.val_dice):>7} "
            f"{_fmt(None if m is None else m['dsc']):>6} {_fmt(None if m is None else m['nsd']):>6} "
            f"{_fmt(None if m is None else m['hd95'], 2):>7} {secs:>6.0f}s"
        )
        if r.status == "failed":
            lines.append(f"{'':<12}   failed: {r.reason}")
    return lines


def select_runs(runs):
    """Per (task, loss): the run whose learning rate is picked (best validation Dice; a finished
    run beats a failed one; ties -> larger learning rate). Returns the selected rows."""

    if runs.empty:
        return runs
    df = runs.copy()
    df["_ok"] = (df["status"] == "finished").astype(int)
    df["_vd"] = df["val_dice"].fillna(-1.0)
    df = df.sort_values(["task", "loss", "_ok", "_vd", "lr"], ascending=[True, True, False, False, False])
    out = df.groupby(["task", "loss"], sort=False).head(1).drop(columns=["_ok", "_vd"])
    return out.reset_index(drop=True)


def run_bench(cfg: BenchConfig, log=print) -> dict:
    """Run the grid; return ``{"out", "ran", "skipped", "failed", "seconds"}``."""
    from tqdm.auto import tqdm

    from .train import resolve_device

    cfg.device = resolve_device(cfg.device)
    if cfg.executor not in ("thread", "process"):
        raise ValueError(f"--executor: expected 'thread' or 'process', got {cfg.executor!r}")
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
        splits_dir = out / "splits"
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
            for loss in cfg.losses:
                for lr in cfg.lrs:
                    key = (ds.name, loss.name, float(lr), 0, int(cfg.seed))
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
                        }
                    )
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

        bars = _Bars(cfg.progress, max(1, cfg.workers))
        try:
            if cfg.workers > 1 and len(jobs) > 1 and cfg.executor == "process":
                _run_processes(jobs, cfg, record)
            elif cfg.workers > 1 and len(jobs) > 1:
                _run_threads(jobs, cfg, by_name, record, bars)
            else:
                for job in jobs:
                    grid.set_postfix_str(f"{job['task']} / {job['loss']['name']} / lr {job['lr']:g}")
                    slot, progress = bars.open(job)
                    try:
                        result = execute_run(job, by_name[job["task"]], progress)
                    finally:
                        bars.close(slot)
                    record(job, result)
        finally:
            bars.close_all()
        grid.close()
        for line in summary_lines(store):
            log(line)
    finally:
        store.close()
    report_paths = None
    if cfg.report:
        from .report import write_report

        report_paths = write_report(out)
        log(f"report: {report_paths['html']} and {report_paths['md']}")
    return {
        "out": str(out),
        "ran": len(jobs),
        "skipped": skipped,
        "failed": failed,
        "seconds": time.perf_counter() - t_start,
        "report": report_paths,
    }


class _Bars:
    """Per-run tqdm bars (iterations, loss, ETA), one screen line per concurrent run."""

    def __init__(self, enabled: bool, slots: int):
        import threading

        self.enabled, self.free = enabled, list(range(1, slots + 1))
        self.open_bars: Dict[int, object] = {}
        self.lock = threading.Lock()

    def open(self, job: dict):
        from tqdm.auto import tqdm

        with self.lock:
            slot = self.free.pop(0) if self.free else 1
            bar = tqdm(
                total=job["train"]["iterations"],
                desc=f"{job['task']}:{job['loss']['name']}",
                unit="it",
                leave=False,
                disable=not self.enabled,
                dynamic_ncols=True,
                position=slot,
            )
            self.open_bars[slot] = bar

        def progress(i, info, bar=bar):
            bar.update(1)
            if i % 5 == 0:
                bar.set_postfix(loss=f"{info['loss']:.4f}", lr=f"{info['lr']:.0e}", refresh=False)

        return slot, progress

    def close(self, slot: int) -> None:
        with self.lock:
            bar = self.open_bars.pop(slot, None)
            if bar is not None:
                bar.close()
            self.free.append(slot)
            self.free.sort()

    def close_all(self) -> None:
        for slot in list(self.open_bars):
            self.close(slot)


def _run_threads(jobs: List[dict], cfg: BenchConfig, by_name: dict, record, bars: _Bars) -> None:
    """``--workers N`` (default executor): N runs at once in threads of this process.

    Each run uses one torch CPU thread (``--threads``), so N runs keep N cores busy; torch
    releases the GIL inside its kernels. Model initialisation is serialised (a lock around
    seeding and building, :func:`seglosses.bench.train.train_run`), so results do not depend on
    N. Only this (main) thread writes to SQLite, as each run completes.
    """
    import threading
    from concurrent.futures import ThreadPoolExecutor

    stop = threading.Event()

    def work(job):
        if stop.is_set():
            raise _Cancelled()
        slot, progress = bars.open(job)

        def checked(i, info):
            if stop.is_set():  # the main thread was interrupted: abandon this run (nothing is written)
                raise _Cancelled()
            progress(i, info)

        try:
            return execute_run(job, by_name[job["task"]], checked)
        finally:
            bars.close(slot)

    pool = ThreadPoolExecutor(max_workers=cfg.workers, thread_name_prefix="seglosses-run")
    pending = {pool.submit(work, job): job for job in jobs}
    try:
        while pending:
            finished, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for fut in finished:
                record(pending.pop(fut), fut.result())
    except BaseException:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


class _Cancelled(BaseException):
    """Raised inside a worker thread to abandon its run when the grid is interrupted."""


def _run_processes(jobs: List[dict], cfg: BenchConfig, record) -> None:
    """``--workers N --executor process``: runs in N spawned processes (each loads the data once);
    only this (parent) process writes to SQLite. No per-run progress bars."""
    import multiprocessing as mp

    threads = int(cfg.threads) if cfg.threads else 1
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=cfg.workers, mp_context=ctx, initializer=_worker_init, initargs=(threads,)
    ) as pool:
        pending = {pool.submit(_worker_execute, job): job for job in jobs}
        while pending:
            finished, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for fut in finished:
                job = pending.pop(fut)
                try:
                    result = fut.result()
                except Exception as exc:  # a crashed worker: record the run as failed
                    result = {
                        "run": {
                            "task": job["task"],
                            "loss": job["loss"]["name"],
                            "spec": job["loss"]["spec"],
                            "options": job["loss"]["options"],
                            "lr": job["lr"],
                            "seed": cfg.seed,
                            "status": "failed",
                            "reason": f"worker error: {type(exc).__name__}: {exc}",
                            "config": {"train": job["train"]},
                        },
                        "metrics": [],
                        "curves": [],
                        "predictions": [],
                    }
                record(job, result)
