"""Significance ranking of segmentation methods and the stability of that ranking.

The ranking scheme is the one Ma et al. (2021, section 3.4) took from the Medical Segmentation
Decathlon: for every task ``t`` and metric ``j``, every pair of methods is compared with a one-sided
Wilcoxon signed-rank test on the per-case differences; a method's significance score
``score_tj`` is the number of other methods it beats at level ``alpha``; the *rank score* is the
mean of the scores over tasks and metrics,

.. math::

    \\text{RankScore}(l) = \\frac{1}{T\\,J} \\sum_{t=1}^{T} \\sum_{j=1}^{J} score_{tj}(l),

and methods are ranked by decreasing rank score. Two mean-rank alternatives (challengeR's
aggregate-then-rank and rank-then-aggregate with the mean) are offered by ``variant``. Rank
stability follows Wiesenfarth et al. (2021): resample cases with replacement, re-rank, and report
Kendall's tau against the full ranking and each method's bootstrap rank distribution. The effect
of the metric choice (Ma et al. 2021, Fig. 11) is :func:`ranking_by_metric_sets`.

Conventions, decided once (all documented in :func:`significance_ranking`):

* **Input**: a long ("tidy") table, one row per method x task x case, one column per metric;
  a path to a CSV file is read with :func:`pandas.read_csv`.
* **Directions**: ``"higher"`` or ``"lower"`` is better, per metric. :func:`metric_direction`
  gives the default for a name (distances such as ``hd95``, ``assd`` are lower-is-better).
* **Missing results** (no row, NaN, +-inf) get the metric's worst value before ranking, so every
  method is ranked on the same cases.
* **Ties** share the smallest rank (``1, 1, 3``: R's ``ties.method="min"``, challengeR's default).
* **Pairs whose differences are all zero** are never significant (p = 1).

This module needs only numpy, scipy and pandas (matplotlib lazily, for the plots); it never
imports torch.

References
----------
.. [1] Ma J, Chen J, Ng M, et al. Loss odyssey in medical image segmentation. Medical Image
   Analysis 71 (2021) 102035. doi:10.1016/j.media.2021.102035
.. [2] Maier-Hein L, Eisenmann M, Reinke A, et al. Why rankings of biomedical image analysis
   competitions should be interpreted with care. Nature Communications 9 (2018) 5217.
   doi:10.1038/s41467-018-07619-7
.. [3] Wiesenfarth M, Reinke A, Landman BA, et al. Methods and open-source toolkit for analyzing
   and visualizing challenge results (challengeR). Scientific Reports 11 (2021) 2369.
   doi:10.1038/s41598-021-82017-6
.. [4] Antonelli M, Reinke A, Bakas S, et al. The Medical Segmentation Decathlon. Nature
   Communications 13 (2022) 4128. doi:10.1038/s41467-022-30695-9
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

__all__ = [
    "DEFAULT_METRICS",
    "DEFAULT_METRIC_SETS",
    "VARIANTS",
    "MetricSetComparison",
    "RankStability",
    "metric_direction",
    "pairwise_pvalues",
    "plot_rank_stability",
    "plot_ranking",
    "rank_stability",
    "ranking_by_metric_sets",
    "significance_ranking",
    "wilcoxon_signed_rank_pvalue",
]

#: The metrics of Ma et al. (2021): DSC and NSD, both higher-is-better.
DEFAULT_METRICS: dict[str, str] = {"dsc": "higher", "nsd": "higher"}

#: The metric sets compared in Ma et al. (2021), Fig. 11.
DEFAULT_METRIC_SETS: dict[str, dict[str, str]] = {
    "DSC+NSD": {"dsc": "higher", "nsd": "higher"},
    "DSC": {"dsc": "higher"},
    "NSD": {"nsd": "higher"},
    "HD95": {"hd95": "lower"},
}

#: Ranking variants: Ma et al.'s significance ranking and challengeR's two mean-rank schemes.
VARIANTS = ("significance", "mean_then_rank", "rank_then_mean")

TableLike = pd.DataFrame | str | os.PathLike
MetricsLike = Mapping[str, str] | Sequence[str] | str

_DIRECTIONS = ("higher", "lower")
_LOWER_EXACT = {"assd", "asd", "asssd", "masd", "msd", "mad"}
_LOWER_PREFIXES = ("hd", "hausdorff")
_LOWER_SUBSTRINGS = ("distance",)
# Elements in one vectorised batch of the signed-rank test (about 100 MB of temporaries).
_BATCH_ELEMENTS = 2_000_000


# --------------------------------------------------------------------------------------------
# Wilcoxon signed-rank test, vectorised
# --------------------------------------------------------------------------------------------


def _signed_rank_statistics(d: np.ndarray):
    """``(r_plus, count, se)`` of the signed-rank test along the last axis of ``d``.

    Zeros are dropped (Wilcoxon's treatment); ``r_plus`` is the sum of the average ranks of
    ``|d|`` (among the non-zero differences) where ``d > 0``; ``se`` includes the tie
    correction. Same operations, in the same order, as ``scipy.stats.wilcoxon``.
    """
    n = d.shape[-1]
    a = np.abs(d)
    order = np.argsort(a, axis=-1, kind="stable")
    s = np.take_along_axis(a, order, axis=-1)
    positive = np.take_along_axis(d, order, axis=-1) > 0
    pos = np.arange(n)
    starts = np.ones(s.shape, dtype=bool)
    starts[..., 1:] = s[..., 1:] != s[..., :-1]
    ends = np.ones(s.shape, dtype=bool)
    ends[..., :-1] = starts[..., 1:]
    first = np.maximum.accumulate(np.where(starts, pos, 0), axis=-1)
    last = np.flip(np.minimum.accumulate(np.flip(np.where(ends, pos, n - 1), axis=-1), axis=-1), axis=-1)
    nonzero = s != 0
    n_zero = n - nonzero.sum(axis=-1)
    # Zeros sort first, so a non-zero difference's rank among the non-zero ones is its rank
    # among all minus the number of zeros.
    rank = (first + last) * 0.5 + 1.0 - n_zero[..., None]
    r_plus = np.sum(np.where(positive, rank, 0.0), axis=-1)
    ties = (last - first + 1).astype(np.float64)
    # Each element of a tie group of size t contributes t^2 - 1, so a group adds t^3 - t.
    tie_correct = np.sum(np.where(nonzero, ties * ties - 1.0, 0.0), axis=-1)
    count = (n - n_zero).astype(np.float64)
    se = count * (count + 1.0) * (2.0 * count + 1.0)
    se = np.sqrt((se - tie_correct / 2) / 24)
    return r_plus, count, se


def _pvalue_from_rplus(r_plus, count, se, alternative: str):
    mn = count * (count + 1.0) * 0.25
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (r_plus - mn) / se
        if alternative == "greater":
            z = z - 0.5 / se
            p = special.ndtr(-z)
        elif alternative == "less":
            z = z + 0.5 / se
            p = special.ndtr(z)
        else:
            z = z - np.sign(z) * 0.5 / se
            p = 2 * special.ndtr(-np.abs(z))
    # No non-zero difference: nothing to test, never significant.
    return np.where(count > 0, p, 1.0)


def wilcoxon_signed_rank_pvalue(x, y=None, *, alternative: str = "greater", axis: int = -1) -> np.ndarray:
    """p-value of the Wilcoxon signed-rank test, normal approximation, vectorised.

    Tests the paired differences ``d = x - y`` (or ``x`` alone) along ``axis``. Zeros are dropped
    (``zero_method="wilcox"``), ties get average ranks, and the normal approximation uses the tie
    correction and a continuity correction of 1/2:

    .. math::

        z = \\frac{R^+ - n(n+1)/4 - c}{\\sqrt{n(n+1)(2n+1)/24 - \\sum_g (t_g^3 - t_g)/48}},
        \\qquad p_{greater} = 1 - \\Phi(z),

    with ``n`` the number of non-zero differences, ``R+`` the sum of the ranks of ``|d|`` over the
    positive differences, ``t_g`` the tie-group sizes and ``c = 1/2`` (``-1/2`` for ``"less"``,
    ``sign(z)/2`` for two-sided). This is ``scipy.stats.wilcoxon(x, y, zero_method="wilcox",
    correction=True, method="approx", alternative=...)`` and R's ``wilcox.test(x, y,
    paired=TRUE, exact=FALSE, correct=TRUE)``, but for all rows at once (the ranking runs it on
    every pair of methods of every bootstrap sample).

    Parameters
    ----------
    x, y : array_like
        Paired samples; ``y=None`` tests ``x`` itself against 0.
    alternative : {"greater", "less", "two-sided"}
        ``"greater"``: the differences tend to be positive.
    axis : int
        The axis of the cases.

    Returns
    -------
    numpy.ndarray
        p-values, the shape of ``x - y`` without ``axis``. Where every difference is zero the
        p-value is 1.0 (scipy returns NaN with a division warning; R returns 1 for one-sided
        alternatives): the pair is not significantly different.

    Examples
    --------
    Six positive differences, no ties: ``R+ = 21``, ``z = (21 - 10.5 - 0.5) / sqrt(22.75)``.

    >>> p = wilcoxon_signed_rank_pvalue([1.0, 2, 3, 4, 5, 6])
    >>> round(float(p), 6)
    0.018016
    >>> float(wilcoxon_signed_rank_pvalue([0.5, 0.5], [0.5, 0.5]))
    1.0
    """
    if alternative not in ("greater", "less", "two-sided"):
        raise ValueError(f"alternative: expected 'greater', 'less' or 'two-sided', got {alternative!r}")
    d = np.asarray(x, dtype=np.float64)
    if y is not None:
        d = d - np.asarray(y, dtype=np.float64)
    d = np.moveaxis(d, axis, -1)
    if d.shape[-1] == 0:
        raise ValueError("x: no cases along `axis`")
    if not np.all(np.isfinite(d)):
        raise ValueError("x: differences must be finite (substitute missing values first)")
    r_plus, count, se = _signed_rank_statistics(d)
    return _pvalue_from_rplus(r_plus, count, se, alternative)


def _pairwise_wins(x: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Significance wins. ``x``: (B, M, n) values oriented so that higher is better.

    Returns ``wins`` (B, M): how many other methods each one beats (one-sided p < alpha), and
    ``pvalues`` (B, M, M): ``p[b, i, j]`` tests "method i better than method j" (diagonal NaN).
    """
    n_boot, n_methods, _ = x.shape
    first, second = np.triu_indices(n_methods, 1)
    pvalues = np.full((n_boot, n_methods, n_methods), np.nan)
    if first.size:
        d = x[:, first, :] - x[:, second, :]  # (B, P, n); (j - i) is exactly -(i - j)
        r_plus, count, se = _signed_rank_statistics(d)
        r_minus = count * (count + 1.0) * 0.5 - r_plus
        pvalues[:, first, second] = _pvalue_from_rplus(r_plus, count, se, "greater")
        pvalues[:, second, first] = _pvalue_from_rplus(r_minus, count, se, "greater")
    with np.errstate(invalid="ignore"):
        wins = (pvalues < alpha).sum(axis=-1)
    return wins, pvalues


