"""Define the clones of one patient, all timepoints together, from the best source each sample has.

Sources, in order of preference per sample: a given clone table, lineage-barcode counts, or
copy-number inference on the patient's expression. Copy-number clones are inferred on all of the
patient's cells at once so that a clone keeps its name across timepoints.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from anndata import AnnData

from . import clones as clone_defs
from .errors import InputError

log = logging.getLogger(__name__)

UNASSIGNED = "unassigned"
CELL_COLUMNS = ["clone", "clone_source", "malignant", "cnv_score", "cnv_clone"]


def define_patient_clones(
    adata: AnnData,
    *,
    patient_id: str,
    clone_tables: dict[str, pd.DataFrame],
    lineage_counts: dict[str, AnnData],
    lineage_params: dict,
    min_confidence: float | None,
    cnv_positions: pd.DataFrame | None,
    cnv_params: dict,
    cnv_reference_samples: tuple[str, ...] = (),
    reference_cells: AnnData | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, AnnData | None]:
    """Label every cell of one patient with a clone, its source and a malignant call.

    Parameters
    ----------
    adata
        The patient's cells (all timepoints), log-normalised ``X``, ``obs`` with ``sample_id``,
        ``barcode`` and ``cell_type``.
    clone_tables
        Per sample id, a clone table (``barcode``, ``clone_id``, optional ``confidence``).
    lineage_counts
        Per sample id, lineage-barcode UMI counts (cells x barcodes, ``obs["barcode"]``).
    lineage_params
        Keyword arguments of :func:`clonetrack.clones.call_lineage_clones`.
    min_confidence
        Minimum confidence for given clone assignments (``None`` keeps all).
    cnv_positions
        Gene positions for copy-number inference; ``None`` disables it.
    cnv_params
        Keyword arguments of :func:`clonetrack.cnv.infer_cnv`.
    cnv_reference_samples
        Samples (e.g. healthy donors or remission marrow known to be normal) whose cells join
        the copy-number reference in addition to the reference cell types.
    reference_cells
        Cells of reference samples of other patients or donors (same genes, log-normalised),
        added to this patient's copy-number reference and left out of every output.

    Returns
    -------
    cells
        One row per input cell: ``clone``, ``clone_source``, ``malignant``, ``cnv_score``,
        ``cnv_clone``.
    report
        One row per sample: source, cells, assigned cells, unmatched table rows and notes.
    unmatched
        Clone-table or lineage rows naming barcodes that are not cells of the sample.
    cnv_adata
        The patient's cells with copy-number results (for the heatmap), or ``None``.
    """
    adata.obs["clone"] = UNASSIGNED
    adata.obs["clone_source"] = "none"
    adata.obs["malignant"] = False
    adata.obs["cnv_score"] = np.nan
    adata.obs["cnv_clone"] = ""
    samples = sorted(adata.obs["sample_id"].astype(str).unique())
    reports, unmatched = [], []

    lineage_samples = [s for s in samples if s in lineage_counts and s not in clone_tables]
    calls = None
    if lineage_samples:
        # One call over the patient's samples, so clone ids are shared across timepoints.
        pooled = []
        for sample_id in lineage_samples:
            counts = lineage_counts[sample_id].copy()
            counts.obs["sample_id"] = sample_id
            counts.obs_names = [f"{sample_id}_{b}" for b in counts.obs["barcode"]]
            pooled.append(counts)
        import anndata as ad

        merged = ad.concat(pooled, join="outer", fill_value=0)
        calls = clone_defs.call_lineage_clones(
            merged, clone_prefix=f"{patient_id}_L", **lineage_params
        )
    for sample_id in samples:
        if sample_id in clone_tables:
            report, rows = clone_defs.assign_given_clones(
                adata, clone_tables[sample_id], sample_id=sample_id, min_confidence=min_confidence
            )
            source = "given"
        elif sample_id in lineage_counts:
            report, rows = clone_defs.attach_lineage_clones(adata, calls, sample_id=sample_id)
            source = "lineage_barcode"
        else:
            continue
        in_sample = (adata.obs["sample_id"] == sample_id).to_numpy()
        assigned = in_sample & (adata.obs["clone"].astype(str) != UNASSIGNED).to_numpy()
        # Barcoded or genotyped clone cells belong to the leukaemia by construction.
        adata.obs.loc[assigned, "malignant"] = True
        reports.append(
            {
                "sample_id": sample_id,
                "source": source,
                "n_cells": int(report["n_cells"]),
                "n_assigned": int(report["n_assigned"]),
                "n_low_confidence": int(report.get("n_low_confidence", 0)),
                "n_table_rows_unmatched": int(report["n_table_rows_unmatched"]),
                "note": "",
            }
        )
        if len(rows):
            unmatched.append(rows.assign(sample_id=sample_id, source=source))

    cnv_samples = [
        s for s in samples if s not in clone_tables and s not in lineage_counts
    ]
    cnv_adata = None
    if cnv_samples and cnv_positions is not None:
        cnv_adata, note = _infer_patient_cnv(
            adata, patient_id, cnv_positions, cnv_params, cnv_reference_samples, reference_cells
        )
        for sample_id in cnv_samples:
            in_sample = (adata.obs["sample_id"] == sample_id).to_numpy()
            if cnv_adata is not None:
                obs = cnv_adata.obs.loc[adata.obs_names[in_sample]]
                malignant = obs["malignant"].astype(bool).to_numpy()
                clone = np.where(
                    malignant, f"{patient_id}_" + obs["cnv_clone"].astype(str), UNASSIGNED
                )
                adata.obs.loc[in_sample, "clone"] = clone
                adata.obs.loc[in_sample, "malignant"] = malignant
                adata.obs.loc[in_sample, "cnv_score"] = obs["cnv_score_cell"].to_numpy()
                adata.obs.loc[in_sample, "cnv_clone"] = obs["cnv_clone"].astype(str).to_numpy()
                adata.obs.loc[in_sample, "clone_source"] = "cnv"
            n_assigned = int((adata.obs.loc[in_sample, "clone"] != UNASSIGNED).sum())
            reports.append(
                {
                    "sample_id": sample_id,
                    "source": "cnv",
                    "n_cells": int(in_sample.sum()),
                    "n_assigned": n_assigned,
                    "n_low_confidence": 0,
                    "n_table_rows_unmatched": 0,
                    "note": note,
                }
            )
    elif cnv_samples:
        for sample_id in cnv_samples:
            reports.append(
                {
                    "sample_id": sample_id,
                    "source": "none",
                    "n_cells": int((adata.obs["sample_id"] == sample_id).sum()),
                    "n_assigned": 0,
                    "n_low_confidence": 0,
                    "n_table_rows_unmatched": 0,
                    "note": "no clone table or lineage barcodes, and clones.infer_cnv is off",
                }
            )
    cells = adata.obs[CELL_COLUMNS].copy()
    cells["clone"] = cells["clone"].astype(str)
    cells["malignant"] = cells["malignant"].astype(bool)
    report_df = pd.DataFrame(reports)
    report_df.insert(0, "patient_id", patient_id)
    unmatched_df = (
        pd.concat(unmatched, ignore_index=True)
        if unmatched
        else pd.DataFrame(columns=["sample_id", "source", "barcode", "clone_id"])
    )
    return cells, report_df, unmatched_df, cnv_adata


def _infer_patient_cnv(
    adata: AnnData,
    patient_id: str,
    positions: pd.DataFrame,
    params: dict,
    reference_samples: tuple[str, ...],
    reference_cells: AnnData | None = None,
) -> tuple[AnnData | None, str]:
    import anndata as ad

    from . import cnv

    work = adata.copy()
    own = work.obs_names
    if reference_cells is not None and reference_cells.n_obs:
        # Healthy cells of other donors widen the reference; they never reach the outputs.
        extra = reference_cells[~reference_cells.obs_names.isin(own)].copy()
        extra.obs["sample_id"] = extra.obs["sample_id"].astype(str)
        work = ad.concat([work, extra], join="inner", merge="same")
        reference_samples = (*reference_samples, *extra.obs["sample_id"].unique())
    cnv.add_gene_positions(work, positions)
    reference_types = tuple(params.get("reference_categories", ()))
    cell_type = work.obs["cell_type"].astype(str)
    # Each reference cell type stays its own category (infercnvpy absorbs differences between
    # reference types); other cells of reference samples form one more category.
    in_reference_sample = work.obs["sample_id"].astype(str).isin(reference_samples).to_numpy()
    is_reference_type = cell_type.isin(reference_types).to_numpy()
    work.obs["cnv_reference"] = np.where(
        is_reference_type,
        cell_type.to_numpy(),
        np.where(in_reference_sample, "reference_sample", "query"),
    )
    categories = list(reference_types) + (["reference_sample"] if in_reference_sample.any() else [])
    options = {k: v for k, v in params.items() if k != "reference_categories"}
    try:
        cnv.infer_cnv(
            work, reference_key="cnv_reference", reference_categories=tuple(categories), **options
        )
    except InputError as error:
        # Too few normal reference cells in this patient: no copy-number clones, said plainly.
        log.warning("patient %s: copy-number inference not possible: %s", patient_id, error)
        return None, f"copy-number inference not possible: {error}"
    detectable = bool(work.uns["clonetrack"]["cnv"].get("detectable", True))
    note = "" if detectable else "no copy-number change separates from the reference cells"
    return work[own].copy(), note
