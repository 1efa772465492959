"""The compiled CPU kernels (``seglosses._native``) against PyTorch and against the pure-PyTorch path.

Every multiclass loss with a label-map target on float32 CPU logits runs through one fused
softmax + statistics kernel (forward) and one gradient kernel (backward). These tests hold them
to PyTorch's softmax / cross entropy / one-hot sums, and every registered loss to its own
pure-PyTorch path (``SEGLOSSES_NATIVE=0``), values and gradients, with and without ignored
voxels, on awkward sizes (a voxel count that is not a multiple of the kernels' blocks, one
voxel, many classes), and check that the result does not depend on the number of threads or
on the threading backend.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from seglosses import _native, build_loss, list_losses, loss_info
from conftest import STRICT

pytestmark = pytest.mark.skipif(
    not STRICT and not _native.enabled(), reason="compiled kernels not built (the pure-PyTorch path is tested elsewhere)"
)


def test_kernels_are_built_in_ci():
    # CI installs with a C compiler: a missing library would silently test only the fallback
    assert _native.library() is not None, _native.status()
    assert _native.enabled(), _native.status()
    assert "compiled kernels" in _native.status()


def _reference(z: torch.Tensor, lab: torch.Tensor, valid):
    """Every kernel output from PyTorch ops, in float64 (one-hot sums)."""
    zd = z.double()
    n, c = z.shape[:2]
    p = torch.softmax(zd, 1)
    g = F.one_hot(lab, c).movedim(-1, 1).double()
    v = torch.ones(lab.shape, dtype=torch.float64) if valid is None else valid.double()
    v = v.unsqueeze(1)
    dims = tuple(range(2, z.ndim))
    stats = dict(
        tp=(p * g * v).sum(dims),
        sum_p=(p * v).sum(dims),
        sum_p2=(p * p * v).sum(dims),
        t2=(p * p * g * v).sum(dims),
        count=(g * v).sum(dims),
    )
    nll = F.cross_entropy(zd, lab, reduction="none")
    return p, stats, nll


SHAPES = [(2, 4, 9, 10, 11), (1, 2, 1), (3, 3, 8193), (2, 40, 5, 7), (2, 5, 300)]


def _kernel_inputs(shape, seed, scale, ignore):
    """Logits, labels and (optionally) 0/1 voxel weights of about 70 % kept voxels."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(shape, generator=g) * scale
    n, c = shape[:2]
    lab = torch.randint(0, c, (n,) + shape[2:], generator=g)
    valid = (torch.rand(lab.shape, generator=g) > 0.3).float() if ignore else None
    return g, z, lab, valid


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("ignore", [False, True])
def test_forward_equals_pytorch(shape, ignore):
    _, z, lab, valid = _kernel_inputs(shape, 1, 4.0, ignore)
    out = _native.softmax_label_stats(z, lab, valid, want_nll=True)
    p, stats, nll = _reference(z, lab, valid)
    torch.testing.assert_close(out.p.double(), p, rtol=1e-6, atol=1e-7)
    for k, ref in stats.items():
        torch.testing.assert_close(getattr(out, k).double(), ref, rtol=1e-6, atol=1e-6, msg=k)
    torch.testing.assert_close(out.nll.double(), nll, rtol=1e-6, atol=2e-6)
    assert out.count.requires_grad is False


