import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from clonetrack import integrate
from clonetrack.errors import InputError
from clonetrack.integrate import cluster, metrics
from clonetrack.integrate import merge as merge_module
from clonetrack.io import store
from sklearn.metrics import adjusted_rand_score, silhouette_score


def make_batches(n_per=150, n_types=3, n_genes=300, batch_shift=0.3, seed=0):
    """Two samples with the same three cell types and a strong gene-wise batch effect."""
    rng = np.random.default_rng(seed)
    base = rng.lognormal(0, 1, size=n_genes)
    programmes = np.tile(base, (n_types, 1))
    for k in range(n_types):
        programmes[k, 20 * k : 20 * k + 20] *= 10
    adatas = {}
    for b in range(2):
        factor = rng.lognormal(0, batch_shift, size=n_genes)
        kind = rng.integers(0, n_types, size=n_per)
        mean = programmes[kind] * factor
        x = rng.poisson(3000 * mean / mean.sum(1, keepdims=True)).astype(np.float32)
        a = ad.AnnData(sp.csr_matrix(x), var=pd.DataFrame(index=[f"G{i}" for i in range(n_genes)]))
        a.obs_names = [f"S{b}_c{i}" for i in range(n_per)]
        a.obs["truth"] = pd.Categorical([f"type{k}" for k in kind])
        adatas[f"S{b}"] = a
    samples = pd.DataFrame(
        {
            "patient_id": ["P1", "P1"],
            "timepoint": ["diagnosis", "relapse"],
            "timepoint_order": ["1", "3"],
            "path": ["a", "b"],
            "format": ["", ""],
            "sex": ["F", "F"],
        },
        index=pd.Index(["S0", "S1"], name="sample_id"),
    )
    return adatas, samples


def merge(adatas, samples, folder):
    paths = {}
    for sid, adata in adatas.items():
        paths[sid] = folder / f"{sid}.h5ad"
        adata.write_h5ad(paths[sid])
    return integrate.merge_samples_on_disk(paths, samples, folder / "counts.h5ad")


def merge_normalise(adatas, samples, folder, **kwargs):
    """The merge rule's two steps; the merged object, with the raw counts in a layer."""
    cells = merge(adatas, samples, folder)
    integrate.normalise_on_disk(folder / "counts.h5ad", folder / "merged.h5ad", cells, **kwargs)
    adata = ad.read_h5ad(folder / "merged.h5ad")
    adata.layers["counts"] = ad.read_h5ad(folder / "counts.h5ad").X
    return adata


@pytest.fixture(scope="module")
def merged(tmp_path_factory, monkeypatch_module):
    adatas, samples = make_batches()
    return merge_normalise(
        adatas,
        samples,
        tmp_path_factory.mktemp("merge"),
        n_top_genes=200,
        batch_key="sample_id",
        n_pcs=20,
    )


@pytest.fixture(scope="module")
def monkeypatch_module():
    # small row blocks, so the block-wise normalisation is exercised across blocks
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(store, "_BLOCK_ROWS", 70)
        yield patch


def test_merge_carries_design_and_keeps_counts(merged):
    assert merged.n_obs == 300
    assert set(merged.obs["sample_id"]) == {"S0", "S1"}
    assert merged.obs["timepoint_order"].dtype.kind == "i"
    assert (merged.obs.loc[merged.obs["sample_id"] == "S1", "timepoint"] == "relapse").all()
    assert "sex" in merged.obs
    counts = merged.layers["counts"]
    assert np.all(np.mod(counts.data, 1) == 0)
    # X is log-normalised: expm1 of each row sums to the target
    np.testing.assert_allclose(np.expm1(merged.X[:5].toarray()).sum(1), 1e4, rtol=1e-3)
    assert merged.var["highly_variable"].sum() == 200


def test_disjoint_genes_refused(tmp_path):
    adatas, samples = make_batches(n_per=5, n_genes=30)
    adatas["S1"].var_names = [f"X{i}" for i in range(30)]
    with pytest.raises(InputError, match="share no gene names"):
        merge(adatas, samples, tmp_path)
    assert not (tmp_path / "counts.h5ad").exists()


