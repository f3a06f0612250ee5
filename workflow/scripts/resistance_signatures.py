from clonetrack import runtime

log = runtime.start(snakemake.log[0], seed=snakemake.params.seed)

import pandas as pd  # noqa: E402

from clonetrack import annotate, io, plotting_clones, resistance, store  # noqa: E402

cfg = snakemake.params.resistance
# Both analyses use the raw counts of malignant cells only.
adata = store.read_parts(snakemake.input.adata, matrix="counts", cells=lambda obs: obs["malignant"].astype(bool).to_numpy(), obsm=False, uns=False)
classes = pd.read_csv(snakemake.input.classes, sep="\t", dtype={"patient_id": str, "clone": str})
cells = resistance.malignant_with_status(adata, classes)
table, summary = resistance.resistance_de(cells, min_cells=cfg["min_cells"], by_cell_type=cfg["by_cell_type"], min_patients=cfg["min_patients"], random_state=snakemake.params.seed)
log.info("resistance DE: %s", summary)
signatures = {name: annotate.load_signature(path, adata.var_names) for name, path in cfg["signatures"].items()}
scores = resistance.signature_scores(cells, signatures, stem_types=tuple(cfg["stem_cell_types"]), min_cells=cfg["min_cells"])
comparison = resistance.compare_signatures(scores)
fig = plotting_clones.plot_signature_scores(scores, signatures=list(signatures))
fig.savefig(snakemake.output.plot, dpi=110, bbox_inches="tight")
io.write_table_atomic(pd.DataFrame([{k: (", ".join(v) if isinstance(v, list) else v) for k, v in summary.items()}]), snakemake.output.de_summary, index=False)
io.write_table_atomic(comparison, snakemake.output.comparison, index=False)
io.write_table_atomic(scores, snakemake.output.scores, index=False)
io.write_table_atomic(table, snakemake.output.de, index=False)
