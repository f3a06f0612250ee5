"""Clone frequencies across a patient's timepoints and the statistics that classify clones.

The patient is the unit of replication: clone-level tests compare one patient's timepoints, and
only :func:`cohort_model` pools patients. Frequencies are shares of the malignant cells that carry
a clone label in a sample, with exact (Clopper-Pearson) 95% intervals.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import NamedTuple

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

COMPARISON_COLUMNS = (
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
)

SAMPLE_COLUMNS = (
    "patient_id",
    "sample_id",
    "timepoint",
    "timepoint_order",
    "n_sample_cells",
    "n_unassigned",
    "n_malignant_total",
    "n_malignant",
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
    ``attrs["samples"]`` has one row per sample (:data:`SAMPLE_COLUMNS`), clones or not.
    """
    columns = {
        "patient_id": patient_key,
        "sample_id": sample_key,
        "timepoint": time_key,
        "timepoint_order": order_key,
        "clone": clone_key,
    }
    cells = _cell_table(obs, columns)
    sheet = _sample_sheet(cells, order_key)
    compartment = _flag_cells(cells, obs, malignant_key)
    per_sample = _sample_counts(cells)
    out = _patient_clone_grid(cells, sheet)
    _add_clone_counts(out, cells, per_sample, confidence)
    _add_malignant_fraction(out, per_sample, confidence)
    out["compartment"] = compartment
    first = ["patient_id", "sample_id", "timepoint", "timepoint_order", "clone"]
    out = out[first + [c for c in out.columns if c not in first]]
    out = out.sort_values(["patient_id", "timepoint_order", "clone"], ignore_index=True)
    # samples without any clone still count towards the design (and the cell accounting)
    out.attrs["samples"] = (
        sheet.join(per_sample)
        .reset_index()[list(SAMPLE_COLUMNS)]
        .sort_values(["patient_id", "timepoint_order"], ignore_index=True)
    )
    return out


