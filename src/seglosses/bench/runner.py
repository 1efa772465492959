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
  overwritten). With ``--resume``, every (task, loss, lr, fold, seed) already stored -- finished
  *or* failed -- is skipped; ``--retry-failed`` runs the failed ones again (the old row is replaced in
  the same transaction as the new one is written).
* The protocol (iterations, patch size, batch, model, data, split fractions, seed, tolerance,
  ...) is stored on the first run; resuming with a different protocol is refused, with the
  differences listed. New tasks, losses, learning rates, folds (``--fold``) and seeds
  (``--seeds``) may be added on resume; the number of folds (``--folds``) and the budget are part
  of the protocol, and a task's stored plan (iterations, patch, batch, 2-D/3-D) is reused.

Plan, folds and seeds (docs/evidence.md)
----------------------------------------
Before any training every task is fingerprinted and planned (:func:`seglosses.bench.plan.bench_plans`:
a short timing probe gives the ETA; ``--budget`` fits the grid into a wall time), the plan is
printed and saved (``OUT/plan.json`` and the store's ``plans`` meta). One job per (task, loss,
lr, fold, seed): ``fold`` indexes the K-fold split by case (:func:`seglosses.bench.data.fold_split`;
fold 0 of 1 is the single split), ``seed`` is the training seed (initialisation and sampling;
the split always uses ``--seed``).

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
    #: K-fold cross-validation (None: the planner's choice, a single split without a budget)
    folds: Optional[int] = None
    #: ``--fold F``: only these folds (None: all)
    run_folds: Optional[List[int]] = None
    #: training seeds (None: ``[seed]``)
    seeds: Optional[List[int]] = None
    #: ``--budget`` in seconds for the whole grid (None: no budget)
    budget: Optional[float] = None
    #: ``--plan``: print the plan and return before training
    plan_only: bool = False
    #: ``--yes``: no confirmation before a long CPU grid
    yes: bool = False
    #: settings given explicitly on the command line (never changed by the planner)
    explicit: List[str] = field(default_factory=list)

    @property
    def training_seeds(self) -> List[int]:
        return [int(s) for s in (self.seeds or [self.seed])]

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
        ``deep_supervision``, ``folds`` and ``budget`` appear only when set (folders made before
        they existed resume)."""
        extra = {"deep_supervision": True} if self.deep_supervision else {}
        if self.folds is not None:
            extra["folds"] = self.folds
        if self.budget is not None:
            extra["budget"] = self.budget
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


def _task_split(dataset, cfg: BenchConfig, folds: int) -> Tuple[dict, List[dict]]:
    """``(stored split, [split of each fold])``. One fold: the single split, stored as
    ``{"train", "val", "test"}`` exactly as before folds existed; K folds: ``{"folds": K, "seed",
    "test": every case, "per_fold": [...]}`` (every case is a test case of one fold)."""
    from .data import fold_split

    ids = dataset.case_ids
    if len(ids) < 2:
        raise ValueError(f"task {dataset.name!r}: at least 2 cases are needed (train + test), got {len(ids)}")
    per_fold = [
        fold_split(ids, folds, f, seed=cfg.seed, test_fraction=cfg.test_fraction, val_fraction=cfg.val_fraction)
        for f in range(folds)
    ]
    if folds == 1:
        return per_fold[0], per_fold
    return {"folds": folds, "seed": cfg.seed, "test": sorted(ids), "per_fold": per_fold}, per_fold


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


def _train_config(cfg: BenchConfig, lr: float, plan, seed: int):
    """The training settings of one run: the task's plan (iterations, batch, patch) and the seed."""
    from .train import TrainConfig

    return TrainConfig(
        lr=float(lr),
        iterations=int(plan.iterations),
        epoch_length=int(cfg.epoch_length),
        batch_size=int(plan.batch),
        patch_size=tuple(plan.patch),
        plateau_patience=int(cfg.plateau_patience),
        model_size=cfg.model_size,
        arch=cfg.arch,
        seed=int(seed),
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


def _plan_jobs(cfg: BenchConfig, store: ResultStore, datasets, plans: dict) -> Tuple[List[dict], int]:
    """Split every task (stored, and saved as ``OUT/splits/TASK.json``) and list the jobs of the
    grid not yet in ``store``: ``(jobs, number skipped as already stored)``. One job per
    (task, loss, lr, fold, seed) with the task's plan; a stored loss of the same name with another
    spec or options is an error."""
    splits_dir = Path(cfg.out) / "splits"
    splits_dir.mkdir(parents=True, exist_ok=True)
    jobs = []
    done = store.finished_runs()
    skipped = 0
    for spec, ds in datasets:
        plan = plans[ds.name]
        split, per_fold = _task_split(ds, cfg, plan.folds)
        store.put_task(_task_info(ds, split), _display_slices(ds, split["test"]))
        (splits_dir / f"{ds.name}.json").write_text(
            json.dumps({"seed": cfg.seed, **split}, indent=2) + "\n"
        )
        loader = dict(spec)
        if plan.train_dims != ds.spatial_dims:
            loader["train_dims"] = plan.train_dims
        topology = _topology_metrics(ds, cfg)
        for loss in cfg.losses:
            for lr in cfg.lrs:
                for fold in plan.run_folds:
                    for seed in cfg.training_seeds:
                        key = (ds.name, loss.name, float(lr), int(fold), int(seed))
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
                                "loader": loader,
                                "loss": loss.to_dict(),
                                "lr": float(lr),
                                "fold": int(fold),
                                "split": per_fold[fold],
                                "train": _train_config(cfg, lr, plan, seed).to_dict(),
                                "tolerance": cfg.tolerance,
                                "replace": previous["run_id"] if previous is not None else None,
                                **({"topology": True} if topology else {}),
                            }
                        )
    return jobs, skipped


