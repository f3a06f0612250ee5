import logging

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
import scipy.sparse as sp
from clonetrack.errors import InputError
from clonetrack.qc import doublets

CALLERS = ("scrublet", "doubletdetection")


def make_cells(n_singlets=300, n_doublets=18, n_genes=400, n_types=4, seed=0):
    """Singlets of a few cell types and heterotypic doublets (the sum of two singlets of
    different types), as integer counts of cells that passed the metric thresholds."""
    rng = np.random.default_rng(seed)
    base = rng.gamma(0.6, 1.0, size=n_genes)
    programmes = np.tile(base, (n_types, 1))
    for k in range(n_types):  # each type has 30 marker genes up 8-fold
        programmes[k, 30 * k : 30 * (k + 1)] *= 8
    kind = rng.integers(0, n_types, size=n_singlets + 2 * n_doublets)
    lib = rng.lognormal(np.log(2500), 0.3, size=len(kind))
    rates = programmes[kind] / programmes[kind].sum(1, keepdims=True)
    cells = rng.poisson(lib[:, None] * rates)
    first = np.arange(n_singlets, len(kind), 2)
    second = first + 1
    clash = kind[first] == kind[second]  # make every doublet heterotypic
    kind[second[clash]] = (kind[first[clash]] + 1) % n_types
    rates = programmes[kind[second]] / programmes[kind[second]].sum(1, keepdims=True)
    cells[second] = rng.poisson(lib[second, None] * rates)
    x = np.vstack([cells[:n_singlets], cells[first] + cells[second]]).astype(np.float32)
    order = rng.permutation(len(x))
    genes = pd.DataFrame(index=[f"G{i}" for i in range(n_genes)])
    adata = ad.AnnData(sp.csr_matrix(x[order]), var=genes)
    adata.obs_names = [f"S1_c{i}" for i in range(adata.n_obs)]
    adata.obs["doublet"] = (np.arange(len(x)) >= n_singlets)[order]
    return adata


@pytest.fixture(scope="module")
def called():
    adata = make_cells()
    return adata, doublets.call_doublets(adata, random_state=0)


def test_output_columns_index_and_record(called):
    adata, out = called
    assert list(out.columns) == [
        "doublet_score_scrublet",
        "doublet_scrublet",
        "doublet_score_doubletdetection",
        "doublet_doubletdetection",
        "doublet_votes",
        "doublet_score",
        "predicted_doublet",
    ]
    assert out.index.equals(adata.obs_names)
    assert out["predicted_doublet"].dtype == bool and out["doublet_votes"].dtype.kind == "i"
    own_calls = out[["doublet_scrublet", "doublet_doubletdetection"]]
    assert (out["doublet_votes"] == own_calls.sum(axis=1)).all()
    assert out[["doublet_score_scrublet", "doublet_score_doubletdetection"]].notna().all().all()
    record = out.attrs["doublets"]
    assert record is adata.uns["clonetrack"]["doublets"]
    assert record["rule"] == "combined" and record["skipped"] == {}
    assert 0 < record["thresholds"]["scrublet_threshold"] < 1
    assert record["thresholds"]["doubletdetection_p_thresh"] == doublets.DD_P_THRESH
    assert record["n_called"] == out["predicted_doublet"].sum()


def test_planted_doublets_are_found_and_singlets_kept(called):
    adata, out = called
    truth = adata.obs["doublet"].to_numpy()
    predicted = out["predicted_doublet"].to_numpy()
    assert predicted[truth].mean() >= 0.8
    assert predicted[~truth].mean() <= 0.03
    for caller in CALLERS:  # each caller's score ranks the doublets high
        score = out[f"doublet_score_{caller}"].to_numpy()
        assert np.median(score[truth]) > np.quantile(score[~truth], 0.95), caller
        assert out[f"doublet_{caller}"].to_numpy()[~truth].mean() <= 0.03, caller


def test_same_seed_same_calls(called):
    adata, out = called
    again = doublets.call_doublets(make_cells(), random_state=0)
    pd.testing.assert_frame_equal(out, again)


def test_seed_reaches_doubletdetection():
    adata = make_cells()
    a = doublets.call_doublets(adata, callers=("doubletdetection",), random_state=0)
    b = doublets.call_doublets(adata, callers=("doubletdetection",), random_state=1)
    assert not np.allclose(a["doublet_score_doubletdetection"], b["doublet_score_doubletdetection"])


