from clonetrack import runtime

log = runtime.start(snakemake.log[0], seed=snakemake.params.seed)

from clonetrack import io, pl
from clonetrack.integrate import metrics
from clonetrack.io import store

adata = store.read_parts(snakemake.input[0])
fig = pl.plot_umaps(adata, keys=["sample_id", "timepoint", "patient_id", "leiden", "cell_type"])
fig.savefig(snakemake.output.umap, dpi=110, bbox_inches="tight")
table = metrics.integration_metrics(
    adata,
    batch_key=snakemake.params.batch_key,
    label_key="cell_type",
    random_state=snakemake.params.seed,
)
fig = pl.plot_integration_metrics(table)
fig.savefig(snakemake.output.metrics_plot, dpi=110, bbox_inches="tight")
io.write_table_atomic(table, snakemake.output.metrics, index=False)
