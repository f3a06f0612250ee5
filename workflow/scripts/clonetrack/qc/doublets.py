"""Doublet calling by consensus of established callers.

Callers
-------
``scrublet``
    Scrublet through :func:`scanpy.pp.scrublet`, with the settings QC has always used: exact
    neighbours below 30,000 cells, ``min(30, cells - 1, genes - 1)`` principal components and the
    expected doublet rate. Its own call is its automatic (bimodality) threshold.
``doubletdetection``
    DoubletDetection's ``BoostClassifier``: synthetic doublets are added and the cells are
    clustered (Leiden) again and again; a cell's score is the mean -log p of a hypergeometric test
    for synthetic doublets in its cluster. Its own call is ``p < 1e-7`` in half the iterations.

Combination rule
----------------
The default, ``"combined"``, ranks cells by the mean of the callers' score quantiles (each
caller's score turned into its rank within the sample, so that scales do not matter) and calls
the top ``expected_rate`` of the cells, as DoubletFinder does with its expected doublet count;
cells that every caller calls on its own threshold are called as well, so that a sample holding
more doublets than expected is not capped by the budget. Why:

- Both callers find heterotypic doublets by their closeness to simulated doublets, scrublet by
  k nearest neighbours, DoubletDetection by clusters; their errors only partly coincide, so the
  mean of their ranks separates doublets from singlets better than either rank alone.
- Their own thresholds are unreliable in small or weakly structured samples: scrublet's
  histogram threshold often sits above most doublets, and DoubletDetection's p-values depend on
  the number of cells (a few hundred cells cannot reach small p-values at all). The expected rate
  is the one quantity the user knows (cells loaded), and it bounds the cells lost.
- The price: a sample always loses about ``expected_rate`` of its cells, doublets or not, so the
  rate should follow the cells loaded (10x: about 0.8% per 1,000 cells recovered). Homotypic
  doublets (two cells of one state) count in that rate but are invisible to both callers, so
  their share of the budget falls on singlets.
- A vote of the callers' own calls (``"any"``, ``"majority"``, ``"all"``) inherits those
  thresholds; it is kept for data where they are known to work.

Measured recall and run times belong in the docs, not here: they go stale.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from dataclasses import dataclass, field
from unittest import mock

import numpy as np
import pandas as pd
import scanpy as sc
import scipy.sparse as sp
from anndata import AnnData

from clonetrack.errors import InputError

log = logging.getLogger(__name__)

CALLERS = ("scrublet", "doubletdetection")
RULES = ("combined", "any", "majority", "all")
# Below this many cells neither caller's simulation nor its neighbour graph means anything.
MIN_CELLS = 30
# Genes detected in 3 or more cells (scrublet's own gene filter); fewer leave no components.
MIN_GENES = 30
# DoubletDetection's own call: p < DD_P_THRESH in at least DD_VOTER_THRESH of the iterations
# (its predict() defaults are 1e-7 and 0.9; 0.9 leaves out most doublets it finds).
DD_P_THRESH = 1e-7
DD_VOTER_THRESH = 0.5
DD_N_ITERS = 10
# Genes by raw-count variance (DoubletDetection's own selection). Its default, 10,000, multiplies
# the dense cells x genes matrix it builds each iteration, and separated planted doublets no better.
DD_N_TOP_GENES = 2000
# Up to this many cells, neighbours are searched exactly (as for scrublet): approximate search
# compiles pynndescent anew in every process, which took longer than the search itself.
EXACT_NEIGHBOURS_MAX_CELLS = 30000


@dataclass(frozen=True)
class _Call:
    """One caller's result on one sample."""

    score: np.ndarray
    call: np.ndarray
    thresholds: dict[str, float] = field(default_factory=dict)
    skipped: str = ""


def _skip(n_cells: int, reason: str) -> _Call:
    return _Call(np.full(n_cells, np.nan), np.zeros(n_cells, bool), {}, reason)


def _n_components(adata: AnnData) -> int:
    return int(min(30, adata.n_obs - 1, adata.n_vars - 1))


