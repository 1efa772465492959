"""Hand-computed values from the papers' formulas, on tiny inputs, for losses without a library
reference. The arithmetic is written out in the comments; inputs are probabilities
(``from_logits=False``) so that every number is exact.

Common binary example (one sample, four voxels):   p = (0.8, 0.4, 0.1, 0.3),  g = (1, 0, 0, 0)
    tp = 0.8, sum p = 1.6, sum g = 1, fp = 0.8, fn = 0.2
Common multiclass example (one sample, three classes, four voxels), labels l = (0, 1, 2, 0):
    p[:, voxel] = (0.7, 0.2, 0.1), (0.1, 0.6, 0.3), (0.2, 0.2, 0.6), (0.5, 0.25, 0.25)
    class 0: tp = 0.7 + 0.5 = 1.2, sum p = 1.5,  sum g = 2
    class 1: tp = 0.6,             sum p = 1.25, sum g = 1
    class 2: tp = 0.6,             sum p = 1.25, sum g = 1
"""

from __future__ import annotations

import math

import pytest
import torch

from seglosses.functional import (
    asym_loss,
    balanced_ce_loss,
    combo_loss,
    dice_loss,
    ell_loss,
    focal_tversky_loss,
    gdice_loss,
    iou_loss,
    log_cosh_dice_loss,
    lovasz_loss,
    pgdice_loss,
    ss_loss,
    topk_threshold_loss,
    tversky_loss,
    weighted_bce_loss,
)

BP = torch.tensor([[[0.8, 0.4, 0.1, 0.3]]], dtype=torch.float64)  # (N=1, C=1, 4)
BG = torch.tensor([[1, 0, 0, 0]])
MP = torch.tensor(
    [[[0.7, 0.1, 0.2, 0.5], [0.2, 0.6, 0.2, 0.25], [0.1, 0.3, 0.6, 0.25]]], dtype=torch.float64
)  # (N=1, C=3, 4)
ML = torch.tensor([[0, 1, 2, 0]])
KW = dict(from_logits=False, smooth=0.0)


def close(value, expected):
    assert float(value) == pytest.approx(expected, rel=1e-9, abs=1e-12)


# ----------------------------------------------------------------------------- region losses

def test_iou_binary():
    # (tp) / (sum p + sum g - tp) = 0.8 / (1.6 + 1 - 0.8) = 0.8 / 1.8
    close(iou_loss(BP, BG, **KW), 1 - 0.8 / 1.8)


def test_iou_multiclass():
    # class 0: 1.2 / (1.5 + 2 - 1.2) = 1.2/2.3; class 1: 0.6 / (1.25 + 1 - 0.6) = 0.6/1.65; class 2 same
    close(iou_loss(MP, ML, **KW), 1 - (1.2 / 2.3 + 0.6 / 1.65 + 0.6 / 1.65) / 3)


def test_tversky_binary_alpha_on_fp_beta_on_fn():
    # tp / (tp + 0.3 fp + 0.7 fn) = 0.8 / (0.8 + 0.24 + 0.14) = 0.8 / 1.18
    close(tversky_loss(BP, BG, **KW), 1 - 0.8 / 1.18)
    # swapping the weights: 0.8 / (0.8 + 0.7*0.8 + 0.3*0.2) = 0.8 / 1.42
    close(tversky_loss(BP, BG, alpha=0.7, beta=0.3, **KW), 1 - 0.8 / 1.42)


def test_tversky_multiclass_with_smooth():
    # fp = sum p - tp, fn = sum g - tp; s = 1 in numerator and denominator
    # class 0: fp 0.3, fn 0.8: (1.2 + 1) / (1.2 + 0.09 + 0.56 + 1) = 2.2 / 2.85
    # class 1: fp 0.65, fn 0.4: (0.6 + 1) / (0.6 + 0.195 + 0.28 + 1) = 1.6 / 2.075; class 2 same
    expected = 1 - (2.2 / 2.85 + 2 * 1.6 / 2.075) / 3
    close(tversky_loss(MP, ML, from_logits=False, smooth=1.0), expected)


