"""Partial reads and file-level assembly of .h5ad files, checked against in-memory AnnData."""

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from clonetrack.integrate import cluster
from clonetrack.io import contract, store


@pytest.fixture
def stored(tmp_path, monkeypatch):
    """A file with sparse X and counts, obsm, obsp and uns; small row blocks to exercise them."""
    monkeypatch.setattr(store, "_BLOCK_ROWS", 7)
    rng = np.random.default_rng(0)
    counts = sp.random(60, 40, density=0.3, format="csr", random_state=1, dtype=np.float32)
    counts.data = np.ceil(counts.data * 10)
    adata = ad.AnnData(
        X=counts.multiply(1 / 3).tocsr().astype(np.float32),
        obs=pd.DataFrame(
            {"sample_id": pd.Categorical(np.repeat(["A", "B", "C"], 20))},
            index=[f"cell{i}" for i in range(60)],
        ),
        var=pd.DataFrame(
            {"highly_variable": rng.random(40) < 0.4}, index=[f"G{i}" for i in range(40)]
        ),
    )
    adata.layers["counts"] = counts
    adata.obsm["X_pca"] = rng.normal(size=(60, 5)).astype(np.float32)
    adata.obsp["connectivities"] = sp.random(60, 60, density=0.1, format="csr", random_state=2)
    adata.uns["clonetrack"] = {"merge": {"n_samples": 3}}
    path = tmp_path / "merged.h5ad"
    adata.write_h5ad(path)
    return path, adata


def test_read_parts_matches_in_memory_subset(stored):
    path, adata = stored
    cells = (adata.obs["sample_id"] != "B").to_numpy()
    genes = ["G30", "G2", "G17"]  # out of order on purpose: the file's order is kept
    part = store.read_parts(path, matrix="counts", cells=cells, genes=genes, obsp=True)
    expected = adata[cells, ["G2", "G17", "G30"]]
    assert part.X is None and list(part.layers) == ["counts"]
    np.testing.assert_array_equal(
        part.layers["counts"].toarray(), expected.layers["counts"].toarray()
    )
    assert list(part.obs_names) == list(expected.obs_names)
    assert list(part.var_names) == ["G2", "G17", "G30"]
    np.testing.assert_array_equal(part.obsm["X_pca"], expected.obsm["X_pca"])
    np.testing.assert_array_equal(
        part.obsp["connectivities"].toarray(), expected.obsp["connectivities"].toarray()
    )
    assert part.uns["clonetrack"]["merge"]["n_samples"] == 3


def test_read_parts_selects_with_functions_of_the_stored_metadata(stored):
    path, adata = stored
    part = store.read_parts(
        path,
        matrix="X",
        cells=lambda obs: obs["sample_id"] == "C",
        genes=lambda var: var["highly_variable"].to_numpy(),
    )
    expected = adata[
        (adata.obs["sample_id"] == "C").to_numpy(), adata.var["highly_variable"].to_numpy()
    ]
    np.testing.assert_array_equal(part.X.toarray(), expected.X.toarray())
    assert list(part.var_names) == list(expected.var_names)


def test_read_parts_x_all_genes_and_metadata_only(stored):
    path, adata = stored
    full = store.read_parts(path, matrix="X", obsm=False, uns=False)
    np.testing.assert_array_equal(full.X.toarray(), adata.X.toarray())
    assert not full.layers and not full.obsm and not full.uns
    meta = store.read_parts(path)
    assert meta.X is None and meta.shape == adata.shape and not meta.layers


def test_read_parts_refuses_unknown_genes_and_bad_masks(stored):
    path, _ = stored
    with pytest.raises(KeyError, match="NOPE"):
        store.read_parts(path, matrix="X", genes=["G1", "NOPE"])
    with pytest.raises(ValueError, match="mask of length 3"):
        store.read_parts(path, cells=np.ones(3, dtype=bool))


@pytest.mark.parametrize("cells", [None, "every_third", "none"])
def test_row_blocks_stack_to_the_partial_read(stored, cells):
    path, adata = stored
    selection = {
        None: None,
        "every_third": np.arange(60) % 3 == 0,
        "none": np.zeros(60, dtype=bool),
    }[cells]
    blocks = list(store.row_blocks(path, "counts", cells=selection))
    assert all(block.shape[0] <= 7 for block in blocks)  # the fixture's block size
    expected = store.read_parts(path, matrix="counts", cells=selection).layers["counts"]
    stacked = sp.vstack(blocks, format="csr") if blocks else sp.csr_matrix((0, 40))
    assert stacked.shape == expected.shape
    np.testing.assert_array_equal(stacked.toarray(), expected.toarray())
    if cells is None:
        np.testing.assert_array_equal(stacked.toarray(), adata.layers["counts"].toarray())


