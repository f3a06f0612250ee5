"""Genotype tables, the evidence of variant reads and clones from variant combinations."""

import numpy as np
import pandas as pd
import pytest
from clonetrack.clones import genotypes
from clonetrack.errors import InputError
from clonetrack.io import tables
from sklearn.metrics import adjusted_rand_score


def write(tmp_path, text, name="g.tsv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_reads_a_table_and_names_cells_as_the_count_readers_do(tmp_path):
    path = write(
        tmp_path,
        "barcode\tvariant\talt_reads\tref_reads\nAC\tTP53.R248Q\t2\t0\nAC\tNPM1.W288fs\t0\t3\n",
    )
    table = tables.read_genotype_table(path, sample_id="P1_d0")
    assert table["obs_name"].tolist() == ["P1_d0_AC", "P1_d0_AC"]
    assert table["alt_reads"].tolist() == [2, 0]


@pytest.mark.parametrize(
    "body, message",
    [
        ("barcode\tvariant\talt_reads\nAC\tX\t1\n", "lacks column(s) ref_reads"),
        (
            "barcode\tvariant\talt_reads\tref_reads\nAC\tX\t-1\t0\n",
            "alt_reads not a non-negative integer in row(s) 1",
        ),
        (
            "barcode\tvariant\talt_reads\tref_reads\nAC\tX\t1\t0\nGT\tX\t1\t0\nAC\tX\t0\t2\n",
            "listed more than once in row(s) 1, 3",
        ),
        ("barcode\tvariant\talt_reads\tref_reads\n\tX\t1\t0\n", "empty barcode in row(s) 1"),
    ],
)
def test_bad_tables_are_refused_by_file_sample_and_row(tmp_path, body, message):
    path = write(tmp_path, body)
    with pytest.raises(InputError, match=r"genotype table .*g\.tsv \(sample 'S1'\)") as error:
        tables.read_genotype_table(path, sample_id="S1")
    assert message in str(error.value)


def test_log_odds_follow_the_binomial_model():
    cells = pd.Index(["mutant", "wild_type", "many_wild_type", "none"])
    alt = pd.DataFrame({"V": [1, 0, 0, 0], "W": [0, 0, 0, 0]}, index=cells)
    ref = pd.DataFrame({"V": [0, 1, 0, 0], "W": [0, 0, 30, 0]}, index=cells)
    odds = genotypes.genotype_log_odds(alt, ref, mutant_allele_fraction=0.5, error_rate=0.01)
    assert odds["mutant"] == pytest.approx(np.log(0.5 / 0.01))
    assert odds["wild_type"] == pytest.approx(np.log(0.5 / 0.99))
    # wild-type reads of one variant never outweigh one mutant read (allelic dropout, subclones)
    assert odds["many_wild_type"] == pytest.approx(-np.log(0.5 / 0.01))
    assert odds["none"] == 0


def test_clonal_haematopoiesis_variants_are_no_evidence_of_leukaemia():
    kept = genotypes.malignancy_variants(
        ["DNMT3A.R882H", "TP53.R248Q", "TET2:Q1034*"], ["DNMT3A", "TET2"]
    )
    assert kept == ["TP53.R248Q"]


def test_two_subclones_with_dropout_are_found_and_named_by_their_variants():
    """Planted: a trunk variant in every malignant cell and one of two subclone variants each;
    a cell shows reads on only some variants (dropout) and sequencing errors on others."""
    rng = np.random.default_rng(1)
    n = 120
    truth = np.repeat(["A", "B"], n // 2)
    variants = ["NPM1.W288fs", "TP53.Q144P", "TP53.P152R"]
    carries = {"A": [1, 1, 0], "B": [1, 0, 1]}
    alt = np.zeros((n, 3), int)
    ref = np.zeros((n, 3), int)
    for i, clone in enumerate(truth):
        for j in range(3):
            depth = rng.poisson(2.0)
            if depth == 0:
                continue
            p = 0.5 if carries[clone][j] else 0.01
            alt[i, j] = rng.binomial(depth, p)
            ref[i, j] = depth - alt[i, j]
    cells = pd.Index([f"c{i}" for i in range(n)])
    clone, table = genotypes.genotype_clones(
        pd.DataFrame(alt, index=cells, columns=variants),
        pd.DataFrame(ref, index=cells, columns=variants),
        patient_id="P1",
        min_probability=0.8,
    )
    assigned = clone != "unassigned"
    assert assigned.mean() > 0.4  # cells with reads on the trunk variant only cannot be placed
    assert adjusted_rand_score(truth[assigned.to_numpy()], clone[assigned]) > 0.8
    assert len(table) == 2
    names = set(table["clone"])
    assert any("TP53.Q144P" in c and "P152R" not in c for c in names)
    assert any("TP53.P152R" in c and "Q144P" not in c for c in names)


def test_no_reads_no_clones():
    cells = pd.Index(["a", "b"])
    empty = pd.DataFrame(np.zeros((2, 1), int), index=cells, columns=["V"])
    clone, table = genotypes.genotype_clones(empty, empty, patient_id="P")
    assert (clone == "unassigned").all() and table.empty
