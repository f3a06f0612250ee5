"""Sample sheet: reading, validation against the schema, and the bad-sheet catalogue."""

import os
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml
from clonetrack.errors import InputError
from clonetrack.io import sheet

HEADER = ["sample_id", "patient_id", "timepoint", "timepoint_order", "path"]
GOOD_ROWS = [
    ["P1_d0", "P1", "diagnosis", "0", "data/p1_d0"],
    ["P1_c1", "P1", "C1", "1", "data/p1_c1"],
    ["P2_d0", "P2", "diagnosis", "0", "data/p2_d0"],
]


def write_sheet(tmp_path: Path, rows, header=HEADER, *, name="samples.tsv") -> Path:
    """A sheet under tmp_path with every referenced path created (unless it contains 'missing')."""
    for row in rows:
        for column, value in zip(header, row, strict=False):
            if column in sheet.PATH_COLUMNS and value and "missing" not in value:
                (tmp_path / value).parent.mkdir(parents=True, exist_ok=True)
                (tmp_path / value).touch()
    text = "\n".join("\t".join(r) for r in [header, *rows]) + "\n"
    path = tmp_path / name
    path.write_text(text)
    return path


def test_reads_good_sheet(tmp_path):
    header = [*HEADER, "format", "batch", "clones"]
    rows = [
        [*GOOD_ROWS[1], "", "run2", "clones/p1_c1.tsv"],
        [*GOOD_ROWS[0], "10x_mtx", "run1", ""],
        [*GOOD_ROWS[2], "", "NA", ""],
    ]
    df = sheet.read_sample_sheet(write_sheet(tmp_path, rows, header))
    assert df.index.name == "sample_id"
    assert df.index.tolist() == ["P1_c1", "P1_d0", "P2_d0"]  # sorted
    assert df["timepoint_order"].tolist() == [1, 0, 0]
    assert df["timepoint_order"].dtype.kind == "i"
    assert df.at["P1_d0", "path"] == str(tmp_path / "data" / "p1_d0")
    assert df.at["P1_c1", "clones"] == str(tmp_path / "clones" / "p1_c1.tsv")
    assert df.at["P1_d0", "clones"] == ""
    # absent optional columns are added empty; "NA" stays a level, not a missing value
    assert df["lineage_barcodes"].tolist() == ["", "", ""]
    assert df.at["P2_d0", "batch"] == "NA"
    assert df.at["P1_d0", "format"] == "10x_mtx"
    assert sheet.covariate_columns(df) == ["batch"]


def test_strips_blanks_and_bom(tmp_path):
    rows = [[" P1_d0 ", "P1", "diagnosis", " 0", "data/p1_d0"]]
    path = write_sheet(tmp_path, rows)
    path.write_text("\ufeff" + path.read_text())
    df = sheet.read_sample_sheet(path)
    assert df.index.tolist() == ["P1_d0"]
    assert df.at["P1_d0", "timepoint_order"] == 0


def test_relative_sheet_path_resolves_from_sheet_folder(tmp_path, monkeypatch):
    sub = tmp_path / "config"
    sub.mkdir()
    write_sheet(sub, GOOD_ROWS[:1])
    monkeypatch.chdir(tmp_path)
    df = sheet.read_sample_sheet("config/samples.tsv")
    assert df.at["P1_d0", "path"] == str(sub / "data" / "p1_d0")


def test_schema_is_complete_and_valid():
    schema = yaml.safe_load(sheet.schema_path().read_text())
    jsonschema.validators.validator_for(schema).check_schema(schema)
    assert schema["additionalProperties"] is True
    assert "covariate" in schema["description"]
    assert set(schema["properties"]) == sheet.KNOWN_COLUMNS
    assert set(schema["required"]) == set(sheet.REQUIRED_COLUMNS)
    for name, prop in schema["properties"].items():
        assert prop.get("description"), name
        assert "default" in prop, name
    assert schema["properties"]["sample_id"]["pattern"] == sheet.SAMPLE_ID_PATTERN
    assert schema["properties"]["format"]["enum"] == ["", *sheet.FORMATS]


