"""Tests for clonetrack_sim: the planted truth must be visible in the counts it writes, under
either count model."""

import ast
import gzip
import re
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
from clonetrack.errors import InputError
from clonetrack.io import tables
from clonetrack_sim import barcode_strings, select_genes, simulate_cohort, write_cohort
from clonetrack_sim.cells import _dealt_counts
from scipy import sparse

GENES = Path(__file__).resolve().parents[2] / "resources" / "toy" / "genes.tsv"


@pytest.fixture(scope="module")
def genes():
    return pd.read_csv(GENES, sep="\t")


@pytest.fixture(scope="module", params=["gamma_poisson", "multinomial"])
def cohort(genes, request):
    return simulate_cohort(genes=genes, seed=3, n_cells_per_sample=300, counts=request.param)


@pytest.fixture(scope="module")
def pooled(cohort):
    """All samples stacked: truth, library size, MT fraction, raw counts and gene names."""
    adata = ad.concat(list(cohort.adatas.values()), merge="same")
    counts = adata.X.toarray().astype(float)
    lib = counts.sum(1)
    mt = adata.var_names.str.startswith("MT-")
    obs = adata.obs.copy()
    obs["lib"] = lib
    obs["mt_frac"] = counts[:, mt].sum(1) / lib
    obs["good"] = ~(obs["low_quality"] | obs["doublet"])
    return obs, counts, list(adata.var_names)


def _normalise(counts, names, exclude):
    """Counts per 10k of the genes no planted effect touches (an independent size factor)."""
    keep = np.array([g not in exclude and not g.startswith("MT-") for g in names])
    return counts / counts[:, keep].sum(1, keepdims=True) * 1e4


def _log2_ratios(norm, a, b, idx):
    """Per-gene log2 of mean expression in cells ``a`` over cells ``b`` (genes seen in both)."""
    ma, mb = norm[a][:, idx].mean(0), norm[b][:, idx].mean(0)
    ok = (ma > 0) & (mb > 0)
    return np.log2(ma[ok] / mb[ok])


def _planted(cohort):
    return (
        set(cohort.de_genes["gene"])
        | set(cohort.resistance_genes["gene"])
        | set(cohort.params["malignant_programme"])
    )


def test_same_seed_same_counts(genes):
    kw = {"genes": genes, "n_cells_per_sample": 200, "patients": ("P1",), "n_clones": (2,)}
    a, b = simulate_cohort(seed=5, **kw), simulate_cohort(seed=5, **kw)
    c = simulate_cohort(seed=6, **kw)
    for sid in a.adatas:
        assert (a.adatas[sid].X != b.adatas[sid].X).nnz == 0
        pd.testing.assert_frame_equal(a.adatas[sid].obs, b.adatas[sid].obs)
    assert (a.adatas["P1_diagnosis"].X != c.adatas["P1_diagnosis"].X).nnz > 0


def test_design_and_truth_rows_match_cells(cohort):
    assert list(cohort.samples["sample_id"]) == [
        f"{p}_{t}" for p in ("P1", "P2", "P3") for t in ("diagnosis", "on_treatment", "relapse")
    ]
    assert sum(a.n_obs for a in cohort.adatas.values()) == len(cohort.cells)
    for sid, a in cohort.adatas.items():
        assert sparse.isspmatrix_csr(a.X) and np.issubdtype(a.X.dtype, np.integer)
        assert a.obs["barcode"].is_unique
        assert a.obs["barcode"].str.fullmatch(r"[ACGT]{16}-1").all()
        assert (a.obs_names == sid + "_" + a.obs["barcode"]).all()
        # Junk is ~5% each on top of the 300 good cells.
        assert a.obs["low_quality"].sum() == 15 and a.obs["doublet"].sum() == 15
        assert a.obs["cell_type"].nunique() >= 10
    assert set(cohort.cells["cell_type"]) <= {
        "HSC", "Prog", "GMP", "ProMono", "Mono", "cDC", "pDC", "earlyEry", "lateEry", "ProB", "B",
        "Plasma", "T", "CTL", "NK",
    }  # fmt: skip
    # Normal cells carry no clone; malignant cells always do.
    c = cohort.cells
    assert (c["clone"][~c["malignant"]] == "").all() and (c["clone"][c["malignant"]] != "").all()


