"""Checks of the sheet's files before any job: barcode overlap and its diagnosis, gene
identifiers against the settings, all problems reported together."""

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from clonetrack.errors import InputError
from clonetrack.io import preflight

CELLTAG = Path(__file__).parents[1] / "data" / "celltag"
RNG = np.random.default_rng(0)
CELLS = pd.Index(["".join(RNG.choice(list("ACGT"), 16)) + "-1" for _ in range(200)])
HUMAN_PANEL = ["CD34", "PROM1", "MPO", "ELANE", "CD14", "LYZ", "CD3E", "MS4A1", "HBB", "GATA1"]
QC = {"mito_prefix": "MT-"}


def overlap(source, sample=CELLS):
    return preflight.overlap_message("clone table", "t.tsv", "S", pd.Index(source), sample, "c")


def test_full_overlap_is_silent():
    result, text = overlap(CELLS[:50])
    assert result.fraction == 1.0
    assert text.endswith("the counts': " + ", ".join(CELLS[:3]))


def test_missing_suffix_is_recognised():
    result, text = overlap(CELLS[:50].str.replace("-1", ""))
    assert result.n_matched == 0 and result.fraction == 0.0
    assert "the counts' barcodes end in '-1' and these do not: add the suffix" in text


def test_extra_suffix_and_prefix_are_recognised():
    bare = CELLS.str.replace("-1", "")
    _, text = overlap(CELLS[:50], sample=bare)
    assert "these barcodes end in '-1' and the counts' do not: remove the suffix" in text
    _, text = overlap("P1_dx_" + CELLS[:50])
    assert (
        "these barcodes carry a prefix (e.g. 'P1_dx_') that the counts' do not: remove it" in text
    )


def test_partial_overlap_counts_the_rest():
    source = CELLS[:40].append(pd.Index([f"NOTACELL{i}-1" for i in range(10)]))
    result, text = overlap(source)
    assert (result.n_source, result.n_matched) == (50, 40)
    assert result.fraction == pytest.approx(0.8)
    assert text.endswith("the other 10 name no cell of the sample")


def test_lineage_matrix_with_empty_droplets_is_judged_on_the_smaller_side():
    # a lineage matrix listing every cell plus 5,000 empty droplets: all its cells are cells
    droplets = pd.Index([f"DROPLET{i}-1" for i in range(5000)])
    result, _ = overlap(CELLS.append(droplets))
    assert result.fraction == 1.0


def test_real_celltag_barcodes_against_unrelated_cells():
    barcodes = preflight.matrix_barcodes(str(CELLTAG))
    assert len(barcodes) == 9046
    result, text = overlap(barcodes)
    assert result.n_matched == 0
    assert "check that the file belongs to this sample" in text


def genes(names):
    return preflight.gene_problems(
        "S",
        "counts.h5ad",
        pd.Index(names),
        True,
        qc=QC,
        panel_genes=HUMAN_PANEL,
        panel_path="panel.tsv",
    )


HUMAN_GENES = HUMAN_PANEL + ["MT-CO1", "MT-ND1", "MT-ATP6", "C1orf112", "ACTB", "GAPDH", "RPS6"]


def test_human_symbols_with_human_settings_pass():
    assert genes(HUMAN_GENES) == []


def test_ensembl_ids_are_named():
    (problem,) = genes([f"ENSG{i:011d}.1" for i in range(30)])
    assert "100% of its gene names are Ensembl ids (e.g. ENSG00000000000.1" in problem


def test_mouse_symbols_against_a_human_panel_and_mito_prefix():
    mouse = [g.capitalize() for g in HUMAN_GENES if not g.startswith("MT-")]
    problems = genes(mouse + ["mt-Co1", "mt-Nd1", "mt-Atp6"])
    assert len(problems) == 2
    assert "its gene names are mouse (e.g. Cd34) symbols" in problems[0]
    assert "uses human (e.g. CD34) symbols" in problems[0]
    assert "no gene name starts with qc.mito_prefix 'MT-' but 3 start with 'mt-'" in problems[1]


