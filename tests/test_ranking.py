"""Tests of seglosses.ranking (significance ranking, rank stability) and ``seglosses rank``.

Reference: scipy.stats.wilcoxon(zero_method="wilcox", correction=True, method="approx") and
scipy.stats.kendalltau; hand-computed normal-approximation p-values (the formula of R's
``wilcox.test(paired=TRUE, exact=FALSE, correct=TRUE)``).
"""

from __future__ import annotations

import ast
import doctest
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import require
from hypothesis import given, settings
from hypothesis import strategies as st

from seglosses import ranking
from seglosses.ranking import (
    pairwise_pvalues,
    plot_rank_stability,
    plot_ranking,
    rank_stability,
    ranking_by_metric_sets,
    significance_ranking,
    wilcoxon_signed_rank_pvalue,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# --------------------------------------------------------------------------------------------
# The hand-worked example: 3 methods x 6 cases, DSC in units of 1/16 so that every difference
# is exact in floating point (and ties are real ties).
#
#   case        0   1   2   3   4   5
#   A          14  12  10   8  13  11     (/16)
#   B          12  10  10   4  12   9     A - B = 2, 2, 0, 4, 1, 2
#   C          15  11  12   6  13  12     C - A = 1,-1, 2,-2, 0, 1;  C - B = 3, 1, 2, 2, 1, 3
#
# A vs B: zero dropped, n = 5; |d| = 2,2,4,1,2 -> ranks 1 (for 1), 3,3,3 (the three 2s share
#   2,3,4), 5 (for 4). All positive: R+ = 15, mean n(n+1)/4 = 7.5,
#   var = n(n+1)(2n+1)/24 - sum(t^3 - t)/48 = 13.75 - 24/48 = 13.25.
#   "A better":  z = (15 - 7.5 - 0.5)/sqrt(13.25) = 1.92305, p = 1 - Phi(z) = 0.027237 < 0.05
#   "B better":  R+ = 0, z = (0 - 7.5 - 0.5)/sqrt(13.25) = -2.19777, p = 0.986017
# C vs A: zero dropped, n = 5; |d| = 1,1,2,2,1 -> the 1s share ranks 1..3 (2 each), the 2s share
#   4,5 (4.5 each). Positive: 1, 2, 1 -> R+ = 2 + 4.5 + 2 = 8.5, R- = 6.5;
#   var = 13.75 - ((27 - 3) + (8 - 2))/48 = 13.125.
#   "C better":  z = (8.5 - 7.5 - 0.5)/sqrt(13.125) = 0.13801, p = 0.445115
#   "A better":  z = (6.5 - 7.5 - 0.5)/sqrt(13.125) = -0.41404, p = 0.660577
# C vs B: n = 6, |d| = 3,1,2,2,1,3 -> three tie pairs, ranks 1.5, 3.5, 5.5; all positive:
#   R+ = 21, mean 10.5, var = 22.75 - 3*6/48 = 22.375.
#   "C better":  z = (21 - 10.5 - 0.5)/sqrt(22.375) = 2.11407, p = 0.017255 < 0.05
#   "B better":  z = (0 - 10.5 - 0.5)/sqrt(22.375) = -2.32547, p = 0.989977
# Scores: A beats B -> 1; C beats B -> 1; B -> 0. A and C tie: rank 1, 1, and B is 3.
# --------------------------------------------------------------------------------------------
HAND = {
    "A": [14, 12, 10, 8, 13, 11],
    "B": [12, 10, 10, 4, 12, 9],
    "C": [15, 11, 12, 6, 13, 12],
}
# p-values of "row method better than column method", from the formulas above
# (0.5 * erfc(z / sqrt(2)) evaluated in Python).
HAND_P = {
    ("A", "B"): 0.02723701755309778,
    ("B", "A"): 0.9860172150170695,
    ("C", "A"): 0.4451150274717487,
    ("A", "C"): 0.6605773502878409,
    ("C", "B"): 0.017254828541375604,
    ("B", "C"): 0.9899766392112764,
}


def _phi_sf(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def hand_table(task: str = "liver") -> pd.DataFrame:
    rows = [(m, task, k, v / 16) for m, vals in HAND.items() for k, v in enumerate(vals)]
    return pd.DataFrame(rows, columns=["method", "task", "case", "dsc"])


def random_table(n_methods=6, tasks=("liver", "pancreas"), n_cases=30, seed=0, metrics=("dsc", "nsd")):
    rng = np.random.default_rng(seed)
    rows = []
    for t in tasks:
        for i in range(n_methods):
            for k in range(n_cases):
                vals = [0.6 + 0.02 * i + 0.15 * rng.random() for _ in metrics]
                rows.append((f"m{i}", t, f"case{k:03d}", *vals))
    return pd.DataFrame(rows, columns=["method", "task", "case", *metrics])


# --------------------------------------------------------------------------------------------
# Wilcoxon signed-rank test
# --------------------------------------------------------------------------------------------


def test_hand_computed_pvalues_and_formula():
    # The hand formula itself (guards the constants above).
    assert HAND_P[("A", "B")] == pytest.approx(_phi_sf(7 / math.sqrt(13.25)), abs=1e-15)
    assert HAND_P[("C", "A")] == pytest.approx(_phi_sf(0.5 / math.sqrt(13.125)), abs=1e-15)
    assert HAND_P[("C", "B")] == pytest.approx(_phi_sf(10 / math.sqrt(22.375)), abs=1e-15)
    x = {m: np.array(v) / 16 for m, v in HAND.items()}
    for (a, b), expected in HAND_P.items():
        assert float(wilcoxon_signed_rank_pvalue(x[a], x[b])) == pytest.approx(expected, abs=1e-12)
    p = pairwise_pvalues(hand_table(), metrics={"dsc": "higher"})
    got = {(r.method, r.other): r.p_value for r in p.itertuples()}
    for key, expected in HAND_P.items():
        assert got[key] == pytest.approx(expected, abs=1e-12)
    assert set(p.loc[p.significant, "method"] + p.loc[p.significant, "other"]) == {"AB", "CB"}


def test_hand_worked_ranking_with_tie():
    r = significance_ranking(hand_table(), metrics={"dsc": "higher"})
    assert list(r.columns) == ["score:liver:dsc", "rank_score", "rank"]
    assert r.index.name == "method"
    assert r["score:liver:dsc"].to_dict() == {"A": 1, "C": 1, "B": 0}
    assert r["rank"].to_dict() == {"A": 1, "C": 1, "B": 3}  # ties share the smallest rank
    assert list(r.index) == ["A", "C", "B"]  # sorted by rank, then name
    assert r.attrs["n_cases"] == {"liver": 6}
    # A stricter alpha: nothing is significant, everybody ties at rank 1.
    strict = significance_ranking(hand_table(), metrics={"dsc": "higher"}, alpha=0.01)
    assert strict["rank"].tolist() == [1, 1, 1]


@pytest.mark.parametrize("alternative", ["greater", "less", "two-sided"])
def test_pvalues_equal_scipy(alternative):
    stats = require("scipy.stats")
    rng = np.random.default_rng(42)
    checked = 0
    for _ in range(200):
        n = int(rng.integers(1, 60))
        # one decimal: many ties and zero differences
        x = np.round(rng.random(n), 1)
        y = np.round(rng.random(n), 1)
        if np.all(x == y):
            continue
        expected = stats.wilcoxon(
            x, y, zero_method="wilcox", correction=True, method="approx", alternative=alternative
        ).pvalue
        assert float(wilcoxon_signed_rank_pvalue(x, y, alternative=alternative)) == pytest.approx(
            expected, abs=1e-12
        )
        checked += 1
    assert checked > 150
    # batched along an axis gives the same as one by one
    x = np.round(rng.random((7, 25)), 1)
    y = np.round(rng.random((7, 25)), 1)
    batched = wilcoxon_signed_rank_pvalue(x.T, y.T, alternative=alternative, axis=0)
    one = [
        stats.wilcoxon(
            a, b, zero_method="wilcox", correction=True, method="approx", alternative=alternative
        ).pvalue
        for a, b in zip(x, y)
    ]
    np.testing.assert_allclose(batched, one, rtol=0, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(-3, 3), st.integers(-3, 3)),
        min_size=1,
        max_size=30,
    )
)
def test_pvalues_equal_scipy_property(pairs):
    stats = require("scipy.stats")
    x = np.array([a for a, _ in pairs], dtype=float) / 4
    y = np.array([b for _, b in pairs], dtype=float) / 4
    ours = float(wilcoxon_signed_rank_pvalue(x, y, alternative="greater"))
    if np.all(x == y):
        assert ours == 1.0
        return
    expected = stats.wilcoxon(
        x, y, zero_method="wilcox", correction=True, method="approx", alternative="greater"
    )
    assert ours == pytest.approx(expected.pvalue, abs=1e-12)


