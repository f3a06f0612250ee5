"""Clone labels per cell: from a given clone table or called from lineage-barcode UMI counts.

Every cell of the sample ends up with a label in ``obs["clone"]`` (``"unassigned"`` when no
trustworthy clone is known) and the origin of that label in ``obs["clone_source"]``. Nothing is
dropped silently: table rows that match no cell are returned and counted.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData
from scipy.sparse.csgraph import connected_components

from clonetrack.errors import InputError
from clonetrack.vocabulary import UNASSIGNED

LINEAGE_STATUSES = ("assigned", "no_barcode", "below_threshold", "singleton")


def _record(adata: AnnData, step: str, sample_id: str, params: dict) -> None:
    store = adata.uns.setdefault("clonetrack", {}).setdefault(step, {})
    store[str(sample_id)] = params


def _sample_cells(adata: AnnData, sample_id: str) -> tuple[pd.Index, pd.Series]:
    """obs_names of the sample's cells, and their original barcodes."""
    for col in ("sample_id", "barcode"):
        if col not in adata.obs:
            raise InputError(
                f"obs has no {col!r} column; load counts with clonetrack's reader, which adds "
                "'sample_id' and the original 'barcode' to every cell."
            )
    mask = (adata.obs["sample_id"].astype(str) == str(sample_id)).to_numpy()
    if not mask.any():
        raise InputError(
            f"sample {sample_id!r} has no cells in obs['sample_id']; check the sample id "
            "against the sample sheet."
        )
    barcodes = adata.obs.loc[mask, "barcode"].astype(str)
    dup = barcodes[barcodes.duplicated(keep=False)]
    if len(dup):
        raise InputError(
            f"sample {sample_id!r}: original barcodes occur more than once in obs['barcode'] "
            f"(e.g. {sorted(set(dup))[:5]}); each cell of a sample needs a unique barcode."
        )
    return pd.Index(adata.obs_names[mask]), barcodes


def _apply_labels(
    adata: AnnData, sample_id: str, labels: pd.Series, source: str
) -> tuple[pd.Index, pd.Series]:
    """Write ``labels`` (by original barcode; missing = unassigned) to the sample's cells."""
    names, barcodes = _sample_cells(adata, sample_id)
    per_cell = barcodes.map(labels).fillna(UNASSIGNED).astype(str)
    for col, fill in (("clone", UNASSIGNED), ("clone_source", "none")):
        if col not in adata.obs:
            adata.obs[col] = fill
        # categorical columns would refuse new clone ids
        adata.obs[col] = adata.obs[col].astype(object)
    adata.obs.loc[names, "clone"] = per_cell.to_numpy()
    adata.obs.loc[names, "clone_source"] = source
    return names, per_cell


def assign_given_clones(
    adata: AnnData,
    table: pd.DataFrame,
    *,
    sample_id: str,
    min_confidence: float | None = None,
) -> tuple[dict, pd.DataFrame]:
    """Label the cells of one sample with clones from a per-cell table.

    Parameters
    ----------
    adata
        Cells with ``obs["sample_id"]`` and the original barcode in ``obs["barcode"]``.
        Modified in place: ``obs["clone"]`` and ``obs["clone_source"]`` (``"given"``) for the
        sample's cells; other samples' cells keep their labels.
    table
        Columns ``barcode`` (original barcode), ``clone_id`` and optionally ``confidence``.
        A barcode listed twice with the same clone counts once; with different clones it is an
        error.
    sample_id
        Sample whose cells are labelled.
    min_confidence
        Cells whose ``confidence`` is below this (or missing) are left ``"unassigned"`` and
        counted as low confidence. ``None`` keeps every listed cell.

    Returns
    -------
    report
        ``n_cells`` (of the sample), ``n_assigned``, ``n_low_confidence``,
        ``n_table_rows_unmatched``.
    unmatched
        Table rows whose barcode is not a cell of the sample (after QC, or a typo).
    """
    tab = _checked_clone_table(table, sample_id=sample_id, min_confidence=min_confidence)
    _, barcodes = _sample_cells(adata, sample_id)
    in_sample = set(barcodes)
    unmatched = table[~table["barcode"].astype(str).isin(in_sample).to_numpy()]
    usable = _most_confident_row(tab)
    usable = usable[usable["barcode"].isin(in_sample)]
    n_low = 0
    if min_confidence is not None:
        ok = usable["confidence"] >= min_confidence  # NaN compares False: missing = low
        n_low = int((~ok).sum())
        usable = usable[ok]
    labels = pd.Series(usable["clone_id"].to_numpy(), index=usable["barcode"].to_numpy())
    _, per_cell = _apply_labels(adata, sample_id, labels, "given")
    report = {
        "n_cells": int(len(per_cell)),
        "n_assigned": int((per_cell != UNASSIGNED).sum()),
        "n_low_confidence": n_low,
        "n_table_rows_unmatched": int(len(unmatched)),
    }
    params = {"min_confidence": min_confidence, **report}
    _record(adata, "assign_given_clones", sample_id, params)
    return report, unmatched


