"""Embedding figures: UMAP panels and integration metrics."""

from __future__ import annotations

import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import scanpy as sc  # noqa: E402
from anndata import AnnData  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402


def _category_colours(values: pd.Series) -> tuple[pd.Categorical, list[str]]:
    """``values`` as text categories in sorted order, and their colours: tab10 up to ten levels,
    tab20 beyond (repeating past twenty)."""
    categories = pd.Categorical(values.astype(str))
    levels = list(categories.categories)
    cmap = plt.get_cmap("tab20" if len(levels) > 10 else "tab10")
    return categories, [to_hex(cmap(i % cmap.N)) for i in range(len(levels))]


def plot_umaps(adata: AnnData, *, keys: list[str]) -> plt.Figure:
    """UMAP coloured by each of ``keys`` (categorical obs columns), one panel each."""
    keys = [k for k in keys if k in adata.obs]
    # scanpy draws the cells in their order: a shuffled copy keeps any group from being painted
    # over the rest, and keeps the caller's obs and uns untouched
    order = np.random.default_rng(0).permutation(adata.n_obs)
    shown = AnnData(obs=pd.DataFrame(index=adata.obs_names[order].astype(str)))
    shown.obsm["X_umap"] = np.asarray(adata.obsm["X_umap"])[order]
    for key in dict.fromkeys(keys):
        shown.obs[key], shown.uns[f"{key}_colors"] = _category_colours(adata.obs[key].iloc[order])
    with warnings.catch_warnings():
        # scanpy 1.11 sets the colour map's "bad" colour through a call matplotlib 3.11 marks
        # for deprecation; nothing of ours to change
        warnings.filterwarnings("ignore", "The set_bad function", PendingDeprecationWarning)
        fig = sc.pl.umap(
            shown,
            color=keys,
            size=max(0.5, min(8.0, 30000 / max(adata.n_obs, 1))),
            ncols=3,
            legend_fontsize=7,
            linewidths=0,
            marker="o",
            return_fig=True,
            show=False,
        )
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
