from clonetrack import runtime

log = runtime.start(snakemake.log[0])

import pandas as pd
from clonetrack import io, pl, qc

ledger = pd.concat([pd.read_csv(p, sep="\t") for p in snakemake.input.ledgers], ignore_index=True)
qc.check_ledger(ledger)
cells = pd.concat(
    [pd.read_csv(p, sep="\t", dtype={"barcode": str}) for p in snakemake.input.cells],
    ignore_index=True,
)
if len(cells) != ledger["n_cells_in"].sum():
    raise AssertionError(
        f"{len(cells)} per-cell QC rows but the ledger counts {ledger['n_cells_in'].sum()} cells in"
    )

fig = pl.plot_qc_ledger(ledger)
fig.savefig(snakemake.output.plot, dpi=110, bbox_inches="tight")
io.write_table_atomic(cells, snakemake.output.cells, index=False)
io.write_table_atomic(ledger, snakemake.output.ledger, index=False)
