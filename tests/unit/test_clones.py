"""Clone assignment from tables and lineage barcodes, including the real CellTag matrix."""

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from clonetrack.clones import (
    assign_given_clones,
    attach_lineage_clones,
    call_lineage_clones,
)
from clonetrack.errors import InputError

CELLTAG = Path(__file__).parents[1] / "data" / "celltag"


def cells(n_per_sample=4, samples=("S1", "S2")):
    obs = pd.DataFrame(
        [(s, f"AC{i:02d}") for s in samples for i in range(n_per_sample)],
        columns=["sample_id", "barcode"],
    )
    obs.index = obs["sample_id"] + "_" + obs["barcode"]
    return ad.AnnData(X=sp.csr_matrix((len(obs), 1)), obs=obs)


def test_given_clones_touch_only_the_sample_and_report_everything():
    adata = cells()
    table = pd.DataFrame(
        {
            "barcode": ["AC00", "AC01", "AC02", "AC02", "ZZ99"],
            "clone_id": ["c1", "c1", "c2", "c2", "c3"],
            "confidence": [0.9, 0.2, 0.8, 0.95, 0.9],
        }
    )
    report, unmatched = assign_given_clones(adata, table, sample_id="S1", min_confidence=0.5)
    s1 = adata.obs[adata.obs.sample_id == "S1"]
    assert s1["clone"].tolist() == ["c1", "unassigned", "c2", "unassigned"]
    assert (s1["clone_source"] == "given").all()
    s2 = adata.obs[adata.obs.sample_id == "S2"]
    assert (s2["clone"] == "unassigned").all() and (s2["clone_source"] == "none").all()
    assert report == {
        "n_cells": 4,
        "n_assigned": 2,
        "n_low_confidence": 1,
        "n_table_rows_unmatched": 1,
    }
    assert unmatched["barcode"].tolist() == ["ZZ99"]
    assert adata.uns["clonetrack"]["assign_given_clones"]["S1"]["min_confidence"] == 0.5

    # a second sample keeps the first one's labels
    assign_given_clones(
        adata, pd.DataFrame({"barcode": ["AC03"], "clone_id": ["x"]}), sample_id="S2"
    )
    assert adata.obs.loc["S1_AC00", "clone"] == "c1"
    assert adata.obs.loc["S2_AC03", "clone"] == "x"


def test_conflicting_duplicate_barcodes_name_the_rows():
    table = pd.DataFrame({"barcode": ["AC00", "AC01", "AC00"], "clone_id": ["c1", "c2", "c9"]})
    with pytest.raises(InputError, match=r"AC00.*rows \[0, 2\]"):
        assign_given_clones(cells(), table, sample_id="S1")


@pytest.mark.parametrize(
    ("table", "kwargs", "match"),
    [
        (pd.DataFrame({"barcode": ["AC00"]}), {}, "clone_id"),
        (
            pd.DataFrame({"barcode": ["AC00"], "clone_id": ["c"]}),
            {"min_confidence": 0.5},
            "confidence",
        ),
        (pd.DataFrame({"barcode": ["AC00"], "clone_id": ["c"]}), {"sample_id": "S9"}, "S9"),
    ],
)
def test_given_clones_bad_input(table, kwargs, match):
    kwargs = {"sample_id": "S1", **kwargs}
    with pytest.raises(InputError, match=match):
        assign_given_clones(cells(), table, **kwargs)


def toy_counts():
    # tags t0..t4; cells: two share {t0,t1}, two share {t2}, one {t3}, one ambient-only, one empty
    X = np.array(
        [
            [5, 4, 0, 0, 0],  # c0 -> {t0,t1}
            [3, 6, 0, 0, 1],  # c1 -> {t0,t1}; t4 has 1 UMI (< min_umi)
            [0, 0, 9, 0, 0],  # c2 -> {t2}
            [0, 0, 7, 0, 2],  # c3 -> {t2}; t4 is 2/9 = 22% (kept) -> {t2,t4}
            [0, 0, 0, 4, 0],  # c4 -> {t3}, alone
            [1, 0, 0, 0, 1],  # c5 -> only 1-UMI tags
            [0, 0, 0, 0, 0],  # c6 -> nothing
            [20, 2, 0, 0, 0],  # c7 -> t1 is 2/22 = 9% (dropped) -> {t0}
        ]
    )
    return ad.AnnData(
        X=sp.csr_matrix(X, dtype=np.float32),
        obs=pd.DataFrame(index=[f"c{i}" for i in range(8)]),
        var=pd.DataFrame(index=[f"t{i}" for i in range(5)]),
    )