def _min_rank(values: np.ndarray, higher_is_better: bool, axis: int = -1) -> np.ndarray:
    """Competition ranks ("min" ties: 1, 1, 3) along ``axis``; 1 is the best."""
    v = np.moveaxis(values, axis, -1)
    if higher_is_better:
        better = v[..., None, :] > v[..., :, None]
    else:
        better = v[..., None, :] < v[..., :, None]
    return np.moveaxis(1 + better.sum(axis=-1), -1, axis)


# --------------------------------------------------------------------------------------------
# Input preparation
# --------------------------------------------------------------------------------------------


def metric_direction(name: str) -> str:
    """Default direction of a metric name: ``"lower"`` for distances, else ``"higher"``.

    Lower is better for names starting with ``hd`` or ``hausdorff`` (``hd``, ``hd95``), for
    ``assd``/``asd``/``masd``/``msd``/``mad``, and for names containing ``distance``; every other
    metric (``dsc``, ``nsd``, ``iou``, ...) is higher-is-better. Case-insensitive.

    Examples
    --------
    >>> metric_direction("HD95"), metric_direction("nsd"), metric_direction("surface_distance")
    ('lower', 'higher', 'lower')
    """
    n = str(name).strip().lower()
    if n in _LOWER_EXACT or n.startswith(_LOWER_PREFIXES) or any(s in n for s in _LOWER_SUBSTRINGS):
        return "lower"
    return "higher"


