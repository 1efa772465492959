"""seglosses: segmentation losses for PyTorch, exact metrics, significance ranking, and the
Loss Odyssey benchmark (Ma et al. 2021, doi:10.1016/j.media.2021.102035).

The top-level API (``build_loss``, ``list_losses``, ``loss_info``, ``register_loss``,
``DeepSupervision``) is loaded
on first use, so ``import seglosses.metrics`` or ``seglosses.ranking`` does not import torch.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {"build_loss", "list_losses", "loss_info", "register_loss"}
_LAZY_OTHER = {"DeepSupervision": ".losses.deep_supervision"}

__all__ = sorted(_LAZY | set(_LAZY_OTHER)) + ["__version__"]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(".registry", __name__), name)
    if name in _LAZY_OTHER:
        return getattr(importlib.import_module(_LAZY_OTHER[name], __name__), name)
    raise AttributeError(f"module 'seglosses' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | _LAZY | set(_LAZY_OTHER))
