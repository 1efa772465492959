"""Input checks shared by the metrics: one place that turns numpy arrays / torch tensors into numpy,
and raises a ``TypeError`` / ``ValueError`` naming the argument, the expected and the actual value."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "as_binary_mask",
    "as_label_map",
    "check_method",
    "check_percentile",
    "check_same_shape",
    "check_spacing",
    "check_spatial_ndim",
    "check_tolerance",
]

METHODS = ("surface", "voxel")


def _to_numpy(x: Any, name: str) -> np.ndarray:
    """numpy array or torch tensor (any device) -> numpy array, without copying when possible."""
    if isinstance(x, np.ndarray):
        return x
    try:  # torch is a hard dependency of seglosses, but keep the metrics importable without it
        import torch
    except ImportError:  # pragma: no cover
        torch = None
    if torch is not None and isinstance(x, torch.Tensor):
        x = x.detach()
        if x.dtype in (torch.bfloat16, torch.float16):
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
    arr = _to_numpy(x, name)
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
    arr = _to_numpy(x, name)
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
    if gt.shape != pred.shape:
        raise ValueError(
            f"{gt_name} and {pred_name} must have the same shape; got {gt_name}.shape={tuple(gt.shape)} "
            f"and {pred_name}.shape={tuple(pred.shape)}"
        )


def check_spatial_ndim(arr: np.ndarray, name: str) -> None:
    if arr.ndim not in (2, 3):
        raise ValueError(
            f"{name} must be a 2D or 3D mask (no batch or channel axis); got ndim={arr.ndim} "
            f"(shape {tuple(arr.shape)})"
        )


def check_spacing(spacing: float | Sequence[float] | np.ndarray | None, ndim: int) -> tuple[float, ...]:
    """Spacing in mm per axis (numpy axis order) -> tuple of ``ndim`` positive finite floats.

    ``None`` means 1 mm per axis; a single number means isotropic spacing.
    """
    if spacing is None:
        return (1.0,) * ndim
    try:
        import torch

        if isinstance(spacing, torch.Tensor):
            spacing = spacing.detach().cpu().numpy()
    except ImportError:  # pragma: no cover
        pass
    arr = np.asarray(spacing)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    ):
        raise TypeError(f"spacing must be a number or a sequence of {ndim} numbers; got {spacing!r}")
    if arr.ndim == 0:
        arr = np.repeat(arr, ndim)
    if arr.ndim != 1 or arr.size != ndim:
        raise ValueError(
            f"spacing must have one value per spatial axis ({ndim} for a {ndim}D mask); got "
            f"{arr.size} value(s): {np.asarray(spacing).tolist()!r}"
        )
    values = tuple(float(v) for v in arr.astype(np.float64))
    if not all(math.isfinite(v) and v > 0 for v in values):
        raise ValueError(f"spacing must be positive and finite (mm per axis); got {list(values)!r}")
    return values


def check_tolerance(tolerance: Any) -> float:
    try:
        value = float(tolerance)
    except (TypeError, ValueError):
        raise TypeError(f"tolerance must be a number (mm); got {tolerance!r}") from None
    if math.isnan(value) or value < 0:
        raise ValueError(f"tolerance must be a non-negative number of mm; got {tolerance!r}")
    return value


def check_percentile(percentile: Any) -> float | None:
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
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS!r}; got {method!r}")
    return method
