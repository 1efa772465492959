"""Distance transforms and the distance maps of the boundary- and distance-based losses.

One engine, :func:`distance_transform`, backed by the ``edt`` package (Silversmith's
multi-threaded exact Euclidean distance transform) with ``scipy.ndimage.distance_transform_edt``
as the fallback; both give the same values (tested). The backend is chosen, in order, by the
``backend=`` argument, the environment variable ``SEGLOSSES_DISTANCE_BACKEND`` (``"edt"`` or
``"scipy"``), and availability (``edt`` when it can be imported). ``edt`` runs with
``torch.get_num_threads()`` threads.

Conventions (the same for both backends and every function here):

* Distances are Euclidean between voxel centres, in the units of ``spacing`` (one number per
  spatial axis, in axis order; default 1 per axis). 1, 2 and 3 spatial dimensions.
* The image border is *not* a boundary: space outside the image is neither foreground nor
  background (scipy's convention; ``edt`` with ``black_border=False``).
* ``distance_transform(mask)``: at every foreground voxel, the distance to the nearest
  background voxel; 0 on background. A mask with no foreground gives all zeros; a mask with no
  background (every voxel foreground) gives ``+inf`` everywhere (the distance to an empty set).
  scipy returns arbitrary finite numbers in that case; we do not.
* Map functions (:func:`signed_distance_map`, :func:`unsigned_distance_map`,
  :func:`penalty_map`, :func:`boundary_distance_map`) take a batch of targets and return
  ``(N, C, *spatial)`` float32 maps, one per sample and class, of the same kind as the input
  (numpy in, numpy out; torch in, torch out on the input's device -- computed on the CPU).
  A class absent from a sample, or filling the whole sample, has no boundary in the image: its
  map is all zeros, never inf or NaN.

Targets accepted by the map functions: an integer (or bool) label map ``(N, *spatial)`` or
``(N, 1, *spatial)`` with ``num_classes`` classes (``num_classes=1``: a binary foreground map, the
single channel being ``label != 0``); or a float one-hot / soft / multi-hot target
``(N, C, *spatial)``, thresholded at 0.5 per channel. Voxels equal to ``ignore_index`` count as
background (label 0), exactly as the losses treat them (:mod:`seglosses._contract`).
"""

from __future__ import annotations

import os
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from ._checks import check_spacing

__all__ = [
    "BACKENDS",
    "BACKEND_ENV",
    "resolve_backend",
    "distance_transform",
    "signed_distance_map",
    "unsigned_distance_map",
    "penalty_map",
    "boundary_distance_map",
    "inner_boundary",
    "MAP_KINDS",
    "LOSS_MAP_KIND",
    "distance_map",
]

BACKENDS = ("edt", "scipy")
BACKEND_ENV = "SEGLOSSES_DISTANCE_BACKEND"

Spacing = Union[None, float, Sequence[float]]
ArrayLike = Union[np.ndarray, Tensor]

try:  # pragma: no cover - depends on the environment
    import edt as _edt
except ImportError:  # pragma: no cover
    _edt = None


# ----------------------------------------------------------------------------- backend

def resolve_backend(backend: Optional[str] = None) -> str:
    """The backend to use: ``backend`` if given, else ``$SEGLOSSES_DISTANCE_BACKEND``, else ``"edt"``
    when the ``edt`` package imports, else ``"scipy"``.

    Raises ``ValueError`` for an unknown name and ``ImportError`` when ``"edt"`` is asked for but
    not installed.
    """
    source = "backend"
    if backend is None:
        env = os.environ.get(BACKEND_ENV, "").strip().lower()
        if env:
            backend, source = env, BACKEND_ENV
        else:
            return "edt" if _edt is not None else "scipy"
    if backend not in BACKENDS:
        raise ValueError(f"{source}: expected one of {list(BACKENDS)}, got {backend!r}")
    if backend == "edt" and _edt is None:
        raise ImportError(f"{source}: 'edt' requested but the edt package is not installed (pip install edt)")
    return backend


