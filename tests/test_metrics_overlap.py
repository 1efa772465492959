"""Overlap metrics: hand-computed values, documented empty-mask values, medpy reference, torch input,
properties and error messages."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from conftest import require
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from _inputs import random_mask_pair

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


# --------------------------------------------------------------------------------------------
# hand-computed
# --------------------------------------------------------------------------------------------


def test_confusion_hand_computed():
    gt = np.array([[1, 1, 1, 0, 0, 0]])
    pred = np.array([[0, 1, 1, 1, 1, 0]])
    assert confusion(pred=pred, gt=gt) == Confusion(tp=2, fp=2, fn=1, tn=1)
    c = confusion(pred=pred, gt=gt)
    assert all(isinstance(v, int) for v in c)


def test_metrics_hand_computed():
    gt = np.array([[1, 1, 1, 0, 0, 0]])
    pred = np.array([[0, 1, 1, 1, 1, 0]])  # tp=2 fp=2 fn=1 tn=1
    assert dice_score(pred, gt) == pytest.approx(4 / 7)
    assert iou_score(pred, gt) == pytest.approx(2 / 5)
    assert sensitivity(pred=pred, gt=gt) == pytest.approx(2 / 3)
    assert specificity(pred=pred, gt=gt) == pytest.approx(1 / 3)
    assert precision(pred=pred, gt=gt) == pytest.approx(1 / 2)


def test_identical_masks_are_perfect():
    gt, _ = random_mask_pair(0)
    for name, fn in METRICS.items():
        assert fn(pred=gt, gt=gt) == 1.0, name


def test_disjoint_masks():
    gt = np.zeros((4, 4), bool)
    gt[:2] = True
    pred = ~gt
    assert dice_score(pred, gt) == 0.0
    assert iou_score(pred, gt) == 0.0
    assert sensitivity(pred=pred, gt=gt) == 0.0
    assert specificity(pred=pred, gt=gt) == 0.0
    assert precision(pred=pred, gt=gt) == 0.0


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
        dice_score(pred, gt),
        iou_score(pred, gt),
        sensitivity(pred=pred, gt=gt),
        specificity(pred=pred, gt=gt),
        precision(pred=pred, gt=gt),
    ]
    assert got == pytest.approx(expected)
    assert not any(np.isnan(got))


# --------------------------------------------------------------------------------------------
# reference: medpy (same conventions on non-empty masks)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_against_medpy(seed):
    mb = require("medpy.metric.binary")
    gt, pred = random_mask_pair(seed, shape=(12, 10) if seed % 2 else (7, 9, 8))
    # medpy takes (result, reference) = (pred, gt)
    assert dice_score(pred, gt) == pytest.approx(mb.dc(pred, gt), abs=1e-12)
    assert iou_score(pred, gt) == pytest.approx(mb.jc(pred, gt), abs=1e-12)
    assert sensitivity(pred=pred, gt=gt) == pytest.approx(mb.sensitivity(pred, gt), abs=1e-12)
    assert specificity(pred=pred, gt=gt) == pytest.approx(mb.specificity(pred, gt), abs=1e-12)
    assert precision(pred=pred, gt=gt) == pytest.approx(mb.precision(pred, gt), abs=1e-12)


# --------------------------------------------------------------------------------------------
# input types
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.bool, torch.uint8, torch.int64, torch.float32, torch.float16])
def test_torch_input_matches_numpy(dtype):
    gt, pred = random_mask_pair(3)
    tg, tp = torch.from_numpy(gt).to(dtype), torch.from_numpy(pred).to(dtype)
    for name, fn in METRICS.items():
        assert fn(pred=tp, gt=tg) == fn(pred=pred, gt=gt), name
    assert confusion(pred=tp, gt=tg) == confusion(pred=pred, gt=gt)


def test_numeric_dtypes_and_mixed_inputs():
    gt, pred = random_mask_pair(4)
    ref = dice_score(pred, gt)
    assert dice_score(pred.astype(np.int32), gt.astype(np.float64)) == ref
    assert dice_score(pred.astype(np.uint8), torch.from_numpy(gt)) == ref


# --------------------------------------------------------------------------------------------
# properties
# --------------------------------------------------------------------------------------------

masks = arrays(bool, st.tuples(st.integers(1, 6), st.integers(1, 6)))


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(st.data())
def test_properties(data):
    gt = data.draw(masks)
    pred = data.draw(arrays(bool, gt.shape))
    d, j = dice_score(pred, gt), iou_score(pred, gt)
    assert 0.0 <= d <= 1.0 and 0.0 <= j <= 1.0
    assert d == pytest.approx(2 * j / (1 + j))
    assert d == dice_score(gt, pred)
    assert sensitivity(pred=pred, gt=gt) == precision(pred=gt, gt=pred)
    # specificity is sensitivity of the complements
    assert specificity(pred=pred, gt=gt) == sensitivity(pred=~pred, gt=~gt)
    c = confusion(pred=pred, gt=gt)
    assert c.tp + c.fp + c.fn + c.tn == gt.size
    for fn in METRICS.values():
        assert not np.isnan(fn(pred=pred, gt=gt))


# --------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"gt, pred: expected the same shape.*\(3, 4\).*\(4, 3\)"):
        dice_score(np.zeros((4, 3)), np.zeros((3, 4)))


def test_non_binary_values():
    with pytest.raises(
        ValueError, match=r"pred: expected a binary mask with values in \{0, 1\}, got values \[2\]"
    ):
        dice_score(np.full((3, 3), 2), np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"gt: expected a binary mask.*0\.5"):
        iou_score(np.zeros((2, 2)), np.full((2, 2), 0.5))
    with pytest.raises(ValueError, match=r"gt: expected a binary mask.*-1"):
        sensitivity(pred=torch.tensor([[0, 0]]), gt=torch.tensor([[-1, 0]]))


def test_bad_types():
    with pytest.raises(TypeError, match=r"gt: expected a numpy.ndarray or torch.Tensor, got str"):
        dice_score(np.zeros(3), "mask")
    with pytest.raises(TypeError, match=r"pred: expected an array.*scalar"):
        dice_score(1, np.zeros(3))
    with pytest.raises(TypeError, match=r"gt: expected a bool, integer or floating dtype, got dtype <U1"):
        precision(pred=np.zeros(2), gt=np.array(["a", "b"]))


# --------------------------------------------------------------------------------------------
# argument order: (pred, gt) everywhere, old positional calls kept (seglosses._checks.pred_gt)
# --------------------------------------------------------------------------------------------


def test_keywords_and_symmetric_positional_calls():
    gt = np.array([[1, 1, 1, 0, 0, 0]])
    pred = np.array([[0, 1, 1, 1, 1, 0]])  # tp=2 fp=2 fn=1 tn=1
    assert confusion(pred=pred, gt=gt) == Confusion(tp=2, fp=2, fn=1, tn=1)
    assert confusion(gt=gt, pred=pred) == Confusion(tp=2, fp=2, fn=1, tn=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # symmetric metrics: any positional order, no warning
        assert dice_score(pred, gt) == dice_score(gt, pred) == pytest.approx(4 / 7)
        assert iou_score(pred, gt) == iou_score(gt, pred) == pytest.approx(2 / 5)


@pytest.mark.parametrize(
    "fn, expected", [(sensitivity, 2 / 3), (specificity, 1 / 3), (precision, 1 / 2)], ids=lambda x: getattr(x, "__name__", "")
)
def test_old_positional_order_still_works_with_a_deprecation_warning(fn, expected):
    gt = np.array([[1, 1, 1, 0, 0, 0]])
    pred = np.array([[0, 1, 1, 1, 1, 0]])
    with pytest.warns(DeprecationWarning, match=rf"{fn.__name__}: positional arrays are read in the old order \(gt, pred\)"):
        assert fn(gt, pred) == pytest.approx(expected)  # old meaning kept: no silent change
    with pytest.warns(DeprecationWarning):
        assert confusion(gt, pred) == Confusion(tp=2, fp=2, fn=1, tn=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fn(pred=pred, gt=gt) == pytest.approx(expected)
        assert fn(gt, pred=pred) == pytest.approx(expected)  # old style f(gt, pred=...): gt first
    with pytest.raises(TypeError, match="pass the arrays by keyword"):
        fn(gt, gt=gt)


def test_order_dependent_metrics_document_keyword_only_arrays():
    import inspect

    for fn in (confusion, sensitivity, specificity, precision):
        params = inspect.signature(fn).parameters
        assert list(params)[:2] == ["pred", "gt"]
        assert all(params[k].kind is inspect.Parameter.KEYWORD_ONLY for k in ("pred", "gt"))
    for fn in (dice_score, iou_score):
        assert list(inspect.signature(fn).parameters)[:2] == ["pred", "gt"]


def test_topology_metrics_take_pred_first():
    from seglosses.metrics import betti_error, cldice_score, evaluate_topology

    gt = np.zeros((5, 9), int)
    gt[2, 1:8] = 1
    pred = gt.copy()
    pred[2, 4] = 0  # the vessel is cut in two
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # symmetric: either positional order, no warning
        assert cldice_score(pred, gt) == cldice_score(gt, pred) == cldice_score(pred=pred, gt=gt) < 1.0
        assert betti_error(pred, gt) == betti_error(gt, pred) == betti_error(pred=pred, gt=gt) == 1.0
        new = evaluate_topology(pred=pred, gt=gt, labels=[1])
        assert new == evaluate_topology(pred, gt, [1])
    with pytest.warns(DeprecationWarning, match=r"evaluate_topology: deprecated keyword\(s\) pred_labels=, gt_labels="):
        assert evaluate_topology(pred_labels=pred, gt_labels=gt, labels=[1]) == new
