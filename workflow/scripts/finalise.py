from clonetrack import runtime

log = runtime.start(snakemake.log[0])

import anndata as ad  # noqa: E402
import pandas as pd  # noqa: E402

from clonetrack import checks, store  # noqa: E402

cells = ad.read_h5ad(snakemake.input.cells)
clones = pd.concat([pd.read_csv(p, sep="\t", index_col="cell") for p in snakemake.input.clones])
checks.attach_clones(cells, clones)
ledger = pd.read_csv(snakemake.input.ledger, sep="\t")
checks.check_final(cells, ledger, matrix_shapes=store.matrix_shapes(snakemake.input.merged))
# The matrices are copied from the merged file as they are; only the cell metadata is new.
store.assemble(snakemake.input.merged, cells, snakemake.output[0])
