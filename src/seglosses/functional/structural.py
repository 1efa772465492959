"""Local-structure machinery of the correlation-maximised structural similarity loss (``cmss``).

The loss itself (formula, registration, docstring) is a distribution loss and lives in
:func:`seglosses.functional.distribution.cmss_loss`; this module holds the heavy part it runs
on: window sums, the normalised local maps of target and prediction, and their hand-written
backward (Zhao et al. 2019 arXiv:1910.08711; Jadon 2020 II-N).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Optional

import torch
from torch import Tensor

from .._contract import Prepared

__all__: list = []  # private machinery; the loss is seglosses.functional.distribution.cmss_loss

# ----------------------------------------------------------------------------- local statistics
#
# The normalised map z = (x - mu + C4) / (sigma + C4) needs, per window, the sums of w x and
# w x^2 (w: 1, or the ignore mask). In float32, E[x^2] - mu^2 cancels: over a constant or nearly
# constant window its error (~1e-7 E[x^2]) is as large as the variance itself, so sigma would be
# off by up to ~3e-4, a few percent of C4 (and the gradient through sigma, ~1/sigma, worse). The
# window sums are therefore float64: a float32 value squared is exact in float64, and sums of up
# to 2^5 such terms are exact too, so mu and the variance are exact to float64 rounding, and a
# constant window gives a variance of exactly 0. Everything else runs in the compute dtype
# (float32 for float32 / half input, float64 for float64 input), separably (one pass per axis),
# chunk by chunk (rows of one sample, about _CHUNK voxels) in preallocated buffers, with a
# hand-written backward instead of an autograd graph (its window sums cancel the same way, and
# are computed from differences of neighbouring voxels instead: _GradSums).

_CHUNK = 1 << 17  # voxels per chunk (2^17 to 2^18 measured best on a 2-core CPU)
_WIDE = torch.float64  # dtype of the window sums
_TINY = 2.0 ** -126  # smallest normal float32


class _BoxSum:
    """Sums over the ``(2r+1)^d`` cube around each voxel (voxels outside the image count 0).

    Separable: one pass per axis, ``2r`` additions of shifted views, with a zero halo of width
    ``r`` around the input. ``input(m)`` is the interior ``(fields, m, *spatial)`` to fill;
    ``run(m)`` returns the sums, a view into the buffers valid until the next ``run``. The input
    is left as it is (the passes go to two other buffers), and its halo stays zero.
    """

    def __init__(self, fields: int, rows: int, spatial: tuple[int, ...], r: int, dtype, device):
        self.spatial, self.r = tuple(spatial), r
        padded = tuple(s + 2 * r for s in self.spatial)
        self.bufs = [torch.empty((fields, rows) + padded, dtype=dtype, device=device) for _ in range(3)]
        a = self.bufs[0]
        for d, n in enumerate(self.spatial):
            a.narrow(2 + d, 0, r).zero_()
            a.narrow(2 + d, n + r, r).zero_()
        self.inner = (slice(None), slice(None)) + tuple(slice(r, r + s) for s in self.spatial)
        self._plans = {}

    def _plan(self, rows: int):
        """Views for ``rows`` rows: the input, one (shifted sources, destination) per axis, the
        output. Pass ``d`` covers the interior of the axes summed before and all of the others."""
        if rows not in self._plans:
            r = self.r
            a, b, c = (t.narrow(1, 0, rows) for t in self.bufs)
            passes, src = [], a
            for d, n in enumerate(self.spatial):
                ax = 2 + d
                dst = b if src is not b else c
                s_view, d_view = src, dst.narrow(ax, r, n)
                for e in range(d):
                    s_view = s_view.narrow(2 + e, r, self.spatial[e])
                    d_view = d_view.narrow(2 + e, r, self.spatial[e])
                passes.append(([s_view.narrow(ax, j, n) for j in range(2 * r + 1)], d_view))
                src = dst
            self._plans[rows] = (a[self.inner], passes, src[self.inner])
        return self._plans[rows]

    def input(self, rows: int) -> Tensor:
        return self._plan(rows)[0]

    def run(self, rows: int) -> Tensor:
        _, passes, out = self._plan(rows)
        for src, dst in passes:
            if len(src) == 1:
                dst.copy_(src[0])
                continue
            torch.add(src[0], src[1], out=dst)
            for t in src[2:]:
                dst.add_(t)
        return out


def _window_counts(spatial: tuple[int, ...], r: int, dtype, device) -> Tensor:
    """Voxels of each window inside the image ``(1, *spatial)``: a product of 1-D counts."""
    k = torch.ones((1,) + tuple(spatial), dtype=dtype, device=device)
    for d, n in enumerate(spatial):
        i = torch.arange(n, device=device)
        c = (torch.clamp(i + r, max=n - 1) - torch.clamp(i - r, min=0) + 1).to(dtype)
        k = k * c.view((n,) + (1,) * (len(spatial) - 1 - d))
    return k


class _GradSums:
    """The window sums of the backward, in the compute dtype and without cancellation::

        G_j = sum_{i: j in W_i} u_i + 2 sum_{i: j in W_i} beta_i (x_j - x_i)

    The second sum, written as ``x_j sum beta - sum beta x``, would cancel (beta is large where
    sigma is small, and x is not); here each ``x_j - x_i`` telescopes along a path that changes
    one axis at a time, so the sum is made of axis differences of x: with ``B_d`` the window sum
    along axis ``d`` and ``Q_d[R]_j = sum_{0 < |o| <= r} R_{j+o} (x_j - x_{j+o})`` along ``d``,
    in 3D ``G = B_2(B_1(B_0 u + 2 Q_0[beta]) + 2 Q_1[B_0 beta]) + 2 Q_2[B_1 B_0 beta]`` (and
    likewise in 1D / 2D). Every term is a product of a coefficient and a difference of nearby
    values, so rounding errors stay relative to the result.

    ``inputs(m)`` gives the interiors ``(u, beta, x)`` ``(m, *spatial)`` to fill; ``run(m)``
    returns ``G`` (a view, valid until the next ``run``). Halos are zero and stay zero.
    """

    def __init__(self, rows: int, spatial: tuple[int, ...], r: int, dtype, device):
        self.spatial, self.r = tuple(spatial), r
        padded = tuple(s + 2 * r for s in self.spatial)
        self.x = torch.zeros((rows,) + padded, dtype=dtype, device=device)
        self.bufs = [torch.zeros((2, rows) + padded, dtype=dtype, device=device)]
        self.bufs += [torch.empty_like(self.bufs[0]) for _ in range(2)]
        self.diffs = [torch.empty_like(self.x) for _ in range(r)]
        self.inner = tuple(slice(r, r + s) for s in self.spatial)
        self._plans = {}

    def _plan(self, rows: int):
        if rows not in self._plans:
            r, nd = self.r, len(self.spatial)
            x = self.x.narrow(0, 0, rows)
            a, b, c = (t.narrow(1, 0, rows) for t in self.bufs)
            diffs = [t.narrow(0, 0, rows) for t in self.diffs]
            steps, src = [], a
            for d, n in enumerate(self.spatial):
                dst = b if src is not b else c
                s_view, d_view, x_view = src, dst.narrow(2 + d, r, n), x
                diff_views = list(diffs)
                for e in range(d):  # axes summed already: their interior only
                    s_view = s_view.narrow(2 + e, r, self.spatial[e])
                    d_view = d_view.narrow(2 + e, r, self.spatial[e])
                    x_view = x_view.narrow(1 + e, r, self.spatial[e])
                    diff_views = [t.narrow(1 + e, r, self.spatial[e]) for t in diff_views]
                fields = 2 if d < nd - 1 else 1  # the last axis needs no box of beta
                box = ([s_view[:fields].narrow(2 + d, j, n) for j in range(2 * r + 1)], d_view[:fields])
                diff = []  # (x_{p+o} - x_p into D_o) for o = 1..r, along d
                for o, t in enumerate(diff_views, start=1):
                    span = n + 2 * r - o
                    diff.append((x_view.narrow(1 + d, o, span), x_view.narrow(1 + d, 0, span), t.narrow(1 + d, 0, span)))
                q = []  # T += 2 R_{j-o} D_o(j-o) - 2 R_{j+o} D_o(j)
                for o, t in enumerate(diff_views, start=1):
                    q.append((s_view[1].narrow(1 + d, r - o, n), t.narrow(1 + d, r - o, n), 2.0))
                    q.append((s_view[1].narrow(1 + d, r + o, n), t.narrow(1 + d, r, n), -2.0))
                steps.append((box, diff, d_view[0], q))
                src = dst
            inp = a[(slice(None), slice(None)) + self.inner]
            self._plans[rows] = ((inp[0], inp[1], x[(slice(None),) + self.inner]), steps,
                                 src[0][(slice(None),) + self.inner])
        return self._plans[rows]

    def inputs(self, rows: int):
        return self._plan(rows)[0]

    def run(self, rows: int) -> Tensor:
        (u, _, _), steps, out = self._plan(rows)
        if self.r == 0:
            return u
        for (src, dst), diff, t, q in steps:
            torch.add(src[0], src[1], out=dst)
            for v in src[2:]:
                dst.add_(v)
            for hi, lo, dif in diff:
                torch.sub(hi, lo, out=dif)
            for coef_view, dif, value in q:
                t.addcmul_(coef_view, dif, value=value)
        return out


class _Windows:
    """Windows of one call over the ``(N * C, *spatial)`` maps (rows): the weights ``w`` (ignore
    mask, per sample) or None, the counts ``K = sum_window w`` (clamped to >= 1: K is 0 only where
    every weight is 0, and then every window sum is 0 too), and chunks of rows of one sample."""

    def __init__(self, n: int, c: int, spatial, r: int, c4: float, valid: Optional[Tensor], dtype, device):
        self.n, self.c, self.spatial, self.r, self.c4 = n, c, tuple(spatial), r, c4
        self.dtype, self.device = dtype, device
        self.voxels = math.prod(self.spatial)
        if valid is None:
            self.w = None
            k = _window_counts(self.spatial, r, dtype, device)
        else:
            self.w = valid.reshape((n,) + self.spatial).to(dtype)
            box = _BoxSum(1, n, self.spatial, r, dtype, device)
            box.input(n)[0].copy_(self.w)
            k = box.run(n)[0].clone()  # exact integers
        self.k = k.clamp_min_(1.0)  # (1 or N, *spatial)
        self.k_wide = self.k.to(_WIDE)
        self.k_sq = self.k * self.k
        self.neg_inv_k = self.k.reciprocal().neg_()
        self.neg_2k = self.k * -2.0
        per = max(1, min(c, round(_CHUNK / max(self.voxels, 1))))
        self.rows = -(-c // -(-c // per))  # rows per chunk, balanced
        self.classes = torch.arange(c, device=device, dtype=dtype).view((c,) + (1,) * len(self.spatial))

    def chunks(self) -> Iterator[tuple[int, int, int, int, int]]:
        """``(first row, last row + 1, sample, first class, last class + 1)``."""
        for s in range(self.n):
            for c0 in range(0, self.c, self.rows):
                c1 = min(self.c, c0 + self.rows)
                yield s * self.c + c0, s * self.c + c1, s, c0, c1

    def sample(self, s: int):
        """Weights (or None), ``K``, ``K`` in float64, ``K^2``, ``-1 / K`` and ``-2 K`` of sample
        ``s``, broadcastable over its rows."""
        j = s if self.k.shape[0] > 1 else 0
        w = None if self.w is None else self.w[s]
        return w, self.k[j], self.k_wide[j], self.k_sq[j], self.neg_inv_k[j], self.neg_2k[j]


class _Target:
    """The target of a call: a label map (multiclass; as floats, -1 where ignored, so that its
    one-hot is ``y w``) or dense rows ``(N * C, *spatial)``; ``binary``: values in {0, 1}."""

    def __init__(self, prep: Prepared, win: _Windows):
        self.labels = self.dense = None
        if prep.mode == "multiclass" and prep.labels is not None:
            lab = prep.labels.to(win.dtype)
            if prep.valid is not None:
                lab = lab.mul_(prep.valid).add_(prep.valid).sub_(1.0)
            self.labels, self.binary = lab, True
        else:
            y = prep.onehot().detach().to(win.dtype)
            self.dense = y.reshape((win.n * win.c,) + win.spatial)
            self.binary = bool(((y == 0) | (y == 1)).all())

    def onehot(self, win: _Windows, s: int, c0: int, c1: int, out: Tensor) -> Tensor:
        return torch.eq(self.labels[s], win.classes[c0:c1], out=out)


class _Workspace:
    """Chunk-sized buffers, allocated once per call."""

    def __init__(self, win: _Windows, target_box: bool = False):
        shape = (win.rows,) + win.spatial
        self.box = _BoxSum(2, win.rows, win.spatial, win.r, _WIDE, win.device)
        self.ybox = _BoxSum(1, win.rows, win.spatial, win.r, win.dtype, win.device) if target_box else None
        self.tmp = [torch.empty(shape, dtype=win.dtype, device=win.device) for _ in range(6)]
        self.ntiny = torch.full((), -_TINY, dtype=win.dtype, device=win.device)


def _map_chunk(ws: _Workspace, win: _Windows, s: int, x: Tensor, z: Tensor, dz: Optional[Tensor] = None,
               coef: Optional[Tensor] = None, dev: Optional[Tensor] = None) -> None:
    """Normalised map ``z = (dev + C4) / (sigma + C4)``, ``dev = x - mu``, of the rows ``x``
    ``(m, *spatial)`` of sample ``s``; with ``coef``, also what the backward needs:
    ``dz = sigma + C4``, ``coef = -1 / (2 sigma K)`` (0 where sigma = 0) and ``dev`` (``-mu`` at
    ignored voxels, where nothing uses it).

    From the float64 window sums ``S1 = sum w x`` and ``S2 = sum w x^2``: ``mu = S1 / K`` and
    ``var = S2 / K - mu^2`` (exactly 0 over a constant window), ``dev`` and ``var`` rounded once
    to the compute dtype. For ``x`` in {0, 1} these are the correctly rounded ``(x K - A) / K``
    and ``A (K - A) / K^2`` (``A = S1``; the float64 error cannot reach a rounding boundary), so
    that ``z`` is bit for bit the map :func:`_target_chunk` computes for such a target: ``p == y``
    gives ``e = 0`` exactly.
    """
    m = x.shape[0]
    w, _, k_wide, _, _, neg_2k = win.sample(s)
    t0, t1, t2, t3 = (t[:m] for t in ws.tmp[:4])
    inp = ws.box.input(m)
    xw, x2 = inp[0], inp[1]
    xw.copy_(x if w is None else torch.mul(x, w, out=t0))
    torch.mul(xw, xw, out=x2)
    sums = ws.box.run(m)
    mu = sums[0].div_(k_wide)
    var = sums[1].div_(k_wide).addcmul_(mu, mu, value=-1.0)
    var = t0.copy_(var).clamp_min_(0.0)
    sigma = torch.sqrt(var, out=t1)
    dev = (t2 if dev is None else dev).copy_(xw.sub_(mu))
    dz = torch.add(sigma, win.c4, out=t3 if dz is None else dz)
    torch.add(dev, win.c4, out=z).div_(dz)
    if coef is not None:  # sigma / (-2 K var - tiny) = -1 / (2 sigma K), exactly 0 where var = 0
        torch.div(sigma, torch.addcmul(ws.ntiny, var, neg_2k, out=coef), out=coef)


def _target_chunk(ws: _Workspace, win: _Windows, target: _Target, r0: int, r1: int, s: int, c0: int, c1: int):
    """Normalised map of the target rows ``r0:r1`` (no gradient) as ``(y w, num, den)``, the map
    being ``num / den`` (``den`` None: ``num`` is the map).

    For a target in {0, 1}, with the window sums ``A = sum w y`` and ``K`` (exact integers) and
    ``E[y^2] = E[y]``: ``dev = (y K - A) / K`` and ``var = A (K - A) / K^2``, each one rounding
    of exact integers, then ``(dev + C4) / (sqrt(var) + C4)`` (``y w`` in place of ``y``: only
    ignored voxels differ). Otherwise the float64 statistics of :func:`_map_chunk`.
    """
    m = r1 - r0
    w, k, _, k_sq, _, _ = win.sample(s)
    if not target.binary:
        y, zy = target.dense[r0:r1], ws.tmp[4][:m]
        _map_chunk(ws, win, s, y, zy)
        return y, zy, None
    yw = ws.ybox.input(m)[0]
    if target.labels is not None:
        target.onehot(win, s, c0, c1, out=yw)
    elif w is None:
        yw.copy_(target.dense[r0:r1])
    else:
        torch.mul(target.dense[r0:r1], w, out=yw)
    a = ws.ybox.run(m)[0]
    num = torch.mul(yw, k, out=ws.tmp[4][:m]).sub_(a).div_(k).add_(win.c4)
    den = torch.sub(k, a, out=ws.tmp[5][:m]).mul_(a).div_(k_sq).sqrt_().add_(win.c4)
    return yw, num, den


def _forward_rows(p: Tensor, target: _Target, win: _Windows, t_out: Optional[Tensor] = None,
                  t_true: Optional[Tensor] = None):
    """``e = |z_p - z_y|`` (0 at ignored voxels) of the probability rows ``p`` ``(N * C,
    *spatial)`` and what the backward needs. ``t_out`` receives ``t = z_p - z_y``; ``t_true``
    ``(N, *spatial)`` receives ``t`` at each voxel's label (label maps)."""
    ws = _Workspace(win, target_box=target.binary)
    e, z, dz, coef, dev = (torch.empty_like(p) for _ in range(5))
    for r0, r1, s, c0, c1 in win.chunks():
        m = r1 - r0
        yw, num_y, den_y = _target_chunk(ws, win, target, r0, r1, s, c0, c1)
        _map_chunk(ws, win, s, p[r0:r1], z[r0:r1], dz[r0:r1], coef[r0:r1], dev[r0:r1])
        t = ws.tmp[4][:m] if t_out is None else t_out[r0:r1]
        if den_y is None:
            torch.sub(z[r0:r1], num_y, out=t)
        else:
            torch.addcdiv(z[r0:r1], num_y, den_y, value=-1.0, out=t)
        if win.w is not None:
            t.mul_(win.w[s])
        torch.abs(t, out=e[r0:r1])
        if t_true is not None:
            if m == 1:
                t_true[s].addcmul_(t[0], yw[0])
            else:
                t_true[s].add_(t.mul_(yw).sum(0))
    return e, (z, dz, coef, dev)


