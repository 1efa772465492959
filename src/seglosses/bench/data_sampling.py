"""Patch sampling for training: foreground oversampling, mirroring, padding (nnU-Net style).

Ma et al. (2021) train with nnU-Net's defaults, and section 5 notes that nnU-Net's foreground
oversampling matters (plain CE loses up to 6 % DSC without it on the liver-tumour task). This
module reproduces the mechanism on in-memory cases:

* ``ceil(batch_size * fg_fraction)`` samples of every batch are *forced* to contain foreground:
  a case with foreground, a foreground class present in it and a voxel of that class are drawn
  uniformly, and the patch is centred on that voxel (shifted to stay inside the image). Choosing
  the class first gives small structures (gallbladder, oesophagus) as many patches as large ones.
  With the default 0.33 and a batch of 2 or 3, one sample per batch is forced (nnU-Net: 1 of 2).
* The other samples are random crops of random cases.
* An axis where the image is smaller than the patch is padded (image with 0, which is the mean of
  a z-scored image; label with ``pad_label``, background by default), the image centred.
* Mirroring augmentation: each spatial axis flipped with probability 1/2, image and label alike.

Everything is drawn from the ``numpy.random.Generator`` passed in, so a batch is a deterministic
function of the generator's state.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["sample_batch"]


def _as_patch_size(patch_size, dims: int) -> tuple:
    if isinstance(patch_size, (int, np.integer)):
        patch = (int(patch_size),) * dims
    else:
        patch = tuple(int(p) for p in patch_size)
    if len(patch) != dims or any(p < 1 for p in patch):
        raise ValueError(
            f"patch_size: expected {dims} positive sizes (one per spatial axis), got {patch_size!r}"
        )
    return patch


def _crop_window(shape: tuple, patch: tuple, rng: np.random.Generator, center: tuple | None) -> tuple:
    """Per axis ``(start, stop, pad_before, pad_after)`` of a crop of size ``patch``."""
    window = []
    for a, (s, p) in enumerate(zip(shape, patch)):
        if s <= p:
            before = (p - s) // 2
            window.append((0, s, before, p - s - before))
            continue
        if center is None:
            start = int(rng.integers(0, s - p + 1))
        else:
            start = min(max(int(center[a]) - p // 2, 0), s - p)
        window.append((start, start + p, 0, 0))
    return tuple(window)


def sample_batch(
    cases: Sequence,
    batch_size: int,
    patch_size: int | Sequence[int],
    rng: np.random.Generator | int,
    fg_fraction: float = 0.33,
    *,
    mirror: bool = True,
    mirror_axes: Sequence[int] | None = None,
    pad_label: int = 0,
    as_torch: bool = False,
):
    """Draw a batch of training patches from ``cases``.

    Parameters
    ----------
    cases : sequence of :class:`~seglosses.bench.data.Case`
        Same spatial dims and channels (e.g. ``dataset.training_cases()``).
    batch_size : int
    patch_size : int or sequence of int
        Patch shape (one int: the same on every axis). Use the image shape to train on whole
        images; smaller images are padded.
    rng : numpy.random.Generator or int
        Source of all randomness (an int seeds a new generator).
    fg_fraction : float
        Minimum fraction of samples forced to contain foreground (default 0.33, nnU-Net's
        oversampling). 0 disables oversampling.
    mirror : bool
        Random flips (probability 1/2 per axis in ``mirror_axes``, default all spatial axes).
    pad_label : int
        Label of padded voxels (default 0, background; pass an ``ignore_index`` to exclude them).
    as_torch : bool
        Return torch tensors instead of numpy arrays.

    Returns
    -------
    images : float32 ``(batch_size, C_in, *patch_size)``
    labels : int64 ``(batch_size, *patch_size)``

    Notes
    -----
    A forced sample always contains foreground when at least one case has foreground; when no
    case has any, every sample is a random crop.
    """
    if not cases:
        raise ValueError("cases: expected at least one case, got an empty sequence")
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")
    if not 0 <= fg_fraction <= 1:
        raise ValueError(f"fg_fraction: expected a number in [0, 1], got {fg_fraction!r}")
    if not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(rng)
    dims = cases[0].label.ndim
    channels = cases[0].image.shape[0]
    for case in cases:
        if case.label.ndim != dims or case.image.shape[0] != channels:
            raise ValueError(
                f"cases: case {case.case_id!r} has {case.label.ndim} spatial dims and {case.image.shape[0]} channels, "
                f"the first case {dims} and {channels}"
            )
    patch = _as_patch_size(patch_size, dims)
    axes = tuple(range(dims)) if mirror_axes is None else tuple(int(a) % dims for a in mirror_axes)

    n_forced = math.ceil(batch_size * fg_fraction - 1e-9)
    with_fg = [i for i, c in enumerate(cases) if c.foreground_locations()]

    images = np.zeros((batch_size, channels) + patch, dtype=np.float32)
    labels = np.full((batch_size,) + patch, pad_label, dtype=np.int64)
    for b in range(batch_size):
        center = None
        if b < n_forced and with_fg:
            case = cases[with_fg[int(rng.integers(len(with_fg)))]]
            locations = case.foreground_locations()
            classes = sorted(locations)
            flat = locations[classes[int(rng.integers(len(classes)))]]
            center = np.unravel_index(int(flat[int(rng.integers(flat.size))]), case.label.shape)
        else:
            case = cases[int(rng.integers(len(cases)))]
        window = _crop_window(case.label.shape, patch, rng, center)
        src = tuple(slice(w[0], w[1]) for w in window)
        dst = tuple(slice(w[2], w[2] + w[1] - w[0]) for w in window)
        images[(b, slice(None)) + dst] = case.image[(slice(None),) + src]
        labels[(b,) + dst] = case.label[src]
        if mirror:
            for a in axes:
                if rng.random() < 0.5:
                    images[b] = np.flip(images[b], axis=a + 1).copy()
                    labels[b] = np.flip(labels[b], axis=a).copy()
    if as_torch:
        import torch

        return torch.from_numpy(images), torch.from_numpy(labels)
    return images, labels
