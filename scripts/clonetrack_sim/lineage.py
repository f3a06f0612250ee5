"""What lineage tools and genotyping give of the planted clones: clone tables with clone ids,
variant reads per cell, and lentiviral-barcode counts."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
from scipy import sparse

from clonetrack_sim.barcodes import barcode_strings

#: Variants of the simulated genotyping: one founder variant carried by every leukaemic cell, then
#: one per clone, in clone order.
GENOTYPE_FOUNDER = "NPM1.W288fs"
GENOTYPE_CLONE_VARIANTS = ("FLT3.ITD", "TP53.R248Q", "KRAS.G12D", "NRAS.Q61K")


def lineage_ids(clone_meta: dict, seed: int) -> dict[str, str]:
    """Lineage-barcode clone ids (LB01, ...) per truth clone, in a shuffled order per patient."""
    out = {}
    for p in sorted({m["patient_id"] for m in clone_meta.values()}):
        names = [n for n, m in clone_meta.items() if m["patient_id"] == p]
        perm = np.random.default_rng(
            [seed, 3, int("".join(filter(str.isdigit, p)) or 0)]
        ).permutation(len(names))
        for j, n in enumerate(names):
            out[n] = f"LB{perm[j] + 1:02d}"
    return out


def given_clone_table(obs, clone_names, coverage, rng, patient, seed) -> pd.DataFrame:
    """Clone table as a lineage-tracing tool would give it: most malignant cells, some strays."""
    ids = lineage_ids({c: {"patient_id": patient} for c in clone_names}, seed)
    cand = obs[obs["malignant"] & ~obs["doublet"]]
    cover = cand.iloc[np.sort(rng.permutation(len(cand))[: int(round(coverage * len(cand)))])]
    table = pd.DataFrame(
        {
            "barcode": cover["barcode"].to_numpy(),
            "clone_id": cover["clone"].map(ids).to_numpy(),
            "confidence": np.round(rng.uniform(0.6, 1.0, len(cover)), 3),
        }
    )
    known = set(obs["barcode"])
    strays = []
    while len(strays) < 3:  # barcodes the counts do not hold: the pipeline must report them
        b = barcode_strings(int(rng.integers(0, 4**16)))[0]
        if b not in known and b not in strays:
            strays.append(b)
    extra = pd.DataFrame(
        {
            "barcode": strays,
            "clone_id": rng.choice(sorted(ids.values()), 3),
            "confidence": np.round(rng.uniform(0.6, 1.0, 3), 3),
        }
    )
    return pd.concat([table, extra], ignore_index=True)


def genotype_reads(
    obs: pd.DataFrame, *, rng: np.random.Generator, depth: float = 0.4, error_rate: float = 0.01
) -> pd.DataFrame:
    """Variant reads of genotyping of transcripts for one sample's cells.

    Every leukaemic cell carries :data:`GENOTYPE_FOUNDER` and its clone's variant of
    :data:`GENOTYPE_CLONE_VARIANTS` (clones sorted by name), heterozygous. Per cell and variant the
    reads covering the site are Poisson(``depth``) (most cells have none, as in 3' data); each read
    shows the mutant allele with probability 0.5 in a carrier and ``error_rate`` otherwise.
    """
    clones = sorted(set(obs.loc[obs["malignant"].astype(bool), "clone"].astype(str)))
    variant_of = {
        c: GENOTYPE_CLONE_VARIANTS[i % len(GENOTYPE_CLONE_VARIANTS)] for i, c in enumerate(clones)
    }
    variants = [GENOTYPE_FOUNDER, *[variant_of[c] for c in clones]]
    rows = []
    for barcode, malignant, clone in zip(
        obs["barcode"], obs["malignant"].astype(bool), obs["clone"].astype(str), strict=True
    ):
        carried = {GENOTYPE_FOUNDER, variant_of.get(clone)} if malignant else set()
        for variant in variants:
            n = int(rng.poisson(depth))
            if n == 0:
                continue
            alt = int(rng.binomial(n, 0.5 if variant in carried else error_rate))
            rows.append((barcode, variant, alt, n - alt))
    return pd.DataFrame(rows, columns=["barcode", "variant", "alt_reads", "ref_reads"])


def lentiviral_barcodes(clones: pd.Series, rng: np.random.Generator) -> dict[str, str]:
    """One distinct random 20-nt barcode per clone."""
    codes = rng.choice(4**20, size=len(clones), replace=False)
    return dict(zip(clones, barcode_strings(codes, length=20, suffix=""), strict=True))


def lineage_barcode_counts(
    obs: pd.DataFrame,
    clone_barcode: dict[str, str],
    *,
    rng: np.random.Generator,
    mean_umi: float = 6.0,
    dropout: float = 0.15,
    ambient_rate: float = 0.1,
) -> ad.AnnData:
    """Lentiviral-barcode UMI counts of one sample (cells x barcodes), as a barcode library gives.

    A leukaemic cell shows its clone's barcode with 1 + Poisson(``mean_umi`` - 1) UMIs unless the
    barcode drops out (probability ``dropout``); any cell picks up a single ambient UMI of a random
    clone's barcode with probability ``ambient_rate`` (which ``clones.lineage.min_umi`` removes).
    Doublets carry the barcode of their leukaemic parent.
    """
    barcodes = sorted(clone_barcode.values())
    column = {b: j for j, b in enumerate(barcodes)}
    counts = np.zeros((len(obs), len(barcodes)), dtype=np.int32)
    clones = obs["clone"].astype(str).to_numpy()
    for i, clone in enumerate(clones):
        if clone in clone_barcode and rng.random() >= dropout:
            counts[i, column[clone_barcode[clone]]] += 1 + rng.poisson(mean_umi - 1)
        if rng.random() < ambient_rate:
            counts[i, rng.integers(len(barcodes))] += 1
    return ad.AnnData(
        X=sparse.csr_matrix(counts),
        obs=pd.DataFrame(index=obs["barcode"].to_numpy()),
        var=pd.DataFrame(index=barcodes),
    )
