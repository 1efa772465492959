"""The results layer: a results store (``OUT/results.sqlite``) read into tables.

Everything that *reads* benchmark results lives here, so the runner's end-of-grid summary, the
report, ``seglosses export`` and ``seglosses rank`` agree on what a result is:

* :func:`load_tables` -- the raw tables of a store (tasks, runs, per-case-and-class metrics,
  curves, meta), read once;
* :func:`select_runs` -- run selection: per (task, loss) the learning rate with the best
  validation Dice (Ma et al. 2021, 3.2), over the replicates of a configuration;
* :func:`case_table` -- one row per (method, task, case): the per-case metrics (mean over the
  foreground classes) of the selected runs, a failed configuration as NaN rows;
* :func:`load_results` -- all of the above plus display slices and predictions
  (:class:`Results`, what the report reads);
* :func:`export_csv` -- the CSV files of ``seglosses export``;
* :func:`summary_lines` -- the text summary printed at the end of ``seglosses bench``.

Replicates (folds and seeds)
----------------------------
A *configuration* is (task, loss, learning rate); its *replicates* are the runs that differ only
in the columns of :data:`REPLICATE_COLUMNS` present in the runs table (today ``seed``, one value
per OUT folder; ``fold`` when cross-validation lands). :func:`select_runs` scores a learning
rate by the mean validation Dice over its replicates (a configuration with a failed replicate
loses to one whose replicates all finished) and returns *every* replicate run of the picked
learning rate. With one replicate per configuration (today) this is exactly "the run with the
best validation Dice; a finished run beats a failed one; ties -> the larger learning rate".

This module imports only the store (:mod:`seglosses.bench.store`) and the metric names
(:mod:`seglosses.metrics.case`); the runner and the report import it, never the reverse.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import pandas as pd

from seglosses.metrics.case import METRIC_KEYS
from seglosses.metrics.topology import TOPOLOGY_KEYS

from .store import ResultStore, open_results

__all__ = [
    "CASE_COLUMNS",
    "REPLICATE_COLUMNS",
    "Tables",
    "Results",
    "load_tables",
    "select_runs",
    "case_table",
    "seed_case_table",
    "load_results",
    "export_csv",
    "summary_lines",
]

#: Per-case metric columns of :func:`case_table` and ``results.csv``: the metric names of
#: :data:`seglosses.metrics.case.METRIC_KEYS`, the ranked ones of Ma et al. (DSC, NSD, HD95) first,
#: then the :data:`seglosses.metrics.TOPOLOGY_KEYS` where a store has them (the ``vessels`` task).
CASE_COLUMNS = (
    ("dsc", "nsd", "hd95") + tuple(k for k in METRIC_KEYS if k not in ("dsc", "nsd", "hd95")) + TOPOLOGY_KEYS
)

#: Columns of the runs table that tell replicates of one (task, loss, lr) apart, where present.
REPLICATE_COLUMNS = ("fold", "seed")

#: The meta keys read by :func:`load_tables`.
META_KEYS = ("protocol", "environment", "last_command", "created_at", "recommendation")


@dataclass
class Tables:
    """The raw tables of one results store (see :mod:`seglosses.bench.store` for the columns)."""

    tasks: Dict[str, dict]
    runs: pd.DataFrame
    metrics: pd.DataFrame  # per case and foreground class, every run
    curves: pd.DataFrame
    meta: Dict[str, object]


@dataclass
class Results:
    """What the report needs, loaded once from the database (:func:`load_results`)."""

    out: Path
    tasks: Dict[str, dict]
    runs: pd.DataFrame  # all runs
    selected: pd.DataFrame  # the selected runs (one learning rate per task and loss)
    cases: pd.DataFrame  # :func:`case_table` of the selected runs (seeds averaged), NaN rows for failed ones
    curves: pd.DataFrame
    meta: Dict[str, object]
    display: Dict[str, Dict[str, dict]] = field(default_factory=dict)
    predictions: Dict[int, Dict[str, np.ndarray]] = field(default_factory=dict)
    #: :func:`seed_case_table` of the selected runs: one row per seed (seed stability)
    seed_cases: pd.DataFrame = field(default_factory=pd.DataFrame)


def _read_tables(store: ResultStore) -> Tables:
    return Tables(
        tasks=store.tasks(),
        runs=store.runs_frame(),
        metrics=store.metrics_frame(),
        curves=store.curves_frame(),
        meta={k: store.get_meta(k) for k in META_KEYS},
    )


def load_tables(out) -> Tables:
    """The tables of ``OUT/results.sqlite`` (opened read-only; errors name the file)."""
    store = open_results(out)
    try:
        return _read_tables(store)
    finally:
        store.close()


def select_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The selected runs: per (task, loss), every replicate run of the picked learning rate.

    The learning rate is picked by the mean validation Dice of its replicates (runs of the same
    task, loss and lr; see the module docstring); a learning rate whose replicates all finished
    beats one with a failure; ties -> the larger learning rate. Rows come back sorted by task,
    loss (and the replicate columns), with a fresh index.
    """
    if runs.empty:
        return runs
    df = runs.copy()
    keys = ["task", "loss", "lr"]
    df["_v"] = pd.to_numeric(df["val_dice"], errors="coerce")  # an all-NULL column reads as objects
    per_lr = df.groupby(keys, sort=False).agg(
        _ok=("status", lambda s: int((s == "finished").all())), _vd=("_v", "mean")
    )
    per_lr["_vd"] = per_lr["_vd"].fillna(-1.0)
    per_lr = per_lr.reset_index().sort_values(
        ["task", "loss", "_ok", "_vd", "lr"], ascending=[True, True, False, False, False], kind="mergesort"
    )
    picked = per_lr.groupby(["task", "loss"], sort=False).head(1)[keys]
    chosen = df.merge(picked, on=keys, how="inner")
    order = ["task", "loss"] + [c for c in REPLICATE_COLUMNS if c in chosen.columns]
    chosen = chosen.sort_values(order, kind="mergesort")
    return chosen[list(runs.columns)].reset_index(drop=True)


