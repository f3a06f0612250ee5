from clonetrack import runtime

log = runtime.start(snakemake.log[0], seed=snakemake.params.seed, threads=snakemake.threads)

from clonetrack import integrate, store  # noqa: E402

cfg = snakemake.params.integration
method = snakemake.wildcards.method
options = {
    "harmony": {"theta": cfg["harmony_theta"], "max_iter": cfg["harmony_max_iter"]},
    "scvi": {"n_latent": cfg["scvi_n_latent"], "max_epochs": cfg["scvi_max_epochs"]},
    "none": {},
}[method]
# Harmony works on the PCs alone; scVI needs the raw counts of the variable genes only.
if method == "scvi":
    genes = store.read_parts(snakemake.input[0], obsm=False, uns=False).var["highly_variable"].to_numpy()
    adata = store.read_parts(snakemake.input[0], matrix="counts", genes=genes)
else:
    adata = store.read_parts(snakemake.input[0])
embedding = integrate.integrate(adata, method=method, batch_key=cfg["batch_key"], random_state=snakemake.params.seed, **options)
log.info("integration %s -> obsm[%s]", method, embedding)
store.write_cells(adata, snakemake.output[0])
