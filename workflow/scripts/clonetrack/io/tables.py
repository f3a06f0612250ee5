"""Tables the user or the resources give: marker panels, gene signatures, gene positions, genotype
tables, the patient table and ex vivo measurements. Each reader checks its table and names the
file, row and column of any problem, before any job computes on it."""

from __future__ import annotations

import os
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd

from clonetrack.errors import InputError
from clonetrack.vocabulary import CELL_TYPES

MARKER_COLUMNS = ("cell_type", "gene", "weight", "reference")


def load_markers(path: str | PathLike) -> pd.DataFrame:
    """Read and validate a marker panel.

    Parameters
    ----------
    path
        Tab-separated table with columns ``cell_type``, ``gene``, ``weight`` (positive for markers,
        negative for genes the class should not express) and ``reference``.

    Returns
    -------
    The panel with ``weight`` as float, one row per (cell_type, gene).

    Raises
    ------
    InputError
        Missing columns, unknown classes, non-numeric or zero weights, duplicated rows, or a class
        without any positive marker.
    """
    try:
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError) as err:
        raise InputError(f"marker panel {path}: cannot be read as a TSV ({err})") from err
    missing = [c for c in MARKER_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"marker panel {path}: missing column(s) {missing}; need {MARKER_COLUMNS}")
    df = df[list(MARKER_COLUMNS)].apply(lambda col: col.str.strip())
    unknown = sorted(set(df["cell_type"]) - set(CELL_TYPES))
    if unknown:
        raise InputError(
            f"marker panel {path}: unknown cell_type(s) {unknown}; allowed are {CELL_TYPES}"
        )
    if (df["gene"] == "").any():
        rows = (np.flatnonzero(df["gene"] == "") + 2).tolist()
        raise InputError(f"marker panel {path}: empty gene on line(s) {rows}")
    weight = pd.to_numeric(df["weight"], errors="coerce")
    bad = weight.isna() | (weight == 0)
    if bad.any():
        rows = (np.flatnonzero(bad) + 2).tolist()
        raise InputError(f"marker panel {path}: weight must be a non-zero number, line(s) {rows}")
    df["weight"] = weight.astype(float)
    dup = df.duplicated(["cell_type", "gene"])
    if dup.any():
        rows = (np.flatnonzero(dup) + 2).tolist()
        raise InputError(f"marker panel {path}: duplicated cell_type/gene on line(s) {rows}")
    no_pos = sorted(set(df["cell_type"]) - set(df.loc[df["weight"] > 0, "cell_type"]))
    if no_pos:
        raise InputError(f"marker panel {path}: class(es) {no_pos} have no positive marker")
    return df.reset_index(drop=True)


def load_signature(path: str | PathLike, var_names=None) -> pd.Series:
    """Read a gene signature (``gene``, ``weight``, optional ``alias``) as weights indexed by gene.

    Parameters
    ----------
    path
        Tab-separated table.
    var_names
        Gene names of the data. When given, a gene absent from them but whose ``alias`` is present
        is renamed to the alias (e.g. ``GPR56`` -> ``ADGRG1``); genes found under neither name are
        kept under their own name (the caller decides what to do with them).

    Returns
    -------
    Float weights indexed by gene symbol, named after the file stem.
    """
    try:
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError) as err:
        raise InputError(f"signature {path}: cannot be read as a TSV ({err})") from err
    for col in ("gene", "weight"):
        if col not in df.columns:
            raise InputError(f"signature {path}: missing column {col!r}")
    weight = pd.to_numeric(df["weight"], errors="coerce")
    if weight.isna().any():
        rows = (np.flatnonzero(weight.isna()) + 2).tolist()
        raise InputError(f"signature {path}: non-numeric weight on line(s) {rows}")
    genes = df["gene"].str.strip()
    if var_names is not None and "alias" in df.columns:
        known = set(var_names)
        alias = df["alias"].str.strip()
        use_alias = ~genes.isin(known) & alias.isin(known) & (alias != "")
        genes = genes.where(~use_alias, alias)
    if genes.duplicated().any():
        dups = sorted(genes[genes.duplicated()])
        raise InputError(f"signature {path}: duplicated gene(s) {dups}")
    name = str(path).rsplit("/", 1)[-1].removesuffix(".tsv")
    return pd.Series(weight.to_numpy(dtype=float), index=pd.Index(genes, name="gene"), name=name)


