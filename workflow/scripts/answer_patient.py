from clonetrack import runtime

log = runtime.start(snakemake.log[0])

import pandas as pd
from clonetrack import pl

patient = snakemake.wildcards.patient
text = {"patient_id": str, "sample_id": str, "clone": str, "response": str}
answers = pd.read_csv(snakemake.input.answers, sep="\t", dtype=text, keep_default_na=False)
freqs = pd.read_csv(snakemake.input.frequencies, sep="\t", dtype=text)
classes = pd.read_csv(snakemake.input.classes, sep="\t", dtype=text)
fig = pl.patient_panels(freqs, classes, answers[answers["patient_id"] == patient])
fig.savefig(snakemake.output[0], dpi=110, bbox_inches="tight")
