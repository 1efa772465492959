"""Lovász-softmax loss (Berman et al. 2018; Ma et al. 2021 sec. 2.2.4), sorted once for all classes.

The loss needs, for every class, the voxel errors sorted in decreasing order and the Lovász
gradient of the Jaccard loss along that order. Instead of one float ``argsort`` per class and a
gather of the foreground (the reference code, kornia), every (class, voxel) element becomes one
64-bit integer:

    key = [ 2 * (bits(1.0) - bits(e)) + (1 - g) ] << 32  |  position in the row

``bits`` is the IEEE-754 pattern of the error ``e`` in [0, 1] (monotone for non-negative floats),
so the ascending order of the keys is the descending order of the errors; the foreground flag
``g`` and the original position ride along in the same word (foreground first among equal
errors: the value of the Lovász extension does not depend on the order of ties). A plain
*value* sort of these keys (NumPy's SIMD sort on CPU, rows split over threads; ``torch.sort``
elsewhere) therefore returns the order, the foreground and the permutation at once -- about 5x
faster than ``torch.sort`` with indices on a CPU, measured in ``benchmarks/losses.py``.
The Lovász gradient is then computed in closed form from one cumulative sum:

    A_i = foreground before position i,  B_i = i - A_i,  G = total foreground
    d_i = 1 / (G + B_i)                      if element i is foreground
    d_i = (G - A_i) / ((G + B_i)(G + B_i + 1))  otherwise (1 if G + B_i = 0)

which is the exact difference ``J_i - J_{i-1}`` of the Jaccard loss ``J = 1 - |G \\ A| / |G u B|``
of consecutive sorted prefixes (no cancellation, unlike differencing ``J``). ``d`` is scattered
back to the voxel order once, and the loss of a row is ``sum_i e_i d_i``: the backward pass is
one multiplication.
"""

from __future__ import annotations

import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from .._checks import check_choice, check_reduction
from .._contract import Prepared
from .._reduce import class_weight_tensor, keep_classes, reduce_loss
from ..registry import register_loss

__all__ = ["lovasz_loss", "lovasz_gradient_sorted", "lovasz_hinge_loss"]

Weights = Union[None, Sequence[float], Tensor]

_ONE32 = 0x3F800000  # bit pattern of 1.0f
_ONE64 = 0x3FF0000000000000  # bit pattern of 1.0 (double)
_POOL: Optional[ThreadPoolExecutor] = None
_POOL_LOCK = threading.Lock()


def _pool(workers: int) -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL._max_workers < workers:
            _POOL = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="seglosses-sort")
        return _POOL


def _sort_rows_(keys: Tensor) -> None:
    """Sort each row of an int64 ``(R, L)`` tensor in place (values only)."""
    if keys.device.type != "cpu":
        keys.copy_(torch.sort(keys, dim=1).values)
        return
    arr = keys.numpy()  # shares memory
    rows = arr.shape[0]
    workers = max(1, min(torch.get_num_threads(), rows))
    if workers == 1 or arr.size < 1 << 16:
        arr.sort(axis=1)
        return
    bounds = np.linspace(0, rows, workers + 1).astype(int)
    # NumPy releases the GIL while sorting, so the row blocks sort in parallel
    list(_pool(workers).map(lambda ab: arr[ab[0]:ab[1]].sort(axis=1), zip(bounds[:-1], bounds[1:])))


def _key_high(e: Tensor, bg: Union[Tensor, int], *, clamp: bool = False) -> Tensor:
    """Integer ``2 (bits(1) - bits(e)) + bg`` for ``e`` in [0, 1]: ascending order = ``e`` descending.

    int32 for float32 ``e``, int64 for float64 ``e`` (both fit: ``2 bits(1.0) + 1 < 2^31``,
    resp. ``< 2^63``). ``clamp`` (user-given probabilities) maps ``e`` into [0, 1] and -0.0 to
    +0.0 first; softmax / sigmoid errors are already there.
    """
    e = e.detach()
    if clamp:
        e = e.clamp(0.0, 1.0) + 0.0
    itype, one = (torch.int64, _ONE64) if e.dtype == torch.float64 else (torch.int32, _ONE32)
    bits = e.contiguous().view(itype)
    if isinstance(bg, int):
        return bits.mul(-2).add_(2 * one + bg)
    return bits.mul(-2).add_(2 * one).add_(bg)


