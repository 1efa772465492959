"""Properties of the region losses (hypothesis): ranges, perfect predictions, batch invariances,
special cases that tie the variants together, the implementation paths agreeing with each other,
and no one-hot built from a label map."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from _inputs import label_batches

import seglosses
from seglosses import build_loss, list_losses, loss_info
from seglosses.functional import (
    asym_loss,
    dice_loss,
    focal_tversky_loss,
    gdice_loss,
    log_cosh_dice_loss,
    lovasz_loss,
    pgdice_loss,
    tversky_loss,
)

SETTINGS = settings(max_examples=15, deadline=None)

# Lists derived from the registry's metadata, so a newly registered loss is tested here too. The
# properties run on multiclass label maps: losses without the multiclass mode are left out.


def _multiclass(names):
    return [n for n in names if "multiclass" in loss_info(n).modes]


#: the overlap (region) losses
OVERLAP = _multiclass(list_losses(category="region"))
#: overlap-statistics losses with a `batch` option whose batch=True form is "one sample made of
#: the whole batch" (region and compound; topology and boundary terms look across the seams)
BATCHABLE = _multiclass(
    n for n in list_losses() if "batch" in loss_info(n).defaults and loss_info(n).category in ("region", "compound")
)
#: losses taking a label map without a distance map: region and compound terms
LABEL_MAP_LOSSES = _multiclass(
    n for n in list_losses() if loss_info(n).category in ("region", "compound") and not loss_info(n).needs_distance_map
)
#: overlap losses in [0, 1] (1 - MCC lies in [0, 2]: MCC is a correlation in [-1, 1])
UNIT_RANGE = [n for n in OVERLAP if n not in {"mcc"}]
#: the paper's overlap losses (every mode)
PAPER_OVERLAP = ["dice", "iou", "tversky", "focal_tversky", "asym", "gdice", "pgdice", "ss", "log_cosh_dice", "lovasz"]
# the lists the properties below were written for are all still covered
assert set(PAPER_OVERLAP) <= set(OVERLAP)
assert {"dice", "gdice", "ss", "log_cosh_dice", "combo", "ell"} <= set(BATCHABLE)
assert {"combo", "ell", "dice_ce", "dice_focal", "dice_topk"} <= set(LABEL_MAP_LOSSES)


def _batches(min_n=1, present="maybe"):
    return label_batches(min_n=min_n, min_side=2, max_side=5, scales=(0.1, 1.0, 4.0), present=present)


def _concat(logits, target):
    """The N samples side by side along the last spatial axis: one sample (N = 1)."""
    return torch.cat(list(logits.unbind(0)), dim=-1).unsqueeze(0), torch.cat(list(target.unbind(0)), dim=-1).unsqueeze(0)


# ----------------------------------------------------------------------------- ranges and perfect predictions

@SETTINGS
@given(_batches(), st.sampled_from(UNIT_RANGE), st.booleans())
def test_overlap_losses_are_in_unit_interval(batch, name, binary):
    assume(not binary or "binary" in loss_info(name).modes)  # gwdl: multiclass only
    logits, target = batch
    if binary:
        logits, target = logits[:, :1], (target > 0).long()
    value = float(build_loss(name)(logits, target))
    assert -1e-12 <= value <= 1.0 + 1e-12, f"{name}: {value}"


@SETTINGS
@given(_batches(present="always"), st.sampled_from(OVERLAP))
def test_confident_perfect_prediction_is_near_zero(batch, name):
    _, target = batch
    c = batch[0].shape[1]
    logits = 20.0 * F.one_hot(target, c).movedim(-1, 1).double()
    assert float(build_loss(name)(logits, target)) < 1e-4


# ----------------------------------------------------------------------------- batch invariances

@SETTINGS
@given(_batches(min_n=2), st.sampled_from(OVERLAP + ["combo", "ell"]))
def test_sample_mode_is_invariant_to_batch_order(batch, name):
    logits, target = batch
    perm = torch.randperm(logits.shape[0], generator=torch.Generator().manual_seed(0)).flip(0)
    loss = build_loss(name)
    torch.testing.assert_close(loss(logits[perm], target[perm]), loss(logits, target))


@SETTINGS
@given(_batches(), st.sampled_from(BATCHABLE))
def test_batch_mode_equals_one_sample_of_the_concatenated_batch(batch, name):
    logits, target = batch
    one_logits, one_target = _concat(logits, target)
    torch.testing.assert_close(build_loss(name, batch=True)(logits, target), build_loss(name)(one_logits, one_target))


@SETTINGS
@given(_batches())
def test_lovasz_pooled_equals_per_image_of_the_concatenated_batch(batch):
    logits, target = batch
    one_logits, one_target = _concat(logits, target)
    for classes in ("present", "all"):
        torch.testing.assert_close(
            lovasz_loss(logits, target, classes=classes), lovasz_loss(one_logits, one_target, classes=classes, per_image=True)
        )


# ----------------------------------------------------------------------------- special cases

@SETTINGS
@given(_batches(), st.booleans(), st.booleans())
def test_tversky_half_half_and_asym_beta1_are_dice(batch, batch_mode, include_background):
    logits, target = batch
    # (tp + s) / (tp + fp/2 + fn/2 + s) = (2 tp + 2 s) / (2 tp + fp + fn + 2 s): Dice with 2 s
    kw = dict(batch=batch_mode, include_background=include_background)
    for s in (0.0, 1e-5, 1.0):
        dice = dice_loss(logits, target, smooth=2 * s, **kw)
        torch.testing.assert_close(tversky_loss(logits, target, alpha=0.5, beta=0.5, smooth=s, **kw), dice)
        torch.testing.assert_close(asym_loss(logits, target, beta=1.0, smooth=s, **kw), dice)


@SETTINGS
@given(_batches(), st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_focal_tversky_gamma1_is_tversky(batch, alpha, beta):
    logits, target = batch
    torch.testing.assert_close(
        focal_tversky_loss(logits, target, alpha=alpha, beta=beta, gamma=1.0),
        tversky_loss(logits, target, alpha=alpha, beta=beta),
    )


@SETTINGS
@given(_batches(), st.booleans(), st.booleans())
def test_log_cosh_dice_is_log_cosh_of_dice(batch, batch_mode, squared):
    logits, target = batch
    kw = dict(batch=batch_mode, squared=squared)
    per_class = dice_loss(logits, target, reduction="none", **kw)
    torch.testing.assert_close(log_cosh_dice_loss(logits, target, reduction="none", **kw), torch.log(torch.cosh(per_class)))
    torch.testing.assert_close(log_cosh_dice_loss(logits, target, **kw), torch.log(torch.cosh(per_class)).mean())


@SETTINGS
@given(_batches(), st.booleans())
def test_pgdice_k0_is_gdice_and_pgdice_is_larger(batch, batch_mode):
    logits, target = batch
    gd = gdice_loss(logits, target, batch=batch_mode)
    torch.testing.assert_close(pgdice_loss(logits, target, k=0.0, batch=batch_mode), gd)
    assert float(pgdice_loss(logits, target, batch=batch_mode)) >= float(gd) - 1e-12


@SETTINGS
@given(_batches())
def test_gdice_is_never_nan_with_absent_classes(batch):
    logits, target = batch
    target = torch.zeros_like(target)  # only background: every other class absent everywhere
    for b in (False, True):
        for bg in (False, True):
            value = gdice_loss(logits, target, batch=b, include_background=bg)
            assert torch.isfinite(value)


# ----------------------------------------------------------------------------- implementation paths agree

@SETTINGS
@given(_batches(), st.sampled_from(["dice", "tversky", "gdice", "ss", "combo", "ell", "lovasz", "dice_ce", "focal"]), st.booleans())
def test_label_map_equals_onehot_and_probabilities(batch, name, ignore):
    """Label maps (gather/scatter, fused backward) == one-hot targets == probabilities input."""
    logits, target = batch
    c = logits.shape[1]
    loss = build_loss(name)
    if ignore:
        target = target.clone()
        target.view(-1)[::3] = 255
        loss = build_loss(name, ignore_index=255)
    x1 = logits.clone().requires_grad_(True)
    v1 = loss(x1, target)
    v1.backward()
    if not ignore:
        x2 = logits.clone().requires_grad_(True)
        v2 = loss(x2, F.one_hot(target, c).movedim(-1, 1).double())
        v2.backward()
        torch.testing.assert_close(v1, v2)
        torch.testing.assert_close(x1.grad, x2.grad)
    x3 = logits.clone().requires_grad_(True)
    v3 = build_loss(name, from_logits=False, ignore_index=255 if ignore else None)(torch.softmax(x3, 1), target)
    v3.backward()
    torch.testing.assert_close(v1, v3)
    torch.testing.assert_close(x1.grad, x3.grad)


@SETTINGS
@given(_batches(), st.booleans(), st.sampled_from(["present", "all"]), st.booleans())
def test_lovasz_float32_fast_path_equals_float64_path(batch, per_image, classes, ignore):
    logits, target = batch
    if ignore:
        target = target.clone()
        target.view(-1)[::4] = -1
    kw = dict(per_image=per_image, classes=classes, ignore_index=-1 if ignore else None)
    x32 = logits.float().requires_grad_(True)
    x64 = logits.clone().requires_grad_(True)
    v32, v64 = lovasz_loss(x32, target, **kw), lovasz_loss(x64, target, **kw)
    v32.backward()
    v64.backward()
    torch.testing.assert_close(v32.double(), v64, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(x32.grad.double(), x64.grad, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    "name,kw",
    [
        ("dice", {}),
        ("dice", {"squared": True, "batch": True}),
        ("tversky", {"include_background": False}),
        ("ce", {}),
        ("focal", {}),
        ("topk", {"k": 30}),
        ("combo", {}),
        ("ell", {}),
        ("ss", {}),
    ],
)
def test_gradcheck_with_ignored_voxels(name, kw):
    """The fused backward passes (label map + logits) against finite differences, with ignore_index."""
    g = torch.Generator().manual_seed(7)
    logits = torch.randn(2, 3, 4, 5, generator=g, dtype=torch.float64, requires_grad=True)
    target = torch.randint(0, 3, (2, 4, 5), generator=g)
    target[0, 1] = 255
    loss = build_loss(name, ignore_index=255, **kw)
    assert torch.autograd.gradcheck(lambda x: loss(x, target), (logits,), eps=1e-6, atol=1e-5, rtol=1e-4)


def test_lovasz_with_soft_target_matches_differenced_jaccard():
    """Soft targets: errors |g - p| sorted, Jaccard differences of the cumulative (soft) masses."""
    g = torch.Generator().manual_seed(8)
    logits = torch.randn(2, 3, 5, 4, generator=g, dtype=torch.float64)
    soft = torch.softmax(torch.randn(2, 3, 5, 4, generator=g, dtype=torch.float64), 1)
    p = torch.softmax(logits, 1)
    losses = []
    for c in range(3):
        gc, pc = soft[:, c].reshape(-1), p[:, c].reshape(-1)
        err = (gc - pc).abs()
        es, perm = torch.sort(err, descending=True)
        gs = gc[perm]
        inter = gs.sum() - gs.cumsum(0)
        union = gs.sum() + (1 - gs).cumsum(0)
        jac = 1 - inter / union
        jac[1:] = jac[1:] - jac[:-1]
        losses.append(torch.dot(es, jac))
    torch.testing.assert_close(lovasz_loss(logits, soft), torch.stack(losses).mean())


# ----------------------------------------------------------------------------- no one-hot from a label map

@pytest.mark.parametrize("name", LABEL_MAP_LOSSES)
def test_no_onehot_is_built_from_a_label_map(name, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError(f"{name}: a one-hot of the label map was built")

    monkeypatch.setattr(torch.nn.functional, "one_hot", forbidden)
    monkeypatch.setattr(torch.Tensor, "one_hot", forbidden, raising=False)
    monkeypatch.setattr(seglosses._contract.Prepared, "onehot", forbidden)
    g = torch.Generator().manual_seed(9)
    logits = torch.randn(2, 4, 6, 5, 3, generator=g, requires_grad=True)
    target = torch.randint(0, 4, (2, 6, 5, 3), generator=g)
    for kw in ({}, {"ignore_index": 255}):
        value = build_loss(name, **kw)(logits, target)
        value.backward()
    assert loss_info(name).modes  # registered


def test_region_losses_report_modes():
    assert "multilabel" not in loss_info("ell").modes
    for name in PAPER_OVERLAP + ["combo"]:
        assert set(loss_info(name).modes) == {"multiclass", "binary", "multilabel"}, name