def test_focal_tversky_exponent_per_class_before_mean():
    # Tversky losses per class (s = 0): class 0: 1 - 1.2/(1.2 + 0.09 + 0.56) = 1 - 1.2/1.85
    #   classes 1, 2: 1 - 0.6/(0.6 + 0.195 + 0.28) = 1 - 0.6/1.075
    # gamma = 4/3: each to the power 3/4, then the mean
    t0, t1 = 1 - 1.2 / 1.85, 1 - 0.6 / 1.075
    close(focal_tversky_loss(MP, ML, **KW), (t0**0.75 + 2 * t1**0.75) / 3)
    # not the mean raised to the power:
    assert abs((t0**0.75 + 2 * t1**0.75) / 3 - ((t0 + 2 * t1) / 3) ** 0.75) > 1e-4


def test_focal_tversky_binary_gamma2():
    # (1 - 0.8/1.18)^(1/2)
    close(focal_tversky_loss(BP, BG, gamma=2.0, **KW), (1 - 0.8 / 1.18) ** 0.5)


def test_asym_is_f_beta():
    # beta = 1.5: fp weight 1/(1 + 2.25) = 1/3.25, fn weight 2.25/3.25
    # 0.8 / (0.8 + 0.8/3.25 + 0.2*2.25/3.25) = 0.8 / (0.8 + 1.25/3.25)
    close(asym_loss(BP, BG, **KW), 1 - 0.8 / (0.8 + 1.25 / 3.25))
    # F-beta form: (1 + b^2) tp / ((1 + b^2) tp + b^2 fn + fp) = 3.25*0.8 / (2.6 + 0.45 + 0.8)
    close(asym_loss(BP, BG, **KW), 1 - 2.6 / 3.85)


def test_gdice_multiclass():
    # w = 1/sum_g^2 = (1/4, 1, 1)
    # numerator 2 (1.2/4 + 0.6 + 0.6) = 2 * 1.5 = 3
    # denominator (1.5 + 2)/4 + (1.25 + 1) + (1.25 + 1) = 0.875 + 4.5 = 5.375
    close(gdice_loss(MP, ML, **KW), 1 - 3 / 5.375)


def test_gdice_absent_class_takes_largest_finite_weight():
    # labels (0, 1, 1, 0): class 2 absent -> weight 1/0 is replaced by max(1/4, 1/4) = 1/4
    # class 0: tp 0.7 + 0.5 = 1.2, sum p 1.5, sum g 2; class 1: tp 0.6 + 0.2 = 0.8, sum p 1.25, sum g 2
    # class 2: tp 0, sum p 1.25, sum g 0
    # numerator 2 (1.2 + 0.8)/4 = 1; denominator (3.5 + 3.25 + 1.25)/4 = 2
    labels = torch.tensor([[0, 1, 1, 0]])
    value = gdice_loss(MP, labels, **KW)
    assert torch.isfinite(value)
    close(value, 1 - 1 / 2)


def test_gdice_absent_class_per_sample_in_batch_mode():
    # two samples; class 2 absent in sample 0 only. batch=True pools: sum g = (3, 3, 2) -> finite
    p = torch.cat([MP, MP])
    labels = torch.tensor([[0, 1, 1, 0], [0, 1, 2, 0]])
    # pooled: tp = (2.4, 0.8 + 0.6, 0.6), sum p = (3, 2.5, 2.5), sum g = (4, 3, 1)
    w = (1 / 16, 1 / 9, 1.0)
    num = 2 * (w[0] * 2.4 + w[1] * 1.4 + w[2] * 0.6)
    den = w[0] * 7 + w[1] * 5.5 + w[2] * 3.5
    close(gdice_loss(p, labels, batch=True, **KW), 1 - num / den)


def test_pgdice_on_the_score():
    # GD = 3 / 5.375 (see test_gdice_multiclass); pGD = GD / (1 + 2.5 (1 - GD))
    gd = 3 / 5.375
    close(pgdice_loss(MP, ML, **KW), 1 - gd / (1 + 2.5 * (1 - gd)))
    # k = 0 is the generalized Dice loss
    close(pgdice_loss(MP, ML, k=0.0, **KW), 1 - gd)


