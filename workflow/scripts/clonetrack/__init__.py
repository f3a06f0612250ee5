"""clonetrack: longitudinal single-cell RNA-seq of leukaemia, from counts to clone dynamics."""

__version__ = "0.1.0"
