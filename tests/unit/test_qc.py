import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from clonetrack import qc
from clonetrack.errors import InputError


def make_sample(n_good=300, n_dying=20, n_empty=15, n_doublets=18, n_genes=400, seed=0):
    """Three cell types, dying cells (high MT fraction), near-empty droplets and heterotypic
    doublets, as integer counts."""
    rng = np.random.default_rng(seed)
    genes = [f"MT-{i}" for i in range(10)] + [f"RPL{i}" for i in range(10)] + ["HBB", "HBEGF"]
    genes += [f"G{i}" for i in range(n_genes - len(genes))]
    base = rng.gamma(0.6, 1.0, size=n_genes)
    base[:10] *= 3  # a few % mitochondrial in healthy cells
    programmes = np.tile(base, (3, 1))
    for k in range(3):  # each type has 30 marker genes up 8-fold
        programmes[k, 30 + 30 * k : 60 + 30 * k] *= 8
    kind = rng.integers(0, 3, size=n_good)
    lib = rng.lognormal(np.log(2500), 0.3, size=n_good)
    rates = programmes[kind] / programmes[kind].sum(1, keepdims=True)
    good = rng.poisson(lib[:, None] * rates)
    mt_heavy = base.copy()
    mt_heavy[:10] *= 60
    lib_d = rng.lognormal(np.log(1500), 0.3, size=n_dying)
    dying = rng.poisson(np.outer(lib_d / mt_heavy.sum(), mt_heavy))
    empty = rng.poisson(np.outer(np.full(n_empty, 60) / base.sum(), base))
    pairs = [(i, j) for i in range(n_good) for j in range(n_good) if kind[i] != kind[j]]
    chosen = rng.choice(len(pairs), size=n_doublets, replace=False)
    doublets = np.array([good[pairs[c][0]] + good[pairs[c][1]] for c in chosen])
    x = np.vstack([good, dying, empty, doublets]).astype(np.float32)
    truth = ["good"] * n_good + ["dying"] * n_dying + ["empty"] * n_empty + ["doublet"] * n_doublets
    adata = ad.AnnData(sp.csr_matrix(x), var=pd.DataFrame(index=genes))
    adata.obs_names = [f"S1_c{i}" for i in range(adata.n_obs)]
    adata.obs["barcode"] = [f"c{i}" for i in range(adata.n_obs)]
    adata.obs["truth"] = truth
    return adata


def test_metrics_match_independent_computation():
    adata = make_sample()
    qc.add_qc_metrics(adata)
    x = adata.X.toarray()
    np.testing.assert_allclose(adata.obs["total_counts"], x.sum(1), rtol=1e-6)
    np.testing.assert_allclose(
        adata.obs["pct_counts_mt"], 100 * x[:, :10].sum(1) / x.sum(1), rtol=1e-5
    )
    # HBB is a haemoglobin gene, HBEGF is not
    assert adata.var.loc["HBB", "hb"] and not adata.var.loc["HBEGF", "hb"]
    assert adata.var["ribo"].sum() == 10


def test_mad_thresholds_equal_hand_computation():
    obs = pd.DataFrame(
        {
            "total_counts": [1000, 2000, 3000, 4000, 100000],
            "n_genes_by_counts": [500, 600, 700, 800, 900],
            "pct_counts_mt": [1.0, 2.0, 3.0, 4.0, 50.0],
        }
    )
    params = qc.QCParams(
        nmads_counts=2,
        nmads_genes=2,
        nmads_mito=3,
        min_counts=None,
        min_genes=None,
        max_pct_mito=None,
    )
    t = qc.adaptive_thresholds(obs, params=params)
    logged = np.log1p(obs["total_counts"])
    mad = np.median(np.abs(logged - np.median(logged)))
    assert t["max_total_counts"] == pytest.approx(np.expm1(np.median(logged) + 2 * mad))
    assert t["max_pct_counts_mt"] == pytest.approx(3.0 + 3 * 1.0)
    capped = qc.adaptive_thresholds(obs, params=qc.QCParams(max_pct_mito=5.0, min_counts=1500))
    assert capped["max_pct_counts_mt"] == 5.0
    assert capped["min_total_counts"] >= 1500


