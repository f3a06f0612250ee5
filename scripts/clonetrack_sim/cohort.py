"""Simulated longitudinal AML cohorts: the toy dataset, the toy cohort by response and the
benchmark's large cohorts, all from one cell model (:mod:`clonetrack_sim.cells`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

import anndata as ad
import numpy as np
import pandas as pd
from clonetrack.errors import InputError

from clonetrack_sim.cells import COUNT_MODELS, SampleModel, simulate_sample
from clonetrack_sim.clones import plan_clones
from clonetrack_sim.design import (
    CELL_TYPE_MARKERS,
    DST_NOISE,
    DST_VENETOCLAX,
    MONOCYTIC_TYPES,
    NORMAL_COMPOSITION,
    RESPONSE_PLANS,
    TIMEPOINTS,
    CohortDesign,
)
from clonetrack_sim.lineage import genotype_reads, given_clone_table, lineage_ids
from clonetrack_sim.programmes import (
    PROGRAMME_COLUMNS,
    gene_factor,
    gene_model,
    leukaemic_programme,
    mono_de,
    resistance_genes,
    sorted_gene_table,
    type_programmes,
)


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


def simulate_cohort(
    *,
    genes: pd.DataFrame,
    seed: int = 0,
    counts: str = "gamma_poisson",
    on_sample: Callable[[str, ad.AnnData], None] | None = None,
    **design,
) -> SimulatedCohort:
    """Simulate longitudinal AML marrow scRNA-seq counts with planted truth.

    Parameters
    ----------
    genes
        Gene table (``symbol, chromosome, start, end``), e.g. from :func:`select_genes`; the
        programme genes absent from it are skipped.
    seed
        Random seed: the same seed and arguments give identical counts.
    counts
        How counts are drawn: ``gamma_poisson`` (the toy data's model) or ``multinomial`` (each
        cell's UMIs drawn from its profile into a sparse matrix, for cohorts of 100,000 cells and
        more; see :mod:`clonetrack_sim.cells`).
    on_sample
        Called with each sample's id and counts as soon as they are made; the cohort then holds
        no counts (``adatas`` is empty), so a cohort larger than memory is written sample by
        sample.
    **design
        The fields of :class:`CohortDesign` (cells per sample, patients and their clones, planted
        effects, responses, timepoints, markers), each with its default.

    Returns
    -------
    The cohort; write it with :func:`write_cohort`.
    """
    if counts not in COUNT_MODELS:
        raise InputError(f"unknown count model {counts!r}; use one of {COUNT_MODELS}")
    design = _checked(CohortDesign(**design))
    model, truth = _plan(genes, seed, design, counts)
    adatas, obs, rows, given, freq = {}, {}, [], {}, {name: {} for name in model.clones.meta}
    for pi, clones in enumerate(model.clones.patients):
        for ti, tp in enumerate(TIMEPOINTS):
            if tp not in design.timepoints:
                continue
            sample, srng = simulate_sample(model, pi, clones, ti, tp)
            sid, patient = sample.row["sample_id"], clones[0]
            for name, share in sample.clone_frequencies.items():
                freq[name][tp] = share
            if patient in design.given_clones_patients:
                given[sid] = given_clone_table(
                    sample.adata.obs, clones[1], design.given_clones_coverage, srng, patient, seed
                )
            obs[sid] = sample.adata.obs
            rows.append(sample.row)
            if on_sample is None:
                adatas[sid] = sample.adata
            else:
                on_sample(sid, sample.adata)
    return _assemble(model, truth, adatas, obs, rows, given, freq)


def _checked(design: CohortDesign) -> CohortDesign:
    """The design with its default timepoints filled in, or an error naming what is wrong."""
    if len(design.n_clones) != len(design.patients) or not all(
        k in (2, 3) for k in design.n_clones
    ):
        raise InputError("n_clones needs one entry (2 or 3) per patient")
    unknown = sorted(set((design.responses or {}).values()) - set(RESPONSE_PLANS))
    if unknown:
        raise InputError(f"unknown response(s) {unknown}; use {sorted(RESPONSE_PLANS)}")
    return dataclasses.replace(
        design, timepoints=design.timepoints or {tp: tp for tp in TIMEPOINTS}
    )


def _plan(genes: pd.DataFrame, seed: int, design: CohortDesign, counts: str):
    """Everything the samples share, drawn in a fixed order from one generator (cohort-only draws
    from their own, so the default toy's counts do not change with them). Returns the sample
    model and the truth tables known before any cell is drawn."""
    markers = design.markers or CELL_TYPE_MARKERS
    genes = sorted_gene_table(genes, markers)
    rng = np.random.default_rng([seed, 1])
    types = list(NORMAL_COMPOSITION)
    model = gene_model(genes, markers, rng)
    rows: list = []
    programmes = type_programmes(model, types, markers, rng, rows)
    crng = np.random.default_rng([seed, 12])
    clones = plan_clones(model, design, rng, crng)
    in_segment = clones.segment_genes(model.symbols)
    leuk, leuk_genes, leuk_random = leukaemic_programme(model, in_segment, rng, rows)
    res_genes = resistance_genes(model, design, set(leuk_random) | in_segment, rng)
    de_genes, de = mono_de(model, design, set(res_genes) | set(leuk_random), rng)
    for _, r in de_genes.iterrows():
        rows.append(("de:Mono:on_treatment", r.gene, 2.0**r.log2fc, "planted"))
    rows += [("resistance", g, design.resistance_fold_change, "planted") for g in res_genes]
    sample_model = SampleModel(
        genes=model,
        design=design,
        types=types,
        programmes=programmes,
        clones=clones,
        leukaemic=leuk,
        resistance=gene_factor(model, dict.fromkeys(res_genes, design.resistance_fold_change)),
        de=de,
        sexes={p: ("F", "M")[i % 2] for i, p in enumerate(design.patients)},
        seed=seed,
        counts=counts,
    )
    truth = {
        "de_genes": de_genes,
        "resistance_genes": pd.DataFrame(
            {"gene": res_genes, "log2fc": np.log2(design.resistance_fold_change)}
        ),
        "programmes": pd.DataFrame(rows, columns=PROGRAMME_COLUMNS),
        "malignant_programme": leuk_genes + leuk_random,
        "crng": crng,
    }
    return sample_model, truth


def _clone_table(model: SampleModel, freq: dict[str, dict[str, float]]) -> pd.DataFrame:
    """Truth per clone: trajectory, resistance, segments, lineage id and frequency per sample."""
    design, meta = model.design, model.clones.meta
    ids = lineage_ids(meta, model.seed)
    return pd.DataFrame(
        [
            {
                "patient_id": m["patient_id"],
                "clone": name,
                "trajectory": m["trajectory"],
                "resistant": m["resistant"],
                "cnv_segments": m["cnv_segments"],
                "lineage_clone_id": (
                    ids.get(name, "") if m["patient_id"] in design.given_clones_patients else ""
                ),
                **{
                    f"freq_{label}": round(freq[name][tp], 4)
                    for tp, label in design.timepoints.items()
                },
            }
            for name, m in meta.items()
        ]
    )


def _assemble(model: SampleModel, truth, adatas, obs, rows, given, freq) -> SimulatedCohort:
    """The cohort from its samples: cell, clone and segment truth, genotypes (their own
    generator: the counts are the same with or without them) and response tables."""
    design = model.design
    grng = np.random.default_rng([model.seed, 11])
    genotypes = {
        sid: genotype_reads(cells, rng=grng, depth=design.genotype_depth)
        for sid, cells in obs.items()
        if cells["patient_id"].iloc[0] in design.genotyped_patients
    }
    cells = pd.concat([o.reset_index(drop=True) for o in obs.values()], ignore_index=True)
    patients, measurements = _response_tables(
        cells, design.responses or {}, model.sexes, truth["crng"]
    )
    return SimulatedCohort(
        patients=patients,
        measurements=measurements,
        genotypes=genotypes,
        adatas=adatas,
        samples=pd.DataFrame(rows),
        cells=cells,
        clones=_clone_table(model, freq),
        cnv_segments=pd.DataFrame(model.clones.segments).drop(columns=["start_i", "end_i"]),
        de_genes=truth["de_genes"],
        resistance_genes=truth["resistance_genes"],
        programmes=truth["programmes"],
        given_clones=given,
        genes=model.genes.genes,
        params={
            "seed": model.seed,
            "n_cells_per_sample": design.n_cells_per_sample,
            "median_library_size": design.median_library_size,
            "batch_sd": design.batch_sd,
            "low_quality_fraction": design.low_quality_fraction,
            "doublet_fraction": design.doublet_fraction,
            "malignant_programme": truth["malignant_programme"],
        },
    )


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


def _dst_rows(patients: pd.Series, feature: str, values: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {"patient_id": patients, "assay": "DST", "feature": feature, "value": values.round(4)}
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
            _dst_rows(patients["patient_id"], "venetoclax_AUC", venetoclax),
            _dst_rows(patients["patient_id"], "cytarabine_AUC", noise),
        ],
        ignore_index=True,
    )
    return patients, measurements
