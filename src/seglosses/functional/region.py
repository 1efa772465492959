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

from .._checks import check_positive
from .._contract import Prepared
from .._reduce import class_weight_tensor, keep_classes, reduce_loss
from .._stats import SoftStats, label_map_stats, soft_stats
from ..registry import register_loss

__all__ = [
    "dice_loss",
    "iou_loss",
    "tversky_loss",
    "focal_tversky_loss",
    "asym_loss",
    "gdice_loss",
    "pgdice_loss",
    "ss_loss",
    "log_cosh_dice_loss",
    "reduce_region",
    "dice_score_from_stats",
    "tversky_index_from_stats",
    "gdice_score",
]

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


# ----------------------------------------------------------------------------- shared pieces

def _safe_pow(x: Tensor, exponent: float, eps: float = 1e-12) -> Tensor:
    """``x ** exponent`` for ``x >= 0`` with a finite gradient at 0 when ``exponent < 1``.

    For ``exponent < 1`` the slope of ``x^e`` is infinite at 0: below ``eps`` the base is clamped
    (zero gradient, value ``eps^e``). ``exponent >= 1`` is a plain power.
    """
    if exponent >= 1:
        return x.clamp_min(0).pow(exponent)
    return x.clamp_min(eps).pow(exponent)


def tversky_index_from_stats(st: SoftStats, alpha: float, beta: float, smooth: float) -> Tensor:
    """Per-(sample, class) Tversky index ``(tp + s) / (tp + alpha fp + beta fn + s)``."""
    return (st.tp + smooth) / (st.tp + alpha * st.fp + beta * st.fn + smooth).clamp_min(1e-12)


def _check_unit(name: str, value: float) -> None:
    check_positive(name, value, allow_zero=True)


# ----------------------------------------------------------------------------- IoU

@register_loss(
    "iou",
    category="region",
    paper="Rahman & Wang 2016 doi:10.1007/978-3-319-50835-1_22; Ma et al. 2021 eq. 10",
    formula="1 - (tp + s) / (sum p + sum g - tp + s)",
    class_name="IoULoss",
)
def iou_loss(
    prep: Prepared,
    *,
    smooth: float = 1e-5,
    batch: bool = False,
    include_background: bool = True,
    class_weights: Weights = None,
    reduction: str = "mean",
) -> Tensor:
    r"""Soft IoU (Jaccard) loss.

    .. math:: L_{IoU} = 1 - \frac{\sum_i p_{ic} g_{ic} + s}{\sum_i p_{ic} + \sum_i g_{ic} - \sum_i p_{ic} g_{ic} + s}

    per (sample, class) -- or per class over the batch with ``batch=True`` -- averaged over the
    kept classes and the samples (``class_weights``: weighted mean over classes).

    References: Rahman & Wang 2016, "Optimizing intersection-over-union in deep neural networks
    for image segmentation", ISVC, doi:10.1007/978-3-319-50835-1_22; Ma et al. 2021 eq. (10),
    doi:10.1016/j.media.2021.102035.

    Defaults: as :func:`dice_loss` (``smooth=1e-5``, sample-wise, background included).

    Conventions of other libraries: MONAI ``DiceLoss(jaccard=True)`` computes
    :math:`1 - (2tp + s)/(2(\sum p + \sum g - tp) + s)`; it equals this loss for ``smooth=0``
    and differs by O(s) otherwise. segmentation_models_pytorch's ``JaccardLoss`` pools the batch
    (``batch=True`` here) and drops classes absent from the batch.

    Empty ground truth: a class absent from the target scores ``s / (sum p + s)``: loss 0 when
    nothing is predicted for it, close to 1 as soon as anything is.

    Examples
    --------
    >>> import torch
    >>> from seglosses.functional import iou_loss
    >>> probs = torch.tensor([[[0.5, 0.5, 0.0, 0.0]]])          # binary, from_logits=False
    >>> target = torch.tensor([[1, 0, 0, 0]])
    >>> round(float(iou_loss(probs, target, from_logits=False, smooth=0.0)), 4)  # 1 - 0.5/1.5
    0.6667
    """
    _check_smooth(smooth)
    st = soft_stats(prep, batch=batch)
    score = (st.tp + smooth) / (st.sum_p + st.sum_g - st.tp + smooth).clamp_min(1e-12)
    return reduce_region(1.0 - score, prep, include_background=include_background, class_weights=class_weights, reduction=reduction)


