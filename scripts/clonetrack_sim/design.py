"""What a simulated cohort plants: cell types, gene sets, clone plans and the cohort's knobs."""

from __future__ import annotations

from dataclasses import dataclass

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
MONOCYTIC_TYPES = ("ProMono", "Mono", "cDC")
CHROMOSOMES = [f"chr{i}" for i in range(1, 23)] + ["chrX", "chrY", "chrM"]
AUTOSOMES = CHROMOSOMES[:22]


@dataclass(frozen=True)
class CohortDesign:
    """The design of a simulated cohort: every keyword of :func:`simulate_cohort` but the genes,
    the seed and how counts are drawn.

    Attributes
    ----------
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
    genotyped_patients, genotype_depth
        Patients whose cells get variant reads (:func:`genotype_reads`) and the mean reads per
        cell and variant.
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
    """

    n_cells_per_sample: int = 550
    patients: tuple[str, ...] = ("P1", "P2", "P3")
    n_clones: tuple[int, ...] = (3, 2, 3)
    median_library_size: float = 2000.0
    batch_sd: float = 0.3
    low_quality_fraction: float = 0.05
    doublet_fraction: float = 0.05
    n_resistance_genes: int = 10
    resistance_fold_change: float = 3.0
    n_de_up: int = 20
    n_de_down: int = 10
    de_fold_change: float = 3.0
    cnv_min_genes: int = 60
    cnv_max_genes: int = 100
    min_cells_per_clone: int = 15
    min_mono_cells: int = 45
    given_clones_patients: tuple[str, ...] = ("P2", "P3")
    given_clones_coverage: float = 0.9
    genotyped_patients: tuple[str, ...] = ("P1",)
    genotype_depth: float = 1.0
    responses: dict[str, str] | None = None
    timepoints: dict[str, str] | None = None
    markers: dict[str, list[str]] | None = None