def _cell_table(obs: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    """The design and clone columns of ``obs`` (named by ``columns``) under standard names."""
    missing = [c for c in columns.values() if c not in obs]
    if missing:
        raise InputError(
            f"obs lacks column(s) {missing} needed for clone frequencies; the sample sheet "
            "provides patient and timepoint columns, the clone step provides 'clone'."
        )
    return pd.DataFrame(
        {
            "patient_id": obs[columns["patient_id"]].astype(str).to_numpy(),
            "sample_id": obs[columns["sample_id"]].astype(str).to_numpy(),
            "timepoint": obs[columns["timepoint"]].astype(str).to_numpy(),
            "timepoint_order": pd.to_numeric(
                obs[columns["timepoint_order"]], errors="coerce"
            ).to_numpy(),
            "clone": obs[columns["clone"]].astype(object).to_numpy(),
        }
    )


def _sample_sheet(cells: pd.DataFrame, order_key: str) -> pd.DataFrame:
    """One row per sample (indexed by ``sample_id``) after checking that each sample has one
    patient, timepoint and integer order, and that a patient's orders are distinct."""
    if cells["timepoint_order"].isna().any():
        bad = sorted(set(cells.loc[cells["timepoint_order"].isna(), "sample_id"]))
        raise InputError(f"samples {bad[:5]}: {order_key!r} must be an integer; fix the sheet.")
    design = ["patient_id", "timepoint", "timepoint_order"]
    samples = cells.groupby("sample_id")[design].nunique()
    inconsistent = samples.index[(samples > 1).any(axis=1)]
    if len(inconsistent):
        raise InputError(
            f"samples {list(inconsistent[:5])} have more than one patient, timepoint or order "
            "among their cells; each sample must have one of each in the sheet."
        )
    sheet = cells.drop_duplicates("sample_id").set_index("sample_id")
    clash = sheet.duplicated(["patient_id", "timepoint_order"], keep=False)
    if clash.any():
        raise InputError(
            f"samples {sorted(sheet.index[clash])[:6]} share a patient and timepoint_order; "
            "merge them or give them distinct orders in the sample sheet."
        )
    return sheet


def _flag_cells(cells: pd.DataFrame, obs: pd.DataFrame, malignant_key: str | None) -> str:
    """Add ``assigned`` (has a clone; others get the clone ``unassigned``) and ``inside`` (in
    the compartment) to ``cells``; return the compartment's name."""
    assigned = _is_assigned(cells["clone"]).to_numpy()
    cells["clone"] = np.where(assigned, cells["clone"].astype(str), UNASSIGNED)
    if malignant_key is not None and malignant_key in obs:
        cells["inside"] = _as_bool(obs[malignant_key], malignant_key).to_numpy()
        compartment = "malignant"
    else:
        cells["inside"] = assigned
        compartment = "clone_assigned"
    cells["assigned"] = assigned
    return compartment


def _sample_counts(cells: pd.DataFrame) -> pd.DataFrame:
    """Per sample: all cells, cells without a clone, compartment cells, and compartment cells
    with a clone (``n_malignant``, the frequencies' denominator)."""
    per_sample = cells.groupby("sample_id").agg(
        n_sample_cells=("clone", "size"),
        n_unassigned=("assigned", lambda a: int((~a).sum())),
        n_malignant_total=("inside", "sum"),
    )
    per_sample["n_malignant"] = (
        cells[cells["inside"] & cells["assigned"]].groupby("sample_id").size()
    ).reindex(per_sample.index, fill_value=0)
    return per_sample


def _patient_clone_grid(cells: pd.DataFrame, sheet: pd.DataFrame) -> pd.DataFrame:
    """Every clone of a patient at every one of the patient's samples, in timepoint order."""
    labelled = cells[cells["assigned"]]
    rows = []
    for patient, psheet in sheet.groupby("patient_id", sort=True):
        clones = sorted(set(labelled.loc[labelled["patient_id"] == patient, "clone"]))
        for sid in psheet.sort_values("timepoint_order").index:
            for clone in clones:
                rows.append((patient, sid, clone))
    out = pd.DataFrame(rows, columns=["patient_id", "sample_id", "clone"])
    out["timepoint"] = out["sample_id"].map(sheet["timepoint"])
    out["timepoint_order"] = out["sample_id"].map(sheet["timepoint_order"]).astype(int)
    return out


def _add_clone_counts(
    out: pd.DataFrame, cells: pd.DataFrame, per_sample: pd.DataFrame, confidence: float
) -> None:
    """Each row's clone cells in and outside the compartment, its frequency among the
    compartment's clone-labelled cells with the exact interval, and the detection limit."""
    labelled = cells[cells["assigned"]]
    n_in = labelled[labelled["inside"]].groupby(["sample_id", "clone"]).size()
    n_out = labelled[~labelled["inside"]].groupby(["sample_id", "clone"]).size()
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


def _add_malignant_fraction(out: pd.DataFrame, per_sample: pd.DataFrame, confidence: float) -> None:
    """The sample's cell counts on each row and its malignant fraction with interval."""
    for col in ("n_sample_cells", "n_unassigned", "n_malignant_total"):
        out[col] = out["sample_id"].map(per_sample[col]).astype(int)
    out["malignant_fraction"] = out["n_malignant_total"] / out["n_sample_cells"]
    out["malignant_fraction_ci_low"], out["malignant_fraction_ci_high"] = clopper_pearson(
        out["n_malignant_total"], out["n_sample_cells"], confidence=confidence
    )
    out["malignant_fraction_detection_limit"] = detection_limit(
        out["n_sample_cells"], probability=confidence
    )


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
    counts = freqs.set_index(["patient_id", "timepoint_order", "clone"])["n_cells"]
    rows, skipped = [], []
    for patient, tp in _timepoints(freqs).groupby("patient_id", sort=True):
        tp = tp.reset_index(drop=True)
        if len(tp) < 2:
            skipped.append(_single_timepoint(patient, tp.loc[0, "timepoint"], strict=strict))
            continue
        clones = sorted(freqs.loc[freqs["patient_id"] == patient, "clone"].unique())
        for kind, i, j in _timepoint_pairs(len(tp)):
            rows += _compare_pair(counts, patient, clones, kind, tp.loc[i], tp.loc[j], confidence)
    out = pd.DataFrame(rows, columns=COMPARISON_COLUMNS)
    out.attrs["skipped"] = skipped
    return out


def _single_timepoint(patient: str, timepoint: str, *, strict: bool) -> dict:
    """Why a patient with one timepoint gets no comparison; an error when ``strict``."""
    reason = (
        f"patient {patient!r} has one timepoint ({timepoint}); clone dynamics need at least two."
    )
    if strict:
        raise InputError(reason + " Add a sample or drop the patient from the sheet.")
    return {"patient_id": patient, "reason": reason}


def _timepoint_pairs(n: int) -> list[tuple[str, int, int]]:
    """Positions of the timepoints compared: each consecutive pair, then first against last."""
    pairs = [("consecutive", i, i + 1) for i in range(n - 1)]
    pairs.append(("first_vs_last", 0, n - 1))
    return pairs


def _compare_pair(
    counts: pd.Series,
    patient: str,
    clones: list[str],
    kind: str,
    a: pd.Series,
    b: pd.Series,
    confidence: float,
) -> list[dict]:
    """Each of the patient's clones at timepoint ``a`` against ``b`` (rows of
    :func:`_timepoints`), p adjusted across these clones: one family per comparison."""
    block = []
    for clone in clones:
        ka = int(counts[(patient, a["timepoint_order"], clone)])
        kb = int(counts[(patient, b["timepoint_order"], clone)])
        block.append(
            {
                "patient_id": patient,
                "clone": clone,
                "comparison": kind,
                **_compare_counts(a, ka, b, kb, confidence),
            }
        )
    adjusted = benjamini_hochberg([r["p"] for r in block])
    return [{**r, "p_adj": q} for r, q in zip(block, adjusted, strict=True)]


def _compare_counts(a: pd.Series, ka: int, b: pd.Series, kb: int, confidence: float) -> dict:
    """A clone's ``ka`` cells at timepoint ``a`` against ``kb`` at ``b``: frequencies, fold,
    log2 odds ratio and Fisher's p, NaN where a timepoint has no compartment cells."""
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
    return {
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


def percent(x: float) -> str:
    """A share as a percentage with one decimal; ``NA`` when it is not finite."""
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
    criteria = _Criteria.checked(alpha, min_fold, absent_upper, confidence)
    tests = comparisons[comparisons["comparison"] == "first_vs_last"].set_index(
        ["patient_id", "clone"]
    )
    rows = []
    for (patient, clone), g in freqs.groupby(["patient_id", "clone"], sort=True):
        g = g.sort_values("timepoint_order")
        first, last = (_Count.of(g.iloc[i], confidence) for i in (0, -1))
        test = _first_vs_last_test(tests, patient, clone)
        cls, evidence = _class_with_evidence(g, first, last, test, criteria)
        rows.append(
            {
                "patient_id": patient,
                "clone": clone,
                "class": cls,
                "resistant": cls in resistant_classes,
                "sensitive": cls in sensitive_classes,
                "detected_at_first": first.k > 0,
                **first.columns("first_"),
                **last.columns("last_"),
                **test,
                "evidence": f"{clone} ({patient}): {evidence}",
            }
        )
    # Explicit columns: a cohort without clones still gets a table downstream steps can read.
    return pd.DataFrame(rows, columns=CLASS_COLUMNS)


class _Criteria(NamedTuple):
    """Thresholds of :func:`classify_clones`."""

    alpha: float
    min_fold: float
    absent_upper: float
    confidence: float

    @classmethod
    def checked(cls, alpha, min_fold, absent_upper, confidence) -> _Criteria:
        if min_fold < 1 or not 0 < absent_upper < 1 or not 0 < alpha < 1:
            raise InputError(
                f"classify_clones: need min_fold >= 1, 0 < absent_upper < 1 and 0 < alpha < 1 "
                f"(got {min_fold}, {absent_upper}, {alpha}); fix the clones section of the "
                "config."
            )
        return cls(alpha, min_fold, absent_upper, confidence)


@dataclass(frozen=True)
class _Count:
    """A clone's ``k`` cells among the ``n`` clone-labelled compartment cells at a timepoint,
    with the frequency and its exact interval."""

    timepoint: str
    k: int
    n: int
    frequency: float
    ci_low: float
    ci_high: float

    @classmethod
    def of(cls, row: pd.Series, confidence: float) -> _Count:
        k, n = int(row["n_cells"]), int(row["n_malignant"])
        lo, hi = (float(v[0]) for v in clopper_pearson([k], [n], confidence=confidence))
        return cls(row["timepoint"], k, n, k / n if n else np.nan, lo, hi)

    def columns(self, prefix: str) -> dict:
        values = (self.timepoint, self.k, self.n, self.frequency, self.ci_low, self.ci_high)
        names = ("timepoint", "n_cells", "n_malignant", "frequency", "ci_low", "ci_high")
        return {prefix + name: v for name, v in zip(names, values, strict=True)}

    def share(self) -> str:
        return f"{self.k}/{self.n} ({percent(self.frequency)})"


def _first_vs_last_test(first_vs_last: pd.DataFrame, patient: str, clone: str) -> dict:
    """The clone's first-vs-last ``p``, ``p_adj`` and log2 odds ratio; NaN without one."""
    names = ("p", "p_adj", "log2_or", "log2_or_ci_low", "log2_or_ci_high")
    if (patient, clone) not in first_vs_last.index:
        return dict.fromkeys(names, np.nan)
    row = first_vs_last.loc[(patient, clone)]
    return {name: float(row[name]) for name in names}


def _class_with_evidence(
    g: pd.DataFrame, first: _Count, last: _Count, test: dict, criteria: _Criteria
) -> tuple[str, str]:
    """The class of one clone (its rows ``g`` of the frequency table, in timepoint order) and
    the sentence that justifies it."""
    if len(g) < 2:
        return "undetermined", (
            f"only one timepoint ({first.timepoint}); no dynamics can be measured."
        )
    if first.n == 0 or last.n == 0:
        empty = first.timepoint if first.n == 0 else last.timepoint
        return "undetermined", f"no clone-labelled malignant cells at {empty}."
    if first.k == 0 and (g["n_cells"].iloc[1:] > 0).any():
        bound = _absence_bound(first, criteria.confidence)
        return "emergent", (
            f"not detected at {first.timepoint} among {first.n} malignant cells {bound}; "
            f"{last.share()} at {last.timepoint}."
        )
    if last.k == 0:
        return _absent_at_last(first, last, criteria)
    return _change_class(first, last, test, criteria)


def _absence_bound(count: _Count, confidence: float) -> str:
    """How high a frequency the sample could have missed, for a clone with no cells in it."""
    limit = float(detection_limit([count.n], probability=confidence)[0])
    return (
        f"(frequency < {percent(count.ci_high)} at {100 * confidence:g}% confidence; "
        f"detection limit {percent(limit)})"
    )


def _absent_at_last(first: _Count, last: _Count, criteria: _Criteria) -> tuple[str, str]:
    """``eliminated`` when the last sample was deep enough for absence to mean something."""
    seen = f"{first.share()} at {first.timepoint}; none of {last.n} malignant cells at "
    if last.ci_high < criteria.absent_upper:
        bound = _absence_bound(last, criteria.confidence)
        return "eliminated", f"{seen}{last.timepoint} {bound}."
    return "undetermined", (
        f"{seen}{last.timepoint}, too few to exclude a frequency up to {percent(last.ci_high)}."
    )


def _change_class(first: _Count, last: _Count, test: dict, criteria: _Criteria) -> tuple[str, str]:
    """``expanding`` or ``contracting`` when the change is significant and at least
    ``min_fold``-fold, ``persistent`` otherwise."""
    fold = last.frequency / first.frequency
    alpha, min_fold = criteria.alpha, criteria.min_fold
    q = test["p_adj"]
    significant = np.isfinite(q) and q < alpha
    change = (
        f"{first.share()} at {first.timepoint} to {last.share()} at {last.timepoint}, "
        f"{fold:.2f}-fold, Fisher p = {test['p']:.2g}, BH-adjusted {q:.2g}"
    )
    if significant and fold >= min_fold:
        return "expanding", change + "."
    if significant and fold <= 1 / min_fold:
        return "contracting", change + "."
    why = "not significant" if not significant else f"change below {min_fold:g}-fold"
    return "persistent", f"{change}: {why}."


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
    tp = _surviving_per_timepoint(freqs, classes, surviving_classes)
    summary = {
        "surviving_classes": list(surviving_classes),
        **_surviving_trend(tp, confidence),
        **_detected_at_first(tp, confidence),
    }
    return summary, tp


def _surviving_per_timepoint(
    freqs: pd.DataFrame, classes: pd.DataFrame, surviving_classes: tuple[str, ...]
) -> pd.DataFrame:
    """Per patient x timepoint: the surviving clones' cells and share of the compartment, and
    per patient the number of surviving clones and of those detected at the first timepoint."""
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
    return tp


def _surviving_trend(tp: pd.DataFrame, confidence: float) -> dict:
    """The timepoint coefficient of the quasi-binomial GLM, fitted to the timepoints with
    compartment cells of patients with two or more of them; NaN, with a note, without a fit."""
    fit_data = tp[tp["n_malignant"] > 0]
    multi = fit_data.groupby("patient_id")["timepoint_order"].nunique()
    fit_data = fit_data[fit_data["patient_id"].isin(multi.index[multi > 1])]
    trend = {
        "coef_log_odds_per_step": np.nan,
        "ci_low": np.nan,
        "ci_high": np.nan,
        "p": np.nan,
        "dispersion": np.nan,
        "n_patients": int(tp["patient_id"].nunique()),
        "n_observations": int(len(fit_data)),
        "note": "",
    }
    if fit_data.empty or fit_data["surviving_cells"].sum() == 0:
        trend["note"] = "no patient with two timepoints and surviving-clone cells; no model."
    else:
        trend.update(_quasi_binomial_trend(fit_data, confidence))
    return trend


def _quasi_binomial_trend(fit_data: pd.DataFrame, confidence: float) -> dict:
    """Binomial GLM with patient fixed effects and a linear ``timepoint_order``, its
    timepoint coefficient's interval and p widened by the Pearson dispersion."""
    # the submodules, not statsmodels.api, which imports every model (seconds)
    from statsmodels.genmod import families
    from statsmodels.genmod.generalized_linear_model import GLM
    from statsmodels.tools.sm_exceptions import ConvergenceWarning, PerfectSeparationWarning

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
        w for w in caught if issubclass(w.category, (PerfectSeparationWarning, ConvergenceWarning))
    ]
    phi, tdist = _pearson_dispersion(endog, np.asarray(fit.mu), df_resid)
    coef = float(fit.params["timepoint_order"])
    se = float(np.sqrt(fit.cov_params().loc["timepoint_order", "timepoint_order"] * phi))
    crit = tdist.ppf(0.5 + confidence / 2)
    notes = []
    if df_resid <= 0:
        notes.append("no residual degrees of freedom: dispersion fixed at 1 (binomial).")
    if trouble:
        notes.append(
            "fit did not converge cleanly (separation: a share of 0 or 1); "
            "treat the coefficient as unreliable."
        )
    return {
        "coef_log_odds_per_step": coef,
        "ci_low": coef - crit * se,
        "ci_high": coef + crit * se,
        "p": float(2 * tdist.sf(abs(coef / se))),
        "dispersion": phi,
        "note": " ".join(notes),
    }


def _pearson_dispersion(endog: np.ndarray, mu: np.ndarray, df_resid: int):
    """Quasi-binomial dispersion (Pearson chi-square on the count scale over the residual
    degrees of freedom, floored at 1) and the t distribution for intervals; 1 and the normal
    without residual degrees of freedom."""
    # statsmodels' scale="X2" leaves the number of trials out when endog is (successes,
    # failures), hence by hand
    if df_resid <= 0:
        return 1.0, stats.norm
    n_tot = endog.sum(axis=1)
    mu = np.clip(mu, 1e-12, 1 - 1e-12)
    x2 = (((endog[:, 0] - n_tot * mu) ** 2) / (n_tot * mu * (1 - mu))).sum()
    return max(float(x2 / df_resid), 1.0), stats.t(df_resid)


def _detected_at_first(tp: pd.DataFrame, confidence: float) -> dict:
    """Patients with a surviving clone, and the fraction in whom every one of them was
    detected at the first timepoint, with an exact interval."""
    pat = tp.drop_duplicates("patient_id")
    with_res = pat[pat["n_surviving_clones"] > 0]
    n_all = int((with_res["n_detected_at_first"] == with_res["n_surviving_clones"]).sum())
    lo, hi = clopper_pearson([n_all], [len(with_res)], confidence=confidence)
    return {
        "n_patients_with_surviving": int(len(with_res)),
        "n_patients_all_detected_at_first": n_all,
        "fraction_detected_at_first": n_all / len(with_res) if len(with_res) else np.nan,
        "fraction_detected_at_first_ci_low": float(lo[0]),
        "fraction_detected_at_first_ci_high": float(hi[0]),
    }
