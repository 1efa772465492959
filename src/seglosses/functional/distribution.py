"""Distribution-based losses: cross entropy and its variants (Ma et al. 2021 sec. 2.1; Jadon 2020 sec.
II-A..D, II-L, II-N): ``ce``, ``wce``, ``balanced_ce``, ``weighted_bce``, ``topk``,
``topk_threshold``, ``focal``, the distance-map penalized ``dpce`` and the structural-similarity
weighted ``cmss`` (its window machinery is in :mod:`seglosses.functional.structural`).

Notation: p = softmax(logits) over channels in multiclass mode, sigmoid in binary / multilabel
mode; g the target (label map or one-hot / soft); the sums run over the voxels that are not
``ignore_index``. All sums are float32 whatever the input dtype.

``reduction="none"`` returns the per-voxel loss: ``(N, *spatial)`` in multiclass mode,
``(N, C, *spatial)`` in binary / multilabel mode (ignored voxels hold 0; ``(N, C - 1, *spatial)``
for ``focal`` with ``include_background=False`` in multilabel mode). ``topk`` returns the
selected voxels' losses (1-D).
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import Tensor

from .._checks import check_choice, check_positive
from .._contract import Prepared
from .._reduce import background_dropped, class_weight_tensor, keep_classes, reduce_loss
from .._stats import class_sum, neg_log_true_class, true_class
from ..registry import register_loss
from ._maps import Spacing, _elem_weights, _given_map, _maps, _target_masks
from .structural import _CmssLabelMap, _StructureError, _Target, _Windows

__all__ = [
    "ce_loss",
    "wce_loss",
    "balanced_ce_loss",
    "weighted_bce_loss",
    "topk_loss",
    "topk_threshold_loss",
    "focal_loss",
    "sigmoid_focal_loss",
    "dpce_loss",
    "cmss_loss",
    "voxel_ce",
]

Weights = Union[None, Sequence[float], Tensor]


# ----------------------------------------------------------------------------- shared pieces

def voxel_ce(prep: Prepared) -> Tensor:
    """Per-voxel cross entropy, float32.

    Multiclass: ``-sum_c g_c log p_c`` (``-log p_true`` for a label map), shape ``(N, *spatial)``.
    Binary / multilabel: ``-(g log p + (1 - g) log(1 - p))`` per channel, ``(N, C, *spatial)``,
    computed from the logits with log-sigmoid (finite for logits of any magnitude).
    """
    if prep.mode == "multiclass":
        return neg_log_true_class(prep)  # fused backward for label maps (seglosses._stats)
    g = prep.dense
    return -(g * prep.log_probs + (1.0 - g) * prep.log_probs_neg)


def _valid_weights(prep: Prepared, like: Tensor) -> Optional[Tensor]:
    """The ignore mask broadcast to ``like`` (per-voxel or per-channel elements), or None."""
    if prep.valid is None:
        return None
    return prep.valid if like.ndim == prep.valid.ndim else prep.valid.unsqueeze(1)


def _voxel_class_weights(prep: Prepared, w: Tensor, like: Tensor) -> Tensor:
    """Per-element class weight: ``w[label]`` (multiclass), ``w_0 (1-g) + w_1 g`` (binary),
    ``w_c`` per channel (multilabel)."""
    if prep.mode == "multiclass":
        if prep.labels is not None:
            return w[prep.labels]
        return torch.einsum("nc...,c->n...", prep.dense, w)
    if prep.mode == "binary":
        return w[0] * (1.0 - prep.dense) + w[1] * prep.dense
    shape = (1, -1) + (1,) * (like.ndim - 2)
    return w.view(shape).expand_as(like)


def _n_weights(prep: Prepared) -> int:
    return 2 if prep.mode == "binary" else prep.num_classes


def _times(a: Optional[Tensor], b: Optional[Tensor]) -> Optional[Tensor]:
    if a is None:
        return b
    if b is None:
        return a
    return a * b


# ----------------------------------------------------------------------------- losses

@register_loss(
    "ce",
    category="distribution",
    paper="Ma et al. 2021 eq. 1, doi:10.1016/j.media.2021.102035; Jadon 2020 II-A, doi:10.1109/CIBCB48159.2020.9277638",
    formula="-mean_i sum_c g_ic log p_ic (weighted mean with class_weights)",
    class_name="CELoss",
)
def ce_loss(
    prep: Prepared, *, class_weights: Weights = None, label_smoothing: float = 0.0, reduction: str = "mean"
) -> Tensor:
    r"""Cross entropy.

    .. math:: L_{CE} = -\frac{\sum_i \sum_c w_c \, g_{ic} \log p_{ic}}{\sum_i \sum_c w_c \, g_{ic}}

    Multiclass: softmax cross entropy; with ``class_weights`` ``w`` the weighted mean of PyTorch's
    ``F.cross_entropy(weight=w)``: with a label map exactly PyTorch's value (the voxel weight is
    ``w`` of the voxel's class). With a dense (one-hot / soft) target the numerator is the sum of
    PyTorch's probability-target elements ``-sum_c w_c g_c log p_c`` (its ``reduction="none"``)
    and the denominator is the total target weight ``sum_i sum_c w_c g_ic`` (a one-hot target
    gives the label map's value); PyTorch's ``"mean"`` divides the same sum by the number of
    voxels instead (multiply seglosses' value by ``sum_i sum_c w_c g_ic / N`` to get it).
    Binary: binary cross entropy with logits; ``class_weights`` then holds two weights
    ``[negative, positive]``. Multilabel: BCE per channel, averaged over channels and voxels;
    ``class_weights`` holds one weight per channel. Soft targets give ``-sum_c g_c log p_c``.

    ``label_smoothing=e`` (Szegedy et al. 2016, arXiv:1512.00567) replaces the target by
    ``g~ = (1 - e) g + e / C`` in the numerator in multiclass mode (the denominator keeps the
    unsmoothed weights) -- PyTorch's ``F.cross_entropy(label_smoothing=e)``, class weights and
    ``ignore_index`` included (dense targets: its ``reduction="none"`` elements, as above), and
    smp's ``SoftCrossEntropyLoss(smooth_factor=e)`` -- and by ``(1 - e) g + e (1 - g)`` in binary / multilabel mode (smp's
    ``SoftBCEWithLogitsLoss(smooth_factor=e)``).

    ``reduction="none"``: ``(N, *spatial)`` multiclass, ``(N, C, *spatial)`` binary / multilabel
    (weighted by the voxel's class weight; ignored voxels hold 0).

    Reference: Ma et al. 2021, eq. (1), doi:10.1016/j.media.2021.102035.

    Defaults: unweighted (``class_weights=None``), as in Ma et al.'s CE baseline; no smoothing.
    Empty ground truth: well defined (every voxel has a class); a batch where every voxel is
    ``ignore_index`` gives 0 with zero gradient.

    Examples
    --------
    >>> import torch
    >>> from seglosses.functional import ce_loss
    >>> logits = torch.tensor([[[0.0], [0.0]]])        # (N=1, C=2, 1 voxel): p = (0.5, 0.5)
    >>> round(float(ce_loss(logits, torch.tensor([[1]]))), 4)   # -log 0.5
    0.6931
    """
    if not (isinstance(label_smoothing, (int, float)) and 0.0 <= label_smoothing <= 1.0):
        raise ValueError(f"label_smoothing: expected a number in [0, 1], got {label_smoothing!r}")
    eps = float(label_smoothing)
    if eps and prep.mode != "multiclass":  # smp's SoftBCE: g -> (1 - e) g + e (1 - g)
        g = prep.dense
        gs = g * (1.0 - 2.0 * eps) + eps
        elem = -(gs * prep.log_probs + (1.0 - gs) * prep.log_probs_neg)
    else:
        elem = voxel_ce(prep)
    w = class_weight_tensor(class_weights, _n_weights(prep), elem.device)
    valid = _valid_weights(prep, elem)
    if w is not None and prep.mode == "multiclass" and prep.labels is None:
        # dense (one-hot / soft) target: PyTorch's probability-target elements with the smoothed
        # target, -sum_c w_c g~_c log p_c, over the unsmoothed target's weight sum_c w_c g_c
        g = prep.dense
        gs = g if not eps else (1.0 - eps) * g + eps / prep.num_classes
        wv = w.to(g.dtype).view((1, -1) + (1,) * (g.ndim - 2))
        num = -(wv * gs * prep.log_probs).sum(1)
        den = (wv * g).sum(1)
        if valid is not None:
            num, den = num * valid, den * valid
        if reduction == "mean":
            return num.sum() / den.sum().clamp_min(1e-12)
        return reduce_loss(num, reduction)
    cw = None if w is None else _voxel_class_weights(prep, w, elem)
    if not eps or prep.mode != "multiclass":
        return reduce_loss(elem, reduction, _times(valid, cw))
    # PyTorch's label smoothing: (1 - e) w_y nll + (e / C) sum_c w_c (-log p_c), divided by sum w_y
    neg_lp = -prep.log_probs
    c = prep.num_classes
    if w is None:
        elem = (1.0 - eps) * elem + eps * neg_lp.mean(1)
        return reduce_loss(elem, reduction, valid)
    num = (1.0 - eps) * cw * elem + (eps / c) * torch.einsum("nc...,c->n...", neg_lp, w.to(neg_lp.dtype))
    den = cw
    if valid is not None:
        num, den = num * valid, den * valid
    if reduction == "mean":
        return num.sum() / den.sum().clamp_min(1e-12)
    return reduce_loss(num, reduction)


def _inverse_frequency(prep: Prepared) -> Tensor:
    """w_c = n_valid / (K * n_c) over the batch (sklearn's "balanced"); absent classes get 0
    (they have no voxel to weight). K = number of classes present."""
    if prep.mode == "multiclass":
        counts = class_sum(prep, torch.ones((prep.batch_size,) + prep.spatial_shape, device=prep.logits.device), batch=True)[0]
    elif prep.mode == "binary":
        v = prep.valid_or_ones().unsqueeze(1)
        pos = (prep.dense * v).sum()
        counts = torch.stack([v.sum() - pos, pos])
    else:
        v = prep.valid_or_ones().unsqueeze(1)
        counts = (prep.dense * v).transpose(0, 1).reshape(prep.num_classes, -1).sum(1)
    present = counts > 0
    k = present.sum().clamp_min(1)
    w = torch.where(present, counts.sum() / (k * counts.clamp_min(1e-12)), torch.zeros_like(counts))
    return w.detach()


@register_loss(
    "wce",
    category="distribution",
    paper="Ma et al. 2021 eq. 2; Ronneberger et al. 2015 arXiv:1505.04597",
    formula="-sum_i w_{g_i} log p_{i,g_i} / sum_i w_{g_i}, w_c = 1/frequency_c by default",
    class_name="WeightedCELoss",
    aliases=("WCELoss",),
)
def wce_loss(prep: Prepared, *, class_weights: Union[str, Weights] = "inverse_frequency", reduction: str = "mean") -> Tensor:
    r"""Weighted cross entropy.

    .. math:: L_{WCE} = -\frac{\sum_i w_{g_i} \log p_{i,g_i}}{\sum_i w_{g_i}}

    ``class_weights``: a sequence (one per class; binary: ``[negative, positive]``), or
    ``"inverse_frequency"`` (default): :math:`w_c = n / (K n_c)` from the current batch, the
    reciprocal of the class frequency as in Ma et al. 2021 sec. 2.1.1 (they used training-set
    frequencies; pass those as a sequence to reproduce exactly). The weighted mean (PyTorch's
    convention) divides by :math:`\sum_i w_{g_i}`.

    Reference: Ma et al. 2021, eq. (2), doi:10.1016/j.media.2021.102035.

    ``reduction="none"``: the per-voxel elements times their class weight, ``(N, *spatial)`` multiclass,
    ``(N, C, *spatial)`` binary / multilabel (ignored voxels hold 0).

    Empty ground truth: absent classes get weight 0 (they have no voxels); a batch of one class
    reduces to plain CE.

    Examples
    --------
    >>> import torch
    >>> from seglosses.functional import wce_loss
    >>> logits = torch.zeros(1, 2, 4)                          # p = 0.5 everywhere
    >>> round(float(wce_loss(logits, torch.tensor([[0, 0, 0, 1]]))), 4)
    0.6931
    """
    if isinstance(class_weights, str):
        check_choice("class_weights", class_weights, ["inverse_frequency"])
        class_weights = _inverse_frequency(prep)
    return ce_loss.core(prep, class_weights=class_weights, reduction=reduction)


@register_loss(
    "balanced_ce",
    category="distribution",
    paper="Xie & Tu 2015 (HED) arXiv:1504.06375; Jadon 2020 II-C",
    formula="-mean_i [beta g log p + (1-beta)(1-g) log(1-p)], beta = fraction of negatives per image",
    class_name="BalancedCELoss",
)
def balanced_ce_loss(prep: Prepared, *, reduction: str = "mean") -> Tensor:
    r"""Balanced cross entropy (Xie & Tu 2015, HED).

    Binary / multilabel, per image n and channel:

    .. math:: L = -\mathrm{mean}_i[\beta g_i \log p_i + (1-\beta)(1-g_i)\log(1-p_i)],
              \quad \beta = 1 - \frac{\sum_i g_i}{|\Omega|}

    (the fraction of negative voxels, Jadon II-C). Multiclass: the per-image weight of class c is
    :math:`1 - f_{n,c}` with :math:`f_{n,c}` the frequency of c in image n;
    :math:`L = -\mathrm{mean}_i (1 - f_{n,g_i}) \log p_{i,g_i}` (a plain mean, not a weighted
    mean, as in the binary formula).

    Reference: Xie & Tu, "Holistically-nested edge detection", ICCV 2015, arXiv:1504.06375.

    ``reduction="none"``: the weighted elements, ``(N, *spatial)`` multiclass,
    ``(N, C, *spatial)`` binary / multilabel (ignored voxels hold 0).

    No hyper-parameter. Empty ground truth: beta = 1, so only the (empty) positive term is
    weighted and the loss is 0: an image without foreground gives no gradient. Use it with a
    region loss or ``ce`` for such data.
    """
    elem = voxel_ce(prep)
    if prep.mode == "multiclass":
        n_valid = prep.n_valid(batch=False).clamp_min(1.0)  # (N,)
        ones = torch.ones((prep.batch_size,) + prep.spatial_shape, device=elem.device)
        freq = class_sum(prep, ones) / n_valid[:, None]  # (N, C)
        w_class = (1.0 - freq).detach()
        if prep.labels is not None:
            w = w_class.gather(1, prep.labels.reshape(prep.batch_size, -1)).view_as(elem)
        else:
            w = torch.einsum("nc...,nc->n...", prep.dense, w_class)
        weighted = w * elem
    else:
        v = prep.valid_or_ones().unsqueeze(1)
        dims = tuple(range(2, elem.ndim))
        pos = (prep.dense * v).sum(dims, keepdim=True)
        beta = (1.0 - pos / v.sum(dims, keepdim=True).clamp_min(1.0)).detach()
        g = prep.dense
        weighted = -(beta * g * prep.log_probs + (1.0 - beta) * (1.0 - g) * prep.log_probs_neg)
    return reduce_loss(weighted, reduction, _valid_weights(prep, weighted))


@register_loss(
    "weighted_bce",
    category="distribution",
    paper="Pihur et al. 2007 doi:10.1093/bioinformatics/btm158; Jadon 2020 II-B",
    formula="-mean_i [beta g log p + (1-g) log(1-p)]",
    modes=("binary", "multilabel"),
    class_name="WeightedBCELoss",
)
def weighted_bce_loss(prep: Prepared, *, beta: Optional[float] = None, reduction: str = "mean") -> Tensor:
    r"""Weighted binary cross entropy (positive voxels weighted by ``beta``).

    .. math:: L = -\mathrm{mean}_i [\beta g_i \log p_i + (1 - g_i) \log(1 - p_i)]

    ``beta > 1`` reduces false negatives, ``beta < 1`` false positives (Jadon II-B).
    Default ``beta=None``: the ratio of negative to positive voxels in the batch, the usual
    ``pos_weight`` heuristic, so that both classes contribute equally (a fixed float reproduces
    a fixed weighting; 1.0 is plain BCE). Binary and multilabel modes only (for a multiclass
    weighting use ``wce``).

    Reference: Jadon 2020, sec. II-B, doi:10.1109/CIBCB48159.2020.9277638.

    ``reduction="none"``: the elements ``(N, C, *spatial)`` (ignored voxels hold 0).

    Empty ground truth: with ``beta=None`` and no positive voxel, beta is taken as 1 (plain BCE).

    Examples
    --------
    >>> import torch
    >>> from seglosses.functional import weighted_bce_loss
    >>> logits = torch.zeros(1, 1, 2)                          # p = 0.5
    >>> round(float(weighted_bce_loss(logits, torch.tensor([[1, 0]]), beta=3.0)), 4)  # (3+1)/2 * log 2
    1.3863
    """
    if beta is None:
        v = prep.valid_or_ones().unsqueeze(1)
        pos = (prep.dense * v).sum()
        neg = v.sum() * prep.num_classes - pos
        beta_t = torch.where(pos > 0, neg / pos.clamp_min(1e-12), torch.ones_like(pos)).detach()
    else:
        check_positive("beta", beta, allow_zero=True)
        beta_t = torch.tensor(float(beta), device=prep.logits.device)
    g = prep.dense
    elem = -(beta_t * g * prep.log_probs + (1.0 - g) * prep.log_probs_neg)
    return reduce_loss(elem, reduction, _valid_weights(prep, elem))


class _FocalFromCE(torch.autograd.Function):
    """``(1 - p_t)^gamma * ce`` with ``p_t = exp(-ce)``, from the per-voxel ``ce`` ``(N, *spatial)``.

    Same value as ``(-expm1(-ce)).clamp_min(eps).pow(gamma) * ce``; the backward is one
    expression, ``m + gamma q^(gamma - 1) p_t ce`` (``q = 1 - p_t``, ``m = q^gamma``, the second
    term dropped where ``q`` was clamped), instead of autograd's chain of five element-wise
    backward ops.
    """

    @staticmethod
    def forward(ctx, ce: Tensor, gamma: float, eps: float):
        q = torch.expm1(-ce).neg_()
        ctx.small = None
        if eps > 0:
            ctx.small = q < eps  # clamp_min passes no gradient there
            q.clamp_min_(eps)
        m = q * q if gamma == 2.0 else q.pow(gamma)
        ctx.gamma, ctx.eps = gamma, eps
        ctx.save_for_backward(ce, q, m)
        return m * ce

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g: Tensor):
        ce, q, m = ctx.saved_tensors
        gamma, eps = ctx.gamma, ctx.eps
        dm = (q * (2.0 * ce)) if gamma == 2.0 else q.pow(gamma - 1.0).mul_(ce).mul_(gamma)  # d m/dq * ce
        dm.mul_(torch.exp(-ce))  # dq/dce = p_t
        if ctx.small is not None:
            dm.masked_fill_(ctx.small, 0.0)
        return dm.add_(m).mul_(g), None, None


@register_loss(
    "topk",
    category="distribution",
    paper="Wu et al. 2016 arXiv:1605.06885; Ma et al. 2021 eq. 4; nnU-Net TopKLoss",
    formula="mean of the k% largest per-voxel CE over all valid voxels of the batch",
    class_name="TopKLoss",
)
def topk_loss(prep: Prepared, *, k: float = 10.0, class_weights: Weights = None, reduction: str = "mean") -> Tensor:
    r"""TopK loss, percentage variant: cross entropy of the k% hardest voxels.

    .. math:: L_{TopK} = \frac{1}{|K|} \sum_{i \in K} \mathrm{CE}_i,
              \quad |K| = \max(1, \lfloor k\,n_{valid} / 100 \rfloor)

    ``K`` = the ``|K|`` voxels with the largest per-voxel CE over the whole batch (voxels and
    samples pooled, as nnU-Net's ``TopKLoss``; ignored voxels never selected). In
    binary/multilabel mode the elements are the per-channel BCE values. ``class_weights``
    multiplies each voxel's CE before selection (nnU-Net: ``RobustCrossEntropyLoss(weight)``).

    Reference: Ma et al. 2021, eq. (4) and sec. 4.2 (k = 10% performed best on the imbalanced
    tasks), doi:10.1016/j.media.2021.102035; Wu et al. 2016 arXiv:1605.06885.

    Defaults: ``k=10`` (percent), Ma et al.'s default. ``reduction="none"`` returns the selected
    losses (1-D), ``"sum"`` their sum.

    Empty ground truth: well defined (the hardest background voxels are selected).
    """
    check_positive("k", k)
    if k > 100:
        raise ValueError(f"k: expected a percentage in (0, 100], got {k!r}")
    elem = voxel_ce(prep)
    w = class_weight_tensor(class_weights, _n_weights(prep), elem.device)
    if w is not None:
        elem = elem * _voxel_class_weights(prep, w, elem)
    flat = elem.reshape(-1)
    valid = _valid_weights(prep, elem)
    if valid is not None:
        vmask = valid.expand_as(elem).reshape(-1) > 0
        n_valid = int(vmask.sum())
        if n_valid == 0:  # everything ignored: 0 with zero gradient
            return reduce_loss(flat[:0], reduction)
        flat = torch.where(vmask, flat, torch.full_like(flat, -1.0))  # CE >= 0: -1 is never selected
    else:
        n_valid = flat.numel()
    n_sel = max(1, int(n_valid * k / 100))
    top = _largest(flat, n_sel)
    return reduce_loss(top, reduction)


def _largest(flat: Tensor, k: int) -> Tensor:
    """The ``k`` largest values of the 1-D ``flat`` (unordered), as ``torch.topk(flat, k).values``.

    ``torch.topk`` over millions of elements costs several softmaxes. For large inputs a
    threshold below the ``k``-th largest value is taken from a strided sample (its
    ``1.25 k / 64 + 64``-th largest), the elements at or above it are compacted, and ``topk`` runs
    on those only. The selection is exact: if fewer than ``k`` elements pass the threshold (a
    sample far from representative), it falls back to the full ``topk``. Same values, same
    gradient (``1/|K|``-style weights on the selected elements, routed through the indexing).
    """
    n = flat.numel()
    step = 64
    if n < 64 * step or 4 * k > n:
        return torch.topk(flat, k, sorted=False).values
    d = flat.detach()
    sample = d[::step]
    m = sample.numel()
    r = min(m, int(1.25 * k / step) + 64)
    t = torch.kthvalue(sample, m - r + 1).values
    cand = (d >= t).nonzero().squeeze(1)  # selection on detached values, integer indices
    if cand.numel() < k:
        return torch.topk(flat, k, sorted=False).values
    top = torch.topk(d.index_select(0, cand), k, sorted=False).indices
    # one gather with integer indices: its backward is an index_add (a boolean mask would run
    # nonzero again in the backward)
    return flat.index_select(0, cand.index_select(0, top))


@register_loss(
    "topk_threshold",
    category="distribution",
    paper="Wu et al. 2016 arXiv:1605.06885; Ma et al. 2021 eq. 3",
    formula="mean CE over voxels whose true-class probability is < t",
    class_name="TopKThresholdLoss",
)
def topk_threshold_loss(prep: Prepared, *, threshold: float = 0.5, reduction: str = "mean") -> Tensor:
    r"""TopK loss, threshold variant (bootstrapped cross entropy).

    .. math:: L = -\frac{\sum_i 1\{p_{i,g_i} < t\} \log p_{i,g_i}}{\sum_i 1\{p_{i,g_i} < t\}}

    Only voxels whose probability of the true class is below ``threshold`` count ("easy" voxels
    are dropped). Binary / multilabel: per channel, the probability of the target value
    (p where g = 1, 1 - p where g = 0). For soft targets the probability is ``exp(-CE_i)``.

    Reference: Ma et al. 2021, eq. (3), doi:10.1016/j.media.2021.102035 (t in {0.1,...,0.9};
    they found the threshold variant less robust than the percentage variant ``topk``).

    Defaults: ``threshold=0.5``, the middle of the range Ma et al. compared.
    When no voxel qualifies (every voxel already confident), the loss is 0 with zero gradient.
    ``reduction="none"``: the per-voxel CE times the selection mask, ``(N, *spatial)`` multiclass,
    ``(N, C, *spatial)`` binary / multilabel.
    """
    check_positive("threshold", threshold)
    if threshold > 1:
        raise ValueError(f"threshold: expected a probability in (0, 1], got {threshold!r}")
    elem = voxel_ce(prep)
    p_true = torch.exp(-elem.detach())  # probability of the target (exact for hard targets)
    hard = (p_true < threshold).float()
    return reduce_loss(elem, reduction, _times(hard, _valid_weights(prep, elem)))


@register_loss(
    "focal",
    category="distribution",
    paper="Lin et al. 2017 arXiv:1708.02002; Ma et al. 2021 eq. 5; Jadon 2020 II-D",
    formula="-mean_i alpha_{g_i} (1 - p_t)^gamma log p_t",
)
def focal_loss(
    prep: Prepared,
    *,
    gamma: float = 2.0,
    alpha: Union[None, float, Sequence[float]] = None,
    alpha_foreground: bool = False,
    include_background: bool = True,
    class_weights: Weights = None,
    reduction: str = "mean",
) -> Tensor:
    r"""Focal loss.

    .. math:: L_{focal} = -\mathrm{mean}_i\, \alpha_{g_i} (1 - p_{t,i})^\gamma \log p_{t,i}

    with :math:`p_t` the probability of the target class (softmax) or of the target value
    (sigmoid: p if g = 1, else 1 - p). ``gamma=0`` and ``alpha=None`` equal ``ce``.

    ``alpha``: ``None`` (no weighting); a sequence of one weight per class (multiclass) or per
    channel (multilabel); in binary / multilabel mode a float is the foreground weight and
    ``1 - alpha`` the background weight (Lin et al.'s alpha_t). In multiclass mode a float needs
    ``alpha_foreground=True``: class 0 then gets ``1 - alpha`` and every other class ``alpha``
    (MONAI's ``FocalLoss(use_softmax=True, alpha=a)``); ``alpha_foreground=True`` anywhere else
    (no float alpha, or binary / multilabel mode) is an error, not silently ignored. ``alpha`` multiplies the elements (the
    mean still divides by the number of elements, as in Lin et al.).

    ``class_weights``: one weight per class (multiclass; binary: ``[negative, positive]``) or per
    channel (multilabel), a *weighted mean* ``sum w v / sum w`` like ``ce`` (so only their ratios
    matter; smp's ``FocalLoss(class_weights=...)``). ``include_background=False`` drops the
    background: channel 0 in multilabel mode (MONAI's ``FocalLoss(include_background=False)``;
    an error in binary mode), the voxels of class 0 in multiclass mode (class weight 0).

    ``reduction="none"``: ``(N, *spatial)`` multiclass, ``(N, C_kept, *spatial)`` binary /
    multilabel, weighted by ``class_weights`` where given.

    Reference: Lin et al. 2017, "Focal loss for dense object detection", arXiv:1708.02002;
    Ma et al. 2021 eq. (5).

    Defaults: ``gamma=2`` (best in Lin et al.), ``alpha=None`` (Ma et al. eq. 5 has no alpha).
    Convention difference: MONAI's ``FocalLoss(use_softmax=True)`` averages over classes too, so
    its value is ours divided by C; ours is a mean over voxels, like ``ce``. MONAI's default
    ``FocalLoss()`` (sigmoid per channel) is ``focal`` in multilabel mode, and smp's
    ``FocalLoss(mode="multiclass")`` (sigmoid, one class against the rest) is ``sigmoid_focal``.

    Empty ground truth: well defined; an all-ignored batch gives 0 with zero gradient.

    Examples
    --------
    >>> import torch
    >>> from seglosses.functional import focal_loss
    >>> logits = torch.zeros(1, 2, 1)                 # p_t = 0.5: (0.5)^2 * log 2
    >>> round(float(focal_loss(logits, torch.tensor([[0]]))), 4)
    0.1733
    """
    check_positive("gamma", gamma, allow_zero=True)
    eps = 1e-12 if gamma < 1 else 0.0  # (1 - p)^gamma has an infinite slope at p = 1 when gamma < 1
    if prep.mode == "multiclass" and prep.labels is not None:
        ce_elem = voxel_ce(prep)
        elem = ce_elem if not gamma else _FocalFromCE.apply(ce_elem, float(gamma), eps)
    elif prep.mode == "multiclass":  # soft target: -sum_c g_c (1 - p_c)^gamma log p_c
        mod = (1.0 - prep.probs).clamp_min(eps).pow(gamma) if gamma else 1.0
        elem = -(prep.dense * mod * prep.log_probs).sum(1)
    else:  # sigmoid: p_t = p g + (1 - p)(1 - g)
        g, p = prep.dense, prep.probs
        ce_elem = voxel_ce(prep)
        p_t = p * g + (1.0 - p) * (1.0 - g)
        elem = ce_elem if not gamma else (1.0 - p_t).clamp_min(eps).pow(gamma) * ce_elem
    if alpha_foreground and not (isinstance(alpha, (int, float)) and prep.mode == "multiclass"):
        raise ValueError(
            f"alpha_foreground: True applies to a float alpha in multiclass mode only (class 0 gets "
            f"1 - alpha, the others alpha); got alpha={alpha!r} in {prep.mode} mode, where it would be "
            f"ignored: pass alpha_foreground=False"
        )
    if alpha is not None:
        if isinstance(alpha, (int, float)) and not 0 <= alpha <= 1:
            raise ValueError(f"alpha: expected a float in [0, 1], got {alpha!r}")
        if isinstance(alpha, (int, float)) and prep.mode == "multiclass":
            if not alpha_foreground:
                raise ValueError(
                    f"alpha: a float foreground weight needs alpha_foreground=True in multiclass mode "
                    f"(class 0 gets 1 - alpha, the others alpha, as MONAI's FocalLoss(use_softmax=True)); "
                    f"or give one weight per class ({prep.num_classes}), got {alpha!r}"
                )
            alpha = [1.0 - alpha] + [float(alpha)] * (prep.num_classes - 1)
        if isinstance(alpha, (int, float)):
            g = prep.dense
            elem = elem * (alpha * g + (1 - alpha) * (1.0 - g))
        else:
            w = class_weight_tensor(alpha, prep.num_classes, elem.device, name="alpha")
            if prep.mode == "multiclass":
                elem = elem * _voxel_class_weights(prep, w, elem)
            else:
                elem = elem * w.view((1, -1) + (1,) * (elem.ndim - 2))
    weights = _valid_weights(prep, elem)
    cw = class_weight_tensor(class_weights, _n_weights(prep), elem.device)
    if prep.mode == "multiclass":
        if background_dropped(prep, include_background):
            cw = torch.ones(prep.num_classes, device=elem.device) if cw is None else cw.clone()
            cw[0] = 0.0
        if cw is not None:
            weights = _times(weights, _voxel_class_weights(prep, cw, elem))
        return reduce_loss(elem, reduction, weights)
    if cw is not None:
        weights = _times(weights, _voxel_class_weights(prep, cw, elem).expand_as(elem))
    if background_dropped(prep, include_background):
        elem = keep_classes(elem, prep, include_background)
        if weights is not None:
            weights = keep_classes(weights.expand(prep.logits.shape), prep, include_background)
    return reduce_loss(elem, reduction, weights)


@register_loss(
    "sigmoid_focal",
    category="distribution",
    paper="Lin et al. 2017 arXiv:1708.02002 (sigmoid form, sec. 3.1); smp FocalLoss(mode='multiclass')",
    formula="focal loss of one sigmoid per class against the rest, mean over (voxel, class) elements",
    one_vs_rest=True,
)
def sigmoid_focal_loss(
    prep: Prepared,
    *,
    gamma: float = 2.0,
    alpha: Union[None, float, Sequence[float]] = None,
    include_background: bool = True,
    class_weights: Weights = None,
    reduction: str = "mean",
) -> Tensor:
    r"""One-vs-rest sigmoid focal loss.

    .. math:: L = -\mathrm{mean}_{i, c}\, \alpha_t (1 - p_{t,ic})^\gamma \log p_{t,ic},
              \quad p_{ic} = \sigma(z_{ic})

    Each class is a binary problem against the rest: a sigmoid per channel on the logits, the
    target of channel c is ``[label == c]`` (a multiclass label map or one-hot target becomes one
    binary channel per class), and :func:`focal_loss` is applied in multilabel mode. This is the
    sigmoid focal loss of Lin et al. (their detector's form) and segmentation_models_pytorch's
    ``FocalLoss(mode="multiclass")`` (its ``alpha`` and ``class_weights`` included); in binary and
    multilabel mode it equals ``focal``.

    Reference: Lin et al. 2017, "Focal loss for dense object detection", arXiv:1708.02002.

    Defaults: ``gamma=2`` (Lin et al.), ``alpha=None``, ``include_background=True`` (smp's
    convention; ``False`` drops channel 0). ``class_weights``: weighted mean over the channels.
    ``reduction="none"``: ``(N, C_kept, *spatial)``.

    Empty ground truth: well defined (every channel is a binary problem on every voxel).

    Examples
    --------
    >>> import torch
    >>> from seglosses.functional import sigmoid_focal_loss
    >>> logits = torch.zeros(1, 2, 1)                 # p = 0.5 per channel: (0.5)^2 * log 2
    >>> round(float(sigmoid_focal_loss(logits, torch.tensor([[0]]))), 4)
    0.1733
    """
    return focal_loss.core(
        prep.one_vs_rest(), gamma=gamma, alpha=alpha, include_background=include_background,
        class_weights=class_weights, reduction=reduction,
    )


# ----------------------------------------------------------------------------- distance-map penalized CE

@register_loss(
    "dpce",
    category="distribution",
    paper="Caliva et al. 2019 arXiv:1908.03679; Ma et al. 2021 eq. 6; Jadon 2020 II-L",
    formula="-mean_i sum_c (1 + D_ic) g_ic log p_ic, D = penalty_map(g) in [0, 1]",
    needs_distance_map=True,
    call_args=("distance_map",),
    class_name="DistancePenalizedCELoss",
    aliases=("DPCELoss",),
)
def dpce_loss(
    prep: Prepared, *, spacing: Spacing = None, reduction: str = "mean", distance_map: Optional[Tensor] = None
) -> Tensor:
    r"""Distance-map penalized cross entropy (DPCE).

    .. math:: L_{DPCE} = -\frac{1}{N} \sum_i \sum_c (1 + D_{ic})\, g_{ic} \log p_{ic}

    (Ma et al. eq. 6; mean over the voxels that are not ignored). D is
    :func:`seglosses.distance.penalty_map` of the target: in [0, 1], 1 next to the ground-truth
    boundary on both sides, decreasing linearly to 0 at the farthest voxel of each side (see its
    docstring for the exact formula and why). A label-map voxel of class c is weighted by
    ``1 + D_c`` at that voxel (the inside part of its class's map). Binary / multilabel: the
    per-channel binary cross entropy weighted by ``1 + D`` (both sides of the map count).
    The ``1 +`` keeps the plain cross entropy as a floor, so the weighting never vanishes.

    ``distance_map``: the precomputed ``penalty_map`` ``(N, C, *spatial)`` (same ``spacing``).
    ``reduction="none"``: the weighted per-voxel elements, ``(N, *spatial)`` multiclass,
    ``(N, C, *spatial)`` binary / multilabel (ignored voxels hold 0).

    Reference: Caliva et al., "Distance map loss penalty term for semantic segmentation", MIDL
    2019, arXiv:1908.03679; Ma et al. 2021 eq. (6), doi:10.1016/j.media.2021.102035.

    Defaults: ``spacing=None`` (voxel units). Not reproduced from the published code: its
    ``DisPenalizedCE`` returns the unweighted mean (plain CE), and its penalty map is NaN for an
    empty ground truth. Here the loss is a real weighting (tested to differ from ``ce``), and an
    empty or full mask has a zero map, so that class's voxels get plain CE.

    Examples
    --------
    >>> import torch
    >>> from seglosses.functional import dpce_loss
    >>> logits = torch.zeros(1, 1, 10)                     # binary, p = 0.5 everywhere
    >>> target = torch.tensor([[0, 0, 0, 1, 1, 1, 1, 1, 1, 0]])
    >>> round(float(dpce_loss(logits, target)), 4)        # (1 + mean D) log 2, mean D = 0.55
    1.0744
    """
    elem = voxel_ce(prep)
    if distance_map is None:
        d = _maps("penalty", _target_masks(prep, list(range(prep.num_classes))), spacing, elem)
    else:
        d = _given_map(distance_map, prep, "penalty", elem)
    if prep.mode != "multiclass":
        elem = (1.0 + d) * elem
    elif prep.labels is not None:
        elem = (1.0 + true_class(prep, d)) * elem
    else:
        elem = -(prep.dense * (1.0 + d) * prep.log_probs).sum(1)
    return reduce_loss(elem, reduction, _elem_weights(prep, elem))


# ----------------------------------------------------------------------------- structural similarity (cmss)

@register_loss(
    "cmss",
    category="distribution",
    paper="Zhao et al. 2019 arXiv:1910.08711; Jadon 2020 II-N",
    formula="sum(e f CE) / sum(f), e = |(y-mu_y+C4)/(sigma_y+C4) - (p-mu_p+C4)/(sigma_p+C4)|, f = 1{e > beta e_max}",
    class_name="CMSSLoss",
)
def cmss_loss(
    prep: Prepared,
    *,
    window_size: int = 3,
    c4: float = 0.01,
    beta: float = 0.1,
    reduction: str = "mean",
) -> Tensor:
    r"""Correlation-maximised structural similarity loss (SSL).

    Per sample n, class c and voxel i, with local mean :math:`\mu` and standard deviation
    :math:`\sigma` over the ``window_size``-wide square / cube centred on i (population
    statistics over the voxels inside the image and not ignored):

    .. math::

        e &= \left| \frac{y - \mu_y + C_4}{\sigma_y + C_4} - \frac{p - \mu_p + C_4}{\sigma_p + C_4} \right| \\
        f &= 1\{e > \beta\, e_{max}\} \\
        L &= \frac{\sum_{n,c,i} e\, f\, \mathrm{CE}}{\sum_{n,c,i} f}

    y is the one-hot target (the float target as given), p the probabilities; CE the per-class
    cross entropy element: :math:`-y_c \log p_c` (multiclass: summed over c it is the usual CE)
    or the binary cross entropy of channel c (binary / multilabel). :math:`e_{max}` is the
    largest e over the mini-batch (all samples, classes and valid voxels), so f keeps the voxels
    whose local structure correlates worst, and M = sum f counts them over the mini-batch, as in
    Jadon's formula.

    e is a coefficient that carries a gradient (minimising e raises the local correlation
    between p and y: the "correlation maximised" of the title); f is a hard selection (no
    gradient). sigma is 0, with zero gradient, where the variance is 0.

    Precision: the window sums of ``w p`` and ``w p^2`` are float64 (exact for float32 data), so
    ``mu`` and ``E[p^2] - mu^2`` are exact to float64 rounding (``E[x^2] - E[x]^2`` cancels
    badly in float32 over a constant or nearly constant window) and the variance of a constant
    window is exactly 0. The rest runs in float32 (float64 for float64 input), with a
    hand-written backward whose window sums ``sum_i beta_i (p_j - p_i)`` are built from
    differences of neighbouring voxels, so that they do not cancel either. A {0, 1} target's map
    comes from exact integer window counts and equals a {0, 1} prediction's bit for bit
    (``p == y`` gives ``e = 0``). Values and gradients match a float64 implementation of the
    formula to float32 rounding (``tests/test_cmss.py``: 1e-5 of the loss, 2e-5 of the largest
    gradient, constant and nearly constant windows included).

    Reference: Zhao, Wu, Chu, Hu & Cai, "Correlation maximized structural similarity loss for
    semantic segmentation", arXiv:1910.08711, 2019; Jadon 2020 sec. II-N,
    doi:10.1109/CIBCB48159.2020.9277638.

    Defaults: ``c4=0.01`` and ``beta=0.1`` (Zhao et al., via Jadon); ``window_size=3`` (our
    choice: the smallest window centred on the voxel, 3x3 in 2D and 3x3x3 in 3D, the most local
    structure at the lowest cost; any odd size works).

    Empty ground truth: y is constant, so its normalised map is 1 wherever the window is
    constant; the loss stays finite. When no element qualifies (e = 0 everywhere, e.g. a
    prediction equal to the target) the loss is 0 with zero gradient.

    ``reduction``: ``"mean"`` as above, ``"sum"`` the numerator, ``"none"`` the elements
    ``e f CE`` ``(N, C, *spatial)``.

    Examples
    --------
    >>> import torch
    >>> from seglosses.functional import cmss_loss
    >>> target = torch.tensor([[0, 1, 1, 0]])
    >>> float(cmss_loss(target.float().unsqueeze(1), target, from_logits=False))  # p == y: e = 0
    0.0
    """
    if not isinstance(window_size, int) or window_size < 1 or window_size % 2 == 0:
        raise ValueError(f"window_size: expected an odd positive int, got {window_size!r}")
    check_positive("c4", c4)
    check_positive("beta", beta, allow_zero=True)
    if beta > 1:
        raise ValueError(f"beta: expected a fraction of e_max in [0, 1], got {beta!r}")
    fused = prep.mode == "multiclass" and prep.labels is not None and reduction in ("mean", "sum")
    # -log p_label (N, *spatial) first: the compiled kernels then compute it with the softmax
    nll = voxel_ce(prep) if fused else None
    p = prep.probs
    n, c = p.shape[:2]
    spatial = tuple(p.shape[2:])
    win = _Windows(n, c, spatial, window_size // 2, c4, prep.valid, p.dtype, p.device)
    target = _Target(prep, win)
    if fused:
        return _CmssLabelMap.apply(p, nll, target, win, float(beta), reduction == "mean")
    e = _StructureError.apply(p.reshape((n * c,) + spatial), target, win).view(p.shape)  # 0 where ignored
    if prep.mode == "multiclass":
        ce = -(prep.onehot() * prep.log_probs)
    else:
        ce = voxel_ce(prep)
    with torch.no_grad():
        e_max = e.max() if e.numel() else e.sum()
        f = (e > beta * e_max).to(p.dtype)
    return reduce_loss(e * ce, reduction, f)
