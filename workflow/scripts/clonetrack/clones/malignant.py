"""Malignant cells from combined evidence: copy number, genotypes and expression, per patient.

One patient's cells of all timepoints are called together, so that a remission sample is judged
against the leukaemia of the same patient at diagnosis:

1. **Evidence per cell**, as log-likelihood ratios (malignant vs normal): mutant and wild-type
   reads (:func:`clonetrack.clones.genotypes.genotype_log_odds`) and the copy-number score
   (:func:`cnv_log_odds`). Evidence from independent assays adds up.
2. **Seeds.** Normal: every cell of a healthy sample (sheet column ``healthy``) and cells of the
   lymphoid types (rarely part of a myeloid leukaemia). Malignant: cells whose evidence exceeds
   ``seed_log_odds`` (one mutant read, or a copy-number profile far outside the normal
   reference). A patient without a seed of one kind gets no expression call, said in the output.
3. **Expression**: label spreading (Zhou et al. 2004, scikit-learn's ``LabelSpreading``) over
   the patient's kNN graph carries the seeds' labels to cells that look like them. Cells close
   to malignant seeds and far from normal ones get a high probability. It uses only the
   patient's own cells, so batch differences between patients or donors play no part.

``malignant_probability`` is the spread label; ``malignant`` is it above ``threshold``. Every
evidence column is kept so a call can be traced.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

EVIDENCE_COLUMNS = (
    "malignant",
    "malignant_probability",
    "malignant_seed",
    "genotype_log_odds",
    "cnv_log_odds",
)
LOG_ODDS_CAP = 10.0


def cnv_log_odds(
    score: np.ndarray,
    normal: np.ndarray,
    malignant: np.ndarray,
    cell_type: np.ndarray,
    *,
    min_type_cells: int = 50,
    min_separation: float = 4.0,
    pooled_types: tuple[str, ...] = (),
) -> np.ndarray:
    """Log-likelihood ratio of each cell's copy-number score under the malignant and the normal
    score distributions, capped at +-``LOG_ODDS_CAP``.

    A score is judged against normal cells of the same type only: monocytes, erythroid cells
    (haemoglobin loci) and others score above lymphocytes from their expression alone, which
    must not read as copy number. Cells of a type with fewer than ``min_type_cells`` normal
    reference cells get no copy-number evidence (0); so do ``unassigned`` cells, unless they are
    named in ``pooled_types`` (then judged against all normal cells): on van Galen's AML420B
    remission marrow, unassigned monocyte-like cells judged against all normal cells made false
    seeds. Scores are standardised by their type's normal
    mean and spread; the malignant distribution is fitted to the standardised scores of the cells
    infercnvpy calls ``malignant``. No evidence at all when either group has fewer than three
    cells, or when the malignant cells' mean lies less than ``min_separation`` normal standard
    deviations above the normal mean: on shallow data a weak separation is mostly expression,
    not copy number.
    """
    score = np.asarray(score, dtype=float)
    normal = np.asarray(normal, dtype=bool)
    malignant = np.asarray(malignant, dtype=bool)
    cell_type = np.asarray(cell_type).astype(str)
    z = np.full(score.shape, np.nan)
    for t in np.unique(cell_type):
        members = cell_type == t
        ref = normal & (members if t not in pooled_types else np.ones_like(members))
        if ref.sum() >= min_type_cells:
            z[members] = (score[members] - score[ref].mean()) / max(score[ref].std(), 1e-9)
    judged = ~np.isnan(z)
    if (normal & judged).sum() < 3 or (malignant & judged).sum() < 3:
        return np.zeros_like(score)
    mu1 = float(np.mean(z[malignant & judged]))
    sd1 = max(float(np.std(z[malignant & judged])), 1e-9)
    log.info("copy-number separation of malignant from normal scores: %.2f SD", mu1)
    if mu1 < min_separation:
        return np.zeros_like(score)
    zz = np.nan_to_num(z)
    llr = -0.5 * ((zz - mu1) / sd1) ** 2 - np.log(sd1) + 0.5 * zz**2
    # Beyond the malignant mean a larger score is no less malignant, and at or below the normal
    # mean no evidence of malignancy (the Gaussian tails say otherwise only because one spread
    # is wider than the other).
    llr = np.where(zz > mu1, np.maximum(llr, 0.0), llr)
    llr = np.where(zz <= 0, np.minimum(llr, 0.0), llr)
    llr = np.where(judged, llr, 0.0)
    return np.clip(llr, -LOG_ODDS_CAP, LOG_ODDS_CAP)


def call_malignant(
    embedding: np.ndarray,
    *,
    normal_seed: np.ndarray,
    evidence: pd.DataFrame,
    seed_log_odds: float = 3.0,
    n_neighbors: int = 15,
    alpha: float = 0.2,
    threshold: float = 0.5,
) -> tuple[pd.DataFrame, str]:
    """Malignant probability of each cell of one patient from seeds and expression.

    Parameters
    ----------
    embedding
        The patient's cells in a low-dimensional expression space (PCA of their own cells).
    normal_seed
        Cells known to be normal (healthy samples, lymphoid types).
    evidence
        One row per cell: ``genotype_log_odds`` and ``cnv_log_odds`` (0 where there is none).
    seed_log_odds
        Summed evidence above which a cell seeds the malignant label.
    n_neighbors, alpha
        kNN graph and clamping of :class:`sklearn.semi_supervised.LabelSpreading` (``alpha`` is
        the share of a seed's label that its neighbours may change).
    threshold
        Probability above which a cell is called malignant.

    Returns
    -------
    The cells with :data:`EVIDENCE_COLUMNS`, and a note (empty, or why there is no call).
    """
    from sklearn.semi_supervised import LabelSpreading

    n = embedding.shape[0]
    total = evidence["genotype_log_odds"].to_numpy() + evidence["cnv_log_odds"].to_numpy()
    normal_seed = np.asarray(normal_seed, dtype=bool)
    malignant_seed = (total >= seed_log_odds) & ~normal_seed
    out = evidence.copy()
    seed = np.full(n, "", dtype=object)
    seed[normal_seed] = "normal"
    seed[malignant_seed] = "malignant"
    out["malignant_seed"] = seed
    if not malignant_seed.any() or not normal_seed.any():
        missing = "malignant" if not malignant_seed.any() else "normal"
        note = (
            f"no {missing} seed (no cell with genotype or copy-number evidence of leukaemia)"
            if missing == "malignant"
            else "no normal seed (no healthy-sample or lymphoid cell)"
        )
        # Without both labels nothing can be spread: seeds keep their own label only.
        out["malignant_probability"] = np.where(malignant_seed, 1.0, 0.0)
        out["malignant"] = malignant_seed
        return out[list(EVIDENCE_COLUMNS)], note
    labels = np.full(n, -1)
    labels[normal_seed] = 0
    labels[malignant_seed] = 1
    k = int(min(n_neighbors, n - 1))
    model = LabelSpreading(kernel="knn", n_neighbors=k, alpha=alpha, max_iter=100)
    model.fit(np.asarray(embedding, dtype=np.float64), labels)
    distributions = np.nan_to_num(model.label_distributions_, nan=0.0)
    probability = distributions[:, list(model.classes_).index(1)]

    out["malignant_probability"] = probability
    out["malignant"] = probability > threshold
    return out[list(EVIDENCE_COLUMNS)], ""