def test_low_quality_and_doublets_in_counts(pooled):
    obs, _, _ = pooled
    good, lq, db = obs[obs["good"]], obs[obs["low_quality"]], obs[obs["doublet"]]
    assert good["mt_frac"].quantile(0.99) < 0.12
    # Each low-quality cell has few UMIs or 30-70% mitochondrial counts.
    low_lib = lq["lib"] < 0.25 * good["lib"].median()
    high_mt = lq["mt_frac"].between(0.2, 0.8)  # 30-70% planted, NB noise around it
    assert (low_lib | high_mt).all() and high_mt.mean() > 0.4
    assert lq.loc[high_mt, "mt_frac"].median() > 5 * good["mt_frac"].median()
    ratio = db["lib"].median() / good["lib"].median()
    assert 1.6 < ratio < 2.5


def test_planted_mono_de_recovered(cohort, pooled):
    obs, counts, names = pooled
    norm = _normalise(counts, names, _planted(cohort))
    de = cohort.de_genes
    assert set(de["contrast"]) == {"on_treatment_vs_diagnosis"} and set(de["cell_type"]) == {"Mono"}
    assert {"IFIT1", "ISG15", "MX1"} <= set(de["gene"])
    up = [names.index(g) for g in de.loc[de["log2fc"] > 0, "gene"]]
    down = [names.index(g) for g in de.loc[de["log2fc"] < 0, "gene"]]
    planted = set(de["gene"]) | set(cohort.resistance_genes["gene"])
    ctrl = [i for i, g in enumerate(names) if g not in planted and not g.startswith("MT-")]
    mono = (obs["cell_type"] == "Mono") & ~obs["malignant"] & obs["good"]
    logs = {"up": [], "down": [], "ctrl": [], "relapse": []}
    for p in ("P1", "P2", "P3"):
        on = (mono & (obs["sample_id"] == f"{p}_on_treatment")).to_numpy()
        dx = (mono & (obs["sample_id"] == f"{p}_diagnosis")).to_numpy()
        rel = (mono & (obs["sample_id"] == f"{p}_relapse")).to_numpy()
        assert on.sum() >= 40 and dx.sum() >= 40
        logs["up"].append(_log2_ratios(norm, on, dx, up))
        logs["down"].append(_log2_ratios(norm, on, dx, down))
        logs["ctrl"].append(_log2_ratios(norm, on, dx, ctrl))
        logs["relapse"].append(_log2_ratios(norm, rel, dx, up))
    mean = {k: np.concatenate(v).mean() for k, v in logs.items()}
    # Planted log2FC is +-log2(3) = 1.58; per-sample batch noise averages out over genes.
    assert mean["up"] == pytest.approx(np.log2(3), abs=0.35)
    assert mean["down"] == pytest.approx(-np.log2(3), abs=0.35)
    assert abs(np.median(np.concatenate(logs["ctrl"]))) < 0.2
    assert abs(mean["relapse"]) < 0.35  # the effect is on treatment only


def test_cnv_segments_shift_clone_expression(cohort, pooled):
    obs, counts, names = pooled
    pos = {g: i for i, g in enumerate(names)}
    segment_genes = {
        (r.first_gene, r.last_gene): names[pos[r.first_gene] : pos[r.last_gene] + 1]
        for r in cohort.cnv_segments.itertuples()
    }
    # Size factors from genes outside every segment and every planted programme.
    in_any = {g for genes in segment_genes.values() for g in genes}
    norm = _normalise(counts, names, _planted(cohort) | in_any)
    checked = 0
    for _, seg in cohort.cnv_segments.iterrows():
        genes_idx = np.arange(pos[seg["first_gene"]], pos[seg["last_gene"]] + 1)
        assert len(genes_idx) == seg["n_genes"] >= 60
        seg_sum = norm[:, genes_idx].sum(1)
        patient = obs["patient_id"] == seg["patient_id"]
        ratios, weights = [], []
        for t in ("HSC", "Prog", "GMP"):
            typed = patient & obs["good"] & (obs["cell_type"] == t)
            clone = (typed & (obs["clone"] == seg["clone"])).to_numpy()
            normal = (typed & ~obs["malignant"]).to_numpy()
            if clone.sum() >= 5 and normal.sum() >= 5:
                ratios.append(seg_sum[clone].mean() / seg_sum[normal].mean())
                weights.append(clone.sum())
        ratio = np.average(ratios, weights=weights)
        assert ratio == pytest.approx(seg["multiplier"], rel=0.15), seg.to_dict()
        checked += 1
    assert checked == len(cohort.cnv_segments)
    # Truncal events are shared by all clones of a patient, private ones are not.
    for _patient, segs in cohort.cnv_segments.groupby("patient_id"):
        truncal = segs[segs["truncal"]]
        assert truncal["clone"].nunique() == segs["clone"].nunique()
        assert truncal[["chromosome", "start", "end"]].drop_duplicates().shape[0] == 1


