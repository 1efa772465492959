"""The contract test: every registered loss, parametrised over ``list_losses()``.

A newly registered loss gets all of these checks without anyone writing them (timm's pattern):
2D and 3D (and 1D), binary / multiclass / multilabel where supported, finite values and
gradients, float64 gradcheck, module form == functional form, ``reduction`` consistency,
half-precision and huge logits, an all-ignored batch, and the input errors of the contract.
"""

from __future__ import annotations

import pytest
import torch

import seglosses
from seglosses import build_loss, list_losses, loss_info

ALL = list_losses()
#: losses that apply log(1 + x) after the reduction (MONAI's LogHausdorffDTLoss)
LOG_OF_REDUCED = {"log_hausdorff"}
BASIC = [n for n in ALL if loss_info(n).category != "compound" or loss_info(n).spec is None]


def _inputs(mode: str, spatial=(6, 7), n=2, c=3, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    if mode == "binary":
        c = 1
    logits = torch.randn((n, c) + tuple(spatial), generator=g, dtype=dtype) * 2
    if mode == "multiclass":
        target = torch.randint(0, c, (n,) + tuple(spatial), generator=g)
        # make every class present in sample 0 so region terms see all classes
        target.view(n, -1)[0, :c] = torch.arange(c)
    elif mode == "binary":
        target = (torch.rand((n,) + tuple(spatial), generator=g) > 0.6).long()
        target.view(n, -1)[:, 0] = 1
    else:
        target = (torch.rand((n, c) + tuple(spatial), generator=g) > 0.6).float()
    return logits, target


def _cases(name):
    modes = loss_info(name).modes
    out = []
    for mode in modes:
        for spatial in [(6, 7), (4, 5, 6)]:
            out.append((name, mode, spatial))
    if "multiclass" in modes:
        out.append((name, "multiclass", (9,)))
    return out


CASES = [c for n in ALL for c in _cases(n)]


def _id(case):
    name, mode, spatial = case
    return f"{name}-{mode}-{len(spatial)}d"


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_finite_value_and_gradient(case):
    name, mode, spatial = case
    logits, target = _inputs(mode, spatial)
    logits.requires_grad_(True)
    loss = build_loss(name, mode=mode)
    value = loss(logits, target)
    assert value.ndim == 0, f"{name}: default reduction must give a scalar, got shape {tuple(value.shape)}"
    assert value.dtype == torch.float32
    assert torch.isfinite(value), f"{name}: non-finite loss {value}"
    value.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all(), f"{name}: non-finite gradient"
    assert logits.grad.abs().sum() > 0, f"{name}: gradient is identically zero on a generic input"


@pytest.mark.parametrize("name", ALL)
def test_module_equals_functional(name):
    info = loss_info(name)
    mode = "multiclass" if "multiclass" in info.modes else info.modes[0]
    logits, target = _inputs(mode)
    module_value = build_loss(name, mode=mode)(logits, target)
    if info.spec is not None:  # named compound: the weighted sum of its terms' functional forms
        from seglosses.registry import parse_spec

        expected = sum(w * loss_info(t).functional(logits, target, mode=mode) for w, t in parse_spec(info.spec))
    else:
        expected = info.functional(logits, target, mode=mode)
    torch.testing.assert_close(module_value, expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", ALL)
def test_gradcheck_float64(name):
    info = loss_info(name)
    mode = "multiclass" if "multiclass" in info.modes else info.modes[0]
    logits, target = _inputs(mode, spatial=(4, 5), n=2, seed=3, dtype=torch.float64)
    logits.requires_grad_(True)
    loss = build_loss(name, mode=mode)
    value = loss(logits, target)
    assert value.dtype == torch.float64, f"{name}: float64 input must be computed in float64, got {value.dtype}"
    assert torch.autograd.gradcheck(lambda x: loss(x, target), (logits,), eps=1e-6, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", BASIC)
def test_reduction_none_sums_to_sum(name):
    info = loss_info(name)
    if "reduction" not in info.defaults:
        pytest.skip(f"{name} has no reduction option")
    mode = "multiclass" if "multiclass" in info.modes else info.modes[0]
    logits, target = _inputs(mode)
    none = build_loss(name, mode=mode, reduction="none")(logits, target)
    total = build_loss(name, mode=mode, reduction="sum")(logits, target)
    assert none.ndim >= 1, f"{name}: reduction='none' must keep the loss elements, got a scalar"
    if name in LOG_OF_REDUCED:  # log(1 + x) of the reduced value (MONAI's convention): invert it
        none, total = torch.expm1(none), torch.expm1(total)
    torch.testing.assert_close(none.sum(), total, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="reduction"):
        build_loss(name, mode=mode, reduction="avg")(logits, target)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", ALL)
def test_half_precision_input_gives_finite_float32(name, dtype):
    info = loss_info(name)
    mode = "multiclass" if "multiclass" in info.modes else info.modes[0]
    logits, target = _inputs(mode)
    logits = logits.to(dtype).requires_grad_(True)
    value = build_loss(name, mode=mode)(logits, target)
    assert value.dtype == torch.float32
    assert torch.isfinite(value)
    value.backward()
    assert torch.isfinite(logits.grad.float()).all()


@pytest.mark.parametrize("name", ALL)
def test_huge_logits_are_finite(name):
    info = loss_info(name)
    for mode in info.modes:
        logits, target = _inputs(mode)
        logits = (torch.sign(logits) * 1e4).requires_grad_(True)
        value = build_loss(name, mode=mode)(logits, target)
        assert torch.isfinite(value), f"{name} ({mode}): non-finite loss for logits of magnitude 1e4"
        value.backward()
        assert torch.isfinite(logits.grad).all(), f"{name} ({mode}): non-finite gradient for logits of magnitude 1e4"


@pytest.mark.parametrize("name", ALL)
def test_all_ignored_batch_is_finite_with_zero_gradient(name):
    info = loss_info(name)
    mode = "multiclass" if "multiclass" in info.modes else "binary"
    if mode not in info.modes:
        pytest.skip(f"{name} supports no label-map mode")
    logits, target = _inputs(mode)
    logits.requires_grad_(True)
    target = torch.full_like(target, 255)
    value = build_loss(name, mode=mode, ignore_index=255)(logits, target)
    assert torch.isfinite(value)
    value.backward()
    assert torch.isfinite(logits.grad).all()
    assert logits.grad.abs().max() == 0, f"{name}: ignored voxels must not produce a gradient"


@pytest.mark.parametrize("name", BASIC)
def test_ignored_voxels_do_not_matter(name):
    """Changing the logits of ignored voxels changes nothing (value and other gradients)."""
    info = loss_info(name)
    if "multiclass" not in info.modes:
        pytest.skip("label-map multiclass only")
    logits, target = _inputs("multiclass", spatial=(8, 8))
    target = target.clone()
    target[:, :2] = 255
    a = build_loss(name, ignore_index=255)(logits, target)
    logits2 = logits.clone()
    logits2[:, :, :2] = torch.randn_like(logits2[:, :, :2]) * 5
    b = build_loss(name, ignore_index=255)(logits2, target)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ALL)
def test_probabilities_input(name):
    """from_logits=False with softmax probabilities equals from_logits=True with the logits."""
    info = loss_info(name)
    if "multiclass" not in info.modes:
        pytest.skip("multiclass only")
    logits, target = _inputs("multiclass")
    a = build_loss(name)(logits, target)
    probs = torch.sigmoid(logits) if info.one_vs_rest else torch.softmax(logits, 1)  # sigmoid_focal
    b = build_loss(name, from_logits=False)(probs, target)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ALL)
def test_onehot_target_equals_label_map(name):
    info = loss_info(name)
    if "multiclass" not in info.modes:
        pytest.skip("multiclass only")
    logits, target = _inputs("multiclass")
    onehot = torch.nn.functional.one_hot(target, 3).movedim(-1, 1).float()
    torch.testing.assert_close(build_loss(name)(logits, target), build_loss(name)(logits, onehot), rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- input errors

@pytest.mark.parametrize("name", ALL)
def test_input_errors_name_argument_expected_and_actual(name):
    info = loss_info(name)
    loss = build_loss(name)
    if "multiclass" in info.modes:
        logits, target = _inputs("multiclass")
        with pytest.raises(ValueError, match=r"target: .*\(2, 6, 7\).*got shape \(2, 5, 7\)"):
            loss(logits, target[:, :5])
        bad = target.clone()
        bad[0, 0, 0] = 7
        with pytest.raises(ValueError, match=r"target: expected label values in \[0, 3\).*got value 7"):
            loss(logits, bad)
        with pytest.raises(TypeError, match="logits: expected a floating-point tensor"):
            loss(logits.long(), target)
        # a float label map of integral values is accepted (MONAI's habit); non-integral is ambiguous
        with pytest.raises(ValueError, match=r"target: .*non-integral values.*target\.long\(\)"):
            loss(logits, target.float() + 0.5)
    if info.modes != ("binary",):
        logits1 = torch.randn(2, 1, 6, 7)
        with pytest.raises(ValueError, match="mode"):
            build_loss(name, mode="multiclass")(logits1, torch.zeros(2, 6, 7, dtype=torch.long))
    with pytest.raises(ValueError, match="unknown argument"):
        build_loss(name, not_an_option=1)


def test_logits_must_have_spatial_dims():
    with pytest.raises(ValueError, match=r"logits: expected shape \(N, C, \*spatial\).*got shape \(2, 3\)"):
        seglosses.build_loss("dice")(torch.randn(2, 3), torch.zeros(2, dtype=torch.long))


def test_unknown_mode_is_rejected():
    with pytest.raises(ValueError, match=r"mode: expected one of \['multiclass', 'binary', 'multilabel'\], got 'softmax'"):
        seglosses.build_loss("dice", mode="softmax")
