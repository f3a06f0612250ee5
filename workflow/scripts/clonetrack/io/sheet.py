"""The sample sheet: one row per sample, carrying the design (patient, timepoint, covariates).

Imported by ``workflow/rules/common.smk`` at parse time, so this module needs only pandas,
jsonschema and PyYAML, and stays fast.
"""

from __future__ import annotations

import codecs
import difflib
import io
import os
from collections.abc import Iterable
from pathlib import Path

import jsonschema
import pandas as pd
import yaml

from clonetrack.errors import InputError

REQUIRED_COLUMNS: tuple[str, ...] = (
    "sample_id",
    "patient_id",
    "timepoint",
    "timepoint_order",
    "path",
)
"""Columns every sheet must have, each non-empty in every row (``path`` may be empty where the
row gives ``raw_path``: its cells are then called from the unfiltered matrix)."""

PATH_COLUMNS: tuple[str, ...] = ("path", "raw_path", "clones", "lineage_barcodes", "genotypes")
"""Columns holding paths relative to the sheet's folder."""

KNOWN_COLUMNS: frozenset[str] = frozenset(
    REQUIRED_COLUMNS + ("raw_path", "format", "clones", "lineage_barcodes", "genotypes", "healthy")
)
"""Columns with a meaning to clonetrack; every other column is a sample covariate."""

FORMATS: tuple[str, ...] = ("10x_mtx", "10x_h5", "h5ad", "dense_txt")
"""Count-matrix formats accepted in the ``format`` column (empty means auto-detect)."""

SAMPLE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"

# What to do, per column, when a cell breaks the schema; the schema's own message is too terse.
_HINTS = {
    "sample_id": "use only letters, digits, '_', '-' and '.', starting with a letter or digit "
    "(the id becomes part of file names and cell names)",
    "timepoint_order": "give a whole number of at most 9 digits (e.g. 0 for diagnosis, 1 for the "
    "next timepoint, or days since diagnosis)",
    "format": "use one of " + ", ".join(FORMATS) + ", or leave it empty to detect the format",
}


def schema_path() -> Path:
    """Path of the sample-sheet JSON Schema shipped with the workflow.

    Returns
    -------
    ``config/schemas/samples.schema.yaml`` of the repository holding this package.
    """
    return Path(__file__).resolve().parents[4] / "config" / "schemas" / "samples.schema.yaml"


def _load_schema(path: os.PathLike | str) -> dict:
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def _describe_row(sheet: Path, row: int, sample_id: str) -> str:
    sample = f"sample '{sample_id}'" if sample_id else "no sample_id"
    return f"{sheet}: row {row} ({sample})"


def _schema_problems(df: pd.DataFrame, schema: dict, sheet: Path) -> list[str]:
    """Validate each row against ``schema``; one message per offending cell."""
    validator_cls = jsonschema.validators.validator_for(schema)
    validator = validator_cls(schema)
    properties = schema.get("properties", {})
    problems = []
    for i, record in enumerate(df.to_dict(orient="records"), start=1):
        where = _describe_row(sheet, i, record.get("sample_id", ""))
        for error in sorted(validator.iter_errors(record), key=lambda e: list(e.path)):
            column = error.path[0] if error.path else None
            if column is None:
                problems.append(f"{where}: {error.message}")
                continue
            value = record[column]
            if value == "":
                what = "is empty"
                todo = "fill it in"
            else:
                what = f"has {value!r}, which is not allowed"
                todo = _HINTS.get(column, properties.get(column, {}).get("description", ""))
            problems.append(f"{where}, column '{column}' {what}: {todo}")
    return problems