def test_clone_trajectories_and_resistance(cohort, pooled):
    obs, counts, names = pooled
    norm = _normalise(counts, names, _planted(cohort))
    good = obs[obs["good"] & obs["malignant"]]
    freq = good.groupby(["sample_id", "clone"]).size() / good.groupby("sample_id").size()
    for _, c in cohort.clones.iterrows():
        f = {t: freq.get((f"{c['patient_id']}_{t}", c["clone"]), 0.0) for t in
             ("diagnosis", "on_treatment", "relapse")}  # fmt: skip
        for t, v in f.items():
            assert v == pytest.approx(c[f"freq_{t}"], abs=1e-3)
            n = (
                (good["sample_id"] == f"{c['patient_id']}_{t}") & (good["clone"] == c["clone"])
            ).sum()
            assert n == 0 or n >= 15
        if c["trajectory"] == "expanding":
            assert c["resistant"] and f["relapse"] > 0.5 > 0.2 > f["diagnosis"]
        if c["trajectory"] == "contracting":
            assert f["diagnosis"] > 0.5 > 0.2 > f["relapse"]
    # Malignant fraction ~50% / ~12% / ~50% of good cells.
    mal = obs[obs["good"]].groupby("timepoint")["malignant"].mean()
    assert mal["on_treatment"] < 0.2 < 0.4 < mal["diagnosis"] and mal["relapse"] > 0.4
    # Resistance genes: up ~3x in the resistant clone vs the other clones of the same type.
    res = [names.index(g) for g in cohort.resistance_genes["gene"]]
    assert {"BCL2L1", "MCL1", "CD36"} <= set(cohort.resistance_genes["gene"])
    resistant = set(cohort.clones.loc[cohort.clones["resistant"], "clone"])
    logs = []
    for _group, cells in good.groupby(["patient_id", "cell_type"], observed=True):
        is_res = cells["clone"].isin(resistant)
        if is_res.sum() >= 5 and (~is_res).sum() >= 5:
            a = obs.index.isin(cells.index[is_res])
            b = obs.index.isin(cells.index[~is_res])
            logs.append(_log2_ratios(norm, a, b, res))
    assert len(logs) >= 3
    assert np.concatenate(logs).mean() == pytest.approx(np.log2(3), abs=0.35)


