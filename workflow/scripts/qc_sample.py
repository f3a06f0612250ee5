from clonetrack import runtime

log = runtime.start(snakemake.log[0], seed=snakemake.params.seed)

from clonetrack import io, plotting, qc  # noqa: E402

sample = snakemake.params.sample
adata = io.read_counts(snakemake.input.counts, sample_id=sample["sample_id"], fmt=sample["format"] or None)
params = qc.QCParams.from_config(snakemake.params.qc, sample_id=sample["sample_id"])
kept, cells, ledger = qc.run_qc(adata, sample_id=sample["sample_id"], params=params, random_state=snakemake.params.seed)
log.info("sample %s: %s", sample["sample_id"], ledger.iloc[0].to_dict())

fig = plotting.plot_qc_sample(cells, ledger.iloc[0])
fig.savefig(snakemake.output.plot, dpi=110, bbox_inches="tight")
io.write_table_atomic(cells, snakemake.output.cells, index=False)
io.write_table_atomic(ledger, snakemake.output.ledger, index=False)
io.write_h5ad_atomic(kept, snakemake.output.kept)
