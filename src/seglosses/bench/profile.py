"""The profile of a segmentation dataset: what a loss choice depends on, measured from the labels.

:func:`profile_dataset` reads a :class:`~seglosses.bench.data.Dataset` (a built-in task or anything
``load_dataset`` reads) and measures, per foreground class,

* ``voxel_fraction`` -- class voxels / all voxels, pooled over cases, and ``bg_fg_ratio`` -- (all
  voxels - class voxels) / class voxels, Ma et al.'s BG:FG of their Table 1
  (doi:10.1016/j.media.2021.102035);
* ``absent_fraction`` -- the fraction of cases in which the class does not occur;
* ``objects_per_case`` -- connected components per case (full connectivity: 8 in 2-D, 26 in 3-D,
  as ``cc3d`` and nnU-Net's post-processing use), median / mean / max over the cases where the
  class is present;
* ``object_size`` -- component sizes in voxels and in mm^3 (mm^2 in 2-D): median and 10th
  percentile over all components of all cases;
* ``boundary_fraction`` -- the fraction of the class's voxels that have a face neighbour outside
  the class (the image border does not count as outside). Compact organs give a few per cent at
  typical resolutions; thin structures (vessels, membranes, a 1-3 voxel wide tube) give 0.5-1;
* ``thinness`` -- ``boundary_fraction`` divided by that of a disk (ball in 3-D) of the class's
  median object size, :func:`compact_boundary_fraction`: about 1 for compact objects whatever
  their size, 1.5-5 for elongated and tubular ones. Small compact objects (a 10-voxel lesion)
  lie almost entirely on their boundary too; ``thinness`` tells them from thin structures.

and for the dataset: cases, spatial dims, image size, spacing and anisotropy (largest / smallest
spacing), input channels and classes. Everything is computed from the label maps only; images are
not read beyond what loading needs.

Example
-------
>>> import numpy as np
>>> from seglosses.bench.data import Case, Dataset
>>> lab = np.zeros((8, 8), dtype=np.int64); lab[1:3, 1:3] = 1; lab[5, 5] = 1
>>> ds = Dataset("toy", [Case("a", np.zeros((1, 8, 8), np.float32), lab, (1.0, 1.0))], ("bg", "fg"))
>>> p = profile_dataset(ds)
>>> p["classes"]["fg"]["voxel_fraction"], p["classes"]["fg"]["objects_per_case"]["median"]
(0.078125, 2.0)
>>> p["classes"]["fg"]["boundary_fraction"]   # every voxel of a 2x2 square and of a dot is on the boundary
1.0
"""

from __future__ import annotations

import math
from typing import Dict, List

import numpy as np
from scipy import ndimage

__all__ = [
    "profile_dataset",
    "components",
    "boundary_voxels",
    "compact_boundary_fraction",
    "format_profile",
    "PROFILE_KEYS",
]

#: the per-class keys of a profile (the documented JSON schema, docs/recommend.md)
PROFILE_KEYS = (
    "voxel_fraction",
    "bg_fg_ratio",
    "absent_fraction",
    "objects_per_case",
    "object_size_voxels",
    "object_size_mm",
    "boundary_fraction",
    "thinness",
)

#: boundary fraction of a digital disk / ball of ``n`` voxels is about ``K / n ** (1 / d)``
#: (face-connected inner boundary; fitted on disks of radius 3-40 and balls of radius 3-20,
#: within 6 %)
_COMPACT_K = {1: 2.0, 2: 3.15, 3: 3.8}


def compact_boundary_fraction(size: float, dims: int) -> float:
    """Boundary fraction of a compact object (disk, ball) of ``size`` voxels in ``dims`` dims.

    >>> round(compact_boundary_fraction(317, 2), 3)     # a disk of radius 10: 56 of its 317 voxels
    0.177
    >>> compact_boundary_fraction(4, 2)                  # tiny objects are all boundary
    1.0
    """
    if size <= 0:
        return 1.0
    return float(min(1.0, _COMPACT_K.get(dims, 3.8) / size ** (1.0 / dims)))


