"""Regenerate the bundled toy dataset: ``python workflow/scripts/make_toy.py resources/toy``.

Reads the gene table ``<outdir>/genes.tsv``; with ``--positions`` (a headerless symbol, chromosome,
start, end file such as inferCNV's GENCODE v27 gene ordering file) it first rebuilds that table.
"""

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from clonetrack.simulate import select_genes, simulate_cohort, write_cohort  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--positions", type=Path, help="rebuild genes.tsv from this position file")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-genes", type=int, default=2500)
    parser.add_argument("--n-cells", type=int, default=480, help="good cells per sample")
    args = parser.parse_args(argv)

    if args.positions:
        # The inferCNV file has CRLF line ends and a stray trailing tab on some rows.
        rows = [ln.split()[:4] for ln in args.positions.read_text().splitlines() if ln.strip()]
        positions = pd.DataFrame(rows, columns=["symbol", "chromosome", "start", "end"])
        positions = positions.astype({"start": int, "end": int})
        genes = select_genes(positions, n_genes=args.n_genes, seed=args.seed)
    else:
        genes = pd.read_csv(args.outdir / "genes.tsv", sep="\t")
    cohort = simulate_cohort(genes=genes, seed=args.seed, n_cells_per_sample=args.n_cells)
    sheet = write_cohort(cohort, args.outdir)
    n = cohort.cells.groupby("sample_id", sort=False).size()
    print(sheet.assign(n_cells=sheet["sample_id"].map(n)).to_string(index=False))


if __name__ == "__main__":
    main()