def _fold_test_cases(task_info: dict, fold) -> List[str]:
    """The test cases of one fold of a stored split (the single split: its ``test`` list)."""
    split = task_info.get("split", {}) if task_info else {}
    per_fold = split.get("per_fold")
    if per_fold:
        f = int(fold) if fold is not None and fold == fold else 0
        return list(per_fold[f]["test"]) if 0 <= f < len(per_fold) else []
    return list(split.get("test", []))


def seed_case_table(
    runs: pd.DataFrame, metrics: pd.DataFrame, tasks: Dict[str, dict], selected_only: bool = True
) -> pd.DataFrame:
    """One row per (method, task, case, seed): columns ``method, task, case, fold, seed, lr, status,
    run_id`` and :data:`CASE_COLUMNS` (mean over the foreground classes). With ``selected_only``
    the runs of :func:`select_runs`; a failed run gets one row per test case of its fold with NaN
    metrics. With K folds every case appears once per seed (in the fold that tested it)."""
    chosen = select_runs(runs) if selected_only else runs
    cols = [c for c in CASE_COLUMNS if c in metrics.columns]
    m = metrics[metrics["run_id"].isin(chosen["run_id"])]
    with np.errstate(all="ignore"):
        per_case = m.groupby(["run_id", "case_id"], sort=False)[cols].mean().reset_index()
    chosen = chosen.copy()
    if "fold" not in chosen.columns:
        chosen["fold"] = 0
    info = chosen.set_index("run_id")[["task", "loss", "lr", "status", "fold", "seed"]]
    per_case = per_case.join(info, on="run_id")
    frames = [per_case]
    for _, r in chosen.iterrows():
        if r.status != "finished" or not (per_case["run_id"] == r.run_id).any():
            test = _fold_test_cases(tasks.get(r.task, {}), r.fold)
            if test:
                frames.append(
                    pd.DataFrame(
                        {
                            "run_id": r.run_id,
                            "case_id": test,
                            "task": r.task,
                            "loss": r.loss,
                            "lr": r.lr,
                            "status": r.status,
                            "fold": r.fold,
                            "seed": r.seed,
                        }
                    )
                )
    out = pd.concat(frames, ignore_index=True)
    out = out.rename(columns={"loss": "method", "case_id": "case"})
    out["fold"] = out["fold"].astype(int)
    out["seed"] = out["seed"].astype(int)
    return out[["method", "task", "case", "fold", "seed", "lr", "status", "run_id"] + cols]


def case_table(
    runs: pd.DataFrame, metrics: pd.DataFrame, tasks: Dict[str, dict], selected_only: bool = True
) -> pd.DataFrame:
    """Per case metrics, what the ranking reads: one row per (method, task, case), columns
    ``method, task, case, lr, status, run_id, fold`` and :data:`CASE_COLUMNS`.

    The per-seed rows of :func:`seed_case_table`, averaged over the training seeds per case
    (:func:`seglosses.bench.evidence.average_seeds`: NaN when a seed has no value, so a seed that
    failed counts as missing); ``status`` is ``finished`` only when every seed finished, ``run_id``
    is the run of the smallest seed (for its prediction). With one seed (the default) these are
    the rows of the selected runs unchanged.
    """
    from .evidence import average_seeds

    per_seed = seed_case_table(runs, metrics, tasks, selected_only)
    cols = [c for c in CASE_COLUMNS if c in per_seed.columns]
    keys = ["method", "task", "case"]
    if per_seed.empty:
        return per_seed.drop(columns=["seed"])[keys + ["lr", "status", "run_id", "fold"] + cols]
    first = per_seed.sort_values("seed", kind="mergesort").groupby(keys, sort=False).agg(
        lr=("lr", "first"),
        status=("status", lambda v: "finished" if (v == "finished").all() else "failed"),
        run_id=("run_id", "first"),
    )
    if per_seed["seed"].nunique() == 1:
        out = per_seed.drop(columns=["seed"])
    else:
        out = average_seeds(per_seed, cols).join(first, on=keys)
    return out[keys + ["lr", "status", "run_id", "fold"] + cols].reset_index(drop=True)