MEASUREMENT_COLUMNS = ("assay", "feature", "value")


def _read_table(path: os.PathLike | str, what: str) -> pd.DataFrame:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{what} {p} does not exist: fix its path in the config")
    sep = "," if p.name.lower().removesuffix(".gz").endswith(".csv") else "\t"
    try:
        df = pd.read_csv(
            p, sep=sep, dtype=str, keep_default_na=False, comment="#", encoding="utf-8-sig"
        )
    except UnicodeDecodeError as err:
        raise InputError(f"{what} {p} is not UTF-8 text: save it as UTF-8") from err
    except pd.errors.EmptyDataError:
        df = pd.DataFrame()
    if df.empty:
        raise InputError(f"{what} {p} is empty: give a header and one row per entry")
    df.columns = [c.strip() for c in df.columns]
    return df.apply(lambda col: col.str.strip())


def _rows(mask) -> str:
    rows = np.flatnonzero(np.asarray(mask)) + 1
    return ", ".join(map(str, rows[:10])) + (" ..." if len(rows) > 10 else "")


def read_patient_table(
    path: os.PathLike | str, *, levels: list[str], sheet_patients: list[str]
) -> tuple[pd.DataFrame, list[str]]:
    """Read the patient table: ``patient_id``, ``response`` (one of ``levels``) and covariates.

    Returns
    -------
    The table indexed by ``patient_id`` (patients of the sheet only), and notes for the report:
    sheet patients missing from the table or without a response (left out of the cohort tests),
    table patients not in the sheet (ignored).

    Raises
    ------
    InputError
        A missing column, a duplicated or empty ``patient_id``, or a response that is not one of
        ``levels``; rows are named (1-based data rows).
    """
    where = f"patient table {path}"
    df = _read_table(path, "patient table")
    missing = [c for c in ("patient_id", "response") if c not in df.columns]
    if missing:
        raise InputError(
            f"{where} lacks column(s) {', '.join(missing)} (found: {', '.join(df.columns)}): name "
            "them patient_id and response"
        )
    problems = []
    if (df["patient_id"] == "").any():
        problems.append(f"{where}: empty patient_id in row(s) {_rows(df['patient_id'] == '')}")
    duplicated = df["patient_id"].duplicated(keep=False) & (df["patient_id"] != "")
    if duplicated.any():
        problems.append(
            f"{where}: patient_id listed more than once in row(s) {_rows(duplicated)} "
            f"({', '.join(sorted(set(df.loc[duplicated, 'patient_id'])))}): "
            "give each patient one row"
        )
    unknown = ~df["response"].isin(levels) & (df["response"] != "")
    if unknown.any():
        problems.append(
            f"{where}, column 'response': {sorted(set(df.loc[unknown, 'response']))} in row(s) "
            f"{_rows(unknown)} are not among cohort.response_levels {levels}: fix the label or "
            "add it to cohort.response_levels"
        )
    if problems:
        raise InputError("\n  ".join(problems))
    notes = []
    table = df.set_index("patient_id")
    absent = sorted(set(sheet_patients) - set(table.index))
    if absent:
        notes.append(
            f"patients of the sheet missing from {where}, not in the cohort tests: {absent}"
        )
    no_response = sorted(p for p in table.index[table["response"] == ""] if p in sheet_patients)
    if no_response:
        notes.append(
            f"patients without a response in {where}, not in the cohort tests: {no_response}"
        )
    extra = sorted(set(table.index) - set(sheet_patients))
    if extra:
        notes.append(f"patients of {where} not in the sample sheet, ignored: {extra}")
    return table.loc[[p for p in table.index if p in sheet_patients]], notes