def test_scanpy_neighbours_are_restored_after_doubletdetection(called):
    # DoubletDetection runs with exact neighbours by patching scanpy for its duration only.
    assert sc.pp.neighbors.__module__ == "scanpy.neighbors"


@pytest.mark.parametrize("n_cells", [0, 5, 29])
def test_small_sample_gets_nan_scores_and_no_calls(n_cells, caplog):
    adata = make_cells(n_singlets=n_cells, n_doublets=0)
    with caplog.at_level(logging.WARNING, logger="clonetrack.doublets"):
        out = doublets.call_doublets(adata)
    assert len(out) == n_cells and out.index.equals(adata.obs_names)
    for caller in CALLERS:
        assert out[f"doublet_score_{caller}"].isna().all()
        assert not out[f"doublet_{caller}"].any()
        assert f"doublet caller {caller} skipped: {n_cells} cells" in caplog.text
    assert not out["predicted_doublet"].any() and out["doublet_score"].isna().all()
    assert set(out.attrs["doublets"]["skipped"]) == set(CALLERS)


def test_too_few_genes_skips_callers_without_crash():
    adata = make_cells(n_singlets=60, n_doublets=0, n_genes=20)
    out = doublets.call_doublets(adata)
    assert out["doublet_score_scrublet"].isna().all() and not out["predicted_doublet"].any()
    assert "20 genes detected" in out.attrs["doublets"]["skipped"]["scrublet"]


