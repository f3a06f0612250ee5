"""Define the clones of one patient, all timepoints together, from the best source each sample has.

Sources, in order of preference per sample: a given clone table, lineage-barcode counts,
genotypes, or copy number (inferred beforehand on the patient's expression,
:func:`clonetrack.clones.cnv.infer_patient_cnv`). Copy-number clones are inferred on all of the
patient's cells at once so that a clone keeps its name across timepoints. Each source is an entry
of :data:`CLONE_SOURCE_REGISTRY`, keyed by the names of :data:`clonetrack.vocabulary.CLONE_SOURCES`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pandas as pd
from anndata import AnnData

from clonetrack import clones as clone_defs
from clonetrack.clones import genotypes, malignant
from clonetrack.clones.cnv import NormalReference, PatientCnv
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

SOURCES = CLONE_SOURCES


def define_patient_clones(
    adata: AnnData,
    *,
    patient_id: str,
    clone_tables: dict[str, pd.DataFrame],
    lineage_counts: dict[str, AnnData],
    lineage_params: dict,
    min_confidence: float | None,
    copy_number: PatientCnv,
    reference: NormalReference | None = None,
    reference_cells: AnnData | None = None,
    genotype_tables: dict[str, pd.DataFrame] | None = None,
    genotype_params: dict | None = None,
    malignant_params: dict | None = None,
    source_precedence: tuple[str, ...] = SOURCES,
    normal_reference: AnnData | None = None,
    random_state: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Label every cell of one patient with a clone, its source and a malignant call.

    Parameters
    ----------
    adata
        The patient's cells (all timepoints), log-normalised ``X``, ``obs`` with ``sample_id``,
        ``barcode`` and ``cell_type``.
    clone_tables
        Per sample id, a clone table (``barcode``, ``clone_id``, optional ``confidence``).
    lineage_counts, lineage_params
        Per sample id, lineage-barcode UMI counts (cells x barcodes, ``obs["barcode"]``), and the
        keyword arguments of :func:`clonetrack.clones.lineage.call_lineage_clones`.
    min_confidence
        Minimum confidence for given clone assignments (``None`` keeps all).
    copy_number
        The patient's copy number (:func:`clonetrack.clones.cnv.infer_patient_cnv`): evidence for
        every cell, clones where a sample takes them, and why there are none (its note).
    reference
        Which cells are normal: healthy samples' cells and reference cell types are the normal
        seeds of the malignant call (``None``: the default reference cell types).
    genotype_tables
        Per sample id, a genotype table (:func:`clonetrack.clones.genotypes.read_genotype_table`).
    genotype_params
        ``not_malignant_genes``, ``mutant_allele_fraction``, ``error_rate`` and the keyword
        arguments of :func:`clonetrack.clones.genotypes.genotype_clones`.
    malignant_params
        ``min_cnv_separation`` (:func:`clonetrack.clones.malignant.cnv_log_odds`) and the keyword
        arguments of :func:`clonetrack.clones.malignant.call_malignant`.
    source_precedence
        Clone sources in order of preference; each sample takes the first it has.
    reference_cells, normal_reference
        Cells of reference samples of other patients or donors (same genes), and healthy marrow
        of other donors, log-normalised: normal seeds in the malignant call's graph, so that the
        patient's normal myeloid and erythroid cells find normal neighbours (lymphocytes alone
        cannot vouch for them). Left out of every output.

    Returns
    -------
    cells
        One row per input cell: ``clone``, ``clone_source``, ``cnv_score``, ``cnv_clone``,
        ``genotype_clone`` and :data:`clonetrack.clones.malignant.EVIDENCE_COLUMNS`.
    report, unmatched
        One row per sample (source, cells, assigned, malignant, unmatched table rows, notes), and
        the clone-table, lineage or genotype rows naming barcodes that are not cells of the sample.
    """
    genotype_tables = genotype_tables or {}
    normal_seed = (reference or NormalReference()).normal_seeds(adata.obs)
    alt, ref, clone_params, unmatched, malignant_note = _evidence_and_malignant_cells(
        adata, copy_number, genotype_tables, genotype_params, dict(malignant_params or {}),
        normal_seed=normal_seed,
        normal_cells=[r for r in (normal_reference, reference_cells) if r is not None and r.n_obs],
        random_state=random_state,
    )  # fmt: skip
    _genotype_clone_column(adata, alt, ref, patient_id, clone_params, random_state)
    lineage_calls = _pooled_lineage_calls(patient_id, lineage_counts, clone_tables, lineage_params)
    call = _PatientCall(
        adata, patient_id, clone_tables, lineage_counts, lineage_calls, genotype_tables,
        min_confidence, copy_number, unmatched,
    )  # fmt: skip
    reports = [
        _sample_report(call, sample_id, source_precedence, malignant_note)
        for sample_id in sorted(adata.obs["sample_id"].astype(str).unique())
    ]
    return _outputs(adata, patient_id, reports, call.unmatched)