def _key_empty(e: Tensor) -> int:
    """The key of an ignored element (error 0, background)."""
    return 2 * (_ONE64 if e.dtype == torch.float64 else _ONE32) + 1


def lovasz_gradient_sorted(g: Tensor, total: Tensor) -> Tensor:
    """Lovász gradient of the Jaccard loss along sorted rows.

    ``g`` ``(R, L)``: foreground membership of the sorted elements (0/1, or soft in [0, 1]);
    ``total`` ``(R, 1)``: foreground mass of each row. Returns ``d`` with
    ``d_i = J(prefix_i) - J(prefix_{i-1})``, computed in closed form (see the module docstring).
    """
    r, n = g.shape
    a = torch.cumsum(g, dim=1).sub_(g)  # foreground mass before each position
    gb = torch.arange(n, device=g.device, dtype=g.dtype).expand(r, n) - a
    gb.add_(total)  # G + B_i
    num = (total - a).mul_(1.0 - g).add_(g * gb)  # (G - A)(1 - g) + g (G + B)
    den = (gb + 1.0).sub_(g).mul_(gb)  # (G + B)(G + B + 1 - g)
    return torch.where(gb > 0, num.div_(den.clamp_min_(1e-30)), torch.ones((), dtype=g.dtype, device=g.device))


def _rows(x: Tensor, n: int, c: int, s: int, per_image: bool) -> Tensor:
    """``(N, C, S)`` -> rows: ``(N*C, S)`` per image, ``(C, N*S)`` pooled (a copy)."""
    return x.reshape(n * c, s) if per_image else x.transpose(0, 1).reshape(c, n * s)


def _unrows(x: Tensor, n: int, c: int, s: int, per_image: bool) -> Tensor:
    """Inverse of :func:`_rows` as a view ``(N, C, S)``."""
    return x.view(n, c, s) if per_image else x.view(c, n, s).transpose(0, 1)


def _lovasz_gradient_packed(bg: Tensor, total_bg: Tensor, exact64: bool = False) -> Tensor:
    """Lovász gradient from the background bits ``bg`` (int32 ``(R, L)``, sorted order).

    Same values as :func:`lovasz_gradient_sorted` for a hard target, with fewer passes:
    with ``GB = G + B_i`` (B_i = background before i) and ``A_i = i - B_i``,
    ``d = 1 / GB`` (foreground) or ``(GB - i) / (GB (GB + 1))`` (background).
    """
    r, n = bg.shape
    acc = torch.float64 if (exact64 or n > 2**24) else torch.float32  # counts exact in the accumulator
    total = (float(n) - total_bg).to(acc)  # G per row, (R, 1)
    gb = torch.cumsum(bg, dim=1, dtype=acc).sub_(bg).add_(total)  # G + B_i
    num = (gb - torch.arange(1, n + 1, device=bg.device, dtype=acc)).mul_(bg).add_(1.0)
    den = (gb * bg).mul_(gb).add_(gb)  # GB (1 + bg GB)
    d = num.div_(den)
    empty = (total[:, 0] == 0).nonzero().flatten()  # no foreground: J jumps to 1 at the first element
    if empty.numel():
        d[empty, 0] = 1.0
    return d


