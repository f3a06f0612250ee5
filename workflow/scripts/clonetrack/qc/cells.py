"""Per-sample quality control: metrics, adaptive thresholds, doublets and a ledger of every cell."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scanpy as sc
from anndata import AnnData
from scipy.stats import median_abs_deviation

from clonetrack.errors import InputError
from clonetrack.qc import doublets

log = logging.getLogger(__name__)

# Order matters: a cell failing several checks is counted once, under the first reason that applies,
# so that the ledger balances (cells in = sum of removals + cells kept).
REMOVAL_REASONS = (
    "low_counts",
    "high_counts",
    "low_genes",
    "high_genes",
    "high_mito",
    "doublet",
)


#: QC settings naming genes, which an organism preset fills (clonetrack.organism).
GENE_PATTERN_SETTINGS = ("mito_prefix", "ribo_prefixes", "hb_pattern")


@dataclass(frozen=True)
class QCParams:
    """Thresholds of the QC step; field names match the `qc:` section of the config."""

    mito_prefix: str = "MT-"
    ribo_prefixes: tuple[str, ...] = ("RPS", "RPL")
    hb_pattern: str = r"^HB(?!EGF|S1L|P1)[ABDEGMQZ]\d?$"
    nmads_counts: float = 5.0
    nmads_genes: float = 5.0
    nmads_mito: float = 4.0
    min_counts: float | None = 200
    min_genes: float | None = 100
    max_pct_mito: float | None = 25.0
    min_mito_ceiling: float = 5.0
    doublet_threshold: float | None = None
    expected_doublet_rate: float = 0.06
    doublet_callers: tuple[str, ...] = ("scrublet",)
    doublet_rule: str = "combined"

    @classmethod
    def from_config(cls, qc_config: dict, *, sample_id: str | None = None) -> QCParams:
        """Build parameters from the config's `qc:` section, applying per-sample overrides."""
        values = {k: v for k, v in qc_config.items() if k != "overrides"}
        if sample_id is not None:
            values.update((qc_config.get("overrides") or {}).get(sample_id, {}))
        # null gene patterns are the organism's (clonetrack.organism fills them in the workflow)
        values = {k: v for k, v in values.items() if not (k in GENE_PATTERN_SETTINGS and v is None)}
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise InputError(
                f"Unknown QC setting(s) {sorted(unknown)} in config 'qc' (sample {sample_id}); "
                f"allowed: {sorted(cls.__dataclass_fields__)}."
            )
        for name in ("ribo_prefixes", "doublet_callers"):
            if name in values:
                values[name] = tuple(values[name])
        return cls(**values)


def add_qc_metrics(adata: AnnData, *, params: QCParams = QCParams()) -> list[str]:
    """Add per-cell QC metrics to ``adata.obs`` (scanpy's ``calculate_qc_metrics``).

    Adds ``total_counts``, ``n_genes_by_counts``, ``log1p_*`` and ``pct_counts_{mt,ribo,hb}``.

    Returns
    -------
    One note per gene pattern that matches no gene (its fraction is 0 in every cell and filters
    nothing), for the log and the QC ledger.
    """
    notes = []
    names = adata.var_names.astype(str)
    adata.var["mt"] = names.str.startswith(params.mito_prefix)
    adata.var["ribo"] = names.str.startswith(tuple(params.ribo_prefixes))
    hb = re.compile(params.hb_pattern)
    adata.var["hb"] = [bool(hb.match(g)) for g in names]
    for flag, setting in (
        ("mt", "qc.mito_prefix"),
        ("ribo", "qc.ribo_prefixes"),
        ("hb", "qc.hb_pattern"),
    ):
        if not adata.var[flag].any():
            # Every cell would show 0% without a word: Ensembl identifiers, another species.
            notes.append(f"no gene matches {setting}: pct_counts_{flag} is 0 in every cell")
            log.warning(
                "no gene matches %s (e.g. genes %s): pct_counts_%s is 0 for every cell and filters "
                "nothing; set %s for these gene names (mouse: 'mt-', 'Rps'/'Rpl')",
                setting,
                ", ".join(names[:3]),
                flag,
                setting,
            )
    sc.pp.calculate_qc_metrics(
        adata, qc_vars=["mt", "ribo", "hb"], percent_top=None, log1p=True, inplace=True
    )
    return notes


