"""The copy-number heatmap of one patient."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from clonetrack.errors import InputError


def _binned_rows(
    x, code: np.ndarray, n_groups: int, max_rows: int
) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``x`` ordered by group; above ``max_rows`` rows, consecutive cells of a group are
    averaged into bins (each group keeps a share of rows proportional to its cells, at least one).

    A figure shows a few hundred pixel rows: binning shows the same picture without a dense
    cells x windows image, which matplotlib would resample at several times its size.
    """
    rows, codes = [], []
    n_valid = int((code >= 0).sum())
    for g in range(n_groups):
        members = np.flatnonzero(code == g)
        if not len(members):
            continue
        block = x[members]
        block = block.toarray() if sp.issparse(block) else np.asarray(block)
        n_bins = (
            len(members)
            if n_valid <= max_rows
            else max(1, round(len(members) / n_valid * max_rows))
        )
        rows += [part.mean(axis=0) for part in np.array_split(block.astype(np.float32), n_bins)]
        codes += [g] * n_bins
    return np.vstack(rows), np.asarray(codes)


def plot_cnv_heatmap(
    adata: ad.AnnData,
    *,
    groupby: str = "cnv_clone",
    vmax: float | None = None,
    max_rows: int = 2000,
):
    """Heatmap of ``obsm["X_cnv"]``: cells ordered by ``groupby``, chromosome boundaries marked.

    Parameters
    ----------
    adata
        Output of :func:`infer_cnv`.
    groupby
        ``obs`` column ordering the rows (categories in their order).
    vmax
        Colour limit (symmetric); ``None`` uses the 99th percentile of absolute values.
    max_rows
        With more cells than this, consecutive cells of a group are averaged into this many rows
        in all (group sizes stay proportional).

    Returns
    -------
    :class:`matplotlib.figure.Figure` (not saved, not shown).
    """
    import matplotlib.pyplot as plt

    if "X_cnv" not in adata.obsm:
        raise InputError("No CNV profiles found; run infer_cnv first.")
    if groupby not in adata.obs.columns:
        raise InputError(f"obs has no column {groupby!r}.")
    groups = adata.obs[groupby]
    cats = (
        list(groups.cat.categories)
        if isinstance(groups.dtype, pd.CategoricalDtype)
        else sorted(groups.unique())
    )
    code = pd.Categorical(groups, categories=cats).codes
    x, row_code = _binned_rows(adata.obsm["X_cnv"], code, len(cats), max_rows)
    lim = vmax if vmax is not None else float(np.quantile(np.abs(x), 0.99)) or 1.0
    fig, (ax_g, ax) = plt.subplots(
        1, 2, figsize=(12, 6), gridspec_kw={"width_ratios": [1, 40], "wspace": 0.01}, sharey=True
    )
    cmap = plt.get_cmap("tab20")
    ax_g.imshow(
        row_code[:, None] % 20, aspect="auto", cmap=cmap, vmin=0, vmax=19, interpolation="nearest"
    )
    ax_g.set_xticks([])
    bounds = np.r_[0, np.cumsum(np.bincount(row_code, minlength=len(cats)))]
    ax_g.set_yticks((bounds[:-1] + bounds[1:]) / 2, cats)
    ax_g.set_ylabel(groupby)
    im = ax.imshow(x, aspect="auto", cmap="bwr", vmin=-lim, vmax=lim, interpolation="nearest")
    chr_pos = adata.uns["cnv"]["chr_pos"]
    starts = np.array(list(chr_pos.values()), dtype=float)
    ends = np.r_[starts[1:], x.shape[1]]
    ax.vlines(starts[1:] - 0.5, -0.5, x.shape[0] - 0.5, colors="black", lw=0.5)
    ax.hlines(bounds[1:-1] - 0.5, -0.5, x.shape[1] - 0.5, colors="black", lw=0.5)
    ax.set_xticks((starts + ends) / 2 - 0.5, [c.removeprefix("chr") for c in chr_pos], fontsize=7)
    ax.set_yticks([])
    ax.set_xlabel("chromosome")
    fig.colorbar(im, ax=ax, fraction=0.02, pad=0.01, label="log ratio to reference")
    return fig


def plot_no_cnv(text: str):
    """The place of the heatmap when a patient has no copy-number clones: why, in words.

    Returns
    -------
    :class:`matplotlib.figure.Figure` (not saved, not shown).
    """
    from clonetrack.pl._message import message_figure

    return message_figure(text)
