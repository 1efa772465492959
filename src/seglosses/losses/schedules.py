"""Training schedules of Ma et al. 2021 sec. 3.2: weight schedules and two-stage training.

Three losses of the Loss Odyssey need a schedule:

* **Boundary loss** (Kervadec et al.): ``L = alpha * L_dice + (1 - alpha) * L_boundary`` with
  ``alpha = 1`` at first, decreased by 0.01 after each epoch down to 0.01
  (:class:`BoundaryRebalancing`; the named compound ``dice_bd``, registered with the other
  compound formulas in :mod:`seglosses.functional.compound`).
* **Hausdorff loss** (Karimi & Salcudean): ``L = alpha * L_dice + L_HD`` with alpha "the ratio of
  the mean of the HD-based loss term to the mean of the DSC loss term" (beta = 1)
  (:class:`HausdorffBalancing`; the named compound ``dice_hd``).
* **Two-stage training**: Lovász after cross entropy (Berman et al.), and in Ma et al.'s
  experiments Dice first, then fine-tuning with the boundary or Hausdorff compound
  (:data:`TWO_STAGE`, :func:`training_stages`).

The schedule API is the one :class:`seglosses.losses.compound.CompoundLoss` calls:
``weights(epoch, compound) -> list of floats`` (one per term, in ``compound.names`` order) when
the training loop calls ``loss.set_epoch(epoch)`` -- at the start of every epoch, from 0 -- and,
optionally, ``observe(values_by_term_name, compound)`` after each forward. A compound built with
a schedule starts in the schedule's epoch-0 state.

Examples
--------
>>> import seglosses
>>> loss = seglosses.build_loss("dice_bd")
>>> loss.weights
[1.0, 0.0]
>>> loss.set_epoch(3); loss.weights
[0.97, 0.03]
>>> loss.set_epoch(500); loss.weights
[0.01, 0.99]
>>> training_stages("dice_hd")
[('dice', 0.5), ('dice_hd', 0.5)]
"""

from __future__ import annotations

from decimal import Decimal
from typing import Dict, List, Tuple

__all__ = [
    "BoundaryRebalancing",
    "HausdorffBalancing",
    "TWO_STAGE",
    "FIRST_STAGE_FRACTION",
    "training_stages",
]


def _index(compound, name: str, role: str) -> int:
    try:
        return list(compound.names).index(name)
    except ValueError:
        raise ValueError(
            f"{role}: the schedule expects a term named {name!r}, the compound has {list(compound.names)}"
        ) from None


class BoundaryRebalancing:
    """Kervadec et al.'s rebalancing: ``alpha(epoch) = max(minimum, start - step * epoch)``.

    The region term (``region``, default ``"dice"``) gets ``alpha``, the boundary term
    (``boundary``, default ``"boundary"``) gets ``1 - alpha``; other terms keep their weights.
    Defaults ``start=1``, ``step=0.01``, ``minimum=0.01`` as in Kervadec et al. 2019 and Ma et al.
    2021 sec. 3.2: alpha = 1, 0.99, 0.98, ..., 0.01 at epoch 99, then 0.01. The arithmetic is
    decimal, so the weights are exactly those numbers (``0.97``, not ``0.9700000000000001``).

    Reference: Kervadec et al., "Boundary loss for highly unbalanced segmentation", Medical
    Image Analysis 67 (2021) 101851, doi:10.1016/j.media.2020.101851; Ma et al. 2021 sec. 3.2.
    """

    def __init__(self, region: str = "dice", boundary: str = "boundary", start: float = 1.0, step: float = 0.01, minimum: float = 0.01):
        if not 0 <= minimum <= start <= 1:
            raise ValueError(f"start, minimum: expected 0 <= minimum <= start <= 1, got start={start!r}, minimum={minimum!r}")
        if step < 0:
            raise ValueError(f"step: expected a non-negative number, got {step!r}")
        self.region, self.boundary = region, boundary
        self.start, self.step, self.minimum = start, step, minimum

    def alpha(self, epoch: int) -> float:
        """The region weight at ``epoch`` (0-based)."""
        if epoch < 0:
            raise ValueError(f"epoch: expected an epoch index >= 0, got {epoch!r}")
        a = Decimal(str(self.start)) - Decimal(str(self.step)) * int(epoch)
        return float(max(a, Decimal(str(self.minimum))))

    def weights(self, epoch: int, compound) -> List[float]:
        a = Decimal(str(self.alpha(epoch)))
        w = list(compound.weights)
        w[_index(compound, self.region, "region")] = float(a)
        w[_index(compound, self.boundary, "boundary")] = float(Decimal(1) - a)
        return w

    def __repr__(self) -> str:
        return f"BoundaryRebalancing(start={self.start}, step={self.step}, minimum={self.minimum})"