def test_ranking_pvalues_equal_scipy_per_pair():
    stats = require("scipy.stats")
    table = random_table(n_methods=4, tasks=("t",), n_cases=25, seed=3, metrics=("dsc", "hd95"))
    table["dsc"] = table["dsc"].round(2)
    table["hd95"] = (table["hd95"] * 10).round(0)
    p = pairwise_pvalues(table, metrics={"dsc": "higher", "hd95": "lower"})
    wide = {m: table.pivot(index="case", columns="method", values=m) for m in ("dsc", "hd95")}
    for r in p.itertuples():
        x, y = wide[r.metric][r.method].to_numpy(), wide[r.metric][r.other].to_numpy()
        alternative = "greater" if r.metric == "dsc" else "less"
        expected = stats.wilcoxon(
            x, y, zero_method="wilcox", correction=True, method="approx", alternative=alternative
        ).pvalue
        assert r.p_value == pytest.approx(expected, abs=1e-12)


def test_all_zero_differences_are_not_significant():
    stats = require("scipy.stats")
    x = np.array([0.5, 0.75, 0.25, 0.5])
    # scipy's behaviour that the ranking must not inherit: NaN p-value with a RuntimeWarning
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        assert math.isnan(stats.wilcoxon(x, x, zero_method="wilcox", method="approx", correction=True).pvalue)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for alternative in ("greater", "less", "two-sided"):
            assert float(wilcoxon_signed_rank_pvalue(x, x, alternative=alternative)) == 1.0
        # identical methods A and A2, and a method D that is better than both on every case
        t = hand_table()
        t = t[t.method == "A"]
        t2 = t.assign(method="A2")
        d = t.assign(method="D", dsc=t.dsc + 1 / 16)
        r = significance_ranking(pd.concat([t, t2, d]), metrics={"dsc": "higher"}, alpha=0.05)
    assert r["rank"].to_dict() == {"D": 1, "A": 2, "A2": 2}
    assert r["score:liver:dsc"].to_dict() == {"D": 2, "A": 0, "A2": 0}


