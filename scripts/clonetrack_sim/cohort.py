"""Seeded simulator of longitudinal AML marrow scRNA-seq with its ground truth.

The simulated cohort is the project's toy dataset: patients sampled at diagnosis, on treatment
and at relapse, with normal marrow cell types (van Galen 2019 classes), malignant clones carrying
copy-number-like expression shifts, a resistant clone that expands under treatment, planted
timepoint DE in monocytes, low-quality cells and doublets. Every planted effect is recorded so that
the workflow's results can be scored against it.

Counts follow a gamma-Poisson (negative binomial) model::

    mu[c, g] = L_c * normalise_g(base[g] * programme[type_c, g] * batch[sample, g]
                                 * cnv[clone_c, g] * resistance[clone_c, g] * de[sample, type_c, g])

with per-cell library sizes ``L_c`` and a separate mitochondrial share per cell.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
from scipy import io as spio
from scipy import sparse

from clonetrack.errors import InputError

__all__ = [
    "CELL_TYPE_MARKERS",
    "SimulatedCohort",
    "select_genes",
    "simulate_cohort",
    "write_cohort",
]

#: Canonical markers per van Galen 2019 class; neighbours share some (CD34, CD3D/E, NKG7, ...).
CELL_TYPE_MARKERS: dict[str, list[str]] = {
    "HSC": ["CD34", "CRHBP", "AVP", "HLF", "MECOM", "PROM1"],
    "Prog": ["CD34", "SOX4", "CDK6", "SPINK2", "MLLT3"],
    "GMP": ["MPO", "ELANE", "AZU1", "PRTN3", "CTSG", "CD34"],
    "ProMono": ["MPO", "LYZ", "CTSG", "CST3", "MS4A3"],
    "Mono": ["CD14", "LYZ", "S100A8", "S100A9", "FCN1", "CD68", "VCAN", "ITGAM", "CD36"],
    "cDC": ["FCER1A", "CLEC10A", "CD1C", "HLA-DQA1", "CST3"],
    "pDC": ["IRF8", "LILRA4", "IL3RA", "TCF4", "GZMB"],
    "earlyEry": ["GATA1", "KLF1", "TFRC", "CA1", "APOC1"],
    "lateEry": ["HBB", "HBA1", "HBA2", "CA1", "AHSP", "ALAS2"],
    "B": ["MS4A1", "CD79A", "CD79B", "CD19", "BANK1"],
    "T": ["CD3D", "CD3E", "IL7R", "CCR7", "LEF1", "CD4"],
    "CTL": ["CD3D", "CD3E", "CD8A", "GZMK", "CCL5", "NKG7"],
    "NK": ["GNLY", "NKG7", "KLRD1", "PRF1", "FCGR3A", "GZMB"],
}

#: Lineages whose members share a programme of random genes (neighbouring types look alike).
LINEAGES: dict[str, list[str]] = {
    "stem": ["HSC", "Prog", "GMP"],
    "myeloid": ["GMP", "ProMono", "Mono", "cDC"],
    "erythroid": ["earlyEry", "lateEry"],
    "lymphoid": ["B", "T", "CTL", "NK", "pDC"],
    "tnk": ["T", "CTL", "NK"],
}

#: Share of each class among normal marrow cells (AML marrow at diagnosis, roughly).
NORMAL_COMPOSITION: dict[str, float] = {
    "HSC": 0.02, "Prog": 0.05, "GMP": 0.06, "ProMono": 0.05, "Mono": 0.18, "cDC": 0.03,
    "pDC": 0.02, "earlyEry": 0.08, "lateEry": 0.08, "B": 0.07, "T": 0.18, "CTL": 0.10, "NK": 0.08,
}  # fmt: skip

#: Relative library size per class (erythroid and lymphoid cells carry less RNA than myeloid).
LIBRARY_SCALE: dict[str, float] = {
    "HSC": 1.1, "Prog": 1.2, "GMP": 1.3, "ProMono": 1.2, "Mono": 1.2, "cDC": 1.1, "pDC": 1.0,
    "earlyEry": 1.0, "lateEry": 0.7, "B": 0.8, "T": 0.8, "CTL": 0.8, "NK": 0.9,
}  # fmt: skip

#: LSC17 score genes (Ng et al. 2016), current GENCODE symbols: NGFRAP1=BEX3, KIAA0125=FAM30A,
#: GPR56=ADGRG1.
LSC17 = [
    "DNMT3B", "ZBTB46", "NYNRIN", "ARHGAP22", "LAPTM4B", "MMRN1", "DPYSL3", "FAM30A", "CDK6",
    "CPXM1", "SOCS2", "SMIM24", "EMP1", "BEX3", "CD34", "AKR1C3", "ADGRG1",
]  # fmt: skip
APOPTOSIS = ["BCL2", "BCL2L1", "MCL1"]
MONOCYTIC = ["CD14", "CD68", "LYZ", "S100A8", "S100A9", "ITGAM", "CD36", "FCGR3A", "CD4"]
INTERFERON = ["IFIT1", "IFIT3", "ISG15", "MX1"]
MT_GENES = [
    "MT-ND1", "MT-ND2", "MT-CO1", "MT-CO2", "MT-ATP8", "MT-ATP6", "MT-CO3", "MT-ND3", "MT-ND4L",
    "MT-ND4", "MT-ND5", "MT-ND6", "MT-CYB",
]  # fmt: skip
HB_GENES = ["HBA1", "HBA2", "HBB"]
SEX_GENES = {"F": ["XIST"], "M": ["RPS4Y1", "DDX3Y", "KDM5D", "UTY"]}
OXPHOS_PATTERN = r"^(NDUF[ABSV]\d+|COX[4-8][A-C]\d?|ATP5[A-Z]\d*|UQCR[A-Z0-9]+|SDH[A-D])$"
RIBO_PATTERN = r"^RP[SL]\d+[AXY]?$"
RESISTANCE_FIXED = ["BCL2L1", "MCL1", "CD36"]

#: Spread of gene base abundances (log scale); median gene-wise NB dispersion phi
#: (var = mu + phi mu^2).
BASE_LOG_SD = 2.2
DISPERSION_MEDIAN = 0.3

TIMEPOINTS = ["diagnosis", "on_treatment", "relapse"]
MALIGNANT_FRACTION = {"diagnosis": 0.5, "on_treatment": 0.12, "relapse": 0.5}
# Clone shares among malignant cells per trajectory and timepoint.
TRAJECTORY_FREQUENCY = {
    "contracting": (0.65, 0.40, 0.06),
    "stable": (0.25, 0.25, 0.19),
    "expanding": (0.10, 0.35, 0.75),
}
#: Responses to treatment a cohort may plant (``simulate_cohort(responses=...)``): the malignant
#: fraction per timepoint of TIMEPOINTS, the trajectories of a patient's clones, and whether the
#: malignant cells are monocytic-like (ProMono/Mono) rather than primitive (HSC/Prog/GMP-like).
#: Refractory: the leukaemia does not shrink and is monocytic; relapse: a small clone at diagnosis
#: expands; sustained response: the leukaemia falls below a few percent.
RESPONSE_PLANS: dict[str, dict] = {
    "primary_refractory": {
        "fraction": (0.6, 0.55, 0.6),
        "trajectories": ("stable", "stable"),
        "monocytic": True,
    },
    "relapse": {
        "fraction": (0.5, 0.12, 0.5),
        "trajectories": ("contracting", "expanding"),
        "monocytic": False,
    },
    "sustained_response": {
        "fraction": (0.5, 0.05, 0.02),
        "trajectories": ("contracting", "stable"),
        "monocytic": False,
    },
}
#: Ex vivo drug-sensitivity AUC (higher = more resistant) planted per patient: venetoclax rises
#: with the monocytic share of the malignant cells at diagnosis; cytarabine is noise.
DST_VENETOCLAX = {"intercept": 0.35, "slope": 0.4, "noise_sd": 0.04}
DST_NOISE = {"mean": 0.5, "sd": 0.1}
CHROMOSOMES = [f"chr{i}" for i in range(1, 23)] + ["chrX", "chrY", "chrM"]
_AUTOSOMES = CHROMOSOMES[:22]
_CHROM_RANK = {c: i for i, c in enumerate(CHROMOSOMES)}
# Non-coding RNAs, antisense, clone-based names and pseudogenes (e.g. OR52Y1P, ACTBP2) are left out.
_EXCLUDE_RANDOM = (
    r"(?:\.|-AS|^MIR|^LINC|^SNOR|^RNU|^RNA5|^RNY|^Y_RNA|^SCARNA|^LOC|^MT-|^RP[SL]\d|\dP\d*$)"
)


def _required_genes(markers: dict[str, list[str]] | None = None) -> list[str]:
    genes = [g for m in (markers or CELL_TYPE_MARKERS).values() for g in m]
    genes += LSC17 + APOPTOSIS + MONOCYTIC + INTERFERON + MT_GENES + HB_GENES
    genes += [g for v in SEX_GENES.values() for g in v]
    return list(dict.fromkeys(genes))


def _sort_genes(genes: pd.DataFrame) -> pd.DataFrame:
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
    missing_cols = {"symbol", "chromosome", "start", "end"} - set(positions.columns)
    if missing_cols:
        raise InputError(
            f"gene positions table lacks columns {sorted(missing_cols)}; "
            "give symbol, chromosome, start, end"
        )
    rng = np.random.default_rng([seed, 7])
    pos = positions.drop_duplicates("symbol").set_index("symbol", drop=False)
    sym = pos["symbol"].astype(str)
    chosen = [g for g in _required_genes(markers) if g in pos.index]
    oxphos = sorted(sym[sym.str.match(OXPHOS_PATTERN)])
    ribo = sorted(sym[sym.str.match(RIBO_PATTERN) & pos["chromosome"].isin(_AUTOSOMES)])
    chosen += list(rng.choice(oxphos, size=min(n_oxphos, len(oxphos)), replace=False))
    chosen += list(rng.choice(ribo, size=min(n_ribo, len(ribo)), replace=False))
    chosen = list(dict.fromkeys(chosen))
    pool = sym[
        pos["chromosome"].isin(_AUTOSOMES) & ~sym.str.contains(_EXCLUDE_RANDOM) & ~sym.isin(chosen)
    ]
    n_fill = max(n_genes - len(chosen), 0)
    chosen += list(rng.choice(pool.to_numpy(), size=min(n_fill, len(pool)), replace=False))
    out = pos.loc[chosen, ["symbol", "chromosome", "start", "end"]]
    return _sort_genes(out.astype({"start": int, "end": int}))


@dataclass
class SimulatedCohort:
    """A simulated cohort: counts per sample and the truth behind them.

    Attributes
    ----------
    adatas
        Per sample, raw integer counts (CSR) with ``obs_names`` ``{sample_id}_{barcode}`` and truth
        in ``obs`` (``barcode``, ``sample_id``, ``patient_id``, ``timepoint``, ``cell_type``,
        ``malignant``, ``clone``, ``low_quality``, ``doublet``).
    samples
        The sample sheet (one row per sample; ``path``/``format``/``clones`` as written by
        :func:`write_cohort`).
    cells, clones, cnv_segments, de_genes, resistance_genes, programmes
        Truth tables (see ``resources/toy/README.md``).
    given_clones
        Lineage-tracing-like clone tables (``barcode``, ``clone_id``, ``confidence``) by sample.
    genotypes
        Per sample of the genotyped patients, variant reads as genotyping of transcripts gives
        them (``barcode``, ``variant``, ``alt_reads``, ``ref_reads``; see :func:`genotype_reads`).
    genes
        The gene table used (sorted by position).
    params
        Parameters of the simulation.
    """

    adatas: dict[str, ad.AnnData]
    samples: pd.DataFrame
    cells: pd.DataFrame
    clones: pd.DataFrame
    cnv_segments: pd.DataFrame
    de_genes: pd.DataFrame
    resistance_genes: pd.DataFrame
    programmes: pd.DataFrame
    given_clones: dict[str, pd.DataFrame]
    genes: pd.DataFrame
    params: dict = field(default_factory=dict)
    genotypes: dict[str, pd.DataFrame] = field(default_factory=dict)
    patients: pd.DataFrame = field(default_factory=pd.DataFrame)
    measurements: pd.DataFrame = field(default_factory=pd.DataFrame)
    lineage: dict[str, ad.AnnData] = field(default_factory=dict)


def _pick(rng, pool, n, exclude=()):
    pool = [g for g in pool if g not in set(exclude)]
    return list(rng.choice(pool, size=min(n, len(pool)), replace=False))


def _counts_from_shares(shares: np.ndarray, n: int) -> np.ndarray:
    """Largest-remainder rounding of ``shares * n`` to integers summing to ``n``."""
    raw = np.asarray(shares, float) / np.sum(shares) * n
    out = np.floor(raw).astype(int)
    out[np.argsort(raw - out)[::-1][: n - out.sum()]] += 1
    return out


def _enforce_minimum(counts: np.ndarray, minimum: int, mask: np.ndarray) -> np.ndarray:
    """Raise the entries selected by ``mask`` to ``minimum``, taking cells from the largest."""
    counts = counts.copy()
    raise_ = mask & (counts < minimum)
    if raise_.sum() * minimum > counts.sum():
        raise InputError(
            f"{counts.sum()} cells cannot give {minimum} cells to each of {raise_.sum()} groups; "
            "raise n_cells_per_sample or lower the minimum"
        )
    for i in np.flatnonzero(raise_):
        while counts[i] < minimum:
            donors = np.where(raise_ | (np.arange(len(counts)) == i), -1, counts)
            counts[np.argmax(donors)] -= 1
            counts[i] += 1
    return counts


def _segment_text(seg: dict) -> str:
    return f"{seg['chromosome']}:{seg['start']}-{seg['end']}:{seg['type']}"


def simulate_cohort(
    *,
    genes: pd.DataFrame,
    seed: int = 0,
    n_cells_per_sample: int = 550,
    patients: tuple[str, ...] = ("P1", "P2", "P3"),
    n_clones: tuple[int, ...] = (3, 2, 3),
    median_library_size: float = 2000.0,
    batch_sd: float = 0.3,
    low_quality_fraction: float = 0.05,
    doublet_fraction: float = 0.05,
    n_resistance_genes: int = 10,
    resistance_fold_change: float = 3.0,
    n_de_up: int = 20,
    n_de_down: int = 10,
    de_fold_change: float = 3.0,
    cnv_min_genes: int = 60,
    cnv_max_genes: int = 100,
    min_cells_per_clone: int = 15,
    min_mono_cells: int = 45,
    given_clones_patients: tuple[str, ...] = ("P2", "P3"),
    given_clones_coverage: float = 0.9,
    genotyped_patients: tuple[str, ...] = ("P1",),
    genotype_depth: float = 1.0,
    responses: dict[str, str] | None = None,
    timepoints: dict[str, str] | None = None,
    markers: dict[str, list[str]] | None = None,
) -> SimulatedCohort:
    """Simulate longitudinal AML marrow scRNA-seq counts with planted truth.

    Parameters
    ----------
    genes
        Gene table (``symbol, chromosome, start, end``), e.g. from :func:`select_genes`; the
        programme genes absent from it are skipped.
    seed
        Random seed: the same seed and arguments give identical counts.
    n_cells_per_sample
        Good singlet cells per sample; low-quality cells and doublets come on top.
    patients, n_clones
        Patient ids and the number of malignant clones of each (2 or 3: contracting, expanding and,
        with 3, stable).
    median_library_size
        Median UMIs per good cell (log-normal, sd 0.4 on the log scale).
    batch_sd
        Sd of the gene-wise log-normal batch factor drawn per sample.
    low_quality_fraction, doublet_fraction
        Extra cells per sample, relative to ``n_cells_per_sample``.
    n_resistance_genes, resistance_fold_change
        Genes up in the expanding (resistant) clone of every patient (BCL2L1, MCL1, CD36 + random).
    n_de_up, n_de_down, de_fold_change
        Genes up (IFIT1, IFIT3, ISG15, MX1 + random) or down in Mono at ``on_treatment`` vs
        ``diagnosis`` in every patient.
    cnv_min_genes, cnv_max_genes
        Length range (consecutive genes in position order) of copy-number segments.
    min_cells_per_clone
        Every clone present at a timepoint gets at least this many cells there.
    min_mono_cells
        Normal Mono cells per sample (at least), so that pseudobulk DE has power.
    given_clones_patients, given_clones_coverage
        Patients for which a lineage-tracing clone table is produced and the share of their
        malignant cells it covers.
    responses
        Per patient, a key of :data:`RESPONSE_PLANS` (malignant fractions, clone trajectories and
        malignant cell types by response); the cohort then also holds a patient table and a
        drug-sensitivity table (:data:`DST_VENETOCLAX`, :data:`DST_NOISE`). ``None``: the
        default plan for every patient (:data:`MALIGNANT_FRACTION`, contracting, expanding, stable).
    timepoints
        Timepoints to write, as {timepoint of :data:`TIMEPOINTS`: label in the sheet}; default all,
        under their own names.
    markers
        Marker genes per cell type of :data:`NORMAL_COMPOSITION`; default
        :data:`CELL_TYPE_MARKERS`.

    Returns
    -------
    The cohort; write it with :func:`write_cohort`.
    """
    if len(n_clones) != len(patients) or not all(k in (2, 3) for k in n_clones):
        raise InputError("n_clones needs one entry (2 or 3) per patient")
    genes = _sort_genes(genes[["symbol", "chromosome", "start", "end"]].drop_duplicates("symbol"))
    symbols = genes["symbol"].astype(str).to_numpy()
    n_genes = len(symbols)
    gidx = {g: i for i, g in enumerate(symbols)}
    markers = markers or CELL_TYPE_MARKERS
    present = [g for g in _required_genes(markers) if g in gidx]
    if len(present) < len(_required_genes(markers)) // 2:
        raise InputError(
            "gene table holds too few of the simulator's marker genes; build it with select_genes "
            "from a human gene-position file"
        )
    rng = np.random.default_rng([seed, 1])
    types = list(NORMAL_COMPOSITION)

    # Gene-level parameters: base abundance, dispersion.
    is_mt = np.char.startswith(symbols.astype(str), "MT-")
    is_ribo = pd.Series(symbols).str.match(RIBO_PATTERN).to_numpy()
    is_hb = np.isin(symbols, HB_GENES)
    sex_all = [g for v in SEX_GENES.values() for g in v]
    log_base = rng.normal(0.0, BASE_LOG_SD, n_genes)
    log_base[is_ribo] = rng.normal(4.0, 0.5, is_ribo.sum())
    log_base[is_hb] = -3.0  # haemoglobin only in erythroid cells, via their programme
    log_base[np.isin(symbols, sex_all)] = 0.5
    base = np.exp(log_base)
    mt_profile = np.where(is_mt, rng.lognormal(0, 0.5, n_genes), 0.0)
    dispersion = rng.lognormal(np.log(DISPERSION_MEDIAN), 0.4, n_genes)

    special = set(_required_genes(markers)) | set(symbols[is_ribo]) | set(symbols[is_mt])
    special |= set(symbols[pd.Series(symbols).str.match(OXPHOS_PATTERN).to_numpy()])
    # Random programme and planted genes come from moderately expressed background genes, so
    # planted effects are measurable.
    background = [g for g in symbols if g not in special and base[gidx[g]] > np.exp(-0.5)]
    # Planted DE and resistance genes come from the well-expressed quarter of the background, as
    # genes a pseudobulk test can see: DE planted in barely detected genes has no power.
    expressed_cut = np.quantile([base[gidx[g]] for g in background], 0.75)
    expressed = [g for g in background if base[gidx[g]] >= expressed_cut]

    programme_rows = []
    prog = {t: np.ones(n_genes) for t in types}
    for lineage, members in LINEAGES.items():
        lin_genes = _pick(rng, background, 20)
        fc = np.exp(rng.uniform(np.log(2), np.log(4), len(lin_genes)))
        for t in members:
            for g, f in zip(lin_genes, fc, strict=True):
                prog[t][gidx[g]] *= f
                programme_rows.append((t, g, f, f"lineage:{lineage}"))
    for t in types:
        planted = [g for g in markers[t] if g in gidx]
        fc = np.exp(rng.uniform(np.log(4), np.log(20), len(planted)))
        own = _pick(rng, background, 30)
        fc_own = np.exp(rng.uniform(np.log(2), np.log(8), len(own)))
        for g, f in zip(planted, fc, strict=True):
            prog[t][gidx[g]] *= f
            programme_rows.append((t, g, f, "marker"))
        for g, f in zip(own, fc_own, strict=True):
            prog[t][gidx[g]] *= f
            programme_rows.append((t, g, f, "random"))
    prog_mat = np.vstack([prog[t] for t in types])

    # Copy-number segments: consecutive genes on one autosome, clear of the malignant and
    # resistance programmes so that a segment's shift is its only difference between a clone and
    # normal cells of the same type (random programme genes are drawn outside segments below).
    forbidden = np.isin(symbols, LSC17 + ["BCL2"] + RESISTANCE_FIXED)
    chrom = genes["chromosome"].to_numpy()

    def draw_segment(taken: np.ndarray) -> tuple[int, int]:
        for _ in range(1000):
            c = rng.choice(_AUTOSOMES)
            idx = np.flatnonzero(chrom == c)
            if len(idx) < 60:
                continue
            length = int(min(rng.integers(cnv_min_genes, cnv_max_genes + 1), len(idx)))
            s = idx[0] + int(rng.integers(0, len(idx) - length + 1))
            if not (forbidden[s : s + length].any() or taken[s : s + length].any()):
                return s, s + length
        raise InputError("could not place copy-number segments; give more genes per chromosome")

    responses = responses or {}
    unknown = sorted(set(responses.values()) - set(RESPONSE_PLANS))
    if unknown:
        raise InputError(f"unknown response(s) {unknown}; use {sorted(RESPONSE_PLANS)}")
    timepoints = timepoints or {tp: tp for tp in TIMEPOINTS}
    # Cohort-only draws have their own generator: the default toy's counts do not change.
    crng = np.random.default_rng([seed, 12])
    patient_rows, seg_rows, clone_cnv, clone_meta = [], [], {}, {}
    sexes = {p: ("F", "M")[i % 2] for i, p in enumerate(patients)}
    for p, k in zip(patients, n_clones, strict=True):
        taken = np.zeros(n_genes, bool)
        trajectories = ["contracting", "expanding", "stable"][:k]
        plan = RESPONSE_PLANS.get(responses.get(p, ""))
        if plan:
            trajectories = list(plan["trajectories"] * 2)[:k]
        s0, e0 = draw_segment(taken)
        taken[s0:e0] = True
        truncal = {
            "start_i": s0,
            "end_i": e0,
            "type": rng.choice(["gain", "loss"]),
            "truncal": True,
        }
        clone_names = [f"{p}_C{j + 1}" for j in range(k)]
        for name, traj in zip(clone_names, trajectories, strict=True):
            s, e = draw_segment(taken)
            taken[s:e] = True
            private = {
                "start_i": s,
                "end_i": e,
                "type": rng.choice(["gain", "loss"]),
                "truncal": False,
            }
            cnv = np.ones(n_genes)
            texts = []
            for seg in (truncal, private):
                mult = 1.5 if seg["type"] == "gain" else 0.5
                a, b = seg["start_i"], seg["end_i"]
                cnv[a:b] *= mult
                row = {
                    "patient_id": p,
                    "clone": name,
                    "chromosome": chrom[a],
                    "start": int(genes["start"].iloc[a]),
                    "end": int(genes["end"].iloc[b - 1]),
                    "first_gene": symbols[a],
                    "last_gene": symbols[b - 1],
                    "n_genes": b - a,
                    "type": str(seg["type"]),
                    "multiplier": mult,
                    "truncal": seg["truncal"],
                    "start_i": a,
                    "end_i": b,
                }
                seg_rows.append(row)
                texts.append(_segment_text(row))
            clone_cnv[name] = cnv
            # Each clone resembles a mix of HSC, Prog and GMP (the first types), or of GMP,
            # ProMono and Mono in a monocytic leukaemia.
            like = rng.dirichlet([2.0, 3.0, 2.0])
            if plan:  # responders keep a minor, patient-specific monocytic share
                weights = (
                    [0.5, 0.5, 2.0, 5.0, 6.0] if plan["monocytic"] else [2.0, 3.0, 2.0, 0.4, 0.4]
                )
                like = crng.dirichlet(weights)
            clone_meta[name] = {
                "patient_id": p,
                "trajectory": traj,
                "resistant": traj == "expanding",
                "cnv_segments": ";".join(texts),
                "like": like,
            }
        patient_rows.append((p, clone_names, trajectories))

    # Leukaemic programme shared by malignant cells: LSC17 and BCL2 up, plus random aberrant genes.
    leuk = np.ones(n_genes)
    leuk_genes = [g for g in LSC17 + ["BCL2"] if g in gidx]
    in_segment = set(symbols[[i for r in seg_rows for i in range(r["start_i"], r["end_i"])]])
    leuk_random = _pick(rng, background, 20, exclude=in_segment)
    for g in leuk_genes + leuk_random:
        f = float(np.exp(rng.uniform(np.log(2), np.log(4))))
        leuk[gidx[g]] *= f
        programme_rows.append(("malignant", g, f, "lsc17" if g in LSC17 else "random"))

    # Planted resistance genes (expanding clone vs other clones).
    res_genes = [g for g in RESISTANCE_FIXED if g in gidx]
    res_genes += _pick(
        rng, expressed, n_resistance_genes - len(res_genes), exclude=set(leuk_random) | in_segment
    )
    resistance = pd.DataFrame({"gene": res_genes, "log2fc": np.log2(resistance_fold_change)})

    # Planted timepoint DE in Mono (on_treatment vs diagnosis).
    used = set(res_genes) | set(leuk_random)
    de_up = [g for g in INTERFERON if g in gidx]
    de_up += _pick(rng, expressed, n_de_up - len(de_up), exclude=used)
    de_down = _pick(rng, expressed, n_de_down, exclude=used | set(de_up))
    de_factor = np.ones(n_genes)
    de_factor[[gidx[g] for g in de_up]] = de_fold_change
    de_factor[[gidx[g] for g in de_down]] = 1.0 / de_fold_change
    de_genes = pd.DataFrame(
        {
            "gene": de_up + de_down,
            "cell_type": "Mono",
            "contrast": "on_treatment_vs_diagnosis",
            "log2fc": [np.log2(de_fold_change)] * len(de_up)
            + [-np.log2(de_fold_change)] * len(de_down),
        }
    )
    for _, r in de_genes.iterrows():
        programme_rows.append(("de:Mono:on_treatment", r.gene, 2.0**r.log2fc, "planted"))
    for g in res_genes:
        programme_rows.append(("resistance", g, resistance_fold_change, "planted"))

    res_factor = np.ones(n_genes)
    res_factor[[gidx[g] for g in res_genes]] = resistance_fold_change
    sex_idx = {s: np.isin(symbols, v) for s, v in SEX_GENES.items()}

    adatas, cell_tables, sample_rows, given = {}, [], [], {}
    freq_rows = {name: {} for name in clone_meta}
    for pi, (p, clone_names, trajectories) in enumerate(patient_rows):
        fractions = RESPONSE_PLANS.get(responses.get(p, ""), {}).get("fraction")
        for ti, tp in enumerate(TIMEPOINTS):
            if tp not in timepoints:
                continue
            label = timepoints[tp]
            sid = f"{p}_{label}"
            srng = np.random.default_rng([seed, 2, pi, ti])
            batch = srng.lognormal(0.0, batch_sd, n_genes)
            sex_factor = np.ones(n_genes)
            for s, mask in sex_idx.items():
                sex_factor[mask] = 1.0 if s == sexes[p] else 0.0

            # Singlet composition: malignant clones, then normal types.
            fraction = fractions[ti] if fractions else MALIGNANT_FRACTION[tp]
            n_mal = int(round(n_cells_per_sample * fraction * srng.uniform(0.9, 1.1)))
            shares = np.array([TRAJECTORY_FREQUENCY[t][ti] for t in trajectories])
            # Small cohorts keep every present clone measurable at the cost of the malignant share.
            n_mal = max(n_mal, min_cells_per_clone * int((shares > 0).sum()))
            n_clone = _enforce_minimum(
                _counts_from_shares(shares, n_mal), min_cells_per_clone, shares > 0
            )
            n_norm = n_cells_per_sample - n_mal
            comp = srng.dirichlet(np.array(list(NORMAL_COMPOSITION.values())) * 300)
            n_type = _counts_from_shares(comp, n_norm)
            n_type = _enforce_minimum(n_type, min_mono_cells, np.array(types) == "Mono")
            for name, n in zip(clone_names, n_clone, strict=True):
                freq_rows[name][tp] = n / n_mal

            def draw_cells(
                n_total: int, n_type=n_type, n_norm=n_norm, n_clone=n_clone,
                clone_names=clone_names, srng=srng,
            ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
                """Cell types (index) and clone names ('' for normal) of n_total cells (this
                sample's compositions, bound here rather than read from the loop)."""
                pool_t = np.concatenate(
                    [np.repeat(np.arange(len(types)), n_type)]
                    + [
                        srng.choice(len(clone_meta[c]["like"]), size=n, p=clone_meta[c]["like"])
                        for c, n in zip(clone_names, n_clone, strict=True)
                    ]
                )
                pool_c = np.concatenate(
                    [np.repeat("", n_norm)]
                    + [np.repeat(c, n) for c, n in zip(clone_names, n_clone, strict=True)]
                )
                if n_total == n_cells_per_sample:
                    return pool_t, pool_c.astype(object)
                pick = srng.choice(len(pool_t), size=n_total, replace=True)
                return pool_t[pick], pool_c[pick].astype(object)

            t_single, c_single = draw_cells(n_cells_per_sample)
            n_lq = int(round(low_quality_fraction * n_cells_per_sample))
            n_db = int(round(doublet_fraction * n_cells_per_sample))
            t_lq, c_lq = draw_cells(n_lq)
            t_db, c_db = draw_cells(2 * n_db)
            t_all = np.concatenate([t_single, t_lq, t_db])
            c_all = np.concatenate([c_single, c_lq, c_db])
            n_all = len(t_all)

            # Relative expression per cell (nuclear part), vectorised over cells.
            rel = base * batch * sex_factor * prog_mat[t_all]
            mal = c_all != ""
            if mal.any():
                cnv = np.vstack([clone_cnv[c] for c in c_all[mal]])
                resist = np.array([clone_meta[c]["resistant"] for c in c_all[mal]])
                rel[mal] *= leuk * cnv
                rel[np.flatnonzero(mal)[resist]] *= res_factor
            if tp == "on_treatment":
                mono = (~mal) & (t_all == types.index("Mono"))
                rel[mono] *= de_factor
            rel[:, is_mt] = 0.0
            rel /= rel.sum(axis=1, keepdims=True)

            # Library sizes and mitochondrial shares; low-quality cells: few UMIs and/or 30-70% MT.
            lib_scale = np.array([LIBRARY_SCALE[types[t]] for t in t_all])
            lib = median_library_size * lib_scale * srng.lognormal(0.0, 0.4, n_all)
            mt_frac = np.clip(srng.lognormal(np.log(0.04), 0.35, n_all), 0.005, 0.15)
            lq = np.zeros(n_all, bool)
            lq[n_cells_per_sample : n_cells_per_sample + n_lq] = True
            mode = srng.integers(0, 3, n_all)  # 0 low counts, 1 high MT, 2 both
            low_lib = lq & (mode != 1)
            high_mt = lq & (mode != 0)
            lib[low_lib] = median_library_size * srng.uniform(0.04, 0.12, low_lib.sum())
            mt_frac[high_mt] = srng.uniform(0.3, 0.7, high_mt.sum())
            mt_rel = mt_profile[is_mt] / mt_profile[is_mt].sum()
            mu = rel * (lib * (1.0 - mt_frac))[:, None]
            mu[:, is_mt] = (lib * mt_frac)[:, None] * mt_rel[None, :]
            shape = 1.0 / dispersion
            lam = mu * srng.gamma(shape, 1.0 / shape, size=mu.shape)
            counts = srng.poisson(lam).astype(np.int32)

            # Doublets: sums of consecutive pairs of the extra cells; they take the first's labels.
            first = n_cells_per_sample + n_lq
            pair_a = np.arange(first, n_all, 2)
            db_counts = counts[pair_a] + counts[pair_a + 1]
            mal_db = mal[pair_a] | mal[pair_a + 1]
            keep = np.arange(first)
            X = np.vstack([counts[keep], db_counts])
            cell_type = np.array(types)[np.concatenate([t_all[keep], t_all[pair_a]])]
            clone = np.concatenate(
                [c_all[keep], np.where(c_all[pair_a] != "", c_all[pair_a], c_all[pair_a + 1])]
            )
            malignant = np.concatenate([mal[keep], mal_db])
            low_quality = np.concatenate([lq[keep], np.zeros(len(pair_a), bool)])
            doublet = np.concatenate([np.zeros(first, bool), np.ones(len(pair_a), bool)])
            # The second parent's type: a doublet is heterotypic when it differs from cell_type.
            partner = np.concatenate(
                [np.repeat("", first), np.array(types)[t_all[pair_a + 1]]]
            ).astype(object)

            # Shuffle cell order and assign unique 16-mer barcodes.
            order = srng.permutation(len(X))
            codes = srng.choice(4**16, size=len(X), replace=False)
            barcodes = np.array([_barcode(int(c)) for c in codes], dtype=object)
            obs = pd.DataFrame(
                {
                    "barcode": barcodes,
                    "sample_id": sid,
                    "patient_id": p,
                    "timepoint": label,
                    "cell_type": cell_type[order],
                    "malignant": malignant[order],
                    "clone": clone[order].astype(str),
                    "low_quality": low_quality[order],
                    "doublet": doublet[order],
                    "doublet_partner": partner[order],
                }
            )
            obs.index = sid + "_" + obs["barcode"]
            adata = ad.AnnData(
                X=sparse.csr_matrix(X[order]),
                obs=obs,
                var=genes.set_index("symbol", drop=False).rename_axis(None),
            )
            adata.uns["clonetrack"] = {
                "simulate": {
                    "seed": seed,
                    "sample_id": sid,
                    "n_cells_per_sample": n_cells_per_sample,
                }
            }
            adatas[sid] = adata
            cell_tables.append(obs.reset_index(drop=True))
            sample_rows.append(
                {
                    "sample_id": sid,
                    "patient_id": p,
                    "timepoint": label,
                    "timepoint_order": ti + 1,
                    "batch": f"run{ti + 1}",
                    "sex": sexes[p],
                }
            )
            if p in given_clones_patients:
                given[sid] = _given_clone_table(
                    obs, clone_names, given_clones_coverage, srng, p, seed
                )

    clones = pd.DataFrame(
        [
            {
                "patient_id": m["patient_id"],
                "clone": name,
                "trajectory": m["trajectory"],
                "resistant": m["resistant"],
                "cnv_segments": m["cnv_segments"],
                "lineage_clone_id": (
                    _lineage_ids(clone_meta, seed).get(name, "")
                    if m["patient_id"] in given_clones_patients
                    else ""
                ),
                **{
                    f"freq_{label}": round(freq_rows[name][tp], 4)
                    for tp, label in timepoints.items()
                },
            }
            for name, m in clone_meta.items()
        ]
    )
    programmes = pd.DataFrame(programme_rows, columns=["programme", "gene", "fold_change", "kind"])
    # Its own generator: the counts above are the same with or without genotypes.
    grng = np.random.default_rng([seed, 11])
    genotypes = {
        sid: genotype_reads(adata.obs, rng=grng, depth=genotype_depth)
        for sid, adata in adatas.items()
        if adata.obs["patient_id"].iloc[0] in genotyped_patients
    }
    cells = pd.concat(cell_tables, ignore_index=True)
    patient_table, measurements = _response_tables(cells, responses, sexes, crng)
    return SimulatedCohort(
        patients=patient_table,
        measurements=measurements,
        genotypes=genotypes,
        adatas=adatas,
        samples=pd.DataFrame(sample_rows),
        cells=cells,
        clones=clones,
        cnv_segments=pd.DataFrame(seg_rows).drop(columns=["start_i", "end_i"]),
        de_genes=de_genes,
        resistance_genes=resistance,
        programmes=programmes,
        given_clones=given,
        genes=genes,
        params={
            "seed": seed,
            "n_cells_per_sample": n_cells_per_sample,
            "median_library_size": median_library_size,
            "batch_sd": batch_sd,
            "low_quality_fraction": low_quality_fraction,
            "doublet_fraction": doublet_fraction,
            "malignant_programme": leuk_genes + leuk_random,
        },
    )


MONOCYTIC_TYPES = ("ProMono", "Mono", "cDC")


def simulate_response_cohort(
    *, genes: pd.DataFrame, seed: int = 1, n_patients: int = 12, n_cells_per_sample: int = 80
) -> SimulatedCohort:
    """A small cohort with planted responses, for the cohort tests: patients R01, R02, ...
    cycle through primary_refractory, relapse and sustained_response (see
    :data:`RESPONSE_PLANS`), each sampled at diagnosis and at follow-up, with lineage-tracing
    clone tables for every patient."""
    patients = tuple(f"R{i + 1:02d}" for i in range(n_patients))
    plans = list(RESPONSE_PLANS)
    return simulate_cohort(
        genes=genes,
        seed=seed,
        n_cells_per_sample=n_cells_per_sample,
        patients=patients,
        n_clones=(2,) * n_patients,
        responses={p: plans[i % len(plans)] for i, p in enumerate(patients)},
        timepoints={"diagnosis": "diagnosis", "relapse": "follow_up"},
        min_cells_per_clone=3,
        min_mono_cells=10,
        given_clones_patients=patients,
        genotyped_patients=(),
    )


def _response_tables(cells, responses, sexes, rng) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The patient table (response, sex, age) and a drug-sensitivity table (AUC per patient)."""
    if not responses:
        return pd.DataFrame(), pd.DataFrame()
    first = cells[(cells["malignant"]) & ~cells["doublet"] & ~cells["low_quality"]]
    first = first[first["timepoint"] == cells["timepoint"].iloc[0]]
    mono = first.groupby("patient_id")["cell_type"].apply(lambda t: t.isin(MONOCYTIC_TYPES).mean())
    patients = pd.DataFrame(
        {
            "patient_id": list(responses),
            "response": list(responses.values()),
            "sex": [sexes[p] for p in responses],
            "age": rng.integers(45, 85, len(responses)),
            "malignant_monocytic_fraction": [round(float(mono.get(p, 0.0)), 4) for p in responses],
        }
    )
    venetoclax = (
        DST_VENETOCLAX["intercept"]
        + DST_VENETOCLAX["slope"] * patients["malignant_monocytic_fraction"]
        + rng.normal(0, DST_VENETOCLAX["noise_sd"], len(patients))
    )
    noise = rng.normal(DST_NOISE["mean"], DST_NOISE["sd"], len(patients))
    measurements = pd.concat(
        [
            pd.DataFrame(
                {
                    "patient_id": patients["patient_id"],
                    "assay": "DST",
                    "feature": "venetoclax_AUC",
                    "value": venetoclax.round(4),
                }
            ),
            pd.DataFrame(
                {
                    "patient_id": patients["patient_id"],
                    "assay": "DST",
                    "feature": "cytarabine_AUC",
                    "value": noise.round(4),
                }
            ),
        ],
        ignore_index=True,
    )
    return patients, measurements


#: Variants of the simulated genotyping: one founder variant carried by every leukaemic cell, then
#: one per clone, in clone order.
GENOTYPE_FOUNDER = "NPM1.W288fs"
GENOTYPE_CLONE_VARIANTS = ("FLT3.ITD", "TP53.R248Q", "KRAS.G12D", "NRAS.Q61K")


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


def _barcode(code: int) -> str:
    return "".join("ACGT"[(code >> (2 * i)) & 3] for i in range(16)) + "-1"


def _lineage_ids(clone_meta: dict, seed: int) -> dict[str, str]:
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


def _given_clone_table(obs, clone_names, coverage, rng, patient, seed) -> pd.DataFrame:
    """Clone table as a lineage-tracing tool would give it: most malignant cells, some strays."""
    ids = _lineage_ids({c: {"patient_id": patient} for c in clone_names}, seed)
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
        b = _barcode(int(rng.integers(0, 4**16)))
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


#: Mouse (MGI) symbols of the simulator's human genes where the case rule of :func:`mouse_symbol`
#: does not give them.
MOUSE_SYMBOLS = {"HBA1": "Hba-a1", "HBA2": "Hba-a2", "HBB": "Hbb-bs", "MT-CYB": "mt-Cytb"}


def mouse_symbol(human: str, panel: dict[str, str] | None = None) -> str:
    """The mouse spelling of a human symbol: a panel gene as the panel writes it, then
    :data:`MOUSE_SYMBOLS`, mitochondrial genes as ``mt-Co1``, the rest in title case (``Cd34``)."""
    if panel and human in panel:
        return panel[human]
    if human in MOUSE_SYMBOLS:
        return MOUSE_SYMBOLS[human]
    if human.startswith("MT-"):
        return "mt-" + human[3:].capitalize()
    return human[:1] + human[1:].lower()


def simulate_mouse_cohort(
    *,
    positions: pd.DataFrame,
    panel: pd.DataFrame,
    seed: int = 2,
    n_mice: int = 2,
    n_cells_per_sample: int = 150,
    n_genes: int = 2000,
) -> SimulatedCohort:
    """Barcoded mouse leukaemia models: mice M1, M2, ... sampled at baseline and at relapse.

    The transplanted leukaemic cells carry lentiviral barcodes, one per clone (contracting,
    expanding, stable), read as a lineage-barcode matrix per sample
    (:func:`lineage_barcode_counts`); host (normal) cells carry none. Genes are named as in mouse
    (MGI symbols, ``mt-`` genes), and each cell type's planted markers are the genes of the mouse
    panel ``panel`` (columns ``cell_type``, ``gene``), so the workflow's mouse preset annotates
    them.

    ``positions`` is a human gene-position table (as for :func:`select_genes`): the mouse panel's
    genes are found there by their human (upper-case) symbol, then every gene is renamed.
    """
    upper = {g.upper(): g for g in panel["gene"].astype(str)}
    known = set(positions["symbol"].astype(str))
    # gene-position tables of nuclear genes lack the mitochondrial genes that QC needs
    mito = [g for g in MT_GENES if g not in known]
    positions = pd.concat(
        [
            positions[["symbol", "chromosome", "start", "end"]],
            pd.DataFrame({"symbol": mito, "chromosome": "chrM",
                          "start": np.arange(len(mito)) * 1000 + 1,
                          "end": np.arange(len(mito)) * 1000 + 900}),
        ],
        ignore_index=True,
    )  # fmt: skip
    markers = {
        t: [g.upper() for g in genes if g.upper() in known][:6]
        for t, genes in panel.groupby("cell_type", sort=False)["gene"]
        if t in NORMAL_COMPOSITION
    }
    # haemoglobins by their human names, renamed below (Hba-a1, Hba-a2, Hbb-bs)
    markers["lateEry"] = HB_GENES + [g for g in markers["lateEry"] if g not in HB_GENES][:4]
    genes = select_genes(positions, n_genes=n_genes, seed=seed, markers=markers)
    mice = tuple(f"M{i + 1}" for i in range(n_mice))
    cohort = simulate_cohort(
        genes=genes,
        seed=seed,
        n_cells_per_sample=n_cells_per_sample,
        patients=mice,
        n_clones=(3,) * n_mice,
        timepoints={"diagnosis": "baseline", "relapse": "relapse"},
        min_cells_per_clone=5,
        min_mono_cells=15,
        given_clones_patients=(),
        genotyped_patients=(),
        markers=markers,
    )
    rename = {g: mouse_symbol(g, upper) for g in cohort.genes["symbol"].astype(str)}
    if len(set(rename.values())) < len(rename):
        raise InputError("two simulated genes share a mouse symbol; choose another seed")
    for adata in cohort.adatas.values():
        adata.var_names = adata.var_names.map(rename)
        adata.var["symbol"] = adata.var_names.to_numpy()
    cohort.genes = cohort.genes.assign(symbol=cohort.genes["symbol"].map(rename))
    cohort.programmes["gene"] = cohort.programmes["gene"].map(rename)
    cohort.de_genes["gene"] = cohort.de_genes["gene"].map(rename)
    cohort.resistance_genes["gene"] = cohort.resistance_genes["gene"].map(rename)
    lrng = np.random.default_rng([seed, 13])
    clone_barcode = _lentiviral_barcodes(cohort.clones["clone"], lrng)
    cohort.clones["lineage_barcode"] = cohort.clones["clone"].map(clone_barcode)
    cohort.lineage = {
        sid: lineage_barcode_counts(adata.obs, clone_barcode, rng=lrng)
        for sid, adata in cohort.adatas.items()
    }
    return cohort


def _lentiviral_barcodes(clones: pd.Series, rng: np.random.Generator) -> dict[str, str]:
    codes = rng.choice(4**20, size=len(clones), replace=False)
    return {
        c: "".join("ACGT"[(int(code) >> (2 * i)) & 3] for i in range(20))
        for c, code in zip(clones, codes, strict=True)
    }


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


#: Input format per patient in the written bundle (cycled for further patients).
_FORMATS = ("10x_mtx", "h5ad", "dense_txt")


def write_cohort(
    cohort: SimulatedCohort, outdir: str | Path, *, formats: dict[str, str] | None = None
) -> pd.DataFrame:
    """Write the cohort as a toy dataset: counts, sample sheet, clone tables and truth.

    Parameters
    ----------
    cohort
        From :func:`simulate_cohort`.
    outdir
        Target folder (created); ``samples.tsv`` paths are relative to it. A cohort simulated
        with responses also gets ``patients.tsv``, ``measurements/dst.tsv`` and
        ``truth/patients.tsv`` (the planted monocytic share behind the drug sensitivity).
    formats
        Count format per patient (``10x_mtx``, ``h5ad``, ``dense_txt``); default: the first patient
        10x, the second h5ad, the third dense text. The ``format`` column is left empty for every
        patient's ``on_treatment`` sample to exercise auto-detection.

    Returns
    -------
    The sample sheet as written.
    """
    out = Path(outdir)
    for sub in ("counts", "truth", "clones", "genotypes"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    patients = list(dict.fromkeys(cohort.samples["patient_id"]))
    formats = formats or {p: _FORMATS[i % len(_FORMATS)] for i, p in enumerate(patients)}
    rows = []
    for _, s in cohort.samples.iterrows():
        sid, fmt = s["sample_id"], formats[s["patient_id"]]
        adata = cohort.adatas[sid]
        if fmt == "10x_mtx":
            rel = f"counts/{sid}"
            _write_10x(adata, out / rel)
        elif fmt == "h5ad":
            rel = f"counts/{sid}.h5ad"
            bare = ad.AnnData(
                X=adata.X.copy(),
                obs=pd.DataFrame(index=adata.obs["barcode"].to_numpy()),
                var=pd.DataFrame(index=adata.var_names.to_numpy()),
            )
            bare.write_h5ad(out / rel, compression="gzip")
        elif fmt == "dense_txt":
            rel = f"counts/{sid}.txt.gz"
            _write_dense(adata, out / rel)
        else:
            raise InputError(
                f"unknown format {fmt!r} for patient {s['patient_id']}; use {_FORMATS}"
            )
        clones = ""
        if sid in cohort.given_clones:
            clones = f"clones/{sid}.tsv"
            cohort.given_clones[sid].to_csv(out / clones, sep="\t", index=False)
        lineage = ""
        if sid in cohort.lineage:
            lineage = f"lineage/{sid}"
            _write_10x(cohort.lineage[sid], out / lineage, barcodes=cohort.lineage[sid].obs_names)
        genotypes = ""
        if sid in cohort.genotypes:
            genotypes = f"genotypes/{sid}.tsv"
            cohort.genotypes[sid].to_csv(out / genotypes, sep="\t", index=False)
        rows.append(
            {
                **s.to_dict(),
                "path": rel,
                "format": "" if s["timepoint"] == "on_treatment" else fmt,
                "clones": clones,
                "genotypes": genotypes,
                "lineage_barcodes": lineage,
            }
        )
    cols = ["sample_id", "patient_id", "timepoint", "timepoint_order", "path", "format", "clones",
            "genotypes", "batch", "sex"]  # fmt: skip
    if cohort.lineage:
        cols.insert(7, "lineage_barcodes")
    sheet = pd.DataFrame(rows)[cols]
    sheet.to_csv(out / "samples.tsv", sep="\t", index=False)
    cohort.genes.to_csv(out / "genes.tsv", sep="\t", index=False)
    if len(cohort.patients):
        truth = ["malignant_monocytic_fraction"]
        cohort.patients.drop(columns=truth).to_csv(out / "patients.tsv", sep="\t", index=False)
        cohort.patients[["patient_id", *truth]].to_csv(
            out / "truth/patients.tsv", sep="\t", index=False
        )
        (out / "measurements").mkdir(exist_ok=True)
        cohort.measurements.to_csv(out / "measurements/dst.tsv", sep="\t", index=False)
    cells = cohort.cells[
        [
            "sample_id",
            "barcode",
            "cell_type",
            "malignant",
            "clone",
            "low_quality",
            "doublet",
            "doublet_partner",
        ]
    ]
    cells.to_csv(out / "truth/cells.tsv", sep="\t", index=False)
    cohort.clones.to_csv(out / "truth/clones.tsv", sep="\t", index=False)
    cohort.cnv_segments.to_csv(out / "truth/cnv_segments.tsv", sep="\t", index=False)
    cohort.de_genes.to_csv(out / "truth/de_genes.tsv", sep="\t", index=False, float_format="%.4f")
    cohort.resistance_genes.to_csv(
        out / "truth/resistance_genes.tsv", sep="\t", index=False, float_format="%.4f"
    )
    cohort.programmes.to_csv(
        out / "truth/programmes.tsv", sep="\t", index=False, float_format="%.3f"
    )
    return sheet


def _write_10x(adata: ad.AnnData, folder: Path, *, barcodes=None) -> None:
    """Cell Ranger v3 layout; gene ids are the symbols (the position table has no Ensembl ids)."""
    barcodes = adata.obs["barcode"] if barcodes is None else pd.Series(barcodes)
    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(folder / "matrix.mtx.gz", "wb", compresslevel=9) as fh:
        spio.mmwrite(fh, sparse.csr_matrix(adata.X).T.tocoo(), field="integer")
    features = pd.DataFrame(
        {"id": adata.var_names, "name": adata.var_names, "type": "Gene Expression"}
    )
    features.to_csv(folder / "features.tsv.gz", sep="\t", header=False, index=False)
    barcodes.to_csv(folder / "barcodes.tsv.gz", sep="\t", header=False, index=False)


def _write_dense(adata: ad.AnnData, path: Path) -> None:
    """GEO-style genes x cells text: header ``Gene`` then barcodes, first column the symbol."""
    dense = np.asarray(sparse.csr_matrix(adata.X).T.todense())
    lines = ["\t".join(["Gene", *adata.obs["barcode"]])]
    lines += [
        g + "\t" + "\t".join(map(str, row)) for g, row in zip(adata.var_names, dense, strict=True)
    ]
    with gzip.open(path, "wt", compresslevel=9) as fh:
        fh.write("\n".join(lines) + "\n")


def simulate_raw_droplets(
    cells: ad.AnnData,
    *,
    n_empty: int = 20_000,
    contamination: float = 0.1,
    lysed: dict[str, float] | None = None,
    empty_median_umis: float = 8.0,
    seed: int = 0,
) -> tuple[ad.AnnData, pd.Series]:
    """An unfiltered droplet matrix around a sample's cells, with planted ambient RNA.

    The soup is the mean profile of the cells plus the transcripts of lysed cells (``lysed``:
    gene -> share of the soup, e.g. haemoglobins and platelet genes); each cell receives
    ``contamination`` x its UMIs of soup on top of its own counts; ``n_empty`` empty droplets hold
    soup only (log-normal UMIs around ``empty_median_umis``).

    Returns the raw matrix (cells first, then empties, barcodes in ``obs["barcode"]``) and the soup
    profile.
    """
    rng = np.random.default_rng([seed, 17])
    own = sparse.csr_matrix(cells.X)
    profile = np.asarray(own.sum(axis=0)).ravel().astype(float)
    profile /= profile.sum()
    lysed = lysed or {}
    extra = np.zeros_like(profile)
    for gene, share in lysed.items():
        extra[cells.var_names.get_loc(gene)] = share
    soup = (1 - extra.sum()) * profile + extra
    n_umis = np.asarray(own.sum(axis=1)).ravel()
    added = np.vstack([rng.multinomial(int(round(contamination * n)), soup) for n in n_umis])
    empty_umis = np.maximum(
        1, rng.lognormal(np.log(empty_median_umis), 0.8, n_empty).round()
    ).astype(int)
    empties = np.vstack([rng.multinomial(n, soup) for n in empty_umis])
    matrix = sparse.vstack([own + sparse.csr_matrix(added), sparse.csr_matrix(empties)]).tocsr()
    codes = rng.choice(4**16, size=n_empty, replace=False)
    barcodes = np.concatenate(
        [cells.obs["barcode"].astype(str).to_numpy(), [_barcode(int(c)) for c in codes]]
    )
    raw = ad.AnnData(
        X=matrix.astype(np.float32),
        obs=pd.DataFrame({"barcode": barcodes, "is_cell": np.arange(len(barcodes)) < cells.n_obs},
                         index=barcodes),
        var=pd.DataFrame(index=cells.var_names.copy()),
    )  # fmt: skip
    return raw, pd.Series(soup, index=cells.var_names.copy(), name="soup")
