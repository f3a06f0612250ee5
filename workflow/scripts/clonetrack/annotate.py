"""Cell-type annotation of bone-marrow cells from a literature marker panel, and gene signatures.

Labels are the 15 normal classes of van Galen et al. 2019 (Cell 176:1265) plus ``unassigned``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from clonetrack.errors import InputError
from clonetrack.vocabulary import CELL_TYPES, UNASSIGNED

METHODS = ("scaled", "score_genes")


def _why_panel_misses(panel_genes, var_names) -> str:
    """What to fix when the panel's genes are not the data's: identifiers, organism or panel."""
    from clonetrack.io.preflight import ENSEMBL_ID

    names = pd.Index(var_names.astype(str))
    if names.str.match(ENSEMBL_ID.pattern).mean() > 0.5:
        return f"the data's gene names are Ensembl ids (e.g. {names[0]}); give gene symbols"
    upper = set(names.str.upper())
    by_case = sorted(g for g in set(panel_genes) if g not in set(names) and g.upper() in upper)
    if by_case:
        return (
            f"{len(by_case)} panel genes are present only in another case (e.g. {by_case[0]}): "
            "the panel and the data are of different organisms; use a panel of the data's organism"
        )
    return "check that the panel's genes are gene symbols of the data's organism"


def _dense_columns(adata: AnnData, genes: list[str], layer: str | None) -> np.ndarray:
    idx = adata.var_names.get_indexer(genes)
    x = adata.X if layer is None else adata.layers[layer]
    x = x[:, idx]
    x = x.toarray() if sp.issparse(x) else np.asarray(x)
    return x.astype(np.float64, copy=False)


def _scaled_scores(
    x: np.ndarray, genes: list[str], panel: pd.DataFrame, classes: list[str], max_value: float
) -> np.ndarray:
    # z-score each marker across cells so that highly and lowly expressed markers weigh alike;
    # clipping keeps a rare gene (e.g. AVP) from dominating through a few extreme values
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    std[std == 0] = 1.0
    z = np.clip((x - mean) / std, -max_value, max_value)
    col = {g: i for i, g in enumerate(genes)}
    scores = np.empty((x.shape[0], len(classes)))
    for j, ct in enumerate(classes):
        sub = panel[panel["cell_type"] == ct]
        w = sub["weight"].to_numpy()
        # normalise by the positive weight so a score is the mean z of the positive markers,
        # less the (weighted) expression of the negative ones
        scores[:, j] = z[:, [col[g] for g in sub["gene"]]] @ w / w[w > 0].sum()
    return scores


def _check_scoring_inputs(adata, markers, method, neighbors_key, layer):
    """Refuse an unknown method, a malformed panel, or a missing graph or layer; return the
    neighbour connectivities when ``neighbors_key`` is given (else ``None``)."""
    if method not in METHODS:
        raise InputError(f"annotation method {method!r} is not one of {METHODS}")
    missing_cols = [c for c in ("cell_type", "gene", "weight") if c not in markers.columns]
    if missing_cols:
        raise InputError(
            f"marker panel lacks column(s) {missing_cols}; use clonetrack.io.tables.load_markers()"
        )
    connectivities = None
    if neighbors_key is not None:
        ckey = adata.uns.get(neighbors_key, {}).get("connectivities_key")
        if ckey is None or ckey not in adata.obsp:
            raise InputError(
                f"neighbors_key {neighbors_key!r}: no connectivities found; run sc.pp.neighbors"
            )
        connectivities = adata.obsp[ckey]
    if layer is not None and layer not in adata.layers:
        raise InputError(f"layer {layer!r} not in adata.layers ({list(adata.layers)})")
    return connectivities


def _scorable_panel(
    markers: pd.DataFrame, var_names: pd.Index
) -> tuple[pd.DataFrame, list[str], list[str], list[str]]:
    """The panel rows of the classes that can be scored (at least two positive markers present
    in the data), those classes, the panel's classes left out, and the panel genes absent."""
    present = markers["gene"].isin(var_names)
    missing = sorted(set(markers.loc[~present, "gene"]))
    panel = markers[present]
    n_pos = panel[panel["weight"] > 0].groupby("cell_type").size()
    classes = [ct for ct in CELL_TYPES if n_pos.get(ct, 0) >= 2]
    not_scored = [ct for ct in CELL_TYPES if ct in set(markers["cell_type"]) and ct not in classes]
    if len(classes) < 2:
        raise InputError(
            f"only {len(classes)} cell type(s) have >= 2 positive markers in the data "
            f"(missing genes: {missing[:20]}): "
            f"{_why_panel_misses(markers['gene'], var_names)}"
        )
    return panel[panel["cell_type"].isin(classes)], classes, not_scored, missing


