"""Ambient RNA: the soup of lysed cells in every droplet, removed with SoupX's model.

SoupX (Young & Behjati 2020, GigaScience 9:giaa151) through ``soupx-python``: the soup profile is
the gene composition of the empty droplets (1-99 UMIs); the contamination fraction ``rho`` is,
unless given, estimated from the haemoglobin genes in the clusters that do not make them
(:func:`estimate_from_non_expressed`) or by ``autoEstCont`` from genes that mark one cluster and
are absent from others (clusters from a quick Leiden of the called cells); each cell then loses
``rho x its UMIs x soup profile`` of every gene it expresses, clipped at zero (SoupX's subtraction,
equation 5). The subtraction is done here on the sparse matrix at once: ``soupx.adjustCounts``
computes the same numbers one dense column at a time (325 s for 2,124 cells on the real raw
matrix); ``tests/unit/test_ambient.py`` checks the two agree. Corrected counts are rounded
stochastically with a seeded generator, so that count models (seurat_v3, pydeseq2) see integers.
"""

from __future__ import annotations

import contextlib
import io
import logging

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import sparse

log = logging.getLogger(__name__)

AMBIENT_METHODS = ("soupx", "none")
#: How the contamination is estimated when not given (``droplets.contamination_genes``).
CONTAMINATION_GENE_SETS = ("haemoglobin", "markers")
#: A gene-set estimate needs at least this many soup UMIs expected in the cells that do not make
#: the genes; fewer, and the estimate falls back to SoupX's marker-based one.
MIN_EXPECTED_SOUP_UMIS = 50


def soup_channel(cells: AnnData, raw: AnnData):
    """A ``soupx.SoupChannel`` of the called cells and every droplet (genes x barcodes)."""
    import soupx

    genes = list(raw.var_names)
    if list(cells.var_names) != genes:
        raise ValueError("cells and raw droplets must list the same genes in the same order")
    channel = soupx.SoupChannel(
        sparse.csr_matrix(raw.X.T),
        sparse.csr_matrix(cells.X.T),
        metaData=pd.DataFrame(index=cells.obs_names.copy()),
        gene_names=genes,
    )
    return channel


def quick_clusters(cells: AnnData, *, seed: int = 0) -> np.ndarray:
    """Leiden clusters of the called cells, for SoupX's marker-based estimate only."""
    import scanpy as sc

    work = AnnData(cells.X.astype(np.float32).copy())
    sc.pp.normalize_total(work, target_sum=1e4)
    sc.pp.log1p(work)
    n_pcs = int(min(20, work.n_obs - 1, work.n_vars - 1))
    sc.pp.pca(work, n_comps=n_pcs, random_state=seed)
    # exact neighbours: approximate search would compile pynndescent in this process
    sc.pp.neighbors(work, n_neighbors=15, transformer="sklearn", random_state=seed)
    sc.tl.leiden(work, resolution=1.0, flavor="igraph", n_iterations=2, random_state=seed)
    return work.obs["leiden"].astype(str).to_numpy()


def estimate_contamination(channel, clusters: np.ndarray) -> tuple[float | None, str]:
    """SoupX's ``autoEstCont``; ``None`` with the reason when it cannot estimate."""
    import soupx

    channel.setClusters(clusters)
    try:
        with contextlib.redirect_stdout(io.StringIO()) as printed:
            fitted = soupx.autoEstCont(channel, verbose=True, forceAccept=True)
    except Exception as error:  # noqa: BLE001 - the library raises bare errors on odd samples
        return None, f"SoupX could not estimate the contamination ({error})"
    log.info("autoEstCont: %s", printed.getvalue().strip().replace("\n", "; "))
    rho = float(fitted.fit["rhoEst"])
    return rho, f"estimated by SoupX from {fitted.fit.get('n_estimates', '?')} marker estimates"


def estimate_from_non_expressed(
    counts: sparse.spmatrix,
    soup: np.ndarray,
    genes: np.ndarray,
    clusters: np.ndarray,
    *,
    fdr: float = 0.05,
    confidence: float = 0.95,
) -> tuple[float | None, str]:
    """Contamination from genes that only some cells make (SoupX's ``estimateNonExpressingCells``
    and ``calculateContaminationFraction``, Young & Behjati 2020).

    A cluster makes the genes if any of its cells holds more of them than even a droplet of pure
    soup would (Poisson, Benjamini-Hochberg across cells at ``fdr``). In the other clusters every
    UMI of the genes is soup, so ``rho`` = their UMIs / the UMIs soup would put there
    (``cell UMIs x soup share of the genes``): the Poisson GLM's estimate, with an exact interval.
    ``soupx-python`` has the first step only (its ``calculate_contamination_fraction`` calls
    ``autoEstCont``), and it tests genes one by one where SoupX tests the set; hence this function.

    Returns ``rho`` (``None`` when too little soup of the genes lands in non-making cells) and a
    sentence saying how it was obtained.
    """
    from scipy import stats
    from statsmodels.stats.rates import confint_poisson

    counts = sparse.csr_matrix(counts)
    n_umis = np.asarray(counts.sum(axis=1)).ravel()
    observed = np.asarray(counts[:, genes].sum(axis=1)).ravel()
    soup_share = float(np.asarray(soup)[genes].sum())
    expected = n_umis * soup_share
    # P(at least the observed UMIs | the whole droplet were soup), per cell
    p = np.where(expected > 0, stats.poisson.sf(observed - 1, expected), (observed == 0) * 1.0)
    q = stats.false_discovery_control(np.clip(p, 0, 1), method="bh")
    makes = pd.Series(q < fdr).groupby(np.asarray(clusters)).transform("any").to_numpy()
    used = ~makes
    total_expected = float(expected[used].sum())
    if total_expected < MIN_EXPECTED_SOUP_UMIS:
        return None, (
            f"{total_expected:.0f} soup UMIs of the genes expected in the {int(used.sum())} cells "
            f"that do not make them (fewer than {MIN_EXPECTED_SOUP_UMIS})"
        )
    k = float(observed[used].sum())
    # Garwood's exact interval of a Poisson rate
    low, high = confint_poisson(k, total_expected, method="exact-c", alpha=1 - confidence)
    rho = k / total_expected
    return rho, (
        f"{rho:.3f} [{low:.3f}, {high:.3f}] from {int(used.sum())} cells in "
        f"{len(set(np.asarray(clusters)[used]))} clusters that do not make the genes"
    )


