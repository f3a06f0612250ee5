"""The cohort question on the toy cohort by response, whose truth is planted
(resources/toy_cohort/README.md): refractory patients have a monocytic leukaemia at diagnosis,
relapsing patients a small clone at diagnosis that expands, venetoclax AUC follows the monocytic
share of the malignant cells and cytarabine AUC is noise."""

from __future__ import annotations

import pandas as pd
import pytest

pytestmark = pytest.mark.workflow

TABLES = "results/tables/cohort"


@pytest.fixture(scope="module")
def tests_table(cohort_run) -> pd.DataFrame:
    return pd.read_csv(cohort_run / TABLES / "tests.tsv", sep="\t")


@pytest.fixture(scope="module")
def truth(cohort_run) -> pd.DataFrame:
    return pd.read_csv(cohort_run / "resources/toy_cohort/patients.tsv", sep="\t")


def test_monocytic_share_at_diagnosis_tells_refractory_from_responders(tests_table):
    row = tests_table[
        (tests_table["contrast"] == "primary_resistance")
        & (tests_table["feature"] == "malignant_group:monocytic")
    ].iloc[0]
    print(row.to_dict())
    assert row["timepoint"] == "first"
    assert (row["n_case"], row["n_control"]) == (4, 8)
    assert row["q"] < 0.05
    assert row["difference"] > 0 and row["difference_ci_low"] > 0  # the right sign
    assert row["loo_auroc_ci_low"] > 0.5 and row["auroc_ci_low"] > 0.5


def test_venetoclax_follows_the_monocytic_share_and_the_noise_drug_does_not(cohort_run):
    table = pd.read_csv(cohort_run / TABLES / "correlations.tsv", sep="\t")
    ven = table[
        (table["measure"] == "DST:venetoclax_AUC")
        & (table["feature"] == "malignant_group:monocytic")
    ].iloc[0]
    print(ven.to_dict())
    assert ven["rho"] > 0 and ven["q"] < 0.05
    assert ven["rho_ci_low"] > 0
    noise = table[table["measure"] == "DST:cytarabine_AUC"]
    print(noise.nsmallest(3, "q").to_dict("records"))
    assert (noise["q"].dropna() >= 0.05).all()


def test_expanding_clone_is_reported_present_at_diagnosis_in_relapsing_patients(cohort_run, truth):
    answers = pd.read_csv(cohort_run / TABLES / "answers.tsv", sep="\t").set_index("patient_id")
    relapsing = truth.loc[truth["response"] == "relapse", "patient_id"]
    for patient in relapsing:
        text = answers.loc[patient, "answer"]
        print(patient, text)
        assert answers.loc[patient, "n_resistant"] >= 1, text
        assert "present at diagnosis" in text
        assert "not detected" not in text
    features = pd.read_csv(cohort_run / TABLES / "features.tsv", sep="\t")
    first = features[features["timepoint"] == "diagnosis"].set_index("patient_id")
    assert (first.loc[relapsing, "clone:resistant_at_first"] == 1).all()


def test_every_patient_has_an_answer_and_the_tables_account_for_them(cohort_run, truth):
    answers = pd.read_csv(cohort_run / TABLES / "answers.tsv", sep="\t")
    assert sorted(answers["patient_id"]) == sorted(truth["patient_id"])
    assert (
        answers["response"].to_numpy()
        == truth.set_index("patient_id").loc[answers["patient_id"], "response"].to_numpy()
    ).all()
    notes = pd.read_csv(cohort_run / TABLES / "notes.tsv", sep="\t")
    assert notes.empty, notes


def test_sccoda_finds_the_monocytic_shift(cohort_run):
    composition = pd.read_csv(cohort_run / TABLES / "composition.tsv", sep="\t")
    primary = composition[composition["contrast"] == "primary_resistance"].set_index("cell_type")
    print(primary)
    assert primary.loc["Mono", "log2fc"] > 0
    assert (
        bool(primary.loc["Mono", "credible"]) or primary.loc["Mono", "inclusion_probability"] > 0.5
    )