def _weights_packed(high: Tensor, n: int, c: int, s: int, per_image: bool):
    """Pack ``high`` (int32 ``(N, C, S)``) with positions, sort, and return ``d`` in voxel order
    ``(N, C, S)`` (a view of a fresh buffer) and the foreground count per row ``(R,)``."""
    r, length = (n * c, s) if per_image else (c, n * s)
    keys = torch.empty((r, length), dtype=torch.int64, device=high.device)
    halves = keys.view(torch.int32).view(r, length, 2)  # little-endian: [..., 0] low, [..., 1] high
    _unrows(halves[..., 1], n, c, s, per_image).copy_(high.view(n, c, s))
    del high
    halves[..., 0].copy_(torch.arange(length, dtype=torch.int32, device=keys.device).expand(r, length))
    _sort_rows_(keys)
    bg = torch.bitwise_and(halves[..., 1], 1)
    idx = halves[..., 0].to(torch.int64)
    del keys, halves
    total_bg = bg.sum(1, keepdim=True, dtype=torch.float64)
    d = _lovasz_gradient_packed(bg, total_bg)
    del bg
    out = torch.empty((r, length), dtype=torch.float32, device=d.device).scatter_(1, idx, d.to(torch.float32))
    return _unrows(out, n, c, s, per_image), (float(length) - total_bg).squeeze(1).to(torch.float32)


def _weights_indexed(high: Tensor, n: int, c: int, s: int, per_image: bool):
    """As :func:`_weights_packed`, with ``torch.sort`` and indices (float64, GPU, huge rows)."""
    sorted_keys, idx = torch.sort(_rows(high, n, c, s, per_image), dim=1, stable=True)
    bg = torch.bitwise_and(sorted_keys, 1)
    del sorted_keys
    total_bg = bg.sum(1, keepdim=True, dtype=torch.float64)
    wide = high.dtype == torch.int64  # float64 errors
    d = _lovasz_gradient_packed(bg, total_bg, exact64=wide)
    out = torch.empty(idx.shape, dtype=torch.float64 if wide else torch.float32, device=d.device)
    out.scatter_(1, idx, d.to(out.dtype))
    return _unrows(out, n, c, s, per_image), (float(idx.shape[1]) - total_bg).squeeze(1).to(out.dtype)


def _weights_soft(e: Tensor, g: Tensor, n: int, c: int, s: int, per_image: bool, acc: torch.dtype):
    """Soft (non-binary) targets: sort the errors, gather the target mass, general formula."""
    _, idx = torch.sort(_rows(_key_high(e, 0, clamp=True), n, c, s, per_image), dim=1, stable=True)
    g_sorted = _rows(g, n, c, s, per_image).gather(1, idx).to(acc)
    total = g_sorted.sum(1, keepdim=True)
    d = lovasz_gradient_sorted(g_sorted, total)
    out = torch.empty(idx.shape, dtype=e.dtype, device=e.device).scatter_(1, idx, d.to(e.dtype))
    return _unrows(out, n, c, s, per_image), total.squeeze(1).to(e.dtype)