def test_pgdice_equals_penalised_denominator():
    # Ma et al. eq. 18, first line: 2 sum w tp / (sum w (g + p) + k sum w fp + k sum w fn)
    # w = (1/4, 1, 1); fp = (0.3, 0.65, 0.65), fn = (0.8, 0.4, 0.4)
    w = (0.25, 1.0, 1.0)
    fp, fn = (0.3, 0.65, 0.65), (0.8, 0.4, 0.4)
    den = 5.375 + 2.5 * sum(wi * (a + b) for wi, a, b in zip(w, fp, fn))
    close(pgdice_loss(MP, ML, **KW), 1 - 3 / den)


def test_ss_binary():
    # sensitivity term: sum (g - p)^2 g / sum g = 0.2^2 / 1 = 0.04
    # specificity term: sum (g - p)^2 (1 - g) / sum (1 - g) = (0.16 + 0.01 + 0.09) / 3 = 0.26 / 3
    # w = 0.05: 0.05 * 0.04 + 0.95 * 0.26 / 3
    close(ss_loss(BP, BG, **KW), 0.05 * 0.04 + 0.95 * 0.26 / 3)


def test_ss_multiclass_per_class_mean():
    # class 0 (voxels 0, 3): sens = ((0.3)^2 + (0.5)^2) / 2 = 0.17; spec = (0.1^2 + 0.2^2) / 2 = 0.025
    # class 1 (voxel 1):     sens = 0.4^2 = 0.16;  spec = (0.2^2 + 0.2^2 + 0.25^2) / 3 = 0.1425 / 3
    # class 2 (voxel 2):     sens = 0.4^2 = 0.16;  spec = (0.1^2 + 0.3^2 + 0.25^2) / 3 = 0.1625 / 3
    w = 0.3
    per_class = [w * 0.17 + (1 - w) * 0.025, w * 0.16 + (1 - w) * 0.1425 / 3, w * 0.16 + (1 - w) * 0.1625 / 3]
    close(ss_loss(MP, ML, w=w, **KW), sum(per_class) / 3)
    # one-hot target: same value without the label-map shortcut
    onehot = torch.nn.functional.one_hot(ML, 3).movedim(-1, 1).double()
    close(ss_loss(MP, onehot, w=w, **KW), sum(per_class) / 3)


def test_log_cosh_dice_per_class():
    # Dice losses: class 0: 1 - 2.4/3.5; classes 1, 2: 1 - 1.2/2.25
    d0, d1 = 1 - 2.4 / 3.5, 1 - 1.2 / 2.25
    close(log_cosh_dice_loss(MP, ML, **KW), (math.log(math.cosh(d0)) + 2 * math.log(math.cosh(d1))) / 3)
    # binary: Dice loss 1 - 1.6/2.6
    close(log_cosh_dice_loss(BP, BG, **KW), math.log(math.cosh(1 - 1.6 / 2.6)))


def test_lovasz_binary_by_hand():
    # errors |g - p| = (0.2, 0.4, 0.1, 0.3), sorted: 0.4 (bg), 0.3 (bg), 0.2 (fg), 0.1 (bg)
    # Jaccard loss 1 - |G minus S| / |G u S| of the prefixes: 1 - 1/2, 1 - 1/3, 1 - 0/3, 1 - 0/4
    #   = 1/2, 2/3, 1, 1 -> d = 1/2, 1/6, 1/3, 0
    close(lovasz_loss(BP, BG, from_logits=False), 0.4 / 2 + 0.3 / 6 + 0.2 / 3)


# ----------------------------------------------------------------------------- compound formulas

def test_combo_binary():
    # BCE half, beta = 0.5: -mean[0.5 g log p + 0.5 (1 - g) log(1 - p)]
    #   = -(0.5 log 0.8 + 0.5 (log 0.6 + log 0.9 + log 0.7)) / 4
    bce = -(0.5 * math.log(0.8) + 0.5 * (math.log(0.6) + math.log(0.9) + math.log(0.7))) / 4
    dice = 1 - 1.6 / 2.6
    close(combo_loss(BP, BG, **KW), 0.5 * bce + 0.5 * dice)
    # alpha = 0.7, beta = 0.8
    bce = -(0.8 * math.log(0.8) + 0.2 * (math.log(0.6) + math.log(0.9) + math.log(0.7))) / 4
    close(combo_loss(BP, BG, alpha=0.7, beta=0.8, **KW), 0.7 * bce + 0.3 * dice)