def _run_scrublet(
    adata: AnnData, *, expected_rate: float, random_state: int, threshold: float | None = None
) -> AnnData:
    return sc.pp.scrublet(
        adata,
        expected_doublet_rate=expected_rate,
        n_prin_comps=_n_components(adata),
        threshold=threshold,
        use_approx_neighbors=adata.n_obs > EXACT_NEIGHBOURS_MAX_CELLS,
        random_state=random_state,
        verbose=False,
        copy=True,
    )


def _scrublet(
    adata: AnnData, *, expected_rate: float, random_state: int, threshold: float | None = None
) -> _Call:
    try:
        scored = _run_scrublet(
            adata, expected_rate=expected_rate, random_state=random_state, threshold=threshold
        )
    except ValueError as err:
        # scrublet keeps only its highly variable genes, which can be fewer than the components.
        if "n_components" not in str(err):
            raise
        return _skip(adata.n_obs, f"too few variable genes for scrublet's PCA ({err})")
    score = scored.obs["doublet_score"].to_numpy(dtype=float)
    threshold = scored.uns["scrublet"].get("threshold")
    if threshold is None or not np.isfinite(threshold):
        # No bimodal histogram of simulated scores: the score still ranks cells, but no call.
        log.warning("scrublet found no threshold on %d cells: no call of its own", adata.n_obs)
        return _Call(score, np.zeros(adata.n_obs, bool), {"threshold": float("nan")})
    return _Call(score, score > threshold, {"threshold": float(threshold)})


def _import_doubletdetection():
    # phenograph, imported by doubletdetection, warns about a scipy namespace on import.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import doubletdetection
    return doubletdetection


def _boost_classifier(dd, *, n_components: int, random_state: int):
    return dd.BoostClassifier(
        n_iters=DD_N_ITERS,
        n_components=n_components,
        n_top_var_genes=DD_N_TOP_GENES,
        # Leiden through scanpy takes a seed; phenograph does not, and is slower.
        clustering_algorithm="leiden",
        clustering_kwargs={"flavor": "igraph", "n_iterations": 2},
        # Scaling lowered the separation of planted doublets on the toy and synthetic samples,
        # and adds a dense copy of the matrix.
        standard_scaling=False,
        random_state=random_state,
        verbose=False,
    )


@contextlib.contextmanager
def _exact_neighbours(n_cells: int):
    """Make scanpy's neighbours exact, with Gaussian connectivities, while DoubletDetection runs,
    which takes no option for either.

    scanpy switches to pynndescent above 4,096 cells (here: cells plus synthetic doublets).
    """
    if n_cells > EXACT_NEIGHBOURS_MAX_CELLS:
        yield
        return
    # Gaussian connectivities: scanpy's default (UMAP's) imports umap and pynndescent, whose
    # numba kernels compile anew in every process (15 s, more than the whole fit on 500 cells).
    neighbors = sc.pp.neighbors

    def exact(*args, **kwargs):  # DoubletDetection passes method="umap" itself
        return neighbors(*args, **{**kwargs, "transformer": "sklearn", "method": "gauss"})

    with mock.patch.object(sc.pp, "neighbors", exact):
        yield


def _doubletdetection(adata: AnnData, *, expected_rate: float, random_state: int) -> _Call:
    dd = _import_doubletdetection()
    counts = sp.csr_matrix(adata.X, dtype=np.float32)
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        # Its progress bar would fill the rule's log; the Leiden warning is about its own
        # validation, not our input.
        warnings.filterwarnings("ignore", message="Leiden clustering is experimental")
        clf = _boost_classifier(dd, n_components=_n_components(adata), random_state=random_state)
        with _exact_neighbours(adata.n_obs):
            clf.fit(counts)
    clf.predict(p_thresh=DD_P_THRESH, voter_thresh=DD_VOTER_THRESH)
    score = np.asarray(clf.doublet_score(), dtype=float)
    votes = np.nan_to_num(np.asarray(clf.voting_average_, dtype=float), nan=0.0)
    thresholds = {"p_thresh": DD_P_THRESH, "voter_thresh": DD_VOTER_THRESH}
    return _Call(score, votes >= DD_VOTER_THRESH, thresholds)


_KERNELS = {"scrublet": _scrublet, "doubletdetection": _doubletdetection}


