"""The benchmark report: ``OUT/report.html`` (one self-contained file) and ``OUT/report.md``.

Everything is read from ``OUT/results.sqlite`` (so ``seglosses report OUT`` works on a copied
results file, without the data):

* a table like Ma et al. (2021) Table 2 -- mean DSC and NSD per loss and task, the best value in
  bold and the worst underlined when the difference is significant (one-sided Wilcoxon
  signed-rank test, p < 0.05, against *every* other loss of that column); a failed
  configuration shows "—" (Ma et al. Table 3);
* per task, Jadon-style columns (Jadon 2020, Table II): DSC, IoU, sensitivity, specificity,
  precision, median HD95;
* violin plots of the per-case DSC and NSD per task (Ma et al. Figs. 2, 4, 6, 8);
* the significance ranking over all tasks with DSC and NSD (Fig. 10,
  :func:`seglosses.ranking.significance_ranking`), its stability under bootstrap resampling of
  the cases (:func:`seglosses.ranking.rank_stability`) and under the choice of metrics
  (:func:`seglosses.ranking.ranking_by_metric_sets`, Fig. 11);
* the training curves of every run; prediction overlays (image, ground truth, best and worst
  loss) on the hardest test cases (Figs. 3, 5, 9);
* a short "what to use" paragraph generated from the ranking, with its caveats.

Conventions: per case, a metric is the mean over the task's foreground classes; the learning
rate of each (task, loss) is the one with the best validation Dice
(:func:`seglosses.bench.results.select_runs`); a failed configuration counts as missing on every
case, which the ranking replaces by the worst value (DSC = NSD = 0, Ma et al. footnote 10).
The HTML embeds its figures as base64 PNG and has no external CSS or JavaScript; the Markdown
refers to the same PNGs in ``OUT/figures/``.

Layout: the blocks and their HTML / Markdown rendering are in
:mod:`seglosses.bench.report_blocks`, the figures in :mod:`seglosses.bench.report_figures`; this
module holds the sections.

Sections
--------
The report is a list of sections (:data:`SECTIONS`): each is one function ``section(ctx) ->
list of Block`` that reads a :class:`ReportContext` (the loaded results and the rankings,
computed once on first use) and returns its blocks; :func:`render_section` turns them into the
section's HTML and Markdown. A section that raises is shown as a visible error block (in the
HTML and the Markdown) and a :class:`ReportSectionWarning` is issued and logged; the rest of the
report is still written. Adding a section is one function and one line in :data:`SECTIONS`.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from .report_blocks import Block, Cell, ReportSectionWarning, html_document, render_html_body, render_markdown
from .report_figures import plot_curves, plot_metric_sets, plot_overlays, plot_violins, safe_name
from .results import Results, case_table, load_results

__all__ = [
    "write_report",
    "case_table",
    "load_results",
    "Block",
    "Cell",
    "ReportContext",
    "RenderedSection",
    "ReportSectionWarning",
    "SECTIONS",
    "render_section",
]

N_BOOTSTRAP = 1000
logger = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------
# Tables
# ----------------------------------------------------------------------------------------------


def _fmt(v: float, digits: int = 4) -> str:
    if v is None or not np.isfinite(v):
        return "—" if v is None or np.isnan(v) else ("inf" if v > 0 else "-inf")
    return f"{v:.{digits}f}"


def _significant_extremes(
    cases: pd.DataFrame, task: str, metric: str, direction: str, methods: Sequence[str], alpha: float = 0.05
):
    """(best method if significantly better than every other, worst if significantly worse than every other)."""
    from seglosses.ranking import pairwise_pvalues

    sub = cases[(cases["task"] == task) & (cases["method"].isin(methods))][["method", "case", metric]]
    if sub["method"].nunique() < 2:
        return None, None
    pv = pairwise_pvalues(sub, task=None, metrics={metric: direction}, alpha=alpha)
    ok = {m for m in methods}
    sig = pv[pv["significant"]]
    best = worst = None
    n = len(ok) - 1
    wins = sig.groupby("method").size()
    losses = sig.groupby("other").size()
    for m in ok:
        if wins.get(m, 0) == n:
            best = m
        if losses.get(m, 0) == n:
            worst = m
    return best, worst


# ----------------------------------------------------------------------------------------------
# The report
# ----------------------------------------------------------------------------------------------


def _tiebreak(ranking: pd.DataFrame, cases: pd.DataFrame) -> pd.DataFrame:
    """Order losses of equal rank by their mean of (DSC + NSD) / 2 (missing = 0), for display only."""
    score = (
        cases.assign(_m=(cases["dsc"].fillna(0) + cases["nsd"].fillna(0)) / 2).groupby("method")["_m"].mean()
    )
    key = pd.DataFrame({"rank": ranking["rank"], "mean": -score.reindex(ranking.index).fillna(0)})
    out = ranking.loc[key.sort_values(["rank", "mean"], kind="stable").index]
    out.attrs = dict(ranking.attrs)
    return out


def _ranking(cases: pd.DataFrame, **kw):
    from seglosses.ranking import significance_ranking

    return significance_ranking(cases, method="method", case="case", task="task", **kw)


def _is_compound(name: str, spec: str) -> bool:
    from seglosses.registry import loss_info, parse_spec

    try:
        return len(parse_spec(spec)) > 1 or loss_info(spec).category == "compound"
    except ValueError:  # a spec this build does not know (results from another version)
        return "+" in spec


def _what_to_use(
    res: Results, ranking: pd.DataFrame, per_task: Dict[str, pd.DataFrame], cases: pd.DataFrame
) -> str:
    specs = dict(zip(res.selected["loss"], res.selected["spec"]))
    top_score = ranking["rank_score"].max()
    leaders = [m for m in ranking.index if ranking.loc[m, "rank_score"] == top_score]
    n = len(ranking)
    parts = []
    if len(leaders) == 1:
        parts.append(
            f"Over all tasks, **{leaders[0]}** ranks first (rank score {top_score:.2f} of a possible {n - 1})."
        )
    else:
        parts.append(
            f"Over all tasks, {', '.join('**' + m + '**' for m in leaders)} share the first rank (rank score {top_score:.2f} of a possible {n - 1})."
        )
    top = list(ranking.index[: max(3, len(leaders))])
    n_comp = sum(_is_compound(m, specs.get(m, m)) for m in top)
    if n_comp:
        parts.append(
            f"{n_comp} of the top {len(top)} ({', '.join(top)}) are compound losses; Ma et al. (2021) found Dice-based compounds the most robust choice."
        )
    else:
        parts.append(
            f"The top {len(top)} ({', '.join(top)}) are single losses, unlike Ma et al. (2021), where Dice-based compounds led."
        )
    for t, r in per_task.items():
        best = r.index[0]
        sub = cases[(cases["task"] == t) & (cases["method"] == best)]
        parts.append(f"On {t}: {best} (mean DSC {sub['dsc'].mean():.3f}, NSD {sub['nsd'].mean():.3f}).")
    zero = ranking[ranking["rank_score"] == 0].index.tolist()
    if zero:
        parts.append(f"Beat no other loss significantly: {', '.join(zero)}.")
    failed = res.selected[res.selected["status"] == "failed"]
    if not failed.empty:
        parts.append(
            "Failed (NaN/inf loss or error; ranked with DSC = NSD = 0): "
            + ", ".join(f"{r.loss} on {r.task}" for r in failed.itertuples())
            + "."
        )
    if top_score == 0:
        parts.append(
            "No loss is significantly better than any other here: the ranking is a tie, the test set is too small or the runs too short to separate them."
        )
    return " ".join(parts)


def _caveats(res: Results, proto: dict, cases: pd.DataFrame) -> str:
    n_test = cases.groupby("task")["case"].nunique()
    lrs = sorted(res.runs["lr"].unique())
    synthetic = all(str(info.get("source", "")).startswith("synthetic") for info in res.tasks.values())
    env = res.meta.get("environment") or {}
    bits = ["Caveats:"]
    if synthetic:
        bits.append("the data are small synthetic tasks, not the real datasets;")
    bits.append(
        f"each model trained for only {proto.get('iterations', '?')} iterations ({proto.get('model_size', '?')} network)"
        + (" on CPU;" if str(env.get("device", "cpu")) == "cpu" else ";")
    )
    bits.append(
        f"{min(n_test) if len(n_test) else 0}-{max(n_test) if len(n_test) else 0} test cases per task, so only large differences are significant;"
    )
    if len(lrs) == 1:
        bits.append(
            f"one learning rate ({lrs[0]:g}) for every loss, no per-loss selection (Ma et al. pick the best of 3e-3, 3e-4, 3e-5);"
        )
    bits.append(
        f"one seed ({proto.get('seed', '?')}). Treat the ranking as a smoke test of the protocol; re-run with `--preset paper` "
        "or your own data and budget before drawing conclusions."
    )
    return " ".join(bits)


# ----------------------------------------------------------------------------------------------
# Sections
# ----------------------------------------------------------------------------------------------


@dataclass
class ReportContext:
    """What every section reads: the results, where figures go, the report's settings, and the
    rankings (computed once, on first use, so a failing ranking fails only the sections that
    need it)."""

    res: Results
    out: Path
    fig_dir: Path
    n_bootstrap: int = N_BOOTSTRAP
    hardest: int = 3

    @property
    def tasks(self) -> List[str]:
        return list(self.res.tasks)

    @property
    def cases(self) -> pd.DataFrame:
        return self.res.cases

    @property
    def proto(self) -> dict:
        return self.res.meta.get("protocol") or {}

    @cached_property
    def ranking(self) -> pd.DataFrame:
        """Significance ranking over all tasks with DSC + NSD (Ma et al. 3.4), display order."""
        return _tiebreak(_ranking(self.cases, metrics={"dsc": "higher", "nsd": "higher"}), self.cases)

    @property
    def order(self) -> List[str]:
        return list(self.ranking.index)

    @cached_property
    def per_task_rank(self) -> Dict[str, pd.DataFrame]:
        out = {}
        for t in self.tasks:
            sub = self.cases[self.cases["task"] == t]
            if not sub.empty:
                out[t] = _tiebreak(_ranking(sub, metrics={"dsc": "higher", "nsd": "higher"}), sub)
        return out

    @cached_property
    def stability(self):
        """Bootstrap rank stability over all tasks with DSC + NSD (computed once)."""
        from seglosses import ranking as rk

        return rk.rank_stability(
            self.cases,
            method="method",
            case="case",
            task="task",
            metrics={"dsc": "higher", "nsd": "higher"},
            n_bootstrap=self.n_bootstrap,
            seed=0,
        )

    def task_order(self, task: str) -> List[str]:
        return list(self.per_task_rank[task].index) if task in self.per_task_rank else self.order


def section_header(ctx: ReportContext) -> List[Block]:
    """Title, source, protocol and environment."""
    res, out = ctx.res, ctx.out
    proto, tasks = ctx.proto, ctx.tasks
    env = res.meta.get("environment") or {}
    cmd = res.meta.get("last_command") or {}
    n_failed = int((res.runs["status"] == "failed").sum()) if not res.runs.empty else 0
    return [
        Block("h1", TITLE),
        Block(
            "p",
            (
                f"Generated {time.strftime('%Y-%m-%d %H:%M')} from `{out / 'results.sqlite'}`. Preset `{cmd.get('preset', '?')}`; "
                f"{len(res.runs)} run(s) over {len(tasks)} task(s) ({', '.join(tasks) or 'none'}); "
                f"{n_failed} failed. "
                f"Protocol: {proto.get('iterations', '?')} iterations, batch {proto.get('batch_size', '?')}, patch {proto.get('patch_size') or 'whole image'}, "
                f"{proto.get('model_size', '?')} {proto.get('arch', 'dynunet')}, NSD tolerance {proto.get('tolerance', 1.0)} mm, seed {proto.get('seed', '?')}. "
                f"Environment: torch {env.get('torch', '?')}, device {env.get('device', '?')}, {env.get('cpu_count', '?')} CPU(s)."
            ),
        ),
    ]


def section_no_results(ctx: ReportContext) -> List[Block]:
    """Shown instead of the other sections while no selected run has finished."""
    res = ctx.res
    blocks = [Block("note", "No finished run in this results file yet: nothing to rank or plot.")]
    if not res.runs.empty:
        blocks.append(
            Block(
                "table",
                header=["task", "loss", "lr", "status", "reason"],
                rows=[
                    [
                        Cell(r.task, align="left"),
                        Cell(r.loss, align="left"),
                        Cell(f"{r.lr:g}"),
                        Cell(r.status, align="left"),
                        Cell(str(r.reason or ""), align="left"),
                    ]
                    for r in res.runs.itertuples()
                ],
            )
        )
    return blocks


def section_what_to_use(ctx: ReportContext) -> List[Block]:
    """A short recommendation generated from the ranking, and its caveats; for a grid run by
    ``seglosses recommend --confirm``, also the data's profile and why each loss was shortlisted."""
    blocks = [
        Block("h2", "What to use"),
        Block("p", _what_to_use(ctx.res, ctx.ranking, ctx.per_task_rank, ctx.cases)),
        Block("note", _caveats(ctx.res, ctx.proto, ctx.cases)),
    ]
    rec = ctx.res.meta.get("recommendation")
    if rec:
        blocks += _recommendation_blocks(rec)
    return blocks


