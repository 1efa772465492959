"""Boundary- and distance-based losses (Ma et al. 2021 secs. 2.3, 2.6; Jadon 2020 II-I, II-M).

Every loss here weights a per-voxel term by a distance map. (The distance-map penalized cross
entropy ``dpce`` is a distribution loss, in :mod:`seglosses.functional.distribution`; it takes its
maps through the same helpers, :mod:`seglosses.functional._maps`.) Maps of the *target* can be
precomputed once per case (:class:`seglosses.transforms.PrecomputeDistanceMaps`) and passed as
``distance_map=`` (float ``(N, C, *spatial)``, one channel per logit channel, the kind named in
each docstring); when it is not given, the map is computed from the target on the fly, with the
same function, so both paths give the same value. Maps of the *prediction* are always computed
on the fly from the detached probabilities. Distance maps never carry a gradient.

Distances come from :mod:`seglosses.distance` (multi-threaded ``edt``, scipy fallback), in the
units of ``spacing`` (one value per spatial axis, default 1). Maps are computed on the CPU and
moved to the logits' device.

Target masks: a label map gives class c the mask ``label == c``; a float target the mask
``g > 0.5`` per channel. Ignored voxels (``ignore_index``) are excluded from every mean and count
as background (label 0) in the target masks and in the prediction masks, so their logits cannot
change the loss.

``reduction="none"`` returns the per-element loss: ``(N, C_kept, *spatial)`` for ``boundary``
and ``hausdorff`` (``(N, C_kept)`` for ``hausdorff`` / ``log_hausdorff`` with
``spatial_mean=True``); the shape of ``ce``'s elements for ``shape_aware``
(``(N, *spatial)`` multiclass, ``(N, C, *spatial)`` binary / multilabel). Ignored elements hold 0.

``include_background`` (``boundary``, ``hausdorff``): ``None`` (default) drops channel 0 when
there is more than one channel -- multiclass or multilabel, MONAI's ``include_background=False``
-- and keeps the single channel of binary mode; ``True`` keeps every channel; ``False`` drops
channel 0 and is an error in binary mode.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from .._checks import check_positive
from .._contract import Prepared
from .._reduce import reduce_loss
from ..distance import inner_boundary
from ..registry import register_loss
from ._maps import Spacing, _channels, _elem_weights, _given_map, _maps, _pred_masks, _target_masks, _target_values, _valid_channel
from .distribution import voxel_ce

__all__ = ["boundary_loss", "hausdorff_loss", "log_hausdorff_loss", "shape_aware_loss", "boundary_dou_loss", "face_boundary_count"]


# ----------------------------------------------------------------------------- losses

@register_loss(
    "boundary",
    category="boundary",
    paper="Kervadec et al. 2019/2021 doi:10.1016/j.media.2020.101851; Ma et al. 2021 eq. 20",
    formula="mean_{i, n, kept c} phi_c(i) p_c(i), phi = d_out (1 - g) - (d_in - 1) g",
    needs_distance_map=True,
    call_args=("distance_map",),
)
def boundary_loss(
    prep: Prepared,
    *,
    include_background: Optional[bool] = None,
    spacing: Spacing = None,
    reduction: str = "mean",
    distance_map: Optional[Tensor] = None,
) -> Tensor:
    r"""Boundary loss (Kervadec et al.).

    .. math:: L_{BD} = \frac{1}{|\Omega|\,N\,|C|} \sum_{n, c, i} \phi_{nc}(i)\, p_{nc}(i)

    over voxels, samples and kept classes, with :math:`\phi` the signed distance map of the
    target (:func:`seglosses.distance.signed_distance_map`, Kervadec's ``one_hot2dist``:
    :math:`\phi = d_{out}(1 - g) - (d_{in} - 1) g`, positive outside, 0 on the inner boundary,
    negative deeper inside). This is Kervadec's ``SurfaceLoss`` (``einsum`` then ``mean``) and
    Ma et al. eq. (20) divided by the number of elements. The loss is negative when the
    prediction covers the inside of the class: its minimum is not 0. Use it with a region loss
    (``dice_bd`` and :class:`seglosses.losses.schedules.BoundaryRebalancing`).

    ``distance_map``: the precomputed ``signed_distance_map`` ``(N, C, *spatial)``.

    Reference: Kervadec et al., "Boundary loss for highly unbalanced segmentation", MIDL 2019 and
    Medical Image Analysis 67 (2021) 101851, doi:10.1016/j.media.2020.101851; Ma et al. 2021
    eq. (20), doi:10.1016/j.media.2021.102035.

    Defaults: ``include_background=None``: channel 0 dropped when C > 1 (Kervadec supervises the
    foreground classes only; the background's map would mirror them), the single channel kept in
    binary mode (see the module docstring). ``reduction="none"``: ``(N, C_kept, *spatial)``.
    ``spacing=None`` (voxel units; the ``- 1`` stays in
    voxel units whatever the spacing, as in Kervadec's code).

    Empty ground truth: a class absent from a sample (or filling it) has an all-zero map and
    contributes 0 with zero gradient, as in Kervadec's code (another term -- the region loss --
    supervises it).

    Examples
    --------
    >>> import torch
    >>> from seglosses.functional import boundary_loss
    >>> target = torch.tensor([[0, 0, 1, 1, 1, 0]])         # phi = [2, 1, 0, -1, 0, 1]
    >>> perfect = target.float().unsqueeze(1)
    >>> round(float(boundary_loss(perfect, target, from_logits=False)), 4)   # -1 / 6
    -0.1667
    >>> grown = torch.tensor([[[0.0, 1, 1, 1, 1, 0]]])        # one voxel too many, at distance 1
    >>> round(float(boundary_loss(grown, target, from_logits=False)), 4)
    0.0
    """
    channels = _channels(prep, include_background)
    p = prep.probs[:, channels[0]:] if channels else prep.probs[:, :0]
    if distance_map is None:
        phi = _maps("signed", _target_masks(prep, channels), spacing, p)
    else:
        phi = _given_map(distance_map, prep, "signed distance", p)[:, channels[0]:]
    return reduce_loss(phi * p, reduction, _valid_channel(prep))


@register_loss(
    "hausdorff",
    category="boundary",
    paper="Karimi & Salcudean 2020 doi:10.1109/TMI.2019.2930068; Ma et al. 2021 eq. 21",
    formula="mean_{i, n, kept c} (p - g)^2 (d_G^alpha + d_S^alpha), S = {p > 0.5}",
    needs_distance_map=True,
    call_args=("distance_map",),
)
def hausdorff_loss(
    prep: Prepared,
    *,
    alpha: float = 2.0,
    include_background: Optional[bool] = None,
    spacing: Spacing = None,
    spatial_mean: bool = False,
    reduction: str = "mean",
    distance_map: Optional[Tensor] = None,
) -> Tensor:
    r"""Hausdorff distance loss, distance-transform variant (Karimi & Salcudean).

    .. math:: L_{HD} = \frac{1}{|\Omega|\,N\,|C|} \sum_{n, c, i} (p_{nc}(i) - g_{nc}(i))^2
              \left(d_{G}(i)^\alpha + d_{S}(i)^\alpha\right)

    over voxels, samples and kept classes. :math:`d_G` is the two-sided distance to the
    boundary of the target mask (:func:`seglosses.distance.unsigned_distance_map`:
    ``dt(g) + dt(1 - g)``), :math:`d_S` the same for the predicted mask :math:`S = \{p > 0.5\}`
    (computed on the fly from the detached probabilities, only for the kept channels). An empty
    or full mask contributes a zero field. g is the target as given (one-hot of a label map, or
    the float target: soft targets enter ``(p - g)^2`` unthresholded, as in MONAI).

    Equals MONAI's ``HausdorffDTLoss(alpha, softmax=True, to_onehot_y=True)`` (multiclass, label
    map) and ``HausdorffDTLoss(alpha, sigmoid=True)`` (binary, and multilabel with
    ``mode="multilabel"``) with MONAI's default ``include_background=False``, which drops channel
    0 whenever C > 1 -- sigmoid or softmax -- and is ignored with one channel; ``include_background``
    ``None`` (default) here does the same, and ``True`` is MONAI's ``include_background=True``
    (tested in ``tests/test_migration.py``). Differences: spacing-aware; ``ignore_index``; 1D inputs.

    ``spatial_mean=True`` averages over the voxels first, per (sample, kept class), so that
    ``reduction`` acts on ``(N, C_kept)`` values: MONAI's convention (its ``"none"`` returns one
    value per (sample, class), its ``"sum"`` sums them). ``"mean"`` is the same either way (without
    ignored voxels). ``reduction="none"``: ``(N, C_kept, *spatial)``, or ``(N, C_kept)`` with
    ``spatial_mean``.

    ``distance_map``: the precomputed ``unsigned_distance_map`` of the target ``(N, C, *spatial)``.

    Reference: Karimi & Salcudean, "Reducing the Hausdorff distance in medical image segmentation
    with convolutional neural networks", IEEE TMI 39(2):499-513, 2020,
    doi:10.1109/TMI.2019.2930068; Ma et al. 2021 eq. (21), doi:10.1016/j.media.2021.102035.

    Defaults: ``alpha=2`` (Karimi & Salcudean; Ma et al. eq. 21), ``include_background=None``
    (MONAI's default ``False``: channel 0 dropped when C > 1), ``spatial_mean=False`` (one mean
    over every element), ``spacing=None`` (voxel units).

    No gradient flows through the distance maps (they are computed under ``no_grad`` from
    detached tensors), so the loss works when its input requires grad -- the published code that
    calls numpy on the input crashes there -- and on any device (maps are computed on the CPU
    and moved). Empty ground truth: d_G = 0, so the loss penalises the prediction through d_S only.

    Examples
    --------
    >>> import torch
    >>> from seglosses.functional import hausdorff_loss
    >>> target = torch.tensor([[0, 0, 1, 1, 1, 0]])         # d_G = [2, 1, 1, 2, 1, 1]
    >>> pred = torch.tensor([[[0.0, 0, 1, 1, 1, 1]]])         # d_S = [2, 1, 1, 2, 3, 4]
    >>> round(float(hausdorff_loss(pred, target, from_logits=False)), 4)   # (1^2 + 4^2) / 6
    2.8333
    """
    check_positive("alpha", alpha)
    channels = _channels(prep, include_background)
    p = prep.probs[:, channels[0]:] if channels else prep.probs[:, :0]
    with torch.no_grad():
        if distance_map is None:
            d_g = _maps("unsigned", _target_masks(prep, channels), spacing, p)
        else:
            d_g = _given_map(distance_map, prep, "unsigned distance", p)[:, channels[0]:]
        d_s = _maps("unsigned", _pred_masks(prep, channels), spacing, p)
        dist = d_g.pow(alpha) + d_s.pow(alpha)
    g = _target_values(prep, channels, p.dtype)
    elem = (p - g).square() * dist
    valid = _valid_channel(prep)
    if spatial_mean:  # per (sample, class) mean over the counted voxels, then the reduction
        v = torch.ones_like(elem[:, :1]) if valid is None else valid.to(elem.dtype)
        v = v.expand_as(elem).flatten(2)
        elem = (elem.flatten(2) * v).sum(2) / v.sum(2).clamp_min(1.0)
        valid = None
    return reduce_loss(elem, reduction, valid)


@register_loss(
    "log_hausdorff",
    category="boundary",
    paper="Karimi & Salcudean 2020 doi:10.1109/TMI.2019.2930068; MONAI LogHausdorffDTLoss",
    formula="log(1 + L_HD), after the reduction",
    needs_distance_map=True,
    call_args=("distance_map",),
)
def log_hausdorff_loss(
    prep: Prepared,
    *,
    alpha: float = 2.0,
    include_background: Optional[bool] = None,
    spacing: Spacing = None,
    spatial_mean: bool = False,
    reduction: str = "mean",
    distance_map: Optional[Tensor] = None,
) -> Tensor:
    r"""Log Hausdorff distance loss: :math:`\log(1 + L_{HD})`.

    :math:`L_{HD}` is :func:`hausdorff_loss` with the same arguments, reduced first (MONAI's
    ``LogHausdorffDTLoss``, which applies ``log(1 + x)`` to the reduced value; with
    ``reduction="none"`` it is applied per element, ``(N, C_kept, *spatial)``, or per (sample,
    class) with ``spatial_mean=True``, ``(N, C_kept)``). The logarithm compresses the large
    values the squared distances give early in training.

    Reference: Karimi & Salcudean, IEEE TMI 39(2):499-513, 2020, doi:10.1109/TMI.2019.2930068
    (the loss); MONAI ``LogHausdorffDTLoss`` (the log form).

    Defaults: those of :func:`hausdorff_loss`. Empty ground truth: as :func:`hausdorff_loss`
    (finite; ``log(1 + 0) = 0`` for a perfect prediction).

    Examples
    --------
    >>> import torch
    >>> from seglosses.functional import log_hausdorff_loss
    >>> target = torch.tensor([[0, 0, 1, 1, 1, 0]])          # hausdorff_loss 17/6 (see there)
    >>> pred = torch.tensor([[[0.0, 0, 1, 1, 1, 1]]])
    >>> round(float(log_hausdorff_loss(pred, target, from_logits=False)), 4)   # log(1 + 17/6)
    1.3437
    """
    return torch.log1p(
        hausdorff_loss.core(
            prep, alpha=alpha, include_background=include_background, spacing=spacing,
            spatial_mean=spatial_mean, reduction=reduction, distance_map=distance_map,
        )
    )


@register_loss(
    "shape_aware",
    category="boundary",
    paper="Hayder et al. 2017 arXiv:1612.03129; Jadon 2020 II-I",
    formula="mean_i (1 + E_i) CE_i, E_i = distance from predicted-boundary voxel i to the GT boundary",
    needs_distance_map=True,
    call_args=("distance_map",),
)
def shape_aware_loss(
    prep: Prepared, *, spacing: Spacing = None, reduction: str = "mean", distance_map: Optional[Tensor] = None
) -> Tensor:
    r"""Shape-aware loss: cross entropy weighted by the distance of the predicted boundary to the
    ground-truth boundary.

    .. math:: L = \frac{1}{|\Omega|} \sum_i (1 + E_i)\, \mathrm{CE}_i

    (Jadon's :math:`-\sum_i CE - \sum_i E_i CE`, as a mean like ``ce``). How E is computed:

    1. hard prediction: ``argmax_c p`` (multiclass; ignored voxels count as class 0) or
       ``p > 0.5`` per channel (binary / multilabel), from the detached probabilities;
    2. predicted boundary of each class: its inner boundary
       (:func:`seglosses.distance.inner_boundary`: voxels with a neighbour among the 3^d - 1
       around them outside the class; the image border is not a boundary);
    3. :math:`E_{c}(i)` = distance from voxel i to the nearest ground-truth boundary voxel of
       class c (:func:`seglosses.distance.boundary_distance_map`, spacing-aware) if i is on the
       predicted boundary of class c, else 0. Multiclass: :math:`E_i = E_{c}(i)` for the class c
       whose predicted region contains i (predicted regions do not overlap); the weight
       multiplies the voxel's CE. Binary / multilabel: :math:`E_c` weights channel c's BCE.

    E is a weight (no gradient); it is 0 where the predicted boundary lies on the ground-truth
    boundary, so a perfect prediction gives plain CE. E is not normalised: it is a distance in
    the units of ``spacing``.

    ``distance_map``: the precomputed ``boundary_distance_map`` of the target ``(N, C, *spatial)``.
    ``reduction="none"``: the weighted per-voxel elements, ``(N, *spatial)`` multiclass,
    ``(N, C, *spatial)`` binary / multilabel (ignored voxels hold 0).

    Reference: Hayder, He & Salzmann, "Boundary-aware instance segmentation" (shape-aware loss),
    CVPR 2017, arXiv:1612.03129; Jadon 2020 sec. II-I, doi:10.1109/CIBCB48159.2020.9277638.

    Defaults: ``spacing=None`` (voxel units). Empty ground truth: a class without a ground-truth
    boundary (absent or filling the sample) has E = 0, so its voxels get plain CE; so does an
    empty prediction (no predicted boundary).

    Examples
    --------
    >>> import torch
    >>> from seglosses.functional import shape_aware_loss
    >>> target = torch.tensor([[0, 0, 1, 1, 1, 1, 0]])        # GT boundary at voxels 2 and 5
    >>> probs = torch.tensor([[[0.9, 0.9, 0.9, 0.9, 0.1, 0.1, 0.1]]])  # predicted boundary: voxel 3
    >>> round(float(shape_aware_loss(probs, target, from_logits=False)), 4)  # voxel 3's BCE counts twice
    1.376
    """
    elem = voxel_ce(prep)
    all_channels = list(range(prep.num_classes))
    with torch.no_grad():
        if distance_map is None:
            dist = _maps("boundary_distance", _target_masks(prep, all_channels), spacing, elem)
        else:
            dist = _given_map(distance_map, prep, "boundary distance", elem)
        p = prep.probs.detach()
        if prep.mode == "multiclass":
            hard = p.argmax(1)
            if prep.valid is not None:
                hard = torch.where(prep.valid > 0, hard, torch.zeros_like(hard))
            idx = torch.arange(prep.num_classes, device=hard.device).view((1, -1) + (1,) * len(prep.spatial_shape))
            pred = hard.unsqueeze(1) == idx
        else:
            pred = _pred_masks(prep, all_channels)
        e = dist * inner_boundary(pred).to(dist.dtype)
        if prep.mode == "multiclass":
            e = e.sum(1)
    return reduce_loss((1.0 + e) * elem, reduction, _elem_weights(prep, elem))


# ----------------------------------------------------------------------------- Boundary DoU

def face_boundary_count(masks: Tensor) -> Tensor:
    """Number of boundary voxels of bool masks ``(N, K, *spatial)`` per ``(N, K)``: voxels of the
    mask with a face neighbour (2d of them) outside it, the outside of the image counting as
    outside (Sun et al.'s cross-kernel convolution with zero padding)."""
    nd = masks.ndim - 2
    pool = {1: torch.nn.functional.max_pool1d, 2: torch.nn.functional.max_pool2d, 3: torch.nn.functional.max_pool3d}[nd]
    outside = torch.nn.functional.pad((~masks).to(torch.float32), (1, 1) * nd, value=1.0)
    near = None
    for axis in range(nd):
        kernel = [1] * nd
        kernel[axis] = 3
        m = pool(outside, kernel_size=kernel, stride=1)
        sl = [slice(None), slice(None)] + [slice(1, -1) if a != axis else slice(None) for a in range(nd)]
        m = m[tuple(sl)]
        near = m if near is None else torch.maximum(near, m)
    return (masks & (near > 0)).flatten(2).sum(2)


@register_loss(
    "boundary_dou",
    category="boundary",
    class_name="BoundaryDoULoss",
    paper="Sun et al. 2023 (MICCAI) arXiv:2308.00220",
    formula="sum (p - g)^2 / (sum p^2 + sum g^2 - (1 + alpha) sum p g + s), alpha = min(1 - 2 C/S, 0.8)",
)
def boundary_dou_loss(
    prep: Prepared,
    *,
    alpha_max: float = 0.8,
    smooth: float = 1e-5,
    batch: bool = False,
    include_background: bool = True,
    reduction: str = "mean",
    ddp: bool = False,
) -> Tensor:
    r"""Boundary difference over union (Boundary DoU) loss.

    .. math:: L_{BDoU} = \frac{G \cup P - G \cap P}{G \cup P - \alpha\, G \cap P}
              = \frac{\sum_i (p_i - g_i)^2}{\sum_i p_i^2 + \sum_i g_i^2 - (1 + \alpha) \sum_i p_i g_i + s},
              \qquad \alpha = \min\Big(1 - \frac{2C}{S},\ \alpha_{max}\Big)

    per (sample, class) -- or per class over the batch with ``batch=True`` (``ddp=True``: of the
    global DistributedDataParallel batch) -- averaged over the kept classes and samples
    (``reduction="none"``: ``(N, C_kept)``, ``(1, C_kept)`` with ``batch``). In the soft form
    (the authors' code) union and intersection are
    :math:`\sum p^2 + \sum g^2 - \sum pg` and :math:`\sum pg`. :math:`S` is the number of voxels of
    the target class and :math:`C` the number of its boundary voxels (voxels with a face neighbour
    outside the class, the image border included; :func:`face_boundary_count`). A large object
    (``C << S``) has :math:`\alpha` near 1 and the loss concentrates on the boundary; a thin one has
    a small (even negative) :math:`\alpha` and the loss approaches ``1 - IoU``. :math:`\alpha` is a
    constant of the target (no gradient).

    Reference: Sun, Chen, Zhou et al., "Boundary Difference Over Union Loss For Medical Image
    Segmentation", MICCAI 2023, arXiv:2308.00220.

    Defaults: ``alpha_max=0.8`` (the authors' code truncates :math:`\alpha` at 0.8, "better on some
    datasets"; ``alpha_max=1`` is the paper's formula), ``smooth=1e-5``, ``batch=False`` (the
    authors' code pools the batch: ``batch=True``).

    Difference from the authors' code: it adds ``smooth`` to the numerator too, so that a class
    absent from the target scores 1 whatever the prediction, with zero gradient. Here the
    numerator is the plain squared error.

    Empty ground truth: :math:`S = 0`, :math:`\alpha = \alpha_{max}` is irrelevant
    (:math:`\sum pg = 0`): the loss is :math:`\sum p^2 / (\sum p^2 + s)`, 0 when nothing is
    predicted for the class, close to 1 otherwise.

    Examples
    --------
    >>> import torch
    >>> from seglosses.functional import boundary_dou_loss
    >>> target = torch.tensor([[0, 1, 1, 1, 1, 1, 1, 0]])     # S = 6, C = 2: alpha = 1 - 4/6
    >>> probs = torch.tensor([[[0.0, 1, 1, 1, 1, 1, 0, 0]]])   # one voxel missed
    >>> round(float(boundary_dou_loss(probs, target, from_logits=False, smooth=0.0)), 4)  # 1 / (11 - (4/3) 5)
    0.2308
    """
    check_positive("alpha_max", alpha_max)
    check_positive("smooth", smooth, allow_zero=True)
    from .._reduce import keep_classes
    from .._stats import SoftStats, batch_sum, soft_stats

    st = soft_stats(prep, squared=True)
    with torch.no_grad():
        masks = _target_masks(prep, list(range(prep.num_classes)))
        if prep.valid is not None:
            masks = masks & (prep.valid.unsqueeze(1) > 0)
        big_c = face_boundary_count(masks).to(st.tp.dtype)
        big_s = masks.flatten(2).sum(2).to(st.tp.dtype)
    tp, sum_p, sum_g, big_c, big_s = batch_sum((st.tp, st.sum_p, st.sum_g, big_c, big_s), batch=batch, ddp=ddp)
    st = SoftStats(tp, sum_p, sum_g)
    with torch.no_grad():
        alpha = torch.where(big_s > 0, 1.0 - 2.0 * big_c / big_s.clamp_min(1.0), torch.full_like(big_s, alpha_max))
        alpha = alpha.clamp_max(alpha_max)
    num = (st.sum_p + st.sum_g - 2.0 * st.tp).clamp_min(0)
    den = (st.sum_p + st.sum_g - (1.0 + alpha) * st.tp).clamp_min(0) + smooth
    loss = torch.where(num > 0, num / den.clamp_min(1e-12), torch.zeros_like(num))
    loss = keep_classes(loss, prep, include_background)
    return reduce_loss(loss, reduction)