def test_lineage_calls_on_planted_counts():
    calls = call_lineage_clones(toy_counts())
    assert calls["barcode"].tolist() == [f"c{i}" for i in range(8)]
    assert calls["signature"].tolist() == ["t0+t1", "t0+t1", "t2", "t2+t4", "t3", "", "", "t0"]
    assert calls["status"].tolist() == [
        "assigned",
        "assigned",
        "singleton",
        "singleton",
        "singleton",
        "below_threshold",
        "no_barcode",
        "singleton",
    ]
    assert calls.loc[0, "clone_id"] == calls.loc[1, "clone_id"] == "L001"
    assert calls["n_barcode_umis"].tolist() == [9, 10, 9, 9, 4, 2, 0, 22]

    # Jaccard 0.5 links {t2} with {t2,t4} and {t0} with {t0,t1}
    linked = call_lineage_clones(toy_counts(), jaccard_threshold=0.5)
    assert linked.loc[2, "clone_id"] == linked.loc[3, "clone_id"] != "unassigned"
    assert linked.loc[7, "clone_id"] == linked.loc[0, "clone_id"] == "L001"
    assert linked["status"].value_counts()["assigned"] == 5
    assert (
        call_lineage_clones(toy_counts(), jaccard_threshold=0.51)["status"] == calls["status"]
    ).all()
    # min_barcodes=2 rejects single-tag signatures
    two = call_lineage_clones(toy_counts(), min_barcodes=2)
    assert two.loc[2, "status"] == "below_threshold" and two.loc[0, "status"] == "assigned"


def test_lineage_calls_count_detected_and_kept_barcodes_separately():
    counts = toy_counts()
    before = counts.X.copy()
    calls = call_lineage_clones(counts)
    # every barcode with a UMI is detected; the kept ones pass min_umi and min_fraction
    X = before.toarray()
    assert calls["n_barcodes_detected"].tolist() == (X > 0).sum(axis=1).tolist()
    assert calls["n_barcodes_detected"].tolist() == [2, 3, 1, 2, 1, 2, 0, 2]
    assert calls["n_barcodes_kept"].tolist() == [2, 2, 1, 2, 1, 0, 0, 1]
    assert calls["n_barcodes_kept"].tolist() == [
        len(s.split("+")) if s else 0 for s in calls["signature"]
    ]
    assert (counts.X != before).nnz == 0  # the input is left as it was


def test_lineage_calls_reject_non_counts():
    bad = toy_counts()
    bad.X = bad.X * 0.5
    with pytest.raises(InputError, match="non-integer"):
        call_lineage_clones(bad)


def test_attach_lineage_clones():
    adata = cells(n_per_sample=3, samples=("S1",))
    calls = pd.DataFrame(
        {
            "barcode": ["AC00", "AC01", "GONE"],
            "clone_id": ["L001", "unassigned", "L001"],
            "status": ["assigned", "singleton", "assigned"],
        }
    )
    report, unmatched = attach_lineage_clones(adata, calls, sample_id="S1")
    assert adata.obs["clone"].tolist() == ["L001", "unassigned", "unassigned"]
    assert (adata.obs["clone_source"] == "lineage_barcode").all()
    assert report["n_assigned"] == 1 and report["n_low_confidence"] == 1
    assert report["status_counts"] == {"assigned": 1, "singleton": 1, "not_in_calls": 1}
    assert unmatched["barcode"].tolist() == ["GONE"]


@pytest.mark.realdata
def test_celltag_clone_calls():
    import scanpy as sc

    # feature type "CellTag", so gex_only would drop every tag
    tags = sc.read_10x_mtx(CELLTAG, var_names="gene_ids", gex_only=False)
    assert tags.shape == (9046, 5416)
    calls = call_lineage_clones(tags)
    assert len(calls) == 9046 and calls["barcode"].is_unique
    counts = calls["status"].value_counts()
    assert counts.sum() == 9046
    # figures measured with the defaults (docs/clones.md)
    assert counts["no_barcode"] == 4888  # cells without any CellTag UMI
    assert counts["assigned"] == 1870
    sizes = calls.loc[calls.status == "assigned", "clone_id"].value_counts()
    assert len(sizes) == 508
    assert sizes.iloc[0] == 53 and 2 <= sizes.median() <= 3
    assert (sizes >= 2).all()
    # the clone sizes add up to the assigned cells, and UMIs to the matrix total
    assert sizes.sum() == counts["assigned"]
    assert calls["n_barcode_umis"].sum() == tags.X.sum()


def test_resistance_de_refuses_status_confounded_with_timepoint():
    """Resistant clones seen (with enough cells) only at relapse, sensitive ones only at
    diagnosis: the status effect is the treatment effect; the DE says so instead of failing."""
    import pandas as pd
    from clonetrack.clones.resistance import resistance_de

    rng = np.random.default_rng(0)
    rows = []
    for patient in ("P1", "P2", "P3"):
        rows.append(
            {
                "patient_id": patient,
                "clone": "A",
                "timepoint": "diagnosis",
                "status": "sensitive",
                "cell_type": "GMP",
                "n_cells": 40,
            }
        )
        rows.append(
            {
                "patient_id": patient,
                "clone": "B",
                "timepoint": "relapse",
                "status": "resistant",
                "cell_type": "GMP",
                "n_cells": 40,
            }
        )
    meta = pd.DataFrame(rows)
    counts = pd.DataFrame(
        rng.poisson(50, size=(len(meta), 30)), columns=[f"G{i}" for i in range(30)]
    )
    table, summary = resistance_de(counts, meta, min_cells=10)
    assert table.empty
    assert summary["status"] == "skipped"
    assert summary["reason"].startswith("status is confounded with patient_id + timepoint")
