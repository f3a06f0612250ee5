"""The workflow on real AML marrow (van Galen et al. 2019 subset) agrees with published labels."""

from pathlib import Path

import anndata as ad
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

pytestmark = [pytest.mark.workflow, pytest.mark.realdata]

REPO = Path(__file__).resolve().parents[2]
DATA = "tests/data/vangalen2019"
NORMAL_TYPES = {"HSC", "Prog", "GMP", "ProMono", "Mono", "cDC", "pDC", "earlyEry", "lateEry",
                "ProB", "B", "Plasma", "T", "CTL", "NK"}


@pytest.fixture(scope="module")
def published(vangalen_run):
    sheet = pd.read_csv(REPO / DATA / "samples.tsv", sep="\t")
    frames = []
    for _, row in sheet.iterrows():
        (path,) = (REPO / DATA).glob(f"*_{row['sample_id']}.anno.txt.gz")
        anno = pd.read_csv(path, sep="\t")
        anno.index = row["sample_id"] + "_" + anno["Cell"].astype(str)
        frames.append(anno[["CellType", "PredictionRefined"]])
    return pd.concat(frames)


@pytest.fixture(scope="module")
def final(vangalen_run):
    return ad.read_h5ad(vangalen_run / "results/final/adata.h5ad")


def test_every_cell_accounted_for(vangalen_run, published, final):
    ledger = pd.read_csv(vangalen_run / "results/tables/qc_ledger.tsv", sep="\t")
    assert ledger["n_cells_in"].sum() == len(published)
    assert final.n_obs == ledger["n_cells_kept"].sum()
    assert set(final.obs_names) <= set(published.index)


def test_annotation_agrees_with_published_cell_types_on_normal_cells(published, final):
    labels = published.loc[final.obs_names]
    normal = (labels["PredictionRefined"] == "normal") & labels["CellType"].isin(NORMAL_TYPES)
    ours = final.obs.loc[normal, "cell_type"].astype(str)
    theirs = labels.loc[normal, "CellType"]
    assigned = ours != "unassigned"
    accuracy = (ours[assigned] == theirs[assigned]).mean()
    ari = adjusted_rand_score(theirs[assigned], ours[assigned])
    assert normal.sum() >= 500
    assert accuracy >= ANNOTATION_ACCURACY, accuracy
    assert ari >= ANNOTATION_ARI, ari
    assert (~assigned).mean() <= 0.25


def test_single_timepoint_patients_are_reported_not_compared(vangalen_run):
    summary = pd.read_csv(vangalen_run / "results/tables/de/timepoint_de_summary.tsv", sep="\t")
    results = pd.read_csv(vangalen_run / "results/tables/de/timepoint_de.tsv", sep="\t")
    assert results.empty
    assert summary.empty or summary["status"].str.startswith("skipped").all()
    classes = pd.read_csv(vangalen_run / "results/tables/clones/classes.tsv", sep="\t")
    assert not classes["resistant"].astype(str).eq("True").any()


@pytest.mark.parametrize("patient", ["AML1012", "AML419A"])
def test_cnv_malignant_call_against_published_prediction(published, final, patient):
    """Copy-number calls on shallow Seq-Well cells are weak: measured precision 0.81 and 0.93
    (base rates 0.78 and 0.90), recall 0.57 and 0.59. Assert they beat calling every cell."""
    obs = final.obs[final.obs["patient_id"] == patient]
    truth = published.loc[obs.index, "PredictionRefined"]
    known = truth.isin(["malignant", "normal"])
    called = obs["malignant"].astype(bool)[known]
    malignant = truth[known] == "malignant"
    precision = (called & malignant).sum() / called.sum()
    recall = (called & malignant).sum() / malignant.sum()
    assert precision > malignant.mean()
    assert recall >= 0.5


def test_patient_without_detectable_cnv_is_said_so(vangalen_run, final):
    sources = pd.read_csv(vangalen_run / "results/clones/patient~AML329/sources.tsv", sep="\t")
    if final.obs.loc[final.obs["patient_id"] == "AML329", "malignant"].any():
        pytest.fail("AML329 has no copy-number change detectable in this subset (measured)")
    assert sources["note"].str.contains("no copy-number change").all()
    healthy = final.obs[final.obs["patient_id"].isin(["BM1", "BM2"])]
    assert not healthy["malignant"].any()


# measured: 76% of assigned normal cells match the published CellType (ARI 0.72), 16% unassigned
ANNOTATION_ACCURACY = 0.7
ANNOTATION_ARI = 0.65
