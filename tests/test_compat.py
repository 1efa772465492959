"""Issue 15 (coming from MONAI / smp / kornia) and issue 12's soft labels: the switches and fixes.

Comparisons with the libraries themselves live in ``tests/test_migration.py`` (the guide's table)
and ``tests/test_peer_values.py`` (their own unit-test values); here: hand-computed values,
equivalences and properties that pin each switch down.
"""

from __future__ import annotations

import inspect
import math

import pytest
import torch
import torch.nn.functional as F

import seglosses
from seglosses import build_loss, list_losses, loss_info
from seglosses.functional import (
    ce_loss,
    dice_loss,
    focal_loss,
    hausdorff_loss,
    iou_loss,
    log_hausdorff_loss,
    sigmoid_focal_loss,
    tversky_loss,
)


def _mc(seed=0, shape=(3, 4, 7, 8)):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g) * 2
    y = torch.randint(0, shape[1], (shape[0],) + shape[2:], generator=g)
    return x, y


def _ml(seed=0, shape=(2, 3, 7, 8), soft=False):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g) * 2
    y = torch.rand(shape, generator=g)
    return x, (y if soft else (y > 0.6).float())


# ----------------------------------------------------------------------------- 0/0 is a perfect score

OVERLAP = [n for n in list_losses(category="region")] + ["combo", "ell"]


@pytest.mark.parametrize(
    "name, mode", [(n, m) for n in OVERLAP for m in ("binary", "multilabel") if m in loss_info(n).modes]
)
def test_empty_class_predicted_empty_is_a_perfect_score_with_smooth_zero(name, mode):
    """Nothing in the target, nothing predicted (probabilities exactly 0), smooth 0: loss 0, finite gradient."""
    c = 1 if mode == "binary" else 2
    probs = torch.zeros(2, c, 5, 6, dtype=torch.float64, requires_grad=True)
    target = torch.zeros(2, c, 5, 6, dtype=torch.float64)
    if mode == "multilabel":  # channel 1 perfect and non-empty, channel 0 empty and predicted empty
        target[:, 1, 1:3, 2:4] = 1.0
        with torch.no_grad():
            probs[:, 1] = target[:, 1]
    opts = {k: 0.0 for k in ("smooth",) if k in loss_info(name).defaults}
    loss = build_loss(name, mode=mode, from_logits=False, **opts)
    value = loss(probs, target)
    if name in ("combo", "ell"):  # their cross-entropy half is finite but not 0 on clamped probabilities
        assert torch.isfinite(value)
    else:
        assert float(value.detach()) == pytest.approx(0.0, abs=1e-6)
    value.backward()
    assert torch.isfinite(probs.grad).all()


@pytest.mark.parametrize("name", ["dice", "iou", "tversky", "gdice"])
def test_empty_sample_was_the_worst_loss_before(name):
    """The issue's case: an empty class with smooth=0 used to score 0/0 as 0 (loss 1)."""
    probs = torch.zeros(1, 1, 4)
    target = torch.zeros(1, 4, dtype=torch.long)
    assert float(build_loss(name, smooth=0.0, from_logits=False)(probs, target)) == 0.0
    # predicting something where nothing is stays (about) the worst loss; gdice gives an empty
    # sample weight 0 everywhere (its documented rule), so it stays 0
    if name != "gdice":
        assert float(build_loss(name, smooth=0.0, from_logits=False)(probs + 0.5, target)) == pytest.approx(1.0)


# ----------------------------------------------------------------------------- include_background

@pytest.mark.parametrize("name", ["dice", "iou", "tversky", "focal", "gdice", "hausdorff", "sigmoid_focal"])
def test_include_background_false_drops_channel_0_in_multilabel_mode(name):
    x, y = _ml()
    dropped = build_loss(name, mode="multilabel", include_background=False)(x, y)
    kept = build_loss(name, mode="multilabel", include_background=True)(x[:, 1:], y[:, 1:])
    torch.testing.assert_close(dropped, kept)
    assert not torch.allclose(dropped, build_loss(name, mode="multilabel", include_background=True)(x, y))


@pytest.mark.parametrize("name", ["dice", "iou", "tversky", "focal", "hausdorff", "boundary", "gdice", "lovasz"])
def test_include_background_false_is_an_error_with_one_channel(name):
    x = torch.randn(2, 1, 6, 6)
    y = (torch.rand(2, 1, 6, 6) > 0.5).float()
    with pytest.raises(ValueError, match=r"include_background: False drops channel 0.*single channel.*include_background=True"):
        build_loss(name, include_background=False)(x, y)


