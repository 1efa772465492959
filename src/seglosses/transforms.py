"""Dataset-side transforms: precompute the distance maps (or skeletons) of a case once, not at every step.

Distance maps of the target (``boundary``, ``dpce``, ``hausdorff``, ``shape_aware``) depend on
the label only, and so do the tubed skeletons of ``skeleton_recall``
(:class:`PrecomputeSkeletons`, passed as ``skeleton=``). Computing them in the dataset (in the data-loader workers, once per case when
the dataset caches, or at least off the training loop's critical path) and passing them to the
loss as ``distance_map=`` gives the same value as computing them in the loss (tested).

Example
-------
>>> import numpy as np, torch, seglosses
>>> from seglosses.transforms import PrecomputeDistanceMaps
>>> tf = PrecomputeDistanceMaps("boundary", num_classes=3, spacing=(1.0, 1.0))
>>> sample = tf({"image": np.zeros((1, 8, 8), np.float32), "label": np.zeros((8, 8), np.int64)})
>>> sample["distance_map"].shape          # (C, *spatial), numpy in -> numpy out
(3, 8, 8)
>>> batch_map = torch.from_numpy(sample["distance_map"])[None]      # what a DataLoader collates
>>> logits, target = torch.zeros(1, 3, 8, 8), torch.from_numpy(sample["label"])[None]
>>> float(seglosses.build_loss("boundary")(logits, target, distance_map=batch_map))
0.0
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np
from torch import Tensor

from .distance import LOSS_MAP_KIND, MAP_KINDS

__all__ = ["PrecomputeDistanceMaps", "PrecomputeSkeletons"]


class PrecomputeDistanceMaps:
    """Add the distance map a loss needs to a sample, computed once per case.

    Parameters
    ----------
    kind : str
        A loss name -- ``"boundary"`` (signed map), ``"hausdorff"`` (unsigned map), ``"dpce"``
        (penalty map), ``"shape_aware"`` (distance to the boundary) -- or a map kind
        ``"signed"``, ``"unsigned"``, ``"penalty"``, ``"boundary_distance"``
        (:mod:`seglosses.distance`). For ``dice_bd`` use ``"boundary"``, for ``dice_hd``
        ``"hausdorff"``.
    num_classes : int
        Channels of the logits: C for a multiclass label map; 1 for a binary one (the channel is
        ``label != 0``). A float (one-hot / multi-hot) label must have ``num_classes`` channels.
    spacing : float or sequence, optional
        Voxel size per spatial axis; must be the ``spacing`` the loss is built with. With
        ``spacing_key``, a per-case spacing read from the sample dict takes precedence.
    ignore_index : int, optional
        Label value counted as background, as the loss does with the same ``ignore_index``.
    label_key, output_key, spacing_key : str
        Dict samples: where the label is read, where the map is written (default
        ``"distance_map"``), and where a per-case spacing may be found (default ``None``: not read).
    spatial_dims : int, optional
        Number of spatial dims of the label (default: the label's dims, after dropping a
        leading size-1 channel axis of an integer label).

    Call it on a sample dict (returns a new dict with ``output_key`` added), or on an
    ``(image, label)`` pair (returns ``(image, label, distance_map)``). The label of one case is a
    label map ``(*spatial)`` / ``(1, *spatial)`` or a float ``(C, *spatial)``; the map is float32
    ``(C, *spatial)``, numpy for a numpy label, a tensor for a tensor label. A data loader's
    default collate stacks it to the ``(N, C, *spatial)`` the loss's ``distance_map=`` expects.
    """

    def __init__(
        self,
        kind: str,
        num_classes: int,
        spacing: Union[None, float, Sequence[float]] = None,
        *,
        ignore_index: Optional[int] = None,
        label_key: str = "label",
        output_key: str = "distance_map",
        spacing_key: Optional[str] = None,
        spatial_dims: Optional[int] = None,
    ):
        key = LOSS_MAP_KIND.get(kind, kind)
        if key not in MAP_KINDS:
            raise ValueError(f"kind: expected one of {sorted(LOSS_MAP_KIND) + sorted(MAP_KINDS)}, got {kind!r}")
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes: expected a positive int, got {num_classes!r}")
        self.kind, self.map_kind = kind, key
        self.num_classes = num_classes
        self.spacing = spacing
        self.ignore_index = ignore_index
        self.label_key, self.output_key, self.spacing_key = label_key, output_key, spacing_key
        self.spatial_dims = spatial_dims

    def compute(self, label, spacing=None):
        """The map of one case's ``label``: float32 ``(C, *spatial)``."""
        if not isinstance(label, (np.ndarray, Tensor)):
            label = np.asarray(label)
        is_float = label.dtype.is_floating_point if isinstance(label, Tensor) else np.issubdtype(label.dtype, np.floating)
        spatial_dims = self.spatial_dims
        if spatial_dims is None:
            spatial_dims = label.ndim - 1 if (is_float or (label.ndim >= 2 and label.shape[0] == 1)) else label.ndim
        batch = label[None]
        out = MAP_KINDS[self.map_kind](
            batch,
            self.num_classes,
            self.spacing if spacing is None else spacing,
            ignore_index=self.ignore_index,
            spatial_dims=spatial_dims,
        )
        return out[0]

    def __call__(self, sample: Any):
        return _add_to_sample(self, sample)

    def __repr__(self) -> str:
        return f"PrecomputeDistanceMaps(kind={self.kind!r}, num_classes={self.num_classes}, spacing={self.spacing!r})"