def _recommendation_blocks(rec: dict) -> List[Block]:
    """The profile and the shortlist's reasons stored by ``seglosses recommend --confirm``."""
    d = rec["profile"]["dataset"]
    blocks = [
        Block("h3", "Why these losses (seglosses recommend)"),
        Block(
            "p",
            f"Dataset {d['name']}: {d['cases']} cases, {d['spatial_dims']}-D, spacing "
            f"{' x '.join(f'{s:g}' for s in d['spacing'])} mm, {d['classes']} foreground class(es).",
        ),
        Block(
            "table",
            header=["class", "BG:FG", "absent", "objects / case", "object size (median, voxels)", "boundary fraction"],
            rows=[
                [
                    Cell(name, align="left"),
                    Cell("never occurs" if c["bg_fg_ratio"] is None else f"{c['bg_fg_ratio']:.0f}:1"),
                    Cell(f"{c['absent_fraction']:.0%}"),
                    Cell(f"{c['objects_per_case']['median']:g}"),
                    Cell(f"{c['object_size_voxels']['median']:g}"),
                    Cell(f"{c['boundary_fraction']:.2f}"),
                ]
                for name, c in rec["profile"]["classes"].items()
            ],
        ),
        Block(
            "table",
            header=["shortlisted loss", "reasons"],
            rows=[[Cell(c["loss"], align="left"), Cell("; ".join(c["reasons"]), align="left")] for c in rec["shortlist"]],
        ),
    ]
    return blocks


