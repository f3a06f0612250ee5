"""Merge samples, normalise, select genes, reduce and integrate across batches."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import scanpy as sc
from anndata import AnnData

from clonetrack.errors import InputError

log = logging.getLogger(__name__)


# Spans of seurat_v3's loess tried in turn (scanpy's default first).
LOESS_SPANS = (0.3, 0.5, 1.0)


def _common_genes(gene_sets: dict[str, pd.Index]) -> tuple[int, int]:
    """Numbers of genes shared by all samples and of genes dropped; refuses no shared gene."""
    sets = {sid: set(genes) for sid, genes in gene_sets.items()}
    common = set.intersection(*sets.values())
    if not common:
        raise InputError(
            "The samples share no gene names ("
            + ", ".join(f"{sid}: {len(g)} genes" for sid, g in sets.items())
            + "). Check that all count files use the same gene identifiers (symbols)."
        )
    return len(common), len(set.union(*sets.values())) - len(common)


def _add_design(merged: AnnData, samples: pd.DataFrame, n_common: int, n_dropped: int) -> None:
    """Attach the sheet's design columns to every cell and record the merge."""
    design = samples.drop(columns=["path", "format", "clones", "lineage_barcodes"], errors="ignore")
    for column in design.columns:
        values = merged.obs["sample_id"].map(design[column]).to_numpy()
        if column == "timepoint_order":
            merged.obs[column] = values.astype(int)
        else:
            merged.obs[column] = pd.Categorical(values.astype(str))
    merged.obs["sample_id"] = pd.Categorical(merged.obs["sample_id"].astype(str))
    merged.uns["clonetrack"] = {
        "merge": {
            "n_samples": int(merged.obs["sample_id"].nunique()),
            "n_genes_common": n_common,
            "n_genes_dropped_not_in_all_samples": n_dropped,
        }
    }


def merge_samples_on_disk(
    paths: dict[str, str], samples: pd.DataFrame, counts_path: str
) -> AnnData:
    """Concatenate QC-passed samples (``.h5ad`` files) on disk into ``counts_path`` (inner join
    on genes); return the merged cells' metadata (obs with the sheet's design columns, var, uns),
    without the matrix.

    Genes measured in some samples only are dropped (their number is recorded); samples sharing
    no genes are refused. No matrix is loaded: at a million cells the counts are about 12 GB.
    """
    from anndata.experimental import concat_on_disk

    from clonetrack.io.store import read_parts, var_names

    n_common, n_dropped = _common_genes({sid: var_names(path) for sid, path in paths.items()})
    # Paths, not strings: with a single sample anndata copies the file and needs Path methods.
    concat_on_disk(
        {sid: Path(path) for sid, path in paths.items()},
        Path(counts_path),
        join="inner",
        label="sample_id",
        merge="same",
    )
    merged = read_parts(counts_path, obsm=False, uns=False)
    _add_design(merged, samples, n_common, n_dropped)
    return merged


def _seurat_v3_batch(counts, var_names: pd.Index, *, n_top_genes: int, span: float) -> pd.DataFrame:
    """scanpy's seurat_v3 statistics of one batch: means, variances and ``variances_norm``."""
    batch = AnnData(X=counts, var=pd.DataFrame(index=var_names))
    table = sc.pp.highly_variable_genes(
        batch, flavor="seurat_v3", n_top_genes=n_top_genes, span=span, inplace=False
    )
    table["n_cells"] = batch.n_obs
    return table[["means", "variances", "variances_norm", "n_cells"]]


def combine_seurat_v3(batches: list[pd.DataFrame], *, n_top_genes: int) -> pd.DataFrame:
    """Highly variable genes from per-batch seurat_v3 statistics, as scanpy combines them.

    Within each batch genes are ranked by normalised variance; the selection sorts by the median
    rank among the batches where a gene is in the top ``n_top_genes`` (then by that number of
    batches), so a gene variable in one batch only does not dominate. Means and variances are
    over all cells (pooled from the batches).
    """
    norm = np.vstack([b["variances_norm"].to_numpy() for b in batches])
    ranks = np.argsort(np.argsort(-norm, axis=1), axis=1).astype(np.float32)
    n_high = (ranks < n_top_genes).sum(axis=0)
    ranks[ranks >= n_top_genes] = np.nan
    median_rank = np.ma.median(np.ma.masked_invalid(ranks), axis=0).filled(np.nan)
    n = np.array([b["n_cells"].iloc[0] for b in batches], dtype=np.float64)[:, None]
    means = np.vstack([b["means"].to_numpy() for b in batches])
    variances = np.vstack([b["variances"].to_numpy() for b in batches])
    total = n.sum()
    mean = (n * means).sum(axis=0) / total
    # pooled variance (ddof=1) from per-batch means and variances
    squares = ((n - 1) * variances + n * means**2).sum(axis=0)
    variance = (squares - total * mean**2) / max(total - 1, 1)
    table = pd.DataFrame(
        {
            "highly_variable_rank": median_rank,
            "means": mean,
            "variances": variance,
            "variances_norm": norm.mean(axis=0),
            "highly_variable_nbatches": n_high,
        },
        index=batches[0].index,
    )
    order = table.sort_values(
        ["highly_variable_rank", "highly_variable_nbatches"],
        ascending=[True, False],
        na_position="last",
    ).index
    table.insert(0, "highly_variable", table.index.isin(order[:n_top_genes]))
    return table


