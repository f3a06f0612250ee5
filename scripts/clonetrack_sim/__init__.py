"""Seeded simulator of longitudinal AML marrow scRNA-seq with its ground truth.

The simulated cohort is the project's toy dataset: patients sampled at diagnosis, on treatment
and at relapse, with normal marrow cell types (van Galen 2019 classes), malignant clones carrying
copy-number-like expression shifts, a resistant clone that expands under treatment, planted
timepoint DE in monocytes, low-quality cells and doublets. Every planted effect is recorded so that
the workflow's results can be scored against it. The same model, with counts drawn straight into
sparse matrices, writes the benchmark's large cohorts (``scripts/benchmark_cohort.py``).

Test data only: the runtime package ``clonetrack`` never imports it.

Modules: :mod:`~clonetrack_sim.design` (what is planted), :mod:`~clonetrack_sim.genes` (the gene
set), :mod:`~clonetrack_sim.programmes` and :mod:`~clonetrack_sim.clones` (gene-level effects),
:mod:`~clonetrack_sim.cells` (one sample's cells and counts), :mod:`~clonetrack_sim.cohort`,
:mod:`~clonetrack_sim.mouse`, :mod:`~clonetrack_sim.lineage` (clone tables, genotypes, lentiviral
barcodes), :mod:`~clonetrack_sim.droplets` (unfiltered matrices) and
:mod:`~clonetrack_sim.writers`.
"""

from clonetrack_sim.barcodes import barcode_strings
from clonetrack_sim.cells import COUNT_MODELS
from clonetrack_sim.cohort import SimulatedCohort, simulate_cohort, simulate_response_cohort
from clonetrack_sim.design import (
    CELL_TYPE_MARKERS,
    NORMAL_COMPOSITION,
    RESPONSE_PLANS,
    TIMEPOINTS,
    CohortDesign,
)
from clonetrack_sim.droplets import simulate_raw_droplets
from clonetrack_sim.genes import select_genes, with_mitochondrial_genes
from clonetrack_sim.lineage import (
    GENOTYPE_CLONE_VARIANTS,
    GENOTYPE_FOUNDER,
    genotype_reads,
    lineage_barcode_counts,
)
from clonetrack_sim.mouse import mouse_symbol, simulate_mouse_cohort
from clonetrack_sim.writers import write_cohort, write_counts_h5ad

__all__ = [
    "CELL_TYPE_MARKERS",
    "COUNT_MODELS",
    "GENOTYPE_CLONE_VARIANTS",
    "GENOTYPE_FOUNDER",
    "NORMAL_COMPOSITION",
    "RESPONSE_PLANS",
    "TIMEPOINTS",
    "CohortDesign",
    "SimulatedCohort",
    "barcode_strings",
    "genotype_reads",
    "lineage_barcode_counts",
    "mouse_symbol",
    "select_genes",
    "simulate_cohort",
    "simulate_mouse_cohort",
    "simulate_raw_droplets",
    "simulate_response_cohort",
    "with_mitochondrial_genes",
    "write_cohort",
    "write_counts_h5ad",
]
