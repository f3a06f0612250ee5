"""Read and write parts of an ``.h5ad`` file, so rules move only what they use.

The expression matrices (log-normalised ``X`` and the raw counts) are written once, by the merge,
each to its own file, row block by row block (:func:`write_by_rows`), and copied once into the
final object (:func:`assemble`). Every rule in
between exchanges cell metadata and embeddings only (:func:`write_cells`), and reads from the
merged file just the matrix, cells and genes it needs (:func:`read_parts`). At a million cells
each matrix is about 12 GB; no rule holds both.
"""

from __future__ import annotations

import contextlib
import os
import shutil

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata.io import read_elem, sparse_dataset, write_elem

from clonetrack.io.atomic import atomic_target

# Rows read per block when a matrix is subset by gene: bounds the transient full-width block.
_BLOCK_ROWS = 20_000


def _indexer(selection, length: int, load) -> np.ndarray:
    """Sorted integer positions along an axis of ``length`` (obs or var) from ``None`` (all), a
    boolean mask, names, or a function of the axis's frame returning either.

    ``load`` returns the axis's frame; it is called only for names or a function, so a mask or
    ``None`` never reads the metadata.
    """
    if callable(selection):
        selection = selection(load())
    if selection is None:
        return np.arange(length)
    values = np.asarray(selection)
    if values.dtype == bool:
        if len(values) != length:
            raise ValueError(f"mask of length {len(values)} for an axis of length {length}")
        return np.flatnonzero(values)
    index = load().index
    positions = index.get_indexer(pd.Index(values))
    if (positions < 0).any():
        missing = list(pd.Index(values)[positions < 0][:5])
        raise KeyError(f"not in the file: {missing}")
    return np.sort(positions)


def _matrix_key(matrix: str) -> str:
    """Where ``X`` or the layer ``matrix`` is stored in an ``.h5ad``."""
    return "X" if matrix == "X" else f"layers/{matrix}"


def _stored_shape(elem) -> tuple[int, int]:
    """Shape of a stored dense or sparse matrix, without reading it."""
    shape = elem.shape if isinstance(elem, h5py.Dataset) else sparse_dataset(elem).shape
    return int(shape[0]), int(shape[1])


def _csr_row_blocks(matrix, rows: np.ndarray, cols: np.ndarray | None):
    """Consecutive blocks of the selected ``rows`` (sorted positions) of a stored CSR matrix,
    restricted to ``cols`` (``None``: all)."""
    # Contiguous slices read far faster than fancy row indices (about 17x at 100,000 cells), so
    # each block of the selection's span is read whole and subset in memory.
    if not len(rows):
        return
    for start in range(int(rows[0]), int(rows[-1]) + 1, _BLOCK_ROWS):
        wanted = rows[np.searchsorted(rows, start) : np.searchsorted(rows, start + _BLOCK_ROWS)]
        if not len(wanted):
            continue
        wanted = wanted - start
        block = matrix[start : start + int(wanted[-1]) + 1]
        if len(wanted) < block.shape[0]:
            block = block[wanted]
        yield block if cols is None else block[:, cols]


def _read_matrix(elem, rows: np.ndarray, cols: np.ndarray, n_rows: int, n_cols: int):
    """Rows x columns of a stored matrix, reading row blocks so memory follows the selection."""
    if isinstance(elem, h5py.Dataset):
        return np.asarray(elem[rows, :])[:, cols]
    matrix = sparse_dataset(elem)
    all_cols = len(cols) == n_cols
    if matrix.format == "csc":
        block = matrix[:, cols] if not all_cols else matrix[:, :]
        return sp.csr_matrix(block[rows])
    if all_cols and len(rows) == n_rows:
        return matrix[:]
    blocks = list(_csr_row_blocks(matrix, rows, None if all_cols else cols))
    return sp.vstack(blocks, format="csr") if blocks else sp.csr_matrix((0, len(cols)))


def row_blocks(path: os.PathLike | str, matrix: str = "counts", *, cells=None):
    """Yield the selected cells' rows of one matrix (all genes) as consecutive CSR blocks.

    Stacked, the blocks equal ``read_parts(path, matrix=matrix, cells=cells)``'s matrix; a
    consumer that reduces over cells (pseudobulk sums) never holds more than one block.
    ``cells`` is as for :func:`read_parts`; ``None`` or a mask does not read the cells' metadata.
    """
    with h5py.File(path, "r") as f:
        elem = f[_matrix_key(matrix)]
        n_cells, n_genes = _stored_shape(elem)
        rows = _indexer(cells, n_cells, lambda: read_elem(f["obs"]))
        if isinstance(elem, h5py.Dataset) or sparse_dataset(elem).format == "csc":
            yield sp.csr_matrix(_read_matrix(elem, rows, np.arange(n_genes), n_cells, n_genes))
            return
        yield from _csr_row_blocks(sparse_dataset(elem), rows, None)


