"""Clone frequencies across a patient's timepoints and the statistics that classify clones.

The patient is the unit of replication: clone-level tests compare one patient's timepoints, and
only :func:`cohort_model` pools patients. Frequencies are shares of the malignant cells that carry
a clone label in a sample, with exact (Clopper-Pearson) 95% intervals.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats

from clonetrack.errors import InputError
from clonetrack.vocabulary import (
    RESISTANT_CLASSES,
    SENSITIVE_CLASSES,
    SURVIVING_CLASSES,
    UNASSIGNED,
)

CLASS_COLUMNS = (
    "patient_id",
    "clone",
    "class",
    "resistant",
    "sensitive",
    "detected_at_first",
    "first_timepoint",
    "first_n_cells",
    "first_n_malignant",
    "first_frequency",
    "first_ci_low",
    "first_ci_high",
    "last_timepoint",
    "last_n_cells",
    "last_n_malignant",
    "last_frequency",
    "last_ci_low",
    "last_ci_high",
    "p",
    "p_adj",
    "log2_or",
    "log2_or_ci_low",
    "log2_or_ci_high",
    "evidence",
)


def clopper_pearson(k, n, *, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Exact (Clopper-Pearson) binomial interval for ``k`` successes out of ``n``: statsmodels'
    ``proportion_confint(method="beta")``, NaN where ``n`` is 0."""
    # imported here: statsmodels.stats costs 2.3 s on its own, nothing once the cohort model's
    # GLM (same job) has loaded statsmodels
    from statsmodels.stats.proportion import proportion_confint

    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    bad = n <= 0
    with np.errstate(invalid="ignore", divide="ignore"):
        lo, hi = proportion_confint(k, np.where(bad, 1.0, n), alpha=1 - confidence, method="beta")
    return np.where(bad, np.nan, lo), np.where(bad, np.nan, hi)


def detection_limit(n, *, probability: float = 0.95) -> np.ndarray:
    """Smallest frequency that ``n`` sampled cells would see at least once with ``probability``:
    ``1 - (1 - probability) ** (1 / n)`` (about 3 / n; NaN where ``n`` is 0). Below it, absence
    from a sample says little."""
    n = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        limit = 1 - (1 - probability) ** (1 / n)
    return np.where(n > 0, limit, np.nan)


