"""Convert van Galen et al. 2019 genotyping columns into clonetrack genotype tables.

The GEO annotation files (GSE116256, ``*.anno.txt.gz``) list per cell the transcripts genotyped
at known mutations: ``MutTranscripts`` (e.g. ``TP53.Q144P/24``), ``WtTranscripts``
(``NPM1.wt/321``; the site is not named) and, for some patients, ``NanoporeTranscripts``
(``TP53.Q144P/388.P152wt/413``: one long read covering several sites of a gene). Entries are
separated by `` /// ``. Each entry is one genotyped transcript; the number after ``/`` is an
identifier (GEO does not define it), not a read count, so every entry counts as one read.

A wild-type transcript without a site (``GENE.wt``) counts as a reference read of the patient's
variant of that gene only where the patient has exactly one variant in that gene; otherwise it
cannot be placed and is skipped (reported).

Usage::

    python scripts/vangalen_genotypes.py ANNO.anno.txt.gz [ANNO ...] --out-dir DIR

writes ``DIR/{sample_id}.genotypes.tsv`` (barcode, variant, alt_reads, ref_reads) per file. Give
all samples of a patient in one call (sample ids ``PATIENT-Dn``): wild-type transcripts of a
follow-up are placed against the variants seen in any of the patient's samples.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

import pandas as pd

ENTRY_SEPARATOR = " /// "


def _entries(text) -> list[str]:
    if not isinstance(text, str) or not text.strip():
        return []
    return [e.strip() for e in text.split(ENTRY_SEPARATOR) if e.strip()]


def _short_read(entry: str) -> tuple[str, str]:
    """``GENE.CHANGE/id`` -> (gene, change)."""
    gene, _, rest = entry.partition(".")
    return gene, rest.split("/", 1)[0]


def _long_read(entry: str) -> list[tuple[str, str]]:
    """``GENE.SITE1/id.SITE2/id`` -> [(gene, SITE1), (gene, SITE2)]."""
    gene, _, rest = entry.partition(".")
    return [(gene, site) for site in re.findall(r"([^./]+)/\d+", rest)]


def _site(change: str) -> str:
    """The site of a change or of its wild-type call: ``Q144P`` and ``Q144wt`` -> ``Q144``."""
    change = change.removesuffix("wt")
    numbered = re.match(r"^([A-Z]\d+)", change)
    return numbered.group(1) if numbered else change


def convert(
    anno: pd.DataFrame, known: dict[str, list[str]] | None = None
) -> tuple[pd.DataFrame, Counter, Counter]:
    """Genotype rows of one annotation table (first column the cell barcode).

    ``known`` maps a gene to the patient's variants in it (from all of its samples); wild-type
    transcripts are placed against it, or against this table's own mutant calls when ``None``.
    """
    barcode = anno.columns[0]
    mutant_calls = Counter()
    reads: list[tuple[str, str, int, int]] = []
    wild_type_genes: list[tuple[str, str]] = []
    none = pd.Series("", index=anno.index)
    for cell, mut, wt, nano in zip(
        anno[barcode],
        anno.get("MutTranscripts", none),
        anno.get("WtTranscripts", none),
        anno.get("NanoporeTranscripts", none),
        strict=True,
    ):
        for entry in _entries(mut):
            gene, change = _short_read(entry)
            reads.append((cell, f"{gene}.{change}", 1, 0))
            mutant_calls[(gene, change)] += 1
        for entry in _entries(wt):
            gene, _ = _short_read(entry)
            wild_type_genes.append((cell, gene))
        for entry in _entries(nano):
            for gene, change in _long_read(entry):
                if change.endswith("wt"):
                    wild_type_genes.append((cell, f"{gene}@{change[:-2]}"))
                else:
                    reads.append((cell, f"{gene}.{change}", 1, 0))
                    mutant_calls[(gene, change)] += 1
    skipped = Counter()
    by_gene = known if known is not None else variants_by_gene(mutant_calls)
    for cell, what in wild_type_genes:
        gene, _, site = what.partition("@")
        changes = by_gene.get(gene, [])
        if site:
            changes = [c for c in changes if _site(c) == site]
        if len(changes) == 1:
            reads.append((cell, f"{gene}.{changes[0]}", 0, 1))
        else:
            skipped[what] += 1
    table = pd.DataFrame(reads, columns=["barcode", "variant", "alt_reads", "ref_reads"])
    table = table.groupby(["barcode", "variant"], as_index=False)[["alt_reads", "ref_reads"]].sum()
    return table, skipped, mutant_calls


def variants_by_gene(calls) -> dict[str, list[str]]:
    by_gene: dict[str, list[str]] = {}
    for gene, change in sorted(calls):
        by_gene.setdefault(gene, []).append(change)
    return by_gene


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("anno", nargs="+", type=Path)
    parser.add_argument("--out-dir", type=Path, required=True)
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    annos = {
        re.sub(r"^GSM\d+_", "", path.name).split(".anno.")[0]: pd.read_csv(
            path, sep="\t", dtype=str, keep_default_na=False
        )
        for path in args.anno
    }
    # A patient's variants are known from all of its samples: a follow-up sample may hold only
    # wild-type transcripts of a variant seen at diagnosis.
    patient_of = {s: s.rsplit("-D", 1)[0] for s in annos}
    known: dict[str, Counter] = {}
    for sample_id, anno in annos.items():
        known.setdefault(patient_of[sample_id], Counter()).update(convert(anno)[2])
    for sample_id, anno in annos.items():
        table, skipped, _ = convert(anno, variants_by_gene(known[patient_of[sample_id]]))
        out = args.out_dir / f"{sample_id}.genotypes.tsv"
        table.to_csv(out, sep="\t", index=False)
        print(
            f"{sample_id}: {len(table)} rows, {table['barcode'].nunique()} cells -> {out}"
            + (f"; wild-type transcripts not placed: {dict(skipped)}" if skipped else "")
        )


if __name__ == "__main__":
    main()