def read_measurements(
    paths: list[str], *, sheet_patients: list[str], sheet_samples: pd.DataFrame
) -> tuple[pd.DataFrame, list[str]]:
    """Read measurement tables: long tables keyed by ``patient_id`` or ``sample_id``, with
    ``assay``, ``feature`` and a numeric ``value``.

    Returns
    -------
    One table with ``patient_id``, ``sample_id`` ("" for patient-level rows), ``assay``,
    ``feature``, ``measure`` (``assay:feature``) and ``value``; notes for the report (rows of
    patients or samples not in the sheet, ignored).

    Raises
    ------
    InputError
        A missing column, a non-numeric value, or a key x assay x feature given twice; a table
        none of whose rows names a patient or sample of the sheet.
    """
    tables, notes = [], []
    for path in paths:
        where = f"measurement table {path}"
        df = _read_table(path, "measurement table")
        key = "sample_id" if "sample_id" in df.columns else "patient_id"
        missing = [c for c in (key, *MEASUREMENT_COLUMNS) if c not in df.columns]
        if missing:
            raise InputError(
                f"{where} lacks column(s) {', '.join(missing)} (found: {', '.join(df.columns)}): "
                "give patient_id or sample_id, assay, feature and value"
            )
        value = pd.to_numeric(df["value"], errors="coerce")
        bad = value.isna() & ~df["value"].str.upper().isin(["", "NA", "NAN"])
        if bad.any():
            raise InputError(
                f"{where}, column 'value': not a number in row(s) {_rows(bad)} (e.g. "
                f"{df.loc[bad, 'value'].iloc[0]!r}): give numbers; leave a cell empty or NA when "
                "not measured"
            )
        duplicated = df.duplicated([key, "assay", "feature"], keep=False)
        if duplicated.any():
            raise InputError(
                f"{where}: {key} x assay x feature given more than once in row(s) "
                f"{_rows(duplicated)}: give one value each (average replicates first)"
            )
        df = df.assign(value=value)
        if key == "sample_id":
            known = df["sample_id"].isin(sheet_samples.index)
            df["patient_id"] = df["sample_id"].map(sheet_samples["patient_id"]).fillna("")
        else:
            known = df["patient_id"].isin(sheet_patients)
            df["sample_id"] = ""
        if not known.any():
            raise InputError(
                f"{where}: no row names a {key} of the sample sheet (e.g. "
                f"{df[key].iloc[0]!r}): check the {key} column"
            )
        if not known.all():
            notes.append(
                f"{where}: rows of {key}s not in the sample sheet ignored: "
                f"{sorted(set(df.loc[~known, key]))}"
            )
        df = df[known & df["value"].notna()]
        tables.append(df[["patient_id", "sample_id", "assay", "feature", "value"]])
    if not tables:
        return pd.DataFrame(
            columns=["patient_id", "sample_id", "assay", "feature", "measure", "value"]
        ), notes
    out = pd.concat(tables, ignore_index=True)
    out.insert(4, "measure", out["assay"] + ":" + out["feature"])
    return out, notes


GENOTYPE_COLUMNS = ("barcode", "variant", "alt_reads", "ref_reads")