def _checked_clone_table(
    table: pd.DataFrame, *, sample_id: str, min_confidence: float | None
) -> pd.DataFrame:
    """A copy of the clone table with string barcodes and clone ids, after checking its columns,
    empty cells, the reserved id and barcodes given two clones."""
    missing = {"barcode", "clone_id"} - set(table.columns)
    if missing:
        raise InputError(
            f"clone table for sample {sample_id!r} lacks column(s) {sorted(missing)}; "
            "it needs 'barcode' and 'clone_id' (and optionally 'confidence')."
        )
    if min_confidence is not None and "confidence" not in table:
        raise InputError(
            f"min_confidence={min_confidence} was given but the clone table of sample "
            f"{sample_id!r} has no 'confidence' column; add it or set min_confidence to null."
        )
    tab = table.copy()
    bad = tab.index[tab["barcode"].isna() | tab["clone_id"].isna()]
    if len(bad):
        raise InputError(
            f"clone table of sample {sample_id!r}: rows {list(bad[:10])} have an empty barcode "
            "or clone_id; fill them or remove the rows."
        )
    tab["barcode"] = tab["barcode"].astype(str)
    tab["clone_id"] = tab["clone_id"].astype(str)
    reserved = tab.index[tab["clone_id"] == UNASSIGNED]
    if len(reserved):
        raise InputError(
            f"clone table of sample {sample_id!r}: rows {list(reserved[:10])} use the reserved "
            f"clone id {UNASSIGNED!r}; leave such cells out of the table instead."
        )
    n_ids = tab.groupby("barcode")["clone_id"].nunique()
    conflicting = n_ids.index[n_ids > 1]
    if len(conflicting):
        rows = tab.index[tab["barcode"].isin(conflicting)]
        raise InputError(
            f"clone table of sample {sample_id!r}: barcodes {list(conflicting[:5])} are given "
            f"different clone ids (rows {list(rows[:10])}); keep one row per barcode."
        )
    return tab


def _most_confident_row(tab: pd.DataFrame) -> pd.DataFrame:
    """One row per barcode: a barcode listed twice (with one clone) keeps its most confident
    row, or its first without a ``confidence`` column."""
    if "confidence" in tab:
        tab = tab.assign(confidence=pd.to_numeric(tab["confidence"], errors="coerce"))
        tab = tab.sort_values("confidence", ascending=False, na_position="last")
    return tab.drop_duplicates("barcode", keep="first")


def _counts_matrix(barcode_counts: AnnData) -> sp.csr_matrix:
    X = barcode_counts.X
    X = sp.csr_matrix(X) if not sp.issparse(X) else X.tocsr().copy()
    X.eliminate_zeros()
    if X.nnz and (X.data.min() < 0 or not np.allclose(X.data, np.round(X.data))):
        raise InputError(
            "lineage-barcode matrix holds negative or non-integer values; pass raw UMI counts "
            "(cells x barcodes) as produced by the barcode counting step."
        )
    return X


