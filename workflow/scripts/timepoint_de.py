from clonetrack import runtime

log = runtime.start(snakemake.log[0], seed=snakemake.params.seed)

from clonetrack import de, io, pl
from clonetrack.io import store

cfg = snakemake.params.de
# Pseudobulks are summed block by block as the counts are read: memory does not grow with cells.
cells = store.read_parts(snakemake.input[0], obsm=False, uns=False)
counts, meta = de.pseudobulk(
    cells,
    groupby=["patient_id", "timepoint", "cell_type"],
    blocks=store.row_blocks(snakemake.input[0], "counts"),
)
results, summary = de.timepoint_de(
    counts,
    meta,
    reference=cfg["reference_timepoint"],
    min_cells=cfg["min_cells"],
    random_state=snakemake.params.seed,
    n_cpus=snakemake.threads,
)
fig = pl.plot_volcanoes(results, alpha=cfg["alpha"])
fig.savefig(snakemake.output.volcano, dpi=110, bbox_inches="tight")
io.write_table_atomic(summary, snakemake.output.summary, index=False)
io.write_table_atomic(results, snakemake.output.results, index=False)