def test_extreme_logits_give_exact_cross_entropy():
    # p of the true class underflows to 0 in float32; -log p must still be the log-sum-exp value
    z = torch.tensor([[[1e4, -1e4, 0.0, 30.0, -88.0, -104.0], [-1e4, 1e4, 0.0, -30.0, 0.0, 0.0]]])
    lab = torch.tensor([[1, 0, 1, 1, 0, 0]])
    out = _native.softmax_label_stats(z, lab, None, want_nll=True)
    ref = F.cross_entropy(z.double(), lab, reduction="none")
    torch.testing.assert_close(out.nll.double(), ref, rtol=1e-6, atol=1e-5)
    assert torch.isfinite(out.p).all() and torch.allclose(out.p.sum(1), torch.ones(1, 6))


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("ignore", [False, True])
def test_backward_equals_autograd(shape, ignore):
    """A random linear function of every output: the one-pass gradient equals autograd's."""
    g, z, lab, valid = _kernel_inputs(shape, 2, 3.0, ignore)
    n, c = shape[:2]
    w = [torch.randn(n, c, generator=g) for _ in range(4)]
    h = torch.randn(lab.shape, generator=g)
    gp = torch.randn(shape, generator=g)

    def objective(out_p, tp, sp, sp2, t2, nll):
        return (w[0] * tp).sum() + (w[1] * sp).sum() + (w[2] * sp2).sum() + (w[3] * t2).sum() + (h * nll).sum() + (gp * out_p).sum()

    z1 = z.clone().requires_grad_()
    o = _native.softmax_label_stats(z1, lab, valid, want_nll=True)
    objective(o.p, o.tp, o.sum_p, o.sum_p2, o.t2, o.nll).backward()

    z2 = z.double().requires_grad_()
    p = torch.softmax(z2, 1)
    oh = F.one_hot(lab, c).movedim(-1, 1).double()
    v = (torch.ones(lab.shape, dtype=torch.float64) if valid is None else valid.double()).unsqueeze(1)
    dims = tuple(range(2, z.ndim))
    nll = F.cross_entropy(z2, lab, reduction="none")
    objective(p, (p * oh * v).sum(dims), (p * v).sum(dims), (p * p * v).sum(dims), (p * p * oh * v).sum(dims), nll).backward()
    torch.testing.assert_close(z1.grad.double(), z2.grad, rtol=1e-5, atol=1e-5)


def test_unused_outputs_need_no_gradient_and_nll_is_optional():
    z = torch.randn(2, 3, 50, requires_grad=True)
    lab = torch.randint(0, 3, (2, 50))
    o = _native.softmax_label_stats(z, lab, None, want_nll=False)
    assert o.nll is None
    o.tp.sum().backward()  # only tp used
    ref = z.detach().clone().requires_grad_()
    (torch.softmax(ref, 1) * F.one_hot(lab, 3).movedim(-1, 1)).sum().backward()
    torch.testing.assert_close(z.grad, ref.grad, rtol=1e-5, atol=1e-6)


def test_half_and_noncontiguous_logits():
    base = torch.randn(2, 8, 9, 3)  # (N, H, W, C) -> a channels-last view
    z = base.permute(0, 3, 1, 2)
    assert not z.is_contiguous()
    lab = torch.randint(0, 3, (2, 8, 9))
    ref = _reference(z, lab, None)[1]["tp"]
    torch.testing.assert_close(_native.softmax_label_stats(z, lab, None).tp.double(), ref, rtol=1e-6, atol=1e-6)
    h = z.half().requires_grad_()
    o = _native.softmax_label_stats(h, lab, None)
    assert o.tp.dtype == torch.float32
    o.tp.sum().backward()
    assert h.grad.dtype == torch.float16 and torch.isfinite(h.grad).all()


def test_result_does_not_depend_on_threads_or_backend():
    z = torch.randn(2, 4, 40000)
    lab = torch.randint(0, 4, (2, 40000))
    old = torch.get_num_threads()

    def run():
        x = z.clone().requires_grad_()
        o = _native.softmax_label_stats(x, lab, None, want_nll=True)
        (o.tp.sum() * 0.3 - o.sum_p2.sum() + o.nll.mean()).backward()
        return torch.cat([o.tp.flatten(), o.sum_p.flatten(), o.nll.flatten()]), x.grad

    try:
        results = []
        for backend in (True, False):
            _native.use_openmp(backend)
            for threads in (1, 2, 3):
                torch.set_num_threads(threads)
                results.append(run())
    finally:
        torch.set_num_threads(old)
        _native.use_openmp(True)
    for vals, grad in results[1:]:
        assert torch.equal(vals, results[0][0]) and torch.equal(grad, results[0][1])


def test_disabled_by_environment(monkeypatch):
    monkeypatch.setenv("SEGLOSSES_NATIVE", "0")
    assert not _native.enabled() and "disabled" in _native.status()
    assert _native.softmax_label_stats(torch.randn(1, 2, 4), torch.zeros(1, 4, dtype=torch.long), None) is None


def test_not_used_where_it_does_not_apply():
    lab = torch.zeros(1, 4, dtype=torch.long)
    assert _native.softmax_label_stats(torch.randn(1, 2, 4, dtype=torch.float64), lab, None) is None  # gradcheck path
    assert _native.softmax_label_stats(torch.randn(1, 1, 4), lab, None) is None  # one channel


# ------------------------------------------------------------------ every loss: native == PyTorch path

MULTICLASS = [n for n in list_losses() if "multiclass" in loss_info(n).modes and not loss_info(n).one_vs_rest]