@register_loss(
    "lovasz",
    category="region",
    paper="Berman et al. 2018 arXiv:1705.08790 (doi:10.1109/CVPR.2018.00464); Ma et al. 2021 eqs. 11-13",
    formula="mean_c sum_i m_c(pi_i) * grad J_c(i), errors m_c = |g_c - p_c| sorted descending",
)
def lovasz_loss(
    prep: Prepared,
    *,
    classes: str = "present",
    per_image: bool = False,
    include_background: bool = True,
    class_weights: Weights = None,
    reduction: str = "mean",
) -> Tensor:
    r"""Lovász-softmax loss: the Lovász extension of the Jaccard loss, on probabilities.

    For each class c, the errors :math:`m_i(c) = |g_{ic} - p_{ic}|` (``1 - p`` on the class's
    voxels, ``p`` elsewhere) are sorted in decreasing order :math:`\pi`, and

    .. math:: L_c = \sum_i m_{\pi_i}(c)\,\big(\Delta_J(\{\pi_1..\pi_i\}) - \Delta_J(\{\pi_1..\pi_{i-1}\})\big),
              \quad \Delta_J(S) = 1 - \frac{|G_c \setminus S|}{|G_c \cup S|}

    (Ma et al. eqs. 11-13). The loss is the mean of :math:`L_c` over the classes -- over the whole
    batch pooled (``per_image=False``, Berman's default) or per image, then over the images.
    ``p`` is the softmax (sigmoid in binary / multilabel mode) of the logits: the loss is never
    computed on raw logits (a known defect of some published code). Binary mode: the single
    sigmoid channel is the foreground class, i.e. Lovász-softmax over {fg}; multilabel: every
    channel is its own foreground class. Soft targets use ``g`` as a fractional membership in
    the sorted cumulative sums (exact for one-hot targets).

    Reference: Berman, Rannen Triki & Blaschko 2018, "The Lovász-softmax loss: a tractable
    surrogate for the optimization of the intersection-over-union measure in neural networks",
    CVPR, arXiv:1705.08790; Ma et al. 2021 sec. 2.2.4 (they fine-tune with it after CE).

    Defaults: ``classes="present"`` (only classes present in the target are averaged, Berman's
    default, so a class absent from the target does not count), ``per_image=False``.
    ``"all"`` averages every class; an absent class then contributes its largest error
    (:math:`\Delta_J` jumps to 1 at the first false positive). ``include_background=False``
    drops channel 0 (multiclass and multilabel; an error in binary mode); ``class_weights``: weighted mean over classes.

    Conventions of other libraries: kornia's ``lovasz_softmax_loss`` is this loss with
    ``per_image=True, classes="all"`` (and multiplies, not normalises, by its ``weight``);
    Berman's reference code is ``classes="present"`` with either ``per_image``.

    Empty ground truth: with ``classes="present"`` an image (or batch) without any voxel of a
    class ignores that class; if no class is present at all (every voxel ignored) the loss is 0
    with zero gradient. ``reduction="none"`` returns the per-(image, class) losses ``(N, C)``
    (``(1, C)`` pooled), 0 for classes that are not counted; ``"sum"`` their sum.

    Examples
    --------
    >>> import torch
    >>> from seglosses.functional import lovasz_loss
    >>> probs = torch.tensor([[[0.8, 0.4, 0.1]]])    # binary: errors 0.2 (fg), 0.4, 0.1 (bg)
    >>> target = torch.tensor([[1, 0, 0]])           # sorted: 0.4 (bg), 0.2 (fg), 0.1 (bg)
    >>> # Jaccard loss of the prefixes: 1 - 1/2, 1 - 0/2, 1 - 0/3 -> d = 0.5, 0.5, 0
    >>> round(float(lovasz_loss(probs, target, from_logits=False)), 4)  # 0.4*0.5 + 0.2*0.5
    0.3
    """
    check_choice("classes", classes, ("present", "all"))
    check_reduction(reduction)
    n, c = prep.batch_size, prep.num_classes
    p = prep.probs.reshape(n, c, -1)
    dtype = p.dtype
    s = p.shape[2]
    length = s if per_image else n * s
    acc = torch.float64 if (length > 2**24 or dtype == torch.float64) else torch.float32
    # packed keys + NumPy sort: CPU float32, row positions in 31 bits, little-endian int64 halves
    fast = dtype == torch.float32 and length < 2**31 and p.device.type == "cpu" and sys.byteorder == "little"
    valid = None if prep.valid is None else prep.valid.reshape(n, 1, s).to(dtype)
    dims = (2,) if per_image else (0, 2)
    clamp = not prep.from_logits
    weights = _weights_packed if fast else _weights_indexed
    if prep.labels is not None:
        # errors: p off the true class, 1 - p_true on it; ignored voxels: error 0, background.
        # The keys are built from p and a scatter of the true-class keys: no one-hot.
        lab = prep.labels.reshape(n, 1, s)
        p_true = p.gather(1, lab).detach()
        pv = p if valid is None else p * valid
        high = _key_high(pv, 1, clamp=clamp)
        true_key = _key_high(1.0 - p_true, 0, clamp=clamp)
        if valid is not None:
            true_key = torch.where(valid > 0, true_key, torch.full_like(true_key, _key_empty(p)))
        high.scatter_(1, lab, true_key)
        d, total = weights(high, n, c, s, per_image)
        if valid is not None:
            d.mul_(valid)
        # sum_i e_i d_i with e = p off the true class and 1 - p_true on it
        #   = sum_i p_i d'_i + sum_true d_true, with d' = d, negated on the true class
        d_true = d.gather(1, lab)
        d.scatter_(1, lab, d_true.neg())
        loss = (p * d).sum(dims) + _class_rows(d_true, lab, c, dims)
    else:
        g = prep.dense.reshape(n, c, s).to(dtype)
        if valid is not None:
            g = g * valid
        e = (g - p).abs()
        if valid is not None:
            e = e * valid
        if bool(((g == 0) | (g == 1)).all()):
            d, total = weights(_key_high(e, (1.0 - g).to(torch.int64 if dtype == torch.float64 else torch.int32), clamp=clamp), n, c, s, per_image)
        else:
            d, total = _weights_soft(e, g, n, c, s, per_image, acc)
        loss = (e * d).sum(dims)
    loss = loss.view(-1, c)
    total = total.view(-1, c)
    weight = (total > 0).to(dtype) if classes == "present" else torch.ones_like(loss)
    cw = class_weight_tensor(class_weights, c, loss.device)
    if cw is not None:
        weight = weight * cw.to(dtype)
    loss = keep_classes(loss, prep, include_background)
    weight = keep_classes(weight, prep, include_background)
    if reduction == "mean":  # per image: mean over counted classes; then mean over images
        per_row = (loss * weight).sum(1) / weight.sum(1).clamp_min(1e-12)
        return reduce_loss(per_row, "mean")
    return reduce_loss(loss, reduction, weight)


