from clonetrack import runtime

log = runtime.start(snakemake.log[0])

import anndata as ad  # noqa: E402
import pandas as pd  # noqa: E402

from clonetrack import checks, io  # noqa: E402

adata = ad.read_h5ad(snakemake.input.adata)
clones = pd.concat([pd.read_csv(p, sep="\t", index_col="cell") for p in snakemake.input.clones])
checks.attach_clones(adata, clones)
ledger = pd.read_csv(snakemake.input.ledger, sep="\t")
checks.check_final(adata, ledger)
io.write_h5ad_atomic(adata, snakemake.output[0])