def _threads() -> int:
    return max(1, int(torch.get_num_threads()))


# ----------------------------------------------------------------------------- one mask

def _anisotropy(spacing: Tuple[float, ...]):
    return spacing[0] if len(spacing) == 1 else spacing  # edt takes a scalar in 1D


def _edt_fg(mask: np.ndarray, spacing: Tuple[float, ...], backend: str) -> np.ndarray:
    """Distance of each foreground voxel to the nearest background voxel (float32).

    ``mask``: bool, C-contiguous. Empty -> zeros, full -> inf (both backends).
    """
    if backend == "edt":
        out = _edt.edt(mask.view(np.uint8), anisotropy=_anisotropy(spacing), black_border=False, parallel=_threads())
        return np.asarray(out, dtype=np.float32)
    from scipy.ndimage import distance_transform_edt

    if mask.all():
        return np.full(mask.shape, np.inf, dtype=np.float32)
    return distance_transform_edt(mask, sampling=spacing).astype(np.float32)


def _two_sided(mask: np.ndarray, spacing: Tuple[float, ...], backend: str) -> np.ndarray:
    """d_in on the foreground plus d_out on the background (float32), for a mask with both.

    With ``edt`` a single two-label transform gives both sides at once: every voxel gets the
    distance to the nearest voxel of the other label.
    """
    if backend == "edt":
        labels = mask.view(np.uint8) + np.uint8(1)
        out = _edt.edt(labels, anisotropy=_anisotropy(spacing), black_border=False, parallel=_threads())
        return np.asarray(out, dtype=np.float32)
    return _edt_fg(mask, spacing, backend) + _edt_fg(~mask, spacing, backend)


def distance_transform(mask: ArrayLike, spacing: Spacing = None, backend: Optional[str] = None) -> ArrayLike:
    r"""Euclidean distance transform of one mask: at each foreground voxel, the distance to the
    nearest background voxel; 0 on the background.

    Parameters
    ----------
    mask : numpy array or torch tensor, 1 to 3 dimensions
        Foreground where nonzero (bool, integer or float).
    spacing : float or sequence of floats, optional
        Voxel size per axis, in axis order (``(z, y, x)`` for a ``(D, H, W)`` array). Default 1.
    backend : {"edt", "scipy"}, optional
        Default: ``$SEGLOSSES_DISTANCE_BACKEND``, else ``"edt"`` when installed (see
        :func:`resolve_backend`). Both give the same values.

    Returns
    -------
    float32 array of the same shape and kind: numpy for numpy input, a torch tensor on the
    input's device for torch input (computed on the CPU, no gradient).

    Empty mask (no foreground): all zeros. Full mask (no background): ``+inf`` everywhere.

    Equals ``scipy.ndimage.distance_transform_edt(mask, sampling=spacing)`` otherwise (the image
    border is not a boundary).

    References
    ----------
    Felzenszwalb & Huttenlocher, "Distance transforms of sampled functions", Theory of Computing
    8 (2012), doi:10.4086/toc.2012.v008a019 (the algorithm of both backends).

    Examples
    --------
    >>> import numpy as np
    >>> from seglosses.distance import distance_transform
    >>> distance_transform(np.array([0, 1, 1, 1, 0])).tolist()
    [0.0, 1.0, 2.0, 1.0, 0.0]
    >>> distance_transform(np.array([[0, 1, 1]]), spacing=(1.0, 0.5)).tolist()
    [[0.0, 0.5, 1.0]]
    """
    backend = resolve_backend(backend)
    is_torch = isinstance(mask, Tensor)
    if not is_torch and not isinstance(mask, np.ndarray):
        raise TypeError(f"mask: expected a numpy array or a torch tensor, got {type(mask).__name__}")
    if not 1 <= mask.ndim <= 3:
        raise ValueError(f"mask: expected 1 to 3 dimensions, got shape {tuple(mask.shape)}")
    sp = check_spacing(spacing, mask.ndim)
    arr = mask.detach().cpu().numpy() if is_torch else mask
    arr = np.ascontiguousarray(arr != 0)
    out = _edt_fg(arr, sp, backend)
    if is_torch:
        return torch.from_numpy(out).to(mask.device)
    return out


