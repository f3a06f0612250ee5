"""Droplets of an unfiltered matrix: the barcode-rank curve, cell calling, and the empty droplets.

Cell calling follows Cell Ranger 3 (Zheng et al. 2017; Lun et al. 2019, EmptyDrops), through the
``emptydrops`` package (Cell Ranger's own code, packaged): barcodes whose UMI total reaches 10% of
the 99th percentile of the expected cells are cells (the "order of magnitude" call); barcodes
below that but above ``min_umis`` are tested against the ambient profile of the empty droplets
(multinomial likelihood, Monte Carlo p-value, Benjamini-Hochberg), and those that differ at
``fdr`` are cells too. Without ``expected_cells`` their number is estimated as Cell Ranger >= 6
does (the order-of-magnitude call whose count best matches the number it was asked for).

The knee and inflection of the barcode-rank curve are computed as DropletUtils' ``barcodeRanks``
(R only, so ported here: about 30 lines), to state the call beside them.
"""

from __future__ import annotations

import contextlib
import io
import logging

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import sparse

log = logging.getLogger(__name__)

#: Barcodes with at least one and fewer than this many UMIs are empty droplets: the ambient profile
#: (SoupX's ``soupRange``) and the lower bound of the barcode-rank curve (EmptyDrops' ``lower``).
EMPTY_DROPLET_UMIS_BELOW = 100


def _barcodes(adata: AnnData) -> np.ndarray:
    return (
        (adata.obs["barcode"] if "barcode" in adata.obs else adata.obs_names).astype(str).to_numpy()
    )


def totals(adata: AnnData) -> np.ndarray:
    """UMIs per barcode."""
    return np.asarray(adata.X.sum(axis=1)).ravel()


def barcode_ranks(
    total: np.ndarray, *, lower: int = EMPTY_DROPLET_UMIS_BELOW, exclude_from: int = 50
) -> dict:
    """Knee and inflection of the log-log barcode-rank curve (DropletUtils ``barcodeRanks``).

    Over barcodes with more than ``lower`` UMIs (ties share their mid rank), the inflection is the
    point of steepest descent after the first ``exclude_from`` ranks; the knee is the point
    furthest above the chord from the curve's plateau (its flattest point before the inflection)
    to the inflection.
    """
    t = np.sort(np.asarray(total, dtype=float))[::-1]
    values, counts = np.unique(-t, return_counts=True)
    run_total = -values
    run_rank = np.cumsum(counts) - (counts - 1) / 2.0
    keep = run_total > lower
    if keep.sum() < 3:
        return {"knee": np.nan, "inflection": np.nan}
    y, x = np.log10(run_total[keep]), np.log10(run_rank[keep])
    slope = np.diff(y) / np.diff(x)
    skip = min(len(slope) - 1, int(np.sum(x <= np.log10(exclude_from))))
    right = skip + int(np.argmin(slope[skip:]))
    left = skip + int(np.argmax(slope[skip : right + 1]))
    cx, cy = x[left : right + 1], y[left : right + 1]
    if len(cx) < 2:
        return {"knee": float(10 ** cy[0]), "inflection": float(10 ** y[right])}
    gradient = (cy[-1] - cy[0]) / (cx[-1] - cx[0])
    intercept = cy[0] - cx[0] * gradient
    above = np.flatnonzero(cy >= cx * gradient + intercept)
    distance = np.abs(gradient * cx[above] - cy[above] + intercept) / np.sqrt(gradient**2 + 1)
    return {
        "knee": float(10 ** cy[above[np.argmax(distance)]]),
        "inflection": float(10 ** y[right]),
    }


def _ordmag_threshold(total: np.ndarray, expected_cells: int) -> float:
    """Cell Ranger's order-of-magnitude cut-off: 10% of the 99th percentile of the top cells."""
    nonzero = np.sort(total[total > 0])[::-1]
    if not len(nonzero):
        return np.inf
    top = min(int(round(0.01 * expected_cells)), len(nonzero) - 1)
    return max(1.0, round(0.1 * nonzero[top]))


