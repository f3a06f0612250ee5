"""The barcoded mouse toy end to end with ``organism: mouse`` (resources/toy_mouse/README.md):
mouse QC gene patterns, the mouse marker panel, copy number skipped for want of mouse gene
positions, and clones from lentiviral barcodes with their planted trajectories."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from clonetrack.io import read_counts

pytestmark = pytest.mark.workflow

TOY = "resources/toy_mouse"
#: A planted trajectory and the class clone dynamics must give it (docs/clones.md).
EXPECTED_CLASS = {"contracting": "contracting", "expanding": "expanding", "stable": "persistent"}


@pytest.fixture(scope="module")
def truth(mouse_run) -> pd.DataFrame:
    cells = pd.read_csv(mouse_run / TOY / "truth/cells.tsv", sep="\t")
    cells.index = cells["sample_id"] + "_" + cells["barcode"]
    return cells


def test_mouse_gene_patterns_find_mitochondrial_and_haemoglobin_genes(mouse_run, truth):
    cells = pd.read_csv(mouse_run / "results/tables/qc_cells.tsv.gz", sep="\t")
    ledger = pd.read_csv(mouse_run / "results/tables/qc_ledger.tsv", sep="\t")
    assert ledger["note"].isna().all(), ledger["note"].tolist()  # every pattern matched genes
    assert (cells["pct_counts_mt"] > 0).mean() > 0.99
    assert (cells["pct_counts_ribo"] > 0).all()
    cells.index = cells["sample_id"] + "_" + cells["barcode"]
    cells = cells.join(truth[["low_quality", "cell_type"]])
    # the planted low-quality cells (few UMIs and/or 30-70% mitochondrial) are removed
    assert (cells.loc[cells["low_quality"], "qc_reason"] != "kept").mean() >= 0.9
    # the haemoglobin fraction is that of the mouse genes Hba-*/Hbb-*, computed independently
    counts = read_counts(mouse_run / TOY / "counts/M1_baseline", sample_id="M1_baseline")
    hb = counts.var_names.str.match(r"Hb[ab]-")
    assert hb.sum() == 3
    share = 100 * np.asarray(counts.X[:, hb].sum(1)).ravel() / np.asarray(counts.X.sum(1)).ravel()
    expected = pd.Series(share, index="M1_baseline_" + counts.obs["barcode"].to_numpy())
    assert np.allclose(cells.loc[expected.index, "pct_counts_hb"], expected)


def test_mouse_panel_annotates_the_planted_cell_types(mouse_run, truth):
    obs = ad.read_h5ad(mouse_run / "results/final/adata.h5ad", backed="r").obs
    good = truth.loc[obs.index]
    good = good[~good["doublet"] & ~good["low_quality"]]
    called = obs.loc[good.index, "cell_type"].astype(str)
    assigned = called != "unassigned"
    agreement = (called[assigned] == good.loc[assigned, "cell_type"]).mean()
    print(f"assigned {assigned.mean():.3f}, agreement {agreement:.3f}")
    assert assigned.mean() >= 0.8
    assert agreement >= 0.8


def test_copy_number_is_skipped_with_its_reason(mouse_run):
    for mouse in ("M1", "M2"):
        sources = pd.read_csv(mouse_run / f"results/clones/patient~{mouse}/sources.tsv", sep="\t")
        assert (sources["source"] == "lineage_barcode").all()
        assert sources["note"].str.contains("no gene positions for organism mouse").all()


def test_barcode_clones_recover_the_planted_clones_and_their_classes(mouse_run, truth):
    planted = pd.read_csv(mouse_run / TOY / "truth/clones.tsv", sep="\t")
    classes = pd.read_csv(mouse_run / "results/tables/clones/classes.tsv", sep="\t")
    for mouse in ("M1", "M2"):
        called = pd.read_csv(mouse_run / f"results/clones/patient~{mouse}/cells.tsv.gz", sep="\t")
        called = called.set_index("cell")[["clone"]].rename(columns={"clone": "clone_id"})
        called = called.join(truth[["clone", "malignant", "doublet"]])
        singlets = called[~called["doublet"]]
        for _, clone in planted[planted["patient_id"] == mouse].iterrows():
            members = singlets[singlets["clone"] == clone["clone"]]
            label = members["clone_id"].value_counts()
            top = label.index[0]
            # the called clone holds most of the planted clone's cells, and little else
            recall = label.iloc[0] / len(members)
            precision = (
                singlets.loc[singlets["clone_id"] == top, "clone"] == clone["clone"]
            ).mean()
            print(mouse, clone["clone"], top, f"recall {recall:.2f} precision {precision:.2f}")
            assert top != "unassigned" and recall >= 0.75 and precision >= 0.95
            row = classes[(classes["patient_id"] == mouse) & (classes["clone"] == top)].iloc[0]
            assert row["class"] == EXPECTED_CLASS[clone["trajectory"]]
            assert bool(row["resistant"]) == bool(clone["resistant"])
        # host cells carry no barcode: none is called leukaemic
        normal = singlets[~singlets["malignant"].astype(bool)]
        assert (normal["clone_id"] == "unassigned").mean() >= 0.98
