import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from clonetrack import de


def make_cohort(n_patients=4, n_cells=40, n_genes=300, planted=20, fold=3.0, seed=1):
    """Cells of two types in patients x 2 timepoints; the first `planted` genes go up `fold`x in
    Mono at on_treatment. Patients differ in baseline (so the paired design matters)."""
    rng = np.random.default_rng(seed)
    base = rng.lognormal(0, 1, size=n_genes)
    rows, obs = [], []
    for p in range(n_patients):
        patient_effect = rng.lognormal(0, 0.4, size=n_genes)
        for _order, timepoint in enumerate(["diagnosis", "on_treatment"]):
            for cell_type in ["Mono", "T"]:
                mean = base * patient_effect
                if cell_type == "Mono" and timepoint == "on_treatment":
                    mean = mean.copy()
                    mean[:planted] *= fold
                rate = 2000 * mean / mean.sum()
                # Gamma-Poisson cells: overdispersed like real UMI counts
                rows.append(rng.poisson(rng.gamma(2.0, rate / 2.0, size=(n_cells, n_genes))))
                obs += [
                    {"patient_id": f"P{p}", "timepoint": timepoint, "cell_type": cell_type}
                ] * n_cells
    x = sp.csr_matrix(np.vstack(rows).astype(np.float32))
    adata = ad.AnnData(
        x,
        obs=pd.DataFrame(obs, index=[f"c{i}" for i in range(x.shape[0])]),
        var=pd.DataFrame(index=[f"G{i}" for i in range(n_genes)]),
    )
    adata.layers["counts"] = adata.X.copy()
    return adata


def pseudobulks(adata):
    return de.pseudobulk(adata, groupby=["patient_id", "timepoint", "cell_type"])


def test_pseudobulk_sums_equal_independent_groupby():
    adata = make_cohort(n_patients=2, n_cells=5, n_genes=20)
    counts, meta = de.pseudobulk(adata, groupby=["patient_id", "timepoint", "cell_type"])
    dense = pd.DataFrame(adata.X.toarray(), columns=adata.var_names)
    expected = dense.groupby(
        [
            adata.obs["patient_id"].values,
            adata.obs["timepoint"].values,
            adata.obs["cell_type"].values,
        ]
    ).sum()
    assert len(counts) == len(expected) == 8
    for (p, t, c), row in expected.iterrows():
        np.testing.assert_array_equal(counts.loc[f"{p}|{t}|{c}"].to_numpy(), row.to_numpy())
    assert (meta["n_cells"] == 5).all()
    assert counts.to_numpy().sum() == adata.X.sum()


def test_planted_genes_found_at_5pct_fdr_and_fold_change_recovered():
    adata = make_cohort()
    results, summary = de.timepoint_de(*pseudobulks(adata), reference="diagnosis", min_cells=10)
    mono = results[
        (results["cell_type"] == "Mono") & (results["contrast"] == "on_treatment_vs_diagnosis")
    ]
    planted = [f"G{i}" for i in range(20)]
    hits = set(mono.loc[mono["p_adj"] < 0.05, "gene"])
    recall = len(hits & set(planted)) / len(planted)
    false_hits = len(hits - set(planted))
    assert recall >= 0.9
    assert false_hits <= 3
    lfc = mono.set_index("gene").loc[planted, "log2fc"]
    assert lfc.median() == pytest.approx(np.log2(3.0), abs=0.25)
    inside = mono.set_index("gene").loc[planted]
    covered = (
        (inside["log2fc_ci_low"] <= np.log2(3)) & (inside["log2fc_ci_high"] >= np.log2(3))
    ).mean()
    assert covered >= 0.8
    # the Wald interval: the two-sided 95% normal quantile times the standard error
    half = 1.959963984540054 * results["log2fc_se"]
    np.testing.assert_array_equal(results["log2fc_ci_high"], results["log2fc"] + half)
    np.testing.assert_array_equal(results["log2fc_ci_low"], results["log2fc"] - half)
    # T cells carry no planted change
    t_cells = results[results["cell_type"] == "T"]
    assert (t_cells["p_adj"] < 0.05).sum() <= 3
    assert set(summary["status"]) == {"tested"}
    assert (summary["n_patients"] == 4).all()


