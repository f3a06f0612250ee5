"""Pseudobulk differential expression with pydeseq2: the patient is the replicate, not the cell."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData
from scipy.stats import norm

from clonetrack.vocabulary import UNASSIGNED

log = logging.getLogger(__name__)

# two-sided 95% normal quantile, for the fold change's Wald interval
Z_95 = float(norm.ppf(0.975))


def _group_ids(frame: pd.DataFrame, groupby: list[str]) -> tuple[pd.DataFrame, pd.Series]:
    """The ``groupby`` columns as text, and each row's pseudobulk name (their values joined)."""
    keys = frame[groupby].astype(str)
    if not len(keys):
        return keys, pd.Series([], index=frame.index, dtype=str)
    return keys, keys.agg("|".join, axis=1)


def pseudobulk(
    adata: AnnData,
    *,
    groupby: list[str],
    layer: str | None = "counts",
    blocks: Iterable[sp.spmatrix] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Sum raw counts over the cells of each combination of ``groupby`` columns.

    ``blocks``, if given, replaces ``adata``'s matrix: its rows as consecutive blocks (e.g.
    :func:`clonetrack.io.store.row_blocks`), summed as they arrive, so the cells' matrix is never
    held whole and ``adata`` need only carry obs and var.

    Returns
    -------
    counts
        Pseudobulks x genes, integer sums.
    meta
        One row per pseudobulk: the ``groupby`` values and ``n_cells``.
    """
    if blocks is None:
        blocks = [adata.layers[layer] if layer else adata.X]
    keys, group_id = _group_ids(adata.obs, groupby)
    codes, names = pd.factorize(group_id, sort=True)
    summed = sp.csr_matrix((len(names), adata.n_vars))
    start = 0
    for block in blocks:
        stop = start + block.shape[0]
        if stop > adata.n_obs or block.shape[1] != adata.n_vars:
            raise ValueError(
                f"a block of shape {block.shape} does not fit {adata.n_obs} x {adata.n_vars}"
            )
        indicator = sp.csr_matrix(
            (np.ones(stop - start), (codes[start:stop], np.arange(stop - start))),
            shape=(len(names), stop - start),
        )
        summed = summed + indicator @ sp.csr_matrix(block)
        start = stop
    if start != adata.n_obs:
        raise ValueError(f"the blocks hold {start} cells, the metadata {adata.n_obs}")
    counts = pd.DataFrame(
        np.rint(summed.toarray()).astype(np.int64), index=names, columns=adata.var_names
    )
    meta = keys.groupby(group_id, sort=True).first()
    meta["n_cells"] = np.bincount(codes, minlength=len(names))
    meta.index.name = "pseudobulk"
    counts.index.name = "pseudobulk"
    return counts, meta


def aggregate(
    counts: pd.DataFrame, meta: pd.DataFrame, *, groupby: list[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Sum pseudobulks into coarser ones over ``groupby`` (a subset of ``meta``'s columns).

    Equals :func:`pseudobulk` with ``groupby`` on the cells, so one pass over a file can serve
    several groupings.
    """
    keys, group_id = _group_ids(meta, groupby)
    summed = counts.groupby(group_id.to_numpy(), sort=True).sum()
    coarse = keys.groupby(group_id, sort=True).first()
    coarse["n_cells"] = meta["n_cells"].groupby(group_id, sort=True).sum()
    summed.index.name = coarse.index.name = "pseudobulk"
    return summed.loc[coarse.index], coarse


def expressed_genes(counts: pd.DataFrame, groups: pd.Series, *, min_count: int = 10) -> pd.Index:
    """Genes worth testing, by edgeR's filterByExpr (decoupler's ``filter_by_expr``): a CPM of
    at least ``min_count`` reads at the median library size in at least as many pseudobulks as
    the smallest group holds (for groups of more than 10, 10 plus 70% of the rest), and at least
    1.5 x ``min_count`` reads in total. Untestable genes only cost time and FDR."""
    import decoupler as dc

    pseudobulks = AnnData(
        counts.to_numpy(dtype=float),
        obs=pd.DataFrame({"group": groups.astype(str).to_numpy()}, index=counts.index.astype(str)),
        var=pd.DataFrame(index=counts.columns.astype(str)),
    )
    keep = dc.pp.filter_by_expr(
        pseudobulks, group="group", min_count=min_count, min_total_count=int(1.5 * min_count),
        inplace=False,
    )  # fmt: skip
    return counts.columns[counts.columns.astype(str).isin(set(keep))]


