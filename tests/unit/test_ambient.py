"""Ambient RNA removal: SoupX's subtraction agrees with the library's, and planted soup of lysed
red cells and platelets leaves the cells that do not make it."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from clonetrack.qc import ambient
from clonetrack_sim import simulate_raw_droplets
from scipy import sparse

SOUP_GENES = {"HBB": 0.06, "HBA1": 0.04, "HBA2": 0.03, "PPBP": 0.03, "PF4": 0.02}


TYPES = ("Ery", "T", "Mono", "B", "NK", "GMP", "Prog", "DC")


def planted_sample(n_per_type=60, n_genes=2000, seed=0, ery_hb=40):
    """Eight cell types with 20 marker genes each; erythroid cells alone make haemoglobin
    (``ery_hb``: its relative rate per gene), nobody makes the platelet genes."""
    rng = np.random.default_rng(seed)
    genes = [*SOUP_GENES, *(f"G{i}" for i in range(n_genes - len(SOUP_GENES)))]
    base = rng.lognormal(0, 1, n_genes)
    base[: len(SOUP_GENES)] = 0
    types = np.repeat(TYPES, n_per_type)
    rows = []
    for t in types:
        mu = base.copy()
        block = 5 + 20 * TYPES.index(t)
        mu[block : block + 20] *= 20
        if t == "Ery":
            mu[:3] = ery_hb  # haemoglobins
        rows.append(rng.poisson(mu / mu.sum() * rng.lognormal(np.log(2000), 0.3)))
    barcodes = [f"C{i:05d}-1" for i in range(len(types))]
    cells = ad.AnnData(
        sparse.csr_matrix(np.array(rows, dtype=np.float32)),
        obs=pd.DataFrame({"barcode": barcodes, "cell_type": types}, index=barcodes),
        var=pd.DataFrame(index=genes),
    )
    raw, soup = simulate_raw_droplets(
        cells, n_empty=3000, contamination=0.1, lysed=SOUP_GENES, seed=seed
    )
    return cells, raw, soup


@pytest.mark.filterwarnings("ignore::scipy.sparse.SparseEfficiencyWarning")  # soupx's own loop
def test_sparse_subtraction_equals_soupx_adjust_counts():
    import soupx

    rng = np.random.default_rng(1)
    counts = sparse.csr_matrix(rng.poisson(2, (40, 60)).astype(float))
    soup = rng.dirichlet(np.ones(60))
    rho = rng.uniform(0.02, 0.3, 40)
    channel = soupx.SoupChannel(
        sparse.csr_matrix(np.vstack([counts.toarray(), rng.poisson(0.1, (200, 60))]).T),
        sparse.csr_matrix(counts.T),
        calcSoupProfile=False,
    )
    channel.soupProfile = pd.DataFrame({"est": soup, "counts": soup})
    channel.metaData["rho"] = rho
    expected = soupx.adjustCounts(channel, clusters=False, method="subtraction", verbose=0)
    ours = ambient.subtract_soup(counts, soup, rho)
    np.testing.assert_allclose(ours.toarray(), np.asarray(expected.todense()).T, atol=1e-10)


def test_planted_soup_is_removed_from_cells_that_do_not_make_it():
    cells, raw, _ = planted_sample()
    called = raw[raw.obs["is_cell"].to_numpy()].copy()
    corrected, summary = ambient.remove_ambient(called, raw, contamination=0.1, seed=0)
    soup = called.var_names.isin(list(SOUP_GENES))
    others = (cells.obs["cell_type"] != "Ery").to_numpy()  # raw lists the cells first
    before = called.X[others][:, soup].sum()
    after = corrected.X[others][:, soup].sum()
    print(f"soup genes in non-erythroid cells: {before:.0f} -> {after:.0f}; {summary}")
    assert cells.X[others][:, soup].sum() == 0  # all of it is soup
    assert after <= 0.1 * before
    # the cells' own programme is left: erythroid haemoglobin and other genes barely move
    ery = ~others
    own_hb = cells.X[ery][:, soup].sum()
    print(
        f"erythroid soup genes: own {own_hb:.0f}, read {called.X[ery][:, soup].sum():.0f}, "
        f"corrected {corrected.X[ery][:, soup].sum():.0f}"
    )
    assert abs(corrected.X[ery][:, soup].sum() - own_hb) <= 0.15 * own_hb
    own = cells.X[:, ~soup].sum()
    assert abs(corrected.X[:, ~soup].sum() - own) <= 0.05 * own  # back to the planted counts
    assert np.array_equal(corrected.layers["uncorrected"].toarray(), called.X.toarray())
    assert np.all(corrected.X.data == np.round(corrected.X.data))


def test_an_estimate_soupx_cannot_make_is_reported_and_counts_are_left_as_read():
    _, raw, _ = planted_sample(n_per_type=20)
    called = raw[raw.obs["is_cell"].to_numpy()].copy()
    corrected, summary = ambient.remove_ambient(called, raw, seed=0)
    print(summary)
    if np.isnan(summary["contamination"]):
        assert "could not estimate" in summary["contamination_source"]
        assert summary["umis_removed_fraction"] == 0
        assert np.array_equal(corrected.X.toarray(), called.X.toarray())
    else:  # an estimate is within SoupX's contamination range
        assert 0.01 <= summary["contamination"] <= 0.8 and summary["umis_removed_fraction"] > 0


def test_a_given_contamination_is_used_and_rounding_keeps_the_expected_total():
    cells, raw, soup = planted_sample(n_per_type=20)
    called = raw[raw.obs["is_cell"].to_numpy()].copy()
    corrected, summary = ambient.remove_ambient(called, raw, contamination=0.1, seed=0)
    assert summary["contamination"] == 0.1 and summary["contamination_source"].startswith("given")
    exact = ambient.subtract_soup(called.X, np.asarray(summary_soup(called, raw)), 0.1).sum()
    assert corrected.X.sum() == pytest.approx(exact, rel=0.01)


def summary_soup(called, raw):
    return ambient.soup_channel(called, raw).soupProfile["est"].to_numpy()


def test_haemoglobin_estimate_recovers_the_planted_contamination():
    # the marker-based estimate finds no plausible markers here (soup genes in every cell);
    # haemoglobin, made by the erythroid cells alone (a third of their UMIs, as in marrow),
    # gives the fraction
    cells, raw, _ = planted_sample(ery_hb=600)
    ery = cells.obs["cell_type"].to_numpy() == "Ery"
    assert 0.25 < cells.X[ery][:, :3].sum() / cells.X[ery].sum() < 0.45
    called = raw[raw.obs["is_cell"].to_numpy()].copy()
    hb = r"^HB(?!EGF|S1L|P1)[ABDEGMQZ]\d?$"
    corrected, summary = ambient.remove_ambient(
        called, raw, contamination_genes="haemoglobin", hb_pattern=hb, seed=0
    )
    print(summary)
    # planted: soup of 10% of each cell's own UMIs on top, i.e. 0.1 / 1.1 of what is read
    assert summary["contamination"] == pytest.approx(0.1 / 1.1, rel=0.1)
    assert summary["contamination_source"].startswith("haemoglobin genes: ")
    # the erythroid cells' cluster makes them and is left out
    assert "from 420 cells in 7 clusters" in summary["contamination_source"]
    assert summary["umis_removed_fraction"] > 0.05


def test_non_expressed_estimate_is_the_ratio_over_non_making_clusters():
    # hand-made: cluster a makes gene 0; clusters b and c hold soup only
    soup = np.array([0.1, 0.9])
    counts = sparse.csr_matrix(
        np.array([[500, 500], [480, 520], [12, 988], [8, 992], [11, 989], [9, 991]], dtype=float)
    )
    clusters = np.array(["a", "a", "b", "b", "c", "c"])
    rho, note = ambient.estimate_from_non_expressed(counts, soup, np.array([True, False]), clusters)
    assert rho == pytest.approx((12 + 8 + 11 + 9) / (4 * 1000 * 0.1))
    assert "from 4 cells in 2 clusters" in note


@pytest.mark.parametrize(("making", "confidence"), [(12, 0.95), (0, 0.95), (3, 0.8)])
def test_non_expressed_interval_is_the_exact_poisson_one(making, confidence):
    """Garwood's exact interval of the soup UMIs, as a rate per expected soup UMI."""
    from scipy import stats

    soup = np.array([0.1, 0.9])
    counts = sparse.csr_matrix(
        np.array([[500, 500], [making, 1000 - making], [0, 1000], [0, 1000]], dtype=float)
    )
    clusters = np.array(["a", "b", "c", "d"])
    rho, note = ambient.estimate_from_non_expressed(
        counts, soup, np.array([True, False]), clusters, confidence=confidence
    )
    k, expected = float(making), 3 * 1000 * 0.1
    alpha = 1 - confidence
    low = stats.chi2.ppf(alpha / 2, 2 * k) / 2 / expected if k > 0 else 0.0
    high = stats.chi2.ppf(1 - alpha / 2, 2 * k + 2) / 2 / expected
    assert rho == pytest.approx(k / expected)
    assert note.startswith(f"{k / expected:.3f} [{low:.3f}, {high:.3f}] from 3 cells")


def test_too_little_soup_of_the_genes_falls_back_to_markers():
    cells, raw, _ = planted_sample(n_per_type=20)
    called = raw[raw.obs["is_cell"].to_numpy()].copy()
    _, summary = ambient.remove_ambient(
        called, raw, contamination_genes="haemoglobin", hb_pattern=r"^NOSUCHGENE$", seed=0
    )
    assert summary["contamination_source"].startswith("haemoglobin genes: no gene matches")