def section_table2(ctx: ReportContext) -> List[Block]:
    """Mean DSC and NSD per loss and task, significant best bold / worst underlined (Ma et al. Table 2)."""
    cases, tasks = ctx.cases, ctx.tasks
    methods = sorted(cases["method"].unique())
    blocks = [
        Block("h2", "Mean DSC and NSD per loss and task (as Ma et al. Table 2)"),
        Block(
            "p",
            (
                "Mean over the test cases of the per-case mean over foreground classes. **Bold**: best, and significantly better "
                "than every other loss of the column; underlined: worst, and significantly worse than every other (one-sided "
                "Wilcoxon signed-rank tests, p < 0.05). — : the configuration failed (see the runs table). Rows in rank order."
            ),
        ),
    ]
    header = ["loss"]
    for t in tasks:
        header += [f"{t} DSC", f"{t} NSD"]
    if len(tasks) > 1:
        header += ["mean DSC", "mean NSD"]
    extremes = {}
    for t in tasks:
        present = [m for m in methods if ((cases["task"] == t) & (cases["method"] == m)).any()]
        for metric in ("dsc", "nsd"):
            extremes[(t, metric)] = _significant_extremes(cases, t, metric, "higher", present)
    rows = []
    for m in ctx.order:
        row = [Cell(m, align="left")]
        avgs = {"dsc": [], "nsd": []}
        for t in tasks:
            sub = cases[(cases["task"] == t) & (cases["method"] == m)]
            status = sub["status"].iloc[0] if not sub.empty else None
            for metric in ("dsc", "nsd"):
                if sub.empty or status != "finished":
                    row.append(Cell("—"))
                    avgs[metric].append(np.nan)
                    continue
                v = float(sub[metric].mean())
                avgs[metric].append(v)
                best, worst = extremes[(t, metric)]
                row.append(Cell(_fmt(v), bold=best == m, underline=worst == m))
        if len(tasks) > 1:
            for metric in ("dsc", "nsd"):
                vals = avgs[metric]
                row.append(Cell(_fmt(float(np.mean(vals))) if all(np.isfinite(vals)) else "—"))
        rows.append(row)
    blocks.append(Block("table", header=header, rows=rows))
    return blocks


