"""Overlap metrics: hand-computed values, documented empty-mask values, medpy reference, torch input,
properties and error messages."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import require
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from seglosses.metrics import (
    Confusion,
    confusion,
    dice_score,
    iou_score,
    precision,
    sensitivity,
    specificity,
)

METRICS = {
    "dice": dice_score,
    "iou": iou_score,
    "sensitivity": sensitivity,
    "specificity": specificity,
    "precision": precision,
}


def _rng_pair(seed: int, shape=(9, 11, 7), p_gt=0.4, p_pred=0.45):
    rng = np.random.default_rng(seed)
    return rng.random(shape) < p_gt, rng.random(shape) < p_pred


# --------------------------------------------------------------------------------------------
# hand-computed
# --------------------------------------------------------------------------------------------


def test_confusion_hand_computed():
    gt = np.array([[1, 1, 1, 0, 0, 0]])
    pred = np.array([[0, 1, 1, 1, 1, 0]])
    assert confusion(gt, pred) == Confusion(tp=2, fp=2, fn=1, tn=1)
    c = confusion(gt, pred)
    assert all(isinstance(v, int) for v in c)


def test_metrics_hand_computed():
    gt = np.array([[1, 1, 1, 0, 0, 0]])
    pred = np.array([[0, 1, 1, 1, 1, 0]])  # tp=2 fp=2 fn=1 tn=1
    assert dice_score(gt, pred) == pytest.approx(4 / 7)
    assert iou_score(gt, pred) == pytest.approx(2 / 5)
    assert sensitivity(gt, pred) == pytest.approx(2 / 3)
    assert specificity(gt, pred) == pytest.approx(1 / 3)
    assert precision(gt, pred) == pytest.approx(1 / 2)


def test_identical_masks_are_perfect():
    gt, _ = _rng_pair(0)
    for name, fn in METRICS.items():
        assert fn(gt, gt) == 1.0, name


def test_disjoint_masks():
    gt = np.zeros((4, 4), bool)
    gt[:2] = True
    pred = ~gt
    assert dice_score(gt, pred) == 0.0
    assert iou_score(gt, pred) == 0.0
    assert sensitivity(gt, pred) == 0.0
    assert specificity(gt, pred) == 0.0
    assert precision(gt, pred) == 0.0


# --------------------------------------------------------------------------------------------
# empty masks: the documented table, never NaN
# --------------------------------------------------------------------------------------------

E = np.zeros((3, 4), bool)
SOME = np.zeros((3, 4), bool)
SOME[1, 1:3] = True
FULL = np.ones((3, 4), bool)
PARTIAL = FULL.copy()
PARTIAL[0, 0] = False

EMPTY_CASES = [
    # gt, pred, dice, iou, sensitivity, specificity, precision
    ("both empty", E, E, 1.0, 1.0, 1.0, 1.0, 1.0),
    ("gt empty", E, SOME, 0.0, 0.0, 0.0, 10 / 12, 0.0),
    ("pred empty", SOME, E, 0.0, 0.0, 0.0, 1.0, 0.0),
    ("both full", FULL, FULL, 1.0, 1.0, 1.0, 1.0, 1.0),
    ("gt full, pred not", FULL, PARTIAL, 22 / 23, 11 / 12, 11 / 12, 0.0, 1.0),
]


@pytest.mark.parametrize("case", EMPTY_CASES, ids=[c[0] for c in EMPTY_CASES])
def test_empty_mask_values(case):
    _, gt, pred, *expected = case
    got = [
        dice_score(gt, pred),
        iou_score(gt, pred),
        sensitivity(gt, pred),
        specificity(gt, pred),
        precision(gt, pred),
    ]
    assert got == pytest.approx(expected)
    assert not any(np.isnan(got))


# --------------------------------------------------------------------------------------------
# reference: medpy (same conventions on non-empty masks)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_against_medpy(seed):
    mb = require("medpy.metric.binary")
    gt, pred = _rng_pair(seed, shape=(12, 10) if seed % 2 else (7, 9, 8))
    # medpy takes (result, reference) = (pred, gt)
    assert dice_score(gt, pred) == pytest.approx(mb.dc(pred, gt), abs=1e-12)
    assert iou_score(gt, pred) == pytest.approx(mb.jc(pred, gt), abs=1e-12)
    assert sensitivity(gt, pred) == pytest.approx(mb.sensitivity(pred, gt), abs=1e-12)
    assert specificity(gt, pred) == pytest.approx(mb.specificity(pred, gt), abs=1e-12)
    assert precision(gt, pred) == pytest.approx(mb.precision(pred, gt), abs=1e-12)


# --------------------------------------------------------------------------------------------
# input types
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.bool, torch.uint8, torch.int64, torch.float32, torch.float16])
def test_torch_input_matches_numpy(dtype):
    gt, pred = _rng_pair(3)
    tg, tp = torch.from_numpy(gt).to(dtype), torch.from_numpy(pred).to(dtype)
    for name, fn in METRICS.items():
        assert fn(tg, tp) == fn(gt, pred), name
    assert confusion(tg, tp) == confusion(gt, pred)


def test_numeric_dtypes_and_mixed_inputs():
    gt, pred = _rng_pair(4)
    ref = dice_score(gt, pred)
    assert dice_score(gt.astype(np.float64), pred.astype(np.int32)) == ref
    assert dice_score(torch.from_numpy(gt), pred.astype(np.uint8)) == ref


# --------------------------------------------------------------------------------------------
# properties
# --------------------------------------------------------------------------------------------

masks = arrays(bool, st.tuples(st.integers(1, 6), st.integers(1, 6)))


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(st.data())
def test_properties(data):
    gt = data.draw(masks)
    pred = data.draw(arrays(bool, gt.shape))
    d, j = dice_score(gt, pred), iou_score(gt, pred)
    assert 0.0 <= d <= 1.0 and 0.0 <= j <= 1.0
    assert d == pytest.approx(2 * j / (1 + j))
    assert d == dice_score(pred, gt)
    assert sensitivity(gt, pred) == precision(pred, gt)
    # specificity is sensitivity of the complements
    assert specificity(gt, pred) == sensitivity(~gt, ~pred)
    c = confusion(gt, pred)
    assert c.tp + c.fp + c.fn + c.tn == gt.size
    for fn in METRICS.values():
        assert not np.isnan(fn(gt, pred))


# --------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"gt and pred must have the same shape.*\(3, 4\).*\(4, 3\)"):
        dice_score(np.zeros((3, 4)), np.zeros((4, 3)))


def test_non_binary_values():
    with pytest.raises(
        ValueError, match=r"pred must be a binary mask with values in \{0, 1\}; got values \[2\]"
    ):
        dice_score(np.zeros((3, 3)), np.full((3, 3), 2))
    with pytest.raises(ValueError, match=r"gt must be a binary mask.*0\.5"):
        iou_score(np.full((2, 2), 0.5), np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"gt must be a binary mask.*-1"):
        sensitivity(torch.tensor([[-1, 0]]), torch.tensor([[0, 0]]))


def test_bad_types():
    with pytest.raises(TypeError, match=r"gt must be a numpy.ndarray or torch.Tensor; got str"):
        dice_score("mask", np.zeros(3))
    with pytest.raises(TypeError, match=r"pred must be an array.*scalar"):
        dice_score(np.zeros(3), 1)
    with pytest.raises(TypeError, match=r"gt must have a bool, integer or floating dtype; got dtype <U1"):
        precision(np.array(["a", "b"]), np.zeros(2))