def components(mask: np.ndarray) -> np.ndarray:
    """Sizes (voxels) of the connected components of a boolean mask, full connectivity.

    Uses ``cc3d`` (connected-components-3d) when it is installed, scipy otherwise; both give the
    same components (tested).

    >>> m = np.zeros((5, 5), bool); m[0, 0] = m[1, 1] = True; m[4, 4] = True
    >>> sorted(components(m).tolist())      # the diagonal pair is one component (8-connectivity)
    [1, 2]
    """
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return np.zeros(0, dtype=np.int64)
    try:  # pragma: no cover - exercised where cc3d is installed
        import cc3d
    except ImportError:
        cc3d = None
    if cc3d is not None and mask.ndim in (2, 3):
        conn = 8 if mask.ndim == 2 else 26
        labels = cc3d.connected_components(mask.astype(np.uint8), connectivity=conn)
        n = int(labels.max())
    else:
        structure = ndimage.generate_binary_structure(mask.ndim, mask.ndim)
        labels, n = ndimage.label(mask, structure=structure)
    return np.bincount(labels.ravel(), minlength=n + 1)[1:].astype(np.int64)


def boundary_voxels(mask: np.ndarray) -> int:
    """Number of voxels of ``mask`` with a face neighbour outside it (image border excluded).

    >>> m = np.zeros((6, 6), bool); m[1:5, 1:5] = True
    >>> boundary_voxels(m)                 # the 12 voxels of the square's ring, not its 2x2 core
    12
    """
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return 0
    face = ndimage.generate_binary_structure(mask.ndim, 1)
    inner = ndimage.binary_erosion(mask, structure=face, border_value=1)
    return int(mask.sum() - inner.sum())


def _stats(values: List[float]) -> Dict[str, float]:
    if not values:
        return {"median": 0.0, "mean": 0.0, "max": 0.0}
    v = np.asarray(values, dtype=np.float64)
    return {"median": float(np.median(v)), "mean": float(v.mean()), "max": float(v.max())}


def _sizes(values: np.ndarray, scale: float) -> Dict[str, float]:
    if values.size == 0:
        return {"median": 0.0, "p10": 0.0}
    v = values.astype(np.float64) * scale
    return {"median": float(np.median(v)), "p10": float(np.percentile(v, 10))}


