from clonetrack import runtime

log = runtime.start(snakemake.log[0], seed=snakemake.params.seed)

import pandas as pd
from clonetrack import de, io, pl
from clonetrack.clones import resistance
from clonetrack.io import store, tables

cfg = snakemake.params.resistance
classes = pd.read_csv(snakemake.input.classes, sep="\t", dtype={"patient_id": str, "clone": str})
# Both analyses use pseudobulks of the malignant cells of resistant and sensitive clones, summed
# in one pass over their raw counts, block by block.
cohort = store.read_parts(snakemake.input.adata, obsm=False, uns=False)
cells = resistance.malignant_with_status(cohort, classes)
chosen = cohort.obs_names.isin(cells.obs_names)
counts, meta = de.pseudobulk(
    cells,
    groupby=resistance.PSEUDOBULK_KEYS,
    blocks=store.row_blocks(snakemake.input.adata, "counts", cells=chosen),
)
table, summary = resistance.resistance_de(
    counts,
    meta,
    min_cells=cfg["min_cells"],
    by_cell_type=cfg["by_cell_type"],
    min_patients=cfg["min_patients"],
    random_state=snakemake.params.seed,
)
log.info("resistance DE: %s", summary)
signatures = {
    name: tables.load_signature(path, counts.columns) for name, path in cfg["signatures"].items()
}
scores = resistance.signature_scores(
    counts, meta, signatures, stem_types=tuple(cfg["stem_cell_types"]), min_cells=cfg["min_cells"]
)
comparison = resistance.compare_signatures(scores)
fig = pl.plot_signature_scores(scores, signatures=list(signatures))
fig.savefig(snakemake.output.plot, dpi=110, bbox_inches="tight")
io.write_table_atomic(
    pd.DataFrame([{k: (", ".join(v) if isinstance(v, list) else v) for k, v in summary.items()}]),
    snakemake.output.de_summary,
    index=False,
)
io.write_table_atomic(comparison, snakemake.output.comparison, index=False)
io.write_table_atomic(scores, snakemake.output.scores, index=False)
io.write_table_atomic(table, snakemake.output.de, index=False)
