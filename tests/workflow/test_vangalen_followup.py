"""Malignant cells and clones on real longitudinal AML marrow, against published labels.

van Galen et al. 2019 follow-up samples (tests/data/vangalen2019_followup/README.md). The
published ``PredictionRefined`` labels are read by these tests only: the workflow sees counts,
genotype tables and the healthy flag, never a patient's labels. Fractions are over the cells with
a published call (``malignant`` or ``normal``; ``unclear`` cells are left out of both sides).
"""

from pathlib import Path

import anndata as ad
import pandas as pd
import pytest

pytestmark = [pytest.mark.workflow, pytest.mark.realdata]

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data" / "vangalen2019_followup"


@pytest.fixture(scope="module")
def cells(followup_run):
    sheet = pd.read_csv(DATA / "samples.tsv", sep="\t")
    frames = []
    for sample_id in sheet["sample_id"]:
        (path,) = DATA.glob(f"*_{sample_id}.anno.txt.gz")
        anno = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
        anno.index = sample_id + "_" + anno["Cell"]
        frames.append(anno[["CellType", "PredictionRefined", "MutTranscripts"]])
    published = pd.concat(frames)
    final = ad.read_h5ad(followup_run / "results/final/adata.h5ad")
    obs = final.obs.join(published)
    obs["known"] = obs["PredictionRefined"].isin(["malignant", "normal"])
    obs["published_malignant"] = obs["PredictionRefined"] == "malignant"
    obs["malignant"] = obs["malignant"].astype(bool)
    return obs


def fractions(cells):
    known = cells[cells["known"]]
    return known.groupby("sample_id", observed=True).agg(
        published=("published_malignant", "mean"),
        called=("malignant", "mean"),
        n=("malignant", "size"),
    )


def test_every_cell_accounted_for_and_small_samples_run(followup_run, cells):
    ledger = pd.read_csv(followup_run / "results/tables/qc_ledger.tsv", sep="\t")
    assert len(ledger) == 15
    assert ledger["n_cells_kept"].sum() == len(cells)
    frequencies = pd.read_csv(followup_run / "results/tables/clones/frequencies.tsv", sep="\t")
    assert {"detection_limit", "malignant_fraction_detection_limit"} <= set(frequencies.columns)


def test_remission_samples_are_not_called_leukaemic(cells):
    """Every sample published below 5% malignant is called below 8%."""
    table = fractions(cells)
    low = table[table["published"] < 0.05]
    assert len(low) >= 5, table
    assert (low["called"] < 0.08).all(), low


def test_sample_malignant_fractions_follow_the_published_ones(cells):
    table = fractions(cells)
    error = (table["called"] - table["published"]).abs()
    assert error.mean() <= MEAN_FRACTION_ERROR, table
    assert error.max() <= MAX_FRACTION_ERROR, table


def test_cell_line_and_healthy_donor(cells):
    line = cells[cells["patient_id"] == "OCI-AML3"]
    donor = cells[cells["patient_id"].isin(["BM1", "BM2", "BM5"])]
    assert line["malignant"].mean() >= 0.95
    assert donor["malignant"].mean() <= 0.01


@pytest.mark.parametrize("patient", ["AML328", "AML420B"])
def test_malignant_cells_against_published_labels(cells, patient):
    obs = cells[(cells["patient_id"] == patient) & cells["known"]]
    called, truth = obs["malignant"], obs["published_malignant"]
    f1 = 2 * (called & truth).sum() / (called.sum() + truth.sum())
    assert truth.sum() >= 50
    assert f1 >= MALIGNANT_F1[patient], f1


def test_tp53_subclones_of_aml328_are_distinct_genotype_clones_followed_over_time(cells):
    obs = cells[cells["patient_id"] == "AML328"]
    q144 = obs["MutTranscripts"].str.contains("TP53.Q144P", regex=False)
    p152 = obs["MutTranscripts"].str.contains("TP53.P152R", regex=False)
    clone_q = obs.loc[q144 & (obs["clone"] != "unassigned"), "clone"].value_counts()
    clone_p = obs.loc[p152 & (obs["clone"] != "unassigned"), "clone"].value_counts()
    assert len(clone_q) and len(clone_p)
    top_q, top_p = clone_q.index[0], clone_p.index[0]
    assert top_q != top_p
    assert "TP53.Q144P" in top_q and "TP53.P152R" in top_p
    assert (obs["clone_source"] == "genotype").all()
    for clone in (top_q, top_p):
        assert obs.loc[obs["clone"] == clone, "sample_id"].nunique() >= 2


def test_absence_at_diagnosis_states_its_bound(followup_run):
    classes = pd.read_csv(followup_run / "results/tables/clones/classes.tsv", sep="\t")
    absent_first = classes[classes["class"].isin(["emergent"])]
    assert absent_first["evidence"].str.contains("detection limit").all()


# measured on this subset (docs/malignant.md): mean error 0.034, largest 0.164 (AML420B-D0, few
# seeds: under-called); F1 AML328 0.892, AML420B 0.354 (a handful of genotyped cells and weak
# copy-number evidence: the known gap)
MEAN_FRACTION_ERROR = 0.05
MAX_FRACTION_ERROR = 0.2
MALIGNANT_F1 = {"AML328": 0.85, "AML420B": 0.25}