# ----------------------------------------------------------------------------- Tversky family

@register_loss(
    "tversky",
    category="region",
    paper="Salehi et al. 2017 arXiv:1706.05721; Ma et al. 2021 eq. 14",
    formula="1 - (tp + s) / (tp + alpha fp + beta fn + s)",
)
def tversky_loss(
    prep: Prepared,
    *,
    alpha: float = 0.3,
    beta: float = 0.7,
    smooth: float = 1e-5,
    batch: bool = False,
    include_background: bool = True,
    class_weights: Weights = None,
    reduction: str = "mean",
) -> Tensor:
    r"""Tversky loss.

    .. math:: L_{T} = 1 - \frac{tp_c + s}{tp_c + \alpha\, fp_c + \beta\, fn_c + s},
              \quad fp_c = \sum_i p_{ic}(1 - g_{ic}),\ fn_c = \sum_i (1 - p_{ic}) g_{ic}

    per (sample, class) -- or per class over the batch with ``batch=True`` -- averaged over kept
    classes and samples. ``alpha`` weights the false positives, ``beta`` the false negatives
    (Ma et al. eq. 14); ``alpha = beta = 0.5`` is the Dice loss with ``smooth`` doubled
    (:math:`(tp + s)/(tp + fp/2 + fn/2 + s) = (2tp + 2s)/(2tp + fp + fn + 2s)`).

    References: Salehi, Erdogmus & Gholipour 2017, "Tversky loss function for image segmentation
    using 3D fully convolutional deep networks", MLMI, arXiv:1706.05721; Ma et al. 2021 eq. (14),
    doi:10.1016/j.media.2021.102035.

    Defaults: ``alpha=0.3``, ``beta=0.7`` (Salehi et al.'s best setting: penalise false negatives
    more, for small lesions), ``smooth=1e-5``.

    Conventions of other libraries: MONAI ``TverskyLoss(alpha=a, beta=b)`` uses the same roles
    (alpha on fp, beta on fn) but defaults to 0.5/0.5. Jadon 2020 (II-F) writes the index with a
    single ``beta`` weighting the false *positives*; some code bases (e.g. Abraham & Khan's focal
    Tversky code) put ``alpha`` on the false negatives -- swap the arguments to reproduce them.

    Empty ground truth: an absent class scores ``s / (alpha sum p + s)`` (loss 0 when nothing is
    predicted for it).

    Examples
    --------
    >>> import torch
    >>> from seglosses.functional import tversky_loss
    >>> probs = torch.tensor([[[0.5, 0.5, 0.0, 0.0]]])          # tp=0.5, fp=0.5, fn=0.5
    >>> target = torch.tensor([[1, 0, 0, 0]])
    >>> round(float(tversky_loss(probs, target, from_logits=False, smooth=0.0)), 4)  # 1 - 0.5/1.0
    0.5
    """
    _check_smooth(smooth)
    _check_unit("alpha", alpha)
    _check_unit("beta", beta)
    st = soft_stats(prep, batch=batch)
    score = tversky_index_from_stats(st, alpha, beta, smooth)
    return reduce_region(1.0 - score, prep, include_background=include_background, class_weights=class_weights, reduction=reduction)


