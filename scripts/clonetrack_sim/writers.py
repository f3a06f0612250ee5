"""Write a simulated cohort as a toy dataset: counts in the formats the workflow reads, the
sample sheet, clone tables, genotypes, lineage barcodes and the truth."""

from __future__ import annotations

import gzip
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
from clonetrack.errors import InputError
from scipy import io as spio
from scipy import sparse

from clonetrack_sim.cohort import SimulatedCohort

#: Input format per patient in the written bundle (cycled for further patients).
FORMATS = ("10x_mtx", "h5ad", "dense_txt")
SHEET_COLUMNS = ["sample_id", "patient_id", "timepoint", "timepoint_order", "path", "format",
                 "clones", "genotypes", "batch", "sex"]  # fmt: skip
CELL_TRUTH_COLUMNS = ["sample_id", "barcode", "cell_type", "malignant", "clone", "low_quality",
                      "doublet", "doublet_partner"]  # fmt: skip


def write_cohort(
    cohort: SimulatedCohort, outdir: str | Path, *, formats: dict[str, str] | None = None
) -> pd.DataFrame:
    """Write the cohort as a toy dataset: counts, sample sheet, clone tables and truth.

    Parameters
    ----------
    cohort
        From :func:`simulate_cohort`.
    outdir
        Target folder (created); ``samples.tsv`` paths are relative to it. A cohort simulated
        with responses also gets ``patients.tsv``, ``measurements/dst.tsv`` and
        ``truth/patients.tsv`` (the planted monocytic share behind the drug sensitivity).
    formats
        Count format per patient (``10x_mtx``, ``h5ad``, ``dense_txt``); default: the first patient
        10x, the second h5ad, the third dense text. The ``format`` column is left empty for every
        patient's ``on_treatment`` sample to exercise auto-detection.

    Returns
    -------
    The sample sheet as written.
    """
    out = Path(outdir)
    for sub in ("counts", "truth", "clones", "genotypes"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    patients = list(dict.fromkeys(cohort.samples["patient_id"]))
    formats = formats or {p: FORMATS[i % len(FORMATS)] for i, p in enumerate(patients)}
    rows = []
    for _, s in cohort.samples.iterrows():
        sid, fmt = s["sample_id"], formats[s["patient_id"]]
        rel = _write_counts(cohort.adatas[sid], out, sid, fmt, s["patient_id"])
        rows.append(
            {
                **s.to_dict(),
                "path": rel,
                "format": "" if s["timepoint"] == "on_treatment" else fmt,
                **_write_sample_tables(cohort, out, sid),
            }
        )
    cols = list(SHEET_COLUMNS)
    if cohort.lineage:
        cols.insert(7, "lineage_barcodes")
    sheet = pd.DataFrame(rows)[cols]
    sheet.to_csv(out / "samples.tsv", sep="\t", index=False)
    cohort.genes.to_csv(out / "genes.tsv", sep="\t", index=False)
    if len(cohort.patients):
        _write_patient_tables(cohort, out)
    _write_truth(cohort, out)
    return sheet


def write_counts_h5ad(adata: ad.AnnData, path: str | Path, *, compression: str | None = "gzip"):
    """Counts alone, as a count matrix is shared: integer ``X``, barcodes as ``obs_names``, genes
    as ``var_names`` (the truth in ``obs`` stays out)."""
    bare = ad.AnnData(
        X=adata.X.copy(),
        obs=pd.DataFrame(index=adata.obs["barcode"].to_numpy()),
        var=pd.DataFrame(index=adata.var_names.to_numpy()),
    )
    bare.write_h5ad(path, compression=compression)


def _write_counts(adata: ad.AnnData, out: Path, sid: str, fmt: str, patient: str) -> str:
    """One sample's counts in ``fmt``; returns the path relative to ``out``."""
    if fmt == "10x_mtx":
        rel = f"counts/{sid}"
        _write_10x(adata, out / rel)
    elif fmt == "h5ad":
        rel = f"counts/{sid}.h5ad"
        write_counts_h5ad(adata, out / rel)
    elif fmt == "dense_txt":
        rel = f"counts/{sid}.txt.gz"
        _write_dense(adata, out / rel)
    else:
        raise InputError(f"unknown format {fmt!r} for patient {patient}; use {FORMATS}")
    return rel


def _write_sample_tables(cohort: SimulatedCohort, out: Path, sid: str) -> dict[str, str]:
    """The sample's clone table, lineage barcodes and genotypes, where it has them; returns
    their paths relative to ``out`` for the sheet ('' where absent)."""
    paths = {"clones": "", "genotypes": "", "lineage_barcodes": ""}
    if sid in cohort.given_clones:
        paths["clones"] = f"clones/{sid}.tsv"
        cohort.given_clones[sid].to_csv(out / paths["clones"], sep="\t", index=False)
    if sid in cohort.lineage:
        paths["lineage_barcodes"] = f"lineage/{sid}"
        lineage = cohort.lineage[sid]
        _write_10x(lineage, out / paths["lineage_barcodes"], barcodes=lineage.obs_names)
    if sid in cohort.genotypes:
        paths["genotypes"] = f"genotypes/{sid}.tsv"
        cohort.genotypes[sid].to_csv(out / paths["genotypes"], sep="\t", index=False)
    return paths


def _write_patient_tables(cohort: SimulatedCohort, out: Path) -> None:
    """The patient table (without the planted monocytic share, which goes to the truth) and the
    drug-sensitivity measurements."""
    truth = ["malignant_monocytic_fraction"]
    cohort.patients.drop(columns=truth).to_csv(out / "patients.tsv", sep="\t", index=False)
    cohort.patients[["patient_id", *truth]].to_csv(
        out / "truth/patients.tsv", sep="\t", index=False
    )
    (out / "measurements").mkdir(exist_ok=True)
    cohort.measurements.to_csv(out / "measurements/dst.tsv", sep="\t", index=False)


def _write_truth(cohort: SimulatedCohort, out: Path) -> None:
    cohort.cells[CELL_TRUTH_COLUMNS].to_csv(out / "truth/cells.tsv", sep="\t", index=False)
    cohort.clones.to_csv(out / "truth/clones.tsv", sep="\t", index=False)
    cohort.cnv_segments.to_csv(out / "truth/cnv_segments.tsv", sep="\t", index=False)
    cohort.de_genes.to_csv(out / "truth/de_genes.tsv", sep="\t", index=False, float_format="%.4f")
    cohort.resistance_genes.to_csv(
        out / "truth/resistance_genes.tsv", sep="\t", index=False, float_format="%.4f"
    )
    cohort.programmes.to_csv(
        out / "truth/programmes.tsv", sep="\t", index=False, float_format="%.3f"
    )


def _write_10x(adata: ad.AnnData, folder: Path, *, barcodes=None) -> None:
    """Cell Ranger v3 layout; gene ids are the symbols (the position table has no Ensembl ids)."""
    barcodes = adata.obs["barcode"] if barcodes is None else pd.Series(barcodes)
    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(folder / "matrix.mtx.gz", "wb", compresslevel=9) as fh:
        spio.mmwrite(fh, sparse.csr_matrix(adata.X).T.tocoo(), field="integer")
    features = pd.DataFrame(
        {"id": adata.var_names, "name": adata.var_names, "type": "Gene Expression"}
    )
    features.to_csv(folder / "features.tsv.gz", sep="\t", header=False, index=False)
    barcodes.to_csv(folder / "barcodes.tsv.gz", sep="\t", header=False, index=False)


def _write_dense(adata: ad.AnnData, path: Path) -> None:
    """GEO-style genes x cells text: header ``Gene`` then barcodes, first column the symbol."""
    dense = np.asarray(sparse.csr_matrix(adata.X).T.todense())
    lines = ["\t".join(["Gene", *adata.obs["barcode"]])]
    lines += [
        g + "\t" + "\t".join(map(str, row)) for g, row in zip(adata.var_names, dense, strict=True)
    ]
    with gzip.open(path, "wt", compresslevel=9) as fh:
        fh.write("\n".join(lines) + "\n")
