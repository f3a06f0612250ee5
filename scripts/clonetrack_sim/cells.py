"""One sample's cells: composition, labels, library sizes, counts, doublets and barcodes.

Counts follow a gamma-Poisson (negative binomial) model::

    mu[c, g] = L_c * normalise_g(base[g] * programme[type_c, g] * batch[sample, g]
                                 * cnv[clone_c, g] * resistance[clone_c, g] * de[sample, type_c, g])

with per-cell library sizes ``L_c`` and a separate mitochondrial share per cell. Cells of one type
and clone share their expression profile; the gamma-Poisson draw needs a dense cells x genes
matrix, so large cohorts take the ``multinomial`` path instead: each cell's UMIs are drawn from
its profile (Poisson totals, no gene-wise gamma noise), straight into a sparse matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

import anndata as ad
import numpy as np
import pandas as pd
from clonetrack.errors import InputError
from scipy import sparse

from clonetrack_sim.barcodes import barcode_strings
from clonetrack_sim.clones import ClonePlan
from clonetrack_sim.design import (
    LIBRARY_SCALE,
    MALIGNANT_FRACTION,
    NORMAL_COMPOSITION,
    RESPONSE_PLANS,
    SEX_GENES,
    TRAJECTORY_FREQUENCY,
    CohortDesign,
)
from clonetrack_sim.programmes import GeneModel

#: How counts are drawn: ``gamma_poisson`` (the toy data's model) or ``multinomial`` (fast, sparse).
COUNT_MODELS = ("gamma_poisson", "multinomial")


@dataclass
class SampleModel:
    """What every sample of a cohort shares: genes, design, per-type programmes (types x genes),
    clones, the leukaemic, resistance and Mono DE factors, sexes, seed and count model."""

    genes: GeneModel
    design: CohortDesign
    types: list[str]
    programmes: np.ndarray
    clones: ClonePlan
    leukaemic: np.ndarray
    resistance: np.ndarray
    de: np.ndarray
    sexes: dict[str, str]
    seed: int
    counts: str


@dataclass
class SimulatedSample:
    """One sample: its sheet row, counts with truth in ``obs``, and the share of each clone among
    its malignant cells."""

    row: dict
    adata: ad.AnnData
    clone_frequencies: dict[str, float]


def counts_from_shares(shares: np.ndarray, n: int) -> np.ndarray:
    """Largest-remainder rounding of ``shares * n`` to integers summing to ``n``."""
    raw = np.asarray(shares, float) / np.sum(shares) * n
    out = np.floor(raw).astype(int)
    out[np.argsort(raw - out)[::-1][: n - out.sum()]] += 1
    return out


def enforce_minimum(counts: np.ndarray, minimum: int, mask: np.ndarray) -> np.ndarray:
    """Raise the entries selected by ``mask`` to ``minimum``, taking cells from the largest."""
    counts = counts.copy()
    raise_ = mask & (counts < minimum)
    if raise_.sum() * minimum > counts.sum():
        raise InputError(
            f"{counts.sum()} cells cannot give {minimum} cells to each of {raise_.sum()} groups; "
            "raise n_cells_per_sample or lower the minimum"
        )
    for i in np.flatnonzero(raise_):
        while counts[i] < minimum:
            donors = np.where(raise_ | (np.arange(len(counts)) == i), -1, counts)
            counts[np.argmax(donors)] -= 1
            counts[i] += 1
    return counts


def _composition(model: SampleModel, srng, patient: str, trajectories, ti: int, tp: str):
    """Cells per clone and per normal type among the sample's good singlets: the malignant share
    from the patient's plan (+-10%), clones by trajectory, normal types around
    :data:`NORMAL_COMPOSITION`; small samples keep every present clone and Mono measurable."""
    design = model.design
    fractions = RESPONSE_PLANS.get((design.responses or {}).get(patient, ""), {}).get("fraction")
    fraction = fractions[ti] if fractions else MALIGNANT_FRACTION[tp]
    n_mal = int(round(design.n_cells_per_sample * fraction * srng.uniform(0.9, 1.1)))
    shares = np.array([TRAJECTORY_FREQUENCY[t][ti] for t in trajectories])
    # Small cohorts keep every present clone measurable at the cost of the malignant share.
    n_mal = max(n_mal, design.min_cells_per_clone * int((shares > 0).sum()))
    n_clone = enforce_minimum(
        counts_from_shares(shares, n_mal), design.min_cells_per_clone, shares > 0
    )
    comp = srng.dirichlet(np.array(list(NORMAL_COMPOSITION.values())) * 300)
    n_type = counts_from_shares(comp, design.n_cells_per_sample - n_mal)
    n_type = enforce_minimum(n_type, design.min_mono_cells, np.array(model.types) == "Mono")
    return n_clone, n_type


def _cell_pool(model: SampleModel, srng, n_type, n_clone, clone_names):
    """Cell types (index) and clone names ('' for normal) of the sample's good singlets; a
    malignant cell's type is drawn from its clone's mixture."""
    likes = [model.clones.meta[c]["like"] for c in clone_names]
    pool_t = np.concatenate(
        [np.repeat(np.arange(len(model.types)), n_type)]
        + [srng.choice(len(like), size=n, p=like) for like, n in zip(likes, n_clone, strict=True)]
    )
    pool_c = np.concatenate(
        [np.repeat("", int(np.sum(n_type)))]
        + [np.repeat(c, n) for c, n in zip(clone_names, n_clone, strict=True)]
    )
    return pool_t, pool_c.astype(object)


def _draw_cells(model: SampleModel, srng, n_type, n_clone, clone_names):
    """Types and clones of the good singlets, then of the low-quality cells and of the doublets'
    parents, each drawn from a fresh pool of the same composition. Returns types, clones and
    the number of low-quality cells."""
    design = model.design
    n_lq = int(round(design.low_quality_fraction * design.n_cells_per_sample))
    n_db = int(round(design.doublet_fraction * design.n_cells_per_sample))
    types, clones = [], []
    for n_total in (design.n_cells_per_sample, n_lq, 2 * n_db):
        pool_t, pool_c = _cell_pool(model, srng, n_type, n_clone, clone_names)
        if n_total != design.n_cells_per_sample:
            pick = srng.choice(len(pool_t), size=n_total, replace=True)
            pool_t, pool_c = pool_t[pick], pool_c[pick]
        types.append(pool_t)
        clones.append(pool_c)
    return np.concatenate(types), np.concatenate(clones), n_lq


def _library_sizes(model: SampleModel, srng, t_all, n_lq):
    """Library sizes and mitochondrial shares; low-quality cells get few UMIs (80-240), 30-70%
    mitochondrial counts, or both. Returns library sizes, MT shares and the low-quality flags."""
    median = model.design.median_library_size
    n_all, n_good = len(t_all), model.design.n_cells_per_sample
    lib_scale = np.array([LIBRARY_SCALE[model.types[t]] for t in t_all])
    lib = median * lib_scale * srng.lognormal(0.0, 0.4, n_all)
    mt_frac = np.clip(srng.lognormal(np.log(0.04), 0.35, n_all), 0.005, 0.15)
    lq = np.zeros(n_all, bool)
    lq[n_good : n_good + n_lq] = True
    mode = srng.integers(0, 3, n_all)  # 0 low counts, 1 high MT, 2 both
    low_lib = lq & (mode != 1)
    high_mt = lq & (mode != 0)
    lib[low_lib] = median * srng.uniform(0.04, 0.12, low_lib.sum())
    mt_frac[high_mt] = srng.uniform(0.3, 0.7, high_mt.sum())
    return lib, mt_frac, lq


def _profiles(model: SampleModel, sample_factor, t_all, c_all, tp: str):
    """Relative nuclear expression (rows sum to 1, no MT genes) per distinct (type, clone) of the
    sample's cells. Returns the profiles and each cell's row."""
    pairs = list(zip(t_all.tolist(), c_all.tolist(), strict=True))
    key_of_cell, keys = pd.factorize(pd.Series(pairs))
    kt = np.array([t for t, _ in keys], dtype=int)
    kc = np.array([c for _, c in keys], dtype=object)
    rel = sample_factor * model.programmes[kt]
    mal = kc != ""
    if mal.any():
        cnv = np.vstack([model.clones.cnv[c] for c in kc[mal]])
        resist = np.array([model.clones.meta[c]["resistant"] for c in kc[mal]])
        rel[mal] *= model.leukaemic * cnv
        rel[np.flatnonzero(mal)[resist]] *= model.resistance
    if tp == "on_treatment":
        rel[(~mal) & (kt == model.types.index("Mono"))] *= model.de
    rel[:, model.genes.is_mt] = 0.0
    rel /= rel.sum(axis=1, keepdims=True)
    return rel, key_of_cell


def _mt_share(model: SampleModel) -> np.ndarray:
    mt = model.genes.mt_profile[model.genes.is_mt]
    return mt / mt.sum()


def _gamma_poisson_counts(model, srng, profiles, key_of_cell, lib, mt_frac) -> np.ndarray:
    """Dense cells x genes counts: Poisson of the mean times a gene-wise gamma factor."""
    mu = profiles[key_of_cell] * (lib * (1.0 - mt_frac))[:, None]
    mu[:, model.genes.is_mt] = (lib * mt_frac)[:, None] * _mt_share(model)[None, :]
    shape = 1.0 / model.genes.dispersion
    lam = mu * srng.gamma(shape, 1.0 / shape, size=mu.shape)
    return srng.poisson(lam).astype(np.int32)


def _dealt_counts(srng, umis: np.ndarray, profile: np.ndarray) -> sparse.csr_matrix:
    """Sparse counts of cells holding ``umis`` UMIs each, every UMI's gene drawn from ``profile``.

    The genes of all the UMIs come from one multinomial draw and are dealt to the cells in random
    order, which is the same as drawing each UMI's gene on its own; sorting (cell, gene) keys
    then counts them straight into a canonical CSR matrix.
    """
    n_cells, n_genes = len(umis), len(profile)
    totals = srng.multinomial(int(umis.sum()), profile)
    genes = srng.permutation(np.repeat(np.arange(n_genes, dtype=np.int64), totals))
    keys = np.repeat(np.arange(n_cells, dtype=np.int64), umis) * n_genes + genes
    keys.sort()
    starts = np.flatnonzero(np.diff(keys, prepend=-1))
    rows, cols = np.divmod(keys[starts], n_genes)
    data = np.diff(np.append(starts, len(keys))).astype(np.int32)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n_cells))])
    return sparse.csr_matrix((data, cols.astype(np.int32), indptr), shape=(n_cells, n_genes))


def _multinomial_counts(model, srng, profiles, key_of_cell, lib, mt_frac) -> sparse.csr_matrix:
    """Sparse counts: Poisson nuclear and MT totals per cell, each UMI's gene from the cell's
    profile; time and memory grow with the UMIs, not with a dense cells x genes matrix."""
    n_nuclear = srng.poisson(lib * (1.0 - mt_frac))
    n_mt = srng.poisson(lib * mt_frac)
    groups = [np.flatnonzero(key_of_cell == k) for k in range(len(profiles))]
    nuclear = sparse.vstack(
        [
            _dealt_counts(srng, n_nuclear[cells], p)
            for cells, p in zip(groups, profiles, strict=True)
        ]
    ).tocsr()
    mt_profile = np.zeros(len(model.genes.symbols))
    mt_profile[model.genes.is_mt] = _mt_share(model)
    # rows of the stacked groups back into cell order
    nuclear = nuclear[np.argsort(np.concatenate(groups), kind="stable")]
    return (nuclear + _dealt_counts(srng, n_mt, mt_profile)).astype(np.int32)


def _pair_doublets(model: SampleModel, counts, t_all, c_all, lq, first: int):
    """Doublets: sums of consecutive pairs of the cells from ``first`` on; they take the first
    parent's labels (malignant if either is) and record the second's type. Returns the counts
    and the truth columns."""
    types = np.array(model.types)
    pair_a = np.arange(first, len(t_all), 2)
    mal = c_all != ""
    keep = np.arange(first)
    stack = sparse.vstack if sparse.issparse(counts) else np.vstack
    X = stack([counts[keep], counts[pair_a] + counts[pair_a + 1]])
    labels = {
        "cell_type": types[np.concatenate([t_all[keep], t_all[pair_a]])],
        "malignant": np.concatenate([mal[keep], mal[pair_a] | mal[pair_a + 1]]),
        "clone": np.concatenate(
            [c_all[keep], np.where(c_all[pair_a] != "", c_all[pair_a], c_all[pair_a + 1])]
        ),
        "low_quality": np.concatenate([lq[keep], np.zeros(len(pair_a), bool)]),
        "doublet": np.concatenate([np.zeros(first, bool), np.ones(len(pair_a), bool)]),
        # The second parent's type: a doublet is heterotypic when it differs from cell_type.
        "doublet_partner": np.concatenate([np.repeat("", first), types[t_all[pair_a + 1]]]).astype(
            object
        ),
    }
    return sparse.csr_matrix(X) if sparse.issparse(X) else X, labels


def _shuffled_adata(model: SampleModel, srng, X, labels, sid, patient, label) -> ad.AnnData:
    """Cells in random order with unique random 16-mer barcodes and their truth in ``obs``."""
    order = srng.permutation(X.shape[0])
    barcodes = barcode_strings(srng.choice(4**16, size=X.shape[0], replace=False))
    obs = pd.DataFrame(
        {
            "barcode": barcodes,
            "sample_id": sid,
            "patient_id": patient,
            "timepoint": label,
            "cell_type": labels["cell_type"][order],
            "malignant": labels["malignant"][order],
            "clone": labels["clone"][order].astype(str),
            "low_quality": labels["low_quality"][order],
            "doublet": labels["doublet"][order],
            "doublet_partner": labels["doublet_partner"][order],
        }
    )
    obs.index = sid + "_" + obs["barcode"]
    var = model.genes.genes.set_index("symbol", drop=False).rename_axis(None)
    adata = ad.AnnData(X=sparse.csr_matrix(X[order]), obs=obs, var=var)
    adata.uns["clonetrack"] = {
        "simulate": {
            "seed": model.seed,
            "sample_id": sid,
            "n_cells_per_sample": model.design.n_cells_per_sample,
        }
    }
    return adata


def _sample_factor(model: SampleModel, srng, patient: str) -> np.ndarray:
    """Base abundance times the sample's batch factor and its patient's sex genes."""
    batch = srng.lognormal(0.0, model.design.batch_sd, len(model.genes.symbols))
    sex_factor = np.ones(len(model.genes.symbols))
    for sex, genes in SEX_GENES.items():
        sex_factor[np.isin(model.genes.symbols, genes)] = (
            1.0 if sex == model.sexes[patient] else 0.0
        )
    return model.genes.base * batch * sex_factor


def simulate_sample(
    model: SampleModel, patient_index: int, clones: tuple, timepoint_index: int, timepoint: str
) -> tuple[SimulatedSample, np.random.Generator]:
    """One sample of patient ``clones`` = (patient, clone names, trajectories) at ``timepoint``.

    Returns the sample and its generator (what the sample's clone table draws next).
    """
    patient, clone_names, trajectories = clones
    label = (model.design.timepoints or {})[timepoint]
    sid = f"{patient}_{label}"
    srng = np.random.default_rng([model.seed, 2, patient_index, timepoint_index])
    sample_factor = _sample_factor(model, srng, patient)
    n_clone, n_type = _composition(model, srng, patient, trajectories, timepoint_index, timepoint)
    t_all, c_all, n_lq = _draw_cells(model, srng, n_type, n_clone, clone_names)
    profiles, key_of_cell = _profiles(model, sample_factor, t_all, c_all, timepoint)
    lib, mt_frac, lq = _library_sizes(model, srng, t_all, n_lq)
    draw = _gamma_poisson_counts if model.counts == "gamma_poisson" else _multinomial_counts
    counts = draw(model, srng, profiles, key_of_cell, lib, mt_frac)
    first = model.design.n_cells_per_sample + n_lq
    X, labels = _pair_doublets(model, counts, t_all, c_all, lq, first)
    adata = _shuffled_adata(model, srng, X, labels, sid, patient, label)
    row = {
        "sample_id": sid,
        "patient_id": patient,
        "timepoint": label,
        "timepoint_order": timepoint_index + 1,
        "batch": f"run{timepoint_index + 1}",
        "sex": model.sexes[patient],
    }
    n_mal = int(np.sum(n_clone))
    freq = {c: n / n_mal for c, n in zip(clone_names, n_clone, strict=True)}
    return SimulatedSample(row, adata, freq), srng
