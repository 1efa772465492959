"""Topology-aware losses for thin and tubular structures: soft clDice and skeleton recall.

Both compare a prediction with a *skeleton*:

* ``cldice`` (Shit et al. 2021) skeletonises the prediction **and** the target with the soft
  skeleton (:func:`soft_skeleton`, iterated soft erosion and dilation: minima / maxima over
  3-windows, differentiable), and takes the harmonic mean of the topology precision (predicted skeleton
  inside the target) and the topology sensitivity (target skeleton covered by the prediction).
* ``skeleton_recall`` (Kirchhoff et al. 2024) only needs the skeleton of the *target*: a hard,
  topology-preserving skeleton (:mod:`seglosses.skeleton`, scikit-image), dilated into a tube.
  It is a constant per case, so it can be computed in the data loader
  (:class:`seglosses.transforms.PrecomputeSkeletons`) and passed as ``skeleton=``.

Conventions shared with the other losses: per (sample, class) statistics, or per class over the
batch with ``batch=True``; ``include_background=False`` drops channel 0 in multiclass mode and
is the default here (the skeleton of the background is not a structure of interest; both papers
drop it); ignored voxels (``ignore_index``) are removed from prediction and target *before*
skeletonising (they count as nothing for every channel), so their logits cannot change the loss.
The target's skeleton is a dense ``(N, C_kept, *spatial)`` field: unlike the region losses'
sums, a skeleton cannot be gathered from a label map.

``reduction="none"`` returns the per-(sample, class) losses ``(N, C_kept)`` (``(1, C_kept)`` with
``batch=True``; ``(B, 1)`` for ``cldice(pool_classes=True)``).
"""

from __future__ import annotations

from typing import List, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .._checks import check_positive
from .._contract import Prepared
from .._reduce import reduce_loss
from .._stats import batch_sum
from ..registry import register_loss

__all__ = ["soft_skeleton", "hard_skeleton", "cldice_loss", "skeleton_recall_loss"]


# ----------------------------------------------------------------------------- soft skeleton

def _axis_max(x: Tensor, axis: int) -> Tensor:
    """Max over a window of 3 along one spatial ``axis`` (0-based) of ``(B, C, *spatial)``;
    outside the image does not count (as max pooling with -inf padding).

    With autograd: :class:`_AxisMax3` (shifted maxima forward, two boolean "who won" masks kept
    for the backward). Without (the target's skeleton, ``uint8``): two in-place elementwise maxima
    of shifted views. Both several times faster than PyTorch's CPU max pooling (~20 ns per element
    for a 3-window), and for any dtype.
    """
    dim = axis + 2
    if x.shape[dim] == 1:
        return x
    if x.requires_grad and torch.is_grad_enabled():
        return _AxisMax3.apply(x, dim)
    return _shifted_max3(x, dim)


def _shifted_max3(x: Tensor, dim: int) -> Tensor:
    """``out_i = max(x_{i-1}, x_i, x_{i+1})`` along ``dim`` (at the borders: the existing
    neighbours), by two in-place elementwise maxima on shifted views."""
    n = x.shape[dim]
    out = x.clone()
    left = out.narrow(dim, 1, n - 1)  # out_i, i >= 1, against x_{i-1}
    torch.maximum(left, x.narrow(dim, 0, n - 1), out=left)
    right = out.narrow(dim, 0, n - 1)  # out_i, i <= n - 2, against x_{i+1}
    torch.maximum(right, x.narrow(dim, 1, n - 1), out=right)
    return out


def _edge(x: Tensor, dim: int) -> Tensor:
    shape = list(x.shape)
    shape[dim] = 1
    return torch.full(shape, -torch.inf, dtype=x.dtype, device=x.device)


class _AxisMax3(torch.autograd.Function):
    """Max over 3-windows along ``dim``; the gradient goes to the winning input, as with max
    pooling (at ties: the centre, then the left neighbour). Forward: the neighbours as full-size
    shifted views of one padded copy, two maxima, two boolean "who won" masks kept for the
    backward; backward: three masked copies of the gradient, two of them shifted back."""

    @staticmethod
    def forward(ctx, x: Tensor, dim: int):
        n = x.shape[dim]
        pad = torch.cat([_edge(x, dim), x, _edge(x, dim)], dim)
        xl, xr = pad.narrow(dim, 0, n), pad.narrow(dim, 2, n)
        m = torch.maximum(x, xl)
        took_left = xl > x
        out = torch.maximum(m, xr)
        took_right = xr > m
        ctx.save_for_backward(took_left, took_right)
        ctx.dim = dim
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g: Tensor):
        took_left, took_right = ctx.saved_tensors
        dim = ctx.dim
        n = g.shape[dim]
        zero = torch.zeros((), dtype=g.dtype, device=g.device)
        to_right = torch.where(took_right, g, zero)  # output i -> input i + 1
        to_left = torch.where(took_left & ~took_right, g, zero)  # output i -> input i - 1
        grad = g - to_right - to_left  # output i -> input i
        grad.narrow(dim, 0, n - 1).add_(to_left.narrow(dim, 1, n - 1))
        grad.narrow(dim, 1, n - 1).add_(to_right.narrow(dim, 0, n - 1))
        return grad, None


