"""Boundary- and distance-based losses and the structural loss: references (Kervadec's formula with
scipy, MONAI's HausdorffDTLoss), hand-computed formulas, precomputed == on the fly, empty masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import require

import seglosses
from seglosses import build_loss
from seglosses.distance import boundary_distance_map, penalty_map, signed_distance_map, unsigned_distance_map
from seglosses.functional import (
    boundary_loss,
    ce_loss,
    cmss_loss,
    dice_loss,
    dpce_loss,
    hausdorff_loss,
    shape_aware_loss,
)
from seglosses.transforms import PrecomputeDistanceMaps

MAP_LOSSES = ["dpce", "boundary", "hausdorff", "shape_aware"]
ALL_HERE = MAP_LOSSES + ["cmss", "dice_bd", "dice_hd"]


def _case(shape=(2, 3, 12, 13), seed=0, informative=True):
    """Logits correlated with a blob-like label map, so that masks have real boundaries."""
    g = torch.Generator().manual_seed(seed)
    n, c = shape[:2]
    spatial = shape[2:]
    scores = torch.rand((n, c) + spatial, generator=g)
    pool = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[len(spatial)]
    scores = pool(scores, 3, stride=1, padding=1, count_include_pad=False)
    target = scores.argmax(1)
    logits = torch.randn(shape, generator=g) * 1.5
    if informative:
        logits = logits + 3 * F.one_hot(target, c).movedim(-1, 1).float()
    return logits, target


def _scipy_edt(mask, spacing=None):
    ndi = require("scipy.ndimage")
    return ndi.distance_transform_edt(mask, sampling=spacing)


# ----------------------------------------------------------------------------- boundary

def _kervadec_boundary(probs: torch.Tensor, target: torch.Tensor, idc, spacing=None) -> torch.Tensor:
    """SurfaceLoss of LIVIAETS/boundary-loss: one_hot2dist with scipy, einsum, mean over kept classes."""
    n, c = probs.shape[:2]
    dist = np.zeros(probs.shape)
    for i in range(n):
        for k in range(c):
            pos = (target[i] == k).numpy()
            if pos.any() and not pos.all():
                neg = ~pos
                dist[i, k] = _scipy_edt(neg, spacing) * neg - (_scipy_edt(pos, spacing) - 1) * pos
    dc = torch.from_numpy(dist).to(probs.dtype)[:, idc]
    return torch.einsum("bk...,bk...->bk...", probs[:, idc], dc).mean()


@pytest.mark.parametrize("shape, spacing", [((2, 3, 12, 13), None), ((2, 4, 7, 8, 9), (2.0, 1.0, 0.5)), ((3, 3, 30), (0.5,))])
def test_boundary_equals_kervadec_formula(shape, spacing):
    logits, target = _case(shape)
    probs = torch.softmax(logits, 1)
    c = shape[1]
    expected = _kervadec_boundary(probs, target, list(range(1, c)), spacing)
    torch.testing.assert_close(boundary_loss(logits, target, spacing=spacing), expected, rtol=1e-5, atol=1e-6)
    expected_bg = _kervadec_boundary(probs, target, list(range(c)), spacing)
    torch.testing.assert_close(
        boundary_loss(logits, target, spacing=spacing, include_background=True), expected_bg, rtol=1e-5, atol=1e-6
    )


def test_boundary_binary_and_multilabel():
    logits, target = _case((2, 2, 10, 11), seed=1)
    fg = (target == 1).long()
    probs = torch.sigmoid(logits[:, 1:])
    expected = _kervadec_boundary(torch.cat([1 - probs, probs], 1), fg, [1], None)  # the foreground channel
    torch.testing.assert_close(boundary_loss(logits[:, 1:], fg), expected.float(), rtol=1e-5, atol=1e-6)
    multi = torch.stack([(target == 0), (target == 1)], 1).float()
    probs2 = torch.sigmoid(logits)
    # multilabel: every channel kept with include_background=True; the default drops channel 0 (MONAI)
    expected2 = (probs2 * signed_distance_map(multi)).mean()
    torch.testing.assert_close(boundary_loss(logits, multi, mode="multilabel", include_background=True), expected2)
    expected3 = (probs2[:, 1:] * signed_distance_map(multi)[:, 1:]).mean()
    torch.testing.assert_close(boundary_loss(logits, multi, mode="multilabel"), expected3)


# ----------------------------------------------------------------------------- hausdorff vs MONAI

@pytest.mark.parametrize("include_background", [False, True])
@pytest.mark.parametrize("alpha", [2.0, 1.5])
@pytest.mark.parametrize("shape", [(2, 4, 14, 15), (2, 3, 8, 9, 10)])
def test_hausdorff_equals_monai_multiclass(shape, alpha, include_background):
    monai = require("monai.losses")
    logits, target = _case(shape, seed=2)
    ref = monai.HausdorffDTLoss(alpha=alpha, include_background=include_background, softmax=True, to_onehot_y=True)
    x1 = logits.clone().requires_grad_(True)
    x2 = logits.clone().requires_grad_(True)
    expected = ref(x1, target.unsqueeze(1))
    ours = hausdorff_loss(x2, target, alpha=alpha, include_background=include_background)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-6)
    expected.backward()
    ours.backward()
    torch.testing.assert_close(x2.grad, x1.grad, rtol=1e-5, atol=1e-7)
    # one-hot target == label map
    onehot = F.one_hot(target, shape[1]).movedim(-1, 1).float()
    torch.testing.assert_close(hausdorff_loss(logits, onehot, alpha=alpha, include_background=include_background), ours.detach())


@pytest.mark.parametrize("shape", [(2, 1, 16, 12), (2, 3, 7, 8, 6)])
def test_hausdorff_equals_monai_sigmoid(shape):
    monai = require("monai.losses")
    logits, target = _case((shape[0], max(2, shape[1])) + shape[2:], seed=3)
    if shape[1] == 1:
        logits, tgt = logits[:, 1:2], (target == 1).float().unsqueeze(1)
        mode = "binary"
    else:
        tgt = F.one_hot(target, shape[1]).movedim(-1, 1).float()
        tgt[:, 0] = (target != 2).float()  # overlapping channels: multi-label
        mode = "multilabel"
    ref = monai.HausdorffDTLoss(sigmoid=True, include_background=True)(logits, tgt)
    torch.testing.assert_close(hausdorff_loss(logits, tgt, mode=mode, include_background=True), ref, rtol=1e-5, atol=1e-6)
    if shape[1] > 1:  # MONAI's default include_background=False drops channel 0 when C > 1 (sigmoid too)
        ref = monai.HausdorffDTLoss(sigmoid=True)(logits, tgt)
        torch.testing.assert_close(hausdorff_loss(logits, tgt, mode=mode), ref, rtol=1e-5, atol=1e-6)


def test_hausdorff_hand_computed_with_spacing():
    target = torch.tensor([[0, 0, 1, 1, 1, 0]])
    pred = torch.tensor([[[0.0, 0, 1, 1, 1, 1]]])
    # spacing 2: d_G at voxel 5 = 2, d_S at voxel 5 = 8 -> (4 + 64) / 6
    value = hausdorff_loss(pred, target, from_logits=False, spacing=2.0)
    assert float(value) == pytest.approx(68 / 6)


def test_hausdorff_works_with_grad_and_does_not_backprop_through_maps():
    logits, target = _case((2, 3, 9, 10))
    logits.requires_grad_(True)
    value = hausdorff_loss(logits, target)
    value.backward()
    # gradient of mean((p - g)^2 * dist) with dist held constant
    g = F.one_hot(target, 3).movedim(-1, 1).float()[:, 1:]
    dist = unsigned_distance_map(target, 3)[:, 1:] ** 2
    s = torch.softmax(logits.detach(), 1)
    d_s = unsigned_distance_map((s > 0.5).float())[:, 1:] ** 2
    x = logits.detach().clone().requires_grad_(True)
    ((torch.softmax(x, 1)[:, 1:] - g) ** 2 * (dist + d_s)).mean().backward()
    torch.testing.assert_close(logits.grad, x.grad)


# ----------------------------------------------------------------------------- dpce

def _penalty_reference(mask: np.ndarray) -> np.ndarray:
    """The penalty map's formula, written out with scipy (see seglosses.distance.penalty_map)."""
    out = np.zeros(mask.shape)
    if not mask.any() or mask.all():
        return out
    for side in (mask, ~mask):
        d = _scipy_edt(side)[side]
        out[side] = 1 - (d - d.min()) / (d.max() - d.min()) if d.max() > d.min() else 1.0
    return out


