"""Compound losses: every compound formula of the library, in one place (Ma et al. 2021 sec. 2.4;
Jadon 2020 II-J, II-K).

Two kinds live here:

* **Named weighted sums** (``dice_ce``, ``dice_focal``, ``dice_topk``, ``dice_cldice``, and the scheduled
  ``dice_bd``, ``dice_hd``; end of this file): *names* for a weighted sum of registered terms,
  registered with :func:`seglosses.registry.register_compound` and built as one
  :class:`seglosses.losses.compound.CompoundLoss` (the combinator, which lives with the module
  forms). Their weight schedules are in :mod:`seglosses.losses.schedules`.
* **Losses with a formula of their own** (``combo``, ``ell``, ``unified_focal``). These mix their terms inside
  one formula -- Combo loss reweights the two halves of a one-vs-rest binary cross entropy, the
exponential logarithmic loss transforms Dice and CE before adding them -- so they are written as
one function each, on top of the same primitives (:func:`seglosses._stats.soft_stats`,
:func:`seglosses.functional.distribution.voxel_ce`).

Both return one loss per sample (``reduction="none"``: ``(N,)``), or one for the whole batch with
``batch=True`` (``(1,)``): the cross-entropy half is averaged over the voxels of that sample (of
the batch), the Dice half over its classes. ``"mean"`` averages the samples, ``"sum"`` adds them.
``ddp=True``: with ``batch=True`` both halves pool the global batch of DistributedDataParallel
(sums and voxel counts all-reduced, :mod:`seglosses._ddp`); ELL's label frequencies are those of
the global batch whatever ``batch``.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import Tensor

from .._checks import check_fraction, check_positive, check_reduction
from .._contract import Prepared
from .._reduce import class_weight_tensor, keep_classes, reduce_loss
from .._ddp import all_reduce_sum
from .._stats import SoftStats, _fused_softmax, batch_sum, native_stats, neg_log_true_class, soft_stats
from ..registry import register_compound, register_loss
from .distribution import voxel_ce
from .region import dice_score_from_stats

__all__ = ["combo_loss", "ell_loss", "log1m_probs", "unified_focal_loss"]

Weights = Union[None, Sequence[float], Tensor]


# ----------------------------------------------------------------------------- shared pieces

def log1m_probs(prep: Prepared) -> Tensor:
    """``log(1 - p)`` per channel, finite and accurate for p -> 1.

    Binary / multilabel: ``logsigmoid(-x)`` (:attr:`Prepared.log_probs_neg`). Multiclass: where
    ``p <= 1/2``, ``1 - p`` is accurate; at most one channel per voxel has ``p > 1/2``, and there
    ``1 - p`` is computed as the sum of the *other* probabilities (no cancellation, accurate even
    when ``p`` rounds to 1). Clamped at the smallest normal number of
    the dtype (``log >= -87`` in float32; PyTorch's BCE clamps at -100) so that logits of any
    magnitude give finite values and gradients. The gradient of ``-log(1 - p_c)`` is bounded
    (``p_c`` w.r.t. logit c), as is the exact function's.
    """
    if prep.mode != "multiclass":
        return prep.log_probs_neg
    p = prep.probs
    top = p > 0.5
    others = p.masked_fill(top, 0.0).sum(1, keepdim=True)  # for a voxel with a top channel: 1 - p_top
    q = torch.where(top, others, 1.0 - p)
    return torch.log(q.clamp_min(torch.finfo(q.dtype).tiny))


def _per_row_mean(values: Tensor, prep: Prepared, batch: bool, per_voxel: int, ddp: bool = False) -> Tensor:
    """Mean of per-voxel ``values`` ``(N, *spatial)`` over the valid voxels of each sample ``(N,)``
    (of the batch ``(1,)`` with ``batch``; of the global batch with ``ddp`` too), divided by
    ``per_voxel`` (channels per voxel)."""
    n = prep.batch_size
    v = values.reshape(n, -1)
    if prep.valid is not None:
        v = v * prep.valid.reshape(n, -1).to(v.dtype)
    total = v.sum(1)
    count = prep.n_valid(batch=False).to(v.dtype)
    total, count = batch_sum((total, count), batch=batch, ddp=ddp)
    return total / (count * per_voxel).clamp_min(1e-12)


def _pow_linear(x: Tensor, gamma: float, eps: float = 1e-6) -> Tensor:
    """``x ** gamma`` for ``x >= 0``; for ``gamma < 1`` linear below ``eps`` (finite slope at 0).

    ``x^gamma`` has an infinite slope at 0 when ``gamma < 1`` (a NaN gradient for a perfectly
    predicted voxel or class). Below ``eps`` it is replaced by the chord ``x * eps^(gamma - 1)``:
    continuous, 0 at 0, slope at most ``eps^(gamma - 1)`` (~ 1.6e4 for gamma = 0.3). Negative
    ``x`` (rounding) counts as 0, with zero gradient.
    """
    if gamma >= 1:
        return x.clamp_min(0).pow(gamma)
    return _PowLinear.apply(x, float(gamma), float(eps))


class _PowLinear(torch.autograd.Function):
    """:func:`_pow_linear` for ``gamma < 1`` with a one-expression backward.

    ``x^gamma = exp(gamma log x)`` (half the time of ``pow`` on the CPU) and its derivative
    ``gamma x^gamma / x`` reuses the forward's value instead of a second power (autograd's
    ``pow`` backward computes ``x^(gamma - 1)``). The chord below ``eps`` is applied only where
    some ``x`` is that small (checked once; on CUDA always, to avoid a synchronisation)."""

    @staticmethod
    def forward(ctx, x: Tensor, gamma: float, eps: float):
        xc = x.clamp_min(eps)
        y = torch.log(xc).mul_(gamma).exp_()
        small = x < eps
        ctx.any_small = x.device.type != "cpu" or bool(small.any())
        slope = eps ** (gamma - 1.0)
        if ctx.any_small:
            y = torch.where(small, x.clamp_min(0.0) * slope, y)
            ctx.save_for_backward(xc, y, x)
        else:
            ctx.save_for_backward(xc, y)
        ctx.gamma, ctx.eps, ctx.slope = gamma, eps, slope
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g: Tensor):
        xc, y = ctx.saved_tensors[:2]
        d = (y * g).div_(xc).mul_(ctx.gamma)  # gamma x^gamma / x
        if ctx.any_small:
            x = ctx.saved_tensors[2]
            chord = torch.where(x > 0, g * ctx.slope, torch.zeros_like(g))
            d = torch.where(x < ctx.eps, chord, d)
        return d, None, None


# ----------------------------------------------------------------------------- Combo

@register_loss(
    "combo",
    category="compound",
    paper="Taghanaki et al. 2019 arXiv:1805.02798 (doi:10.1016/j.compmedimag.2019.04.005); Jadon 2020 II-J",
    formula="alpha * -mean[beta g log p + (1-beta)(1-g) log(1-p)] + (1-alpha) * (1 - Dice)",
)
def combo_loss(
    prep: Prepared,
    *,
    alpha: float = 0.5,
    beta: float = 0.5,
    smooth: float = 1e-5,
    batch: bool = False,
    ddp: bool = False,
    include_background: bool = True,
    reduction: str = "mean",
) -> Tensor:
    r"""Combo loss: a modified (weighted) binary cross entropy plus the Dice loss.

    .. math:: L = \alpha\,\Big[-\frac{1}{|\Omega| C}\sum_{i,c} \beta\, g_{ic}\log p_{ic}
              + (1-\beta)(1-g_{ic})\log(1-p_{ic})\Big] + (1-\alpha)\,L_{Dice}

    Binary mode: the single sigmoid channel. Multiclass: one-vs-rest, each softmax channel is
    treated as a binary prediction of its class (``C`` terms per voxel, averaged); multilabel: per
    sigmoid channel. ``L_Dice`` is :func:`~seglosses.functional.dice_loss` with the same
    ``smooth``, ``batch`` and ``include_background`` (the latter also drops channel 0 from the
    cross-entropy half). ``beta > 0.5`` penalises false negatives more, ``beta < 0.5`` false
    positives.

    Reference: Taghanaki et al. 2019, "Combo loss: handling input and output imbalance in
    multi-organ segmentation", Comput. Med. Imaging Graph. 75, arXiv:1805.02798; Jadon 2020 II-J.

    Defaults: ``alpha=0.5``, ``beta=0.5`` (equal weights; Taghanaki et al. tune both per task).

    Known defects not reproduced: the reference code adds ``-Dice`` (a negative score) instead of
    the Dice loss; Jadon's II-J formula has a typo (``beta (y - log p)``). Here the Dice half is
    ``1 - Dice`` so the loss is >= 0 and 0 for a perfect prediction. ``log(1 - p)`` is computed
    stably (:func:`log1m_probs`); the reference clips p to ``[eps, 1 - eps]`` instead.

    ``reduction="none"``: one value per sample ``(N,)`` (``(1,)`` with ``batch``).

    Empty ground truth: the cross-entropy half is well defined; the Dice half is as in
    ``dice_loss`` (0 for an absent class predicted absent). An all-ignored sample gives 0.

    Examples
    --------
    >>> import torch
    >>> from seglosses.functional import combo_loss
    >>> probs = torch.tensor([[[0.5, 0.5]]])                      # binary, 2 voxels
    >>> target = torch.tensor([[1, 0]])                           # BCE half: 0.5*log 2, Dice 0.5
    >>> round(float(combo_loss(probs, target, from_logits=False, smooth=0.0)), 4)  # 0.5*0.3466 + 0.5*0.5
    0.4233
    """
    check_fraction("alpha", alpha)
    check_fraction("beta", beta)
    check_positive("smooth", smooth, allow_zero=True)
    check_reduction(reduction)
    keep_from = 0 if include_background else 1
    nat = native_stats(prep, want_nll=True, l1m_from=keep_from) if prep.labels is not None else None
    if nat is not None and nat.l1m is not None and nat.l1m_from == keep_from and nat.nll is not None:
        # compiled kernels: -log p_true and sum_{c kept, c != l} log(1 - p_c) from the shared pass
        lp_true = nat.nll.view(prep.labels.shape).neg()
        if keep_from:  # the true-class term counts only for kept (foreground) labels
            lp_true = lp_true * (prep.labels != 0).to(lp_true.dtype)
        elem = beta * lp_true + (1.0 - beta) * nat.l1m.view(prep.labels.shape)
        n_channels = prep.num_classes - keep_from
    elif _fused_softmax(prep, None):
        lp_true = -neg_log_true_class(prep)
        elem = _OneVsRestBCE.apply(prep.logits.to(prep.dtype), prep.probs.detach(), lp_true, prep.labels, keep_from, beta)
        n_channels = prep.num_classes - keep_from
    elif prep.mode == "multiclass" and prep.labels is not None:
        lq = log1m_probs(prep)
        lab = prep.labels.unsqueeze(1)
        lp_true = -neg_log_true_class(prep)  # shares the softmax; fused backward
        lq_true = lq.gather(1, lab).squeeze(1)
        lq_kept = lq if include_background else lq[:, 1:]
        elem = beta * lp_true + (1.0 - beta) * (lq_kept.sum(1) - lq_true)
        if not include_background:  # the true-class terms count only for kept (foreground) labels
            fg = prep.labels != 0
            elem = torch.where(fg, elem, (1.0 - beta) * lq_kept.sum(1))
        n_channels = lq_kept.shape[1]
    else:
        lq = log1m_probs(prep)
        g = prep.dense
        lp = prep.log_probs
        per_channel = beta * g * lp + (1.0 - beta) * (1.0 - g) * lq
        per_channel = keep_classes(per_channel, prep, include_background)
        elem = per_channel.sum(1)
        n_channels = per_channel.shape[1]
    bce = _per_row_mean(-elem, prep, batch, n_channels, ddp)
    st = soft_stats(prep, batch=batch, ddp=ddp)
    dice = keep_classes(1.0 - dice_score_from_stats(st, smooth), prep, include_background).mean(1)
    return reduce_loss(alpha * bce + (1.0 - alpha) * dice, reduction)


class _OneVsRestBCE(torch.autograd.Function):
    """Per voxel ``F_i = sum_{c in K} [beta g_ic log p_ic + (1 - beta)(1 - g_ic) log(1 - p_ic)]``
    for a softmax ``p`` of logits ``z`` and a label map (K = channels from ``keep_from`` on).

    Forward: ``log(1 - p)`` as in :func:`log1m_probs`; ``log p`` of the true class is given
    (accurate, from :func:`~seglosses._stats.neg_log_true_class`). Backward straight to the
    logits: with ``alpha_c = beta`` on the true class, ``-(1 - beta) p_c / (1 - p_c)`` on the
    other kept classes, ``dF/dz_k = alpha_k - p_k sum_c alpha_c``. The one channel a voxel may
    have with ``p_t > 1/2`` (a confident wrong class) would make ``alpha_t`` huge and the
    difference cancel; it is handled in closed form,
    ``dF/dz_t = -(1 - beta) p_t - p_t A'`` and ``+ (1 - beta) p_k p_t / q_t`` on the others
    (``A'`` the sum of the other alphas, ``q_t = 1 - p_t`` the sum of the other probabilities),
    so the gradient is exact and bounded for logits of any magnitude.
    """

    @staticmethod
    def forward(ctx, z: Tensor, p: Tensor, lp_true: Tensor, lab: Tensor, keep_from: int, beta: float):
        k0 = keep_from
        lab1 = lab.unsqueeze(1)
        tiny = torch.finfo(p.dtype).tiny
        top = p > 0.5  # at most one channel per voxel
        pm = torch.where(top, 0.0, p)  # p off the top channel
        others = pm.sum(1)  # = 1 - p_top (accurate) where a voxel has a top channel
        qn = 1.0 - pm  # 1 - p off the top channel (>= 1/2), 1 on it
        kept = qn[:, k0:]
        if kept.shape[1] <= 100:  # a product of factors >= 1/2 cannot underflow: one log per voxel
            log_q = torch.log(kept.prod(1))
        else:
            log_q = torch.log(kept).sum(1)
        p_max = p[:, k0:].amax(1)
        p_true = p.gather(1, lab1).squeeze(1)
        top_kept = p_max > 0.5
        log_others = torch.log(others.clamp_min(tiny))
        log_q = torch.where(top_kept, log_q + log_others, log_q)  # + log(1 - p_top)
        lq_true = torch.where(p_true > 0.5, log_others, torch.log(1.0 - p_true))
        true_kept = lab >= k0
        value = (1.0 - beta) * log_q + torch.where(true_kept, beta * lp_true - (1.0 - beta) * lq_true, torch.zeros_like(lq_true))
        # a kept top channel that is not the true class (a confident error): p_t, else 0
        p_wrong = torch.where(top_kept & (p_true <= 0.5), p_max, torch.zeros_like(p_max))
        ctx.keep_from, ctx.beta = k0, beta
        ctx.save_for_backward(p, pm, top, others, p_wrong, lab1, true_kept)
        return value

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g: Tensor):
        p, pm, top, others, p_wrong, lab1, true_kept = ctx.saved_tensors
        beta, k0 = ctx.beta, ctx.keep_from
        tiny = torch.finfo(p.dtype).tiny
        alpha = pm / (1.0 - pm)  # p / (1 - p) off the top channel, 0 on it
        alpha.mul_(-(1.0 - beta))
        if k0:
            alpha[:, :k0] = 0.0
        alpha.scatter_(1, lab1, torch.where(true_kept, beta, 0.0).unsqueeze(1).to(alpha.dtype))
        a_rest = alpha.sum(1, keepdim=True)  # A'
        u = ((1.0 - beta) * p_wrong / others.clamp_min(tiny)).unsqueeze(1)  # (1 - beta) p_t / q_t
        # off the wrong top channel t: alpha_k - p_k (A' - u); on it: -(1 - beta) p_t - p_t A'.
        # pm (p with the top channel zeroed) keeps the large u off the top entry (no cancellation).
        grad = alpha.addcmul_(pm, u).addcmul_(p, a_rest, value=-1.0)
        grad.addcmul_(top.to(grad.dtype), p_wrong.unsqueeze(1), value=-(1.0 - beta))
        return grad.mul_(g.unsqueeze(1)), None, None, None, None, None


# ----------------------------------------------------------------------------- ELL

def _binary_label_counts(prep: Prepared) -> Tensor:
    """Voxel counts ``(2,)`` of labels (0, 1) in the batch (binary mode); ignored voxels do not count."""
    v = prep.valid_or_ones().unsqueeze(1).to(prep.dtype)
    pos = (prep.dense * v).sum()
    return torch.stack([v.sum() - pos, pos])


def _label_frequency_weights(counts: Tensor) -> Tensor:
    """w_l = (sum_k f_k / f_l)^0.5 from the label counts ``counts`` ``(L,)`` of the batch; 0 for absent labels.

    Multiclass / multilabel: the per-class (soft) voxel counts of the batch (the Dice statistics'
    ``sum g`` summed over samples); binary: :func:`_binary_label_counts`. Under DDP
    (``ddp=True``) the counts of the global batch.
    """
    present = counts > 0
    w = torch.where(present, (counts.sum() / counts.clamp_min(1e-12)).sqrt(), torch.zeros_like(counts))
    return w.detach()


@register_loss(
    "ell",
    category="compound",
    paper="Wong et al. 2018 arXiv:1809.00076 (doi:10.1007/978-3-030-00931-1_70); Ma et al. 2021 eq. 23; Jadon 2020 II-K",
    formula="w_dice mean_c[(-ln Dice_c)^gamma_dice] + w_cross mean_i[w_{g_i} (-ln p_{i,g_i})^gamma_cross]",
    modes=("multiclass", "binary"),
    class_name="ExpLogLoss",
)
def ell_loss(
    prep: Prepared,
    *,
    w_dice: float = 0.8,
    w_cross: float = 0.2,
    gamma_dice: float = 0.3,
    gamma_cross: float = 0.3,
    smooth: float = 1.0,
    batch: bool = False,
    ddp: bool = False,
    include_background: bool = True,
    class_weights: Union[None, Sequence[float], Tensor] = None,
    reduction: str = "mean",
) -> Tensor:
    r"""Exponential logarithmic loss.

    .. math:: L = w_{dice}\,\mathrm{mean}_c\big[(-\ln \mathrm{Dice}_c)^{\gamma_{dice}}\big]
              + w_{cross}\,\mathrm{mean}_i\big[w_{g_i} (-\ln p_{i,g_i})^{\gamma_{cross}}\big],
              \quad \mathrm{Dice}_c = \frac{2\sum_i p_{ic} g_{ic} + s}{\sum_i (p_{ic} + g_{ic}) + s}

    per sample (``batch=True``: once over the batch), the Dice term averaged over the kept
    classes (``include_background`` applies to it), the cross term over the valid voxels. Label
    weights :math:`w_l = (\sum_k f_k / f_l)^{0.5}` with :math:`f_k` the number of voxels of label
    k in the batch (computed per call, as constants), or ``class_weights`` (binary: two weights
    ``[background, foreground]``; pass training-set weights to reproduce Wong et al. exactly).
    Binary mode: the single sigmoid channel for the Dice term, labels {0, 1} for the cross term.

    Reference: Wong, Moradi, Tang & Syeda-Mahmood 2018, "3D segmentation with exponential
    logarithmic loss for highly unbalanced object sizes", MICCAI, arXiv:1809.00076;
    Ma et al. 2021 eq. (23); Jadon 2020 II-K.

    Defaults: ``w_dice=0.8``, ``w_cross=0.2``, ``gamma_dice=gamma_cross=0.3`` (Wong et al.'s
    best setting), ``smooth=1`` (Wong et al.'s epsilon; with a tiny ``smooth`` an absent class
    predicted slightly present has ``-ln Dice`` of ~10 and dominates the loss).

    Numerics: :math:`x^{0.3}` has an infinite slope at ``x = 0`` (a perfectly predicted class or
    voxel), so below ``x = 1e-6`` the power is replaced by its chord (continuous, 0 at 0, slope
    at most ``1e-6^(gamma - 1)``): finite gradients, values exact above 1e-6.

    ``reduction="none"``: one value per sample ``(N,)`` (``(1,)`` with ``batch``).

    Empty ground truth: an absent class has ``Dice = s / (sum p + s)`` (1 when nothing is
    predicted); its label weight is never used by the cross term. An all-ignored sample gives 0.

    Examples
    --------
    >>> import torch
    >>> from seglosses.functional import ell_loss
    >>> probs = torch.tensor([[[0.5, 0.5]]])                  # binary; Dice = 1/2 with s = 0
    >>> target = torch.tensor([[1, 0]])                       # -ln p = ln 2 at both voxels, w = (1, 1)
    >>> v = ell_loss(probs, target, from_logits=False, smooth=0.0, gamma_dice=1.0, gamma_cross=1.0,
    ...              class_weights=[1.0, 1.0])
    >>> round(float(v), 4)                                    # (0.8 + 0.2) * ln 2
    0.6931
    """
    for name, value in (("w_dice", w_dice), ("w_cross", w_cross), ("gamma_dice", gamma_dice), ("gamma_cross", gamma_cross)):
        check_positive(name, value, allow_zero=name.startswith("w_"))
    check_positive("smooth", smooth, allow_zero=True)
    check_reduction(reduction)
    # Dice term
    prep.shared.want_nll = True  # the cross term's -log p comes from the same pass (SharedPass)
    st = soft_stats(prep, batch=batch, ddp=ddp)
    dice = keep_classes(dice_score_from_stats(st, smooth), prep, include_background)
    neg_log_dice = -torch.log(dice.clamp_min(torch.finfo(dice.dtype).tiny))
    dice_term = _pow_linear(neg_log_dice, gamma_dice).mean(1)
    # cross term
    n_labels = 2 if prep.mode == "binary" else prep.num_classes
    w = class_weight_tensor(class_weights, n_labels, prep.logits.device)
    if w is None:  # multiclass label counts = the statistics' sum g (no second pass)
        counts = _binary_label_counts(prep) if prep.mode == "binary" else st.sum_g.sum(0)
        if ddp and (prep.mode == "binary" or not batch):  # batch=True: st is already global
            (counts,) = all_reduce_sum([counts.detach()])
        w = _label_frequency_weights(counts)
    else:
        w = w.to(prep.dtype)
    ce = voxel_ce(prep)
    if prep.mode == "binary":
        g = prep.dense[:, 0]
        ce = ce[:, 0]
        w_vox = w[0] * (1.0 - g) + w[1] * g
    elif prep.labels is not None:
        w_vox = w.index_select(0, prep.labels.reshape(-1)).view(prep.labels.shape)
    else:
        w_vox = torch.einsum("nc...,c->n...", prep.dense, w)
    cross_term = _per_row_mean(w_vox * _pow_linear(ce, gamma_cross), prep, batch, 1, ddp)
    return reduce_loss(w_dice * dice_term + w_cross * cross_term, reduction)


# ----------------------------------------------------------------------------- Unified focal

def _check_gamma_below_one(value: float) -> None:
    if not (isinstance(value, (int, float)) and 0.0 <= value < 1.0):
        raise ValueError(f"gamma: expected a number in [0, 1), got {value!r}")


def _unified_focal_ce(prep: Prepared, delta: float, gamma: float, symmetric: bool, include_background: bool) -> Tensor:
    """Per-voxel modified focal term ``(N, *spatial)`` (summed over the classes of the voxel;
    sigmoid modes: the two-class sum of each channel, averaged over the channels)."""
    if prep.mode == "multiclass":
        c = prep.num_classes
        w = torch.full((c,), delta, dtype=prep.dtype, device=prep.logits.device)
        w[0] = 1.0 - delta
        if not include_background:
            w[0] = 0.0
        if prep.labels is not None:
            nll = neg_log_true_class(prep)  # -log p of the true class (shared softmax)
            q = -torch.expm1(-nll)  # 1 - p_true, accurate as p_true -> 1
            mod = _pow_linear(q, gamma)
            if not symmetric:  # only the background is suppressed
                mod = torch.where(prep.labels == 0, mod, torch.ones_like(mod))
            return w[prep.labels] * mod * nll
        lp = prep.log_probs
        mod = _pow_linear(-torch.expm1(lp), gamma)
        if not symmetric:
            mod = torch.cat([mod[:, :1], torch.ones_like(mod[:, 1:])], 1)
        shape = (1, -1) + (1,) * len(prep.spatial_shape)
        return -(w.view(shape) * mod * prep.dense * lp).sum(1)
    # binary / multilabel: per channel, background 1 - p and foreground p
    g, lp, lq = prep.dense, prep.log_probs, prep.log_probs_neg
    fg = delta * -(g * lp)
    if symmetric:
        fg = fg * _pow_linear(torch.exp(lq), gamma)  # (1 - p)^gamma
    bg = (1.0 - delta) * _pow_linear(torch.exp(lp), gamma) * -((1.0 - g) * lq)  # (1 - (1 - p))^gamma
    return (fg + bg).mean(1)


def _unified_focal_tversky(
    prep: Prepared, delta: float, gamma: float, symmetric: bool, smooth: float, batch: bool, include_background: bool,
    ddp: bool = False,
) -> Tensor:
    """Per-sample modified focal Tversky term ``(N,)`` (``(1,)`` with ``batch``): the mean over the
    classes of ``1 - mTI`` (background) and ``(1 - mTI)^(1 - gamma)`` (foreground)."""
    st = soft_stats(prep, batch=False)
    n = prep.n_valid(batch=False).to(st.tp.dtype).unsqueeze(1)
    tp, sum_p, sum_g, n = batch_sum((st.tp, st.sum_p, st.sum_g, n), batch=batch, ddp=ddp)
    st = SoftStats(tp, sum_p, sum_g)
    ti = lambda tp, fp, fn: (tp + smooth) / (tp + delta * fn + (1.0 - delta) * fp + smooth).clamp_min(1e-12)  # noqa: E731
    if prep.mode == "multiclass":
        err = (1.0 - ti(st.tp, st.fp, st.fn)).clamp_min(0)
        fore = _pow_linear(err, 1.0 - gamma)
        back = fore[:, :1] if symmetric else err[:, :1]
        per_class = torch.cat([back, fore[:, 1:]], 1)
        return keep_classes(per_class, prep, include_background).mean(1)
    tn = (n - st.sum_p - st.sum_g + st.tp).clamp_min(0)
    fore = _pow_linear((1.0 - ti(st.tp, st.fp, st.fn)).clamp_min(0), 1.0 - gamma)
    back_err = (1.0 - ti(tn, st.fn, st.fp)).clamp_min(0)  # the background's fp are the fn of the foreground
    back = _pow_linear(back_err, 1.0 - gamma) if symmetric else back_err
    return (0.5 * (fore + back)).mean(1)


@register_loss(
    "unified_focal",
    category="compound",
    paper="Yeung et al. 2022 (Comput. Med. Imaging Graph. 95) arXiv:2102.04525 (doi:10.1016/j.compmedimag.2021.102026)",
    formula="lambda L_mF + (1 - lambda) L_mFT; asymmetric: focal suppression of the background only, enhancement of the foreground only",
)
def unified_focal_loss(
    prep: Prepared,
    *,
    weight: float = 0.5,
    delta: float = 0.6,
    gamma: float = 0.5,
    variant: str = "asymmetric",
    smooth: float = 1e-5,
    batch: bool = False,
    include_background: bool = True,
    reduction: str = "mean",
    ddp: bool = False,
) -> Tensor:
    r"""Unified focal loss (asymmetric by default, or symmetric).

    .. math:: L_{UF} = \lambda\, L_{mF} + (1 - \lambda)\, L_{mFT}

    **Modified focal loss** (mean over the voxels of the per-voxel sum over classes):

    .. math:: L_{maF} = \frac{1}{|\Omega|}\sum_i \Big[(1-\delta)(1 - p_{i0})^\gamma (-g_{i0}\log p_{i0})
              + \delta \sum_{c \ge 1} (-g_{ic} \log p_{ic})\Big]

    (asymmetric: only the background, class 0, is focally suppressed; symmetric: every class gets
    the factor :math:`(1 - p_{ic})^\gamma`).

    **Modified focal Tversky loss** (mean over classes), with
    :math:`mTI_c = (tp_c + s)/(tp_c + \delta fn_c + (1-\delta) fp_c + s)`:

    .. math:: L_{maFT} = \frac{1}{C}\Big[(1 - mTI_0) + \sum_{c \ge 1} (1 - mTI_c)^{1-\gamma}\Big]

    (asymmetric: only the foreground classes are enhanced; symmetric: every class gets the
    exponent :math:`1 - \gamma`). Multiclass: class 0 is the background and every other class a
    rare (foreground) class -- the paper's multi-class form. Binary / multilabel: each sigmoid
    channel is a two-class problem (background ``1 - p``, foreground ``p``), averaged over the
    channels. ``include_background=False`` (multiclass) drops the background's terms.

    Reference: Yeung, Sala, Schönlieb & Rundo, "Unified Focal loss: Generalising Dice and cross
    entropy-based losses to handle class imbalanced medical image segmentation", Computerized
    Medical Imaging and Graphics 95 (2022) 102026, arXiv:2102.04525.

    Defaults: the paper's ``weight`` :math:`\lambda = 0.5`, ``delta=0.6``, ``gamma=0.5`` (the
    authors' code); ``smooth=1e-5`` (their code: 1e-6 / 1e-7).

    Conventions of other libraries: MONAI ``AsymmetricUnifiedFocalLoss`` is binary only, takes
    probabilities (no activation despite its docstring), clips them to ``[1e-7, 1 - 1e-7]``,
    defaults to ``delta=0.7``, and averages its focal term over the two classes instead of
    summing them: with the same arguments, ``unified_focal(weight=1) = 2 x``
    ``AsymmetricFocalLoss`` and ``unified_focal(weight=0) = AsymmetricFocalTverskyLoss`` (tested).
    Here the logs come from the logits (no clipping) and the exponents below 1 have a finite slope
    at 0 (linear below 1e-6).

    Empty ground truth: a class absent from a sample has :math:`mTI = s / (s + (1-\delta) fp)`:
    0 error when nothing is predicted for it, an error close to 1 otherwise; the focal term is
    per voxel and always defined.

    ``reduction="none"`` returns the per-sample losses ``(N,)`` (``(1,)`` with ``batch=True``).
    ``ddp=True`` with ``batch=True``: both terms pool the global batch of DistributedDataParallel
    (:mod:`seglosses._ddp`).

    Examples
    --------
    >>> import torch
    >>> from seglosses.functional import unified_focal_loss
    >>> probs = torch.tensor([[[0.5, 0.5]]])     # binary, 2 voxels; target (1, 0)
    >>> target = torch.tensor([[1, 0]])
    >>> # Tversky: tp = fp = fn = tn = 0.5, mTI = 0.5 for both classes: (0.5 + 0.5^0.5) / 2
    >>> round(float(unified_focal_loss(probs, target, from_logits=False, weight=0.0, smooth=0.0)), 4)
    0.6036
    >>> # focal: (0.6 log 2 + 0.4 * 0.5^0.5 log 2) / 2 voxels
    >>> round(float(unified_focal_loss(probs, target, from_logits=False, weight=1.0)), 4)
    0.306
    """
    from .._checks import check_choice

    check_choice("variant", variant, ("asymmetric", "symmetric"))
    check_fraction("weight", weight)
    check_fraction("delta", delta)
    _check_gamma_below_one(gamma)
    check_positive("smooth", smooth, allow_zero=True)
    symmetric = variant == "symmetric"
    focal = _per_row_mean(_unified_focal_ce(prep, delta, gamma, symmetric, include_background), prep, batch, 1, ddp)
    tversky = _unified_focal_tversky(prep, delta, gamma, symmetric, smooth, batch, include_background, ddp)
    return reduce_loss(weight * focal + (1.0 - weight) * tversky, reduction)


# ----------------------------------------------------------------------------- named weighted sums

register_compound(
    "dice_ce",
    "dice+ce",
    paper="Taghanaki et al. 2019 doi:10.1016/j.compmedimag.2018.10.005; Isensee et al. 2021 (nnU-Net) doi:10.1038/s41592-020-01008-z; Ma et al. 2021 eq. 22",
    formula="L_dice + L_ce",
)
register_compound(
    "dice_focal",
    "dice+focal",
    paper="Zhu et al. 2019 doi:10.1002/mp.13300 (AnatomyNet); Ma et al. 2021 eq. 24",
    formula="L_dice + L_focal",
)
register_compound(
    "dice_topk",
    "dice+topk",
    paper="Ma et al. 2021 eq. 25 (doi:10.1016/j.media.2021.102035)",
    formula="L_dice + L_topk",
)


def _boundary_rebalancing():
    """Weight schedule of ``dice_bd`` (:class:`seglosses.losses.schedules.BoundaryRebalancing`)."""
    from ..losses.schedules import BoundaryRebalancing

    return BoundaryRebalancing()


def _hausdorff_balancing():
    """Weight schedule of ``dice_hd`` (:class:`seglosses.losses.schedules.HausdorffBalancing`)."""
    from ..losses.schedules import HausdorffBalancing

    return HausdorffBalancing()


register_compound(
    "dice_bd",
    "dice+0*boundary",
    paper="Kervadec et al. 2021 doi:10.1016/j.media.2020.101851; Ma et al. 2021 sec. 3.2",
    formula="alpha L_dice + (1 - alpha) L_boundary, alpha = max(0.01, 1 - 0.01 epoch) (set_epoch)",
    schedule_factory=_boundary_rebalancing,
)
register_compound(
    "dice_hd",
    "dice+hausdorff",
    paper="Karimi & Salcudean 2020 doi:10.1109/TMI.2019.2930068; Ma et al. 2021 sec. 3.2",
    formula="alpha L_dice + L_HD, alpha = mean HD term / mean Dice term (no gradient)",
    schedule_factory=_hausdorff_balancing,
)
register_compound(
    "dice_cldice",
    "0.5*dice+0.5*cldice",
    paper="Shit et al. 2021 (CVPR) arXiv:2003.07311, eq. 3 with alpha = 0.5",
    formula="(1 - alpha) L_dice + alpha L_cldice, alpha = 0.5",
)