def call_lineage_clones(
    barcode_counts: AnnData,
    *,
    min_umi: int = 2,
    min_fraction: float = 0.2,
    min_barcodes: int = 1,
    jaccard_threshold: float = 1.0,
    min_cells_per_clone: int = 2,
    clone_prefix: str = "L",
) -> pd.DataFrame:
    """Call clones from lineage-barcode UMI counts (CellTag, LARRY and similar).

    A cell's signature is the set of barcodes with at least ``min_umi`` UMIs and at least
    ``min_fraction`` of the cell's barcode UMIs. Cells are linked when the Jaccard similarity of
    their signatures is at least ``jaccard_threshold``; a clone is a connected set of linked
    cells (with the default 1.0, cells with identical signatures).

    Parameters
    ----------
    barcode_counts
        Cells x lineage barcodes, raw UMI counts. ``obs_names`` are the original cell barcodes
        (or ``obs["barcode"]`` when present); an ``obs["sample_id"]`` column is carried over.
        Call once on all samples of a patient so that clone ids are shared across timepoints.
    min_umi
        Minimum UMIs for a barcode to count in a cell; one-UMI barcodes are mostly ambient or
        PCR/sequencing errors.
    min_fraction
        Minimum share of the cell's barcode UMIs; removes minor contaminating barcodes.
    min_barcodes
        Cells keeping fewer barcodes are ``below_threshold``. Raise to 2 for combinatorial
        libraries of modest diversity, where one shared barcode may be coincidence.
    jaccard_threshold
        Minimum Jaccard similarity of two signatures to link the cells, in (0, 1].
    min_cells_per_clone
        Clones with fewer cells are reported as ``singleton`` and not assigned.
    clone_prefix
        Clone ids are ``{clone_prefix}{rank}``, rank 1 the largest clone.

    Returns
    -------
    One row per input cell, in input order: ``barcode``, (``sample_id``), ``n_barcode_umis``,
    ``n_barcodes_detected``, ``n_barcodes_kept``, ``signature`` (kept barcodes joined by
    ``"+"``, sorted), ``clone_size``, ``clone_id`` (``"unassigned"`` unless assigned) and
    ``status`` in ``assigned``, ``no_barcode`` (no barcode UMI at all), ``below_threshold``
    (UMIs, but fewer than ``min_barcodes`` barcodes pass the filters), ``singleton`` (clone
    smaller than ``min_cells_per_clone``).
    """
    _check_lineage_settings(
        min_umi, min_fraction, min_barcodes, jaccard_threshold, min_cells_per_clone
    )
    X = _counts_matrix(barcode_counts)
    total = np.asarray(X.sum(axis=1)).ravel()
    kept = _kept_barcodes(X, total, min_umi=min_umi, min_fraction=min_fraction)
    n_kept = np.diff(kept.indptr)
    signature = _signatures(kept, np.asarray(barcode_counts.var_names, dtype=str))
    signed = np.flatnonzero(n_kept >= min_barcodes)  # the cells with a signature
    group = _link_signatures(kept, signed, signature[signed], jaccard_threshold)
    clone_size, clone_id, status = _name_clones(
        total, signed, group, signature[signed], min_cells_per_clone, clone_prefix
    )
    return _calls_table(
        barcode_counts.obs,
        {
            "n_barcode_umis": total.astype(int),
            "n_barcodes_detected": np.diff(X.indptr).astype(int),
            "n_barcodes_kept": n_kept.astype(int),
            "signature": signature,
            "clone_size": clone_size,
            "clone_id": clone_id,
            "status": pd.Categorical(status, categories=LINEAGE_STATUSES),
        },
    )


