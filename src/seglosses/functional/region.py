"""Region-based losses (Ma et al. 2021 sec. 2.2; Jadon 2020 sec. II-E..H, II-O).

All region losses are built on one primitive, :func:`seglosses._stats.soft_stats`: soft
``tp``, ``sum p`` and ``sum g`` per (sample, class), or per class over the whole batch when
``batch=True`` (nnU-Net's "batch Dice", Ma et al. sec. 4.3). A region loss is ``1 - score`` per
(sample, class), averaged over the kept classes and the samples (``class_weights``: a weighted
mean over classes). ``include_background=False`` drops channel 0 in multiclass and multilabel
mode (MONAI's convention; an error in binary mode, which has no background channel).
``smooth`` is added to numerator and denominator; ``smooth_nr`` / ``smooth_dr`` (MONAI's names)
set them separately.

``average="macro"`` (default) scores each class and averages the scores' losses; ``"micro"``
pools the kept classes' statistics (weighted by ``class_weights``) into one score per sample
(kornia's ``average="micro"``). ``soft_label=True`` uses the semimetric forms of Wang & Blaschko
2023 for soft targets (:func:`seglosses._stats.soft_stats`).

``reduction="none"`` returns the per-(sample, class) loss ``(N, C_kept)``, or ``(1, C_kept)``
with ``batch=True``; with ``average="micro"`` the per-sample loss ``(N,)`` (``(1,)`` with
``batch=True``).

``ddp=True`` (every loss here): with ``batch=True`` the batch statistics are summed over the
ranks of DistributedDataParallel's default process group, with gradients, so the loss is that
of the global batch (:mod:`seglosses._ddp`, ``docs/ddp.md``); it raises without a process group
and changes nothing with ``batch=False``.

Absent classes: a class with no voxel in the target (of a sample, or of the batch with
``batch=True``) scores ``smooth_nr / (sum p + smooth_dr)``: loss 0 when nothing is predicted for
it, close to 1 as soon as anything is. This is MONAI's and smp's behaviour with a small
``smooth``. A zero denominator (nothing predicted, nothing there, ``smooth_dr=0``) is a perfect
score, loss 0, with a finite (zero) gradient, in every overlap loss.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import Tensor

from .._checks import check_choice, check_positive
from .._contract import Prepared
from .._reduce import class_weight_tensor, keep_classes, reduce_loss
from .._stats import SoftStats, batch_sum, label_map_stats, soft_stats
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
    "region_stats",
    "overlap_ratio",
    "dice_score_from_stats",
    "tversky_index_from_stats",
    "gdice_score",
    "mcc_loss",
    "gwdl_loss",
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


Smooth = Union[float, tuple]


def _smooths(smooth: float, smooth_nr: Optional[float], smooth_dr: Optional[float]) -> tuple:
    """``(smooth_nr, smooth_dr)``: each defaults to ``smooth`` (MONAI's separate names)."""
    _check_smooth(smooth)
    nr = smooth if smooth_nr is None else smooth_nr
    dr = smooth if smooth_dr is None else smooth_dr
    check_positive("smooth_nr", nr, allow_zero=True)
    check_positive("smooth_dr", dr, allow_zero=True)
    return float(nr), float(dr)


def _nr_dr(smooth: Smooth) -> tuple:
    return (smooth, smooth) if not isinstance(smooth, tuple) else smooth


def overlap_ratio(num: Tensor, den: Tensor) -> Tensor:
    """``num / den`` with a zero denominator scoring 1: nothing predicted and nothing in the
    target (with ``smooth_dr = 0``) is a perfect score. Value and gradient stay finite."""
    tiny = torch.finfo(den.dtype).tiny
    return torch.where(den > 0, num / den.clamp_min(tiny), torch.ones_like(num))


def region_stats(
    prep: Prepared,
    *,
    batch: bool,
    include_background: bool,
    class_weights: Weights,
    average: str = "macro",
    squared: bool = False,
    soft_label: bool = False,
    ddp: bool = False,
) -> tuple:
    """Soft statistics of the kept classes, and the class weights for the final mean.

    ``average="macro"``: ``(SoftStats of (B, C_kept), weights (1, C_kept) or None)``.
    ``average="micro"``: the kept classes pooled (``sum_c w_c x_c``), ``(SoftStats of (B,), None)``.
    """
    check_choice("average", average, ("macro", "micro"))
    st = soft_stats(prep, batch=batch, squared=squared, soft_label=soft_label, ddp=ddp)
    st = SoftStats(*(keep_classes(t, prep, include_background) for t in st))
    w = class_weight_tensor(class_weights, prep.num_classes, st.tp.device)
    if w is not None:
        w = keep_classes(w.unsqueeze(0), prep, include_background).to(st.tp.dtype)
    if average == "micro":
        st = SoftStats(*((t if w is None else t * w).sum(1) for t in st))
        w = None
    return st, w


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
    smooth_nr: Optional[float] = None,
    smooth_dr: Optional[float] = None,
    batch: bool = False,
    ddp: bool = False,
    squared: bool = False,
    include_background: bool = True,
    class_weights: Weights = None,
    average: str = "macro",
    soft_label: bool = False,
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
    (MONAI's default; nnU-Net uses ``False`` with ``batch=True``). ``smooth_nr`` /
    ``smooth_dr`` (default: ``smooth``) set the numerator's and denominator's terms separately.
    ``average="micro"`` pools the kept classes into one Dice per sample (kornia's default);
    ``soft_label=True`` gives the semimetric Dice of Wang & Blaschko 2023 (arXiv:2303.16296):
    :math:`\sum p g` is replaced by :math:`(\sum p + \sum g - \sum |p - g|)/2`, the same on 0/1
    targets, and the loss is 0 exactly when ``p`` equals a soft target (MONAI ``soft_label``).
    ``include_background=False`` drops channel 0 in multiclass and multilabel mode (an error in
    binary mode).

    ``reduction="none"``: ``(N, C_kept)`` (``(1, C_kept)`` with ``batch``); ``(N,)`` with
    ``average="micro"``.

    Conventions of other libraries: MONAI ``DiceLoss(smooth_nr=a, smooth_dr=b, batch=b,
    squared_pred=q, soft_label=l)`` computes the same; segmentation_models_pytorch's ``DiceLoss``
    pools the batch (``batch=True``, ``smooth=0`` here) and drops classes absent from the batch;
    kornia's ``dice_loss`` is ``average="micro", smooth_nr=0, smooth_dr=eps``. See
    ``docs/coming_from_monai_smp_kornia.md``.

    Empty ground truth: see the module docstring (loss 0 if nothing predicted, about 1
    otherwise; with ``smooth_dr=0`` an empty class predicted empty is 0/0, scored as perfect).

    Examples
    --------
    >>> import torch
    >>> from seglosses.functional import dice_loss
    >>> probs = torch.tensor([[[0.9, 0.1, 0.0, 0.0]]])       # binary, 4 voxels, from_logits=False
    >>> target = torch.tensor([[1, 0, 0, 0]])
    >>> round(float(dice_loss(probs, target, from_logits=False, smooth=0.0)), 4)  # 1 - 1.8/2
    0.1
    """
    s = _smooths(smooth, smooth_nr, smooth_dr)
    st, w = region_stats(
        prep, batch=batch, squared=squared, soft_label=soft_label, include_background=include_background,
        class_weights=class_weights, average=average, ddp=ddp,
    )
    return reduce_loss(1.0 - dice_score_from_stats(st, s), reduction, w)


def dice_score_from_stats(st: SoftStats, smooth: Smooth) -> Tensor:
    """Per-(sample, class) soft Dice from statistics (shared by Dice-based losses).

    ``smooth``: one number, or ``(smooth_nr, smooth_dr)``. 0/0 scores 1 (:func:`overlap_ratio`).
    """
    nr, dr = _nr_dr(smooth)
    return overlap_ratio(2.0 * st.tp + nr, st.sum_p + st.sum_g + dr)


# ----------------------------------------------------------------------------- shared pieces

def _safe_pow(x: Tensor, exponent: float, eps: float = 1e-12) -> Tensor:
    """``x ** exponent`` for ``x >= 0`` with a finite gradient at 0 when ``exponent < 1``.

    For ``exponent < 1`` the slope of ``x^e`` is infinite at 0: below ``eps`` the base is clamped
    (zero gradient, value ``eps^e``). ``exponent >= 1`` is a plain power.
    """
    if exponent >= 1:
        return x.clamp_min(0).pow(exponent)
    return x.clamp_min(eps).pow(exponent)


def tversky_index_from_stats(st: SoftStats, alpha: float, beta: float, smooth: Smooth) -> Tensor:
    """Per-(sample, class) Tversky index ``(tp + s_nr) / (tp + alpha fp + beta fn + s_dr)``
    (``smooth``: one number or ``(smooth_nr, smooth_dr)``); 0/0 scores 1."""
    nr, dr = _nr_dr(smooth)
    return overlap_ratio(st.tp + nr, st.tp + alpha * st.fp + beta * st.fn + dr)


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
    smooth_nr: Optional[float] = None,
    smooth_dr: Optional[float] = None,
    batch: bool = False,
    ddp: bool = False,
    include_background: bool = True,
    class_weights: Weights = None,
    average: str = "macro",
    soft_label: bool = False,
    reduction: str = "mean",
) -> Tensor:
    r"""Soft IoU (Jaccard) loss.

    .. math:: L_{IoU} = 1 - \frac{\sum_i p_{ic} g_{ic} + s}{\sum_i p_{ic} + \sum_i g_{ic} - \sum_i p_{ic} g_{ic} + s}

    per (sample, class) -- or per class over the batch with ``batch=True`` -- averaged over the
    kept classes and the samples (``class_weights``: weighted mean over classes).

    References: Rahman & Wang 2016, "Optimizing intersection-over-union in deep neural networks
    for image segmentation", ISVC, doi:10.1007/978-3-319-50835-1_22; Ma et al. 2021 eq. (10),
    doi:10.1016/j.media.2021.102035.

    Defaults: as :func:`dice_loss` (``smooth=1e-5``, sample-wise, background included), and the
    same ``smooth_nr`` / ``smooth_dr``, ``average``, ``soft_label`` (Wang & Blaschko 2023's
    semimetric IoU) and ``include_background`` switches. ``reduction="none"``: ``(N, C_kept)``
    (``(1, C_kept)`` with ``batch``; ``(N,)`` with ``average="micro"``).

    Conventions of other libraries: MONAI ``DiceLoss(jaccard=True, smooth_nr=a, smooth_dr=b)``
    computes :math:`1 - (2tp + a)/(2(\sum p + \sum g - tp) + b)`, which is this loss with
    ``smooth_nr=a/2, smooth_dr=b/2``. segmentation_models_pytorch's ``JaccardLoss`` pools the batch
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
    nr, dr = _smooths(smooth, smooth_nr, smooth_dr)
    st, w = region_stats(
        prep, batch=batch, soft_label=soft_label, include_background=include_background,
        class_weights=class_weights, average=average, ddp=ddp,
    )
    score = overlap_ratio(st.tp + nr, st.sum_p + st.sum_g - st.tp + dr)
    return reduce_loss(1.0 - score, reduction, w)


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
    smooth_nr: Optional[float] = None,
    smooth_dr: Optional[float] = None,
    batch: bool = False,
    ddp: bool = False,
    include_background: bool = True,
    class_weights: Weights = None,
    average: str = "macro",
    soft_label: bool = False,
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
    more, for small lesions), ``smooth=1e-5``; ``smooth_nr`` / ``smooth_dr``, ``average``
    (``"micro"``: the kept classes' statistics pooled), ``soft_label`` (Wang & Blaschko
    2023: with :math:`tp = (\sum p + \sum g - \sum|p - g|)/2`, zero exactly when p equals a soft
    target) and ``include_background`` as :func:`dice_loss`. ``reduction="none"``:
    ``(N, C_kept)`` (``(1, C_kept)`` with ``batch``; ``(N,)`` with ``average="micro"``).

    ``average="micro"`` with a multiclass softmax and a label map (every class kept, no
    ``class_weights``): pooled over the classes, :math:`\sum_c fp_c = \sum_i (1 - p_{i,g_i}) =
    \sum_c fn_c`, so micro Tversky is :math:`tp / (tp + (\alpha + \beta) fp)`: it depends on
    ``alpha + beta`` only, and equals micro Dice whenever ``alpha + beta = 1`` (the defaults
    0.3 / 0.7 included) -- the fp / fn asymmetry is lost. Use the default ``"macro"`` for it.

    Conventions of other libraries: kornia's ``tversky_loss`` / ``TverskyLoss`` (0.9) is a macro
    average over the classes *present in each sample's target*; seglosses' ``"macro"`` equals it
    (``smooth_nr=0, smooth_dr=eps``) when every class is present in every sample (an absent class
    counts here, see below). MONAI ``TverskyLoss(alpha=a, beta=b)`` uses the same roles
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
    s = _smooths(smooth, smooth_nr, smooth_dr)
    _check_unit("alpha", alpha)
    _check_unit("beta", beta)
    st, w = region_stats(
        prep, batch=batch, soft_label=soft_label, include_background=include_background,
        class_weights=class_weights, average=average, ddp=ddp,
    )
    return reduce_loss(1.0 - tversky_index_from_stats(st, alpha, beta, s), reduction, w)


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
    smooth_nr: Optional[float] = None,
    smooth_dr: Optional[float] = None,
    batch: bool = False,
    ddp: bool = False,
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
    false negatives, in this library's convention); ``smooth_nr`` / ``smooth_dr`` default to
    ``smooth``. ``reduction="none"``: ``(N, C_kept)`` (``(1, C_kept)`` with ``batch``).

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
    s = _smooths(smooth, smooth_nr, smooth_dr)
    _check_unit("alpha", alpha)
    _check_unit("beta", beta)
    check_positive("gamma", gamma)
    st = soft_stats(prep, batch=batch, ddp=ddp)
    loss = _safe_pow(1.0 - tversky_index_from_stats(st, alpha, beta, s), 1.0 / gamma)
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
    smooth_nr: Optional[float] = None,
    smooth_dr: Optional[float] = None,
    batch: bool = False,
    ddp: bool = False,
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

    Defaults: ``beta=1.5``, recommended by Hashemi et al.; ``smooth_nr`` / ``smooth_dr`` default
    to ``smooth``. ``reduction="none"``: ``(N, C_kept)`` (``(1, C_kept)`` with ``batch``).

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
        smooth_nr=smooth_nr,
        smooth_dr=smooth_dr,
        batch=batch,
        ddp=ddp,
        include_background=include_background,
        class_weights=class_weights,
        reduction=reduction,
    )


# ----------------------------------------------------------------------------- generalized Dice

def gdice_score(
    prep: Prepared,
    *,
    smooth: Smooth,
    batch: bool,
    include_background: bool,
    soft_label: bool = False,
    ddp: bool = False,
) -> Tensor:
    r"""Generalized Dice score per sample ``(N,)`` (or ``(1,)`` with ``batch``).

    :math:`w_c = 1/(\sum_i g_{ic})^2`; a class whose weight is infinite (absent from the target of
    that sample, or of the batch with ``batch``) takes the largest finite weight of the row
    (MONAI's rule); a row where every class is absent gets weight 0 everywhere (score
    ``s / s = 1``, and 0/0 = 1 when ``smooth_dr = 0``). The weights are constants (they depend on the
    target only). ``smooth``: one number or ``(smooth_nr, smooth_dr)``.
    """
    nr, dr = _nr_dr(smooth)
    st = soft_stats(prep, batch=batch, soft_label=soft_label, ddp=ddp)
    tp = keep_classes(st.tp, prep, include_background)
    sp = keep_classes(st.sum_p, prep, include_background)
    sg = keep_classes(st.sum_g, prep, include_background).detach()
    w = 1.0 / (sg * sg)
    infinite = torch.isinf(w)
    w = torch.where(infinite, torch.zeros_like(w), w)
    w = torch.where(infinite, w.amax(1, keepdim=True), w)
    num = 2.0 * (w * tp).sum(1) + nr
    den = (w * (sp + sg)).sum(1) + dr
    return overlap_ratio(num, den)


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
    smooth_nr: Optional[float] = None,
    smooth_dr: Optional[float] = None,
    batch: bool = False,
    ddp: bool = False,
    include_background: bool = True,
    soft_label: bool = False,
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

    Conventions of other libraries: MONAI ``GeneralizedDiceLoss(w_type="square", smooth_nr=a,
    smooth_dr=b, soft_label=l)`` is identical (``smooth_nr``, ``smooth_dr`` default to ``smooth``;
    ``soft_label`` as in :func:`dice_loss`).

    Examples
    --------
    >>> import torch
    >>> from seglosses.functional import gdice_loss
    >>> probs = torch.tensor([[[0.5, 0.0], [0.5, 1.0]]])      # 2 classes, 2 voxels; labels (0, 1)
    >>> target = torch.tensor([[0, 1]])                       # w = (1, 1): 1 - 2*1.5/4
    >>> round(float(gdice_loss(probs, target, from_logits=False, smooth=0.0)), 4)
    0.25
    """
    s = _smooths(smooth, smooth_nr, smooth_dr)
    gd = gdice_score(prep, smooth=s, batch=batch, include_background=include_background, soft_label=soft_label, ddp=ddp)
    loss = 1.0 - gd
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
    smooth_nr: Optional[float] = None,
    smooth_dr: Optional[float] = None,
    batch: bool = False,
    ddp: bool = False,
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

    Defaults: ``k=2.5`` (best in Su et al.), ``smooth=1e-5`` (``smooth_nr`` / ``smooth_dr``
    default to it).

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
    s = _smooths(smooth, smooth_nr, smooth_dr)
    check_positive("k", k, allow_zero=True)
    gd = gdice_score(prep, smooth=s, batch=batch, include_background=include_background, ddp=ddp)
    loss = 1.0 - gd / (1.0 + k * (1.0 - gd))
    return reduce_loss(loss, reduction)


# ----------------------------------------------------------------------------- sensitivity-specificity

def _ss_sums(prep: Prepared, batch: bool, ddp: bool = False):
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
    return batch_sum((pos_err, neg_err, pos, neg), batch=batch, ddp=ddp)


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
    ddp: bool = False,
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

    ``reduction="none"``: ``(N, C_kept)`` (``(1, C_kept)`` with ``batch``).

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
    pos_err, neg_err, pos, neg = _ss_sums(prep, batch, ddp)
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
    smooth_nr: Optional[float] = None,
    smooth_dr: Optional[float] = None,
    batch: bool = False,
    ddp: bool = False,
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

    Defaults: those of :func:`dice_loss`. ``reduction="none"``: ``(N, C_kept)`` (``(1, C_kept)``
    with ``batch``).

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
    s = _smooths(smooth, smooth_nr, smooth_dr)
    st = soft_stats(prep, batch=batch, squared=squared, ddp=ddp)
    x = 1.0 - dice_score_from_stats(st, s)
    loss = torch.log(torch.cosh(x))
    return reduce_region(loss, prep, include_background=include_background, class_weights=class_weights, reduction=reduction)


# ----------------------------------------------------------------------------- Matthews correlation

@register_loss(
    "mcc",
    category="region",
    class_name="MCCLoss",
    paper="Abhishek & Hamarneh 2021 (ISBI) arXiv:2010.13454",
    formula="1 - (tp tn - fp fn) / sqrt((tp + fp)(tp + fn)(tn + fp)(tn + fn) + s)",
)
def mcc_loss(
    prep: Prepared,
    *,
    smooth: float = 1e-5,
    batch: bool = False,
    include_background: bool = True,
    class_weights: Weights = None,
    reduction: str = "mean",
    ddp: bool = False,
) -> Tensor:
    r"""Matthews correlation coefficient (MCC) loss.

    .. math:: L_{MCC} = 1 - \frac{tp\,tn - fp\,fn}{\sqrt{(tp + fp)(tp + fn)(tn + fp)(tn + fn) + s}}

    with the soft confusion counts of each (sample, class) -- one-vs-rest for multiclass --
    or of each class over the batch with ``batch=True``: ``tp = sum p g``, ``fp = sum p - tp``,
    ``fn = sum g - tp``, ``tn = n - tp - fp - fn`` over the voxels that are not ignored (from the
    soft-statistics primitive, no one-hot). Averaged over kept classes and samples
    (``reduction="none"``: ``(N, C_kept)``, ``(1, C_kept)`` with ``batch``). Unlike Dice,
    the MCC rewards true negatives, so it penalises false positives on a mostly empty image.
    The loss is in [0, 2]. A perfect prediction (``fp = fn = 0``) scores 0 exactly.

    Reference: Abhishek & Hamarneh, "Matthews Correlation Coefficient Loss for Deep Convolutional
    Networks: Application to Skin Lesion Segmentation", ISBI 2021, arXiv:2010.13454.

    Defaults: ``smooth=1e-5`` under the square root only (MONAI's ``smooth_dr``; its
    ``smooth_nr`` is 0); ``include_background=True`` (MONAI's default). ``ddp=True`` with
    ``batch=True``: the counts of the global DistributedDataParallel batch (:mod:`seglosses._ddp`).

    Conventions of other libraries: MONAI ``MCCLoss(smooth_nr=0, smooth_dr=s, batch=b)``
    computes the same (tested). Numerics: the product of the four sums grows as ``n^4`` (1e32 for
    a 512^3 volume, near float32's limit) and ``tp tn - fp fn`` cancels, so the last step, on
    ``(N, C)`` numbers only, runs in float64 and is cast back (the sums stay float32).

    Empty ground truth: the MCC is undefined (a zero row of the confusion matrix): the numerator
    is 0, so the loss of that (sample, class) is 1 with zero gradient, except for an exactly
    perfect prediction (0). Use ``batch=True`` or a companion term for images where a class may
    be absent.

    Examples
    --------
    >>> import torch
    >>> from seglosses.functional import mcc_loss
    >>> probs = torch.tensor([[[1.0, 1.0, 0.0, 0.0]]])      # tp = 1, fp = 1, fn = 0, tn = 2
    >>> target = torch.tensor([[1, 0, 0, 0]])
    >>> round(float(mcc_loss(probs, target, from_logits=False, smooth=0.0)), 4)  # 1 - 2/sqrt(12)
    0.4226
    """
    _check_smooth(smooth)
    st = soft_stats(prep, batch=False)
    n = prep.n_valid(batch=False).to(st.tp.dtype).unsqueeze(1)
    tp, sum_p, sum_g, n = batch_sum((st.tp, st.sum_p, st.sum_g, n), batch=batch, ddp=ddp)
    st = SoftStats(tp, sum_p, sum_g)
    out_dtype = st.tp.dtype
    tp, sp, sg, n = (x.to(torch.float64) for x in (st.tp, st.sum_p, st.sum_g, n))
    fp, fn = (sp - tp).clamp_min(0), (sg - tp).clamp_min(0)
    tn = (n - sp - sg + tp).clamp_min(0)
    # clamp before the square root: a finite gradient when the product is 0 (an empty class, smooth 0)
    mcc = (tp * tn - fp * fn) / torch.sqrt(((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn) + smooth).clamp_min(1e-60))
    loss = torch.where((fp == 0) & (fn == 0), torch.zeros_like(mcc), 1.0 - mcc).to(out_dtype)
    return reduce_region(loss, prep, include_background=include_background, class_weights=class_weights, reduction=reduction)


# ----------------------------------------------------------------------------- generalized Wasserstein Dice

def _gwdl_matrix(dist_matrix, c: int, like: Tensor) -> Tensor:
    """The class distance matrix ``(C, C)``: 0 on the diagonal and 1 elsewhere by default; a given
    one is validated and divided by its maximum (MONAI's and Fidon's normalisation)."""
    if dist_matrix is None:
        return 1.0 - torch.eye(c, dtype=like.dtype, device=like.device)
    m = torch.as_tensor(dist_matrix).to(device=like.device, dtype=like.dtype)
    if tuple(m.shape) != (c, c):
        raise ValueError(f"dist_matrix: expected a ({c}, {c}) matrix (one row per class), got shape {tuple(m.shape)}")
    if not torch.isfinite(m).all() or (m < 0).any() or float(m.max()) <= 0:
        raise ValueError(f"dist_matrix: expected finite non-negative distances with a positive maximum, got {m.tolist()}")
    if bool((torch.diagonal(m) != 0).any()):
        raise ValueError(f"dist_matrix: expected zeros on the diagonal (a class is at distance 0 of itself), got {torch.diagonal(m).tolist()}")
    return m / m.max()


@register_loss(
    "gwdl",
    category="region",
    class_name="GeneralizedWassersteinDiceLoss",
    paper="Fidon et al. 2017 (BrainLes) arXiv:1707.00478; GDL weighting: Tilborghs et al. 2020 arXiv:2007.15546",
    formula="1 - (2 TP + s) / (2 TP + sum_i W_i + s), TP = sum_i a_l(i) (1 - W_i), W_i = sum_c M[l(i), c] p_ic, a = (0, 1, ..., 1)",
    modes=("multiclass",),
)
def gwdl_loss(
    prep: Prepared,
    *,
    dist_matrix: Optional[Union[Sequence[Sequence[float]], Tensor]] = None,
    weighting_mode: str = "default",
    smooth: float = 1e-5,
    batch: bool = False,
    reduction: str = "mean",
    ddp: bool = False,
) -> Tensor:
    r"""Generalized Wasserstein Dice loss.

    .. math:: W_i = \sum_c M_{l_i c}\, p_{ic},\qquad
              TP = \sum_i \alpha_{l_i} (1 - W_i),\qquad
              L = 1 - \frac{2\,TP + s}{D + s}

    per sample (or once over the batch with ``batch=True``). :math:`W_i` is the Wasserstein
    distance between the predicted distribution at voxel i and the one-hot target for the class
    distance matrix :math:`M` (soft targets: :math:`W_i = \sum_{l,c} g_{il} M_{lc} p_{ic}`).

    * ``weighting_mode="default"`` (Fidon et al.): :math:`\alpha_0 = 0` (background),
      :math:`\alpha_c = 1` otherwise, and :math:`D = 2\,TP + \sum_i W_i`.
    * ``weighting_mode="GDL"`` (Tilborghs et al., appendix): :math:`\alpha_c = 1/(V_c + 1)` with
      :math:`V_c` the voxel count of class c, and :math:`D = \sum_i \alpha_{l_i} (2 - W_i)`.

    ``dist_matrix``: ``(C, C)`` class distances, zero on the diagonal; divided by its maximum as
    in MONAI and the authors' code. Default: 1 off the diagonal, for which :math:`W_i = 1 - p_{i l_i}`
    and the loss is a Dice of the foreground with the background excluded.

    Computed from statistics, never from a per-voxel map: the sum of :math:`W` over the voxels of
    label l is :math:`\sum_c M_{lc} J_{lc}` with the soft confusion matrix
    :math:`J_{lc} = \sum_{i: l_i = l} p_{ic}` (one :func:`~seglosses._stats.class_sum` per class);
    for the default matrix and softmax logits it is :math:`V_l - tp_l`, straight from the soft
    statistics of the Dice losses.

    Reference: Fidon et al., "Generalised Wasserstein Dice Score for Imbalanced Multi-class
    Segmentation using Holistic Convolutional Networks", BrainLes 2017, arXiv:1707.00478;
    Tilborghs et al. 2020, arXiv:2007.15546 (the ``"GDL"`` weighting).

    Conventions of other libraries: MONAI ``GeneralizedWassersteinDiceLoss(dist_matrix, weighting_mode,
    smooth_nr=s, smooth_dr=s)`` computes the same per sample (tested; before MONAI 1.6 its
    ``reduction`` mixed the samples of a batch). Multiclass only (the distance matrix is over
    the softmax classes); ``reduction="none"`` returns the per-sample losses ``(N,)`` (``(1,)``
    with ``batch=True``). The class weights are constants (no gradient). ``ddp=True`` with
    ``batch=True``: the statistics of the global DistributedDataParallel batch.

    Empty ground truth: with the default weighting, an image of background only has
    :math:`TP = 0`: the loss is 0 when the prediction is all background and close to 1 otherwise.

    Examples
    --------
    >>> import torch
    >>> from seglosses.functional import gwdl_loss
    >>> probs = torch.tensor([[[1.0, 0.5], [0.0, 0.5]]])      # 2 classes, 2 voxels
    >>> target = torch.tensor([[0, 1]])                       # W = (0, 0.5), TP = 0.5
    >>> round(float(gwdl_loss(probs, target, from_logits=False, smooth=0.0)), 4)  # 1 - 1/1.5
    0.3333
    """
    from .._checks import check_choice
    from .._stats import class_sum

    check_choice("weighting_mode", weighting_mode, ("default", "GDL"))
    _check_smooth(smooth)
    c = prep.num_classes
    if dist_matrix is None and prep.from_logits:
        # M = 1 - I and a softmax: W_i = 1 - p_{i, l_i}, so per label l the sum of W over its
        # voxels is V_l - tp_l: the soft statistics (fused kernels, no per-voxel map)
        st = soft_stats(prep, batch=batch, ddp=ddp)
        volume = st.sum_g
        w_sum = (volume - st.tp).clamp_min(0)
    else:
        # soft confusion J[l, c] = sum over the voxels of label l of p_c; sum of W over label l's
        # voxels = sum_c M[l, c] J[l, c]
        p = prep.probs
        m = _gwdl_matrix(dist_matrix, c, p)
        joint = torch.stack([class_sum(prep, p[:, k]) for k in range(c)], dim=2)
        volume = class_sum(prep, torch.ones_like(p[:, 0]))
        joint, volume = batch_sum((joint, volume), batch=batch, ddp=ddp)
        w_sum = (m.unsqueeze(0) * joint).sum(2)
    if weighting_mode == "default":
        alpha = torch.ones(c, dtype=w_sum.dtype, device=w_sum.device)
        alpha[0] = 0.0
        alpha = alpha.unsqueeze(0)
    else:
        alpha = 1.0 / (volume.detach() + 1.0)
    tp = (alpha * (volume - w_sum)).sum(1)  # sum_i alpha_{l_i} (1 - W_i)
    if weighting_mode == "default":
        den = 2.0 * tp + w_sum.sum(1)
    else:
        den = (alpha * (2.0 * volume - w_sum)).sum(1)  # sum_i alpha_{l_i} (2 - W_i)
    loss = 1.0 - (2.0 * tp + smooth) / (den + smooth).clamp_min(1e-12)
    return reduce_loss(loss, reduction)
