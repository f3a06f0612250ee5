"""Neighbour graph, UMAP, Leiden at several resolutions, the default choice, and markers."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import scanpy as sc
from anndata import AnnData
from sklearn.metrics import pairwise_distances, silhouette_score

from clonetrack.integrate.metrics import seeded_subsample
from clonetrack.runtime import timed

log = logging.getLogger(__name__)


def resolution_key(resolution: float) -> str:
    """obs column holding the Leiden clustering at ``resolution``."""
    return f"leiden_r{resolution:g}"


def leiden(
    adata: AnnData,
    resolutions: tuple[float, ...],
    *,
    n_iterations: int = 2,
    random_state: int = 0,
) -> None:
    """``sc.tl.leiden(flavor="igraph")`` at each resolution, into ``obs[resolution_key(r)]``.

    The labels and ``uns`` entries are scanpy's own (a test checks equality); the igraph graph is
    built once instead of once per resolution: converting the kNN graph costs about 20 s and
    3.5 GB at 900,000 cells, of 66 s per resolution.
    """
    from natsort import natsorted
    from scanpy._utils import get_igraph_from_adjacency
    from scanpy._utils.random import set_igraph_random_state

    with timed(log, "igraph graph"):
        graph = get_igraph_from_adjacency(adata.obsp["connectivities"], directed=False)
    for resolution in resolutions:
        key = resolution_key(resolution)
        with timed(log, f"Leiden at resolution {resolution:g}"):
            with set_igraph_random_state(random_state):
                partition = graph.community_leiden(
                    objective_function="modularity",
                    weights="weight",
                    resolution=resolution,
                    n_iterations=n_iterations,
                )
        groups = np.array(partition.membership)
        adata.obs[key] = pd.Categorical(
            values=groups.astype("U"), categories=natsorted(map(str, np.unique(groups)))
        )
        adata.uns[key] = {
            "params": {
                "resolution": resolution,
                "random_state": random_state,
                "n_iterations": n_iterations,
            }
        }


def embed_and_cluster(
    adata: AnnData,
    *,
    use_rep: str,
    n_neighbors: int = 15,
    resolutions: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8, 1.0, 1.5),
    min_cluster_fraction: float = 0.005,
    random_state: int = 0,
    silhouette_sample: int = 10000,
    umap_init: str = "pca",
) -> pd.DataFrame:
    """Build the kNN graph and UMAP, run Leiden at each resolution and choose the default.

    The default (``obs["leiden"]``) is the resolution with the highest mean silhouette width on
    ``use_rep`` among resolutions giving at least two clusters whose smallest cluster holds at least
    ``min_cluster_fraction`` of cells; ties go to the finer resolution. Silhouette is computed on
    a seeded subsample of at most ``silhouette_sample`` cells (it is quadratic in cells), whose
    distances are computed once for all resolutions.

    UMAP starts from ``umap_init``: ``"pca"``, the first two principal components of
    ``use_rep`` (as good for global structure as the spectral start; Kobak & Linderman 2021,
    Nat Biotechnol 39:156), or umap's ``"spectral"`` start, whose Lanczos solver keeps
    sqrt(cells) vectors of all cells: 6.8 GB and most of the job's time at 900,000 cells.

    Returns one row per resolution: number of clusters, smallest cluster fraction, silhouette,
    and whether it was chosen.
    """
    with timed(log, "neighbours"):
        sc.pp.neighbors(adata, n_neighbors=n_neighbors, use_rep=use_rep, random_state=random_state)
    with timed(log, "UMAP"):
        sc.tl.umap(adata, init_pos=umap_init, random_state=random_state)
    # the silhouette is quadratic in cells
    sample = seeded_subsample(adata.n_obs, silhouette_sample, random_state)
    distances = pairwise_distances(np.asarray(adata.obsm[use_rep])[sample])
    leiden(adata, resolutions, random_state=random_state)
    table = pd.DataFrame(
        [_resolution_row(adata, resolution, sample, distances) for resolution in resolutions]
    )
    chosen = _choose_resolution(table, min_cluster_fraction)
    table["chosen"] = table["key"] == chosen["key"]
    adata.obs["leiden"] = adata.obs[chosen["key"]].copy()
    adata.uns.setdefault("clonetrack", {})["cluster"] = {
        "use_rep": use_rep,
        "n_neighbors": n_neighbors,
        "resolutions": list(resolutions),
        "min_cluster_fraction": min_cluster_fraction,
        "umap_init": umap_init,
        "chosen_resolution": float(chosen["resolution"]),
        "random_state": random_state,
    }
    return table


def _resolution_row(
    adata: AnnData, resolution: float, sample: np.ndarray, distances: np.ndarray
) -> dict:
    """Clusters, smallest cluster fraction and silhouette (on the sampled cells' precomputed
    ``distances``) of the Leiden clustering at ``resolution``."""
    key = resolution_key(resolution)
    labels = adata.obs[key].to_numpy()
    sizes = pd.Series(labels).value_counts()
    sub_labels = labels[sample]
    silhouette = (
        float(silhouette_score(distances, sub_labels, metric="precomputed"))
        if 1 < len(set(sub_labels)) < len(sample)
        else float("nan")
    )
    return {
        "resolution": resolution,
        "key": key,
        "n_clusters": len(sizes),
        "smallest_cluster_fraction": float(sizes.min() / adata.n_obs),
        "silhouette": silhouette,
    }


def _choose_resolution(table: pd.DataFrame, min_cluster_fraction: float) -> pd.Series:
    """The row of the best silhouette among clusterings of two or more clusters none smaller
    than ``min_cluster_fraction``; ties go to the finer resolution."""
    eligible = table[
        (table["n_clusters"] > 1)
        & (table["smallest_cluster_fraction"] >= min_cluster_fraction)
        & table["silhouette"].notna()
    ]
    if eligible.empty:
        # Nothing meets the size rule: take the coarsest clustering rather than fail.
        return table.iloc[0]
    best = eligible["silhouette"].max()
    return eligible[np.isclose(eligible["silhouette"], best)].iloc[-1]


# Above this many cells, "auto" tests markers on the highly variable genes only: Wilcoxon on all
# genes then dominates the clustering job (172 s of 760 s for 100,000 cells) for little gain.
AUTO_HVG_MARKERS_ABOVE = 50_000


def markers_on_hvg(setting: bool | str, n_cells: int) -> bool:
    """Resolve ``clustering.markers_on_hvg`` (true, false or "auto") for ``n_cells`` cells."""
    if setting == "auto":
        return n_cells > AUTO_HVG_MARKERS_ABOVE
    return bool(setting)


def find_markers(
    adata: AnnData,
    *,
    groupby: str = "leiden",
    on_hvg: bool = False,
    n_markers: int = 25,
) -> pd.DataFrame:
    """Wilcoxon markers of each group versus the rest on log-normalised expression.

    Returns the top ``n_markers`` genes per group with log fold change, p and adjusted p, and the
    fractions of cells expressing the gene in and out of the group.
    """
    mask = adata.var["highly_variable"].to_numpy() if on_hvg else None
    key = f"rank_genes_{groupby}"
    with timed(log, f"Wilcoxon markers of {adata.obs[groupby].nunique()} groups"):
        sc.tl.rank_genes_groups(
            adata,
            groupby=groupby,
            method="wilcoxon",
            mask_var=mask,
            pts=True,
            key_added=key,
            use_raw=False,
        )
    table = sc.get.rank_genes_groups_df(adata, group=None, key=key)
    table = table.groupby("group", observed=True, sort=True).head(n_markers)
    table = table.rename(
        columns={
            "names": "gene",
            "logfoldchanges": "log2fc",
            "pvals": "p",
            "pvals_adj": "p_adj",
            "pct_nz_group": "fraction_in_group",
            "pct_nz_reference": "fraction_in_rest",
        }
    )
    return table.reset_index(drop=True)