def adaptive_thresholds(obs: pd.DataFrame, *, params: QCParams = QCParams()) -> dict[str, float]:
    """Thresholds from median absolute deviations, on the log scale for counts and genes.

    Hard limits from ``params`` are applied on top: the stricter of the two wins. The adaptive
    mitochondrial ceiling never falls below ``min_mito_ceiling`` (percent).
    """
    thresholds: dict[str, float] = {}
    for metric, nmads, floor in (
        ("total_counts", params.nmads_counts, params.min_counts),
        ("n_genes_by_counts", params.nmads_genes, params.min_genes),
    ):
        logged = np.log1p(obs[metric].to_numpy(dtype=float))
        centre, spread = np.median(logged), median_abs_deviation(logged)
        low = float(np.expm1(centre - nmads * spread))
        high = float(np.expm1(centre + nmads * spread))
        if floor is not None:
            low = max(low, float(floor))
        thresholds[f"min_{metric}"] = low
        thresholds[f"max_{metric}"] = high
    mito = obs["pct_counts_mt"].to_numpy(dtype=float)
    high_mito = float(np.median(mito) + params.nmads_mito * median_abs_deviation(mito))
    # Where most cells have (almost) no mitochondrial reads (nuclei, some 3' libraries), median
    # and MAD are ~0 and the adaptive ceiling would remove every cell with a single mito read.
    high_mito = max(high_mito, float(params.min_mito_ceiling))
    if params.max_pct_mito is not None:
        high_mito = min(high_mito, float(params.max_pct_mito))
    thresholds["max_pct_counts_mt"] = high_mito
    return thresholds


def doublet_columns(callers: tuple[str, ...]) -> list[str]:
    """Per-cell doublet columns of ``obs`` and cells.tsv: each caller's score and own call, the
    number of callers calling the cell, and the score the call was made on."""
    per_caller = [c for name in callers for c in (f"doublet_score_{name}", f"doublet_{name}")]
    return [*per_caller, "doublet_votes", "doublet_score"]


def _call_doublets(
    adata: AnnData, passing: np.ndarray, *, params: QCParams, random_state: int
) -> float:
    """Call doublets among the ``passing`` cells into ``adata.obs`` (NaN scores, no call for the
    others); returns the threshold on ``doublet_score``."""
    columns = doublet_columns(params.doublet_callers)
    for column in columns:
        adata.obs[column] = 0 if column == "doublet_votes" else np.nan
    for name in params.doublet_callers:
        adata.obs[f"doublet_{name}"] = False
    if not passing.any():
        return float("nan")
    called = doublets.call_doublets(
        adata[passing].copy(),
        callers=params.doublet_callers,
        rule=params.doublet_rule,
        expected_rate=params.expected_doublet_rate,
        scrublet_threshold=params.doublet_threshold,
        random_state=random_state,
    )
    for column in [*columns, "predicted_doublet"]:
        adata.obs.loc[called.index, column] = called[column].to_numpy()
    return called.attrs["doublets"]["threshold"]


def assign_removal_reason(obs: pd.DataFrame, thresholds: dict[str, float]) -> pd.Series:
    """One reason per cell (first failing check in ``REMOVAL_REASONS`` order), or "kept"."""
    checks = {
        "low_counts": obs["total_counts"] < thresholds["min_total_counts"],
        "high_counts": obs["total_counts"] > thresholds["max_total_counts"],
        "low_genes": obs["n_genes_by_counts"] < thresholds["min_n_genes_by_counts"],
        "high_genes": obs["n_genes_by_counts"] > thresholds["max_n_genes_by_counts"],
        "high_mito": obs["pct_counts_mt"] > thresholds["max_pct_counts_mt"],
        "doublet": obs["predicted_doublet"].astype(bool),
    }
    reason = pd.Series("kept", index=obs.index, dtype=object)
    for name in reversed(REMOVAL_REASONS):
        reason[checks[name].to_numpy()] = name
    return reason


