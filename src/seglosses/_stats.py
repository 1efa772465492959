"""Soft confusion statistics: the one primitive behind every region loss.

For probabilities p (``Prepared.probs``) and target g, per (sample, class) or per class over the
batch (``batch=True``, the "batch Dice" of nnU-Net and Ma et al. sec. 4.3):

    tp = sum_i p_ic g_ic,   sum_p = sum_i p_ic (or p_ic^2),   sum_g = sum_i g_ic (or g_ic^2)
    fp = sum_p - tp,        fn = sum_g - tp

Sums run in float32 over the voxels that are not ignored. A label-map target is never expanded
to a float one-hot: ``tp`` gathers the probability of the true class at each voxel and
scatter-adds it into its class, and ``sum_g`` is a per-class voxel count. Memory stays at about
the size of the logits (measured in ``benchmarks/losses.py``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, NamedTuple, Optional

import torch
from torch import Tensor

from ._ddp import all_reduce_sum, require_process_group
from ._native import NativeStats, softmax_label_stats

if TYPE_CHECKING:  # the contract imports this module (Prepared.probs asks native_stats)
    from ._contract import Prepared

__all__ = [
    "SoftStats",
    "soft_stats",
    "batch_sum",
    "label_map_stats",
    "native_stats",
    "scatter_classes",
    "class_sum",
    "true_class",
    "neg_log_true_class",
]


def native_stats(prep: "Prepared", *, want_nll: bool = False, l1m_from: Optional[int] = None) -> Optional[NativeStats]:
    """The compiled kernels' one pass (:mod:`seglosses._native`): softmax and every label-map
    statistic, computed at most once per prepared input and shared by every term of a compound
    loss (:class:`~seglosses._contract.SharedPass`); ``None`` when the kernels do not apply (not
    multiclass logits with a label map, not float32/16 on the CPU, disabled) or when the
    probabilities were already computed another way.

    The per-voxel cross entropy is computed in the same pass when the first caller asks for it
    (``want_nll``) or a compound loss requested it (``prep.shared.want_nll``); so is the
    one-vs-rest ``sum log(1 - p)`` of the Combo loss when asked (``l1m_from``). Outputs that the
    first call did not ask for are ``None``: callers then use PyTorch.
    """
    shared = prep.shared
    if not shared.native_decided:
        res = None
        if prep.mode == "multiclass" and prep.from_logits and prep.labels is not None and not prep.has_probs:
            want = want_nll or shared.want_nll
            res = softmax_label_stats(prep.logits, prep.labels, prep.valid, want_nll=want, l1m_from=l1m_from)
        shared.native, shared.native_decided = res, True
    return shared.native


class SoftStats(NamedTuple):
    tp: Tensor
    sum_p: Tensor
    sum_g: Tensor

    @property
    def fp(self) -> Tensor:
        return (self.sum_p - self.tp).clamp_min(0)

    @property
    def fn(self) -> Tensor:
        return (self.sum_g - self.tp).clamp_min(0)


def true_class(prep: Prepared, x: Tensor) -> Tensor:
    """Value of ``x`` ``(N, C, *spatial)`` at each voxel's target class: ``(N, *spatial)``.

    Label maps gather; soft targets take ``sum_c x_c g_c`` (the expectation under g).
    """
    if prep.labels is not None:
        return x.gather(1, prep.labels.unsqueeze(1)).squeeze(1)
    return (x * prep.dense).sum(1)


def class_sum(prep: Prepared, values: Tensor, *, batch: bool = False) -> Tensor:
    """Sum of per-voxel ``values`` ``(N, *spatial)`` over the voxels of each class: ``(B, C)``.

    Label maps scatter-add into the voxel's class; dense targets weight by g (soft membership).
    Ignored voxels do not count. ``B`` is 1 when ``batch`` else N.
    """
    n, c = prep.batch_size, prep.num_classes
    v = values.to(torch.promote_types(values.dtype, prep.dtype)).reshape(n, -1)
    if prep.valid is not None:
        v = v * prep.valid.reshape(n, -1)
    if prep.labels is not None:
        out = scatter_classes(prep.labels.reshape(n, -1), v, c)
    else:
        out = torch.bmm(prep.dense.reshape(n, c, -1).to(v.dtype), v.unsqueeze(2)).squeeze(2)
    return out.sum(0, keepdim=True) if batch else out


def _masked_sum(x: Tensor, valid: Tensor | None) -> Tensor:
    """sum over voxels of x (N, C, S) times valid (N, S): (N, C), without an (N, C, S) temporary."""
    if valid is None:
        return x.sum(2)
    return torch.bmm(x, valid.to(x.dtype).unsqueeze(2)).squeeze(2)


def scatter_classes(lab: Tensor, values: Tensor, c: int) -> Tensor:
    """``out[n, k] = sum_{s: lab[n, s] = k} values[n, s]``: ``(N, S)`` -> ``(N, C)``.

    A scatter-add into a tiny output parallelises only over its rows, and two threads adding
    into rows that share a cache line slow each other down (measured 2.3 ms for N = 2 on two
    threads vs 0.9 ms on one). With few rows, the voxels are split into up to 64 blocks per
    sample, scattered into separate rows, then summed.
    """
    n, s = lab.shape
    k = math.gcd(s, 64) if n < 32 else 1
    out = torch.zeros(n * k, c, device=values.device, dtype=values.dtype)
    out.scatter_add_(1, lab.reshape(n * k, s // k), values.reshape(n * k, s // k))
    return out.view(n, k, c).sum(1) if k > 1 else out


class _LabelMapStats(torch.autograd.Function):
    """Soft statistics from probabilities ``p`` ``(N, C, S)`` and a label map, fused backward.

    Forward (no one-hot): ``tp_c = sum_{i in c} p_ic`` (gather the true-class probability,
    scatter-add it into its class), ``sum_p_c = sum_i p_ic`` (or ``p_ic^2``) and, when asked,
    ``t2_c = sum_{i in c} p_ic^2``. Ignored voxels (``valid`` = 0) do not count.

    Backward, for ``a = dL/dsum_p``, ``b = dL/dtp``, ``e = dL/dt2``::

        G_ic = dL/dp_ic = v_i (a_c [* 2 p_ic] + [l_i = c] (b_c + 2 p_ic e_c))

    built in one broadcast pass plus one scatter of N * S values (autograd would zero-fill a
    gather gradient, scatter into it and add the two paths). With ``z`` given (the logits of a
    softmax ``p``, the multiclass case), the backward goes on to the logits in the same pass,
    ``dL/dz_ic = p_ic (G_ic - sum_k p_ik G_ik)``, so PyTorch's softmax backward is not run either.
    Measured in ``benchmarks/losses.py``.

    With ``nll`` (fused case only) a fourth output is the per-voxel cross entropy
    ``-log p_{i, l_i}`` ``(N, S)``, so that a compound loss (``dice_ce``, ``dice_topk``, ``ell``,
    ...) backpropagates its Dice and CE terms through one node: for ``h = dL/dnll`` the label
    term of ``p_il G_il`` gains ``-h_i``, and the logits' gradient is still one pass.
    Unused outputs get no gradient (no zero-filled buffers).
    """

    @staticmethod
    def forward(ctx, z: Tensor | None, p: Tensor, lab: Tensor, valid: Tensor | None, squared: bool, true_sq: bool, nll: bool = False):
        ctx.set_materialize_grads(False)
        n, c = p.shape[:2]
        p_true = p.gather(1, lab.unsqueeze(1)).squeeze(1)
        p_true_v = p_true if valid is None else p_true * valid
        tp = scatter_classes(lab, p_true_v, c)
        sum_p = _masked_sum(p * p if squared else p, valid)
        t2 = scatter_classes(lab, p_true_v * p_true, c) if true_sq else torch.zeros_like(tp)
        ctx.squared, ctx.true_sq, ctx.fused = squared, true_sq, z is not None
        ctx.out_shape = z.shape if z is not None else p.shape
        ctx.save_for_backward(p, p_true, lab, valid)
        if nll and z is not None:
            out = _nll_from_true(z.detach().reshape(n, c, -1), p_true, lab)
        else:
            out = tp.new_zeros(())
        return tp, sum_p, t2, out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_tp: Tensor | None, g_sp: Tensor | None, g_t2: Tensor | None, g_nll: Tensor | None = None):
        p, p_true, lab, valid = ctx.saved_tensors
        n, c, s = p.shape
        if not ctx.fused or g_nll is None or g_nll.ndim == 0:
            g_nll = None
        hit = None  # coefficient of the true-class entry of each voxel
        if g_tp is not None:
            hit = g_tp.gather(1, lab)
        if ctx.true_sq and g_t2 is not None:
            if hit is None:
                hit = g_t2.gather(1, lab).mul_(p_true).mul_(2.0)
            else:
                hit = hit.addcmul_(g_t2.gather(1, lab), p_true, value=2.0)
        if hit is not None and valid is not None:
            hit = hit * valid
        a = None if g_sp is None else g_sp.unsqueeze(2)
        if not ctx.fused:  # gradient w.r.t. p
            if a is None:
                grad = p.new_zeros(p.shape)
            elif ctx.squared:
                grad = p * (2.0 * a)
                if valid is not None:
                    grad.mul_(valid.unsqueeze(1))
            elif valid is not None:
                grad = a * valid.unsqueeze(1)
            else:
                grad = a.expand(n, c, s).contiguous()
            if hit is not None:
                grad.scatter_add_(1, lab.unsqueeze(1), hit.unsqueeze(1))
            return None, grad.view(ctx.out_shape), None, None, None, None, None
        pg = None
        if a is not None:
            pg = p * (p * (2.0 * a)) if ctx.squared else p * a  # p_ic * (G_ic without the label term)
            if valid is not None:
                pg.mul_(valid.unsqueeze(1))
        b_hit = None if hit is None else hit.mul_(p_true)  # p_il * G_il (label term)
        if g_nll is not None:  # d(-log p_l)/dp_l = -1/p_l: p_l * G_l gains -h
            b_hit = g_nll.neg() if b_hit is None else b_hit.sub_(g_nll)
        if b_hit is None:
            b_hit = p_true.new_zeros(p_true.shape)
        if pg is None:
            grad = p * b_hit.neg().unsqueeze(1)
        else:
            dot = pg.sum(1).add_(b_hit)  # sum_k p_ik G_ik
            grad = pg.addcmul_(p, dot.unsqueeze(1), value=-1.0)
        grad.scatter_add_(1, lab.unsqueeze(1), b_hit.unsqueeze(1))
        return grad.view(ctx.out_shape), None, None, None, None, None, None


def _nll_from_true(z: Tensor, p_true: Tensor, lab: Tensor) -> Tensor:
    """``-log p_true`` ``(N, S)`` from the gathered softmax probability, exact
    ``logsumexp(z) - z_l`` where ``p_true < 1e-30`` (no underflow). ``z``: ``(N, C, S)`` logits."""
    nll = torch.log(p_true).neg_()
    tiny = p_true < 1e-30
    if bool(tiny.any()):
        where = tiny.nonzero(as_tuple=True)
        zz = z.movedim(1, -1)[where]  # (K, C)
        nll[where] = torch.logsumexp(zz, -1) - zz.gather(-1, lab[where].unsqueeze(-1)).squeeze(-1)
    return nll


class _SoftmaxNLL(torch.autograd.Function):
    """``-log p_{i, l_i}`` per voxel from the logits of a softmax and a label map.

    Forward: the values are computed outside (:func:`neg_log_true_class`). Backward straight to
    the logits, ``dL/dz_ic = g_i (p_ic - [l_i = c])``: one broadcast multiply and one scatter,
    instead of autograd's zero-filled gather gradient followed by PyTorch's log-softmax backward.
    """

    @staticmethod
    def forward(ctx, z: Tensor, nll: Tensor, p: Tensor, lab: Tensor):
        lab1 = lab.unsqueeze(1)
        ctx.save_for_backward(p, lab1)
        return nll

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g: Tensor):
        p, lab1 = ctx.saved_tensors
        g1 = g.unsqueeze(1)
        return (p * g1).scatter_add_(1, lab1, g1.neg()), None, None, None


def _fused_softmax(prep: Prepared, probs: Tensor | None) -> bool:
    """Whether the fused softmax backward applies: multiclass logits, label map, no override."""
    return (
        probs is None
        and prep.labels is not None
        and prep.mode == "multiclass"
        and prep.from_logits
        and prep.logits.requires_grad
        and torch.is_grad_enabled()
    )


def neg_log_true_class(prep: Prepared) -> Tensor:
    """``-log p`` of each voxel's target class ``(N, *spatial)`` (multiclass; CE per voxel).

    Label maps with logits: ``-log`` of the gathered softmax probability (the softmax is shared
    with the region terms of a compound loss, e.g. ``dice_ce`` computes one softmax), exact
    ``logsumexp(z) - z_l`` for the rare voxels whose probability is below 1e-30 (no underflow),
    and a fused backward (:class:`_SoftmaxNLL`). Soft targets give ``-sum_c g_c log p_c``.
    """
    nat = native_stats(prep, want_nll=True) if prep.labels is not None else None
    if nat is not None and nat.nll is not None:  # compiled kernels: log-sum-exp minus the true logit
        return nat.nll.view(prep.labels.shape)
    if not _fused_softmax(prep, None):
        return -true_class(prep, prep.log_probs)
    if prep.shared.nll is not None:  # made by the region statistics of the same call (one autograd node)
        nll, prep.shared.nll = prep.shared.nll, None
        return nll.view(prep.labels.shape)
    p = prep.probs.detach()
    lab = prep.labels
    n, c = prep.batch_size, prep.num_classes
    p_true = p.gather(1, lab.unsqueeze(1)).squeeze(1)
    z = prep.logits.detach().to(prep.dtype)
    nll = _nll_from_true(z.reshape(n, c, -1), p_true.reshape(n, -1), lab.reshape(n, -1)).view(lab.shape)
    return _SoftmaxNLL.apply(prep.logits.to(prep.dtype), nll, p, lab)


def label_map_stats(
    prep: Prepared, *, squared: bool = False, true_squared: bool = False, probs: Tensor | None = None
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``tp``, ``sum p`` (``sum p^2``), ``t2 = sum_{i in c} p_ic^2`` and ``sum g`` per (sample,
    class) ``(N, C)`` for a label-map target, without a one-hot (see :class:`_LabelMapStats`).

    ``t2`` is zeros unless ``true_squared``. Multiclass logits on the CPU take every statistic
    from the compiled kernels (:func:`native_stats`); elsewhere they use the fused softmax
    backward of :class:`_LabelMapStats`.
    """
    nat = native_stats(prep) if probs is None else None
    if nat is not None:  # compiled kernels: every statistic from the one shared pass
        t2 = nat.t2 if true_squared else torch.zeros_like(nat.tp)
        return nat.tp, (nat.sum_p2 if squared else nat.sum_p), t2, nat.count
    n, c = prep.batch_size, prep.num_classes
    p = (prep.probs if probs is None else probs).reshape(n, c, -1)
    lab = prep.labels.reshape(n, -1)
    valid = None if prep.valid is None else prep.valid.reshape(n, -1).to(p.dtype)
    if _fused_softmax(prep, probs):
        want_nll = prep.shared.want_nll and prep.shared.nll is None
        tp, sum_p, t2, nll = _LabelMapStats.apply(prep.logits.to(prep.dtype), p.detach(), lab, valid, squared, true_squared, want_nll)
        if want_nll:  # picked up by neg_log_true_class (the CE term of a compound loss)
            prep.shared.nll = nll
    else:
        tp, sum_p, t2, _ = _LabelMapStats.apply(None, p, lab, valid, squared, true_squared, False)
    ones = torch.ones((n, lab.shape[1]), device=p.device, dtype=p.dtype) if valid is None else valid
    sum_g = scatter_classes(lab, ones, c)  # g^2 == g
    return tp, sum_p, t2, sum_g


