"""Distance-map inputs of the losses that weight by a map (``dpce``, ``boundary``, ``hausdorff``,
``shape_aware``): target and prediction masks of a prepared input, maps computed on the fly
(:func:`seglosses.distance.compute_maps`), and the check of a precomputed ``distance_map``.

Private helpers shared by :mod:`seglosses.functional.distribution` and
:mod:`seglosses.functional.boundary`; see the latter's docstring for the conventions (masks,
ignored voxels, devices).
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from .._contract import Prepared
from .._reduce import background_dropped
from ..distance import compute_maps

Spacing = Union[None, float, Sequence[float]]


def _channels(prep: Prepared, include_background: Optional[bool]) -> List[int]:
    """Kept channels: channel 0 dropped as :func:`seglosses._reduce.keep_classes` says (C > 1)."""
    start = 1 if background_dropped(prep, include_background) else 0
    return list(range(start, prep.num_classes))


def _target_masks(prep: Prepared, channels: List[int]) -> Tensor:
    """Bool ``(N, K, *spatial)`` masks of the target for ``channels`` (ignored voxels: label 0)."""
    if prep.labels is not None:
        idx = torch.tensor(channels, device=prep.labels.device).view((1, -1) + (1,) * len(prep.spatial_shape))
        return prep.labels.unsqueeze(1) == idx
    return prep.dense[:, channels] > 0.5


def _target_values(prep: Prepared, channels: List[int], dtype: torch.dtype) -> Tensor:
    """g ``(N, K, *spatial)`` for ``channels``: one-hot of a label map, or the float target as given."""
    if prep.labels is not None:
        return _target_masks(prep, channels).to(dtype)
    return prep.dense[:, channels].to(dtype)


def _valid_channel(prep: Prepared) -> Optional[Tensor]:
    return None if prep.valid is None else prep.valid.unsqueeze(1)


def _pred_masks(prep: Prepared, channels: List[int]) -> Tensor:
    """Bool ``S_c = p_c > 0.5`` ``(N, K, *spatial)`` from the detached probabilities. Ignored voxels
    are background: in channel 0 of a multiclass input, outside every other channel."""
    s = prep.probs.detach()[:, channels] > 0.5
    if prep.valid is not None:
        valid = prep.valid.unsqueeze(1) > 0
        if prep.mode == "multiclass" and channels and channels[0] == 0:
            bg = torch.zeros(len(channels), dtype=torch.bool, device=s.device)
            bg[0] = True
            bg = bg.view((1, -1) + (1,) * len(prep.spatial_shape))
            s = torch.where(valid, s, bg)
        else:
            s = s & valid
    return s


def _maps(kind: str, masks: Tensor, spacing: Spacing, like: Tensor) -> Tensor:
    return compute_maps(kind, masks, spacing).to(device=like.device, dtype=like.dtype)


def _given_map(distance_map, prep: Prepared, name: str, like: Tensor) -> Tensor:
    """Validate a precomputed map: ``(N, C, *spatial)`` like the logits; detached, on like's device."""
    if isinstance(distance_map, np.ndarray):
        distance_map = torch.from_numpy(distance_map)
    if not isinstance(distance_map, Tensor):
        raise TypeError(f"distance_map: expected a tensor (N, C, *spatial), got {type(distance_map).__name__}")
    expected = (prep.batch_size, prep.num_classes) + prep.spatial_shape
    if tuple(distance_map.shape) != expected:
        raise ValueError(
            f"distance_map: expected the {name} map of shape {expected} (one channel per logit channel), "
            f"got shape {tuple(distance_map.shape)}"
        )
    return distance_map.detach().to(device=like.device, dtype=like.dtype)


def _elem_weights(prep: Prepared, elem: Tensor) -> Optional[Tensor]:
    if prep.valid is None:
        return None
    return prep.valid if elem.ndim == prep.valid.ndim else prep.valid.unsqueeze(1)