def run_qc(
    adata: AnnData, *, sample_id: str, params: QCParams = QCParams(), random_state: int = 0
) -> tuple[AnnData, pd.DataFrame, pd.DataFrame]:
    """Run QC on one sample.

    Doublets are called (:func:`clonetrack.qc.doublets.call_doublets`, per the doublet callers)
    on the cells that pass the metric thresholds, since damaged cells distort the callers'
    simulated doublets; removed cells keep NaN scores.

    Returns
    -------
    kept
        The cells passing QC (a copy), with metrics in ``obs``.
    cells
        Every input cell with its metrics, doublet score and ``qc_reason``.
    ledger
        One row: cells in, removed per reason, kept, and the thresholds used.
    """
    if adata.n_obs == 0:
        raise InputError(f"Sample {sample_id}: no cells to run QC on.")
    notes = add_qc_metrics(adata, params=params)
    thresholds = adaptive_thresholds(adata.obs, params=params)
    adata.obs["predicted_doublet"] = False
    metric_reason = assign_removal_reason(adata.obs, thresholds)
    passing = (metric_reason == "kept").to_numpy()
    doublet_threshold = _call_doublets(adata, passing, params=params, random_state=random_state)
    adata.obs["qc_reason"] = pd.Categorical(
        assign_removal_reason(adata.obs, thresholds), categories=["kept", *REMOVAL_REASONS]
    )
    thresholds["doublet_score"] = doublet_threshold
    adata.uns.setdefault("clonetrack", {})["qc"] = {
        # h5ad stores lists, not tuples; None is not storable either, so it becomes "none".
        "params": {
            k: list(v) if isinstance(v, tuple) else ("none" if v is None else v)
            for k, v in params.__dict__.items()
        },
        "thresholds": thresholds,
    }

    counts = adata.obs["qc_reason"].value_counts()
    ledger = {"sample_id": sample_id, "n_cells_in": adata.n_obs}
    ledger.update({f"removed_{r}": int(counts.get(r, 0)) for r in REMOVAL_REASONS})
    ledger["n_cells_kept"] = int(counts.get("kept", 0))
    ledger.update({f"threshold_{k}": v for k, v in thresholds.items()})
    ledger["note"] = "; ".join(notes)
    ledger_df = pd.DataFrame([ledger])
    if ledger["n_cells_kept"] == 0:
        removed = ", ".join(f"{r}: {int(counts.get(r, 0))}" for r in REMOVAL_REASONS)
        raise InputError(
            f"Sample {sample_id}: QC removed all {adata.n_obs} cells ({removed}). "
            "Check the input, or relax the thresholds for this sample under "
            f"qc.overrides.{sample_id} in the config."
        )
    cell_columns = [
        "barcode",
        "total_counts",
        "n_genes_by_counts",
        "pct_counts_mt",
        "pct_counts_ribo",
        "pct_counts_hb",
        *doublet_columns(params.doublet_callers),
        "qc_reason",
    ]
    cells = adata.obs[[c for c in cell_columns if c in adata.obs]].copy()
    cells.insert(0, "sample_id", sample_id)
    kept = adata[adata.obs["qc_reason"] == "kept"].copy()
    return kept, cells, ledger_df


#: Ledger columns of a sample with an unfiltered matrix (empty for the others): barcodes in,
#: empty droplets, how cells were called, the barcode-rank curve's knee and inflection, and the
#: ambient RNA removed.
DROPLET_LEDGER_COLUMNS = (
    "n_barcodes", "n_empty_droplets", "cell_calling", "expected_cells", "knee", "inflection",
    "n_above_knee", "n_above_inflection", "ambient", "contamination", "contamination_source",
    "umis_removed_fraction",
)  # fmt: skip


def add_droplet_columns(ledger: pd.DataFrame, summary: dict) -> pd.DataFrame:
    """The ledger with :data:`DROPLET_LEDGER_COLUMNS` from a droplet summary (blank without one),
    so that barcodes in = empty droplets + cells in."""
    out = ledger.copy()
    for column in DROPLET_LEDGER_COLUMNS:
        out[column] = summary.get(column, np.nan)
    if summary:
        out["n_empty_droplets"] = summary["n_barcodes"] - int(out.loc[0, "n_cells_in"])
    return out


def check_ledger(ledger: pd.DataFrame) -> None:
    """Raise if any sample's ledger does not balance (cells in = removed + kept; barcodes in =
    empty droplets + cells in)."""
    removed = ledger[[f"removed_{r}" for r in REMOVAL_REASONS]].sum(axis=1)
    unbalanced = ledger["n_cells_in"] != removed + ledger["n_cells_kept"]
    if "n_barcodes" in ledger:
        raw = ledger["n_barcodes"].notna()
        unbalanced |= raw & (
            ledger["n_barcodes"] != ledger["n_empty_droplets"] + ledger["n_cells_in"]
        )
    bad = ledger.loc[unbalanced, "sample_id"]
    if len(bad):
        raise AssertionError(f"QC ledger does not balance for samples: {list(bad)}")
