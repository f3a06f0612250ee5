"""Bad inputs, run through the whole workflow: the message names the file, sample, row or column,
and nothing half-made is left behind.

Each case runs ``snakemake`` in a temporary copy of the repository with a deliberately broken sheet,
config or counts file, built from the toy bundle. Errors in the sheet or the config must stop the
workflow before any job (checked with a dry run, all cases in parallel); errors in the data are
found by jobs (checked with real runs, several broken samples in one ``--keep-going`` run). Two
inputs are legal but awkward (a patient sampled once; a clone table naming unknown barcodes): that
run must finish and say what it could not do.

Reader-level and sheet-level checks are unit-tested in tests/unit/test_io.py and test_sheet.py.
"""

from __future__ import annotations

import csv
import gzip
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import yaml
from runner import REPO, copy_repo, snakemake

pytestmark = pytest.mark.workflow

TOY = "resources/toy"
CASE_SHEET = f"{TOY}/case.tsv"


# ----------------------------------------------------------------------------------------------
# building broken copies of the toy


def read_toy_sheet(workdir: Path) -> tuple[list[str], list[dict]]:
    with open(workdir / TOY / "samples.tsv", newline="") as fh:
        reader = csv.DictReader(fh, delimiter="\t")
        return list(reader.fieldnames), list(reader)


def write_sheet(workdir: Path, header: list[str], rows: list[list[str]]) -> Path:
    path = workdir / CASE_SHEET
    path.write_text("\n".join("\t".join(r) for r in [header, *rows]) + "\n")
    return path


