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

from typing import NamedTuple

import torch
from torch import Tensor

from ._contract import Prepared

__all__ = ["SoftStats", "soft_stats", "class_sum", "true_class", "neg_log_true_class"]


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
        out = torch.zeros(n, c, device=v.device, dtype=v.dtype).scatter_add_(1, prep.labels.reshape(n, -1), v)
    else:
        out = torch.bmm(prep.dense.reshape(n, c, -1).to(v.dtype), v.unsqueeze(2)).squeeze(2)
    return out.sum(0, keepdim=True) if batch else out


def _masked_sum(x: Tensor, valid: Tensor | None) -> Tensor:
    """sum over voxels of x (N, C, S) times valid (N, S): (N, C), without an (N, C, S) temporary."""
    if valid is None:
        return x.sum(2)
    return torch.bmm(x, valid.to(x.dtype).unsqueeze(2)).squeeze(2)


class _LabelMapStats(torch.autograd.Function):
    """``tp`` and ``sum p`` (or ``sum p^2``) per (sample, class) from probabilities and a label map.

    Forward: gather the true-class probability, scatter-add it into its class; sum p per class.
    Backward, fused: ``dL/dp_ic = v_i (dL/dsum_p_c [* 2 p_ic] + [l_i = c] dL/dtp_c)`` is built in
    one broadcast pass plus one scatter of N * S values, instead of autograd's zero-filled
    gather gradient, a scatter and a separate accumulation of the two paths (about 30 % of the
    Dice loss's forward + backward time on CPU, measured in ``benchmarks/losses.py``).
    """

    @staticmethod
    def forward(ctx, p: Tensor, lab: Tensor, valid: Tensor | None, squared: bool):
        n, c = p.shape[:2]
        p_true = p.gather(1, lab.unsqueeze(1)).squeeze(1)
        if valid is not None:
            p_true = p_true * valid
        tp = torch.zeros(n, c, device=p.device, dtype=p.dtype).scatter_add_(1, lab, p_true)
        sum_p = _masked_sum(p * p if squared else p, valid)
        ctx.squared = squared
        ctx.shape = p.shape
        ctx.save_for_backward(p if squared else None, lab, valid)
        return tp, sum_p

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_tp: Tensor, g_sp: Tensor):
        p, lab, valid = ctx.saved_tensors
        n, c, s = ctx.shape
        g_sp = g_sp.unsqueeze(2)
        if ctx.squared:
            grad = p * (2.0 * g_sp)
            if valid is not None:
                grad.mul_(valid.unsqueeze(1))
        elif valid is not None:
            grad = g_sp * valid.unsqueeze(1)
        else:
            grad = g_sp.expand(n, c, s).contiguous()
        hit = g_tp.gather(1, lab)
        if valid is not None:
            hit = hit * valid
        grad.scatter_add_(1, lab.unsqueeze(1), hit.unsqueeze(1))
        return grad, None, None, None


class _SoftmaxLabelMapStats(torch.autograd.Function):
    """``tp`` and ``sum p`` (or ``sum p^2``) from the *logits* of a softmax and a label map.

    Same forward as :class:`_LabelMapStats`, on the softmax ``p`` already computed (and cached)
    by :class:`~seglosses._contract.Prepared`; the backward goes straight to the logits,
    ``dL/dz_ic = p_ic (G_ic - sum_k p_ik G_ik)`` with ``G_ic = v_i (a_c [* 2 p_ic] + [l_i = c] b_c)``
    (``a = dL/dsum_p``, ``b = dL/dtp``), so the (N, C, S) gradient w.r.t. p is never built and
    PyTorch's softmax backward is not run: three elementwise passes and one scatter of N * S
    values. Measured in ``benchmarks/losses.py`` (Dice: about 0.6x MONAI's time).
    """

    @staticmethod
    def forward(ctx, z: Tensor, p: Tensor, lab: Tensor, valid: Tensor | None, squared: bool):
        n, c = p.shape[:2]
        p_true = p.gather(1, lab.unsqueeze(1)).squeeze(1)
        p_true_v = p_true if valid is None else p_true * valid
        tp = torch.zeros(n, c, device=p.device, dtype=p.dtype).scatter_add_(1, lab, p_true_v)
        sum_p = _masked_sum(p * p if squared else p, valid)
        ctx.squared = squared
        ctx.z_shape = z.shape
        ctx.save_for_backward(p, p_true, lab, valid)
        return tp, sum_p

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_tp: Tensor, g_sp: Tensor):
        p, p_true, lab, valid = ctx.saved_tensors
        a = g_sp.unsqueeze(2)
        pg = p * (p * (2.0 * a)) if ctx.squared else p * a  # p_ic * (G_ic without the label term)
        b_hit = g_tp.gather(1, lab) * p_true  # p_il * b_l
        dot = pg.sum(1) + b_hit  # sum_k p_ik G_ik (before the valid factor)
        if valid is not None:
            dot = dot * valid
            b_hit = b_hit * valid
            pg.mul_(valid.unsqueeze(1))
        grad = pg.addcmul_(p, dot.unsqueeze(1), value=-1.0)
        grad.scatter_add_(1, lab.unsqueeze(1), b_hit.unsqueeze(1))
        return grad.view(ctx.z_shape), None, None, None, None


