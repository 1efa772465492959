"""The one reduction helper, and class selection shared by all losses."""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import Tensor

from ._checks import check_reduction
from ._contract import Prepared

__all__ = ["reduce_loss", "keep_classes", "class_weight_tensor"]

_TINY = 1e-12


def reduce_loss(values: Tensor, reduction: str, weights: Optional[Tensor] = None) -> Tensor:
    """Reduce loss elements.

    ``"mean"``: ``sum(w * v) / sum(w)`` (plain mean when ``weights`` is None). A zero total weight
    (every voxel ignored) gives 0 with zero gradient, never NaN. ``"sum"``: ``sum(w * v)``.
    ``"none"``: ``w * v`` (``v`` when ``weights`` is None), the unreduced elements.
    """
    check_reduction(reduction)
    if weights is not None:
        weights = weights.to(values.dtype)
        values = values * weights
    if reduction == "none":
        return values
    if reduction == "sum":
        return values.sum()
    if weights is None:
        return values.mean() if values.numel() else values.sum()
    total = torch.broadcast_to(weights, values.shape).sum()
    return values.sum() / total.clamp_min(_TINY)


def keep_classes(x: Tensor, prep: Prepared, include_background: bool) -> Tensor:
    """Drop channel 0 of ``(B, C, ...)`` statistics when ``include_background`` is False.

    Background exists only in multiclass mode; in binary and multilabel mode every channel is a
    foreground and ``include_background`` has no effect.
    """
    if include_background or prep.mode != "multiclass":
        return x
    return x[:, 1:]


def class_weight_tensor(
    class_weights: Union[None, Sequence[float], Tensor],
    num_classes: int,
    device: torch.device,
    name: str = "class_weights",
) -> Optional[Tensor]:
    """Validate per-class weights: a sequence or tensor of ``num_classes`` non-negative numbers."""
    if class_weights is None:
        return None
    w = torch.as_tensor(class_weights, dtype=torch.float32, device=device).flatten()
    if w.numel() != num_classes:
        raise ValueError(f"{name}: expected {num_classes} weights (one per channel), got {w.numel()}")
    if not torch.isfinite(w).all() or (w < 0).any():
        raise ValueError(f"{name}: expected finite non-negative weights, got {w.tolist()}")
    return w