def _calls_table(obs: pd.DataFrame, columns: dict) -> pd.DataFrame:
    """``columns`` after each cell's original barcode (``obs["barcode"]``, else its name) and
    its ``sample_id`` where ``obs`` has one."""
    barcode = obs["barcode"] if "barcode" in obs else obs.index
    out = pd.DataFrame({"barcode": np.asarray(barcode.astype(str)), **columns})
    if "sample_id" in obs:
        out.insert(1, "sample_id", obs["sample_id"].astype(str).to_numpy())
    return out


def _check_lineage_settings(
    min_umi, min_fraction, min_barcodes, jaccard_threshold, min_cells_per_clone
) -> None:
    if min_umi < 1 or not 0 <= min_fraction <= 1 or min_barcodes < 1 or min_cells_per_clone < 1:
        raise InputError(
            "call_lineage_clones: need min_umi >= 1, 0 <= min_fraction <= 1, min_barcodes >= 1 "
            f"and min_cells_per_clone >= 1 (got {min_umi}, {min_fraction}, {min_barcodes}, "
            f"{min_cells_per_clone}); fix the clones section of the config."
        )
    if not 0 < jaccard_threshold <= 1:
        raise InputError(
            f"jaccard_threshold must lie in (0, 1], got {jaccard_threshold}; fix the config."
        )


def _kept_barcodes(
    X: sp.csr_matrix, total: np.ndarray, *, min_umi: int, min_fraction: float
) -> sp.csr_matrix:
    """Binary cells x barcodes: the barcodes with at least ``min_umi`` UMIs and at least
    ``min_fraction`` of the cell's barcode UMIs (``total``)."""
    # the row total broadcast to each stored value
    row_of = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
    keep = (X.data >= min_umi) & (X.data >= min_fraction * total[row_of])
    # copies: eliminate_zeros would otherwise shrink X's own index arrays in place
    kept = sp.csr_matrix((keep.astype(np.int32), X.indices.copy(), X.indptr.copy()), shape=X.shape)
    kept.eliminate_zeros()
    return kept


def _signatures(kept: sp.csr_matrix, names: np.ndarray) -> np.ndarray:
    """Each cell's kept barcode names, sorted and joined by ``+`` (empty without any)."""
    return np.array(
        [
            "+".join(sorted(names[kept.indices[kept.indptr[i] : kept.indptr[i + 1]]]))
            for i in range(kept.shape[0])
        ],
        dtype=object,
    )


def _link_signatures(
    kept: sp.csr_matrix, idx: np.ndarray, signatures: np.ndarray, jaccard_threshold: float
) -> np.ndarray:
    """A group number per cell of ``idx`` (cells with a signature): identical signatures
    share one; below a threshold of 1, signatures at least that Jaccard-similar are linked
    and a group is a connected set of them."""
    sig_codes, uniq_sigs = pd.factorize(pd.Series(signatures))
    if jaccard_threshold >= 1 or len(uniq_sigs) <= 1:
        return sig_codes
    first = pd.Series(idx).groupby(sig_codes).first().to_numpy()
    B = kept[first]  # one row per distinct signature, binary
    inter = (B @ B.T).tocoo()
    size = np.diff(B.indptr)
    jac = inter.data / (size[inter.row] + size[inter.col] - inter.data)
    linked = jac >= jaccard_threshold - 1e-12
    G = sp.coo_matrix(
        (np.ones(linked.sum()), (inter.row[linked], inter.col[linked])),
        shape=(len(uniq_sigs), len(uniq_sigs)),
    )
    _, comp_of_sig = connected_components(G, directed=False)
    return comp_of_sig[sig_codes]


