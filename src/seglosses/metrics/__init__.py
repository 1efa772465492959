"""Segmentation metrics: overlap (Dice, IoU, sensitivity, specificity, precision) and surface
(normalized surface Dice, Hausdorff / HD95, average symmetric surface distance), spacing-aware,
2D and 3D, numpy arrays or torch tensors, with documented empty-mask values; topology (clDice of
hard masks, Betti-number errors) for thin structures.

Surface metrics follow Nikolov et al. (2018, arXiv:1809.04430) exactly as DeepMind's
``surface-distance`` computes them (the NSD of the Decathlon and of Ma et al. 2021,
doi:10.1016/j.media.2021.102035); ``method="voxel"`` reproduces MONAI's edge-voxel definition.
See ``docs/metrics.md``.
"""

from .case import METRIC_KEYS, evaluate_case
from .overlap import Confusion, confusion, dice_score, iou_score, precision, sensitivity, specificity
from .topology import TOPOLOGY_KEYS, betti_error, betti_numbers, cldice_score, evaluate_topology
from .surface import (
    SurfaceDistances,
    average_surface_distance,
    hausdorff_distance,
    normalized_surface_dice,
    surface_distances,
)

__all__ = [
    "METRIC_KEYS",
    "Confusion",
    "SurfaceDistances",
    "average_surface_distance",
    "TOPOLOGY_KEYS",
    "betti_error",
    "betti_numbers",
    "cldice_score",
    "confusion",
    "dice_score",
    "evaluate_case",
    "evaluate_topology",
    "hausdorff_distance",
    "iou_score",
    "normalized_surface_dice",
    "precision",
    "sensitivity",
    "specificity",
    "surface_distances",
]
