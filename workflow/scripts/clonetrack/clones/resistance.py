"""What resistant clones express: pseudobulk DE of resistant vs sensitive clones and signatures."""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import stats

from clonetrack.de import CONTRAST_COLUMNS, aggregate, deseq_contrast

RESULT_COLUMNS = list(CONTRAST_COLUMNS)


def clone_status(classes: pd.DataFrame) -> pd.DataFrame:
    """Resistant or sensitive per clone, from the ``resistant``/``sensitive`` flags of
    :func:`clonetrack.clones.dynamics.classify_clones`; clones with neither are not contrasted."""
    table = classes[["patient_id", "clone", "class"]].copy()
    resistant = classes["resistant"].astype(str).str.lower() == "true"
    sensitive = classes["sensitive"].astype(str).str.lower() == "true"
    table["status"] = np.select([resistant, sensitive], ["resistant", "sensitive"], default="")
    return table[table["status"] != ""].reset_index(drop=True)


def status_of_cells(obs: pd.DataFrame, classes: pd.DataFrame) -> pd.Series:
    """``resistant``/``sensitive`` per cell of ``obs``: malignant cells of clones so classed;
    NaN for every other cell."""
    status = clone_status(classes)
    key = obs["patient_id"].astype(str) + "|" + obs["clone"].astype(str)
    lookup = dict(
        zip(
            status["patient_id"].astype(str) + "|" + status["clone"].astype(str),
            status["status"],
            strict=True,
        )
    )
    return key.map(lookup).where(obs["malignant"].astype(bool))


def malignant_with_status(adata: AnnData, classes: pd.DataFrame) -> AnnData:
    """Malignant cells of clones classed resistant or sensitive, with ``obs["status"]``."""
    status = status_of_cells(adata.obs, classes)
    keep = status.notna().to_numpy()
    cells = adata[keep].copy()
    cells.obs["status"] = status[keep].to_numpy()
    return cells


# The one grouping that both analyses aggregate from: a single pass over the counts.
PSEUDOBULK_KEYS = ["patient_id", "clone", "timepoint", "status", "cell_type"]


def resistance_de(
    counts: pd.DataFrame,
    meta: pd.DataFrame,
    *,
    min_cells: int = 10,
    by_cell_type: bool = True,
    min_patients: int = 2,
    random_state: int = 0,
) -> tuple[pd.DataFrame, dict]:
    """Pseudobulk DE of resistant versus sensitive clones, within patients.

    Malignant cells are summed per patient x clone x timepoint (x cell type when
    ``by_cell_type``); pseudobulks with fewer than ``min_cells`` cells are dropped. The design is
    ``~ patient_id + timepoint (+ cell_type) + status``: each patient is its own control,
    timepoint absorbs treatment effects shared by all clones, and cell type keeps differentiation
    state from masquerading as resistance. A term with one level left is dropped.

    ``counts`` and ``meta`` are pseudobulks over :data:`PSEUDOBULK_KEYS` of the cells of
    :func:`malignant_with_status`. Returns the results table (gene,
    log2fc resistant/sensitive with 95% CI, p, p_adj) and a summary dict saying what was fitted,
    or why not.
    """
    summary = {"n_cells": int(meta["n_cells"].sum()), "design": None, "status": "skipped"}
    if summary["n_cells"] == 0:
        summary["reason"] = "no malignant cells in clones classed resistant or sensitive"
        return pd.DataFrame(columns=RESULT_COLUMNS), summary
    if not by_cell_type:
        counts, meta = aggregate(counts, meta, groupby=PSEUDOBULK_KEYS[:-1])
    keep = meta["n_cells"] >= min_cells
    meta, counts = meta[keep], counts[keep]
    both = meta.groupby("patient_id")["status"].nunique()
    patients = sorted(both.index[both == 2])
    summary.update(
        n_pseudobulks=int(len(meta)),
        n_patients_with_both=len(patients),
        patients=patients,
    )
    if len(patients) < min_patients:
        summary["reason"] = (
            f"{len(patients)} patient(s) have both resistant and sensitive clones with >= "
            f"{min_cells} cells in a pseudobulk; need {min_patients}"
        )
        return pd.DataFrame(columns=RESULT_COLUMNS), summary
    used = meta[meta["patient_id"].isin(patients)]
    terms = [
        t for t in ("patient_id", "timepoint", "cell_type") if t in used and used[t].nunique() > 1
    ]
    if not _estimable(used, terms):
        summary["reason"] = (
            f"status is confounded with {' + '.join(terms)}: resistant and sensitive clones are "
            f"never measured together (>= {min_cells} cells) in a patient, timepoint and "
            "cell type, "
            "so resistance cannot be told from time on treatment or cell type"
        )
        return pd.DataFrame(columns=RESULT_COLUMNS), summary
    # nuisance terms that are confounded among themselves go, cell type first
    for term in ("cell_type", "timepoint"):
        if not _full_rank(used, [*terms, "status"]) and term in terms:
            terms.remove(term)
            summary.setdefault("dropped_terms", []).append(term)
    design = "~ " + " + ".join([*terms, "status"])
    table = deseq_contrast(
        counts.loc[used.index],
        used[[*terms, "status"]],
        design=design,
        factor="status",
        level="resistant",
        reference="sensitive",
        random_state=random_state,
    )
    summary.update(
        design=design,
        status="tested",
        n_pseudobulks_used=int(len(used)),
        n_significant_5pct_fdr=int((table["p_adj"] < 0.05).sum()),
    )
    return table[RESULT_COLUMNS], summary


