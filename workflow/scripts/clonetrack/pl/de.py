"""Volcano plots of pseudobulk DE results."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from clonetrack.pl._message import message_figure  # noqa: E402


def plot_volcanoes(results: pd.DataFrame, *, alpha: float = 0.05, max_panels: int = 12):
    """One volcano plot per cell type x contrast, the ``max_panels`` with most significant genes
    first (the title says how many were left out); significant genes in colour, top 5 named."""
    groups = list(results.groupby(["cell_type", "contrast"], sort=True)) if len(results) else []
    groups.sort(key=lambda item: -int((item[1]["p_adj"] < alpha).sum()))
    n_left_out = max(0, len(groups) - max_panels)
    groups = groups[:max_panels]
    if not groups:
        return message_figure("No contrast had enough patients and cells to test.", figsize=(6, 2))
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
