"""Barcoded mouse leukaemia models: the toy cohort's cell model under mouse gene symbols, with
lentiviral barcodes marking the leukaemic clones."""

from __future__ import annotations

import numpy as np
import pandas as pd
from clonetrack.errors import InputError

from clonetrack_sim.cohort import SimulatedCohort, simulate_cohort
from clonetrack_sim.design import HB_GENES, NORMAL_COMPOSITION
from clonetrack_sim.genes import select_genes, with_mitochondrial_genes
from clonetrack_sim.lineage import lentiviral_barcodes, lineage_barcode_counts

#: Mouse (MGI) symbols of the simulator's human genes where the case rule of :func:`mouse_symbol`
#: does not give them.
MOUSE_SYMBOLS = {"HBA1": "Hba-a1", "HBA2": "Hba-a2", "HBB": "Hbb-bs", "MT-CYB": "mt-Cytb"}


def mouse_symbol(human: str, panel: dict[str, str] | None = None) -> str:
    """The mouse spelling of a human symbol: a panel gene as the panel writes it, then
    :data:`MOUSE_SYMBOLS`, mitochondrial genes as ``mt-Co1``, the rest in title case (``Cd34``)."""
    if panel and human in panel:
        return panel[human]
    if human in MOUSE_SYMBOLS:
        return MOUSE_SYMBOLS[human]
    if human.startswith("MT-"):
        return "mt-" + human[3:].capitalize()
    return human[:1] + human[1:].lower()


def _panel_markers(panel: pd.DataFrame, known: set[str]) -> dict[str, list[str]]:
    """Up to six panel genes per cell type, by their human symbol; haemoglobins by their human
    names (renamed later to Hba-a1, Hba-a2, Hbb-bs)."""
    markers = {
        t: [g.upper() for g in genes if g.upper() in known][:6]
        for t, genes in panel.groupby("cell_type", sort=False)["gene"]
        if t in NORMAL_COMPOSITION
    }
    markers["lateEry"] = HB_GENES + [g for g in markers["lateEry"] if g not in HB_GENES][:4]
    return markers


def _rename_to_mouse(cohort: SimulatedCohort, panel_case: dict[str, str]) -> None:
    """Every gene of counts and truth under its mouse symbol."""
    rename = {g: mouse_symbol(g, panel_case) for g in cohort.genes["symbol"].astype(str)}
    if len(set(rename.values())) < len(rename):
        raise InputError("two simulated genes share a mouse symbol; choose another seed")
    for adata in cohort.adatas.values():
        adata.var_names = adata.var_names.map(rename)
        adata.var["symbol"] = adata.var_names.to_numpy()
    cohort.genes = cohort.genes.assign(symbol=cohort.genes["symbol"].map(rename))
    cohort.programmes["gene"] = cohort.programmes["gene"].map(rename)
    cohort.de_genes["gene"] = cohort.de_genes["gene"].map(rename)
    cohort.resistance_genes["gene"] = cohort.resistance_genes["gene"].map(rename)


def simulate_mouse_cohort(
    *,
    positions: pd.DataFrame,
    panel: pd.DataFrame,
    seed: int = 2,
    n_mice: int = 2,
    n_cells_per_sample: int = 150,
    n_genes: int = 2000,
) -> SimulatedCohort:
    """Barcoded mouse leukaemia models: mice M1, M2, ... sampled at baseline and at relapse.

    The transplanted leukaemic cells carry lentiviral barcodes, one per clone (contracting,
    expanding, stable), read as a lineage-barcode matrix per sample
    (:func:`lineage_barcode_counts`); host (normal) cells carry none. Genes are named as in mouse
    (MGI symbols, ``mt-`` genes), and each cell type's planted markers are the genes of the mouse
    panel ``panel`` (columns ``cell_type``, ``gene``), so the workflow's mouse preset annotates
    them.

    ``positions`` is a human gene-position table (as for :func:`select_genes`): the mouse panel's
    genes are found there by their human (upper-case) symbol, then every gene is renamed.
    """
    markers = _panel_markers(panel, set(positions["symbol"].astype(str)))
    genes = select_genes(
        with_mitochondrial_genes(positions), n_genes=n_genes, seed=seed, markers=markers
    )
    mice = tuple(f"M{i + 1}" for i in range(n_mice))
    cohort = simulate_cohort(
        genes=genes,
        seed=seed,
        n_cells_per_sample=n_cells_per_sample,
        patients=mice,
        n_clones=(3,) * n_mice,
        timepoints={"diagnosis": "baseline", "relapse": "relapse"},
        min_cells_per_clone=5,
        min_mono_cells=15,
        given_clones_patients=(),
        genotyped_patients=(),
        markers=markers,
    )
    _rename_to_mouse(cohort, {g.upper(): g for g in panel["gene"].astype(str)})
    lrng = np.random.default_rng([seed, 13])
    clone_barcode = lentiviral_barcodes(cohort.clones["clone"], lrng)
    cohort.clones["lineage_barcode"] = cohort.clones["clone"].map(clone_barcode)
    cohort.lineage = {
        sid: lineage_barcode_counts(adata.obs, clone_barcode, rng=lrng)
        for sid, adata in cohort.adatas.items()
    }
    return cohort
