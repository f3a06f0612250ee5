from clonetrack import runtime

log = runtime.start(snakemake.log[0], seed=snakemake.params.seed, threads=snakemake.threads)

from clonetrack import integrate
from clonetrack.io import store

cfg = snakemake.params.integration
method = snakemake.wildcards.method
options = {
    "harmony": {"theta": cfg["harmony_theta"], "max_iter": cfg["harmony_max_iter"]},
    "scvi": {"n_latent": cfg["scvi_n_latent"], "max_epochs": cfg["scvi_max_epochs"]},
    "none": {},
}[method]
adata = store.read_parts(snakemake.input.merged)
# Harmony works on the PCs alone; scVI needs the raw counts of the variable genes only.
if method == "scvi":
    hvg = adata.var["highly_variable"].to_numpy()
    adata = adata[:, hvg].copy()
    adata.layers["counts"] = store.read_parts(
        snakemake.input.counts, matrix="X", genes=hvg, obsm=False, uns=False
    ).X
embedding = integrate.integrate(
    adata, method=method, batch_key=cfg["batch_key"], random_state=snakemake.params.seed, **options
)
log.info("integration %s -> obsm[%s]", method, embedding)
store.write_cells(adata, snakemake.output[0])