def section_jadon(ctx: ReportContext) -> List[Block]:
    """Per task: DSC, IoU, sensitivity, specificity, precision, median HD95 (Jadon 2020 Table II)."""
    cases = ctx.cases
    blocks = [Block("h2", "Overlap, sensitivity and specificity per task (as Jadon 2020 Table II)")]
    for t in ctx.tasks:
        sub_t = cases[cases["task"] == t]
        if sub_t.empty:
            continue
        blocks.append(Block("h3", f"{t}"))
        info = ctx.res.tasks[t]
        ratios = info.get("class_ratios") or {}
        ratio_txt = ", ".join(f"{k} {v:.0f}:1" for k, v in ratios.items() if v) or "?"
        split = info.get("split", {})
        blocks.append(
            Block(
                "p",
                (
                    f"{(info.get('description') or '').rstrip('.') + '. ' if info.get('description') else ''}Source: {info.get('source')}. Classes: {', '.join(info['label_names'][1:])} "
                    f"(BG:FG {ratio_txt}). Cases: {len(split.get('train', []))} train, {len(split.get('val', []))} validation, "
                    f"{len(split.get('test', []))} test."
                ),
            )
        )
        trank = ctx.per_task_rank.get(t)
        rows = []
        for m in ctx.task_order(t):
            sub = sub_t[sub_t["method"] == m]
            if sub.empty:
                continue
            lr = sub["lr"].iloc[0]
            if sub["status"].iloc[0] != "finished":
                rows.append([Cell(m, align="left"), Cell(f"{lr:g}")] + [Cell("—")] * 7)
                continue
            hd95 = sub["hd95"].to_numpy(dtype=float)
            rows.append(
                [
                    Cell(m, align="left"),
                    Cell(f"{lr:g}"),
                    Cell(str(int(trank.loc[m, "rank"])) if trank is not None else ""),
                    Cell(_fmt(sub["dsc"].mean())),
                    Cell(_fmt(sub["iou"].mean())),
                    Cell(_fmt(sub["sensitivity"].mean())),
                    Cell(_fmt(sub["specificity"].mean())),
                    Cell(_fmt(sub["precision"].mean())),
                    Cell(_fmt(float(np.median(hd95)), 2) if hd95.size else "—"),
                ]
            )
        blocks.append(
            Block(
                "table",
                header=[
                    "loss",
                    "lr",
                    "task rank",
                    "DSC",
                    "IoU",
                    "sensitivity",
                    "specificity",
                    "precision",
                    "median HD95 (mm)",
                ],
                rows=rows,
            )
        )
    return blocks


