"""Cohort tests: the user's patient and measurement tables, features per sample, group tests with
the patient as the replicate, correlations, and each patient's answer in words."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from clonetrack import cohort
from clonetrack.errors import InputError
from clonetrack.io import tables
from scipy import stats

LEVELS = ["sustained_response", "relapse", "primary_refractory"]
SHEET_PATIENTS = ["P1", "P2", "P3", "P4"]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# ---------------------------------------------------------------------------------------------
# patient table


def test_patient_table_with_notes_for_missing_and_extra_patients(tmp_path):
    path = write(
        tmp_path,
        "patients.tsv",
        "patient_id\tresponse\tage\nP1\trelapse\t70\nP2\t\t61\nP3\tprimary_refractory\t55\n"
        "P9\trelapse\t40\n",
    )
    table, notes = tables.read_patient_table(path, levels=LEVELS, sheet_patients=SHEET_PATIENTS)
    assert list(table.index) == ["P1", "P2", "P3"]
    assert table.loc["P3", "response"] == "primary_refractory"
    assert notes == [
        f"patients of the sheet missing from patient table {path}, not in the cohort tests: ['P4']",
        f"patients without a response in patient table {path}, not in the cohort tests: ['P2']",
        f"patients of patient table {path} not in the sample sheet, ignored: ['P9']",
    ]


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "patient_id\tresponse\nP1\trelapse\nP1\trelapse\n",
            "patient_id listed more than once in row(s) 1, 2 (P1): give each patient one row",
        ),
        (
            "patient_id\tresponse\nP1\trefractory\n",
            "column 'response': ['refractory'] in row(s) 1 are not among cohort.response_levels",
        ),
        (
            "patient\tresponse\nP1\trelapse\n",
            "lacks column(s) patient_id (found: patient, response)",
        ),
    ],
)
def test_bad_patient_tables_name_row_and_column(tmp_path, text, message):
    path = write(tmp_path, "patients.tsv", text)
    with pytest.raises(InputError) as err:
        tables.read_patient_table(path, levels=LEVELS, sheet_patients=SHEET_PATIENTS)
    assert message in str(err.value)
    assert str(path) in str(err.value)


# ---------------------------------------------------------------------------------------------
# measurement tables


SHEET = pd.DataFrame(
    {"patient_id": ["P1", "P1", "P2"]}, index=pd.Index(["P1_d", "P1_r", "P2_d"], name="sample_id")
)


def test_measurements_by_patient_and_by_sample(tmp_path):
    dst = write(
        tmp_path,
        "dst.tsv",
        "patient_id\tassay\tfeature\tvalue\nP1\tDST\tven\t0.4\n"
        "P2\tDST\tven\tNA\nP7\tDST\tven\t0.9\n",
    )
    bh3 = write(
        tmp_path, "bh3.csv", "sample_id,assay,feature,value\nP1_d,BH3,BCL2,12\nP1_r,BH3,BCL2,30\n"
    )
    table, notes = tables.read_measurements(
        [str(dst), str(bh3)], sheet_patients=["P1", "P2"], sheet_samples=SHEET
    )
    assert table[["patient_id", "sample_id", "measure", "value"]].values.tolist() == [
        ["P1", "", "DST:ven", 0.4],
        ["P1", "P1_d", "BH3:BCL2", 12.0],
        ["P1", "P1_r", "BH3:BCL2", 30.0],
    ]
    assert notes == [
        f"measurement table {dst}: rows of patient_ids not in the sample sheet ignored: ['P7']"
    ]


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "patient_id\tassay\tfeature\tvalue\nP1\tDST\tven\t0.4\nP2\tDST\tven\thigh\n",
            "column 'value': not a number in row(s) 2 (e.g. 'high')",
        ),
        (
            "patient_id\tassay\tfeature\tvalue\nP1\tDST\tven\t0.4\nP1\tDST\tven\t0.5\n",
            "patient_id x assay x feature given more than once in row(s) 1, 2",
        ),
        (
            "patient_id\tassay\tfeature\tvalue\nX1\tDST\tven\t0.4\n",
            "no row names a patient_id of the sample sheet (e.g. 'X1')",
        ),
        ("patient_id\tdrug\tvalue\nP1\tven\t0.4\n", "lacks column(s) assay, feature"),
    ],
)
def test_bad_measurement_tables_name_row_and_column(tmp_path, text, message):
    path = write(tmp_path, "m.tsv", text)
    with pytest.raises(InputError, match=None) as err:
        tables.read_measurements([str(path)], sheet_patients=["P1", "P2"], sheet_samples=SHEET)
    assert message in str(err.value) and str(path) in str(err.value)


# ---------------------------------------------------------------------------------------------
# statistics


def test_compare_groups_against_scipy_and_planted_shift():
    rng = np.random.default_rng(0)
    patients = [f"P{i}" for i in range(16)]
    groups = pd.Series(["case"] * 8 + ["control"] * 8, index=patients)
    shifted = np.r_[rng.normal(2, 0.5, 8), rng.normal(0, 0.5, 8)]
    noise = rng.normal(0, 1, 16)
    features = pd.DataFrame({"shifted": shifted, "noise": noise}, index=patients)
    out = cohort.compare_groups(features, groups, n_boot=500, seed=0).set_index("feature")
    expected = stats.mannwhitneyu(shifted[:8], shifted[8:], alternative="two-sided")
    assert out.loc["shifted", "p"] == pytest.approx(expected.pvalue)
    assert out.loc["shifted", "difference"] == pytest.approx(
        shifted[:8].mean() - shifted[8:].mean()
    )
    assert out.loc["shifted", "difference_ci_low"] > 0
    assert out.loc["shifted", "auroc"] == pytest.approx(expected.statistic / 64)
    assert out.loc["shifted", "q"] < 0.05
    assert out.loc["noise", "q"] > 0.05
    # BH over the two features
    assert out["q"].tolist() == pytest.approx(stats.false_discovery_control(out["p"]).tolist())


def test_compare_groups_says_when_a_group_is_too_small():
    groups = pd.Series(["case", "control", "control", "control"], index=list("abcd"))
    out = cohort.compare_groups(pd.DataFrame({"x": [1.0, 2, 3, 4]}, index=list("abcd")), groups)
    assert out.loc[0, "status"] == "skipped: fewer than 3 patients with a value in a group"
    assert np.isnan(out.loc[0, "p"])


def test_loo_auroc_separates_and_does_not_invent_separation():
    rng = np.random.default_rng(1)
    index = [f"P{i}" for i in range(20)]
    groups = pd.Series(["case"] * 10 + ["control"] * 10, index=index)
    separated = pd.Series(np.r_[rng.normal(3, 0.3, 10), rng.normal(0, 0.3, 10)], index=index)
    result = cohort.loo_auroc(separated, groups)
    assert result["loo_auroc"] == 1.0
    # a perfect separation of 20 patients is not certainty: the interval stays below 1
    assert 0.8 < result["loo_auroc_ci_low"] < 1.0 and result["loo_auroc_ci_high"] == 1.0
    noise = pd.Series(rng.normal(0, 1, 20), index=index)
    result = cohort.loo_auroc(noise, groups)
    assert result["loo_auroc_ci_low"] < 0.5 < result["loo_auroc_ci_high"]


def test_auroc_interval_is_proper_and_covers_by_simulation():
    low, high = cohort.auroc_interval(0.8, 10, 10)
    assert 0.5 < low < 0.8 < high < 1
    # narrower with more patients; a perfect separation of 4 vs 8 is still uncertain
    assert cohort.auroc_interval(0.8, 40, 40)[0] > low
    assert 0.5 < cohort.auroc_interval(1.0, 4, 8)[0] < 0.8
    # coverage of the 95% interval for a true AUROC of 0.75 with 8 vs 8 patients
    rng = np.random.default_rng(3)
    shift = np.sqrt(2) * stats.norm.ppf(0.75)
    covered = 0
    for _ in range(400):
        case, control = rng.normal(shift, 1, 8), rng.normal(0, 1, 8)
        auc = (case[:, None] > control[None, :]).mean()
        low, high = cohort.auroc_interval(auc, 8, 8)
        covered += low <= 0.75 <= high
    assert covered / 400 > 0.9


def test_spearman_table_matches_scipy_with_an_interval():
    rng = np.random.default_rng(2)
    x = rng.normal(size=15)
    measures = pd.DataFrame({"ven": x + rng.normal(0, 0.3, 15)})
    features = pd.DataFrame({"mono": x, "other": rng.normal(size=15)})
    out = cohort.spearman_table(measures, features).set_index("feature")
    rho, p = stats.spearmanr(measures["ven"], features["mono"])
    assert out.loc["mono", "rho"] == pytest.approx(rho)
    assert out.loc["mono", "p"] == pytest.approx(p)
    assert out.loc["mono", "rho_ci_low"] < rho < out.loc["mono", "rho_ci_high"]
    assert out.loc["mono", "q"] < 0.05 < out.loc["other", "q"]


def test_composition_shares_and_unknown_denominators():
    obs = pd.DataFrame(
        {
            "sample_id": ["a"] * 4 + ["b"] * 2,
            "cell_type": ["Mono", "Mono", "HSC", "T", "T", "B"],
            "malignant": [True, True, True, False, False, False],
        }
    )
    out = cohort.composition_features(obs, groups={"monocytic": ["ProMono", "Mono"]})
    assert out.loc["a", "malignant_fraction"] == 0.75
    assert out.loc["a", "malignant_group:monocytic"] == pytest.approx(2 / 3)
    assert (
        out.loc["a", ["composition_all:Mono", "composition_all:HSC", "composition_all:T"]].sum()
        == 1
    )
    # no malignant cell: the share among malignant cells is unknown, not 0
    assert out.loc["b", "malignant_fraction"] == 0
    assert np.isnan(out.loc["b", "malignant_group:monocytic"])


def test_patient_answer_states_detection_or_its_bound():
    freqs = pd.DataFrame(
        {
            "patient_id": ["P1", "P1"],
            "sample_id": ["d", "r"],
            "timepoint": ["diagnosis", "relapse"],
            "timepoint_order": [0, 1],
            "malignant_fraction": [0.5, 0.6],
        }
    )
    classes = pd.DataFrame(
        {
            "patient_id": ["P1", "P1"],
            "clone": ["A", "B"],
            "resistant": [True, True],
            "detected_at_first": [True, False],
            "first_timepoint": ["diagnosis", "diagnosis"],
            "first_frequency": [0.1, 0.0],
            "first_ci_low": [0.05, 0.0],
            "first_ci_high": [0.18, 0.03],
        }
    )
    out = cohort.patient_answers(freqs, classes, pd.Series({"P1": "relapse"}), ["P1"])
    assert out.loc[0, "answer"].splitlines() == [
        "malignant 50.0% at diagnosis -> 60.0% at relapse",
        "resistant A: present at diagnosis, 10.0% (5.0%-18.0%)",
        "resistant B: not detected at diagnosis, < 3.0%",
    ]


def test_answers_and_figures_of_a_cohort_without_clones():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from clonetrack import pl
    from clonetrack.clones.dynamics import CLASS_COLUMNS, clone_frequencies

    obs = pd.DataFrame(
        {
            "patient_id": ["P1", "P1", "P2", "P2"],
            "sample_id": ["a", "b", "c", "d"],
            "timepoint": ["diagnosis", "remission"] * 2,
            "timepoint_order": [1, 2, 1, 2],
            "clone": ["unassigned"] * 4,
            "malignant": [True, False, False, False],
        }
    )
    freqs = clone_frequencies(obs)
    classes = pd.DataFrame(columns=list(CLASS_COLUMNS))
    answers = cohort.patient_answers(freqs, classes, pd.Series({"P1": "relapse"}), ["P1", "P2"])
    assert answers["answer"].tolist() == ["no clones", "no clones"]
    assert answers["n_clones"].tolist() == [0, 0]
    features = cohort.clone_features(classes)
    assert features.empty and "clone:n_resistant" in features.columns

    fig = pl.patient_panels(freqs, classes, answers)
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert titles == ["P1 (relapse)", "P2 (response not given)"]
    plt.close(fig)
    no_tests = pd.DataFrame(columns=["status", "p", "contrast", "timepoint", "feature"])
    fig = pl.biomarker_panels({}, pd.Series(dtype=str), no_tests, [])
    assert "no cohort test could be run" in fig.axes[0].texts[0].get_text()
    plt.close(fig)
    fig = pl.correlation_panels(pd.DataFrame(), pd.DataFrame(), pd.DataFrame(columns=["p"]))
    assert "too few patients" in fig.axes[0].texts[0].get_text()
    plt.close(fig)
    fig = pl.plot_signature_scores(pd.DataFrame(), signatures=["stem"])
    assert fig.axes[0].texts[0].get_text() == "No clone classed resistant or sensitive."
    plt.close(fig)