def estimate_expected_cells(total: np.ndarray, *, max_cells: int = 262_144) -> int:
    """Cells expected in a library, as Cell Ranger >= 6 estimates it without being told: the
    asked-for number closest (relative squared error) to what its order-of-magnitude call keeps."""
    asked = np.unique(np.round(2 ** np.linspace(1, np.log2(max_cells), 2000)).astype(int))
    kept = np.array([(total >= _ordmag_threshold(total, n)).sum() for n in asked])
    return int(asked[np.argmin((kept - asked) ** 2 / asked)])


def _emptydrops_test(adata: AnnData, initial: np.ndarray, *, min_umis: int, fdr: float, seed: int):
    import warnings

    with warnings.catch_warnings():
        # emptydrops reads its own version through pkg_resources (deprecated, still shipped)
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
        from emptydrops import find_nonambient_barcodes
    from emptydrops.feature_ref import FeatureDef, FeatureReference
    from emptydrops.matrix import CountMatrix

    features = FeatureReference(
        [FeatureDef(i, g, g, "Gene Expression", []) for i, g in enumerate(adata.var_names)], []
    )
    # the package wants features x barcodes, integer CSC, and barcodes as bytes
    barcodes = np.asarray(adata.obs_names.astype(str), dtype="S")
    matrix = CountMatrix(features, barcodes, sparse.csc_matrix(adata.X.T.astype(np.int64)))
    state = np.random.get_state()
    np.random.seed(seed)  # the package draws its Monte Carlo samples from numpy's global generator
    try:
        with contextlib.redirect_stdout(io.StringIO()) as printed:
            result = find_nonambient_barcodes(
                matrix, list(barcodes[initial]), min_umis_nonambient=min_umis, max_adj_pvalue=fdr
            )
    finally:
        np.random.set_state(state)
    log.info("emptydrops: %s", printed.getvalue().strip().replace("\n", "; "))
    return result


def _rank_summary(total: np.ndarray, ranks: dict) -> dict:
    """The barcode-rank curve's knee and inflection, the barcodes above each, and the barcodes
    the soup profile is estimated from."""
    return {
        "knee": ranks["knee"],
        "inflection": ranks["inflection"],
        "n_above_knee": int((total >= ranks["knee"]).sum()),
        "n_above_inflection": int((total >= ranks["inflection"]).sum()),
        "n_empty_for_profile": int(((total > 0) & (total < EMPTY_DROPLET_UMIS_BELOW)).sum()),
    }


def call_cells(
    raw: AnnData,
    *,
    expected_cells: int | None = None,
    min_umis: int = 500,
    fdr: float = 0.01,
    seed: int = 0,
) -> tuple[pd.DataFrame, dict]:
    """Call cell-containing droplets in an unfiltered matrix (Cell Ranger 3's method).

    Parameters
    ----------
    raw
        Every barcode (cells x genes, raw counts).
    expected_cells
        Cells loaded; ``None`` estimates it from the curve.
    min_umis
        Barcodes below the order-of-magnitude cut-off are tested only from this many UMIs
        (Cell Ranger 3: 500).
    fdr
        Benjamini-Hochberg level of the EmptyDrops test.
    seed
        Seed of the test's Monte Carlo simulation.

    Returns
    -------
    droplets
        One row per barcode: ``barcode``, ``total_counts``, ``rank``, ``call`` (``cell_ordmag``,
        ``cell_emptydrops``, ``tested_ambient`` or ``empty``), ``emptydrops_fdr`` (tested only).
    summary
        ``n_barcodes``, ``n_cells``, ``expected_cells``, ``ordmag_threshold``, ``knee``,
        ``inflection``, the cells above knee and inflection, and ``n_empty_for_profile``.
    """
    total = totals(raw)
    expected = int(expected_cells) if expected_cells else estimate_expected_cells(total)
    threshold = _ordmag_threshold(total, expected)
    initial = np.flatnonzero(total >= threshold)
    call = np.where(total >= threshold, "cell_ordmag", "empty").astype(object)
    adjusted = np.full(len(total), np.nan)
    result = (
        _emptydrops_test(raw, initial, min_umis=min_umis, fdr=fdr, seed=seed)
        if len(initial)
        else None
    )
    if result is not None:
        tested = np.asarray(result.eval_bcs)
        adjusted[tested] = result.pvalues_adj
        call[tested] = np.where(result.is_nonambient, "cell_emptydrops", "tested_ambient")
    ranks = barcode_ranks(total)
    droplets = pd.DataFrame(
        {
            "barcode": _barcodes(raw),
            "total_counts": total.astype(np.int64),
            "rank": pd.Series(-total).rank(method="min").astype(int).to_numpy(),
            "call": call,
            "emptydrops_fdr": adjusted,
        },
        index=raw.obs_names.copy(),
    )
    is_cell = droplets["call"].str.startswith("cell_")
    summary = {
        "n_barcodes": int(len(total)),
        "n_cells": int(is_cell.sum()),
        "n_cells_ordmag": int((droplets["call"] == "cell_ordmag").sum()),
        "n_cells_emptydrops": int((droplets["call"] == "cell_emptydrops").sum()),
        "expected_cells": expected,
        "expected_cells_estimated": expected_cells is None,
        "ordmag_threshold": float(threshold),
        **_rank_summary(total, ranks),
    }
    return droplets, summary


