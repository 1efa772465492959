"""Region-based losses (Ma et al. 2021 sec. 2.2; Jadon 2020 sec. II-E..H, II-O).

All region losses are built on one primitive, :func:`seglosses._stats.soft_stats`: soft
``tp``, ``sum p`` and ``sum g`` per (sample, class), or per class over the whole batch when
``batch=True`` (nnU-Net's "batch Dice", Ma et al. sec. 4.3). A region loss is ``1 - score`` per
(sample, class), averaged over the kept classes and the samples (``class_weights``: a weighted
mean over classes). ``include_background=False`` drops channel 0 in multiclass mode (binary
and multilabel channels are all foreground). ``smooth`` is added to numerator and denominator.

``reduction="none"`` returns the per-(sample, class) loss ``(N, C_kept)``, or ``(1, C_kept)``
with ``batch=True``.

Absent classes: a class with no voxel in the target (of a sample, or of the batch with
``batch=True``) scores ``smooth / (sum p + smooth)``: loss 0 when nothing is predicted for it,
close to 1 as soon as anything is. This is MONAI's and smp's behaviour with a small ``smooth``.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import Tensor

from .._contract import Prepared, check_positive
from .._reduce import class_weight_tensor, keep_classes, reduce_loss
from .._stats import SoftStats, soft_stats
from ..registry import register_loss

__all__ = ["dice_loss", "reduce_region", "dice_score_from_stats"]

Weights = Union[None, Sequence[float], Tensor]


def reduce_region(
    loss: Tensor, prep: Prepared, *, include_background: bool, class_weights: Weights, reduction: str
) -> Tensor:
    """Drop background if asked, then reduce ``(B, C)`` per-(sample, class) losses.

    ``"mean"``: mean over samples of the (weighted) mean over kept classes.
    """
    loss = keep_classes(loss, prep, include_background)
    w = class_weight_tensor(class_weights, prep.num_classes, loss.device)
    if w is not None:
        w = keep_classes(w.unsqueeze(0), prep, include_background)
    return reduce_loss(loss, reduction, w)


def _check_smooth(smooth: float) -> None:
    check_positive("smooth", smooth, allow_zero=True)


@register_loss(
    "dice",
    category="region",
    paper="Milletari et al. 2016 (V-Net) arXiv:1606.04797; Ma et al. 2021 eq. 10",
    formula="1 - (2 tp + s) / (sum p + sum g + s)   [squared: sum p^2 + sum g^2]",
)
def dice_loss(
    prep: Prepared,
    *,
    smooth: float = 1e-5,
    batch: bool = False,
    squared: bool = False,
    include_background: bool = True,
    class_weights: Weights = None,
    reduction: str = "mean",
) -> Tensor:
    r"""Soft Dice loss.

    .. math:: L_{Dice} = 1 - \frac{2 \sum_i p_{ic} g_{ic} + s}{\sum_i p_{ic} + \sum_i g_{ic} + s}

    per (sample, class) -- or per class over the batch with ``batch=True`` -- averaged over
    kept classes and samples. ``squared=True`` uses :math:`\sum p^2 + \sum g^2` in the
    denominator (Milletari et al.'s V-Net form).

    References: Milletari et al. 2016, arXiv:1606.04797; Ma et al. 2021 eq. (10) and sec. 4.3
    (sample vs batch Dice, with and without squares), doi:10.1016/j.media.2021.102035.

    Defaults: ``smooth=1e-5`` (small, so the loss is the Dice of the soft prediction and an
    absent class predicted absent scores 1), ``batch=False`` (sample Dice, Ma et al.'s default),
    ``squared=False`` (best on average in Ma et al. Table 4), ``include_background=True``
    (MONAI's default; nnU-Net uses ``False`` with ``batch=True``).

    Conventions of other libraries: MONAI ``DiceLoss(smooth_nr=s, smooth_dr=s, batch=b,
    squared_pred=q)`` computes the same; segmentation_models_pytorch's ``DiceLoss`` pools the
    batch (``batch=True`` here) and drops classes absent from the batch.

    Empty ground truth: see the module docstring (loss 0 if nothing predicted, about 1 otherwise).

    Examples
    --------
    >>> import torch
    >>> from seglosses.functional import dice_loss
    >>> probs = torch.tensor([[[0.9, 0.1, 0.0, 0.0]]])       # binary, 4 voxels, from_logits=False
    >>> target = torch.tensor([[1, 0, 0, 0]])
    >>> round(float(dice_loss(probs, target, from_logits=False, smooth=0.0)), 4)  # 1 - 1.8/2
    0.1
    """
    _check_smooth(smooth)
    st = soft_stats(prep, batch=batch, squared=squared)
    return reduce_region(1.0 - dice_score_from_stats(st, smooth), prep, include_background=include_background, class_weights=class_weights, reduction=reduction)


def dice_score_from_stats(st: SoftStats, smooth: float) -> Tensor:
    """Per-(sample, class) soft Dice from statistics (shared by Dice-based losses)."""
    return (2.0 * st.tp + smooth) / (st.sum_p + st.sum_g + smooth).clamp_min(1e-12)
