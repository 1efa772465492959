"""Argument, shape and spacing checks: the one checking module of losses, metrics and distance maps.

Every check raises a ``TypeError`` (wrong kind of value) or a ``ValueError`` (right kind, wrong
value) whose message names the argument, the expected and the actual value, in one form:
``"<argument>: expected <what>, got <value>"``. Losses
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

import functools
import inspect
import math
import warnings
from collections.abc import Callable
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
    "check_label_range",
    "check_spacing",
    "to_numpy",
    "as_binary_mask",
    "as_label_map",
    "check_same_shape",
    "check_spatial_ndim",
    "check_tolerance",
    "check_percentile",
    "check_method",
    "pred_gt",
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


def check_label_range(lo: int, hi: int, n_labels: int, *, ignore_index: Any = None, context: str = "") -> None:
    """Label values (their minimum ``lo`` and maximum ``hi``) must lie in ``[0, n_labels)``.

    Shared by the losses' input contract and the distance maps; ``ignore_index`` voxels must be
    replaced before (it is only named in the message); ``context`` ends the expectation (e.g.
    ``"for multiclass mode with C == 3"``).
    """
    if lo < 0 or hi >= n_labels:
        bad = lo if lo < 0 else hi
        extra = "" if ignore_index is None else f" (other than ignore_index={ignore_index})"
        where = f" {context}" if context else ""
        raise ValueError(f"target: expected label values in [0, {n_labels}){extra}{where}, got value {bad}")


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
        raise TypeError(f"{name}: expected an array (numpy.ndarray or torch.Tensor), got a scalar {x!r}")
    if isinstance(x, (list, tuple)):
        return np.asarray(x)
    raise TypeError(f"{name}: expected a numpy.ndarray or torch.Tensor, got {type(x).__name__}")


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
        raise TypeError(f"{name}: expected a bool, integer or floating dtype, got dtype {arr.dtype}")
    if arr.ndim == 0:
        raise ValueError(f"{name}: expected an array with at least 1 dimension, got a 0-d array")
    nonzero = arr != 0
    bad = nonzero & (arr != 1)
    if bad.any():
        raise ValueError(
            f"{name}: expected a binary mask with values in {{0, 1}}, got values "
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
                f"{name}: expected a label map with integer values, got non-integer values "
                f"{_describe_bad_values(arr, bad)}"
            )
        return arr.astype(np.int64)
    raise TypeError(f"{name}: expected an integer, bool or floating dtype, got dtype {arr.dtype}")


def check_same_shape(gt: np.ndarray, pred: np.ndarray, gt_name: str = "gt", pred_name: str = "pred") -> None:
    """Both arrays must have the same shape."""
    if gt.shape != pred.shape:
        raise ValueError(
            f"{gt_name}, {pred_name}: expected the same shape, got {gt_name}.shape={tuple(gt.shape)} "
            f"and {pred_name}.shape={tuple(pred.shape)}"
        )


def check_spatial_ndim(arr: np.ndarray, name: str) -> None:
    """A metric's mask is 2D or 3D (no batch or channel axis)."""
    if arr.ndim not in (2, 3):
        raise ValueError(
            f"{name}: expected a 2D or 3D mask (no batch or channel axis), got ndim={arr.ndim} "
            f"(shape {tuple(arr.shape)})"
        )


def check_tolerance(tolerance: Any) -> float:
    """NSD tolerance: a non-negative number of mm."""
    try:
        value = float(tolerance)
    except (TypeError, ValueError):
        raise TypeError(f"tolerance: expected a number (mm), got {tolerance!r}") from None
    if math.isnan(value) or value < 0:
        raise ValueError(f"tolerance: expected a non-negative number of mm, got {tolerance!r}")
    return value


def check_percentile(percentile: Any) -> float | None:
    """Hausdorff percentile: ``None`` (maximum) or a number in [0, 100]."""
    if percentile is None:
        return None
    try:
        value = float(percentile)
    except (TypeError, ValueError):
        raise TypeError(f"percentile: expected None or a number in [0, 100], got {percentile!r}") from None
    if not 0 <= value <= 100:
        raise ValueError(f"percentile: expected None or a number in [0, 100], got {percentile!r}")
    return value


def check_method(method: Any) -> str:
    """Surface-metric method: ``"surface"`` or ``"voxel"``."""
    check_choice("method", method, METHODS)
    return method


