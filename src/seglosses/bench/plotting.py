"""Figure helpers shared by the task previews and the report: the label palette, label
overlays, and matplotlib figures drawn off-screen (Agg canvas, no global backend change)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["PALETTE", "overlay", "new_figure", "save_png"]

#: RGB in [0, 1] per label value (0: background); :func:`overlay` gives larger labels the last colour.
PALETTE = np.array(
    [
        [0.0, 0.0, 0.0],
        [0.89, 0.1, 0.11],
        [0.22, 0.49, 0.72],
        [0.3, 0.69, 0.29],
        [0.6, 0.31, 0.64],
        [1.0, 0.5, 0.0],
        [1.0, 1.0, 0.2],
        [0.65, 0.34, 0.16],
        [0.97, 0.51, 0.75],
        [0.1, 0.8, 0.8],
    ],
    dtype=np.float32,
)


def overlay(pic: np.ndarray, label: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """RGB picture ``(H, W, 3)`` of a grey (or RGB) image in [0, 1] with the foreground labels
    blended in their :data:`PALETTE` colour (weight ``alpha``); values outside [0, 1] are clipped.

    >>> overlay(np.zeros((1, 2)), np.array([[0, 1]]), alpha=1.0)[0].tolist()
    [[0.0, 0.0, 0.0], [0.8899999856948853, 0.10000000149011612, 0.10999999940395355]]
    """
    rgb = np.repeat(pic[..., None], 3, axis=-1) if pic.ndim == 2 else pic.copy()
    rgb = np.clip(rgb.astype(np.float32), 0, 1)
    colours = PALETTE[np.clip(label, 0, len(PALETTE) - 1)]
    fg = label > 0
    rgb[fg] = (1 - alpha) * rgb[fg] + alpha * colours[fg]
    return rgb


def new_figure(width: float, height: float, dpi: int = 100):
    """A matplotlib ``Figure`` of ``width`` x ``height`` inches on an Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def save_png(fig, path: Path, dpi: int = 100) -> Path:
    """Save ``fig`` as PNG at ``path`` (parent folders created); return ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=dpi)
    return path