def section_topology(ctx: ReportContext) -> List[Block]:
    """Per task with topology metrics (the ``vessels`` task): clDice and Betti-number errors of
    the binarised predictions per loss, ranked on clDice (nothing for other tasks)."""
    cases = ctx.cases
    if "cldice" not in cases.columns:
        return []
    blocks: List[Block] = []
    for t in ctx.tasks:
        sub_t = cases[cases["task"] == t]
        if sub_t.empty or sub_t["cldice"].isna().all():
            continue
        if not blocks:
            blocks.append(Block("h2", "Topology of thin structures (clDice, Betti-number errors)"))
            blocks.append(
                Block(
                    "p",
                    (
                        "Per test case and foreground class, then averaged: clDice of the predicted and true masks "
                        "(Shit et al. 2021: harmonic mean of the fraction of the predicted skeleton inside the truth and "
                        "of the true skeleton inside the prediction; 1 is perfect) and the Betti-number error "
                        "|b0 - b0'| + |b1 - b1'| (b0: connected pieces, b1: loops; 0 is perfect). A vessel cut in two "
                        "costs 1 in b0 and barely any Dice. Rank: significance ranking on clDice (as the DSC + NSD "
                        "ranking). The Betti errors are shown, not ranked: a prediction of almost nothing has few "
                        "pieces and no loops, hence a small Betti error (`seglosses.metrics.topology`)."
                    ),
                )
            )
        blocks.append(Block("h3", t))
        done = sub_t[sub_t["status"] == "finished"]
        trank = None
        if done["method"].nunique() >= 2:
            trank = _ranking(done, metrics={"cldice": "higher"})
        score = done.groupby("method")["cldice"].mean()
        order = list(trank.index) if trank is not None else list(score.sort_values(ascending=False).index)
        order += [m for m in sorted(sub_t["method"].unique()) if m not in order]
        rows = []
        for m in order:
            sub = sub_t[sub_t["method"] == m]
            if sub["status"].iloc[0] != "finished":
                rows.append([Cell(m, align="left"), Cell("")] + [Cell("—")] * 5)
                continue
            rows.append(
                [
                    Cell(m, align="left"),
                    Cell(str(int(trank.loc[m, "rank"])) if trank is not None and m in trank.index else ""),
                    Cell(_fmt(sub["dsc"].mean())),
                    Cell(_fmt(sub["cldice"].mean())),
                    Cell(_fmt(sub["betti_error"].mean(), 2)),
                    Cell(_fmt(sub["betti0_error"].mean(), 2)),
                    Cell(_fmt(sub["betti1_error"].mean(), 2)),
                ]
            )
        blocks.append(
            Block(
                "table",
                header=["loss", "topology rank", "DSC", "clDice", "Betti error", "b0 error", "b1 error"],
                rows=rows,
            )
        )
    return blocks


def section_violins(ctx: ReportContext) -> List[Block]:
    """Per-case DSC and NSD per task as violin plots (Ma et al. Figs. 2, 4, 6, 8)."""
    blocks = [Block("h2", "Per-case DSC and NSD (violin plots, as Ma et al. Figs. 2, 4, 6, 8)")]
    for t in ctx.tasks:
        if not (ctx.cases["task"] == t).any():
            continue
        p = plot_violins(ctx.cases, t, ctx.task_order(t), ctx.fig_dir / f"violin_{safe_name(t)}.png")
        blocks.append(
            Block(
                "img",
                f"{t}: distribution of per-case DSC (top) and NSD (bottom) over the test cases, losses in task-rank order",
                path=p,
            )
        )
    return blocks