def _score_genes_scores(
    adata: AnnData, panel: pd.DataFrame, classes: list[str], layer: str | None, random_state: int
) -> np.ndarray:
    """:func:`scanpy.tl.score_genes` on each class's positive markers, one column per class."""
    import scanpy as sc

    scores = np.empty((adata.n_obs, len(classes)))
    # a bare object, so scanpy's score column never lands in the caller's obs
    tmp = AnnData(
        X=adata.X if layer is None else adata.layers[layer],
        var=pd.DataFrame(index=adata.var_names),
    )
    for j, ct in enumerate(classes):
        pos = panel.loc[(panel["cell_type"] == ct) & (panel["weight"] > 0), "gene"]
        sc.tl.score_genes(tmp, list(pos), score_name="s", random_state=random_state)
        scores[:, j] = tmp.obs["s"].to_numpy()
    return scores


def _smooth_over_neighbours(
    adata: AnnData, scores: np.ndarray, classes: list[str], connectivities
) -> np.ndarray:
    """Each cell's scores averaged with its neighbours', weighted by connectivity (itself: 1);
    the unsmoothed ones are kept in ``obsm["cell_type_scores_raw"]``."""
    adata.obsm["cell_type_scores_raw"] = pd.DataFrame(
        scores, index=adata.obs_names, columns=classes
    )
    graph = sp.csr_matrix(connectivities) + sp.eye(scores.shape[0], format="csr")
    return np.asarray(graph @ scores) / np.asarray(graph.sum(axis=1))


def _class_scores(
    adata: AnnData,
    panel: pd.DataFrame,
    classes: list[str],
    method: str,
    layer: str | None,
    max_value: float,
    random_state: int,
) -> np.ndarray:
    """Cells x ``classes`` scores by ``method``."""
    if method == "score_genes":
        return _score_genes_scores(adata, panel, classes, layer, random_state)
    genes = sorted(set(panel["gene"]))
    x = _dense_columns(adata, genes, layer)
    return _scaled_scores(x, genes, panel, classes, max_value)


def _label_best_class(
    adata: AnnData,
    key_added: str,
    scores: np.ndarray,
    classes: list[str],
    min_score: float,
    min_margin: float,
) -> None:
    """Label each cell with its best class, and record the score and its lead over the second
    best; ``unassigned`` where the score or the lead falls short."""
    order = np.argsort(-scores, axis=1)
    rows = np.arange(scores.shape[0])
    best = scores[rows, order[:, 0]]
    margin = best - scores[rows, order[:, 1]]
    label = np.asarray(classes, dtype=object)[order[:, 0]]
    label[(best < min_score) | (margin < min_margin)] = UNASSIGNED
    adata.obs[key_added] = pd.Categorical(label, categories=[*classes, UNASSIGNED])
    adata.obs[f"{key_added}_score"] = best
    adata.obs[f"{key_added}_margin"] = margin


