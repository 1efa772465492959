"""Structural losses: the correlation-maximised structural similarity loss (Jadon 2020 II-N)."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from .._contract import Prepared, check_positive
from .._reduce import reduce_loss
from ..registry import register_loss
from .distribution import voxel_ce

__all__ = ["cmss_loss", "local_mean"]

_POOL = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


def local_mean(x: Tensor, window_size: int, weights: Optional[Tensor] = None) -> Tensor:
    """Mean of ``x`` ``(N, C, *spatial)`` over the ``window_size``-wide cube around each voxel,
    over the voxels inside the image (and, with ``weights`` ``(N, 1, *spatial)`` in {0, 1}, over
    the voxels where the weight is 1)."""
    pool = _POOL[x.ndim - 2]
    kw = {"kernel_size": window_size, "stride": 1, "padding": window_size // 2, "count_include_pad": False}
    if weights is None:
        return pool(x, **kw)
    num = pool(x * weights, **kw)
    den = pool(weights.expand_as(x[:, :1]), **kw)
    return num / den.clamp_min(1e-12)


def _normalised(x: Tensor, window_size: int, c4: float, weights: Optional[Tensor]) -> Tensor:
    """(x - mu + C4) / (sigma + C4) with local mean and standard deviation (float64 statistics)."""
    x64 = x.double()
    w = None if weights is None else weights.double()
    mu = local_mean(x64, window_size, w)
    var = (local_mean(x64 * x64, window_size, w) - mu * mu).clamp_min(0.0)
    # sqrt has an infinite slope at 0: take it only where the variance is positive
    positive = var > 0
    sigma = torch.where(positive, var.clamp_min(1e-300).sqrt(), torch.zeros_like(var))
    return (x64 - mu + c4) / (sigma + c4)


@register_loss(
    "cmss",
    category="distribution",
    paper="Zhao et al. 2019 arXiv:1910.08711; Jadon 2020 II-N",
    formula="sum(e f CE) / sum(f), e = |(y-mu_y+C4)/(sigma_y+C4) - (p-mu_p+C4)/(sigma_p+C4)|, f = 1{e > beta e_max}",
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
    gradient). The local statistics are computed in float64 (``E[x^2] - E[x]^2`` cancels badly
    in float32 over a constant window) and sigma is 0, with zero gradient, where the variance
    is 0.

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
    p = prep.probs
    valid = None if prep.valid is None else prep.valid.unsqueeze(1)
    y = prep.onehot()
    e = (_normalised(y, window_size, c4, valid) - _normalised(p, window_size, c4, valid)).abs().to(p.dtype)
    if prep.mode == "multiclass":
        ce = -(y * prep.log_probs)
    else:
        ce = voxel_ce(prep)
    with torch.no_grad():
        e_valid = e if valid is None else e * valid
        e_max = e_valid.max() if e_valid.numel() else e_valid.sum()
        f = (e_valid > beta * e_max).to(p.dtype)
        if valid is not None:
            f = f * valid
    return reduce_loss(e * ce, reduction, f)
