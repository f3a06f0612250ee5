from clonetrack import runtime

log = runtime.start(snakemake.log[0], seed=snakemake.params.seed, threads=snakemake.threads)

import anndata as ad  # noqa: E402

from clonetrack import integrate, io  # noqa: E402

cfg = snakemake.params.integration
method = snakemake.wildcards.method
options = {
    "harmony": {"theta": cfg["harmony_theta"], "max_iter": cfg["harmony_max_iter"]},
    "scvi": {"n_latent": cfg["scvi_n_latent"], "max_epochs": cfg["scvi_max_epochs"]},
    "none": {},
}[method]
adata = ad.read_h5ad(snakemake.input[0])
embedding = integrate.integrate(adata, method=method, batch_key=cfg["batch_key"], random_state=snakemake.params.seed, **options)
log.info("integration %s -> obsm[%s]", method, embedding)
io.write_h5ad_atomic(adata, snakemake.output[0])
