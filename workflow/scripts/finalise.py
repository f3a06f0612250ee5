from clonetrack import runtime

log = runtime.start(snakemake.log[0])

import anndata as ad  # noqa: E402
import pandas as pd  # noqa: E402

from clonetrack import checks, io  # noqa: E402

adata = ad.read_h5ad(snakemake.input.adata)
ledger = pd.read_csv(snakemake.input.ledger, sep="\t")
checks.check_final(adata, ledger)
io.write_h5ad_atomic(adata, snakemake.output[0])