def test_distance_losses_default_keeps_the_binary_channel_and_drops_channel_0_otherwise():
    x, y = _ml()
    for name in ("hausdorff", "boundary"):
        torch.testing.assert_close(
            build_loss(name, mode="multilabel")(x, y), build_loss(name, mode="multilabel", include_background=True)(x[:, 1:], y[:, 1:])
        )
        xb, yb = x[:, :1], y[:, :1]
        torch.testing.assert_close(build_loss(name)(xb, yb), build_loss(name, include_background=True)(xb, yb))


# ----------------------------------------------------------------------------- smooth_nr / smooth_dr

def test_smooth_nr_and_smooth_dr_hand_computed():
    probs = torch.tensor([[[0.9, 0.1, 0.0, 0.0]]])
    target = torch.tensor([[1, 0, 0, 0]])
    # Dice: 1 - (2 * 0.9 + 0) / (1.0 + 1 + 1)
    assert float(dice_loss(probs, target, from_logits=False, smooth_nr=0.0, smooth_dr=1.0)) == pytest.approx(0.4)
    # IoU: 1 - (0.9 + 0.5) / (1.0 + 1 - 0.9 + 0.5)
    assert float(iou_loss(probs, target, from_logits=False, smooth_nr=0.5, smooth_dr=0.5)) == pytest.approx(1 - 1.4 / 1.6)
    # Tversky 0.5/0.5: 1 - (0.9 + 0) / (0.9 + 0.05 + 0.05 + 2)
    value = tversky_loss(probs, target, from_logits=False, alpha=0.5, beta=0.5, smooth_nr=0.0, smooth_dr=2.0)
    assert float(value) == pytest.approx(1 - 0.9 / 3.0)


@pytest.mark.parametrize("name", ["dice", "iou", "tversky", "focal_tversky", "asym", "gdice", "pgdice", "log_cosh_dice"])
def test_smooth_sets_both(name):
    x, y = _mc()
    torch.testing.assert_close(build_loss(name, smooth=0.3)(x, y), build_loss(name, smooth_nr=0.3, smooth_dr=0.3)(x, y))
    assert not torch.allclose(build_loss(name, smooth=0.3)(x, y), build_loss(name, smooth_nr=0.0, smooth_dr=0.3)(x, y))
    with pytest.raises(ValueError, match="smooth_dr: expected a finite number >= 0"):
        build_loss(name, smooth_dr=-1.0)(x, y)


# ----------------------------------------------------------------------------- average="micro"

def test_micro_tversky_depends_on_alpha_plus_beta_only_and_kornia_tversky_is_macro():
    from conftest import require

    kornia_losses = require("kornia.losses")
    x, y = _mc()
    micro_dice = dice_loss(x, y, average="micro", smooth=0.0)
    # softmax + label map: pooled fp == pooled fn, so alpha and beta only enter as alpha + beta
    torch.testing.assert_close(tversky_loss(x, y, alpha=0.3, beta=0.7, average="micro", smooth=0.0), micro_dice)
    torch.testing.assert_close(tversky_loss(x, y, alpha=0.9, beta=0.1, average="micro", smooth=0.0), micro_dice)
    torch.testing.assert_close(
        tversky_loss(x, y, alpha=0.1, beta=0.5, average="micro", smooth=0.0),
        tversky_loss(x, y, alpha=0.3, beta=0.3, average="micro", smooth=0.0),
    )
    # kornia's tversky_loss is the macro average (every class present here), not micro
    ref = kornia_losses.tversky_loss(x, y, alpha=0.3, beta=0.7, eps=1e-8)
    torch.testing.assert_close(tversky_loss(x, y, alpha=0.3, beta=0.7, smooth_nr=0.0, smooth_dr=1e-8), ref)
    assert not torch.allclose(tversky_loss(x, y, alpha=0.3, beta=0.7, average="micro", smooth_nr=0.0, smooth_dr=1e-8), ref)
    doc = tversky_loss.__doc__
    assert "kornia's ``tversky_loss``, classes pooled" not in doc
    assert "equals micro Dice whenever ``alpha + beta = 1``" in doc


