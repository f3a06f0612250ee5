from clonetrack import runtime

log = runtime.start(snakemake.log[0], seed=snakemake.params.seed)

import anndata as ad
from clonetrack import io
from clonetrack.clones import cnv, patient_clones
from clonetrack.io import store, tables

cfg = snakemake.params.clones
patient = snakemake.wildcards.patient
# obs only: the embeddings and graphs of every cell in the cohort are not needed here
metadata = store.read_parts(snakemake.input.cells, obsm=False, uns=False)
sources = snakemake.params.sources
clone_tables = {
    s: io.read_clone_table(p["clones"], sample_id=s) for s, p in sources.items() if p["clones"]
}
lineage = {
    s: io.read_counts(p["lineage_barcodes"], sample_id=s, feature_type=None)
    for s, p in sources.items()
    if p["lineage_barcodes"] and not p["clones"]
}
genotype_tables = {
    s: tables.read_genotype_table(p["genotypes"], sample_id=s)
    for s, p in sources.items()
    if p.get("genotypes")
}
copy_number = cnv.PatientCnv.from_anndata(ad.read_h5ad(snakemake.input.cnv))
own = (metadata.obs["patient_id"] == patient).to_numpy()
# The malignant call embeds the genes copy number used (all genes without it), and the cells of
# other reference samples that joined the copy-number run.
others = metadata.obs_names.isin(copy_number.cells.index) & ~own


def expression(selected):
    """Log-normalised expression of the selected cells, with their metadata."""
    return store.read_expression(
        snakemake.input.merged,
        metadata.obs,
        selected,
        genes=copy_number.genes if len(copy_number.genes) else None,
        source=f"{snakemake.input.merged} and {snakemake.input.cells}",
    )


def normal_reference():
    """The healthy-marrow reference, log-normalised as the cohort is, on the cohort's genes."""
    if not snakemake.input.normal_reference:
        return None
    import scanpy as sc

    reference = io.read_normal_reference(snakemake.input.normal_reference[0])
    sc.pp.normalize_total(reference, target_sum=snakemake.params.target_sum)
    sc.pp.log1p(reference)
    return reference


cells, report, unmatched = patient_clones.define_patient_clones(
    expression(own),
    patient_id=patient,
    clone_tables=clone_tables,
    lineage_counts=lineage,
    lineage_params=cfg["lineage"],
    min_confidence=cfg["min_confidence"],
    copy_number=copy_number,
    reference=cnv.NormalReference.from_settings(**snakemake.params.reference),
    reference_cells=expression(others) if others.any() else None,
    genotype_tables=genotype_tables,
    genotype_params=cfg["genotypes"],
    malignant_params=cfg["malignant"],
    source_precedence=tuple(cfg["source_precedence"]),
    normal_reference=normal_reference(),
    random_state=snakemake.params.seed,
)
log.info("patient %s clone sources:\n%s", patient, report.to_string())
io.write_table_atomic(unmatched, snakemake.output.unmatched, index=False)
io.write_table_atomic(report, snakemake.output.report, index=False)
io.write_table_atomic(cells.rename_axis("cell").reset_index(), snakemake.output.cells, index=False)