def toy_rows(workdir: Path, samples: list[str]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the toy sheet restricted to ``samples`` (in that order)."""
    header, rows = read_toy_sheet(workdir)
    by_id = {r["sample_id"]: r for r in rows}
    return header, [[by_id[s][c] for c in header] for s in samples]


def edit_config(workdir: Path, edit) -> None:
    path = workdir / "config/config.yaml"
    config = yaml.safe_load(path.read_text())
    edit(config)
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def new_workdir(tmp_path_factory, name: str) -> Path:
    return copy_repo(tmp_path_factory.mktemp(name))


def run(workdir: Path, *args: str):
    return snakemake(workdir, "--config", f"samples={CASE_SHEET}", *args, check=False)


def output(result) -> str:
    return result.stdout + result.stderr


def leftovers(workdir: Path) -> list[str]:
    """Temporary files of the atomic writers, which a finished or failed job must not leave."""
    return sorted(str(p.relative_to(workdir)) for p in (workdir / "results").rglob(".tmp-*"))


def files_under(path: Path) -> list[str]:
    return sorted(str(p) for p in path.rglob("*") if p.is_file()) if path.exists() else []


# ----------------------------------------------------------------------------------------------
# errors in the sheet or the config: before any job


@dataclass
class Case:
    samples: list[str]
    # (header, rows, workdir) -> (header, rows), or a callable editing the config dict
    sheet: object = None
    config: object = None
    files: object = None
    expect: list[str] = field(default_factory=list)  # may hold {sheet} and {toy}


def _drop_column(name):
    def edit(header, rows, workdir):
        i = header.index(name)
        return header[:i] + header[i + 1 :], [r[:i] + r[i + 1 :] for r in rows]

    return edit


def _set(row, column, value):
    def edit(header, rows, workdir):
        rows[row][header.index(column)] = value
        return header, rows

    return edit


def _repeat_column(name):
    def edit(header, rows, workdir):
        i = header.index(name)
        return header + [name], [r + [r[i]] for r in rows]

    return edit


def _rename_key(section, old, new):
    def edit(config):
        target = config[section] if section else config
        target[new] = target.pop(old)

    return edit


def _override(overrides):
    def edit(config):
        config["qc"]["overrides"] = overrides

    return edit


DRY_CASES = {
    "missing_column": Case(
        ["P1_diagnosis", "P1_relapse"],
        sheet=_drop_column("timepoint_order"),
        expect=["{sheet}: required column(s) 'timepoint_order' missing"],
    ),
    "duplicated_column": Case(
        ["P1_diagnosis", "P1_relapse"],
        sheet=_repeat_column("batch"),
        expect=["{sheet}: column 'batch' appears twice in the header (columns 9 and 11)"],
    ),
    "duplicate_sample_ids": Case(
        ["P1_diagnosis", "P1_relapse", "P2_diagnosis"],
        sheet=_set(1, "sample_id", "P1_diagnosis"),
        expect=[
            "{sheet}: sample_id 'P1_diagnosis' is used by rows 1, 2: sample ids must be unique"
        ],
    ),
    "unknown_format": Case(
        ["P1_diagnosis", "P2_diagnosis"],
        sheet=_set(1, "format", "anndata"),
        expect=[
            "{sheet}: row 2 (sample 'P2_diagnosis'), column 'format' has 'anndata', which is not "
            "allowed: use one of 10x_mtx, 10x_h5, h5ad, dense_txt"
        ],
    ),
    "missing_counts_path": Case(
        ["P1_diagnosis", "P2_diagnosis"],
        sheet=_set(1, "path", "counts/P2_diagnosis_typo.h5ad"),
        expect=[
            "{sheet}: row 2 (sample 'P2_diagnosis'), column 'path': "
            "{toy}/counts/P2_diagnosis_typo.h5ad does not exist"
        ],
    ),
    "missing_clone_table": Case(
        ["P3_diagnosis", "P3_relapse"],
        sheet=_set(0, "clones", "clones/P3_dx.tsv"),
        expect=[
            "{sheet}: row 1 (sample 'P3_diagnosis'), column 'clones': {toy}/clones/P3_dx.tsv "
            "does not exist"
        ],
    ),
    "config_typo_in_section": Case(
        ["P1_diagnosis", "P1_relapse"],
        config=_rename_key("qc", "nmads_mito", "nmads_mitochondria"),
        expect=[
            "Additional properties are not allowed ('nmads_mitochondria' was unexpected)",
            "['qc']",
        ],
    ),
    "config_typo_top_level": Case(
        ["P1_diagnosis", "P1_relapse"],
        config=_rename_key(None, "seed", "random_seed"),
        expect=["Additional properties are not allowed ('random_seed' was unexpected)"],
    ),
    "qc_override_unknown_setting": Case(
        ["P1_diagnosis", "P1_relapse"],
        config=_override({"P1_relapse": {"min_count": 500}}),
        expect=["min_count", "P1_relapse"],
    ),
    "qc_override_unknown_sample": Case(
        ["P1_diagnosis", "P1_relapse"],
        config=_override({"P1_relaps": {"min_counts": 500}}),
        expect=["P1_relaps"],
    ),
    "de_reference_not_in_sheet": Case(
        ["P1_diagnosis", "P1_relapse"],
        config=lambda config: config["de"].update(reference_timepoint="baseline"),
        expect=["reference_timepoint", "'baseline'"],
    ),
    "cnv_reference_sample_not_in_sheet": Case(
        ["P1_diagnosis", "P1_relapse"],
        config=lambda config: config["clones"]["cnv"].update(reference_samples=["BM1"]),
        expect=[
            "clones.cnv.reference_samples names sample(s) ['BM1'] that are not in the sample sheet"
        ],
    ),
    "batch_key_not_a_sheet_column": Case(
        ["P1_diagnosis", "P1_relapse"],
        config=lambda config: config["integration"].update(batch_key="run"),
        expect=["integration.batch_key 'run' is not a column of the sample sheet"],
    ),
    "stem_cell_type_not_in_panel": Case(
        ["P1_diagnosis", "P1_relapse"],
        config=lambda config: config["clones"]["resistance"].update(stem_cell_types=["HSC", "LSC"]),
        expect=[
            "clones.resistance.stem_cell_types names cell type(s) ['LSC'] that the marker panel"
        ],
    ),
    "healthy_not_yes_or_no": Case(
        ["P1_diagnosis", "P1_relapse"],
        sheet=lambda header, rows, workdir: (header + ["healthy"], [r + ["maybe"] for r in rows]),
        expect=["column 'healthy'", "maybe"],
    ),
    "missing_genotype_table": Case(
        ["P1_diagnosis", "P1_relapse"],
        sheet=_set(0, "genotypes", "genotypes/P1.tsv"),
        expect=[
            "row 1 (sample 'P1_diagnosis'), column 'genotypes': "
            "{toy}/genotypes/P1.tsv does not exist"
        ],
    ),
    # cross-checks of the sheet's files, before any job
    "clone_table_without_suffix": Case(
        ["P2_diagnosis", "P2_relapse"],
        sheet=lambda header, rows, workdir: (
            _strip_suffix(workdir / TOY / "clones/P2_relapse.tsv"),
            header,
            rows,
        )[1:],
        expect=[
            "clone table {toy}/clones/P2_relapse.tsv (sample 'P2_relapse'): "
            "0 of its 234 barcodes (0%) "
            "are shared with the sample's counts {toy}/counts/P2_relapse.h5ad; its first barcodes: "
            "GCTATGTTTAACTTGT, GGATAGATGTTAGATC, CTCCATGCAGGTTAGA; "
            "the counts': GCTATGTTTAACTTGT-1, "
            "GGATAGATGTTAGATC-1, CTCCATGCAGGTTAGA-1: the counts' barcodes end in '-1' and these do "
            "not: add the suffix (clones.min_matched_barcodes is 50%)"
        ],
    ),
    "lineage_matrix_of_another_experiment": Case(
        ["P1_diagnosis", "P1_relapse"],
        sheet=lambda header, rows, workdir: _add_column(
            header, rows, "lineage_barcodes", [str(REPO / "tests/data/celltag"), ""]
        ),
        expect=[
            f"lineage-barcode matrix {REPO}/tests/data/celltag (sample 'P1_diagnosis'): 0 of the "
            "counts' 528 barcodes (0%) are shared with the sample's counts",
            "its first barcodes: AAACCTGAGCACAGGT, AAACCTGAGCCAGTTT",
            "check that the file belongs to this sample",
        ],
    ),
    "duplicated_barcodes_in_two_clone_tables": Case(
        ["P2_diagnosis", "P3_diagnosis", "P3_relapse"],
        sheet=lambda header, rows, workdir: (
            _repeat_first_row(workdir / TOY / "clones/P2_diagnosis.tsv"),
            _repeat_first_row(workdir / TOY / "clones/P3_relapse.tsv"),
            header,
            rows,
        )[2:],
        expect=[
            "the sample sheet's files have problems:",
            "clone table {toy}/clones/P2_diagnosis.tsv (sample 'P2_diagnosis'): barcode listed "
            "more than once in row(s) 1, 220: give each cell one clone",
            "clone table {toy}/clones/P3_relapse.tsv (sample 'P3_relapse'): barcode listed "
            "more than once in row(s) 1, 210: give each cell one clone",
        ],
    ),
    "two_rows_one_counts_file": Case(
        ["P1_diagnosis", "P1_relapse"],
        sheet=_set(1, "path", "counts/P1_diagnosis"),
        expect=[
            "{sheet}: row 1 (sample 'P1_diagnosis'), row 2 (sample 'P1_relapse') name the same "
            "file in column 'path' ({toy}/counts/P1_diagnosis): each sample needs its own file"
        ],
    ),
    "ensembl_gene_ids": Case(
        ["P2_diagnosis", "P2_relapse"],
        sheet=lambda header, rows, workdir: (
            _rename_genes(workdir / TOY / "counts/P2_diagnosis.h5ad", lambda i, g: f"ENSG{i:011d}"),
            header,
            rows,
        )[1:],
        expect=[
            "sample 'P2_diagnosis' ({toy}/counts/P2_diagnosis.h5ad): 100% of its gene names are "
            "Ensembl ids (e.g. ENSG00000000000, ENSG00000000001, ENSG00000000002): clonetrack "
            "finds genes by symbol"
        ],
    ),
    "mouse_symbols_with_human_settings": Case(
        ["P2_diagnosis", "P2_relapse"],
        sheet=lambda header, rows, workdir: (
            _rename_genes(workdir / TOY / "counts/P2_diagnosis.h5ad", lambda i, g: g.capitalize()),
            header,
            rows,
        )[1:],
        expect=[
            "sample 'P2_diagnosis' ({toy}/counts/P2_diagnosis.h5ad): its gene names are mouse "
            "(e.g. Cd34) symbols",
            "but the marker panel resources/markers/bone_marrow_markers.tsv uses human (e.g. "
            "CD34) symbols",
            "no gene name starts with qc.mito_prefix 'MT-' but 13 start with 'Mt-'",
        ],
    ),
    "qc_override_of_the_wrong_type": Case(
        ["P1_diagnosis", "P1_relapse"],
        config=_override({"P1_relapse": {"max_pct_mito": "forty"}}),
        expect=[
            "'forty' is not of type 'number', 'null'",
            "On instance['qc']['overrides']['P1_relapse']['max_pct_mito']",
        ],
    ),
    "reference_cell_type_not_in_panel": Case(
        ["P1_diagnosis", "P1_relapse"],
        config=lambda config: config["clones"]["cnv"].update(reference_cell_types=["T", "Tcell"]),
        expect=[
            "clones.cnv.reference_cell_types names cell type(s) ['Tcell'] that the marker panel"
        ],
    ),
    "sheet_not_utf8": Case(
        ["P1_diagnosis", "P1_relapse"],
        sheet=_set(1, "sex", "F\u00e9minin"),
        files=lambda workdir: _reencode(workdir / CASE_SHEET, "latin-1"),
        expect=[
            "{sheet}: line 3 is not UTF-8 text (byte 0xe9, e.g. an accented letter saved in a "
            "Windows or Latin-1 encoding): save the sheet as UTF-8"
        ],
    ),
    "one_counts_file_copied_under_two_names": Case(
        ["P2_diagnosis", "P2_relapse"],
        files=lambda workdir: shutil.copy(
            workdir / TOY / "counts/P2_diagnosis.h5ad", workdir / TOY / "counts/P2_relapse.h5ad"
        ),
        expect=[
            "samples 'P2_diagnosis', 'P2_relapse' have counts with the same 528 cell barcodes: the "
            "same cells would enter twice; give each sample its own counts"
        ],
    ),
    "batch_key_column_blank_for_a_sample": Case(
        ["P1_diagnosis", "P1_relapse"],
        sheet=_set(1, "batch", ""),
        config=lambda config: config["integration"].update(batch_key="batch"),
        expect=[
            "integration.batch_key 'batch': the sample sheet resources/toy/case.tsv leaves it "
            "empty for sample(s) ['P1_relapse']: give every sample its batch"
        ],
    ),
    # the cohort's tables: checked before any job
    "patient_table_duplicated_row": Case(
        ["P1_diagnosis", "P1_relapse"],
        files=lambda workdir: _write(
            workdir / TOY / "patients.tsv", "patient_id\tresponse\nP1\trelapse\nP1\trelapse\n"
        ),
        config=lambda config: config.update(patients=f"{TOY}/patients.tsv"),
        expect=[
            "patient table resources/toy/patients.tsv: patient_id listed more than once in "
            "row(s) 1, 2 (P1): give each patient one row"
        ],
    ),
    "patient_table_unknown_response": Case(
        ["P1_diagnosis", "P1_relapse"],
        files=lambda workdir: _write(
            workdir / TOY / "patients.tsv", "patient_id\tresponse\nP1\tnon_responder\n"
        ),
        config=lambda config: config.update(patients=f"{TOY}/patients.tsv"),
        expect=[
            "patient table resources/toy/patients.tsv, column 'response': ['non_responder'] in "
            "row(s) 1 are not among cohort.response_levels"
        ],
    ),
    "measurement_not_a_number": Case(
        ["P1_diagnosis", "P1_relapse"],
        files=lambda workdir: _write(
            workdir / TOY / "dst.tsv", "patient_id\tassay\tfeature\tvalue\nP1\tDST\tven\t>10\n"
        ),
        config=lambda config: config.update(measurements=[f"{TOY}/dst.tsv"]),
        expect=[
            "measurement table resources/toy/dst.tsv, column 'value': not a number in row(s) 1 "
            "(e.g. '>10')"
        ],
    ),
    "contrast_with_an_unknown_response": Case(
        ["P1_diagnosis", "P1_relapse"],
        config=lambda config: config["cohort"]["contrasts"].update(
            early_death={"case": ["induction_death"], "control": ["relapse"]}
        ),
        expect=[
            "cohort.contrasts.early_death names response(s) ['induction_death'] that are not in "
            "cohort.response_levels"
        ],
    ),
    "timepoint_order_out_of_range": Case(
        ["P1_diagnosis", "P1_relapse"],
        sheet=_set(0, "timepoint_order", "99999999999999999999"),
        expect=[
            "{sheet}: row 1 (sample 'P1_diagnosis'), column 'timepoint_order' has "
            "'99999999999999999999', which is not allowed: give a whole number of at most 9 digits"
        ],
    ),
}


def _write(path: Path, text: str) -> None:
    path.write_text(text)


def _strip_suffix(path: Path) -> None:
    table = pd.read_csv(path, sep="\t", dtype=str)
    table["barcode"] = table["barcode"].str.replace(r"-1$", "", regex=True)
    table.to_csv(path, sep="\t", index=False)


def _repeat_first_row(path: Path) -> None:
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines, lines[1]]) + "\n")


def _add_column(header, rows, name, values):
    return header + [name], [r + [v] for r, v in zip(rows, values, strict=True)]


def _rename_genes(path: Path, rename) -> None:
    adata = ad.read_h5ad(path)
    adata.var_names = [rename(i, g) for i, g in enumerate(adata.var_names)]
    adata.write_h5ad(path)


def _reencode(path: Path, encoding: str) -> None:
    path.write_bytes(path.read_text(encoding="utf-8").encode(encoding))


# Awkward but legal sheets: they must pass the checks and plan the QC jobs.
LEGAL_DRY_CASES = {
    "comment_lines_and_commented_header": Case(
        ["P1_diagnosis", "P1_relapse"],
        files=lambda workdir: _comment(workdir / CASE_SHEET),
    ),
    "patient_table_missing_a_patient": Case(
        ["P1_diagnosis", "P1_relapse", "P2_diagnosis"],
        files=lambda workdir: _write(
            workdir / TOY / "patients.tsv", "patient_id\tresponse\nP1\trelapse\nP9\trelapse\n"
        ),
        config=lambda config: config.update(patients=f"{TOY}/patients.tsv"),
    ),
    "excel_unicode_text": Case(
        ["P1_diagnosis", "P1_relapse"],
        files=lambda workdir: (workdir / CASE_SHEET).write_bytes(
            (workdir / CASE_SHEET).read_text().encode("utf-16")
        ),
    ),
}


def _comment(path: Path) -> None:
    lines = path.read_text().splitlines()
    path.write_text(
        "\n".join(["# exported 2026-11-26", "#" + lines[0], *lines[1:], "# end"]) + "\n"
    )


def _prepare_dry(tmp_path_factory, name: str, case: Case) -> Path:
    workdir = new_workdir(tmp_path_factory, name)
    header, rows = toy_rows(workdir, case.samples)
    if case.sheet:
        header, rows = case.sheet(header, rows, workdir)
    write_sheet(workdir, header, rows)
    if case.files:
        case.files(workdir)
    if case.config:
        edit_config(workdir, case.config)
    return workdir


@pytest.fixture(scope="module")
def dry_runs(tmp_path_factory) -> dict:
    """Every sheet/config case as a dry run, in parallel (each is mostly interpreter start-up)."""
    cases = DRY_CASES | LEGAL_DRY_CASES
    workdirs = {n: _prepare_dry(tmp_path_factory, n, c) for n, c in cases.items()}
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {n: pool.submit(run, w, "--dry-run") for n, w in workdirs.items()}
        return {n: (workdirs[n], f.result()) for n, f in futures.items()}


@pytest.mark.parametrize("name", list(LEGAL_DRY_CASES))
def test_awkward_but_legal_sheets_pass_the_checks(dry_runs, name):
    workdir, result = dry_runs[name]
    text = output(result)
    assert result.returncode == 0, f"{name}:\n{text[-3000:]}"
    assert "qc_sample" in text


@pytest.mark.parametrize("name", list(DRY_CASES))
def test_sheet_and_config_errors_stop_before_any_job(dry_runs, name):
    workdir, result = dry_runs[name]
    text = output(result)
    assert result.returncode != 0, f"{name}: the dry run passed:\n{text[-2000:]}"
    for phrase in DRY_CASES[name].expect:
        phrase = phrase.format(sheet=workdir / CASE_SHEET, toy=workdir / TOY)
        assert phrase in text, f"{name}: {phrase!r} not in:\n{text[-3000:]}"
    # refused while parsing: no job was planned, nothing was written
    assert "Job stats" not in text and "rule qc_sample" not in text
    assert not (workdir / "results").exists()
    assert not (workdir / "logs").exists()


# ----------------------------------------------------------------------------------------------
# errors in the data: found by the jobs, several broken samples in one --keep-going run


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _drop_last_line_gz(path: Path) -> None:
    with gzip.open(path, "rt") as fh:
        lines = fh.read().splitlines()
    with gzip.open(path, "wt") as fh:
        fh.write("\n".join(lines[:-1]) + "\n")


def _lines_gz(path: Path) -> int:
    with gzip.open(path, "rt") as fh:
        return sum(1 for _ in fh)


BROKEN = ["P1_diagnosis", "P1_on_treatment", "P2_diagnosis", "P2_relapse", "P3_diagnosis"]


@pytest.fixture(scope="module")
def broken_run(tmp_path_factory):
    """Five samples, each broken differently; every qc_sample job fails, nothing downstream runs."""
    workdir = new_workdir(tmp_path_factory, "broken")
    counts = workdir / TOY / "counts"
    expect = {}

    # mtx dimension mismatch: one barcode fewer than the matrix has columns
    folder = counts / "P1_diagnosis"
    n_features = _lines_gz(folder / "features.tsv.gz")
    n_cells = _lines_gz(folder / "barcodes.tsv.gz")
    _drop_last_line_gz(folder / "barcodes.tsv.gz")
    expect["P1_diagnosis"] = [
        f"{folder / 'matrix.mtx.gz'} (sample 'P1_diagnosis') is {n_features} features x "
        f"{n_cells} cells but features.tsv.gz lists {n_features} features and barcodes.tsv.gz "
        f"lists {n_cells - 1} barcodes"
    ]

    # missing counts file inside an existing Cell Ranger folder
    folder = counts / "P1_on_treatment"
    (folder / "matrix.mtx.gz").unlink()
    expect["P1_on_treatment"] = [f"{folder} is a folder without matrix.mtx or matrix.mtx.gz"]

    # non-integer counts in an h5ad
    path = counts / "P2_diagnosis.h5ad"
    adata = ad.read_h5ad(path)
    X = adata.X.tocsr().astype(np.float32)
    X.sort_indices()
    X.data[0] = 0.5
    adata.X = X
    adata.write_h5ad(path)
    gene, cell = adata.var_names[X.indices[0]], adata.obs_names[0]
    expect["P2_diagnosis"] = [
        f"{path} (sample 'P2_diagnosis') contains non-integer values (e.g. 0.5 for gene {gene} "
        f"in cell {cell})"
    ]

    # truncated gzip
    path = counts / "P3_diagnosis.txt.gz"
    _truncate(path)
    expect["P3_diagnosis"] = [f"{path} (sample 'P3_diagnosis') is truncated or corrupt"]

    # a sample that QC empties: thresholds no cell can pass
    edit_config(workdir, _override({"P2_relapse": {"min_counts": 10_000_000}}))
    expect["P2_relapse"] = [
        "Sample P2_relapse: QC removed all 528 cells (low_counts: 528",
        "qc.overrides.P2_relapse",
    ]

    header, rows = toy_rows(workdir, BROKEN)
    write_sheet(workdir, header, rows)
    result = run(workdir, "--keep-going", "--show-failed-logs")
    return workdir, result, expect


@pytest.mark.parametrize("sample", BROKEN)
def test_bad_data_fails_its_job_with_a_message_naming_file_and_sample(broken_run, sample):
    workdir, result, expect = broken_run
    text = output(result)
    log = workdir / "logs/qc_sample" / f"{sample}.log"
    assert log.is_file(), f"no log for {sample}:\n{text[-3000:]}"
    for phrase in expect[sample]:
        assert phrase in log.read_text(), f"{phrase!r} not in {log}:\n{log.read_text()[-3000:]}"
        # --show-failed-logs (also in profiles/default) puts it in front of the user
        assert phrase in text, phrase
    assert "InputError" in log.read_text()
    # the failed job left nothing of its outputs behind
    assert files_under(workdir / "results/qc" / sample) == []


def test_bad_data_run_stops_before_merging_and_leaves_no_partial_files(broken_run):
    workdir, result, _ = broken_run
    text = output(result)
    assert result.returncode != 0
    assert text.count("Error in rule qc_sample") == len(BROKEN), text[-3000:]
    for path in ("results/merged", "results/final", "results/tables", "results/report.html"):
        assert not (workdir / path).exists(), path
    assert leftovers(workdir) == []
    assert not list((workdir / ".snakemake").glob("incomplete/*")), "incomplete markers left"


# ----------------------------------------------------------------------------------------------
# samples that pass QC but share no genes: found when merging


@pytest.fixture(scope="module")
def disjoint_run(tmp_path_factory):
    workdir = new_workdir(tmp_path_factory, "disjoint")
    path = workdir / TOY / "counts/P2_relapse.h5ad"
    adata = ad.read_h5ad(path)
    # another annotation: Ensembl-like identifiers instead of symbols, in a follow-up sample (the
    # checks before any job read the genes of each patient's first sample only)
    adata.var_names = [f"ENSG{i:011d}" for i in range(adata.n_vars)]
    adata.write_h5ad(path)
    header, rows = toy_rows(workdir, ["P2_diagnosis", "P2_relapse"])
    write_sheet(workdir, header, rows)
    return workdir, run(workdir, "--show-failed-logs"), adata.n_vars


def test_samples_without_common_genes_are_refused_at_merge(disjoint_run):
    workdir, result, n_genes = disjoint_run
    text = output(result)
    assert result.returncode != 0
    log = (workdir / "logs/merge_normalise/merge_normalise.log").read_text()
    for phrase in (
        "The samples share no gene names (",
        f"P2_diagnosis: {n_genes} genes",
        f"P2_relapse: {n_genes} genes",
        "use the same gene identifiers",
    ):
        assert phrase in log, phrase
        assert phrase in text, phrase
    # QC of each sample finished (its outputs are whole); the merge left nothing
    for sample in ("P2_diagnosis", "P2_relapse"):
        assert (workdir / f"results/qc/{sample}/cells_kept.h5ad").is_file()
    assert files_under(workdir / "results/merged") == []
    assert not (workdir / "results/final").exists()
    assert leftovers(workdir) == []


# ----------------------------------------------------------------------------------------------
# legal but awkward: a patient sampled once, and clone tables naming unknown barcodes


UNKNOWN = [f"NOTACELL{i:02d}-1" for i in range(5)]


@pytest.fixture(scope="module")
def edge_run(tmp_path_factory):
    """P1 at diagnosis only, with a clone table; P3 at diagnosis and relapse, the relapse clone
    table naming five barcodes that are no cell of the sample."""
    workdir = new_workdir(tmp_path_factory, "edge")
    toy = workdir / TOY
    truth = pd.read_csv(toy / "truth/cells.tsv", sep="\t", dtype=str, keep_default_na=False)
    p1 = truth[(truth["sample_id"] == "P1_diagnosis") & (truth["clone"] != "")]
    p1[["barcode", "clone"]].rename(columns={"clone": "clone_id"}).to_csv(
        toy / "clones/P1_diagnosis.tsv", sep="\t", index=False
    )
    table = toy / "clones/P3_relapse.tsv"
    with open(table, "a") as fh:
        fh.writelines(f"{b}\tLB01\t0.9\n" for b in UNKNOWN)
    header, rows = toy_rows(workdir, ["P1_diagnosis", "P3_diagnosis", "P3_relapse"])
    rows[0][header.index("clones")] = "clones/P1_diagnosis.tsv"
    write_sheet(workdir, header, rows)
    first = run(workdir)
    report = run(workdir, "--report", "results/report.html") if first.returncode == 0 else None
    return workdir, first, report


def test_awkward_inputs_run_to_the_end(edge_run):
    workdir, result, report = edge_run
    assert result.returncode == 0, output(result)[-4000:]
    assert (workdir / "results/final/adata.h5ad").is_file()
    assert report is not None and report.returncode == 0, output(report)[-3000:]
    assert (workdir / "results/report.html").is_file()
    assert leftovers(workdir) == []
    # a step with nothing to compute still writes its table's header, so readers do not break
    no_header = [
        str(p.relative_to(workdir))
        for p in sorted((workdir / "results").rglob("*.tsv"))
        if not p.read_text().strip()
    ]
    assert no_header == [], f"tables without a header line: {no_header}"


def test_single_timepoint_patient_de_summary_says_why(edge_run):
    workdir, result, _ = edge_run
    assert result.returncode == 0
    results = pd.read_csv(workdir / "results/tables/de/timepoint_de.tsv", sep="\t")
    summary = pd.read_csv(workdir / "results/tables/de/timepoint_de_summary.tsv", sep="\t")
    assert len(results) == 0
    # one contrast exists (P3 relapse vs diagnosis); every cell type says why it was not fitted
    assert len(summary) > 0
    assert set(summary["contrast"]) == {"relapse_vs_diagnosis"}
    status = summary["status"]
    assert status.str.fullmatch(
        r"skipped: [01] patient\(s\) with >= 10 cells at both diagnosis and relapse; need 2"
    ).all(), status.tolist()
    assert (status.str.startswith("skipped: 1 patient(s)")).any()


def test_single_timepoint_patient_clone_comparisons_say_why(edge_run):
    workdir, result, _ = edge_run
    assert result.returncode == 0
    tables = workdir / "results/tables/clones"
    comparisons = pd.read_csv(tables / "comparisons.tsv", sep="\t")
    classes = pd.read_csv(tables / "classes.tsv", sep="\t")
    assert "P1" not in set(comparisons["patient_id"])
    assert "P3" in set(comparisons["patient_id"])
    p1 = classes[classes["patient_id"] == "P1"]
    assert len(p1) > 0, "P1's given clones are missing from classes.tsv"
    assert (p1["class"] == "undetermined").all()
    assert (
        p1["evidence"]
        .str.contains("only one timepoint (diagnosis); no dynamics", regex=False)
        .all()
    )
    log = (workdir / "logs/clone_dynamics/clone_dynamics.log").read_text()
    assert "not compared" in log
    assert "patient 'P1' has one timepoint (diagnosis); clone dynamics need at least two." in log


@pytest.mark.realdata
def test_follow_up_too_small_for_de_summary_says_why(vangalen_run):
    """The van Galen subset has one follow-up, AML329's 30-cell remission sample: no cell type
    reaches the minimum pseudobulk size in two patients, and the summary says so for each cell
    type instead of being empty or failing."""
    results = pd.read_csv(vangalen_run / "results/tables/de/timepoint_de.tsv", sep="\t")
    summary = pd.read_csv(vangalen_run / "results/tables/de/timepoint_de_summary.tsv", sep="\t")
    assert len(results) == 0
    assert len(summary) > 0
    assert (summary["contrast"] == "D37_vs_diagnosis").all()
    why = "skipped: 0 patient(s) with >= 10 cells at both diagnosis and D37; need 2"
    assert (summary["status"] == why).all(), summary["status"].tolist()


def test_unknown_barcodes_in_clone_table_are_counted_and_listed(edge_run):
    workdir, result, _ = edge_run
    assert result.returncode == 0
    cells = pd.read_csv(
        workdir / "results/tables/qc_cells.tsv.gz", sep="\t", dtype={"barcode": str}
    )
    kept = cells[cells["qc_reason"] == "kept"]
    folder = workdir / "results/clones/patient~P3"
    sources = pd.read_csv(folder / "sources.tsv", sep="\t").set_index("sample_id")
    unmatched = pd.read_csv(folder / "unmatched_rows.tsv", sep="\t", dtype=str)
    for sample in ("P3_diagnosis", "P3_relapse"):
        table = pd.read_csv(workdir / TOY / f"clones/{sample}.tsv", sep="\t", dtype=str)
        in_sample = set(kept.loc[kept["sample_id"] == sample, "barcode"])
        expected = sorted(set(table["barcode"]) - in_sample)
        assert sources.loc[sample, "n_table_rows_unmatched"] == len(expected), sample
        listed = sorted(unmatched.loc[unmatched["sample_id"] == sample, "barcode"])
        assert listed == expected, sample
    assert set(UNKNOWN) <= set(unmatched.loc[unmatched["sample_id"] == "P3_relapse", "barcode"])
    final = ad.read_h5ad(workdir / "results/final/adata.h5ad", backed="r")
    assert not any(b in set(final.obs["barcode"]) for b in UNKNOWN)
    # the given clone of every matched row is the cell's clone
    table = pd.read_csv(workdir / TOY / "clones/P3_relapse.tsv", sep="\t", dtype=str)
    obs = final.obs[final.obs["sample_id"] == "P3_relapse"].set_index("barcode")
    matched = table[table["barcode"].isin(obs.index)].set_index("barcode")
    assert len(matched) > 0
    assert (obs.loc[matched.index, "clone"].astype(str) == matched["clone_id"]).all()


def test_fixture_inputs_are_copies():
    """The broken inputs live in temporary copies: the bundled toy is untouched."""
    repo = REPO
    assert _lines_gz(repo / TOY / "counts/P1_diagnosis/barcodes.tsv.gz") == 528
    assert (repo / TOY / "counts/P1_on_treatment/matrix.mtx.gz").is_file()
    assert not (repo / CASE_SHEET).exists()
