"""The simulated gene set: programme and signature genes, then a seeded sample, by position."""

from __future__ import annotations

import numpy as np
import pandas as pd
from clonetrack.errors import InputError

from clonetrack_sim.design import (
    APOPTOSIS,
    AUTOSOMES,
    CELL_TYPE_MARKERS,
    CHROMOSOMES,
    HB_GENES,
    INTERFERON,
    LSC17,
    MONOCYTIC,
    MT_GENES,
    OXPHOS_PATTERN,
    RIBO_PATTERN,
    SEX_GENES,
)

_CHROM_RANK = {c: i for i, c in enumerate(CHROMOSOMES)}
# Non-coding RNAs, antisense, clone-based names and pseudogenes (e.g. OR52Y1P, ACTBP2) are left out.
_EXCLUDE_RANDOM = (
    r"(?:\.|-AS|^MIR|^LINC|^SNOR|^RNU|^RNA5|^RNY|^Y_RNA|^SCARNA|^LOC|^MT-|^RP[SL]\d|\dP\d*$)"
)
GENE_COLUMNS = ["symbol", "chromosome", "start", "end"]


def required_genes(markers: dict[str, list[str]] | None = None) -> list[str]:
    """Marker, signature, mitochondrial, haemoglobin and sex genes, each once, in that order."""
    genes = [g for m in (markers or CELL_TYPE_MARKERS).values() for g in m]
    genes += LSC17 + APOPTOSIS + MONOCYTIC + INTERFERON + MT_GENES + HB_GENES
    genes += [g for v in SEX_GENES.values() for g in v]
    return list(dict.fromkeys(genes))


def sort_genes(genes: pd.DataFrame) -> pd.DataFrame:
    """Genes by chromosome (chr1-22, X, Y, M, then others) and start."""
    rank = genes["chromosome"].map(_CHROM_RANK).fillna(len(CHROMOSOMES))
    order = np.lexsort((genes["start"].to_numpy(), rank.to_numpy()))
    return genes.iloc[order].reset_index(drop=True)


def select_genes(
    positions: pd.DataFrame,
    *,
    n_genes: int = 2500,
    n_oxphos: int = 40,
    n_ribo: int = 40,
    seed: int = 0,
    markers: dict[str, list[str]] | None = None,
) -> pd.DataFrame:
    """Choose the simulated gene set from a gene-position table.

    Parameters
    ----------
    positions
        Columns ``symbol``, ``chromosome``, ``start``, ``end`` (e.g. the GENCODE v27 gene ordering
        file used by inferCNV).
    n_genes
        Total number of genes; programme and signature genes are always included and the rest is a
        seeded sample of protein-coding-looking genes on chr1-22.
    n_oxphos, n_ribo
        Oxidative-phosphorylation and ribosomal-protein genes to include.
    seed
        Random seed.
    markers
        Marker genes per cell type (default :data:`CELL_TYPE_MARKERS`), always included.

    Returns
    -------
    Genes sorted by chromosome and start, columns ``symbol, chromosome, start, end``.
    """
    missing_cols = set(GENE_COLUMNS) - set(positions.columns)
    if missing_cols:
        raise InputError(
            f"gene positions table lacks columns {sorted(missing_cols)}; "
            "give symbol, chromosome, start, end"
        )
    rng = np.random.default_rng([seed, 7])
    pos = positions.drop_duplicates("symbol").set_index("symbol", drop=False)
    sym = pos["symbol"].astype(str)
    chosen = [g for g in required_genes(markers) if g in pos.index]
    oxphos = sorted(sym[sym.str.match(OXPHOS_PATTERN)])
    ribo = sorted(sym[sym.str.match(RIBO_PATTERN) & pos["chromosome"].isin(AUTOSOMES)])
    chosen += list(rng.choice(oxphos, size=min(n_oxphos, len(oxphos)), replace=False))
    chosen += list(rng.choice(ribo, size=min(n_ribo, len(ribo)), replace=False))
    chosen = list(dict.fromkeys(chosen))
    pool = sym[
        pos["chromosome"].isin(AUTOSOMES) & ~sym.str.contains(_EXCLUDE_RANDOM) & ~sym.isin(chosen)
    ]
    n_fill = max(n_genes - len(chosen), 0)
    chosen += list(rng.choice(pool.to_numpy(), size=min(n_fill, len(pool)), replace=False))
    out = pos.loc[chosen, GENE_COLUMNS]
    return sort_genes(out.astype({"start": int, "end": int}))


def with_mitochondrial_genes(positions: pd.DataFrame) -> pd.DataFrame:
    """The position table with the 13 mitochondrial genes added on chrM where it lacks them:
    tables of nuclear genes (``resources/genes``) do not hold the genes that QC needs."""
    known = set(positions["symbol"].astype(str))
    mito = [g for g in MT_GENES if g not in known]
    return pd.concat(
        [
            positions[GENE_COLUMNS],
            pd.DataFrame({"symbol": mito, "chromosome": "chrM",
                          "start": np.arange(len(mito)) * 1000 + 1,
                          "end": np.arange(len(mito)) * 1000 + 900}),
        ],
        ignore_index=True,
    )  # fmt: skip