def _backward_rows(g_rows, p: Tensor, win: _Windows, saved) -> Tensor:
    """dL/dp for ``dL/dz_p`` given by ``g_rows(r0, r1, s, c0, c1, out)``, chunk by chunk.

    With ``a = g / (sigma + C4)`` and ``beta = (dL/dvar) / K = -a z / (2 sigma K)`` (0 where
    sigma = 0), and ``i`` over the windows that contain ``j``::

        dL/dp_j = a_j + w_j sum_i (-a_i / K_i + 2 beta_i (p_j - mu_i))
                = a_j + w_j (sum_i u_i + 2 sum_i beta_i (p_j - p_i)),  u = -a / K + 2 beta dev

    (``mu_i = p_i - dev_i``), the window sums by :class:`_GradSums`.
    """
    z, dz, coef, dev = saved
    sums = _GradSums(win.rows, win.spatial, win.r, p.dtype, p.device)
    tmp = torch.empty((win.rows,) + win.spatial, dtype=p.dtype, device=p.device)
    grad = torch.empty_like(p)
    for r0, r1, s, c0, c1 in win.chunks():
        m = r1 - r0
        w, _, _, _, neg_inv_k, _ = win.sample(s)
        u, beta, x = sums.inputs(m)
        a = torch.div(g_rows(r0, r1, s, c0, c1, tmp[:m]), dz[r0:r1], out=tmp[:m])
        torch.mul(a, z[r0:r1], out=beta).mul_(coef[r0:r1])
        torch.mul(a, neg_inv_k, out=u).addcmul_(beta, dev[r0:r1], value=2.0)
        x.copy_(p[r0:r1])
        total = sums.run(m)
        if w is None:
            torch.add(a, total, out=grad[r0:r1])
        else:
            torch.addcmul(a, total, w, out=grad[r0:r1])
    return grad


