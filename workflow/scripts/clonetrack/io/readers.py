"""Readers for count matrices and clone tables.

Every reader returns data in the shape described in ``docs/data_contract.md`` and refuses bad input
with :class:`~clonetrack.errors.InputError` naming the file, the sample and what to do.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import logging
import os
import zlib
from collections.abc import Iterator
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata.utils import make_index_unique

from clonetrack.errors import InputError
from clonetrack.io.sheet import FORMATS

log = logging.getLogger(__name__)
_DENSE_SUFFIXES = (".txt", ".tsv", ".csv", ".txt.gz", ".tsv.gz", ".csv.gz")
_GZIP_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error)
# values parsed per chunk of dense text: bounds the dense buffer at ~64 MB of float64
_DENSE_CHUNK_VALUES = 8_000_000


# ----------------------------------------------------------------------------------------------
# format detection


def detect_format(path: os.PathLike | str) -> str:
    """Guess the count-matrix format of ``path`` from its name.

    Parameters
    ----------
    path
        A Cell Ranger matrix folder, or a file.

    Returns
    -------
    ``"10x_mtx"`` for a folder holding ``matrix.mtx`` or ``matrix.mtx.gz``, ``"10x_h5"`` for
    ``.h5``, ``"h5ad"`` for ``.h5ad``, ``"dense_txt"`` for ``.txt``, ``.tsv``, ``.csv`` (optionally
    gzipped).

    Raises
    ------
    InputError
        If ``path`` does not exist or its format cannot be told from its name.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p} does not exist: check the `path` column of the sample sheet")
    if p.is_dir():
        if (p / "matrix.mtx").is_file() or (p / "matrix.mtx.gz").is_file():
            return "10x_mtx"
        nested = [
            d
            for d in ("filtered_feature_bc_matrix", "filtered_gene_bc_matrices")
            if (p / d).is_dir()
        ]
        hint = f" (did you mean {p / nested[0]}?)" if nested else ""
        raise InputError(
            f"{p} is a folder without matrix.mtx or matrix.mtx.gz{hint}: point `path` at a Cell "
            "Ranger matrix folder or a file"
        )
    name = p.name.lower()
    if name.endswith(".h5"):
        return "10x_h5"
    if name.endswith(".h5ad"):
        return "h5ad"
    if name.endswith(_DENSE_SUFFIXES):
        return "dense_txt"
    raise InputError(
        f"cannot tell the format of {p} from its name: set the `format` column of the sample "
        f"sheet to one of {', '.join(FORMATS)}"
    )


# ----------------------------------------------------------------------------------------------
# helpers


def _open_text(path: Path):
    """Open a text file, gunzipping when the content (not the name) says it is gzip."""
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


@contextlib.contextmanager
def _gzip_guard(path: Path, sample_id: str) -> Iterator[None]:
    """Turn decompression failures into an InputError naming the file."""
    try:
        yield
    except _GZIP_ERRORS as err:
        raise InputError(
            f"{path} (sample '{sample_id}') is truncated or corrupt ({type(err).__name__}: {err}): "
            "copy or download the file again"
        ) from err


def _read_lines_table(path: Path, sample_id: str, what: str) -> pd.DataFrame:
    """A headerless TSV (features, genes, barcodes) as text; refuses an empty one."""
    with _gzip_guard(path, sample_id), _open_text(path) as fh:
        try:
            table = pd.read_csv(fh, sep="\t", header=None, dtype=str, keep_default_na=False)
        except pd.errors.EmptyDataError:
            table = pd.DataFrame()
    if table.empty:
        raise InputError(f"{path} (sample '{sample_id}') is empty: it should list the {what}")
    return table