# ----------------------------------------------------------------------------- batches of masks

def inner_boundary(mask: Tensor) -> Tensor:
    """Inner boundary of bool masks ``(B, K, *spatial)``: voxels of the mask with at least one
    of their 3^d - 1 neighbours (faces, edges and corners) outside it. The image border is not a
    boundary. Works on any device."""
    pool = {1: torch.nn.functional.max_pool1d, 2: torch.nn.functional.max_pool2d, 3: torch.nn.functional.max_pool3d}
    nd = mask.ndim - 2
    outside = (~mask).to(torch.float32)
    near_outside = pool[nd](outside, kernel_size=3, stride=1, padding=1) > 0  # max_pool pads with -inf
    return mask & near_outside


def _compute(kind: str, masks: np.ndarray, spacing: Tuple[float, ...], backend: str) -> np.ndarray:
    """Maps of ``kind`` for bool masks ``(K, *spatial)`` -> float32 ``(K, *spatial)``."""
    out = np.zeros(masks.shape, dtype=np.float32)
    if kind == "boundary_distance":
        bnd = inner_boundary(torch.from_numpy(masks).unsqueeze(0)).squeeze(0).numpy()
    for k in range(masks.shape[0]):
        g = np.ascontiguousarray(masks[k])
        n_fg = int(g.sum())
        if n_fg == 0 or n_fg == g.size:  # absent or full: no boundary in the image
            continue
        if kind == "boundary_distance":
            out[k] = _edt_fg(np.ascontiguousarray(~bnd[k]), spacing, backend)
            continue
        field = _two_sided(g, spacing, backend)  # d_in on g, d_out off g
        if kind == "signed":
            out[k] = np.where(g, 1.0 - field, field)
        elif kind == "unsigned":
            out[k] = field
        elif kind == "penalty":
            for side in (g, ~g):
                d = field[side]
                lo, hi = d.min(), d.max()
                out[k][side] = 1.0 - (d - lo) / (hi - lo) if hi > lo else 1.0
        else:  # pragma: no cover - internal
            raise ValueError(f"kind: unknown map kind {kind!r}")
    return out


def compute_maps(kind: str, masks: Tensor, spacing: Spacing = None, backend: Optional[str] = None) -> Tensor:
    """Internal entry for the losses: maps of bool masks ``(N, K, *spatial)`` (any device) as a
    float32 CPU tensor ``(N, K, *spatial)``. No gradient."""
    backend = resolve_backend(backend)
    sp = check_spacing(spacing, masks.ndim - 2)
    m = masks.detach().to("cpu", torch.bool).contiguous().numpy()
    shape = m.shape
    out = _compute(kind, m.reshape((-1,) + shape[2:]), sp, backend)
    return torch.from_numpy(out.reshape(shape))