def _normalise_metrics(metrics: MetricsLike, argument: str = "metrics") -> dict[str, str]:
    if isinstance(metrics, str):
        metrics = [m for m in (p.strip() for p in metrics.split(",")) if m]
    if isinstance(metrics, Mapping):
        items = [(str(k), v) for k, v in metrics.items()]
    else:
        items = []
        for m in metrics:
            name, _, direction = str(m).partition(":")
            items.append((name.strip(), direction.strip() or None))
    out: dict[str, str] = {}
    for name, direction in items:
        if not name:
            raise ValueError(f"{argument}: empty metric name in {metrics!r}")
        direction = metric_direction(name) if direction is None else str(direction).strip().lower()
        if direction not in _DIRECTIONS:
            raise ValueError(
                f"{argument}: direction of metric {name!r} must be 'higher' or 'lower', got {direction!r}"
            )
        out[name] = direction
    if not out:
        raise ValueError(f"{argument}: at least one metric is required")
    return out


def _load_table(table: TableLike) -> pd.DataFrame:
    if isinstance(table, pd.DataFrame):
        return table
    if isinstance(table, (str, os.PathLike)):
        path = Path(table)
        if not path.is_file():
            raise FileNotFoundError(f"table: no such file: '{path}'")
        return pd.read_csv(path)
    raise TypeError(f"table: expected a pandas.DataFrame or a path to a CSV file, got {type(table).__name__}")


def _resolve_column(df: pd.DataFrame, name: str, argument: str) -> Any:
    """The column called ``name``; else the unique column equal to it ignoring case."""
    if name in df.columns:
        return name
    matches = [c for c in df.columns if str(c).lower() == str(name).lower()]
    if len(matches) == 1:
        return matches[0]
    available = ", ".join(repr(str(c)) for c in df.columns)
    raise ValueError(f"{argument}: column {name!r} not in the table; available columns: {available}")


def _sorted_unique(values) -> list:
    unique = list(pd.unique(pd.Series(values)))
    try:
        return sorted(unique)
    except TypeError:
        return sorted(unique, key=str)


@dataclasses.dataclass
class _Block:
    task: str
    metric: str
    direction: str
    values: np.ndarray  # (methods, cases), after substitution, original orientation
    n_substituted: int

    @property
    def oriented(self) -> np.ndarray:
        return self.values if self.direction == "higher" else -self.values


@dataclasses.dataclass
class _Prepared:
    methods: list
    method_name: str
    tasks: list[str]
    cases: dict[str, list]
    metrics: dict[str, str]
    blocks: list[_Block]


def _prepare(
    table: TableLike,
    *,
    method: str,
    case: str,
    task: str | Sequence[str] | None,
    metrics: MetricsLike,
    missing: str,
    worst_values: Mapping[str, float] | None,
    diagonal: str | float | None,
) -> _Prepared:
    df = _load_table(table)
    if missing not in ("worst", "raise"):
        raise ValueError(f"missing: expected 'worst' or 'raise', got {missing!r}")
    metrics = _normalise_metrics(metrics)
    if len(df) == 0:
        raise ValueError("table: the table has no rows")
    method_col = _resolve_column(df, method, "method")
    case_col = _resolve_column(df, case, "case")
    if task is None:
        task_cols: list = []
    elif isinstance(task, str):
        task_cols = [_resolve_column(df, task, "task")]
    else:
        task_cols = [_resolve_column(df, t, "task") for t in task]
    metric_cols = {m: _resolve_column(df, m, "metrics") for m in metrics}
    worst_values = dict(worst_values or {})
    for m, w in worst_values.items():
        if m not in metrics:
            raise ValueError(f"worst_values: {m!r} is not one of the ranked metrics {list(metrics)}")
        if not math.isfinite(float(w)):
            raise ValueError(f"worst_values: the worst value of {m!r} must be finite, got {w!r}")
    diagonal_col = None
    if isinstance(diagonal, str):
        diagonal_col = _resolve_column(df, diagonal, "diagonal")
    elif diagonal is not None and not (math.isfinite(float(diagonal)) and float(diagonal) > 0):
        raise ValueError(f"diagonal: expected a column name or a positive finite number, got {diagonal!r}")

    keys = [method_col, *task_cols, case_col]
    for k in keys:
        if df[k].isna().any():
            raise ValueError(f"{k!r}: {int(df[k].isna().sum())} row(s) have no value in this key column")
    dup = df.duplicated(subset=keys, keep=False)
    if dup.any():
        example = df.loc[dup, keys].head(3).to_dict("records")
        raise ValueError(
            f"table: {int(dup.sum())} rows repeat a (method, task, case) key, e.g. {example}; "
            "one row per method x task x case is expected (add the distinguishing column to `task`)"
        )
    data = {}
    for m, col in metric_cols.items():
        try:
            data[m] = pd.to_numeric(df[col], errors="raise").astype(np.float64)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"metrics: column {str(col)!r} is not numeric ({exc})") from None
    if task_cols:
        labels = df[task_cols[0]].astype(str)
        for col in task_cols[1:]:
            labels = labels + "/" + df[col].astype(str)
    else:
        labels = pd.Series([""] * len(df), index=df.index)
    frame = pd.DataFrame({"_method": df[method_col], "_task": labels, "_case": df[case_col], **data})
    if diagonal_col is not None:
        frame["_diagonal"] = pd.to_numeric(df[diagonal_col], errors="coerce")

    methods = _sorted_unique(frame["_method"])
    tasks = _sorted_unique(frame["_task"])
    cases: dict[str, list] = {}
    blocks: list[_Block] = []
    for t in tasks:
        sub = frame[frame["_task"] == t]
        cases[t] = _sorted_unique(sub["_case"])
        for m, direction in metrics.items():
            wide = sub.pivot(index="_method", columns="_case", values=m).reindex(
                index=methods, columns=cases[t]
            )
            values = wide.to_numpy(dtype=np.float64, copy=True)
            bad = ~np.isfinite(values)
            if bad.any() and missing == "raise":
                i, j = np.argwhere(bad)[0]
                raise ValueError(
                    f"missing: {int(bad.sum())} missing or non-finite {m!r} value(s) in task {t!r}, "
                    f"e.g. method {methods[i]!r} case {cases[t][j]!r}; use missing='worst' to substitute"
                )
            if bad.any():
                values[bad] = np.broadcast_to(
                    _worst_value(
                        values, bad, m, direction, worst_values, diagonal, diagonal_col, sub, cases[t]
                    ),
                    values.shape,
                )[bad]
            blocks.append(_Block(t, m, direction, values, int(bad.sum())))
    return _Prepared(methods, str(method_col), tasks, cases, metrics, blocks)