@pytest.mark.parametrize("batch", [False, True])
def test_micro_average_pools_the_kept_classes(batch):
    x, y = _mc()
    p = x.softmax(1)
    oh = F.one_hot(y, 4).movedim(-1, 1).float()
    dims = (0, 2, 3) if batch else (2, 3)
    w = torch.tensor([0.0, 1.0, 2.0, 0.5])
    tp, sp, sg = ((p * oh).sum(dims), p.sum(dims), oh.sum(dims))
    tp, sp, sg = (t.reshape(-1, 4) * w for t in (tp, sp, sg))
    expected = 1 - 2 * tp.sum(1) / (sp.sum(1) + sg.sum(1))
    got = dice_loss(x, y, average="micro", class_weights=w.tolist(), smooth=0.0, batch=batch, reduction="none")
    assert got.shape == ((1,) if batch else (3,))
    torch.testing.assert_close(got, expected)
    # IoU and Tversky pool the same statistics
    iou = iou_loss(x, y, average="micro", smooth=0.0, batch=batch, include_background=False)
    tp, sp, sg = ((p * oh).sum(dims)[..., 1:], p.sum(dims)[..., 1:], oh.sum(dims)[..., 1:])
    tp, sp, sg = (t.reshape(-1, 3).sum(1) for t in (tp, sp, sg))
    torch.testing.assert_close(iou, (1 - tp / (sp + sg - tp)).mean())
    tv = tversky_loss(x, y, average="micro", smooth=0.0, batch=batch, include_background=False, alpha=0.3, beta=0.7)
    torch.testing.assert_close(tv, (1 - tp / (tp + 0.3 * (sp - tp) + 0.7 * (sg - tp))).mean())
    with pytest.raises(ValueError, match=r"average: expected one of \['macro', 'micro'\]"):
        dice_loss(x, y, average="weighted")


# ----------------------------------------------------------------------------- soft labels

@pytest.mark.parametrize("name", ["dice", "iou", "tversky", "gdice"])
def test_soft_label_equals_the_usual_form_on_hard_targets(name):
    x, y = _ml()
    torch.testing.assert_close(
        build_loss(name, mode="multilabel", soft_label=True)(x, y), build_loss(name, mode="multilabel")(x, y)
    )
    x, y = _mc()
    onehot = F.one_hot(y, 4).movedim(-1, 1).float()
    torch.testing.assert_close(build_loss(name, soft_label=True)(x, onehot), build_loss(name)(x, y))


@pytest.mark.parametrize("name", ["dice", "iou", "tversky", "gdice"])
def test_soft_label_is_zero_exactly_when_the_prediction_equals_a_soft_target(name):
    _, soft = _ml(soft=True)
    loss = build_loss(name, mode="multilabel", from_logits=False, soft_label=True, smooth=0.0)
    assert float(loss(soft, soft)) == pytest.approx(0.0, abs=1e-6)
    assert float(loss(soft.clamp(0.1, 0.9), soft)) > 1e-3
    usual = build_loss(name, mode="multilabel", from_logits=False, smooth=0.0)
    assert float(usual(soft, soft)) > 0.1  # the usual form is not zero there


def test_soft_label_semimetric_dice_hand_computed():
    p = torch.tensor([[[0.2, 0.6]]])
    g = torch.tensor([[[0.4, 0.6]]])
    # tp = (0.8 + 1.0 - 0.2) / 2 = 0.8; Dice = 1.6 / 1.8
    value = dice_loss(p, g, from_logits=False, smooth=0.0, soft_label=True)
    assert float(value) == pytest.approx(1 - 1.6 / 1.8)


def test_soft_label_reaches_the_terms_of_a_compound():
    x, soft = _ml(soft=True)
    loss = build_loss("dice_ce", mode="multilabel", soft_label=True)
    loss(x, soft)
    expected = dice_loss(x, soft, mode="multilabel", soft_label=True)
    assert loss.last_terms["dice"] == pytest.approx(float(expected))


# ----------------------------------------------------------------------------- focal and ce

def test_focal_class_weights_are_a_weighted_mean():
    x, y = _mc()
    plain = focal_loss(x, y)
    torch.testing.assert_close(focal_loss(x, y, class_weights=[1, 1, 1, 1]), plain)
    torch.testing.assert_close(focal_loss(x, y, class_weights=[1, 2, 0.5, 1]), focal_loss(x, y, class_weights=[10, 20, 5, 10]))
    assert not torch.allclose(focal_loss(x, y, class_weights=[1, 2, 0.5, 1]), plain)


def test_focal_include_background_false_multiclass_leaves_out_background_voxels():
    x, y = _mc()
    ignored = torch.where(y == 0, torch.full_like(y, 255), y)
    torch.testing.assert_close(focal_loss(x, y, include_background=False), focal_loss(x, ignored, ignore_index=255))