def test_dpce_differs_from_ce_and_equals_the_formula():
    logits, target = _case((2, 3, 11, 12), seed=5)
    value = dpce_loss(logits, target)
    ce = ce_loss(logits, target)
    assert float(value) > float(ce) + 1e-3  # a real weighting, not the published plain-CE bug
    logp = torch.log_softmax(logits, 1)
    weights = torch.zeros_like(target, dtype=torch.float64)
    for n in range(2):
        for c in range(3):
            mask = (target[n] == c).numpy()
            weights[n][target[n] == c] = torch.from_numpy(_penalty_reference(mask))[target[n] == c]
    expected = -((1 + weights.float()) * logp.gather(1, target.unsqueeze(1)).squeeze(1)).mean()
    torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-6)
    # soft/one-hot target == label map; binary form == weighted BCE
    onehot = F.one_hot(target, 3).movedim(-1, 1).float()
    torch.testing.assert_close(dpce_loss(logits, onehot), value)
    fg = (target == 1).long()
    d = torch.from_numpy(np.stack([_penalty_reference(m) for m in (fg == 1).numpy()])).float().unsqueeze(1)
    bce = F.binary_cross_entropy_with_logits(logits[:, 1:2], fg.unsqueeze(1).float(), reduction="none")
    torch.testing.assert_close(dpce_loss(logits[:, 1:2], fg), ((1 + d) * bce).mean(), rtol=1e-5, atol=1e-6)


