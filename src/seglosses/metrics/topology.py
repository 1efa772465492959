r"""Topology metrics of binary masks: clDice of hard masks and Betti-number errors.

Overlap and surface metrics barely move when a thin vessel is cut in two or a spurious loop
closes; these metrics do. Both take the ground truth first, ``(gt, pred)``, as numpy arrays or
torch tensors of the same shape (2-D or 3-D) holding 0/1 or bool values, and return a Python
``float``.

* :func:`cldice_score` -- the centerline Dice of Shit et al. (2021): the harmonic mean of the
  topology precision :math:`|S(P) \cap G| / |S(P)|` and sensitivity
  :math:`|S(G) \cap P| / |S(G)|`, with :math:`S` the hard skeleton
  (:func:`seglosses.skeleton.skeletonize`, scikit-image).
* :func:`betti_numbers` -- :math:`\beta_0` (connected components, full connectivity: 8 in 2-D,
  26 in 3-D), :math:`\beta_1` (2-D: holes; 3-D: tunnels) and, in 3-D, :math:`\beta_2` (cavities),
  with the complementary connectivity for the background (4 in 2-D, 6 in 3-D) and the outside of
  the image counting as background. 3-D :math:`\beta_1` comes from the Euler characteristic,
  :math:`\beta_1 = \beta_0 + \beta_2 - \chi`.
* :func:`betti_error` -- :math:`\sum_k |\beta_k(G) - \beta_k(P)|` (or one dimension ``k``).

Empty masks: skeletons of empty masks are empty; a ratio with a zero denominator is 1.0 when the
other mask is empty as well and 0.0 otherwise (the rule of :mod:`seglosses.metrics.overlap`), so
``cldice_score`` is 1.0 for two empty masks and 0.0 when only one is empty. Betti numbers of an
empty mask are all 0.

References
----------
.. [Shit2021] S. Shit et al., "clDice -- a Novel Topology-Preserving Loss Function for Tubular
   Structure Segmentation", CVPR 2021, arXiv:2003.07311.
.. [Hu2019] X. Hu et al., "Topology-Preserving Deep Image Segmentation", NeurIPS 2019,
   arXiv:1906.05404 (Betti-number error as a segmentation metric).
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
from scipy import ndimage

from .._checks import as_binary_mask, check_same_shape

__all__ = ["TOPOLOGY_KEYS", "cldice_score", "betti_numbers", "betti_error", "evaluate_topology"]

#: The keys of each label's dict returned by :func:`evaluate_topology`, in order: clDice, the
#: Betti-number error summed over the dimensions, and its dimension-0 and dimension-1 parts.
TOPOLOGY_KEYS = ("cldice", "betti_error", "betti0_error", "betti1_error")


def _masks(gt: Any, pred: Any):
    g = as_binary_mask(gt, "gt")
    p = as_binary_mask(pred, "pred")
    check_same_shape(g, p)
    if g.ndim not in (2, 3):
        raise ValueError(f"gt: expected a 2-D or 3-D mask, got shape {g.shape}")
    return g, p


def _ratio(num: int, den: int, other_empty: bool) -> float:
    if den == 0:
        return 1.0 if other_empty else 0.0
    return num / den


def cldice_score(gt: Any, pred: Any) -> float:
    """clDice of two binary masks (1 is perfect).

    Examples
    --------
    >>> import numpy as np
    >>> from seglosses.metrics.topology import cldice_score
    >>> gt = np.zeros((7, 9), bool); gt[3, 1:8] = True           # a line of 7 pixels
    >>> pred = gt.copy(); pred[3, 4] = False                      # cut in two: 6 pixels kept
    >>> round(cldice_score(gt, pred), 4)                          # Tprec 1, Tsens 6/7
    0.9231
    """
    from ..skeleton import skeletonize

    g, p = _masks(gt, pred)
    sg, sp = skeletonize(g), skeletonize(p)
    t_prec = _ratio(int((sp & g).sum()), int(sp.sum()), not g.any())
    t_sens = _ratio(int((sg & p).sum()), int(sg.sum()), not p.any())
    if t_prec + t_sens == 0:
        return 0.0
    return 2.0 * t_prec * t_sens / (t_prec + t_sens)


def _euler_characteristic(mask: np.ndarray) -> int:
    """Euler characteristic of a 3-D voxel set (26-connected foreground): vertices - edges + faces
    - cubes of the union of the voxels' closed unit cubes. A cell spanning the axes ``spans`` is
    present when one of the voxels that share it is: an OR over a shift by one along every axis it
    does not span (the zero padding makes ``np.roll`` wrap in background only)."""
    m = np.pad(mask, 1)
    chi = 0
    for spans in ((), (0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2)):
        cell = m
        for a in range(3):
            if a not in spans:
                cell = cell | np.roll(cell, 1, axis=a)
        chi += (-1) ** len(spans) * int(cell.sum())
    return chi


def betti_numbers(mask: Any) -> tuple:
    """Betti numbers of a binary mask: ``(b0, b1)`` in 2-D, ``(b0, b1, b2)`` in 3-D.

    Examples
    --------
    >>> import numpy as np
    >>> from seglosses.metrics.topology import betti_numbers
    >>> ring = np.zeros((7, 7), bool); ring[1:6, 1:6] = True; ring[3, 3] = False
    >>> betti_numbers(ring)                       # one component with one hole
    (1, 1)
    >>> two = np.zeros((5, 9), bool); two[2, 1:4] = True; two[2, 5:8] = True
    >>> betti_numbers(two)
    (2, 0)
    """
    m = as_binary_mask(mask, "mask")
    if m.ndim not in (2, 3):
        raise ValueError(f"mask: expected a 2-D or 3-D mask, got shape {m.shape}")
    full = ndimage.generate_binary_structure(m.ndim, m.ndim)
    face = ndimage.generate_binary_structure(m.ndim, 1)
    b0 = int(ndimage.label(m, structure=full)[1])
    # background components not connected to the outside (pad with background first)
    bg_labels, n_bg = ndimage.label(np.pad(~m, 1, constant_values=True), structure=face)
    enclosed = n_bg - 1 if n_bg else 0  # the component of the padding frame is the outside
    if m.ndim == 2:
        return b0, int(enclosed)
    b2 = int(enclosed)
    chi = _euler_characteristic(m)
    return b0, int(b0 + b2 - chi), b2


def betti_error(gt: Any, pred: Any, dim: Optional[int] = None) -> float:
    """Betti-number error ``sum_k |b_k(gt) - b_k(pred)|`` (``dim=k``: that dimension only).

    Examples
    --------
    >>> import numpy as np
    >>> from seglosses.metrics.topology import betti_error
    >>> gt = np.zeros((5, 9), bool); gt[2, 1:8] = True
    >>> pred = gt.copy(); pred[2, 4] = False                  # one vessel cut in two
    >>> betti_error(gt, pred), betti_error(gt, pred, dim=1)
    (1.0, 0.0)
    """
    g, p = _masks(gt, pred)
    bg, bp = betti_numbers(g), betti_numbers(p)
    if dim is not None:
        if not isinstance(dim, (int, np.integer)) or not 0 <= dim < len(bg):
            raise ValueError(f"dim: expected an int in [0, {len(bg)}) for {g.ndim}-D masks, got {dim!r}")
        return float(abs(bg[dim] - bp[dim]))
    return float(sum(abs(a - b) for a, b in zip(bg, bp)))


def evaluate_topology(pred_labels: Any, gt_labels: Any, labels) -> dict:
    """Topology metrics of every label of two label maps (2-D or 3-D), argument order as
    :func:`seglosses.metrics.evaluate_case`: ``{label: {key: value}}`` for the
    :data:`TOPOLOGY_KEYS` (clDice of the label's masks, Betti-number errors).

    Examples
    --------
    >>> import numpy as np
    >>> from seglosses.metrics.topology import evaluate_topology
    >>> gt = np.zeros((5, 9), int); gt[2, 1:8] = 1
    >>> pred = gt.copy(); pred[2, 4] = 0                      # the vessel is cut
    >>> r = evaluate_topology(pred, gt, labels=[1])[1]
    >>> r["betti_error"], r["betti0_error"], r["betti1_error"]
    (1.0, 1.0, 0.0)
    """
    from .._checks import as_label_map

    p = as_label_map(pred_labels, "pred_labels")
    g = as_label_map(gt_labels, "gt_labels")
    check_same_shape(g, p, "gt_labels", "pred_labels")
    out = {}
    for lab in labels:
        gm, pm = g == lab, p == lab
        bg, bp = betti_numbers(gm), betti_numbers(pm)
        out[int(lab)] = {
            "cldice": cldice_score(gm, pm),
            "betti_error": float(sum(abs(a - b) for a, b in zip(bg, bp))),
            "betti0_error": float(abs(bg[0] - bp[0])),
            "betti1_error": float(abs(bg[1] - bp[1])),
        }
    return out
