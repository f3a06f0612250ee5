"""Build the healthy-marrow reference shipped in resources/reference/ from van Galen et al. 2019.

Cells of the healthy donors BM1, BM2 (whole marrow) and BM5 (sorted CD34+ and CD34+CD38-) of
GEO GSE116256 with their published cell type (``CellType``; cells without one are left out).
Genes: those detected in at least ``--min-cells`` cells. Counts are the published integer UMI
counts, unchanged.

Usage::

    python scripts/make_normal_reference.py --source /path/to/GSE116256 \
        --out resources/reference/healthy_marrow.h5ad
"""

from __future__ import annotations

import argparse
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

DONORS = {
    "BM1": ("GSM3587996_BM1.dem.txt.gz", "GSM3587996_BM1.anno.txt.gz", "BM1"),
    "BM2": ("GSM3587997_BM2.dem.txt.gz", "GSM3587997_BM2.anno.txt.gz", "BM2"),
    "BM5-34p": ("GSM3588002_BM5-34p.dem.txt.gz", "GSM3588002_BM5-34p.anno.txt.gz", "BM5"),
    "BM5-34p38n": ("GSM3588003_BM5-34p38n.dem.txt.gz", "GSM3588003_BM5-34p38n.anno.txt.gz", "BM5"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--min-cells", type=int, default=3)
    args = parser.parse_args()
    parts = []
    for sample_id, (dem, anno, donor) in DONORS.items():
        x = pd.read_csv(args.source / dem, sep="\t", index_col=0)
        x = x[~x.index.duplicated()]
        labels = pd.read_csv(
            args.source / anno, sep="\t", index_col=0, usecols=["Cell", "CellType"]
        )
        labels = labels["CellType"].dropna()
        cells = x.columns.intersection(labels.index)
        part = ad.AnnData(
            sp.csr_matrix(x[cells].to_numpy().T.astype(np.int32)),
            obs=pd.DataFrame(
                {
                    "cell_type": labels.loc[cells].astype(str).to_numpy(),
                    "sample_id": sample_id,
                    "donor": donor,
                },
                index=cells,
            ),
            var=pd.DataFrame(index=x.index),
        )
        parts.append(part)
        print(sample_id, part.n_obs, "cells with a published cell type of", x.shape[1])
    ref = ad.concat(parts, join="inner")
    detected = np.asarray((ref.X > 0).sum(axis=0)).ravel() >= args.min_cells
    ref = ref[:, detected].copy()
    for column in ("cell_type", "sample_id", "donor"):
        ref.obs[column] = ref.obs[column].astype("category")
    ref.uns["source"] = (
        "van Galen P, Hovestadt V, et al. Cell 176:1265 (2019); GEO GSE116256 (healthy donors "
        "BM1, BM2, BM5-34p, BM5-34p38n); published CellType; counts unchanged"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    ref.write_h5ad(args.out, compression="gzip")
    print(ref.n_obs, "cells x", ref.n_vars, "genes ->", args.out)
    print(ref.obs["cell_type"].value_counts().to_string())


if __name__ == "__main__":
    main()