def section_ranking(ctx: ReportContext) -> List[Block]:
    """The significance ranking over all tasks with DSC + NSD (Ma et al. Fig. 10)."""
    from seglosses import ranking as rk

    ranking = ctx.ranking
    blocks = [
        Block("h2", "Ranking (as Ma et al. Fig. 10)"),
        Block(
            "p",
            (
                "Significance ranking of Ma et al. 3.4 / the Medical Segmentation Decathlon: for every task and metric (DSC, NSD) "
                "each loss scores the number of losses it beats in a one-sided Wilcoxon signed-rank test (p < 0.05) on the "
                "per-case values; the rank score is the mean score over tasks and metrics."
            ),
        ),
    ]
    p = rk.plot_ranking(
        ranking, ctx.fig_dir / "ranking.png", title=f"Rank score over {len(ctx.tasks)} task(s), DSC + NSD"
    )
    blocks.append(Block("img", "Rank score per loss (higher is better)", path=p))
    score_cols = [c for c in ranking.columns if c.startswith("score:")]
    rows = []
    for m in ctx.order:
        r = ranking.loc[m]
        rows.append(
            [Cell(str(int(r["rank"]))), Cell(m, align="left"), Cell(f"{r['rank_score']:.2f}")]
            + [Cell(str(int(r[c]))) for c in score_cols]
        )
    blocks.append(
        Block(
            "table",
            header=["rank", "loss", "rank score"] + [c.replace("score:", "") for c in score_cols],
            rows=rows,
        )
    )
    return blocks


def section_stability_bootstrap(ctx: ReportContext) -> List[Block]:
    """Rank stability under bootstrap resampling of the test cases (Ma et al. Fig. 11)."""
    from seglosses import ranking as rk

    n_bootstrap = ctx.n_bootstrap
    stab = ctx.stability
    p = rk.plot_rank_stability(stab, ctx.fig_dir / "stability_bootstrap.png")
    tau = stab.tau_summary()
    rows = [
        [
            Cell(str(int(r["rank"]))),
            Cell(str(m), align="left"),
            Cell(f"{r['median']:.3g}"),
            Cell(f"{r['q025']:.3g}–{r['q975']:.3g}"),
            Cell(f"{r['same_rank']:.2f}"),
        ]
        for m, r in stab.summary.iterrows()
    ]
    return [
        Block("h2", "Rank stability (as Ma et al. Fig. 11)"),
        Block(
            "p",
            (
                f"Bootstrap: the test cases of every task resampled with replacement {n_bootstrap} times and re-ranked. "
                + (
                    f"Median Kendall tau against the full ranking {tau['median']:.2f} (95 % interval {tau['q025']:.2f} to {tau['q975']:.2f}); "
                    if np.isfinite(tau["median"])
                    else "Kendall tau is undefined (all losses tied in the full ranking); "
                )
                + "`same rank` is the fraction of samples that reproduce a loss's rank."
            ),
        ),
        Block(
            "img",
            "Bootstrap rank distribution per loss (disc area: frequency; cross: median; bar: 95 % interval; diamond: full data)",
            path=p,
        ),
        Block(
            "table",
            header=["rank", "loss", "median bootstrap rank", "95 % interval", "same rank"],
            rows=rows,
        ),
    ]


def section_stability_metric_sets(ctx: ReportContext) -> List[Block]:
    """The ranking under other metric sets (DSC only, NSD only, HD95 only) and Kendall tau."""
    from seglosses import ranking as rk

    sets = {k: v for k, v in rk.DEFAULT_METRIC_SETS.items()}
    comp = rk.ranking_by_metric_sets(ctx.cases, sets, method="method", case="case", task="task")
    p = plot_metric_sets(comp, ctx.fig_dir / "stability_metrics.png")
    rows = [
        [Cell(str(m), align="left")] + [Cell(str(int(v))) for v in comp.ranks.loc[m]]
        for m in comp.ranks.index
    ]
    taus = comp.kendall_tau
    first = taus.index[0]
    return [
        Block(
            "p",
            (
                "Metric choice: the same ranking scheme with DSC + NSD, DSC only, NSD only and HD95 only (lower is better; an "
                "infinite HD95, from an empty prediction or ground truth, counts as the worst observed value)."
            ),
        ),
        Block("img", "Rank of each loss under each metric set", path=p),
        Block("table", header=["loss"] + list(comp.ranks.columns), rows=rows),
        Block(
            "p",
            "Kendall tau with the DSC + NSD ranking: "
            + ", ".join(
                f"{c} {taus.loc[first, c]:.2f}"
                if np.isfinite(taus.loc[first, c])
                else f"{c} undefined (a tied ranking)"
                for c in taus.columns[1:]
            )
            + ".",
        ),
    ]