@register_loss(
    "focal_tversky",
    category="region",
    paper="Abraham & Khan 2019 arXiv:1810.07842 (doi:10.1109/ISBI.2019.8759329); Ma et al. 2021 eq. 16",
    formula="mean_c (1 - TI_c)^(1/gamma), TI_c = (tp + s) / (tp + alpha fp + beta fn + s)",
)
def focal_tversky_loss(
    prep: Prepared,
    *,
    alpha: float = 0.3,
    beta: float = 0.7,
    gamma: float = 4.0 / 3.0,
    smooth: float = 1e-5,
    batch: bool = False,
    include_background: bool = True,
    class_weights: Weights = None,
    reduction: str = "mean",
) -> Tensor:
    r"""Focal Tversky loss.

    .. math:: L_{FT} = \mathrm{mean}_c\, (1 - TI_c)^{1/\gamma}

    with :math:`TI_c` the Tversky index of :func:`tversky_loss` (``alpha`` on false positives,
    ``beta`` on false negatives). The exponent is applied **per class (and sample) before
    averaging**, as in Abraham & Khan (their eq. 4 sums :math:`(1-TI_c)^{1/\gamma}` over classes);
    ``gamma=1`` is the Tversky loss. ``gamma > 1`` makes the exponent < 1, which raises the loss of
    well-segmented classes relative to poorly segmented ones and focuses training on the latter.

    Reference: Abraham & Khan 2019, "A novel focal Tversky loss function with improved attention
    U-Net for lesion segmentation", ISBI, arXiv:1810.07842; Ma et al. 2021 eq. (16).

    Defaults: ``gamma=4/3`` (Abraham & Khan's value), ``alpha=0.3``, ``beta=0.7`` (their 0.7 on
    false negatives, in this library's convention).

    Numerics: for ``1/gamma < 1`` the slope of :math:`x^{1/\gamma}` is infinite at 0, so the base is
    clamped at 1e-12 (value at least ``1e-12^(1/gamma)`` ~ 1e-9, zero gradient below the clamp).

    Empty ground truth: as :func:`tversky_loss`, then raised to ``1/gamma``.

    Examples
    --------
    >>> import torch
    >>> from seglosses.functional import focal_tversky_loss
    >>> probs = torch.tensor([[[0.5, 0.5, 0.0, 0.0]]])          # Tversky loss 0.5 (see tversky)
    >>> target = torch.tensor([[1, 0, 0, 0]])
    >>> round(float(focal_tversky_loss(probs, target, from_logits=False, smooth=0.0, gamma=2.0)), 4)
    0.7071
    """
    _check_smooth(smooth)
    _check_unit("alpha", alpha)
    _check_unit("beta", beta)
    check_positive("gamma", gamma)
    st = soft_stats(prep, batch=batch)
    loss = _safe_pow(1.0 - tversky_index_from_stats(st, alpha, beta, smooth), 1.0 / gamma)
    return reduce_region(loss, prep, include_background=include_background, class_weights=class_weights, reduction=reduction)