def _worst_value(values, bad, metric, direction, worst_values, diagonal, diagonal_col, sub, cases):
    """The substitute for missing values of one task x metric: scalar or per case (1, n)."""
    if metric in worst_values:
        return float(worst_values[metric])
    observed = values[~bad]
    if direction == "higher":
        # 0 is the floor of overlap scores (Ma et al., footnote 10); lower if values go below 0.
        return min(0.0, float(observed.min())) if observed.size else 0.0
    fallback = float(observed.max()) if observed.size else 0.0
    if diagonal_col is not None:
        per_case = sub.groupby("_case")["_diagonal"].max().reindex(cases).to_numpy(dtype=np.float64)
        per_case = np.where(np.isfinite(per_case) & (per_case > 0), per_case, fallback)
        return per_case[None, :]
    if diagonal is not None:
        return float(diagonal)
    return fallback


# --------------------------------------------------------------------------------------------
# Ranking core (batched over bootstrap samples)
# --------------------------------------------------------------------------------------------


def _block_points(oriented: np.ndarray, idx: np.ndarray, variant: str, alpha: float):
    """Per-block points for a batch of case index vectors ``idx`` (B, k).

    significance: wins (higher is better); mean variants: the within-block rank (lower better).
    Also returns the per-method display value of the block (B, M).
    """
    x = np.moveaxis(oriented[:, idx], 0, 1)  # (B, M, k)
    if variant == "significance":
        wins, _ = _pairwise_wins(x, alpha)
        return wins, wins
    if variant == "mean_then_rank":
        means = x.mean(axis=-1)
        return _min_rank(means, higher_is_better=True), means
    case_ranks = _min_rank(x, higher_is_better=True, axis=1)  # (B, M, k), per case
    totals = case_ranks.sum(axis=-1)
    return _min_rank(totals, higher_is_better=False), totals / x.shape[-1]


def _final_rank(total: np.ndarray, variant: str) -> np.ndarray:
    return _min_rank(total, higher_is_better=(variant == "significance"))


def _check_variant(variant: str, alpha: float) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"variant: expected one of {VARIANTS}, got {variant!r}")
    if not (0.0 < float(alpha) < 1.0):
        raise ValueError(f"alpha: expected a significance level in (0, 1), got {alpha!r}")


def _label(prefix: str, task: str, metric: str) -> str:
    return ":".join(p for p in (prefix, task, metric) if p != "")