def _nonblank_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def _check_layout(sheet: Path, text: str) -> list[str]:
    """Problems pandas would hide: repeated column names (mangled to ``x.1``) and overlong rows."""
    lines = _nonblank_lines(text)
    header = [name.strip() for name in lines[0].split("\t")]
    problems = []
    for row, line in enumerate(lines[1:], start=1):
        fields = line.split("\t")
        n = len(fields)
        # trailing empty fields, as spreadsheets sometimes export, are harmless
        if n > len(header) and any(f.strip() for f in fields[len(header) :]):
            problems.append(
                f"{sheet}: row {row} has {n} tab-separated fields but the header has "
                f"{len(header)}: remove the extra fields or name the extra column(s)"
            )
    seen: dict[str, int] = {}
    for pos, name in enumerate(header, start=1):
        if name == "":
            problems.append(
                f"{sheet}: header column {pos} has no name: name it or delete the column"
            )
        elif name in seen:
            problems.append(
                f"{sheet}: column '{name}' appears twice in the header (columns {seen[name]} "
                f"and {pos}): delete or rename one of them"
            )
        else:
            seen[name] = pos
    return problems


def _check_design(df: pd.DataFrame, sheet: Path) -> list[str]:
    """Unique sample ids; within a patient, timepoints and orders one-to-one, one sample each."""
    problems = []
    rows = pd.Series(range(1, len(df) + 1), index=df.index)
    dup = df["sample_id"].duplicated(keep=False)
    for sample_id, group in df[dup].groupby("sample_id", sort=True):
        problems.append(
            f"{sheet}: sample_id '{sample_id}' is used by rows "
            f"{', '.join(map(str, rows[group.index]))}: sample ids must be unique; rename them"
        )
    valid = df["timepoint_order"].str.fullmatch(r"[+-]?[0-9]{1,9}") & (df["patient_id"] != "")
    for patient, group in df[valid & (df["timepoint"] != "")].groupby("patient_id", sort=True):
        order = group["timepoint_order"].astype(int)
        for label, orders in order.groupby(group["timepoint"], sort=True):
            if orders.nunique() > 1:
                detail = ", ".join(
                    f"row {rows[i]} (sample '{group.at[i, 'sample_id']}') has {orders[i]}"
                    for i in orders.index
                )
                problems.append(
                    f"{sheet}: patient '{patient}', timepoint '{label}' has more than one "
                    f"timepoint_order ({detail}): give each timepoint one order"
                )
        for value, labels in group["timepoint"].groupby(order, sort=True):
            if labels.nunique() > 1:
                detail = ", ".join(
                    f"row {rows[i]} (sample '{group.at[i, 'sample_id']}') has '{labels[i]}'"
                    for i in labels.index
                )
                problems.append(
                    f"{sheet}: patient '{patient}', timepoint_order {value} is given to more than "
                    f"one timepoint ({detail}): give each timepoint its own order"
                )
        for label, same in group.groupby("timepoint", sort=True):
            if len(same) > 1:
                detail = ", ".join(
                    f"row {rows[i]} (sample '{same.at[i, 'sample_id']}')" for i in same.index
                )
                problems.append(
                    f"{sheet}: patient '{patient}' has more than one sample at timepoint "
                    f"'{label}' ({detail}): merge them into one sample (e.g. libraries of one "
                    "specimen) or relabel the timepoints"
                )
    return problems


def _counts_given(df: pd.DataFrame, sheet: Path) -> list[str]:
    """Every row names its counts: the filtered matrix (``path``), the raw one, or both."""
    raw = df["raw_path"] if "raw_path" in df.columns else pd.Series("", index=df.index)
    return [
        f"{_describe_row(sheet, i, df.at[idx, 'sample_id'])}: column 'path' is empty: give the "
        "counts of the sample's cells (path), or its unfiltered droplet matrix (raw_path) to call "
        "cells from"
        for i, idx in enumerate(df.index, start=1)
        if df.at[idx, "path"] == "" and raw.get(idx, "") == ""
    ]


