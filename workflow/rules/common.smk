import os
import sys

from snakemake.utils import validate

# The package lives beside the scripts; importing it here lets the sheet be validated before any job.
sys.path.insert(0, os.path.join(workflow.basedir, "workflow", "scripts"))

from clonetrack.io.tables import load_markers, read_measurements, read_patient_table  # noqa: E402
from clonetrack.errors import InputError  # noqa: E402
from clonetrack.organism import apply_preset, cnv_unavailable_reason  # noqa: E402
from clonetrack.io.preflight import check_sample_files  # noqa: E402
from clonetrack.io.sheet import healthy_samples, read_sample_sheet  # noqa: E402

validate(config, "../../config/schemas/config.schema.yaml")
# Settings left null take the organism's preset; rules below read the completed config.
_completed, ORGANISM_PRESET = apply_preset(config, basedir=workflow.basedir)
config.update(_completed)
CNV_OFF_REASON = cnv_unavailable_reason(config)

SAMPLES = read_sample_sheet(config["samples"])
PATIENTS = sorted(SAMPLES["patient_id"].unique())
HEALTHY = healthy_samples(SAMPLES)
METHOD = config["integration"]["method"]

# Settings that name samples or timepoints must match the sheet: caught here, before any job.
_unknown_overrides = sorted(set(config["qc"].get("overrides") or {}) - set(SAMPLES.index))
if _unknown_overrides:
    raise InputError(
        f"qc.overrides names sample(s) {_unknown_overrides} that are not in the sample sheet "
        f"{config['samples']}; its samples are {sorted(SAMPLES.index)}."
    )
_unknown_reference = sorted(set(config["clones"]["cnv"]["reference_samples"]) - set(SAMPLES.index))
if _unknown_reference:
    raise InputError(
        f"clones.cnv.reference_samples names sample(s) {_unknown_reference} that are not in the "
        f"sample sheet {config['samples']}; its samples are {sorted(SAMPLES.index)}."
    )
_panel = load_markers(config["annotation"]["markers"])
_panel_types = set(_panel["cell_type"])
for _setting, _types in (
    ("clones.resistance.stem_cell_types", config["clones"]["resistance"]["stem_cell_types"]),
    ("clones.cnv.reference_cell_types", config["clones"]["cnv"]["reference_cell_types"]),
):
    _unknown_types = sorted(set(_types) - _panel_types)
    if _unknown_types:
        raise InputError(
            f"{_setting} names cell type(s) {_unknown_types} that the marker panel "
            f"{config['annotation']['markers']} does not have; its types are {sorted(_panel_types)}."
        )
_batch_key = config["integration"]["batch_key"]
if _batch_key != "sample_id" and _batch_key not in SAMPLES.columns:
    raise InputError(
        f"integration.batch_key {_batch_key!r} is not a column of the sample sheet "
        f"{config['samples']}; use sample_id or one of {sorted(SAMPLES.columns)}."
    )
if _batch_key != "sample_id" and (SAMPLES[_batch_key] == "").any():
    raise InputError(
        f"integration.batch_key {_batch_key!r}: the sample sheet {config['samples']} leaves it "
        f"empty for sample(s) {sorted(SAMPLES.index[SAMPLES[_batch_key] == ''])}: give every "
        "sample its batch"
    )
if config["de"]["reference_timepoint"] not in set(SAMPLES["timepoint"]):
    raise InputError(
        f"de.reference_timepoint {config['de']['reference_timepoint']!r} is not a timepoint of "
        f"the sample sheet {config['samples']}; its timepoints are "
        f"{sorted(set(SAMPLES['timepoint']))}."
    )

# Cohort definitions against the panel and their own labels; the patient and measurement tables
# are read whole (they are small): their errors name row and column before any job.
_levels = config["cohort"]["response_levels"]
for _name, _contrast in config["cohort"]["contrasts"].items():
    _unknown_levels = sorted(set(_contrast["case"] + _contrast["control"]) - set(_levels))
    if _unknown_levels:
        raise InputError(
            f"cohort.contrasts.{_name} names response(s) {_unknown_levels} that are not in "
            f"cohort.response_levels {_levels}: fix the label or add it to the levels."
        )
