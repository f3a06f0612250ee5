"""Integration quality: batch mixing and label conservation, before and after integration."""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData
from sklearn.metrics import silhouette_samples
from sklearn.neighbors import NearestNeighbors

from clonetrack.vocabulary import UNASSIGNED


def seeded_subsample(n: int, size: int, random_state: int) -> np.ndarray:
    """At most ``size`` of ``n`` indices, drawn with a seed and sorted (all when ``n <= size``)."""
    rng = np.random.default_rng(random_state)
    return np.sort(rng.choice(n, size=size, replace=False)) if n > size else np.arange(n)


def label_asw(embedding: np.ndarray, labels: np.ndarray) -> float:
    """Cell-type silhouette rescaled to [0, 1]; higher means labels stay separated."""
    if len(np.unique(labels)) < 2:
        return float("nan")
    return float((np.mean(silhouette_samples(embedding, labels)) + 1) / 2)


def batch_asw(embedding: np.ndarray, batches: np.ndarray, labels: np.ndarray) -> float:
    """Batch silhouette within each label, as 1 - |s| averaged (scIB's definition); 1 = mixed."""
    scores = []
    for label in np.unique(labels):
        mask = labels == label
        n_batches = len(np.unique(batches[mask]))
        # a silhouette needs 2 <= batches <= cells - 1 (a small sample can give one cell a batch)
        if n_batches < 2 or mask.sum() <= n_batches:
            continue
        scores.append(np.mean(1 - np.abs(silhouette_samples(embedding[mask], batches[mask]))))
    return float(np.mean(scores)) if scores else float("nan")


def knn_batch_mixing(embedding: np.ndarray, batches: np.ndarray, *, k: int = 30) -> float:
    """Observed over expected fraction of a cell's neighbours from other batches (1 = ideal)."""
    codes = pd.factorize(batches)[0]
    counts = np.bincount(codes)
    k = min(k, len(codes) - 1)
    nn = NearestNeighbors(n_neighbors=k + 1).fit(embedding)
    idx = nn.kneighbors(embedding, return_distance=False)[:, 1:]
    observed = (codes[idx] != codes[:, None]).mean(axis=1)
    expected = 1 - (counts[codes] - 1) / (len(codes) - 1)
    return float(np.mean(observed) / np.mean(expected))


def integration_metrics(
    adata: AnnData,
    *,
    batch_key: str,
    label_key: str = "cell_type",
    ignore_labels: tuple[str, ...] = (UNASSIGNED,),
    max_cells: int = 10000,
    random_state: int = 0,
) -> pd.DataFrame:
    """Batch mixing and label conservation on the unintegrated PCA and the integrated embedding.

    Computed on a seeded subsample of at most ``max_cells`` confidently labelled cells.
    """
    used = adata.uns["clonetrack"]["integrate"]["embedding"]
    keep = ~adata.obs[label_key].astype(str).isin(ignore_labels).to_numpy()
    index = np.flatnonzero(keep)[seeded_subsample(int(keep.sum()), max_cells, random_state)]
    batches = adata.obs[batch_key].astype(str).to_numpy()[index]
    labels = adata.obs[label_key].astype(str).to_numpy()[index]
    rows = []
    for name in dict.fromkeys(["X_pca", used]):
        embedding = np.asarray(adata.obsm[name])[index]
        rows.append(
            {
                "embedding": name,
                "integrated": name == used and name != "X_pca",
                "n_cells": len(index),
                "label_asw": label_asw(embedding, labels),
                "batch_asw": batch_asw(embedding, batches, labels),
                "knn_batch_mixing": knn_batch_mixing(embedding, batches),
            }
        )
    return pd.DataFrame(rows)
