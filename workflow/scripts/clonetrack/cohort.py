"""The cohort question: which features of a patient's marrow go with primary or adaptive
resistance, and with ex vivo drug sensitivity.

Every test has the patient as its replicate: features are summarised per sample (one per patient
and timepoint), then compared between response groups or correlated with a patient's or sample's
measurements. Definitions (response contrasts, cell-type groups) come from the ``cohort`` section
of the config; ``docs/cohort.md`` states the methods.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from clonetrack.clones.dynamics import benjamini_hochberg, percent

FEATURE_KINDS = ("malignant_fraction", "composition", "signature", "clone")
#: Columns of one feature's case-control comparison (:func:`compare_groups`, and within each
#: contrast and timepoint of :func:`cohort_tests`).
FEATURE_TEST_COLUMNS = (
    "feature",
    "n_case",
    "n_control",
    "mean_case",
    "mean_control",
    "difference",
    "difference_ci_low",
    "difference_ci_high",
    "auroc",
    "auroc_ci_low",
    "auroc_ci_high",
    "p",
    "q",
)


# ----------------------------------------------------------------------------------------------
# features per sample


def composition_features(obs: pd.DataFrame, *, groups: dict[str, list[str]]) -> pd.DataFrame:
    """Per sample: malignant fraction, the share of each cell type among all cells and among
    malignant cells, and the share of each cell-type group (``groups``) among malignant cells.

    A share whose denominator is 0 (a sample without malignant cells) is NaN, not 0.
    """
    obs = obs.assign(
        cell_type=obs["cell_type"].astype(str), malignant=obs["malignant"].astype(bool)
    )
    by_sample = obs.groupby("sample_id", observed=True)
    out = pd.DataFrame({"n_cells": by_sample.size(), "n_malignant": by_sample["malignant"].sum()})
    out["malignant_fraction"] = out["n_malignant"] / out["n_cells"]
    all_types = pd.crosstab(obs["sample_id"], obs["cell_type"])
    malignant = obs[obs["malignant"]]
    mal_types = pd.crosstab(malignant["sample_id"], malignant["cell_type"]).reindex(
        index=out.index, columns=all_types.columns, fill_value=0
    )
    share_all = all_types.div(out["n_cells"], axis=0).add_prefix("composition_all:")
    denominator = out["n_malignant"].replace(0, np.nan)
    share_mal = mal_types.div(denominator, axis=0).add_prefix("composition_malignant:")
    grouped = pd.DataFrame(
        {
            f"malignant_group:{name}": mal_types.reindex(columns=types, fill_value=0).sum(axis=1)
            / denominator
            for name, types in groups.items()
        }
    )
    return pd.concat([out, share_all, share_mal, grouped], axis=1)


def clone_features(classes: pd.DataFrame) -> pd.DataFrame:
    """Per patient: clones seen, resistant clones, and whether a resistant clone was detected at
    the patient's first timepoint (NaN without resistant clones), with its frequency there."""
    rows = []
    for patient, g in classes.groupby("patient_id", sort=True):
        resistant = g[g["resistant"].astype(str).str.lower() == "true"]
        detected = resistant[resistant["detected_at_first"].astype(str).str.lower() == "true"]
        rows.append(
            {
                "patient_id": patient,
                "clone:n_clones": len(g),
                "clone:n_resistant": len(resistant),
                "clone:resistant_at_first": float(len(detected) > 0) if len(resistant) else np.nan,
                "clone:resistant_first_frequency": (
                    float(detected["first_frequency"].astype(float).sum())
                    if len(resistant)
                    else np.nan
                ),
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "patient_id",
            "clone:n_clones",
            "clone:n_resistant",
            "clone:resistant_at_first",
            "clone:resistant_first_frequency",
        ],
    )


# ----------------------------------------------------------------------------------------------
# tests between response groups


def _bootstrap_difference(case, control, rng, n_boot, confidence):
    diffs = np.array(
        [
            rng.choice(case, len(case)).mean() - rng.choice(control, len(control)).mean()
            for _ in range(n_boot)
        ]
    )
    a = (1 - confidence) / 2
    return np.quantile(diffs, [a, 1 - a])


