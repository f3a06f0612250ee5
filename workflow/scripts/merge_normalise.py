from clonetrack import runtime

log = runtime.start(snakemake.log[0], seed=snakemake.params.seed, threads=snakemake.threads)

from clonetrack import integrate, io  # noqa: E402

prep = snakemake.params.preprocess
paths = {path.split("/")[-2]: path for path in snakemake.input.kept}
# The raw counts are concatenated on disk and stay in their own file, copied into the final
# object's layers["counts"] at the end: only one matrix is ever in memory.
adata = integrate.merge_samples_on_disk(paths, snakemake.params.samples, snakemake.output.counts)
integrate.normalise_and_select(adata, target_sum=prep["target_sum"], n_top_genes=prep["n_top_genes"], batch_key=snakemake.params.batch_key, keep_counts=False)
integrate.run_pca(adata, n_pcs=prep["n_pcs"], random_state=snakemake.params.seed)
log.info("merged %d cells x %d genes", adata.n_obs, adata.n_vars)
io.write_h5ad_atomic(adata, snakemake.output.adata)
