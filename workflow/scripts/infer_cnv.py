from clonetrack import runtime

log = runtime.start(snakemake.log[0], seed=snakemake.params.seed, threads=snakemake.threads)

import pandas as pd
from clonetrack import io, pl
from clonetrack.clones import cnv
from clonetrack.io import store, tables

patient = snakemake.wildcards.patient
reference = cnv.NormalReference.from_settings(**snakemake.params.reference)
reason = snakemake.params.cnv_off_reason
if not reason:
    positions = tables.load_gene_positions(snakemake.input.positions)
    reason = cnv.unpositioned_reason(
        store.var_names(snakemake.input.merged), positions, source=snakemake.input.positions
    )
    if reason:
        log.warning("patient %s: %s", patient, reason)


def expression(selected):
    """Log-normalised expression of the positioned genes of the selected cells, with metadata."""
    return store.read_expression(
        snakemake.input.merged,
        metadata.obs,
        selected,
        genes=positions.index,
        source=f"{snakemake.input.merged} and {snakemake.input.cells}",
    )


patient_cnv, cnv_adata = cnv.PatientCnv.unavailable(reason), None
if not reason:
    # obs only: the embeddings and graphs of every cell in the cohort are not needed here
    metadata = store.read_parts(snakemake.input.cells, obsm=False, uns=False)
    own = (metadata.obs["patient_id"] == patient).to_numpy()
    # Reference samples of other patients and healthy donors widen the patient's reference.
    others = reference.in_samples(metadata.obs) & ~own
    patient_cnv, cnv_adata = cnv.infer_patient_cnv(
        expression(own),
        patient_id=patient,
        positions=positions,
        reference=reference,
        settings=cnv.CnvSettings.from_config(snakemake.params.cnv),
        reference_cells=expression(others) if others.any() else None,
        n_jobs=snakemake.threads,
        random_state=snakemake.params.seed,
    )
if cnv_adata is not None and cnv_adata.obs["malignant"].any():
    segments = cnv.cnv_segments(cnv_adata)
    fig = pl.plot_cnv_heatmap(cnv_adata)
else:
    segments = pd.DataFrame(columns=list(cnv.SEGMENT_COLUMNS))
    fig = pl.plot_no_cnv(f"{patient}: no copy-number clones.\n{patient_cnv.note}")
fig.savefig(snakemake.output.heatmap, dpi=110, bbox_inches="tight")
io.write_table_atomic(segments, snakemake.output.segments, index=False)
io.write_h5ad_atomic(patient_cnv.to_anndata(), snakemake.output.cells)
