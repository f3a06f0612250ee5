from clonetrack import runtime

log = runtime.start(snakemake.log[0], seed=snakemake.params.seed, threads=snakemake.threads)

import anndata as ad  # noqa: E402

from clonetrack import integrate, io  # noqa: E402

prep = snakemake.params.preprocess
samples = snakemake.params.samples
adatas = {path.split("/")[-2]: ad.read_h5ad(path) for path in snakemake.input.kept}
adata = integrate.merge_samples(adatas, samples)
integrate.normalise_and_select(adata, target_sum=prep["target_sum"], n_top_genes=prep["n_top_genes"], batch_key=snakemake.params.batch_key)
integrate.run_pca(adata, n_pcs=prep["n_pcs"], random_state=snakemake.params.seed)
log.info("merged %d cells x %d genes", adata.n_obs, adata.n_vars)
io.write_h5ad_atomic(adata, snakemake.output[0])
