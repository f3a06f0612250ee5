"""Regenerate the bundled toy dataset: ``python scripts/make_toy.py resources/toy``.

``--responses`` writes the toy cohort by response instead (12 patients at diagnosis and follow-up,
a patient table and a drug-sensitivity table): ``make_toy.py resources/toy_cohort --responses``
(it reads ``resources/toy/genes.tsv`` unless the folder has its own).

``--mouse`` writes the barcoded mouse toy (two mice at baseline and relapse, lentiviral-barcode
matrices, mouse gene symbols, the bundled mouse marker panel): ``make_toy.py resources/toy_mouse
--mouse --seed 2``.

Reads the gene table ``<outdir>/genes.tsv``; with ``--positions`` (a headerless symbol, chromosome,
start, end file such as inferCNV's GENCODE v27 gene ordering file) it first rebuilds that table.
"""

import argparse
import sys
from pathlib import Path

import pandas as pd

# the simulator raises the runtime package's input errors
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow" / "scripts"))

from clonetrack_sim import (
    select_genes,
    simulate_cohort,
    simulate_mouse_cohort,
    simulate_response_cohort,
    write_cohort,
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--positions", type=Path, help="rebuild genes.tsv from this position file")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-genes", type=int, default=2500)
    parser.add_argument("--n-cells", type=int, default=480, help="good cells per sample")
    parser.add_argument("--responses", action="store_true", help="the toy cohort by response")
    parser.add_argument("--mouse", action="store_true", help="the barcoded mouse toy")
    args = parser.parse_args(argv)
    repo = Path(__file__).resolve().parents[1]
    if args.mouse:
        cohort = simulate_mouse_cohort(
            positions=pd.read_csv(
                repo / "resources/genes/hg38_gene_positions.tsv.gz", sep="\t"
            ).rename(columns={"gene": "symbol"}),
            panel=pd.read_csv(repo / "resources/markers/mouse_marrow_markers.tsv", sep="\t"),
            seed=args.seed,
        )
        print(write_cohort(cohort, args.outdir, formats={p: "10x_mtx" for p in ("M1", "M2")}))
        return

    if args.positions:
        # The inferCNV file has CRLF line ends and a stray trailing tab on some rows.
        rows = [ln.split()[:4] for ln in args.positions.read_text().splitlines() if ln.strip()]
        positions = pd.DataFrame(rows, columns=["symbol", "chromosome", "start", "end"])
        positions = positions.astype({"start": int, "end": int})
        genes = select_genes(positions, n_genes=args.n_genes, seed=args.seed)
    elif (args.outdir / "genes.tsv").is_file():
        genes = pd.read_csv(args.outdir / "genes.tsv", sep="\t")
    else:
        genes = pd.read_csv(repo / "resources/toy/genes.tsv", sep="\t")
    if args.responses:
        cohort = simulate_response_cohort(genes=genes, seed=args.seed)
    else:
        cohort = simulate_cohort(genes=genes, seed=args.seed, n_cells_per_sample=args.n_cells)
    sheet = write_cohort(cohort, args.outdir)
    n = cohort.cells.groupby("sample_id", sort=False).size()
    print(sheet.assign(n_cells=sheet["sample_id"].map(n)).to_string(index=False))


if __name__ == "__main__":
    main()
