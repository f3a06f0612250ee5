"""Figures for the report. Every function returns a matplotlib Figure and never saves it."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from clonetrack.qc import REMOVAL_REASONS  # noqa: E402


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
