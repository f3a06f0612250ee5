"""Cross-checks of the sheet's data files, run before any job.

``sheet`` validates the sample sheet and ``common.smk`` the settings that name samples and cell
types; this module opens the files the sheet names, reading only what is small (barcodes, gene
names, clone and genotype tables), so that a clone table that matches no cell of its sample,
gene identifiers of another kind or organism, or a duplicated barcode is named in seconds
instead of after hours of compute.
"""

from __future__ import annotations

import csv
import logging
import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from clonetrack.errors import InputError
from clonetrack.io import readers, tables

log = logging.getLogger(__name__)

ENSEMBL_ID = re.compile(r"^ENS[A-Z]*G\d{6,}(\.\d+)?$")
"""An Ensembl gene id (human ENSG..., mouse ENSMUSG..., optionally versioned)."""

MOUSE_STYLE_FRACTION = 0.5
"""Gene lists in which at least this share of symbols has a lower-case letter (other than the
``orf`` of human open reading frames) are in mouse style (``Cd34``); human symbols are upper
case."""

DENSE_GENE_ROWS = 2000
"""Genes read from a dense text table before any job: enough to tell identifiers apart, cheap
on a table of many cells (the whole list is read by the QC job)."""

MIN_ALTERNATIVE_MITO_GENES = 3
# Counts that cannot be read here are left to the QC job, whose reader names the fault.
_READ_ERRORS = (InputError, OSError, EOFError, ValueError, KeyError, zlib.error)
_SUFFIX = re.compile(r"-\d+$")
_PREFIX = re.compile(r"^.*[_:]")
_MITO_PREFIXES = ("MT-", "mt-", "Mt-", "MT.", "mt.")


# ----------------------------------------------------------------------------------------------
# small reads


def matrix_barcodes(path: str, fmt: str = "") -> pd.Index:
    """Cell barcodes of a count or lineage-barcode matrix, without reading its values."""
    p = Path(path)
    fmt = fmt or readers.detect_format(p)
    if fmt == "10x_mtx":
        found = readers._find(p, "barcodes.tsv")
        return (
            pd.Index(readers._read_lines_table(found, p.name, "cell barcodes")[0])
            if found
            else None
        )
    if fmt == "10x_h5":
        return _h5_strings(p, ("matrix/barcodes", "*/barcodes"))
    if fmt == "h5ad":
        return _h5ad_index(p, "obs")
    return pd.Index(_dense_header(p))


def gene_names(path: str, fmt: str = "") -> tuple[pd.Index | None, bool]:
    """Gene names of a count matrix as the reader will name them, and whether the list is whole
    (a dense text table is read only to :data:`DENSE_GENE_ROWS`)."""
    p = Path(path)
    fmt = fmt or readers.detect_format(p)
    if fmt == "10x_mtx":
        found = readers._find(p, "features.tsv", "genes.tsv")
        if found is None:
            return None, False
        table = readers._read_lines_table(found, p.name, "features")
        names = table[1].where(table[1] != "", table[0]) if table.shape[1] > 1 else table[0]
        if table.shape[1] > 2:
            names = names[table[2] == "Gene Expression"]
        return pd.Index(names), True
    if fmt == "10x_h5":
        return _h5_strings(p, ("matrix/features/name", "*/gene_names")), True
    if fmt == "h5ad":
        return _h5ad_index(p, "var"), True
    with readers._open_text(p) as fh:
        sep = "\t" if "\t" in fh.readline() else ","
        rows = csv.reader((fh.readline() for _ in range(DENSE_GENE_ROWS)), delimiter=sep)
        return pd.Index([r[0] for r in rows if r]), False


def _dense_header(path: Path) -> list[str]:
    with readers._open_text(path) as fh:
        header = fh.readline().rstrip("\r\n")
        first = fh.readline().rstrip("\r\n")
    return readers.dense_layout(header, first)[2]


def _h5_strings(path: Path, keys: Iterable[str]) -> pd.Index | None:
    import h5py

    with h5py.File(path, "r") as f:
        for key in keys:
            if key.startswith("*/"):
                groups = list(f.keys())
                key = f"{groups[0]}/{key[2:]}" if len(groups) == 1 else key
            if key in f:
                return pd.Index(readers._h5_text(f[key]))
    return None


