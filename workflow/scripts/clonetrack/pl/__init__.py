"""Figures for the report. Every function returns a matplotlib Figure and never saves it.

The figures load lazily (SPEC 1, ``lazy_loader``): a job drawing clone figures does not import
scanpy and the QC package, which the embedding and QC figures need.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "clones": ["plot_clone_dynamics", "plot_cohort_overview", "plot_signature_scores"],
        "cnv": ["plot_cnv_heatmap", "plot_no_cnv"],
        "cohort": ["biomarker_panels", "correlation_panels", "patient_panels"],
        "de": ["plot_volcanoes"],
        "embedding": ["plot_integration_metrics", "plot_umaps"],
        "qc": ["plot_qc_ledger", "plot_qc_sample"],
    },
)
