"""Built-in synthetic segmentation tasks: the benchmark's default data, nothing downloaded.

Each task mirrors a regime of the papers (Ma et al. 2021, Table 1; Jadon 2020, section III; the
aerial-imagery demo of the loss tutorial) and is generated deterministically from a seed:

=============  =======  ===============================================================  ==============
task           classes  what it looks like                                               BG:FG (2D)
=============  =======  ===============================================================  ==============
``liver``      2        one large organ in an abdominal CT-like slice / volume           ~40:1
``tumor``      2        1-3 small hypodense lesions inside the (unlabelled) liver;       >=500:1
                        a quarter of the cases have only very small lesions
``pancreas``   2        a thin, curved, lobulated, low-contrast organ                    ~500:1
``multiorgan`` 9        8 abdominal organs (Ma et al.'s list)                            30:1-1200:1
``brain``      2        skull stripping: brain inside a bright skull ring                ~3:1 (3D 8:1)
``aerial``     6        RGB land-cover scene: building, land, road, vegetation, water    0.8:1-22:1
``vessels``    2        retina-like vessel trees, 1-3 pixels wide (2D only; thin         ~24:1
                        structures where topology matters: ``--preset topology``)
=============  =======  ===============================================================  ==============

The label sizes are set by voxel *counts* drawn around the target fraction of the image (a
deformed ellipsoid or tube grows from its centre until it holds the drawn count), so the class
ratios hold in 2D and 3D and at any image size. The measured ratios are in
``docs/data.md`` and checked by ``tests/test_bench_data.py``.

Every image has the nuisances that keep a loss away from Dice 1 and let losses separate: tissue
texture, a point-spread blur that makes partial-volume edges (labels stay hard), Gaussian noise,
neighbours of nearly the same intensity, unlabelled look-alikes (cysts next to tumours, neck
muscle next to the brain, roofs the colour of roads), and random shape, size, position and
orientation. Intensities are then preprocessed like real data
(:func:`seglosses.bench.data.normalize_images`): nnU-Net's CT scheme for the CT-like tasks (the
foreground statistics come from the task's first 8 cases), per-case z-scoring for ``aerial``.

Geometry: coordinates span [-1, 1] on every axis; the in-plane axes are the last two (rows,
columns); a 3D task adds axis 0 (the slice axis, ``Dataset.slice_axis = 0``). Spacing is 1 mm on
every axis. Default sizes: 128 x 128 in 2D, 48 x 48 x 48 in 3D.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
from scipy import ndimage

from .data import (
    Case,
    Dataset,
    class_ratio_text,
    ct_statistics,
    display_slice,
    normalize_images,
    resolve_normalization,
)

__all__ = ["TASKS", "TaskInfo", "TaskSpec", "list_tasks", "make_task", "preview_tasks"]


# --------------------------------------------------------------------------------------------
# Geometry helpers
# --------------------------------------------------------------------------------------------


def _coords(shape: tuple) -> np.ndarray:
    """``(d, *shape)`` float32 coordinates in [-1, 1] per axis."""
    axes = [np.linspace(-1.0, 1.0, s, dtype=np.float32) for s in shape]
    return np.stack(np.meshgrid(*axes, indexing="ij"))


def _smooth(rng: np.random.Generator, shape: tuple, sigma: float) -> np.ndarray:
    """Zero-mean, unit-variance Gaussian random field with correlation length ``sigma`` pixels.

    Long correlation lengths are generated on a coarser grid and interpolated (same statistics,
    a fraction of the cost)."""
    f = max(1, int(sigma // 2))
    low_shape = tuple(-(-s // f) + 1 for s in shape)
    low = ndimage.gaussian_filter(rng.standard_normal(low_shape).astype(np.float32), sigma / f, mode="wrap")
    if f > 1:
        low = ndimage.zoom(low, f, order=1, mode="nearest", grid_mode=False)
    out = np.ascontiguousarray(low[tuple(slice(0, s) for s in shape)])
    out -= out.mean()
    return out / (out.std() + 1e-8)


def _inner(mask: np.ndarray, depth: float) -> np.ndarray:
    """Voxels of ``mask`` deeper than ``depth`` voxels from its border (EDT on the bounding box)."""
    if not mask.any():
        return mask
    idx = np.argwhere(mask)
    lo, hi = np.maximum(idx.min(0) - 1, 0), idx.max(0) + 2
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    out = np.zeros_like(mask)
    out[box] = ndimage.distance_transform_edt(mask[box]) > depth
    return out


def _ellipsoid_rho(grid: np.ndarray, center, radii, angle: float = 0.0) -> np.ndarray:
    """Normalised ellipsoidal radius (1 on the surface), rotated by ``angle`` in the plane of the
    last two axes. A radius of ``math.inf`` makes a cylinder along that axis."""
    d = grid.shape[0]
    x = [grid[a] - center[a] for a in range(d)]
    c, s = math.cos(angle), math.sin(angle)
    x[-2], x[-1] = c * x[-2] + s * x[-1], -s * x[-2] + c * x[-1]
    acc = np.zeros(grid.shape[1:], dtype=np.float32)
    for a in range(d):
        if math.isfinite(radii[a]):
            acc += (x[a] / radii[a]) ** 2
    return np.sqrt(acc)


def _bezier(points: np.ndarray, n: int) -> np.ndarray:
    """``n`` points on the Bezier curve of ``points`` ``(K, d)``."""
    k = len(points) - 1
    t = np.linspace(0.0, 1.0, n)[:, None]
    out = np.zeros((n, points.shape[1]))
    for i, p in enumerate(points):
        out += math.comb(k, i) * (1 - t) ** (k - i) * t**i * p
    return out


def _tube_rho(
    grid: np.ndarray, control: np.ndarray, widths: Sequence[float], n: int = 48, span=(0.0, 1.0)
) -> np.ndarray:
    """Distance to a Bezier curve divided by a width that varies along the curve.

    ``span = (t0, t1)`` keeps only that part of the curve (a 2D slice cuts through part of a long
    organ)."""
    d = grid.shape[0]
    t = np.linspace(span[0], span[1], n)
    pts = _bezier(np.asarray(control, dtype=np.float64), 201)
    pts = np.stack([np.interp(t, np.linspace(0, 1, 201), pts[:, a]) for a in range(d)], axis=1).astype(
        np.float32
    )
    w = np.interp(t, np.linspace(0, 1, len(widths)), widths).astype(np.float32)
    # only voxels within `margin` of the curve can be selected: compute there, inf elsewhere
    margin = 0.3
    box = []
    for a in range(d):
        axis = grid[(a,) + (0,) * a + (slice(None),) + (0,) * (d - a - 1)]
        inside = np.flatnonzero((axis >= pts[:, a].min() - margin) & (axis <= pts[:, a].max() + margin))
        box.append(slice(inside.min(), inside.max() + 1) if inside.size else slice(0, 0))
    sub = grid[(slice(None),) + tuple(box)].reshape(d, -1)
    best = np.full(sub.shape[1], np.inf, dtype=np.float32)
    for j in range(n):
        dist = np.sqrt(((sub - pts[j][:, None]) ** 2).sum(axis=0))
        np.minimum(best, dist / w[j], out=best)
    out = np.full(grid.shape[1:], np.inf, dtype=np.float32)
    out[tuple(box)] = best.reshape(out[tuple(box)].shape)
    return out


def _select(rho: np.ndarray, count: float, allowed: np.ndarray | None = None) -> np.ndarray:
    """The ``count`` voxels with the smallest ``rho`` (within ``allowed``): a shape of exact size."""
    flat = rho.ravel() if allowed is None else np.where(allowed, rho, np.inf).ravel()
    avail = int(np.isfinite(flat).sum())
    n = int(np.clip(round(count), 1, max(avail, 1)))
    thr = np.partition(flat, n - 1)[n - 1]
    mask = rho <= thr
    return mask if allowed is None else mask & allowed


def _center(
    base: Sequence[float], rng: np.random.Generator, jitter: float, dims: int, z_jitter: float = 0.15
) -> tuple:
    """In-plane ``base`` (row, col) plus jitter; a z coordinate in front for 3D."""
    rc = tuple(float(b + rng.uniform(-jitter, jitter)) for b in base)
    return ((float(rng.uniform(-z_jitter, z_jitter)),) if dims == 3 else ()) + rc


def _radii(plane: Sequence[float], z: float, dims: int, rng: np.random.Generator, var: float = 0.15) -> tuple:
    rr = tuple(float(r * rng.uniform(1 - var, 1 + var)) for r in plane)
    return ((float(z * rng.uniform(1 - var, 1 + var)),) if dims == 3 else ()) + rr


class _Canvas:
    """Piecewise intensity image + label map, painted structure by structure (later on top)."""

    def __init__(self, rng: np.random.Generator, shape: tuple, channels: int, base):
        self.rng = rng
        self.shape = shape
        self.dims = len(shape)
        self.grid = _coords(shape)
        self.n = int(np.prod(shape))
        self.image = np.empty((channels,) + shape, dtype=np.float32)
        self.image[:] = np.asarray(base, dtype=np.float32).reshape((channels,) + (1,) * self.dims)
        self.label = np.zeros(shape, dtype=np.int64)
        self.fine = _smooth(rng, shape, 1.0)
        self.mid = _smooth(rng, shape, 2.5)
        self._coarse = [_smooth(rng, shape, max(shape) / 10) for _ in range(2)]

    def coarse(self) -> np.ndarray:
        """A fresh-looking smooth field (random mix of two coarse fields, unit variance)."""
        a = self.rng.uniform(0, 2 * math.pi)
        return math.cos(a) * self._coarse[0] + math.sin(a) * self._coarse[1]

    def deform(self, rho: np.ndarray, amp: float = 0.18) -> np.ndarray:
        return rho * (1.0 + amp * self.coarse())

    def paint(self, mask: np.ndarray, value, texture: float = 0.0, label: int | None = None) -> None:
        value = np.asarray(value, dtype=np.float32).reshape(-1)
        for c in range(self.image.shape[0]):
            v = value[c] if value.size > 1 else value[0]
            tex = texture * (0.7 * self.fine + 0.7 * self.mid) if texture else 0.0
            self.image[c][mask] = (v + tex)[mask] if texture else v
        if label is not None:
            self.label[mask] = label

    def finish(self, psf: float, noise: float) -> np.ndarray:
        """Point-spread blur (partial-volume edges) then Gaussian noise."""
        out = np.empty_like(self.image)
        for c in range(self.image.shape[0]):
            out[c] = ndimage.gaussian_filter(self.image[c], psf) + noise * self.rng.standard_normal(
                self.shape
            )
        return out


# --------------------------------------------------------------------------------------------
# Abdominal CT (liver, tumor, pancreas, multiorgan)
# --------------------------------------------------------------------------------------------

#: Default fraction of the image per organ (multi-organ task; other tasks override some).
_ORGAN_FRACTION = {
    "liver": 1 / 32,
    "stomach": 1 / 70,
    "spleen": 1 / 110,
    "left kidney": 1 / 170,
    "right kidney": 1 / 170,
    "duodenum": 1 / 320,
    "pancreas": 1 / 450,
    "gallbladder": 1 / 900,
    "esophagus": 1 / 1300,
}

_MULTIORGAN_LABELS = (
    "spleen",
    "left kidney",
    "gallbladder",
    "esophagus",
    "liver",
    "stomach",
    "pancreas",
    "duodenum",
)


def _abdomen(rng: np.random.Generator, shape: tuple, fractions: dict, labels: dict) -> tuple:
    """Paint an abdominal CT-like slice/volume (HU-like values); return ``(canvas, masks)``.

    ``fractions`` overrides :data:`_ORGAN_FRACTION`; ``labels`` maps organ name -> label index
    for the organs to label (the others are painted, unlabelled). Organs are placed as in an axial
    slice in radiological view (patient's right on the image left, spine at the bottom); in 3D the
    body and the vessels are cylinders along axis 0 and the organs ellipsoids / 3D tubes.
    """
    cv = _Canvas(rng, shape, 1, -1000.0)
    g, dims = cv.grid, cv.dims
    frac = dict(_ORGAN_FRACTION, **fractions)
    size_var = lambda: float(np.exp(rng.normal(0.0, 0.22)))
    cyl = (math.inf,) * (dims == 3)  # "infinite" radius along the slice axis
    masks = {}

    # body: subcutaneous fat, muscle wall, a cavity of fat and mesentery
    body_r = cyl + (0.74 * rng.uniform(0.92, 1.06), 0.94 * rng.uniform(0.92, 1.04))
    body_rho = _ellipsoid_rho(g, (0.0,) * (dims == 3) + (0.02, 0.0), body_r) * (1 + 0.03 * cv.coarse())
    cv.paint(body_rho <= 1.0, -100.0, texture=12.0)
    cv.paint(body_rho <= rng.uniform(0.86, 0.91), 50.0, texture=8.0)
    cavity = body_rho <= 0.82
    cv.paint(cavity, -80.0, texture=15.0)
    mesentery = cavity & (cv.coarse() > rng.uniform(-0.2, 0.4))
    cv.paint(mesentery, rng.uniform(25.0, 40.0), texture=10.0)

    # spine, paraspinal muscles, aorta, IVC
    sp_rho = _ellipsoid_rho(g, _center((0.56, 0.0), rng, 0.02, dims, 0.0), cyl + (0.13, 0.13))
    cv.paint(sp_rho <= 1.0, 650.0, texture=40.0)
    cv.paint(sp_rho <= 0.78, 220.0, texture=40.0)
    for side in (-1, 1):
        m = _ellipsoid_rho(
            g, _center((0.5, 0.27 * side), rng, 0.02, dims, 0.0), cyl + (0.12, 0.12), 0.4 * side
        )
        cv.paint((m <= 1.0) & (body_rho <= 0.9), 55.0, texture=8.0)
    aorta = _ellipsoid_rho(g, _center((0.33, 0.08), rng, 0.02, dims, 0.0), cyl + (0.055, 0.055)) <= 1.0
    cv.paint(aorta, 170.0, texture=6.0)
    ivc = _ellipsoid_rho(g, _center((0.3, -0.14), rng, 0.02, dims, 0.0), cyl + (0.05, 0.065)) <= 1.0
    cv.paint(ivc, 130.0, texture=6.0)

    # bowel loops: unlabelled look-alikes of 20-100 HU (enhancing walls reach liver values), some with air
    for _ in range(int(rng.integers(4, 8))):
        c = _center((rng.uniform(-0.5, 0.15), rng.uniform(-0.3, 0.5)), rng, 0.0, dims, 0.4)
        rho = cv.deform(
            _ellipsoid_rho(g, c, _radii((0.07, 0.09), 0.1, dims, rng, 0.4), rng.uniform(0, math.pi)), 0.25
        )
        cv.paint((rho <= 1.0) & cavity, rng.uniform(20.0, 100.0), texture=8.0)
        if rng.random() < 0.3:
            cv.paint((rho <= 0.4) & cavity, -700.0)

    def organ(name, base, radii, z, hu, texture=7.0, angle=0.0, jitter=0.05, allowed=None, amp=0.18):
        c = _center(base, rng, jitter, dims)
        rho = cv.deform(
            _ellipsoid_rho(g, c, _radii(radii, z, dims, rng), angle + rng.uniform(-0.3, 0.3)), amp
        )
        m = _select(rho, frac[name] * cv.n * size_var(), cavity if allowed is None else allowed)
        cv.paint(m, hu, texture, labels.get(name))
        masks[name] = m
        return m

    def tube(name, control, widths, hu, texture, span2d, halo, amp=0.12):
        ctrl = np.stack([np.array(_center(p, rng, 0.05, dims)) for p in control])
        span = (0.0, 1.0)
        if dims == 2:  # a slice cuts through part of the organ
            length = rng.uniform(*span2d)
            start = rng.uniform(0.0, 1.0 - length)
            span = (start, start + length)
        rho = cv.deform(_tube_rho(g, ctrl, widths, span=span), amp)
        allowed = cavity & (cv.label == 0)
        m = _select(rho, frac[name] * cv.n * size_var(), allowed)
        if halo:  # patchy fat around the organ: some borders clear, others touching look-alikes
            thr = rho[m].max() if m.any() else 0.0
            cv.paint((rho <= 2.6 * thr) & allowed & ~m & (cv.coarse() > -0.5), -85.0, texture=12.0)
        cv.paint(m, hu, texture, labels.get(name))
        masks[name] = m
        return m

    organ("right kidney", (0.32, -0.45), (0.13, 0.09), 0.2, 170.0, angle=-0.5)
    organ("left kidney", (0.32, 0.45), (0.13, 0.09), 0.2, 170.0, angle=0.5)
    for name in ("right kidney", "left kidney"):  # renal sinus: darker core, still kidney
        cv.paint(_inner(masks[name], 2.5) & (cv.mid > 0.3), 30.0, 5.0)
    organ("spleen", (0.12, 0.66), (0.18, 0.09), 0.25, 110.0, angle=0.7)
    stomach = organ("stomach", (-0.3, 0.32), (0.16, 0.24), 0.2, 35.0, texture=9.0, angle=0.3)
    if stomach.any() and rng.random() < 0.5:  # a little air in the anterior stomach, still stomach
        cv.paint(stomach & (g[-2] < np.quantile(g[-2][stomach], rng.uniform(0.03, 0.1))), -850.0, 20.0)
    # liver: against the right body wall (the cavity boundary flattens its lateral side)
    liver = organ("liver", (-0.05, -0.62), (0.34, 0.22), 0.45, 100.0, angle=0.2, amp=0.28)
    for _ in range(int(rng.integers(2, 5))):  # hepatic vessels: bright, labelled as liver
        if not liver.any():
            break
        idx = np.argwhere(liver)[int(rng.integers(int(liver.sum())))]
        c = tuple(float(g[(a,) + tuple(idx)]) for a in range(dims))
        cv.paint((_ellipsoid_rho(g, c, (0.035,) * dims) <= 1.0) & liver, 150.0, 5.0)
    # pancreas: a curved, lobulated tube from the head (by the duodenum) to the tail (by the spleen)
    panc = tube(
        "pancreas", [(0.12, -0.12), (0.02, 0.15), (0.1, 0.5)], (1.0, 0.8, 0.6), 70.0, 6.0, (0.3, 0.5), True
    )
    cv.paint(panc & (cv.fine > 1.2), -40.0, 5.0)  # fatty lobulation, still pancreas
    # duodenum: a C-loop around the pancreatic head
    tube(
        "duodenum",
        [(-0.12, -0.18), (0.2, -0.34), (0.3, -0.05)],
        (1.0, 1.0, 0.9),
        50.0,
        7.0,
        (0.35, 0.6),
        False,
    )
    # gallbladder: fluid pear at the liver's anterior edge
    organ("gallbladder", (-0.2, -0.33), (0.06, 0.09), 0.08, 12.0, texture=4.0, angle=0.5, jitter=0.04)
    # esophagus: small tube along the slice axis next to the aorta, sometimes with air
    esoph = organ("esophagus", (0.22, 0.12), (0.03, 0.035), 3.0, 45.0, jitter=0.03)
    if rng.random() < 0.3:
        cv.paint(_inner(esoph, 1.5), -600.0)
    return cv, masks


def _ct_finish(cv: _Canvas) -> np.ndarray:
    return cv.finish(psf=float(cv.rng.uniform(0.6, 0.9)), noise=float(cv.rng.uniform(10.0, 18.0)))


def _gen_liver(rng, shape):
    cv, _ = _abdomen(rng, shape, {"liver": 1 / 41}, {"liver": 1})
    return _ct_finish(cv), cv.label


def _gen_pancreas(rng, shape):
    cv, _ = _abdomen(rng, shape, {"pancreas": 1 / 500}, {"pancreas": 1})
    return _ct_finish(cv), cv.label


def _gen_multiorgan(rng, shape):
    cv, _ = _abdomen(rng, shape, {}, {name: i + 1 for i, name in enumerate(_MULTIORGAN_LABELS)})
    return _ct_finish(cv), cv.label


def _gen_tumor(rng, shape):
    """Liver visible but unlabelled (LiTS tumour-only task, as Ma et al.); label 1 = tumour."""
    cv, masks = _abdomen(rng, shape, {"liver": 1 / 16}, {})
    liver = masks["liver"]
    g, dims = cv.grid, cv.dims
    core = ndimage.binary_erosion(liver, iterations=1) if liver.sum() > 50 else liver
    tiny_only = rng.random() < 0.25  # a quarter of the cases: only very small lesions
    n_lesions = int(rng.choice([1, 2, 3], p=[0.5, 0.3, 0.2]))
    min_count = 4 if dims == 2 else 8
    for _ in range(n_lesions):
        if tiny_only:
            count = rng.uniform(min_count, 3 * min_count)
        else:
            count = max(min_count, cv.n / 1100 * float(np.exp(rng.normal(0.0, 0.7))))
        count = min(count, cv.n / 200)
        pts = np.argwhere(core & (cv.label == 0))
        if not len(pts):
            break
        idx = pts[int(rng.integers(len(pts)))]
        c = tuple(float(g[(a,) + tuple(idx)]) for a in range(dims))
        rho = cv.deform(
            _ellipsoid_rho(g, c, _radii((1.0, 0.8), 0.9, dims, rng, 0.2), rng.uniform(0, math.pi)), 0.2
        )
        lesion = _select(rho, count, liver)
        hu = rng.uniform(40.0, 78.0)  # hypodense; the brightest nearly isodense
        cv.paint(lesion, hu, 5.0, 1)
        if rng.random() < 0.4 and lesion.sum() > 12:  # enhancing rim, still tumour
            rim = lesion & ~ndimage.binary_erosion(lesion)
            cv.paint(rim, hu + 25.0, 4.0)
    for _ in range(int(rng.integers(0, 3))):  # unlabelled cysts: darker, sharper look-alikes
        pts = np.argwhere(core & (cv.label == 0))
        if not len(pts):
            break
        idx = pts[int(rng.integers(len(pts)))]
        c = tuple(float(g[(a,) + tuple(idx)]) for a in range(dims))
        cyst = _select(
            _ellipsoid_rho(g, c, (1.0,) * dims),
            rng.uniform(min_count, max(cv.n / 1500, min_count + 1)),
            liver & (cv.label == 0),
        )
        cv.paint(cyst, rng.uniform(5.0, 20.0), 3.0)
    return _ct_finish(cv), cv.label


# --------------------------------------------------------------------------------------------
# Skull stripping (Jadon, NFBS)
# --------------------------------------------------------------------------------------------


def _gen_brain(rng, shape):
    cv = _Canvas(rng, shape, 1, 0.0)
    g, dims = cv.grid, cv.dims
    head_c = _center((0.0, 0.0), rng, 0.05, dims, 0.05)
    head_r = _radii((0.82, 0.68), 0.85, dims, rng, 0.06)
    angle = rng.uniform(-0.25, 0.25)
    head_rho = cv.deform(_ellipsoid_rho(g, head_c, head_r, angle), 0.04)
    head = head_rho <= 1.0
    cv.paint(head, 0.35, texture=0.04)  # scalp and soft tissue
    # neck / face muscles below the skull base: brain-like intensity, outside the brain
    neck_c = tuple(head_c[:-2]) + (head_c[-2] + 0.55 * head_r[-2], head_c[-1] + rng.uniform(-0.1, 0.1))
    neck = cv.deform(_ellipsoid_rho(g, neck_c, _radii((0.3, 0.35), 0.5, dims, rng), angle), 0.2) <= 1.0
    cv.paint(neck & head, 0.44, texture=0.05)
    skull_outer = head_rho <= rng.uniform(0.9, 0.93)
    thickness = 0.09 * (1.0 + 0.45 * cv.coarse())  # uneven skull, thin in places
    skull_inner = head_rho <= 0.915 - np.clip(thickness, 0.02, 0.16)
    skull = skull_outer & ~skull_inner
    cv.paint(skull, 1.0, texture=0.05)
    cv.paint(skull & (cv.mid > 0.8), 0.7, texture=0.05)  # diploe
    # brain: fills the cranial cavity except a thin, uneven CSF layer; a skull-base notch
    cav = head_rho <= 0.915 - np.clip(thickness, 0.02, 0.16)
    brain_rho = cv.deform(_ellipsoid_rho(g, head_c, head_r, angle), 0.05)
    target = cav.sum() * rng.uniform(0.86, 0.93)
    brain = _select(brain_rho, target, cav)
    # skull base: below a wavy line the cavity holds brain-like soft tissue that is not brain
    base = (g[-2] - head_c[-2]) - 0.25 * (g[-1] - head_c[-1]) ** 2 + 0.04 * cv.coarse()
    skull_base = cav & (base > head_r[-2] * rng.uniform(0.5, 0.65))
    brain &= ~skull_base
    cv.paint(cav, 0.12, texture=0.03)  # CSF
    cv.paint(skull_base & (cv.coarse() > -0.8), 0.43, texture=0.05)
    cv.paint(brain, 0.46, texture=0.03, label=1)  # grey matter
    wm = brain & (cv.coarse() + 0.6 * cv.mid > 0.2) & _inner(brain, 3)
    cv.paint(wm, 0.38, texture=0.03)  # white matter (CT-like: darker than grey matter)
    vent_c = tuple(head_c[:-2]) + (head_c[-2] - 0.05, head_c[-1])
    for side in (-1, 1):
        vc = vent_c[:-1] + (vent_c[-1] + side * 0.08,)
        v = (
            cv.deform(_ellipsoid_rho(g, vc, _radii((0.2, 0.05), 0.15, dims, rng, 0.3), side * 0.3), 0.2)
            <= 1.0
        )
        cv.paint(v & brain, 0.12, texture=0.02)  # ventricles: CSF, inside the brain mask
    bias = 1.0 + 0.12 * cv.coarse()  # smooth intensity inhomogeneity
    cv.image *= bias
    img = cv.finish(psf=float(rng.uniform(0.6, 0.9)), noise=float(rng.uniform(0.04, 0.07)))
    return np.abs(img), cv.label  # magnitude image: Rician-like noise floor in the background


# --------------------------------------------------------------------------------------------
# Aerial land cover (loss tutorial, Dubai aerial dataset)
# --------------------------------------------------------------------------------------------

_AERIAL_LABELS = ("unlabelled", "building", "land", "road", "vegetation", "water")
_ROOFS = np.array(
    [
        [0.82, 0.82, 0.82],
        [0.93, 0.91, 0.88],
        [0.74, 0.65, 0.52],
        [0.42, 0.42, 0.45],
        [0.55, 0.4, 0.35],
        [0.36, 0.46, 0.58],
    ],
    dtype=np.float32,
)


def _gen_aerial(rng, shape):
    if len(shape) != 2:
        raise ValueError("aerial: the aerial task is 2D only (spatial_dims=2)")
    land_rgb = np.array([0.76, 0.66, 0.5]) * rng.uniform(0.9, 1.1, 3)
    cv = _Canvas(rng, shape, 3, land_rgb)
    g = cv.grid
    cv.label[:] = 2
    cv.paint(np.ones(shape, bool), land_rgb, texture=0.05, label=2)
    # water: a coast on one side in most scenes
    if rng.random() < 0.7:
        a = rng.uniform(0, 2 * math.pi)
        coast = math.cos(a) * g[0] + math.sin(a) * g[1] + 0.25 * cv.coarse()
        water = coast > rng.uniform(0.3, 0.8)
        cv.paint(water, (0.16, 0.32, 0.42), texture=0.03, label=5)
        shallow = water & (coast < np.quantile(coast[water], 0.25) if water.any() else water)
        cv.paint(shallow, (0.3, 0.48, 0.5), texture=0.03)
    else:
        water = np.zeros(shape, bool)
    # vegetation: parks, lawns and tree clusters
    veg = (cv.coarse() + 0.35 * cv.mid > rng.uniform(0.7, 1.3)) & ~water
    trees = (cv.fine > 2.0) & ~water
    cv.paint(veg | trees, (0.27, 0.4, 0.22), texture=0.05, label=4)
    cv.paint(veg & (cv.mid > 0.5), (0.36, 0.55, 0.27), texture=0.04)
    # roads: a few straight roads, mostly along two perpendicular directions
    theta = rng.uniform(0, math.pi)
    roads = np.zeros(shape, bool)
    px = 2.0 / shape[0]
    for k in range(int(rng.integers(2, 5))):
        t = theta + (math.pi / 2 if k % 2 else 0.0) + rng.normal(0, 0.05)
        off = rng.uniform(-0.8, 0.8)
        dist = np.abs(-math.sin(t) * g[0] + math.cos(t) * g[1] - off)
        road = (dist < rng.uniform(1.5, 3.5) * px) & ~water
        roads |= road
        cv.paint(road, (0.42, 0.42, 0.44), texture=0.03, label=3)
        cv.paint(
            road & (dist < 0.35 * px) & (np.sin(40 * (math.cos(t) * g[0] + math.sin(t) * g[1])) > 0.5),
            (0.85, 0.85, 0.8),
        )
    sand = roads & (cv.coarse() > 1.3)  # sand drifts on the road: still road
    cv.paint(sand, land_rgb * 0.95, texture=0.04)
    # buildings: rotated rectangles aligned with the street grid, with shadows
    shadow_dir = np.array([rng.uniform(1.5, 3.0), rng.uniform(1.5, 3.0)]) * px
    for _ in range(int(rng.integers(8, 20))):
        c = rng.uniform(-0.9, 0.9, 2)
        hw = rng.uniform(2.5, 8.0, 2) * px
        t = theta + rng.normal(0, 0.03)
        u = math.cos(t) * (g[0] - c[0]) + math.sin(t) * (g[1] - c[1])
        v = -math.sin(t) * (g[0] - c[0]) + math.cos(t) * (g[1] - c[1])
        bld = (np.abs(u) < hw[0]) & (np.abs(v) < hw[1])
        if (bld & (water | roads)).any():
            continue
        us = math.cos(t) * (g[0] - c[0] - shadow_dir[0]) + math.sin(t) * (g[1] - c[1] - shadow_dir[1])
        vs = -math.sin(t) * (g[0] - c[0] - shadow_dir[0]) + math.cos(t) * (g[1] - c[1] - shadow_dir[1])
        shadow = (np.abs(us) < hw[0]) & (np.abs(vs) < hw[1]) & ~bld
        for ch in range(3):
            cv.image[ch][shadow] *= 0.55  # shadow darkens whatever is below, label unchanged
        roof = _ROOFS[int(rng.integers(len(_ROOFS)))] * rng.uniform(0.92, 1.08)
        cv.paint(bld, roof, texture=0.03, label=1)
        cv.paint(bld & (np.abs(u) < 0.2 * hw[0]), roof * 0.85)  # roof ridge
    # unlabelled: construction sites / vehicles / a padded tile border
    for _ in range(int(rng.integers(1, 4))):
        c = rng.uniform(-0.9, 0.9, 2)
        rho = cv.deform(_ellipsoid_rho(g, c, rng.uniform(0.03, 0.09, 2), rng.uniform(0, math.pi)), 0.3)
        patch = (rho <= 1.0) & ~water
        cv.paint(patch, rng.uniform(0.35, 0.8) * rng.uniform(0.85, 1.15, 3), texture=0.08, label=0)
    if rng.random() < 0.3:
        edge = int(rng.integers(2, 8))
        border = np.zeros(shape, bool)
        border[:, -edge:] = True
        cv.paint(border, (0.05, 0.05, 0.05), label=0)
    cv.image *= rng.uniform(0.85, 1.15)  # exposure
    return cv.finish(psf=float(rng.uniform(0.5, 0.8)), noise=float(rng.uniform(0.025, 0.045))), cv.label


# --------------------------------------------------------------------------------------------
# Thin structures: retinal-like vessel trees (topology benchmark)
# --------------------------------------------------------------------------------------------


def _vessel_tree(rng: np.random.Generator, shape: tuple, root, fov: np.ndarray) -> tuple:
    """Centre-line pixels ``(K, 2)`` (float, pixel units) and radii ``(K,)`` of a branching tree.

    Two to four trunks leave ``root`` (the optic disc) in arcs towards the far side of the field
    of view; each segment walks with a slowly turning heading (steps of 0.7 px), tapers, and now
    and then branches (a child at 25-60 degrees, thinner than its parent) until its radius drops
    below 0.35 px or it leaves the field of view. Radii >= 1 px make vessels 3 px wide, thinner
    ones are 1 px wide.
    """
    h, w = shape
    pts, radii = [], []
    toward = math.atan2((h - 1) / 2 - root[0], (w - 1) / 2 - root[1])
    stack = []
    for k in range(int(rng.integers(2, 5))):
        arc = (1.0 if k % 2 else -1.0) * math.radians(rng.uniform(35, 85))
        stack.append((float(root[0]), float(root[1]), toward + arc, float(rng.uniform(1.05, 1.5)), 0))
    segments = 0
    while stack and segments < 120:
        y, x, heading, r, depth = stack.pop()
        segments += 1
        turn = float(rng.normal(0.0, 0.015))
        taper = float(rng.uniform(0.993, 0.997))
        for step in range(4 * (h + w)):
            turn = 0.92 * turn + float(rng.normal(0.0, 0.01))
            heading += turn
            y += 0.7 * math.sin(heading)
            x += 0.7 * math.cos(heading)
            r *= taper
            iy, ix = int(round(y)), int(round(x))
            if r < 0.35 or not (0 <= iy < h and 0 <= ix < w) or not fov[iy, ix]:
                break
            pts.append((y, x))
            radii.append(r)
            if step > 10 and depth < 5 and rng.random() < 0.03:
                side = 1.0 if rng.random() < 0.5 else -1.0
                child = r * float(rng.uniform(0.5, 0.8))
                stack.append((y, x, heading + side * math.radians(rng.uniform(25, 60)), child, depth + 1))
                r *= float(rng.uniform(0.85, 0.97))
    return np.asarray(pts, dtype=np.float32).reshape(-1, 2), np.asarray(radii, dtype=np.float32)


def _gen_vessels(rng, shape):
    """A fundus-like image: a vessel tree (label 1), 1-4 pixels wide, darker than a textured
    retina with uneven illumination, leaving a bright optic disc; unlabelled dark haemorrhage
    look-alikes; the dark outside of the circular field of view is background."""
    if len(shape) != 2:
        raise ValueError(f"spatial_dims: the vessels task is 2D only, got shape {shape}")
    cv = _Canvas(rng, shape, 1, 0.05)
    g = cv.grid
    h, w = shape
    fov = _ellipsoid_rho(g, (0.0, 0.0), (0.96, 0.96)) <= 1.0
    illum = 0.62 - 0.14 * _ellipsoid_rho(g, (rng.uniform(-0.2, 0.2), rng.uniform(-0.2, 0.2)), (1.0, 1.0)) ** 2
    retina = illum + 0.04 * cv.coarse() + 0.02 * cv.mid
    cv.image[0][fov] = retina[fov]
    side = 1.0 if rng.random() < 0.5 else -1.0
    disc_c = (rng.uniform(-0.15, 0.15), side * rng.uniform(0.45, 0.6))
    disc = cv.deform(_ellipsoid_rho(g, disc_c, (0.11, 0.1)), 0.1) <= 1.0
    cv.image[0][disc & fov] += 0.25
    root = ((disc_c[0] + 1) * (h - 1) / 2, (disc_c[1] + 1) * (w - 1) / 2)
    pts, radii = _vessel_tree(rng, shape, root, fov)
    label = np.zeros(shape, dtype=np.int64)
    if len(pts):
        centre = np.zeros(shape, dtype=bool)
        rad = np.zeros(shape, dtype=np.float32)
        iy = np.clip(np.round(pts[:, 0]).astype(int), 0, h - 1)
        ix = np.clip(np.round(pts[:, 1]).astype(int), 0, w - 1)
        centre[iy, ix] = True
        np.maximum.at(rad, (iy, ix), radii)
        dist, (ny, nx) = ndimage.distance_transform_edt(~centre, return_indices=True)
        vessel = (dist <= np.maximum(rad[ny, nx], 0.5)) & fov
        # contrast grows with the calibre: the thinnest vessels are barely visible
        contrast = 0.05 + 0.08 * np.clip(rad[ny, nx], 0.0, 1.5)
        cv.image[0][vessel] -= (contrast * (1.0 + 0.25 * cv.fine))[vessel]
        label[vessel] = 1
    for _ in range(int(rng.integers(3, 9))):  # haemorrhages / pigment: dark, round, unlabelled
        c = (rng.uniform(-0.7, 0.7), rng.uniform(-0.7, 0.7))
        blob = cv.deform(_ellipsoid_rho(g, c, (rng.uniform(0.015, 0.04),) * 2), 0.2) <= 1.0
        cv.image[0][blob & fov & (label == 0)] -= rng.uniform(0.1, 0.2)
    cv.label = label
    return cv.finish(psf=float(rng.uniform(0.5, 0.7)), noise=float(rng.uniform(0.015, 0.03))), cv.label


# --------------------------------------------------------------------------------------------
# Task registry
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskSpec:
    """A built-in synthetic task.

    ``label_names[i]`` names label index ``i`` (0 is the background; for ``aerial`` index 0 is
    "unlabelled"); ``ratio`` is the pooled BG:FG ratio measured on 40 2D cases with seed 0
    (``Dataset.class_ratios()``; the tests check the ranges); ``regime`` says which experiment of
    the papers it mirrors.
    """

    name: str
    description: str
    label_names: tuple
    in_channels: int
    channel_names: tuple
    ratio: str
    regime: str
    generator: Callable = field(repr=False)
    dims: tuple = (2, 3)
    default_size: dict = field(default_factory=lambda: {2: 128, 3: 48})
    #: thin structures: the bench adds topology metrics (clDice, Betti errors) to its test cases
    topology: bool = False

    @property
    def num_classes(self) -> int:
        return len(self.label_names)


TASKS: dict = {
    spec.name: spec
    for spec in [
        TaskSpec(
            "liver",
            "one large organ (liver) in an abdominal CT-like image",
            ("background", "liver"),
            1,
            ("CT",),
            "40:1",
            "Ma et al. 2021 liver task (LiTS, BG:FG 42:1): mild imbalance",
            _gen_liver,
        ),
        TaskSpec(
            "tumor",
            "1-3 small hypodense lesions in the (unlabelled) liver; some cases only tiny ones",
            ("background", "tumor"),
            1,
            ("CT",),
            "520:1",
            "Ma et al. 2021 liver-tumour task (LiTS + MSD, BG:FG 576:1): highly imbalanced, polarised results",
            _gen_tumor,
        ),
        TaskSpec(
            "pancreas",
            "a thin, curved, lobulated, low-contrast organ",
            ("background", "pancreas"),
            1,
            ("CT",),
            "500:1",
            "Ma et al. 2021 pancreas task (NIH + MSD, BG:FG 503:1): highly imbalanced organ",
            _gen_pancreas,
        ),
        TaskSpec(
            "multiorgan",
            "8 abdominal organs of very different sizes",
            ("background",) + _MULTIORGAN_LABELS,
            1,
            ("CT",),
            "29:1-1210:1",
            "Ma et al. 2021 multi-organ task (NIH + BTCV, 30:1-1243:1): multi-class, mixed imbalance",
            _gen_multiorgan,
        ),
        TaskSpec(
            "brain",
            "skull stripping: brain inside a bright, uneven skull ring",
            ("background", "brain"),
            1,
            ("CT",),
            "3:1",
            "Jadon 2020 skull stripping (NFBS, Table II): mild imbalance, Dice ~0.97",
            _gen_brain,
        ),
        TaskSpec(
            "aerial",
            "RGB land-cover scene: buildings, land, roads, vegetation, water, unlabelled",
            _AERIAL_LABELS,
            3,
            ("R", "G", "B"),
            "0.8:1-22:1",
            "loss tutorial, aerial demo (Dubai aerial imagery): 6 classes, natural RGB images",
            _gen_aerial,
            dims=(2,),
            default_size={2: 128},
        ),
        TaskSpec(
            "vessels",
            "retina-like vessel trees, 1-3 pixels wide, the thinnest barely visible (topology matters)",
            ("background", "vessel"),
            1,
            ("fundus",),
            "24:1",
            "thin tubular structures (DRIVE-like retinal vessels): clDice / skeleton recall, topology metrics",
            _gen_vessels,
            dims=(2,),
            default_size={2: 128},
            topology=True,
        ),
    ]
}


#: CT normalisation statistics of a synthetic task come from its first cases, so that case ``i``
#: does not depend on ``n_cases``.
_FINGERPRINT_CASES = 8


def _case_rng(seed: int, name: str, dims: int, index: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(name.encode()), dims, index])


def make_task(
    name: str,
    n_cases: int = 40,
    spatial_dims: int = 2,
    size: int | None = None,
    seed: int = 0,
    normalize="auto",
) -> Dataset:
    """Generate a built-in synthetic task as a :class:`~seglosses.bench.data.Dataset`.

    Parameters
    ----------
    name : str
        One of :data:`TASKS` (``liver``, ``tumor``, ``pancreas``, ``multiorgan``, ``brain``,
        ``aerial``).
    n_cases : int
        Number of cases (ids ``"<name>_000"`` ...). Case ``i`` depends only on ``(seed, name,
        spatial_dims, size, i)``: the first 4 of 40 cases equal the 4 cases of ``n_cases=4``.
    spatial_dims : int
        2 (default, CPU-friendly) or 3 (``aerial`` is 2D only).
    size : int or sequence of int
        Image side (or full shape); default 128 in 2D, 48 in 3D.
    seed : int
    normalize : bool or str
        Intensity preprocessing, as for real data (:func:`~seglosses.bench.data.resolve_normalization`):
        the default ``"auto"`` uses nnU-Net's CT scheme for the CT-like tasks (dataset-level
        foreground percentiles and z-score, so the statistics depend on all ``n_cases`` cases)
        and per-case z-scoring for ``aerial``; ``False`` returns raw HU-like / RGB intensities.
    """
    if name not in TASKS:
        raise ValueError(f"name: unknown task {name!r}; expected one of {sorted(TASKS)}")
    spec = TASKS[name]
    if spatial_dims not in spec.dims:
        raise ValueError(f"spatial_dims: task {name!r} supports {list(spec.dims)}, got {spatial_dims!r}")
    if not isinstance(n_cases, (int, np.integer)) or n_cases < 1:
        raise ValueError(f"n_cases: expected a positive int, got {n_cases!r}")
    size = spec.default_size[spatial_dims] if size is None else size
    shape = (int(size),) * spatial_dims if np.isscalar(size) else tuple(int(s) for s in size)
    if len(shape) != spatial_dims or min(shape) < 16:
        raise ValueError(f"size: expected an int >= 16 or {spatial_dims} such ints, got {size!r}")
    schemes = resolve_normalization(normalize, spec.channel_names)
    raw = [spec.generator(_case_rng(seed, name, spatial_dims, i), shape) for i in range(n_cases)]
    ct_stats = None
    if "ct" in schemes:  # CT statistics from a fixed fingerprint set: cases 0-7, whatever n_cases
        finger = raw[:_FINGERPRINT_CASES] + [
            spec.generator(_case_rng(seed, name, spatial_dims, i), shape)
            for i in range(n_cases, _FINGERPRINT_CASES)
        ]
        ct_stats = {
            c: ct_statistics([r[0] for r in finger], [r[1] for r in finger], c)
            for c, sc in enumerate(schemes)
            if sc == "ct"
        }
    images, notes = normalize_images([r[0] for r in raw], [r[1] for r in raw], schemes, ct_stats)
    cases = [
        Case(
            f"{name}_{i:03d}",
            img,
            lab.astype(np.int64),
            (1.0,) * spatial_dims,
            f"synthetic:{name}",
            {"seed": seed, "index": i},
        )
        for i, (img, (_, lab)) in enumerate(zip(images, raw))
    ]
    return Dataset(
        normalization=notes,
        name=name,
        cases=cases,
        label_names=spec.label_names,
        channel_names=spec.channel_names,
        slice_axis=0 if spatial_dims == 3 else None,
        description=spec.description,
        source=f"synthetic:{name} (seed {seed}, {spatial_dims}D {'x'.join(map(str, shape))})",
    )


class TaskInfo(NamedTuple):
    """One row of :func:`list_tasks`."""

    name: str
    description: str
    classes: tuple
    ratio: str


def list_tasks(measure: bool = False, n_cases: int = 40, seed: int = 0) -> list:
    """``[TaskInfo(name, description, classes, ratio)]`` for the ``seglosses tasks`` command.

    ``classes`` are the label names (index order, background first). ``ratio`` is the nominal
    BG:FG ratio; with ``measure=True`` the ratio measured on ``n_cases`` generated 2D cases
    (a few seconds).
    """
    rows = []
    for spec in TASKS.values():
        ratio = spec.ratio
        if measure:
            ratio = class_ratio_text(make_task(spec.name, n_cases=n_cases, seed=seed).class_ratios())
        rows.append(TaskInfo(spec.name, spec.description, spec.label_names, ratio))
    return rows


# --------------------------------------------------------------------------------------------
# Preview pictures
# --------------------------------------------------------------------------------------------

def preview_tasks(
    out_dir,
    tasks: Sequence[str] | None = None,
    n_cases: int = 4,
    seed: int = 0,
    spatial_dims: int = 2,
    size: int | None = None,
) -> list:
    """Save one PNG per task (``<out_dir>/<task>.png``): ``n_cases`` images and their label overlays.

    3D cases are shown by the axial slice (axis 0) through the centre of mass of the foreground
    (the middle slice when there is none). Rendered with matplotlib's Agg canvas (no display, no
    global backend change). Returns the written paths.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    from .plotting import PALETTE, overlay

    names = list(TASKS) if tasks is None else list(tasks)
    unknown = [t for t in names if t not in TASKS]
    if unknown:
        raise ValueError(f"tasks: unknown task(s) {unknown}; expected some of {sorted(TASKS)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names:
        dims = spatial_dims if spatial_dims in TASKS[name].dims else 2
        ds = make_task(name, n_cases=n_cases, spatial_dims=dims, size=size, seed=seed)
        fig = Figure(figsize=(2.4 * n_cases, 5.3))
        FigureCanvasAgg(fig)
        axes = fig.subplots(2, n_cases, squeeze=False)
        for j, case in enumerate(ds.cases):
            pic, lab = display_slice(case, axis=0 if dims == 3 else None)
            axes[0, j].imshow(pic, cmap="gray", interpolation="nearest")
            axes[1, j].imshow(overlay(pic, lab, alpha=0.5), interpolation="nearest")
            axes[0, j].set_title(case.case_id, fontsize=8)
            for ax in axes[:, j]:
                ax.set_axis_off()
        handles = [
            Patch(color=PALETTE[i % len(PALETTE)], label=n) for i, n in enumerate(ds.label_names) if i > 0
        ]
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 5), fontsize=7, frameon=False)
        ratio = class_ratio_text(ds.class_ratios())
        fig.suptitle(
            f"{name} ({dims}D {'x'.join(map(str, case.spatial_shape))}): {TASKS[name].description}; BG:FG {ratio}",
            fontsize=8,
        )
        fig.subplots_adjust(left=0.01, right=0.99, top=0.9, bottom=0.08, wspace=0.04, hspace=0.08)
        path = out / f"{name}.png"
        fig.savefig(path, dpi=90)
        paths.append(path)
    return paths
