from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import yaml
from clonetrack import de, vocabulary
from clonetrack.clones import cnv, patient_clones, resistance
from scipy import stats

CNV_OFF = cnv.PatientCnv.unavailable("clones.infer_cnv is off")


def make_patient(n=60, n_genes=50, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.poisson(2.0, size=(2 * n, n_genes)).astype(np.float32)
    obs = pd.DataFrame(
        {
            "sample_id": ["S1"] * n + ["S2"] * n,
            "barcode": [f"AC{i:04d}" for i in range(n)] * 2,
            "cell_type": "Prog",
            "patient_id": "P1",
        },
        index=[f"S1_AC{i:04d}" for i in range(n)] + [f"S2_AC{i:04d}" for i in range(n)],
    )
    adata = ad.AnnData(
        sp.csr_matrix(np.log1p(x)),
        obs=obs,
        var=pd.DataFrame(index=[f"G{i}" for i in range(n_genes)]),
    )
    adata.layers["counts"] = sp.csr_matrix(x)
    return adata


def lineage_counts(barcodes, tags):
    """Cells x lineage barcodes: cell i carries tag tags[i] with 5 UMIs ('' = none)."""
    names = sorted({t for t in tags if t})
    x = np.zeros((len(barcodes), len(names)), dtype=np.float32)
    for i, tag in enumerate(tags):
        if tag:
            x[i, names.index(tag)] = 5
    counts = ad.AnnData(sp.csr_matrix(x), var=pd.DataFrame(index=names))
    counts.obs_names = barcodes
    counts.obs["barcode"] = barcodes
    return counts


def test_given_table_and_lineage_barcodes_share_one_patient_and_account_for_every_cell():
    adata = make_patient()
    table = pd.DataFrame(
        {
            "barcode": [f"AC{i:04d}" for i in range(40)] + ["GG9999"],
            "clone_id": ["A"] * 20 + ["B"] * 20 + ["A"],
        }
    )
    tags = ["TAG1"] * 30 + ["TAG2"] * 20 + [""] * 10
    s2 = lineage_counts([f"AC{i:04d}" for i in range(60)], tags)
    cells, report, unmatched = patient_clones.define_patient_clones(
        adata,
        patient_id="P1",
        clone_tables={"S1": table},
        lineage_counts={"S2": s2},
        lineage_params={},
        min_confidence=None,
        copy_number=CNV_OFF,
    )
    assert len(cells) == adata.n_obs and cells.index.equals(adata.obs_names)
    s1 = cells.loc[adata.obs["sample_id"] == "S1"]
    assert s1["clone"].value_counts().to_dict() == {"A": 20, "B": 20, "unassigned": 20}
    assert s1["malignant"].sum() == 40 and (s1["clone_source"] == "given").all()
    s2_cells = cells.loc[adata.obs["sample_id"] == "S2"]
    assert (s2_cells["clone_source"] == "lineage_barcode").all()
    assert (s2_cells["clone"] != "unassigned").sum() == 50
    # lineage clone ids carry the patient, so they cannot collide across patients
    assert s2_cells.loc[s2_cells["clone"] != "unassigned", "clone"].str.startswith("P1_L").all()
    report = report.set_index("sample_id")
    assert report.loc["S1", "n_table_rows_unmatched"] == 1
    assert list(unmatched["barcode"]) == ["GG9999"]


def test_samples_without_clone_source_are_reported_when_cnv_is_off():
    adata = make_patient()
    cells, report, _ = patient_clones.define_patient_clones(
        adata,
        patient_id="P1",
        clone_tables={},
        lineage_counts={},
        lineage_params={},
        min_confidence=None,
        copy_number=CNV_OFF,
    )
    assert (cells["clone"] == "unassigned").all() and not cells["malignant"].any()
    assert report["note"].str.contains("infer_cnv is off").all()


def test_every_clone_source_of_the_vocabulary_has_one_registry_entry():
    assert set(patient_clones.CLONE_SOURCE_REGISTRY) == set(vocabulary.CLONE_SOURCES)


def planted_copy_number(adata, clone_of_cell):
    """A copy-number run that called the cells of ``clone_of_cell`` (cnvK or normal), plus 30
    reference cells of another sample."""
    extra = pd.Index([f"H_{i}" for i in range(30)])
    names = adata.obs_names.append(extra)
    clone = np.r_[clone_of_cell, ["normal"] * len(extra)]
    cells = pd.DataFrame(
        {
            "cell_type": "Prog",
            "reference": np.r_[np.zeros(adata.n_obs, bool), np.ones(len(extra), bool)],
            "score": np.where(clone == "normal", 0.0, 5.0),
            "called": clone != "normal",
            "cnv_score_cell": np.linspace(0, 1, len(names)),
            "cnv_clone": clone,
        },
        index=names,
    )
    return cnv.PatientCnv(cells, adata.var_names, "", True)


@pytest.mark.parametrize(
    ("precedence", "expected"), [(("given", "cnv"), "given"), (("cnv", "given"), "cnv")]
)
def test_each_sample_takes_the_first_source_it_has_in_the_precedence(precedence, expected):
    adata = make_patient()
    table = pd.DataFrame({"barcode": [f"AC{i:04d}" for i in range(20)], "clone_id": "A"})
    clone_of_cell = np.where(np.arange(adata.n_obs) % 2 == 0, "cnv1", "normal")
    copy_number = planted_copy_number(adata, clone_of_cell)
    cells, report, _ = patient_clones.define_patient_clones(
        adata,
        patient_id="P1",
        clone_tables={"S1": table},
        lineage_counts={},
        lineage_params={},
        min_confidence=None,
        copy_number=copy_number,
        source_precedence=precedence,
    )
    sources = report.set_index("sample_id")["source"]
    # S2 has no table: copy number is the one source it has, whatever the order
    assert sources.to_dict() == {"S1": expected, "S2": "cnv"}
    s2 = (adata.obs["sample_id"] == "S2").to_numpy()
    # copy-number clones carry the patient's name, on malignant cells only
    labelled = cells.loc[s2, "clone"] != "unassigned"
    assert (cells.loc[s2, "clone"][labelled] == "P1_cnv1").all()
    assert (cells.loc[s2][labelled]["malignant"]).all()
    np.testing.assert_array_equal(
        cells["cnv_score"], copy_number.cells["cnv_score_cell"].iloc[: adata.n_obs]
    )
    if expected == "given":
        s1 = cells.loc[~s2]
        assert (s1["clone"] == "A").sum() == 20 and s1["malignant"].sum() >= 20


def test_patient_copy_number_survives_its_file(tmp_path):
    adata = make_patient()
    copy_number = planted_copy_number(adata, np.full(adata.n_obs, "normal"))
    copy_number = cnv.PatientCnv(copy_number.cells, copy_number.genes, "a note", True)
    copy_number.to_anndata().write_h5ad(tmp_path / "cnv.h5ad")
    again = cnv.PatientCnv.from_anndata(ad.read_h5ad(tmp_path / "cnv.h5ad"))
    pd.testing.assert_frame_equal(again.cells, copy_number.cells)
    assert list(again.genes) == list(adata.var_names)
    assert (again.note, again.inferred) == ("a note", True)
    off = cnv.PatientCnv.unavailable("why")
    off.to_anndata().write_h5ad(tmp_path / "off.h5ad")
    again = cnv.PatientCnv.from_anndata(ad.read_h5ad(tmp_path / "off.h5ad"))
    assert again.cells.empty and not again.inferred and again.note == "why"
    assert list(again.cells.columns) == list(cnv.PATIENT_CNV_COLUMNS)


REPO = Path(__file__).resolve().parents[2]


def test_normal_reference_is_one_definition():
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())["clones"]["cnv"]
    schema = yaml.safe_load((REPO / "config/schemas/config.schema.yaml").read_text())
    cnv_schema = schema["properties"]["clones"]["properties"]["cnv"]["properties"]
    assert tuple(config["reference_cell_types"]) == cnv.REFERENCE_CELL_TYPES
    assert tuple(cnv_schema["reference_cell_types"]["default"]) == cnv.REFERENCE_CELL_TYPES
    reference = cnv.NormalReference.from_settings(
        cell_types=["T", "NK"], reference_samples=["D1"], healthy=["H1"]
    )
    # healthy samples join the copy-number reference; only they (and the types) seed "normal"
    assert reference.samples == ("D1", "H1")
    obs = pd.DataFrame(
        {
            "sample_id": ["P"] * 3 + ["H1"] * 12 + ["D1"] * 2,
            "cell_type": ["T", "Mono", "NK"] + ["Mono"] * 10 + ["Ery"] * 2 + ["Mono", "T"],
        }
    )
    seeds = reference.normal_seeds(obs)
    np.testing.assert_array_equal(seeds, [True, False, True] + [True] * 12 + [False, True])
    labels, categories = reference.categories(obs)
    # a type with 10+ cells over the reference samples is its own category; fewer pool together
    assert list(labels[:3]) == ["T", "query", "NK"]
    assert set(labels[3:13]) == {"healthy_Mono"}
    assert list(labels[13:]) == ["reference_sample"] * 2 + ["healthy_Mono", "T"]
    assert categories == ("T", "NK", "healthy_Mono", "reference_sample")


