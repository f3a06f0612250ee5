"""Consistency checks of the final object: every cell accounted for, required fields present."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from clonetrack.clones.patient_clones import CELL_COLUMNS

REQUIRED_OBS = (
    "sample_id",
    "patient_id",
    "timepoint",
    "timepoint_order",
    "total_counts",
    "n_genes_by_counts",
    "pct_counts_mt",
    "doublet_score",
    "leiden",
    "cell_type",
    "clone",
    "clone_source",
    "malignant",
)
# The per-cell clone calls of define_clones: one definition for the writer and this reader.
CLONE_COLUMNS = tuple(CELL_COLUMNS)
NUMERIC_CLONE_COLUMNS = ("malignant_probability", "genotype_log_odds", "cnv_log_odds", "cnv_score")
REQUIRED_OBSM = ("X_pca", "X_umap")


def attach_clones(adata: AnnData, clones: pd.DataFrame) -> None:
    """Copy the per-cell clone calls of every patient into ``obs``; every cell must have one."""
    missing = adata.obs_names.difference(clones.index)
    extra = clones.index.difference(adata.obs_names)
    if len(missing) or len(extra):
        raise AssertionError(
            f"clone calls cover {len(clones)} cells; {len(missing)} cells of the object have none "
            f"(e.g. {list(missing[:3])}) and {len(extra)} calls name unknown cells"
        )
    calls = clones.loc[adata.obs_names]
    for column in CLONE_COLUMNS:
        values = calls[column]
        if column == "malignant":
            adata.obs[column] = values.astype(bool).to_numpy()
        elif column in NUMERIC_CLONE_COLUMNS:
            adata.obs[column] = values.astype(float).to_numpy()
        else:
            adata.obs[column] = pd.Categorical(values.fillna("").astype(str).to_numpy())


def check_final(
    adata: AnnData, ledger: pd.DataFrame, *, matrix_shapes: dict[str, tuple] | None = None
) -> None:
    """Raise ``AssertionError`` naming every inconsistency between the object and the QC ledger.

    ``matrix_shapes`` (``X`` and ``counts``, from :func:`clonetrack.io.store.matrix_shape`) stands
    in for matrices kept on disk: ``adata`` may then be the cell metadata alone.
    """
    problems = []
    missing = [c for c in REQUIRED_OBS if c not in adata.obs]
    if missing:
        problems.append(f"obs lacks {missing}")
    embedding = adata.uns.get("clonetrack", {}).get("integrate", {}).get("embedding")
    for key in (*REQUIRED_OBSM, embedding):
        if key and (key not in adata.obsm or adata.obsm[key].shape[0] != adata.n_obs):
            problems.append(f"obsm[{key!r}] missing or of wrong length")
    if matrix_shapes is not None:
        for name in ("X", "counts"):
            shape = matrix_shapes.get(name)
            if shape is None or shape[0] != adata.n_obs or shape != matrix_shapes.get("X"):
                problems.append(
                    f"{name} missing or of wrong shape {shape} for {adata.n_obs} cells "
                    f"(X: {matrix_shapes.get('X')})"
                )
    elif "counts" not in adata.layers:
        problems.append("layers['counts'] missing")
    else:
        counts = adata.layers["counts"]
        data = counts.data if sp.issparse(counts) else np.asarray(counts)
        if counts.shape != adata.shape:
            problems.append("layers['counts'] has the wrong shape")
        if data.size and (data.min() < 0 or not np.all(np.equal(np.mod(data, 1), 0))):
            problems.append("layers['counts'] is not non-negative integers")
    if not adata.obs_names.is_unique:
        problems.append("cell names are not unique")
    kept = ledger.set_index("sample_id")["n_cells_kept"]
    per_sample = adata.obs["sample_id"].astype(str).value_counts()
    for sample_id, n in kept.items():
        if per_sample.get(sample_id, 0) != n:
            problems.append(
                f"sample {sample_id}: {per_sample.get(sample_id, 0)} cells in the object but "
                f"{n} kept by QC"
            )
    if problems:
        raise AssertionError("Final object inconsistent: " + "; ".join(problems))
