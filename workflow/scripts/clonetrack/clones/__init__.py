"""Clones and their fate: lineage barcodes and given tables (``lineage``, re-exported here),
genotypes, copy number, malignant cells, the per-patient clone call, dynamics across timepoints and
resistance signatures.
"""

from .lineage import (
    LINEAGE_STATUSES,
    assign_given_clones,
    attach_lineage_clones,
    call_lineage_clones,
)

__all__ = [
    "LINEAGE_STATUSES",
    "assign_given_clones",
    "call_lineage_clones",
    "attach_lineage_clones",
]