def test_a_panel_of_other_genes_is_named():
    (problem,) = genes([f"GENE{i}" for i in range(100)] + ["MT-CO1"])
    assert "only 0 of the 10 genes of the marker panel panel.tsv are gene names" in problem


def test_partial_gene_lists_skip_the_whole_list_checks():
    # a dense table read in part: the panel and the mitochondrial genes may lie further down
    assert (
        preflight.gene_problems(
            "S",
            "t.txt",
            pd.Index(["A1BG", "A2M", "AAAS"]),
            False,
            qc=QC,
            panel_genes=HUMAN_PANEL,
            panel_path="panel.tsv",
        )
        == []
    )


def _write_h5ad(path, barcodes, names):
    ad.AnnData(
        X=np.ones((len(barcodes), len(names)), dtype=np.float32),
        obs=pd.DataFrame(index=barcodes),
        var=pd.DataFrame(index=names),
    ).write_h5ad(path)


def test_check_sample_files_reports_every_problem_together(tmp_path):
    _write_h5ad(tmp_path / "a.h5ad", CELLS[:100], HUMAN_GENES)
    _write_h5ad(tmp_path / "b.h5ad", CELLS[100:], HUMAN_GENES)
    pd.DataFrame({"barcode": CELLS[:50].str.replace("-1", ""), "clone_id": "c1"}).to_csv(
        tmp_path / "a.tsv", sep="\t", index=False
    )
    dup = pd.DataFrame({"barcode": list(CELLS[100:110]) + [CELLS[100]], "clone_id": "c1"})
    dup.to_csv(tmp_path / "b.tsv", sep="\t", index=False)
    samples = pd.DataFrame(
        {
            "patient_id": ["P1", "P1"],
            "timepoint_order": [0, 1],
            "path": [str(tmp_path / "a.h5ad"), str(tmp_path / "b.h5ad")],
            "format": ["", ""],
            "clones": [str(tmp_path / "a.tsv"), str(tmp_path / "b.tsv")],
            "lineage_barcodes": ["", ""],
            "genotypes": ["", ""],
        },
        index=pd.Index(["a", "b"], name="sample_id"),
    )
    with pytest.raises(InputError) as err:
        preflight.check_sample_files(
            samples, qc=QC, panel_genes=HUMAN_PANEL, panel_path="p", min_matched_barcodes=0.5
        )
    text = str(err.value)
    assert text.startswith("the sample sheet's files have problems:")
    assert f"clone table {tmp_path / 'a.tsv'} (sample 'a'): 0 of its 50 barcodes" in text
    assert f"clone table {tmp_path / 'b.tsv'} (sample 'b'): barcode listed more than once" in text


def test_check_sample_files_warns_on_a_partial_match(tmp_path, caplog):
    _write_h5ad(tmp_path / "a.h5ad", CELLS, HUMAN_GENES)
    rows = list(CELLS[:45]) + [f"GHOST{i}-1" for i in range(5)]
    pd.DataFrame({"barcode": rows, "clone_id": "c1"}).to_csv(
        tmp_path / "a.tsv", sep="\t", index=False
    )
    samples = pd.DataFrame(
        {
            "patient_id": ["P1"],
            "timepoint_order": [0],
            "path": [str(tmp_path / "a.h5ad")],
            "format": [""],
            "clones": [str(tmp_path / "a.tsv")],
        },
        index=pd.Index(["a"], name="sample_id"),
    )
    warnings = preflight.check_sample_files(
        samples, qc=QC, panel_genes=HUMAN_PANEL, panel_path="p", min_matched_barcodes=0.5
    )
    assert len(warnings) == 1 and "45 of its 50 barcodes (90%)" in warnings[0]
    assert "the other 5 name no cell of the sample" in warnings[0]


def test_counts_copied_under_two_names_are_named():
    shared = pd.Index([f"C{i}-1" for i in range(100)])
    other = pd.Index([f"D{i}-1" for i in range(100)])
    (problem,) = preflight._same_cells({"a": shared, "b": other, "c": shared[::-1]})
    assert problem.startswith("samples 'a', 'c' have counts with the same 100 cell barcodes")
    # chance overlap of two libraries is no copy
    assert preflight._same_cells({"a": shared, "b": shared[:90].append(other[:10])}) == []