def test_combo_multiclass_one_vs_rest():
    # per voxel and class: beta g log p + (1 - beta)(1 - g) log(1 - p), averaged over 4 x 3 terms
    p = MP[0].T.tolist()  # voxel-major
    labels = ML[0].tolist()
    total = 0.0
    for pv, lab in zip(p, labels):
        for c, pc in enumerate(pv):
            total += 0.5 * math.log(pc) if c == lab else 0.5 * math.log(1 - pc)
    bce = -total / 12
    dice = 1 - (2.4 / 3.5 + 2 * 1.2 / 2.25) / 3
    close(combo_loss(MP, ML, **KW), 0.5 * bce + 0.5 * dice)
    onehot = torch.nn.functional.one_hot(ML, 3).movedim(-1, 1).double()
    close(combo_loss(MP, onehot, **KW), 0.5 * bce + 0.5 * dice)


def test_combo_without_background_drops_channel_0():
    # channels 1, 2 only, 4 x 2 terms; Dice over classes 1, 2
    total = 0.0
    for pv, lab in zip(MP[0].T.tolist(), ML[0].tolist()):
        for c in (1, 2):
            total += 0.5 * math.log(pv[c]) if c == lab else 0.5 * math.log(1 - pv[c])
    bce = -total / 8
    dice = 1 - 1.2 / 2.25
    close(combo_loss(MP, ML, include_background=False, **KW), 0.5 * bce + 0.5 * dice)


def test_ell_multiclass_default_weights():
    # Dice per class (s = 0): 2.4/3.5, 1.2/2.25, 1.2/2.25 -> mean of (-ln Dice)^0.3
    dice_term = ((-math.log(2.4 / 3.5)) ** 0.3 + 2 * (-math.log(1.2 / 2.25)) ** 0.3) / 3
    # label counts f = (2, 1, 1), sum 4: w = (sqrt(2), 2, 2)
    # -ln p of the true class: voxels (0.7, 0.6, 0.6, 0.5) with labels (0, 1, 2, 0)
    w = (math.sqrt(2), 2.0, 2.0, math.sqrt(2))
    ptrue = (0.7, 0.6, 0.6, 0.5)
    cross_term = sum(wi * (-math.log(pi)) ** 0.3 for wi, pi in zip(w, ptrue)) / 4
    close(ell_loss(MP, ML, from_logits=False, smooth=0.0), 0.8 * dice_term + 0.2 * cross_term)


def test_ell_given_weights_and_gammas():
    dice_term = ((-math.log(2.4 / 3.5)) ** 0.5 + 2 * (-math.log(1.2 / 2.25)) ** 0.5) / 3
    w = (1.0, 3.0, 0.5, 1.0)  # class_weights (1, 3, 0.5) at labels (0, 1, 2, 0)
    ptrue = (0.7, 0.6, 0.6, 0.5)
    cross_term = sum(wi * (-math.log(pi)) ** 2 for wi, pi in zip(w, ptrue)) / 4
    value = ell_loss(
        MP, ML, from_logits=False, smooth=0.0, gamma_dice=0.5, gamma_cross=2.0, class_weights=[1.0, 3.0, 0.5],
        w_dice=0.6, w_cross=0.4,
    )
    close(value, 0.6 * dice_term + 0.4 * cross_term)


def test_ell_binary_smooth_1():
    # Dice with s = 1: (2*0.8 + 1) / (1.6 + 1 + 1) = 2.6/3.6
    # counts: bg 3, fg 1 -> w_bg = sqrt(4/3), w_fg = 2
    # -ln p_t: fg voxel 0.8; bg voxels 1 - p = 0.6, 0.9, 0.7
    dice_term = (-math.log(2.6 / 3.6)) ** 0.3
    cross = (2 * (-math.log(0.8)) ** 0.3 + math.sqrt(4 / 3) * sum((-math.log(q)) ** 0.3 for q in (0.6, 0.9, 0.7))) / 4
    close(ell_loss(BP, BG, from_logits=False), 0.8 * dice_term + 0.2 * cross)


