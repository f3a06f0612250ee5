"""Clone dynamics on planted counts, checked against independent scipy computations."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from clonetrack.clones.dynamics import (
    benjamini_hochberg,
    classify_clones,
    clone_frequencies,
    cohort_model,
    compare_timepoints,
)
from clonetrack.errors import InputError
from clonetrack.pl.clones import plot_clone_dynamics, plot_cohort_overview
from scipy import stats

# patient -> [(timepoint, order, {clone: malignant cells})]
PLANTED = {
    # A 5% -> 60% expanding; C 50% -> 0% eliminated (n=300); E 45% -> 40%
    "P1": [
        ("diagnosis", 1, {"A": 15, "C": 150, "E": 135}),
        ("relapse", 2, {"A": 180, "C": 0, "E": 120}),
    ],
    # B 30% -> 32% persistent; D 0% -> 20% emergent; F 70% -> 48%
    "P2": [
        ("diagnosis", 1, {"B": 90, "F": 210}),
        ("on_treatment", 2, {"B": 93, "D": 30, "F": 177}),
        ("relapse", 3, {"B": 96, "D": 60, "F": 144}),
    ],
    # G 50% -> 0% with n=10: too shallow to call elimination
    "P3": [("diagnosis", 1, {"G": 5, "H": 5}), ("remission", 2, {"H": 10})],
    # one timepoint
    "P4": [("diagnosis", 1, {"K": 20, "L": 10})],
}
EXTRA = {"unassigned_malignant": 7, "unassigned_normal": 40, "clone_normal": 3}


def planted_obs():
    rows = []
    for patient, tps in PLANTED.items():
        for tp, order, clones in tps:
            sid = f"{patient}_{tp}"
            for clone, n in clones.items():
                rows += [(patient, sid, tp, order, clone, True)] * n
            rows += [(patient, sid, tp, order, "unassigned", True)] * EXTRA["unassigned_malignant"]
            rows += [(patient, sid, tp, order, "unassigned", False)] * EXTRA["unassigned_normal"]
            # clone-labelled cells outside the malignant compartment do not enter frequencies
            first = next(iter(clones))
            rows += [(patient, sid, tp, order, first, False)] * EXTRA["clone_normal"]
    return pd.DataFrame(
        rows,
        columns=["patient_id", "sample_id", "timepoint", "timepoint_order", "clone", "malignant"],
    )


@pytest.fixture(scope="module")
def results():
    obs = planted_obs()
    freqs = clone_frequencies(obs)
    comps = compare_timepoints(freqs)
    classes = classify_clones(comps, freqs).set_index(["patient_id", "clone"])
    return obs, freqs, comps, classes


def test_every_cell_accounted_for(results):
    obs, freqs, _, _ = results
    per_sample = freqs.groupby("sample_id").agg(
        n=("n_cells", "sum"),
        out=("n_cells_outside", "sum"),
        un=("n_unassigned", "first"),
        tot=("n_sample_cells", "first"),
    )
    assert (per_sample["n"] + per_sample["out"] + per_sample["un"] == per_sample["tot"]).all()
    assert per_sample["tot"].sum() == len(obs)
    # planted malignant clone cells, and the denominator equals them
    planted = sum(sum(c.values()) for tps in PLANTED.values() for _, _, c in tps)
    assert freqs["n_cells"].sum() == planted
    row = freqs[(freqs.sample_id == "P1_relapse") & (freqs.clone == "A")].iloc[0]
    assert (row.n_cells, row.n_malignant, row.frequency) == (180, 300, 0.6)
    assert row.n_malignant_total == 300 + EXTRA["unassigned_malignant"]


def test_zero_rows_for_absent_clones(results):
    _, freqs, _, _ = results
    # every clone of a patient has a row at each of the patient's timepoints
    for patient, tps in PLANTED.items():
        f = freqs[freqs.patient_id == patient]
        clones = {c for _, _, cl in tps for c in cl}
        assert len(f) == len(clones) * len(tps)
    d = freqs[(freqs.sample_id == "P2_diagnosis") & (freqs.clone == "D")].iloc[0]
    assert d.n_cells == 0 and d.frequency == 0 and d.ci_low == 0


def test_intervals_match_scipy_clopper_pearson(results):
    _, freqs, _, _ = results
    for r in freqs.itertuples():
        ci = stats.binomtest(r.n_cells, r.n_malignant).proportion_ci(method="exact")
        assert r.ci_low == pytest.approx(ci.low, abs=1e-10)
        assert r.ci_high == pytest.approx(ci.high, abs=1e-10)
        mf = stats.binomtest(r.n_malignant_total, r.n_sample_cells).proportion_ci(method="exact")
        assert r.malignant_fraction_ci_high == pytest.approx(mf.high, abs=1e-10)


def test_fisher_odds_ratio_and_bh_match_scipy(results):
    _, _, comps, _ = results
    for r in comps.itertuples():
        table = [
            [r.n_cells_a, r.n_malignant_a - r.n_cells_a],
            [r.n_cells_b, r.n_malignant_b - r.n_cells_b],
        ]
        assert r.p == pytest.approx(stats.fisher_exact(table)[1], rel=1e-9)
        cells = np.array(table, dtype=float)
        if (cells == 0).any():
            cells += 0.5  # Haldane-Anscombe
        log_or = np.log(cells[1, 0] * cells[0, 1] / (cells[1, 1] * cells[0, 0]))
        se = np.sqrt((1 / cells).sum())
        assert r.log2_or == pytest.approx(log_or / np.log(2))
        assert r.log2_or_ci_high == pytest.approx((log_or + 1.959964 * se) / np.log(2), rel=1e-5)
    for _, g in comps.groupby(["patient_id", "comparison", "order_a", "order_b"]):
        np.testing.assert_allclose(g["p_adj"], stats.false_discovery_control(g["p"]))
    # P2 has two consecutive pairs plus first vs last
    p2 = comps[comps.patient_id == "P2"]
    assert sorted(p2.drop_duplicates(["comparison", "order_a"])["comparison"]) == [
        "consecutive",
        "consecutive",
        "first_vs_last",
    ]


def test_bh_ignores_nan():
    p = np.array([0.01, np.nan, 0.04, 0.03])
    out = benjamini_hochberg(p)
    assert np.isnan(out[1])
    np.testing.assert_allclose(out[[0, 2, 3]], stats.false_discovery_control(p[[0, 2, 3]]))


@pytest.mark.parametrize(
    ("patient", "clone", "cls", "resistant", "sensitive"),
    [
        ("P1", "A", "expanding", True, False),
        ("P2", "B", "persistent", False, False),
        ("P1", "C", "eliminated", False, True),
        ("P3", "G", "undetermined", False, False),
        ("P2", "D", "emergent", False, False),
        ("P4", "K", "undetermined", False, False),
    ],
)
def test_planted_classes(results, patient, clone, cls, resistant, sensitive):
    _, _, _, classes = results
    row = classes.loc[(patient, clone)]
    assert row["class"] == cls
    assert (row["resistant"], row["sensitive"]) == (resistant, sensitive)


def test_resistant_classes_are_configurable(results):
    _, freqs, comparisons, _ = results
    classes = classify_clones(comparisons, freqs, resistant_classes=("expanding", "persistent"))
    classes = classes.set_index(["patient_id", "clone"])
    assert classes.loc[("P2", "B"), "resistant"] and classes.loc[("P1", "A"), "resistant"]
    assert not classes.loc[("P1", "C"), "resistant"]


def test_emergent_reports_diagnosis_upper_bound(results):
    _, _, _, classes = results
    row = classes.loc[("P2", "D")]
    hi = stats.binomtest(0, 300).proportion_ci(method="exact").high  # 1 - 0.025**(1/300)
    assert not row["detected_at_first"]
    assert row["first_ci_high"] == pytest.approx(hi)
    assert f"among 300 malignant cells (frequency < {100 * hi:.1f}%" in row["evidence"]


def test_small_significant_change_is_not_contracting(results):
    _, _, comps, classes = results
    # F falls 70% -> 48%: significant, but less than two-fold
    fl = comps[
        (comps.patient_id == "P2") & (comps.clone == "F") & (comps.comparison == "first_vs_last")
    ].iloc[0]
    assert fl.p_adj < 0.05
    assert classes.loc[("P2", "F"), "class"] == "persistent"
    strict = classify_clones(comps, results[1], min_fold=1.2).set_index(["patient_id", "clone"])
    assert strict.loc[("P2", "F"), "class"] == "contracting"


def test_one_timepoint_patient(results):
    _, _, comps, _ = results
    assert "P4" not in set(comps.patient_id)
    assert [s["patient_id"] for s in comps.attrs["skipped"]] == ["P4"]
    assert "one timepoint" in comps.attrs["skipped"][0]["reason"]
    with pytest.raises(InputError, match="P4"):
        compare_timepoints(results[1], strict=True)


def test_without_malignant_column_uses_clone_cells():
    obs = planted_obs().drop(columns="malignant")
    freqs = clone_frequencies(obs)
    row = freqs[(freqs.sample_id == "P1_relapse") & (freqs.clone == "A")].iloc[0]
    # the 3 clone-labelled "normal" cells of A now count
    assert (row.n_cells, row.n_malignant) == (183, 303)
    assert (freqs["compartment"] == "clone_assigned").all()


def test_two_samples_same_order_rejected():
    obs = planted_obs()
    obs.loc[obs.sample_id == "P1_relapse", "timepoint_order"] = 1
    with pytest.raises(InputError, match="P1_diagnosis"):
        clone_frequencies(obs)


def test_cohort_model_recovers_planted_trend():
    # binomial draws around log odds -2 + 0.8 * step + a patient offset
    rng = np.random.default_rng(0)
    rows = []
    for i, offset in enumerate([0.0, 0.5, -0.4]):
        for order in (1, 2, 3):
            n_res = rng.binomial(2000, 1 / (1 + np.exp(-(-2 + offset + 0.8 * order))))
            for clone, n in (("R", n_res), ("S", 2000 - n_res)):
                rows.append((f"P{i}", f"P{i}_{order}", f"t{order}", order, clone, n))
    counts = pd.DataFrame(
        rows, columns=["patient_id", "sample_id", "timepoint", "timepoint_order", "clone", "n"]
    )
    obs = counts.loc[counts.index.repeat(counts["n"])].drop(columns="n").reset_index(drop=True)
    freqs = clone_frequencies(obs, malignant_key=None)
    classes = classify_clones(compare_timepoints(freqs), freqs)
    assert set(classes.loc[classes.clone == "R", "class"]) == {"expanding"}
    summary, per = cohort_model(freqs, classes, surviving_classes=("expanding",))
    assert summary["ci_low"] < 0.8 < summary["ci_high"]
    assert summary["coef_log_odds_per_step"] == pytest.approx(0.8, abs=0.1)
    assert 0.2 < summary["dispersion"] < 5
    assert summary["n_observations"] == 9
    assert summary["fraction_detected_at_first"] == 1.0
    planted = counts[counts.clone == "R"].set_index("sample_id")["n"]
    assert per.set_index("sample_id")["surviving_cells"].to_dict() == planted.to_dict()


def test_cohort_fraction_detected_counts_emergent(results):
    _, freqs, comps, _ = results
    classes = classify_clones(comps, freqs)
    summary, _ = cohort_model(freqs, classes)
    # P1 (A, E) and P3 (H) detected at diagnosis; P2 has emergent D
    assert summary["n_patients_with_surviving"] == 3
    assert summary["n_patients_all_detected_at_first"] == 2
    assert summary["fraction_detected_at_first"] == pytest.approx(2 / 3)
    # shares of 0 or 1 (every clone of P2 survives) separate the model: flagged, not hidden
    assert "separation" in summary["note"]


def test_plots(results):
    _, freqs, _, classes = results
    fig = plot_clone_dynamics(freqs, "P2", classes=classes.reset_index())
    ax, ax2 = fig.axes
    assert len(ax.collections) == 3  # one stacked area per clone (B, D, F)
    labels = [t.get_text().split("\n")[0] for t in ax2.get_xticklabels()]
    assert labels == ["diagnosis", "on_treatment", "relapse"]
    plt.close(fig)
    fig = plot_cohort_overview(freqs, classes.reset_index())
    assert len(fig.axes[0].get_yticklabels()) == len(classes)
    plt.close(fig)


def test_cohort_without_clones_gives_empty_tables_with_columns():
    obs = pd.DataFrame(
        {
            "patient_id": ["P1"] * 4,
            "sample_id": ["S1", "S1", "S2", "S2"],
            "timepoint": ["diagnosis"] * 2 + ["relapse"] * 2,
            "timepoint_order": [1, 1, 2, 2],
            "clone": ["unassigned"] * 4,
            "malignant": [False] * 4,
        }
    )
    freqs = clone_frequencies(obs)
    classes = classify_clones(compare_timepoints(freqs), freqs)
    assert classes.empty and {"patient_id", "clone", "class", "resistant"} <= set(classes.columns)
    summary, _ = cohort_model(freqs, classes)
    assert summary["n_patients_with_surviving"] == 0


@pytest.mark.parametrize("n", [1, 30, 100, 2000])
def test_detection_limit_is_where_a_sample_sees_the_clone_with_95_percent_probability(n):
    from clonetrack.clones import dynamics

    limit = float(dynamics.detection_limit([n])[0])
    # independent computation: the chance of zero clone cells among n at that frequency is 5%
    assert stats.binom.pmf(0, n, limit) == pytest.approx(0.05)
    assert np.isnan(dynamics.detection_limit([0])[0])


def test_clopper_pearson_equals_scipys_exact_interval_at_the_edges():
    from clonetrack.clones.dynamics import clopper_pearson

    for n in (1, 2, 7, 72, 300):
        k = np.arange(n + 1)
        lo, hi = clopper_pearson(k, np.full(n + 1, n), confidence=0.9)
        for ki in k:
            ci = stats.binomtest(int(ki), n).proportion_ci(confidence_level=0.9, method="exact")
            assert lo[ki] == pytest.approx(ci.low, abs=1e-12)
            assert hi[ki] == pytest.approx(ci.high, abs=1e-12)
    lo, hi = clopper_pearson([0, 3], [0, 0])
    assert np.isnan(lo).all() and np.isnan(hi).all()


def _hand_written_bh(p):
    """Benjamini-Hochberg by its definition: p * m / rank, made monotone from the largest p
    down, capped at 1; NaN entries left out of m and kept as NaN."""
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    m = int(ok.sum())
    if m == 0:
        return out
    q = p[ok]
    order = np.argsort(q)
    adj = np.minimum.accumulate((q[order] * m / np.arange(1, m + 1))[::-1])[::-1]
    res = np.empty(m)
    res[order] = np.minimum(adj, 1.0)
    out[ok] = res
    return out


@pytest.mark.parametrize("seed", range(5))
def test_bh_equals_its_definition_on_random_p_with_nan(seed):
    rng = np.random.default_rng(seed)
    p = rng.uniform(size=200) ** 3  # many small p, so the step-up order matters
    p[rng.choice(200, 30, replace=False)] = np.nan
    p[:3] = [0.0, 1.0, p[3]]  # the bounds and a tie
    np.testing.assert_allclose(benjamini_hochberg(p), _hand_written_bh(p), rtol=1e-12)
    assert np.isnan(benjamini_hochberg(p)).sum() == 30
    assert np.isnan(benjamini_hochberg([np.nan, np.nan])).all()
    assert benjamini_hochberg([]).shape == (0,)


@pytest.mark.parametrize(
    "kwargs", [{"alpha": 0.0}, {"alpha": 1.0}, {"min_fold": 0.5}, {"absent_upper": 1.0}]
)
def test_classify_clones_rejects_thresholds_outside_their_range(results, kwargs):
    _, freqs, comps, _ = results
    with pytest.raises(InputError, match="classify_clones: need min_fold >= 1"):
        classify_clones(comps, freqs, **kwargs)


def clone_less_obs():
    """Two patients, nothing clone-labelled; P2's remission sample has no malignant cell."""
    return pd.DataFrame(
        {
            "patient_id": ["P1"] * 4 + ["P2"] * 4,
            "sample_id": ["S1", "S1", "S2", "S2", "T1", "T1", "T2", "T2"],
            "timepoint": ["diagnosis", "diagnosis", "relapse", "relapse"]
            + ["diagnosis", "diagnosis", "remission", "remission"],
            "timepoint_order": [1, 1, 2, 2, 1, 1, 2, 2],
            "clone": ["unassigned"] * 8,
            "malignant": [True, False, True, True, True, True, False, False],
        }
    )