def soft_erode(x: Tensor) -> Tensor:
    """Soft erosion: minimum over the face-connected cross (the minimum of the 3-windows along
    each axis), ``(B, C, *spatial)`` with 1 to 3 spatial dims. The border does not erode."""
    return -_cross_max(-x)


def soft_dilate(x: Tensor) -> Tensor:
    """Soft dilation: maximum over the full 3^d window, as separable 3-windows (d passes of 3
    instead of one of 3^d)."""
    for axis in range(x.ndim - 2):
        x = _axis_max(x, axis)
    return x


def soft_skeleton(x: Tensor, iters: int = 3) -> Tensor:
    r"""Soft skeleton of maps ``x`` in [0, 1], ``(B, C, *spatial)`` (Shit et al. 2021, Alg. 1).

    With erosion :math:`E` and opening :math:`O = D \circ E` (soft erosion and dilation above),

    .. math:: S_0 = \mathrm{relu}(x - O(x)),\quad
              S_k = S_{k-1} + \mathrm{relu}(\delta_k - S_{k-1}\delta_k),\quad
              \delta_k = \mathrm{relu}(E^k x - O(E^k x)),\ k = 1..\mathrm{iters}

    Each :math:`E^k x` is computed once and reused by the next opening (``iters + 1`` erosions and
    dilations; the authors' and MONAI's code erode ``2 iters + 1`` times for the same result), and
    dilations are separable (d passes of 3 instead of one of 3^d). The 3-windows are elementwise
    maxima of shifted views with a hand-written backward (:class:`_AxisMax3`), not PyTorch's CPU
    max pooling (which dominated the time); the values and gradients are MONAI's (tested). A 0/1
    target is skeletonised by :func:`hard_skeleton` (same values, ``uint8``).
    ``iters`` should be at least the radius of the thickest structure, in voxels.

    Examples
    --------
    >>> import torch
    >>> from seglosses.functional.topology import soft_skeleton
    >>> bar = torch.zeros(1, 1, 5, 7); bar[0, 0, 1:4, 1:6] = 1    # a 3 x 5 bar
    >>> soft_skeleton(bar, iters=2)[0, 0, 2].tolist()              # its middle row
    [0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0]
    """
    _check_iters(iters)
    # erosions run on n = -x (a cross max), so each round negates once, not twice
    n_next = _cross_max(-x)
    e_next = -n_next
    skel = F.relu(x - soft_dilate(e_next))
    for _ in range(iters):
        e = e_next
        n_next = _cross_max(n_next)
        e_next = -n_next
        delta = F.relu(e - soft_dilate(e_next))
        skel = skel + F.relu(delta - skel * delta)
    return skel


def hard_skeleton(mask: Tensor, iters: int = 3) -> Tensor:
    """:func:`soft_skeleton` of a 0/1 map, computed on ``uint8`` with logical operations (the soft
    skeleton of a binary map is binary: ``relu(a - b) = a AND NOT b``, ``s + relu(d - s d) = s OR
    d``): the same values at a quarter of the memory traffic, no gradient. ``mask``: bool or
    ``uint8`` ``(B, C, *spatial)``; returns ``uint8``."""
    _check_iters(iters)
    m = mask.to(torch.uint8)
    erode = lambda a: _cross_max(a ^ 1) ^ 1  # noqa: E731  (erosion = NOT dilation of NOT)
    e_next = erode(m)
    skel = m & (soft_dilate(e_next) ^ 1)
    for _ in range(iters):
        e = e_next
        e_next = erode(e)
        skel |= e & (soft_dilate(e_next) ^ 1)
    return skel


def _check_iters(iters) -> None:
    if not isinstance(iters, int) or isinstance(iters, bool) or iters < 0:
        raise ValueError(f"iters: expected a non-negative int, got {iters!r}")


def _cross_max(x: Tensor) -> Tensor:
    """Maximum over the face-connected cross (the 3-windows along each axis)."""
    out = None
    for axis in range(x.ndim - 2):
        m = _axis_max(x, axis)
        out = m if out is None else torch.maximum(out, m)
    return out


