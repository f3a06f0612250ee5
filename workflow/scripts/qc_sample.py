from clonetrack import runtime

log = runtime.start(snakemake.log[0], seed=snakemake.params.seed)

from clonetrack import io, pl, qc
from clonetrack.qc import droplets

sample = snakemake.params.sample
sample_id = sample["sample_id"]
counts = (
    io.read_counts(snakemake.input.counts, sample_id=sample_id, fmt=sample["format"] or None)
    if "counts" in snakemake.input.keys()
    else None
)
droplet_table, droplet_summary = None, {}
if "raw" in snakemake.input.keys():
    # every barcode: cells called from it (or taken from the filtered matrix), ambient RNA removed
    raw = io.read_counts(snakemake.input.raw, sample_id=sample_id)
    counts, droplet_table, droplet_summary = droplets.cells_from_raw(
        raw, counts, params=snakemake.params.droplets, seed=snakemake.params.seed
    )
    log.info("sample %s droplets: %s", sample_id, droplet_summary)
params = qc.QCParams.from_config(snakemake.params.qc, sample_id=sample_id)
kept, cells, ledger = qc.run_qc(
    counts, sample_id=sample_id, params=params, random_state=snakemake.params.seed
)
ledger = qc.add_droplet_columns(ledger, droplet_summary)
log.info("sample %s: %s", sample_id, ledger.iloc[0].to_dict())

fig = pl.plot_qc_sample(cells, ledger.iloc[0], droplets=droplet_table)
fig.savefig(snakemake.output.plot, dpi=110, bbox_inches="tight")
io.write_table_atomic(droplets.droplet_rows(droplet_table), snakemake.output.droplets, index=False)
io.write_table_atomic(cells, snakemake.output.cells, index=False)
io.write_table_atomic(ledger, snakemake.output.ledger, index=False)
io.write_h5ad_atomic(kept, snakemake.output.kept)