def _h5ad_index(path: Path, group: str) -> pd.Index | None:
    import h5py

    with h5py.File(path, "r") as f:
        if group not in f or not isinstance(f[group], h5py.Group):
            return None  # an old layout: the job's reader checks it
        node = f[group]
        key = node.attrs.get("_index", "_index")
        if key not in node:
            return None
        return pd.Index(readers._h5_text(node[key]))


# ----------------------------------------------------------------------------------------------
# barcodes of a clone source against its sample


@dataclass(frozen=True)
class Overlap:
    """How a clone source's barcodes meet its sample's: ``fraction`` is the share of the smaller
    side found in the other (a lineage matrix may list empty droplets too, or only tagged cells;
    either way its cells should be cells of the sample)."""

    n_source: int
    n_sample: int
    n_matched: int

    @property
    def fraction(self) -> float:
        smaller = min(self.n_source, self.n_sample)
        return self.n_matched / smaller if smaller else 0.0


def barcode_overlap(source: Iterable[str], sample: Iterable[str]) -> Overlap:
    """Distinct barcodes of a source, of its sample, and of both."""
    source, sample = set(source), set(sample)
    return Overlap(len(source), len(sample), len(source & sample))


def _mismatch_hint(source: pd.Index, sample: pd.Index) -> str:
    """Why the barcodes differ, where one form of both matches: a ``-1`` suffix or a prefix."""
    forms = {
        "suffix": lambda b: b.str.replace(_SUFFIX, "", regex=True),
        "prefix": lambda b: b.str.replace(_PREFIX, "", regex=True),
    }
    exact = barcode_overlap(source, sample).fraction
    for name, strip in forms.items():
        stripped = barcode_overlap(strip(source), strip(sample)).fraction
        if stripped < max(0.5, exact + 0.25):
            continue
        pattern = _SUFFIX if name == "suffix" else _PREFIX
        source_has = source.str.contains(pattern).mean() > 0.5
        sample_has = sample.str.contains(pattern).mean() > 0.5
        example = (sample if sample_has else source)[0]
        part = pattern.search(example).group(0)
        if name == "suffix":
            if sample_has and not source_has:
                return f"the counts' barcodes end in {part!r} and these do not: add the suffix"
            if source_has and not sample_has:
                return f"these barcodes end in {part!r} and the counts' do not: remove the suffix"
            return "the two end in different suffixes (e.g. '-1' and '-2'): use the counts' suffix"
        if source_has and not sample_has:
            return (
                f"these barcodes carry a prefix (e.g. {part!r}) that the counts' do not: remove it"
            )
        if sample_has and not source_has:
            return f"the counts' barcodes carry a prefix (e.g. {part!r}) that these do not: add it"
        return "the two carry different prefixes: use the counts' barcodes"
    return "check that the file belongs to this sample and names its cells as the counts do"


def overlap_message(
    what: str, path: str, sample_id: str, source: pd.Index, sample: pd.Index, counts: str
) -> tuple[Overlap, str]:
    """The overlap of ``source`` with ``sample`` and a sentence naming both files, the first
    barcodes of each side and, where recognisable, the fix."""
    source, sample = pd.Index(source.unique()), pd.Index(sample.unique())
    overlap = barcode_overlap(source, sample)
    smaller = "its" if overlap.n_source <= overlap.n_sample else "the counts'"
    text = (
        f"{what} {path} (sample '{sample_id}'): {overlap.n_matched} of {smaller} "
        f"{min(overlap.n_source, overlap.n_sample)} barcodes ({overlap.fraction:.0%}) are shared "
        f"with the sample's counts {counts}; its first barcodes: {', '.join(source[:3])}; the "
        f"counts': {', '.join(sample[:3])}"
    )
    n_other = min(overlap.n_source, overlap.n_sample) - overlap.n_matched
    if overlap.fraction < 0.5:
        text += f": {_mismatch_hint(source, sample)}"
    elif n_other:
        text += f": the other {n_other} name no cell of the sample"
    return overlap, text


# ----------------------------------------------------------------------------------------------
# gene identifiers against the configured patterns and the marker panel


def _mouse_style_share(names: Iterable[str]) -> float:
    symbols = [n for n in names if re.fullmatch(r"[A-Za-z][A-Za-z0-9-]*", n) and len(n) > 2]
    if not symbols:
        return 0.0
    lower = [bool(re.search(r"[a-z]", n.replace("orf", ""))) for n in symbols]
    return float(np.mean(lower))