def test_focal_float_alpha_in_multiclass_needs_alpha_foreground():
    x, y = _mc()
    with pytest.raises(ValueError, match="alpha: a float foreground weight needs alpha_foreground=True"):
        focal_loss(x, y, alpha=0.25)
    torch.testing.assert_close(focal_loss(x, y, alpha=0.25, alpha_foreground=True), focal_loss(x, y, alpha=[0.75, 0.25, 0.25, 0.25]))


def test_alpha_foreground_where_it_would_be_ignored_is_an_error():
    x, y = _mc()
    with pytest.raises(ValueError, match=r"alpha_foreground: True applies to a float alpha in multiclass mode only"):
        focal_loss(x, y, alpha=[0.1, 0.2, 0.3, 0.4], alpha_foreground=True)
    with pytest.raises(ValueError, match=r"alpha_foreground: .*got alpha=None"):
        focal_loss(x, y, alpha_foreground=True)
    xb, yb = x[:, :1], (y > 1).long()
    with pytest.raises(ValueError, match=r"alpha_foreground: .*in binary mode"):
        focal_loss(xb, yb, alpha=0.25, alpha_foreground=True)


@pytest.mark.parametrize("name,option", [("dice", "soft_label"), ("dice", "batch"), ("iou", "soft_label"),
                                         ("hausdorff", "spatial_mean"), ("lovasz", "per_image"), ("focal", "alpha_foreground")])
def test_switches_must_be_bools(name, option):
    """soft_label="no" used to switch soft labels on (a non-empty string is truthy)."""
    with pytest.raises(TypeError, match=rf"{option}: expected True or False, got 'no'"):
        build_loss(name, **{option: "no"})
    x, y = _mc()
    fn = getattr(seglosses.functional, f"{name}_loss")
    with pytest.raises(TypeError, match=rf"{option}: expected True or False, got 'no'"):
        fn(x, y, **{option: "no"})


def test_sigmoid_focal_is_focal_of_one_channel_per_class():
    x, y = _mc()
    onehot = F.one_hot(y, 4).movedim(-1, 1).float()
    torch.testing.assert_close(sigmoid_focal_loss(x, y), focal_loss(x, onehot, mode="multilabel"))
    torch.testing.assert_close(
        sigmoid_focal_loss(x, y, alpha=0.25, class_weights=[1, 2, 3, 4], reduction="none"),
        focal_loss(x, onehot, mode="multilabel", alpha=0.25, class_weights=[1, 2, 3, 4], reduction="none"),
    )
    assert sigmoid_focal_loss(x, y, reduction="none", include_background=False).shape == (3, 3, 7, 8)


@pytest.mark.parametrize("weights", [None, [1.0, 2.0, 0.5, 3.0]])
@pytest.mark.parametrize("ignore", [False, True])
def test_ce_label_smoothing_matches_pytorch(weights, ignore):
    x, y = _mc()
    if ignore:
        y[:, :2] = -100
    w = None if weights is None else torch.tensor(weights)
    ref = F.cross_entropy(x, y, weight=w, label_smoothing=0.1, ignore_index=-100)
    ours = ce_loss(x, y, class_weights=weights, label_smoothing=0.1, ignore_index=-100 if ignore else None)
    torch.testing.assert_close(ours, ref)


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_ce_class_weights_with_dense_targets_follow_pytorch_elements(eps):
    """Dense targets: the numerator is PyTorch's probability-target elements (smoothed target),
    the denominator the unsmoothed target weight; a one-hot target gives the label map's value."""
    x, y = _mc()
    g = torch.Generator().manual_seed(5)
    soft = torch.softmax(torch.randn(x.shape, generator=g), 1)
    w = torch.tensor([1.0, 2.0, 0.5, 3.0])
    ref_none = F.cross_entropy(x, soft, weight=w, label_smoothing=eps, reduction="none")
    torch.testing.assert_close(ce_loss(x, soft, class_weights=w.tolist(), label_smoothing=eps, reduction="none"), ref_none)
    total_weight = (w.view(1, -1, 1, 1) * soft).sum()
    ours = ce_loss(x, soft, class_weights=w.tolist(), label_smoothing=eps)
    torch.testing.assert_close(ours, ref_none.sum() / total_weight)
    # PyTorch's "mean" divides the same sum by the number of voxels
    torch.testing.assert_close(ours * total_weight / ref_none.numel(), F.cross_entropy(x, soft, weight=w, label_smoothing=eps))
    onehot = F.one_hot(y, 4).movedim(-1, 1).float()
    torch.testing.assert_close(ce_loss(x, onehot, class_weights=w.tolist(), label_smoothing=eps), ce_loss(x, y, class_weights=w.tolist(), label_smoothing=eps))
    torch.testing.assert_close(ce_loss(x, y, class_weights=w.tolist(), label_smoothing=eps), F.cross_entropy(x, y, weight=w, label_smoothing=eps))