#: Columns of a sample's ``droplets.tsv.gz`` (one row per barcode of its raw matrix).
DROPLET_COLUMNS = ("barcode", "total_counts", "rank", "call", "emptydrops_fdr")


def filtered_calls(raw: AnnData, cells: AnnData) -> tuple[pd.DataFrame, dict]:
    """The droplet table when the cells are given (a filtered matrix): its barcodes are cells."""
    total = totals(raw)
    missing = ~cells.obs_names.isin(raw.obs_names)
    if missing.any():
        raise ValueError(
            f"{int(missing.sum())} barcodes of the filtered matrix are not in the raw matrix (e.g. "
            f"{', '.join(cells.obs['barcode'][missing][:3])}): path and raw_path must come from "
            "the same library"
        )
    is_cell = raw.obs_names.isin(cells.obs_names)
    ranks = barcode_ranks(total)
    droplets = pd.DataFrame(
        {
            "barcode": _barcodes(raw),
            "total_counts": total.astype(np.int64),
            "rank": pd.Series(-total).rank(method="min").astype(int).to_numpy(),
            "call": np.where(is_cell, "cell_filtered", "empty"),
            "emptydrops_fdr": np.nan,
        },
        index=raw.obs_names.copy(),
    )
    summary = {
        "n_barcodes": int(len(total)),
        "n_cells": int(is_cell.sum()),
        **_rank_summary(total, ranks),
    }
    return droplets, summary


def cells_from_raw(
    raw: AnnData, counts: AnnData | None, *, params: dict, seed: int = 0
) -> tuple[AnnData, pd.DataFrame, dict]:
    """A sample's cells from its unfiltered matrix: called (or those of ``counts``, the filtered
    matrix), with ambient RNA removed as ``params`` (the config's ``droplets`` section) says.

    Returns the cells (raw's genes; ``layers["uncorrected"]`` where ambient RNA was removed), the
    droplet table (one row per barcode) and a summary for the QC ledger.
    """
    from clonetrack.qc import ambient

    if counts is None:
        table, summary = call_cells(
            raw,
            expected_cells=params["expected_cells"],
            min_umis=params["min_umis"],
            fdr=params["fdr"],
            seed=seed,
        )
        summary["cell_calling"] = "emptydrops"
    else:
        table, summary = filtered_calls(raw, counts)
        summary["cell_calling"] = "filtered matrix (path)"
    cells = raw[table["call"].str.startswith("cell_").to_numpy()].copy()
    summary["ambient"] = params["ambient"]
    if params["ambient"] == "soupx" and cells.n_obs:
        cells, removed = ambient.remove_ambient(
            cells,
            raw,
            contamination=params["contamination"],
            contamination_genes=params.get("contamination_genes", "markers"),
            hb_pattern=params.get("hb_pattern"),
            seed=seed,
        )
        summary.update(removed)
    return cells, table, summary


def droplet_rows(table: pd.DataFrame | None) -> pd.DataFrame:
    """The droplet table as written (barcodes without the sample prefix); empty without one."""
    if table is None:
        return pd.DataFrame(columns=list(DROPLET_COLUMNS))
    return table.reset_index(drop=True)[list(DROPLET_COLUMNS)]