for _group, _types in config["cohort"]["cell_type_groups"].items():
    if set(_types) - _panel_types:
        raise InputError(
            f"cohort.cell_type_groups.{_group} names cell type(s) {sorted(set(_types) - _panel_types)} "
            f"that the marker panel {config['annotation']['markers']} does not have; its types are "
            f"{sorted(_panel_types)}."
        )
PATIENT_NOTES = []
if config.get("patients"):
    _, PATIENT_NOTES = read_patient_table(
        config["patients"], levels=_levels, sheet_patients=PATIENTS
    )
_, MEASUREMENT_NOTES = read_measurements(
    config["measurements"], sheet_patients=PATIENTS, sheet_samples=SAMPLES
)

# The files the sheet names, read in part (barcodes, gene names, clone and genotype tables): once,
# in the main process, not again in every cluster job that re-reads this file.
if workflow.is_main_process:
    check_sample_files(
        SAMPLES,
        qc=config["qc"],
        panel_genes=_panel["gene"],
        panel_path=config["annotation"]["markers"],
        min_matched_barcodes=config["clones"]["min_matched_barcodes"],
    )


wildcard_constraints:
    sample="|".join(SAMPLES.index),
    patient="|".join(PATIENTS),
    method="harmony|scvi|none",


# Each rule gets only the settings it reads, so that a config edit re-runs only the jobs that
# depend on it (Snakemake re-runs a job whose params changed, and everything downstream).

# The clones settings that define_clones reads; dynamics and resistance shape later steps only,
# and copy number (clones.cnv) is infer_cnv's, whose output define_clones reads.
CLONE_CALLING_SETTINGS = (
    "source_precedence",
    "malignant",
    "genotypes",
    "min_confidence",
    "lineage",
)


def clone_calling_settings():
    return {key: config["clones"][key] for key in CLONE_CALLING_SETTINGS}


def normal_cells():
    """Which cells are normal, in the terms of clonetrack.clones.cnv.NormalReference.from_settings:
    the copy-number reference (reference cell types, reference samples and the sheet's healthy
    samples) and the malignant call's normal seeds (healthy samples, reference cell types)."""
    return {
        "cell_types": config["clones"]["cnv"]["reference_cell_types"],
        "reference_samples": config["clones"]["cnv"]["reference_samples"],
        "healthy": HEALTHY,
    }


def final_object_settings():
    """The settings the final object is made with (recorded in its uns): those of every step whose
    output it assembles, and none of DE, clone dynamics, resistance or the cohort."""
    sections = ("samples", "organism", "normal_reference", "seed", "qc", "droplets", "preprocess",
                "integration", "clustering", "annotation")  # fmt: skip
    clones = {**clone_calling_settings(), "cnv": config["clones"]["cnv"]}
    return {**{key: config[key] for key in sections}, "clones": clones}


def sample_qc_settings(wildcards):
    """One sample's QC settings, its overrides applied: editing another sample's override does
    not re-run this sample's QC."""
    settings = {key: value for key, value in config["qc"].items() if key != "overrides"}
    settings.update((config["qc"].get("overrides") or {}).get(wildcards.sample, {}))
    return settings


def qc_inputs(wildcards):
    """A sample's counts (its cells' matrix and/or its unfiltered droplet matrix), as named in
    the sheet and resolved against its folder."""
    row = SAMPLES.loc[wildcards.sample]
    return {
        name: row[column]
        for name, column in (("counts", "path"), ("raw", "raw_path"))
        if row.get(column, "")
    }


def droplet_params(wildcards):
    """The droplets settings, for a sample with an unfiltered matrix only (so that editing them
    re-runs only those samples' QC)."""
    if not SAMPLES.loc[wildcards.sample, "raw_path"]:
        return {}
    # the haemoglobin genes, from which the contamination may be estimated
    return {**config["droplets"], "hb_pattern": config["qc"]["hb_pattern"]}


def sample_row(wildcards):
    """The sheet row of a sample as a plain dict, for scripts."""
    return {"sample_id": wildcards.sample, **SAMPLES.loc[wildcards.sample].to_dict()}