def benjamini_hochberg(p) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (scipy's ``false_discovery_control``); NaN entries
    stay NaN and are not counted."""
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        out[ok] = stats.false_discovery_control(p[ok], method="bh")
    return out


def _is_assigned(clone: pd.Series) -> pd.Series:
    s = clone.astype(object)
    return s.notna() & ~s.astype(str).isin([UNASSIGNED, "", "nan", "None"])


def _as_bool(col: pd.Series, name: str) -> pd.Series:
    if col.dtype == bool:
        return col
    if col.isna().any():
        raise InputError(
            f"obs[{name!r}] has missing values in {int(col.isna().sum())} cells; "
            "set every cell to True or False."
        )
    lowered = col.astype(str).str.lower()
    table = {"true": True, "1": True, "false": False, "0": False, "1.0": True, "0.0": False}
    if not lowered.isin(table).all():
        bad = sorted(set(lowered[~lowered.isin(table)]))[:5]
        raise InputError(f"obs[{name!r}] must be True/False; found {bad}.")
    return lowered.map(table).astype(bool)


def clone_frequencies(
    obs: pd.DataFrame,
    *,
    patient_key: str = "patient_id",
    sample_key: str = "sample_id",
    time_key: str = "timepoint",
    order_key: str = "timepoint_order",
    clone_key: str = "clone",
    malignant_key: str | None = "malignant",
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Per patient x timepoint x clone cell counts and frequencies with exact intervals.

    Parameters
    ----------
    obs
        One row per cell (``adata.obs``).
    patient_key, sample_key, time_key, order_key, clone_key
        Columns of ``obs``. Each sample belongs to one patient, timepoint and order, and a
        patient has at most one sample per timepoint order.
    malignant_key
        Boolean column marking malignant cells. Frequencies are shares of the malignant cells
        with a clone label. When the column is absent (or ``None``), all clone-labelled cells
        form the compartment.
    confidence
        Level of the Clopper-Pearson intervals.

    Returns
    -------
    One row per patient x timepoint x clone, for every clone seen in any sample of the patient
    (zero rows where it is absent). Columns: ``patient_id``, ``sample_id``, ``timepoint``,
    ``timepoint_order``, ``clone``, ``n_cells`` (clone cells in the compartment),
    ``n_malignant`` (compartment cells with a clone: the denominator), ``frequency``,
    ``ci_low``, ``ci_high``, ``n_cells_outside`` (clone-labelled cells outside the compartment,
    not in the frequency), ``n_sample_cells``, ``n_unassigned`` (cells of the sample without a
    clone), ``n_malignant_total`` (compartment cells with or without a clone),
    ``malignant_fraction`` (``n_malignant_total / n_sample_cells``) with ``ci`` columns,
    ``detection_limit`` and ``malignant_fraction_detection_limit`` (:func:`detection_limit` of
    the clone's and of the malignant fraction's denominators), and ``compartment``
    (``"malignant"`` or ``"clone_assigned"``). For every sample,
    ``sum(n_cells) + sum(n_cells_outside) + n_unassigned == n_sample_cells``.
    """
    need = [patient_key, sample_key, time_key, order_key, clone_key]
    missing = [c for c in need if c not in obs]
    if missing:
        raise InputError(
            f"obs lacks column(s) {missing} needed for clone frequencies; the sample sheet "
            "provides patient and timepoint columns, the clone step provides 'clone'."
        )
    df = pd.DataFrame(
        {
            "patient_id": obs[patient_key].astype(str).to_numpy(),
            "sample_id": obs[sample_key].astype(str).to_numpy(),
            "timepoint": obs[time_key].astype(str).to_numpy(),
            "timepoint_order": pd.to_numeric(obs[order_key], errors="coerce").to_numpy(),
            "clone": obs[clone_key].astype(object).to_numpy(),
        }
    )
    if df["timepoint_order"].isna().any():
        bad = sorted(set(df.loc[df["timepoint_order"].isna(), "sample_id"]))
        raise InputError(f"samples {bad[:5]}: {order_key!r} must be an integer; fix the sheet.")
    samples = df.groupby("sample_id")[["patient_id", "timepoint", "timepoint_order"]].nunique()
    inconsistent = samples.index[(samples > 1).any(axis=1)]
    if len(inconsistent):
        raise InputError(
            f"samples {list(inconsistent[:5])} have more than one patient, timepoint or order "
            "among their cells; each sample must have one of each in the sheet."
        )
    sheet = df.drop_duplicates("sample_id").set_index("sample_id")
    clash = sheet.duplicated(["patient_id", "timepoint_order"], keep=False)
    if clash.any():
        raise InputError(
            f"samples {sorted(sheet.index[clash])[:6]} share a patient and timepoint_order; "
            "merge them or give them distinct orders in the sample sheet."
        )

    assigned = _is_assigned(df["clone"]).to_numpy()
    df["clone"] = np.where(assigned, df["clone"].astype(str), UNASSIGNED)
    if malignant_key is not None and malignant_key in obs:
        inside = _as_bool(obs[malignant_key], malignant_key).to_numpy()
        compartment = "malignant"
    else:
        inside = assigned
        compartment = "clone_assigned"
    df["inside"] = inside
    df["assigned"] = assigned

    per_sample = df.groupby("sample_id").agg(
        n_sample_cells=("clone", "size"),
        n_unassigned=("assigned", lambda a: int((~a).sum())),
        n_malignant_total=("inside", "sum"),
    )
    per_sample["n_malignant"] = (
        df[df["inside"] & df["assigned"]].groupby("sample_id").size()
    ).reindex(per_sample.index, fill_value=0)

    lab = df[df["assigned"]]
    n_in = lab[lab["inside"]].groupby(["sample_id", "clone"]).size()
    n_out = lab[~lab["inside"]].groupby(["sample_id", "clone"]).size()

    rows = []
    for patient, psheet in sheet.groupby("patient_id", sort=True):
        clones = sorted(set(lab.loc[lab["patient_id"] == patient, "clone"]))
        for sid in psheet.sort_values("timepoint_order").index:
            for clone in clones:
                rows.append((patient, sid, clone))
    out = pd.DataFrame(rows, columns=["patient_id", "sample_id", "clone"])
    out["timepoint"] = out["sample_id"].map(sheet["timepoint"])
    out["timepoint_order"] = out["sample_id"].map(sheet["timepoint_order"]).astype(int)
    key = pd.MultiIndex.from_frame(out[["sample_id", "clone"]])
    out["n_cells"] = n_in.reindex(key, fill_value=0).to_numpy().astype(int)
    out["n_malignant"] = out["sample_id"].map(per_sample["n_malignant"]).astype(int)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["frequency"] = np.where(
            out["n_malignant"] > 0, out["n_cells"] / out["n_malignant"].replace(0, 1), np.nan
        )
    out["ci_low"], out["ci_high"] = clopper_pearson(
        out["n_cells"], out["n_malignant"], confidence=confidence
    )
    out["detection_limit"] = detection_limit(out["n_malignant"], probability=confidence)
    out["n_cells_outside"] = n_out.reindex(key, fill_value=0).to_numpy().astype(int)
    for col in ("n_sample_cells", "n_unassigned", "n_malignant_total"):
        out[col] = out["sample_id"].map(per_sample[col]).astype(int)
    out["malignant_fraction"] = out["n_malignant_total"] / out["n_sample_cells"]
    out["malignant_fraction_ci_low"], out["malignant_fraction_ci_high"] = clopper_pearson(
        out["n_malignant_total"], out["n_sample_cells"], confidence=confidence
    )
    out["malignant_fraction_detection_limit"] = detection_limit(
        out["n_sample_cells"], probability=confidence
    )
    out["compartment"] = compartment
    cols = ["patient_id", "sample_id", "timepoint", "timepoint_order", "clone"]
    out = out[cols + [c for c in out.columns if c not in cols]]
    out = out.sort_values(["patient_id", "timepoint_order", "clone"], ignore_index=True)
    # samples without any clone still count towards the design (and the cell accounting)
    out.attrs["samples"] = (
        sheet.join(per_sample)
        .reset_index()[
            [
                "patient_id",
                "sample_id",
                "timepoint",
                "timepoint_order",
                "n_sample_cells",
                "n_unassigned",
                "n_malignant_total",
                "n_malignant",
            ]
        ]
        .sort_values(["patient_id", "timepoint_order"], ignore_index=True)
    )
    return out


def _timepoints(freqs: pd.DataFrame) -> pd.DataFrame:
    """One row per patient x timepoint with its denominator."""
    tp = freqs.drop_duplicates(["patient_id", "timepoint_order"])[
        ["patient_id", "sample_id", "timepoint", "timepoint_order", "n_malignant"]
    ]
    return tp.sort_values(["patient_id", "timepoint_order"], ignore_index=True)


def _log2_odds_ratio(ka, na, kb, nb, confidence):
    """log2 OR of clone vs rest at b relative to a; Haldane-Anscombe +0.5 when a cell is 0."""
    cells = np.array([ka, na - ka, kb, nb - kb], dtype=float)
    if (cells == 0).any():
        cells = cells + 0.5
    a, b, c, d = cells
    log_or = np.log((c / d) / (a / b))
    se = np.sqrt((1 / cells).sum())
    z = stats.norm.ppf(0.5 + confidence / 2)
    return (np.array([log_or, log_or - z * se, log_or + z * se]) / np.log(2)).tolist()


def compare_timepoints(
    freqs: pd.DataFrame, *, confidence: float = 0.95, strict: bool = False
) -> pd.DataFrame:
    """Compare each clone's frequency between a patient's timepoints.

    For every patient and clone: each pair of consecutive timepoints (``comparison ==
    "consecutive"``) and the first against the last (``"first_vs_last"``; identical to the
    single consecutive pair when there are two timepoints). Each comparison is a 2x2 table,
    clone vs the rest of the compartment x the two timepoints: difference in frequency, log2
    odds ratio with a Wald interval (Haldane-Anscombe correction when a cell is 0), Fisher's
    exact test (two-sided), and Benjamini-Hochberg adjustment across the patient's clones for
    that comparison.

    Parameters
    ----------
    freqs
        Output of :func:`clone_frequencies`.
    confidence
        Level of the odds-ratio interval.
    strict
        Raise :class:`~clonetrack.errors.InputError` for a patient with a single timepoint
        instead of recording it in ``result.attrs["skipped"]``.

    Returns
    -------
    One row per patient x clone x comparison with ``timepoint_a``/``_b``, ``order_a``/``_b``,
    ``n_cells_a``/``_b``, ``n_malignant_a``/``_b``, ``frequency_a``/``_b``, ``delta_frequency``,
    ``fold`` (``frequency_b / frequency_a``), ``log2_or``, ``log2_or_ci_low``,
    ``log2_or_ci_high``, ``p``, ``p_adj``. ``attrs["skipped"]`` lists patients without a
    comparison and why.
    """
    tps = _timepoints(freqs)
    counts = freqs.set_index(["patient_id", "timepoint_order", "clone"])["n_cells"]
    rows, skipped = [], []
    for patient, tp in tps.groupby("patient_id", sort=True):
        tp = tp.reset_index(drop=True)
        if len(tp) < 2:
            reason = (
                f"patient {patient!r} has one timepoint ({tp.loc[0, 'timepoint']}); "
                "clone dynamics need at least two."
            )
            if strict:
                raise InputError(reason + " Add a sample or drop the patient from the sheet.")
            skipped.append({"patient_id": patient, "reason": reason})
            continue
        pairs = [("consecutive", i, i + 1) for i in range(len(tp) - 1)]
        pairs.append(("first_vs_last", 0, len(tp) - 1))
        clones = sorted(freqs.loc[freqs["patient_id"] == patient, "clone"].unique())
        for kind, i, j in pairs:
            a, b = tp.loc[i], tp.loc[j]
            block = []
            for clone in clones:
                ka = int(counts[(patient, a["timepoint_order"], clone)])
                kb = int(counts[(patient, b["timepoint_order"], clone)])
                na, nb = int(a["n_malignant"]), int(b["n_malignant"])
                fa = ka / na if na else np.nan
                fb = kb / nb if nb else np.nan
                if na and nb:
                    p = stats.fisher_exact([[ka, na - ka], [kb, nb - kb]])[1]
                    lor = _log2_odds_ratio(ka, na, kb, nb, confidence)
                else:
                    p, lor = np.nan, [np.nan] * 3
                with np.errstate(divide="ignore", invalid="ignore"):
                    fold = np.float64(fb) / np.float64(fa)
                block.append(
                    {
                        "patient_id": patient,
                        "clone": clone,
                        "comparison": kind,
                        "timepoint_a": a["timepoint"],
                        "timepoint_b": b["timepoint"],
                        "order_a": int(a["timepoint_order"]),
                        "order_b": int(b["timepoint_order"]),
                        "n_cells_a": ka,
                        "n_malignant_a": na,
                        "frequency_a": fa,
                        "n_cells_b": kb,
                        "n_malignant_b": nb,
                        "frequency_b": fb,
                        "delta_frequency": fb - fa,
                        "fold": fold,
                        "log2_or": lor[0],
                        "log2_or_ci_low": lor[1],
                        "log2_or_ci_high": lor[2],
                        "p": p,
                    }
                )
            adj = benjamini_hochberg([r["p"] for r in block])
            for r, q in zip(block, adj, strict=True):
                r["p_adj"] = q
            rows.extend(block)
    cols = [
        "patient_id",
        "clone",
        "comparison",
        "timepoint_a",
        "timepoint_b",
        "order_a",
        "order_b",
        "n_cells_a",
        "n_malignant_a",
        "frequency_a",
        "n_cells_b",
        "n_malignant_b",
        "frequency_b",
        "delta_frequency",
        "fold",
        "log2_or",
        "log2_or_ci_low",
        "log2_or_ci_high",
        "p",
        "p_adj",
    ]
    out = pd.DataFrame(rows, columns=cols)
    out.attrs["skipped"] = skipped
    return out


def percent(x: float) -> str:
    return f"{100 * x:.1f}%" if np.isfinite(x) else "NA"


def classify_clones(
    comparisons: pd.DataFrame,
    freqs: pd.DataFrame,
    *,
    alpha: float = 0.05,
    min_fold: float = 2.0,
    absent_upper: float = 0.05,
    confidence: float = 0.95,
    resistant_classes: tuple[str, ...] = RESISTANT_CLASSES,
    sensitive_classes: tuple[str, ...] = SENSITIVE_CLASSES,
) -> pd.DataFrame:
    """Classify each clone by its change from the patient's first to last timepoint.

    Classes:

    - ``expanding``: BH-adjusted p (first vs last) < ``alpha`` and frequency up at least
      ``min_fold``-fold;
    - ``contracting``: adjusted p < ``alpha`` and frequency down at least ``min_fold``-fold;
    - ``persistent``: present first and last, no change passing both criteria;
    - ``eliminated``: present first, 0 cells last, and the Clopper-Pearson upper bound at the
      last timepoint is below ``absent_upper`` (deep enough for absence to mean something);
    - ``emergent``: 0 cells at the first timepoint and present later (the first-timepoint upper
      bound is reported);
    - ``undetermined``: too few cells to tell (absent last with a wide bound, no compartment
      cells at first or last, or a single timepoint).

    Parameters
    ----------
    comparisons
        Output of :func:`compare_timepoints`.
    freqs
        Output of :func:`clone_frequencies`.
    alpha, min_fold, absent_upper
        Thresholds as above.
    confidence
        Level of the reported intervals and of the absence bounds.

    Returns
    -------
    One row per patient x clone: ``patient_id``, ``clone``, ``class``, ``resistant``
    (class in ``resistant_classes``, by default expanding only: a persistent clone holds its
    share of a leukaemia that shrank as a whole), ``sensitive`` (in ``sensitive_classes``),
    ``detected_at_first``, ``first_timepoint``, ``first_n_cells``, ``first_n_malignant``,
    ``first_frequency``, ``first_ci_low``, ``first_ci_high``, the same for ``last_``, ``p``,
    ``p_adj``, ``log2_or`` with ``log2_or_ci_low``/``_high``, and an ``evidence`` sentence.
    """
    if min_fold < 1 or not 0 < absent_upper < 1 or not 0 < alpha < 1:
        raise InputError(
            f"classify_clones: need min_fold >= 1, 0 < absent_upper < 1 and 0 < alpha < 1 "
            f"(got {min_fold}, {absent_upper}, {alpha}); fix the clones section of the config."
        )
    fl = comparisons[comparisons["comparison"] == "first_vs_last"].set_index(
        ["patient_id", "clone"]
    )
    rows = []
    for (patient, clone), g in freqs.groupby(["patient_id", "clone"], sort=True):
        g = g.sort_values("timepoint_order")
        first, last = g.iloc[0], g.iloc[-1]
        k1, n1, k2, n2 = (
            int(first["n_cells"]),
            int(first["n_malignant"]),
            int(last["n_cells"]),
            int(last["n_malignant"]),
        )
        lo1, hi1 = (float(v[0]) for v in clopper_pearson([k1], [n1], confidence=confidence))
        lo2, hi2 = (float(v[0]) for v in clopper_pearson([k2], [n2], confidence=confidence))
        f1 = k1 / n1 if n1 else np.nan
        f2 = k2 / n2 if n2 else np.nan
        t1, t2 = first["timepoint"], last["timepoint"]
        lvl = f"{100 * confidence:g}%"
        cmp = fl.loc[(patient, clone)] if (patient, clone) in fl.index else None
        p = float(cmp["p"]) if cmp is not None else np.nan
        q = float(cmp["p_adj"]) if cmp is not None else np.nan
        lor = [
            float(cmp[c]) if cmp is not None else np.nan
            for c in ("log2_or", "log2_or_ci_low", "log2_or_ci_high")
        ]
        later_present = bool((g["n_cells"].iloc[1:] > 0).any())
        sig = np.isfinite(q) and q < alpha

        if len(g) < 2:
            cls, ev = "undetermined", f"only one timepoint ({t1}); no dynamics can be measured."
        elif n1 == 0 or n2 == 0:
            empty = t1 if n1 == 0 else t2
            cls, ev = "undetermined", f"no clone-labelled malignant cells at {empty}."
        elif k1 == 0 and later_present:
            cls = "emergent"
            limit = float(detection_limit([n1], probability=confidence)[0])
            ev = (
                f"not detected at {t1} among {n1} malignant cells (frequency < {percent(hi1)} at "
                f"{lvl} confidence; detection limit {percent(limit)}); {k2}/{n2} ({percent(f2)}) "
                f"at {t2}."
            )
        elif k2 == 0:
            if hi2 < absent_upper:
                cls = "eliminated"
                limit = float(detection_limit([n2], probability=confidence)[0])
                ev = (
                    f"{k1}/{n1} ({percent(f1)}) at {t1}; none of {n2} malignant cells at {t2} "
                    f"(frequency < {percent(hi2)} at {lvl} confidence; detection limit "
                    f"{percent(limit)})."
                )
            else:
                cls = "undetermined"
                ev = (
                    f"{k1}/{n1} ({percent(f1)}) at {t1}; none of {n2} malignant cells at {t2}, "
                    f"too few to exclude a frequency up to {percent(hi2)}."
                )
        else:
            fold = f2 / f1
            change = (
                f"{k1}/{n1} ({percent(f1)}) at {t1} to {k2}/{n2} ({percent(f2)}) at {t2}, "
                f"{fold:.2f}-fold, Fisher p = {p:.2g}, BH-adjusted {q:.2g}"
            )
            if sig and fold >= min_fold:
                cls, ev = "expanding", change + "."
            elif sig and fold <= 1 / min_fold:
                cls, ev = "contracting", change + "."
            else:
                cls = "persistent"
                why = "not significant" if not sig else f"change below {min_fold:g}-fold"
                ev = f"{change}: {why}."
        rows.append(
            {
                "patient_id": patient,
                "clone": clone,
                "class": cls,
                "resistant": cls in resistant_classes,
                "sensitive": cls in sensitive_classes,
                "detected_at_first": k1 > 0,
                "first_timepoint": t1,
                "first_n_cells": k1,
                "first_n_malignant": n1,
                "first_frequency": f1,
                "first_ci_low": lo1,
                "first_ci_high": hi1,
                "last_timepoint": t2,
                "last_n_cells": k2,
                "last_n_malignant": n2,
                "last_frequency": f2,
                "last_ci_low": lo2,
                "last_ci_high": hi2,
                "p": p,
                "p_adj": q,
                "log2_or": lor[0],
                "log2_or_ci_low": lor[1],
                "log2_or_ci_high": lor[2],
                "evidence": f"{clone} ({patient}): {ev}",
            }
        )
    # Explicit columns: a cohort without clones still gets a table downstream steps can read.
    return pd.DataFrame(rows, columns=CLASS_COLUMNS)


def cohort_model(
    freqs: pd.DataFrame,
    classes: pd.DataFrame,
    *,
    surviving_classes: tuple[str, ...] = SURVIVING_CLASSES,
    confidence: float = 0.95,
) -> tuple[dict, pd.DataFrame]:
    """Cohort summary of treatment-surviving clones across patients.

    Two figures:

    1. A quasi-binomial GLM (logit link) of the cells of the patient's surviving clones
       (``surviving_classes``) out of the compartment, per patient x timepoint, with patient as
       a fixed effect and ``timepoint_order`` as a linear term. The timepoint coefficient is the
       change in log odds of the surviving clones' share per step of the patient's order. The
       dispersion is estimated from the Pearson chi-square (cells of one sample are not
       independent draws), floored at 1, and intervals and p use a t distribution on the
       residual degrees of freedom; with none left it falls back to 1 (normal) and says so.
       The classes are themselves defined from the same counts, so the coefficient describes
       the size of the shift, not an independent test of it.
    2. The fraction of patients (with at least one surviving clone) in whom every such clone was
       detected at the first timepoint, with a Clopper-Pearson interval.

    Parameters
    ----------
    freqs
        Output of :func:`clone_frequencies`.
    classes
        Output of :func:`classify_clones`.
    surviving_classes
        Classes counted as surviving treatment (:data:`clonetrack.vocabulary.SURVIVING_CLASSES`).
        ``emergent`` is included by default: a clone found only after treatment survived it, and
        whether it was there before is the question.
    confidence
        Level of the intervals.

    Returns
    -------
    summary
        ``coef_log_odds_per_step``, ``ci_low``, ``ci_high``, ``p``, ``dispersion``,
        ``n_patients``, ``n_observations``, ``note``; ``n_patients_with_surviving``,
        ``n_patients_all_detected_at_first``, ``fraction_detected_at_first`` with ``_ci_low``
        and ``_ci_high``.
    per_patient
        Per patient x timepoint: ``surviving_cells``, ``n_malignant``, ``surviving_fraction``,
        plus per patient ``n_surviving_clones`` and ``n_detected_at_first``.
    """
    # the submodules, not statsmodels.api, which imports every model (seconds)
    from statsmodels.genmod import families
    from statsmodels.genmod.generalized_linear_model import GLM
    from statsmodels.tools.sm_exceptions import ConvergenceWarning, PerfectSeparationWarning

    res_cl = classes[classes["class"].isin(surviving_classes)][["patient_id", "clone"]]
    marked = freqs.merge(res_cl.assign(_res=True), on=["patient_id", "clone"], how="left")
    marked["_res"] = marked["_res"].eq(True)
    tp = _timepoints(freqs)
    res_cells = marked[marked["_res"]].groupby(["patient_id", "timepoint_order"])["n_cells"].sum()
    tp["surviving_cells"] = (
        res_cells.reindex(pd.MultiIndex.from_frame(tp[["patient_id", "timepoint_order"]]))
        .fillna(0)
        .astype(int)
        .to_numpy()
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        tp["surviving_fraction"] = tp["surviving_cells"] / tp["n_malignant"]
    per_clone = classes[classes["class"].isin(surviving_classes)].groupby("patient_id")
    tp["n_surviving_clones"] = tp["patient_id"].map(per_clone.size()).fillna(0).astype(int)
    tp["n_detected_at_first"] = (
        tp["patient_id"].map(per_clone["detected_at_first"].sum()).fillna(0).astype(int)
    )

    summary = {
        "surviving_classes": list(surviving_classes),
        "coef_log_odds_per_step": np.nan,
        "ci_low": np.nan,
        "ci_high": np.nan,
        "p": np.nan,
        "dispersion": np.nan,
        "n_patients": int(tp["patient_id"].nunique()),
        "n_observations": 0,
        "note": "",
    }
    fit_data = tp[tp["n_malignant"] > 0]
    multi = fit_data.groupby("patient_id")["timepoint_order"].nunique()
    fit_data = fit_data[fit_data["patient_id"].isin(multi.index[multi > 1])]
    summary["n_observations"] = int(len(fit_data))
    if fit_data.empty or fit_data["surviving_cells"].sum() == 0:
        summary["note"] = "no patient with two timepoints and surviving-clone cells; no model."
    else:
        patients = pd.get_dummies(fit_data["patient_id"], drop_first=True, dtype=float)
        design = pd.concat([patients, fit_data["timepoint_order"].astype(float)], axis=1)
        design.insert(0, "const", 1.0)
        endog = np.column_stack(
            [fit_data["surviving_cells"], fit_data["n_malignant"] - fit_data["surviving_cells"]]
        ).astype(float)
        df_resid = len(fit_data) - design.shape[1]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fit = GLM(endog, design, family=families.Binomial()).fit()
        trouble = [
            w
            for w in caught
            if issubclass(w.category, (PerfectSeparationWarning, ConvergenceWarning))
        ]
        # quasi-binomial: Pearson dispersion on the count scale (statsmodels' scale="X2"
        # leaves the number of trials out when endog is (successes, failures))
        n_tot = endog.sum(axis=1)
        mu = np.clip(np.asarray(fit.mu), 1e-12, 1 - 1e-12)
        if df_resid > 0:
            x2 = (((endog[:, 0] - n_tot * mu) ** 2) / (n_tot * mu * (1 - mu))).sum()
            phi = max(float(x2 / df_resid), 1.0)
            tdist = stats.t(df_resid)
        else:
            phi, tdist = 1.0, stats.norm
        coef = float(fit.params["timepoint_order"])
        se = float(np.sqrt(fit.cov_params().loc["timepoint_order", "timepoint_order"] * phi))
        crit = tdist.ppf(0.5 + confidence / 2)
        summary.update(
            coef_log_odds_per_step=coef,
            ci_low=coef - crit * se,
            ci_high=coef + crit * se,
            p=float(2 * tdist.sf(abs(coef / se))),
            dispersion=phi,
        )
        notes = []
        if df_resid <= 0:
            notes.append("no residual degrees of freedom: dispersion fixed at 1 (binomial).")
        if trouble:
            notes.append(
                "fit did not converge cleanly (separation: a share of 0 or 1); "
                "treat the coefficient as unreliable."
            )
        summary["note"] = " ".join(notes)

    pat = tp.drop_duplicates("patient_id")
    with_res = pat[pat["n_surviving_clones"] > 0]
    n_all = int((with_res["n_detected_at_first"] == with_res["n_surviving_clones"]).sum())
    lo, hi = clopper_pearson([n_all], [len(with_res)], confidence=confidence)
    summary.update(
        n_patients_with_surviving=int(len(with_res)),
        n_patients_all_detected_at_first=n_all,
        fraction_detected_at_first=n_all / len(with_res) if len(with_res) else np.nan,
        fraction_detected_at_first_ci_low=float(lo[0]),
        fraction_detected_at_first_ci_high=float(hi[0]),
    )
    return summary, tp
