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

__all__ = ["SoftStats", "soft_stats", "class_sum", "true_class"]


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
    v = values.float().reshape(n, -1)
    if prep.valid is not None:
        v = v * prep.valid.reshape(n, -1)
    if prep.labels is not None:
        out = torch.zeros(n, c, device=v.device, dtype=v.dtype).scatter_add_(1, prep.labels.reshape(n, -1), v)
    else:
        out = torch.bmm(prep.dense.reshape(n, c, -1), v.unsqueeze(2)).squeeze(2)
    return out.sum(0, keepdim=True) if batch else out


def _masked_sum(x: Tensor, valid: Tensor | None) -> Tensor:
    """sum over voxels of x (N, C, S) times valid (N, S): (N, C), without an (N, C, S) temporary."""
    if valid is None:
        return x.sum(2)
    return torch.bmm(x, valid.unsqueeze(2)).squeeze(2)


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
        p_true = p.gather(1, lab.unsqueeze(1)).squeeze(1)
        ones = torch.ones_like(p_true) if valid is None else valid
        if valid is not None:
            p_true = p_true * valid
        zeros = torch.zeros(n, c, device=p.device, dtype=p.dtype)
        tp = zeros.scatter_add(1, lab, p_true)
        sum_g = zeros.scatter_add(1, lab, ones)  # g in {0, 1}: g^2 == g
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