def load_results(out) -> Results:
    """Everything the report reads from ``OUT/results.sqlite``, in one read-only pass."""
    store = open_results(out)
    try:
        t = _read_tables(store)
        selected = select_runs(t.runs) if not t.runs.empty else t.runs
        cases = case_table(t.runs, t.metrics, t.tasks) if not t.runs.empty else pd.DataFrame()
        seed_cases = seed_case_table(t.runs, t.metrics, t.tasks) if not t.runs.empty else pd.DataFrame()
        display = {task: store.display_slices(task) for task in t.tasks}
        predictions = (
            {int(r): store.predictions(int(r)) for r in selected["run_id"]} if not selected.empty else {}
        )
    finally:
        store.close()
    return Results(Path(out), t.tasks, t.runs, selected, cases, t.curves, t.meta, display, predictions, seed_cases)


def export_csv(out, to: Optional[str] = None) -> Dict[str, Path]:
    """Write the CSV files described in ``seglosses export --help``; return their paths.

    ``results.csv`` (the input of ``seglosses rank``): :func:`case_table` of the selected runs;
    ``results_tidy.csv``: every run x case x class with a ``selected`` column; ``runs.csv`` and
    ``curves.csv``: the runs and curves tables as stored.
    """
    t = load_tables(out)
    dest = Path(to) if to else Path(out)
    dest.mkdir(parents=True, exist_ok=True)
    paths: Dict[str, Path] = {}
    cases = case_table(t.runs, t.metrics, t.tasks) if not t.runs.empty else None
    tidy = t.metrics.rename(columns={"case_id": "case", "label": "class", "label_name": "class_name"})
    selected = set(cases["run_id"]) if cases is not None else set()
    tidy.insert(tidy.columns.get_loc("seed") + 1, "selected", tidy["run_id"].isin(selected))
    paths["tidy"] = dest / "results_tidy.csv"
    tidy.to_csv(paths["tidy"], index=False)
    paths["rank"] = dest / "results.csv"
    if cases is not None:
        cases.drop(columns=["run_id", "fold"]).to_csv(paths["rank"], index=False)
    else:
        paths["rank"].write_text("method,task,case,dsc,nsd,hd95\n")
    paths["runs"] = dest / "runs.csv"
    t.runs.to_csv(paths["runs"], index=False)
    paths["curves"] = dest / "curves.csv"
    t.curves.to_csv(paths["curves"], index=False)
    return paths


def _fmt(v, digits=3) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
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
    selected = set(select_runs(runs)["run_id"])
    if "fold" not in runs.columns:
        runs = runs.assign(fold=0)
    replicated = runs["fold"].nunique() > 1 or runs["seed"].nunique() > 1
    rep_head = f" {'fold':>4} {'seed':>4}" if replicated else ""
    lines = [
        f"{'task':<12} {'loss':<22} {'lr':>8}{rep_head} {'status':<8} {'val DSC':>7} {'DSC':>6} {'NSD':>6} {'HD95 md':>7} {'time':>7}"
    ]
    for _, r in runs.sort_values(["task", "loss", "lr", "fold", "seed"]).iterrows():
        m = per_run.loc[r.run_id] if per_run is not None and r.run_id in per_run.index else None
        n_lrs = runs[(runs.task == r.task) & (runs.loss == r.loss)]["lr"].nunique()
        mark = "*" if r.run_id in selected and n_lrs > 1 else " "
        secs = _seconds(r.train_seconds) + _seconds(r.eval_seconds)
        rep = f" {int(r.fold):>4} {int(r.seed):>4}" if replicated else ""
        lines.append(
            f"{r.task:<12} {r.loss:<22} {r.lr:>8.0e}{rep}{mark}{r.status:<8} {_fmt(r.val_dice):>7} "
            f"{_fmt(None if m is None else m['dsc']):>6} {_fmt(None if m is None else m['nsd']):>6} "
            f"{_fmt(None if m is None else m['hd95'], 2):>7} {secs:>6.0f}s"
        )
        if r.status == "failed":
            lines.append(f"{'':<12}   failed: {r.reason}")
    return lines