def test_written_bundle_reads_back(genes, tmp_path):
    small = simulate_cohort(genes=genes, seed=1, n_cells_per_sample=150, min_mono_cells=20)  # fast
    sheet = write_cohort(small, tmp_path)
    read = pd.read_csv(tmp_path / "samples.tsv", sep="\t", dtype=str, keep_default_na=False)
    assert list(read.columns) == [
        "sample_id", "patient_id", "timepoint", "timepoint_order", "path", "format", "clones",
        "genotypes", "batch", "sex",
    ]  # fmt: skip
    assert (read["format"] == "").sum() == 3 and (read["format"] != "").sum() == 6
    assert (read["clones"] != "").sum() == 6
    assert set(read.loc[read["genotypes"] != "", "patient_id"]) == {"P1"}
    assert set(read.loc[read["clones"] != "", "patient_id"]) == {"P2", "P3"}
    cells = pd.read_csv(tmp_path / "truth" / "cells.tsv", sep="\t", keep_default_na=False)
    assert len(cells) == sum(a.n_obs for a in small.adatas.values())
    for _, row in sheet.iterrows():
        truth = small.adatas[row["sample_id"]]
        path = tmp_path / row["path"]
        if row["path"].endswith(".h5ad"):
            got = ad.read_h5ad(path)
            x, barcodes, genes_got = got.X, got.obs_names, got.var_names
        elif row["path"].endswith(".txt.gz"):
            with gzip.open(path, "rt") as fh:
                assert fh.readline().startswith("Gene\t")
            dense = pd.read_csv(path, sep="\t", index_col=0)
            x, barcodes, genes_got = dense.to_numpy().T, dense.columns, dense.index
        else:
            got = sc.read_10x_mtx(path)
            x, barcodes, genes_got = got.X, got.obs_names, got.var_names
            assert got.var["feature_types"].eq("Gene Expression").all()
        x = sparse.csr_matrix(x)
        assert list(genes_got) == list(truth.var_names)
        assert list(barcodes) == list(truth.obs["barcode"])
        assert (x != truth.X).nnz == 0
        sub = cells[cells["sample_id"] == row["sample_id"]]
        assert list(sub["barcode"]) == list(truth.obs["barcode"])
    # Given clone tables: ~90% of malignant singlets, a fixed id per truth clone, 3 stray barcodes.
    lineage = small.clones.set_index("clone")["lineage_clone_id"]
    for sid in ("P3_diagnosis", "P3_on_treatment", "P3_relapse"):
        table = pd.read_csv(tmp_path / "clones" / f"{sid}.tsv", sep="\t")
        assert list(table.columns) == ["barcode", "clone_id", "confidence"]
        assert table["clone_id"].str.fullmatch(r"LB\d{2}").all()
        obs = small.adatas[sid].obs.set_index("barcode")
        known = table["barcode"].isin(obs.index)
        assert (~known).sum() == 3
        hit = obs.loc[table.loc[known, "barcode"]]
        assert hit["malignant"].all()
        assert (hit["clone"].map(lineage).to_numpy() == table.loc[known, "clone_id"]).all()
        n_mal = (obs["malignant"] & ~obs["doublet"]).sum()
        assert known.sum() == pytest.approx(0.9 * n_mal, abs=1)


def test_select_genes_filters_and_sorts():
    rng = np.random.default_rng(0)
    names = [f"GENE{i}" for i in range(300)] + ["MIR21", "LINC00001", "AC1.2", "FOO-AS1", "OR5A1P"]
    names += ["CD34", "CD14", "RPL3", "NDUFA4", "HBB", "MT-ND1"]
    pos = pd.DataFrame(
        {
            "symbol": names,
            "chromosome": [f"chr{rng.integers(1, 23)}" for _ in names[:-1]] + ["chrM"],
            "start": rng.integers(1, 10**8, len(names)),
        }
    )
    pos["end"] = pos["start"] + 1000
    out = select_genes(pos, n_genes=100, seed=0)
    assert len(out) == 100
    assert {"CD34", "CD14", "MT-ND1", "RPL3", "NDUFA4", "HBB"} <= set(out["symbol"])
    assert not out["symbol"].str.contains(r"^MIR|^LINC|\.|-AS|1P$").any()
    rank = out["chromosome"].str.replace("chr", "").replace({"X": "23", "Y": "24", "M": "25"})
    key = list(zip(rank.astype(int), out["start"], strict=True))
    assert key == sorted(key)
    with pytest.raises(InputError, match="start"):
        select_genes(pos.drop(columns="start"))


def test_shipped_gene_table(genes):
    assert 2400 <= len(genes) <= 2700 and genes["symbol"].is_unique
    assert genes["symbol"].str.startswith("MT-").sum() == 13
    for g in ("CD34", "BCL2L1", "MCL1", "CD36", "IFIT1", "HBB", "LILRA4", "GNLY", "ADGRG1"):
        assert g in set(genes["symbol"])
    autosomal = genes["chromosome"].str.fullmatch(r"chr\d+")
    assert genes.loc[autosomal, "chromosome"].nunique() == 22
    assert not re.search(r"[\r\t]", genes.to_csv(sep=",", index=False))