# --------------------------------------------------------------------------------------------
# Directions, missing values, variants
# --------------------------------------------------------------------------------------------


def test_lower_is_better_direction():
    t = hand_table()
    t["hd95"] = 20 - 16 * t["dsc"]  # a distance that mirrors the DSC exactly
    by_dsc = significance_ranking(t, metrics={"dsc": "higher"})
    by_hd = significance_ranking(t, metrics={"hd95": "lower"})
    assert by_hd["rank"].to_dict() == by_dsc["rank"].to_dict()
    assert by_hd["score:liver:hd95"].to_dict() == by_dsc["score:liver:dsc"].to_dict()
    # default direction from the name: hd95 is lower-is-better
    assert significance_ranking(t, metrics=["hd95"])["rank"].to_dict() == by_dsc["rank"].to_dict()
    assert significance_ranking(t, metrics="hd95:lower")["rank"].to_dict() == by_dsc["rank"].to_dict()
    # the wrong direction turns the ranking around: B is now best
    wrong = significance_ranking(t, metrics={"hd95": "higher"})
    assert wrong["rank"].to_dict() == {"B": 1, "A": 2, "C": 2}
    assert ranking.metric_direction("HD95") == "lower"
    assert ranking.metric_direction("assd") == "lower"
    assert ranking.metric_direction("nsd") == "higher"


