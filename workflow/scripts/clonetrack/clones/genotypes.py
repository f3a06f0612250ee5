"""Per-cell variant reads: reading, evidence of malignancy, and clones from variant combinations.

A genotype table (sheet column ``genotypes``) has one row per cell and variant with the reads
(or transcripts) that carry the alternative and the reference allele. Genotyping of transcripts
(GoT, Seq-Well genotyping), long-read genotyping and mitochondrial-variant callers all produce it.
"""

from __future__ import annotations

import logging
import re

import numpy as np
import pandas as pd

from clonetrack.io.tables import GENOTYPE_COLUMNS
from clonetrack.vocabulary import UNASSIGNED

log = logging.getLogger(__name__)

NAME_MUTANT_FRACTION = 0.25


def allele_matrices(
    tables: list[pd.DataFrame], cells: pd.Index
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Alternative and reference read counts, cells x variants, for ``cells`` (zero where a cell
    has no read); rows naming other cells (QC-removed, another sample's) are left out."""
    table = (
        pd.concat(tables, ignore_index=True)
        if tables
        else pd.DataFrame(columns=[*GENOTYPE_COLUMNS, "obs_name"])
    )
    table = table[table["obs_name"].isin(cells)]
    variants = sorted(table["variant"].unique())
    alt = table.pivot_table(index="obs_name", columns="variant", values="alt_reads", aggfunc="sum")
    ref = table.pivot_table(index="obs_name", columns="variant", values="ref_reads", aggfunc="sum")
    alt = alt.reindex(index=cells, columns=variants).fillna(0).astype(np.int64)
    ref = ref.reindex(index=cells, columns=variants).fillna(0).astype(np.int64)
    return alt, ref


def malignancy_variants(variants, not_malignant_genes) -> list[str]:
    """Variants whose mutant reads are evidence of leukaemia: all but those of the genes listed.

    Mutations of clonal haematopoiesis (DNMT3A, TET2, ASXL1 by default) are founders that normal
    blood cells of the patient carry too, so they mark a lineage, not the leukaemia.
    """
    genes = set(not_malignant_genes)
    return [v for v in variants if re.split(r"[.:_ ]", v, maxsplit=1)[0] not in genes]


def genotype_log_odds(
    alt: pd.DataFrame,
    ref: pd.DataFrame,
    *,
    mutant_allele_fraction: float = 0.5,
    error_rate: float = 0.01,
) -> pd.Series:
    """Per cell, the log-likelihood ratio of its reads: malignant (carrying the variants) vs normal.

    Under "malignant" a read shows the mutant allele with probability ``mutant_allele_fraction``
    (heterozygous); under "normal" with probability ``error_rate`` (sequencing and alignment
    errors). A mutant read adds log(f / e) (about +3.9 at the defaults): strong evidence. A
    wild-type read adds log((1 - f) / (1 - e)) (about -0.68): weak, since one allele of a
    heterozygous mutation is often the only one captured (allelic dropout). Per variant, the
    wild-type evidence is capped at that of one mutant read, so that many wild-type reads of a
    variant the cell's subclone does not carry cannot outweigh a mutant read of another.
    """
    f, e = mutant_allele_fraction, error_rate
    per_alt = np.log(f / e)
    per_ref = np.log((1 - f) / (1 - e))
    against = np.maximum(ref.to_numpy() * per_ref, -per_alt)
    return pd.Series((alt.to_numpy() * per_alt + against).sum(axis=1), index=alt.index)


def genotype_clones(
    alt: pd.DataFrame,
    ref: pd.DataFrame,
    *,
    patient_id: str,
    max_clones: int = 4,
    min_probability: float = 0.9,
    min_cells_per_clone: int = 3,
    min_mutant_fraction: float = 0.1,
    random_state: int = 0,
) -> tuple[pd.Series, pd.DataFrame]:
    """Clones from variant combinations with vireoSNP's binomial mixture (which models dropout:
    a cell without reads on a variant says nothing about it).

    Cells with at least one read are clustered for 1..``max_clones`` components; the number with
    the highest evidence lower bound is kept (the variational bound already pays for each extra
    component). A component is a clone when one of its variants has a mutant fraction of at
    least ``min_mutant_fraction``; it is named by the variants with a mutant fraction of at least
    :data:`NAME_MUTANT_FRACTION` (half the heterozygous 0.5; or its most frequent one), most
    frequent first. Cells whose assignment probability is below ``min_probability`` stay
    unassigned.

    Returns the clone per cell (``"unassigned"`` where none) and a table of clones: cells and
    the mean mutant fraction of every variant.
    """
    from scipy.sparse import csc_matrix
    from vireoSNP import BinomMixtureVB

    clone = pd.Series(UNASSIGNED, index=alt.index, dtype=object)
    depth = alt + ref
    informative = depth.sum(axis=1) > 0
    columns = ["clone", "n_cells", *[f"af_{v}" for v in alt.columns]]
    if informative.sum() < min_cells_per_clone or alt.shape[1] == 0:
        return clone, pd.DataFrame(columns=columns)
    # vireoSNP takes variants x cells
    ad_ = alt[informative].to_numpy().T.astype(float)
    dp_ = depth[informative].to_numpy().T.astype(float)
    best = None
    for k in range(1, min(max_clones, int(informative.sum())) + 1):
        model = BinomMixtureVB(n_cell=ad_.shape[1], n_var=ad_.shape[0], n_donor=k)
        model.fit(
            csc_matrix(ad_), csc_matrix(dp_), n_init=10, min_iter=20, random_seed=random_state
        )
        elbo = float(model.ELBO_iters[-1])
        log.info("patient %s: %d genotype component(s), ELBO %.2f", patient_id, k, elbo)
        if best is None or elbo > best[0] + 1e-6:
            best = (elbo, model)
    model = best[1]
    af = pd.DataFrame(model.beta_mu, index=alt.columns)  # variants x components
    prob = model.ID_prob  # cells x components
    component = prob.argmax(axis=1)
    confident = prob.max(axis=1) >= min_probability
    names, rows = {}, []
    for c in range(af.shape[1]):
        carried = af[c][af[c] >= min_mutant_fraction].sort_values(ascending=False)
        members = confident & (component == c)
        if carried.empty or members.sum() < min_cells_per_clone:
            continue
        # named by the variants at least a quarter of its reads show mutant (its top one at least)
        shown = carried[carried >= NAME_MUTANT_FRACTION]
        names[c] = f"{patient_id}_G_" + "+".join((shown if len(shown) else carried[:1]).index)
        rows.append(
            {
                "clone": names[c],
                "n_cells": int(members.sum()),
                **{f"af_{v}": float(af.loc[v, c]) for v in alt.columns},
            }
        )
    labels = np.array([names.get(c, UNASSIGNED) for c in component], dtype=object)
    labels[~confident] = UNASSIGNED
    clone[informative[informative].index] = labels
    return clone, pd.DataFrame(rows, columns=columns)