def _resolve_paths(df: pd.DataFrame, sheet: Path) -> list[str]:
    """Make path columns absolute (relative to the sheet's folder) and check they exist."""
    base = sheet.parent
    problems = []
    for column in PATH_COLUMNS:
        if column not in df.columns:
            continue
        for i, idx in enumerate(df.index, start=1):
            value = df.at[idx, column]
            if value == "":
                continue
            resolved = os.path.normpath(base / os.path.expanduser(value))
            df.at[idx, column] = resolved
            if not os.path.exists(resolved):
                where = _describe_row(sheet, i, df.at[idx, "sample_id"])
                problems.append(
                    f"{where}, column '{column}': {resolved} does not exist: fix the path "
                    "(paths are relative to the sheet's folder)"
                )
    return problems


def _shared_paths(df: pd.DataFrame, sheet: Path) -> list[str]:
    """A file named by two rows would enter twice: the same cells as two samples, or one clone
    table's barcodes read against two samples."""
    problems = []
    rows = pd.Series(range(1, len(df) + 1), index=df.index)
    for column in PATH_COLUMNS:
        if column not in df.columns:
            continue
        named = df.loc[df[column] != "", column]
        # the file itself: a symbolic link or a second spelling names the same one
        real = named.map(os.path.realpath)
        for _, group in named.groupby(real, sort=True):
            path = group.iloc[0]
            if len(group) > 1:
                detail = ", ".join(
                    f"row {rows[i]} (sample '{df.at[i, 'sample_id']}')" for i in group.index
                )
                problems.append(
                    f"{sheet}: {detail} name the same file in column '{column}' ({path}): each "
                    "sample needs its own file; fix the path of the row that is wrong"
                )
    return problems


def _decode(sheet: Path) -> str:
    """The sheet's text: UTF-8 (with or without the byte-order mark spreadsheets prepend) or
    UTF-16 with its mark (Excel's "Unicode text"); anything else is refused with its place."""
    raw = sheet.read_bytes()
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return raw.decode("utf-16")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise InputError(
            f"{sheet}: line {line} is not UTF-8 text (byte {raw[err.start]:#x}, e.g. an accented "
            "letter saved in a Windows or Latin-1 encoding): save the sheet as UTF-8 "
            "(tab-separated)"
        ) from err


def _strip_comments(text: str) -> str:
    """Drop lines starting with '#'. A commented header ('#sample_id<TAB>...') is kept as the
    header, as many tools write it."""
    lines = text.splitlines()
    kept = [line for line in lines if not line.lstrip().startswith("#")]
    if kept and kept[0].split("\t")[0].strip() != "sample_id":
        leading = [line.lstrip()[1:].strip() for line in lines[: lines.index(kept[0])]]
        headers = [line for line in leading if line.split("\t")[0].strip() == "sample_id"]
        if headers:
            kept.insert(0, headers[-1])
    return "\n".join(kept) + "\n"


def _near_misses(columns: Iterable[str], sheet: Path, missing: list[str]) -> list[str]:
    """Unknown columns spelt almost like a known one: kept silently, they would become covariates
    while the column meant (e.g. ``lineage_barcodes``) stays empty."""
    problems = []
    for column in columns:
        if column in KNOWN_COLUMNS:
            continue
        close = difflib.get_close_matches(column.lower(), sorted(KNOWN_COLUMNS), n=1, cutoff=0.8)
        if close:
            problems.append(
                f"{sheet}: column '{column}' looks like a misspelling of '{close[0]}'"
                + (" (which is missing)" if close[0] in missing else "")
                + f": rename it to '{close[0]}', or give a covariate a clearly different name"
            )
    return problems


def _raise(problems: Iterable[str]) -> None:
    problems = list(problems)
    if problems:
        head = "the sample sheet has problems:\n  " if len(problems) > 1 else ""
        raise InputError(head + "\n  ".join(problems))