def _stored_plans(cfg: BenchConfig) -> dict:
    """The plans stored in ``OUT`` by an earlier run of this grid (only read on ``--resume``)."""
    from .store import DB_NAME, open_results

    if not cfg.resume or not (Path(cfg.out) / DB_NAME).exists():
        return {}
    store = open_results(cfg.out)
    try:
        return dict(store.get_meta("plans") or {})
    finally:
        store.close()


def run_bench(cfg: BenchConfig, log=print, confirm=None) -> dict:
    """Run the grid; return ``{"out", "ran", "skipped", "failed", "seconds", "report", "plans"}``.

    ``report`` is None: the runner does not write the report (``cfg.report`` is for the caller,
    :func:`seglosses.bench.cli.bench`). The plan of every task is printed first (``log``);
    ``cfg.plan_only`` returns right after it (nothing trained, nothing written). A CPU grid
    estimated at more than an hour calls ``confirm(question) -> bool`` unless ``cfg.yes`` (no
    ``confirm``: a warning is printed and the grid runs); a refusal returns with ``"aborted": True``.
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

    from dataclasses import replace as _replace

    from .plan import bench_plans, confirmation_message, format_duration, grid_seconds

    plans = bench_plans(cfg, datasets, stored=_stored_plans(cfg))
    for plan in plans.values():
        for line in plan.lines():
            log(line)
    total_eta = sum(p.eta_seconds for p in plans.values())
    if len(plans) > 1:
        log(f"ETA of the grid: {format_duration(total_eta)} (plus the report)")
    result = {"out": str(out), "ran": 0, "skipped": 0, "failed": 0, "report": None, "plans": plans}
    if cfg.plan_only:
        return {**result, "seconds": time.perf_counter() - t_start}
    question = None if cfg.yes else confirmation_message(plans, cfg.device)
    if question is not None:
        if confirm is None:
            log("warning: " + question.rsplit(" Continue?", 1)[0])
        elif not confirm(question):
            log("not started: give --budget (e.g. --budget 1h) or --yes")
            return {**result, "seconds": time.perf_counter() - t_start, "aborted": True}
    # a 3-D task the plan trains on 2-D slices
    datasets = [
        (spec, ds if plans[ds.name].train_dims == ds.train_dims else _replace(ds, train_dims=plans[ds.name].train_dims))
        for spec, ds in datasets
    ]

    store = ResultStore(out, create=True)
    try:
        _check_protocol(store, cfg)
        store.set_meta("environment", _environment(cfg))
        store.set_meta(
            "last_command",
            {"preset": cfg.preset, "argv": sys.argv[1:], "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
        )
        stored_plans = dict(store.get_meta("plans") or {})
        stored_plans.update({name: p.to_dict() for name, p in plans.items()})
        store.set_meta("plans", stored_plans)
        (out / "plan.json").write_text(json.dumps(stored_plans, indent=2) + "\n")
        jobs, skipped = _plan_jobs(cfg, store, datasets, plans)
        by_name = {ds.name: ds for _, ds in datasets}
        if skipped:
            log(f"resume: {skipped} run(s) already in {store.path}, skipped")
            per_task = {}
            for job in jobs:
                per_task[job["task"]] = per_task.get(job["task"], 0) + 1
            eta = sum(grid_seconds(plans[t].run_seconds, n, cfg.workers) for t, n in per_task.items())
            log(f"ETA of the {len(jobs)} run(s) left: {format_duration(eta)}")
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
                grid.write(
                    f"[{run['task']} / {run['loss']} / lr {run['lr']:g} / fold {run.get('fold', 0)} / seed {run['seed']}] "
                    f"FAILED: {run.get('reason')}"
                )
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
        "plans": plans,
    }