def fit_deseq(
    counts: pd.DataFrame, meta: pd.DataFrame, *, design: str, random_state: int = 0, n_cpus: int = 1
):
    """Fit pydeseq2's model ``design`` to pseudobulk counts (rows) with metadata ``meta``."""
    from pydeseq2.dds import DeseqDataSet

    np.random.seed(random_state)
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
            counts=counts,
            metadata=metadata,
            design=design,
            refit_cooks=True,
            quiet=True,
            n_cpus=n_cpus,
        )
        dds.deseq2()
    return dds


def contrast_table(dds, *, factor: str, level: str, reference: str) -> pd.DataFrame:
    """Wald test of ``factor``: ``level`` vs ``reference`` on a fitted model, as a tidy table with
    log2 fold change, its 95% interval, p and BH-adjusted p."""
    from pydeseq2.ds import DeseqStats

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
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


def deseq_contrast(
    counts: pd.DataFrame,
    meta: pd.DataFrame,
    *,
    design: str,
    factor: str,
    level: str,
    reference: str,
    random_state: int = 0,
) -> pd.DataFrame:
    """Fit ``design`` on the expressed genes and test ``factor``: ``level`` vs ``reference``."""
    genes = expressed_genes(counts, meta[factor])
    dds = fit_deseq(counts[genes], meta, design=design, random_state=random_state)
    return contrast_table(dds, factor=factor, level=level, reference=reference)


#: The columns of one DESeq2 contrast (``deseq_contrast``), here and in the resistance signatures.
CONTRAST_COLUMNS = (
    "gene",
    "base_mean",
    "log2fc",
    "log2fc_se",
    "log2fc_ci_low",
    "log2fc_ci_high",
    "stat",
    "p",
    "p_adj",
)
RESULT_COLUMNS = ("cell_type", "contrast", *CONTRAST_COLUMNS)
SUMMARY_COLUMNS = (
    "cell_type",
    "contrast",
    "n_pseudobulks_available",
    "n_pseudobulks_below_min_cells",
    "n_patients",
    "n_cells",
    "status",
    "n_genes_tested",
    "n_significant_5pct_fdr",
)


def _untestable_cell_type(
    cell_type: str, in_type: pd.DataFrame, timepoints: list[str], reference: str
) -> dict:
    """The summary row of a cell type with no contrast to test, and why."""
    return {
        "cell_type": cell_type,
        "contrast": "",
        "n_pseudobulks_available": len(in_type),
        "status": (
            f"skipped: no timepoint other than the reference {reference!r} in the data"
            if not timepoints
            else f"skipped: no {cell_type} cells at the reference {reference!r}"
        ),
    }


def _contrasts(
    cell_type: str,
    in_type: pd.DataFrame,
    enough: pd.DataFrame,
    timepoints: list[str],
    reference: str,
    min_cells: int,
    min_patients: int,
) -> tuple[dict[str, dict], dict[str, list[str]]]:
    """One summary row per timepoint against ``reference``, and the patients of each testable
    one (those with ``min_cells`` cells at both timepoints, when there are ``min_patients``)."""
    rows, testable = {}, {}
    for level in timepoints:
        pair = in_type[in_type["timepoint"].isin([reference, level])]
        both = enough[enough["timepoint"].isin([reference, level])]
        per_patient = both.groupby("patient_id")["timepoint"].nunique()
        patients = sorted(per_patient.index[per_patient == 2])
        rows[level] = {
            "cell_type": cell_type,
            "contrast": f"{level}_vs_{reference}",
            "n_pseudobulks_available": len(pair),
            "n_pseudobulks_below_min_cells": int((pair["n_cells"] < min_cells).sum()),
            "n_patients": len(patients),
            "n_cells": int(both[both["patient_id"].isin(patients)]["n_cells"].sum()),
        }
        if len(patients) >= min_patients:
            testable[level] = patients
        else:
            rows[level]["status"] = (
                f"skipped: {len(patients)} patient(s) with >= {min_cells} cells at both "
                f"{reference} and {level}; need {min_patients}"
            )
    return rows, testable