def test_ce_label_smoothing_binary_hand_computed():
    x = torch.zeros(1, 1, 2)  # p = 0.5: BCE is log 2 whatever the target
    assert float(ce_loss(x, torch.tensor([[1, 0]]), label_smoothing=0.2)) == pytest.approx(math.log(2))
    x = torch.tensor([[[2.0]]])  # g = 1 -> 0.9: -(0.9 log s(2) + 0.1 log s(-2))
    expected = -(0.9 * F.logsigmoid(torch.tensor(2.0)) + 0.1 * F.logsigmoid(torch.tensor(-2.0)))
    assert float(ce_loss(x, torch.tensor([[1]]), label_smoothing=0.1)) == pytest.approx(float(expected))
    with pytest.raises(ValueError, match=r"label_smoothing: expected a number in \[0, 1\]"):
        ce_loss(x, torch.tensor([[1]]), label_smoothing=1.5)


# ----------------------------------------------------------------------------- Hausdorff

def test_log_hausdorff_is_log1p_of_the_reduced_hausdorff():
    x, y = _mc(shape=(2, 3, 9, 10))
    for reduction in ("mean", "sum", "none"):
        for spatial_mean in (False, True):
            kw = dict(reduction=reduction, spatial_mean=spatial_mean)
            torch.testing.assert_close(log_hausdorff_loss(x, y, **kw), torch.log1p(hausdorff_loss(x, y, **kw)))


def test_hausdorff_spatial_mean_is_a_per_sample_class_mean():
    x, y = _mc(shape=(2, 3, 9, 10))
    elem = hausdorff_loss(x, y, reduction="none")
    assert elem.shape == (2, 2, 9, 10)
    per = hausdorff_loss(x, y, reduction="none", spatial_mean=True)
    assert per.shape == (2, 2)
    torch.testing.assert_close(per, elem.mean((2, 3)))
    torch.testing.assert_close(hausdorff_loss(x, y, spatial_mean=True, reduction="sum"), elem.mean((2, 3)).sum())
    torch.testing.assert_close(hausdorff_loss(x, y, spatial_mean=True), hausdorff_loss(x, y))


def test_hausdorff_docstring_states_monai_include_background():
    doc = inspect.getdoc(hausdorff_loss)
    assert "drops channel\n    0 whenever C > 1" in inspect.getsource(hausdorff_loss.core) or "whenever C > 1" in doc


# ----------------------------------------------------------------------------- reduction="none"

def test_every_loss_docstring_says_what_none_returns():
    for name in list_losses():
        info = loss_info(name)
        if info.spec is None:
            assert '"none"' in (inspect.getdoc(info.functional) or ""), name