# ------------------------------------------------------------------ the clone sources


@dataclass
class _PatientCall:
    """One patient's cells and clone sources, as the per-sample assignment reads them."""

    adata: AnnData
    patient_id: str
    clone_tables: dict[str, pd.DataFrame]
    lineage_counts: dict[str, AnnData]
    lineage_calls: pd.DataFrame | None
    genotype_tables: dict[str, pd.DataFrame]
    min_confidence: float | None
    copy_number: PatientCnv
    unmatched: list[pd.DataFrame] = field(default_factory=list)

    @property
    def samples(self) -> set[str]:
        return set(self.adata.obs["sample_id"].astype(str))


class _Assigned(NamedTuple):
    """What a source did to one sample: low-confidence cells, table rows naming no cell (and
    the rows), and a note."""

    n_low: int = 0
    n_rows_unmatched: int = 0
    note: str = ""
    unmatched: pd.DataFrame | None = None


@dataclass(frozen=True)
class CloneSource:
    """A clone source: which samples of a patient have it, and how it labels a sample's cells."""

    #: The samples of the patient that have this source.
    samples: Callable[[_PatientCall], set[str]]
    #: Sets ``obs["clone"]`` of one sample's cells (``call, sample_id, in_sample``).
    assign: Callable[[_PatientCall, str, np.ndarray], _Assigned]


def _tabled(call, sample_id, in_sample, source, report, rows) -> _Assigned:
    """A given table's or lineage barcodes' clones: their cells belong to the leukaemia by
    construction."""
    adata = call.adata
    assigned = in_sample & (adata.obs["clone"].astype(str) != UNASSIGNED).to_numpy()
    adata.obs.loc[assigned, "malignant"] = True
    n_rows_unmatched = int(report["n_table_rows_unmatched"])
    note = ""
    if n_rows_unmatched:
        note = f"{n_rows_unmatched} rows name no cell kept by QC (unmatched_rows.tsv)"
    rows = rows.assign(sample_id=sample_id, source=source) if len(rows) else None
    return _Assigned(int(report.get("n_low_confidence", 0)), n_rows_unmatched, note, rows)


def _assign_given(call, sample_id, in_sample) -> _Assigned:
    report, rows = clone_defs.assign_given_clones(
        call.adata,
        call.clone_tables[sample_id],
        sample_id=sample_id,
        min_confidence=call.min_confidence,
    )
    return _tabled(call, sample_id, in_sample, "given", report, rows)


def _assign_lineage(call, sample_id, in_sample) -> _Assigned:
    report, rows = clone_defs.attach_lineage_clones(
        call.adata, call.lineage_calls, sample_id=sample_id
    )
    return _tabled(call, sample_id, in_sample, "lineage_barcode", report, rows)


def _clones_of_malignant_cells(call, in_sample, column, prefix="") -> None:
    """A sample's malignant cells take their clone from ``column`` (prefixed)."""
    adata = call.adata
    label = adata.obs.loc[in_sample, column].astype(str).to_numpy()
    has_clone = adata.obs.loc[in_sample, "malignant"].to_numpy() & ~np.isin(
        label, [UNASSIGNED, "normal", ""]
    )
    if prefix:
        label = np.char.add(prefix, label.astype(str))
    adata.obs.loc[in_sample, "clone"] = np.where(has_clone, label, UNASSIGNED)