# ----------------------------------------------------------------------------- shared pieces

def _channels(prep: Prepared, include_background: bool) -> List[int]:
    start = 1 if (prep.mode == "multiclass" and not include_background) else 0
    return list(range(start, prep.num_classes))


def _kept_probs_target(prep: Prepared, channels: List[int]):
    """``p`` ``(N, K, *spatial)`` for the kept ``channels`` and the target ``g``: a ``uint8`` mask for
    label maps and 0/1 float targets (no float one-hot), else the soft target; both zero on
    ignored voxels."""
    start = channels[0] if channels else prep.num_classes
    p = prep.probs[:, start:]
    if prep.labels is not None:
        idx = torch.arange(start, prep.num_classes, device=p.device).view((1, -1) + (1,) * len(prep.spatial_shape))
        g = (prep.labels.unsqueeze(1) == idx).to(torch.uint8)
    else:
        g = prep.dense[:, start:]
        if bool(((g == 0) | (g == 1)).all()):
            g = g.to(torch.uint8)
        else:
            g = g.to(p.dtype)
    if prep.valid is not None:
        v = prep.valid.unsqueeze(1)
        p = p * v.to(p.dtype)
        g = g & (v > 0).to(torch.uint8) if g.dtype == torch.uint8 else g * v.to(g.dtype)
    return p, g


def _skeleton_in_target(prep: Prepared, skel_p: Tensor, g: Tensor) -> Tensor:
    """``sum_i S(p)_ic g_ic`` per (sample, kept class) ``(N, K)``. Label maps: the skeleton value of
    each voxel's own class, gathered and scattered into its class
    (:func:`seglosses._stats.class_sum`), without a float one-hot; ignored voxels do not count."""
    if prep.labels is None:
        return _spatial_sum(skel_p * g)
    from .._stats import class_sum

    start = prep.num_classes - skel_p.shape[1]
    if skel_p.shape[1] == 0:
        return skel_p.new_zeros(skel_p.shape[:2])
    own = skel_p.gather(1, (prep.labels - start).clamp_min(0).unsqueeze(1)).squeeze(1)
    if start:
        own = own * (prep.labels >= start).to(own.dtype)  # voxels of a dropped class count nowhere
    return class_sum(prep, own)[:, start:]


def _spatial_sum(x: Tensor) -> Tensor:
    return x.flatten(2).sum(2)


# ----------------------------------------------------------------------------- clDice