def read_parts(
    path: os.PathLike | str,
    *,
    matrix: str | None = None,
    cells=None,
    genes=None,
    obsm: bool = True,
    obsp: bool = False,
    uns: bool = True,
) -> ad.AnnData:
    """Read cell metadata and, optionally, one matrix of an ``.h5ad`` restricted to cells and genes.

    Parameters
    ----------
    path
        An ``.h5ad`` file.
    matrix
        ``"X"``, the name of a layer (e.g. ``"counts"``), or ``None`` for no matrix. The matrix
        keeps its place (a layer stays a layer, ``X`` is then ``None``); the shape is always
        cells x genes.
    cells, genes
        Boolean masks, names, or a function of the file's ``obs`` (``var``) returning either,
        so a selection can use the stored metadata without a second read; ``None`` keeps all.
        Order follows the file.
    obsm, obsp, uns
        Whether to read these.
    """
    with h5py.File(path, "r") as f:
        obs = read_elem(f["obs"])
        var = read_elem(f["var"])
        rows = _indexer(cells, len(obs), lambda: obs)
        cols = _indexer(genes, len(var), lambda: var)
        parts = {}
        if matrix is not None:
            read = _read_matrix(f[_matrix_key(matrix)], rows, cols, len(obs), len(var))
            if matrix == "X":
                parts["X"] = read
            else:
                parts["layers"] = {matrix: read}
        if obsm and "obsm" in f:
            parts["obsm"] = {k: np.asarray(read_elem(v))[rows] for k, v in f["obsm"].items()}
        if obsp and "obsp" in f:
            parts["obsp"] = {
                k: sp.csr_matrix(read_elem(v))[rows][:, rows] for k, v in f["obsp"].items()
            }
        if uns and "uns" in f:
            parts["uns"] = read_elem(f["uns"])
    return ad.AnnData(obs=obs.iloc[rows], var=var.iloc[cols], **parts)


def read_expression(
    path: os.PathLike | str, obs: pd.DataFrame, cells: np.ndarray, *, genes=None, source: str = ""
) -> ad.AnnData:
    """The normalised expression (``X``) of the ``cells`` (a boolean mask over ``obs``) of the file
    at ``path``, on ``genes`` (all when ``None``), with ``obs``'s rows as its metadata: the same
    cells, read from another file (``source`` names both in the error if they are not)."""
    part = read_parts(
        path,
        matrix="X",
        cells=cells,
        genes=None if genes is None else (lambda var: var.index.isin(genes)),
        obsm=False,
        uns=False,
    )
    if not part.obs_names.equals(obs.index[cells]):
        raise RuntimeError(f"{source or path} list different cells")
    part.obs = obs[cells]
    return part


def group_rows(path: os.PathLike | str, matrix: str, labels: np.ndarray):
    """Yield ``(label, rows)`` for each distinct ``labels`` value (one per cell, in file order):
    the matrix rows (all genes) of that group's cells, one group in memory at a time, the file
    opened once."""
    with h5py.File(path, "r") as f:
        elem = f[_matrix_key(matrix)]
        n_rows, n_cols = _stored_shape(elem)
        if len(labels) != n_rows:
            raise ValueError(f"{len(labels)} labels for {n_rows} cells in {path}")
        for label in np.unique(labels):
            rows = np.flatnonzero(labels == label)
            yield label, _read_matrix(elem, rows, np.arange(n_cols), n_rows, n_cols)


def var_names(path: os.PathLike | str) -> pd.Index:
    """The gene names of an ``.h5ad`` file, reading nothing else."""
    with h5py.File(path, "r") as f:
        var = f["var"]
        return pd.Index(read_elem(var[var.attrs["_index"]]).astype(str))


def write_cells(adata: ad.AnnData, path: os.PathLike | str) -> None:
    """Write the cell-level parts of ``adata`` (obs, obsm, obsp, uns), without matrix or genes."""
    cells = ad.AnnData(
        obs=adata.obs,
        obsm=dict(adata.obsm),
        obsp=dict(adata.obsp),
        uns=dict(adata.uns),
    )
    with atomic_target(path) as tmp:
        cells.write_h5ad(tmp)