def _target_masks(
    target: ArrayLike, num_classes: Optional[int], ignore_index: Optional[int], spatial_dims: Optional[int]
) -> np.ndarray:
    """Normalise a batch of targets to bool masks ``(N, C, *spatial)`` (see the module docstring)."""
    if isinstance(target, Tensor):
        arr = target.detach().cpu().numpy()
    elif isinstance(target, np.ndarray):
        arr = target
    else:
        raise TypeError(f"target: expected a numpy array or a torch tensor, got {type(target).__name__}")
    is_float = np.issubdtype(arr.dtype, np.floating)
    if num_classes is not None and (not isinstance(num_classes, (int, np.integer)) or num_classes < 1):
        raise ValueError(f"num_classes: expected a positive int or None, got {num_classes!r}")
    if is_float:
        if arr.ndim < 3 or arr.ndim > 5:
            raise ValueError(
                f"target: expected a float target of shape (N, C, *spatial) with 1 to 3 spatial dims, got shape {arr.shape}"
            )
        if spatial_dims is not None and arr.ndim != spatial_dims + 2:
            raise ValueError(f"target: expected shape (N, C, *spatial) with {spatial_dims} spatial dims, got shape {arr.shape}")
        if num_classes is not None and arr.shape[1] != num_classes:
            raise ValueError(f"target: expected {num_classes} channels (num_classes), got shape {arr.shape}")
        return np.ascontiguousarray(arr > 0.5)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.int64)
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"target: expected an integer label map or a float target, got dtype {arr.dtype}")
    if spatial_dims is None:
        squeeze = arr.ndim >= 3 and arr.shape[1] == 1 and arr.ndim - 2 >= 1
        spatial_dims = arr.ndim - 2 if squeeze else arr.ndim - 1
    if arr.ndim == spatial_dims + 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != spatial_dims + 1 or not 1 <= spatial_dims <= 3:
        raise ValueError(
            f"target: expected a label map of shape (N, *spatial) or (N, 1, *spatial) with 1 to 3 spatial dims, "
            f"got shape {target.shape}"
        )
    arr = arr.astype(np.int64, copy=False)
    if ignore_index is not None:
        arr = np.where(arr == ignore_index, 0, arr)
    if num_classes is None:
        num_classes = max(2, int(arr.max()) + 1) if arr.size else 2
    n_labels = 2 if num_classes == 1 else num_classes
    if arr.size and (arr.min() < 0 or arr.max() >= n_labels):
        bad = int(arr.min()) if arr.min() < 0 else int(arr.max())
        extra = "" if ignore_index is None else f" (other than ignore_index={ignore_index})"
        raise ValueError(f"target: expected label values in [0, {n_labels}){extra} for num_classes={num_classes}, got value {bad}")
    if num_classes == 1:
        return np.ascontiguousarray((arr != 0)[:, None])
    classes = np.arange(num_classes).reshape((1, -1) + (1,) * spatial_dims)
    return np.ascontiguousarray(arr[:, None] == classes)


def _maps(kind, target, num_classes, spacing, ignore_index, spatial_dims, backend) -> ArrayLike:
    backend = resolve_backend(backend)
    masks = _target_masks(target, num_classes, ignore_index, spatial_dims)
    sp = check_spacing(spacing, masks.ndim - 2)
    shape = masks.shape
    out = _compute(kind, masks.reshape((-1,) + shape[2:]), sp, backend).reshape(shape)
    if isinstance(target, Tensor):
        return torch.from_numpy(out).to(target.device)
    return out


_MAP_DOC_ARGS = """
    Parameters
    ----------
    target : numpy array or torch tensor
        Integer label map ``(N, *spatial)`` / ``(N, 1, *spatial)``, or float one-hot / soft /
        multi-hot ``(N, C, *spatial)`` (thresholded at 0.5).
    num_classes : int, optional
        Number of channels C for a label map (default: ``max(label) + 1``, at least 2).
        ``num_classes=1``: binary, the single channel is ``label != 0``.
    spacing : float or sequence of floats, optional
        Voxel size per spatial axis (default 1).
    ignore_index : int, optional
        Label value counted as background (label 0), as the losses do.
    spatial_dims : int, optional
        Number of spatial dims, to disambiguate an integer ``(N, 1, *spatial)`` target from a
        label map whose first spatial axis has size 1 (default: a size-1 axis 1 is a channel).
    backend : {"edt", "scipy"}, optional
        See :func:`resolve_backend`.

    Returns
    -------
    float32 ``(N, C, *spatial)``, numpy for numpy input, torch (on the input's device) for torch.
"""