def read_sample_sheet(
    path: os.PathLike | str, *, schema: os.PathLike | str | None = None
) -> pd.DataFrame:
    """Read and validate the sample sheet.

    Every cell is read as text and stripped of surrounding blanks. Each row is validated against the
    JSON Schema, then the design is checked across rows. All problems found are reported together.

    Parameters
    ----------
    path
        Tab-separated sample sheet with at least the columns in :data:`REQUIRED_COLUMNS`.
    schema
        JSON Schema (YAML) for one row; defaults to :func:`schema_path`.

    Returns
    -------
    The sheet indexed by ``sample_id`` (sorted), with ``timepoint_order`` as int, ``path``,
    ``clones`` and ``lineage_barcodes`` as absolute paths, and every known optional column present
    (empty cells as ``""``). Covariate columns are kept as text.

    Raises
    ------
    InputError
        If the sheet is missing or empty, lacks a required column, repeats a column name, or a row
        breaks the schema or the design (duplicate sample ids, a timepoint with two orders or an
        order with two timepoints within a patient, two samples of one patient at one timepoint,
        a path that does not exist). The message names the row, sample and column.
    """
    sheet = Path(os.path.abspath(path))
    if not sheet.is_file():
        raise InputError(f"sample sheet {sheet} does not exist: check `samples` in the config")
    text = _strip_comments(_decode(sheet))
    if not text.strip():
        raise InputError(
            f"{sheet}: the sample sheet is empty: write a tab-separated header "
            f"({', '.join(REQUIRED_COLUMNS)}) and one row per sample"
        )
    _raise(_check_layout(sheet, text))

    df = pd.read_csv(
        io.StringIO(text),
        sep="\t",
        dtype=str,
        keep_default_na=False,  # "NA" may be a legitimate covariate level; empty stays ""
        skip_blank_lines=True,
        index_col=False,
        # the header's width: trailing empty fields (checked above) are dropped
        usecols=range(len(_nonblank_lines(text)[0].split("\t"))),
    )
    df.columns = [c.strip() for c in df.columns]
    # short rows leave NaN behind; treat them as empty cells
    df = df.fillna("").apply(lambda col: col.str.strip())
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    _raise(_near_misses(df.columns, sheet, missing))
    if missing:
        raise InputError(
            f"{sheet}: required column(s) {', '.join(repr(c) for c in missing)} missing "
            f"(found: {', '.join(df.columns)}): add them; the sheet must be tab separated"
        )
    if df.empty:
        raise InputError(
            f"{sheet}: the sample sheet has a header but no samples: add one row per sample"
        )

    schema_dict = _load_schema(schema if schema is not None else schema_path())
    _raise(_schema_problems(df, schema_dict, sheet))
    _raise(_check_design(df, sheet))
    _raise(_counts_given(df, sheet))
    _raise(_resolve_paths(df, sheet))
    _raise(_shared_paths(df, sheet))

    for column, spec in schema_dict.get("properties", {}).items():
        if column not in df.columns:
            df[column] = spec.get("default", "")
    df["timepoint_order"] = df["timepoint_order"].astype(int)
    return df.set_index("sample_id").sort_index()


HEALTHY_VALUES = ("yes", "true", "1")
"""Values of the ``healthy`` column (any case) that mark a healthy donor's sample."""


def healthy_samples(df: pd.DataFrame) -> list[str]:
    """Sample ids whose ``healthy`` column says yes: every cell of them is normal (a normal seed
    of the malignant call and part of every patient's copy-number reference)."""
    if "healthy" not in df.columns:
        return []
    marked = df["healthy"].astype(str).str.strip().str.lower().isin(HEALTHY_VALUES)
    ids = df.index if df.index.name == "sample_id" else df["sample_id"]
    return sorted(map(str, pd.Index(ids)[marked.to_numpy()]))


def covariate_columns(df: pd.DataFrame) -> list[str]:
    """Sheet columns that are sample covariates, in sheet order.

    Parameters
    ----------
    df
        A sheet as returned by :func:`read_sample_sheet` (``sample_id`` as index or column).

    Returns
    -------
    Every column not in :data:`KNOWN_COLUMNS`.
    """
    return [c for c in df.columns if c not in KNOWN_COLUMNS]
