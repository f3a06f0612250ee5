"""A real unfiltered droplet matrix end to end from raw_path (tests/data/raw_droplets/README.md):
every barcode accounted for, cells called beside the barcode-rank curve's knee and inflection,
ambient RNA removed with the uncorrected counts kept."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.workflow

SAMPLE = "2001_Pre"
N_BARCODES = 83_683


@pytest.fixture(scope="module")
def ledger(droplets_run) -> pd.Series:
    return pd.read_csv(droplets_run / "results/tables/qc_ledger.tsv", sep="\t").iloc[0]


def test_every_barcode_is_in_the_ledger(droplets_run, ledger):
    print(ledger.to_dict())
    assert ledger["n_barcodes"] == N_BARCODES
    assert ledger["n_empty_droplets"] + ledger["n_cells_in"] == N_BARCODES
    table = pd.read_csv(droplets_run / f"results/qc/{SAMPLE}/droplets.tsv.gz", sep="\t")
    assert len(table) == N_BARCODES and table["barcode"].is_unique
    assert table["call"].str.startswith("cell_").sum() == ledger["n_cells_in"]
    final = ad.read_h5ad(droplets_run / "results/final/adata.h5ad", backed="r")
    assert final.n_obs == ledger["n_cells_kept"]


def test_called_cells_lie_between_the_knee_and_the_inflection(ledger):
    assert ledger["cell_calling"] == "emptydrops"
    assert ledger["inflection"] < ledger["knee"]
    assert ledger["n_above_knee"] <= ledger["n_cells_in"] <= 1.05 * ledger["n_above_inflection"]


def test_ambient_rna_is_removed_and_the_counts_as_read_are_kept(droplets_run, ledger):
    kept = ad.read_h5ad(droplets_run / f"results/qc/{SAMPLE}/cells_kept.h5ad")
    before, after = kept.layers["uncorrected"], kept.X
    assert (after - before).max() <= 1  # stochastic rounding adds at most one UMI to an entry
    removed = 1 - after.sum() / before.sum()
    print(
        f"removed {removed:.4f} of the kept cells' UMIs; "
        f"ledger {ledger['umis_removed_fraction']:.4f}"
    )
    assert ledger["contamination"] == 0.05 and 0.01 < removed < 0.1
    # the soup's platelet transcripts (PPBP, among its top genes here) leave the cells that do
    # not make them
    ppbp = kept.var_names.get_loc("PPBP")
    low = np.asarray(before[:, ppbp].todense()).ravel() <= 2
    assert after[low, ppbp].sum() < 0.7 * before[low, ppbp].sum()


def test_doublets_by_consensus_keep_each_callers_score_and_call(droplets_run, ledger):
    cells = pd.read_csv(droplets_run / f"results/qc/{SAMPLE}/cells.tsv", sep="\t")
    scored = cells["doublet_score"].notna()
    callers = ["scrublet", "doubletdetection"]
    assert cells.loc[scored, [f"doublet_score_{c}" for c in callers]].notna().all().all()
    own = cells[[f"doublet_{c}" for c in callers]].astype(bool)
    assert (cells["doublet_votes"] == own.sum(axis=1)).all()
    # combined rule: the top expected rate of the scored cells, plus any both callers call
    called = cells["qc_reason"] == "doublet"
    assert called.sum() == ledger["removed_doublet"]
    assert (
        round(0.06 * scored.sum())
        <= called.sum()
        <= round(0.06 * scored.sum()) + (own.all(axis=1)).sum()
    )
    by_budget = called & ~own.all(axis=1)
    assert (
        cells.loc[by_budget, "doublet_score"].min()
        >= cells.loc[scored & ~called, "doublet_score"].max()
    )
    final = ad.read_h5ad(droplets_run / "results/final/adata.h5ad", backed="r")
    for column in (
        "doublet_score",
        "doublet_score_scrublet",
        "doublet_doubletdetection",
        "doublet_votes",
    ):
        assert column in final.obs, column
