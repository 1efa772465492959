"""Argument, shape and spacing checks: the one checking module of losses, metrics and distance maps.

Every check raises a ``TypeError`` (wrong kind of value) or a ``ValueError`` (right kind, wrong
value) whose message names the argument, the expected and the actual value. Losses
(:mod:`seglosses._contract`, :mod:`seglosses.functional`), metrics (:mod:`seglosses.metrics`) and
distance maps (:mod:`seglosses.distance`) all check through here, so there is one spacing
checker, one choice checker, one way to turn an array-like into numpy.

This module does not import torch at import time (``import seglosses.metrics`` stays torch-free);
tensors are recognised by duck typing and converted lazily.

Examples
--------
>>> check_spacing(0.5, 2)
(0.5, 0.5)
>>> check_spacing((1, 2, 3), 2)
Traceback (most recent call last):
...
ValueError: spacing: expected 2 values (one per spatial axis), got 3: [1, 2, 3]
>>> check_choice("reduction", "avg", REDUCTIONS)
Traceback (most recent call last):
...
ValueError: reduction: expected one of ['mean', 'sum', 'none'], got 'avg'
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "REDUCTIONS",
    "METHODS",
    "describe",
    "is_tensor",
    "check_choice",
    "check_reduction",
    "check_positive",
    "check_fraction",
    "check_spacing",
    "to_numpy",
    "as_binary_mask",
    "as_label_map",
    "check_same_shape",
    "check_spatial_ndim",
    "check_tolerance",
    "check_percentile",
    "check_method",
]

REDUCTIONS = ("mean", "sum", "none")
#: surface-distance metric methods (:mod:`seglosses.metrics.surface`)
METHODS = ("surface", "voxel")


# ----------------------------------------------------------------------------- generic values

def is_tensor(x: Any) -> bool:
    """Whether ``x`` is a ``torch.Tensor`` (without importing torch when it is not loaded)."""
    import sys

    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def describe(x: Any) -> str:
    """Short description of a value for an error message (shape and dtype for arrays)."""
    if is_tensor(x) or isinstance(x, np.ndarray):
        kind = "tensor" if is_tensor(x) else "array"
        return f"{kind} of shape {tuple(x.shape)} and dtype {x.dtype}"
    return f"{type(x).__name__} {x!r}"


def check_choice(name: str, value: Any, choices) -> None:
    """Raise ``ValueError`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name}: expected one of {list(choices)}, got {value!r}")


def check_reduction(reduction: str) -> None:
    """``reduction`` must be ``"mean"``, ``"sum"`` or ``"none"``."""
    check_choice("reduction", reduction, REDUCTIONS)


def check_positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    """Raise ``ValueError`` unless ``value`` is a finite number > 0 (or >= 0)."""
    ok = isinstance(value, (int, float)) and value == value and abs(value) != float("inf")
    ok = ok and (value >= 0 if allow_zero else value > 0)
    if not ok:
        expected = "a finite number >= 0" if allow_zero else "a finite number > 0"
        raise ValueError(f"{name}: expected {expected}, got {value!r}")


def check_fraction(name: str, value: float) -> None:
    """Raise ``ValueError`` unless ``value`` is a number in ``[0, 1]``."""
    if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
        raise ValueError(f"{name}: expected a number in [0, 1], got {value!r}")


def check_spacing(spacing: Any, ndim: int, name: str = "spacing") -> tuple[float, ...]:
    """Voxel spacing per spatial axis (numpy axis order) -> tuple of ``ndim`` positive finite floats.

    ``None`` means 1 per axis; a single number means isotropic spacing; a sequence, numpy array
    or tensor gives one value per axis. Used by the metrics (mm), the distance maps and the
    boundary losses (their ``spacing`` option), so all three accept and reject the same values.
    """
    if spacing is None:
        return (1.0,) * ndim
    if is_tensor(spacing):
        spacing = spacing.detach().cpu().numpy()
    try:
        arr = np.asarray(spacing)
    except ValueError:  # ragged nested sequences
        arr = np.asarray(None)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise TypeError(f"{name}: expected None, a number or a sequence of {ndim} numbers, got {spacing!r}")
    if arr.ndim == 0:
        arr = np.repeat(arr, ndim)
    if arr.ndim != 1 or arr.size != ndim:
        raise ValueError(
            f"{name}: expected {ndim} values (one per spatial axis), got {arr.size}: {np.asarray(spacing).tolist()!r}"
        )
    values = tuple(float(v) for v in arr.astype(np.float64))
    if not all(math.isfinite(v) and v > 0 for v in values):
        raise ValueError(f"{name}: expected finite positive values (one per spatial axis), got {list(values)!r}")
    return values


# ----------------------------------------------------------------------------- arrays (metrics)

def to_numpy(x: Any, name: str) -> np.ndarray:
    """numpy array or torch tensor (any device) -> numpy array, without copying when possible."""
    if isinstance(x, np.ndarray):
        return x
    if is_tensor(x):
        x = x.detach()
        if str(x.dtype) in ("torch.bfloat16", "torch.float16"):  # numpy has no bfloat16
            x = x.float()
        return x.cpu().numpy()
    if isinstance(x, (np.generic, bool, int, float)):
        raise TypeError(f"{name} must be an array (numpy.ndarray or torch.Tensor); got a scalar {x!r}")
    if isinstance(x, (list, tuple)):
        return np.asarray(x)
    raise TypeError(f"{name} must be a numpy.ndarray or torch.Tensor; got {type(x).__name__}")


def _describe_bad_values(arr: np.ndarray, bad: np.ndarray) -> str:
    values = np.unique(arr[bad])
    shown = ", ".join(repr(v.item()) for v in values[:5])
    more = f", ... ({values.size} distinct)" if values.size > 5 else ""
    return f"[{shown}{more}]"


def as_binary_mask(x: Any, name: str) -> np.ndarray:
    """Return ``x`` as a numpy bool array; values must be 0/1 (bool, integer or floating dtype)."""
    arr = to_numpy(x, name)
    if arr.dtype == bool:
        return arr
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise TypeError(f"{name} must have a bool, integer or floating dtype; got dtype {arr.dtype}")
    if arr.ndim == 0:
        raise ValueError(f"{name} must be an array with at least 1 dimension; got a 0-d array")
    nonzero = arr != 0
    bad = nonzero & (arr != 1)
    if bad.any():
        raise ValueError(
            f"{name} must be a binary mask with values in {{0, 1}}; got values "
            f"{_describe_bad_values(arr, bad)} (to evaluate a label map use evaluate_case, or pass "
            f"{name} == label)"
        )
    return nonzero


def as_label_map(x: Any, name: str) -> np.ndarray:
    """Return ``x`` as a numpy integer label map (integral floats are accepted and converted)."""
    arr = to_numpy(x, name)
    if arr.dtype == bool:
        return arr.view(np.uint8)
    if np.issubdtype(arr.dtype, np.integer):
        return arr
    if np.issubdtype(arr.dtype, np.floating):
        bad = ~np.isfinite(arr) | (arr != np.round(arr))
        if bad.any():
            raise ValueError(
                f"{name} must be a label map with integer values; got non-integer values "
                f"{_describe_bad_values(arr, bad)}"
            )
        return arr.astype(np.int64)
    raise TypeError(f"{name} must have an integer, bool or floating dtype; got dtype {arr.dtype}")


def check_same_shape(gt: np.ndarray, pred: np.ndarray, gt_name: str = "gt", pred_name: str = "pred") -> None:
    """Both arrays must have the same shape."""
    if gt.shape != pred.shape:
        raise ValueError(
            f"{gt_name} and {pred_name} must have the same shape; got {gt_name}.shape={tuple(gt.shape)} "
            f"and {pred_name}.shape={tuple(pred.shape)}"
        )


def check_spatial_ndim(arr: np.ndarray, name: str) -> None:
    """A metric's mask is 2D or 3D (no batch or channel axis)."""
    if arr.ndim not in (2, 3):
        raise ValueError(
            f"{name} must be a 2D or 3D mask (no batch or channel axis); got ndim={arr.ndim} "
            f"(shape {tuple(arr.shape)})"
        )


def check_tolerance(tolerance: Any) -> float:
    """NSD tolerance: a non-negative number of mm."""
    try:
        value = float(tolerance)
    except (TypeError, ValueError):
        raise TypeError(f"tolerance must be a number (mm); got {tolerance!r}") from None
    if math.isnan(value) or value < 0:
        raise ValueError(f"tolerance must be a non-negative number of mm; got {tolerance!r}")
    return value


def check_percentile(percentile: Any) -> float | None:
    """Hausdorff percentile: ``None`` (maximum) or a number in [0, 100]."""
    if percentile is None:
        return None
    try:
        value = float(percentile)
    except (TypeError, ValueError):
        raise TypeError(f"percentile must be None or a number in [0, 100]; got {percentile!r}") from None
    if not 0 <= value <= 100:
        raise ValueError(f"percentile must be None or in [0, 100]; got {percentile!r}")
    return value


def check_method(method: Any) -> str:
    """Surface-metric method: ``"surface"`` or ``"voxel"``."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS!r}; got {method!r}")
    return method