def _round_trip(table, tmp_path, name):
    """The table as the plotting step reads it back from the TSV the dynamics step wrote."""
    path = tmp_path / f"{name}.tsv"
    table.to_csv(path, sep="\t", index=False)
    return pd.read_csv(path, sep="\t", dtype={"patient_id": str, "clone": str})


def _texts(fig):
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def test_cohort_overview_of_a_cohort_without_clones(tmp_path):
    freqs = clone_frequencies(clone_less_obs())
    classes = classify_clones(compare_timepoints(freqs), freqs)
    assert freqs.empty and "patient_id" in freqs.columns
    # the samples still count: P2's remission holds no malignant cell
    samples = freqs.attrs["samples"].set_index("sample_id")
    assert samples.loc["T2", "n_malignant_total"] == 0 and samples.loc["S2", "n_sample_cells"] == 2
    for f, c in [
        (freqs, classes),
        (_round_trip(freqs, tmp_path, "f"), _round_trip(classes, tmp_path, "c")),
    ]:
        fig = plot_cohort_overview(f, c)
        assert _texts(fig) == ["No clone in any sample (see the clone sources table)."]
        fig.savefig(tmp_path / "overview.png")
        plt.close(fig)


def test_dynamics_figures_without_clones_or_without_malignant_cells(tmp_path):
    obs = clone_less_obs()
    # P3: clones at diagnosis, a remission sample without malignant cells
    p3 = [("P3", "U1", "diagnosis", 1, clone, True) for clone in "AAB"]
    p3 += [("P3", "U2", "remission", 2, "unassigned", False)] * 3
    # P4: clone-labelled cells, none of them malignant
    p4 = [("P4", f"V{o}", f"t{o}", o, "X", False) for o in (1, 2)]
    obs = pd.concat([obs, pd.DataFrame(p3 + p4, columns=obs.columns)], ignore_index=True)
    freqs = clone_frequencies(obs)
    classes = classify_clones(compare_timepoints(freqs), freqs)
    summary, _ = cohort_model(freqs, classes)
    assert summary["n_patients_with_surviving"] == 0 and np.isnan(summary["p"])
    freqs = _round_trip(freqs, tmp_path, "f")
    classes = _round_trip(classes, tmp_path, "c")
    messages = {
        "P1": ["P1: no clones were defined (see the clone sources table)."],
        "P3": [],
        "P4": ["no malignant cell with a clone at any timepoint"],
    }
    for patient, texts in messages.items():
        fig = plot_clone_dynamics(freqs, patient, classes=classes)
        assert _texts(fig) == texts
        fig.savefig(tmp_path / f"{patient}.png")
        plt.close(fig)
    # P3's remission has no frequency, so the stack holds the diagnosis alone (A 2/3, B 1/3)
    fig = plot_clone_dynamics(freqs, "P3", classes=classes)
    ax, ax2 = fig.axes
    assert len(ax.collections) == 2
    assert [t.get_text().split("\n")[0] for t in ax2.get_xticklabels()] == [
        "diagnosis",
        "remission",
    ]
    assert ax2.lines[0].get_ydata().tolist() == [1.0, 0.0]  # malignant fraction
    plt.close(fig)
    fig = plot_cohort_overview(freqs, classes)
    assert len(fig.axes[0].get_yticklabels()) == 3  # P3 A, P3 B, P4 X
    plt.close(fig)