def section_hardest_cases(ctx: ReportContext) -> List[Block]:
    """Image, ground truth, best and worst loss on the hardest test cases (Ma et al. Figs. 3, 5, 9)."""
    cases = ctx.cases
    blocks = [Block("h2", "Hardest test cases (as Ma et al. Figs. 3, 5, 9)")]
    for t in ctx.tasks:
        trank = ctx.per_task_rank.get(t)
        if trank is None:
            continue
        ok = [
            m
            for m in trank.index
            if ((cases["task"] == t) & (cases["method"] == m) & (cases["status"] == "finished")).any()
        ]
        if not ok:
            continue
        best, worst = ok[0], ok[-1]
        made = plot_overlays(ctx.res, t, best, worst, ctx.hardest, ctx.fig_dir / f"overlays_{safe_name(t)}.png")
        if made:
            p, shown = made
            blocks.append(
                Block(
                    "img",
                    f"{t}: image, ground truth, best-ranked loss ({best}) and worst-ranked loss ({worst}) on the {len(shown)} test cases with the lowest mean DSC",
                    path=p,
                )
            )
    return blocks


def section_curves(ctx: ReportContext) -> List[Block]:
    """Training loss and validation Dice per epoch, every run."""
    blocks = [Block("h2", "Training curves")]
    for t in ctx.tasks:
        p = plot_curves(ctx.res, t, ctx.task_order(t), ctx.fig_dir / f"curves_{safe_name(t)}.png")
        if p:
            blocks.append(Block("img", f"{t}: training loss per epoch and validation DSC, every run", path=p))
    return blocks


def section_runs(ctx: ReportContext) -> List[Block]:
    """Every stored run, the selected learning rate in bold."""
    res = ctx.res
    rows = []
    sel_ids = set(res.selected["run_id"])
    for r in res.runs.sort_values(["task", "loss", "lr"]).itertuples():
        secs = sum(0.0 if v is None or v != v else float(v) for v in (r.train_seconds, r.eval_seconds))
        rows.append(
            [
                Cell(r.task, align="left"),
                Cell(r.loss, align="left"),
                Cell(r.spec + (f" {r.options}" if r.options not in ("{}", "") else ""), align="left"),
                Cell(
                    f"{r.lr:g}",
                    bold=r.run_id in sel_ids
                    and len(res.runs[(res.runs.task == r.task) & (res.runs.loss == r.loss)]) > 1,
                ),
                Cell(r.status, align="left"),
                Cell(_fmt(r.val_dice) if r.val_dice == r.val_dice and r.val_dice is not None else "—"),
                Cell(f"{secs:.0f}"),
                Cell(str(r.reason or ""), align="left"),
            ]
        )
    return [
        Block("h2", "Runs"),
        Block("p", "Every stored run; with several learning rates the one picked by validation DSC is in bold."),
        Block(
            "table",
            header=["task", "loss", "spec", "lr", "status", "val DSC", "seconds", "reason"],
            rows=rows,
        ),
    ]


def section_how_sure(ctx: ReportContext) -> List[Block]:
    """Cases, folds and seeds behind the ranking; bootstrap and seed stability; what is significant
    (docs/evidence.md)."""
    from .evidence import evidence_counts, seed_stability, significance_sentences

    per_seed = ctx.res.seed_cases if not ctx.res.seed_cases.empty else ctx.cases
    counts = evidence_counts(per_seed)
    seeds = counts["seeds"] or [ctx.proto.get("seed", 0)]
    parts = []
    for t, n in counts["cases"].items():
        total = (ctx.res.tasks.get(t) or {}).get("n_cases", n)
        parts.append(f"{t}: {n} test case(s)" + ("" if n == total else f" of {total}"))
    folds = counts["folds"]
    fold_text = (
        f"{folds}-fold cross-validation by case (every case is a test case exactly once)"
        if folds > 1
        else "a single split (only the held-out test cases are ranked; --folds K tests every case)"
    )
    seed_text = (
        f"{len(seeds)} training seeds ({', '.join(map(str, seeds))}), each case's metrics averaged over the seeds "
        "before the Wilcoxon tests"
        if len(seeds) > 1
        else f"one training seed ({seeds[0]}; --seeds 0,1,2 shows how much the seed moves the ranking)"
    )
    blocks = [
        Block("h2", "How sure is this"),
        Block("p", f"The ranking rests on {'; '.join(parts)}, from {fold_text}, and {seed_text}."),
    ]
    tau = ctx.stability.tau_summary()
    boot = (
        f"Bootstrap over the test cases ({ctx.n_bootstrap} samples): median Kendall tau {tau['median']:.2f} "
        f"(95 % interval {tau['q025']:.2f} to {tau['q975']:.2f}) against the full ranking"
        if np.isfinite(tau["median"])
        else "Bootstrap: Kendall tau undefined (all losses tied)"
    )
    if len(seeds) > 1:
        st = seed_stability(per_seed, metrics={"dsc": "higher", "nsd": "higher"})
        st_tau = st.tau_summary()
        blocks.append(
            Block(
                "p",
                f"{boot}. Between seeds: Kendall tau of the per-seed rankings from {st_tau['min']:.2f} to "
                f"{st_tau['max']:.2f} (mean {st_tau['mean']:.2f})"
                + (
                    "; the training seed moves the ranking more than the choice of test cases does."
                    if np.isfinite(st_tau["mean"]) and np.isfinite(tau["median"]) and st_tau["mean"] < tau["median"]
                    else "."
                ),
            )
        )
        rows = []
        for m in ctx.order:
            if m not in st.spread.index:
                continue
            r = st.spread.loc[m]
            rows.append(
                [Cell(m, align="left")]
                + [Cell(_fmt(st.mean_by_seed.loc[m].get(sd, np.nan), 3)) for sd in st.mean_by_seed.columns]
                + [Cell(_fmt(r["std"], 3)), Cell(_fmt(r["range"], 3))]
                + [Cell(str(int(v)) if v == v else "—") for v in st.ranks_by_seed.loc[m]]
            )
        blocks.append(
            Block(
                "table",
                header=["loss"]
                + [f"mean DSC, seed {sd}" for sd in st.mean_by_seed.columns]
                + ["std over seeds", "range"]
                + [f"rank, seed {sd}" for sd in st.ranks_by_seed.columns],
                rows=rows,
            )
        )
    else:
        blocks.append(Block("p", boot + "."))
    sentences = []
    for t in ctx.tasks:
        sub = ctx.cases[ctx.cases["task"] == t]
        if t in ctx.per_task_rank and not sub.empty:
            sentences += significance_sentences(sub, ctx.per_task_rank[t], metric="dsc")
    if sentences:
        blocks.append(Block("p", " ".join(sentences)))
    return blocks


