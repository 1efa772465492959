"""K-fold cross-validation by case (:func:`seglosses.bench.data.kfold_cases`, :func:`fold_split`)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seglosses.bench.data import fold_split, kfold_cases, split_cases


def _ids(n):
    return [f"case_{i:03d}" for i in range(n)]


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 40), data=st.data(), seed=st.integers(0, 2**31 - 1))
def test_every_case_is_tested_exactly_once(n, data, seed):
    k = data.draw(st.integers(2, n))
    folds = kfold_cases(_ids(n), k, seed=seed)
    assert len(folds) == k
    tested = [c for _, test in folds for c in test]
    assert sorted(tested) == _ids(n)  # every case once, none twice
    sizes = [len(test) for _, test in folds]
    assert max(sizes) - min(sizes) <= 1
    for train, test in folds:
        assert not set(train) & set(test)
        assert sorted(train + test) == _ids(n)


def test_folds_do_not_depend_on_file_order_but_on_the_seed():
    ids = _ids(23)
    shuffled = ids[:]
    random.Random(3).shuffle(shuffled)
    assert kfold_cases(shuffled, 5, seed=7) == kfold_cases(ids, 5, seed=7)
    assert kfold_cases(ids, 5, seed=7) != kfold_cases(ids, 5, seed=8)
    assert kfold_cases(ids, 5, seed=7) == kfold_cases(ids, 5, seed=7)


def test_fold_split_validation_inside_training_and_coverage():
    ids = _ids(17)
    seen = []
    for f in range(4):
        s = fold_split(ids, 4, f, seed=2)
        assert set(s["val"]) <= set(ids) - set(s["test"])
        assert not set(s["val"]) & set(s["train"])
        assert sorted(s["train"] + s["val"] + s["test"]) == ids
        assert len(s["val"]) == round((len(ids) - len(s["test"])) * 0.2)
        seen += s["test"]
    assert sorted(seen) == ids


def test_one_fold_is_the_single_split_of_today():
    ids = _ids(40)
    s = fold_split(ids, 1, 0, seed=0, test_fraction=0.2, val_fraction=0.2)
    train, test = split_cases(ids, 0.2, seed=0)
    train, val = split_cases(train, 0.2, seed=1)
    assert s == {"train": train, "val": val, "test": test}


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"folds": 1}, "folds: expected an integer in \\[2, 5\\]"),
        ({"folds": 6}, "got 6"),
        ({"folds": 2.0}, "got 2.0"),
    ],
)
def test_kfold_errors_name_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        kfold_cases(_ids(5), **kwargs)


def test_fold_out_of_range_and_duplicates():
    with pytest.raises(ValueError, match="fold: expected an integer in \\[0, 2\\], got 3"):
        fold_split(_ids(6), 3, 3)
    with pytest.raises(ValueError, match="duplicate ids"):
        kfold_cases(["a", "a", "b"], 2)