def compare_groups(
    features: pd.DataFrame,
    groups: pd.Series,
    *,
    n_boot: int = 2000,
    min_patients: int = 3,
    confidence: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Each feature between two groups of patients (``groups``: "case" or "control" per patient).

    Returns one row per feature: group sizes and means, the difference in means (case - control)
    with a bootstrap interval (patients resampled within groups), the AUROC of the feature for
    "case" (Mann-Whitney U / (n_case n_control); 0.5 = no separation), the two-sided
    Mann-Whitney p value (exact for small groups without ties) and its BH-adjusted q across the
    features given. Features with fewer than ``min_patients`` per group get a ``status`` saying so.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for feature in features.columns:
        values = features[feature].astype(float)
        case = values[groups.reindex(values.index) == "case"].dropna().to_numpy()
        control = values[groups.reindex(values.index) == "control"].dropna().to_numpy()
        row = {
            "feature": feature,
            "n_case": len(case),
            "n_control": len(control),
            "mean_case": case.mean() if len(case) else np.nan,
            "mean_control": control.mean() if len(control) else np.nan,
        }
        if min(len(case), len(control)) < min_patients:
            row["status"] = f"skipped: fewer than {min_patients} patients with a value in a group"
            rows.append(row)
            continue
        u = stats.mannwhitneyu(case, control, alternative="two-sided")
        lo, hi = _bootstrap_difference(case, control, rng, n_boot, confidence)
        auc = u.statistic / (len(case) * len(control))
        auc_lo, auc_hi = auroc_interval(auc, len(case), len(control), confidence=confidence)
        row.update(
            difference=case.mean() - control.mean(),
            difference_ci_low=lo,
            difference_ci_high=hi,
            auroc=auc,
            auroc_ci_low=auc_lo,
            auroc_ci_high=auc_hi,
            p=u.pvalue,
            status="tested",
        )
        rows.append(row)
    out = pd.DataFrame(rows).reindex(columns=[*FEATURE_TEST_COLUMNS, "status"])
    out["q"] = benjamini_hochberg(out["p"])
    return out


def auroc_interval(
    auc: float, n_case: int, n_control: int, *, confidence: float = 0.95
) -> tuple[float, float]:
    """Newcombe's score interval for an AUROC (Stat Med 2006;25:559, method 5): Wilson-like,
    with the Hanley-McNeil variance at the bound itself and N/2 - 1 as the effective size, so it
    stays inside [0, 1] and is not degenerate at 0 or 1 (a bootstrap of a perfect separation
    gives [1, 1] however few the patients)."""
    from scipy.optimize import brentq

    z = stats.norm.ppf(1 - (1 - confidence) / 2)
    n_star = (n_case + n_control) / 2 - 1

    def variance(theta: float) -> float:
        return (
            theta
            * (1 - theta)
            * (1 + (n_star - 1) * (1 - theta) / (2 - theta) + (n_star - 1) * theta / (1 + theta))
            / (n_case * n_control)
        )

    def gap(theta: float) -> float:
        return (auc - theta) ** 2 - z**2 * variance(theta)

    eps = 1e-9  # the bounds are the roots of gap away from the estimate itself
    low = brentq(gap, 0.0, auc - eps) if auc > eps and gap(0.0) > 0 else 0.0
    high = brentq(gap, auc + eps, 1.0) if auc < 1 - eps and gap(1.0) > 0 else 1.0
    return float(low), float(high)


def loo_auroc(values: pd.Series, groups: pd.Series, *, confidence: float = 0.95) -> dict:
    """Leave-one-patient-out AUROC of a one-feature logistic regression predicting "case".

    Each patient's probability comes from a model fitted without that patient, so the AUROC
    measures prediction on unseen patients; its interval is :func:`auroc_interval`.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    data = pd.DataFrame({"x": values.astype(float), "y": groups.reindex(values.index)}).dropna()
    data = data[data["y"].isin(["case", "control"])]
    y = (data["y"] == "case").to_numpy(int)
    x = data[["x"]].to_numpy()
    if min(y.sum(), len(y) - y.sum()) < 2:
        return {"loo_auroc": np.nan, "loo_auroc_ci_low": np.nan, "loo_auroc_ci_high": np.nan}
    scale = x.std() or 1.0
    predicted = np.empty(len(y))
    for i in range(len(y)):
        train = np.arange(len(y)) != i
        if len(set(y[train])) < 2:
            predicted[i] = y[train].mean()
            continue
        model = LogisticRegression().fit((x[train] - x[train].mean()) / scale, y[train])
        predicted[i] = model.predict_proba((x[i : i + 1] - x[train].mean()) / scale)[0, 1]
    auc = roc_auc_score(y, predicted)
    lo, hi = auroc_interval(auc, int(y.sum()), int(len(y) - y.sum()), confidence=confidence)
    return {"loo_auroc": auc, "loo_auroc_ci_low": lo, "loo_auroc_ci_high": hi}


def spearman_table(
    measures: pd.DataFrame,
    features: pd.DataFrame,
    *,
    min_patients: int = 5,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Spearman correlation of every measure (columns of ``measures``) with every feature
    (columns of ``features``) over the rows both share (patients or samples), with a Fisher-z
    interval (Bonett-Wright standard error) and BH-adjusted q over all pairs."""
    rows = []
    z = stats.norm.ppf(1 - (1 - confidence) / 2)
    for measure in measures.columns:
        for feature in features.columns:
            pair = pd.concat([measures[measure], features[feature]], axis=1).dropna()
            n = len(pair)
            row = {"measure": measure, "feature": feature, "n": n}
            if n < min_patients or pair.iloc[:, 0].nunique() < 2 or pair.iloc[:, 1].nunique() < 2:
                rows.append(row)
                continue
            rho, p = stats.spearmanr(pair.iloc[:, 0], pair.iloc[:, 1])
            se = np.sqrt((1 + rho**2 / 2) / (n - 3)) if n > 3 else np.inf
            centre = np.arctanh(np.clip(rho, -0.999999, 0.999999))
            row.update(
                rho=rho,
                rho_ci_low=np.tanh(centre - z * se),
                rho_ci_high=np.tanh(centre + z * se),
                p=p,
            )
            rows.append(row)
    out = pd.DataFrame(rows).reindex(
        columns=["measure", "feature", "n", "rho", "rho_ci_low", "rho_ci_high", "p", "q"]
    )
    out["q"] = benjamini_hochberg(out["p"])
    return out


def composition_sccoda(
    obs: pd.DataFrame, groups: pd.Series, *, num_samples: int, seed: int, fdr: float = 0.1
) -> pd.DataFrame:
    """scCODA (pertpy) on cell-type counts per patient: the change of each type's share in
    "case" vs "control" patients, with the compositional constraint (a rise in one type lowers
    every other share) handled by a reference type chosen automatically."""
    import numpyro
    import pertpy as pt  # slow to import (jax); only this step needs it

    # pertpy replaces zero counts by 0.5, so a sample's total is not a whole number, which
    # numpyro's argument validation refuses for the Dirichlet-multinomial; its density is
    # defined for real totals, so the check is switched off for this model.
    numpyro.enable_validation(False)

    cells = obs.assign(group=obs["patient_id"].map(groups)).dropna(subset=["group"])
    cells = cells[["patient_id", "group", "cell_type"]].astype(str).reset_index(drop=True)
    cells.index = cells.index.astype(str)
    import anndata as ad

    sccoda = pt.tl.Sccoda()
    mdata = sccoda.load(
        ad.AnnData(obs=cells),
        type="cell_level",
        generate_sample_level=True,
        cell_type_identifier="cell_type",
        sample_identifier="patient_id",
        covariate_obs=["group"],
    )
    mdata = sccoda.prepare(
        mdata,
        modality_key="coda",
        formula="C(group, Treatment('control'))",
        reference_cell_type="automatic",
    )
    sccoda.run_nuts(
        mdata,
        modality_key="coda",
        num_samples=num_samples,
        num_warmup=max(100, num_samples // 10),
        rng_key=seed,
    )
    sccoda.set_fdr(mdata, est_fdr=fdr, modality_key="coda")
    effects = sccoda.get_effect_df(mdata, modality_key="coda").reset_index()
    effects = effects.rename(
        columns={
            "Cell Type": "cell_type",
            "log2-fold change": "log2fc",
            "Inclusion probability": "inclusion_probability",
            "HDI 3%": "hdi_low",
            "HDI 97%": "hdi_high",
            "Final Parameter": "effect",
        }
    )
    effects["credible"] = effects["effect"] != 0
    return effects[
        [
            "cell_type",
            "effect",
            "hdi_low",
            "hdi_high",
            "inclusion_probability",
            "log2fc",
            "credible",
        ]
    ]


# ----------------------------------------------------------------------------------------------
# assembling the cohort


SAMPLE_COLUMNS = ["sample_id", "patient_id", "timepoint", "timepoint_order"]


def feature_table(
    obs: pd.DataFrame, composition: pd.DataFrame, signatures: pd.DataFrame, clones: pd.DataFrame
) -> pd.DataFrame:
    """One row per sample: its design columns and every feature. Signature scores are prefixed
    ``signature:``; clone features (per patient) repeat on each of the patient's samples."""
    samples = obs[SAMPLE_COLUMNS].drop_duplicates("sample_id").set_index("sample_id")
    table = samples.join(composition)
    if len(signatures):
        scores = signatures.set_index("sample_id").drop(columns=["n_cells"], errors="ignore")
        scores = scores[[c for c in scores.columns if not c.endswith("_n_cells")]]
        table = table.join(scores.add_prefix("signature:"))
    table = table.reset_index().merge(clones, on="patient_id", how="left")
    return table.sort_values(["patient_id", "timepoint_order"]).reset_index(drop=True)


def feature_columns(table: pd.DataFrame) -> list[str]:
    """The feature columns of :func:`feature_table` (design and cell counts excluded)."""
    skip = set(SAMPLE_COLUMNS) | {"n_cells", "n_malignant"}
    return [c for c in table.columns if c not in skip and pd.api.types.is_numeric_dtype(table[c])]


def at_timepoint(table: pd.DataFrame, timepoint: str) -> pd.DataFrame:
    """One row per patient: the patient's sample at ``timepoint`` (a sheet label), or its
    earliest sample for ``"first"``; indexed by patient."""
    if timepoint == "first":
        rows = table.sort_values("timepoint_order").drop_duplicates("patient_id")
    else:
        rows = table[table["timepoint"] == timepoint]
    return rows.set_index("patient_id")


def contrast_groups(responses: pd.Series, case: list[str], control: list[str]) -> pd.Series:
    """ "case" or "control" per patient of ``responses``; patients in neither are left out."""
    groups = pd.Series(
        np.select([responses.isin(case), responses.isin(control)], ["case", "control"], default=""),
        index=responses.index,
    )
    return groups[groups != ""]


def cohort_tests(
    table: pd.DataFrame, responses: pd.Series, cfg: dict, *, seed: int
) -> pd.DataFrame:
    """Every feature between the groups of each contrast at each configured timepoint, with the
    patient as the replicate; BH within each contrast x timepoint; leave-one-patient-out AUROC
    for every feature with q below ``fdr`` and at least the ``n_auroc_features`` lowest p values
    of each."""
    features = feature_columns(table)
    out = []
    for name, contrast in cfg["contrasts"].items():
        groups = contrast_groups(responses, contrast["case"], contrast["control"])
        for timepoint in cfg["timepoints"]:
            view = at_timepoint(table, timepoint)
            if view.empty:
                continue
            tested = compare_groups(
                view[features],
                groups,
                n_boot=cfg["n_bootstrap"],
                min_patients=cfg["min_patients"],
                seed=seed,
            )
            tested.insert(0, "timepoint", timepoint)
            tested.insert(0, "contrast", name)
            ran = tested[tested["status"] == "tested"]
            strongest = ran.nsmallest(cfg["n_auroc_features"], "p").index.union(
                ran.index[ran["q"] < cfg["fdr"]]
            )
            for i in strongest:
                auc = loo_auroc(view[tested.at[i, "feature"]], groups)
                for key, value in auc.items():
                    tested.loc[i, key] = value
            out.append(tested)
    columns = [
        "contrast",
        "timepoint",
        *FEATURE_TEST_COLUMNS,
        "loo_auroc",
        "loo_auroc_ci_low",
        "loo_auroc_ci_high",
        "status",
    ]
    if not out:
        return pd.DataFrame(columns=columns)
    return pd.concat(out, ignore_index=True).reindex(columns=columns)


def measure_correlations(
    table: pd.DataFrame, measurements: pd.DataFrame, *, min_patients: int
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Spearman correlations of each measure with each feature: patient-level measures against
    each patient's first sample, sample-level measures against their own sample.

    Returns the table, and the measures and features as matrices (rows: patients or samples)."""
    features = feature_columns(table)
    parts, measure_parts, feature_parts = [], [], []
    patient_level = measurements[measurements["sample_id"] == ""]
    if len(patient_level):
        m = patient_level.pivot(index="patient_id", columns="measure", values="value")
        f = at_timepoint(table, "first")[features]
        parts.append(spearman_table(m, f, min_patients=min_patients).assign(level="patient"))
        measure_parts.append(m)
        feature_parts.append(f)
    sample_level = measurements[measurements["sample_id"] != ""]
    if len(sample_level):
        m = sample_level.pivot(index="sample_id", columns="measure", values="value")
        f = table.set_index("sample_id")[features]
        parts.append(spearman_table(m, f, min_patients=min_patients).assign(level="sample"))
        measure_parts.append(m)
        feature_parts.append(f)
    if not parts:
        empty = pd.DataFrame(
            columns=[
                "level",
                "measure",
                "feature",
                "n",
                "rho",
                "rho_ci_low",
                "rho_ci_high",
                "p",
                "q",
            ]
        )
        return empty, pd.DataFrame(), pd.DataFrame()
    result = pd.concat(parts, ignore_index=True)
    result["q"] = benjamini_hochberg(result["p"])  # one family: every measure x feature pair
    result = result[["level", *[c for c in result.columns if c != "level"]]]
    return result, pd.concat(measure_parts), pd.concat(feature_parts)


def patient_answers(
    freqs: pd.DataFrame, classes: pd.DataFrame, responses: pd.Series, patients: list[str]
) -> pd.DataFrame:
    """Per patient, the answer in words: malignant fraction first and last, and whether each
    resistant clone was detected at the first timepoint (frequency with 95% interval) or not
    (below its 95% upper bound)."""
    rows = []
    for patient in patients:
        f = (
            freqs[freqs["patient_id"] == patient]
            .drop_duplicates("sample_id")
            .sort_values("timepoint_order")
        )
        c = classes[classes["patient_id"] == patient]
        resistant = c[c["resistant"].astype(str).str.lower() == "true"]
        parts = []
        if len(f):
            first, last = f.iloc[0], f.iloc[-1]
            parts.append(
                f"malignant {percent(first['malignant_fraction'])} at {first['timepoint']}"
                + (
                    f" -> {percent(last['malignant_fraction'])} at {last['timepoint']}"
                    if len(f) > 1
                    else ""
                )
            )
        if c.empty:
            parts.append("no clones")
        elif resistant.empty:
            parts.append(f"no resistant clone among {len(c)}")
        for _, r in resistant.iterrows():
            if str(r["detected_at_first"]).lower() == "true":
                parts.append(
                    f"resistant {r['clone']}: present at {r['first_timepoint']}, "
                    f"{percent(float(r['first_frequency']))} "
                    f"({percent(float(r['first_ci_low']))}-{percent(float(r['first_ci_high']))})"
                )
            else:
                parts.append(
                    f"resistant {r['clone']}: not detected at {r['first_timepoint']}, "
                    f"< {percent(float(r['first_ci_high']))}"
                )
        rows.append(
            {
                "patient_id": patient,
                "response": responses.get(patient, ""),
                "n_clones": len(c),
                "n_resistant": len(resistant),
                "answer": "\n".join(parts),
            }
        )
    return pd.DataFrame(
        rows, columns=["patient_id", "response", "n_clones", "n_resistant", "answer"]
    )