def test_cnv_settings_take_the_config_section():
    section = yaml.safe_load((REPO / "config/config.yaml").read_text())["clones"]["cnv"]
    settings = cnv.CnvSettings.from_config(section)
    assert settings.reference_quantile == section["reference_quantile"]
    assert settings.window_size == section["window_size"]
    with pytest.raises(TypeError, match="no_such_setting"):
        cnv.CnvSettings.from_config({**section, "no_such_setting": 1})


def clone_cohort(n_patients=3, n_cells=40, n_genes=200, planted=10, fold=3.0, seed=2):
    """Per patient: a resistant and a sensitive clone at two timepoints; the first `planted`
    genes go up `fold`x in resistant clones."""
    rng = np.random.default_rng(seed)
    base = rng.lognormal(0, 1, size=n_genes)
    rows, obs = [], []
    for p in range(n_patients):
        patient_effect = rng.lognormal(0, 0.3, size=n_genes)
        for t in ("diagnosis", "relapse"):
            for clone, status in ((f"P{p}_R", "resistant"), (f"P{p}_S", "sensitive")):
                mean = base * patient_effect
                if status == "resistant":
                    mean = mean.copy()
                    mean[:planted] *= fold
                rate = 2000 * mean / mean.sum()
                rows.append(rng.poisson(rng.gamma(2.0, rate / 2.0, size=(n_cells, n_genes))))
                obs += [
                    {
                        "patient_id": f"P{p}",
                        "timepoint": t,
                        "clone": clone,
                        "malignant": True,
                        "cell_type": "Prog",
                    }
                ] * n_cells
    x = sp.csr_matrix(np.vstack(rows).astype(np.float32))
    adata = ad.AnnData(
        x,
        obs=pd.DataFrame(obs, index=[f"c{i}" for i in range(x.shape[0])]),
        var=pd.DataFrame(index=[f"G{i}" for i in range(n_genes)]),
    )
    adata.layers["counts"] = adata.X.copy()
    classes = pd.DataFrame(
        [
            {
                "patient_id": f"P{p}",
                "clone": f"P{p}_{k}",
                "class": c,
                "resistant": k == "R",
                "sensitive": k == "S",
            }
            for p in range(n_patients)
            for k, c in (("R", "expanding"), ("S", "contracting"))
        ]
    )
    return adata, classes


