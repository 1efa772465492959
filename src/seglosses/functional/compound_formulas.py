"""Old import path of :mod:`seglosses.functional.compound` (kept so older imports keep working)."""

from .compound import _pow_linear, combo_loss, ell_loss, log1m_probs  # noqa: F401

__all__ = ["combo_loss", "ell_loss", "log1m_probs"]