def test_ell_perfect_prediction_is_zero_with_finite_gradient():
    # -ln 1 = 0: (0)^0.3 has an infinite slope; the linear piece below 1e-6 keeps it finite
    logits = torch.tensor([[[30.0, -30.0], [-30.0, 30.0]]], requires_grad=True)  # 2 classes, 2 voxels
    value = ell_loss(logits, torch.tensor([[0, 1]]))
    assert float(value.detach()) < 1e-5
    value.backward()
    assert torch.isfinite(logits.grad).all()


# ----------------------------------------------------------------------------- distribution losses

def test_balanced_ce_binary():
    # beta = fraction of negatives = 3/4
    # -mean[beta g log p + (1 - beta)(1 - g) log(1 - p)]
    #   = -(0.75 log 0.8 + 0.25 (log 0.6 + log 0.9 + log 0.7)) / 4
    expected = -(0.75 * math.log(0.8) + 0.25 * (math.log(0.6) + math.log(0.9) + math.log(0.7))) / 4
    close(balanced_ce_loss(BP, BG, from_logits=False), expected)


def test_balanced_ce_multiclass():
    # per-image class frequency f = (2/4, 1/4, 1/4): weights 1 - f = (0.5, 0.75, 0.75)
    # -mean_i (1 - f_{l_i}) log p_{i, l_i} = -(0.5 log 0.7 + 0.75 log 0.6 + 0.75 log 0.6 + 0.5 log 0.5) / 4
    expected = -(0.5 * math.log(0.7) + 1.5 * math.log(0.6) + 0.5 * math.log(0.5)) / 4
    close(balanced_ce_loss(MP, ML, from_logits=False), expected)


def test_weighted_bce():
    # beta = 2: -(2 log 0.8 + log 0.6 + log 0.9 + log 0.7) / 4
    expected = -(2 * math.log(0.8) + math.log(0.6) + math.log(0.9) + math.log(0.7)) / 4
    close(weighted_bce_loss(BP, BG, from_logits=False, beta=2.0), expected)
    # default beta = negatives / positives = 3
    expected = -(3 * math.log(0.8) + math.log(0.6) + math.log(0.9) + math.log(0.7)) / 4
    close(weighted_bce_loss(BP, BG, from_logits=False), expected)


def test_topk_threshold():
    # true-class probabilities (0.7, 0.6, 0.6, 0.5): with t = 0.65 the voxels 1, 2, 3 qualify
    # mean CE over them: -(log 0.6 + log 0.6 + log 0.5) / 3
    close(topk_threshold_loss(MP, ML, from_logits=False, threshold=0.65), -(2 * math.log(0.6) + math.log(0.5)) / 3)
    # t = 0.5: none is < 0.5 -> 0
    close(topk_threshold_loss(MP, ML, from_logits=False, threshold=0.5), 0.0)


def test_dice_binary_by_hand():
    # reference point for the Dice-based losses: 1 - 2*0.8 / (1.6 + 1)
    close(dice_loss(BP, BG, **KW), 1 - 1.6 / 2.6)


def test_pow_linear_power_and_chord_with_gradients():
    """ell's x^gamma: exact power above eps, the chord x eps^(gamma-1) below, 0 (zero slope) for x < 0."""
    from seglosses.functional.compound_formulas import _pow_linear

    gamma, eps = 0.3, 1e-6
    for values in ([0.5, 3.0, 2e-6], [-1e-7, 0.0, 1e-8, 5e-7, 0.5, 3.0]):  # without / with the chord
        x = torch.tensor(values, dtype=torch.float64, requires_grad=True)
        y = _pow_linear(x, gamma, eps)
        y.sum().backward()
        xd = x.detach()
        slope = eps ** (gamma - 1)
        ref = torch.where(xd < eps, xd.clamp_min(0) * slope, xd.clamp_min(eps) ** gamma)
        dref = torch.where(xd < eps, torch.where(xd > 0, slope, 0.0), gamma * xd.clamp_min(eps) ** (gamma - 1))
        torch.testing.assert_close(y.detach(), ref)
        torch.testing.assert_close(x.grad, dref)
