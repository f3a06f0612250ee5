"""Unfiltered droplet matrices: a sample's cells among empty droplets, with planted ambient RNA."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
from scipy import sparse

from clonetrack_sim.barcodes import barcode_strings


def simulate_raw_droplets(
    cells: ad.AnnData,
    *,
    n_empty: int = 20_000,
    contamination: float = 0.1,
    lysed: dict[str, float] | None = None,
    empty_median_umis: float = 8.0,
    seed: int = 0,
) -> tuple[ad.AnnData, pd.Series]:
    """An unfiltered droplet matrix around a sample's cells, with planted ambient RNA.

    The soup is the mean profile of the cells plus the transcripts of lysed cells (``lysed``:
    gene -> share of the soup, e.g. haemoglobins and platelet genes); each cell receives
    ``contamination`` x its UMIs of soup on top of its own counts; ``n_empty`` empty droplets hold
    soup only (log-normal UMIs around ``empty_median_umis``).

    Returns the raw matrix (cells first, then empties, barcodes in ``obs["barcode"]``) and the soup
    profile.
    """
    rng = np.random.default_rng([seed, 17])
    own = sparse.csr_matrix(cells.X)
    profile = np.asarray(own.sum(axis=0)).ravel().astype(float)
    profile /= profile.sum()
    lysed = lysed or {}
    extra = np.zeros_like(profile)
    for gene, share in lysed.items():
        extra[cells.var_names.get_loc(gene)] = share
    soup = (1 - extra.sum()) * profile + extra
    n_umis = np.asarray(own.sum(axis=1)).ravel()
    added = np.vstack([rng.multinomial(int(round(contamination * n)), soup) for n in n_umis])
    empty_umis = np.maximum(
        1, rng.lognormal(np.log(empty_median_umis), 0.8, n_empty).round()
    ).astype(int)
    empties = np.vstack([rng.multinomial(n, soup) for n in empty_umis])
    matrix = sparse.vstack([own + sparse.csr_matrix(added), sparse.csr_matrix(empties)]).tocsr()
    codes = rng.choice(4**16, size=n_empty, replace=False)
    barcodes = np.concatenate([cells.obs["barcode"].astype(str).to_numpy(), barcode_strings(codes)])
    raw = ad.AnnData(
        X=matrix.astype(np.float32),
        obs=pd.DataFrame({"barcode": barcodes, "is_cell": np.arange(len(barcodes)) < cells.n_obs},
                         index=barcodes),
        var=pd.DataFrame(index=cells.var_names.copy()),
    )  # fmt: skip
    return raw, pd.Series(soup, index=cells.var_names.copy(), name="soup")
