"""Batch integration of the reduced matrix: Harmony, scVI or none."""

from __future__ import annotations

import numpy as np
from anndata import AnnData

from clonetrack.errors import InputError

EMBEDDING_KEYS = {"harmony": "X_harmony", "scvi": "X_scVI", "none": "X_pca"}


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
