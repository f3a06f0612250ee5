from clonetrack import runtime

log = runtime.start(snakemake.log[0], seed=snakemake.params.seed, threads=snakemake.threads)

from clonetrack import integrate

prep = snakemake.params.preprocess
paths = {path.split("/")[-2]: path for path in snakemake.input.kept}
# The raw counts are concatenated on disk and stay in their own file, copied into the final
# object's layers["counts"] at the end. Genes are selected one batch at a time and the counts
# normalised block by block into the merged file: no matrix of all cells is ever in memory.
cells = integrate.merge_samples_on_disk(paths, snakemake.params.samples, snakemake.output.counts)
merged = integrate.normalise_on_disk(
    snakemake.output.counts,
    snakemake.output.adata,
    cells,
    target_sum=prep["target_sum"],
    n_top_genes=prep["n_top_genes"],
    batch_key=snakemake.params.batch_key,
    n_pcs=prep["n_pcs"],
    random_state=snakemake.params.seed,
)
log.info("merged %d cells x %d genes", merged.n_obs, merged.n_vars)