def test_missing_row_gets_worst_value_dsc_zero():
    t = hand_table()
    dropped = t.drop(index=t.index[(t.method == "C") & (t.case == 3)])
    explicit = t.copy()
    explicit.loc[(explicit.method == "C") & (explicit.case == 3), "dsc"] = 0.0  # Ma et al. fn. 10
    nan_value = t.copy()
    nan_value.loc[(nan_value.method == "C") & (nan_value.case == 3), "dsc"] = np.nan
    ref = significance_ranking(explicit, metrics={"dsc": "higher"})
    for table in (dropped, nan_value):
        r = significance_ranking(table, metrics={"dsc": "higher"})
        pd.testing.assert_frame_equal(r, ref)
        assert r.attrs["n_substituted"] == {"liver:dsc": 1}
    pd.testing.assert_frame_equal(
        pairwise_pvalues(dropped, metrics={"dsc": "higher"}),
        pairwise_pvalues(explicit, metrics={"dsc": "higher"}),
    )
    with pytest.raises(ValueError, match="missing"):
        significance_ranking(dropped, metrics={"dsc": "higher"}, missing="raise")


def _hd_table():
    t = hand_table()
    t["hd95"] = 20 - 16 * t["dsc"]  # observed range 4 .. 16
    return t


def _pvalues_after(table, **kw):
    return pairwise_pvalues(table, metrics={"hd95": "lower"}, **kw)


def test_missing_distance_gets_worst_observed_or_diagonal_or_given():
    t = _hd_table()
    where = (t.method == "A") & (t.case == 0)
    worst_observed = t["hd95"].max()
    for bad in (np.inf, np.nan):
        broken = t.copy()
        broken.loc[where, "hd95"] = bad
        fixed = t.copy()
        fixed.loc[where, "hd95"] = worst_observed
        pd.testing.assert_frame_equal(_pvalues_after(broken), _pvalues_after(fixed))
    broken = t.copy()
    broken.loc[where, "hd95"] = np.inf
    # a user-given worst value
    fixed = t.copy()
    fixed.loc[where, "hd95"] = 500.0
    pd.testing.assert_frame_equal(_pvalues_after(broken, worst_values={"hd95": 500.0}), _pvalues_after(fixed))
    # the image diagonal per case from a column
    broken["diag"] = 100.0 + t["case"]
    fixed.loc[where, "hd95"] = 100.0  # case 0
    pd.testing.assert_frame_equal(_pvalues_after(broken, diagonal="diag"), _pvalues_after(fixed))
    # or as one number
    fixed.loc[where, "hd95"] = 77.0
    pd.testing.assert_frame_equal(_pvalues_after(broken, diagonal=77.0), _pvalues_after(fixed))


def test_method_missing_a_whole_task_and_cases_nobody_has():
    t = pd.concat([hand_table("liver"), hand_table("spleen")])
    t = t[~((t.task == "spleen") & (t.method == "A"))]  # A has no spleen results at all
    t = t[~((t.task == "spleen") & (t.case == 5))]  # nobody has spleen case 5: simply absent
    r = significance_ranking(t, metrics={"dsc": "higher"})
    assert r.attrs["n_cases"] == {"liver": 6, "spleen": 5}
    assert r.attrs["n_substituted"] == {"liver:dsc": 0, "spleen:dsc": 5}
    assert r.loc["A", "score:spleen:dsc"] == 0
    assert r.loc["A", "score:liver:dsc"] == 1
    assert r["rank_score"].to_dict() == pytest.approx({"C": 1.5, "A": 0.5, "B": 0.5})
    assert r["rank"].to_dict() == {"C": 1, "A": 2, "B": 2}


def test_rank_score_is_mean_over_tasks_and_metrics():
    t = random_table(n_methods=5, seed=1)
    r = significance_ranking(t)
    score_cols = [c for c in r.columns if c.startswith("score:")]
    assert score_cols == ["score:liver:dsc", "score:liver:nsd", "score:pancreas:dsc", "score:pancreas:nsd"]
    np.testing.assert_allclose(r["rank_score"], r[score_cols].mean(axis=1))
    expected = r["rank_score"].rank(method="min", ascending=False).astype(int)
    assert (r["rank"] == expected).all()
    # permuting rows or reading from CSV changes nothing
    shuffled = t.sample(frac=1.0, random_state=0)
    pd.testing.assert_frame_equal(significance_ranking(shuffled), r)


