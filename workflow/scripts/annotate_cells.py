from clonetrack import runtime

log = runtime.start(snakemake.log[0], seed=snakemake.params.seed)

import anndata as ad
import pandas as pd
from clonetrack import annotate, io
from clonetrack.io import store, tables

cfg = snakemake.params.annotation
cells = ad.read_h5ad(snakemake.input.cells)
markers = tables.load_markers(snakemake.input.markers)
# The panel's genes are all the scoring reads; genes absent from the data stay reported as missing.
adata = store.read_parts(
    snakemake.input.merged,
    matrix="X",
    genes=lambda var: var.index.isin(markers["gene"]),
    obsm=False,
    uns=False,
)
adata.obs, adata.obsm, adata.obsp, adata.uns = cells.obs, cells.obsm, cells.obsp, cells.uns
annotate.score_cell_types(
    adata,
    markers,
    min_score=cfg["min_score"],
    min_margin=cfg["min_margin"],
    neighbors_key="neighbors" if cfg["smooth_neighbors"] else None,
    random_state=snakemake.params.seed,
)
clusters = annotate.annotate_clusters(
    adata,
    cluster_key="leiden",
    cell_key="cell_type",
    key_added="cell_type_cluster",
    min_fraction=cfg["cluster_min_fraction"],
)
composition = pd.crosstab(adata.obs["sample_id"], adata.obs["cell_type"]).reset_index()
io.write_table_atomic(clusters, snakemake.output.clusters, index=False)
io.write_table_atomic(composition, snakemake.output.composition, index=False)
store.write_cells(adata, snakemake.output.cells)