def test_merge_keeps_shared_genes_and_records_the_dropped(tmp_path):
    adatas, samples = make_batches(n_per=5, n_genes=30)
    adatas["S1"] = adatas["S1"][:, 3:].copy()
    cells = merge(adatas, samples, tmp_path)
    assert cells.X is None  # metadata only
    assert list(cells.var_names) == [f"G{i}" for i in range(3, 30)]
    assert cells.uns["clonetrack"]["merge"]["n_genes_dropped_not_in_all_samples"] == 3
    counts = ad.read_h5ad(tmp_path / "counts.h5ad")
    np.testing.assert_array_equal(
        counts[cells.obs["sample_id"] == "S0"].X.toarray(), adatas["S0"][:, 3:].X.toarray()
    )


@pytest.mark.parametrize("batch_key", ["sample_id", None])
def test_block_wise_normalisation_equals_scanpy_on_the_whole_matrix(
    tmp_path, monkeypatch, batch_key
):
    import scanpy as sc

    monkeypatch.setattr(store, "_BLOCK_ROWS", 37)
    adatas, samples = make_batches(n_per=120)
    ours = merge_normalise(
        adatas, samples, tmp_path, n_top_genes=100, batch_key=batch_key, n_pcs=15
    )
    whole = ad.concat(adatas, label="sample_id", index_unique=None)
    sc.pp.highly_variable_genes(whole, flavor="seurat_v3", n_top_genes=100, batch_key=batch_key)
    sc.pp.normalize_total(whole, target_sum=1e4)
    sc.pp.log1p(whole)
    sc.pp.pca(whole, n_comps=15, mask_var="highly_variable", random_state=0)
    np.testing.assert_array_equal(ours.var["highly_variable"], whole.var["highly_variable"])
    columns = ["highly_variable_rank", "variances_norm"] + (
        ["highly_variable_nbatches"] if batch_key else []
    )
    pd.testing.assert_frame_equal(ours.var[columns], whole.var[columns])
    np.testing.assert_allclose(
        ours.var[["means", "variances"]], whole.var[["means", "variances"]], rtol=1e-9
    )
    np.testing.assert_allclose(ours.X.toarray(), whole.X.toarray(), rtol=1e-6)
    # PCs agree up to sign
    signs = np.sign((ours.obsm["X_pca"] * whole.obsm["X_pca"]).sum(axis=0))
    np.testing.assert_allclose(
        ours.obsm["X_pca"] * signs, whole.obsm["X_pca"], rtol=1e-3, atol=1e-3
    )


def test_harmony_mixes_batches_and_keeps_types(merged):
    adata = merged.copy()
    embedding = integrate.integrate(adata, method="harmony", batch_key="sample_id")
    assert embedding == "X_harmony" and adata.obsm["X_harmony"].shape == adata.obsm["X_pca"].shape
    batches = adata.obs["sample_id"].astype(str).to_numpy()
    labels = adata.obs["truth"].astype(str).to_numpy()
    before = metrics.knn_batch_mixing(adata.obsm["X_pca"], batches)
    after = metrics.knn_batch_mixing(adata.obsm["X_harmony"], batches)
    assert before < 0.3 and after > 0.8
    assert metrics.label_asw(adata.obsm["X_harmony"], labels) > 0.6
    table = metrics.integration_metrics(
        adata.__class__(obs=adata.obs.assign(cell_type=labels), obsm=adata.obsm, uns=adata.uns),
        batch_key="sample_id",
    )
    assert list(table["embedding"]) == ["X_pca", "X_harmony"]
    assert table.loc[1, "batch_asw"] > table.loc[0, "batch_asw"]


def test_unknown_batch_key_and_method_refused(merged):
    with pytest.raises(InputError, match="batch_key 'lane'"):
        integrate.integrate(merged.copy(), method="harmony", batch_key="lane")
    with pytest.raises(InputError, match="not one of harmony, scvi, none"):
        integrate.integrate(merged.copy(), method="combat", batch_key="sample_id")