def _assign_genotype(call, sample_id, in_sample) -> _Assigned:
    _clones_of_malignant_cells(call, in_sample, "genotype_clone")
    return _Assigned()


def _assign_cnv(call, sample_id, in_sample) -> _Assigned:
    _clones_of_malignant_cells(call, in_sample, "cnv_clone", prefix=f"{call.patient_id}_")
    return _Assigned(note=call.copy_number.note)


#: Every clone source by its name in :data:`clonetrack.vocabulary.CLONE_SOURCES`: a new source
#: joins here (and in the vocabulary); ``clones.source_precedence`` orders them.
CLONE_SOURCE_REGISTRY: dict[str, CloneSource] = {
    "given": CloneSource(lambda call: set(call.clone_tables), _assign_given),
    "lineage_barcode": CloneSource(lambda call: set(call.lineage_counts), _assign_lineage),
    "genotype": CloneSource(lambda call: set(call.genotype_tables), _assign_genotype),
    "cnv": CloneSource(
        lambda call: call.samples if call.copy_number.inferred else set(), _assign_cnv
    ),
}


def _sample_report(call: _PatientCall, sample_id: str, precedence, malignant_note: str) -> dict:
    """Clones of one sample from the first source it has; its row of the source report."""
    adata, cnv_note = call.adata, call.copy_number.note
    in_sample = (adata.obs["sample_id"].astype(str) == sample_id).to_numpy()
    source = next(
        (s for s in precedence if sample_id in CLONE_SOURCE_REGISTRY[s].samples(call)), "none"
    )
    if source == "none":
        done = _Assigned(
            note="no clone table, lineage barcodes or genotypes, and no copy-number clones"
            + (f" ({cnv_note})" if cnv_note else "")
        )
    else:
        done = CLONE_SOURCE_REGISTRY[source].assign(call, sample_id, in_sample)
    if done.unmatched is not None:
        call.unmatched.append(done.unmatched)
    adata.obs.loc[in_sample, "clone_source"] = source
    # copy number is evidence of malignancy for every sample: say why it is missing
    cnv_skipped = (
        f"copy number: {cnv_note}"
        if not call.copy_number.inferred and cnv_note and cnv_note not in done.note
        else ""
    )
    return {
        "sample_id": sample_id,
        "source": source,
        "n_cells": int(in_sample.sum()),
        "n_assigned": int((adata.obs.loc[in_sample, "clone"] != UNASSIGNED).sum()),
        "n_malignant": int(adata.obs.loc[in_sample, "malignant"].astype(bool).sum()),
        "n_low_confidence": done.n_low,
        "n_table_rows_unmatched": done.n_rows_unmatched,
        "note": "; ".join(n for n in (done.note, malignant_note, cnv_skipped) if n),
    }


# ------------------------------------------------------------------ evidence and outputs


def _start_columns(adata: AnnData) -> None:
    adata.obs["clone"] = UNASSIGNED
    adata.obs["clone_source"] = "none"
    adata.obs["malignant"] = False
    adata.obs["cnv_score"] = np.nan
    adata.obs["cnv_clone"] = ""


def _copy_number_columns(adata: AnnData, copy_number: PatientCnv, min_separation) -> np.ndarray:
    """The patient's copy-number score and clone per cell; returns the copy-number evidence of
    malignancy (judged against every normal cell of the run, other samples' included)."""
    if not copy_number.inferred:
        return np.zeros(adata.n_obs)
    run = copy_number.cells
    own = run.loc[adata.obs_names]
    adata.obs["cnv_score"] = own["cnv_score_cell"].to_numpy()
    adata.obs["cnv_clone"] = own["cnv_clone"].astype(str).to_numpy()
    log_odds = malignant.cnv_log_odds(
        run["score"],
        run["reference"],
        run["called"],
        run["cell_type"],
        min_separation=min_separation,
    )
    return pd.Series(log_odds, index=run.index).loc[adata.obs_names].to_numpy()


