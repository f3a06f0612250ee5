"""Figures for the report. Every function returns a matplotlib Figure and never saves it."""

from .clones import plot_clone_dynamics, plot_cohort_overview, plot_signature_scores
from .cnv import plot_cnv_heatmap
from .cohort import biomarker_panels, correlation_panels, patient_panels
from .de import plot_volcanoes
from .embedding import plot_integration_metrics, plot_umaps
from .qc import plot_qc_ledger, plot_qc_sample

__all__ = [
    "biomarker_panels",
    "correlation_panels",
    "patient_panels",
    "plot_clone_dynamics",
    "plot_cnv_heatmap",
    "plot_cohort_overview",
    "plot_integration_metrics",
    "plot_qc_ledger",
    "plot_qc_sample",
    "plot_signature_scores",
    "plot_umaps",
    "plot_volcanoes",
]