def select_genes_on_disk(
    counts_path: str, obs: pd.DataFrame, *, n_top_genes: int = 2000, batch_key: str | None = None
) -> tuple[pd.DataFrame, dict]:
    """seurat_v3 highly variable genes of the raw counts in ``counts_path``, one batch in memory
    at a time; the same selection as ``sc.pp.highly_variable_genes(flavor="seurat_v3",
    batch_key=...)`` on the whole matrix.

    Returns the var columns and the settings used. The loess fit of seurat_v3 fails in small
    batches (tens to hundreds of cells: a singular or ill-conditioned system), so each batch tries
    the spans 0.3, 0.5 and 1.0 in turn (a wider span smooths the mean-variance trend more). A
    batch that no span can fit does not vote on the ranking (named in ``batches_not_ranked``);
    its cells are still normalised and integrated with the rest.
    """
    from clonetrack.io.store import group_rows, var_names

    genes = var_names(counts_path)
    n_top = min(n_top_genes, len(genes))
    labels = obs[batch_key].astype(str).to_numpy() if batch_key else None
    use_batch = batch_key if labels is not None and len(set(labels)) > 1 else None
    groups = labels if use_batch else np.zeros(len(obs), dtype=int)
    stats, spans, not_ranked = [], {}, []
    for name, counts in group_rows(counts_path, "X", groups):
        table, span = _seurat_v3_widening(counts, genes, n_top_genes=n_top)
        if table is None:
            not_ranked.append(str(name))
            continue
        stats.append(table)
        spans[str(name)] = span
    if not stats:
        raise InputError(
            f"{counts_path}: no batch could be fitted by seurat_v3's mean-variance trend "
            f"({', '.join(not_ranked)}); the samples are too small to choose variable genes"
        )
    table = combine_seurat_v3(stats, n_top_genes=n_top)
    if not use_batch:
        table = table.drop(columns="highly_variable_nbatches")
    settings = {
        "n_top_genes": n_top,
        "batch_key": use_batch,
        "loess_span": spans,
        "batches_not_ranked": ", ".join(not_ranked),
    }
    return table, settings


def _seurat_v3_widening(counts, genes: pd.Index, *, n_top_genes: int):
    """seurat_v3 statistics at the narrowest loess span that fits, or ``(None, None)``."""
    for span in LOESS_SPANS:
        try:
            return _seurat_v3_batch(counts, genes, n_top_genes=n_top_genes, span=span), span
        except (ValueError, np.linalg.LinAlgError) as error:
            # skmisc's loess reports "singularity", "reciprocal condition number" and others
            log.warning("seurat_v3 loess failed at span %s (%s)", span, error)
    return None, None


def normalise_on_disk(
    counts_path: str,
    out_path: str,
    cells: AnnData,
    *,
    target_sum: float = 1e4,
    n_top_genes: int = 2000,
    batch_key: str | None = "sample_id",
    n_pcs: int = 30,
    random_state: int = 0,
) -> AnnData:
    """Write ``out_path``: the counts of ``counts_path`` normalised and logged, with variable
    genes and PCA, for the cells of ``cells`` (its obs, var and uns are carried over).

    Memory is bounded by one batch of raw counts (gene selection) and the variable genes' columns
    of the normalised matrix (PCA): the normalised matrix is written block by block as it is
    computed and never held whole. Per cell, the result equals ``sc.pp.normalize_total``,
    ``sc.pp.log1p`` and ``sc.pp.pca(mask_var="highly_variable")`` on the whole object.

    Returns the written object's metadata (no matrix).
    """
    import scipy.sparse as sp

    from clonetrack.io.store import row_blocks, write_by_rows

    genes, settings = select_genes_on_disk(
        counts_path, cells.obs, n_top_genes=n_top_genes, batch_key=batch_key
    )
    hvg = genes["highly_variable"].to_numpy()
    meta = AnnData(obs=cells.obs, var=cells.var.join(genes), uns=dict(cells.uns))
    variable_columns = []
    with write_by_rows(out_path) as out:
        for block in row_blocks(counts_path, "X"):
            part = AnnData(X=sp.csr_matrix(block))
            sc.pp.normalize_total(part, target_sum=target_sum)
            sc.pp.log1p(part)
            out.append(part.X)
            variable_columns.append(part.X[:, hvg])
        if out.n_obs != meta.n_obs:
            raise RuntimeError(f"{counts_path} holds {out.n_obs} cells, its metadata {meta.n_obs}")
        meta.uns["log1p"] = dict(part.uns["log1p"])
        meta.uns["hvg"] = {"flavor": "seurat_v3"}
        meta.uns.setdefault("clonetrack", {})["normalise"] = {"target_sum": target_sum, **settings}
        # PCA on the variable genes only (sparse, centred implicitly, never densified)
        variable = AnnData(X=sp.vstack(variable_columns, format="csr"))
        del variable_columns
        n_comps = int(min(n_pcs, variable.n_obs - 1, variable.n_vars - 1))
        sc.pp.pca(variable, n_comps=n_comps, random_state=random_state)
        meta.obsm["X_pca"] = variable.obsm["X_pca"]
        loadings = np.zeros((meta.n_vars, n_comps), dtype=variable.varm["PCs"].dtype)
        loadings[hvg] = variable.varm["PCs"]
        meta.varm["PCs"] = loadings
        meta.uns["pca"] = dict(variable.uns["pca"])
        meta.uns["pca"]["params"] = {**meta.uns["pca"]["params"], "mask_var": "highly_variable"}
        meta.uns["clonetrack"]["pca"] = {"n_pcs": n_comps}
        out.finish(meta)
    return meta
