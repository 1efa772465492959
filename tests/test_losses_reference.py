"""Reference tests: our losses against well-kept implementations, configured to the same convention.

MONAI (DiceLoss, GeneralizedDiceLoss, TverskyLoss, DiceCELoss, FocalLoss), kornia
(lovasz_softmax_loss), PyTorch (cross_entropy), and nnU-Net's TopK and batch-Dice formulas
(written inline from nnunetv2/training/loss/robust_ce_loss.py and dice.py, so the test does not
depend on nnU-Net's training stack). Reference libraries are imported with ``require``: CI
fails, never skips, when one is missing.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import require
from _inputs import random_batch

from seglosses.functional import (
    ce_loss,
    dice_loss,
    focal_loss,
    gdice_loss,
    lovasz_loss,
    topk_loss,
    tversky_loss,
)
from seglosses import build_loss

monai_losses = require("monai.losses")
kornia = require("kornia")

TOL = dict(rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- MONAI Dice

@pytest.mark.parametrize("batch", [False, True])
@pytest.mark.parametrize("squared", [False, True])
@pytest.mark.parametrize("include_background", [True, False])
@pytest.mark.parametrize("spatial", [(9, 10), (4, 5, 6)])
def test_dice_matches_monai_softmax(batch, squared, include_background, spatial):
    logits, target = random_batch((3, 4) + spatial, absent=(1, 2))
    ref = monai_losses.DiceLoss(
        softmax=True, to_onehot_y=True, batch=batch, squared_pred=squared, include_background=include_background
    )(logits, target.unsqueeze(1))
    ours = dice_loss(logits, target, batch=batch, squared=squared, include_background=include_background)
    torch.testing.assert_close(ours, ref, **TOL)


@pytest.mark.parametrize("smooth", [1e-5, 1.0])
def test_dice_smooth_matches_monai(smooth):
    logits, target = random_batch()
    ref = monai_losses.DiceLoss(softmax=True, to_onehot_y=True, smooth_nr=smooth, smooth_dr=smooth)(logits, target.unsqueeze(1))
    torch.testing.assert_close(dice_loss(logits, target, smooth=smooth), ref, **TOL)


@pytest.mark.parametrize("batch", [False, True])
def test_dice_binary_matches_monai_sigmoid(batch):
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 1, 8, 9, generator=g)
    target = (torch.rand(3, 8, 9, generator=g) > 0.7).long()
    ref = monai_losses.DiceLoss(sigmoid=True, batch=batch)(logits, target.unsqueeze(1).float())
    torch.testing.assert_close(dice_loss(logits, target, batch=batch), ref, **TOL)


def test_dice_multilabel_matches_monai_sigmoid():
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 3, 8, 9, generator=g)
    target = (torch.rand(2, 3, 8, 9, generator=g) > 0.5).float()
    ref = monai_losses.DiceLoss(sigmoid=True)(logits, target)
    torch.testing.assert_close(dice_loss(logits, target, mode="multilabel"), ref, **TOL)


def test_dice_reduction_none_matches_monai():
    logits, target = random_batch()
    ref = monai_losses.DiceLoss(softmax=True, to_onehot_y=True, reduction="none")(logits, target.unsqueeze(1))
    torch.testing.assert_close(dice_loss(logits, target, reduction="none"), ref.flatten(2).squeeze(2), **TOL)


# ----------------------------------------------------------------------------- MONAI generalized Dice

@pytest.mark.parametrize("batch", [False, True])
@pytest.mark.parametrize("include_background", [True, False])
def test_gdice_matches_monai_with_absent_class(batch, include_background):
    # class 2 absent from sample 1: its weight is 1/0 -> MONAI's rule, the largest finite weight
    logits, target = random_batch(absent=(1, 2))
    ref = monai_losses.GeneralizedDiceLoss(
        softmax=True, to_onehot_y=True, batch=batch, include_background=include_background
    )(logits, target.unsqueeze(1))
    ours = gdice_loss(logits, target, batch=batch, include_background=include_background)
    assert torch.isfinite(ours)
    torch.testing.assert_close(ours, ref, **TOL)


def test_gdice_class_absent_from_whole_batch_matches_monai():
    logits, target = random_batch()
    target[target == 3] = 0
    for batch in (False, True):
        ref = monai_losses.GeneralizedDiceLoss(softmax=True, to_onehot_y=True, batch=batch)(logits, target.unsqueeze(1))
        torch.testing.assert_close(gdice_loss(logits, target, batch=batch), ref, **TOL)


def test_gdice_binary_empty_sample_matches_monai():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 1, 6, 6, generator=g)
    target = (torch.rand(2, 6, 6, generator=g) > 0.6).long()
    target[0] = 0  # sample 0: no foreground at all
    ref = monai_losses.GeneralizedDiceLoss(sigmoid=True)(logits, target.unsqueeze(1).float())
    torch.testing.assert_close(gdice_loss(logits, target), ref, **TOL)


# ----------------------------------------------------------------------------- MONAI Tversky

@pytest.mark.parametrize("alpha,beta", [(0.3, 0.7), (0.5, 0.5), (0.8, 0.2)])
@pytest.mark.parametrize("batch", [False, True])
def test_tversky_matches_monai(alpha, beta, batch):
    # MONAI's TverskyLoss also puts alpha on the false positives and beta on the false negatives
    logits, target = random_batch(absent=(0, 1))
    ref = monai_losses.TverskyLoss(softmax=True, to_onehot_y=True, alpha=alpha, beta=beta, batch=batch)(
        logits, target.unsqueeze(1)
    )
    torch.testing.assert_close(tversky_loss(logits, target, alpha=alpha, beta=beta, batch=batch), ref, **TOL)


def test_tversky_without_background_matches_monai():
    logits, target = random_batch((2, 3, 5, 6, 7))
    ref = monai_losses.TverskyLoss(softmax=True, to_onehot_y=True, include_background=False)(logits, target.unsqueeze(1))
    torch.testing.assert_close(tversky_loss(logits, target, alpha=0.5, beta=0.5, include_background=False), ref, **TOL)


# ----------------------------------------------------------------------------- MONAI DiceCE / focal

@pytest.mark.parametrize("batch", [False, True])
def test_dice_ce_matches_monai_dicece(batch):
    # MONAI's CE part is torch's CrossEntropyLoss on the logits with the (N, 1, ...) target
    # squeezed: the same as our `ce`; its Dice part is DiceLoss(softmax=True).
    logits, target = random_batch((2, 4, 5, 6, 7))
    ref = monai_losses.DiceCELoss(softmax=True, to_onehot_y=True, batch=batch)(logits, target.unsqueeze(1))
    ours = build_loss("dice_ce", dice={"batch": batch})(logits, target)
    torch.testing.assert_close(ours, ref, **TOL)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0, 3.0])
def test_focal_softmax_matches_monai_times_c(gamma):
    # MONAI's FocalLoss(use_softmax=True) averages over the classes too: ours = C * MONAI
    logits, target = random_batch()
    c = logits.shape[1]
    ref = monai_losses.FocalLoss(to_onehot_y=True, use_softmax=True, gamma=gamma)(logits, target.unsqueeze(1))
    torch.testing.assert_close(focal_loss(logits, target, gamma=gamma), c * ref, **TOL)


def test_focal_softmax_alpha_matches_monai():
    # MONAI's scalar alpha in softmax mode is (1 - alpha) for class 0 and alpha for the others
    logits, target = random_batch()
    c = logits.shape[1]
    ref = monai_losses.FocalLoss(to_onehot_y=True, use_softmax=True, gamma=2.0, alpha=0.25)(logits, target.unsqueeze(1))
    ours = focal_loss(logits, target, gamma=2.0, alpha=[0.75] + [0.25] * (c - 1))
    torch.testing.assert_close(ours, c * ref, **TOL)


@pytest.mark.parametrize("alpha", [None, 0.25])
def test_focal_binary_matches_monai_sigmoid(alpha):
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(2, 1, 7, 8, generator=g) * 3
    target = (torch.rand(2, 7, 8, generator=g) > 0.7).long()
    ref = monai_losses.FocalLoss(gamma=2.0, alpha=alpha)(logits, target.unsqueeze(1).float())
    torch.testing.assert_close(focal_loss(logits, target, gamma=2.0, alpha=alpha), ref, **TOL)


def test_dice_focal_equals_monai_dice_plus_softmax_focal():
    # MONAI's DiceFocalLoss uses a *sigmoid* focal term even with softmax=True; ours is softmax
    # focal, so compare with MONAI's DiceLoss + C * FocalLoss(use_softmax=True)
    logits, target = random_batch()
    c = logits.shape[1]
    ref = monai_losses.DiceLoss(softmax=True, to_onehot_y=True)(logits, target.unsqueeze(1)) + c * monai_losses.FocalLoss(
        to_onehot_y=True, use_softmax=True
    )(logits, target.unsqueeze(1))
    torch.testing.assert_close(build_loss("dice_focal")(logits, target), ref, **TOL)


# ----------------------------------------------------------------------------- PyTorch CE

@pytest.mark.parametrize("spatial", [(9,), (6, 7), (3, 4, 5)])
def test_ce_matches_torch(spatial):
    logits, target = random_batch((3, 4) + spatial)
    torch.testing.assert_close(ce_loss(logits, target), F.cross_entropy(logits, target), **TOL)


def test_ce_weights_and_ignore_index_match_torch():
    logits, target = random_batch()
    target[0, :3] = 255
    w = [0.2, 1.0, 3.0, 0.5]
    ref = F.cross_entropy(logits, target, weight=torch.tensor(w), ignore_index=255)
    torch.testing.assert_close(ce_loss(logits, target, class_weights=w, ignore_index=255), ref, **TOL)


def test_ce_gradient_matches_torch():
    logits, target = random_batch()
    target[1, 2:4] = -100
    a = logits.clone().requires_grad_(True)
    b = logits.clone().requires_grad_(True)
    ce_loss(a, target, ignore_index=-100).backward()
    F.cross_entropy(b, target, ignore_index=-100).backward()
    torch.testing.assert_close(a.grad, b.grad, **TOL)


def test_ce_binary_matches_bce_with_logits():
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(2, 1, 5, 6, generator=g)
    target = (torch.rand(2, 5, 6, generator=g) > 0.5).long()
    ref = F.binary_cross_entropy_with_logits(logits, target.unsqueeze(1).float())
    torch.testing.assert_close(ce_loss(logits, target), ref, **TOL)


# ----------------------------------------------------------------------------- nnU-Net formulas

def _nnunet_topk(logits, target, k):
    # nnunetv2 TopKLoss: RobustCrossEntropyLoss(reduction="none"), then
    #   res, _ = torch.topk(res.view((-1,)), int(num_voxels * self.k / 100), sorted=False); res.mean()
    ce = F.cross_entropy(logits, target, reduction="none")
    n = ce.numel()
    return torch.topk(ce.view(-1), int(n * k / 100), sorted=False).values.mean()


@pytest.mark.parametrize("k", [10, 25, 100])
def test_topk_matches_nnunet(k):
    logits, target = random_batch((2, 4, 10, 10, 3))
    torch.testing.assert_close(topk_loss(logits, target, k=k), _nnunet_topk(logits, target, k), **TOL)


def _nnunet_batch_dice(logits, target, smooth):
    # nnunetv2 SoftDiceLoss(apply_nonlin=softmax, batch_dice=True, do_bg=False, smooth=smooth):
    #   axes = [0] + spatial; tp, fp, fn from the one-hot target;
    #   dc = (2 tp + smooth) / clip(2 tp + fp + fn + smooth, 1e-8); dc = dc[1:]; return -dc.mean()
    p = torch.softmax(logits, 1)
    y = F.one_hot(target, logits.shape[1]).movedim(-1, 1).float()
    axes = [0] + list(range(2, logits.ndim))
    tp = (p * y).sum(axes)
    fp = (p * (1 - y)).sum(axes)
    fn = ((1 - p) * y).sum(axes)
    dc = (2 * tp + smooth) / torch.clip(2 * tp + fp + fn + smooth, 1e-8)
    return -dc[1:].mean()


@pytest.mark.parametrize("smooth", [1e-5, 1.0])
def test_batch_dice_matches_nnunet(smooth):
    logits, target = random_batch((2, 4, 6, 7, 8))
    # nnU-Net returns -Dice; ours is 1 - Dice
    ours = dice_loss(logits, target, batch=True, include_background=False, smooth=smooth)
    torch.testing.assert_close(ours, 1.0 + _nnunet_batch_dice(logits, target, smooth), **TOL)


# ----------------------------------------------------------------------------- kornia Lovász

@pytest.mark.parametrize("shape", [(2, 4, 9, 10), (3, 2, 16, 5), (1, 6, 32, 32)])
def test_lovasz_matches_kornia_per_image_all_classes(shape):
    # kornia 0.9: softmax of the logits, per image, mean over ALL classes (an absent class
    # contributes its largest error), then mean over the batch -- ours with these options.
    logits, target = random_batch(shape, absent=(0, 1))
    ref = kornia.losses.lovasz_softmax_loss(logits, target)
    ours = lovasz_loss(logits, target, per_image=True, classes="all")
    torch.testing.assert_close(ours, ref, **TOL)


def test_lovasz_gradient_matches_kornia():
    logits, target = random_batch((2, 4, 12, 12))
    a = logits.clone().requires_grad_(True)
    b = logits.clone().requires_grad_(True)
    lovasz_loss(a, target, per_image=True, classes="all").backward()
    kornia.losses.lovasz_softmax_loss(b, target).backward()
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-6)
