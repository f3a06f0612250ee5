from clonetrack import runtime

log = runtime.start(snakemake.log[0])

import pandas as pd
from clonetrack import pl

patient = snakemake.wildcards.patient
freqs = pd.read_csv(snakemake.input.frequencies, sep="\t", dtype={"patient_id": str, "clone": str})
classes = pd.read_csv(snakemake.input.classes, sep="\t", dtype={"patient_id": str, "clone": str})
# A patient without clones still gets a page saying so (see the clone sources table).
fig = pl.plot_clone_dynamics(freqs, patient, classes=classes)
fig.savefig(snakemake.output[0], dpi=110, bbox_inches="tight")
