"""Hard skeletons of masks: the tubed skeleton of skeleton recall, and the skeletons of clDice.

This is the one home of *hard* (binary, topology-preserving) skeletons; the *soft* skeletons of
the clDice loss, differentiable min/max pooling, live with the loss
(:func:`seglosses.functional.topology.soft_skeleton`).

* :func:`skeletonize` -- the skeleton of one binary mask, by scikit-image's
  ``skimage.morphology.skeletonize`` (Zhang's thinning in 2-D, Lee's in 3-D). A 1-D mask is its
  own skeleton (every run of foreground is a line already).
* :func:`tubed_skeleton` -- Kirchhoff et al.'s "tubed" skeleton: the skeleton dilated twice with
  the cross-shaped (face-connected) structuring element, i.e. by a diamond of radius 2, then
  restricted to the mask (as their reference transform multiplies it by the label).
* :func:`skeleton_map` -- the tubed skeleton of every (sample, class) of a batch of targets,
  ``(N, C, *spatial)`` float32, the input that :func:`seglosses.functional.skeleton_recall_loss`
  takes as ``skeleton=`` (and computes itself when it is not given). Targets are read as in
  :mod:`seglosses.distance` (integer label map with ``num_classes`` classes, ``num_classes=1`` for
  a binary map, or a float target thresholded at 0.5; ``ignore_index`` voxels count as
  background). An absent class has an empty skeleton.

scikit-image is an optional dependency (``pip install seglosses[topology]``); it is imported on
first use, so importing this module (or :mod:`seglosses.metrics`) never needs it.

Reference: Kirchhoff et al., "Skeleton Recall Loss for Connectivity Conserving and Resource
Efficient Segmentation of Thin Tubular Structures", ECCV 2024, arXiv:2404.03010.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

__all__ = ["skeletonize", "tubed_skeleton", "skeleton_map"]


def _skimage_skeletonize():
    try:
        from skimage.morphology import skeletonize as sk
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "skeletons need scikit-image: pip install 'seglosses[topology]' (or scikit-image>=0.19)"
        ) from exc
    return sk


def skeletonize(mask) -> np.ndarray:
    """Skeleton of one binary mask (1-D, 2-D or 3-D) as a bool array of the same shape.

    Examples
    --------
    >>> import numpy as np
    >>> from seglosses.skeleton import skeletonize
    >>> cross = np.zeros((7, 7), bool); cross[3, 1:6] = True; cross[1:6, 3] = True
    >>> int(skeletonize(cross).sum())          # one pixel wide: its own skeleton
    9
    >>> band = np.zeros((9, 9), bool); band[3:6] = True     # a 3-pixel-thick band
    >>> int(skeletonize(band).sum())           # a line along it
    8
    """
    m = np.ascontiguousarray(np.asarray(mask, dtype=bool))
    if m.ndim not in (1, 2, 3):
        raise ValueError(f"mask: expected 1 to 3 dimensions, got shape {m.shape}")
    if m.ndim == 1 or not m.any():
        return m.copy()
    return np.asarray(_skimage_skeletonize()(m), dtype=bool)


def tubed_skeleton(mask, tube: int = 2) -> np.ndarray:
    """Skeleton of ``mask`` dilated ``tube`` times with the face-connected cross, inside ``mask``.

    ``tube=2`` is Kirchhoff et al.'s default (a diamond of radius 2); ``tube=0`` is the bare
    skeleton.

    Examples
    --------
    >>> import numpy as np
    >>> from seglosses.skeleton import tubed_skeleton
    >>> band = np.zeros((9, 9), bool); band[3:6] = True     # skeleton: 8 pixels (see skeletonize)
    >>> int(tubed_skeleton(band, tube=1).sum())            # dilated once, clipped to the band
    24
    """
    from scipy import ndimage

    m = np.asarray(mask, dtype=bool)
    if not isinstance(tube, (int, np.integer)) or tube < 0:
        raise ValueError(f"tube: expected a non-negative int, got {tube!r}")
    skel = skeletonize(m)
    if tube and skel.any():
        cross = ndimage.generate_binary_structure(m.ndim, 1)
        skel = ndimage.binary_dilation(skel, structure=cross, iterations=int(tube))
    return skel & m


def skeleton_map(
    target,
    num_classes: Optional[int] = None,
    *,
    tube: int = 2,
    ignore_index: Optional[int] = None,
    spatial_dims: Optional[int] = None,
    channels=None,
):
    """Tubed skeletons of a batch of targets: float32 ``(N, C, *spatial)`` with values 0/1.

    ``target``: integer label map ``(N, *spatial)`` / ``(N, 1, *spatial)`` or float
    ``(N, C, *spatial)``, numpy or torch (torch in, torch out on the target's device). Arguments as
    the map functions of :mod:`seglosses.distance`; ``channels``: only these channels are
    skeletonised (the others stay 0; default: all).

    Examples
    --------
    >>> import numpy as np
    >>> from seglosses.skeleton import skeleton_map
    >>> label = np.zeros((1, 9, 9), np.int64); label[0, 3:6] = 1     # the band of skeletonize
    >>> float(skeleton_map(label, num_classes=2, tube=0)[0, 1].sum())
    8.0
    """
    from .distance import _target_masks  # the one reader of batches of targets

    masks = _target_masks(target, num_classes, ignore_index, spatial_dims)
    out = np.zeros(masks.shape, dtype=np.float32)
    keep = range(masks.shape[1]) if channels is None else channels
    for n in range(masks.shape[0]):
        for c in keep:
            if masks[n, c].any():
                out[n, c] = tubed_skeleton(masks[n, c], tube)
    try:
        import torch

        if isinstance(target, torch.Tensor):
            return torch.from_numpy(out).to(target.device)
    except ImportError:  # pragma: no cover
        pass
    return out