def _examples(names: Iterable[str], n: int = 3) -> str:
    return ", ".join(list(names)[:n])


def gene_problems(
    sample_id: str,
    path: str,
    names: pd.Index,
    complete: bool,
    *,
    qc: dict,
    panel_genes: Iterable[str],
    panel_path: str,
) -> list[str]:
    """Gene identifiers that QC patterns, the marker panel and gene positions would not find."""
    where = f"sample '{sample_id}' ({path})"
    names = pd.Index(names.astype(str))
    ensembl = names.str.match(ENSEMBL_ID.pattern)
    if ensembl.mean() > 0.5:
        return [
            f"{where}: {ensembl.mean():.0%} of its gene names are Ensembl ids (e.g. "
            f"{_examples(names[ensembl])}): clonetrack finds genes by symbol (QC patterns, marker "
            "panel, gene positions); give symbols as gene names (an .h5ad: var_names = symbols, "
            "ids in var['gene_ids']; a Cell Ranger folder: features.tsv with ids and symbols)"
        ]
    problems = []
    panel_genes = pd.Index(sorted(set(panel_genes)))
    data_mouse = _mouse_style_share(names) >= MOUSE_STYLE_FRACTION
    panel_mouse = _mouse_style_share(panel_genes) >= MOUSE_STYLE_FRACTION
    if data_mouse != panel_mouse:
        style = {True: "mouse (e.g. Cd34)", False: "human (e.g. CD34)"}
        problems.append(
            f"{where}: its gene names are {style[data_mouse]} symbols "
            f"({_examples(names[:200:40])}) "
            f"but the marker panel {panel_path} uses {style[panel_mouse]} symbols "
            f"({_examples(panel_genes)}): set organism to the data's species (organism: "
            f"{'mouse' if data_mouse else 'human'}), which sets the marker panel and the QC gene "
            "patterns, or set annotation.markers and qc.mito_prefix, qc.ribo_prefixes and "
            "qc.hb_pattern yourself"
        )
    elif complete:
        present = panel_genes.isin(names)
        if present.mean() < 0.5:
            problems.append(
                f"{where}: only {int(present.sum())} of the {len(panel_genes)} genes of the marker "
                f"panel {panel_path} are gene names of the sample (missing e.g. "
                f"{_examples(panel_genes[~present])}): the panel and the counts must use the same "
                "gene symbols"
            )
    if complete and not names.str.startswith(qc["mito_prefix"]).any():
        for prefix in _MITO_PREFIXES:
            matched = names[names.str.startswith(prefix)]
            if prefix != qc["mito_prefix"] and len(matched) >= MIN_ALTERNATIVE_MITO_GENES:
                problems.append(
                    f"{where}: no gene name starts with qc.mito_prefix {qc['mito_prefix']!r} but "
                    f"{len(matched)} start with {prefix!r} (e.g. {_examples(matched)}): set "
                    f"qc.mito_prefix to {prefix!r} (and qc.ribo_prefixes, qc.hb_pattern to the "
                    "same organism's names)"
                )
                break
    return problems


# ----------------------------------------------------------------------------------------------
# the whole sheet


def _first_samples(samples: pd.DataFrame) -> pd.DataFrame:
    """The earliest sample of each patient: gene identifiers are checked on one per patient (a
    mixture within a patient is refused when the samples are merged)."""
    ordered = samples.sort_values(["patient_id", "timepoint_order"])
    return ordered[~ordered["patient_id"].duplicated()]


def _same_cells(barcodes: dict[str, pd.Index]) -> list[str]:
    """Samples whose counts list exactly the same barcodes: one file copied under two names (cell
    barcodes of two 10x libraries overlap by chance in about 1% of cells, never all)."""
    by_set: dict[int, list[str]] = {}
    for sample_id, cells in barcodes.items():
        if len(cells) >= 20:
            by_set.setdefault(hash(frozenset(cells)), []).append(sample_id)
    return [
        f"samples {', '.join(repr(s) for s in group)} have counts with the same "
        f"{len(barcodes[group[0]])} "
        "cell barcodes: the same cells would enter twice; give each sample its own counts"
        for group in by_set.values()
        if len(group) > 1
    ]