# ----------------------------------------------------------------------------- argument order (metrics)

def pred_gt(
    *, symmetric: bool, was_gt_first: bool = True, old_keywords: dict | None = None
) -> Callable[[Callable], Callable]:
    """Decorator of a metric ``fn(pred, gt, ...)``: every metric takes the prediction first.

    The binary metrics used to take ``(gt, pred)`` (``dice_score(gt, pred)``), while
    ``evaluate_case`` took ``(pred, gt)``. Now all take ``(pred, gt)``, with the keywords
    ``pred=`` and ``gt=``. Older calls keep working, by this rule:

    * a call that names the arrays (``pred=``, ``gt=``) is read as named (never ambiguous);
    * metrics that already took the prediction first (``was_gt_first=False``: ``evaluate_case``)
      read positional arrays as ``(pred, gt)``, as before;
    * **order-symmetric metrics** (``symmetric=True``: Dice, IoU, NSD, HD, HD95, ASSD) read
      positional arrays as ``(pred, gt)``: their value is the same in either order, so an old
      positional call ``dice_score(gt, pred)`` gives the same number, without a warning;
    * **order-dependent metrics** that took the ground truth first (``confusion``,
      ``sensitivity``, ``specificity``, ``precision``, ``surface_distances``) document ``pred``
      and ``gt`` as keyword-only. A positional call keeps its old meaning, ``(gt, pred)``, with a
      ``DeprecationWarning`` (to be refused in a later release): old code neither breaks nor
      silently changes its numbers, and code written from the signature is unambiguous;
    * one positional array plus ``pred=`` (old style ``f(gt, pred=p)``): the positional array
      is the ground truth, as before;
    * ``old_keywords`` maps deprecated keyword names to the new ones (``pred_labels`` ->
      ``pred``), with a ``DeprecationWarning``.
    """
    old_keywords = dict(old_keywords or {})
    order_matters = was_gt_first and not symmetric

    def decorator(fn: Callable) -> Callable:
        sig = inspect.signature(fn)
        name = fn.__name__
        later = [p.name for p in list(sig.parameters.values())[2:] if p.kind is p.POSITIONAL_OR_KEYWORD]

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            renamed = [(old, new) for old, new in old_keywords.items() if old in kwargs]
            for old, new in renamed:
                if new in kwargs:
                    raise TypeError(f"{name}: got both {old}= (deprecated) and {new}=; pass {new}= only")
                kwargs[new] = kwargs.pop(old)
            if renamed:
                olds = ", ".join(f"{o}=" for o, _ in renamed)
                news = ", ".join(f"{n}=" for _, n in renamed)
                warnings.warn(f"{name}: deprecated keyword(s) {olds}; use {news}", DeprecationWarning, stacklevel=2)
            if len(args) == 1 and "pred" in kwargs and "gt" not in kwargs:
                kwargs["gt"], args = args[0], ()  # old style f(gt, pred=...)
            elif order_matters and len(args) >= 2 and "pred" not in kwargs and "gt" not in kwargs:
                warnings.warn(
                    f"{name}: positional arrays are read in the old order (gt, pred), as before; this is "
                    f"deprecated, pass them by keyword: {name}(pred=..., gt=...)",
                    DeprecationWarning,
                    stacklevel=2,
                )
                kwargs["gt"], kwargs["pred"] = args[0], args[1]
                for pname, value in zip(later, args[2:]):  # e.g. the old surface_distances(gt, pred, spacing)
                    if pname in kwargs:
                        raise TypeError(f"{name}: got multiple values for argument {pname!r}")
                    kwargs[pname] = value
                if len(args) - 2 > len(later):
                    raise TypeError(f"{name}: too many positional arguments ({len(args)})")
                args = ()
            elif order_matters and args:
                raise TypeError(f"{name}: pass the arrays by keyword, {name}(pred=..., gt=...); got {len(args)} positional argument(s)")
            return fn(*args, **kwargs)

        if order_matters:  # document pred and gt as keyword-only
            params = list(sig.parameters.values())
            kw = inspect.Parameter.KEYWORD_ONLY
            params = [p.replace(kind=kw) if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) else p for p in params]
            wrapper.__signature__ = sig.replace(parameters=params)
        return wrapper

    return decorator
