"""Build the real-data test subset tests/data/vangalen2019/ from the van Galen 2019 GEO files.

Keeps the healthy donors BM1 and BM2 and three AML patients with many malignant cells and
copy-number changes reported in the paper, draws at most ``--max-cells`` cells per sample with a
fixed seed, keeps genes detected in at least one kept cell across all samples (one gene list for
every file), and writes the same GEO dense layout (genes x cells ``.dem.txt.gz`` with first column
``Gene``; ``.anno.txt.gz`` with the original columns) plus a sample sheet.

Usage: python scripts/make_vangalen_subset.py [--source DIR] [--out DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

# sample_id -> (GEO expression file, GEO annotation file, patient_id, healthy)
SAMPLES = {
    "BM1": ("GSM3587996_BM1.dem.txt.gz", "GSM3587996_BM1.anno.txt.gz", "BM1", "yes"),
    "BM2": ("GSM3587997_BM2.dem.txt.gz", "GSM3587997_BM2.anno.txt.gz", "BM2", "yes"),
    "AML1012-D0": (
        "GSM3587923_AML1012-D0.dem.txt.gz",
        "GSM3587924_AML1012-D0.anno.txt.gz",
        "AML1012",
        "no",
    ),
    "AML419A-D0": (
        "GSM3587950_AML419A-D0.dem.txt.gz",
        "GSM3587951_AML419A-D0.anno.txt.gz",
        "AML419A",
        "no",
    ),
    "AML329-D0": (
        "GSM3587940_AML329-D0.dem.txt.gz",
        "GSM3587941_AML329-D0.anno.txt.gz",
        "AML329",
        "no",
    ),
}


SMALL_SAMPLE_CELLS = 30


def _sheet_row(sample_id, patient_id, timepoint, order, path, healthy) -> dict:
    return {
        "sample_id": sample_id,
        "patient_id": patient_id,
        "timepoint": timepoint,
        "timepoint_order": order,
        "path": path,
        "format": "dense_txt",
        "batch": sample_id,
        "healthy": healthy,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=Path("/work/shared/data/vangalen2019"))
    parser.add_argument("--out", type=Path, default=Path("tests/data/vangalen2019"))
    parser.add_argument("--max-cells", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    counts, annos = {}, {}
    genes = None
    for sample_id, (dem, anno, _, _) in SAMPLES.items():
        x = pd.read_csv(args.source / dem, sep="\t", index_col=0)
        # read as text so the annotation is written back exactly as on GEO
        a = pd.read_csv(args.source / anno, sep="\t", index_col=0, dtype=str, keep_default_na=False)
        if genes is None:
            genes = x.index
        elif not x.index.equals(genes):
            raise SystemExit(f"{dem}: gene rows differ from the first file")
        cells = x.columns.intersection(a.index)
        if len(cells) > args.max_cells:
            # sorted draw so the kept cells keep their original file order
            cells = cells[np.sort(rng.choice(len(cells), args.max_cells, replace=False))]
        counts[sample_id] = x[cells]
        annos[sample_id] = a.loc[cells].rename_axis(a.index.name)

    detected = np.zeros(len(genes), dtype=bool)
    for x in counts.values():
        detected |= (x.to_numpy() > 0).any(axis=1)

    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for sample_id, (dem, anno, patient_id, healthy) in SAMPLES.items():
        x = counts[sample_id].loc[detected]
        x.index.name = "Gene"
        x.to_csv(args.out / dem, sep="\t", compression={"method": "gzip", "mtime": 0})
        annos[sample_id].to_csv(
            args.out / anno, sep="\t", compression={"method": "gzip", "mtime": 0}
        )
        rows.append(_sheet_row(sample_id, patient_id, "diagnosis", 1, dem, healthy))
        print(sample_id, x.shape[1], "cells")
    # A small remission sample of AML329 (tens of cells are ordinary at remission): every step
    # must run on it. Same genes as the files above; its own generator so the draws above stay.
    small_rng = np.random.default_rng(args.seed + 1)
    dem, anno = "GSM3587944_AML329-D37.dem.txt.gz", "GSM3587945_AML329-D37.anno.txt.gz"
    x = pd.read_csv(args.source / dem, sep="\t", index_col=0)
    a = pd.read_csv(args.source / anno, sep="\t", index_col=0, dtype=str, keep_default_na=False)
    cells = x.columns.intersection(a.index)
    cells = cells[np.sort(small_rng.choice(len(cells), SMALL_SAMPLE_CELLS, replace=False))]
    x = x.loc[genes[detected], cells]
    x.index.name = "Gene"
    x.to_csv(args.out / dem, sep="\t", compression={"method": "gzip", "mtime": 0})
    a.loc[cells].rename_axis(a.index.name).to_csv(
        args.out / anno, sep="\t", compression={"method": "gzip", "mtime": 0}
    )
    rows.append(_sheet_row("AML329-D37", "AML329", "D37", 2, dem, "no"))
    print("AML329-D37", x.shape[1], "cells")
    pd.DataFrame(rows).to_csv(args.out / "samples.tsv", sep="\t", index=False)
    print(int(detected.sum()), "genes kept of", len(genes))


if __name__ == "__main__":
    main()
