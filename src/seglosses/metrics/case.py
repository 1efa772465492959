"""Per-case evaluation of multi-label label maps: every overlap and surface metric per label."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from scipy import ndimage

from .._checks import (
    as_label_map,
    check_method,
    check_same_shape,
    check_spacing,
    check_spatial_ndim,
    check_tolerance,
)
from .overlap import Confusion, _from_counts
from .surface import _compute, _union_box

__all__ = ["METRIC_KEYS", "evaluate_case"]

#: The keys of each label's dict returned by :func:`evaluate_case`, in order.
METRIC_KEYS = ("dsc", "iou", "sensitivity", "specificity", "precision", "nsd", "hd", "hd95", "assd")

_FIND_OBJECTS_MAX_LABEL = 1 << 16


def _present_labels(*maps: np.ndarray) -> list[int]:
    present: set[int] = set()
    for m in maps:
        if m.size == 0:
            continue
        lo, hi = int(m.min()), int(m.max())
        if lo >= 0 and hi < _FIND_OBJECTS_MAX_LABEL:
            present.update(np.flatnonzero(np.bincount(m.ravel().astype(np.intp, copy=False))).tolist())
        else:
            present.update(np.unique(m).tolist())
    present.discard(0)
    return sorted(int(v) for v in present)


def _check_labels(labels: Any) -> list[int]:
    if isinstance(labels, (int, np.integer)):
        labels = [labels]
    if not isinstance(labels, Iterable) or isinstance(labels, (str, bytes)):
        raise TypeError(f"labels must be None or a sequence of integer labels; got {labels!r}")
    out = []
    for v in labels:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"labels must contain integers; got {v!r} ({type(v).__name__}) in {labels!r}")
        out.append(int(v))
    return out


def _boxes(label_map: np.ndarray, labels: list[int]) -> dict[int, tuple[slice, ...] | None]:
    """Bounding box of every requested label (``None`` when absent), one pass when possible."""
    boxes: dict[int, tuple[slice, ...] | None] = {}
    positive = [v for v in labels if 0 < v < _FIND_OBJECTS_MAX_LABEL]
    if positive and label_map.size and int(label_map.min()) >= 0:
        arr = label_map if label_map.dtype != np.uint64 else label_map.astype(np.int64)
        found = ndimage.find_objects(arr, max_label=max(positive))
        for v in positive:
            boxes[v] = found[v - 1]
    for v in labels:
        if v not in boxes:  # label 0, negative or huge labels, negative maps: one full pass each
            mask = label_map == v
            boxes[v] = _union_box(mask, mask)
    return boxes


def _merge(a: tuple[slice, ...] | None, b: tuple[slice, ...] | None) -> tuple[slice, ...] | None:
    if a is None:
        return b
    if b is None:
        return a
    return tuple(slice(min(x.start, y.start), max(x.stop, y.stop)) for x, y in zip(a, b))


def evaluate_case(
    pred_labels: Any,
    gt_labels: Any,
    labels: Iterable[int] | int | None = None,
    spacing: Any = None,
    tolerance: float = 1.0,
    *,
    method: str = "surface",
) -> dict[int, dict[str, float]]:
    """Evaluate one case: all overlap and surface metrics for every label of two label maps.

    Note the argument order: **prediction first**, then ground truth (the binary metric functions
    take ``(gt, pred)``); pass them by keyword to be safe.

    Parameters
    ----------
    pred_labels, gt_labels : numpy.ndarray or torch.Tensor
        2D or 3D integer label maps of the same shape (integral floats are accepted, e.g. from
        ``nibabel``'s ``get_fdata()``).
    labels : int or sequence of int, optional
        Labels to evaluate. ``None`` (default): every nonzero label present in the ground truth or
        the prediction. A requested label absent from both gets the both-empty values.
    spacing : float or sequence of float, optional
        Voxel spacing in mm per axis (numpy axis order); default 1 mm.
    tolerance : float
        NSD tolerance in mm, inclusive. The default 1.0 mm is the Decathlon's, used by Ma et al.
        (2021, section 3.3.2).
    method : {"surface", "voxel"}
        Surface definition for NSD / HD / HD95 / ASSD; see :func:`seglosses.metrics.surface_distances`.

    Returns
    -------
    dict
        ``{label: {"dsc", "iou", "sensitivity", "specificity", "precision", "nsd", "hd", "hd95",
        "assd"}}`` (keys :data:`METRIC_KEYS`, Python floats; distances in mm). Empty masks follow
        the documented rules: label absent from both maps -> DSC = IoU = NSD = 1 (and sensitivity,
        specificity, precision 1), distances 0; absent from exactly one -> DSC, IoU, NSD,
        sensitivity/precision 0 and distances ``inf``.

    Raises
    ------
    ValueError
        Shapes differ, maps are not 2D/3D, a float map has non-integer values, bad spacing or a
        negative tolerance.
    TypeError
        A map is not an array or has a non-numeric dtype, or ``labels`` holds non-integers.

    References
    ----------
    Ma et al. (2021), doi:10.1016/j.media.2021.102035, section 3.3 (DSC and NSD per case and label);
    Nikolov et al. (2018), arXiv:1809.04430 (NSD).

    Examples
    --------
    >>> import numpy as np
    >>> gt = np.zeros((6, 8), int); gt[1:4, 1:4] = 1; gt[1:5, 5:7] = 2
    >>> pred = gt.copy(); pred[4, 5:7] = 0
    >>> res = evaluate_case(pred, gt, spacing=(1.0, 1.0), tolerance=1.0)
    >>> sorted(res)
    [1, 2]
    >>> res[1]["dsc"], res[1]["hd"], res[1]["nsd"]
    (1.0, 0.0, 1.0)
    >>> round(res[2]["dsc"], 4), res[2]["hd95"], res[2]["sensitivity"], res[2]["precision"]
    (0.8571, 1.0, 0.75, 1.0)
    """
    pred = as_label_map(pred_labels, "pred_labels")
    gt = as_label_map(gt_labels, "gt_labels")
    check_same_shape(gt, pred, "gt_labels", "pred_labels")
    check_spatial_ndim(gt, "gt_labels")
    sp = check_spacing(spacing, gt.ndim)
    tol = check_tolerance(tolerance)
    method = check_method(method)
    wanted = _present_labels(gt, pred) if labels is None else _check_labels(labels)

    boxes_g, boxes_p = _boxes(gt, wanted), _boxes(pred, wanted)
    results: dict[int, dict[str, float]] = {}
    for label in wanted:
        box = _merge(boxes_g[label], boxes_p[label])
        if box is None:
            g = p = np.zeros((0,) * gt.ndim, dtype=bool)
        else:
            g, p = gt[box] == label, pred[box] == label
        tp = int(np.count_nonzero(g & p))
        fp = int(np.count_nonzero(p)) - tp
        fn = int(np.count_nonzero(g)) - tp
        counts = Confusion(tp=tp, fp=fp, fn=fn, tn=int(gt.size) - tp - fp - fn)
        row = _from_counts(counts)
        sd = _compute(g, p, sp, method)
        row["nsd"] = sd.normalized_surface_dice(tol)
        row["hd"] = sd.hausdorff(None)
        row["hd95"] = sd.hausdorff(95.0)
        row["assd"] = sd.average_symmetric()
        results[label] = {k: row[k] for k in METRIC_KEYS}
    return results
