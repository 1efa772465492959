"""Properties of the distribution-based losses (hypothesis), tying each variant back to CE."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from seglosses.functional import (
    balanced_ce_loss,
    ce_loss,
    focal_loss,
    topk_loss,
    topk_threshold_loss,
    wce_loss,
    weighted_bce_loss,
)

SETTINGS = settings(max_examples=25, deadline=None)


@st.composite
def multiclass_batch(draw, max_c=4):
    n = draw(st.integers(1, 3))
    c = draw(st.integers(2, max_c))
    shape = tuple(draw(st.lists(st.integers(1, 6), min_size=1, max_size=3)))
    seed = draw(st.integers(0, 2**31 - 1))
    scale = draw(st.sampled_from([0.1, 1.0, 5.0]))
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn((n, c) + shape, generator=g, dtype=torch.float64) * scale
    target = torch.randint(0, c, (n,) + shape, generator=g)
    return logits, target


@SETTINGS
@given(multiclass_batch())
def test_ce_equals_torch_cross_entropy(batch):
    logits, target = batch
    torch.testing.assert_close(ce_loss(logits, target), F.cross_entropy(logits, target))


@SETTINGS
@given(multiclass_batch(), st.floats(0.0, 5.0))
def test_focal_is_at_most_ce_and_gamma0_is_ce(batch, gamma):
    logits, target = batch
    ce = ce_loss(logits, target)
    assert float(focal_loss(logits, target, gamma=gamma)) <= float(ce) + 1e-9
    torch.testing.assert_close(focal_loss(logits, target, gamma=0.0), ce)


@SETTINGS
@given(multiclass_batch())
def test_topk_100_percent_is_ce_and_topk_is_at_least_ce(batch):
    logits, target = batch
    ce = ce_loss(logits, target)
    torch.testing.assert_close(topk_loss(logits, target, k=100), ce)
    assert float(topk_loss(logits, target, k=10)) >= float(ce) - 1e-9


@SETTINGS
@given(multiclass_batch(), st.sampled_from([10, 30, 50]))
def test_topk_equals_nnunet_formula(batch, k):
    """nnU-Net v2 TopKLoss: per-voxel CE, torch.topk over the flattened batch, int(n * k / 100)."""
    logits, target = batch
    res = F.cross_entropy(logits, target, reduction="none").view(-1)
    n_sel = max(1, int(res.numel() * k / 100))
    expected = torch.topk(res, n_sel, sorted=False).values.mean()
    torch.testing.assert_close(topk_loss(logits, target, k=k), expected)


@SETTINGS
@given(multiclass_batch())
def test_uniform_class_weights_are_plain_ce(batch):
    logits, target = batch
    c = logits.shape[1]
    torch.testing.assert_close(wce_loss(logits, target, class_weights=[2.5] * c), ce_loss(logits, target))


@SETTINGS
@given(multiclass_batch())
def test_inverse_frequency_weights_equalise_classes(batch):
    """With w_c = 1 / n_c, every present class contributes equally: wce = mean over classes of class-mean CE."""
    logits, target = batch
    nll = F.cross_entropy(logits, target, reduction="none")
    per_class = [nll[target == c].mean() for c in range(logits.shape[1]) if (target == c).any()]
    torch.testing.assert_close(wce_loss(logits, target), torch.stack(per_class).mean())


@SETTINGS
@given(multiclass_batch())
def test_sample_order_does_not_matter(batch):
    logits, target = batch
    perm = torch.arange(logits.shape[0]).flip(0)
    for fn in (ce_loss, focal_loss, topk_loss, balanced_ce_loss, wce_loss, topk_threshold_loss):
        torch.testing.assert_close(fn(logits, target), fn(logits[perm], target[perm]))


@SETTINGS
@given(multiclass_batch())
def test_topk_threshold_one_is_ce_and_selects_hard_voxels(batch):
    logits, target = batch
    p_true = torch.softmax(logits, 1).gather(1, target.unsqueeze(1)).squeeze(1)
    if not (p_true < 1).all():
        return
    torch.testing.assert_close(topk_threshold_loss(logits, target, threshold=1.0), ce_loss(logits, target))
    hard = p_true < 0.5
    nll = F.cross_entropy(logits, target, reduction="none")
    expected = nll[hard].mean() if hard.any() else torch.tensor(0.0, dtype=logits.dtype)
    torch.testing.assert_close(topk_threshold_loss(logits, target, threshold=0.5), expected)


def test_topk_threshold_no_qualifying_voxel_is_zero_with_zero_gradient():
    logits = torch.tensor([[[10.0, -10.0], [-10.0, 10.0]]], requires_grad=True)  # (1, 2, 2), confident + correct
    target = torch.tensor([[0, 1]])
    value = topk_threshold_loss(logits, target, threshold=0.5)
    value.backward()
    assert float(value) == 0.0 and logits.grad.abs().max() == 0


def test_binary_ce_is_bce_with_logits_and_weights():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 1, 5, 5, generator=g)
    target = (torch.rand(3, 5, 5, generator=g) > 0.5).long()
    expected = F.binary_cross_entropy_with_logits(logits, target.unsqueeze(1).float())
    torch.testing.assert_close(ce_loss(logits, target), expected)
    # binary class_weights = [negative, positive], weighted mean
    w = torch.where(target.unsqueeze(1) == 1, 3.0, 0.5)
    raw = F.binary_cross_entropy_with_logits(logits, target.unsqueeze(1).float(), reduction="none")
    torch.testing.assert_close(ce_loss(logits, target, class_weights=[0.5, 3.0]), (w * raw).sum() / w.sum())


def test_weighted_bce_default_beta_is_negative_to_positive_ratio():
    logits = torch.zeros(1, 1, 4)  # p = 0.5: every term is log 2
    target = torch.tensor([[1, 0, 0, 0]])
    # beta = 3 negatives / 1 positive; mean of (3 log 2, log 2, log 2, log 2)
    assert math.isclose(float(weighted_bce_loss(logits, target)), 6 * math.log(2) / 4, rel_tol=1e-6)
    assert math.isclose(float(weighted_bce_loss(logits, target, beta=1.0)), math.log(2), rel_tol=1e-6)


def test_sigmoid_focal_matches_torchvision_formula():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 3, 4, 4, generator=g)
    target = (torch.rand(2, 3, 4, 4, generator=g) > 0.7).float()
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = p * target + (1 - p) * (1 - target)
    alpha_t = 0.25 * target + 0.75 * (1 - target)
    expected = (alpha_t * (1 - p_t) ** 2 * ce).mean()  # torchvision.ops.sigmoid_focal_loss, mean
    torch.testing.assert_close(focal_loss(logits, target, mode="multilabel", alpha=0.25), expected)


def test_focal_soft_target_equals_one_hot_for_hard_labels():
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 4, 5, generator=g)
    target = torch.randint(0, 4, (2, 5), generator=g)
    onehot = F.one_hot(target, 4).movedim(-1, 1).float()
    torch.testing.assert_close(focal_loss(logits, target, alpha=[1, 2, 3, 4]), focal_loss(logits, onehot, alpha=[1, 2, 3, 4]))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda x, y: topk_loss(x, y, k=0), r"k: expected a finite number > 0, got 0"),
        (lambda x, y: topk_loss(x, y, k=150), r"k: expected a percentage in \(0, 100\], got 150"),
        (lambda x, y: topk_threshold_loss(x, y, threshold=1.5), r"threshold: expected a probability in \(0, 1\], got 1.5"),
        (lambda x, y: focal_loss(x, y, gamma=-1.0), r"gamma: expected a finite number >= 0, got -1.0"),
        (lambda x, y: focal_loss(x, y, alpha=0.25), r"alpha: a float foreground weight needs alpha_foreground=True"),
        (lambda x, y: ce_loss(x, y, class_weights=[1.0, 2.0]), r"class_weights: expected 3 weights \(one per channel\), got 2"),
        (lambda x, y: wce_loss(x, y, class_weights="median"), r"class_weights: expected one of \['inverse_frequency'\], got 'median'"),
        (lambda x, y: weighted_bce_loss(x, y), r"mode: 'weighted_bce' supports \['binary', 'multilabel'\], got 'multiclass'"),
    ],
)
def test_option_errors(call, message):
    x = torch.randn(2, 3, 4, 4)
    y = torch.randint(0, 3, (2, 4, 4))
    with pytest.raises(ValueError, match=message):
        call(x, y)
