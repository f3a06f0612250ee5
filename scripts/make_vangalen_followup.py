"""Build the longitudinal real-data test subset tests/data/vangalen2019_followup/.

From the van Galen 2019 GEO files (GSE116256): every follow-up timepoint of AML328 (TP53 subclones,
four samples), AML420B (three), AML371 (two) and AML314 (two), the healthy donor BM5 (CD34+) and the
cell line OCI-AML3 and the healthy whole-marrow donors BM1 and BM2. Per sample a seeded uniform draw
of at most ``--max-cells`` cells, plus, for AML328, every cell with a genotyped transcript (so its
two TP53 subclones can be followed). Genes: those detected in a kept cell. Same layout as
tests/data/vangalen2019, plus genotype tables written by scripts/vangalen_genotypes.py and a sample
sheet with the ``genotypes`` and ``healthy`` columns.

Usage: python scripts/make_vangalen_followup.py [--source DIR] [--out DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

# sample_id -> (patient_id, timepoint, order, healthy)
SAMPLES = {
    "AML328-D0": ("AML328", "diagnosis", 0, "no"),
    "AML328-D29": ("AML328", "D29", 29, "no"),
    "AML328-D113": ("AML328", "D113", 113, "no"),
    "AML328-D171": ("AML328", "D171", 171, "no"),
    "AML420B-D0": ("AML420B", "diagnosis", 0, "no"),
    "AML420B-D14": ("AML420B", "D14", 14, "no"),
    "AML420B-D35": ("AML420B", "D35", 35, "no"),
    "AML371-D0": ("AML371", "diagnosis", 0, "no"),
    "AML371-D34": ("AML371", "D34", 34, "no"),
    "AML314-D0": ("AML314", "diagnosis", 0, "no"),
    "AML314-D31": ("AML314", "D31", 31, "no"),
    "BM5-34p": ("BM5", "diagnosis", 0, "yes"),
    "OCI-AML3": ("OCI-AML3", "diagnosis", 0, "no"),
    # Healthy whole marrow (BM5 is sorted CD34+): the malignant call needs normal monocytes,
    # erythroid and lymphoid cells of the same platform (docs/malignant.md).
    "BM1": ("BM1", "diagnosis", 0, "yes"),
    "BM2": ("BM2", "diagnosis", 0, "yes"),
}
GENOTYPED = ("MutTranscripts", "WtTranscripts", "NanoporeTranscripts")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=Path("/work/shared/data/vangalen2019"))
    parser.add_argument("--out", type=Path, default=Path("tests/data/vangalen2019_followup"))
    parser.add_argument("--max-cells", type=int, default=250)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    counts, annos, names = {}, {}, {}
    genes = None
    for sample_id in SAMPLES:
        (dem,) = args.source.glob(f"*_{sample_id}.dem.txt.gz")
        (anno,) = args.source.glob(f"*_{sample_id}.anno.txt.gz")
        x = pd.read_csv(dem, sep="\t", index_col=0)
        a = pd.read_csv(anno, sep="\t", index_col=0, dtype=str, keep_default_na=False)
        if genes is None:
            genes = x.index
        elif not x.index.equals(genes):
            raise SystemExit(f"{dem}: gene rows differ from the first file")
        cells = x.columns.intersection(a.index)
        keep = np.zeros(len(cells), dtype=bool)
        if len(cells) > args.max_cells:
            keep[rng.choice(len(cells), args.max_cells, replace=False)] = True
        else:
            keep[:] = True
        if sample_id.startswith("AML328"):
            typed = a.loc[cells, [c for c in GENOTYPED if c in a.columns]].ne("").any(axis=1)
            keep |= typed.to_numpy()
        counts[sample_id] = x[cells[keep]]
        annos[sample_id] = a.loc[cells[keep]].rename_axis(a.index.name)
        names[sample_id] = (dem.name, anno.name)
    detected = np.zeros(len(genes), dtype=bool)
    for x in counts.values():
        detected |= (x.to_numpy() > 0).any(axis=1)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for sample_id, (patient_id, timepoint, order, healthy) in SAMPLES.items():
        dem, anno = names[sample_id]
        x = counts[sample_id].loc[detected]
        x.index.name = "Gene"
        x.to_csv(args.out / dem, sep="\t", compression={"method": "gzip", "mtime": 0})
        annos[sample_id].to_csv(
            args.out / anno, sep="\t", compression={"method": "gzip", "mtime": 0}
        )
        rows.append(
            {
                "sample_id": sample_id,
                "patient_id": patient_id,
                "timepoint": timepoint,
                "timepoint_order": order,
                "path": dem,
                "format": "dense_txt",
                "healthy": healthy,
                "genotypes": "",
            }
        )
        print(sample_id, x.shape[1], "cells")
    annotated = sorted(str(args.out / names[s][1]) for s in SAMPLES if s.startswith("AML"))
    script = Path(__file__).resolve().parent / "vangalen_genotypes.py"
    subprocess.run(
        [sys.executable, str(script), *annotated, "--out-dir", str(args.out / "genotypes")],
        check=True,
    )
    sheet = pd.DataFrame(rows)
    for i, sample_id in enumerate(sheet["sample_id"]):
        table = args.out / "genotypes" / f"{sample_id}.genotypes.tsv"
        if table.is_file() and len(pd.read_csv(table, sep="\t")):
            sheet.loc[i, "genotypes"] = f"genotypes/{sample_id}.genotypes.tsv"
        elif table.is_file():
            table.unlink()
    sheet.to_csv(args.out / "samples.tsv", sep="\t", index=False)
    print(int(detected.sum()), "genes kept of", len(genes))


if __name__ == "__main__":
    main()