def _genotype_evidence(adata: AnnData, tables: dict, params: dict | None):
    """Allele matrices of the patient's cells, their log-odds of malignancy, the settings left for
    the genotype clones, and the rows naming no cell."""
    params = dict(params or {})
    alt, ref = genotypes.allele_matrices(list(tables.values()), adata.obs_names)
    unmatched = [
        rows[["barcode", "variant"]].assign(sample_id=sample_id, source="genotype")
        for sample_id, table in tables.items()
        if len(rows := table[~table["obs_name"].isin(adata.obs_names)])
    ]
    informative = genotypes.malignancy_variants(alt.columns, params.pop("not_malignant_genes", ()))
    likelihood = {k: params.pop(k) for k in ("mutant_allele_fraction", "error_rate") if k in params}
    evidence = genotypes.genotype_log_odds(alt[informative], ref[informative], **likelihood)
    return alt, ref, evidence.to_numpy(), params, unmatched


def _evidence_and_malignant_cells(
    adata, copy_number, genotype_tables, genotype_params, malignant_params, *, normal_seed,
    normal_cells, random_state,
):  # fmt: skip
    """Copy-number and genotype evidence, then the malignant call from both; returns the allele
    matrices, the genotype clones' settings, unmatched genotype rows and the call's note."""
    _start_columns(adata)
    min_separation = malignant_params.pop("min_cnv_separation", 4.0)
    cnv_evidence = _copy_number_columns(adata, copy_number, min_separation)
    alt, ref, genotype_evidence, clone_params, unmatched = _genotype_evidence(
        adata, genotype_tables, genotype_params
    )
    evidence = pd.DataFrame(
        {"genotype_log_odds": genotype_evidence, "cnv_log_odds": cnv_evidence},
        index=adata.obs_names,
    )
    note = _call_malignant_cells(
        adata,
        evidence,
        normal_seed=normal_seed,
        normal_cells=normal_cells,
        params=malignant_params,
        random_state=random_state,
    )
    return alt, ref, clone_params, unmatched, note


def _call_malignant_cells(
    adata, evidence, *, normal_seed, normal_cells, params, random_state
) -> str:
    """Malignant cells from the combined evidence, all timepoints together, with the normal cells
    of other donors in the graph (seeds, never in the output); returns the call's note."""
    embedding = _joint_embedding(adata, normal_cells, random_state=random_state)
    n_extra = embedding.shape[0] - adata.n_obs
    extra = pd.DataFrame(
        0.0, index=[f"reference_{i}" for i in range(n_extra)], columns=evidence.columns
    )
    called, note = malignant.call_malignant(
        embedding,
        normal_seed=np.r_[normal_seed, np.ones(n_extra, bool)],
        evidence=pd.concat([evidence, extra]),
        **params,
    )
    called = called.iloc[: adata.n_obs]
    for column in malignant.EVIDENCE_COLUMNS:
        adata.obs[column] = called[column].to_numpy()
    return note


def _genotype_clone_column(adata, alt, ref, patient_id, params, random_state) -> None:
    """Genotype clones are subclones of the leukaemia: only malignant cells are clustered (normal
    cells, with wild-type reads only, would otherwise claim a component of their own)."""
    leukaemic = adata.obs["malignant"].astype(bool).to_numpy()
    genotype_clone, _ = genotypes.genotype_clones(
        alt[leukaemic],
        ref[leukaemic],
        patient_id=patient_id,
        random_state=random_state,
        **params,
    )
    adata.obs["genotype_clone"] = genotype_clone.reindex(
        adata.obs_names, fill_value=UNASSIGNED
    ).to_numpy()


def _outputs(adata, patient_id, reports, unmatched):
    cells = adata.obs[CELL_COLUMNS].copy()
    cells["clone"] = cells["clone"].astype(str)
    cells["malignant"] = cells["malignant"].astype(bool)
    report = pd.DataFrame(reports)
    report.insert(0, "patient_id", patient_id)
    unmatched = (
        pd.concat(unmatched, ignore_index=True)
        if unmatched
        else pd.DataFrame(columns=["sample_id", "source", "barcode", "clone_id"])
    )
    return cells, report, unmatched


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
