"""One benchmark run as a pure function of its job description.

A *job* is a JSON-able dict that says everything about one run: ``task`` (name), ``loader``
(how to load the task's data: a built-in task or a path, and ``train_dims`` when the plan trains
a 3-D task on 2-D slices, see :func:`load_task`), ``loss`` (:meth:`LossConfig.to_dict`), ``lr``,
``fold`` (the cross-validation fold, 0 for the single split), ``split`` (train / val / test case
ids of that fold), ``train`` (:meth:`TrainConfig.to_dict`, with the training ``seed``), ``tolerance`` (NSD, mm) and ``replace`` (the run id a retried
failed run replaces; only the driver reads it).

:func:`execute_run` turns a job and its task's data into a *result*: ``{"run": row, "metrics":
[...], "curves": [...], "predictions": [...]}``, ready for
:meth:`seglosses.bench.store.ResultStore.record_run`. It never raises for a failing loss (NaN
loss, exception): the result is then a failed run with its reason. Executors
(:mod:`seglosses.bench.executors`) call it wherever they run jobs; only the driver writes results.
"""

from __future__ import annotations

import json
import time
import traceback
from pathlib import Path
from typing import Dict, Tuple

import numpy as np

from .presets import LossConfig

__all__ = ["load_task", "display_index", "execute_run", "execute_in_worker", "failed_result"]


def load_task(spec: dict):
    """A :class:`~seglosses.bench.data.Dataset` from a loader spec (built-in task or path)."""
    if spec["kind"] == "synthetic":
        from .synthetic import make_task

        return _with_train_dims(
            make_task(
                spec["name"],
                n_cases=spec["n_cases"],
                spatial_dims=spec["spatial_dims"],
                size=spec.get("size"),
                seed=spec["seed"],
            ),
            spec,
        )
    from .data_layouts import load_dataset

    path = Path(spec["path"])
    if not path.exists():
        raise FileNotFoundError(f"--data: {path} does not exist")
    dims = spec.get("spatial_dims")
    return _with_train_dims(load_dataset(path, spatial_dims=dims), spec)


def _with_train_dims(dataset, spec: dict):
    """A 3-D task that the plan trains on 2-D slices (``spec["train_dims"] == 2``)."""
    dims = spec.get("train_dims")
    if dims and dims != dataset.train_dims:
        from dataclasses import replace

        return replace(dataset, train_dims=int(dims))
    return dataset


def display_index(dataset, case) -> Tuple[int, int]:
    """``(axis, index)`` of the slice shown for a case (-1, -1 for a 2D case)."""
    if case.spatial_dims == 2:
        return -1, -1
    axis = dataset.slice_axis_of(case)
    fg = np.nonzero(case.label)
    index = int(round(fg[axis].mean())) if fg[axis].size else case.label.shape[axis] // 2
    return axis, index


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def execute_run(job: dict, dataset, progress=None) -> dict:
    """Train and evaluate one (task, loss, lr); never raises for a failing loss.

    Returns a dict with ``run`` (the runs row), ``metrics``, ``curves`` and ``predictions``
    (display slices), ready for :meth:`ResultStore.record_run`. ``progress(i, info)`` is called
    after every training iteration (a progress bar; it may raise to abandon the run).
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
        "fold": int(job.get("fold", 0)),
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
            topology=bool(job.get("topology", False)),
        )
        run["eval_seconds"] = time.perf_counter() - t1
        result["metrics"] = rows
        for case in test_cases:
            axis, idx = display_index(dataset, case)
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


def failed_result(job: dict, error: BaseException) -> dict:
    """The result of a job whose worker failed outside :func:`execute_run` (a crashed process):
    a failed run whose reason names the error, no metrics."""
    return {
        "run": {
            "task": job["task"],
            "loss": job["loss"]["name"],
            "spec": job["loss"]["spec"],
            "options": job["loss"]["options"],
            "lr": job["lr"],
            "seed": job["train"]["seed"],
            "fold": int(job.get("fold", 0)),
            "status": "failed",
            "reason": f"worker error: {type(error).__name__}: {error}",
            "config": {"train": job["train"]},
        },
        "metrics": [],
        "curves": [],
        "predictions": [],
    }


# per-process dataset cache of out-of-process workers: each task is loaded once per worker
_WORKER_DATASETS: Dict[str, object] = {}


def execute_in_worker(job: dict) -> dict:
    """:func:`execute_run` in a worker that has no data yet: load the job's task (once per
    process, keyed by its loader spec), then run. Picklable (a module-level function)."""
    key = json.dumps(job["loader"], sort_keys=True)
    if key not in _WORKER_DATASETS:
        _WORKER_DATASETS[key] = load_task(job["loader"])
    return execute_run(job, _WORKER_DATASETS[key])