def pseudobulks(adata, classes):
    cells = resistance.malignant_with_status(adata, classes)
    return de.pseudobulk(cells, groupby=resistance.PSEUDOBULK_KEYS)


def test_resistance_de_recovers_planted_genes():
    adata, classes = clone_cohort()
    table, summary = resistance.resistance_de(*pseudobulks(adata, classes), min_cells=10)
    assert summary["status"] == "tested" and summary["n_patients_with_both"] == 3
    assert "status" in summary["design"] and "patient_id" in summary["design"]
    hits = set(table.loc[table["p_adj"] < 0.05, "gene"])
    planted = {f"G{i}" for i in range(10)}
    assert len(hits & planted) >= 9 and len(hits - planted) <= 2
    up = table.set_index("gene").loc[sorted(planted), "log2fc"]
    assert up.median() == pytest.approx(np.log2(3), abs=0.3)


def test_resistance_de_needs_two_patients_with_both_statuses():
    adata, classes = clone_cohort(n_patients=1)
    table, summary = resistance.resistance_de(*pseudobulks(adata, classes), min_cells=10)
    assert table.empty and summary["status"] == "skipped"
    assert "need 2" in summary["reason"]


def test_signature_scores_equal_hand_computation_and_comparison_uses_patients():
    adata, classes = clone_cohort()
    weights = pd.Series({"G0": 1.0, "G1": 1.0, "G150": 1.0}, name="planted")
    scores = resistance.signature_scores(
        *pseudobulks(adata, classes), {"planted": weights}, stem_signatures=()
    )
    row = scores[(scores["patient_id"] == "P0") & (scores["status"] == "resistant")].iloc[0]
    cells = adata[(adata.obs["clone"] == "P0_R").to_numpy()]
    summed = np.asarray(cells.layers["counts"].sum(axis=0)).ravel()
    cpm = summed / summed.sum() * 1e6
    expected = np.log2(cpm[[0, 1, 150]] + 1).mean()
    assert row["planted"] == pytest.approx(expected)
    comparison = resistance.compare_signatures(scores).set_index("signature").loc["planted"]
    per_patient = scores.pivot_table(index="patient_id", columns="status", values="planted")
    diff = per_patient["resistant"] - per_patient["sensitive"]
    assert comparison["n_patients"] == 3
    assert comparison["mean_difference"] == pytest.approx(diff.mean())
    low, high = stats.t.interval(0.95, 2, loc=diff.mean(), scale=stats.sem(diff))
    assert (comparison["ci_low"], comparison["ci_high"]) == pytest.approx((low, high))
    assert comparison["mean_difference"] > 0.5