def read_genotype_table(path: os.PathLike | str, *, sample_id: str) -> pd.DataFrame:
    """Read a per-cell variant-read table given in the sample sheet.

    Parameters
    ----------
    path
        Tab-separated (comma-separated when named ``.csv``; optionally gzipped) table with columns
        ``barcode``, ``variant``, ``alt_reads`` and ``ref_reads`` (non-negative integers).
    sample_id
        Sample the table belongs to; builds the cell names as the count readers do.

    Returns
    -------
    The four columns plus ``obs_name`` (``{sample_id}_{barcode}``).

    Raises
    ------
    InputError
        Missing or empty file, a missing column, an empty barcode or variant, a read count that is
        not a non-negative integer, or a (barcode, variant) pair listed twice; rows are named
        (1-based data rows).
    """
    p = Path(path)
    where = f"genotype table {p} (sample '{sample_id}')"
    if not p.is_file():
        raise InputError(
            f"{where} does not exist: check the `genotypes` column of the sample sheet"
        )
    sep = "," if p.name.lower().removesuffix(".gz").endswith(".csv") else "\t"
    try:
        df = pd.read_csv(p, sep=sep, dtype=str, keep_default_na=False, index_col=False)
    except pd.errors.EmptyDataError:
        df = pd.DataFrame()
    if df.empty:
        raise InputError(
            f"{where} is empty: give a header ({', '.join(GENOTYPE_COLUMNS)}) and rows"
        )
    df.columns = [c.strip() for c in df.columns]
    missing = [c for c in GENOTYPE_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(
            f"{where} lacks column(s) {', '.join(missing)} (found: {', '.join(df.columns)}): "
            f"name the columns {', '.join(GENOTYPE_COLUMNS)}"
        )
    rows = np.arange(1, len(df) + 1)

    def refuse(mask: np.ndarray, what: str, todo: str) -> None:
        if mask.any():
            listed = ", ".join(map(str, rows[mask][:10])) + (" ..." if mask.sum() > 10 else "")
            raise InputError(f"{where}: {what} in row(s) {listed}: {todo}")

    for column in ("barcode", "variant"):
        df[column] = df[column].str.strip()
        refuse((df[column] == "").to_numpy(), f"empty {column}", f"fill in every {column}")
    for column in ("alt_reads", "ref_reads"):
        values = pd.to_numeric(df[column].str.strip(), errors="coerce")
        bad = values.isna() | (values < 0) | (values != np.floor(values))
        refuse(bad.to_numpy(), f"{column} not a non-negative integer", "give read counts")
        df[column] = values.astype(np.int64)
    refuse(
        df.duplicated(["barcode", "variant"], keep=False).to_numpy(),
        "(barcode, variant) listed more than once",
        "sum the reads of each cell and variant into one row",
    )
    df = df[list(GENOTYPE_COLUMNS)].copy()
    df["obs_name"] = sample_id + "_" + df["barcode"]
    return df


_POSITION_COLUMNS = ("gene", "chromosome", "start", "end")


def load_gene_positions(path: str | PathLike) -> pd.DataFrame:
    """Load a gene-position table (``gene``, ``chromosome``, ``start``, ``end``; tab separated).

    Parameters
    ----------
    path
        Table such as ``resources/genes/hg38_gene_positions.tsv.gz`` (gzip is detected by suffix).

    Returns
    -------
    Data frame indexed by gene symbol with columns ``chromosome``, ``start``, ``end``.
    """
    try:
        table = pd.read_csv(path, sep="\t", dtype={"gene": str, "chromosome": str})
    except (OSError, pd.errors.ParserError) as err:
        raise InputError(f"Gene-position table {path!s} could not be read: {err}") from err
    missing = [c for c in _POSITION_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(
            f"Gene-position table {path!s} lacks column(s) {missing}; expected a header "
            f"{'/'.join(_POSITION_COLUMNS)} (tab separated)."
        )
    dup = table["gene"][table["gene"].duplicated()].unique()
    if len(dup):
        raise InputError(
            f"Gene-position table {path!s} lists {len(dup)} gene(s) more than once "
            f"(e.g. {list(dup[:5])}); keep one row per symbol."
        )
    for col in ("start", "end"):
        if not pd.api.types.is_integer_dtype(table[col]):
            raise InputError(f"Gene-position table {path!s}: column {col!r} must hold integers.")
    return table.set_index("gene")[["chromosome", "start", "end"]]