def _test_cell_type(
    counts: pd.DataFrame,
    enough: pd.DataFrame,
    testable: dict[str, list[str]],
    reference: str,
    *,
    random_state: int,
    n_cpus: int,
) -> dict[str, pd.DataFrame]:
    """Each testable timepoint's table against ``reference``, from one paired model."""
    # One fit per cell type over every testable timepoint: patients contribute all their
    # pseudobulks, and each contrast is a Wald test on the shared model.
    patients = sorted(set().union(*testable.values()))
    used = enough[
        enough["patient_id"].isin(patients) & enough["timepoint"].isin([reference, *testable])
    ]
    genes = expressed_genes(counts.loc[used.index], used["timepoint"])
    dds = fit_deseq(
        counts.loc[used.index, genes],
        used[["patient_id", "timepoint"]],
        design="~ patient_id + timepoint",
        random_state=random_state,
        n_cpus=n_cpus,
    )
    return {
        level: contrast_table(dds, factor="timepoint", level=level, reference=reference)
        for level in testable
    }


def timepoint_de(
    counts: pd.DataFrame,
    meta: pd.DataFrame,
    *,
    cell_type_key: str = "cell_type",
    reference: str = "diagnosis",
    min_cells: int = 10,
    min_patients: int = 2,
    skip_types: tuple[str, ...] = (UNASSIGNED,),
    random_state: int = 0,
    n_cpus: int = 1,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Compare each timepoint with ``reference`` within patients, per cell type.

    ``counts`` and ``meta`` are pseudobulks (:func:`pseudobulk`) over ``patient_id``,
    ``timepoint`` and ``cell_type_key``; those with fewer than ``min_cells`` cells are dropped.
    A contrast is tested when at least ``min_patients`` patients
    have both timepoints; one model ``~ patient_id + timepoint`` per cell type, so each patient is
    its own control. Genes are filtered as in edgeR's filterByExpr before fitting.

    Returns
    -------
    results
        Long table: cell_type, contrast, gene, base_mean, log2fc (+ 95% CI), p, p_adj.
    summary
        One row per cell type x contrast: pseudobulks and patients used, or why it was skipped.
    """
    missing = {"patient_id", "timepoint", cell_type_key, "n_cells"} - set(meta.columns)
    if missing:
        raise ValueError(f"pseudobulk metadata lacks {sorted(missing)}")
    results, summary = [], []
    timepoints = sorted(set(meta["timepoint"]) - {reference})
    for cell_type in sorted(set(meta[cell_type_key]) - set(skip_types)):
        in_type = meta[meta[cell_type_key] == cell_type]
        if not timepoints or reference not in set(in_type["timepoint"]):
            summary.append(_untestable_cell_type(cell_type, in_type, timepoints, reference))
            continue
        enough = in_type[in_type["n_cells"] >= min_cells]
        rows, testable = _contrasts(
            cell_type, in_type, enough, timepoints, reference, min_cells, min_patients
        )
        if testable:
            tables = _test_cell_type(
                counts, enough, testable, reference, random_state=random_state, n_cpus=n_cpus
            )
            for level, table in tables.items():
                table.insert(0, "contrast", rows[level]["contrast"])
                table.insert(0, "cell_type", cell_type)
                results.append(table)
                rows[level].update(
                    status="tested",
                    n_genes_tested=int(table["p"].notna().sum()),
                    n_significant_5pct_fdr=int((table["p_adj"] < 0.05).sum()),
                )
        summary.extend(rows.values())
    results_df = (
        pd.concat(results, ignore_index=True) if results else pd.DataFrame(columns=RESULT_COLUMNS)
    )
    return results_df[list(RESULT_COLUMNS)], pd.DataFrame(summary, columns=SUMMARY_COLUMNS)