def _rank_prepared(prep: _Prepared, variant: str, alpha: float) -> pd.DataFrame:
    columns: dict[str, np.ndarray] = {}
    total = np.zeros(len(prep.methods), dtype=np.float64)
    for block in prep.blocks:
        idx = np.arange(block.values.shape[1])[None, :]
        points, shown = _block_points(block.oriented, idx, variant, alpha)
        total += points[0]
        if variant == "significance":
            columns[_label("score", block.task, block.metric)] = points[0].astype(np.int64)
        else:
            if variant == "mean_then_rank":
                columns[_label("mean", block.task, block.metric)] = block.values.mean(axis=1)
            else:
                columns[_label("case_rank", block.task, block.metric)] = shown[0]
            columns[_label("rank", block.task, block.metric)] = points[0].astype(np.int64)
    n_blocks = len(prep.blocks)
    score_column = "rank_score" if variant == "significance" else "mean_rank"
    columns[score_column] = total / n_blocks
    columns["rank"] = _final_rank(total, variant).astype(np.int64)
    out = pd.DataFrame(columns, index=pd.Index(prep.methods, name=prep.method_name))
    order = sorted(range(len(prep.methods)), key=lambda i: (out["rank"].iloc[i], str(prep.methods[i])))
    out = out.iloc[order]
    out.attrs.update(
        {
            "variant": variant,
            "alpha": float(alpha),
            "metrics": dict(prep.metrics),
            "tasks": list(prep.tasks),
            "n_cases": {t: len(c) for t, c in prep.cases.items()},
            "n_substituted": {_label("", b.task, b.metric): b.n_substituted for b in prep.blocks},
            "score_column": score_column,
            "higher_is_better": variant == "significance",
        }
    )
    return out


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def significance_ranking(
    table: TableLike,
    *,
    method: str = "method",
    case: str = "case",
    task: str | Sequence[str] | None = "task",
    metrics: MetricsLike = DEFAULT_METRICS,
    alpha: float = 0.05,
    missing: str = "worst",
    variant: str = "significance",
    worst_values: Mapping[str, float] | None = None,
    diagonal: str | float | None = None,
) -> pd.DataFrame:
    """Rank methods by the significance ranking of Ma et al. (2021) / the Decathlon.

    For every task ``t`` and metric ``j`` and every ordered pair of methods ``(l, l')``, a
    one-sided Wilcoxon signed-rank test on the per-case differences
    ``m_j(l, case_tk) - m_j(l', case_tk)`` (alternative: ``l`` is better; for a lower-is-better
    metric the differences are negated). ``score_tj(l)`` is the number of methods ``l`` beats
    with ``p < alpha``, and

    .. math::

        \\text{rank\\_score}(l) = \\frac{1}{T J}\\sum_t\\sum_j score_{tj}(l).

    Methods are ranked by decreasing ``rank_score``; equal scores share the smallest rank
    (competition ranking 1, 1, 3, R's ``ties.method="min"`` as in challengeR). The test is the
    normal approximation with tie and continuity corrections, zeros dropped: the p-values equal
    ``scipy.stats.wilcoxon(zero_method="wilcox", correction=True, method="approx")`` and R's
    ``wilcox.test(paired=TRUE, exact=FALSE, correct=TRUE)`` (see
    :func:`wilcoxon_signed_rank_pvalue`, which computes them for all pairs at once). A pair
    whose differences are all zero is not significant either way. Differences are compared
    exactly as floats, like scipy and R: values that should tie but differ in the last bit (e.g.
    ``0.9 - 0.8`` vs ``0.8 - 0.7``) do not tie; round the table first if that matters.

    Parameters
    ----------
    table : pandas.DataFrame or path
        Long table, one row per method x task x case, a numeric column per metric; a ``str`` or
        ``PathLike`` is read as CSV.
    method, case : str
        Key columns (default ``"method"``, ``"case"``).
    task : str, sequence of str or None
        Task column (default ``"task"``); several columns (e.g. ``["task", "label"]``) make one
        task per combination, labelled ``"liver/1"``; ``None`` ranks a single-task table.
    metrics : mapping, sequence or str
        ``{"dsc": "higher", "hd95": "lower"}``; or names (``["dsc", "hd95:lower"]`` or
        ``"dsc,nsd"``) whose direction defaults to :func:`metric_direction`. Default DSC and NSD,
        the metrics of Ma et al. Column names match exactly, else case-insensitively if unique.
    alpha : float
        Significance level; ``p < alpha`` counts as significant (Ma et al.: 0.05).
    missing : {"worst", "raise"}
        ``"worst"`` (default): a missing value -- no row for a method x case that another method
        has, NaN, or +-inf -- gets the metric's worst value, so that every method is ranked on
        the same cases and a failed prediction is penalised, never silently dropped. The worst
        value is, in this order: ``worst_values[metric]``; for higher-is-better metrics 0
        (Ma et al. footnote 10: DSC/NSD of an empty prediction), or the lowest observed value if
        that is below 0; for lower-is-better metrics the image diagonal in mm of that case (from
        ``diagonal``) else the worst (largest) finite value observed over all methods for that
        task x metric. Cases that no method has are absent. ``"raise"``: error on any missing value.
    variant : {"significance", "mean_then_rank", "rank_then_mean"}
        ``"significance"`` (default) is the scheme above. The two mean-rank variants rank the
        methods within each task x metric, then average those ranks over tasks and metrics
        (column ``mean_rank``, lower is better) and rank that mean (ties "min"): within a task,
        ``"mean_then_rank"`` ranks the per-method mean over cases (challengeR's
        aggregate-then-rank with the mean, Maier-Hein et al.'s "metric-based" ranking) and
        ``"rank_then_mean"`` ranks the methods on every case, averages those per-case ranks
        and ranks the averages (challengeR's rank-then-aggregate, "case-based"). These are
        options for comparison; the Decathlon and Ma et al. use ``"significance"``.
    worst_values : mapping, optional
        Explicit substitute per metric, e.g. ``{"hd95": 500.0}``.
    diagonal : str or float, optional
        Column with the image diagonal in mm per case (or one number for all cases): the
        substitute for missing lower-is-better (distance) values.

    Returns
    -------
    pandas.DataFrame
        Indexed by method, sorted by rank (then name). ``"significance"``: ``score:<task>:<metric>``
        (int) per task x metric, ``rank_score``, ``rank``. Mean variants:
        ``mean:<task>:<metric>`` (``mean_then_rank``, the mean metric value) or
        ``case_rank:<task>:<metric>`` (``rank_then_mean``, the mean per-case rank),
        ``rank:<task>:<metric>``, ``mean_rank``, ``rank``. Without a task column the task part of
        the names is left out (``score:dsc``). ``DataFrame.attrs`` records the variant, alpha,
        metrics, tasks, number of cases per task and the number of substituted values per
        task x metric.

    Raises
    ------
    ValueError
        Unknown column (the message lists the available ones), repeated method x task x case
        rows, a non-numeric metric column, bad ``variant``/``alpha``/direction.
    FileNotFoundError
        ``table`` is a path that does not exist.

    References
    ----------
    Ma et al. (2021), section 3.4, doi:10.1016/j.media.2021.102035; Antonelli et al. (2022),
    doi:10.1038/s41467-022-30695-9; Maier-Hein et al. (2018), doi:10.1038/s41467-018-07619-7;
    Wiesenfarth et al. (2021), doi:10.1038/s41598-021-82017-6.

    Examples
    --------
    Three methods, six cases; ``a`` beats ``b`` and ``b`` beats ``c`` on every case
    (p = 0.018 < 0.05, see :func:`wilcoxon_signed_rank_pvalue`):

    >>> import pandas as pd
    >>> rows = [(m, "liver", k, v - 0.1 * i)
    ...         for i, m in enumerate("abc") for k, v in enumerate([0.9, 0.8, 0.85, 0.7, 0.95, 0.75])]
    >>> table = pd.DataFrame(rows, columns=["method", "task", "case", "dsc"])
    >>> significance_ranking(table, metrics={"dsc": "higher"})  # doctest: +NORMALIZE_WHITESPACE
            score:liver:dsc  rank_score  rank
    method
    a                     2         2.0     1
    b                     1         1.0     2
    c                     0         0.0     3
    """
    _check_variant(variant, alpha)
    prep = _prepare(
        table,
        method=method,
        case=case,
        task=task,
        metrics=metrics,
        missing=missing,
        worst_values=worst_values,
        diagonal=diagonal,
    )
    return _rank_prepared(prep, variant, alpha)