def _loss_inputs(seed, spatial=(13, 11)):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn((2, 4) + spatial, generator=g) * 2
    target = torch.randint(0, 4, (2,) + spatial, generator=g)
    target[0, 0, :4] = torch.arange(4)
    target[1][target[1] == 3] = 2  # class 3 absent from sample 1
    return logits, target


@pytest.mark.parametrize("name", MULTICLASS)
@pytest.mark.parametrize("ignore", [None, 255])
def test_every_loss_equals_its_pytorch_path(name, ignore, monkeypatch):
    logits, target = _loss_inputs(3)
    if ignore is not None:
        target[:, 5:7] = ignore
    kwargs = {} if ignore is None else {"ignore_index": ignore}
    try:
        build_loss(name, **kwargs)
    except (TypeError, ValueError):
        pytest.skip(f"{name} takes no ignore_index")

    def run():
        loss = build_loss(name, **kwargs)  # fresh: schedules (dice_hd) keep state between calls
        x = logits.clone().requires_grad_()
        value = loss(x, target)
        value.backward()
        return value.detach(), x.grad

    calls = []
    real = _native.SoftmaxLabelStats.apply
    monkeypatch.setattr(_native.SoftmaxLabelStats, "apply", lambda *a: calls.append(1) or real(*a))
    native_value, native_grad = run()
    assert calls, f"{name} did not take the compiled path"
    monkeypatch.setenv("SEGLOSSES_NATIVE", "0")
    ref_value, ref_grad = run()
    torch.testing.assert_close(native_value, ref_value, rtol=2e-5, atol=2e-6)
    torch.testing.assert_close(native_grad, ref_grad, rtol=1e-4, atol=2e-6)


# ------------------------------------------------------------------ one-vs-rest BCE (Combo) output


def _l1m_reference(z: torch.Tensor, lab: torch.Tensor, k0: int) -> torch.Tensor:
    """sum_{c >= k0, c != l} log(1 - p_c), exact in float64: log(1 - p_c) = lse_{k != c} z_k - lse_k z_k."""
    c = z.shape[1]
    lse = torch.logsumexp(z, 1, keepdim=True)
    eye = torch.eye(c, dtype=torch.bool).view((c, c) + (1,) * (z.ndim - 2))
    others = torch.stack([torch.logsumexp(z.masked_fill(eye[k].unsqueeze(0), float("-inf")), 1) for k in range(c)], 1)
    log1m = others - lse
    keep = torch.zeros_like(log1m, dtype=torch.bool)
    keep[:, k0:] = True
    keep &= F.one_hot(lab, c).movedim(-1, 1) == 0
    return (log1m * keep).sum(1)


@pytest.mark.parametrize("k0", [0, 1])
@pytest.mark.parametrize("scale", [2.0, 12.0])
def test_one_vs_rest_term_and_gradient(k0, scale):
    g = torch.Generator().manual_seed(5)
    z = torch.randn(2, 4, 300, generator=g) * scale  # scale 12: many confident wrong voxels (p > 1/2)
    lab = torch.randint(0, 4, (2, 300), generator=g)
    h = torch.randn(2, 300, generator=g)
    x = z.clone().requires_grad_()
    o = _native.softmax_label_stats(x, lab, None, want_nll=True, l1m_from=k0)
    (h * o.l1m).sum().backward()
    zd = z.double().requires_grad_()
    ref = _l1m_reference(zd, lab, k0)
    (h.double() * ref).sum().backward()
    torch.testing.assert_close(o.l1m.double(), ref.detach(), rtol=2e-5, atol=2e-4)
    torch.testing.assert_close(x.grad.double(), zd.grad, rtol=1e-4, atol=1e-5)


def test_one_vs_rest_term_is_finite_for_huge_logits():
    z = torch.tensor([[[1e4, -1e4, 0.0], [-1e4, 1e4, 0.0], [0.0, 0.0, 1e4]]], requires_grad=True)
    lab = torch.tensor([[1, 1, 0]])  # voxel 0 and 2: a confident wrong class
    o = _native.softmax_label_stats(z, lab, None, want_nll=True, l1m_from=0)
    o.l1m.sum().backward()
    assert torch.isfinite(o.l1m).all() and torch.isfinite(z.grad).all()
    assert float(o.l1m.detach()[0, 0]) == pytest.approx(-87.336, abs=1e-2)  # log(FLT_MIN): 1 - p clamped


def test_info_command_reports_the_kernels(capsys):
    from seglosses.cli import main

    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "torch" in out and "compiled kernels" in out
