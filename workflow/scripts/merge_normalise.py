from clonetrack import runtime

log = runtime.start(snakemake.log[0], seed=snakemake.params.seed, threads=snakemake.threads)

import os  # noqa: E402
import tempfile  # noqa: E402

from clonetrack import integrate, store  # noqa: E402

prep = snakemake.params.preprocess
output = snakemake.output[0]
paths = {path.split("/")[-2]: path for path in snakemake.input.kept}
# The raw counts are concatenated on disk and later copied, file to file, into layers["counts"]:
# only one matrix is ever in memory.
os.makedirs(os.path.dirname(output), exist_ok=True)
fd, counts_path = tempfile.mkstemp(dir=os.path.dirname(output), prefix=".counts-", suffix=".h5ad")
os.close(fd)
try:
    adata = integrate.merge_samples_on_disk(paths, snakemake.params.samples, counts_path)
    integrate.normalise_and_select(adata, target_sum=prep["target_sum"], n_top_genes=prep["n_top_genes"], batch_key=snakemake.params.batch_key, keep_counts=False)
    integrate.run_pca(adata, n_pcs=prep["n_pcs"], random_state=snakemake.params.seed)
    log.info("merged %d cells x %d genes", adata.n_obs, adata.n_vars)
    store.write_with_layer(adata, output, layer="counts", source=counts_path)
finally:
    os.unlink(counts_path)