def test_mean_variants_by_hand():
    # Hand-checked means and per-case ranks; case 2 has a tie (b = c = 0.625).
    t = pd.DataFrame(
        {
            "method": ["a"] * 3 + ["b"] * 3 + ["c"] * 3,
            "case": [0, 1, 2] * 3,
            "dsc": [1.0, 0.5, 0.5, 0.75, 0.75, 0.625, 0.0, 0.0, 0.625],
        }
    )
    mtr = significance_ranking(t, task=None, metrics="dsc", variant="mean_then_rank")
    # means: a 0.6667, b 0.7083, c 0.2083
    assert mtr["rank:dsc"].to_dict() == {"b": 1, "a": 2, "c": 3}
    assert mtr["mean:dsc"].to_dict() == pytest.approx({"a": 2 / 3, "b": 2.125 / 3, "c": 0.625 / 3})
    rtm = significance_ranking(t, task=None, metrics="dsc", variant="rank_then_mean")
    # per-case ranks (min ties): case0 a1 b2 c3; case1 b1 a2 c3; case2 b1 c1 a3 ("min": 1, 1, 3)
    assert rtm["case_rank:dsc"].to_dict() == pytest.approx({"a": 2.0, "b": 4 / 3, "c": 7 / 3})
    assert rtm["rank"].to_dict() == {"b": 1, "a": 2, "c": 3}
    assert rtm.attrs["score_column"] == "mean_rank"
    with pytest.raises(ValueError, match="variant"):
        significance_ranking(t, task=None, metrics="dsc", variant="median")


def test_task_columns_and_errors():
    t = hand_table()
    t["label"] = 1
    t2 = t.assign(label=2)
    both = pd.concat([t, t2])
    with pytest.raises(ValueError, match="repeat"):
        significance_ranking(both, metrics={"dsc": "higher"})
    r = significance_ranking(both, task=["task", "label"], metrics={"dsc": "higher"})
    assert [c for c in r.columns if c.startswith("score")] == ["score:liver/1:dsc", "score:liver/2:dsc"]
    with pytest.raises(ValueError, match=r"'hd95' not in the table; available columns: .*'dsc'"):
        significance_ranking(t, metrics=["dsc", "hd95"])
    with pytest.raises(ValueError, match="method: column 'loss'"):
        significance_ranking(t, method="loss", metrics="dsc")
    with pytest.raises(ValueError, match="direction"):
        significance_ranking(t, metrics={"dsc": "up"})
    with pytest.raises(ValueError, match="alpha"):
        significance_ranking(t, metrics="dsc", alpha=5)
    with pytest.raises(FileNotFoundError, match="no such file"):
        significance_ranking("/nonexistent/results.csv")
    # upper-case columns are found case-insensitively
    upper = t.rename(columns={"dsc": "DSC"})
    assert significance_ranking(upper, metrics="dsc")["rank"].to_dict() == {"A": 1, "C": 1, "B": 3}


def test_csv_path_input(tmp_path):
    t = random_table(n_methods=3, seed=2)
    path = tmp_path / "results.csv"
    t.to_csv(path, index=False)
    pd.testing.assert_frame_equal(significance_ranking(path), significance_ranking(t))


# --------------------------------------------------------------------------------------------
# Rank stability and metric sets
# --------------------------------------------------------------------------------------------


def test_bootstrap_reproducible_by_seed():
    t = random_table(n_methods=6, seed=5)
    a = rank_stability(t, n_bootstrap=150, seed=7)
    b = rank_stability(t, n_bootstrap=150, seed=7)
    c = rank_stability(t, n_bootstrap=150, seed=8)
    pd.testing.assert_frame_equal(a.bootstrap_ranks, b.bootstrap_ranks)
    pd.testing.assert_series_equal(a.kendall_tau, b.kendall_tau)
    pd.testing.assert_frame_equal(a.summary, b.summary)
    assert not a.bootstrap_ranks.equals(c.bootstrap_ranks)
    assert a.bootstrap_ranks.shape == (150, 6)
    assert (a.rank_counts.sum(axis=1) == 150).all()
    assert list(a.summary.index) == list(a.ranking.index)
    pd.testing.assert_frame_equal(a.ranking, significance_ranking(t))


