"""The one input builder of the loss, kernel, distance-map and metric tests.

Every test that needs logits and targets builds them here, from a seed, so that the test files
share one definition of "a random batch", "a batch with blob-shaped classes", "a batch with every
class present" and one hypothesis strategy for label-map batches. The functions are pure: the
same arguments give the same tensors (each makes its own ``torch.Generator``, or continues the
one passed in).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from hypothesis import strategies as st
from scipy import ndimage

__all__ = [
    "generator",
    "contract_batch",
    "random_batch",
    "kernel_batch",
    "blob_labels",
    "blob_batch",
    "blob_masks",
    "label_batches",
    "random_mask_pair",
    "blob",
    "perturbed",
    "random_case",
    "label_map_pair",
]

_POOL = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


def generator(seed: int) -> torch.Generator:
    """A CPU generator seeded with ``seed``."""
    return torch.Generator().manual_seed(seed)


def contract_batch(mode: str, spatial=(6, 7), n=2, c=3, seed=0, dtype=torch.float32):
    """``(logits * 2, target)`` in the form ``mode`` takes: a label map with every class present in
    sample 0 (multiclass), a {0, 1} label map with a foreground voxel per sample (binary, C = 1),
    or a float multi-hot target (multilabel)."""
    g = generator(seed)
    if mode == "binary":
        c = 1
    logits = torch.randn((n, c) + tuple(spatial), generator=g, dtype=dtype) * 2
    if mode == "multiclass":
        target = torch.randint(0, c, (n,) + tuple(spatial), generator=g)
        target.view(n, -1)[0, :c] = torch.arange(c)  # every class present in sample 0
    elif mode == "binary":
        target = (torch.rand((n,) + tuple(spatial), generator=g) > 0.6).long()
        target.view(n, -1)[:, 0] = 1
    else:
        target = (torch.rand((n, c) + tuple(spatial), generator=g) > 0.6).float()
    return logits, target


def random_batch(shape=(3, 4, 9, 10), seed=0, scale=2.0, absent=None):
    """Logits ``randn * scale`` of ``shape`` ``(N, C, *spatial)`` and a uniform random label map;
    ``absent=(sample, class)`` removes a class from one sample (its voxels get the next class)."""
    g = generator(seed)
    logits = torch.randn(shape, generator=g) * scale
    target = torch.randint(0, shape[1], (shape[0],) + tuple(shape[2:]), generator=g)
    if absent is not None:
        i, k = absent
        t = target[i]
        t[t == k] = (k + 1) % shape[1]
    return logits, target


def kernel_batch(shape, seed, scale, ignore):
    """``(generator, logits, labels, valid)``: inputs of the compiled kernels; ``valid`` is a 0/1
    voxel weight with about 70 % kept voxels when ``ignore`` (else None). The generator is
    returned so that a test can draw more from the same stream."""
    g = generator(seed)
    z = torch.randn(shape, generator=g) * scale
    n, c = shape[:2]
    lab = torch.randint(0, c, (n,) + tuple(shape[2:]), generator=g)
    valid = (torch.rand(lab.shape, generator=g) > 0.3).float() if ignore else None
    return g, z, lab, valid


def blob_labels(shape, g: torch.Generator) -> torch.Tensor:
    """A label map ``(N, *spatial)`` of blob-shaped classes (argmax of box-smoothed noise), so that
    masks have real boundaries; ``shape`` is ``(N, C, *spatial)``; draws from ``g``."""
    n, c = shape[:2]
    spatial = tuple(shape[2:])
    scores = torch.rand((n, c) + spatial, generator=g)
    scores = _POOL[len(spatial)](scores, 3, stride=1, padding=1, count_include_pad=False)
    return scores.argmax(1)


def blob_batch(shape=(2, 3, 12, 13), seed=0, informative=True):
    """Logits ``randn * 1.5`` correlated with a :func:`blob_labels` target (+3 on the true class
    when ``informative``)."""
    g = generator(seed)
    target = blob_labels(shape, g)
    logits = torch.randn(shape, generator=g) * 1.5
    if informative:
        logits = logits + 3 * F.one_hot(target, shape[1]).movedim(-1, 1).float()
    return logits, target


def blob_masks(shape, seed=0, p=0.45) -> np.ndarray:
    """A numpy bool mask with some structure (box-smoothed noise above ``p``), touching the border."""
    rng = np.random.default_rng(seed)
    return ndimage.uniform_filter(rng.random(shape), size=3) > p


@st.composite
def label_batches(draw, *, min_n=1, max_n=3, max_c=4, min_side=1, max_side=6, scales=(0.1, 1.0, 5.0), present="never"):
    """Hypothesis strategy: float64 logits ``(N, C, *spatial)`` (1 to 3 spatial dims) and a label
    map. ``present``: ``"never"`` (uniform labels), ``"maybe"`` (drawn) or ``"always"`` (every
    class present in every sample, the spatial size grown to at least C)."""
    n = draw(st.integers(min_n, max_n))
    c = draw(st.integers(2, max_c))
    spatial = tuple(draw(st.lists(st.integers(min_side, max_side), min_size=1, max_size=3)))
    if present == "always" and math.prod(spatial) < c:
        spatial = spatial + (c,)
    seed = draw(st.integers(0, 2**31 - 1))
    scale = draw(st.sampled_from(list(scales)))
    g = generator(seed)
    logits = torch.randn((n, c) + spatial, generator=g, dtype=torch.float64) * scale
    target = torch.randint(0, c, (n,) + spatial, generator=g)
    if present == "always" or (present == "maybe" and draw(st.booleans())):
        if math.prod(spatial) >= c:  # every class present in every sample
            target.view(n, -1)[:, :c] = torch.arange(c)
    return logits, target


# ----------------------------------------------------------------------------- metric inputs (numpy)

def random_mask_pair(seed: int, shape=(9, 11, 7), p_gt=0.4, p_pred=0.45):
    """``(gt, pred)`` independent random bool masks with foreground fractions ``p_gt``, ``p_pred``."""
    rng = np.random.default_rng(seed)
    return rng.random(shape) < p_gt, rng.random(shape) < p_pred


def blob(shape, rng, sigma=1.5, level=0.2):
    """A bool mask: Gaussian-smoothed noise above ``level`` standard deviations."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    return field > level * field.std()


