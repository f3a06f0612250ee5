from clonetrack import runtime

log = runtime.start(snakemake.log[0])

import anndata as ad
import pandas as pd
import yaml
from clonetrack.io import (
    contract,
    store,
)

cells = ad.read_h5ad(snakemake.input.cells)
clones = pd.concat([pd.read_csv(p, sep="\t", index_col="cell") for p in snakemake.input.clones])
contract.attach_clones(cells, clones)
ledger = pd.read_csv(snakemake.input.ledger, sep="\t")
# The settings the object was made with, as YAML text (nulls included): those of every step whose
# output it assembles; DE, clone dynamics and cohort settings shape other outputs.
cells.uns["clonetrack"]["config"] = yaml.safe_dump(snakemake.params.config, sort_keys=False)
shapes = {
    "X": store.matrix_shape(snakemake.input.merged),
    "counts": store.matrix_shape(snakemake.input.counts),
}
contract.check_final(cells, ledger, matrix_shapes=shapes)
# The matrices are copied from the merge's files as they are; only the cell metadata is new.
store.assemble(
    snakemake.input.merged, cells, snakemake.output[0], layers={"counts": snakemake.input.counts}
)