@register_loss(
    "cldice",
    category="topology",
    class_name="ClDiceLoss",
    aliases=("SoftclDiceLoss",),
    paper="Shit et al. 2021 (CVPR) arXiv:2003.07311",
    formula="1 - 2 Tprec Tsens / (Tprec + Tsens), Tprec = (sum S(p) g + s)/(sum S(p) + s), Tsens = (sum S(g) p + s)/(sum S(g) + s)",
)
def cldice_loss(
    prep: Prepared,
    *,
    iters: int = 3,
    smooth: float = 1e-5,
    batch: bool = False,
    pool_classes: bool = False,
    include_background: bool = False,
    reduction: str = "mean",
    ddp: bool = False,
) -> Tensor:
    r"""Soft clDice loss (centerline Dice).

    .. math:: T_{prec} = \frac{\sum_i S(p)_{i} g_{i} + s}{\sum_i S(p)_{i} + s},\quad
              T_{sens} = \frac{\sum_i S(g)_{i} p_{i} + s}{\sum_i S(g)_{i} + s},\quad
              L = 1 - \frac{2\,T_{prec} T_{sens}}{T_{prec} + T_{sens}}

    per (sample, class), with :math:`S` the soft skeleton (:func:`soft_skeleton`, ``iters``
    iterations) of the probabilities p and of the target g; averaged over the kept classes and
    the samples. ``batch=True`` sums over the batch first; ``pool_classes=True`` sums over the
    kept classes first (one score per sample). ``reduction="none"``: ``(N, C_kept)``
    (``(1, C_kept)`` with ``batch``, ``(N, 1)`` with ``pool_classes``). ``ddp=True`` with
    ``batch=True``: the sums of the global DistributedDataParallel batch (:mod:`seglosses._ddp`).

    Reference: Shit, Paetzold, Sekuboyina et al., "clDice -- a Novel Topology-Preserving Loss
    Function for Tubular Structure Segmentation", CVPR 2021, arXiv:2003.07311 (eqs. 1-3, Alg. 1-2).

    Defaults: ``iters=3`` (the authors' and MONAI's default; use at least the radius of the
    thickest vessel), ``smooth=1e-5`` (as the region losses; the authors use 1),
    ``include_background=False`` (the authors' code drops channel 0). Use it with a region loss:
    ``dice_cldice`` is ``0.5*dice+0.5*cldice`` (the authors' ``alpha=0.5``).

    Conventions of other libraries: MONAI ``SoftclDiceLoss`` (1.5 and later) pools the kept
    classes of each sample -- ``pool_classes=True`` here -- with ``smooth_nr = smooth_dr = 1``
    and ``1e-4`` added to the harmonic mean's denominator; ``cldice(pool_classes=True,
    smooth=s)`` equals ``SoftclDiceLoss(smooth_nr=s, smooth_dr=s, smooth=1e-12)`` (tested; MONAI
    needs ``softmax=True, to_onehot_y=True`` for a label map, and its ``include_background``
    defaults to True). MONAI before 1.5 and the authors' code also pool the batch
    (``batch=True, pool_classes=True``); old MONAI dropped channel 0 unconditionally, so a
    one-channel input gave 0 -- here binary mode supervises its single channel.

    Never use it alone: a prediction of (nearly) 1 everywhere has an empty soft skeleton (erosion
    does not shrink it from the image border), so :math:`T_{prec} = s/s = 1`, :math:`T_{sens} = 1`
    and the loss is 0 (tested) -- the authors and MONAI always add a region loss, as
    ``dice_cldice`` does. (A 200-iteration run of the ``topology`` bench preset with ``cldice``
    alone converged to that all-foreground prediction.)

    Empty ground truth: a class with no voxel has no skeleton, :math:`T_{sens} = 1`; the loss is
    0 when nothing is predicted for it and close to 1 (``1 - 2 T_{prec}/(T_{prec}+1)``) when
    anything is. Never NaN: the harmonic mean's denominator is clamped at 1e-12.

    Examples
    --------
    >>> import torch
    >>> from seglosses.functional import cldice_loss
    >>> target = torch.zeros(1, 1, 5, 7, dtype=torch.long); target[0, 0, 2, 1:6] = 1   # a line
    >>> pred = torch.zeros(1, 1, 5, 7); pred[0, 0, 2, 1:4] = 1                     # 3 of its 5 pixels
    >>> # Tprec = 3/3 (its skeleton lies on the line), Tsens = 3/5: 1 - 2*0.6/1.6
    >>> round(float(cldice_loss(pred, target[:, 0], from_logits=False, smooth=0.0)), 4)
    0.25
    """
    check_positive("smooth", smooth, allow_zero=True)
    channels = _channels(prep, include_background)
    p, g = _kept_probs_target(prep, channels)
    skel_p = soft_skeleton(p, iters)
    with torch.no_grad():
        skel_g = hard_skeleton(g, iters) if g.dtype == torch.uint8 else soft_skeleton(g, iters)
    sums = [_skeleton_in_target(prep, skel_p, g), _spatial_sum(skel_p), _spatial_sum(skel_g * p), _spatial_sum(skel_g).to(p.dtype)]
    if pool_classes:
        sums = [x.sum(1, keepdim=True) for x in sums]
    prec_num, prec_den, sens_num, sens_den = batch_sum(sums, batch=batch, ddp=ddp)
    t_prec = (prec_num + smooth) / (prec_den + smooth).clamp_min(1e-12)
    t_sens = (sens_num + smooth) / (sens_den + smooth).clamp_min(1e-12)
    cl = 2.0 * t_prec * t_sens / (t_prec + t_sens).clamp_min(1e-12)
    return reduce_loss(1.0 - cl, reduction)


# ----------------------------------------------------------------------------- skeleton recall

def _given_skeleton(skeleton, prep: Prepared, like: Tensor) -> Tensor:
    """Validate a precomputed skeleton ``(N, C, *spatial)``: detached, on like's device and dtype."""
    if isinstance(skeleton, np.ndarray):
        skeleton = torch.from_numpy(skeleton)
    if not isinstance(skeleton, Tensor):
        raise TypeError(f"skeleton: expected a tensor (N, C, *spatial), got {type(skeleton).__name__}")
    expected = (prep.batch_size, prep.num_classes) + prep.spatial_shape
    if tuple(skeleton.shape) != expected:
        raise ValueError(
            f"skeleton: expected the tubed skeleton of shape {expected} (one channel per logit channel), "
            f"got shape {tuple(skeleton.shape)}"
        )
    return skeleton.detach().to(device=like.device, dtype=like.dtype)


