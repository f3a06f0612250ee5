"""Copy-number inference from expression (infercnvpy), malignant calls and CNV subclones.

All timepoints of one patient are analysed together, so that CNV clones keep the same name across
time. Normal reference cells (by default marrow lymphocytes, rarely part of the myeloid clone)
define expression without copy-number change.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.stats import binom

from clonetrack.errors import InputError

log = logging.getLogger(__name__)


def _record(adata: ad.AnnData, step: str, params: dict) -> None:
    adata.uns.setdefault("clonetrack", {})[step] = params


def unpositioned_reason(
    genes: pd.Index, positions: pd.DataFrame, *, source: str = "", min_fraction: float = 0.5
) -> str | None:
    """Why copy number cannot be inferred on these genes, or ``None`` when enough have a position.

    Measured on all of the data's genes, before any are dropped for lacking a position (another
    organism's symbols, or identifiers that are not symbols, leave most genes unpositioned).
    """
    hit = pd.Index(genes).astype(str).isin(positions.index)
    if len(hit) and hit.mean() >= min_fraction:
        return None
    return (
        f"only {int(hit.sum())} of {len(hit)} genes ({hit.mean() if len(hit) else 0:.1%}) have a "
        f"position in {source or 'the gene-position table'}, fewer than {min_fraction:.0%}: "
        "copy number skipped (another organism's genes? set organism or clones.cnv.gene_positions)"
    )


def add_gene_positions(
    adata: ad.AnnData,
    positions: pd.DataFrame,
    *,
    gene_symbols: str | None = None,
    min_fraction: float = 0.5,
) -> dict:
    """Annotate genes with their genomic position, in the columns infercnvpy expects.

    Sets ``var["chromosome"]`` (categorical), ``var["start"]`` and ``var["end"]`` (nullable
    integers); genes absent from ``positions`` get missing values and are ignored by
    :func:`infer_cnv`.

    Parameters
    ----------
    adata
        Cells x genes.
    positions
        Output of :func:`load_gene_positions`.
    gene_symbols
        ``var`` column holding gene symbols; ``None`` uses ``var_names``.
    min_fraction
        Raise when fewer genes than this fraction have a position (wrong species or identifiers).

    Returns
    -------
    Report with ``n_genes``, ``n_with_position``, ``n_without_position``,
    ``fraction_with_position`` and ``genes_without_position`` (sorted list).
    """
    if gene_symbols is None:
        symbols = pd.Index(adata.var_names.astype(str))
    elif gene_symbols in adata.var.columns:
        symbols = pd.Index(adata.var[gene_symbols].astype(str))
    else:
        raise InputError(
            f"var has no column {gene_symbols!r}; pass an existing gene-symbol column."
        )
    hit = symbols.isin(positions.index)
    fraction = float(hit.mean()) if len(symbols) else 0.0
    if fraction < min_fraction:
        raise InputError(
            f"Only {hit.sum()} of {len(symbols)} genes ({fraction:.1%}) have a genomic position; "
            "gene identifiers must be human gene symbols (set gene_symbols= to a symbol column)."
        )
    pos = positions.reindex(symbols)
    chroms = [c for c in pd.unique(positions["chromosome"])]
    adata.var["chromosome"] = pd.Categorical(pos["chromosome"].to_numpy(), categories=chroms)
    adata.var["start"] = pd.array(pos["start"].to_numpy(), dtype="Int64")
    adata.var["end"] = pd.array(pos["end"].to_numpy(), dtype="Int64")
    missing = sorted(symbols[~hit])
    report = {
        "n_genes": int(len(symbols)),
        "n_with_position": int(hit.sum()),
        "n_without_position": int((~hit).sum()),
        "fraction_with_position": fraction,
        "genes_without_position": missing,
    }
    _record(
        adata, "gene_positions", {k: v for k, v in report.items() if k != "genes_without_position"}
    )
    return report


def _check_lognorm(x) -> None:
    data = x.data if sp.issparse(x) else np.asarray(x)
    if data.size == 0:
        raise InputError("Expression matrix is empty; nothing to infer copy number from.")
    if np.all(np.mod(data[:100_000], 1) == 0) and data.max() > 30:
        raise InputError(
            "infer_cnv expects log-normalised expression (normalize_total + log1p) but the matrix "
            "holds integer counts; normalise first or pass layer= with log-normalised values."
        )


def _cell_scores(x_cnv) -> np.ndarray:
    """Mean absolute CNV value per cell (infercnvpy's cluster score, per cell)."""
    if sp.issparse(x_cnv):
        return np.asarray(abs(x_cnv).mean(axis=1)).ravel()
    return np.abs(x_cnv).mean(axis=1)


def _merge_similar(profiles: pd.DataFrame, labels: np.ndarray, min_distance: float) -> np.ndarray:
    """Merge clusters whose mean CNV profiles differ by less than ``min_distance`` (RMS).

    Greedy: repeatedly merge the closest pair, recomputing the merged mean weighted by size.
    """
    labels = labels.astype(object).copy()
    while True:
        groups = pd.Series(labels).value_counts()
        if len(groups) < 2:
            return labels
        means = {g: profiles.loc[labels == g].mean(axis=0).to_numpy() for g in groups.index}
        best, pair = np.inf, None
        keys = list(means)
        for i, a in enumerate(keys):
            for b in keys[i + 1 :]:
                d = float(np.sqrt(np.mean((means[a] - means[b]) ** 2)))
                if d < best:
                    best, pair = d, (a, b)
        if best >= min_distance:
            return labels
        a, b = pair
        keep, drop = (a, b) if groups[a] >= groups[b] else (b, a)
        labels[labels == drop] = keep


@contextlib.contextmanager
def _chunks_in_process(n_jobs: int | None):
    """With one job, run infercnvpy's chunks in this process rather than a one-worker pool.

    infercnvpy hands its chunks to ``tqdm``'s ``process_map`` even for ``n_jobs=1``: a forked
    worker that receives a pickled copy of each chunk, and whose pages shared with the parent
    Snakemake's benchmark counts twice. The chunks are the same and are mapped in order, so the
    result is unchanged (a test compares it with the pool's).
    """
    if n_jobs != 1:
        yield
        return
    import infercnvpy.tl._infercnv as implementation

    pooled = implementation.process_map

    def in_order(function, *iterables, **_pool_options):
        # map's semantics: infercnvpy passes endless iterables (itertools.repeat) for constants
        return [function(*arguments) for arguments in zip(*iterables, strict=False)]

    implementation.process_map = in_order
    try:
        yield
    finally:
        implementation.process_map = pooled


def _auto_window(n_genes: int) -> int:
    """Window of about 2% of the positioned genes (odd, 21-101 genes).

    With a whole transcriptome (10,000+ expressed genes) this is infercnvpy's usual ~100 genes;
    with small gene panels a fixed 100-gene window would span a large part of the genome.
    """
    w = int(round(0.02 * n_genes))
    w += 1 - w % 2
    return int(min(101, max(21, w)))


def _effect(x: np.ndarray, ref_mean: np.ndarray, ref_sd: np.ndarray) -> float:
    """Mean squared standardised shift of a group's mean profile from the reference, less noise.

    ``mean_w ((mean_group - mean_ref) / sd_ref)^2 - 1/n``: about 0 for a random group of
    reference-like cells, and large when the group shares copy-number changes.
    """
    n = x.shape[0]
    return float(np.mean(((x.mean(axis=0) - ref_mean) / ref_sd) ** 2) - 1.0 / n)


def _reference_spread(ref_x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and spread of the reference cells' profiles.

    Windows that the dynamic threshold zeroes in nearly every reference cell have almost no
    spread; a floor at the median spread keeps them from dominating the effect.
    """
    ref_sd = ref_x.std(axis=0)
    return ref_x.mean(axis=0), np.maximum(ref_sd, max(float(np.median(ref_sd)), 1e-6))


def _cluster_effects(
    x, clusters, is_ref, ref_mean, ref_sd, *, min_cluster_cells, null_draws, null_quantile, rng
) -> tuple[pd.DataFrame, float]:
    """Per CNV cluster, the effect of its non-reference cells and of random reference groups of
    its size; and the largest effect of the reference cells inside any one cluster."""
    ref_x = x[is_ref]
    ref_effects = [
        _effect(x[(clusters == c) & is_ref], ref_mean, ref_sd)
        for c in np.unique(clusters)
        if ((clusters == c) & is_ref).sum() >= min_cluster_cells
    ]
    ref_null = max(ref_effects) if ref_effects else -np.inf
    rows = []
    for c in np.unique(clusters):
        idx = (clusters == c) & ~is_ref
        n = int(idx.sum())
        eff = _effect(x[idx], ref_mean, ref_sd) if n >= min_cluster_cells else np.nan
        if n >= min_cluster_cells:
            draws = [
                _effect(ref_x[rng.choice(len(ref_x), n, replace=n > len(ref_x))], ref_mean, ref_sd)
                for _ in range(null_draws)
            ]
            rand_null = float(np.quantile(draws, null_quantile))
        else:
            rand_null = np.nan
        rows.append(
            {
                "cluster": c,
                "n_cells": int((clusters == c).sum()),
                "n_query": n,
                "frac_reference": float(is_ref[clusters == c].mean()),
                "effect": eff,
                "null_random": rand_null,
            }
        )
    return pd.DataFrame(rows).set_index("cluster"), ref_null


def _seed_clusters(
    table: pd.DataFrame, share: float, ref_null: float, depletion_alpha: float
) -> float:
    """Mark the seed clusters in ``table["seed"]``; returns the pooled depletion p-value.

    Copy-number clones hold (almost) no reference cells, whereas clusters formed by noise or by
    expression shared with lymphocytes hold them at about the sample-wide rate ``share``.
    """
    candidate = (
        (table["effect"] > table["null_random"])
        & (table["effect"] > ref_null)
        & (table["frac_reference"] < share)
    )
    # Tested on the candidates pooled: with few reference cells a single cluster has no power.
    n_cand = int(table.loc[candidate, "n_cells"].sum())
    n_cand_ref = n_cand - int(table.loc[candidate, "n_query"].sum())
    p_depletion = float(binom.cdf(n_cand_ref, n_cand, share)) if n_cand else 1.0
    table["seed"] = candidate & (p_depletion < depletion_alpha)
    return p_depletion


def _consensus_calls(
    x, seed, is_ref, ref_mean, *, reference_quantile, n_iterations
) -> tuple[np.ndarray, np.ndarray, float]:
    """Score every cell on the consensus profile of the called cells (starting from the seeds)
    and call it above the ``reference_quantile`` quantile of the reference cells' scores."""
    call = seed.copy()
    score = np.zeros(x.shape[0])
    threshold = np.nan
    for _ in range(n_iterations if seed.any() else 0):
        direction = x[call].mean(axis=0) - ref_mean
        norm = float(np.linalg.norm(direction))
        if norm == 0:
            break
        score = (x - ref_mean) @ direction / norm
        threshold = float(np.quantile(score[is_ref], reference_quantile))
        call = (score > threshold) & ~is_ref
        if not call.any():
            break
    return call, score, threshold


def _call_malignant(
    x: np.ndarray,
    clusters: np.ndarray,
    is_ref: np.ndarray,
    *,
    reference_quantile: float,
    min_cluster_cells: int,
    null_draws: int,
    null_quantile: float,
    depletion_alpha: float,
    n_iterations: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, pd.DataFrame, dict]:
    """Malignant calls: averaged-profile test per CNV cluster, then a per-cell consensus score.

    1. For every CNV cluster, the effect (:func:`_effect`) of its non-reference cells is compared
       with a null: (a) the largest effect among the reference cells of each CNV cluster with at
       least ``min_cluster_cells`` of them (groups that clustering made look alike) and (b) the
       ``null_quantile`` quantile of ``null_draws`` random groups of reference cells of the
       cluster's size. Clusters above both and with a lower share of reference cells than the
       sample are candidates; they are seeds when, pooled, they hold significantly fewer
       reference cells than that share (one-sided binomial, level ``depletion_alpha``).
    2. Consensus profile = mean of the called cells minus the reference mean; each cell is scored
       by the projection of its profile on it, and called malignant when the score exceeds the
       ``reference_quantile`` quantile of the reference cells' scores. Repeated
       ``n_iterations`` times, starting from the seed clusters.
    """
    ref_mean, ref_sd = _reference_spread(x[is_ref])
    table, ref_null = _cluster_effects(
        x,
        clusters,
        is_ref,
        ref_mean,
        ref_sd,
        min_cluster_cells=min_cluster_cells,
        null_draws=null_draws,
        null_quantile=null_quantile,
        rng=rng,
    )
    p_depletion = _seed_clusters(table, float(is_ref.mean()), ref_null, depletion_alpha)
    seed = np.isin(clusters, table.index[table["seed"]]) & ~is_ref
    call, score, threshold = _consensus_calls(
        x,
        seed,
        is_ref,
        ref_mean,
        reference_quantile=reference_quantile,
        n_iterations=n_iterations,
    )
    table["frac_malignant"] = pd.Series(call).groupby(clusters).mean()
    info = {
        "reference_cluster_null": float(ref_null),
        "p_reference_depletion": p_depletion,
        "consensus_threshold": threshold,
    }
    return call, score, table, info


@dataclass(frozen=True)
class CnvSettings:
    """Settings of :func:`infer_cnv`: the method's, without the reference or the gene positions.

    Attributes
    ----------
    window_size, step, dynamic_threshold
        Passed to :func:`infercnvpy.tl.infercnv`. ``window_size=None`` uses about 2% of the
        positioned, expressed genes (odd, 21-101: 101 for a transcriptome, 49 for the 2,500-gene
        toy); ``step=None`` uses a tenth of the window.
    exclude_chromosomes
        Chromosomes left out. Within a patient, reference and tumour share the sex, so ``chrX`` is
        kept (X loss is recurrent in some AML).
    n_pcs, n_neighbors, resolution
        CNV PCA components, neighbours and Leiden resolution for the CNV clusters.
    reference_quantile
        Quantile of the reference cells' consensus scores a cell must exceed to be malignant (the
        share of reference-like cells expected above it is ``1 - reference_quantile``).
    min_reference_cells
        Fewer reference cells than this raise :class:`~clonetrack.errors.InputError`.
    min_cluster_cells
        Clusters with fewer non-reference cells are not tested as seeds (nor used in the null).
    null_draws, null_quantile
        Random groups of reference cells per cluster, and the quantile of their effects a seed
        cluster must exceed.
    depletion_alpha
        Level of the one-sided binomial test that the candidate clusters, pooled, hold fewer
        reference cells than the sample-wide share.
    n_iterations
        Rounds of consensus scoring.
    subclone_resolution
        Leiden resolution for subclones among malignant cells.
    subclone_min_distance
        Subclones whose mean CNV profiles differ by less than this (root mean square) are merged.
    min_subclone_size
        Smaller subclones are merged into the closest larger one.
    """

    window_size: int | None = None
    step: int | None = None
    exclude_chromosomes: tuple[str, ...] = ("chrY",)
    dynamic_threshold: float = 1.5
    n_pcs: int = 20
    n_neighbors: int = 15
    resolution: float = 1.0
    reference_quantile: float = 0.9
    min_reference_cells: int = 20
    min_cluster_cells: int = 10
    null_draws: int = 200
    null_quantile: float = 0.99
    depletion_alpha: float = 0.01
    n_iterations: int = 2
    subclone_resolution: float = 0.5
    subclone_min_distance: float = 0.02
    min_subclone_size: int = 10

    @classmethod
    def from_config(cls, section: Mapping) -> CnvSettings:
        """The settings of ``clones.cnv``; its gene positions and reference are read elsewhere
        (:func:`load_gene_positions`, :class:`NormalReference`). An unknown key is an error."""
        options = {k: v for k, v in section.items() if k not in _NOT_METHOD_SETTINGS}
        if "exclude_chromosomes" in options:
            options["exclude_chromosomes"] = tuple(options["exclude_chromosomes"])
        return cls(**options)


#: Keys of ``clones.cnv`` that are not settings of the method.
_NOT_METHOD_SETTINGS = ("gene_positions", "reference_cell_types", "reference_samples")

#: Cell types of the normal reference by default: marrow lymphocytes, rarely part of a myeloid
#: clone and present in most samples (``clones.cnv.reference_cell_types``'s default).
REFERENCE_CELL_TYPES = ("T", "CTL", "NK", "B", "Plasma")

#: Cells of one type in the reference samples form their own reference category from this many.
MIN_REFERENCE_CATEGORY_CELLS = 10


@dataclass(frozen=True)
class NormalReference:
    """Which cells are normal: the one definition of copy number's reference and of the malignant
    call's normal seeds.

    Attributes
    ----------
    cell_types
        Cells of these types (``obs["cell_type"]``) in every sample: reference of copy number
        and normal seeds of the malignant call.
    samples
        Every cell of these samples joins the copy-number reference (the configured reference
        samples and the healthy ones).
    healthy
        Samples of healthy donors: every cell is also a normal seed of the malignant call.
    """

    cell_types: tuple[str, ...] = REFERENCE_CELL_TYPES
    samples: tuple[str, ...] = ()
    healthy: tuple[str, ...] = ()

    @classmethod
    def from_settings(
        cls,
        *,
        cell_types: Sequence[str] = REFERENCE_CELL_TYPES,
        reference_samples: Sequence[str] = (),
        healthy: Sequence[str] = (),
    ) -> NormalReference:
        """From ``clones.cnv.reference_cell_types``, ``clones.cnv.reference_samples`` and the
        sheet's healthy samples, which join every patient's copy-number reference."""
        samples = tuple(sorted(set(reference_samples) | set(healthy)))
        return cls(tuple(cell_types), samples, tuple(healthy))

    def of_type(self, obs: pd.DataFrame) -> np.ndarray:
        """Cells of a reference type."""
        return obs["cell_type"].astype(str).isin(self.cell_types).to_numpy()

    def in_samples(self, obs: pd.DataFrame) -> np.ndarray:
        """Cells of a reference sample."""
        return obs["sample_id"].astype(str).isin(self.samples).to_numpy()

    def normal_seeds(self, obs: pd.DataFrame) -> np.ndarray:
        """The malignant call's normal seeds: healthy samples' cells and reference types."""
        return np.isin(obs["sample_id"].astype(str).to_numpy(), self.healthy) | self.of_type(obs)

    def categories(self, obs: pd.DataFrame) -> tuple[np.ndarray, tuple[str, ...]]:
        """Each cell's copy-number reference category (``"query"`` when not in the reference),
        and the reference categories.

        Each reference cell type stays its own category (infercnvpy absorbs differences between
        reference categories). Cells of reference samples (healthy marrow) form one category per
        cell type (``healthy_<type>``, from :data:`MIN_REFERENCE_CATEGORY_CELLS` cells; smaller
        types pool as ``reference_sample``), so that normal monocytes, erythroid cells or
        progenitors of the patient are compared with their own kind: against lymphocytes alone,
        their expression (e.g. a monocyte programme clustered on one chromosome arm) reads as a
        copy-number change.
        """
        cell_type = obs["cell_type"].astype(str).to_numpy()
        in_sample, of_type = self.in_samples(obs), self.of_type(obs)
        healthy_type = np.where(in_sample, "healthy_" + cell_type, "")
        counts = pd.Series(healthy_type[in_sample]).value_counts()
        large = set(counts.index[counts >= MIN_REFERENCE_CATEGORY_CELLS])
        healthy_type = np.where(
            np.isin(healthy_type, list(large)), healthy_type, "reference_sample"
        )
        labels = np.where(of_type, cell_type, np.where(in_sample, healthy_type, "query"))
        extra = sorted(set(labels[in_sample & ~of_type]))
        return labels, (*self.cell_types, *extra)


def _reference_cells(adata, reference_key, reference_categories, min_reference_cells):
    """Present reference categories and the mask of their cells; too few cells raise."""
    labels = adata.obs[reference_key].astype(str)
    ref_cats = [c for c in reference_categories if c in set(labels)]
    is_ref = labels.isin(ref_cats).to_numpy()
    if is_ref.sum() < min_reference_cells:
        raise InputError(
            f"Only {is_ref.sum()} reference cells "
            f"({reference_key} in {list(reference_categories)}); "
            f"at least {min_reference_cells} are needed to define normal expression."
        )
    return ref_cats, is_ref


def _positioned_expression(adata, x, is_ref, reference_key) -> tuple[ad.AnnData, np.ndarray]:
    """The positioned, expressed genes (others carry no information) in infercnvpy's layout."""
    expressed = np.asarray((x > 0).sum(axis=0)).ravel() > 0
    keep = adata.var["chromosome"].notna().to_numpy() & expressed
    work = ad.AnnData(
        X=sp.csr_matrix(x[:, keep]) if sp.issparse(x) else np.asarray(x[:, keep]),
        obs=pd.DataFrame(
            {"ref": pd.Categorical(np.where(is_ref, "ref", "other"))}, index=adata.obs_names
        ),
        var=adata.var.loc[keep, ["chromosome", "start", "end"]].astype(
            {"chromosome": str, "start": "int64", "end": "int64"}
        ),
    )
    work.obs["ref_type"] = adata.obs[reference_key].astype(str).to_numpy()
    return work, keep


def _cnv_profiles(work, ref_cats, settings: CnvSettings, *, n_jobs, random_state):
    """infercnvpy's profiles, CNV PCA, neighbours, Leiden and cluster scores of ``work``.

    Returns the window, step and number of CNV components used.
    """
    import infercnvpy as cnv

    # Reference categories are passed one by one: infercnvpy then treats expression between the
    # category means as unchanged, absorbing cell-type differences among lymphocytes.
    ref_present = [c for c in ref_cats if (work.obs["ref_type"] == c).sum() > 0]
    window_size = settings.window_size
    if window_size is None:
        window_size = _auto_window(work.n_vars)
    step = max(1, window_size // 10) if settings.step is None else settings.step
    with _chunks_in_process(n_jobs):
        cnv.tl.infercnv(
            work,
            reference_key="ref_type",
            reference_cat=ref_present,
            window_size=window_size,
            step=step,
            dynamic_threshold=settings.dynamic_threshold,
            exclude_chromosomes=list(settings.exclude_chromosomes) or None,
            n_jobs=n_jobs,
        )
    n_comp = int(min(settings.n_pcs, work.n_obs - 1, work.obsm["X_cnv"].shape[1] - 1))
    cnv.tl.pca(work, n_comps=n_comp, random_state=random_state)
    cnv.pp.neighbors(work, n_neighbors=settings.n_neighbors, random_state=random_state)
    _leiden(work, settings.resolution, random_state)
    cnv.tl.cnv_score(work)
    return {"window_size": window_size, "step": step, "n_pcs": n_comp}


def _leiden(adata: ad.AnnData, resolution: float, random_state: int) -> None:
    import infercnvpy as cnv

    cnv.tl.leiden(
        adata,
        resolution=resolution,
        random_state=random_state,
        flavor="igraph",
        n_iterations=2,
        directed=False,
    )


def _malignant_and_subclones(work, is_ref, settings: CnvSettings, random_state):
    """Malignant calls on the CNV clusters of ``work``, and the subclones of the malignant cells.

    Returns the calls, consensus scores, per-cell mean |CNV|, clusters, per-cluster table,
    thresholds and each cell's clone (``cnvK`` or ``"normal"``).
    """
    cell_score = _cell_scores(work.obsm["X_cnv"])
    clusters = work.obs["cnv_leiden"].astype(str).to_numpy()
    x_cnv = work.obsm["X_cnv"]
    x_cnv = x_cnv.toarray() if sp.issparse(x_cnv) else np.asarray(x_cnv)
    malignant, consensus, table, call_info = _call_malignant(
        x_cnv,
        clusters,
        is_ref,
        reference_quantile=settings.reference_quantile,
        min_cluster_cells=settings.min_cluster_cells,
        null_draws=settings.null_draws,
        null_quantile=settings.null_quantile,
        depletion_alpha=settings.depletion_alpha,
        n_iterations=settings.n_iterations,
        rng=np.random.default_rng(random_state),
    )
    table["mean_score"] = pd.Series(cell_score).groupby(clusters).mean()
    clone = np.full(work.n_obs, "normal", dtype=object)
    if malignant.any():
        clone[malignant] = _subclones(
            work[malignant].copy(),
            n_pcs=settings.n_pcs,
            n_neighbors=settings.n_neighbors,
            resolution=settings.subclone_resolution,
            min_distance=settings.subclone_min_distance,
            min_size=settings.min_subclone_size,
            random_state=random_state,
        )
    return malignant, consensus, cell_score, clusters, table, call_info, clone


def infer_cnv(
    adata: ad.AnnData,
    *,
    reference_key: str = "cell_type",
    reference_categories: Sequence[str] = REFERENCE_CELL_TYPES,
    layer: str | None = None,
    settings: CnvSettings = CnvSettings(),
    n_jobs: int = 1,
    random_state: int = 0,
) -> None:
    """Infer copy-number profiles, call malignant cells and their CNV subclones.

    Runs :func:`infercnvpy.tl.infercnv` (log fold change to the mean of each reference category,
    smoothed over ``window_size`` genes ordered by position), then PCA, neighbours and Leiden on
    the CNV profiles, and :func:`infercnvpy.tl.cnv_score`. Malignant calls average first and take
    the amplitude afterwards (see ``_call_malignant``): a CNV cluster is a seed when the mean
    profile of its non-reference cells departs from the reference (mean squared standardised
    shift) more than groups of reference cells do (random groups of the same size, and the
    reference cells of each cluster) and it holds fewer reference cells than the sample does
    (significantly so, pooled over such clusters). Each cell is then scored
    by projecting its profile on the consensus profile of the called cells and is malignant when
    the score exceeds the ``reference_quantile`` quantile of the reference cells' scores (twice,
    starting from the seed clusters). Malignant cells are re-clustered on their unit-scaled CNV
    profiles and clusters whose mean profiles differ by less than ``subclone_min_distance`` are
    merged into subclones ``cnv1``, ``cnv2``, ... (largest first).

    Analyse one patient (all timepoints) at a time, so clones match across time.

    Parameters
    ----------
    adata
        One patient's cells with log-normalised expression in ``X`` (or ``layer``) and gene
        positions from :func:`add_gene_positions`.
    reference_key
        ``obs`` column with cell types.
    reference_categories
        Cell types treated as normal reference; those absent are skipped.
    layer
        Layer with log-normalised expression; ``None`` uses ``X``.
    settings
        The method's settings (:class:`CnvSettings`).
    n_jobs
        Processes for :func:`infercnvpy.tl.infercnv`.
    random_state
        Seed for PCA, neighbours and Leiden.

    Returns
    -------
    Nothing; sets ``obsm["X_cnv"]``, ``obsm["X_cnv_pca"]``, ``uns["cnv"]``, ``obs["cnv_leiden"]``,
    ``obs["cnv_score"]`` (cluster mean), ``obs["cnv_score_cell"]`` (mean |CNV| of the cell),
    ``obs["cnv_consensus_score"]``, ``obs["malignant"]`` (bool), ``obs["cnv_clone"]`` (``cnvK`` or
    ``"normal"``) and ``uns["clonetrack"]["cnv"]``, which holds the parameters (window and step
    as used), the thresholds, the per-cluster table and ``detectable``.
    """
    if reference_key not in adata.obs.columns:
        raise InputError(f"obs has no column {reference_key!r} to find reference cells in.")
    if not {"chromosome", "start", "end"} <= set(adata.var.columns):
        raise InputError("Genes have no positions; run add_gene_positions first.")
    x = adata.X if layer is None else adata.layers[layer]
    _check_lognorm(x)
    ref_cats, is_ref = _reference_cells(
        adata, reference_key, reference_categories, settings.min_reference_cells
    )
    work, keep = _positioned_expression(adata, x, is_ref, reference_key)
    used = _cnv_profiles(work, ref_cats, settings, n_jobs=n_jobs, random_state=random_state)
    malignant, consensus, cell_score, clusters, table, call_info, clone = _malignant_and_subclones(
        work, is_ref, settings, random_state
    )
    _store_results(adata, work, used, malignant, consensus, cell_score, clusters, clone)
    used |= {"n_reference_cells": int(is_ref.sum()), "n_genes_used": int(keep.sum())}
    _record(
        adata,
        "cnv",
        _cnv_record(reference_key, reference_categories, layer, settings, used, random_state)
        | {**call_info, "detectable": bool(malignant.any()), "n_malignant": int(malignant.sum())}
        | {"clusters": _plain_columns(table)},
    )


def _store_results(adata, work, used, malignant, consensus, cell_score, clusters, clone) -> None:
    """The profiles, windows, clusters, scores, calls and clones of ``work`` on ``adata``."""
    window_size, step = used["window_size"], used["step"]
    adata.obsm["X_cnv"] = work.obsm["X_cnv"]
    adata.obsm["X_cnv_pca"] = work.obsm["X_cnv_pca"]
    adata.uns["cnv"] = work.uns["cnv"]
    adata.uns["cnv_windows"] = _window_table(
        work.var, work.uns["cnv"]["chr_pos"], window_size, step
    )
    adata.obs["cnv_leiden"] = pd.Categorical(clusters)
    adata.obs["cnv_score"] = work.obs["cnv_score"].to_numpy()
    adata.obs["cnv_score_cell"] = cell_score
    adata.obs["cnv_consensus_score"] = consensus
    adata.obs["malignant"] = malignant
    names = sorted(set(clone) - {"normal"}, key=lambda c: int(c[3:])) + ["normal"]
    adata.obs["cnv_clone"] = pd.Categorical(clone, categories=names)


def _cnv_record(reference_key, reference_categories, layer, settings, used, random_state) -> dict:
    """The parameters of a run, as used (window, step and components after defaults)."""
    return {
        "reference_key": reference_key,
        "reference_categories": list(reference_categories),
        "layer": layer,
        **{f.name: getattr(settings, f.name) for f in fields(settings)},
        "exclude_chromosomes": list(settings.exclude_chromosomes),
        **used,
        "random_state": random_state,
    }


def _plain_columns(table: pd.DataFrame) -> dict:
    """A per-cluster table as lists of plain Python values (storable in ``uns``)."""
    return {
        k: [v.item() if hasattr(v, "item") else v for v in vals]
        for k, vals in table.reset_index().to_dict(orient="list").items()
    }


def _subclones(
    mal: ad.AnnData, *, n_pcs, n_neighbors, resolution, min_distance, min_size, random_state
) -> np.ndarray:
    """Leiden on the CNV PCA of malignant cells, then merge near-identical or tiny subclones."""
    import infercnvpy as cnv

    n = mal.n_obs
    if n < max(2 * min_size, n_neighbors + 1):
        return np.full(n, "cnv1", dtype=object)
    # Subclones differ in which windows are altered, not in how strongly a cell shows them (that
    # follows its depth): cluster the shapes of the profiles (each cell scaled to unit norm).
    raw = mal.obsm["X_cnv"]
    raw = raw.toarray() if sp.issparse(raw) else np.asarray(raw)
    norms = np.linalg.norm(raw, axis=1, keepdims=True)
    mal.obsm["X_cnv"] = raw / np.where(norms > 0, norms, 1.0)
    cnv.tl.pca(
        mal,
        n_comps=int(min(n_pcs, n - 1, mal.obsm["X_cnv"].shape[1] - 1)),
        random_state=random_state,
    )
    cnv.pp.neighbors(mal, n_neighbors=n_neighbors, random_state=random_state)
    _leiden(mal, resolution, random_state)
    profiles = pd.DataFrame(raw)
    labels = _merge_similar(profiles, mal.obs["cnv_leiden"].astype(str).to_numpy(), min_distance)
    # Tiny groups are too few to define a clone: fold each into its nearest remaining group.
    while True:
        counts = pd.Series(labels).value_counts()
        small = counts[counts < min_size]
        if small.empty or len(counts) == 1:
            break
        g = small.index[-1]
        means = {k: profiles.loc[labels == k].mean(axis=0).to_numpy() for k in counts.index}
        others = [k for k in counts.index if k != g]
        nearest = min(others, key=lambda k: np.mean((means[k] - means[g]) ** 2))
        labels[labels == g] = nearest
    order = pd.Series(labels).value_counts().index  # largest first; ties by first appearance
    rename = {old: f"cnv{i + 1}" for i, old in enumerate(order)}
    return np.array([rename[v] for v in labels], dtype=object)


def _window_table(var: pd.DataFrame, chr_pos: dict, window_size: int, step: int) -> pd.DataFrame:
    """First/last gene and span of each infercnvpy window, in the column order of ``X_cnv``."""
    rows = []
    for chrom in chr_pos:  # chr_pos is ordered as the columns of X_cnv
        genes = var[var["chromosome"] == chrom].sort_values("start")
        n = len(genes)
        # Mirrors infercnvpy: a pyramid window every `step` genes, or one window when too few genes.
        spans = (
            [(i, i + window_size) for i in range(0, n - window_size + 1, step)]
            if window_size < n
            else [(0, n)]
        )
        for a, b in spans:
            g = genes.iloc[a:b]
            rows.append(
                (chrom, g.index[0], g.index[-1], int(g["start"].min()), int(g["end"].max()))
            )
    return pd.DataFrame(rows, columns=["chromosome", "first_gene", "last_gene", "start", "end"])


#: Columns of :func:`cnv_segments`' table (also of the empty table written without CNV clones).
SEGMENT_COLUMNS = (
    "clone",
    "chromosome",
    "first_gene",
    "last_gene",
    "start",
    "end",
    "n_windows",
    "mean_log_ratio",
    "call",
)


def cnv_segments(
    adata: ad.AnnData,
    *,
    clone_key: str = "cnv_clone",
    min_log_ratio: float = 0.03,
    min_windows: int = 3,
) -> pd.DataFrame:
    """Gained and lost segments of each CNV clone.

    A window is altered in a clone when the clone's mean CNV value (log ratio to the reference,
    as smoothed by infercnvpy) exceeds ``min_log_ratio`` in absolute value; consecutive altered
    windows of the same sign on one chromosome form a segment.

    Parameters
    ----------
    adata
        Output of :func:`infer_cnv`.
    clone_key
        ``obs`` column with clones; cells labelled ``"normal"`` are skipped.
    min_log_ratio
        Minimum absolute mean log ratio of an altered window.
    min_windows
        Shorter runs of altered windows are dropped as noise.

    Returns
    -------
    One row per segment: ``clone``, ``chromosome``, ``first_gene``, ``last_gene``, ``start``,
    ``end``, ``n_windows``, ``mean_log_ratio``, ``call`` (``gain``/``loss``).
    """
    if "X_cnv" not in adata.obsm or "cnv_windows" not in adata.uns:
        raise InputError("No CNV profiles found; run infer_cnv first.")
    if clone_key not in adata.obs.columns:
        raise InputError(f"obs has no column {clone_key!r}.")
    windows = pd.DataFrame(adata.uns["cnv_windows"]).reset_index(drop=True)
    x = adata.obsm["X_cnv"]
    labels = adata.obs[clone_key].astype(str).to_numpy()
    out = []
    for clone in sorted(set(labels) - {"normal"}):
        prof = np.asarray(x[labels == clone].mean(axis=0)).ravel()
        sign = np.where(prof > min_log_ratio, 1, np.where(prof < -min_log_ratio, -1, 0))
        run_id = np.cumsum(
            np.r_[
                True,
                (sign[1:] != sign[:-1])
                | (windows["chromosome"].to_numpy()[1:] != windows["chromosome"].to_numpy()[:-1]),
            ]
        )
        for rid in np.unique(run_id[sign != 0]):
            idx = np.flatnonzero(run_id == rid)
            if len(idx) < min_windows:
                continue
            w = windows.iloc[idx]
            out.append(
                {
                    "clone": clone,
                    "chromosome": w["chromosome"].iloc[0],
                    "first_gene": w["first_gene"].iloc[0],
                    "last_gene": w["last_gene"].iloc[-1],
                    "start": int(w["start"].min()),
                    "end": int(w["end"].max()),
                    "n_windows": len(idx),
                    "mean_log_ratio": float(prof[idx].mean()),
                    "call": "gain" if sign[idx[0]] > 0 else "loss",
                }
            )
    return pd.DataFrame(out, columns=list(SEGMENT_COLUMNS))


# ------------------------------------------------------------------------- one patient's run

#: Per cell of a patient's copy-number run (the patient's cells and those of other reference
#: samples): what the clone call reads of it.
PATIENT_CNV_COLUMNS = ("cell_type", "reference", "score", "called", "cnv_score_cell", "cnv_clone")


@dataclass(frozen=True)
class PatientCnv:
    """Copy number of one patient, as the clone call reads it.

    Attributes
    ----------
    cells
        One row per cell of the run (the patient's cells, then the other reference samples'),
        columns :data:`PATIENT_CNV_COLUMNS`: cell type, in the reference, consensus score, called
        by infercnvpy's step, mean |CNV| and clone (``""`` and NaN where not inferred). No rows
        when the genes have no positions.
    genes
        The positioned genes of the run (none when copy number is off).
    note
        Why there are no copy-number clones ("" when there are).
    inferred
        Whether copy number was inferred (scores and clones are usable).
    """

    cells: pd.DataFrame
    genes: pd.Index
    note: str = ""
    inferred: bool = False

    @classmethod
    def unavailable(cls, note: str, *, cells=None, genes=()) -> PatientCnv:
        """No copy number, and why; ``cells`` (cell type, reference) of a run that failed."""
        if cells is None:
            empty = pd.Index([], dtype=str)
            cells = pd.DataFrame({"cell_type": [], "reference": np.array([], bool)}, index=empty)
        table = cells[["cell_type", "reference"]].astype({"cell_type": str, "reference": bool})
        table = table.assign(score=np.nan, called=False, cnv_score_cell=np.nan, cnv_clone="")
        return cls(table[list(PATIENT_CNV_COLUMNS)], pd.Index(genes, dtype=str), note, False)

    def to_anndata(self) -> ad.AnnData:
        """Cells as ``obs``, genes as ``var``, the note in ``uns`` (to store it as ``.h5ad``)."""
        return ad.AnnData(
            obs=self.cells,
            var=pd.DataFrame(index=self.genes),
            uns={"note": self.note, "inferred": self.inferred},
        )

    @classmethod
    def from_anndata(cls, adata: ad.AnnData) -> PatientCnv:
        """The inverse of :meth:`to_anndata`."""
        cells = adata.obs[list(PATIENT_CNV_COLUMNS)].copy()
        for column in ("cell_type", "cnv_clone"):
            cells[column] = cells[column].astype(str)
        return cls(cells, adata.var_names, str(adata.uns["note"]), bool(adata.uns["inferred"]))


def infer_patient_cnv(
    adata: ad.AnnData,
    *,
    patient_id: str,
    positions: pd.DataFrame,
    reference: NormalReference,
    settings: CnvSettings = CnvSettings(),
    reference_cells: ad.AnnData | None = None,
    n_jobs: int = 1,
    random_state: int = 0,
) -> tuple[PatientCnv, ad.AnnData | None]:
    """Copy number of one patient, all timepoints together, against its normal reference.

    Parameters
    ----------
    adata
        The patient's cells, log-normalised, ``obs`` with ``sample_id`` and ``cell_type``.
    patient_id
        Named in the log.
    positions
        Output of :func:`load_gene_positions`.
    reference
        Which cells are normal: reference cell types and samples, each type of a reference
        sample its own category (:meth:`NormalReference.categories`).
    settings
        Settings of :func:`infer_cnv`.
    reference_cells
        Cells of reference samples of other patients or donors (same genes, log-normalised):
        they widen the reference and are left out of every output but ``cells`` of the result.

    Returns
    -------
    The run as the clone call reads it (too few reference cells: none, with the reason), and the
    patient's cells with :func:`infer_cnv`'s results (for segments and the heatmap) or ``None``.
    """
    work, own = _with_reference_cells(adata, reference_cells)
    add_gene_positions(work, positions)
    labels, categories = reference.categories(work.obs)
    work.obs["cnv_reference"] = labels
    run = pd.DataFrame(
        {
            "cell_type": work.obs["cell_type"].astype(str).to_numpy(),
            "reference": (work.obs["cnv_reference"] != "query").to_numpy(),
        },
        index=work.obs_names,
    )
    genes = work.var_names[work.var["chromosome"].notna().to_numpy()]
    try:
        infer_cnv(
            work,
            reference_key="cnv_reference",
            reference_categories=categories,
            settings=settings,
            n_jobs=n_jobs,
            random_state=random_state,
        )
    except InputError as error:
        # Too few normal reference cells in this patient: no copy-number clones, said plainly.
        log.warning("patient %s: copy-number inference not possible: %s", patient_id, error)
        note = f"copy-number inference not possible: {error}"
        return PatientCnv.unavailable(note, cells=run, genes=genes), None
    detectable = bool(work.uns["clonetrack"]["cnv"].get("detectable", True))
    note = "" if detectable else "no copy-number change separates from the reference cells"
    run["score"] = work.obs["cnv_consensus_score"].to_numpy()
    run["called"] = work.obs["malignant"].astype(bool).to_numpy()
    run["cnv_score_cell"] = work.obs["cnv_score_cell"].to_numpy()
    run["cnv_clone"] = work.obs["cnv_clone"].astype(str).to_numpy()
    return PatientCnv(run[list(PATIENT_CNV_COLUMNS)], genes, note, True), work[own].copy()


def _with_reference_cells(adata, reference_cells):
    """The patient's cells followed by the reference cells of other samples, and the patient's
    cell names. Healthy cells of other donors widen the reference; they never reach the outputs."""
    work = adata.copy()
    own = work.obs_names
    if reference_cells is not None and reference_cells.n_obs:
        extra = reference_cells[~reference_cells.obs_names.isin(own)].copy()
        extra.obs["sample_id"] = extra.obs["sample_id"].astype(str)
        work = ad.concat([work, extra], join="inner", merge="same")
    return work, own
