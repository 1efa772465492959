"""The report's figures: violins, training curves, hardest-case overlays, metric-set ranks.

Each function draws one PNG from the results tables (:class:`seglosses.bench.results.Results`)
off-screen and returns its path.
"""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from .plotting import new_figure, overlay, save_png
from .report_blocks import ReportSectionWarning
from .results import Results

__all__ = ["plot_violins", "plot_curves", "plot_overlays", "plot_metric_sets", "safe_name"]



def safe_name(text: str) -> str:
    """``text`` as a file-name stem (other characters -> ``_``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def plot_violins(cases: pd.DataFrame, task: str, order: Sequence[str], path: Path) -> Path:
    """Per-case DSC and NSD per loss (one violin per loss), failed losses left empty."""
    sub = cases[cases["task"] == task]
    fig = new_figure(max(6.0, 0.55 * len(order) + 2.0), 6.4)
    for k, metric in enumerate(("dsc", "nsd")):
        ax = fig.add_subplot(2, 1, k + 1)
        data, pos, labels = [], [], []
        for i, m in enumerate(order):
            v = sub.loc[sub["method"] == m, metric].to_numpy(dtype=float)
            v = v[np.isfinite(v)]
            labels.append(m)
            if v.size:
                data.append(v)
                pos.append(i)
        if data:
            spread = [d for d in data if d.size > 1 and np.ptp(d) > 1e-9]
            if spread:
                try:
                    idx = [j for j, d in enumerate(data) if d.size > 1 and np.ptp(d) > 1e-9]
                    parts = ax.violinplot(
                        [data[j] for j in idx], positions=[pos[j] for j in idx], showmedians=True, widths=0.8
                    )
                    for body in parts["bodies"]:
                        body.set_facecolor("#4C72B0")
                        body.set_alpha(0.45)
                except (ValueError, np.linalg.LinAlgError) as exc:  # pragma: no cover - degenerate data
                    warnings.warn(
                        f"violin plot of {task} {metric}: no densities drawn ({type(exc).__name__}: {exc}); "
                        "the per-case points are shown",
                        ReportSectionWarning,
                        stacklevel=2,
                    )
            for p, d in zip(pos, data):
                jitter = (np.random.default_rng(p).random(d.size) - 0.5) * 0.25
                ax.scatter(p + jitter, d, s=6, color="#222", alpha=0.6, zorder=3)
        ax.set_xticks(
            range(len(order)),
            labels=labels if k == 1 else [""] * len(order),
            rotation=55,
            ha="right",
            fontsize=8,
        )
        ax.set_xlim(-0.7, len(order) - 0.3)
        ax.set_ylim(-0.03, 1.03)
        ax.set_ylabel(metric.upper())
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"{task}: per-case DSC and NSD (test cases)", fontsize=10)
    fig.tight_layout()
    return save_png(fig, path)


def plot_curves(res: Results, task: str, order: Sequence[str], path: Path) -> Optional[Path]:
    """Training loss and validation Dice per epoch, one panel per loss, one line per learning rate
    (with folds or seeds: the run of the first fold and seed)."""
    cur = res.curves[res.curves["task"] == task]
    if cur.empty:
        return None
    if {"fold", "seed"} <= set(cur.columns):
        first = cur.sort_values(["fold", "seed"], kind="mergesort").groupby(["loss", "lr"])["run_id"].first()
        cur = cur[cur["run_id"].isin(set(first))]
    losses = [m for m in order if (cur["loss"] == m).any()] + sorted(set(cur["loss"]) - set(order))
    ncol = min(4, len(losses))
    nrow = math.ceil(len(losses) / ncol)
    fig = new_figure(3.3 * ncol, 2.5 * nrow + 0.5)
    lrs = sorted(cur["lr"].unique())
    colors = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3"]
    for i, loss in enumerate(losses):
        ax = fig.add_subplot(nrow, ncol, i + 1)
        ax2 = ax.twinx()
        for j, lr in enumerate(lrs):
            c = cur[(cur["loss"] == loss) & (cur["lr"] == lr)].sort_values(["stage", "epoch"])
            if c.empty:
                continue
            col = colors[j % len(colors)]
            ax.plot(c["iteration"], c["train_loss"], color=col, lw=1.2, label=f"loss, lr {lr:g}")
            vd = c["val_dice"].to_numpy(dtype=float)
            if np.isfinite(vd).any():
                ax2.plot(c["iteration"], vd, color=col, lw=1.0, ls="--", label=f"val DSC, lr {lr:g}")
            for s in sorted(c["stage"].unique())[1:]:
                ax.axvline(c.loc[c["stage"] == s, "iteration"].min(), color="grey", ls=":", lw=1)
            status = res.runs[
                (res.runs["task"] == task) & (res.runs["loss"] == loss) & (res.runs["lr"] == lr)
            ]["status"]
            if not status.empty and status.iloc[0] == "failed":
                ax.text(0.5, 0.5, "failed", transform=ax.transAxes, color="#C44E52", ha="center", fontsize=11)
        ax.set_title(loss, fontsize=9)
        ax.tick_params(labelsize=7)
        ax2.tick_params(labelsize=7)
        ax2.set_ylim(0, 1)
        if i % ncol == 0:
            ax.set_ylabel("train loss", fontsize=8)
        if i % ncol == ncol - 1:
            ax2.set_ylabel("val DSC (dashed)", fontsize=8)
        if i >= len(losses) - ncol:
            ax.set_xlabel("iteration", fontsize=8)
    if len(lrs) > 1:
        fig.legend(
            *fig.axes[0].get_legend_handles_labels(),
            loc="lower center",
            ncol=len(lrs),
            fontsize=8,
            frameon=False,
        )
    fig.suptitle(
        f"{task}: training curves (solid: training loss per epoch; dashed: validation DSC)", fontsize=10
    )
    fig.tight_layout(rect=(0, 0.03 if len(lrs) > 1 else 0, 1, 0.96))
    return save_png(fig, path)


def _overlay(pic: np.ndarray, label: np.ndarray) -> np.ndarray:
    return overlay(pic, label, alpha=0.55)


def plot_overlays(
    res: Results, task: str, best: str, worst: str, n_cases: int, path: Path
) -> Optional[Tuple[Path, List[str]]]:
    """Image, ground truth, best and worst loss on the hardest test cases (lowest mean DSC)."""
    sel = res.selected[(res.selected["task"] == task) & (res.selected["status"] == "finished")]
    if sel.empty:
        return None
    run_of = dict(zip(sel["loss"], sel["run_id"]))
    sub = res.cases[(res.cases["task"] == task) & (res.cases["method"].isin(sel["loss"]))]
    hardness = sub.groupby("case")["dsc"].mean().sort_values()
    display = res.display.get(task, {})
    cases = [c for c in hardness.index if c in display][:n_cases]
    if not cases:
        return None
    columns = [("image", None), ("ground truth", None), (f"best: {best}", best), (f"worst: {worst}", worst)]
    fig = new_figure(2.6 * len(columns), 3.0 * len(cases) + 0.4)
    for i, cid in enumerate(cases):
        d = display[cid]
        for j, (title, loss) in enumerate(columns):
            ax = fig.add_subplot(len(cases), len(columns), i * len(columns) + j + 1)
            ax.set_axis_off()
            if j == 0:
                ax.imshow(d["image"], cmap="gray", interpolation="nearest")
                ax.set_title(f"{cid}\n(mean DSC {hardness[cid]:.2f})", fontsize=8)
                continue
            if loss is None:
                lab = d["label"]
                ax.set_title(title, fontsize=8)
            else:
                # with folds, the run that tested this case (its fold's run, smallest seed)
                rid = sub[(sub["method"] == loss) & (sub["case"] == cid)]["run_id"] if "run_id" in sub else ()
                rid = int(rid.iloc[0]) if len(rid) and rid.iloc[0] == rid.iloc[0] else int(run_of[loss])
                pred = res.predictions.get(rid, {}).get(cid)
                if pred is None:
                    ax.text(0.5, 0.5, "no prediction", ha="center", transform=ax.transAxes)
                    continue
                lab = pred
                dsc = sub[(sub["method"] == loss) & (sub["case"] == cid)]["dsc"]
                ax.set_title(f"{title}\nDSC {float(dsc.iloc[0]):.2f}" if not dsc.empty else title, fontsize=8)
            ax.imshow(_overlay(d["image"], np.asarray(lab)), interpolation="nearest")
    fig.suptitle(f"{task}: hardest test cases", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.97), h_pad=1.5)
    return save_png(fig, path), cases


def plot_metric_sets(comparison, path: Path) -> Path:
    """Rank of each loss under each metric set (Ma et al. Fig. 11) as an annotated heat map:
    rows are losses (in DSC + NSD rank order), columns metric sets, the number is the rank."""
    ranks = comparison.ranks
    sets = list(ranks.columns)
    n = len(ranks)
    fig = new_figure(max(4.0, 1.1 * len(sets) + 2.4), 0.9 + 0.3 * max(n, 2))
    ax = fig.add_subplot(1, 1, 1)
    values = ranks.to_numpy(dtype=float)
    im = ax.imshow(values, cmap="viridis_r", vmin=1, vmax=max(n, 2), aspect="auto")
    for i in range(n):
        for j in range(len(sets)):
            v = values[i, j]
            ax.text(
                j,
                i,
                f"{int(v)}",
                ha="center",
                va="center",
                fontsize=8,
                color="black" if v < 0.5 * (n + 1) else "white",
            )
    ax.set_xticks(range(len(sets)), labels=sets)
    ax.xaxis.tick_top()
    ax.set_yticks(range(n), labels=[str(m) for m in ranks.index], fontsize=8)
    cb = fig.colorbar(im, ax=ax, fraction=0.05, pad=0.02)
    cb.set_label("rank (1 = best)", fontsize=8)
    ax.set_title("Rank under different metric sets", fontsize=10, pad=22)
    fig.tight_layout()
    return save_png(fig, path)
