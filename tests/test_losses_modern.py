"""The losses of issue 12: cldice, dice_cldice, skeleton_recall, mcc, unified_focal, gwdl,
lovasz_hinge, boundary_dou.

Reference tests against MONAI (SoftclDiceLoss, SoftDiceclDiceLoss, MCCLoss, the binary
AsymmetricUnifiedFocalLoss terms, GeneralizedWassersteinDiceLoss) and kornia
(lovasz_hinge_loss), configured to the same convention; hand-computed values from the papers'
formulas where no library implements the loss (skeleton recall, Boundary DoU, the multi-class
unified focal loss). The generic checks (modes, dims, gradients, ignore_index, ...) come from
``tests/test_contract.py``, which picks every registered loss up.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import require

from seglosses import build_loss
from seglosses.functional import (
    boundary_dou_loss,
    cldice_loss,
    gwdl_loss,
    lovasz_hinge_loss,
    mcc_loss,
    skeleton_recall_loss,
    unified_focal_loss,
)
from seglosses.functional.topology import hard_skeleton, soft_skeleton

TOL = dict(rtol=1e-5, atol=1e-6)


def _batch(shape=(3, 4, 9, 10), seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(shape, generator=g) * 2
    target = torch.randint(0, shape[1], (shape[0],) + shape[2:], generator=g)
    return logits, target


def _tree_batch(n=2, size=24, seed=0):
    """Binary masks with thin branching lines (a skeleton test needs thin structures)."""
    g = np.random.default_rng(seed)
    out = np.zeros((n, size, size), np.int64)
    for i in range(n):
        r = g.integers(4, size - 4)
        out[i, r, 2:-2] = 1
        for c in g.integers(3, size - 3, size=3):
            out[i, 2:r, c] = 1
        out[i, r:r + 2, 2:-2] = 1
    return torch.from_numpy(out)


# ----------------------------------------------------------------------------- soft skeleton, clDice

@pytest.mark.parametrize("spatial", [(12, 13), (6, 7, 8)])
@pytest.mark.parametrize("iters", [0, 3, 5])
def test_soft_skeleton_matches_monai(spatial, iters):
    cl = require("monai.losses.cldice")
    x = torch.rand((2, 3) + spatial, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(soft_skeleton(x, iters), cl.soft_skel(x, iters), rtol=0, atol=0)


@pytest.mark.parametrize("spatial", [(15,), (12, 13), (6, 7, 8)])
def test_hard_skeleton_equals_soft_skeleton_on_binary_maps(spatial):
    m = torch.rand((2, 3) + spatial, generator=torch.Generator().manual_seed(5)) > 0.4
    for iters in (0, 2, 4):
        hard = hard_skeleton(m, iters)
        assert hard.dtype == torch.uint8
        torch.testing.assert_close(hard.float(), soft_skeleton(m.float(), iters), rtol=0, atol=0)


def test_soft_skeleton_gradient_matches_monai():
    cl = require("monai.losses.cldice")
    x = torch.rand(2, 2, 10, 11, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    a = x.clone().requires_grad_(True)
    b = x.clone().requires_grad_(True)
    w = torch.randn_like(x)
    (soft_skeleton(a, 3) * w).sum().backward()
    (cl.soft_skel(b, 3) * w).sum().backward()
    torch.testing.assert_close(a.grad, b.grad)


@pytest.mark.parametrize("include_background", [True, False])
@pytest.mark.parametrize("spatial", [(16, 17), (6, 7, 8)])
def test_cldice_pooled_classes_matches_monai(include_background, spatial):
    monai_losses = require("monai.losses")
    logits, target = _batch((2, 3) + spatial)
    ref = monai_losses.SoftclDiceLoss(
        iter_=3, smooth_nr=1.0, smooth_dr=1.0, smooth=1e-12, softmax=True, to_onehot_y=True,
        include_background=include_background,
    )(logits, target.unsqueeze(1))
    ours = cldice_loss(logits, target, smooth=1.0, pool_classes=True, include_background=include_background)
    torch.testing.assert_close(ours, ref, **TOL)


def test_cldice_binary_matches_monai_and_is_not_zero():
    """Old MONAI (and the authors' code) drop channel 0, so a one-channel input gave 0."""
    monai_losses = require("monai.losses")
    target = _tree_batch()
    logits = torch.randn(2, 1, 24, 24, generator=torch.Generator().manual_seed(3))
    ref = monai_losses.SoftclDiceLoss(smooth_nr=1e-5, smooth_dr=1e-5, smooth=1e-12, sigmoid=True)(
        logits, target.unsqueeze(1).float()
    )
    ours = cldice_loss(logits, target)
    torch.testing.assert_close(ours, ref, **TOL)
    assert float(ours) > 0.1


def test_dice_cldice_matches_monai():
    monai_losses = require("monai.losses")
    logits, target = _batch((2, 3, 16, 17))
    onehot = F.one_hot(target, 3).movedim(-1, 1).float()
    ref = monai_losses.SoftDiceclDiceLoss(
        alpha=0.3, smooth_nr=1e-5, smooth_dr=1e-5, smooth=1e-12, softmax=True, include_background=False
    )(logits, onehot)
    ours = build_loss(
        "0.7*dice+0.3*cldice", include_background=False, cldice={"pool_classes": True}
    )(logits, target)
    torch.testing.assert_close(ours, ref, **TOL)


def test_cldice_hand_computed_per_class_and_pooled():
    # class 1: a horizontal line, predicted on 3 of its 5 pixels (Tprec 1, Tsens 3/5);
    # class 2: a vertical line, predicted in full (loss 0).
    target = torch.zeros(1, 9, 9, dtype=torch.long)
    target[0, 2, 1:6] = 1
    target[0, 4:9, 7] = 2
    probs = torch.zeros(1, 3, 9, 9)
    probs[0, 0] = 1
    probs[0, 1, 2, 1:4] = 1
    probs[0, 2, 4:9, 7] = 1
    probs[0, 0] -= probs[0, 1] + probs[0, 2]
    per_class = cldice_loss(probs, target, from_logits=False, smooth=0.0, reduction="none")
    torch.testing.assert_close(per_class, torch.tensor([[0.25, 0.0]]))
    # pooled: Tprec = 8/8, Tsens = (3 + 5)/(5 + 5) = 0.8 -> 1 - 1.6/1.8
    pooled = cldice_loss(probs, target, from_logits=False, smooth=0.0, pool_classes=True)
    assert math.isclose(float(pooled), 1 - 1.6 / 1.8, rel_tol=1e-6)


def test_cldice_alone_is_zero_for_an_all_foreground_prediction():
    """Documented degenerate minimum (why cldice is combined with Dice): no skeleton, Tprec = 1."""
    target = torch.zeros(1, 16, 16, dtype=torch.long)
    target[0, 8, 2:14] = 1
    assert float(cldice_loss(torch.ones(1, 1, 16, 16), target, from_logits=False)) == 0.0
    assert float(build_loss("dice_cldice", from_logits=False)(torch.ones(1, 1, 16, 16), target)) > 0.4


def test_cldice_empty_ground_truth():
    target = torch.zeros(1, 8, 8, dtype=torch.long)
    nothing = torch.zeros(1, 1, 8, 8)
    assert float(cldice_loss(nothing, target, from_logits=False)) == 0.0
    something = nothing.clone()
    something[0, 0, 3, 2:6] = 1
    assert float(cldice_loss(something, target, from_logits=False)) > 0.99


# ----------------------------------------------------------------------------- skeleton recall

def test_skeleton_recall_hand_computed_and_tube():
    target = torch.zeros(1, 9, 9, dtype=torch.long)
    target[0, 3:6] = 1  # a 3-pixel band; its skeleton is a line inside it
    from seglosses.skeleton import tubed_skeleton

    for tube in (0, 1, 2):
        t = torch.from_numpy(tubed_skeleton(target[0].numpy() == 1, tube)).float()
        pred = torch.zeros(1, 1, 9, 9)
        pred[0, 0, :, :4] = 1
        expected = 1.0 - float((t[:, :4]).sum() / t.sum())
        got = float(skeleton_recall_loss(pred, target, from_logits=False, tube=tube, smooth=0.0))
        assert math.isclose(got, expected, rel_tol=1e-6), (tube, got, expected)
        assert t.sum() > 0 and (t.bool() & ~(target[0] == 1)).sum() == 0  # inside the mask


def test_skeleton_recall_precomputed_equals_on_the_fly_and_transform():
    from seglosses.transforms import PrecomputeSkeletons

    logits, target = _batch((2, 3, 16, 16), seed=4)
    target[:, 4:12, 4:12] = 1
    tf = PrecomputeSkeletons(num_classes=3)
    skel = torch.stack([torch.from_numpy(tf({"label": t.numpy()})["skeleton"]) for t in target])
    assert skel.shape == (2, 3, 16, 16)
    loss = build_loss("skeleton_recall")
    torch.testing.assert_close(loss(logits, target, skeleton=skel), loss(logits, target), rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"skeleton: expected the tubed skeleton of shape \(2, 3, 16, 16\)"):
        loss(logits, target, skeleton=skel[:, :2])


def test_skeleton_recall_is_a_positive_loss_with_background():
    """The authors' code returns -recall and raises with the background; here 1 - recall, any channel."""
    logits, target = _batch((2, 3, 12, 12), seed=5)
    value = skeleton_recall_loss(logits, target, include_background=True)
    assert 0.0 < float(value) < 1.0
    perfect = F.one_hot(target, 3).movedim(-1, 1).float()
    assert float(skeleton_recall_loss(perfect, target, from_logits=False, include_background=True)) < 1e-6


def test_skeleton_recall_empty_ground_truth_is_zero():
    target = torch.zeros(2, 8, 8, dtype=torch.long)
    logits = torch.randn(2, 1, 8, 8)
    assert float(skeleton_recall_loss(logits, target)) == 0.0


# ----------------------------------------------------------------------------- MCC

@pytest.mark.parametrize("batch", [False, True])
@pytest.mark.parametrize("include_background", [True, False])
def test_mcc_matches_monai(batch, include_background):
    monai_losses = require("monai.losses")
    logits, target = _batch((3, 4, 9, 10))
    ref = monai_losses.MCCLoss(softmax=True, to_onehot_y=True, batch=batch, include_background=include_background)(
        logits, target.unsqueeze(1)
    )
    ours = mcc_loss(logits, target, batch=batch, include_background=include_background)
    torch.testing.assert_close(ours, ref, **TOL)


def test_mcc_binary_matches_monai():
    monai_losses = require("monai.losses")
    logits = torch.randn(3, 1, 7, 8, generator=torch.Generator().manual_seed(6))
    target = (torch.rand(3, 7, 8, generator=torch.Generator().manual_seed(7)) > 0.7).long()
    ref = monai_losses.MCCLoss(sigmoid=True)(logits, target.unsqueeze(1).float())
    torch.testing.assert_close(mcc_loss(logits, target), ref, **TOL)


def test_mcc_hand_computed_and_perfect():
    probs = torch.tensor([[[1.0, 1.0, 0.0, 0.0]]])  # tp 1, fp 1, fn 0, tn 2
    target = torch.tensor([[1, 0, 0, 0]])
    assert math.isclose(float(mcc_loss(probs, target, from_logits=False, smooth=0.0)), 1 - 2 / math.sqrt(12), rel_tol=1e-6)
    assert float(mcc_loss(target.float().unsqueeze(1), target, from_logits=False)) == 0.0
    inverted = 1.0 - target.float().unsqueeze(1)  # MCC = -1
    assert math.isclose(float(mcc_loss(inverted, target, from_logits=False, smooth=0.0)), 2.0, rel_tol=1e-6)


def test_mcc_large_pooled_volume():
    n = 4_000_000  # 1.6e7 voxels pooled: products of the sums ~ 1e27, tp tn - fp fn cancels
    target = torch.zeros(4, n, dtype=torch.long)
    target[:, : n // 2] = 1
    probs = torch.full((4, 1, n), 0.5)
    probs[:, :, : n // 2] = 0.75
    value = mcc_loss(probs, target, from_logits=False, batch=True)
    # in units of n/2: tp .75, fp .5, fn .25, tn .5
    expected = 1 - (0.75 * 0.5 - 0.5 * 0.25) / math.sqrt(1.25 * 1.0 * 1.0 * 0.75)
    assert torch.isfinite(value) and math.isclose(float(value), expected, rel_tol=1e-5)


# ----------------------------------------------------------------------------- unified focal

def _monai_unified_terms(probs1, target1, delta, gamma):
    ufl = require("monai.losses.unified_focal_loss")
    p2 = torch.cat([1 - probs1, probs1], 1)
    g = target1.unsqueeze(1).float()
    g2 = torch.cat([1 - g, g], 1)
    focal = ufl.AsymmetricFocalLoss(delta=delta, gamma=gamma)(p2, g2)
    tversky = ufl.AsymmetricFocalTverskyLoss(delta=delta, gamma=gamma)(p2, g2)
    return focal, tversky


@pytest.mark.parametrize("delta,gamma", [(0.6, 0.5), (0.7, 0.75), (0.3, 0.2)])
def test_unified_focal_binary_matches_monai_terms(delta, gamma):
    g = torch.Generator().manual_seed(8)
    probs = torch.rand(3, 1, 9, 10, generator=g) * 0.98 + 0.01  # inside MONAI's clipping
    target = (torch.rand(3, 9, 10, generator=g) > 0.7).long()
    focal, tversky = _monai_unified_terms(probs, target, delta, gamma)
    kw = dict(from_logits=False, delta=delta, gamma=gamma, smooth=1e-7)
    torch.testing.assert_close(unified_focal_loss(probs, target, weight=1.0, **kw), 2 * focal, **TOL)
    torch.testing.assert_close(unified_focal_loss(probs, target, weight=0.0, **kw), tversky, **TOL)
    # the full loss vs MONAI's AsymmetricUnifiedFocalLoss (same terms, focal half as large there)
    ufl = require("monai.losses.unified_focal_loss")
    ref = ufl.AsymmetricUnifiedFocalLoss(weight=0.5, delta=delta, gamma=gamma)(probs, target.unsqueeze(1).float())
    torch.testing.assert_close(ref, 0.5 * focal + 0.5 * tversky, **TOL)
    torch.testing.assert_close(unified_focal_loss(probs, target, weight=0.5, **kw), focal + 0.5 * tversky, **TOL)


def test_unified_focal_multiclass_hand_computed():
    # 1 sample, 3 classes, 2 voxels with labels (0, 2); probabilities given
    probs = torch.tensor([[[0.5, 0.2], [0.3, 0.2], [0.2, 0.6]]])
    target = torch.tensor([[0, 2]])
    delta, gamma = 0.6, 0.5
    # focal: voxel 0 background: (1-delta) (1-0.5)^gamma (-log 0.5); voxel 1 class 2: delta (-log 0.6)
    focal = ((1 - delta) * 0.5**gamma * math.log(2) + delta * -math.log(0.6)) / 2
    got = unified_focal_loss(probs, target, from_logits=False, weight=1.0, delta=delta, gamma=gamma)
    assert math.isclose(float(got), focal, rel_tol=1e-5)
    # symmetric: class 2 also modulated by (1 - 0.6)^gamma
    sym = ((1 - delta) * 0.5**gamma * math.log(2) + delta * 0.4**gamma * -math.log(0.6)) / 2
    got = unified_focal_loss(probs, target, from_logits=False, weight=1.0, variant="symmetric")
    assert math.isclose(float(got), sym, rel_tol=1e-5)
    # Tversky: per class tp, fp, fn
    tp = [0.5, 0.0, 0.6]
    fp = [0.2, 0.5, 0.2]
    fn = [0.5, 0.0, 0.4]
    ti = [t / (t + delta * f_n + (1 - delta) * f_p) if t + f_n + f_p > 0 else 1 for t, f_p, f_n in zip(tp, fp, fn)]
    tv = ((1 - ti[0]) + (1 - ti[1]) ** (1 - gamma) + (1 - ti[2]) ** (1 - gamma)) / 3
    got = unified_focal_loss(probs, target, from_logits=False, weight=0.0, smooth=0.0)
    assert math.isclose(float(got), tv, rel_tol=1e-5)


def test_unified_focal_argument_errors():
    logits, target = _batch((1, 3, 4, 4))
    with pytest.raises(ValueError, match=r"gamma: expected a number in \[0, 1\), got 1.0"):
        unified_focal_loss(logits, target, gamma=1.0)
    with pytest.raises(ValueError, match=r"variant: expected one of \['asymmetric', 'symmetric'\], got 'sym'"):
        unified_focal_loss(logits, target, variant="sym")


# ----------------------------------------------------------------------------- GWDL

@pytest.mark.parametrize("weighting_mode", ["default", "GDL"])
@pytest.mark.parametrize("matrix", [None, [[0.0, 1.0, 1.0], [1.0, 0.0, 0.5], [1.0, 0.5, 0.0]], [[0, 2, 4], [2, 0, 1], [4, 1, 0]]])
@pytest.mark.parametrize("spatial", [(9, 10), (4, 5, 6)])
def test_gwdl_matches_monai(weighting_mode, matrix, spatial):
    monai_losses = require("monai.losses")
    logits, target = _batch((3, 3) + spatial, seed=9)
    m = np.array(matrix if matrix is not None else 1 - np.eye(3), dtype=np.float32)
    ref = monai_losses.GeneralizedWassersteinDiceLoss(dist_matrix=m, weighting_mode=weighting_mode, reduction="none")(
        logits, target
    )
    ours = gwdl_loss(logits, target, dist_matrix=matrix, weighting_mode=weighting_mode, reduction="none")
    torch.testing.assert_close(ours, ref, **TOL)


def test_gwdl_hand_computed_and_errors():
    probs = torch.tensor([[[1.0, 0.5], [0.0, 0.5]]])
    target = torch.tensor([[0, 1]])
    assert math.isclose(float(gwdl_loss(probs, target, from_logits=False, smooth=0.0)), 1 - 1 / 1.5, rel_tol=1e-6)
    with pytest.raises(ValueError, match=r"dist_matrix: expected a \(2, 2\) matrix.*got shape \(3, 3\)"):
        gwdl_loss(probs, target, dist_matrix=np.ones((3, 3)) - np.eye(3))
    with pytest.raises(ValueError, match="dist_matrix: expected zeros on the diagonal"):
        gwdl_loss(probs, target, dist_matrix=[[1.0, 1.0], [1.0, 0.0]])
    with pytest.raises(ValueError, match="weighting_mode"):
        gwdl_loss(probs, target, weighting_mode="gdl")


# ----------------------------------------------------------------------------- Lovász hinge

@pytest.mark.parametrize("scale", [1.0, 5.0, 300.0])
def test_lovasz_hinge_matches_kornia(scale):
    kornia = require("kornia")
    g = torch.Generator().manual_seed(10)
    logits = torch.randn(3, 1, 9, 10, generator=g) * scale
    target = (torch.rand(3, 9, 10, generator=g) > 0.6).long()
    target[2] = 0  # an image without foreground
    a = logits.clone().requires_grad_(True)
    b = logits.clone().requires_grad_(True)
    ours = lovasz_hinge_loss(a, target)
    ref = kornia.losses.lovasz_hinge_loss(b, target)
    torch.testing.assert_close(ours, ref, **TOL)
    ours.backward()
    ref.backward()
    torch.testing.assert_close(a.grad, b.grad, **TOL)


def test_lovasz_hinge_pooled_and_hand_computed():
    logits = torch.tensor([[[2.0, 0.5, -3.0]]])
    target = torch.tensor([[1, 0, 0]])
    assert math.isclose(float(lovasz_hinge_loss(logits, target)), 0.75, rel_tol=1e-6)
    # pooled over the batch = per image on the concatenation
    logits, target = torch.randn(2, 1, 5, 6), (torch.rand(2, 5, 6) > 0.5).long()
    pooled = lovasz_hinge_loss(logits, target, per_image=False)
    cat = lovasz_hinge_loss(logits.permute(1, 0, 2, 3).reshape(1, 1, 10, 6), target.reshape(1, 10, 6))
    torch.testing.assert_close(pooled, cat, **TOL)


# ----------------------------------------------------------------------------- Boundary DoU

def _dou_reference(p: torch.Tensor, g: torch.Tensor, alpha_max=0.8):
    """The paper's formula on one 2-D (p, g), boundary by a cross-kernel convolution."""
    kernel = torch.tensor([[0.0, 1, 0], [1, 1, 1], [0, 1, 0]]).view(1, 1, 3, 3)
    y = F.conv2d(g.view(1, 1, *g.shape), kernel, padding=1)[0, 0] * g
    c = float(((y > 0) & (y < 5)).sum())
    s = float(g.sum())
    alpha = min(1 - 2 * c / s, alpha_max)
    inter, union = float((p * g).sum()), float((p * p).sum() + (g * g).sum())
    return (union - 2 * inter) / (union - (1 + alpha) * inter)


def test_boundary_dou_matches_paper_formula():
    g = torch.Generator().manual_seed(11)
    target = torch.zeros(2, 12, 12, dtype=torch.long)
    target[0, 2:10, 3:11] = 1  # a big square: alpha truncated at 0.8
    target[1, 5, :] = 1  # a thin line: alpha negative
    target[1, 0:3, 0:2] = 1  # touching the border
    probs = torch.rand(2, 1, 12, 12, generator=g)
    per_sample = boundary_dou_loss(probs, target, from_logits=False, smooth=0.0, reduction="none")
    for i in range(2):
        ref = _dou_reference(probs[i, 0], target[i].float())
        assert math.isclose(float(per_sample[i, 0]), ref, rel_tol=1e-5)
    assert math.isclose(
        float(boundary_dou_loss(probs, target, from_logits=False, smooth=0.0, alpha_max=1.0)[()]),
        np.mean([_dou_reference(probs[i, 0], target[i].float(), 1.0) for i in range(2)]),
        rel_tol=1e-5,
    )


def test_boundary_dou_empty_ground_truth():
    target = torch.zeros(1, 6, 6, dtype=torch.long)
    assert float(boundary_dou_loss(torch.zeros(1, 1, 6, 6), target, from_logits=False)) == 0.0
    assert float(boundary_dou_loss(torch.full((1, 1, 6, 6), 0.5), target, from_logits=False)) > 0.99
