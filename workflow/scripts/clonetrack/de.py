"""Pseudobulk differential expression with pydeseq2: the patient is the replicate, not the cell."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

log = logging.getLogger(__name__)

Z_95 = 1.959963984540054


def pseudobulk(
    adata: AnnData,
    *,
    groupby: list[str],
    layer: str | None = "counts",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Sum raw counts over the cells of each combination of ``groupby`` columns.

    Returns
    -------
    counts
        Pseudobulks x genes, integer sums.
    meta
        One row per pseudobulk: the ``groupby`` values and ``n_cells``.
    """
    matrix = adata.layers[layer] if layer else adata.X
    keys = adata.obs[groupby].astype(str)
    group_id = keys.agg("|".join, axis=1)
    codes, names = pd.factorize(group_id, sort=True)
    indicator = sp.csr_matrix(
        (np.ones(adata.n_obs), (codes, np.arange(adata.n_obs))), shape=(len(names), adata.n_obs)
    )
    summed = indicator @ sp.csr_matrix(matrix)
    counts = pd.DataFrame(
        np.rint(summed.toarray()).astype(np.int64), index=names, columns=adata.var_names
    )
    meta = keys.groupby(group_id, sort=True).first()
    meta["n_cells"] = np.bincount(codes, minlength=len(names))
    meta.index.name = "pseudobulk"
    counts.index.name = "pseudobulk"
    return counts, meta


def deseq_contrast(
    counts: pd.DataFrame,
    meta: pd.DataFrame,
    *,
    design: str,
    factor: str,
    level: str,
    reference: str,
    min_total_counts: int = 10,
    random_state: int = 0,
) -> pd.DataFrame:
    """Fit pydeseq2 with ``design`` and test ``factor``: ``level`` vs ``reference``.

    Genes with fewer than ``min_total_counts`` over all pseudobulks are not tested. The returned
    table has log2 fold change with its 95% Wald interval, p and BH-adjusted p.
    """
    from pydeseq2.dds import DeseqDataSet
    from pydeseq2.ds import DeseqStats

    np.random.seed(random_state)
    keep = counts.sum(axis=0) >= min_total_counts
    data = counts.loc[:, keep]
    metadata = meta.copy()
    for column in metadata.columns:
        if column != "n_cells":
            metadata[column] = metadata[column].astype(str)
    with warnings.catch_warnings():
        # pydeseq2 warns when a design has few replicates or genes with all-zero counts in a
        # group; both are expected with pseudobulks and handled by its outlier/zero logic.
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        dds = DeseqDataSet(
            counts=data,
            metadata=metadata,
            design=design,
            refit_cooks=True,
            quiet=True,
            n_cpus=1,
        )
        dds.deseq2()
        stats = DeseqStats(dds, contrast=[factor, level, reference], quiet=True, n_cpus=1)
        stats.summary()
    table = stats.results_df.copy()
    table.index.name = "gene"
    table = table.rename(
        columns={
            "baseMean": "base_mean",
            "log2FoldChange": "log2fc",
            "lfcSE": "log2fc_se",
            "pvalue": "p",
            "padj": "p_adj",
        }
    )
    table["log2fc_ci_low"] = table["log2fc"] - Z_95 * table["log2fc_se"]
    table["log2fc_ci_high"] = table["log2fc"] + Z_95 * table["log2fc_se"]
    return table.reset_index()


def timepoint_de(
    adata: AnnData,
    *,
    cell_type_key: str = "cell_type",
    reference: str = "diagnosis",
    min_cells: int = 10,
    min_patients: int = 2,
    skip_types: tuple[str, ...] = ("unassigned",),
    random_state: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Compare each timepoint with ``reference`` within patients, per cell type.

    Pseudobulks are patient x timepoint x cell type sums of raw counts; those with fewer than
    ``min_cells`` cells are dropped. A contrast is fitted (``~ patient_id + timepoint``) when at
    least ``min_patients`` patients have both timepoints, so each patient is its own control.

    Returns
    -------
    results
        Long table: cell_type, contrast, gene, base_mean, log2fc (+ 95% CI), p, p_adj.
    summary
        One row per cell type x contrast: pseudobulks and patients used, or why it was skipped.
    """
    counts, meta = pseudobulk(adata, groupby=["patient_id", "timepoint", cell_type_key])
    results, summary = [], []
    timepoints = sorted(set(meta["timepoint"]) - {reference})
    for cell_type in sorted(set(meta[cell_type_key]) - set(skip_types)):
        in_type = meta[meta[cell_type_key] == cell_type]
        for level in timepoints:
            pair = in_type[in_type["timepoint"].isin([reference, level])]
            enough = pair[pair["n_cells"] >= min_cells]
            both = enough.groupby("patient_id")["timepoint"].nunique()
            patients = sorted(both.index[both == 2])
            used = enough[enough["patient_id"].isin(patients)]
            row = {
                "cell_type": cell_type,
                "contrast": f"{level}_vs_{reference}",
                "n_pseudobulks_available": len(pair),
                "n_pseudobulks_below_min_cells": int((pair["n_cells"] < min_cells).sum()),
                "n_patients": len(patients),
                "n_cells": int(used["n_cells"].sum()),
            }
            if len(patients) < min_patients:
                row["status"] = (
                    f"skipped: {len(patients)} patient(s) with >= {min_cells} cells at both "
                    f"{reference} and {level}; need {min_patients}"
                )
                summary.append(row)
                continue
            table = deseq_contrast(
                counts.loc[used.index],
                used[["patient_id", "timepoint"]],
                design="~ patient_id + timepoint",
                factor="timepoint",
                level=level,
                reference=reference,
                random_state=random_state,
            )
            table.insert(0, "contrast", row["contrast"])
            table.insert(0, "cell_type", cell_type)
            results.append(table)
            row["status"] = "tested"
            row["n_genes_tested"] = int(table["p"].notna().sum())
            row["n_significant_5pct_fdr"] = int((table["p_adj"] < 0.05).sum())
            summary.append(row)
    columns = [
        "cell_type",
        "contrast",
        "gene",
        "base_mean",
        "log2fc",
        "log2fc_se",
        "log2fc_ci_low",
        "log2fc_ci_high",
        "stat",
        "p",
        "p_adj",
    ]
    results_df = pd.concat(results, ignore_index=True) if results else pd.DataFrame(columns=columns)
    return results_df[columns], pd.DataFrame(summary)