def subtract_soup(
    counts: sparse.spmatrix, soup: np.ndarray, rho: float | np.ndarray
) -> sparse.csr_matrix:
    """SoupX's subtraction: each cell loses ``rho x UMIs x soup`` of each gene, clipped at zero."""
    counts = sparse.csr_matrix(counts, dtype=np.float64)
    n_umis = np.asarray(counts.sum(axis=1)).ravel()
    per_cell = np.broadcast_to(np.asarray(rho, dtype=float), n_umis.shape) * n_umis
    rows = np.repeat(np.arange(counts.shape[0]), np.diff(counts.indptr))
    out = counts.copy()
    out.data = np.maximum(counts.data - per_cell[rows] * np.asarray(soup)[counts.indices], 0.0)
    out.eliminate_zeros()
    return out


def stochastic_round(matrix: sparse.csr_matrix, *, seed: int = 0) -> sparse.csr_matrix:
    """Floor plus a Bernoulli draw of the fraction: integers with the same expected value."""
    rng = np.random.default_rng(seed)
    out = matrix.copy()
    floor = np.floor(out.data)
    out.data = floor + (rng.random(len(out.data)) < out.data - floor)
    out.eliminate_zeros()
    return out.astype(np.float32)


def remove_ambient(
    cells: AnnData,
    raw: AnnData,
    *,
    contamination: float | None = None,
    contamination_genes: str = "markers",
    hb_pattern: str | None = None,
    seed: int = 0,
) -> tuple[AnnData, dict]:
    """Remove ambient RNA from the called cells (a copy): ``X`` corrected, integer-valued;
    ``layers["uncorrected"]`` the counts as read.

    Without a given ``contamination`` it is estimated: with ``contamination_genes="haemoglobin"``
    from the genes matching ``hb_pattern`` (:func:`estimate_from_non_expressed`; in marrow and
    blood only erythroid cells make them, and lysed red cells fill the soup with them), falling
    back to SoupX's ``autoEstCont`` when too little haemoglobin soup lands in other cells; with
    ``"markers"``, ``autoEstCont`` alone.

    Returns
    -------
    The corrected cells, and a summary: ``contamination``, how it was obtained, the share of UMIs
    removed, and the soup's top genes.
    """
    channel = soup_channel(cells, raw)
    soup = channel.soupProfile["est"].to_numpy()
    how = "given (droplets.contamination)"
    rho = contamination
    if rho is None:
        clusters = quick_clusters(cells, seed=seed)
        how = ""
        if contamination_genes == "haemoglobin":
            import re

            pattern = re.compile(hb_pattern or "")
            genes = np.array([bool(hb_pattern) and bool(pattern.match(g)) for g in raw.var_names])
            rho, how = (None, "no gene matches qc.hb_pattern") if not genes.any() else (
                estimate_from_non_expressed(cells.X, soup, genes, clusters)
            )  # fmt: skip
            how = f"haemoglobin genes: {how}"
        if rho is None:
            fallback = f"{how}; " if how else ""
            rho, how = estimate_contamination(channel, clusters)
            how = fallback + how
    out = cells.copy()
    out.layers["uncorrected"] = cells.X.copy()
    if rho is not None:
        out.X = stochastic_round(subtract_soup(cells.X, soup, rho), seed=seed)
    before, after = float(cells.X.sum()), float(out.X.sum())
    top = pd.Series(soup, index=raw.var_names).nlargest(5)
    summary = {
        "contamination": np.nan if rho is None else rho,
        "contamination_source": how if rho is not None else how + ": counts left as read",
        "umis_removed_fraction": 1 - after / before if before else 0.0,
        "soup_top_genes": ", ".join(f"{g} {v:.3f}" for g, v in top.items()),
    }
    out.uns.setdefault("clonetrack", {})["ambient"] = {k: v for k, v in summary.items()}
    return out, summary