def pairwise_pvalues(
    table: TableLike,
    *,
    method: str = "method",
    case: str = "case",
    task: str | Sequence[str] | None = "task",
    metrics: MetricsLike = DEFAULT_METRICS,
    alpha: float = 0.05,
    missing: str = "worst",
    worst_values: Mapping[str, float] | None = None,
    diagonal: str | float | None = None,
) -> pd.DataFrame:
    """The one-sided p-values behind :func:`significance_ranking`, as a long table.

    One row per task x metric x ordered pair: ``p_value`` tests "``method`` is better than
    ``other``" (the direction of the metric applied), ``significant`` is ``p_value < alpha``.
    Same arguments and missing-value substitution as :func:`significance_ranking`.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"method": ["a"] * 6 + ["b"] * 6, "case": list(range(6)) * 2,
    ...                   "hd95": [1.0, 2, 3, 4, 5, 6] + [2.0, 4, 6, 8, 10, 12]})
    >>> pairwise_pvalues(t, task=None, metrics="hd95").round(6)
      task metric method other   p_value  significant
    0        hd95      a     b  0.018016         True
    1        hd95      b     a  0.989451        False
    """
    _check_variant("significance", alpha)
    prep = _prepare(
        table,
        method=method,
        case=case,
        task=task,
        metrics=metrics,
        missing=missing,
        worst_values=worst_values,
        diagonal=diagonal,
    )
    rows = []
    for block in prep.blocks:
        x = block.oriented[None, :, :]
        _, p = _pairwise_wins(x, alpha)
        for i, a in enumerate(prep.methods):
            for j, b in enumerate(prep.methods):
                if i != j:
                    rows.append((block.task, block.metric, a, b, float(p[0, i, j]), bool(p[0, i, j] < alpha)))
    return pd.DataFrame(rows, columns=["task", "metric", "method", "other", "p_value", "significant"])