def _score_threshold(score: pd.Series, predicted: np.ndarray, record: dict, callers) -> float:
    """The ``doublet_score`` above which cells were called: scrublet's threshold when it is the
    only caller, otherwise the lowest score called (NaN when nothing was called)."""
    if tuple(callers) == ("scrublet",):
        return float(record["thresholds"].get("scrublet_threshold", float("nan")))
    called = score.to_numpy(dtype=float)[predicted]
    return float(np.nanmin(called)) if np.isfinite(called).any() else float("nan")


def _score_quantiles(scores: np.ndarray) -> np.ndarray:
    """Each column's scores as within-sample rank fractions in (0, 1]; ties share a rank."""
    return pd.DataFrame(scores).rank(pct=True, method="average").to_numpy()


def consensus(
    scores: pd.DataFrame,
    calls: pd.DataFrame,
    *,
    rule: str = "combined",
    expected_rate: float = 0.06,
) -> tuple[np.ndarray, np.ndarray]:
    """Combine per-caller scores and calls into one call per cell.

    Parameters
    ----------
    scores, calls
        One column per caller, one row per cell; a caller whose scores are all NaN did not run
        and is left out.
    rule
        ``"combined"``: the top ``expected_rate`` of the cells by mean score quantile, plus the
        cells every caller calls (when two or more ran). ``"any"``, ``"majority"`` (more than
        half), ``"all"``: a vote of the callers' own calls.
    expected_rate
        Share of the cells the ``"combined"`` rule calls by score (rounded to whole cells).

    Returns
    -------
    The consensus call and the combined score (mean quantile; NaN where no caller ran).
    """
    if rule not in RULES:
        raise InputError(f"Unknown doublet rule {rule!r}; choose one of {list(RULES)}.")
    ran = [c for c in scores.columns if scores[c].notna().any()]
    n_cells = len(scores)
    if not ran:
        return np.zeros(n_cells, bool), np.full(n_cells, np.nan)
    combined = np.nanmean(_score_quantiles(scores[ran].to_numpy(dtype=float)), axis=1)
    votes = calls[ran].to_numpy(dtype=bool).sum(axis=1)
    if rule == "any":
        return votes >= 1, combined
    if rule == "majority":
        return 2 * votes > len(ran), combined
    if rule == "all":
        return votes == len(ran), combined
    called = np.zeros(n_cells, bool)
    n_budget = int(round(expected_rate * n_cells))
    # Stable order: tied cells are taken in input order, so the call is reproducible.
    called[np.argsort(-np.nan_to_num(combined, nan=-1.0), kind="stable")[:n_budget]] = True
    if len(ran) >= 2:
        called |= votes == len(ran)
    return called, combined


def _check_settings(callers: tuple[str, ...], rule: str, expected_rate: float) -> None:
    if not callers or any(c not in _KERNELS for c in callers) or len(set(callers)) != len(callers):
        raise InputError(
            f"Doublet callers {list(callers)}: give distinct names of {list(CALLERS)}."
        )
    if rule not in RULES:
        raise InputError(f"Unknown doublet rule {rule!r}; choose one of {list(RULES)}.")
    if not 0 < expected_rate < 1:
        raise InputError(f"expected_rate must lie between 0 and 1, got {expected_rate}.")


def _check_counts(adata: AnnData) -> None:
    values = adata.X.data if sp.issparse(adata.X) else np.asarray(adata.X)
    if values.size and (values.min() < 0 or not np.all(np.equal(np.mod(values, 1), 0))):
        raise InputError(
            "call_doublets needs raw UMI counts (non-negative integers) in X; it found "
            f"{'negative' if values.min() < 0 else 'non-integer'} values. Pass the counts "
            "before normalisation (e.g. from layers['counts'])."
        )


