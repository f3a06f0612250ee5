"""Gene-level model: base abundances, dispersions and the planted expression programmes.

Every draw here comes from one generator, in a fixed order (gene parameters, cell-type
programmes, clones in :mod:`clonetrack_sim.clones`, the leukaemic programme, resistance genes,
timepoint DE): the same seed gives the same cohort.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from clonetrack.errors import InputError

from clonetrack_sim.design import (
    BASE_LOG_SD,
    DISPERSION_MEDIAN,
    HB_GENES,
    INTERFERON,
    LINEAGES,
    LSC17,
    OXPHOS_PATTERN,
    RESISTANCE_FIXED,
    RIBO_PATTERN,
    SEX_GENES,
    CohortDesign,
)
from clonetrack_sim.genes import GENE_COLUMNS, required_genes, sort_genes

PROGRAMME_COLUMNS = ["programme", "gene", "fold_change", "kind"]


@dataclass
class GeneModel:
    """Per gene: base abundance, NB dispersion, mitochondrial profile, and the genes planted
    effects may use (``background``: moderately expressed, in no signature; ``expressed``: its
    well-expressed quarter)."""

    genes: pd.DataFrame
    symbols: np.ndarray
    index: dict[str, int]
    base: np.ndarray
    mt_profile: np.ndarray
    dispersion: np.ndarray
    is_mt: np.ndarray
    background: list[str]
    expressed: list[str]


def pick(rng, pool, n, exclude=()):
    """``n`` distinct genes of ``pool`` outside ``exclude`` (fewer if the pool is short)."""
    pool = [g for g in pool if g not in set(exclude)]
    return list(rng.choice(pool, size=min(n, len(pool)), replace=False))


def sorted_gene_table(genes: pd.DataFrame, markers: dict[str, list[str]]) -> pd.DataFrame:
    """The gene table by position, refused when it lacks most of the simulator's marker genes."""
    genes = sort_genes(genes[GENE_COLUMNS].drop_duplicates("symbol"))
    wanted = required_genes(markers)
    present = set(genes["symbol"].astype(str)) & set(wanted)
    if len(present) < len(wanted) // 2:
        raise InputError(
            "gene table holds too few of the simulator's marker genes; build it with select_genes "
            "from a human gene-position file"
        )
    return genes


def gene_model(genes: pd.DataFrame, markers: dict[str, list[str]], rng) -> GeneModel:
    """Base abundances (log-normal; ribosomal genes high, haemoglobins only through the
    erythroid programme), dispersions and the pools planted genes come from."""
    symbols = genes["symbol"].astype(str).to_numpy()
    n_genes = len(symbols)
    index = {g: i for i, g in enumerate(symbols)}
    is_mt = np.char.startswith(symbols.astype(str), "MT-")
    is_ribo = pd.Series(symbols).str.match(RIBO_PATTERN).to_numpy()
    log_base = rng.normal(0.0, BASE_LOG_SD, n_genes)
    log_base[is_ribo] = rng.normal(4.0, 0.5, is_ribo.sum())
    log_base[np.isin(symbols, HB_GENES)] = -3.0
    log_base[np.isin(symbols, [g for v in SEX_GENES.values() for g in v])] = 0.5
    base = np.exp(log_base)
    mt_profile = np.where(is_mt, rng.lognormal(0, 0.5, n_genes), 0.0)
    dispersion = rng.lognormal(np.log(DISPERSION_MEDIAN), 0.4, n_genes)

    special = set(required_genes(markers)) | set(symbols[is_ribo]) | set(symbols[is_mt])
    special |= set(symbols[pd.Series(symbols).str.match(OXPHOS_PATTERN).to_numpy()])
    # Random programme and planted genes come from moderately expressed background genes, so
    # planted effects are measurable.
    background = [g for g in symbols if g not in special and base[index[g]] > np.exp(-0.5)]
    # Planted DE and resistance genes come from the well-expressed quarter of the background, as
    # genes a pseudobulk test can see: DE planted in barely detected genes has no power.
    expressed_cut = np.quantile([base[index[g]] for g in background], 0.75)
    expressed = [g for g in background if base[index[g]] >= expressed_cut]
    return GeneModel(
        genes, symbols, index, base, mt_profile, dispersion, is_mt, background, expressed
    )