@register_loss(
    "asym",
    category="region",
    paper="Hashemi et al. 2019 doi:10.1109/ACCESS.2018.2886371; Ma et al. 2021 eq. 17",
    formula="1 - (tp + s) / (tp + fp/(1+beta^2) + beta^2 fn/(1+beta^2) + s)",
    class_name="AsymmetricSimilarityLoss",
)
def asym_loss(
    prep: Prepared,
    *,
    beta: float = 1.5,
    smooth: float = 1e-5,
    batch: bool = False,
    include_background: bool = True,
    class_weights: Weights = None,
    reduction: str = "mean",
) -> Tensor:
    r"""Asymmetric similarity loss (an F-beta score loss).

    .. math:: L_{Asym} = 1 - \frac{tp_c + s}{tp_c + \frac{1}{1+\beta^2} fp_c + \frac{\beta^2}{1+\beta^2} fn_c + s}

    i.e. :func:`tversky_loss` with ``alpha = 1/(1+beta^2)`` and ``beta_T = beta^2/(1+beta^2)``
    (weights summing to 1), the soft F-beta score. ``beta > 1`` weights false negatives more
    (recall), ``beta = 1`` is the Dice loss.

    Reference: Hashemi et al. 2019, "Asymmetric loss functions and deep densely-connected networks
    for highly-imbalanced medical image segmentation: application to multiple sclerosis lesion
    detection", IEEE Access 7, doi:10.1109/ACCESS.2018.2886371; Ma et al. 2021 eq. (17).

    Defaults: ``beta=1.5``, recommended by Hashemi et al.

    Empty ground truth: as :func:`tversky_loss`.

    Examples
    --------
    >>> import torch
    >>> from seglosses.functional import asym_loss
    >>> probs = torch.tensor([[[0.5, 0.5, 0.0, 0.0]]])          # tp=0.5, fp=0.5, fn=0.5
    >>> target = torch.tensor([[1, 0, 0, 0]])
    >>> round(float(asym_loss(probs, target, from_logits=False, smooth=0.0, beta=1.0)), 4)  # = Dice loss
    0.5
    """
    check_positive("beta", beta)
    b2 = beta * beta
    return tversky_loss.core(
        prep,
        alpha=1.0 / (1.0 + b2),
        beta=b2 / (1.0 + b2),
        smooth=smooth,
        batch=batch,
        include_background=include_background,
        class_weights=class_weights,
        reduction=reduction,
    )


# ----------------------------------------------------------------------------- generalized Dice

def gdice_score(prep: Prepared, *, smooth: float, batch: bool, include_background: bool) -> Tensor:
    r"""Generalized Dice score per sample ``(N,)`` (or ``(1,)`` with ``batch``).

    :math:`w_c = 1/(\sum_i g_{ic})^2`; a class whose weight is infinite (absent from the target of
    that sample, or of the batch with ``batch``) takes the largest finite weight of the row
    (MONAI's rule); a row where every class is absent gets weight 0 everywhere (score
    ``s / s = 1``). The weights are constants (they depend on the target only).
    """
    st = soft_stats(prep, batch=batch)
    tp = keep_classes(st.tp, prep, include_background)
    sp = keep_classes(st.sum_p, prep, include_background)
    sg = keep_classes(st.sum_g, prep, include_background).detach()
    w = 1.0 / (sg * sg)
    infinite = torch.isinf(w)
    w = torch.where(infinite, torch.zeros_like(w), w)
    w = torch.where(infinite, w.amax(1, keepdim=True), w)
    num = 2.0 * (w * tp).sum(1) + smooth
    den = (w * (sp + sg)).sum(1) + smooth
    return num / den.clamp_min(1e-30)