class _SoftmaxNLL(torch.autograd.Function):
    """``-log p_{i, l_i}`` per voxel from the logits of a softmax and a label map.

    Forward: gather of the (cached) log-softmax. Backward straight to the logits:
    ``dL/dz_ic = g_i (p_ic - [l_i = c])`` -- one broadcast multiply and one scatter, instead of
    autograd's zero-filled gather gradient followed by PyTorch's log-softmax backward.
    """

    @staticmethod
    def forward(ctx, z: Tensor, log_p: Tensor, p: Tensor | None, lab: Tensor):
        lab1 = lab.unsqueeze(1)
        ctx.save_for_backward(log_p if p is None else p, lab1)
        ctx.have_p = p is not None
        return log_p.gather(1, lab1).squeeze(1).neg()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g: Tensor):
        q, lab1 = ctx.saved_tensors
        g1 = g.unsqueeze(1)
        grad = q * g1 if ctx.have_p else torch.exp(q).mul_(g1)
        return grad.scatter_add_(1, lab1, g1.neg()), None, None, None


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

    Label maps with logits use a fused backward (:class:`_SoftmaxNLL`); soft targets give
    ``-sum_c g_c log p_c``.
    """
    if not _fused_softmax(prep, None):
        return -true_class(prep, prep.log_probs)
    lp = prep.log_probs.detach()
    p = prep._cache["probs"].detach() if "probs" in prep._cache else None
    return _SoftmaxNLL.apply(prep.logits.to(prep.dtype), lp, p, prep.labels)


def soft_stats(prep: Prepared, *, batch: bool = False, squared: bool = False, probs: Tensor | None = None) -> SoftStats:
    """Soft ``tp``, ``sum_p`` and ``sum_g`` per (sample, class) ``(N, C)``, or ``(1, C)`` with ``batch``.

    ``squared=True`` returns ``sum p^2`` and ``sum g^2`` in place of ``sum p`` and ``sum g``
    (Milletari's V-Net Dice). ``probs`` overrides ``prep.probs`` (e.g. a hard prediction).
    """
    n, c = prep.batch_size, prep.num_classes
    p = (prep.probs if probs is None else probs).reshape(n, c, -1)
    valid = None if prep.valid is None else prep.valid.reshape(n, -1)
    if prep.labels is not None:
        lab = prep.labels.reshape(n, -1)
        if valid is not None:
            valid = valid.to(p.dtype)
        if _fused_softmax(prep, probs):
            z = prep.logits.to(prep.dtype)
            tp, sum_p = _SoftmaxLabelMapStats.apply(z, p.detach(), lab, valid, squared)
        else:
            tp, sum_p = _LabelMapStats.apply(p, lab, valid, squared)
        ones = torch.ones((n, lab.shape[1]), device=p.device, dtype=p.dtype) if valid is None else valid
        sum_g = torch.zeros(n, c, device=p.device, dtype=p.dtype).scatter_add_(1, lab, ones)  # g^2 == g
    else:
        g = prep.dense.reshape(n, c, -1)
        if valid is not None:
            g = g * valid.unsqueeze(1)
        tp = (p * g).sum(2)
        sum_g = (g * g).sum(2) if squared else g.sum(2)
        sum_p = _masked_sum(p * p if squared else p, valid)
    if batch:
        tp, sum_p, sum_g = tp.sum(0, keepdim=True), sum_p.sum(0, keepdim=True), sum_g.sum(0, keepdim=True)
    return SoftStats(tp, sum_p, sum_g)