def _multiply(profile: np.ndarray, model: GeneModel, genes, folds, rows, programme, kind):
    for g, f in zip(genes, folds, strict=True):
        profile[model.index[g]] *= f
        rows.append((programme, g, f, kind))


def type_programmes(
    model: GeneModel, types: list[str], markers: dict[str, list[str]], rng, rows: list
) -> np.ndarray:
    """Fold changes per cell type (types x genes): lineage programmes shared by neighbours
    (x2-4), canonical markers (x4-20) and 30 random genes per type (x2-8); rows for the
    programme table are appended to ``rows``."""
    prog = {t: np.ones(len(model.symbols)) for t in types}
    for lineage, members in LINEAGES.items():
        lin_genes = pick(rng, model.background, 20)
        fc = np.exp(rng.uniform(np.log(2), np.log(4), len(lin_genes)))
        for t in members:
            _multiply(prog[t], model, lin_genes, fc, rows, t, f"lineage:{lineage}")
    for t in types:
        planted = [g for g in markers[t] if g in model.index]
        fc = np.exp(rng.uniform(np.log(4), np.log(20), len(planted)))
        own = pick(rng, model.background, 30)
        fc_own = np.exp(rng.uniform(np.log(2), np.log(8), len(own)))
        _multiply(prog[t], model, planted, fc, rows, t, "marker")
        _multiply(prog[t], model, own, fc_own, rows, t, "random")
    return np.vstack([prog[t] for t in types])


def leukaemic_programme(
    model: GeneModel, in_segment: set[str], rng, rows: list
) -> tuple[np.ndarray, list[str], list[str]]:
    """The programme every malignant cell shares: LSC17 and BCL2 up, plus 20 random aberrant
    genes outside copy-number segments (x2-4 each). Returns the factor, the signature genes and
    the random genes."""
    leuk = np.ones(len(model.symbols))
    leuk_genes = [g for g in LSC17 + ["BCL2"] if g in model.index]
    leuk_random = pick(rng, model.background, 20, exclude=in_segment)
    for g in leuk_genes + leuk_random:
        f = float(np.exp(rng.uniform(np.log(2), np.log(4))))
        leuk[model.index[g]] *= f
        rows.append(("malignant", g, f, "lsc17" if g in LSC17 else "random"))
    return leuk, leuk_genes, leuk_random


def resistance_genes(model: GeneModel, design: CohortDesign, exclude: set[str], rng) -> list[str]:
    """Genes up in the expanding clone: BCL2L1, MCL1, CD36, then well-expressed random genes."""
    res_genes = [g for g in RESISTANCE_FIXED if g in model.index]
    res_genes += pick(
        rng, model.expressed, design.n_resistance_genes - len(res_genes), exclude=exclude
    )
    return res_genes


def mono_de(
    model: GeneModel, design: CohortDesign, used: set[str], rng
) -> tuple[pd.DataFrame, np.ndarray]:
    """Planted timepoint DE in Mono (on_treatment vs diagnosis): interferon genes and random
    well-expressed genes up, others down. Returns the truth table and the per-gene factor."""
    de_up = [g for g in INTERFERON if g in model.index]
    de_up += pick(rng, model.expressed, design.n_de_up - len(de_up), exclude=used)
    de_down = pick(rng, model.expressed, design.n_de_down, exclude=used | set(de_up))
    fold, log2fc = design.de_fold_change, np.log2(design.de_fold_change)
    table = pd.DataFrame(
        {
            "gene": de_up + de_down,
            "cell_type": "Mono",
            "contrast": "on_treatment_vs_diagnosis",
            "log2fc": [log2fc] * len(de_up) + [-log2fc] * len(de_down),
        }
    )
    factor = gene_factor(model, {**dict.fromkeys(de_up, fold), **dict.fromkeys(de_down, 1 / fold)})
    return table, factor


def gene_factor(model: GeneModel, genes_to_fold: dict[str, float]) -> np.ndarray:
    """A per-gene multiplier: 1, and the given fold for each given gene."""
    factor = np.ones(len(model.symbols))
    for g, f in genes_to_fold.items():
        factor[model.index[g]] = f
    return factor
