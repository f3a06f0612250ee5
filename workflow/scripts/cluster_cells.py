from clonetrack import runtime

log = runtime.start(snakemake.log[0], seed=snakemake.params.seed, threads=snakemake.threads)

import anndata as ad
from clonetrack import io
from clonetrack.integrate import cluster
from clonetrack.io import store

cfg = snakemake.params.clustering
cells = ad.read_h5ad(snakemake.input.cells)
resolutions = cluster.embed_and_cluster(
    cells,
    use_rep=cells.uns["clonetrack"]["integrate"]["embedding"],
    n_neighbors=cfg["n_neighbors"],
    resolutions=tuple(cfg["resolutions"]),
    min_cluster_fraction=cfg["min_cluster_fraction"],
    random_state=snakemake.params.seed,
    umap_init=cfg["umap_init"],
)
# Only the genes to be tested are read from the merged matrices.
on_hvg = cluster.markers_on_hvg(cfg["markers_on_hvg"], cells.n_obs)
tested = (lambda var: var["highly_variable"].to_numpy()) if on_hvg else None
with runtime.timed(log, "reading the expression to test"):
    expression = store.read_parts(
        snakemake.input.merged, matrix="X", genes=tested, obsm=False, uns=False
    )
expression.obs["leiden"] = cells.obs["leiden"]
markers = cluster.find_markers(expression, groupby="leiden", n_markers=cfg["n_markers"])
log.info(
    "markers of %d clusters on %d genes (%s)",
    cells.obs["leiden"].nunique(),
    expression.n_vars,
    "variable genes" if on_hvg else "all genes",
)
cells.uns["clonetrack"]["cluster"]["markers_on_hvg"] = on_hvg
io.write_table_atomic(resolutions, snakemake.output.resolutions, index=False)
io.write_table_atomic(markers, snakemake.output.markers, index=False)
with runtime.timed(log, "writing the cells"):
    store.write_cells(cells, snakemake.output.cells)