@pytest.mark.parametrize("n_cells", [7, 8, 500])
def test_mad_thresholds_equal_the_hand_computation_exactly(n_cells):
    rng = np.random.default_rng(n_cells)
    obs = pd.DataFrame(
        {
            "total_counts": rng.lognormal(8, 0.6, n_cells).round(),
            "n_genes_by_counts": rng.lognormal(7, 0.4, n_cells).round(),
            "pct_counts_mt": rng.gamma(2.0, 2.5, n_cells),
        }
    )
    params = qc.QCParams(min_counts=None, min_genes=None, max_pct_mito=None, min_mito_ceiling=0)

    def mad(x):
        return np.median(np.abs(x - np.median(x)))

    t = qc.adaptive_thresholds(obs, params=params)
    for metric, nmads in (
        ("total_counts", params.nmads_counts),
        ("n_genes_by_counts", params.nmads_genes),
    ):
        logged = np.log1p(obs[metric].to_numpy())
        assert t[f"min_{metric}"] == float(np.expm1(np.median(logged) - nmads * mad(logged)))
        assert t[f"max_{metric}"] == float(np.expm1(np.median(logged) + nmads * mad(logged)))
    mito = obs["pct_counts_mt"].to_numpy()
    assert t["max_pct_counts_mt"] == float(np.median(mito) + params.nmads_mito * mad(mito))


def test_run_qc_removes_planted_bad_cells_and_ledger_balances():
    adata = make_sample()
    kept, cells, ledger = qc.run_qc(adata, sample_id="S1", params=qc.QCParams(), random_state=0)
    truth = adata.obs["truth"]
    removed = cells["qc_reason"].astype(str) != "kept"
    assert removed[truth.isin(["dying", "empty"])].mean() == 1.0
    assert removed[truth == "doublet"].mean() >= 0.6
    assert removed[truth == "good"].mean() <= 0.1
    row = ledger.iloc[0]
    assert row["n_cells_in"] == adata.n_obs == len(cells)
    assert (
        row["n_cells_in"]
        == sum(row[f"removed_{r}"] for r in qc.REMOVAL_REASONS) + row["n_cells_kept"]
    )
    assert kept.n_obs == row["n_cells_kept"]
    qc.check_ledger(ledger)


def test_qc_is_deterministic():
    a = qc.run_qc(make_sample(), sample_id="S1", random_state=3)[1]
    b = qc.run_qc(make_sample(), sample_id="S1", random_state=3)[1]
    pd.testing.assert_frame_equal(a, b)


def test_sample_emptied_by_qc_is_refused_with_override_hint():
    adata = make_sample()
    with pytest.raises(InputError, match=r"Sample S1: QC removed all .* qc.overrides.S1"):
        qc.run_qc(adata, sample_id="S1", params=qc.QCParams(min_counts=1e9))


def test_overrides_and_unknown_keys():
    config = {"nmads_counts": 5, "overrides": {"S2": {"max_pct_mito": 40}}}
    assert qc.QCParams.from_config(config, sample_id="S2").max_pct_mito == 40
    assert qc.QCParams.from_config(config, sample_id="S1").max_pct_mito == 25
    with pytest.raises(InputError, match="Unknown QC setting"):
        qc.QCParams.from_config({"max_pct_mitto": 3}, sample_id="S1")


def test_check_ledger_detects_imbalance():
    ledger = pd.DataFrame(
        [
            {
                "sample_id": "S1",
                "n_cells_in": 10,
                "n_cells_kept": 5,
                **{f"removed_{r}": 0 for r in qc.REMOVAL_REASONS},
            }
        ]
    )
    with pytest.raises(AssertionError, match="S1"):
        qc.check_ledger(ledger)


def test_mitochondrial_ceiling_cannot_collapse_to_zero():
    """A real 10x sample with no mitochondrial read in most cells: median and MAD are 0, and the
    adaptive ceiling used to remove every cell with a single mitochondrial read."""
    import pandas as pd
    from clonetrack.qc import QCParams, adaptive_thresholds

    rng = np.random.default_rng(0)
    mito = np.where(rng.random(1000) < 0.7, 0.0, rng.uniform(0.05, 2.0, 1000))
    obs = pd.DataFrame(
        {
            "total_counts": rng.integers(1000, 5000, 1000),
            "n_genes_by_counts": rng.integers(500, 2000, 1000),
            "pct_counts_mt": mito,
        }
    )
    thresholds = adaptive_thresholds(obs, params=QCParams())
    assert thresholds["max_pct_counts_mt"] == 5.0
    assert (obs["pct_counts_mt"] <= thresholds["max_pct_counts_mt"]).all()