def _design_matrix(meta: pd.DataFrame, terms: list[str]) -> np.ndarray:
    dummies = [pd.get_dummies(meta[t].astype(str), drop_first=True, dtype=float) for t in terms]
    return np.column_stack([np.ones(len(meta)), *[d.to_numpy() for d in dummies]])


def _full_rank(meta: pd.DataFrame, terms: list[str]) -> bool:
    x = _design_matrix(meta, terms)
    return np.linalg.matrix_rank(x) == x.shape[1]


def _estimable(meta: pd.DataFrame, terms: list[str]) -> bool:
    """Whether ``status`` adds a dimension to the design of ``terms``: if not, its effect cannot be
    separated from theirs (e.g. resistant clones seen only after treatment)."""
    return np.linalg.matrix_rank(_design_matrix(meta, [*terms, "status"])) > np.linalg.matrix_rank(
        _design_matrix(meta, terms)
    )


def _log_cpm(counts: pd.DataFrame) -> pd.DataFrame:
    library = counts.sum(axis=1).replace(0, np.nan)
    return np.log2(counts.div(library, axis=0) * 1e6 + 1)


def signature_scores(
    counts: pd.DataFrame,
    meta: pd.DataFrame,
    signatures: dict[str, pd.Series],
    *,
    stem_types: tuple[str, ...] = ("HSC", "Prog", "GMP"),
    stem_signatures: tuple[str, ...] = ("bcl2_family",),
    min_cells: int = 10,
    groupby: tuple[str, ...] = ("patient_id", "clone", "status"),
) -> pd.DataFrame:
    """Signature scores per patient x clone (or other ``groupby`` columns of ``meta``) on
    pseudobulks of malignant cells.

    Each score is the weighted sum of log2(CPM + 1) over the signature's genes present in the
    data, divided by the number of genes for unit-weight signatures (a mean). LSC17 uses the
    published weights as a sum (Ng et al. 2016). Signatures in ``stem_signatures`` are scored on
    the clone's stem/progenitor-like cells only (``stem_types``), where venetoclax acts.
    Pseudobulks with fewer than ``min_cells`` cells get NaN. Individual genes of
    ``stem_signatures`` are reported too. ``counts`` and ``meta`` are pseudobulks over
    :data:`PSEUDOBULK_KEYS` of the cells of :func:`malignant_with_status`.
    """
    rows = []
    per_clone = list(groupby)
    if meta["n_cells"].sum() == 0:
        return pd.DataFrame(columns=[*per_clone, "n_cells"])
    is_stem = meta["cell_type"].astype(str).isin(stem_types).to_numpy()
    stem_counts, stem_meta = (
        aggregate(counts[is_stem], meta[is_stem], groupby=per_clone)
        if is_stem.any()
        else (None, None)
    )
    counts, meta = aggregate(counts, meta, groupby=per_clone)
    expr = _log_cpm(counts)
    stem_expr = _log_cpm(stem_counts) if stem_counts is not None else None
    for pb, row in meta.iterrows():
        out = {key: row[key] for key in per_clone} | {"n_cells": int(row["n_cells"])}
        for name, weights in signatures.items():
            is_stem = name in stem_signatures
            source, source_meta = (stem_expr, stem_meta) if is_stem else (expr, meta)
            n = (
                int(source_meta.loc[pb, "n_cells"])
                if source_meta is not None and pb in source_meta.index
                else 0
            )
            genes = [g for g in weights.index if g in expr.columns]
            if n < min_cells or not genes:
                out[name] = np.nan
            else:
                values = source.loc[pb, genes].to_numpy() @ weights[genes].to_numpy()
                unit = np.allclose(weights[genes].to_numpy(), 1.0)
                out[name] = float(values / len(genes)) if unit else float(values)
            if is_stem:
                out[f"{name}_n_cells"] = n
                for gene in genes:
                    out[f"{name}:{gene}"] = (
                        float(source.loc[pb, gene]) if n >= min_cells else np.nan
                    )
        rows.append(out)
    return pd.DataFrame(rows)


def compare_signatures(scores: pd.DataFrame, *, confidence: float = 0.95) -> pd.DataFrame:
    """Resistant minus sensitive signature score, per patient, then across patients.

    Within a patient, clones of a status are averaged; the cohort estimate is the mean of the
    per-patient differences with a t interval (the patient is the replicate) and a one-sample
    t-test p value. With one patient the interval is undefined (NaN).
    """
    value_columns = [
        c
        for c in scores.columns
        if c not in {"patient_id", "clone", "status", "n_cells"} and not c.endswith("_n_cells")
    ]
    rows = []
    for column in value_columns:
        per_patient = scores.pivot_table(
            index="patient_id", columns="status", values=column, aggfunc="mean"
        )
        if not {"resistant", "sensitive"} <= set(per_patient.columns):
            continue
        diff = (per_patient["resistant"] - per_patient["sensitive"]).dropna()
        n = len(diff)
        mean = float(diff.mean()) if n else np.nan
        if n > 1:
            se = float(diff.std(ddof=1) / np.sqrt(n))
            half = stats.t.ppf(0.5 + confidence / 2, n - 1) * se
            p = float(stats.ttest_1samp(diff, 0.0).pvalue) if se > 0 else np.nan
        else:
            half, p = np.nan, np.nan
        rows.append(
            {
                "signature": column,
                "n_patients": n,
                "mean_difference": mean,
                "ci_low": mean - half,
                "ci_high": mean + half,
                "p": p,
                "per_patient": "; ".join(f"{k}: {v:.3g}" for k, v in diff.items()),
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "signature",
            "n_patients",
            "mean_difference",
            "ci_low",
            "ci_high",
            "p",
            "per_patient",
        ],
    )