def test_dpce_empty_ground_truth_is_plain_ce_not_nan():
    logits = torch.randn(1, 1, 6, 6)
    empty = torch.zeros(1, 6, 6, dtype=torch.long)
    torch.testing.assert_close(dpce_loss(logits, empty), ce_loss(logits, empty))


# ----------------------------------------------------------------------------- shape-aware

def test_shape_aware_E_as_documented():
    ndi = require("scipy.ndimage")
    logits, target = _case((2, 3, 13, 12), seed=6)
    logits = logits + torch.randn(logits.shape, generator=torch.Generator().manual_seed(1)) * 2  # imperfect prediction
    value = shape_aware_loss(logits, target, spacing=(1.0, 2.0))
    hard = logits.argmax(1)
    e = torch.zeros(target.shape, dtype=torch.float64)
    full = np.ones((3, 3))
    for n in range(2):
        for c in range(3):
            g = (target[n] == c).numpy()
            s = (hard[n] == c).numpy()
            if not g.any() or g.all():
                continue
            g_bnd = g & ~ndi.binary_erosion(g, structure=full, border_value=1)
            s_bnd = s & ~ndi.binary_erosion(s, structure=full, border_value=1)
            dist = _scipy_edt(~g_bnd, (1.0, 2.0))
            e[n][torch.from_numpy(s_bnd)] = torch.from_numpy(dist[s_bnd])
    ce = F.cross_entropy(logits, target, reduction="none")
    torch.testing.assert_close(value, ((1 + e.float()) * ce).mean(), rtol=1e-5, atol=1e-6)
    assert float(value) > float(ce.mean())
    # a perfect (hard) prediction puts its boundary on the GT boundary: E = 0, plain CE
    perfect = F.one_hot(target, 3).movedim(-1, 1).float() * 10
    torch.testing.assert_close(shape_aware_loss(perfect, target), ce_loss(perfect, target))


# ----------------------------------------------------------------------------- cmss

def _cmss_reference(probs, onehot, logp, window=3, c4=0.01, beta=0.1):
    """Direct loops over windows (2D), float64."""
    h, w = probs.shape[2:]
    r = window // 2

    def normalised(x):
        out = torch.zeros_like(x)
        for i in range(h):
            for j in range(w):
                win = x[:, :, max(0, i - r): i + r + 1, max(0, j - r): j + r + 1].flatten(2)
                mu = win.mean(2)
                sigma = win.var(2, unbiased=False).sqrt()
                out[:, :, i, j] = (x[:, :, i, j] - mu + c4) / (sigma + c4)
        return out

    e = (normalised(onehot) - normalised(probs)).abs()
    f = (e > beta * e.max()).double()
    ce = -onehot * logp
    return (e * f * ce).sum() / f.sum()


@pytest.mark.parametrize("window", [3, 5])
def test_cmss_equals_direct_formula(window):
    logits, target = _case((2, 3, 9, 8), seed=7)
    logits = logits.double()
    onehot = F.one_hot(target, 3).movedim(-1, 1).double()
    expected = _cmss_reference(torch.softmax(logits, 1), onehot, torch.log_softmax(logits, 1), window)
    value = cmss_loss(logits, target, window_size=window)
    torch.testing.assert_close(value, expected, rtol=1e-6, atol=1e-8)
    assert abs(float(value) - float(ce_loss(logits, target))) > 1e-3


def test_cmss_argument_errors():
    logits, target = _case((1, 3, 5, 5))
    with pytest.raises(ValueError, match="window_size: expected an odd positive int, got 4"):
        cmss_loss(logits, target, window_size=4)
    with pytest.raises(ValueError, match="beta"):
        cmss_loss(logits, target, beta=2.0)


# ----------------------------------------------------------------------------- precomputed == on the fly

