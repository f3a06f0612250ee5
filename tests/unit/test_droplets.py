"""Cell calling from an unfiltered matrix: planted cells among simulated empty droplets, the
barcode-rank curve, and the ledger of every barcode."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from clonetrack import qc
from clonetrack.io import read_counts
from clonetrack.qc import droplets
from clonetrack_sim import simulate_raw_droplets

ROOT = Path(__file__).resolve().parents[2]
TOY = ROOT / "resources" / "toy"


@pytest.fixture(scope="module")
def sample():
    cells = read_counts(TOY / "counts/P1_diagnosis", sample_id="P1_diagnosis")
    truth = pd.read_csv(TOY / "truth/cells.tsv", sep="\t").query("sample_id == 'P1_diagnosis'")
    good = truth.set_index("barcode").loc[cells.obs["barcode"], "low_quality"].to_numpy() == False  # noqa: E712
    raw, _ = simulate_raw_droplets(cells, n_empty=20_000, contamination=0.05, seed=1)
    return raw, good


def test_planted_cells_are_called_and_empty_droplets_are_not(sample):
    raw, good = sample
    table, summary = droplets.call_cells(raw, seed=0)
    called = table["call"].str.startswith("cell_").to_numpy()
    is_cell = raw.obs["is_cell"].to_numpy()
    good_cells = np.flatnonzero(is_cell)[good]
    recall = called[good_cells].mean()
    false_calls = called[~is_cell].sum()
    print(summary, f"recall of good cells {recall:.3f}, empties called {false_calls}")
    assert recall >= 0.98
    assert false_calls <= 0.001 * (~is_cell).sum()
    # the call lies between the curve's knee (conservative) and its inflection (generous)
    assert summary["inflection"] < summary["knee"]
    assert summary["n_above_knee"] <= summary["n_cells"] <= summary["n_above_inflection"]
    assert summary["n_barcodes"] == raw.n_obs
    assert set(table["call"]) <= {"cell_ordmag", "cell_emptydrops", "tested_ambient", "empty"}


def test_the_same_seed_gives_the_same_calls(sample):
    raw, _ = sample
    first, _ = droplets.call_cells(raw, seed=3, expected_cells=500, min_umis=50)
    second, _ = droplets.call_cells(raw, seed=3, expected_cells=500, min_umis=50)
    pd.testing.assert_frame_equal(first, second)


def test_barcode_ranks_find_the_knee_between_cells_and_empties():
    rng = np.random.default_rng(0)
    total = np.concatenate(
        [rng.lognormal(np.log(3000), 0.4, 800), rng.lognormal(np.log(10), 0.6, 30000)]
    )
    ranks = droplets.barcode_ranks(total.round())
    print(ranks)
    # knee and inflection both lie among the cells, above every empty droplet but a few
    assert 100 <= ranks["inflection"] < ranks["knee"] < 5000
    assert (total[800:] >= ranks["inflection"]).sum() <= 5
    assert 400 <= (total >= ranks["knee"]).sum() <= (total >= ranks["inflection"]).sum() <= 805


def test_every_barcode_is_in_the_ledger():
    ledger = pd.DataFrame(
        [
            {
                "sample_id": "S",
                "n_cells_in": 10,
                **{f"removed_{r}": 0 for r in qc.REMOVAL_REASONS},
                "n_cells_kept": 10,
            }
        ]
    )
    with_droplets = qc.add_droplet_columns(ledger, {"n_barcodes": 1000, "knee": 300.0})
    assert with_droplets.loc[0, "n_empty_droplets"] == 990
    qc.check_ledger(with_droplets)
    qc.check_ledger(qc.add_droplet_columns(ledger, {}))  # no raw matrix: nothing to balance
    broken = with_droplets.assign(n_empty_droplets=900)
    with pytest.raises(AssertionError, match="does not balance"):
        qc.check_ledger(broken)