def batch_sum(tensors, *, batch: bool, ddp: bool = False) -> tuple:
    """Pool per-sample statistics ``(N, ...)`` over the batch: each becomes ``(1, ...)``.

    The one place where batch statistics are pooled. With ``ddp=True`` the pooled sums are also
    summed over the ranks of the default process group, with gradients
    (:func:`seglosses._ddp.all_reduce_sum`), so they are those of the global batch under
    DistributedDataParallel. ``batch=False`` returns the tensors unchanged (per-sample
    statistics need no communication), but ``ddp=True`` still requires a process group.
    """
    tensors = tuple(tensors)
    if not isinstance(ddp, bool):
        raise TypeError(f"ddp: expected True or False, got {ddp!r}")
    if ddp:
        require_process_group()
    if not batch:
        return tensors
    pooled = tuple(t.sum(0, keepdim=True) for t in tensors)
    return all_reduce_sum(pooled) if ddp else pooled


def soft_stats(
    prep: Prepared,
    *,
    batch: bool = False,
    squared: bool = False,
    probs: Tensor | None = None,
    soft_label: bool = False,
    ddp: bool = False,
) -> SoftStats:
    """Soft ``tp``, ``sum_p`` and ``sum_g`` per (sample, class) ``(N, C)``, or ``(1, C)`` with ``batch``.

    ``squared=True`` returns ``sum p^2`` and ``sum g^2`` in place of ``sum p`` and ``sum g``
    (Milletari's V-Net Dice). ``probs`` overrides ``prep.probs`` (e.g. a hard prediction).
    Label maps go through :func:`label_map_stats` (gather / scatter, fused backward).

    ``soft_label=True`` (dense targets; Wang & Blaschko 2023, arXiv:2303.16296) replaces
    ``tp = sum p g`` by ``(sum p + sum g - sum |p - g|) / 2``: equal to ``sum p g`` when g is 0/1
    (``|p - g| = p + g - 2 p g``), and such that ``fp = fn = 0`` exactly when ``p == g`` for a soft
    g, so the Dice, IoU and Tversky losses built on it are zero exactly there (their "semimetric"
    forms). A label map is hard: nothing changes. With ``squared`` the same identity in the
    2-norm gives ``sum p g`` back, so it changes nothing there either.

    ``ddp=True`` with ``batch=True``: summed over the DDP ranks too (:func:`batch_sum`).
    """
    n, c = prep.batch_size, prep.num_classes
    if prep.labels is not None:
        tp, sum_p, _, sum_g = label_map_stats(prep, squared=squared, probs=probs)
    else:
        p = (prep.probs if probs is None else probs).reshape(n, c, -1)
        valid = None if prep.valid is None else prep.valid.reshape(n, -1)
        g = prep.dense.reshape(n, c, -1)
        if valid is not None:
            g = g * valid.unsqueeze(1)
        sum_g = (g * g).sum(2) if squared else g.sum(2)
        sum_p = _masked_sum(p * p if squared else p, valid)
        if soft_label and not squared:
            l1 = _masked_sum((p - prep.dense.reshape(n, c, -1)).abs(), valid)
            tp = 0.5 * (sum_p + sum_g - l1)
        else:
            tp = (p * g).sum(2)
    return SoftStats(*batch_sum((tp, sum_p, sum_g), batch=batch, ddp=ddp))