def _kendall_tau(reference: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Kendall's tau-b between ``reference`` (M,) and each row of ``others`` (B, M).

    The tau-b of :func:`scipy.stats.kendalltau` (tests check equality to 1e-12), computed for all
    rows at once: ``(concordant - discordant) / sqrt((n0 - ties_x) (n0 - ties_y))`` over the
    ``n0`` pairs. NaN where either ranking is constant (all methods tied), as in scipy.
    """
    reference = np.asarray(reference, dtype=np.float64)
    others = np.atleast_2d(np.asarray(others, dtype=np.float64))
    first, second = np.triu_indices(reference.shape[0], 1)
    sx = np.sign(reference[first] - reference[second])
    sy = np.sign(others[:, first] - others[:, second])
    n0 = float(first.size)
    denominator = np.sqrt((n0 - np.sum(sx == 0)) * (n0 - np.sum(sy == 0, axis=-1)))
    with np.errstate(divide="ignore", invalid="ignore"):
        tau = np.sum(sx * sy, axis=-1) / denominator
    return np.where(denominator > 0, np.clip(tau, -1.0, 1.0), np.nan)


@dataclasses.dataclass
class RankStability:
    """Bootstrap rank stability (see :func:`rank_stability`).

    Attributes
    ----------
    ranking : pandas.DataFrame
        The ranking on all cases (:func:`significance_ranking`).
    bootstrap_ranks : pandas.DataFrame
        ``n_bootstrap`` x methods: the rank of each method in each bootstrap sample.
    kendall_tau : pandas.Series
        Kendall's tau-b (as :func:`scipy.stats.kendalltau`) between the full ranking and each
        bootstrap ranking (NaN where a ranking is constant, e.g. all methods tied).
    rank_counts : pandas.DataFrame
        Methods x ranks 1..M: how many bootstrap samples gave each rank (challengeR's blob plot).
    summary : pandas.DataFrame
        Per method (sorted by full rank): ``rank`` (full data), ``median``, ``mean``, ``q025``,
        ``q975`` (2.5 % and 97.5 % quantiles, numpy's linear rule = R's type 7), ``min``,
        ``max``, ``same_rank`` (fraction of bootstrap samples giving the full-data rank).
    indices : dict
        Task -> (n_bootstrap, n_cases) int array: the resampled case positions (into ``cases``).
    cases : dict
        Task -> the case ids of that task, in the order ``indices`` refers to.
    n_bootstrap, seed : int
    """

    ranking: pd.DataFrame
    bootstrap_ranks: pd.DataFrame
    kendall_tau: pd.Series
    rank_counts: pd.DataFrame
    summary: pd.DataFrame
    indices: dict
    cases: dict
    n_bootstrap: int
    seed: int | None

    def tau_summary(self) -> dict:
        """Median, mean, 2.5 % and 97.5 % quantiles of Kendall's tau (NaNs ignored)."""
        tau = self.kendall_tau.dropna().to_numpy()
        if tau.size == 0:
            return {"median": float("nan"), "mean": float("nan"), "q025": float("nan"), "q975": float("nan")}
        return {
            "median": float(np.median(tau)),
            "mean": float(tau.mean()),
            "q025": float(np.quantile(tau, 0.025)),
            "q975": float(np.quantile(tau, 0.975)),
        }


def rank_stability(
    table: TableLike,
    *,
    method: str = "method",
    case: str = "case",
    task: str | Sequence[str] | None = "task",
    metrics: MetricsLike = DEFAULT_METRICS,
    alpha: float = 0.05,
    missing: str = "worst",
    variant: str = "significance",
    worst_values: Mapping[str, float] | None = None,
    diagonal: str | float | None = None,
    n_bootstrap: int = 1000,
    seed: int | None = 0,
) -> RankStability:
    """Stability of the ranking under bootstrap resampling of the cases (challengeR).

    Each bootstrap sample draws, per task, ``n_t`` cases with replacement out of that task's
    ``n_t`` cases (the same draw for every method and metric of the task: cases are the
    sampling unit), re-ranks exactly as :func:`significance_ranking` with the same arguments
    (missing values are substituted once, before resampling), and compares with the full
    ranking by Kendall's tau-b (:func:`scipy.stats.kendalltau`). Wiesenfarth et al. (2021)
    use 1000 bootstrap samples, hence the default. The draws come from
    ``numpy.random.default_rng(seed)``, task by task in sorted task order, one
    ``(n_bootstrap, n_t)`` array each: the same seed gives the same result.

    The pairwise tests of all bootstrap samples run at once through a vectorised signed-rank
    test (identical to scipy's, see :func:`wilcoxon_signed_rank_pvalue`).

    Parameters
    ----------
    table, method, case, task, metrics, alpha, missing, variant, worst_values, diagonal
        As in :func:`significance_ranking`.
    n_bootstrap : int
        Number of bootstrap samples (>= 1).
    seed : int or None
        Seed of the generator; ``None`` draws fresh entropy (not reproducible).

    Returns
    -------
    RankStability
        Full ranking, bootstrap ranks, Kendall's tau per sample, rank counts, per-method summary.

    References
    ----------
    Wiesenfarth et al. (2021), doi:10.1038/s41598-021-82017-6; Maier-Hein et al. (2018),
    doi:10.1038/s41467-018-07619-7; Ma et al. (2021), section 5.1.

    Examples
    --------
    >>> import pandas as pd
    >>> rows = [(m, k, v - 0.1 * i)
    ...         for i, m in enumerate("abc") for k, v in enumerate([0.9, 0.8, 0.85, 0.7, 0.95, 0.75])]
    >>> t = pd.DataFrame(rows, columns=["method", "case", "dsc"])
    >>> s = rank_stability(t, task=None, metrics="dsc", n_bootstrap=50, seed=0)
    >>> s.summary[["rank", "median", "same_rank"]]  # doctest: +NORMALIZE_WHITESPACE
            rank  median  same_rank
    method
    a          1     1.0        1.0
    b          2     2.0        1.0
    c          3     3.0        1.0
    """
    _check_variant(variant, alpha)
    if int(n_bootstrap) != n_bootstrap or n_bootstrap < 1:
        raise ValueError(f"n_bootstrap: expected a positive integer, got {n_bootstrap!r}")
    n_bootstrap = int(n_bootstrap)
    prep = _prepare(
        table,
        method=method,
        case=case,
        task=task,
        metrics=metrics,
        missing=missing,
        worst_values=worst_values,
        diagonal=diagonal,
    )
    full = _rank_prepared(prep, variant, alpha)
    rng = np.random.default_rng(seed)
    indices = {
        t: rng.integers(0, len(prep.cases[t]), size=(n_bootstrap, len(prep.cases[t]))) for t in prep.tasks
    }
    n_methods = len(prep.methods)
    total = np.zeros((n_bootstrap, n_methods), dtype=np.float64)
    n_pairs = max(1, n_methods * (n_methods - 1) // 2)
    for block in prep.blocks:
        idx = indices[block.task]
        oriented = block.oriented
        per_sample = (n_pairs if variant == "significance" else n_methods * n_methods) * idx.shape[1]
        step = max(1, _BATCH_ELEMENTS // per_sample)
        for start in range(0, n_bootstrap, step):
            points, _ = _block_points(oriented, idx[start : start + step], variant, alpha)
            total[start : start + step] += points
    boot = _final_rank(total, variant).astype(np.int64)

    full_rank = full["rank"].reindex(prep.methods).to_numpy()
    tau = _kendall_tau(full_rank, boot)
    index = pd.Index(prep.methods, name=prep.method_name)
    boot_df = pd.DataFrame(boot, columns=index)
    boot_df.index.name = "bootstrap"
    counts = np.stack([(boot == r).sum(axis=0) for r in range(1, n_methods + 1)], axis=1)
    rank_counts = pd.DataFrame(counts, index=index, columns=pd.Index(range(1, n_methods + 1), name="rank"))
    summary = pd.DataFrame(
        {
            "rank": full_rank,
            "median": np.median(boot, axis=0),
            "mean": boot.mean(axis=0),
            "q025": np.quantile(boot, 0.025, axis=0),
            "q975": np.quantile(boot, 0.975, axis=0),
            "min": boot.min(axis=0),
            "max": boot.max(axis=0),
            "same_rank": (boot == full_rank[None, :]).mean(axis=0),
        },
        index=index,
    ).loc[full.index]
    rank_counts = rank_counts.loc[full.index]
    return RankStability(
        ranking=full,
        bootstrap_ranks=boot_df[list(full.index)],
        kendall_tau=pd.Series(tau, index=boot_df.index, name="kendall_tau"),
        rank_counts=rank_counts,
        summary=summary,
        indices=indices,
        cases=dict(prep.cases),
        n_bootstrap=n_bootstrap,
        seed=seed,
    )


@dataclasses.dataclass
class MetricSetComparison:
    """Rankings of the same table under different metric sets (see :func:`ranking_by_metric_sets`).

    Attributes
    ----------
    rankings : dict
        Set name -> the full ranking table.
    ranks : pandas.DataFrame
        Methods x set names: the rank under each set (sorted by the first set).
    scores : pandas.DataFrame
        Methods x set names: ``rank_score`` (or ``mean_rank`` for the mean variants).
    kendall_tau : pandas.DataFrame
        Set x set: Kendall's tau-b between the rankings.
    """

    rankings: dict
    ranks: pd.DataFrame
    scores: pd.DataFrame
    kendall_tau: pd.DataFrame


def ranking_by_metric_sets(
    table: TableLike,
    metric_sets: Mapping[str, MetricsLike] | None = None,
    **kwargs,
) -> MetricSetComparison:
    """Compare the rankings obtained with different metric sets (Ma et al. 2021, Fig. 11).

    Parameters
    ----------
    table : pandas.DataFrame or path
        As in :func:`significance_ranking`.
    metric_sets : mapping, optional
        Set name -> metrics (any form :func:`significance_ranking` accepts). Default
        :data:`DEFAULT_METRIC_SETS` (DSC+NSD, DSC, NSD, HD95), keeping the sets whose columns
        are all in the table; an explicitly given set with an unknown column is an error.
    **kwargs
        Passed to :func:`significance_ranking` (``method``, ``case``, ``task``, ``alpha``,
        ``variant``, ``missing``, ``worst_values``, ``diagonal``).

    Returns
    -------
    MetricSetComparison

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"method": ["a"] * 6 + ["b"] * 6, "case": list(range(6)) * 2,
    ...                   "dsc": [0.9] * 6 + [0.8] * 6, "hd95": [5.0] * 6 + [2.0] * 6})
    >>> c = ranking_by_metric_sets(t, task=None)
    >>> c.ranks  # doctest: +NORMALIZE_WHITESPACE
            DSC  HD95
    method
    a         1     2
    b         2     1
    >>> float(c.kendall_tau.loc["DSC", "HD95"])
    -1.0
    """
    if "metrics" in kwargs:
        raise TypeError("ranking_by_metric_sets: pass the metrics through `metric_sets`, not `metrics`")
    df = _load_table(table)
    if metric_sets is None:
        lower = {str(c).lower() for c in df.columns}
        metric_sets = {
            name: ms for name, ms in DEFAULT_METRIC_SETS.items() if all(m.lower() in lower for m in ms)
        }
        if not metric_sets:
            available = ", ".join(repr(str(c)) for c in df.columns)
            raise ValueError(
                "metric_sets: none of the default metric sets (dsc, nsd, hd95) is in the table; "
                f"available columns: {available}"
            )
    if not metric_sets:
        raise ValueError("metric_sets: at least one metric set is required")
    rankings = {name: significance_ranking(df, metrics=ms, **kwargs) for name, ms in metric_sets.items()}
    names = list(rankings)
    first = rankings[names[0]]
    ranks = pd.DataFrame({n: rankings[n]["rank"].reindex(first.index) for n in names})
    scores = pd.DataFrame(
        {n: rankings[n][rankings[n].attrs["score_column"]].reindex(first.index) for n in names}
    )
    tau = pd.DataFrame(
        [[float(_kendall_tau(ranks[a].to_numpy(), ranks[b].to_numpy())[0]) for b in names] for a in names],
        index=pd.Index(names, name="metric set"),
        columns=names,
    )
    return MetricSetComparison(rankings=rankings, ranks=ranks, scores=scores, kendall_tau=tau)


# --------------------------------------------------------------------------------------------
# Plots (matplotlib, Agg canvas, imported lazily)
# --------------------------------------------------------------------------------------------


def _new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=120)
    FigureCanvasAgg(fig)
    return fig


def plot_ranking(ranking: pd.DataFrame, path, *, title: str | None = None) -> Path:
    """Horizontal bar chart of the rank scores, best method on top (Ma et al. 2021, Fig. 10).

    Parameters
    ----------
    ranking : pandas.DataFrame
        Output of :func:`significance_ranking` (bars: ``rank_score``, higher is better) or of a
        mean-rank variant (bars: ``mean_rank``, lower is better).
    path : str or PathLike
        Where to save the PNG (parent folders are created).
    title : str, optional

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    if "rank_score" in ranking.columns:
        column, label = "rank_score", "rank score (mean number of methods significantly beaten)"
    elif "mean_rank" in ranking.columns:
        column, label = "mean_rank", "mean rank (lower is better)"
    else:
        raise ValueError(
            f"ranking: expected a 'rank_score' or 'mean_rank' column, got {list(map(str, ranking.columns))}"
        )
    data = ranking.sort_values(["rank"], kind="stable")
    names = [str(m) for m in data.index]
    values = data[column].to_numpy(dtype=float)
    fig = _new_figure(7.0, 0.9 + 0.32 * max(len(names), 1))
    ax = fig.add_subplot(1, 1, 1)
    y = np.arange(len(names))
    ax.barh(y, values, color="#4C72B0")
    ax.set_yticks(y, labels=[f"{r}. {n}" for r, n in zip(data["rank"], names)])
    ax.invert_yaxis()
    for yi, v in zip(y, values):
        ax.text(v, yi, f" {v:.2f}", va="center", fontsize=8)
    ax.set_xlabel(label)
    ax.set_xlim(0, max(values.max() * 1.15, 1e-9) if len(values) else 1)
    ax.set_title(title or f"Ranking ({ranking.attrs.get('variant', 'significance')})")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def plot_rank_stability(stability: RankStability, path, *, title: str | None = None) -> Path:
    """Blob plot of the bootstrap rank distributions (challengeR, Wiesenfarth et al. 2021).

    One column per method (sorted by full-data rank); a disc at each rank with area proportional
    to the fraction of bootstrap samples giving that rank; a black cross at the median rank and a
    black line over the 2.5-97.5 % quantiles; a red diamond at the full-data rank.

    Returns
    -------
    pathlib.Path
        ``path`` (PNG).
    """
    counts = stability.rank_counts
    summary = stability.summary
    names = [str(m) for m in counts.index]
    n_methods = len(names)
    fig = _new_figure(max(5.0, 0.55 * n_methods + 2.7), 4.5)
    ax = fig.add_subplot(1, 1, 1)
    freq = counts.to_numpy(dtype=float) / max(stability.n_bootstrap, 1)
    xs, ys = np.nonzero(freq)
    ax.scatter(
        xs,
        counts.columns.to_numpy()[ys],
        s=400 * freq[xs, ys],
        color="#4C72B0",
        alpha=0.6,
        linewidths=0,
        label="share of samples",
    )
    x = np.arange(n_methods)
    ax.vlines(x, summary["q025"], summary["q975"], color="black", linewidth=1)
    ax.scatter(x, summary["median"], marker="x", color="black", s=30, label="median")
    ax.scatter(x, summary["rank"], marker="D", color="#C44E52", s=14, label="full data")
    ax.set_xticks(x, labels=names, rotation=60, ha="right")
    ax.set_yticks(range(1, n_methods + 1))
    ax.set_ylim(n_methods + 0.7, 0.3)
    ax.set_ylabel("rank")
    ax.set_xlim(-0.6, n_methods - 0.4)
    tau = stability.tau_summary()["median"]
    ax.set_title(
        title or f"Rank stability: {stability.n_bootstrap} bootstrap samples\nmedian Kendall tau {tau:.2f}",
        fontsize=10,
    )
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path