def test_row_blocks_by_mask_or_all_do_not_read_the_metadata(stored):
    """Pseudobulk jobs already hold the cells' metadata: a mask must not read obs again."""
    path, adata = stored
    with h5py.File(path, "a") as f:
        del f["obs"]
    mask = np.arange(60) % 2 == 1
    by_mask = sp.vstack(list(store.row_blocks(path, "counts", cells=mask)), format="csr")
    np.testing.assert_array_equal(by_mask.toarray(), adata.layers["counts"][mask].toarray())
    everything = sp.vstack(list(store.row_blocks(path, "counts")), format="csr")
    np.testing.assert_array_equal(everything.toarray(), adata.layers["counts"].toarray())
    with pytest.raises(KeyError):  # names need obs, which is gone
        list(store.row_blocks(path, "counts", cells=["cell1"]))


def test_write_by_rows_round_trip_and_no_file_on_failure(stored, tmp_path):
    path, adata = stored
    out = tmp_path / "by_rows.h5ad"
    meta = ad.AnnData(obs=adata.obs, var=adata.var, obsm=dict(adata.obsm), uns=dict(adata.uns))
    with store.write_by_rows(out) as writer:
        for block in store.row_blocks(path, "X"):
            writer.append(block)
        writer.finish(meta)
    back = ad.read_h5ad(out)
    np.testing.assert_array_equal(back.X.toarray(), adata.X.toarray())
    pd.testing.assert_frame_equal(back.obs, adata.obs)
    np.testing.assert_array_equal(back.obsm["X_pca"], adata.obsm["X_pca"])
    assert back.uns["clonetrack"]["merge"]["n_samples"] == 3

    unfinished, short = tmp_path / "unfinished.h5ad", tmp_path / "short.h5ad"
    with pytest.raises(RuntimeError, match="never written"), store.write_by_rows(unfinished) as w:
        w.append(adata.X[:10])
    with pytest.raises(ValueError, match="10 rows written for 60 cells"):
        with store.write_by_rows(short) as w:
            w.append(adata.X[:10])
            w.finish(meta)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["by_rows.h5ad", "merged.h5ad"]


def _assert_read_back_equals(path, expected: ad.AnnData) -> None:
    """``ad.read_h5ad(path)`` holds exactly ``expected``: matrices, metadata and mappings."""
    back = ad.read_h5ad(path)
    assert back.shape == expected.shape
    np.testing.assert_array_equal(back.X.toarray(), expected.X.toarray())
    assert back.X.dtype == expected.X.dtype
    pd.testing.assert_frame_equal(back.obs, expected.obs)
    pd.testing.assert_frame_equal(back.var, expected.var)
    for mapping in ("layers", "obsm", "varm", "obsp", "varp"):
        stored, wanted = getattr(back, mapping), getattr(expected, mapping)
        assert sorted(stored) == sorted(wanted), mapping
        for key in wanted:
            value = stored[key].toarray() if sp.issparse(stored[key]) else stored[key]
            target = wanted[key].toarray() if sp.issparse(wanted[key]) else wanted[key]
            np.testing.assert_array_equal(value, target)
    assert back.uns.keys() == expected.uns.keys()
    np.testing.assert_equal(back.uns["clonetrack"], expected.uns["clonetrack"])
    with h5py.File(path, "r") as f:  # the root is an AnnData element of anndata's spec
        assert ad.io.read_elem(f).shape == expected.shape


@pytest.mark.parametrize("n_cells", [60, 0])
def test_files_written_by_rows_read_back_as_the_objects_written(stored, tmp_path, n_cells):
    path, adata = stored
    expected = adata[:n_cells].copy()
    del expected.layers["counts"]
    expected.var["mean"] = np.linspace(0, 1, expected.n_vars)
    expected.varm["loadings"] = np.arange(2 * expected.n_vars, dtype=float).reshape(-1, 2)
    expected.uns["clonetrack"]["settings"] = {"span": 0.3, "batches": np.array(["A", "B"])}
    out = tmp_path / "by_rows.h5ad"
    with store.write_by_rows(out) as writer:
        for block in store.row_blocks(path, "X", cells=np.arange(60) < n_cells):
            writer.append(block)
        writer.finish(ad.AnnData(obs=expected.obs, var=expected.var, varm=dict(expected.varm),
                                 obsm=dict(expected.obsm), obsp=dict(expected.obsp),
                                 uns=dict(expected.uns)))  # fmt: skip
    if not n_cells:  # an empty X is written as float32, whatever the source
        expected.X = sp.csr_matrix((0, expected.n_vars), dtype=np.float32)
    _assert_read_back_equals(out, expected)


