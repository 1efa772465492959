r"""Overlap metrics of binary masks: Dice, IoU, sensitivity, specificity, precision.

All functions take the ground truth first, ``(gt, pred)``, as numpy arrays or torch tensors of the
same shape (any number of dimensions) holding 0/1 or bool values, and return a Python ``float``.
They are computed from exact integer counts (:func:`confusion`).

Empty masks (decided once, for every ratio below): a ratio whose denominator is zero is **1.0 when
the prediction equals the ground truth** (no false positive and no false negative) and **0.0
otherwise**. Hence:

========================  =====  =====  ===========  ===========  =========
case                      Dice   IoU    sensitivity  specificity  precision
========================  =====  =====  ===========  ===========  =========
gt and pred empty         1.0    1.0    1.0          1.0          1.0
gt empty, pred not empty  0.0    0.0    0.0          TN/(TN+FP)   0.0
gt not empty, pred empty  0.0    0.0    0.0          1.0          0.0
========================  =====  =====  ===========  ===========  =========

and, symmetrically, when the ground truth covers the whole image (no negatives) specificity is 1.0
if the prediction covers it too and 0.0 otherwise.

No metric ever returns NaN.

References
----------
.. [Ma2021] J. Ma et al., "Loss odyssey in medical image segmentation", Medical Image Analysis 71
   (2021) 102035, doi:10.1016/j.media.2021.102035 (DSC as the region metric, section 3.3).
.. [Maier-Hein2024] L. Maier-Hein, A. Reinke et al., "Metrics reloaded: recommendations for image
   analysis validation", Nature Methods 21 (2024) 195-212, doi:10.1038/s41592-023-02151-z.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from .._checks import as_binary_mask, check_same_shape

__all__ = ["Confusion", "confusion", "dice_score", "iou_score", "precision", "sensitivity", "specificity"]


class Confusion(NamedTuple):
    """Voxel counts of a binary segmentation: true/false positives/negatives (Python ints)."""

    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def exact_match(self) -> bool:
        """``True`` when the prediction equals the ground truth (``fp == fn == 0``)."""
        return self.fp == 0 and self.fn == 0


def _binary_pair(gt: Any, pred: Any) -> tuple[np.ndarray, np.ndarray]:
    g = as_binary_mask(gt, "gt")
    p = as_binary_mask(pred, "pred")
    check_same_shape(g, p)
    return g, p


def _counts(g: np.ndarray, p: np.ndarray) -> Confusion:
    tp = int(np.count_nonzero(g & p))
    n_gt = int(np.count_nonzero(g))
    n_pred = int(np.count_nonzero(p))
    fp = n_pred - tp
    fn = n_gt - tp
    return Confusion(tp=tp, fp=fp, fn=fn, tn=int(g.size) - tp - fp - fn)


def confusion(gt: Any, pred: Any) -> Confusion:
    """Count true positives, false positives, false negatives and true negatives.

    Parameters
    ----------
    gt, pred : numpy.ndarray or torch.Tensor
        Binary masks of the same shape (bool, or integer/floating with values in {0, 1}).

    Returns
    -------
    Confusion
        Named tuple ``(tp, fp, fn, tn)`` of Python ints; ``tp + fp + fn + tn == gt.size``.

    Raises
    ------
    ValueError
        Shapes differ, or a mask has values other than 0 and 1.
    TypeError
        An input is not an array or has a non-numeric dtype.

    Examples
    --------
    >>> import numpy as np
    >>> gt = np.array([[1, 1, 0, 0]])
    >>> pred = np.array([[0, 1, 1, 0]])
    >>> confusion(gt, pred)
    Confusion(tp=1, fp=1, fn=1, tn=1)
    """
    return _counts(*_binary_pair(gt, pred))


def _ratio(num: int, den: int, c: Confusion) -> float:
    if den == 0:
        return 1.0 if c.exact_match else 0.0
    return num / den


def _from_counts(c: Confusion) -> dict[str, float]:
    """All overlap metrics from one set of counts (used by :func:`evaluate_case`)."""
    return {
        "dsc": _ratio(2 * c.tp, 2 * c.tp + c.fp + c.fn, c),
        "iou": _ratio(c.tp, c.tp + c.fp + c.fn, c),
        "sensitivity": _ratio(c.tp, c.tp + c.fn, c),
        "specificity": _ratio(c.tn, c.tn + c.fp, c),
        "precision": _ratio(c.tp, c.tp + c.fp, c),
    }


def dice_score(gt: Any, pred: Any) -> float:
    r"""Dice similarity coefficient (DSC) of two binary masks.

    .. math:: \mathrm{DSC} = \frac{2\,|G \cap P|}{|G| + |P|} = \frac{2\,TP}{2\,TP + FP + FN}

    Parameters
    ----------
    gt, pred : numpy.ndarray or torch.Tensor
        Binary masks of the same shape (bool, or values in {0, 1}).

    Returns
    -------
    float
        In [0, 1]. **Both masks empty: 1.0. Exactly one empty: 0.0.** Never NaN.

    References
    ----------
    L. R. Dice, "Measures of the amount of ecologic association between species", Ecology 26 (1945)
    297-302, doi:10.2307/1932409; Ma et al. (2021), doi:10.1016/j.media.2021.102035, eq. (1).

    Examples
    --------
    >>> import numpy as np
    >>> gt = np.array([[1, 1, 0, 0]])
    >>> pred = np.array([[0, 1, 1, 0]])
    >>> dice_score(gt, pred)
    0.5
    >>> dice_score(np.zeros((2, 2)), np.zeros((2, 2)))
    1.0
    """
    c = confusion(gt, pred)
    return _ratio(2 * c.tp, 2 * c.tp + c.fp + c.fn, c)


def iou_score(gt: Any, pred: Any) -> float:
    r"""Intersection over union (Jaccard index) of two binary masks.

    .. math:: \mathrm{IoU} = \frac{|G \cap P|}{|G \cup P|} = \frac{TP}{TP + FP + FN}
              = \frac{\mathrm{DSC}}{2 - \mathrm{DSC}}

    Returns
    -------
    float
        In [0, 1]. **Both masks empty: 1.0. Exactly one empty: 0.0.** Never NaN.

    References
    ----------
    P. Jaccard, "The distribution of the flora in the alpine zone", New Phytologist 11 (1912) 37-50,
    doi:10.1111/j.1469-8137.1912.tb05611.x.

    Examples
    --------
    >>> import numpy as np
    >>> iou_score(np.array([1, 1, 0, 0]), np.array([0, 1, 1, 0]))
    0.3333333333333333
    """
    c = confusion(gt, pred)
    return _ratio(c.tp, c.tp + c.fp + c.fn, c)


def sensitivity(gt: Any, pred: Any) -> float:
    r"""Sensitivity (recall, true positive rate): the fraction of the ground truth that is found.

    .. math:: \mathrm{Sens} = \frac{TP}{TP + FN}

    Returns
    -------
    float
        In [0, 1]. **Ground truth empty** (nothing to find): 1.0 if the prediction is empty too,
        0.0 if anything was predicted. Never NaN.

    Examples
    --------
    >>> import numpy as np
    >>> sensitivity(np.array([1, 1, 0, 0]), np.array([0, 1, 1, 1]))
    0.5
    >>> sensitivity(np.array([0, 0]), np.array([0, 0])), sensitivity(np.array([0, 0]), np.array([0, 1]))
    (1.0, 0.0)
    """
    c = confusion(gt, pred)
    return _ratio(c.tp, c.tp + c.fn, c)


def specificity(gt: Any, pred: Any) -> float:
    r"""Specificity (true negative rate): the fraction of the background correctly left out.

    .. math:: \mathrm{Spec} = \frac{TN}{TN + FP}

    Returns
    -------
    float
        In [0, 1]. **Ground truth covering the whole image** (no negatives): 1.0 if the prediction
        covers it too, 0.0 otherwise. Never NaN.

    Examples
    --------
    >>> import numpy as np
    >>> specificity(np.array([1, 1, 0, 0]), np.array([0, 1, 1, 0]))
    0.5
    """
    c = confusion(gt, pred)
    return _ratio(c.tn, c.tn + c.fp, c)


def precision(gt: Any, pred: Any) -> float:
    r"""Precision (positive predictive value): the fraction of the prediction that is correct.

    .. math:: \mathrm{Prec} = \frac{TP}{TP + FP}

    Returns
    -------
    float
        In [0, 1]. **Prediction empty**: 1.0 if the ground truth is empty too, 0.0 otherwise.
        Never NaN.

    Examples
    --------
    >>> import numpy as np
    >>> precision(np.array([1, 1, 0, 0]), np.array([0, 1, 1, 1]))
    0.3333333333333333
    >>> precision(np.array([1, 0]), np.array([0, 0]))
    0.0
    """
    c = confusion(gt, pred)
    return _ratio(c.tp, c.tp + c.fp, c)
