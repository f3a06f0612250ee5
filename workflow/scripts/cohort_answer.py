from clonetrack import runtime

log = runtime.start(snakemake.log[0], seed=snakemake.params.seed)

import matplotlib.pyplot as plt
import pandas as pd
from clonetrack import cohort, de, io, pl
from clonetrack.clones import resistance
from clonetrack.io import store, tables

cfg = snakemake.params.cohort
seed = snakemake.params.seed
patients = list(snakemake.params.patients)
notes = [("patient table", n) for n in snakemake.params.patient_notes]
notes += [("measurements", n) for n in snakemake.params.measurement_notes]
responses = pd.Series("", index=patients, dtype=str)
if snakemake.input.patients:
    table, _ = tables.read_patient_table(
        snakemake.input.patients[0], levels=cfg["response_levels"], sheet_patients=patients
    )
    responses.update(table["response"])
else:
    notes.append(
        (
            "patient table",
            "no patient table (config: patients): the cohort tests need each patient's response",
        )
    )
measurements, _ = tables.read_measurements(
    snakemake.input.measurements, sheet_patients=patients, sheet_samples=snakemake.params.sheet
)

freqs = pd.read_csv(
    snakemake.input.frequencies, sep="\t", dtype={"patient_id": str, "sample_id": str, "clone": str}
)
classes = pd.read_csv(snakemake.input.classes, sep="\t", dtype={"patient_id": str, "clone": str})
adata = store.read_parts(snakemake.input.adata, obsm=False, uns=False)
obs = adata.obs

# Signature scores of each sample's malignant cells (stem-like cells for the BCL2 family), on
# pseudobulks summed block by block from the raw counts.
malignant = obs["malignant"].astype(bool).to_numpy()
cells = adata[malignant]
counts, meta = de.pseudobulk(
    cells,
    groupby=["sample_id", "cell_type"],
    blocks=store.row_blocks(snakemake.input.adata, "counts", cells=malignant),
)
signatures = {
    name: tables.load_signature(path, counts.columns)
    for name, path in snakemake.params.signatures.items()
}
scores = resistance.signature_scores(
    counts,
    meta,
    signatures,
    stem_types=tuple(snakemake.params.stem_cell_types),
    min_cells=snakemake.params.min_cells,
    groupby=("sample_id",),
)

composition = cohort.composition_features(obs, groups=cfg["cell_type_groups"])
first = (
    obs.sort_values("timepoint_order")
    .drop_duplicates("patient_id")
    .set_index("patient_id")["timepoint"]
    .astype(str)
    .to_dict()
)
clone_table = cohort.clone_features(classes)
features = cohort.feature_table(obs, composition, scores, clone_table)
log.info("features: %d samples x %d features", len(features), len(cohort.feature_columns(features)))

with_response = responses[responses != ""]
tests = cohort.cohort_tests(features, with_response, cfg, seed=seed)
compositions = []
if cfg["sccoda_samples"] and len(with_response):
    first_cells = obs[obs["malignant"].astype(bool)]
    first_cells = first_cells[
        first_cells["timepoint"].astype(str) == first_cells["patient_id"].map(first)
    ]
    for name, contrast in cfg["contrasts"].items():
        groups = cohort.contrast_groups(with_response, contrast["case"], contrast["control"])
        if min((groups == "case").sum(), (groups == "control").sum()) < cfg["min_patients"]:
            notes.append(
                ("scCODA", f"{name}: fewer than {cfg['min_patients']} patients in a group; not run")
            )
            continue
        effects = cohort.composition_sccoda(
            first_cells, groups, num_samples=cfg["sccoda_samples"], seed=seed, fdr=cfg["sccoda_fdr"]
        )
        compositions.append(
            effects.assign(contrast=name, compartment="malignant", timepoint="first")
        )
composition_table = (
    pd.concat(compositions, ignore_index=True)
    if compositions
    else pd.DataFrame(
        columns=[
            "contrast",
            "compartment",
            "timepoint",
            "cell_type",
            "effect",
            "hdi_low",
            "hdi_high",
            "inclusion_probability",
            "log2fc",
            "credible",
        ]
    )
)
correlations, measure_matrix, feature_matrix = cohort.measure_correlations(
    features, measurements, min_patients=cfg["min_correlation_patients"]
)
answers = cohort.patient_answers(freqs, classes, responses, patients)

fig = pl.patient_panels(freqs, classes, answers)
fig.savefig(snakemake.output.patients, dpi=100, bbox_inches="tight")
plt.close(fig)
levels = [lvl for lvl in cfg["response_levels"] if lvl in set(with_response)]
views = {t: cohort.at_timepoint(features, t) for t in cfg["timepoints"]}
fig = pl.biomarker_panels(views, with_response, tests, levels)
fig.savefig(snakemake.output.biomarkers, dpi=100, bbox_inches="tight")
plt.close(fig)
fig = pl.correlation_panels(measure_matrix, feature_matrix, correlations)
fig.savefig(snakemake.output.correlation_plot, dpi=100, bbox_inches="tight")
plt.close(fig)

for scope, note in notes:
    log.warning("%s: %s", scope, note)
io.write_table_atomic(
    pd.DataFrame(notes, columns=["scope", "note"]), snakemake.output.notes, index=False
)
io.write_table_atomic(answers, snakemake.output.answers, index=False)
io.write_table_atomic(tests, snakemake.output.tests, index=False)
io.write_table_atomic(composition_table, snakemake.output.composition, index=False)
io.write_table_atomic(correlations, snakemake.output.correlations, index=False)
io.write_table_atomic(features, snakemake.output.features, index=False)
