"""Merge, normalise and select genes on disk; reduce and integrate across batches; cluster and
score the integration.

Merging and integration are re-exported here; ``cluster`` and ``metrics`` are imported as
modules.
"""

from .merge import (
    LOESS_SPANS,
    combine_seurat_v3,
    merge_samples_on_disk,
    normalise_on_disk,
    select_genes_on_disk,
)
from .methods import EMBEDDING_KEYS, integrate, run_harmony, run_scvi

__all__ = [
    "LOESS_SPANS",
    "merge_samples_on_disk",
    "combine_seurat_v3",
    "select_genes_on_disk",
    "normalise_on_disk",
    "EMBEDDING_KEYS",
    "run_harmony",
    "run_scvi",
    "integrate",
]
