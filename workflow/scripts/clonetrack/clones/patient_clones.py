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

from clonetrack import clones as clone_defs
from clonetrack.errors import InputError
from clonetrack.vocabulary import CLONE_SOURCES, UNASSIGNED

log = logging.getLogger(__name__)

CELL_COLUMNS = [
    "clone",
    "clone_source",
    "malignant",
    "malignant_probability",
    "malignant_seed",
    "genotype_log_odds",
    "cnv_log_odds",
    "cnv_score",
    "cnv_clone",
    "genotype_clone",
]


# Healthy-sample cells of a type form their own copy-number reference category from this many.
MIN_REFERENCE_CATEGORY_CELLS = 10

SOURCES = CLONE_SOURCES


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
    cnv_off_reason: str = "clones.infer_cnv is off",
    cnv_reference_samples: tuple[str, ...] = (),
    reference_cells: AnnData | None = None,
    genotype_tables: dict[str, pd.DataFrame] | None = None,
    genotype_params: dict | None = None,
    healthy_samples: tuple[str, ...] = (),
    malignant_params: dict | None = None,
    source_precedence: tuple[str, ...] = SOURCES,
    normal_reference: AnnData | None = None,
    random_state: int = 0,
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
        Keyword arguments of :func:`clonetrack.clones.lineage.call_lineage_clones`.
    min_confidence
        Minimum confidence for given clone assignments (``None`` keeps all).
    cnv_positions
        Gene positions for copy-number inference; ``None`` disables it.
    cnv_off_reason
        Why copy number is not inferred when ``cnv_positions`` is ``None`` (the clone-source
        report's note).
    cnv_params
        Keyword arguments of :func:`clonetrack.clones.cnv.infer_cnv`; its ``reference_categories``
        (the lymphoid types) are also the normal seeds of the malignant call.
    cnv_reference_samples
        Samples (e.g. healthy donors) whose cells join the copy-number reference in addition to
        the reference cell types.
    reference_cells
        Cells of reference samples of other patients or donors (same genes, log-normalised),
        added to this patient's copy-number reference and left out of every output.
    genotype_tables
        Per sample id, a genotype table (:func:`clonetrack.clones.genotypes.read_genotype_table`).
    genotype_params
        ``not_malignant_genes``, ``mutant_allele_fraction``, ``error_rate`` and the keyword
        arguments of :func:`clonetrack.clones.genotypes.genotype_clones`.
    healthy_samples
        Samples of healthy donors: every cell is a normal seed.
    malignant_params
        Keyword arguments of :func:`clonetrack.clones.malignant.call_malignant`.
    source_precedence
        Clone sources in order of preference; each sample takes the first it has.
    normal_reference
        Healthy marrow of other donors (log-normalised, ``obs["cell_type"]``): normal seeds in
        the graph of the malignant call, so that the patient's normal myeloid and erythroid cells
        find normal neighbours (lymphocytes alone cannot vouch for them). ``reference_cells``
        join it. Left out of every output.

    Returns
    -------
    cells
        One row per input cell: ``clone``, ``clone_source``, ``malignant`` and the evidence of
        :data:`clonetrack.clones.malignant.EVIDENCE_COLUMNS`, ``cnv_score``, ``cnv_clone``,
        ``genotype_clone``.
    report
        One row per sample: source, cells, assigned cells, malignant cells, unmatched table rows
        and notes.
    unmatched
        Clone-table, lineage or genotype rows naming barcodes that are not cells of the sample.
    cnv_adata
        The patient's cells with copy-number results (for the heatmap), or ``None``.
    """
    from clonetrack.clones import genotypes, malignant

    genotype_tables = genotype_tables or {}
    genotype_params = dict(genotype_params or {})
    adata.obs["clone"] = UNASSIGNED
    adata.obs["clone_source"] = "none"
    adata.obs["malignant"] = False
    adata.obs["cnv_score"] = np.nan
    adata.obs["cnv_clone"] = ""
    samples = sorted(adata.obs["sample_id"].astype(str).unique())
    sample_of = adata.obs["sample_id"].astype(str).to_numpy()
    unmatched = []

    # Copy number over all of the patient's cells: evidence everywhere, clones where chosen.
    cnv_adata, cnv_note = None, cnv_off_reason
    if cnv_positions is not None:
        cnv_adata, cnv_note = _infer_patient_cnv(
            adata, patient_id, cnv_positions, cnv_params, cnv_reference_samples, reference_cells
        )
    malignant_params = dict(malignant_params or {})
    min_separation = malignant_params.pop("min_cnv_separation", 4.0)
    cnv_evidence = np.zeros(adata.n_obs)
    if cnv_adata is not None:
        obs = cnv_adata.obs.loc[adata.obs_names]
        adata.obs["cnv_score"] = obs["cnv_score_cell"].to_numpy()
        adata.obs["cnv_clone"] = obs["cnv_clone"].astype(str).to_numpy()
        full = cnv_adata.uns["clonetrack_cnv_scores"]
        cnv_evidence = (
            pd.Series(
                malignant.cnv_log_odds(
                    full["score"],
                    full["reference"],
                    full["called"],
                    full["cell_type"],
                    min_separation=min_separation,
                ),
                index=full.index,
            )
            .loc[adata.obs_names]
            .to_numpy()
        )

    # Genotypes: evidence of malignancy and clones from variant combinations.
    alt, ref = genotypes.allele_matrices(list(genotype_tables.values()), adata.obs_names)
    for sample_id, table in genotype_tables.items():
        rows = table[~table["obs_name"].isin(adata.obs_names)]
        if len(rows):
            unmatched.append(
                rows[["barcode", "variant"]].assign(sample_id=sample_id, source="genotype")
            )
    informative = genotypes.malignancy_variants(
        alt.columns, genotype_params.pop("not_malignant_genes", ())
    )
    likelihood = {
        k: genotype_params.pop(k)
        for k in ("mutant_allele_fraction", "error_rate")
        if k in genotype_params
    }
    genotype_evidence = genotypes.genotype_log_odds(
        alt[informative], ref[informative], **likelihood
    ).to_numpy()

    # Malignant cells from the combined evidence, all timepoints together.
    normal_types = tuple(cnv_params.get("reference_categories", ()))
    normal_seed = (
        np.isin(sample_of, healthy_samples)
        | adata.obs["cell_type"].astype(str).isin(normal_types).to_numpy()
    )
    evidence = pd.DataFrame(
        {"genotype_log_odds": genotype_evidence, "cnv_log_odds": cnv_evidence},
        index=adata.obs_names,
    )
    normal_cells = [r for r in (normal_reference, reference_cells) if r is not None and r.n_obs]
    embedding = _joint_embedding(adata, normal_cells, random_state=random_state)
    n_extra = embedding.shape[0] - adata.n_obs
    extra = pd.DataFrame(
        0.0, index=[f"reference_{i}" for i in range(n_extra)], columns=evidence.columns
    )
    called, malignant_note = malignant.call_malignant(
        embedding,
        normal_seed=np.r_[normal_seed, np.ones(n_extra, bool)],
        evidence=pd.concat([evidence, extra]),
        **malignant_params,
    )
    called = called.iloc[: adata.n_obs]
    for column in malignant.EVIDENCE_COLUMNS:
        adata.obs[column] = called[column].to_numpy()

    # Genotype clones are subclones of the leukaemia: only malignant cells are clustered (normal
    # cells, with wild-type reads only, would otherwise claim a component of their own).
    leukaemic = adata.obs["malignant"].astype(bool).to_numpy()
    genotype_clone, _ = genotypes.genotype_clones(
        alt[leukaemic],
        ref[leukaemic],
        patient_id=patient_id,
        random_state=random_state,
        **genotype_params,
    )
    adata.obs["genotype_clone"] = genotype_clone.reindex(
        adata.obs_names, fill_value=UNASSIGNED
    ).to_numpy()

    lineage_calls = _pooled_lineage_calls(patient_id, lineage_counts, clone_tables, lineage_params)
    available = {
        "given": set(clone_tables),
        "lineage_barcode": set(lineage_counts),
        "genotype": set(genotype_tables),
        "cnv": set(samples) if cnv_adata is not None else set(),
    }
    reports = []
    for sample_id in samples:
        in_sample = sample_of == sample_id
        source = next((s for s in source_precedence if sample_id in available[s]), "none")
        n_low, n_rows_unmatched, note = 0, 0, ""
        if source == "given":
            report, rows = clone_defs.assign_given_clones(
                adata, clone_tables[sample_id], sample_id=sample_id, min_confidence=min_confidence
            )
        elif source == "lineage_barcode":
            report, rows = clone_defs.attach_lineage_clones(
                adata, lineage_calls, sample_id=sample_id
            )
        else:
            report, rows = {}, []
        if source in ("given", "lineage_barcode"):
            assigned = in_sample & (adata.obs["clone"].astype(str) != UNASSIGNED).to_numpy()
            # Barcoded or tabled clone cells belong to the leukaemia by construction.
            adata.obs.loc[assigned, "malignant"] = True
            n_low = int(report.get("n_low_confidence", 0))
            n_rows_unmatched = int(report["n_table_rows_unmatched"])
            if n_rows_unmatched:
                note = f"{n_rows_unmatched} rows name no cell kept by QC (unmatched_rows.tsv)"
            if len(rows):
                unmatched.append(rows.assign(sample_id=sample_id, source=source))
        elif source in ("genotype", "cnv"):
            column = "genotype_clone" if source == "genotype" else "cnv_clone"
            label = adata.obs.loc[in_sample, column].astype(str).to_numpy()
            has_clone = adata.obs.loc[in_sample, "malignant"].to_numpy() & ~np.isin(
                label, [UNASSIGNED, "normal", ""]
            )
            if source == "cnv":
                label = np.char.add(f"{patient_id}_", label.astype(str))
            adata.obs.loc[in_sample, "clone"] = np.where(has_clone, label, UNASSIGNED)
            note = cnv_note if source == "cnv" else ""
        else:
            note = "no clone table, lineage barcodes or genotypes, and no copy-number clones" + (
                f" ({cnv_note})" if cnv_note else ""
            )
        adata.obs.loc[in_sample, "clone_source"] = source
        # copy number is evidence of malignancy for every sample: say why it is missing
        cnv_skipped = (
            f"copy number: {cnv_note}"
            if cnv_adata is None and cnv_note and cnv_note not in note
            else ""
        )
        reports.append(
            {
                "sample_id": sample_id,
                "source": source,
                "n_cells": int(in_sample.sum()),
                "n_assigned": int((adata.obs.loc[in_sample, "clone"] != UNASSIGNED).sum()),
                "n_malignant": int(adata.obs.loc[in_sample, "malignant"].astype(bool).sum()),
                "n_low_confidence": n_low,
                "n_table_rows_unmatched": n_rows_unmatched,
                "note": "; ".join(n for n in (note, malignant_note, cnv_skipped) if n),
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


def _pooled_lineage_calls(patient_id, lineage_counts, clone_tables, lineage_params):
    """One lineage call over the patient's samples, so clone ids are shared across timepoints."""
    import anndata as ad

    pooled = []
    for sample_id in sorted(s for s in lineage_counts if s not in clone_tables):
        counts = lineage_counts[sample_id].copy()
        counts.obs["sample_id"] = sample_id
        counts.obs_names = [f"{sample_id}_{b}" for b in counts.obs["barcode"]]
        pooled.append(counts)
    if not pooled:
        return None
    merged = ad.concat(pooled, join="outer", fill_value=0)
    return clone_defs.call_lineage_clones(merged, clone_prefix=f"{patient_id}_L", **lineage_params)


def _joint_embedding(
    adata: AnnData, normal: list[AnnData], *, n_pcs: int = 20, random_state: int = 0
) -> np.ndarray:
    """PCA of the patient's cells followed by those of ``normal`` (healthy marrow), on genes
    variable within each of the two (``seurat`` flavour, log-normalised ``X``)."""
    import anndata as ad
    import scanpy as sc

    parts = [AnnData(X=adata.X, var=pd.DataFrame(index=adata.var_names))]
    for other in normal:
        genes = adata.var_names.intersection(other.var_names)
        part = AnnData(X=other[:, genes].X, var=pd.DataFrame(index=genes))
        parts.append(part)
    origin = np.repeat(["patient", *["normal"] * len(normal)], [p.n_obs for p in parts])
    work = ad.concat(parts, join="outer", fill_value=0) if len(parts) > 1 else parts[0].copy()
    work = work[:, adata.var_names].copy() if len(parts) > 1 else work
    work.obs_names = [f"c{i}" for i in range(work.n_obs)]
    work.obs["origin"] = origin
    n_genes = min(2000, work.n_vars)
    batch = "origin" if len(set(origin)) > 1 else None
    sc.pp.highly_variable_genes(work, n_top_genes=n_genes, flavor="seurat", batch_key=batch)
    work = work[:, work.var["highly_variable"]].copy()
    if hasattr(work.X, "toarray"):
        # variable genes only: 2,000 dense columns (about 240 MB at 30,000 cells)
        work.X = work.X.toarray()
    sc.pp.scale(work, max_value=10)
    n_comps = int(max(1, min(n_pcs, work.n_obs - 1, work.n_vars - 1)))
    sc.pp.pca(work, n_comps=n_comps, random_state=random_state)
    return work.obsm["X_pca"]


def _infer_patient_cnv(
    adata: AnnData,
    patient_id: str,
    positions: pd.DataFrame,
    params: dict,
    reference_samples: tuple[str, ...],
    reference_cells: AnnData | None = None,
) -> tuple[AnnData | None, str]:
    import anndata as ad

    from clonetrack.clones import cnv

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
    # reference categories). Cells of reference samples (healthy marrow) form one category per
    # cell type, so that normal monocytes, erythroid cells or progenitors of the patient are
    # compared with their own kind: against lymphocytes alone, their expression (e.g. a monocyte
    # programme clustered on one chromosome arm) reads as a copy-number change.
    in_reference_sample = work.obs["sample_id"].astype(str).isin(reference_samples).to_numpy()
    is_reference_type = cell_type.isin(reference_types).to_numpy()
    healthy_type = np.where(in_reference_sample, "healthy_" + cell_type.to_numpy(), "")
    counts = pd.Series(healthy_type[in_reference_sample]).value_counts()
    large = set(counts.index[counts >= MIN_REFERENCE_CATEGORY_CELLS])
    healthy_type = np.where(np.isin(healthy_type, list(large)), healthy_type, "reference_sample")
    work.obs["cnv_reference"] = np.where(
        is_reference_type,
        cell_type.to_numpy(),
        np.where(in_reference_sample, healthy_type, "query"),
    )
    categories = list(reference_types) + sorted(
        set(work.obs["cnv_reference"][in_reference_sample & ~is_reference_type])
    )
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
    result = work[own].copy()
    # Scores of every cell, reference included, for the evidence of the malignant call.
    result.uns["clonetrack_cnv_scores"] = pd.DataFrame(
        {
            "score": work.obs["cnv_consensus_score"].to_numpy(),
            "reference": (work.obs["cnv_reference"] != "query").to_numpy(),
            "called": work.obs["malignant"].astype(bool).to_numpy(),
            "cell_type": work.obs["cell_type"].astype(str).to_numpy(),
        },
        index=work.obs_names,
    )
    return result, note
