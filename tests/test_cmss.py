"""cmss (correlation-maximised structural similarity loss) against a plain float64 reference.

The reference below is the straightforward implementation of the formula: local means and
variances with float64 ``avg_pool`` (``count_include_pad=False``; with an ignore mask, the ratio
of the pooled ``w x`` and ``w``), autograd through all of it. The loss computes its window sums
differently (float64 separable sums, float32 elsewhere, hand-written backward); values and
gradients must agree to float32 rounding in 1D / 2D / 3D, with and without ``ignore_index``, on
inputs with exactly constant windows (empty target, saturated or uniform prediction) and nearly
constant ones (where float32 window statistics would be off by far more than the tolerance).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from _inputs import blob_labels, generator

from seglosses.functional import cmss_loss, structural

_POOL = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


def _normalised(x, window, c4, w):
    """(x - mu + C4) / (sigma + C4), float64 avg_pool statistics; sigma = 0 where var = 0."""
    pool = _POOL[x.ndim - 2]
    kw = {"kernel_size": window, "stride": 1, "padding": window // 2, "count_include_pad": False}

    def mean(t):
        if w is None:
            return pool(t, **kw)
        return pool(t * w, **kw) / pool(w.expand_as(t[:, :1]), **kw).clamp_min(1e-12)

    mu = mean(x)
    var = (mean(x * x) - mu * mu).clamp_min(0.0)
    sigma = torch.where(var > 0, var.clamp_min(1e-300).sqrt(), torch.zeros_like(var))
    return (x - mu + c4) / (sigma + c4)


def reference_cmss(x, target, *, mode="multiclass", from_logits=True, window=3, c4=0.01, beta=0.1,
                   ignore_index=None, reduction="mean"):
    """The loss in float64 from ``x`` (logits or probabilities, any float dtype: promoted).

    ``beta=None``: instead of a fixed beta, the middle of the widest gap between the values of
    ``e / e_max`` around 0.1, returned with the loss: then no element lies near the threshold,
    where a rounding difference could flip the hard selection f (and the comparison would say
    nothing about the statistics).
    """
    x = x.double()
    c = x.shape[1]
    valid = None
    if mode == "multiclass":
        lab = target
        if ignore_index is not None:
            keep = target != ignore_index
            valid = keep.unsqueeze(1).double()
            lab = torch.where(keep, target, torch.zeros_like(target))
        y = F.one_hot(lab, c).movedim(-1, 1).double()
        if from_logits:
            p, logp = torch.softmax(x, 1), torch.log_softmax(x, 1)
        else:
            p, logp = x, torch.log(x.clamp_min(1e-12))
        ce = -(y * logp)
    else:
        y = (target.unsqueeze(1) if target.ndim == x.ndim - 1 else target).double()
        if from_logits:
            p = torch.sigmoid(x)
            ce = F.binary_cross_entropy_with_logits(x, y, reduction="none")
        else:
            p = x
            ce = -(y * torch.log(x.clamp_min(1e-12)) + (1 - y) * torch.log((1 - x).clamp_min(1e-12)))
    e = (_normalised(y, window, c4, valid) - _normalised(p, window, c4, valid)).abs()
    with torch.no_grad():
        e_valid = e if valid is None else e * valid
        e_max = e_valid.max()
        safe = beta is None
        if safe:
            v = torch.unique(e_valid / e_max)
            lo, hi = v[:-1], v[1:]
            gap = torch.where((hi > 0.05) & (lo < 0.2), hi - lo, torch.zeros_like(lo))
            i = int(gap.argmax())
            assert gap[i] > 1e-4, "no gap around 0.1"
            beta = float(lo[i] + hi[i]) / 2
        f = (e_valid > beta * e_max).double()
        if valid is not None:
            f = f * valid
    if reduction == "none":
        value = e * ce * f
    else:
        value = (e * ce * f).sum()
        if reduction == "mean":
            value = value / f.sum().clamp_min(1e-12)
    return (value, beta) if safe else value


def _labels(shape, c, seed, p_empty=False):
    target = blob_labels((shape[0], c) + tuple(shape[2:]), generator(seed))
    if p_empty:
        target[0] = 0  # sample 0: empty foreground (every window constant)
    return target


def _inputs(kind, shape, seed=0):
    """(probabilities float32 (N, C, *spatial), label map, logits) for the case ``kind``."""
    c = shape[1]
    spatial = shape[2:]
    g = torch.Generator().manual_seed(seed + 100)
    target = _labels(shape, c, seed, p_empty=kind == "constant")
    onehot = F.one_hot(target, c).movedim(-1, 1).float()
    if kind == "random":
        logits = torch.randn(shape, generator=g) * 2 + 2 * onehot
    elif kind == "constant":
        # sample 0: empty target, saturated prediction of the background (p exactly 0 / 1);
        # sample 1: exactly uniform p = 1/C in one corner, confident elsewhere
        logits = torch.randn(shape, generator=g) + 3 * onehot
        logits[0] = 0.0
        logits[0, 0] = 200.0
        corner = (1, slice(None)) + tuple(slice(0, max(1, s // 2)) for s in spatial)
        logits[corner] = 0.5
    else:  # "near": p = 1/C + O(1e-3): windows far from constant for float64, not for float32
        logits = torch.randn(shape, generator=g) * 4e-3
    return torch.softmax(logits, 1), target, logits


def _close(actual, expected, rtol):
    """Relative to the largest magnitude (gradients and 'none' elements span many scales)."""
    scale = expected.abs().max().clamp_min(1e-30)
    err = (actual.double() - expected).abs().max() / scale
    assert err <= rtol, f"max error {float(err):.2e} of the largest magnitude (tolerance {rtol:.0e})"


SHAPES = [(2, 3, 23), (2, 4, 11, 12), (2, 3, 6, 7, 8)]
KINDS = ["random", "constant", "near"]


def _compare(x, target, rtol_value=1e-5, rtol_grad=2e-5, reduction="mean", **kw):
    """The loss and its gradient against the reference, with a tie-free beta near 0.1."""
    x64 = x.detach().double().requires_grad_(True)
    ref, beta = reference_cmss(x64, target, beta=None, reduction=reduction, **kw)
    x = x.detach().clone().requires_grad_(True)
    names = {"from_logits": "from_logits", "mode": "mode", "window": "window_size", "ignore_index": "ignore_index"}
    value = cmss_loss(x, target, beta=beta, reduction=reduction, **{names[k]: v for k, v in kw.items()})
    assert value.dtype == (torch.float64 if x.dtype == torch.float64 else torch.float32)
    weight = 1.0
    if reduction == "none":
        weight = torch.randn(value.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    (value * weight.to(value.dtype) if reduction == "none" else value).sum().backward()
    (ref * weight).sum().backward()
    _close(value.detach(), ref.detach(), rtol_value)
    _close(x.grad, x64.grad, rtol_grad)
    return value, ref


@pytest.mark.parametrize("shape", SHAPES, ids=["1d", "2d", "3d"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("ignore", [None, 255])
@pytest.mark.parametrize("window", [3, 5])
def test_probabilities_match_float64_reference(shape, kind, ignore, window):
    """from_logits=False: the gradient with respect to p itself (not damped by a softmax)."""
    p, target, _ = _inputs(kind, shape, seed=len(shape))
    if ignore is not None:
        target = target.clone()
        target.view(-1)[3::7] = ignore  # scattered, and along a border
        target[..., 0] = ignore
    _compare(p, target, from_logits=False, window=window, ignore_index=ignore)


@pytest.mark.parametrize("shape", SHAPES, ids=["1d", "2d", "3d"])
@pytest.mark.parametrize("kind", ["random", "constant"])
@pytest.mark.parametrize("ignore", [None, 255])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_logits_match_float64_reference(shape, kind, ignore, reduction):
    """Logits with a label map (the compiled softmax path on the CPU), every reduction."""
    _, target, logits = _inputs(kind, shape, seed=len(shape) + 7)
    if ignore is not None:
        target = target.clone()
        target.view(-1)[::5] = ignore
    _compare(logits, target, reduction=reduction, ignore_index=ignore)


@pytest.mark.parametrize("mode", ["binary", "multilabel"])
@pytest.mark.parametrize("spatial", [(12, 13), (5, 6, 7)], ids=["2d", "3d"])
@pytest.mark.parametrize("soft", [False, True])
def test_dense_targets_match_float64_reference(mode, spatial, soft):
    """Sigmoid modes (BCE per channel), 0/1 and soft targets (float64 target statistics)."""
    g = torch.Generator().manual_seed(5)
    c = 1 if mode == "binary" else 3
    logits = torch.randn((2, c) + spatial, generator=g) * 2
    target = (torch.rand((2, c) + spatial, generator=g) > 0.6).float()
    target[0, :, : spatial[0] // 2] = 0.0  # constant windows in the target
    logits[0, :, : spatial[0] // 2] = -40.0  # and in the prediction (the sigmoid saturates)
    if soft:
        target = target * 0.8 + 0.1 * torch.rand(target.shape, generator=g)
    _compare(logits, target, mode=mode)


def test_float64_input_matches_reference_closely():
    """float64 logits are computed in float64 throughout (what gradcheck relies on)."""
    _, target, logits = _inputs("random", (2, 3, 7, 8), seed=3)
    _compare(logits.double(), target, rtol_value=1e-12, rtol_grad=1e-10)


def test_prediction_equal_to_target_gives_zero_and_zero_gradient():
    """p == y (an empty target and a saturated prediction included): e = 0 exactly, so no
    element qualifies: the loss is 0 with zero gradient."""
    target = _labels((2, 3, 9, 10), 3, seed=4, p_empty=True)
    p = F.one_hot(target, 3).movedim(-1, 1).float().requires_grad_(True)
    value = cmss_loss(p, target, from_logits=False)
    value.backward()
    assert float(value.detach()) == 0.0
    assert p.grad.abs().max() == 0


def test_all_ignored_is_zero_with_zero_gradient():
    _, target, logits = _inputs("random", (2, 3, 6, 7), seed=2)
    x = logits.clone().requires_grad_(True)
    value = cmss_loss(x, torch.full_like(target, 255), ignore_index=255)
    value.backward()
    assert float(value.detach()) == 0.0
    assert x.grad.abs().max() == 0


def test_comparison_detects_float32_window_sums(monkeypatch):
    """These tolerances are tight enough to see float32 window statistics: with the window sums
    in float32 (E[x^2] - mu^2 cancelling), the nearly constant case is far off."""
    p, target, _ = _inputs("near", (2, 4, 11, 12), seed=2)
    _compare(p, target, from_logits=False)
    monkeypatch.setattr(structural, "_WIDE", torch.float32)
    with pytest.raises(AssertionError, match="max error"):
        _compare(p, target, from_logits=False)