class HausdorffBalancing:
    """Karimi & Salcudean's balancing: ``L = alpha * L_dice + L_HD``, alpha = mean HD term / mean Dice term.

    ``alpha`` is the ratio of the means of the detached term values (no gradient flows through
    it), held constant within an epoch so that the loss is one fixed function per epoch:

    * epoch e >= 1: the means over all batches of epoch e - 1 (``observe`` accumulates them;
      ``set_epoch(e)`` computes alpha and restarts the accumulation);
    * epoch 0, which has no history: the first observed batch's ratio (before it,
      ``initial_alpha`` = 1).

    The HD term's weight stays 1 (Ma et al.: beta = 1). A Dice mean of 0 (nothing to balance
    against) leaves alpha unchanged. Without ``set_epoch`` calls alpha stays at the first
    batch's ratio.

    Reference: Karimi & Salcudean, IEEE TMI 39(2) 2020, doi:10.1109/TMI.2019.2930068 ("we chose
    lambda such that equal weights were given to the HD-based and DSC loss terms"); Ma et al.
    2021 sec. 3.2 ("the ratio of the mean of the HD-based loss term to the mean of the DSC loss
    term").
    """

    def __init__(self, region: str = "dice", distance: str = "hausdorff", initial_alpha: float = 1.0):
        self.region, self.distance = region, distance
        self.alpha = float(initial_alpha)
        self.epoch = None
        self._initialised = False
        self._sum_region = 0.0
        self._sum_distance = 0.0
        self.n_observed = 0

    def weights(self, epoch: int, compound) -> List[float]:
        if epoch != self.epoch:
            if self.n_observed and self._sum_region > 0:
                self.alpha = self._sum_distance / self._sum_region
                self._initialised = True
            self.epoch = epoch
            self._sum_region = self._sum_distance = 0.0
            self.n_observed = 0
        return self._weights(compound)

    def _weights(self, compound) -> List[float]:
        w = list(compound.weights)
        w[_index(compound, self.region, "region")] = self.alpha
        w[_index(compound, self.distance, "distance")] = 1.0
        return w

    def observe(self, values: Dict[str, "object"], compound) -> None:
        region = float(values[self.region].detach().float().mean())
        distance = float(values[self.distance].detach().float().mean())
        self._sum_region += region
        self._sum_distance += distance
        self.n_observed += 1
        if not self._initialised and region > 0:
            self.alpha = distance / region
            self._initialised = True
            compound.weights = self._weights(compound)

    def __repr__(self) -> str:
        return f"HausdorffBalancing(alpha={self.alpha:g})"


# ----------------------------------------------------------------------------- two-stage training

#: loss spec -> (first-stage spec, second-stage spec): "train with A, then fine-tune with B"
#: (Ma et al. 2021 sec. 3.2: Lovász after CE, per Berman et al.; boundary and Hausdorff
#: compounds after Dice, Ma et al.'s own protocol, which gave them the most robust training).
TWO_STAGE: Dict[str, Tuple[str, str]] = {
    "lovasz": ("ce", "lovasz"),
    "dice_bd": ("dice", "dice_bd"),
    "dice_hd": ("dice", "dice_hd"),
    "boundary": ("dice", "boundary"),
    "hausdorff": ("dice", "hausdorff"),
}

#: fraction of the iterations given to the first stage (Ma et al. do not state it; half and half)
FIRST_STAGE_FRACTION = 0.5


def training_stages(loss_spec: str, first_fraction: float = FIRST_STAGE_FRACTION) -> List[Tuple[str, float]]:
    """The training stages of ``loss_spec``: ``[(spec, fraction_of_iterations), ...]``.

    Specs in :data:`TWO_STAGE` give two stages ``[(A, first_fraction), (B, 1 - first_fraction)]``;
    every other spec one stage ``[(loss_spec, 1.0)]``. Fractions sum to 1. A scheduled compound
    (``dice_bd``, ``dice_hd``) restarts its schedule at the second stage's first epoch: the
    benchmark builds a fresh loss per stage and calls ``set_epoch`` from 0.

    >>> training_stages("lovasz")
    [('ce', 0.5), ('lovasz', 0.5)]
    >>> training_stages("dice+ce")
    [('dice+ce', 1.0)]
    """
    if not isinstance(loss_spec, str):
        raise TypeError(f"loss_spec: expected a str, got {type(loss_spec).__name__}")
    if not 0 < first_fraction < 1:
        raise ValueError(f"first_fraction: expected a number in (0, 1), got {first_fraction!r}")
    key = loss_spec.strip()
    if key in TWO_STAGE:
        a, b = TWO_STAGE[key]
        return [(a, float(first_fraction)), (b, float(1 - first_fraction))]
    return [(loss_spec, 1.0)]