def _run_caller(
    name: str, adata: AnnData, *, expected_rate: float, random_state: int, options: dict
) -> _Call:
    n_genes = int((np.asarray((adata.X > 0).sum(axis=0)).ravel() >= 3).sum())
    if adata.n_obs < MIN_CELLS or n_genes < MIN_GENES:
        reason = (
            f"{adata.n_obs} cells, {n_genes} genes detected in 3 or more cells: below "
            f"{MIN_CELLS} cells or {MIN_GENES} genes"
        )
        log.warning("doublet caller %s skipped: %s; its score is NaN, its call False", name, reason)
        return _skip(adata.n_obs, reason)
    result = _KERNELS[name](
        adata, expected_rate=expected_rate, random_state=random_state, **options
    )
    if result.skipped:
        log.warning("doublet caller %s skipped: %s", name, result.skipped)
        return result
    log.info(
        "%s called %d of %d cells (%s)", name, result.call.sum(), adata.n_obs, result.thresholds
    )
    return result


def call_doublets(
    adata: AnnData,
    *,
    callers: tuple[str, ...] = CALLERS,
    rule: str = "combined",
    expected_rate: float = 0.06,
    scrublet_threshold: float | None = None,
    random_state: int = 0,
) -> pd.DataFrame:
    """Call doublets in one sample by consensus of scrublet and DoubletDetection.

    Parameters
    ----------
    adata
        Raw integer counts (cells x genes) of one sample's cells that passed the metric
        thresholds. Not modified, except ``uns["clonetrack"]["doublets"]`` (the settings used).
    callers
        Any of ``"scrublet"``, ``"doubletdetection"``.
    rule
        How the callers are combined (module docstring): ``"combined"``, ``"any"``,
        ``"majority"`` or ``"all"``.
    expected_rate
        Expected fraction of doublets among the cells: scrublet's prior and the share the
        combined rule calls.
    scrublet_threshold
        A fixed threshold on scrublet's score for its own call (None: its automatic one).
    random_state
        Seed of both callers; the same seed gives the same calls.

    Returns
    -------
    Indexed like ``adata.obs_names``: ``doublet_score_<caller>`` (NaN where the caller could not
    run), ``doublet_<caller>`` (its own call), ``doublet_votes`` (callers calling the cell),
    ``doublet_score`` and ``predicted_doublet``: with one caller its own score and call, with
    more the mean score quantile and the consensus by ``rule``.
    ``attrs["doublets"]`` holds the thresholds, skipped callers and settings.
    """
    callers = (callers,) if isinstance(callers, str) else tuple(callers)
    _check_settings(callers, rule, expected_rate)
    _check_counts(adata)
    out = pd.DataFrame(index=adata.obs_names.copy())
    record = {"callers": list(callers), "rule": rule, "expected_rate": expected_rate,
              "random_state": random_state, "thresholds": {}, "skipped": {}}  # fmt: skip
    for name in callers:
        options = {"threshold": scrublet_threshold} if name == "scrublet" else {}
        result = _run_caller(
            name, adata, expected_rate=expected_rate, random_state=random_state, options=options
        )
        out[f"doublet_score_{name}"] = result.score
        out[f"doublet_{name}"] = result.call
        record["thresholds"].update({f"{name}_{k}": v for k, v in result.thresholds.items()})
        if result.skipped:
            record["skipped"][name] = result.skipped
    scores = out[[f"doublet_score_{c}" for c in callers]].set_axis(list(callers), axis=1)
    calls = out[[f"doublet_{c}" for c in callers]].set_axis(list(callers), axis=1)
    out["doublet_votes"] = calls.sum(axis=1).astype(int)
    if len(callers) == 1:
        # One caller: its own score and call (no ranks to combine, no budget to apply).
        out["doublet_score"] = scores[callers[0]].to_numpy()
        out["predicted_doublet"] = calls[callers[0]].to_numpy()
    else:
        predicted, combined = consensus(scores, calls, rule=rule, expected_rate=expected_rate)
        out["doublet_score"] = combined
        out["predicted_doublet"] = predicted
    predicted = out["predicted_doublet"].to_numpy()
    record["threshold"] = _score_threshold(out["doublet_score"], predicted, record, callers)
    record["n_called"] = int(predicted.sum())
    log.info("consensus (%s) called %d of %d cells", rule, predicted.sum(), adata.n_obs)
    out.attrs["doublets"] = record
    adata.uns.setdefault("clonetrack", {})["doublets"] = record
    return out
