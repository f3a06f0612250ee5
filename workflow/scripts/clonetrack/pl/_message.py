"""An empty panel or figure that says why it holds nothing."""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.figure import Figure


def message(ax, text: str) -> None:
    """Say on an empty panel why it holds nothing."""
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, transform=ax.transAxes)
    ax.axis("off")


def message_figure(text: str, *, figsize: tuple[float, float] = (6, 1.5)) -> Figure:
    """A figure of one empty panel saying why there is nothing to draw."""
    fig, ax = plt.subplots(figsize=figsize)
    message(ax, text)
    return fig