def test_import_is_light():
    # common.smk imports this at parse time: no scanpy/anndata
    code = (
        "import sys, clonetrack.io.sheet; "
        "print('scanpy' in sys.modules or 'anndata' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(sheet.__file__).parents[2])}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------------------------------------
# bad sheets


def test_missing_sheet(tmp_path):
    with pytest.raises(InputError, match=r"nope\.tsv does not exist"):
        sheet.read_sample_sheet(tmp_path / "nope.tsv")


@pytest.mark.parametrize("text", ["", "\n  \n"])
def test_empty_sheet(tmp_path, text):
    path = tmp_path / "samples.tsv"
    path.write_text(text)
    with pytest.raises(InputError, match=r"samples\.tsv: the sample sheet is empty"):
        sheet.read_sample_sheet(path)


def test_header_only(tmp_path):
    path = write_sheet(tmp_path, [])
    with pytest.raises(InputError, match=r"samples\.tsv: .*header but no samples"):
        sheet.read_sample_sheet(path)


def test_missing_column(tmp_path):
    header = [c for c in HEADER if c != "timepoint_order"]
    rows = [[v for c, v in zip(HEADER, GOOD_ROWS[0], strict=True) if c != "timepoint_order"]]
    with pytest.raises(
        InputError, match=r"samples\.tsv: required column\(s\) 'timepoint_order' missing"
    ):
        sheet.read_sample_sheet(write_sheet(tmp_path, rows, header))


@pytest.mark.parametrize(
    ("column", "meant", "note"),
    [
        ("lineage_barcode", "lineage_barcodes", ""),
        ("clone", "clones", ""),
        ("timepoint_ordre", "timepoint_order", " (which is missing)"),
    ],
)
def test_misspelt_known_column_is_refused_not_kept_as_covariate(tmp_path, column, meant, note):
    header = [column if c == meant else c for c in HEADER] + (
        [column] if meant not in HEADER else []
    )
    rows = [[*row, "x"] if meant not in HEADER else row for row in GOOD_ROWS]
    with pytest.raises(
        InputError,
        match=rf"column '{column}' looks like a misspelling of '{meant}'{re.escape(note)}: rename",
    ):
        sheet.read_sample_sheet(write_sheet(tmp_path, rows, header))


def test_covariates_unlike_known_columns_are_kept(tmp_path):
    rows = [[*row, "AZA/VEN", "F"] for row in GOOD_ROWS]
    df = sheet.read_sample_sheet(write_sheet(tmp_path, rows, [*HEADER, "treatment", "sex"]))
    assert sheet.covariate_columns(df) == ["treatment", "sex"]


def test_duplicated_column(tmp_path):
    header = [*HEADER, "batch", "batch"]
    rows = [[*GOOD_ROWS[0], "a", "b"]]
    with pytest.raises(
        InputError, match=r"column 'batch' appears twice in the header \(columns 6 and 7\)"
    ):
        sheet.read_sample_sheet(write_sheet(tmp_path, rows, header))


def test_row_with_extra_fields(tmp_path):
    rows = [GOOD_ROWS[0], [*GOOD_ROWS[1], ""]]
    assert len(sheet.read_sample_sheet(write_sheet(tmp_path, rows))) == 2  # trailing tab is fine
    rows = [GOOD_ROWS[0], [*GOOD_ROWS[1], "surplus"]]
    with pytest.raises(InputError, match=r"row 2 has 6 tab-separated fields but the header has 5"):
        sheet.read_sample_sheet(write_sheet(tmp_path, rows))


def test_empty_required_cell(tmp_path):
    rows = [GOOD_ROWS[0], ["P1_c1", "", "C1", "1", "data/p1_c1"]]
    with pytest.raises(InputError, match=r"row 2 \(sample 'P1_c1'\), column 'patient_id' is empty"):
        sheet.read_sample_sheet(write_sheet(tmp_path, rows))


def test_duplicate_sample_id(tmp_path):
    rows = [GOOD_ROWS[0], GOOD_ROWS[2], ["P1_d0", "P3", "diagnosis", "0", "data/p3"]]
    with pytest.raises(InputError, match=r"sample_id 'P1_d0' is used by rows 1, 3: .*unique"):
        sheet.read_sample_sheet(write_sheet(tmp_path, rows))


@pytest.mark.parametrize("bad", ["P1 d0", "_P1", "P1/d0", "P1:d0"])
def test_bad_sample_id(tmp_path, bad):
    rows = [GOOD_ROWS[0], [bad, "P1", "C1", "1", "data/p1_c1"]]
    with pytest.raises(
        InputError, match=r"row 2 \(sample '.+'\), column 'sample_id' has .*letters, digits"
    ):
        sheet.read_sample_sheet(write_sheet(tmp_path, rows))


@pytest.mark.parametrize("bad", ["1.5", "first", "1e3"])
def test_non_integer_order(tmp_path, bad):
    rows = [GOOD_ROWS[0], ["P1_c1", "P1", "C1", bad, "data/p1_c1"]]
    with pytest.raises(
        InputError,
        match=rf"row 2 \(sample 'P1_c1'\), column 'timepoint_order' has '{bad}'.*whole number",
    ):
        sheet.read_sample_sheet(write_sheet(tmp_path, rows))


def test_all_row_problems_reported_together(tmp_path):
    rows = [
        ["P1 d0", "P1", "diagnosis", "x", "data/p1"],
        ["P2_d0", "P2", "diagnosis", "0", "data/p2"],
    ]
    with pytest.raises(InputError) as err:
        sheet.read_sample_sheet(write_sheet(tmp_path, rows))
    message = str(err.value)
    assert "column 'sample_id'" in message and "column 'timepoint_order'" in message


def test_timepoint_with_two_orders(tmp_path):
    rows = [
        ["P1_d0", "P1", "diagnosis", "0", "data/a"],
        ["P1_d0b", "P1", "diagnosis", "1", "data/b"],
        ["P2_d0", "P2", "diagnosis", "3", "data/c"],  # another patient may use another order
    ]
    with pytest.raises(
        InputError,
        match=r"patient 'P1', timepoint 'diagnosis' has more than one timepoint_order "
        r"\(row 1 \(sample 'P1_d0'\) has 0, row 2 \(sample 'P1_d0b'\) has 1\)",
    ):
        sheet.read_sample_sheet(write_sheet(tmp_path, rows))


def test_order_with_two_timepoints(tmp_path):
    rows = [["P1_d0", "P1", "diagnosis", "0", "data/a"], ["P1_c1", "P1", "C1", "0", "data/b"]]
    with pytest.raises(
        InputError,
        match=r"patient 'P1', timepoint_order 0 is given to more than one timepoint "
        r"\(row 1 \(sample 'P1_d0'\) has 'diagnosis', row 2 \(sample 'P1_c1'\) has 'C1'\)",
    ):
        sheet.read_sample_sheet(write_sheet(tmp_path, rows))


def test_two_samples_same_patient_timepoint(tmp_path):
    rows = [
        ["P1_d0a", "P1", "diagnosis", "0", "data/a"],
        ["P1_d0b", "P1", "diagnosis", "0", "data/b"],
    ]
    with pytest.raises(
        InputError,
        match=r"patient 'P1' has more than one sample at timepoint 'diagnosis' \(row 1 \(sample "
        r"'P1_d0a'\), row 2 \(sample 'P1_d0b'\)\): merge them .* or relabel",
    ):
        sheet.read_sample_sheet(write_sheet(tmp_path, rows))


def test_unknown_format(tmp_path):
    header = [*HEADER, "format"]
    rows = [[*GOOD_ROWS[0], "10x"], [*GOOD_ROWS[1], "h5ad"]]
    with pytest.raises(
        InputError,
        match=r"row 1 \(sample 'P1_d0'\), column 'format' has '10x'.*10x_mtx, 10x_h5, h5ad",
    ):
        sheet.read_sample_sheet(write_sheet(tmp_path, rows, header))


@pytest.mark.parametrize("column", ["path", "clones", "lineage_barcodes"])
def test_missing_file(tmp_path, column):
    header = [*HEADER, "clones", "lineage_barcodes"]
    row = dict(zip(header, [*GOOD_ROWS[0], "", ""], strict=True))
    row[column] = "../elsewhere/missing_thing"
    path = write_sheet(tmp_path, [list(row.values())], header)
    resolved = os.path.normpath(tmp_path / ".." / "elsewhere" / "missing_thing")
    with pytest.raises(
        InputError,
        match=rf"row 1 \(sample 'P1_d0'\), column '{column}': {resolved} does not exist",
    ):
        sheet.read_sample_sheet(path)


def test_covariate_columns_with_sample_id_column():
    import pandas as pd

    df = pd.DataFrame(columns=["sample_id", "patient_id", "path", "sex", "response", "format"])
    assert sheet.covariate_columns(df) == ["sex", "response"]


# ---------------------------------------------------------------------------------------------
# encodings, comments, shared files


def test_utf16_sheet_from_excel_is_read(tmp_path):
    path = write_sheet(tmp_path, GOOD_ROWS)
    path.write_bytes(path.read_text().encode("utf-16"))
    df = sheet.read_sample_sheet(path)
    assert list(df.index) == ["P1_c1", "P1_d0", "P2_d0"]


def test_latin1_sheet_is_refused_with_its_line(tmp_path):
    rows = [r.copy() for r in GOOD_ROWS]
    rows[2][2] = "rémission"
    path = write_sheet(tmp_path, rows)
    path.write_bytes(path.read_text().encode("latin-1"))
    with pytest.raises(InputError, match=re.escape(f"{path}: line 4 is not UTF-8 text (byte 0xe9")):
        sheet.read_sample_sheet(path)


def test_comment_lines_are_skipped_and_a_commented_header_kept(tmp_path):
    path = write_sheet(tmp_path, GOOD_ROWS)
    lines = path.read_text().splitlines()
    path.write_text(
        "\n".join(["# made by the core", "#" + lines[0], lines[1], "# P9 withdrawn", *lines[2:]])
        + "\n"
    )
    df = sheet.read_sample_sheet(path)
    assert list(df.index) == ["P1_c1", "P1_d0", "P2_d0"]
    assert df.loc["P1_c1", "timepoint_order"] == 1


def test_out_of_range_order_is_refused_naming_the_row(tmp_path):
    rows = [r.copy() for r in GOOD_ROWS]
    rows[0][3] = "12345678901234567890"
    path = write_sheet(tmp_path, rows)
    with pytest.raises(InputError, match=r"row 1 \(sample 'P1_d0'\), column 'timepoint_order'"):
        sheet.read_sample_sheet(path)


def test_two_rows_naming_one_file_are_refused(tmp_path):
    rows = [r.copy() for r in GOOD_ROWS]
    rows[2][4] = rows[0][4]
    path = write_sheet(tmp_path, rows)
    with pytest.raises(InputError) as err:
        sheet.read_sample_sheet(path)
    assert (
        "row 1 (sample 'P1_d0'), row 3 (sample 'P2_d0') name the same file in column 'path'"
        in str(err.value)
    )


def test_raw_path_alone_names_the_counts_and_a_row_without_either_is_refused(tmp_path):
    header = [*HEADER, "raw_path"]
    rows = [[*GOOD_ROWS[0][:4], "", "raw/p1_d0"], [*GOOD_ROWS[1], ""]]
    df = sheet.read_sample_sheet(write_sheet(tmp_path, rows, header))
    assert df.at["P1_d0", "path"] == "" and df.at["P1_d0", "raw_path"] == str(
        tmp_path / "raw" / "p1_d0"
    )
    assert df.at["P1_c1", "raw_path"] == ""
    rows[0][5] = ""
    with pytest.raises(
        InputError, match=r"row 1 \(sample 'P1_d0'\): column 'path' is empty: give the counts"
    ):
        sheet.read_sample_sheet(write_sheet(tmp_path, rows, header, name="bad.tsv"))