def test_genotype_reads_follow_the_planted_clones(genes):
    """Mutant reads come from leukaemic cells, the clone variant from that clone's cells only."""
    from clonetrack_sim import GENOTYPE_FOUNDER, genotype_reads

    small = simulate_cohort(genes=genes, seed=1, n_cells_per_sample=150, min_mono_cells=20)
    obs = pd.concat([a.obs for sid, a in small.adatas.items() if sid.startswith("P1")])
    table = genotype_reads(obs, rng=np.random.default_rng(0), depth=2.0, error_rate=0.0)
    truth = obs.set_index("barcode")
    carrier = table["barcode"].map(truth["malignant"]).astype(bool)
    assert table.loc[table["alt_reads"] > 0, "barcode"].map(truth["malignant"]).all()
    founder = table[(table["variant"] == GENOTYPE_FOUNDER) & carrier]
    assert founder["alt_reads"].sum() / (
        founder["alt_reads"] + founder["ref_reads"]
    ).sum() == pytest.approx(0.5, abs=0.05)
    mutant = table[(table["alt_reads"] > 0) & (table["variant"] != GENOTYPE_FOUNDER)]
    per_variant = (
        mutant.assign(clone=mutant["barcode"].map(truth["clone"]))
        .groupby("variant")["clone"]
        .nunique()
    )
    assert (per_variant == 1).all() and len(per_variant) >= 2
    # a read table the workflow accepts
    assert set(table.columns) == set(tables.GENOTYPE_COLUMNS)


def test_mouse_cohort_has_mouse_names_and_barcodes_that_mark_its_clones(tmp_path):
    from clonetrack.io import read_counts
    from clonetrack_sim import simulate_mouse_cohort

    root = Path(__file__).resolve().parents[2]
    positions = pd.read_csv(root / "resources/genes/hg38_gene_positions.tsv.gz", sep="\t")
    panel = pd.read_csv(root / "resources/markers/mouse_marrow_markers.tsv", sep="\t")
    cohort = simulate_mouse_cohort(
        positions=positions.rename(columns={"gene": "symbol"}),
        panel=panel,
        n_cells_per_sample=60,
    )
    names = cohort.adatas["M1_baseline"].var_names
    assert names.str.startswith("mt-").sum() == 13 and not names.str.startswith("MT-").any()
    assert {"Hba-a1", "Hba-a2", "Hbb-bs"} <= set(names)
    assert len(set(panel["gene"]) & set(names)) >= 60  # the panel's genes are planted
    assert not names.str.fullmatch(r"[A-Z0-9]{3,}").any()  # no human-style symbol left
    sheet = write_cohort(cohort, tmp_path, formats={"M1": "10x_mtx", "M2": "10x_mtx"})
    barcode_of = cohort.clones.set_index("clone")["lineage_barcode"]
    for sid in sheet["sample_id"]:
        obs = cohort.adatas[sid].obs.set_index("barcode")
        lineage = read_counts(tmp_path / f"lineage/{sid}", sample_id=sid, feature_type=None)
        counts = pd.DataFrame(
            lineage.X.toarray(), index=lineage.obs["barcode"], columns=lineage.var_names
        )
        top = counts.idxmax(axis=1).where(counts.max(axis=1) >= 2)
        leukaemic = obs["malignant"] & ~obs["doublet"]
        shown = top[leukaemic].notna()
        assert 0.7 < shown.mean() < 0.95  # 15% dropout
        expected = obs.loc[leukaemic, "clone"].map(barcode_of)
        assert (top[leukaemic][shown] == expected[shown]).all()
        assert top[~obs["malignant"]].isna().all()  # host cells: at most one ambient UMI