def score_cell_types(
    adata: AnnData,
    markers: pd.DataFrame,
    *,
    key_added: str = "cell_type",
    min_score: float = 0.1,
    min_margin: float = 0.1,
    method: str = "scaled",
    max_value: float = 3.0,
    neighbors_key: str | None = None,
    layer: str | None = None,
    random_state: int = 0,
) -> None:
    """Score every cell for each cell type of a marker panel and label it with the best class.

    Parameters
    ----------
    adata
        Cells x genes with log-normalised expression in ``X`` (or ``layer``); gene symbols as
        ``var_names``.
    markers
        Panel as returned by :func:`clonetrack.io.tables.load_markers`.
    key_added
        ``obs`` column for the label; ``{key_added}_score`` and ``{key_added}_margin`` hold the best
        score and its lead over the second best.
    min_score
        Cells whose best score is below this are ``unassigned``.
    min_margin
        Cells whose best score leads the second best by less than this are ``unassigned``.
    method
        ``"scaled"``: weighted mean of per-gene z-scored expression (clipped at ``max_value``),
        divided by the sum of positive weights; negative weights count against a class.
        ``"score_genes"``: :func:`scanpy.tl.score_genes` on the positive markers of each class
        (mean expression minus that of random control genes of similar expression).
    max_value
        Clip for z-scores (``"scaled"`` only).
    neighbors_key
        When given (e.g. ``"neighbors"``), each cell's scores are averaged with those of its
        neighbours (weighted by ``obsp[uns[neighbors_key]["connectivities_key"]]``, the cell itself
        with weight 1) before labelling, which evens out the dropout of single markers. The
        unsmoothed scores are kept in ``obsm["cell_type_scores_raw"]``.
    layer
        Use this layer instead of ``X``.
    random_state
        Seed for the control genes of ``"score_genes"``.

    Returns
    -------
    Nothing; sets ``obs[key_added]`` (categorical), ``obs[f"{key_added}_score"]``,
    ``obs[f"{key_added}_margin"]``, ``obsm["cell_type_scores"]`` (DataFrame, one column per
    scored class) and ``uns["clonetrack"]["annotate"]`` (parameters, missing markers, classes not
    scored).

    Raises
    ------
    InputError
        Unknown ``method``, a malformed panel, or fewer than two classes with enough markers.
    """
    connectivities = _check_scoring_inputs(adata, markers, method, neighbors_key, layer)
    panel, classes, not_scored, missing = _scorable_panel(markers, adata.var_names)
    scores = _class_scores(adata, panel, classes, method, layer, max_value, random_state)
    if connectivities is not None:
        scores = _smooth_over_neighbours(adata, scores, classes, connectivities)
    adata.obsm["cell_type_scores"] = pd.DataFrame(scores, index=adata.obs_names, columns=classes)
    _label_best_class(adata, key_added, scores, classes, min_score, min_margin)
    adata.uns.setdefault("clonetrack", {})["annotate"] = {
        "method": method,
        "min_score": float(min_score),
        "min_margin": float(min_margin),
        "max_value": float(max_value),
        "neighbors_key": neighbors_key,
        "layer": layer,
        "random_state": int(random_state),
        "key_added": key_added,
        "classes_scored": classes,
        "classes_not_scored": not_scored,
        "missing_markers": missing,
        "n_markers_used": int(len(panel)),
    }


def annotate_clusters(
    adata: AnnData,
    *,
    cluster_key: str = "leiden",
    cell_key: str = "cell_type",
    key_added: str = "cell_type_cluster",
    min_fraction: float = 0.5,
) -> pd.DataFrame:
    """Label each cluster with the majority cell type of its assigned cells.

    Parameters
    ----------
    adata
        Annotated cells with ``obs[cluster_key]`` and ``obs[cell_key]``.
    cluster_key
        Cluster column.
    cell_key
        Per-cell label column; ``unassigned`` cells do not vote.
    key_added
        ``obs`` column receiving the cluster label of each cell (categorical).
    min_fraction
        A cluster whose majority label holds fewer than this fraction of its assigned cells, or
        which has no assigned cell, is labelled ``mixed``.

    Returns
    -------
    One row per cluster: ``cluster``, ``n_cells``, ``n_assigned``, ``label``, ``fraction``
    (share of assigned cells carrying the label; NaN without assigned cells).
    """
    for key in (cluster_key, cell_key):
        if key not in adata.obs:
            raise InputError(f"obs column {key!r} not found; run clustering/score_cell_types first")
    if not 0 < min_fraction <= 1:
        raise InputError(f"min_fraction must be in (0, 1], got {min_fraction}")
    clusters = adata.obs[cluster_key].astype(str)
    labels = adata.obs[cell_key].astype(str)
    rows = []
    for cl in pd.unique(clusters):
        lab = labels[clusters == cl]
        assigned = lab[lab != UNASSIGNED]
        if len(assigned):
            counts = assigned.value_counts()
            frac = counts.iloc[0] / len(assigned)
            name = counts.index[0] if frac >= min_fraction else "mixed"
        else:
            frac, name = np.nan, "mixed"
        rows.append((cl, len(lab), len(assigned), name, frac))
    table = pd.DataFrame(rows, columns=["cluster", "n_cells", "n_assigned", "label", "fraction"])
    mapping = dict(zip(table["cluster"], table["label"], strict=True))
    adata.obs[key_added] = pd.Categorical(clusters.map(mapping))
    adata.uns.setdefault("clonetrack", {})["annotate_clusters"] = {
        "cluster_key": cluster_key,
        "cell_key": cell_key,
        "key_added": key_added,
        "min_fraction": float(min_fraction),
    }
    return table
