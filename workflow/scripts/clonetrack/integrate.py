"""Merge samples, normalise, select genes, reduce and integrate across batches."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc
from anndata import AnnData

from .errors import InputError

EMBEDDING_KEYS = {"harmony": "X_harmony", "scvi": "X_scVI", "none": "X_pca"}


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
    on genes), read the result and attach the sheet's design columns.

    Genes measured in some samples only are dropped (their number is recorded); samples sharing
    no genes are refused. Only the result is ever in memory, never the samples beside it: at a
    million cells each copy of the matrix is about 12 GB.
    """
    from anndata.experimental import concat_on_disk

    from .store import var_names

    n_common, n_dropped = _common_genes({sid: var_names(path) for sid, path in paths.items()})
    concat_on_disk(paths, counts_path, join="inner", label="sample_id", merge="same")
    merged = ad.read_h5ad(counts_path)
    _add_design(merged, samples, n_common, n_dropped)
    return merged


def normalise_and_select(
    adata: AnnData,
    *,
    target_sum: float = 1e4,
    n_top_genes: int = 2000,
    batch_key: str | None = "sample_id",
    keep_counts: bool = True,
) -> None:
    """Flag variable genes on raw counts, then normalise and log ``X`` in place.

    Highly variable genes use seurat_v3 on raw counts, ranked within each batch and combined, so a
    gene that varies only because of a batch does not dominate. With ``keep_counts`` the raw
    counts are first copied to ``layers["counts"]``; without, the caller keeps them elsewhere (on
    disk) and only one matrix is ever held.
    """
    if keep_counts:
        adata.layers["counts"] = adata.X.copy()
    n_top = min(n_top_genes, adata.n_vars)
    batches = adata.obs[batch_key] if batch_key else None
    use_batch = batch_key if batches is not None and batches.nunique() > 1 else None
    # The loess fit of seurat_v3 can be singular in small batches (a hundred cells); a wider
    # span smooths the mean-variance trend more and resolves it.
    for span in (0.3, 0.5, 1.0):
        try:
            sc.pp.highly_variable_genes(
                adata,
                flavor="seurat_v3",
                n_top_genes=n_top,
                batch_key=use_batch,
                span=span,
            )
            break
        except ValueError as error:
            if "singularit" not in str(error) or span == 1.0:
                raise
    sc.pp.normalize_total(adata, target_sum=target_sum)
    sc.pp.log1p(adata)
    adata.uns.setdefault("clonetrack", {})["normalise"] = {
        "target_sum": target_sum,
        "n_top_genes": n_top,
        "batch_key": use_batch,
        "loess_span": span,
    }


def run_pca(adata: AnnData, *, n_pcs: int = 30, random_state: int = 0) -> None:
    """PCA on highly variable genes of the log-normalised data (sparse, never densified)."""
    n_comps = int(min(n_pcs, adata.n_obs - 1, int(adata.var["highly_variable"].sum()) - 1))
    # mask_var subsets to HVGs first; sparse input is centred implicitly, never densified.
    sc.pp.pca(adata, n_comps=n_comps, mask_var="highly_variable", random_state=random_state)
    adata.uns.setdefault("clonetrack", {})["pca"] = {"n_pcs": n_comps}


def run_harmony(
    adata: AnnData,
    *,
    batch_key: str = "sample_id",
    theta: float = 2.0,
    max_iter: int = 20,
    random_state: int = 0,
    key_added: str = "X_harmony",
) -> None:
    """Harmony on ``obsm["X_pca"]``, calling harmonypy directly (its output is cells x PCs)."""
    import harmonypy

    pcs = np.asarray(adata.obsm["X_pca"], dtype=np.float64)
    result = harmonypy.run_harmony(
        pcs,
        adata.obs[[batch_key]],
        [batch_key],
        theta=theta,
        max_iter_harmony=max_iter,
        random_state=random_state,
        verbose=False,
    )
    corrected = np.asarray(result.Z_corr)
    # harmonypy 0.0.x returned PCs x cells, 2.x returns cells x PCs: orient by shape.
    if corrected.shape != pcs.shape:
        corrected = corrected.T
    if corrected.shape != pcs.shape:
        raise RuntimeError(f"Harmony returned shape {corrected.shape}, expected {pcs.shape}")
    adata.obsm[key_added] = corrected.astype(np.float32)
    adata.uns.setdefault("clonetrack", {})["integrate"] = {
        "method": "harmony",
        "batch_key": batch_key,
        "theta": theta,
        "max_iter": max_iter,
        "embedding": key_added,
    }


def run_scvi(
    adata: AnnData,
    *,
    batch_key: str = "sample_id",
    n_latent: int = 20,
    max_epochs: int | None = None,
    random_state: int = 0,
    accelerator: str = "auto",
    key_added: str = "X_scVI",
) -> None:
    """scVI on raw counts of the highly variable genes; the latent mean goes to ``obsm``."""
    import scvi

    scvi.settings.seed = random_state
    hvg = adata[:, adata.var["highly_variable"].to_numpy()].copy()
    scvi.model.SCVI.setup_anndata(hvg, layer="counts", batch_key=batch_key)
    model = scvi.model.SCVI(hvg, n_latent=n_latent)
    model.train(max_epochs=max_epochs, accelerator=accelerator, enable_progress_bar=False)
    adata.obsm[key_added] = np.asarray(model.get_latent_representation(), dtype=np.float32)
    adata.uns.setdefault("clonetrack", {})["integrate"] = {
        "method": "scvi",
        "batch_key": batch_key,
        "n_latent": n_latent,
        "max_epochs": max_epochs,
        "embedding": key_added,
    }


def integrate(adata: AnnData, *, method: str, batch_key: str, random_state: int = 0, **options):
    """Dispatch to the configured integration method; records which embedding to use downstream."""
    if batch_key not in adata.obs:
        raise InputError(
            f"integration.batch_key '{batch_key}' is not a column of the cells' metadata; "
            f"choose one of {sorted(adata.obs.columns)} (sheet columns are available)."
        )
    if method == "harmony":
        run_harmony(adata, batch_key=batch_key, random_state=random_state, **options)
    elif method == "scvi":
        run_scvi(adata, batch_key=batch_key, random_state=random_state, **options)
    elif method == "none":
        adata.uns.setdefault("clonetrack", {})["integrate"] = {
            "method": "none",
            "batch_key": batch_key,
            "embedding": "X_pca",
        }
    else:
        raise InputError(f"integration.method '{method}' is not one of harmony, scvi, none.")
    return adata.uns["clonetrack"]["integrate"]["embedding"]
