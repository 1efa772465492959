"""seglosses: segmentation losses for PyTorch, exact metrics, significance ranking, and the
Loss Odyssey benchmark (Ma et al. 2021, doi:10.1016/j.media.2021.102035)."""

from .registry import build_loss, list_losses, loss_info, register_loss

__version__ = "0.1.0"

__all__ = ["build_loss", "list_losses", "loss_info", "register_loss", "__version__"]