def signed_distance_map(
    target: ArrayLike,
    num_classes: Optional[int] = None,
    spacing: Spacing = None,
    *,
    ignore_index: Optional[int] = None,
    spatial_dims: Optional[int] = None,
    backend: Optional[str] = None,
) -> ArrayLike:
    r"""Signed distance map of each class, Kervadec et al.'s convention (``one_hot2dist``).

    .. math:: \phi = d_{out} (1 - g) - (d_{in} - 1)\, g,
              \quad d_{out} = \mathrm{dt}(1 - g),\ d_{in} = \mathrm{dt}(g)

    with dt = :func:`distance_transform`: positive outside the class (the distance to it), 0 on
    its inner boundary, negative deeper inside. The ``- 1`` is in voxel units whatever the
    spacing, as in Kervadec's code. A class absent from a sample, or filling it, gets an
    all-zero map (Kervadec's code leaves absent classes blank, and returns scipy's arbitrary
    values for full ones).

    Used by the ``boundary`` loss: :math:`L_{BD} = \mathrm{mean}(\phi \cdot p)`.

    References
    ----------
    Kervadec et al., "Boundary loss for highly unbalanced segmentation", MIDL 2019 / Medical
    Image Analysis 67 (2021) 101851, doi:10.1016/j.media.2020.101851 (code: LIVIAETS/boundary-loss).
    """ + _MAP_DOC_ARGS + r"""
    Examples
    --------
    >>> import numpy as np
    >>> from seglosses.distance import signed_distance_map
    >>> signed_distance_map(np.array([[0, 0, 1, 1, 1, 0]]), num_classes=1)[0, 0].tolist()
    [2.0, 1.0, 0.0, -1.0, 0.0, 1.0]
    """
    return _maps("signed", target, num_classes, spacing, ignore_index, spatial_dims, backend)


def unsigned_distance_map(
    target: ArrayLike,
    num_classes: Optional[int] = None,
    spacing: Spacing = None,
    *,
    ignore_index: Optional[int] = None,
    spatial_dims: Optional[int] = None,
    backend: Optional[str] = None,
) -> ArrayLike:
    r"""Two-sided distance to the boundary of each class: :math:`d = \mathrm{dt}(g) + \mathrm{dt}(1 - g)`.

    At a voxel inside the class, the distance to the nearest voxel outside it; at a voxel
    outside, the distance to the nearest voxel inside (so voxels on either side of the boundary
    get the voxel spacing, not 0). Empty or full masks give a zero field. This is the field of
    Karimi & Salcudean's Hausdorff loss as MONAI's ``HausdorffDTLoss.distance_field`` computes it
    (there on masks ``> 0.5``); the ``hausdorff`` loss raises it to the power ``alpha``.

    References
    ----------
    Karimi & Salcudean, "Reducing the Hausdorff distance in medical image segmentation with
    convolutional neural networks", IEEE TMI 39(2) 2020, doi:10.1109/TMI.2019.2930068.
    """ + _MAP_DOC_ARGS + r"""
    Examples
    --------
    >>> import numpy as np
    >>> from seglosses.distance import unsigned_distance_map
    >>> unsigned_distance_map(np.array([[0, 0, 1, 1, 1, 0]]), num_classes=1)[0, 0].tolist()
    [2.0, 1.0, 1.0, 2.0, 1.0, 1.0]
    """
    return _maps("unsigned", target, num_classes, spacing, ignore_index, spatial_dims, backend)


