"""Reading and writing files: count matrices and given tables, the on-disk cell store, the sample
sheet, the checks before any job, and the contract of the final object.

The readers and atomic writers are attributes of this package; ``store``, ``sheet``, ``tables``,
``preflight`` and ``contract`` are imported as modules. They load lazily (SPEC 1,
``lazy_loader``), so that importing one module, e.g. the sheet's reader ``clonetrack.io.sheet``,
does not import the count-matrix readers and with them anndata.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submodules=["atomic", "contract", "preflight", "readers", "sheet", "store", "tables"],
    submod_attrs={
        "readers": [
            "detect_format",
            "dense_layout",
            "read_counts",
            "read_clone_table",
            "read_normal_reference",
        ],
        "atomic": ["atomic_target", "write_h5ad_atomic", "write_table_atomic"],
    },
)
