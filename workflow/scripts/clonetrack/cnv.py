"""Copy-number inference from expression (infercnvpy), malignant calls and CNV subclones.

All timepoints of one patient are analysed together, so that CNV clones keep the same name across
time. Normal reference cells (by default marrow lymphocytes, rarely part of the myeloid clone) define
expression without copy-number change.
"""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc
import scipy.sparse as sp

from clonetrack.errors import InputError

_POSITION_COLUMNS = ("gene", "chromosome", "start", "end")


def _record(adata: ad.AnnData, step: str, params: dict) -> None:
    adata.uns.setdefault("clonetrack", {})[step] = params


def load_gene_positions(path: str | PathLike) -> pd.DataFrame:
    """Load a gene-position table (``gene``, ``chromosome``, ``start``, ``end``; tab separated).

    Parameters
    ----------
    path
        Table such as ``resources/genes/hg38_gene_positions.tsv.gz`` (gzip is detected by suffix).

    Returns
    -------
    Data frame indexed by gene symbol with columns ``chromosome``, ``start``, ``end``.
    """
    try:
        table = pd.read_csv(path, sep="\t", dtype={"gene": str, "chromosome": str})
    except (OSError, pd.errors.ParserError) as err:
        raise InputError(f"Gene-position table {path!s} could not be read: {err}") from err
    missing = [c for c in _POSITION_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(
            f"Gene-position table {path!s} lacks column(s) {missing}; expected a header "
            f"{'/'.join(_POSITION_COLUMNS)} (tab separated)."
        )
    dup = table["gene"][table["gene"].duplicated()].unique()
    if len(dup):
        raise InputError(
            f"Gene-position table {path!s} lists {len(dup)} gene(s) more than once "
            f"(e.g. {list(dup[:5])}); keep one row per symbol."
        )
    for col in ("start", "end"):
        if not pd.api.types.is_integer_dtype(table[col]):
            raise InputError(f"Gene-position table {path!s}: column {col!r} must hold integers.")
    return table.set_index("gene")[["chromosome", "start", "end"]]


def add_gene_positions(
    adata: ad.AnnData,
    positions: pd.DataFrame,
    *,
    gene_symbols: str | None = None,
    min_fraction: float = 0.5,
) -> dict:
    """Annotate genes with their genomic position, in the columns infercnvpy expects.

    Sets ``var["chromosome"]`` (categorical), ``var["start"]`` and ``var["end"]`` (nullable
    integers); genes absent from ``positions`` get missing values and are ignored by
    :func:`infer_cnv`.

    Parameters
    ----------
    adata
        Cells x genes.
    positions
        Output of :func:`load_gene_positions`.
    gene_symbols
        ``var`` column holding gene symbols; ``None`` uses ``var_names``.
    min_fraction
        Raise when fewer genes than this fraction have a position (wrong species or identifiers).

    Returns
    -------
    Report with ``n_genes``, ``n_with_position``, ``n_without_position``,
    ``fraction_with_position`` and ``genes_without_position`` (sorted list).
    """
    if gene_symbols is None:
        symbols = pd.Index(adata.var_names.astype(str))
    elif gene_symbols in adata.var.columns:
        symbols = pd.Index(adata.var[gene_symbols].astype(str))
    else:
        raise InputError(f"var has no column {gene_symbols!r}; pass an existing gene-symbol column.")
    hit = symbols.isin(positions.index)
    fraction = float(hit.mean()) if len(symbols) else 0.0
    if fraction < min_fraction:
        raise InputError(
            f"Only {hit.sum()} of {len(symbols)} genes ({fraction:.1%}) have a genomic position; "
            "gene identifiers must be human gene symbols (set gene_symbols= to a symbol column)."
        )
    pos = positions.reindex(symbols)
    chroms = [c for c in pd.unique(positions["chromosome"])]
    adata.var["chromosome"] = pd.Categorical(pos["chromosome"].to_numpy(), categories=chroms)
    adata.var["start"] = pd.array(pos["start"].to_numpy(), dtype="Int64")
    adata.var["end"] = pd.array(pos["end"].to_numpy(), dtype="Int64")
    missing = sorted(symbols[~hit])
    report = {
        "n_genes": int(len(symbols)),
        "n_with_position": int(hit.sum()),
        "n_without_position": int((~hit).sum()),
        "fraction_with_position": fraction,
        "genes_without_position": missing,
    }
    _record(adata, "gene_positions", {k: v for k, v in report.items() if k != "genes_without_position"})
    return report


def _check_lognorm(x) -> None:
    data = x.data if sp.issparse(x) else np.asarray(x)
    if data.size == 0:
        raise InputError("Expression matrix is empty; nothing to infer copy number from.")
    if np.all(np.mod(data[: 100_000], 1) == 0) and data.max() > 30:
        raise InputError(
            "infer_cnv expects log-normalised expression (normalize_total + log1p) but the matrix "
            "holds integer counts; normalise first or pass layer= with log-normalised values."
        )


def _cell_scores(x_cnv) -> np.ndarray:
    """Mean absolute CNV value per cell (infercnvpy's cluster score, per cell)."""
    if sp.issparse(x_cnv):
        return np.asarray(abs(x_cnv).mean(axis=1)).ravel()
    return np.abs(x_cnv).mean(axis=1)


def _merge_similar(profiles: pd.DataFrame, labels: np.ndarray, min_distance: float) -> np.ndarray:
    """Merge clusters whose mean CNV profiles differ by less than ``min_distance`` (RMS).

    Greedy: repeatedly merge the closest pair, recomputing the merged mean weighted by size.
    """
    labels = labels.astype(object).copy()
    while True:
        groups = pd.Series(labels).value_counts()
        if len(groups) < 2:
            return labels
        means = {g: profiles.loc[labels == g].mean(axis=0).to_numpy() for g in groups.index}
        best, pair = np.inf, None
        keys = list(means)
        for i, a in enumerate(keys):
            for b in keys[i + 1 :]:
                d = float(np.sqrt(np.mean((means[a] - means[b]) ** 2)))
                if d < best:
                    best, pair = d, (a, b)
        if best >= min_distance:
            return labels
        a, b = pair
        keep, drop = (a, b) if groups[a] >= groups[b] else (b, a)
        labels[labels == drop] = keep


def infer_cnv(
    adata: ad.AnnData,
    *,
    reference_key: str = "cell_type",
    reference_categories: Sequence[str] = ("T", "CTL", "NK", "B", "Plasma"),
    layer: str | None = None,
    window_size: int = 100,
    step: int = 10,
    exclude_chromosomes: Sequence[str] = ("chrY",),
    dynamic_threshold: float = 1.5,
    n_pcs: int = 20,
    n_neighbors: int = 15,
    resolution: float = 1.0,
    reference_quantile: float = 0.9,
    min_reference_cells: int = 20,
    subclone_resolution: float = 0.5,
    subclone_min_distance: float = 0.02,
    min_subclone_size: int = 10,
    n_jobs: int = 1,
    random_state: int = 0,
) -> None:
    """Infer copy-number profiles, call malignant cells and their CNV subclones.

    Runs :func:`infercnvpy.tl.infercnv` (log fold change to the mean of each reference category,
    smoothed over ``window_size`` genes ordered by position), then PCA, neighbours and Leiden on
    the CNV profiles, and :func:`infercnvpy.tl.cnv_score`. A CNV cluster is called malignant when
    its mean score exceeds the ``reference_quantile`` quantile of the per-cell scores of the
    reference cells (a threshold calibrated on cells assumed normal). Malignant cells are then
    re-clustered on their CNV PCA and clusters whose mean profiles differ by less than
    ``subclone_min_distance`` are merged into subclones ``cnv1``, ``cnv2``, ... (largest first).

    Analyse one patient (all timepoints) at a time, so clones match across time.

    Parameters
    ----------
    adata
        One patient's cells with log-normalised expression in ``X`` (or ``layer``) and gene
        positions from :func:`add_gene_positions`.
    reference_key
        ``obs`` column with cell types.
    reference_categories
        Cell types treated as normal reference; those absent are skipped.
    layer
        Layer with log-normalised expression; ``None`` uses ``X``.
    window_size, step, dynamic_threshold
        Passed to :func:`infercnvpy.tl.infercnv`.
    exclude_chromosomes
        Chromosomes left out. Within a patient, reference and tumour share the sex, so ``chrX`` is
        kept (X loss is recurrent in some AML).
    n_pcs, n_neighbors, resolution
        CNV PCA components, neighbours and Leiden resolution for the CNV clusters.
    reference_quantile
        Quantile of reference-cell scores a cluster's mean score must exceed to be malignant.
    min_reference_cells
        Fewer reference cells than this raise :class:`~clonetrack.errors.InputError`.
    subclone_resolution
        Leiden resolution for subclones among malignant cells.
    subclone_min_distance
        Subclones whose mean CNV profiles differ by less than this (root mean square) are merged.
    min_subclone_size
        Smaller subclones are merged into the closest larger one.
    n_jobs
        Processes for :func:`infercnvpy.tl.infercnv`.
    random_state
        Seed for PCA, neighbours and Leiden.

    Returns
    -------
    Nothing; sets ``obsm["X_cnv"]``, ``obsm["X_cnv_pca"]``, ``uns["cnv"]``, ``obs["cnv_leiden"]``,
    ``obs["cnv_score"]`` (cluster mean), ``obs["cnv_score_cell"]``, ``obs["malignant"]`` (bool),
    ``obs["cnv_clone"]`` (``cnvK`` or ``"normal"``) and ``uns["clonetrack"]["cnv"]``, which holds
    the parameters, the threshold, per-cluster scores and ``detectable``.
    """
    import infercnvpy as cnv

    if reference_key not in adata.obs.columns:
        raise InputError(f"obs has no column {reference_key!r} to find reference cells in.")
    if not {"chromosome", "start", "end"} <= set(adata.var.columns):
        raise InputError("Genes have no positions; run add_gene_positions first.")
    x = adata.X if layer is None else adata.layers[layer]
    _check_lognorm(x)
    ref_cats = [c for c in reference_categories if c in set(adata.obs[reference_key].astype(str))]
    is_ref = adata.obs[reference_key].astype(str).isin(ref_cats).to_numpy()
    if is_ref.sum() < min_reference_cells:
        raise InputError(
            f"Only {is_ref.sum()} reference cells ({reference_key} in {list(reference_categories)}); "
            f"at least {min_reference_cells} are needed to define normal expression."
        )

    # Genes without a position, or never expressed, carry no information.
    expressed = np.asarray((x > 0).sum(axis=0)).ravel() > 0
    keep = adata.var["chromosome"].notna().to_numpy() & expressed
    work = ad.AnnData(
        X=sp.csr_matrix(x[:, keep]) if sp.issparse(x) else np.asarray(x[:, keep]),
        obs=pd.DataFrame({"ref": pd.Categorical(np.where(is_ref, "ref", "other"))}, index=adata.obs_names),
        var=adata.var.loc[keep, ["chromosome", "start", "end"]].astype(
            {"chromosome": str, "start": "int64", "end": "int64"}
        ),
    )
    # Reference categories are passed one by one: infercnvpy then treats expression between the
    # category means as unchanged, absorbing cell-type differences among lymphocytes.
    work.obs["ref_type"] = adata.obs[reference_key].astype(str).to_numpy()
    ref_present = [c for c in ref_cats if (work.obs["ref_type"] == c).sum() > 0]
    cnv.tl.infercnv(
        work,
        reference_key="ref_type",
        reference_cat=ref_present,
        window_size=window_size,
        step=step,
        dynamic_threshold=dynamic_threshold,
        exclude_chromosomes=list(exclude_chromosomes) or None,
        n_jobs=n_jobs,
    )
    n_comp = int(min(n_pcs, work.n_obs - 1, work.obsm["X_cnv"].shape[1] - 1))
    cnv.tl.pca(work, n_comps=n_comp, random_state=random_state)
    cnv.pp.neighbors(work, n_neighbors=n_neighbors, random_state=random_state)
    cnv.tl.leiden(
        work, resolution=resolution, random_state=random_state, flavor="igraph", n_iterations=2,
        directed=False,
    )
    cnv.tl.cnv_score(work)

    cell_score = _cell_scores(work.obsm["X_cnv"])
    threshold = float(np.quantile(cell_score[is_ref], reference_quantile))
    clusters = work.obs["cnv_leiden"].astype(str).to_numpy()
    table = (
        pd.DataFrame({"cluster": clusters, "score": cell_score, "ref": is_ref})
        .groupby("cluster")
        .agg(n_cells=("score", "size"), mean_score=("score", "mean"), frac_reference=("ref", "mean"))
    )
    table["malignant"] = table["mean_score"] > threshold
    malignant = pd.Series(clusters).map(table["malignant"]).to_numpy(dtype=bool) & ~is_ref
    detectable = bool(malignant.any())

    clone = np.full(adata.n_obs, "normal", dtype=object)
    if detectable:
        clone[malignant] = _subclones(
            work[malignant].copy(), n_pcs=n_pcs, n_neighbors=n_neighbors,
            resolution=subclone_resolution, min_distance=subclone_min_distance,
            min_size=min_subclone_size, random_state=random_state,
        )

    adata.obsm["X_cnv"] = work.obsm["X_cnv"]
    adata.obsm["X_cnv_pca"] = work.obsm["X_cnv_pca"]
    adata.uns["cnv"] = work.uns["cnv"]
    adata.uns["cnv_windows"] = _window_table(work.var, work.uns["cnv"]["chr_pos"], window_size, step)
    adata.obs["cnv_leiden"] = pd.Categorical(clusters)
    adata.obs["cnv_score"] = work.obs["cnv_score"].to_numpy()
    adata.obs["cnv_score_cell"] = cell_score
    adata.obs["malignant"] = malignant
    names = sorted(set(clone) - {"normal"}, key=lambda c: int(c[3:])) + ["normal"]
    adata.obs["cnv_clone"] = pd.Categorical(clone, categories=names)
    _record(
        adata,
        "cnv",
        {
            "reference_key": reference_key,
            "reference_categories": list(reference_categories),
            "n_reference_cells": int(is_ref.sum()),
            "layer": layer,
            "window_size": window_size,
            "step": step,
            "exclude_chromosomes": list(exclude_chromosomes),
            "dynamic_threshold": dynamic_threshold,
            "n_pcs": n_comp,
            "n_neighbors": n_neighbors,
            "resolution": resolution,
            "reference_quantile": reference_quantile,
            "score_threshold": threshold,
            "subclone_resolution": subclone_resolution,
            "subclone_min_distance": subclone_min_distance,
            "min_subclone_size": min_subclone_size,
            "random_state": random_state,
            "n_genes_used": int(keep.sum()),
            "detectable": detectable,
            "n_malignant": int(malignant.sum()),
            "clusters": table.reset_index().to_dict(orient="list"),
        },
    )


def _subclones(
    mal: ad.AnnData, *, n_pcs, n_neighbors, resolution, min_distance, min_size, random_state
) -> np.ndarray:
    """Leiden on the CNV PCA of malignant cells, then merge near-identical or tiny subclones."""
    import infercnvpy as cnv

    n = mal.n_obs
    if n < max(2 * min_size, n_neighbors + 1):
        return np.full(n, "cnv1", dtype=object)
    cnv.tl.pca(mal, n_comps=int(min(n_pcs, n - 1, mal.obsm["X_cnv"].shape[1] - 1)), random_state=random_state)
    cnv.pp.neighbors(mal, n_neighbors=n_neighbors, random_state=random_state)
    cnv.tl.leiden(
        mal, resolution=resolution, random_state=random_state, flavor="igraph", n_iterations=2,
        directed=False,
    )
    x = mal.obsm["X_cnv"]
    profiles = pd.DataFrame(x.toarray() if sp.issparse(x) else np.asarray(x))
    labels = _merge_similar(profiles, mal.obs["cnv_leiden"].astype(str).to_numpy(), min_distance)
    # Tiny groups are too few to define a clone: fold each into its nearest remaining group.
    while True:
        counts = pd.Series(labels).value_counts()
        small = counts[counts < min_size]
        if small.empty or len(counts) == 1:
            break
        g = small.index[-1]
        means = {k: profiles.loc[labels == k].mean(axis=0).to_numpy() for k in counts.index}
        others = [k for k in counts.index if k != g]
        nearest = min(others, key=lambda k: np.mean((means[k] - means[g]) ** 2))
        labels[labels == g] = nearest
    order = pd.Series(labels).value_counts().index  # largest first; ties by first appearance
    rename = {old: f"cnv{i + 1}" for i, old in enumerate(order)}
    return np.array([rename[v] for v in labels], dtype=object)


def _window_table(var: pd.DataFrame, chr_pos: dict, window_size: int, step: int) -> pd.DataFrame:
    """First/last gene and span of each infercnvpy window, in the column order of ``X_cnv``."""
    rows = []
    for chrom in chr_pos:  # chr_pos is ordered as the columns of X_cnv
        genes = var[var["chromosome"] == chrom].sort_values("start")
        n = len(genes)
        # Mirrors infercnvpy: a pyramid window every `step` genes, or one window when too few genes.
        spans = [(i, i + window_size) for i in range(0, n - window_size + 1, step)] if window_size < n else [(0, n)]
        for a, b in spans:
            g = genes.iloc[a:b]
            rows.append((chrom, g.index[0], g.index[-1], int(g["start"].min()), int(g["end"].max())))
    return pd.DataFrame(rows, columns=["chromosome", "first_gene", "last_gene", "start", "end"])


def cnv_segments(
    adata: ad.AnnData,
    *,
    clone_key: str = "cnv_clone",
    min_log_ratio: float = 0.03,
    min_windows: int = 3,
) -> pd.DataFrame:
    """Gained and lost segments of each CNV clone.

    A window is altered in a clone when the clone's mean CNV value (log ratio to the reference,
    as smoothed by infercnvpy) exceeds ``min_log_ratio`` in absolute value; consecutive altered
    windows of the same sign on one chromosome form a segment.

    Parameters
    ----------
    adata
        Output of :func:`infer_cnv`.
    clone_key
        ``obs`` column with clones; cells labelled ``"normal"`` are skipped.
    min_log_ratio
        Minimum absolute mean log ratio of an altered window.
    min_windows
        Shorter runs of altered windows are dropped as noise.

    Returns
    -------
    One row per segment: ``clone``, ``chromosome``, ``first_gene``, ``last_gene``, ``start``,
    ``end``, ``n_windows``, ``mean_log_ratio``, ``call`` (``gain``/``loss``).
    """
    if "X_cnv" not in adata.obsm or "cnv_windows" not in adata.uns:
        raise InputError("No CNV profiles found; run infer_cnv first.")
    if clone_key not in adata.obs.columns:
        raise InputError(f"obs has no column {clone_key!r}.")
    windows = pd.DataFrame(adata.uns["cnv_windows"]).reset_index(drop=True)
    x = adata.obsm["X_cnv"]
    labels = adata.obs[clone_key].astype(str).to_numpy()
    out = []
    for clone in sorted(set(labels) - {"normal"}):
        prof = np.asarray(x[labels == clone].mean(axis=0)).ravel()
        sign = np.where(prof > min_log_ratio, 1, np.where(prof < -min_log_ratio, -1, 0))
        run_id = np.cumsum(
            np.r_[True, (sign[1:] != sign[:-1]) | (windows["chromosome"].to_numpy()[1:] != windows["chromosome"].to_numpy()[:-1])]
        )
        for rid in np.unique(run_id[sign != 0]):
            idx = np.flatnonzero(run_id == rid)
            if len(idx) < min_windows:
                continue
            w = windows.iloc[idx]
            out.append(
                {
                    "clone": clone,
                    "chromosome": w["chromosome"].iloc[0],
                    "first_gene": w["first_gene"].iloc[0],
                    "last_gene": w["last_gene"].iloc[-1],
                    "start": int(w["start"].min()),
                    "end": int(w["end"].max()),
                    "n_windows": len(idx),
                    "mean_log_ratio": float(prof[idx].mean()),
                    "call": "gain" if sign[idx[0]] > 0 else "loss",
                }
            )
    cols = ["clone", "chromosome", "first_gene", "last_gene", "start", "end", "n_windows", "mean_log_ratio", "call"]
    return pd.DataFrame(out, columns=cols)


def plot_cnv_heatmap(adata: ad.AnnData, *, groupby: str = "cnv_clone", vmax: float | None = None):
    """Heatmap of ``obsm["X_cnv"]``: cells ordered by ``groupby``, chromosome boundaries marked.

    Parameters
    ----------
    adata
        Output of :func:`infer_cnv`.
    groupby
        ``obs`` column ordering the rows (categories in their order).
    vmax
        Colour limit (symmetric); ``None`` uses the 99th percentile of absolute values.

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
    cats = list(groups.cat.categories) if isinstance(groups.dtype, pd.CategoricalDtype) else sorted(groups.unique())
    code = pd.Categorical(groups, categories=cats).codes
    order = np.argsort(code, kind="stable")
    x = adata.obsm["X_cnv"]
    x = (x.toarray() if sp.issparse(x) else np.asarray(x))[order]
    lim = vmax if vmax is not None else float(np.quantile(np.abs(x), 0.99)) or 1.0
    fig, (ax_g, ax) = plt.subplots(
        1, 2, figsize=(12, 6), gridspec_kw={"width_ratios": [1, 40], "wspace": 0.01}, sharey=True
    )
    cmap = plt.get_cmap("tab20")
    ax_g.imshow(code[order][:, None] % 20, aspect="auto", cmap=cmap, vmin=0, vmax=19, interpolation="nearest")
    ax_g.set_xticks([])
    bounds = np.r_[0, np.cumsum(np.bincount(code[code >= 0], minlength=len(cats)))]
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
