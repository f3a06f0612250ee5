from clonetrack import runtime

log = runtime.start(snakemake.log[0], seed=snakemake.params.seed)

import anndata as ad  # noqa: E402
import pandas as pd  # noqa: E402

from clonetrack import annotate, io  # noqa: E402

cfg = snakemake.params.annotation
adata = ad.read_h5ad(snakemake.input.adata)
markers = annotate.load_markers(snakemake.input.markers)
annotate.score_cell_types(
    adata,
    markers,
    min_score=cfg["min_score"],
    min_margin=cfg["min_margin"],
    neighbors_key="neighbors" if cfg["smooth_neighbors"] else None,
    random_state=snakemake.params.seed,
)
clusters = annotate.annotate_clusters(adata, cluster_key="leiden", cell_key="cell_type", key_added="cell_type_cluster", min_fraction=cfg["cluster_min_fraction"])
composition = pd.crosstab(adata.obs["sample_id"], adata.obs["cell_type"]).reset_index()
io.write_table_atomic(clusters, snakemake.output.clusters, index=False)
io.write_table_atomic(composition, snakemake.output.composition, index=False)
io.write_h5ad_atomic(adata, snakemake.output.adata)