def profile_dataset(dataset) -> dict:
    """Measure the profile of ``dataset`` (see the module docstring for every number).

    Returns a JSON-serialisable dict ``{"dataset": {...}, "classes": {name: {...}}}``. A class that
    never occurs has ``voxel_fraction`` 0, ``bg_fg_ratio`` ``inf`` (``None`` in JSON), and zero
    object counts.
    """
    n_classes = dataset.num_classes
    n_cases = len(dataset)
    dims = dataset.spatial_dims
    voxels_total = 0
    counts = np.zeros(n_classes, dtype=np.int64)
    boundary = np.zeros(n_classes, dtype=np.int64)
    present = np.zeros(n_classes, dtype=np.int64)
    objects: List[List[float]] = [[] for _ in range(n_classes)]
    sizes: List[List[np.ndarray]] = [[] for _ in range(n_classes)]
    sizes_mm: List[List[np.ndarray]] = [[] for _ in range(n_classes)]
    shapes, spacings = [], []
    for case in dataset.cases:
        lab = case.label
        shapes.append(lab.shape)
        spacings.append(tuple(float(s) for s in case.spacing))
        voxel_mm = float(np.prod(case.spacing))
        voxels_total += lab.size
        bc = np.bincount(lab.ravel(), minlength=n_classes)[:n_classes]
        counts += bc
        for c in range(1, n_classes):
            if bc[c] == 0:
                continue
            mask = lab == c
            present[c] += 1
            comp = components(mask)
            objects[c].append(float(comp.size))
            sizes[c].append(comp)
            sizes_mm[c].append(comp * voxel_mm)
            boundary[c] += boundary_voxels(mask)
    shp = np.asarray(shapes, dtype=np.float64)
    spc = np.asarray(spacings, dtype=np.float64)
    med_spacing = np.median(spc, axis=0)
    dataset_info = {
        "name": dataset.name,
        "cases": n_cases,
        "spatial_dims": dims,
        "image_size": {
            "median": [int(round(x)) for x in np.median(shp, axis=0)],
            "min": [int(x) for x in shp.min(axis=0)],
            "max": [int(x) for x in shp.max(axis=0)],
        },
        "spacing": [float(x) for x in med_spacing],
        "anisotropy": float(med_spacing.max() / med_spacing.min()) if med_spacing.min() > 0 else math.inf,
        "in_channels": int(dataset.in_channels),
        "classes": n_classes - 1,
        "unit": "mm^3" if dims == 3 else ("mm^2" if dims == 2 else "mm"),
    }
    classes = {}
    for c in range(1, n_classes):
        allsz = np.concatenate(sizes[c]) if sizes[c] else np.zeros(0)
        allmm = np.concatenate(sizes_mm[c]) if sizes_mm[c] else np.zeros(0)
        classes[dataset.label_names[c]] = {
            "index": c,
            "voxel_fraction": float(counts[c] / voxels_total) if voxels_total else 0.0,
            "bg_fg_ratio": float((voxels_total - counts[c]) / counts[c]) if counts[c] else math.inf,
            "absent_fraction": float(1.0 - present[c] / n_cases),
            "objects_per_case": _stats(objects[c]),
            "object_size_voxels": _sizes(allsz, 1.0),
            "object_size_mm": _sizes(allmm, 1.0),
            "boundary_fraction": float(boundary[c] / counts[c]) if counts[c] else 0.0,
        }
        bf = classes[dataset.label_names[c]]["boundary_fraction"]
        median = classes[dataset.label_names[c]]["object_size_voxels"]["median"]
        classes[dataset.label_names[c]]["thinness"] = (
            float(bf / compact_boundary_fraction(median, dims)) if counts[c] else 0.0
        )
    return {"dataset": dataset_info, "classes": classes}


def _num(x: float, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "inf"
    if x == int(x) and abs(x) < 1e6:
        return str(int(x))
    return f"{x:.{digits}g}"


def format_profile(profile: dict) -> List[str]:
    """The profile as the human-readable lines that ``seglosses recommend`` prints."""
    d = profile["dataset"]
    size = "x".join(map(str, d["image_size"]["median"]))
    spacing = "x".join(_num(s) for s in d["spacing"])
    lines = [
        f"dataset {d['name']}: {d['cases']} cases, {d['spatial_dims']}-D, median size {size}, "
        f"spacing {spacing} mm (anisotropy {_num(d['anisotropy'])}), {d['in_channels']} input channel(s), "
        f"{d['classes']} foreground class(es)",
        f"  {'class':<16} {'fraction':>9} {'BG:FG':>8} {'absent':>7} {'objects/case':>13} "
        f"{'size med (p10) vox':>19} {'size med ' + d['unit']:>14} {'boundary':>9}",
    ]
    for name, c in profile["classes"].items():
        obj = c["objects_per_case"]
        sz = c["object_size_voxels"]
        lines.append(
            f"  {name[:16]:<16} {c['voxel_fraction']:>9.2e} {_num(c['bg_fg_ratio'], 4) + ':1':>8} "
            f"{c['absent_fraction']:>7.0%} {_num(obj['median']) + ' (max ' + _num(obj['max']) + ')':>13} "
            f"{_num(sz['median']) + ' (' + _num(sz['p10']) + ')':>19} {_num(c['object_size_mm']['median']):>14} "
            f"{c['boundary_fraction']:>9.2f} {c['thinness']:>9.2f}"
        )
    return lines