def _replace_elements(f: h5py.File, elements: dict) -> None:
    """Write each top-level element of an open ``.h5ad``, replacing what is there."""
    for key, value in elements.items():
        if key in f:
            del f[key]
        write_elem(f, key, value)


class RowBlockWriter:
    """An ``.h5ad`` being written by :func:`write_by_rows`: ``X`` block by block, then the rest."""

    def __init__(self, f: h5py.File, path: os.PathLike | str):
        self._f, self._path = f, path
        self.n_obs = 0
        self.finished = False

    def append(self, block: sp.csr_matrix) -> None:
        """Add ``block``'s rows to ``X``."""
        if self.n_obs:
            sparse_dataset(self._f["X"]).append(block)
        else:
            write_elem(self._f, "X", block)
        self.n_obs += block.shape[0]

    def finish(self, meta: ad.AnnData) -> None:
        """Write obs, var, obsm, varm, obsp, varp and uns of ``meta`` (its ``X`` is ignored)."""
        if self.n_obs != meta.n_obs:
            raise ValueError(f"{self._path}: {self.n_obs} rows written for {meta.n_obs} cells")
        if not self.n_obs:
            write_elem(self._f, "X", sp.csr_matrix((0, meta.n_vars), dtype=np.float32))
        _replace_elements(
            self._f,
            {
                "obs": meta.obs,
                "var": meta.var,
                "obsm": dict(meta.obsm),
                "varm": dict(meta.varm),
                "obsp": dict(meta.obsp),
                "varp": dict(meta.varp),
                "layers": {},
                "uns": dict(meta.uns),
            },
        )
        self.finished = True


@contextlib.contextmanager
def write_by_rows(path: os.PathLike | str):
    """Write ``path``, an ``.h5ad`` whose ``X`` arrives as CSR row blocks and is never held whole.

    Yields a :class:`RowBlockWriter`: ``append`` each block, then ``finish`` with the metadata.
    The file appears only when finished (atomically); on any error no file is left.
    """
    with atomic_target(path) as tmp, h5py.File(tmp, "w") as f:
        # an empty AnnData makes the file one by anndata's spec; finish replaces its parts
        write_elem(f, "/", ad.AnnData())
        writer = RowBlockWriter(f, path)
        yield writer
        if not writer.finished:
            raise RuntimeError(f"{path}: the cell and gene metadata were never written")


def assemble(
    matrices: os.PathLike | str,
    cells: ad.AnnData,
    path: os.PathLike | str,
    *,
    layers: dict[str, os.PathLike | str] | None = None,
) -> None:
    """Write ``path`` as a copy of ``matrices`` with the obs, obsm, obsp and uns of ``cells``.

    ``layers`` maps layer names to files whose ``X`` becomes that layer. Every file must hold
    the cells of ``cells`` in the same order (and the layers the genes of ``matrices``). The
    matrices are copied at file level and never loaded.
    """
    layers = dict(layers or {})
    with h5py.File(matrices, "r") as f:
        names, genes = read_elem(f["obs"]).index, read_elem(f["var"]).index
    if not names.equals(cells.obs_names):
        raise ValueError(
            f"{matrices} and the cell metadata disagree on the cells "
            f"({len(names)} vs {cells.n_obs}, or a different order)"
        )
    for source in layers.values():
        with h5py.File(source, "r") as f:
            if not (
                read_elem(f["obs"]).index.equals(names) and read_elem(f["var"]).index.equals(genes)
            ):
                raise ValueError(f"{source} does not hold the cells and genes of {matrices}")
    with atomic_target(path) as tmp:
        shutil.copyfile(matrices, tmp)
        with h5py.File(tmp, "r+") as f:
            _replace_elements(
                f,
                {
                    "obs": cells.obs,
                    "obsm": dict(cells.obsm),
                    "obsp": dict(cells.obsp),
                    "uns": dict(cells.uns),
                },
            )
            if "layers" not in f:
                write_elem(f, "layers", {})
            for name, source in layers.items():
                if name in f["layers"]:
                    del f["layers"][name]
                with h5py.File(source, "r") as src:
                    src.copy(src["X"], f["layers"], name=name)


def matrix_shape(path: os.PathLike | str, matrix: str = "X") -> tuple[int, int] | None:
    """Shape of ``X`` or of a layer as stored, without reading it; ``None`` if absent."""
    with h5py.File(path, "r") as f:
        elem = f.get(_matrix_key(matrix))
        return None if elem is None else _stored_shape(elem)