@pytest.mark.parametrize("spec", ["dice+ce", "dice_topk", "0.5*dice+2*focal", "dice_hd", "iou+lovasz"])
def test_compound_none_is_the_loss_of_each_sample(spec):
    x, y = _mc()
    per = build_loss(spec, reduction="none")(x, y)
    assert per.shape == (3,)
    expected = torch.stack([build_loss(spec)(x[i : i + 1], y[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(per, expected)


def test_compound_none_slices_per_call_inputs_and_has_gradients():
    x, y = _mc()
    x.requires_grad_(True)
    loss = build_loss("dice+hausdorff", reduction="none")
    maps = torch.rand(3, 4, 7, 8)
    per = loss(x, y, distance_map=maps)
    expected = torch.stack([build_loss("dice+hausdorff")(x[i : i + 1], y[i : i + 1], distance_map=maps[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(per, expected)
    per.sum().backward()
    assert torch.isfinite(x.grad).all()


# ----------------------------------------------------------------------------- targets

@pytest.mark.parametrize("name", ["dice", "ce", "focal", "iou", "gdice", "hausdorff"])
def test_integer_one_hot_and_float_label_maps_are_accepted(name):
    x, y = _mc()
    loss = build_loss(name)
    ref = loss(x, y)
    onehot = F.one_hot(y, 4).movedim(-1, 1)
    torch.testing.assert_close(loss(x, onehot), ref)  # int64 one-hot
    torch.testing.assert_close(loss(x, onehot.to(torch.uint8)), ref)
    torch.testing.assert_close(loss(x, onehot.bool()), ref)
    torch.testing.assert_close(loss(x, y.unsqueeze(1).float()), ref)  # MONAI's float (N, 1, ...) label map


def test_bool_multi_hot_in_multilabel_mode():
    x, y = _ml()
    loss = build_loss("dice", mode="multilabel")
    torch.testing.assert_close(loss(x, y.bool()), loss(x, y))


def test_ambiguous_targets_say_which_conversion_fixes_them():
    x, y = _mc()
    with pytest.raises(ValueError, match=r"non-integral values.*target\.long\(\).*target\.float\(\)"):
        dice_loss(x, y.unsqueeze(1).float() + 0.5)
    bad = F.one_hot(y, 4).movedim(-1, 1) * 2
    with pytest.raises(ValueError, match=r"one-hot / multi-hot and must hold 0 or 1, got value 2.*target\.float\(\).*\.long\(\)"):
        dice_loss(x, bad)
    with pytest.raises(ValueError, match=r"target: expected label values in \[0, 4\)"):
        dice_loss(x, y.unsqueeze(1).float() + 4)


def test_ignore_index_on_a_binary_float_mask_matches_smp_and_the_long_mask():
    from _peers import smp_losses

    S = smp_losses()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 1, 8, 8, generator=g)
    y = (torch.rand(2, 1, 8, 8, generator=g) > 0.5).float()
    y[:, :, :2] = 255  # smp's float masks: 255 = ignore
    torch.testing.assert_close(focal_loss(x, y, ignore_index=255), S.FocalLoss("binary", ignore_index=255)(x, y))
    torch.testing.assert_close(
        dice_loss(x, y, ignore_index=255, batch=True, smooth=0.0), S.DiceLoss("binary", ignore_index=255, smooth=0.0)(x, y)
    )
    for name in ("dice", "ce", "focal", "iou"):
        loss = build_loss(name, ignore_index=255)
        ref = loss(x, y.long())
        torch.testing.assert_close(loss(x, y), ref)  # (N, 1, *spatial) float mask
        torch.testing.assert_close(loss(x, y[:, 0]), ref)  # (N, *spatial) float mask
    # without ignore_index the 255s are not a mask value: an error, not a silent BCE against 255
    with pytest.raises(ValueError, match=r"target: expected a binary float mask with values in \[0, 1\], got value 255"):
        ce_loss(x, y)
    with pytest.raises(ValueError, match=r"other than ignore_index=255\), got value 2"):
        ce_loss(x, torch.where(y == 1, 2.0, y), ignore_index=255)


def test_ignore_index_with_a_dense_target_needs_a_label_map():
    x, y = _mc()
    onehot = F.one_hot(y, 4).movedim(-1, 1)
    for t in (onehot.float(), onehot):  # float and integer one-hot
        with pytest.raises(ValueError, match=r"ignore_index: needs a label-map target.*ignore_index=255"):
            dice_loss(x, t, ignore_index=255)
    xm, ym = _ml(soft=True)
    with pytest.raises(ValueError, match=r"ignore_index: needs a label-map target"):
        ce_loss(xm, ym, mode="multilabel", ignore_index=255)


def test_seglosses_top_level_names_still_lazy():
    assert "build_loss" in dir(seglosses)


# ----------------------------------------------------------------------------- soft labels: properties

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), name=st.sampled_from(["dice", "iou"]))
def test_soft_label_forms_are_nonnegative_symmetric_and_zero_on_the_diagonal(seed, name):
    g = torch.Generator().manual_seed(seed)
    p = torch.rand(2, 3, 4, 5, generator=g, dtype=torch.float64)
    q = torch.rand(2, 3, 4, 5, generator=g, dtype=torch.float64)
    loss = build_loss(name, mode="multilabel", from_logits=False, soft_label=True, smooth=0.0, reduction="none")
    a, b = loss(p, q), loss(q, p)
    assert (a >= -1e-12).all() and (a <= 1 + 1e-12).all()
    torch.testing.assert_close(a, b)  # a semimetric: symmetric in prediction and target
    torch.testing.assert_close(loss(p, p), torch.zeros_like(a), atol=1e-12, rtol=0)