def _frames(scores: dict, calls: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    return pd.DataFrame(scores, dtype=float), pd.DataFrame(calls, dtype=bool)


def test_combined_rule_calls_the_expected_share_by_mean_quantile():
    # quantiles: a = (i + 1) / 10; b puts cell 8 first, then 0, 1, ..., 7, 9. Mean quantile: cell 8
    # 0.95, cell 9 0.55, every other cell 0.5.
    scores, calls = _frames(
        {"a": [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], "b": [9, 8, 7, 6, 5, 4, 3, 2, 10, 0]},
        {"a": [False] * 10, "b": [False] * 10},
    )
    predicted, combined = doublets.consensus(scores, calls, rule="combined", expected_rate=0.1)
    assert np.flatnonzero(predicted).tolist() == [8]
    np.testing.assert_allclose(combined, [0.5] * 8 + [0.95, 0.55])
    predicted, _ = doublets.consensus(scores, calls, rule="combined", expected_rate=0.2)
    assert np.flatnonzero(predicted).tolist() == [8, 9]


def test_combined_rule_breaks_ties_in_input_order():
    scores, calls = _frames({"a": [1.0] * 40, "b": [0.3] * 40}, {"a": [0] * 40, "b": [0] * 40})
    predicted, _ = doublets.consensus(scores, calls, rule="combined", expected_rate=0.1)
    assert np.flatnonzero(predicted).tolist() == [0, 1, 2, 3]


def test_combined_rule_adds_unanimous_calls_beyond_the_budget():
    scores, calls = _frames(
        {"a": [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], "b": [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]},
        {"a": [True, False, True] + [False] * 7, "b": [True, True, False] + [False] * 7},
    )
    predicted, _ = doublets.consensus(scores, calls, rule="combined", expected_rate=0.1)
    # the budget takes cell 9; cell 0 is called by both callers, 1 and 2 by one only
    assert np.flatnonzero(predicted).tolist() == [0, 9]


def test_combined_rule_ignores_a_caller_that_did_not_run():
    scores, calls = _frames(
        {"a": [0, 1, 2, 3, 4, 5, 6, 7, 9, 8], "b": [np.nan] * 10},
        {"a": [True] + [False] * 9, "b": [False] * 10},
    )
    predicted, combined = doublets.consensus(scores, calls, rule="combined", expected_rate=0.1)
    # with one caller left, its own call is no consensus: only the budget's top cell is called
    assert np.flatnonzero(predicted).tolist() == [8]
    np.testing.assert_allclose(combined, (np.array([0, 1, 2, 3, 4, 5, 6, 7, 9, 8]) + 1) / 10)


@pytest.mark.parametrize(
    ("rule", "expected"),
    [("any", [True, True, True, False]), ("majority", [True, True, False, False]),
     ("all", [True, False, False, False])],
)  # fmt: skip
def test_vote_rules(rule, expected):
    scores, calls = _frames(
        {"a": [1, 1, 1, 0], "b": [1, 1, 0, 0], "c": [1, 0, 0, 0], "skipped": [np.nan] * 4},
        {"a": [1, 1, 1, 0], "b": [1, 1, 0, 0], "c": [1, 0, 0, 0], "skipped": [0] * 4},
    )
    predicted, _ = doublets.consensus(scores, calls, rule=rule)
    assert predicted.tolist() == expected


def test_majority_of_two_needs_both():
    scores, calls = _frames({"a": [1, 0], "b": [0, 1]}, {"a": [True, True], "b": [True, False]})
    predicted, _ = doublets.consensus(scores, calls, rule="majority")
    assert predicted.tolist() == [True, False]


def test_no_caller_ran_calls_nothing():
    scores, calls = _frames({"a": [np.nan] * 3}, {"a": [False] * 3})
    predicted, combined = doublets.consensus(scores, calls)
    assert not predicted.any() and np.isnan(combined).all()


def test_bad_settings_and_normalised_input_are_refused():
    adata = make_cells(n_singlets=40, n_doublets=0)
    with pytest.raises(InputError, match="Unknown doublet rule 'both'"):
        doublets.call_doublets(adata, rule="both")
    with pytest.raises(InputError, match="give distinct names"):
        doublets.call_doublets(adata, callers=("solo",))
    with pytest.raises(InputError, match="expected_rate"):
        doublets.call_doublets(adata, expected_rate=0)
    adata.X = adata.X * 0.5
    with pytest.raises(InputError, match="raw UMI counts .* non-integer"):
        doublets.call_doublets(adata)


# ----------------------------------------------------------------------------------------------
# the toy's planted doublets (resources/toy), through QC as the workflow runs it


@pytest.fixture(scope="module")
def toy_qc():
    """QC of every toy sample with scrublet alone (the default) and with the consensus of
    scrublet and DoubletDetection, joined to the planted truth."""
    from pathlib import Path

    from clonetrack import io, qc

    toy = Path(__file__).resolve().parents[2] / "resources" / "toy"
    sheet = pd.read_csv(toy / "samples.tsv", sep="\t", dtype=str, keep_default_na=False)
    truth = pd.read_csv(toy / "truth/cells.tsv", sep="\t", keep_default_na=False)
    truth = truth.set_index(truth["sample_id"] + "_" + truth["barcode"])
    # the rate a user sets from the cells loaded: the toy plants 5% doublets
    settings = {
        "scrublet": qc.QCParams(expected_doublet_rate=0.05),
        "consensus": qc.QCParams(
            expected_doublet_rate=0.05, doublet_callers=("scrublet", "doubletdetection")
        ),
    }
    out = {}
    for name, params in settings.items():
        tables = []
        for row in sheet.itertuples():
            counts = io.read_counts(toy / row.path, sample_id=row.sample_id, fmt=row.format or None)
            cells = qc.run_qc(counts, sample_id=row.sample_id, params=params, random_state=0)[1]
            tables.append(cells.set_index(row.sample_id + "_" + cells["barcode"].astype(str)))
        out[name] = pd.concat(tables).join(
            truth[["cell_type", "low_quality", "doublet", "doublet_partner"]]
        )
    return out


def _recall_and_loss(cells: pd.DataFrame) -> tuple[float, float]:
    reason = cells["qc_reason"].astype(str)
    reached = reason.isin(["kept", "doublet"])  # passed the metric thresholds
    doublet = cells["doublet"].astype(str) == "True"
    low_quality = cells["low_quality"].astype(str) == "True"
    heterotypic = doublet & (cells["doublet_partner"] != cells["cell_type"]) & reached
    good = ~doublet & ~low_quality & reached
    called = reason == "doublet"
    return called[heterotypic].mean(), called[good].mean()


def test_toy_consensus_finds_most_heterotypic_doublets_at_small_loss(toy_qc):
    recall, loss = _recall_and_loss(toy_qc["consensus"])
    alone_recall, alone_loss = _recall_and_loss(toy_qc["scrublet"])
    assert recall >= 0.60 and loss <= 0.03, (recall, loss)
    assert recall > alone_recall + 0.2, (recall, alone_recall)
    assert (
        toy_qc["scrublet"]["doublet_score"].notna().sum()
        == toy_qc["consensus"]["doublet_score"].notna().sum()
    )
