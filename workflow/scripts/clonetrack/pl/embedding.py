"""Embedding figures: UMAP panels and integration metrics."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from anndata import AnnData  # noqa: E402


def plot_umaps(adata: AnnData, *, keys: list[str]) -> plt.Figure:
    """UMAP coloured by each of ``keys`` (categorical obs columns), one panel each."""
    keys = [k for k in keys if k in adata.obs]
    ncols = min(3, len(keys))
    nrows = math.ceil(len(keys) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 4.6 * nrows), squeeze=False)
    coords = np.asarray(adata.obsm["X_umap"])
    order = np.random.default_rng(0).permutation(adata.n_obs)  # no group painted over the rest
    size = max(0.5, min(8.0, 30000 / max(adata.n_obs, 1)))
    for ax, key in zip(axes.flat, keys, strict=False):
        values = adata.obs[key].astype(str)
        levels = sorted(values.unique())
        cmap = plt.get_cmap("tab20" if len(levels) > 10 else "tab10")
        lookup = {level: cmap(i % cmap.N) for i, level in enumerate(levels)}
        ax.scatter(
            coords[order, 0],
            coords[order, 1],
            s=size,
            c=[lookup[v] for v in values.to_numpy()[order]],
            linewidths=0,
            rasterized=True,
        )
        handles = [
            plt.Line2D([], [], marker="o", ls="", color=lookup[level], label=level)
            for level in levels
        ]
        ax.legend(handles=handles, fontsize=7, bbox_to_anchor=(1.0, 1), loc="upper left")
        ax.set(title=key, xticks=[], yticks=[], xlabel="UMAP1", ylabel="UMAP2")
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def plot_integration_metrics(table: pd.DataFrame) -> plt.Figure:
    """Grouped bars of each metric for the unintegrated PCA and the integrated embedding."""
    metrics = ["label_asw", "batch_asw", "knn_batch_mixing"]
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    width = 0.8 / len(table)
    x = np.arange(len(metrics))
    for i, (_, row) in enumerate(table.iterrows()):
        ax.bar(x + i * width, [row[m] for m in metrics], width=width, label=row["embedding"])
    ax.set_xticks(x + width * (len(table) - 1) / 2, metrics)
    ax.set(ylabel="score (higher is better)", ylim=(0, 1.1))
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