def _simulator_imports(source: str) -> list[str]:
    """Modules named by the imports of ``source`` that are the simulator: ``clonetrack_sim`` or a
    ``simulate`` module of the runtime package (absolute or relative)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [f"{node.module or ''}.{a.name}" for a in node.names]
        else:
            continue
        found += [
            n for n in names if n.split(".")[0] == "clonetrack_sim" or "simulate" in n.split(".")
        ]
    return found


def test_runtime_package_never_imports_the_simulator():
    """Test data generators live outside the runtime package, and no module of it imports them."""
    assert _simulator_imports("from clonetrack_sim import simulate_cohort") != []
    assert _simulator_imports("import clonetrack_sim.cells as c") != []
    assert _simulator_imports("from . import simulate") != []
    assert _simulator_imports("from ..simulate import write_cohort") != []
    assert _simulator_imports("from clonetrack.qc import cells\nimport numpy") == []
    package = Path(__file__).resolve().parents[2] / "workflow" / "scripts" / "clonetrack"
    modules = sorted(package.rglob("*.py"))
    assert len(modules) > 20 and not (package / "simulate.py").exists()
    offenders = {}
    for path in modules:
        text = path.read_text()
        found = _simulator_imports(text) + (["clonetrack_sim"] if "clonetrack_sim" in text else [])
        if found:
            offenders[str(path.relative_to(package))] = found
    assert offenders == {}


def test_count_models_draw_the_same_cells(genes):
    """Both count models share every draw before the counts: the same truth and, per sample, the
    same cells by type, clone and kind; only the counts (and so barcodes and order) differ."""
    kw = {"genes": genes, "seed": 4, "n_cells_per_sample": 200, "patients": ("P1", "P2")}
    kw["n_clones"] = (3, 2)
    dense = simulate_cohort(**kw)
    sparse_ = simulate_cohort(counts="multinomial", **kw)
    for table in ("clones", "cnv_segments", "de_genes", "resistance_genes", "programmes"):
        pd.testing.assert_frame_equal(getattr(dense, table), getattr(sparse_, table))
    labels = ["sample_id", "cell_type", "clone", "malignant", "low_quality", "doublet"]
    tally = [c.cells.groupby(labels).size() for c in (dense, sparse_)]
    pd.testing.assert_series_equal(*tally)
    for sid, a in sparse_.adatas.items():
        b = dense.adatas[sid]
        assert sparse.isspmatrix_csr(a.X) and a.X.dtype == np.int32 and a.X.has_canonical_format
        assert a.shape == b.shape and (a.var_names == b.var_names).all()
        assert (a.X != b.X).nnz > 0
        lib_a, lib_b = np.asarray(a.X.sum(1)).ravel(), np.asarray(b.X.sum(1)).ravel()
        assert np.median(lib_a) == pytest.approx(np.median(lib_b), rel=0.15)
    with pytest.raises(InputError, match="count model"):
        simulate_cohort(counts="poisson", **kw)


def test_on_sample_receives_each_sample_and_the_cohort_keeps_none(genes):
    kw = {"genes": genes, "seed": 5, "n_cells_per_sample": 150, "min_mono_cells": 20}
    kept = simulate_cohort(counts="multinomial", **kw)
    streamed = {}
    cohort = simulate_cohort(
        counts="multinomial", on_sample=lambda sid, adata: streamed.update({sid: adata}), **kw
    )
    assert cohort.adatas == {} and list(streamed) == list(kept.adatas)
    for sid, adata in streamed.items():
        assert (adata.X != kept.adatas[sid].X).nnz == 0
        pd.testing.assert_frame_equal(adata.obs, kept.adatas[sid].obs)
    pd.testing.assert_frame_equal(cohort.cells, kept.cells)
    assert set(cohort.genotypes) == {s for s in streamed if s.startswith("P1")}
    for sid, table in cohort.genotypes.items():
        pd.testing.assert_frame_equal(table, kept.genotypes[sid])


def test_dealt_counts_follow_the_profile():
    rng = np.random.default_rng(0)
    profile = rng.dirichlet(np.ones(40))
    profile[[3, 17]] = 0.0
    profile /= profile.sum()
    umis = rng.poisson(400, 600)
    umis[[0, 9, -1]] = 0
    x = _dealt_counts(rng, umis, profile)
    x.check_format(full_check=True)
    assert x.has_canonical_format and x.dtype == np.int32 and x.shape == (600, 40)
    assert (np.asarray(x.sum(1)).ravel() == umis).all()
    assert x[:, [3, 17]].nnz == 0
    totals = np.asarray(x.sum(0)).ravel()
    expected = profile * umis.sum()
    seen = expected > 0
    chi2 = ((totals[seen] - expected[seen]) ** 2 / expected[seen]).sum()
    assert chi2 < 80  # 37 degrees of freedom: p < 1e-4 beyond this
    # cells are dealt UMIs at random: a gene's count is Poisson-like across cells of equal size
    same = umis == 400
    g = int(np.argmax(profile))
    counts = x[same][:, g].toarray().ravel()
    assert counts.var() / counts.mean() == pytest.approx(1 - profile[g], abs=0.35)


def test_barcode_strings_write_codes_in_base_4():
    codes = [0, 1, 4, 4**16 - 1, 123_456_789]

    def by_hand(code, length):
        return "".join("ACGT"[(code >> (2 * i)) & 3] for i in range(length))

    assert list(barcode_strings(codes)) == [by_hand(c, 16) + "-1" for c in codes]
    long = [4**20 - 1, 987_654_321_012]
    assert list(barcode_strings(long, length=20, suffix="")) == [by_hand(c, 20) for c in long]
    assert barcode_strings(codes).dtype == object and len(barcode_strings([])) == 0