_MAP_FN = {"dpce": penalty_map, "boundary": signed_distance_map, "hausdorff": unsigned_distance_map, "shape_aware": boundary_distance_map}


@pytest.mark.parametrize("name", MAP_LOSSES)
@pytest.mark.parametrize("shape", [(2, 3, 10, 11), (2, 3, 6, 7, 8)])
def test_precomputed_map_equals_on_the_fly(name, shape):
    logits, target = _case(shape, seed=8)
    spacing = (1.5,) + (1.0,) * (len(shape) - 3)
    loss = build_loss(name, spacing=spacing)
    dmap = _MAP_FN[name](target, shape[1], spacing)
    torch.testing.assert_close(loss(logits, target, distance_map=dmap), loss(logits, target), rtol=0, atol=0)
    # from the dataset-side transform, collated
    tf = PrecomputeDistanceMaps(name, num_classes=shape[1], spacing=spacing)
    collated = torch.stack([torch.from_numpy(tf({"label": t.numpy()})["distance_map"]) for t in target])
    torch.testing.assert_close(loss(logits, target, distance_map=collated), loss(logits, target), rtol=0, atol=0)


@pytest.mark.parametrize("name, map_name", [("dice_bd", "boundary"), ("dice_hd", "hausdorff")])
def test_compounds_pass_the_precomputed_map(name, map_name):
    logits, target = _case((2, 3, 10, 9), seed=9)
    dmap = _MAP_FN[map_name](target, 3)
    a, b = build_loss(name), build_loss(name)
    a.set_epoch(40)
    b.set_epoch(40)
    torch.testing.assert_close(a(logits, target, distance_map=dmap), b(logits, target))


def test_distance_map_shape_error_names_argument():
    logits, target = _case((2, 3, 6, 7))
    with pytest.raises(ValueError, match=r"distance_map: expected the signed distance map of shape \(2, 3, 6, 7\).*got shape \(2, 2, 6, 7\)"):
        boundary_loss(logits, target, distance_map=torch.zeros(2, 2, 6, 7))


# ----------------------------------------------------------------------------- empty masks

def _empty_cases(mode):
    n, spatial = 2, (7, 8)
    if mode == "multiclass":
        logits = torch.randn((n, 3) + spatial)
        empty_gt = torch.zeros((n,) + spatial, dtype=torch.long)  # only background
        empty_pred_logits = torch.zeros((n, 3) + spatial)
        empty_pred_logits[:, 0] = 20.0  # predicts only background
        some_gt = empty_gt.clone()
        some_gt[:, 2:5, 3:6] = 1
    else:
        logits = torch.randn((n, 1) + spatial)
        empty_gt = torch.zeros((n,) + spatial, dtype=torch.long)
        empty_pred_logits = torch.full((n, 1) + spatial, -20.0)
        some_gt = empty_gt.clone()
        some_gt[:, 2:5, 3:6] = 1
    return [(logits, empty_gt), (empty_pred_logits, some_gt), (empty_pred_logits, empty_gt)]


@pytest.mark.parametrize("mode", ["multiclass", "binary"])
@pytest.mark.parametrize("name", ALL_HERE)
def test_empty_ground_truth_and_prediction_are_finite(name, mode):
    for logits, target in _empty_cases(mode):
        x = logits.clone().requires_grad_(True)
        loss = build_loss(name, mode=mode)
        value = loss(x, target)
        assert torch.isfinite(value), f"{name} ({mode}): non-finite loss {value}"
        value.backward()
        assert torch.isfinite(x.grad).all(), f"{name} ({mode}): non-finite gradient"


def test_all_losses_here_are_registered_with_metadata():
    for name in ALL_HERE:
        info = seglosses.loss_info(name)
        assert info.paper and info.formula
    for name in MAP_LOSSES + ["dice_bd", "dice_hd"]:
        info = seglosses.loss_info(name)
        assert info.needs_distance_map and info.call_args == ("distance_map",)
    # None: channel 0 dropped when C > 1 (MONAI's False), the single binary channel kept
    assert seglosses.loss_info("hausdorff").defaults["include_background"] is None
    assert seglosses.loss_info("boundary").defaults["include_background"] is None
    assert seglosses.loss_info("cmss").defaults == {"window_size": 3, "c4": 0.01, "beta": 0.1, "reduction": "mean"}


def test_dice_bd_value_is_the_scheduled_sum():
    logits, target = _case((2, 3, 10, 9), seed=10)
    loss = build_loss("dice_bd")
    loss.set_epoch(30)
    expected = 0.7 * dice_loss(logits, target) + 0.3 * boundary_loss(logits, target)
    torch.testing.assert_close(loss(logits, target), expected)
