"""Module (``torch.nn.Module``) forms of every registered loss, e.g. ``seglosses.losses.DiceLoss``.

The classes are defined in :mod:`seglosses.losses._classes`, generated from the registry by
``python scripts/gen_loss_classes.py`` (run it after adding a loss). Each stores its options and
calls the registered core function, so a module and its functional form compute the same thing.
Older class names (``CeLoss``, ``GdiceLoss``, ``SsLoss``, ...) remain importable as aliases.
:class:`CompoundLoss` is the weighted-sum combinator (``build_loss("dice+ce")``);
:class:`DeepSupervision` applies a loss to every output of a deeply supervised network.
"""

from ..registry import SegLoss, _ensure_loaded

_ensure_loaded()

from ._classes import *  # noqa: E402,F401,F403
from ._classes import __all__ as _class_names  # noqa: E402
from .compound import CompoundLoss  # noqa: E402
from .deep_supervision import DeepSupervision  # noqa: E402

__all__ = ["SegLoss", "CompoundLoss", "DeepSupervision", *_class_names]