@pytest.mark.parametrize("variant", ranking.VARIANTS)
def test_bootstrap_sample_equals_ranking_of_resampled_table(variant):
    t = random_table(n_methods=5, n_cases=12, seed=11)
    t["dsc"] = t["dsc"].round(2)  # ties
    s = rank_stability(t, n_bootstrap=40, seed=3, variant=variant)
    for b in (0, 17, 39):
        parts = []
        for task, idx in s.indices.items():
            cases = [s.cases[task][i] for i in idx[b]]
            for j, c in enumerate(cases):  # duplicated cases become distinct cases
                rows = t[(t.task == task) & (t.case == c)]
                parts.append(rows.assign(case=f"draw{j:03d}"))
        resampled = pd.concat(parts)
        expected = significance_ranking(resampled, variant=variant)["rank"]
        got = s.bootstrap_ranks.loc[b]
        assert got.to_dict() == expected.to_dict()


def test_kendall_tau_equals_scipy():
    stats = require("scipy.stats")
    t = random_table(n_methods=7, n_cases=15, seed=4)
    s = rank_stability(t, n_bootstrap=100, seed=1)
    full = s.ranking["rank"].reindex(s.bootstrap_ranks.columns).to_numpy()
    for b in range(100):
        boot = s.bootstrap_ranks.loc[b].to_numpy()
        expected = stats.kendalltau(full, boot).statistic
        if np.all(boot == boot[0]):
            assert math.isnan(s.kendall_tau[b])
        else:
            assert s.kendall_tau[b] == pytest.approx(expected, abs=1e-12)
    tau = s.tau_summary()
    assert -1.0 <= tau["q025"] <= tau["median"] <= tau["q975"] <= 1.0


def test_stability_summary_of_a_clear_ranking():
    # each method better than the next by a constant on every case: never changes rank
    rows = [(m, "t", k, 0.5 + 0.01 * k - 0.1 * i) for i, m in enumerate("abcd") for k in range(10)]
    t = pd.DataFrame(rows, columns=["method", "task", "case", "dsc"])
    s = rank_stability(t, metrics="dsc", n_bootstrap=60, seed=0)
    assert s.summary["same_rank"].tolist() == [1.0] * 4
    assert (s.kendall_tau == 1.0).all()
    assert s.rank_counts.loc["a", 1] == 60
    with pytest.raises(ValueError, match="n_bootstrap"):
        rank_stability(t, metrics="dsc", n_bootstrap=0)


def test_ranking_by_metric_sets():
    t = _hd_table()
    t["nsd"] = t["dsc"]
    t.loc[t.method == "B", "hd95"] = 1.0  # B has the best HD95 on every case
    c = ranking_by_metric_sets(t)
    assert list(c.ranks.columns) == ["DSC+NSD", "DSC", "NSD", "HD95"]
    assert c.ranks["DSC"].to_dict() == {"A": 1, "C": 1, "B": 3}
    assert c.ranks["HD95"].to_dict() == {"B": 1, "A": 2, "C": 2}
    assert c.kendall_tau.loc["DSC", "NSD"] == pytest.approx(1.0)
    stats = require("scipy.stats")
    expected = stats.kendalltau(c.ranks["DSC"], c.ranks["HD95"]).statistic
    assert c.kendall_tau.loc["DSC", "HD95"] == pytest.approx(expected, abs=1e-12)
    assert c.scores.loc["B", "HD95"] == 2.0
    # default sets skip metrics the table lacks; explicit sets with unknown columns fail
    only_dsc = ranking_by_metric_sets(hand_table())
    assert list(only_dsc.ranks.columns) == ["DSC"]
    with pytest.raises(ValueError, match="'nsd' not in the table"):
        ranking_by_metric_sets(hand_table(), {"NSD": {"nsd": "higher"}})


# --------------------------------------------------------------------------------------------
# Plots, docstrings, imports
# --------------------------------------------------------------------------------------------


def test_plots_write_png(tmp_path):
    t = random_table(n_methods=5, n_cases=10, seed=9)
    s = rank_stability(t, n_bootstrap=30, seed=0)
    p1 = plot_ranking(s.ranking, tmp_path / "sub" / "rank.png")
    p2 = plot_rank_stability(s, tmp_path / "stab.png")
    p3 = plot_ranking(significance_ranking(t, variant="mean_then_rank"), tmp_path / "mean.png")
    for p in (p1, p2, p3):
        assert Path(p).read_bytes()[:8] == PNG_MAGIC