def test_contrast_skipped_with_reason_when_too_few_patients_or_cells():
    adata = make_cohort(n_patients=2, n_cells=8, n_genes=50)
    results, summary = de.timepoint_de(*pseudobulks(adata), reference="diagnosis", min_cells=10)
    assert results.empty
    assert summary["status"].str.startswith("skipped: 0 patient(s)").all()
    assert (summary["n_pseudobulks_below_min_cells"] == 4).all()


def test_pseudobulk_from_blocks_and_aggregate_equal_one_pass_over_the_cells():
    adata = make_cohort(n_patients=3, n_cells=7, n_genes=30)
    whole_counts, whole_meta = pseudobulks(adata)
    cells = ad.AnnData(obs=adata.obs, var=adata.var)
    matrix = adata.layers["counts"]
    blocks = (matrix[start : start + 10] for start in range(0, adata.n_obs, 10))
    counts, meta = de.pseudobulk(
        cells, groupby=["patient_id", "timepoint", "cell_type"], blocks=blocks
    )
    pd.testing.assert_frame_equal(counts, whole_counts)
    pd.testing.assert_frame_equal(meta, whole_meta)
    coarse_counts, coarse_meta = de.aggregate(counts, meta, groupby=["patient_id", "cell_type"])
    direct_counts, direct_meta = de.pseudobulk(adata, groupby=["patient_id", "cell_type"])
    pd.testing.assert_frame_equal(coarse_counts, direct_counts)
    pd.testing.assert_frame_equal(coarse_meta, direct_meta, check_dtype=False)


def test_pseudobulk_refuses_blocks_that_do_not_cover_the_cells():
    adata = make_cohort(n_patients=2, n_cells=5, n_genes=20)
    cells = ad.AnnData(obs=adata.obs, var=adata.var)
    short = [adata.layers["counts"][:-1]]
    with pytest.raises(ValueError, match="blocks hold"):
        de.pseudobulk(cells, groupby=["patient_id"], blocks=short)
    with pytest.raises(ValueError, match="does not fit"):
        de.pseudobulk(cells, groupby=["patient_id"], blocks=[adata.layers["counts"][:, :5]])


def test_timepoint_de_names_missing_pseudobulk_columns():
    counts, meta = de.pseudobulk(
        make_cohort(n_patients=2, n_cells=5, n_genes=20), groupby=["patient_id", "timepoint"]
    )
    with pytest.raises(ValueError, match="cell_type"):
        de.timepoint_de(counts, meta)


def _filter_by_expr_by_hand(counts, groups, min_count=10, large_n=10, min_prop=0.7):
    """edgeR's filterByExpr rule, written out (edgeR 3.x, default arguments)."""
    library = counts.sum(axis=1)
    cutoff = min_count / np.median(library) * 1e6
    cpm = counts.div(library, axis=0) * 1e6
    n_min = int(groups.value_counts().min())
    if n_min > large_n:
        n_min = large_n + (n_min - large_n) * min_prop
    keep = ((cpm >= cutoff).sum(axis=0) >= n_min - 1e-14) & (counts.sum(axis=0) >= 15 - 1e-14)
    return set(counts.columns[keep.to_numpy()])


@pytest.mark.parametrize("n_per_group", [3, 24])
def test_expressed_genes_is_edgers_filter_by_expr(n_per_group):
    from clonetrack.de import expressed_genes

    rng = np.random.default_rng(n_per_group)
    n = 2 * n_per_group
    means = rng.lognormal(0.5, 2.0, size=400)
    counts = pd.DataFrame(
        rng.poisson(means * rng.uniform(0.5, 2.0, size=(n, 1))),
        index=[f"pb{i}" for i in range(n)],
        columns=[f"G{j}" for j in range(400)],
    )
    groups = pd.Series(["a"] * n_per_group + ["b"] * n_per_group, index=counts.index)
    kept = set(expressed_genes(counts, groups))
    assert kept == _filter_by_expr_by_hand(counts, groups)
    assert 50 < len(kept) < 390  # the grid holds genes on both sides of the cut