def _source_barcodes(column: str, path: str, sample_id: str) -> tuple[str, pd.Index]:
    if column == "clones":
        return "clone table", pd.Index(
            readers.read_clone_table(path, sample_id=sample_id)["barcode"]
        )
    if column == "genotypes":
        table = tables.read_genotype_table(path, sample_id=sample_id)
        return "genotype table", pd.Index(table["barcode"])
    return "lineage-barcode matrix", matrix_barcodes(path)


def _counts_of(row) -> tuple[str, str]:
    """The counts a sample's checks read, with their format: its cells' matrix, else the raw one
    (whose format is detected)."""
    if row.get("path", ""):
        return row["path"], row.get("format", "")
    return row["raw_path"], ""


def _source_problems(
    samples: pd.DataFrame, min_matched_barcodes: float
) -> tuple[list[str], list[str], dict[str, pd.Index | None]]:
    """Problems and warnings of each sample's clone sources against its counts' barcodes, and
    those barcodes by sample (samples whose counts cannot be read are left out)."""
    problems, warnings = [], []
    all_counts = {}
    for sample_id, row in samples.iterrows():
        try:
            counts = all_counts[sample_id] = matrix_barcodes(*_counts_of(row))
        except _READ_ERRORS:
            continue  # the QC job's reader names what is wrong with the counts
        sources = [c for c in ("clones", "lineage_barcodes", "genotypes") if row.get(c, "")]
        for column in sources:
            try:
                what, barcodes = _source_barcodes(column, row[column], sample_id)
            except InputError as err:
                problems.append(str(err))
                continue
            if counts is None or barcodes is None:
                continue
            overlap, text = overlap_message(
                what, row[column], sample_id, barcodes, counts, _counts_of(row)[0]
            )
            if overlap.fraction < min_matched_barcodes:
                problems.append(
                    f"{text} (clones.min_matched_barcodes is {min_matched_barcodes:.0%})"
                )
            elif overlap.fraction < 1:
                warnings.append(text)
    return problems, warnings, all_counts


def _identifier_problems(
    samples: pd.DataFrame, *, qc: dict, panel_genes: Iterable[str], panel_path: str
) -> list[str]:
    """:func:`gene_problems` of the first sample of each patient whose gene names can be read."""
    problems = []
    for sample_id, row in _first_samples(samples).iterrows():
        try:
            names, complete = gene_names(*_counts_of(row))
        except _READ_ERRORS:
            continue  # the QC job's reader names what is wrong with the counts
        if names is not None and len(names):
            problems += gene_problems(
                sample_id,
                _counts_of(row)[0],
                names,
                complete,
                qc=qc,
                panel_genes=panel_genes,
                panel_path=panel_path,
            )
    return problems


def check_sample_files(
    samples: pd.DataFrame,
    *,
    qc: dict,
    panel_genes: Iterable[str],
    panel_path: str,
    min_matched_barcodes: float,
) -> list[str]:
    """Every cross-check of the sheet's files that small reads allow, all problems together.

    Parameters
    ----------
    samples
        The sheet as :func:`clonetrack.io.sheet.read_sample_sheet` returns it.
    qc
        The ``qc`` config section (gene patterns).
    panel_genes, panel_path
        Genes of the marker panel and its file.
    min_matched_barcodes
        Least share of barcodes a clone table, genotype table or lineage-barcode matrix must
        share with its sample's counts (see :class:`Overlap`).

    Returns
    -------
    Warnings: sources that match their sample only in part (logged, and counted again by the
    clone job in ``sources.tsv``).

    Raises
    ------
    InputError
        With every problem found: unreadable or duplicated rows of a clone or genotype table, a
        source matching too few of its sample's barcodes, or gene names of another kind or
        organism than the settings expect.
    """
    problems, warnings, all_counts = _source_problems(samples, min_matched_barcodes)
    problems += _same_cells({s: b for s, b in all_counts.items() if b is not None})
    problems += _identifier_problems(samples, qc=qc, panel_genes=panel_genes, panel_path=panel_path)
    if problems:
        head = "the sample sheet's files have problems:\n  " if len(problems) > 1 else ""
        raise InputError(head + "\n  ".join(problems))
    for text in warnings:
        log.warning("warning: %s", text)
    return warnings