Section = Callable[[ReportContext], List[Block]]

#: The report's sections, in order, after :func:`section_header` (``(name, function)``).
SECTIONS: List[Tuple[str, Section]] = [
    ("what to use", section_what_to_use),
    ("Table 2", section_table2),
    ("Jadon tables", section_jadon),
    ("topology", section_topology),
    ("violins", section_violins),
    ("ranking", section_ranking),
    ("rank stability (bootstrap)", section_stability_bootstrap),
    ("rank stability (metric sets)", section_stability_metric_sets),
    ("how sure is this", section_how_sure),
    ("hardest cases", section_hardest_cases),
    ("training curves", section_curves),
    ("runs", section_runs),
]

TITLE = "seglosses benchmark report"


@dataclass
class RenderedSection:
    """One section of the report in both formats; ``error`` is set when it raised."""

    name: str
    html: str
    markdown: str
    error: Optional[str] = None


def render_section(name: str, section: Section, ctx: ReportContext) -> RenderedSection:
    """Run one section and render its blocks to HTML and Markdown.

    If the section raises, its place shows an error block naming the section and the exception
    (in both formats), and a :class:`ReportSectionWarning` is issued and logged.
    """
    error = None
    try:
        blocks = list(section(ctx))
    except Exception as exc:  # shown in the report, warned: never a silent gap
        error = f"{type(exc).__name__}: {exc}"
        message = f"report section {name!r} failed: {error}"
        logger.warning(message, exc_info=True)
        warnings.warn(message, ReportSectionWarning, stacklevel=2)
        blocks = [Block("error", f"The report section '{name}' could not be produced ({error}).")]
    return RenderedSection(name, render_html_body(blocks), render_markdown(blocks, ctx.out), error)


def write_report(out, *, n_bootstrap: int = N_BOOTSTRAP, hardest: int = 3) -> Dict[str, Path]:
    """Write ``OUT/report.html``, ``OUT/report.md`` and ``OUT/figures/*.png``; return their paths.

    The report is :func:`section_header` and then every section of :data:`SECTIONS` (only
    :func:`section_no_results` while no selected run has finished).
    """
    out = Path(out)
    res = load_results(out)
    fig_dir = out / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    for old in fig_dir.glob("*.png"):
        old.unlink()
    ctx = ReportContext(res, out, fig_dir, n_bootstrap=n_bootstrap, hardest=hardest)
    finished = res.selected[res.selected["status"] == "finished"] if not res.selected.empty else res.selected
    sections: List[Tuple[str, Section]] = [("header", section_header)]
    if res.runs.empty or finished.empty:
        sections.append(("no results", section_no_results))
    else:
        sections += SECTIONS
    rendered = [render_section(name, fn, ctx) for name, fn in sections]
    html_path = out / "report.html"
    md_path = out / "report.md"
    html_path.write_text(
        html_document("\n".join(r.html for r in rendered if r.html), TITLE), encoding="utf-8"
    )
    md_path.write_text("\n".join(r.markdown for r in rendered if r.markdown), encoding="utf-8")
    return {"html": html_path, "md": md_path, "figures": fig_dir}