def _add_to_sample(tf, sample: Any):
    """Dict sample: a new dict with ``tf.output_key`` added; ``(image, label)``: a triple."""
    if isinstance(sample, Mapping):
        if tf.label_key not in sample:
            raise KeyError(f"label_key: the sample has no {tf.label_key!r} entry (keys: {sorted(sample)})")
        spacing = None
        if getattr(tf, "spacing_key", None) is not None and sample.get(tf.spacing_key) is not None:
            spacing = tuple(float(s) for s in np.asarray(sample[tf.spacing_key]).reshape(-1))
        out = dict(sample)
        out[tf.output_key] = tf.compute(sample[tf.label_key], spacing)
        return out
    if isinstance(sample, (tuple, list)) and len(sample) == 2:
        image, label = sample
        return image, label, tf.compute(label)
    raise TypeError(
        f"sample: expected a dict with a {tf.label_key!r} entry or an (image, label) pair, got {type(sample).__name__}"
    )


class PrecomputeSkeletons:
    """Add the tubed skeleton that ``skeleton_recall`` needs to a sample, computed once per case.

    The map is :func:`seglosses.skeleton.skeleton_map` of the label: float32 ``(C, *spatial)``
    with values 0/1 (numpy in, numpy out; tensor in, tensor out), which a data loader collates to
    the ``(N, C, *spatial)`` the loss's ``skeleton=`` expects; same value as the loss computing
    it itself (tested). Parameters as :class:`PrecomputeDistanceMaps` (no spacing: skeletons are
    in voxels); ``tube`` must be the loss's ``tube``; ``output_key`` defaults to ``"skeleton"``.

    Example
    -------
    >>> import numpy as np, torch, seglosses
    >>> from seglosses.transforms import PrecomputeSkeletons
    >>> label = np.zeros((9, 9), np.int64); label[3:6] = 1
    >>> sample = PrecomputeSkeletons(num_classes=2)({"label": label})
    >>> sample["skeleton"].shape
    (2, 9, 9)
    >>> logits = torch.zeros(1, 2, 9, 9)
    >>> loss = seglosses.build_loss("skeleton_recall")
    >>> round(float(loss(logits, torch.from_numpy(label)[None], skeleton=torch.from_numpy(sample["skeleton"])[None])), 4)
    0.5
    """

    def __init__(
        self,
        num_classes: int,
        tube: int = 2,
        *,
        ignore_index: Optional[int] = None,
        label_key: str = "label",
        output_key: str = "skeleton",
        spatial_dims: Optional[int] = None,
    ):
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes: expected a positive int, got {num_classes!r}")
        if not isinstance(tube, int) or tube < 0:
            raise ValueError(f"tube: expected a non-negative int, got {tube!r}")
        self.num_classes, self.tube = num_classes, tube
        self.ignore_index = ignore_index
        self.label_key, self.output_key = label_key, output_key
        self.spatial_dims = spatial_dims

    def compute(self, label, spacing=None):
        """The tubed skeleton of one case's ``label``: float32 ``(C, *spatial)``."""
        from .skeleton import skeleton_map

        if not isinstance(label, (np.ndarray, Tensor)):
            label = np.asarray(label)
        is_float = label.dtype.is_floating_point if isinstance(label, Tensor) else np.issubdtype(label.dtype, np.floating)
        spatial_dims = self.spatial_dims
        if spatial_dims is None:
            spatial_dims = label.ndim - 1 if (is_float or (label.ndim >= 2 and label.shape[0] == 1)) else label.ndim
        out = skeleton_map(label[None], self.num_classes, tube=self.tube, ignore_index=self.ignore_index, spatial_dims=spatial_dims)
        return out[0]

    def __call__(self, sample: Any):
        return _add_to_sample(self, sample)

    def __repr__(self) -> str:
        return f"PrecomputeSkeletons(num_classes={self.num_classes}, tube={self.tube})"