def target_skeleton(prep: Prepared, tube: int, channels: Optional[List[int]] = None) -> Tensor:
    """Tubed skeleton of the target's ``channels`` (default all) ``(N, C, *spatial)`` (float32,
    CPU; other channels 0), computed by :func:`seglosses.skeleton.skeleton_map` exactly as the
    precompute transform does."""
    from ..skeleton import skeleton_map

    target = prep.labels if prep.labels is not None else prep.dense
    return skeleton_map(
        target, num_classes=prep.num_classes, tube=tube, spatial_dims=len(prep.spatial_shape), channels=channels
    )


@register_loss(
    "skeleton_recall",
    category="topology",
    paper="Kirchhoff et al. 2024 (ECCV) arXiv:2404.03010",
    formula="1 - (sum p T + s) / (sum T + s), T = tubed skeleton of the target",
    call_args=("skeleton",),
)
def skeleton_recall_loss(
    prep: Prepared,
    *,
    tube: int = 2,
    smooth: float = 1e-5,
    batch: bool = False,
    include_background: bool = False,
    reduction: str = "mean",
    ddp: bool = False,
    skeleton: Optional[Tensor] = None,
) -> Tensor:
    r"""Skeleton recall loss: soft recall of the prediction on the tubed skeleton of the target.

    .. math:: L = 1 - \frac{\sum_i p_{ic} T_{ic} + s}{\sum_i T_{ic} + s}

    per (sample, class) -- or per class over the batch with ``batch=True`` -- averaged over the
    kept classes and samples (``reduction="none"``: ``(N, C_kept)``, ``(1, C_kept)`` with
    ``batch``; ``ddp=True`` with ``batch``: the sums of the global DistributedDataParallel batch).
    :math:`T_c` is the hard skeleton of the target mask of class c
    (scikit-image; :func:`seglosses.skeleton.tubed_skeleton`) dilated ``tube`` times by the
    face-connected cross and restricted to the mask. It is computed from the target on the fly,
    or given precomputed as ``skeleton=`` ``(N, C, *spatial)``
    (:class:`seglosses.transforms.PrecomputeSkeletons`, :func:`seglosses.skeleton.skeleton_map`
    with the same ``tube``). It only rewards recall: combine it with Dice + CE, as the paper does
    (``build_loss("dice+ce+skeleton_recall")``).

    Reference: Kirchhoff, Rokuss, Roy et al., "Skeleton Recall Loss for Connectivity Conserving and
    Resource Efficient Segmentation of Thin Tubular Structures", ECCV 2024, arXiv:2404.03010.

    Defaults: ``tube=2`` (the paper's two dilations), ``smooth=1e-5`` (the authors' code uses 1),
    ``include_background=False`` (the authors' code refuses the background).

    Differences from the authors' code (nnU-Net fork): it returns ``-recall``, a negative loss;
    here ``1 - recall`` (0 is perfect). It skeletonises the union of the foreground classes and
    labels the skeleton afterwards; here every class (channel) is skeletonised on its own, which is
    the same for one foreground class and lets multilabel targets and ``include_background=True``
    work (their code raises for the latter).

    Empty ground truth: a class without voxels has an empty skeleton; its recall is ``s / s = 1``
    (loss 0, no gradient): there is nothing to recall.

    Examples
    --------
    >>> import torch
    >>> from seglosses.functional import skeleton_recall_loss
    >>> target = torch.zeros(1, 9, 9, dtype=torch.long); target[0, 3:6] = 1   # a 3-pixel-thick band
    >>> pred = torch.zeros(1, 1, 9, 9); pred[0, 0, :, :4] = 1                # its left part
    >>> # skeleton (tube=0): 8 pixels, 4 of them in columns 0..3
    >>> round(float(skeleton_recall_loss(pred, target, from_logits=False, tube=0, smooth=0.0)), 4)
    0.5
    """
    check_positive("smooth", smooth, allow_zero=True)
    channels = _channels(prep, include_background)
    start = channels[0] if channels else prep.num_classes
    p = prep.probs[:, start:]
    if skeleton is None:
        t = target_skeleton(prep, tube, channels).to(device=p.device, dtype=p.dtype)
    else:
        t = _given_skeleton(skeleton, prep, p)
    t = t[:, start:]
    if prep.valid is not None:
        t = t * prep.valid.unsqueeze(1).to(p.dtype)
    num, den = batch_sum((_spatial_sum(p * t), _spatial_sum(t)), batch=batch, ddp=ddp)
    recall = torch.where(den + smooth > 0, (num + smooth) / (den + smooth).clamp_min(1e-12), torch.ones_like(num))
    return reduce_loss(1.0 - recall, reduction)