def penalty_map(
    target: ArrayLike,
    num_classes: Optional[int] = None,
    spacing: Spacing = None,
    *,
    ignore_index: Optional[int] = None,
    spatial_dims: Optional[int] = None,
    backend: Optional[str] = None,
) -> ArrayLike:
    r"""Distance penalty map D of the distance-penalized cross entropy (Caliva et al. 2019).

    For each sample and class, on each side of the boundary separately (inside: :math:`d = d_{in}`
    over the class's voxels; outside: :math:`d = d_{out}` over the other voxels), the distance is
    inverted and min-max normalised over that side:

    .. math:: D = 1 - \frac{d - d_{min}}{d_{max} - d_{min}}
              \qquad (D = 1 \text{ on a side where } d_{max} = d_{min})

    so D is in [0, 1], equals 1 on the voxels next to the ground-truth boundary (on both sides),
    decreases linearly with the distance from it and reaches 0 at the voxel farthest from it on
    each side. A thin structure (every voxel next to the boundary) gets 1 everywhere. An empty
    or full mask gives zeros -- never NaN.

    Why this form: Caliva et al. derive the penalty from "the inverse of the distance transform
    of the ground truth" (Ma et al. 2021 sec. 2.1.4). The code Ma et al. benchmarked
    (``compute_edts_forPenalizedLoss``) uses ``(max(d) - d) / max(d)`` per side, which gives 0
    (not the maximum) to a structure one voxel thick and divides by zero (NaN) for an empty
    ground truth; the min-max form keeps its shape (linear, 0 at the farthest voxel) without
    either defect.

    References
    ----------
    Caliva, Iriondo, Martinez, Majumdar & Pedoia, "Distance map loss penalty term for semantic
    segmentation", MIDL 2019 abstract, arXiv:1908.03679; Ma et al. 2021 eq. (6),
    doi:10.1016/j.media.2021.102035.
    """ + _MAP_DOC_ARGS + r"""
    Examples
    --------
    >>> import numpy as np
    >>> from seglosses.distance import penalty_map
    >>> penalty_map(np.array([[0, 0, 0, 1, 1, 1, 1, 1, 1, 0]]), num_classes=1)[0, 0].tolist()
    [0.0, 0.5, 1.0, 1.0, 0.5, 0.0, 0.0, 0.5, 1.0, 1.0]
    """
    return _maps("penalty", target, num_classes, spacing, ignore_index, spatial_dims, backend)


def boundary_distance_map(
    target: ArrayLike,
    num_classes: Optional[int] = None,
    spacing: Spacing = None,
    *,
    ignore_index: Optional[int] = None,
    spatial_dims: Optional[int] = None,
    backend: Optional[str] = None,
) -> ArrayLike:
    r"""Distance from every voxel to the nearest ground-truth boundary voxel of each class.

    The boundary of a class is its inner boundary (:func:`inner_boundary`: voxels of the class
    with a neighbour, among the 3^d - 1 around it, outside the class); the map is 0 on it.
    Empty or full masks (no boundary) give zeros. Used by ``shape_aware`` (Hayder et al.) for
    E, the distance from the predicted boundary to the ground-truth boundary.

    References
    ----------
    Hayder, He & Salzmann, "Boundary-aware instance segmentation" (shape-aware loss), CVPR
    2017, arXiv:1612.03129; Jadon 2020 sec. II-I, doi:10.1109/CIBCB48159.2020.9277638.
    """ + _MAP_DOC_ARGS + r"""
    Examples
    --------
    >>> import numpy as np
    >>> from seglosses.distance import boundary_distance_map
    >>> boundary_distance_map(np.array([[0, 0, 1, 1, 1, 1, 0]]), num_classes=1)[0, 0].tolist()
    [2.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0]
    """
    return _maps("boundary_distance", target, num_classes, spacing, ignore_index, spatial_dims, backend)


#: map function by kind, and the map each loss takes as ``distance_map=``
MAP_KINDS = {
    "signed": signed_distance_map,
    "unsigned": unsigned_distance_map,
    "penalty": penalty_map,
    "boundary_distance": boundary_distance_map,
}
LOSS_MAP_KIND = {"boundary": "signed", "hausdorff": "unsigned", "dpce": "penalty", "shape_aware": "boundary_distance"}


def distance_map(kind: str, target: ArrayLike, num_classes: Optional[int] = None, spacing: Spacing = None, **kwargs) -> ArrayLike:
    """The map of ``kind`` -- ``"signed"``, ``"unsigned"``, ``"penalty"``, ``"boundary_distance"``
    or the name of the loss that takes it (``"boundary"``, ``"hausdorff"``, ``"dpce"``,
    ``"shape_aware"``) -- for ``target``; keyword arguments as the map functions."""
    key = LOSS_MAP_KIND.get(kind, kind)
    if key not in MAP_KINDS:
        raise ValueError(f"kind: expected one of {sorted(MAP_KINDS) + sorted(LOSS_MAP_KIND)}, got {kind!r}")
    return MAP_KINDS[key](target, num_classes, spacing, **kwargs)
