"""The words the workflow's outputs use, each defined once.

Code, config defaults (``config/config.yaml``), report captions and docs take these from here or
are checked against them (``tests/unit/test_vocabulary.py``).
"""

from __future__ import annotations

#: Label of a cell without a confident call: its cell type (annotation) or its clone.
UNASSIGNED = "unassigned"

#: Clone classes, first vs last timepoint of a patient (``dynamics.classify_clones``).
CLONE_CLASSES = ("expanding", "contracting", "persistent", "eliminated", "emergent", "undetermined")

#: Resistant clones by default (``clones.dynamics.resistant_classes``): only a clone gaining share
#: under treatment. A persistent clone kept its share of a leukaemia that shrank as a whole, so it
#: was depleted like the rest.
RESISTANT_CLASSES = ("expanding",)

#: Sensitive clones by default (``clones.dynamics.sensitive_classes``).
SENSITIVE_CLASSES = ("contracting", "eliminated")

#: Clones that survived treatment (``clones.dynamics.surviving_classes``), the cohort model's
#: set: a broader question than resistance ("is anything of the leukaemia left, and was it there
#: before?"), so persistent and emergent clones count.
SURVIVING_CLASSES = ("expanding", "persistent", "emergent")

#: Clone sources, in the default order of ``clones.source_precedence`` (a sample takes the first
#: it has). A new source is named here and its caller joins
#: ``clonetrack.clones.patient_clones.CLONE_SOURCE_REGISTRY``; tests fail until the registry and the
#: config schema's enum name the same sources.
CLONE_SOURCES = ("given", "lineage_barcode", "genotype", "cnv")

#: The cell types a marker panel may name (the classes of ``annotation``).
CELL_TYPES = (
    "HSC",
    "Prog",
    "GMP",
    "ProMono",
    "Mono",
    "cDC",
    "pDC",
    "earlyEry",
    "lateEry",
    "ProB",
    "B",
    "Plasma",
    "T",
    "CTL",
    "NK",
)
