"""How sure is the ranking: folds and seeds in the ranking, seed stability, plain-language significance.

Input: the per-case table of the selected runs (one row per method x task x case x seed, a
column per metric, plus ``fold`` and ``seed`` columns; see the results layer).

* **Folds** need no special treatment: with K-fold cross-validation every case is a test case of
  exactly one fold (:func:`seglosses.bench.data.kfold_cases`), so the case ids of a task are
  unique across folds and the ranking simply sees K times more cases than one split.
* **Seeds** are averaged per case before the ranking (:func:`average_seeds`): the Wilcoxon tests
  pair the methods case by case, and the per-case mean over seeds is the paired observation (the
  seeds are repeated measurements of the same case, not more cases: treating them as cases
  would inflate the significance). A case where any seed has no value (a failed run) stays
  missing, and the ranking gives it the metric's worst value -- a configuration that failed for
  one seed pays for it.
* **Seed stability** (:func:`seed_stability`): the mean DSC of every method per seed and its
  spread over seeds (standard deviation and range), the ranking of each seed on its own, and
  Kendall's tau-b between the rankings of every pair of seeds (1: the same order; values well
  below the bootstrap's tau mean that the training seed moves the ranking more than the choice
  of test cases does).
* :func:`significance_sentences` turns the pairwise Wilcoxon tests into one plain sentence per
  task: which methods the best one beats significantly, and which differences are not significant.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Dict, List, Sequence

import numpy as np
import pandas as pd

__all__ = ["average_seeds", "evidence_counts", "seed_stability", "SeedStability", "significance_sentences"]

KEYS = ("method", "task", "case")


def average_seeds(table: pd.DataFrame, metrics: Sequence[str] = ("dsc", "nsd")) -> pd.DataFrame:
    """One row per method x task x case: each metric averaged over the seeds (NaN if any seed is NaN).

    Columns other than the keys, ``seed`` and ``metrics`` are dropped, except ``fold`` (a case has
    one fold). Without a ``seed`` column the table is returned with its metric columns unchanged.

    >>> t = pd.DataFrame({"method": ["a"] * 4, "task": "t", "case": ["c1", "c1", "c2", "c2"],
    ...                   "seed": [0, 1, 0, 1], "dsc": [0.8, 0.6, 0.9, np.nan]})
    >>> average_seeds(t, ["dsc"])
      method task case  dsc
    0      a    t   c1  0.7
    1      a    t   c2  NaN
    """
    metrics = [m for m in metrics if m in table.columns]
    keys = list(KEYS) + (["fold"] if "fold" in table.columns else [])
    if "seed" not in table.columns:
        return table[keys + metrics].reset_index(drop=True)
    grouped = table.groupby(keys, sort=True, dropna=False)[metrics]
    # mean over seeds, but NaN as soon as one seed is missing (skipna=False)
    out = grouped.agg(lambda s: s.mean(skipna=False)).reset_index()
    return out[keys + metrics]


def evidence_counts(table: pd.DataFrame) -> Dict[str, object]:
    """Cases per task, folds and seeds behind a per-case table (for the report's sentence).

    >>> t = pd.DataFrame({"method": "a", "task": "t", "case": ["x", "y", "x", "y"], "fold": [0, 1, 0, 1], "seed": [0, 0, 1, 1]})
    >>> evidence_counts(t)
    {'cases': {'t': 2}, 'folds': 2, 'seeds': [0, 1], 'methods': 1}
    """
    folds = int(table["fold"].nunique()) if "fold" in table.columns and len(table) else 1
    seeds = sorted(int(s) for s in table["seed"].dropna().unique()) if "seed" in table.columns else []
    return {
        "cases": {str(t): int(g["case"].nunique()) for t, g in table.groupby("task", sort=True)},
        "folds": folds,
        "seeds": seeds,
        "methods": int(table["method"].nunique()),
    }


@dataclasses.dataclass
class SeedStability:
    """Seed-to-seed variation of the benchmark (see :func:`seed_stability`).

    Attributes
    ----------
    mean_by_seed : pandas.DataFrame
        Methods x seeds: mean of ``metric`` over every task and case of that seed.
    spread : pandas.DataFrame
        Per method: ``mean`` (over seeds), ``std`` (sample standard deviation over seeds), ``range``.
    ranks_by_seed : pandas.DataFrame
        Methods x seeds: the significance ranking of each seed's table on its own.
    kendall_tau : pandas.DataFrame
        One row per pair of seeds: ``seed_a``, ``seed_b``, ``tau`` (Kendall's tau-b of their ranks).
    """

    metric: str
    mean_by_seed: pd.DataFrame
    spread: pd.DataFrame
    ranks_by_seed: pd.DataFrame
    kendall_tau: pd.DataFrame

    def tau_summary(self) -> Dict[str, float]:
        tau = self.kendall_tau["tau"].dropna().to_numpy()
        if tau.size == 0:
            return {"min": float("nan"), "mean": float("nan"), "max": float("nan")}
        return {"min": float(tau.min()), "mean": float(tau.mean()), "max": float(tau.max())}


def seed_stability(table: pd.DataFrame, metric: str = "dsc", **ranking_kw) -> SeedStability:
    """Mean ``metric`` per method and seed, its spread, and Kendall's tau between the seeds' rankings.

    ``table`` has ``method``, ``task``, ``case``, ``seed`` and the metric columns; each seed is
    ranked with :func:`seglosses.ranking.significance_ranking` (``ranking_kw`` passed on, e.g.
    ``metrics``). Needs at least two seeds for the tau table (empty otherwise).
    """
    from seglosses.ranking import _kendall_tau, significance_ranking

    if "seed" not in table.columns:
        raise ValueError(f"table: expected a 'seed' column, got columns {list(table.columns)}")
    seeds = sorted(table["seed"].dropna().unique())
    with np.errstate(all="ignore"):
        mean_by_seed = table.pivot_table(index="method", columns="seed", values=metric, aggfunc="mean")
    spread = pd.DataFrame(
        {
            "mean": mean_by_seed.mean(axis=1),
            "std": mean_by_seed.std(axis=1, ddof=1) if len(seeds) > 1 else np.nan,
            "range": mean_by_seed.max(axis=1) - mean_by_seed.min(axis=1),
        }
    )
    ranks = {}
    for seed in seeds:
        sub = table[table["seed"] == seed]
        r = significance_ranking(sub, method="method", case="case", task="task", **ranking_kw)
        ranks[seed] = r["rank"]
    ranks_by_seed = pd.DataFrame(ranks).reindex(mean_by_seed.index)
    rows = []
    for a, b in itertools.combinations(seeds, 2):
        ra, rb = ranks_by_seed[a].to_numpy(float), ranks_by_seed[b].to_numpy(float)
        ok = ~(np.isnan(ra) | np.isnan(rb))
        tau = float(_kendall_tau(ra[ok], rb[ok][None])[0]) if ok.sum() >= 2 else float("nan")
        rows.append({"seed_a": int(a), "seed_b": int(b), "tau": tau})
    return SeedStability(
        metric=metric,
        mean_by_seed=mean_by_seed,
        spread=spread.sort_values("mean", ascending=False),
        ranks_by_seed=ranks_by_seed,
        kendall_tau=pd.DataFrame(rows, columns=["seed_a", "seed_b", "tau"]),
    )


def significance_sentences(
    table: pd.DataFrame, ranking: pd.DataFrame, metric: str = "dsc", alpha: float = 0.05
) -> List[str]:
    """One plain sentence per task about the best-ranked method on ``metric``.

    ``table`` is the seed-averaged per-case table the ranking was computed on; ``ranking`` the
    ranking (its first row is the best method). The sentence names the methods the best one
    beats with a one-sided Wilcoxon signed-rank test at level ``alpha`` and those it does not.

    >>> rows = [(m, "t", c, v + d) for m, d in (("a", 0.2), ("b", 0.0), ("c", 0.19))
    ...         for c, v in enumerate(np.linspace(0.3, 0.7, 12))]
    >>> t = pd.DataFrame(rows, columns=["method", "task", "case", "dsc"])
    >>> t.loc[t.method == "c", "dsc"] += np.tile([0.02, -0.02], 6)
    >>> r = pd.DataFrame({"rank": [1, 2, 3]}, index=pd.Index(["a", "c", "b"], name="method"))
    >>> print(significance_sentences(t, r)[0])
    On t (dsc, 12 cases), a is significantly better than b (one-sided Wilcoxon, p < 0.05); its difference from c is not significant.
    """
    from seglosses.ranking import pairwise_pvalues

    if ranking.empty or metric not in table.columns:
        return []
    best = str(ranking.index[0])
    p = pairwise_pvalues(table, method="method", case="case", task="task", metrics=[metric], alpha=alpha)
    out = []
    for task, g in p[p["method"] == best].groupby("task", sort=True):
        n_cases = table[table["task"] == task]["case"].nunique()
        wins = [str(o) for o in g.loc[g["significant"], "other"]]
        ties = [str(o) for o in g.loc[~g["significant"], "other"]]
        head = f"On {task} ({metric}, {n_cases} cases), {best}"
        if wins and ties:
            s = (
                f"{head} is significantly better than {', '.join(wins)} (one-sided Wilcoxon, p < {alpha:g}); "
                f"its difference from {', '.join(ties)} is not significant."
            )
        elif wins:
            s = f"{head} is significantly better than every other method (one-sided Wilcoxon, p < {alpha:g})."
        else:
            s = f"{head} is not significantly better than any other method (one-sided Wilcoxon, p < {alpha:g}): the ranking is not conclusive."
        out.append(s)
    return out