@register_loss(
    "gdice",
    category="region",
    paper="Sudre et al. 2017 arXiv:1707.03237 (doi:10.1007/978-3-319-67558-9_28); Ma et al. 2021 eq. 15",
    formula="1 - (2 sum_c w_c tp_c + s) / (sum_c w_c (sum p_c + sum g_c) + s), w_c = 1/(sum g_c)^2",
    class_name="GeneralizedDiceLoss",
    aliases=("GDiceLoss",),
)
def gdice_loss(
    prep: Prepared,
    *,
    smooth: float = 1e-5,
    batch: bool = False,
    include_background: bool = True,
    reduction: str = "mean",
) -> Tensor:
    r"""Generalized Dice loss.

    .. math:: L_{GD} = 1 - \frac{2 \sum_c w_c \sum_i p_{ic} g_{ic} + s}
                               {\sum_c w_c \sum_i (p_{ic} + g_{ic}) + s},
              \quad w_c = \frac{1}{(\sum_i g_{ic})^2}

    per sample (the class sums run inside the fraction), or once over the whole batch with
    ``batch=True``. ``reduction="none"`` returns the per-sample losses ``(N,)`` (``(1,)`` with
    ``batch=True``).

    Reference: Sudre et al. 2017, "Generalised Dice overlap as a deep learning loss function for
    highly unbalanced segmentations", DLMIA, arXiv:1707.03237; Ma et al. 2021 eq. (15).

    Defaults: ``smooth=1e-5`` and ``include_background=True`` (MONAI's defaults). Note that the
    weights are about ``1/n_voxels^2``, so ``smooth`` is not negligible against the weighted sums
    for large volumes -- MONAI computes exactly the same thing.

    Empty ground truth: a class absent from the target of a sample would get an infinite weight
    (``1/0``), which collapses the published formula to NaN. Here, as in MONAI's
    ``GeneralizedDiceLoss``, it takes the **largest finite weight of that sample** (of the batch
    with ``batch=True``), so predicting it is penalised like the rarest present class. A sample
    with no foreground at all (every weight infinite) gets weights 0: loss 0 and no gradient.
    Never inf or NaN.

    Conventions of other libraries: MONAI ``GeneralizedDiceLoss(w_type="square")`` is identical
    (``smooth_nr = smooth_dr = s``).

    Examples
    --------
    >>> import torch
    >>> from seglosses.functional import gdice_loss
    >>> probs = torch.tensor([[[0.5, 0.0], [0.5, 1.0]]])      # 2 classes, 2 voxels; labels (0, 1)
    >>> target = torch.tensor([[0, 1]])                       # w = (1, 1): 1 - 2*1.5/4
    >>> round(float(gdice_loss(probs, target, from_logits=False, smooth=0.0)), 4)
    0.25
    """
    _check_smooth(smooth)
    loss = 1.0 - gdice_score(prep, smooth=smooth, batch=batch, include_background=include_background)
    return reduce_loss(loss, reduction)


@register_loss(
    "pgdice",
    category="region",
    paper="Su et al. 2019 (MIDL, openreview.net/forum?id=H1lTh8unKN); Ma et al. 2021 eq. 18",
    formula="1 - GD / (1 + k (1 - GD)), GD = generalized Dice score",
    class_name="PenaltyGeneralizedDiceLoss",
    aliases=("PGDiceLoss",),
)
def pgdice_loss(
    prep: Prepared,
    *,
    k: float = 2.5,
    smooth: float = 1e-5,
    batch: bool = False,
    include_background: bool = True,
    reduction: str = "mean",
) -> Tensor:
    r"""Penalty generalized Dice loss.

    .. math:: L_{pGD} = 1 - \frac{GD}{1 + k (1 - GD)}

    with :math:`GD` the generalized Dice **score** of :func:`gdice_loss` (same weights, same
    absent-class rule), per sample or over the batch. This equals the generalized Dice with the
    weighted false positives and false negatives penalised by ``k`` in the denominator (Ma et al.
    eq. 18). ``k = 0`` is the generalized Dice loss. ``reduction="none"`` returns ``(N,)``
    (``(1,)`` with ``batch=True``).

    Known defect not reproduced: published code applied the penalty to the *negated* score
    (``-GD``, a loss), which changes the function; here it is applied to the score in [0, 1].

    Reference: Su, Jihoon & Young-Hak 2019, "Major vessel segmentation on X-ray coronary
    angiography using deep networks with a novel penalty loss function", MIDL;
    Ma et al. 2021 eq. (18), doi:10.1016/j.media.2021.102035.

    Defaults: ``k=2.5`` (best in Su et al.), ``smooth=1e-5``.

    Empty ground truth: as :func:`gdice_loss` (finite, MONAI's weight rule).

    Examples
    --------
    >>> import torch
    >>> from seglosses.functional import pgdice_loss
    >>> probs = torch.tensor([[[0.5, 0.0], [0.5, 1.0]]])      # GD = 0.75 (see gdice_loss)
    >>> target = torch.tensor([[0, 1]])
    >>> round(float(pgdice_loss(probs, target, from_logits=False, smooth=0.0, k=2.0)), 4)  # 1 - 0.75/1.5
    0.5
    """
    _check_smooth(smooth)
    check_positive("k", k, allow_zero=True)
    gd = gdice_score(prep, smooth=smooth, batch=batch, include_background=include_background)
    loss = 1.0 - gd / (1.0 + k * (1.0 - gd))
    return reduce_loss(loss, reduction)


