from clonetrack import runtime

log = runtime.start(snakemake.log[0])

import matplotlib.pyplot as plt
import pandas as pd
from clonetrack import pl

patient = snakemake.wildcards.patient
freqs = pd.read_csv(snakemake.input.frequencies, sep="\t", dtype={"patient_id": str, "clone": str})
classes = pd.read_csv(snakemake.input.classes, sep="\t", dtype={"patient_id": str, "clone": str})
if (freqs["patient_id"] == patient).any():
    fig = pl.plot_clone_dynamics(freqs, patient, classes=classes)
else:
    # A patient without clones still gets a page saying so (see the clone sources table).
    fig, ax = plt.subplots(figsize=(6, 1.5))
    ax.text(
        0.5,
        0.5,
        f"{patient}: no clones were defined (see the clone sources table).",
        ha="center",
        va="center",
    )
    ax.axis("off")
fig.savefig(snakemake.output[0], dpi=110, bbox_inches="tight")
