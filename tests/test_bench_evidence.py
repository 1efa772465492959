"""Seeds in the ranking and seed stability (:mod:`seglosses.bench.evidence`)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from seglosses.bench.evidence import average_seeds, evidence_counts, seed_stability, significance_sentences


def _table(n_cases=10, seeds=(0, 1, 2), flip_seed=None):
    rng = np.random.default_rng(0)
    rows = []
    base = {"good": 0.8, "mid": 0.6, "bad": 0.4}
    for seed in seeds:
        for c in range(n_cases):
            for m, v in base.items():
                if seed == flip_seed:
                    v = 1.2 - v  # this seed reverses the order
                rows.append({"method": m, "task": "t", "case": f"c{c}", "fold": c % 2, "seed": seed,
                             "dsc": v + 0.01 * rng.standard_normal(), "nsd": v})
    return pd.DataFrame(rows)


def test_average_seeds_is_the_per_case_mean():
    t = _table()
    avg = average_seeds(t)
    assert len(avg) == 3 * 10 and set(avg.columns) == {"method", "task", "case", "fold", "dsc", "nsd"}
    one = t[(t.method == "good") & (t.case == "c3")]["dsc"].mean()
    assert avg[(avg.method == "good") & (avg.case == "c3")]["dsc"].item() == pytest.approx(one)


def test_a_failed_seed_leaves_the_case_missing():
    t = _table()
    t.loc[(t.method == "mid") & (t.seed == 1) & (t.case == "c0"), "dsc"] = np.nan
    avg = average_seeds(t)
    assert np.isnan(avg[(avg.method == "mid") & (avg.case == "c0")]["dsc"].item())
    assert avg["dsc"].isna().sum() == 1


def test_seed_stability_identical_seeds_agree():
    s = seed_stability(_table(), metrics=["dsc"])
    assert list(s.spread.index) == ["good", "mid", "bad"]
    assert (s.kendall_tau["tau"] == 1.0).all() and len(s.kendall_tau) == 3
    assert (s.spread["std"] < 0.01).all()


def test_seed_stability_sees_a_reversing_seed():
    s = seed_stability(_table(flip_seed=2), metrics=["dsc"])
    taus = s.kendall_tau.set_index(["seed_a", "seed_b"])["tau"]
    assert taus[(0, 1)] == 1.0 and taus[(0, 2)] == -1.0
    assert s.spread.loc["good", "range"] == pytest.approx(0.4, abs=0.02)


def test_counts_and_sentences():
    t = _table()
    c = evidence_counts(t)
    assert c == {"cases": {"t": 10}, "folds": 2, "seeds": [0, 1, 2], "methods": 3}
    avg = average_seeds(t)
    r = pd.DataFrame({"rank": [1, 2, 3]}, index=pd.Index(["good", "mid", "bad"], name="method"))
    (sentence,) = significance_sentences(avg, r)
    assert sentence.startswith("On t (dsc, 10 cases), good is significantly better than every other method")


def test_seed_stability_needs_a_seed_column():
    with pytest.raises(ValueError, match="expected a 'seed' column"):
        seed_stability(_table().drop(columns="seed"))
