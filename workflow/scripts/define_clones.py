from clonetrack import runtime

log = runtime.start(snakemake.log[0], seed=snakemake.params.seed)

import matplotlib.pyplot as plt
import pandas as pd
from clonetrack import io, pl
from clonetrack.clones import (
    cnv,
    genotypes,
    patient_clones,
)
from clonetrack.io import store

cfg = snakemake.params.clones
patient = snakemake.wildcards.patient
# obs only: the embeddings and graphs of every cell in the cohort are not needed here
metadata = store.read_parts(snakemake.input.cells, obsm=False, uns=False)
sources = snakemake.params.sources
tables = {
    s: io.read_clone_table(p["clones"], sample_id=s) for s, p in sources.items() if p["clones"]
}
lineage = {
    s: io.read_counts(p["lineage_barcodes"], sample_id=s, feature_type=None)
    for s, p in sources.items()
    if p["lineage_barcodes"] and not p["clones"]
}
genotype_tables = {
    s: genotypes.read_genotype_table(p["genotypes"], sample_id=s)
    for s, p in sources.items()
    if p.get("genotypes")
}
healthy = tuple(snakemake.params.healthy)
cnv_cfg = dict(cfg["cnv"])
positions_path = cnv_cfg.pop("gene_positions")
cnv_off_reason = snakemake.params.cnv_off_reason
positions = None
if not cnv_off_reason:
    positions = cnv.load_gene_positions(positions_path)
    cnv_off_reason = cnv.unpositioned_reason(
        store.var_names(snakemake.input.merged), positions, source=positions_path
    )
    if cnv_off_reason:
        log.warning("patient %s: %s", patient, cnv_off_reason)
        positions = None
# Healthy donors of the sheet join every patient's copy-number reference.
reference_samples = tuple(sorted(set(cnv_cfg.pop("reference_samples")) | set(healthy)))
own = (metadata.obs["patient_id"] == patient).to_numpy()
other_reference = metadata.obs["sample_id"].isin(reference_samples).to_numpy() & ~own


def expression(selected):
    """Log-normalised expression of the selected cells (positioned genes when copy number is
    inferred), with their metadata."""
    # copy number needs the positioned genes; without it the malignant call embeds all genes
    genes = (lambda var: var.index.isin(positions.index)) if positions is not None else None
    part = store.read_parts(
        snakemake.input.merged, matrix="X", cells=selected, genes=genes, obsm=False, uns=False
    )
    obs = metadata.obs[selected]
    if not part.obs_names.equals(obs.index):
        raise RuntimeError(
            f"{snakemake.input.merged} and {snakemake.input.cells} list different cells"
        )
    part.obs = obs
    return part


def normal_reference():
    """The healthy-marrow reference, log-normalised as the cohort is, on the cohort's genes."""
    if not snakemake.input.normal_reference:
        return None
    import scanpy as sc

    reference = io.read_normal_reference(snakemake.input.normal_reference[0])
    sc.pp.normalize_total(reference, target_sum=snakemake.params.target_sum)
    sc.pp.log1p(reference)
    return reference


# Copy-number inference needs the expression of positioned genes; other sources need only metadata.
adata = expression(own)
reference_cells = (
    expression(other_reference) if positions is not None and other_reference.any() else None
)
cnv_cfg["reference_categories"] = tuple(cnv_cfg.pop("reference_cell_types"))
cells, report, unmatched, cnv_adata = patient_clones.define_patient_clones(
    adata,
    patient_id=patient,
    clone_tables=tables,
    lineage_counts=lineage,
    lineage_params=cfg["lineage"],
    min_confidence=cfg["min_confidence"],
    cnv_positions=positions,
    cnv_off_reason=cnv_off_reason or "",
    cnv_params={**cnv_cfg, "random_state": snakemake.params.seed},
    cnv_reference_samples=reference_samples,
    reference_cells=reference_cells,
    genotype_tables=genotype_tables,
    genotype_params=cfg["genotypes"],
    healthy_samples=healthy,
    malignant_params=cfg["malignant"],
    source_precedence=tuple(cfg["source_precedence"]),
    normal_reference=normal_reference(),
    random_state=snakemake.params.seed,
)
log.info("patient %s clone sources:\n%s", patient, report.to_string())
if cnv_adata is not None and cnv_adata.obs["malignant"].any():
    segments = cnv.cnv_segments(cnv_adata)
    fig = pl.plot_cnv_heatmap(cnv_adata)
else:
    segments = pd.DataFrame(columns=list(cnv.SEGMENT_COLUMNS))
    fig, ax = plt.subplots(figsize=(6, 1.5))
    ax.text(
        0.5,
        0.5,
        f"{patient}: no copy-number clones.\n"
        + "; ".join(sorted(set(report["source"] + ": " + report["note"].fillna("")))),
        ha="center",
        va="center",
        wrap=True,
    )
    ax.axis("off")
fig.savefig(snakemake.output.heatmap, dpi=110, bbox_inches="tight")
io.write_table_atomic(segments, snakemake.output.segments, index=False)
io.write_table_atomic(unmatched, snakemake.output.unmatched, index=False)
io.write_table_atomic(report, snakemake.output.report, index=False)
io.write_table_atomic(cells.rename_axis("cell").reset_index(), snakemake.output.cells, index=False)
