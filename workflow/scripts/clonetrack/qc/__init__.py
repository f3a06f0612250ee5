"""Quality control of one sample: empty droplets, ambient RNA, per-cell metrics and thresholds,
doublets, and the ledger that accounts for every barcode.

The per-cell QC (``cells``) is re-exported here; ``droplets``, ``ambient`` and ``doublets`` are
imported as modules.
"""

from .cells import (
    DROPLET_LEDGER_COLUMNS,
    GENE_PATTERN_SETTINGS,
    REMOVAL_REASONS,
    QCParams,
    adaptive_thresholds,
    add_droplet_columns,
    add_qc_metrics,
    assign_removal_reason,
    check_ledger,
    doublet_columns,
    run_qc,
)

__all__ = [
    "REMOVAL_REASONS",
    "GENE_PATTERN_SETTINGS",
    "QCParams",
    "add_qc_metrics",
    "adaptive_thresholds",
    "doublet_columns",
    "assign_removal_reason",
    "run_qc",
    "DROPLET_LEDGER_COLUMNS",
    "add_droplet_columns",
    "check_ledger",
]