# ----------------------------------------------------------------------------- sensitivity-specificity

def _ss_sums(prep: Prepared, batch: bool):
    """``(sum (g-p)^2 g, sum (g-p)^2 (1-g), sum g, sum (1-g))`` per (sample, class), no one-hot.

    Label map: over the voxels of class c, ``sum (1 - p)^2 = n_c - 2 tp_c + t2_c`` with
    ``t2_c = sum_{i in c} p_ic^2``; over the other voxels, ``sum p^2 = sum_i p_ic^2 - t2_c``
    (:func:`seglosses._stats.label_map_stats`, fused backward).
    """
    n, c = prep.batch_size, prep.num_classes
    if prep.labels is not None:
        tp, p2, t2, pos = label_map_stats(prep, squared=True, true_squared=True)
        pos_err = (pos - 2.0 * tp + t2).clamp_min(0)
        neg_err = (p2 - t2).clamp_min(0)
        neg = prep.n_valid(batch=False).to(pos.dtype).unsqueeze(1) - pos
    else:
        p = prep.probs.reshape(n, c, -1)
        valid = None if prep.valid is None else prep.valid.reshape(n, -1).to(p.dtype)
        g = prep.dense.reshape(n, c, -1).to(p.dtype)
        v = torch.ones_like(g[:, :1]) if valid is None else valid.unsqueeze(1)
        sq = (g - p).square() * v
        pos_err, neg_err = (sq * g).sum(2), (sq * (1.0 - g)).sum(2)
        pos, neg = (g * v).sum(2), ((1.0 - g) * v).sum(2)
    if batch:
        return tuple(x.sum(0, keepdim=True) for x in (pos_err, neg_err, pos, neg))
    return pos_err, neg_err, pos, neg


@register_loss(
    "ss",
    category="region",
    paper="Brosch et al. 2015 doi:10.1007/978-3-319-24574-4_1; Ma et al. 2021 eq. 7",
    formula="w sum (g-p)^2 g / (sum g + s) + (1-w) sum (g-p)^2 (1-g) / (sum (1-g) + s)",
    class_name="SensitivitySpecificityLoss",
    aliases=("SSLoss",),
)
def ss_loss(
    prep: Prepared,
    *,
    w: float = 0.05,
    smooth: float = 1e-5,
    batch: bool = False,
    include_background: bool = True,
    class_weights: Weights = None,
    reduction: str = "mean",
) -> Tensor:
    r"""Sensitivity-specificity loss.

    .. math:: L_{SS} = w\,\frac{\sum_i (g_{ic} - p_{ic})^2 g_{ic}}{\sum_i g_{ic} + s}
              + (1 - w)\,\frac{\sum_i (g_{ic} - p_{ic})^2 (1 - g_{ic})}{\sum_i (1 - g_{ic}) + s}

    per (sample, class) -- or per class over the batch with ``batch=True`` -- averaged over kept
    classes and samples. The first term is a soft (1 - sensitivity), the second a soft
    (1 - specificity), both as mean squared errors. For a label map the sums are gathered and
    scattered (no one-hot): the first is :math:`\sum_{i \in c} (1 - p_{ic})^2`, the second
    :math:`\sum_i p_{ic}^2 - \sum_{i \in c} p_{ic}^2`.

    Reference: Brosch et al. 2015, "Deep convolutional encoder networks for multiple sclerosis
    lesion segmentation", MICCAI, doi:10.1007/978-3-319-24574-4_1; Ma et al. 2021 eq. (7)
    (which sums the classes inside each fraction; the issue spec and this library use the
    per-class form, averaged).

    Defaults: ``w=0.05`` (Brosch et al.: weighting specificity higher -- the background term --
    suits small lesions), ``smooth=1e-5`` (denominators only).

    Empty ground truth: an absent class has a zero sensitivity term; its loss is
    ``(1-w) * mean p^2`` over the sample, 0 when nothing is predicted.

    Examples
    --------
    >>> import torch
    >>> from seglosses.functional import ss_loss
    >>> probs = torch.tensor([[[0.5, 0.5, 0.0, 0.0]]])   # sens. term 0.25/1, spec. term 0.25/3
    >>> target = torch.tensor([[1, 0, 0, 0]])
    >>> round(float(ss_loss(probs, target, from_logits=False, smooth=0.0, w=0.5)), 4)  # 0.125 + 0.125/3
    0.1667
    """
    _check_smooth(smooth)
    if not (isinstance(w, (int, float)) and 0.0 <= w <= 1.0):
        raise ValueError(f"w: expected a number in [0, 1], got {w!r}")
    pos_err, neg_err, pos, neg = _ss_sums(prep, batch)
    loss = w * pos_err / (pos + smooth).clamp_min(1e-12) + (1.0 - w) * neg_err / (neg + smooth).clamp_min(1e-12)
    return reduce_region(loss, prep, include_background=include_background, class_weights=class_weights, reduction=reduction)