def _first_index(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _check_values(X: sp.csr_matrix, path: Path, sample_id: str, barcodes, genes) -> None:
    """Refuse NaN, negative and non-integer counts, naming one offending gene and cell."""
    data = X.data

    def where(i: int) -> str:
        row = int(np.searchsorted(X.indptr, i, side="right") - 1)
        return f"gene {genes[X.indices[i]]} in cell {barcodes[row]}"

    bad = ~np.isfinite(data)
    if bad.any():
        i = _first_index(bad)
        raise InputError(
            f"{path} (sample '{sample_id}') contains missing or infinite values "
            f"(e.g. {data[i]} for {where(i)}): clonetrack needs raw UMI counts; "
            "supply the raw counts"
        )
    bad = data < 0
    if bad.any():
        i = _first_index(bad)
        raise InputError(
            f"{path} (sample '{sample_id}') contains negative values (e.g. {data[i]:g} for "
            f"{where(i)}): clonetrack needs raw UMI counts; supply the raw counts "
            "(for h5ad: X or layers['counts'])"
        )
    bad = data != np.round(data)
    if bad.any():
        i = _first_index(bad)
        raise InputError(
            f"{path} (sample '{sample_id}') contains non-integer values (e.g. {data[i]:g} for "
            f"{where(i)}): clonetrack needs raw UMI counts; supply the raw counts "
            "(for h5ad: X or layers['counts'])"
        )


def _refuse_duplicates(values: pd.Index, path: Path, sample_id: str, what: str, todo: str) -> None:
    dup = values[values.duplicated()].unique()
    if len(dup):
        examples = ", ".join(map(str, dup[:5]))
        raise InputError(
            f"{path} (sample '{sample_id}') has {len(dup)} duplicated {what} (e.g. {examples}): "
            + todo
        )


def _assemble(
    X,
    *,
    barcodes,
    names,
    gene_ids,
    path: Path,
    sample_id: str,
    fmt: str,
    names_unique_required: bool,
) -> ad.AnnData:
    """Validate a cells x genes matrix with its labels and build the contract's AnnData."""
    X = sp.csr_matrix(X)
    barcodes = pd.Index(np.asarray(barcodes, dtype=str))
    names = pd.Index(np.asarray(names, dtype=str))
    n_cells, n_genes = X.shape
    if n_cells == 0 or n_genes == 0:
        raise InputError(
            f"{path} (sample '{sample_id}') holds {n_cells} cells and {n_genes} genes: "
            "supply a count matrix with at least one cell and one gene"
        )
    _check_values(X, path, sample_id, barcodes, names)
    _refuse_duplicates(
        barcodes,
        path,
        sample_id,
        "cell barcodes",
        "each cell must appear once; fix or deduplicate the barcodes",
    )
    n_renamed = 0
    if gene_ids is not None:
        gene_ids = pd.Index(np.asarray(gene_ids, dtype=str))
        _refuse_duplicates(
            gene_ids,
            path,
            sample_id,
            "gene ids",
            "each feature must appear once; regenerate the matrix",
        )
    if names_unique_required or gene_ids is None:
        _refuse_duplicates(
            names,
            path,
            sample_id,
            "gene names",
            "the gene name is the only gene identifier here; sum or drop the duplicated rows",
        )
    elif not names.is_unique:
        # symbols repeat in real Cell Ranger references (distinct ids, one symbol)
        n_renamed = int(names.duplicated().sum())
        names = make_index_unique(names)

    X.sum_duplicates()
    X.eliminate_zeros()
    obs = pd.DataFrame(
        {"barcode": barcodes.to_numpy(), "sample_id": sample_id},
        index=pd.Index([f"{sample_id}_{b}" for b in barcodes]),
    )
    var = pd.DataFrame(index=names)
    if gene_ids is not None:
        var["gene_ids"] = gene_ids.to_numpy()
    adata = ad.AnnData(X=X.astype(np.float32), obs=obs, var=var)
    adata.uns["clonetrack"] = {
        "read": {
            "path": str(path),
            "format": fmt,
            "sample_id": sample_id,
            "n_cells": int(n_cells),
            "n_genes": int(n_genes),
            "n_genes_renamed": n_renamed,
        }
    }
    return adata


# ----------------------------------------------------------------------------------------------
# Cell Ranger matrix folder


def _find(folder: Path, *names: str) -> Path | None:
    for name in names:
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def _read_mtx(path: Path, sample_id: str) -> sp.coo_matrix:
    """Matrix Market coordinate file, checked against its declared size and entry count."""
    with _gzip_guard(path, sample_id), _open_text(path) as fh:
        banner = fh.readline()
        if not banner.strip():
            raise InputError(f"{path} (sample '{sample_id}') is empty: regenerate the matrix")
        fields = banner.lower().split()
        if (
            fields[:3] != ["%%matrixmarket", "matrix", "coordinate"]
            or fields[3:4] not in (["integer"], ["real"], ["double"])
            or fields[4:5] != ["general"]
        ):
            raise InputError(
                f"{path} (sample '{sample_id}') is not a general coordinate Matrix Market file "
                f"(banner: {banner.strip()!r}): supply Cell Ranger's matrix.mtx"
            )
        line = fh.readline()
        while line.startswith("%"):
            line = fh.readline()
        try:
            n_rows, n_cols, n_entries = (int(v) for v in line.split())
        except ValueError as err:
            raise InputError(
                f"{path} (sample '{sample_id}') has no valid size line (got {line.strip()!r}): "
                "the file is damaged; regenerate it"
            ) from err
        try:
            triplets = pd.read_csv(
                fh,
                sep=r"\s+",
                header=None,
                names=["row", "col", "value"],
                dtype={"row": np.int64, "col": np.int64, "value": np.float64},
            )
        except pd.errors.EmptyDataError:
            triplets = pd.DataFrame({"row": [], "col": [], "value": []})
        except (ValueError, pd.errors.ParserError) as err:
            raise InputError(
                f"{path} (sample '{sample_id}') has a malformed entry ({err}): regenerate the file"
            ) from err
    if len(triplets) != n_entries or triplets.isna().to_numpy().any():
        raise InputError(
            f"{path} (sample '{sample_id}') declares {n_entries} entries but holds {len(triplets)} "
            "complete ones: the file is truncated; copy or regenerate it"
        )
    rows = triplets["row"].to_numpy() - 1
    cols = triplets["col"].to_numpy() - 1
    if n_entries and (
        rows.min() < 0 or cols.min() < 0 or rows.max() >= n_rows or cols.max() >= n_cols
    ):
        raise InputError(
            f"{path} (sample '{sample_id}') has entries outside its declared {n_rows} x {n_cols} "
            "size: the file is damaged; regenerate it"
        )
    return sp.coo_matrix((triplets["value"].to_numpy(), (rows, cols)), shape=(n_rows, n_cols))


def _read_10x_mtx(folder: Path, sample_id: str, feature_type: str | None) -> ad.AnnData:
    matrix = _find(folder, "matrix.mtx")
    features = _find(folder, "features.tsv", "genes.tsv")
    barcodes_file = _find(folder, "barcodes.tsv")
    for found, name in (
        (matrix, "matrix.mtx"),
        (features, "features.tsv or genes.tsv"),
        (barcodes_file, "barcodes.tsv"),
    ):
        if found is None:
            raise InputError(
                f"{folder} (sample '{sample_id}') has no {name}(.gz): a Cell Ranger matrix folder "
                "needs matrix.mtx, features.tsv (or genes.tsv) and barcodes.tsv"
            )
    counts = _read_mtx(matrix, sample_id)  # genes x cells
    feat = _read_lines_table(features, sample_id, "features (one per matrix row)")
    barcodes = _read_lines_table(barcodes_file, sample_id, "cell barcodes (one per matrix column)")[
        0
    ]
    if counts.shape != (len(feat), len(barcodes)):
        raise InputError(
            f"{matrix} (sample '{sample_id}') is {counts.shape[0]} features x {counts.shape[1]} "
            f"cells but {features.name} lists {len(feat)} features and {barcodes_file.name} lists "
            f"{len(barcodes)} barcodes: the three files must come from the same Cell Ranger run"
        )
    ids = feat[0]
    names = feat[1] if feat.shape[1] > 1 else None
    X = counts.T.tocsr()
    if feat.shape[1] > 2 and feature_type is not None:
        keep = (feat[2] == feature_type).to_numpy()
        if not keep.any():
            raise InputError(
                f"{features} (sample '{sample_id}') has no '{feature_type}' features (types: "
                f"{', '.join(sorted(feat[2].unique()))}): is this a lineage-barcode matrix? Put "
                "it in the lineage_barcodes column, not path"
            )
        X, ids = X[:, keep], ids[keep]
        names = names[keep]
    if names is None:
        return _assemble(
            X,
            barcodes=barcodes,
            names=ids,
            gene_ids=None,
            path=folder,
            sample_id=sample_id,
            fmt="10x_mtx",
            names_unique_required=True,
        )
    # an empty symbol falls back to the id
    names = names.where(names != "", ids)
    return _assemble(
        X,
        barcodes=barcodes,
        names=names,
        gene_ids=ids,
        path=folder,
        sample_id=sample_id,
        fmt="10x_mtx",
        names_unique_required=False,
    )


# ----------------------------------------------------------------------------------------------
# Cell Ranger h5


_H5_V3_KEYS = ("data", "indices", "indptr", "shape", "barcodes", "features/id", "features/name")
_H5_V2_KEYS = ("data", "indices", "indptr", "shape", "barcodes", "genes", "gene_names")


def _h5_text(dataset) -> np.ndarray:
    return np.array([v.decode() if isinstance(v, bytes) else str(v) for v in dataset[()]])


def _cellranger_group(f, path: Path, sample_id: str):
    """The group of a Cell Ranger ``.h5`` holding the matrix, checked for its datasets."""
    if "matrix" in f:  # Cell Ranger >= 3
        g, needed = f["matrix"], _H5_V3_KEYS
    elif len(f.keys()) == 1:  # Cell Ranger 2: one group named after the genome
        g, needed = f[next(iter(f.keys()))], _H5_V2_KEYS
    else:
        raise InputError(
            f"{path} (sample '{sample_id}') is not a Cell Ranger .h5 (no 'matrix' group): "
            "supply Cell Ranger's filtered_feature_bc_matrix.h5 or set the `format` column"
        )
    absent = [k for k in needed if k not in g]
    if absent:
        raise InputError(
            f"{path} (sample '{sample_id}') lacks {', '.join(absent)} in group '{g.name}': "
            "supply an unmodified Cell Ranger .h5"
        )
    return g


def _read_cellranger_h5(path: Path, sample_id: str) -> dict:
    """The arrays of a Cell Ranger ``.h5`` (v2 or v3): shape, CSC parts, barcodes, feature ids,
    names and types (``None`` for v2)."""
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise InputError(
            f"{path} (sample '{sample_id}') cannot be opened as HDF5 ({err}): the file is "
            "truncated or not a Cell Ranger .h5; copy it again or set the `format` column"
        ) from err
    with f:
        g = _cellranger_group(f, path, sample_id)
        n_genes, n_cells = (int(v) for v in g["shape"][()])
        parts = {
            "n_genes": n_genes,
            "n_cells": n_cells,
            "data": g["data"][()],
            "indices": g["indices"][()],
            "indptr": g["indptr"][()],
            "barcodes": _h5_text(g["barcodes"]),
        }
        if "matrix" in f:
            parts["ids"], parts["names"] = _h5_text(g["features/id"]), _h5_text(g["features/name"])
            has_types = "features/feature_type" in g
            parts["types"] = _h5_text(g["features/feature_type"]) if has_types else None
        else:
            parts["ids"], parts["names"] = _h5_text(g["genes"]), _h5_text(g["gene_names"])
            parts["types"] = None
    return parts


def _check_h5_consistent(parts: dict, path: Path, sample_id: str) -> None:
    """Refuse a Cell Ranger ``.h5`` whose arrays disagree with its shape or each other."""
    n_genes, n_cells = parts["n_genes"], parts["n_cells"]
    data, indices, indptr = parts["data"], parts["indices"], parts["indptr"]
    ids, barcodes = parts["ids"], parts["barcodes"]
    if (
        len(indptr) != n_cells + 1
        or len(barcodes) != n_cells
        or len(ids) != n_genes
        or len(data) != len(indices)
        or (len(indptr) and indptr[-1] != len(data))
        or (len(indices) and indices.max() >= n_genes)
    ):
        raise InputError(
            f"{path} (sample '{sample_id}') is inconsistent: shape {n_genes} x {n_cells}, "
            f"{len(ids)} features, {len(barcodes)} barcodes, {len(indptr)} column pointers, "
            f"{len(data)} values: the file is damaged; regenerate it"
        )


def _read_10x_h5(path: Path, sample_id: str, feature_type: str | None) -> ad.AnnData:
    parts = _read_cellranger_h5(path, sample_id)
    _check_h5_consistent(parts, path, sample_id)
    ids, names, types = parts["ids"], parts["names"], parts["types"]
    # Cell Ranger stores features x cells in CSC, which is cells x features in CSR
    X = sp.csr_matrix(
        (parts["data"].astype(np.float64), parts["indices"], parts["indptr"]),
        shape=(parts["n_cells"], parts["n_genes"]),
    )
    if types is not None and feature_type is not None:
        keep = types == feature_type
        if not keep.any():
            raise InputError(
                f"{path} (sample '{sample_id}') has no '{feature_type}' features (types: "
                f"{', '.join(sorted(set(types)))}): is this a lineage-barcode matrix? Put it in "
                "the lineage_barcodes column, not path"
            )
        X, ids, names = X[:, keep], ids[keep], names[keep]
    names = np.where(names == "", ids, names)
    return _assemble(
        X,
        barcodes=parts["barcodes"],
        names=names,
        gene_ids=ids,
        path=path,
        sample_id=sample_id,
        fmt="10x_h5",
        names_unique_required=False,
    )


# ----------------------------------------------------------------------------------------------
# h5ad


def _read_h5ad(path: Path, sample_id: str) -> ad.AnnData:
    try:
        src = ad.read_h5ad(path)
    except OSError as err:
        raise InputError(
            f"{path} (sample '{sample_id}') cannot be read as h5ad ({err}): the file is truncated "
            "or not an AnnData file; copy it again or set the `format` column"
        ) from err
    # Where analysed objects keep their counts: a counts layer, X, or raw (X normalised)
    places = [
        (name, matrix, var)
        for name, matrix, var in (
            ("layers['counts']", src.layers.get("counts"), src.var),
            ("X", src.X, src.var),
            ("raw.X", src.raw.X if src.raw is not None else None, src.raw.var if src.raw else None),
        )
        if matrix is not None
    ]
    if not places:
        raise InputError(
            f"{path} (sample '{sample_id}') has no X, layers['counts'] or raw: store the raw "
            "counts in one of them"
        )
    place, X, var = next((p for p in places if _holds_counts(p[1])), places[0])
    if place != places[0][0]:
        log.info(
            "%s (sample '%s'): %s holds no counts; counts read from %s",
            path,
            sample_id,
            places[0][0],
            place,
        )
    gene_ids = var["gene_ids"] if "gene_ids" in var.columns else None
    # obs_names are the barcodes and var_names the only sure gene identifier
    adata = _assemble(
        X,
        barcodes=src.obs_names,
        names=var.index,
        gene_ids=gene_ids,
        path=path,
        sample_id=sample_id,
        fmt="h5ad",
        names_unique_required=True,
    )
    adata.uns["clonetrack"]["read"]["counts_from"] = place
    return adata


def _holds_counts(matrix) -> bool:
    """Non-negative whole numbers only (raw UMI counts rather than normalised values)."""
    values = matrix.data if sp.issparse(matrix) else np.asarray(matrix)
    return bool(
        np.isfinite(values).all()
        and (values >= 0).all()
        and np.array_equal(values, np.round(values))
    )


# ----------------------------------------------------------------------------------------------
# dense genes x cells text (GEO)


def dense_layout(header: str, first: str) -> tuple[str, list[str], list[str], int]:
    """Separator, header fields, cell barcodes and the number of fields of the first gene row of
    a genes x cells text table, from its first two lines."""
    sep = "\t" if "\t" in header else ","
    fields = next(csv.reader([header], delimiter=sep), [])
    n_fields = len(next(csv.reader([first], delimiter=sep), []))
    # R's write.table omits the corner cell: the header is then all barcodes
    barcodes = fields if len(fields) == n_fields - 1 else fields[1:]
    return sep, fields, barcodes, n_fields


def _read_dense(path: Path, sample_id: str) -> ad.AnnData:
    with _gzip_guard(path, sample_id), _open_text(path) as fh:
        header = fh.readline().rstrip("\r\n")
        first = fh.readline().rstrip("\r\n")
    if not header.strip():
        raise InputError(
            f"{path} (sample '{sample_id}') is empty: supply a genes x cells table with a header "
            "of cell barcodes"
        )
    if not first.strip():
        raise InputError(
            f"{path} (sample '{sample_id}') has a header but no genes: supply a genes x cells "
            "table with one row per gene"
        )
    sep, fields, barcodes, n_fields = dense_layout(header, first)
    if len(barcodes) != n_fields - 1 or not barcodes:
        raise InputError(
            f"{path} (sample '{sample_id}') has {len(fields)} header fields but its first gene row "
            f"has {n_fields}: every row must be a gene name and one count per cell"
        )
    n_cells = len(barcodes)
    dtypes = {0: str} | dict.fromkeys(range(1, n_cells + 1), np.float64)
    names: list[str] = []
    blocks: list[sp.csr_matrix] = []
    with _gzip_guard(path, sample_id), _open_text(path) as fh:
        try:
            # chunks of genes keep the dense buffer small; each becomes sparse at once
            reader = pd.read_csv(
                fh,
                sep=sep,
                header=None,
                skiprows=1,
                dtype=dtypes,
                keep_default_na=False,
                na_values=[""],
                chunksize=max(1, _DENSE_CHUNK_VALUES // n_cells),
            )
            for chunk in reader:
                values = chunk.iloc[:, 1:].to_numpy()
                missing = np.isnan(values)
                if missing.any():
                    r, c = np.argwhere(missing)[0]
                    raise InputError(
                        f"{path} (sample '{sample_id}') has an empty count for gene "
                        f"{chunk.iat[r, 0]} in cell {barcodes[c]}: every row must be a gene name "
                        "followed by one count per cell"
                    )
                names.extend(chunk[0].tolist())
                blocks.append(sp.csr_matrix(values))
        except (ValueError, pd.errors.ParserError) as err:
            if isinstance(err, InputError):
                raise
            raise InputError(
                f"{path} (sample '{sample_id}') could not be parsed as a genes x cells table "
                f"({err}): every row must be a gene name followed by one integer count per cell"
            ) from err
    X = sp.vstack(blocks, format="csr").T.tocsr()
    return _assemble(
        X,
        barcodes=barcodes,
        names=names,
        gene_ids=None,
        path=path,
        sample_id=sample_id,
        fmt="dense_txt",
        names_unique_required=True,
    )


# ----------------------------------------------------------------------------------------------
# public readers


def read_counts(
    path: os.PathLike | str,
    *,
    sample_id: str,
    fmt: str | None = None,
    feature_type: str | None = "Gene Expression",
) -> ad.AnnData:
    """Read one sample's raw UMI counts.

    Parameters
    ----------
    path
        Cell Ranger v2/v3 matrix folder, Cell Ranger ``.h5``, ``.h5ad`` (counts from
        ``layers["counts"]`` when present, else ``X``) or a genes x cells text table whose first
        column is the gene symbol (GEO style; optionally gzipped).
    sample_id
        Prefix of the cell names and value of ``obs["sample_id"]``.
    fmt
        One of ``10x_mtx``, ``10x_h5``, ``h5ad``, ``dense_txt``; ``None`` or ``""`` detects it with
        :func:`detect_format`.
    feature_type
        Cell Ranger feature type to keep when the features carry a type; ``None`` keeps all (e.g.
        for lineage-barcode matrices).

    Returns
    -------
    Cells x genes AnnData with CSR float32 integer-valued ``X``, ``obs_names``
    ``{sample_id}_{barcode}``, ``obs["barcode"]``, ``obs["sample_id"]``, gene symbols as
    ``var_names`` and ``var["gene_ids"]`` when the input has ids. Symbols repeated under distinct
    Cell Ranger ids are made unique (``X``, ``X-1``, ...); their number is recorded in
    ``uns["clonetrack"]["read"]["n_genes_renamed"]``. Other obs/var columns of an h5ad are dropped.

    Raises
    ------
    InputError
        On an unknown format, a missing, empty, truncated or corrupt file, no cells or no genes,
        files of a matrix folder that disagree in size, negative or non-integer values, duplicated
        barcodes or gene ids, or duplicated gene names when the name is the only identifier.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(
            f"{p} (sample '{sample_id}') does not exist: check the `path` column of the "
            "sample sheet"
        )
    fmt = fmt or detect_format(p)
    if fmt not in FORMATS:
        raise InputError(
            f"unknown format {fmt!r} for {p} (sample '{sample_id}'): use one of "
            + ", ".join(FORMATS)
        )
    if fmt == "10x_mtx":
        if not p.is_dir():
            raise InputError(
                f"{p} (sample '{sample_id}') is a file but format 10x_mtx needs a Cell Ranger "
                "matrix folder: point `path` at the folder or fix the `format` column"
            )
        return _read_10x_mtx(p, sample_id, feature_type)
    if p.is_dir():
        raise InputError(
            f"{p} (sample '{sample_id}') is a folder but format {fmt} needs a file: fix the `path` "
            "or `format` column"
        )
    if p.stat().st_size == 0:
        raise InputError(f"{p} (sample '{sample_id}') is empty (0 bytes): copy the file again")
    if fmt == "10x_h5":
        return _read_10x_h5(p, sample_id, feature_type)
    if fmt == "h5ad":
        return _read_h5ad(p, sample_id)
    return _read_dense(p, sample_id)


def read_clone_table(path: os.PathLike | str, *, sample_id: str) -> pd.DataFrame:
    """Read a per-cell clone table given in the sample sheet.

    Parameters
    ----------
    path
        Tab-separated (comma-separated when named ``.csv``; optionally gzipped) table with columns
        ``barcode``, ``clone_id`` and optionally ``confidence`` in [0, 1].
    sample_id
        Sample the table belongs to; used to build the cell names.

    Returns
    -------
    Columns ``barcode``, ``clone_id`` (text), ``confidence`` (float; 1.0 when the column is absent)
    and ``obs_name`` (``{sample_id}_{barcode}``, matching :func:`read_counts`).

    Raises
    ------
    InputError
        If the file is missing or empty, lacks a column, has empty barcodes or clone ids,
        non-numeric or out-of-range confidences (rows named, 1-based data rows), or a barcode
        listed twice.
    """
    p = Path(path)
    df = _read_clone_frame(p, sample_id)
    rows = np.arange(1, len(df) + 1)

    def refuse(mask, what: str, todo: str) -> None:
        if mask.any():
            listed = ", ".join(map(str, rows[mask][:10])) + (" ..." if mask.sum() > 10 else "")
            raise InputError(
                f"clone table {p} (sample '{sample_id}'): {what} in row(s) {listed}: {todo}"
            )

    for column in ("barcode", "clone_id"):
        df[column] = df[column].str.strip()
        refuse(
            (df[column] == "").to_numpy(),
            f"empty {column}",
            f"fill in every {column} or drop the row",
        )
    refuse(
        df["barcode"].duplicated(keep=False).to_numpy(),
        "barcode listed more than once",
        "give each cell one clone",
    )
    if "confidence" in df.columns:
        confidence = pd.to_numeric(df["confidence"].str.strip(), errors="coerce").to_numpy(
            dtype=float
        )
        refuse(np.isnan(confidence), "non-numeric confidence", "give a number between 0 and 1")
        refuse(
            (confidence < 0) | (confidence > 1),
            "confidence outside [0, 1]",
            "give a number between 0 and 1",
        )
    else:
        confidence = np.ones(len(df))
    return pd.DataFrame(
        {
            "barcode": df["barcode"].to_numpy(),
            "clone_id": df["clone_id"].to_numpy(),
            "confidence": confidence,
            "obs_name": [f"{sample_id}_{b}" for b in df["barcode"]],
        }
    )


def _read_clone_frame(p: Path, sample_id: str) -> pd.DataFrame:
    """A clone table as text, refused when absent, empty or without its two needed columns."""
    if not p.is_file():
        raise InputError(
            f"clone table {p} (sample '{sample_id}') does not exist: check the `clones` column of "
            "the sample sheet"
        )
    sep = "," if p.name.lower().removesuffix(".gz").endswith(".csv") else "\t"
    with _gzip_guard(p, sample_id), _open_text(p) as fh:
        try:
            df = pd.read_csv(fh, sep=sep, dtype=str, keep_default_na=False, index_col=False)
        except pd.errors.EmptyDataError:
            df = None
    if df is None or df.empty:
        raise InputError(
            f"clone table {p} (sample '{sample_id}') is empty: give a header (barcode, clone_id, "
            "optional confidence) and one row per cell"
        )
    df.columns = [c.strip() for c in df.columns]
    missing = [c for c in ("barcode", "clone_id") if c not in df.columns]
    if missing:
        raise InputError(
            f"clone table {p} (sample '{sample_id}') lacks column(s) {', '.join(missing)} (found: "
            f"{', '.join(df.columns)}): name the columns barcode, clone_id and optionally "
            "confidence"
        )
    return df.fillna("")


def read_normal_reference(path: os.PathLike | str) -> ad.AnnData:
    """Read a healthy-marrow reference: an ``.h5ad`` of raw counts (``X``) with
    ``obs["cell_type"]``.

    Raises
    ------
    InputError
        If the file is missing, lacks ``obs["cell_type"]``, or ``X`` is not counts.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(
            f"normal reference {p} does not exist: set `normal_reference` in the config to a "
            "healthy-marrow .h5ad, or to null for none"
        )
    reference = ad.read_h5ad(p)
    if "cell_type" not in reference.obs:
        raise InputError(f"normal reference {p}: obs has no 'cell_type' column: add the cell types")
    x = reference.X
    values = x.data if sp.issparse(x) else np.asarray(x)
    if values.size and (values.min() < 0 or not np.allclose(values, np.round(values))):
        raise InputError(f"normal reference {p}: X must hold raw counts (non-negative integers)")
    reference.X = sp.csr_matrix(reference.X, dtype=np.float32)
    return reference