def _class_rows(values: Tensor, lab: Tensor, c: int, dims) -> Tensor:
    """Sum of ``values`` ``(N, 1, S)`` over the voxels of each class: ``(N, C)`` or ``(C,)``."""
    n = values.shape[0]
    out = torch.zeros(n, c, device=values.device, dtype=values.dtype).scatter_add_(1, lab.view(n, -1), values.view(n, -1))
    return out if dims == (2,) else out.sum(0)


# ----------------------------------------------------------------------------- Lovász hinge

@register_loss(
    "lovasz_hinge",
    category="region",
    paper="Berman et al. 2018 arXiv:1705.08790 (doi:10.1109/CVPR.2018.00464), eq. 9-10",
    formula="sum_i relu(m)(pi_i) * grad J(i), hinge errors m_i = 1 - z_i (2 g_i - 1) sorted descending",
    modes=("binary", "multilabel"),
)
def lovasz_hinge_loss(
    prep: Prepared,
    *,
    per_image: bool = True,
    reduction: str = "mean",
) -> Tensor:
    r"""Binary Lovász hinge loss: the Lovász extension of the Jaccard loss at the hinge errors.

    .. math:: m_i = \max(0,\ 1 - z_i\,(2 g_i - 1)),\qquad
              L = \sum_i m_{\pi_i}\,\big(\Delta_J(\{\pi_1..\pi_i\}) - \Delta_J(\{\pi_1..\pi_{i-1}\})\big)

    with :math:`z` the logit of the foreground, :math:`\pi` the order of decreasing errors and
    :math:`\Delta_J` the Jaccard loss of the foreground (as in :func:`lovasz_loss`, whose sorting
    and closed-form Lovász gradient it shares). Per image (``per_image=True``, Berman's and
    kornia's default for the hinge) then averaged over the images, or once over the whole batch.
    Binary mode; in multilabel mode every channel is its own binary problem (averaged).

    The loss works on the **logits** (margins), not on probabilities: with ``from_logits=False``
    the input probabilities are turned back into logits (``logit(p)``, clamped at 1e-6).

    Reference: Berman, Rannen Triki & Blaschko 2018, "The Lovász-softmax loss: a tractable
    surrogate for the optimization of the intersection-over-union measure in neural networks",
    CVPR, arXiv:1705.08790, eqs. (9)-(10).

    Conventions of other libraries: kornia ``lovasz_hinge_loss(pred (B, 1, H, W), target)`` is
    this loss with ``per_image=True`` (tested; kornia is 2-D only, without ``ignore_index``).

    Empty ground truth: an image without foreground has :math:`\Delta_J = 1` from its first false
    positive on, so its loss is the largest hinge error (0 when every logit is at most -1).
    Ignored voxels have error 0 and do not count. ``reduction="none"`` returns the
    per-(image, channel) losses ``(N, C)`` (``(1, C)`` with ``per_image=False``).

    Examples
    --------
    >>> import torch
    >>> from seglosses.functional import lovasz_hinge_loss
    >>> logits = torch.tensor([[[2.0, 0.5, -3.0]]])   # hinge errors: 0 (fg), 1.5 (bg), 0 (bg)
    >>> target = torch.tensor([[1, 0, 0]])
    >>> # sorted: 1.5 (bg) first: Jaccard loss 1 - 1/2 -> 1.5 * 0.5
    >>> round(float(lovasz_hinge_loss(logits, target)), 4)
    0.75
    """
    check_reduction(reduction)
    n, c = prep.batch_size, prep.num_classes
    z = prep.logits.to(prep.dtype)
    if not prep.from_logits:
        z = torch.logit(z, eps=1e-6)
    z = z.reshape(n, c, -1)
    s = z.shape[2]
    g = prep.dense.reshape(n, c, s).to(z.dtype)
    valid = None if prep.valid is None else prep.valid.reshape(n, 1, s).to(z.dtype)
    soft = not bool(((g == 0) | (g == 1)).all())
    e = torch.relu(1.0 - z * (2.0 * g - 1.0))
    if valid is not None:
        e, g = e * valid, g * valid
    length = s if per_image else n * s
    if soft:
        acc = torch.float64 if (length > 2**24 or z.dtype == torch.float64) else torch.float32
        d, _ = _weights_soft_unbounded(e, g, n, c, s, per_image, acc)
    else:
        fast = z.dtype == torch.float32 and length < 2**31 and z.device.type == "cpu" and sys.byteorder == "little"
        bg = (1.0 - g).to(torch.int64 if z.dtype == torch.float64 else torch.int32)
        d, _ = (_weights_packed if fast else _weights_indexed)(_key_high(e, bg), n, c, s, per_image)
    dims = (2,) if per_image else (0, 2)
    loss = (e * d.to(e.dtype)).sum(dims).view(-1, c)
    return reduce_loss(loss, reduction)


def _weights_soft_unbounded(e: Tensor, g: Tensor, n: int, c: int, s: int, per_image: bool, acc: torch.dtype):
    """As :func:`_weights_soft` for errors in [0, inf) (hinge errors): a float sort, descending."""
    _, idx = torch.sort(_rows(e.detach(), n, c, s, per_image), dim=1, descending=True, stable=True)
    g_sorted = _rows(g, n, c, s, per_image).gather(1, idx).to(acc)
    total = g_sorted.sum(1, keepdim=True)
    d = lovasz_gradient_sorted(g_sorted, total)
    out = torch.empty(idx.shape, dtype=e.dtype, device=e.device).scatter_(1, idx, d.to(e.dtype))
    return _unrows(out, n, c, s, per_image), total.squeeze(1).to(e.dtype)
