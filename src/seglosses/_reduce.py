"""The one reduction helper, and class selection shared by all losses."""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import Tensor

from ._checks import check_reduction
from ._contract import Prepared

__all__ = ["reduce_loss", "keep_classes", "background_dropped", "class_weight_tensor"]

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


def keep_classes(x: Tensor, prep: Prepared, include_background: Optional[bool]) -> Tensor:
    """Drop channel 0 of ``(B, C, ...)`` statistics when ``include_background`` is False.

    Multiclass and multilabel mode with C > 1: channel 0 is the background and ``False`` drops it
    (MONAI's ``include_background=False``, which drops channel 0 whatever the activation).
    Binary mode (one channel) has no background channel to drop: ``False`` raises.
    ``None`` (the default of the distance-based losses) means ``False`` where a background
    channel exists and ``True`` in binary mode.
    """
    if not background_dropped(prep, include_background):
        return x
    return x[:, 1:]


def background_dropped(prep: Prepared, include_background: Optional[bool]) -> bool:
    """Whether channel 0 is dropped (see :func:`keep_classes`); raises where it cannot be."""
    if include_background is None:
        return prep.num_classes > 1
    if include_background:
        return False
    if prep.num_classes == 1:
        raise ValueError(
            f"include_background: False drops channel 0, but the input has a single channel "
            f"({prep.mode} mode, logits of shape {tuple(prep.logits.shape)}); there is no background "
            f"channel to drop: use include_background=True"
        )
    return True


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