def perturbed(gt, rng, n_stray=4):
    """gt dilated or eroded, with a few flipped boundary voxels and stray voxels in the corners."""
    pred = ndimage.binary_dilation(gt) if rng.random() < 0.5 else ndimage.binary_erosion(gt)
    pred = pred ^ (rng.random(gt.shape) < 0.02)
    corners = np.array(
        [[0 if c else s - 1 for c, s in zip(bits, gt.shape)] for bits in np.ndindex((2,) * gt.ndim)]
    )
    for idx in rng.permutation(len(corners))[:n_stray]:
        pred[tuple(corners[idx])] = True
    return pred


def random_case(seed):
    """``(gt, pred, spacing)``: a 2D (even seed) or 3D (odd) blob, its perturbation or another blob."""
    rng = np.random.default_rng(seed)
    ndim = 2 + seed % 2
    shape = tuple(int(v) for v in rng.integers(6, 22 if ndim == 3 else 40, ndim))
    gt = blob(shape, rng)
    pred = blob(shape, rng) if seed % 3 == 0 else perturbed(gt, rng)
    spacing = tuple(float(v) for v in rng.choice([0.5, 0.7, 0.8, 1.0, 1.5, 2.5], ndim))
    return gt, pred, spacing


def label_map_pair(seed=0, shape=(14, 16, 12)):
    """``(gt, pred)`` label maps: a blob label, boxes touching the border, stray and prediction-only labels."""
    rng = np.random.default_rng(seed)
    gt = np.zeros(shape, np.int64)
    gt[blob(shape, rng, sigma=2.0, level=0.8)] = 1
    gt[(slice(2, 7), slice(3, 9), slice(0, 5))[: len(shape)]] = 2  # touches the border
    gt[(slice(9, 12), slice(10, 14), slice(6, 10))[: len(shape)]] = 4
    pred = gt.copy()
    pred[gt == 1] = np.where(rng.random(int((gt == 1).sum())) < 0.1, 0, 1)
    pred[(slice(3, 8), slice(3, 9), slice(0, 5))[: len(shape)]] = 2
    pred[(0,) * len(shape)] = 4  # stray voxel of label 4
    pred[tuple(s - 1 for s in shape)] = 5  # label only in the prediction
    return gt, pred