def test_assembled_file_reads_back_as_matrices_plus_cells(stored, tmp_path):
    path, adata = stored
    cells = store.read_parts(path, obsp=True)
    cells.obs["cell_type"] = pd.Categorical(np.repeat(["HSC", "Mono", "T"], 20))
    cells.obsm["X_umap"] = np.arange(120, dtype=np.float32).reshape(60, 2)
    cells.uns["clonetrack"]["cluster"] = {"resolutions": [0.2, 0.4]}
    doubled = ad.AnnData(X=adata.layers["counts"] * 2, obs=adata.obs, var=adata.var)
    doubled.write_h5ad(tmp_path / "counts.h5ad")
    store.assemble(
        path, cells, tmp_path / "final.h5ad", layers={"counts": tmp_path / "counts.h5ad"}
    )
    expected = ad.AnnData(
        X=adata.X,
        obs=cells.obs,
        var=adata.var,
        obsm=dict(cells.obsm),
        obsp=dict(cells.obsp),
        layers={"counts": doubled.X},
        uns=dict(cells.uns),
    )
    _assert_read_back_equals(tmp_path / "final.h5ad", expected)
    assert list(store.var_names(tmp_path / "final.h5ad")) == list(adata.var_names)


def test_group_rows_yield_each_groups_rows(stored):
    path, adata = stored
    labels = np.array(list("abcab") * 12)  # interleaved groups, across row blocks
    seen = []
    for label, rows in store.group_rows(path, "counts", labels):
        seen.append(label)
        expected = adata.layers["counts"][labels == label].toarray()
        np.testing.assert_array_equal(rows.toarray(), expected)
    assert seen == ["a", "b", "c"]
    with pytest.raises(ValueError, match="labels for 60 cells"):
        next(store.group_rows(path, "counts", labels[:10]))


def test_write_cells_then_assemble_round_trip(stored, tmp_path):
    path, adata = stored
    cells = store.read_parts(path, obsp=True)
    cells.obs["cell_type"] = pd.Categorical(np.repeat(["HSC", "Mono", "T"], 20))
    cells.obsm["X_umap"] = np.arange(120, dtype=np.float32).reshape(60, 2)
    store.write_cells(cells, tmp_path / "cells.h5ad")
    slim = ad.read_h5ad(tmp_path / "cells.h5ad")
    assert slim.n_vars == 0 and "cell_type" in slim.obs and "X_umap" in slim.obsm

    # the counts layer comes from its own file (as the merge writes it) and replaces the stored one
    doubled = ad.AnnData(X=adata.layers["counts"] * 2, obs=adata.obs, var=adata.var)
    doubled.write_h5ad(tmp_path / "counts.h5ad")
    store.assemble(path, slim, tmp_path / "final.h5ad", layers={"counts": tmp_path / "counts.h5ad"})
    final = ad.read_h5ad(tmp_path / "final.h5ad")
    assert final.shape == adata.shape
    np.testing.assert_array_equal(final.X.toarray(), adata.X.toarray())
    np.testing.assert_array_equal(
        final.layers["counts"].toarray(), 2 * adata.layers["counts"].toarray()
    )
    assert list(final.obs["cell_type"].cat.categories) == ["HSC", "Mono", "T"]
    np.testing.assert_array_equal(final.obsm["X_umap"], cells.obsm["X_umap"])
    assert list(final.var_names) == list(adata.var_names)
    assert store.matrix_shape(tmp_path / "final.h5ad") == (60, 40)
    assert store.matrix_shape(tmp_path / "final.h5ad", "counts") == (60, 40)
    assert store.matrix_shape(tmp_path / "counts.h5ad", "spliced") is None


def test_assemble_refuses_other_cells_and_leaves_no_file(stored, tmp_path):
    path, adata = stored
    cells = store.read_parts(path)[::-1].copy()
    with pytest.raises(ValueError, match="disagree on the cells"):
        store.assemble(path, cells, tmp_path / "final.h5ad")
    fewer_genes = adata[:, :30].copy()
    fewer_genes.write_h5ad(tmp_path / "counts.h5ad")
    with pytest.raises(ValueError, match="does not hold the cells and genes"):
        store.assemble(
            path,
            store.read_parts(path),
            tmp_path / "final.h5ad",
            layers={"counts": tmp_path / "counts.h5ad"},
        )
    assert not (tmp_path / "final.h5ad").exists()


def test_check_final_uses_stored_shapes(stored):
    path, adata = stored
    cells = store.read_parts(path)
    for column in contract.REQUIRED_OBS:
        if column not in cells.obs:
            cells.obs[column] = "x"
    for key in contract.REQUIRED_OBSM:
        cells.obsm[key] = np.zeros((60, 2))
    ledger = pd.DataFrame({"sample_id": ["A", "B", "C"], "n_cells_kept": [20, 20, 20]})
    contract.check_final(cells, ledger, matrix_shapes={"X": (60, 40), "counts": (60, 40)})
    with pytest.raises(AssertionError, match="counts missing"):
        contract.check_final(cells, ledger, matrix_shapes={"X": (60, 40)})
    with pytest.raises(AssertionError, match="counts missing or of wrong shape"):
        contract.check_final(cells, ledger, matrix_shapes={"X": (60, 40), "counts": (60, 39)})


@pytest.mark.parametrize(
    ("setting", "n_cells", "expected"),
    [("auto", 50_000, False), ("auto", 50_001, True), (True, 10, True), (False, 10**6, False)],
)
def test_markers_on_hvg_setting(setting, n_cells, expected):
    assert cluster.markers_on_hvg(setting, n_cells) is expected
