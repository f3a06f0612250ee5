"""Figures for the report. Every function returns a matplotlib Figure and never saves it."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from anndata import AnnData  # noqa: E402

from .qc import REMOVAL_REASONS  # noqa: E402


def plot_qc_sample(
    cells: pd.DataFrame, ledger: pd.Series, *, droplets: pd.DataFrame | None = None
) -> plt.Figure:
    """Counts, genes and mitochondrial fraction of one sample, thresholds drawn, removed in colour;
    with an unfiltered matrix, its barcode-rank curve with knee, inflection and the called cells."""
    fig, axes = plt.subplots(
        1, 3 if droplets is None else 4, figsize=(13 if droplets is None else 17, 3.8)
    )
    kept = cells["qc_reason"].astype(str) == "kept"
    colours = np.where(kept, "#4c72b0", "#dd8452")
    axes[0].scatter(cells["total_counts"], cells["n_genes_by_counts"], s=4, c=colours)
    axes[0].set(xscale="log", yscale="log", xlabel="UMIs per cell", ylabel="genes per cell")
    for key, axis in (("total_counts", "x"), ("n_genes_by_counts", "y")):
        for bound in ("min", "max"):
            value = ledger[f"threshold_{bound}_{key}"]
            line = axes[0].axvline if axis == "x" else axes[0].axhline
            line(value, color="grey", ls="--", lw=0.8)
    axes[1].scatter(cells["total_counts"], cells["pct_counts_mt"], s=4, c=colours)
    axes[1].axhline(ledger["threshold_max_pct_counts_mt"], color="grey", ls="--", lw=0.8)
    axes[1].set(xscale="log", xlabel="UMIs per cell", ylabel="% mitochondrial UMIs")
    scores = cells["doublet_score"].dropna()
    axes[2].hist(scores, bins=40, color="#4c72b0")
    if np.isfinite(ledger["threshold_doublet_score"]):
        axes[2].axvline(ledger["threshold_doublet_score"], color="grey", ls="--", lw=0.8)
    axes[2].set(xlabel="doublet score", ylabel="cells")
    if droplets is not None:
        _plot_barcode_ranks(axes[3], droplets, ledger)
    removed = ", ".join(f"{r} {int(ledger[f'removed_{r}'])}" for r in REMOVAL_REASONS)
    fig.suptitle(
        f"{ledger['sample_id']}: {int(ledger['n_cells_in'])} cells in, "
        f"{int(ledger['n_cells_kept'])} kept (removed: {removed}); orange = removed",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def _plot_barcode_ranks(ax, droplets: pd.DataFrame, ledger: pd.Series) -> None:
    ordered = droplets[droplets["total_counts"] > 0].sort_values("rank")
    is_cell = ordered["call"].str.startswith("cell_").to_numpy()
    ax.scatter(
        ordered["rank"], ordered["total_counts"], s=2, c=np.where(is_cell, "#4c72b0", "#bbbbbb")
    )
    for key, style in (("knee", "--"), ("inflection", ":")):
        if np.isfinite(ledger[key]):
            ax.axhline(
                ledger[key], color="grey", ls=style, lw=0.8, label=f"{key} {ledger[key]:.0f} UMIs"
            )
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="barcode rank",
        ylabel="UMIs",
        title=f"{int(is_cell.sum())} cells of {len(droplets)} barcodes ({ledger['cell_calling']})",
    )
    ax.legend(fontsize=7)


def plot_qc_ledger(ledger: pd.DataFrame) -> plt.Figure:
    """Stacked bars per sample: cells kept and removed by reason."""
    columns = ["n_cells_kept", *[f"removed_{r}" for r in REMOVAL_REASONS]]
    table = ledger.set_index("sample_id")[columns]
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(table) + 2), 4))
    bottom = np.zeros(len(table))
    for column in columns:
        ax.bar(table.index, table[column], bottom=bottom, label=column.replace("removed_", ""))
        bottom += table[column].to_numpy()
    ax.set(ylabel="cells", title="QC ledger: where every input cell went")
    ax.tick_params(axis="x", rotation=60)
    ax.legend(fontsize=8, bbox_to_anchor=(1.01, 1), loc="upper left")
    fig.tight_layout()
    return fig


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


def plot_volcanoes(results: pd.DataFrame, *, alpha: float = 0.05, max_panels: int = 12):
    """One volcano plot per cell type x contrast, the ``max_panels`` with most significant genes
    first (the title says how many were left out); significant genes in colour, top 5 named."""
    groups = list(results.groupby(["cell_type", "contrast"], sort=True)) if len(results) else []
    groups.sort(key=lambda item: -int((item[1]["p_adj"] < alpha).sum()))
    n_left_out = max(0, len(groups) - max_panels)
    groups = groups[:max_panels]
    if not groups:
        fig, ax = plt.subplots(figsize=(6, 2))
        ax.text(0.5, 0.5, "No contrast had enough patients and cells to test.", ha="center")
        ax.axis("off")
        return fig
    ncols = min(3, len(groups))
    nrows = math.ceil(len(groups) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5 * ncols, 4 * nrows), squeeze=False)
    for ax, ((cell_type, contrast), table) in zip(axes.flat, groups, strict=False):
        table = table.dropna(subset=["p"])
        logp = -np.log10(table["p"].clip(lower=1e-300))
        significant = table["p_adj"] < alpha
        ax.scatter(table["log2fc"], logp, s=4, c=np.where(significant, "#c44e52", "#999999"))
        for _, row in table[significant].nsmallest(5, "p").iterrows():
            ax.annotate(row["gene"], (row["log2fc"], -np.log10(max(row["p"], 1e-300))), fontsize=7)
        ax.set(
            title=f"{cell_type}: {contrast}\n{int(significant.sum())} genes at FDR {alpha}",
            xlabel="log2 fold change",
            ylabel="-log10 p",
        )
    for ax in list(axes.flat)[len(groups) :]:
        ax.axis("off")
    if n_left_out:
        fig.suptitle(
            f"{len(groups)} contrasts with most significant genes shown; {n_left_out} more "
            "in timepoint_de.tsv",
            fontsize=10,
        )
    fig.tight_layout()
    return fig