def test_clustering_recovers_types_and_markers(merged):
    adata = merged.copy()
    integrate.integrate(adata, method="harmony", batch_key="sample_id")
    table = cluster.embed_and_cluster(adata, use_rep="X_harmony", resolutions=(0.1, 0.3, 1.0))
    assert table["chosen"].sum() == 1
    assert adjusted_rand_score(adata.obs["truth"], adata.obs["leiden"]) > 0.9
    markers = cluster.find_markers(adata, groupby="leiden", n_markers=5)
    # each cluster's top markers come from its planted programme block of 20 genes
    for _group, rows in markers.groupby("group"):
        blocks = {int(g[1:]) // 20 for g in rows["gene"]}
        assert len(blocks) == 1
    assert (markers["p_adj"] < 0.05).all()


@pytest.mark.parametrize("umap_init", ["pca", "spectral"])
def test_umap_starts_where_configured_and_separates_types(merged, monkeypatch, umap_init):
    import umap.umap_

    calls = []
    spectral = umap.umap_.spectral_layout

    def spy(*args, **kwargs):
        calls.append(args[1].shape[0])
        return spectral(*args, **kwargs)

    monkeypatch.setattr(umap.umap_, "spectral_layout", spy)
    adata = merged.copy()
    integrate.integrate(adata, method="harmony", batch_key="sample_id")
    cluster.embed_and_cluster(adata, use_rep="X_harmony", resolutions=(0.3,), umap_init=umap_init)
    # the spectral solver (memory ~ cells^1.5) runs only when asked for
    assert calls == ([adata.n_obs] if umap_init == "spectral" else [])
    assert adata.uns["clonetrack"]["cluster"]["umap_init"] == umap_init
    # either start leaves the planted types apart in the layout
    assert silhouette_score(adata.obsm["X_umap"], adata.obs["truth"]) > 0.5


def test_leiden_on_one_graph_equals_scanpy_per_resolution(merged):
    import scanpy as sc

    adata = merged.copy()
    integrate.integrate(adata, method="harmony", batch_key="sample_id")
    sc.pp.neighbors(adata, use_rep="X_harmony", random_state=0)
    resolutions = (0.1, 0.5, 2.0)
    cluster.leiden(adata, resolutions, random_state=3)
    for resolution in resolutions:
        key = cluster.resolution_key(resolution)
        expected = sc.tl.leiden(
            adata,
            resolution=resolution,
            key_added="scanpy",
            flavor="igraph",
            n_iterations=2,
            directed=False,
            random_state=3,
            copy=True,
        )
        pd.testing.assert_series_equal(adata.obs[key], expected.obs["scanpy"], check_names=False)
        assert adata.uns[key] == expected.uns["scanpy"]
    assert (
        adata.obs[cluster.resolution_key(2.0)].nunique()
        > adata.obs[cluster.resolution_key(0.1)].nunique()
    )


def test_loess_failure_widens_the_span_then_leaves_the_batch_out(tmp_path, monkeypatch):
    """seurat_v3's loess fails on small samples with messages other than "singularity" (e.g.
    "reciprocal condition number"); the batch retries wider spans, then stops voting, by name."""
    adatas, samples = make_batches(n_per=60)
    merge(adatas, samples, tmp_path)
    real = merge_module._seurat_v3_batch
    spans_tried = []

    def flaky(counts, var_names, *, n_top_genes, span):
        spans_tried.append((counts.shape[0], span))
        if counts.shape[0] == 60 and span < 1.0:
            raise ValueError("b'reciprocal condition number  2.7591e-15'")
        return real(counts, var_names, n_top_genes=n_top_genes, span=span)

    monkeypatch.setattr(merge_module, "_seurat_v3_batch", flaky)
    obs = ad.read_h5ad(tmp_path / "counts.h5ad", backed="r").obs
    _, settings = integrate.select_genes_on_disk(
        tmp_path / "counts.h5ad", obs, n_top_genes=50, batch_key="sample_id"
    )
    assert settings["loess_span"] == {"S0": 1.0, "S1": 1.0}
    assert settings["batches_not_ranked"] == ""

    def broken(counts, var_names, *, n_top_genes, span):
        if (
            (counts.sum(axis=1) > 0).all()
            and flaky.calls.append(1) is None
            and len(flaky.calls) <= 3
        ):
            raise np.linalg.LinAlgError("singular matrix")
        return real(counts, var_names, n_top_genes=n_top_genes, span=span)

    flaky.calls = []
    monkeypatch.setattr(merge_module, "_seurat_v3_batch", broken)
    table, settings = integrate.select_genes_on_disk(
        tmp_path / "counts.h5ad", obs, n_top_genes=50, batch_key="sample_id"
    )
    assert settings["batches_not_ranked"] == "S0"
    assert list(settings["loess_span"]) == ["S1"]
    assert table["highly_variable"].sum() == 50


def test_batch_silhouette_skips_labels_with_a_cell_per_batch():
    """A 30-cell remission sample can leave a label with one cell in each of three batches."""
    embedding = np.array(
        [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [5.0, 5.0], [5.1, 5.0], [5.0, 5.1], [5.1, 5.1]]
    )
    labels = np.array(["a", "a", "a", "b", "b", "b", "b"])
    batches = np.array(["x", "y", "z", "x", "x", "y", "y"])
    score = metrics.batch_asw(embedding, batches, labels)
    only_b = np.mean(
        1
        - np.abs(
            __import__("sklearn.metrics").metrics.silhouette_samples(embedding[3:], batches[3:])
        )
    )
    assert score == pytest.approx(only_b)


def _umap_cells(n_cells=240, seed=3):
    """Cells on a UMAP with a categorical key of 12 levels (beyond tab10), one of 3 levels
    whose categories are not in sorted order, and a text key."""
    rng = np.random.default_rng(seed)
    adata = ad.AnnData(obs=pd.DataFrame(index=[f"c{i}" for i in range(n_cells)]))
    adata.obsm["X_umap"] = rng.normal(size=(n_cells, 2))
    adata.obs["many"] = pd.Categorical(rng.choice([f"k{i:02d}" for i in range(12)], n_cells))
    adata.obs["few"] = pd.Categorical(
        rng.choice(["zeta", "alpha", "mid"], n_cells), categories=["zeta", "alpha", "mid"]
    )
    adata.obs["text"] = rng.choice(["P2", "P1"], n_cells)
    return adata


@pytest.mark.parametrize(
    "keys", [["many", "few", "text"], ["few", "absent", "text", "many", "few"]]
)
def test_umap_panels_colour_each_category_as_documented(keys):
    """One panel per present key, titled by it; each category keeps one colour, tab10 by sorted
    level up to 10 levels, tab20 beyond; the caller's object is left as it was."""
    import matplotlib.pyplot as plt
    from clonetrack import pl
    from matplotlib.colors import to_hex

    adata = _umap_cells()
    before = adata.obs.copy()
    fig = pl.plot_umaps(adata, keys=keys)
    present = [k for k in keys if k in adata.obs]
    panels = [ax for ax in fig.axes if ax.axison]
    assert [ax.get_title() for ax in panels] == present
    for ax, key in zip(panels, present, strict=True):
        points = max(ax.collections, key=lambda c: len(c.get_offsets()))
        offsets = np.asarray(points.get_offsets())
        assert len(offsets) == adata.n_obs
        # each drawn point back to its cell, by its coordinates
        cell = pd.Series(np.arange(adata.n_obs), index=map(tuple, adata.obsm["X_umap"]))
        drawn = adata.obs[key].astype(str).to_numpy()[cell.loc[list(map(tuple, offsets))]]
        levels = sorted(set(drawn))
        cmap = plt.get_cmap("tab20" if len(levels) > 10 else "tab10")
        expected = {level: to_hex(cmap(i % cmap.N)) for i, level in enumerate(levels)}
        colours = [to_hex(c) for c in points.get_facecolors()]
        assert colours == [expected[v] for v in drawn]
        # draw order is shuffled, so no group is painted over the rest
        assert not np.array_equal(cell.loc[list(map(tuple, offsets))], np.arange(adata.n_obs))
    pd.testing.assert_frame_equal(adata.obs, before)
    assert not adata.uns
    plt.close(fig)