class _StructureError(torch.autograd.Function):
    """``e = |z_p - z_y|`` of the probability rows ``p`` ``(N * C, *spatial)`` (0 at ignored
    voxels), with the hand-written backward of the normalised map."""

    @staticmethod
    def forward(ctx, p: Tensor, target: _Target, win: _Windows) -> Tensor:
        t = torch.empty_like(p)
        e, saved = _forward_rows(p, target, win, t_out=t)
        ctx.save_for_backward(p, t, *saved)
        ctx.win = win
        return e

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_e: Tensor):
        p, t, *saved = ctx.saved_tensors
        g = torch.sign(t).mul_(g_e)  # de/dz_p = sign(z_p - z_y)
        grad = _backward_rows(lambda r0, r1, s, c0, c1, out: g[r0:r1], p, ctx.win, saved)
        return grad, None, None


class _CmssLabelMap(torch.autograd.Function):
    """The loss for multiclass probabilities ``p`` ``(N, C, *spatial)`` and a label map, given
    the per-voxel cross entropy ``nll = -log p_label`` ``(N, *spatial)``: ``sum e f CE``
    (divided by ``sum f`` for ``mean``), CE being nonzero at each voxel's label only. Backward to
    ``p`` and ``nll``."""

    @staticmethod
    def forward(ctx, p: Tensor, nll: Tensor, target: _Target, win: _Windows, beta: float, mean: bool) -> Tensor:
        n, c = win.n, win.c
        rows = p.reshape((n * c,) + win.spatial)
        t_true = torch.zeros((n,) + win.spatial, dtype=p.dtype, device=p.device)
        e, saved = _forward_rows(rows, target, win, t_true=t_true)
        thr = beta * (e.max() if e.numel() else e.sum())
        f_all = torch.gt(e, thr, out=e).sum()  # sum f (e is not needed any more)
        e_true = t_true.abs()
        f_true = torch.gt(e_true, thr, out=torch.empty_like(e_true))
        ef = e_true.mul_(f_true)
        num = (ef * nll.view_as(ef)).sum()
        ctx.save_for_backward(rows, nll, t_true, f_true, ef, f_all, *saved)
        ctx.target, ctx.win, ctx.mean, ctx.shape = target, win, mean, p.shape
        return num / f_all.clamp_min(1e-12) if mean else num

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_out: Tensor):
        rows, nll, t_true, f_true, ef, f_all, *saved = ctx.saved_tensors
        target, win = ctx.target, ctx.win
        scale = g_out / f_all.clamp_min(1e-12) if ctx.mean else g_out
        g_nll = (ef * scale).view_as(nll)
        g_true = torch.sign(t_true).mul_(f_true).mul_(nll.view_as(f_true)).mul_(scale)  # dL/dz_p at the label

        def g_rows(r0, r1, s, c0, c1, out):
            return target.onehot(win, s, c0, c1, out=out).mul_(g_true[s])

        grad = _backward_rows(g_rows, rows, win, saved)
        return grad.view(ctx.shape), g_nll, None, None, None, None