def qc_outputs(kind):
    """One per-sample QC output of each sample."""
    return expand(f"results/qc/{{sample}}/{kind}", sample=SAMPLES.index)


def patient_samples(patient):
    """Sheet rows of one patient."""
    return SAMPLES[SAMPLES["patient_id"] == patient]


def clone_inputs(wildcards):
    """Clone tables and lineage-barcode matrices of a patient's samples, where the sheet has them."""
    rows = patient_samples(wildcards.patient)
    return {
        "tables": [p for p in rows.get("clones", []) if p],
        "lineage": [p for p in rows.get("lineage_barcodes", []) if p],
        "genotypes": [p for p in rows.get("genotypes", []) if p],
    }


def cnv_expression_inputs(wildcards):
    """The expression, cell types and gene positions of copy number, or nothing when it is not
    inferred (infer_cnv then writes the reason)."""
    if CNV_OFF_REASON:
        return {}
    return {
        "merged": "results/merged/adata.h5ad",
        "cells": "results/annotate/cells.h5ad",
        "positions": config["clones"]["cnv"]["gene_positions"],
    }


def normal_reference_input():
    """The healthy-marrow reference file, or nothing when the config sets none."""
    return [config["normal_reference"]] if config.get("normal_reference") else []


def clone_sources(wildcards):
    """Per sample of the patient: its clone table and lineage-barcode paths ("" when none)."""
    rows = patient_samples(wildcards.patient)
    return {
        sample_id: {
            "clones": row.get("clones", ""),
            "lineage_barcodes": row.get("lineage_barcodes", ""),
            "genotypes": row.get("genotypes", ""),
        }
        for sample_id, row in rows.iterrows()
    }


def input_mb(files, factor, floor_mb=1000):
    """Memory estimate from input size: ``factor`` times the on-disk size, at least ``floor_mb``."""
    paths = [files] if isinstance(files, str) else list(files)
    size = 0
    for path in paths:
        if os.path.isdir(path):
            size += sum(
                os.path.getsize(os.path.join(root, name))
                for root, _, names in os.walk(path)
                for name in names
            )
        elif os.path.exists(path):
            size += os.path.getsize(path)
    return max(floor_mb, int(factor * size / 1e6))


def mem_mb(factor, floor_mb=1000):
    """A ``resources: mem_mb`` callable: size-based estimate, doubled on each retry.

    ``factor`` is a number or a function of the job's wildcards (for rules whose methods differ).
    """

    def estimate(wildcards, input, attempt):
        scale = factor(wildcards) if callable(factor) else factor
        return input_mb(input, scale, floor_mb) * 2 ** (attempt - 1)

    return estimate


def patient_mem_mb(factor, floor_mb=1000):
    """``mem_mb`` of a per-patient job: the merged object's estimate scaled by the patient's
    share of samples, doubled on each retry."""

    def estimate(wildcards, input, attempt):
        share = float((SAMPLES["patient_id"] == wildcards.patient).mean())
        # a job without expression (copy number off) gets the floor
        size = input_mb(getattr(input, "merged", []), factor, floor_mb=0) * share
        return max(floor_mb, int(size)) * 2 ** (attempt - 1)

    return estimate


def patient_outputs(kind):
    """One clone output of each patient."""
    return expand(f"results/clones/patient~{{patient}}/{kind}", patient=PATIENTS)


def cohort_inputs(wildcards):
    """The patient table and measurement tables the config names (none by default)."""
    return {
        "patients": [config["patients"]] if config.get("patients") else [],
        "measurements": list(config["measurements"]),
    }


def all_outputs():
    """Every final output of the workflow."""
    return [
        "results/tables/cohort/tests.tsv",
        *expand("results/plots/answer/patient~{patient}.png", patient=PATIENTS),
        "results/final/adata.h5ad",
        "results/tables/qc_ledger.tsv",
        "results/tables/markers.tsv",
        "results/tables/de/timepoint_de.tsv",
        "results/plots/umap.png",
        "results/plots/de_volcano.png",
        "results/tables/clones/classes.tsv",
        "results/tables/clones/resistance_de.tsv",
        "results/plots/clones/cohort_overview.png",
        *expand("results/plots/clones/patient~{patient}/dynamics.png", patient=PATIENTS),
    ]
