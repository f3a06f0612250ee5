from clonetrack import runtime

log = runtime.start(snakemake.log[0])

import pandas as pd
from clonetrack import io, pl
from clonetrack.clones import dynamics
from clonetrack.io import store

cfg = snakemake.params.dynamics
# Cell metadata only: a backed read would still load layers["counts"] into memory.
obs = store.read_parts(snakemake.input[0], obsm=False, uns=False).obs
freqs = dynamics.clone_frequencies(obs)
comparisons = dynamics.compare_timepoints(freqs)
for reason in comparisons.attrs.get("skipped", []):
    log.warning("not compared: %s", reason)
classes = dynamics.classify_clones(
    comparisons,
    freqs,
    alpha=cfg["alpha"],
    min_fold=cfg["min_fold"],
    absent_upper=cfg["absent_upper"],
    resistant_classes=tuple(cfg["resistant_classes"]),
    sensitive_classes=tuple(cfg["sensitive_classes"]),
)
summary, per_patient = dynamics.cohort_model(
    freqs, classes, surviving_classes=tuple(cfg["surviving_classes"])
)
fig = pl.plot_cohort_overview(freqs, classes)
fig.savefig(snakemake.output.overview, dpi=110, bbox_inches="tight")
io.write_table_atomic(pd.DataFrame([summary]), snakemake.output.cohort, index=False)
io.write_table_atomic(per_patient, snakemake.output.cohort_patients, index=False)
io.write_table_atomic(comparisons, snakemake.output.comparisons, index=False)
io.write_table_atomic(classes, snakemake.output.classes, index=False)
io.write_table_atomic(freqs, snakemake.output.frequencies, index=False)