def test_docstring_examples():
    result = doctest.testmod(ranking, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 5
    assert result.failed == 0


def _relative_targets(node: ast.ImportFrom, module_file: Path, package_root: Path) -> list:
    """Files of the seglosses modules a relative ``from . import x`` / ``from .x import y`` names."""
    base = module_file.parent
    for _ in range(node.level - 1):
        base = base.parent
    parts = node.module.split(".") if node.module else []
    target = base.joinpath(*parts)
    candidates = [target.with_suffix(".py"), target / "__init__.py"]
    if not node.module:  # from . import a, b: each name may be a module
        candidates = [base / f"{a.name}.py" for a in node.names] + [base / a.name / "__init__.py" for a in node.names]
    return [c for c in candidates if c.exists() and package_root in c.parents]


def test_ranking_modules_do_not_import_torch():
    """ranking, ranking_cli and metrics import neither torch nor matplotlib at module level, also
    through the package modules they import relatively (followed transitively)."""
    src = Path(ranking.__file__).parent
    todo = [src / "ranking.py", src / "ranking_cli.py", src / "metrics" / "__init__.py"]
    seen = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        name = str(path.relative_to(src))
        tree = ast.parse(path.read_text())
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module.split(".")[0])
        assert "torch" not in imported, name
        assert "matplotlib" not in {
            n.module.split(".")[0] for n in tree.body if isinstance(n, ast.ImportFrom) and n.module
        }
        for node in tree.body:  # module-level relative imports run at import time: follow them
            if isinstance(node, ast.ImportFrom) and node.level > 0:
                todo.extend(_relative_targets(node, path, src))
    assert {"ranking_cli.py", "ranking.py", "_checks.py", "metrics/overlap.py"} <= {str(p.relative_to(src)) for p in seen}


def test_importing_ranking_and_metrics_does_not_load_torch():
    import subprocess
    import sys

    code = "import sys, seglosses.ranking, seglosses.ranking_cli, seglosses.metrics; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


@pytest.fixture
def results_csv(tmp_path):
    t = random_table(n_methods=4, n_cases=12, seed=6, metrics=("dsc", "nsd", "hd95"))
    t["hd95"] = 20 * (1 - t["hd95"])
    path = tmp_path / "results.csv"
    t.to_csv(path, index=False)
    return path


def test_cli_rank_prints_table_and_writes_plot(results_csv, tmp_path, capsys):
    from seglosses.cli import main

    png = tmp_path / "rank.png"
    assert main(["rank", str(results_csv), "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "rank_score" in out and "score:liver:dsc" in out and "m3" in out
    assert png.read_bytes()[:8] == PNG_MAGIC


def test_cli_rank_options(results_csv, tmp_path, capsys):
    from seglosses.cli import main

    stab = tmp_path / "stab.png"
    out_csv = tmp_path / "ranking.csv"
    argv = ["rank", str(results_csv), "--metrics", "dsc,hd95", "--bootstrap", "40", "--seed", "1"]
    argv += ["--stability-plot", str(stab), "--out", str(out_csv), "--variant", "rank_then_mean"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "hd95 (lower is better)" in out and "Kendall tau" in out and "mean_rank" in out
    assert stab.read_bytes()[:8] == PNG_MAGIC
    saved = pd.read_csv(out_csv, index_col=0)
    assert "rank" in saved.columns and len(saved) == 4


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--method-col", "loss"], "--method-col: column 'loss' not in the table; available columns"),
        (["--metrics", "dsc,assd"], "--metrics: column 'assd' not in the table; available columns"),
        (["--metrics", "dsc:best"], "direction of metric 'dsc'"),
        (["--worst", "hd95"], "--worst: expected METRIC=VALUE"),
        (["--task-col", "organ"], "--task-col: column 'organ'"),
    ],
)
def test_cli_rank_errors(results_csv, capsys, extra, needle):
    from seglosses.cli import main

    assert main(["rank", str(results_csv), *extra]) == 2
    err = capsys.readouterr().err
    assert needle in err
    assert "Traceback" not in err


def test_cli_rank_missing_file(tmp_path, capsys):
    from seglosses.cli import main

    assert main(["rank", str(tmp_path / "nope.csv")]) == 2
    assert "RESULTS.csv: no such file" in capsys.readouterr().err