# ----------------------------------------------------------------------------- log-cosh Dice

@register_loss(
    "log_cosh_dice",
    category="region",
    paper="Jadon 2020 II-O, arXiv:2006.14822 (doi:10.1109/CIBCB48159.2020.9277638)",
    formula="log(cosh(1 - (2 tp + s) / (sum p + sum g + s)))",
)
def log_cosh_dice_loss(
    prep: Prepared,
    *,
    smooth: float = 1e-5,
    batch: bool = False,
    squared: bool = False,
    include_background: bool = True,
    class_weights: Weights = None,
    reduction: str = "mean",
) -> Tensor:
    r"""Log-cosh Dice loss.

    .. math:: L_{lcDice} = \log\cosh(L_{Dice,c})

    applied to the Dice loss of each (sample, class) -- same options as :func:`dice_loss` --
    then averaged over kept classes and samples. Its gradient is ``tanh(L_Dice)`` times the Dice
    gradient: small for well-segmented classes, close to the Dice gradient for poor ones.

    Reference: Jadon 2020, "A survey of loss functions for semantic segmentation", CIBCB,
    sec. II-O, arXiv:2006.14822, doi:10.1109/CIBCB48159.2020.9277638.

    Convention: Jadon's reference code applies ``log(cosh(.))`` to the already averaged Dice loss;
    here it is applied per (sample, class) before averaging (like the exponent of focal
    Tversky), so that it reweights classes. Both agree for one sample and one class; to reproduce
    Jadon's code exactly, use ``torch.log(torch.cosh(dice_loss(...)))``.

    Defaults: those of :func:`dice_loss`.

    Empty ground truth: as :func:`dice_loss`, then transformed.

    Examples
    --------
    >>> import torch
    >>> from seglosses.functional import log_cosh_dice_loss
    >>> probs = torch.tensor([[[0.9, 0.1, 0.0, 0.0]]])       # Dice loss 0.1
    >>> target = torch.tensor([[1, 0, 0, 0]])
    >>> round(float(log_cosh_dice_loss(probs, target, from_logits=False, smooth=0.0)), 6)  # log cosh 0.1
    0.004992
    """
    _check_smooth(smooth)
    st = soft_stats(prep, batch=batch, squared=squared)
    x = 1.0 - dice_score_from_stats(st, smooth)
    loss = torch.log(torch.cosh(x))
    return reduce_region(loss, prep, include_background=include_background, class_weights=class_weights, reduction=reduction)