def _name_clones(
    total: np.ndarray,
    idx: np.ndarray,
    group: np.ndarray,
    signatures: np.ndarray,
    min_cells_per_clone: int,
    clone_prefix: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clone size, id and status per cell. Groups of at least ``min_cells_per_clone`` cells
    become clones ``{clone_prefix}{rank}``, ranked by size, ties by the smallest signature
    string so ids are reproducible; smaller ones are singletons."""
    n = len(total)
    clone_size = np.zeros(n, dtype=int)
    clone_id = np.full(n, UNASSIGNED, dtype=object)
    status = np.where(total == 0, "no_barcode", "below_threshold").astype(object)
    if not len(idx):
        return clone_size, clone_id, status
    sizes = np.bincount(group)
    clone_size[idx] = sizes[group]
    big = np.flatnonzero(sizes >= min_cells_per_clone)
    key = pd.DataFrame({"g": group, "sig": signatures}).groupby("g")["sig"].min()
    order = sorted(big, key=lambda g: (-sizes[g], key[g]))
    width = max(3, len(str(len(order))))
    name_of = {g: f"{clone_prefix}{r:0{width}d}" for r, g in enumerate(order, start=1)}
    is_big = sizes[group] >= min_cells_per_clone
    status[idx] = np.where(is_big, "assigned", "singleton")
    clone_id[idx[is_big]] = [name_of[g] for g in group[is_big]]
    return clone_size, clone_id, status


def attach_lineage_clones(
    adata: AnnData, calls: pd.DataFrame, *, sample_id: str
) -> tuple[dict, pd.DataFrame]:
    """Label the cells of one sample with clones called by :func:`call_lineage_clones`.

    Parameters
    ----------
    adata
        Cells with ``obs["sample_id"]`` and ``obs["barcode"]``; ``obs["clone"]`` and
        ``obs["clone_source"]`` (``"lineage_barcode"``) are set for the sample's cells.
    calls
        Output of :func:`call_lineage_clones`. When it has a ``sample_id`` column only that
        sample's rows are used.
    sample_id
        Sample whose cells are labelled.

    Returns
    -------
    report
        ``n_cells``, ``n_assigned``, ``n_low_confidence`` (cells with lineage UMIs but no clone:
        ``below_threshold`` or ``singleton``), ``n_table_rows_unmatched`` and ``status_counts``
        among the sample's cells (``not_in_calls`` for cells without a row).
    unmatched
        Call rows whose barcode is not a cell of the sample (e.g. removed by QC).
    """
    missing = {"barcode", "clone_id", "status"} - set(calls.columns)
    if missing:
        raise InputError(
            f"lineage calls for sample {sample_id!r} lack column(s) {sorted(missing)}; pass the "
            "table returned by call_lineage_clones."
        )
    rows = calls
    if "sample_id" in calls:
        rows = calls[calls["sample_id"].astype(str) == str(sample_id)]
    dup = rows["barcode"][rows["barcode"].duplicated()]
    if len(dup):
        raise InputError(
            f"lineage calls for sample {sample_id!r} list barcodes {list(dup[:5])} more than "
            "once; call clones per sample or add a 'sample_id' column."
        )
    _, barcodes = _sample_cells(adata, sample_id)
    in_sample = rows["barcode"].astype(str).isin(set(barcodes))
    unmatched = rows[~in_sample]
    used = rows[in_sample]
    assigned = used[used["status"] == "assigned"]
    labels = pd.Series(
        assigned["clone_id"].astype(str).to_numpy(), index=assigned["barcode"].astype(str)
    )
    _, per_cell = _apply_labels(adata, sample_id, labels, "lineage_barcode")
    status = barcodes.map(
        pd.Series(used["status"].astype(str).to_numpy(), index=used["barcode"].astype(str))
    )
    status_counts = status.fillna("not_in_calls").value_counts().to_dict()
    report = {
        "n_cells": int(len(per_cell)),
        "n_assigned": int((per_cell != UNASSIGNED).sum()),
        "n_low_confidence": int(status.isin(["below_threshold", "singleton"]).sum()),
        "n_table_rows_unmatched": int(len(unmatched)),
        "status_counts": {k: int(v) for k, v in status_counts.items()},
    }
    _record(adata, "attach_lineage_clones", sample_id, dict(report))
    return report, unmatched