def test_a_qc_fraction_no_gene_matches_is_said(caplog):
    """Ensembl identifiers: no gene starts with MT-, so every cell would show 0% in silence."""
    import logging

    import scipy.sparse as sp
    from clonetrack.qc import QCParams, add_qc_metrics

    genes = [f"ENSG{i:011d}" for i in range(50)]
    adata = ad.AnnData(
        sp.csr_matrix(np.ones((5, 50), dtype=np.float32)), var=pd.DataFrame(index=genes)
    )
    with caplog.at_level(logging.WARNING, logger="clonetrack.qc"):
        notes = add_qc_metrics(adata, params=QCParams())
    assert (adata.obs["pct_counts_mt"] == 0).all()
    assert "no gene matches qc.mito_prefix (e.g. genes ENSG00000000000" in caplog.text
    # the same goes to the QC ledger, one note per pattern
    assert notes == [
        "no gene matches qc.mito_prefix: pct_counts_mt is 0 in every cell",
        "no gene matches qc.ribo_prefixes: pct_counts_ribo is 0 in every cell",
        "no gene matches qc.hb_pattern: pct_counts_hb is 0 in every cell",
    ]


def test_ledger_notes_a_fraction_no_gene_matches():
    """run_qc carries the note into the ledger row, so the report says it beside the counts."""
    from clonetrack.qc import QCParams, run_qc

    rng = np.random.default_rng(0)
    adata = ad.AnnData(
        rng.poisson(2.0, size=(300, 200)).astype(np.float32),
        var=pd.DataFrame(index=[f"G{i}" for i in range(198)] + ["MT-CO1", "MT-ND1"]),
    )
    _, _, ledger = run_qc(adata, sample_id="s", params=QCParams(min_counts=None, min_genes=None))
    note = ledger.loc[0, "note"]
    assert "qc.ribo_prefixes" in note and "qc.hb_pattern" in note
    assert "qc.mito_prefix" not in note


def test_default_doublet_call_is_scrublets_own_on_the_passing_cells():
    import scanpy as sc

    adata = make_sample()
    _, cells, ledger = qc.run_qc(adata.copy(), sample_id="S1", random_state=0)
    # independently: scanpy's scrublet on the cells that pass the metric thresholds
    passing = cells["qc_reason"].astype(str).isin(["kept", "doublet"]).to_numpy()
    ref = sc.pp.scrublet(
        adata[passing].copy(),
        expected_doublet_rate=0.06,
        n_prin_comps=30,
        use_approx_neighbors=False,
        random_state=0,
        verbose=False,
        copy=True,
    )
    np.testing.assert_allclose(cells.loc[passing, "doublet_score"], ref.obs["doublet_score"])
    np.testing.assert_array_equal(
        cells.loc[passing, "doublet_scrublet"].astype(bool), ref.obs["predicted_doublet"].to_numpy()
    )
    assert ledger.iloc[0]["threshold_doublet_score"] == pytest.approx(
        ref.uns["scrublet"]["threshold"]
    )
    assert cells.loc[~passing, "doublet_score"].isna().all()


def test_consensus_of_two_callers_keeps_each_callers_score_and_call():
    adata = make_sample()
    params = qc.QCParams(
        doublet_callers=("scrublet", "doubletdetection"), expected_doublet_rate=0.05
    )
    kept, cells, ledger = qc.run_qc(adata, sample_id="S1", params=params, random_state=0)
    assert qc.doublet_columns(params.doublet_callers) == [
        "doublet_score_scrublet",
        "doublet_scrublet",
        "doublet_score_doubletdetection",
        "doublet_doubletdetection",
        "doublet_votes",
        "doublet_score",
    ]
    for column in qc.doublet_columns(params.doublet_callers):
        assert column in cells and column in kept.obs, column
    scored = cells["doublet_score"].notna()
    # the combined rule calls the top 5% of the scored cells by mean score quantile (plus any
    # both callers call), and each caller scored every such cell
    called = cells["qc_reason"].astype(str) == "doublet"
    assert called.sum() >= round(0.05 * scored.sum())
    assert cells.loc[called, "doublet_score"].min() == pytest.approx(
        ledger.iloc[0]["threshold_doublet_score"]
    )
    assert (
        cells.loc[scored, ["doublet_score_scrublet", "doublet_score_doubletdetection"]]
        .notna()
        .all()
        .all()
    )
    assert (
        cells["doublet_votes"]
        == cells[["doublet_scrublet", "doublet_doubletdetection"]].astype(bool).sum(axis=1)
    ).all()
    truth = adata.obs["truth"]
    assert called[truth == "doublet"].mean() >= 0.8
    assert called[truth == "good"].mean() <= 0.03
    qc.check_ledger(ledger)


def test_doublet_settings_from_config():
    params = qc.QCParams.from_config(
        {"doublet_callers": ["scrublet", "doubletdetection"], "doublet_rule": "any"}
    )
    assert (
        params.doublet_callers == ("scrublet", "doubletdetection") and params.doublet_rule == "any"
    )
    with pytest.raises(InputError, match="Doublet callers"):
        qc.run_qc(make_sample(), sample_id="S1", params=qc.QCParams(doublet_callers=("solo",)))
