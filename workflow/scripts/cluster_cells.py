from clonetrack import runtime

log = runtime.start(snakemake.log[0], seed=snakemake.params.seed, threads=snakemake.threads)

import anndata as ad  # noqa: E402

from clonetrack import cluster, io  # noqa: E402

cfg = snakemake.params.clustering
adata = ad.read_h5ad(snakemake.input[0])
resolutions = cluster.embed_and_cluster(
    adata,
    use_rep=adata.uns["clonetrack"]["integrate"]["embedding"],
    n_neighbors=cfg["n_neighbors"],
    resolutions=tuple(cfg["resolutions"]),
    min_cluster_fraction=cfg["min_cluster_fraction"],
    random_state=snakemake.params.seed,
)
markers = cluster.find_markers(adata, groupby="leiden", on_hvg=cfg["markers_on_hvg"], n_markers=cfg["n_markers"])
io.write_table_atomic(resolutions, snakemake.output.resolutions, index=False)
io.write_table_atomic(markers, snakemake.output.markers, index=False)
io.write_h5ad_atomic(adata, snakemake.output.adata)
