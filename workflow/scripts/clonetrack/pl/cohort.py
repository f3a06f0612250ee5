"""Figures of the answer page: one panel per patient, biomarkers by response, correlations."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

CLASS_COLOURS = {"resistant": "#c0392b", "sensitive": "#2e86c1", "other": "#999999"}


def _grid(n: int, ncols: int = 4, size: tuple[float, float] = (3.4, 2.8)):
    ncols = max(1, min(ncols, n))
    nrows = max(1, math.ceil(n / ncols))
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows), squeeze=False
    )
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes.flat


def _status(row) -> str:
    if str(row.get("resistant")).lower() == "true":
        return "resistant"
    if str(row.get("sensitive")).lower() == "true":
        return "sensitive"
    return "other"


def patient_panels(freqs: pd.DataFrame, classes: pd.DataFrame, summary: pd.DataFrame) -> Figure:
    """Per patient: malignant fraction over time (95% interval), each clone's share of the
    malignant cells coloured by class, and what was seen of the resistant clones at the first
    timepoint (``summary["answer"]``)."""
    patients = list(summary["patient_id"])
    fig, axes = _grid(len(patients))
    for ax, patient in zip(axes, patients, strict=False):
        f = freqs[freqs["patient_id"] == patient]
        per_sample = f.drop_duplicates("sample_id").sort_values("timepoint_order")
        x = np.arange(len(per_sample))
        y = per_sample["malignant_fraction"].to_numpy(float)
        err = np.vstack(
            [
                y - per_sample["malignant_fraction_ci_low"],
                per_sample["malignant_fraction_ci_high"] - y,
            ]
        )
        ax.errorbar(
            x,
            y,
            yerr=np.clip(err, 0, None),
            color="black",
            marker="o",
            lw=2,
            capsize=3,
            label="malignant fraction",
        )
        status = classes[classes["patient_id"] == patient].set_index("clone").apply(_status, axis=1)
        for clone, g in f.groupby("clone", sort=True):
            g = g.sort_values("timepoint_order")
            colour = CLASS_COLOURS[status.get(clone, "other")]
            ax.plot(
                np.searchsorted(per_sample["timepoint_order"], g["timepoint_order"]),
                g["frequency"],
                color=colour,
                marker=".",
                lw=1,
                alpha=0.9,
            )
        row = summary.set_index("patient_id").loc[patient]
        ax.set_xticks(x, per_sample["timepoint"], rotation=30, fontsize=7)
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"{patient} ({row['response'] or 'response not given'})", fontsize=9)
        ax.text(
            0.02, 0.97, row["answer"], transform=ax.transAxes, va="top", fontsize=6.5, wrap=True
        )
    handles = [plt.Line2D([], [], color="black", lw=2, label="malignant fraction (95% CI)")]
    handles += [
        plt.Line2D([], [], color=c, label=f"{k} clone (share of malignant)")
        for k, c in CLASS_COLOURS.items()
    ]
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


def biomarker_panels(
    views: dict[str, pd.DataFrame],
    responses: pd.Series,
    tests: pd.DataFrame,
    levels: list[str],
    *,
    n_per_contrast: int = 3,
) -> Figure:
    """The strongest features of each contrast, patients as points by response group, with the
    difference's interval, q and leave-one-patient-out AUROC in the title. ``views``: per
    timepoint of ``tests``, the features with one row per patient."""
    tested = tests[tests["status"] == "tested"].sort_values("p")
    top = tested.groupby("contrast", sort=False).head(n_per_contrast)
    fig, axes = _grid(max(1, len(top)), ncols=3, size=(3.8, 3.0))
    if top.empty:
        axes[0].text(
            0.5, 0.5, "no cohort test could be run\n(see the notes table)", ha="center", va="center"
        )
        axes[0].set_axis_off()
        return fig
    for ax, (_, test) in zip(axes, top.iterrows(), strict=False):
        column = views[test["timepoint"]][test["feature"]]
        for i, level in enumerate(levels):
            v = column[responses.reindex(column.index) == level].dropna()
            ax.scatter(np.full(len(v), i) + np.linspace(-0.15, 0.15, len(v)), v, s=18)
            if len(v):
                ax.hlines(v.median(), i - 0.25, i + 0.25, color="black")
        ax.set_xticks(range(len(levels)), levels, rotation=20, fontsize=7)
        auroc = test.get("loo_auroc", np.nan)
        ax.set_title(
            f"{test['feature']} ({test['timepoint']})\n{test['contrast']}: diff "
            f"{test['difference']:.2g} "
            f"[{test['difference_ci_low']:.2g}, {test['difference_ci_high']:.2g}], "
            f"q={test['q']:.2g}" + (f", LOO AUROC {auroc:.2f}" if np.isfinite(auroc) else ""),
            fontsize=7,
        )
    fig.tight_layout()
    return fig


def correlation_panels(
    measures: pd.DataFrame, features: pd.DataFrame, table: pd.DataFrame, *, n: int = 4
) -> Figure:
    """The strongest measure-feature correlations as scatter plots (one point per patient)."""
    top = table.dropna(subset=["p"]).sort_values("p").head(n)
    fig, axes = _grid(max(1, len(top)), ncols=4, size=(3.2, 3.0))
    if top.empty:
        axes[0].text(
            0.5, 0.5, "no measurement table, or too few patients", ha="center", va="center"
        )
        axes[0].set_axis_off()
        return fig
    for ax, (_, row) in zip(axes, top.iterrows(), strict=False):
        pair = pd.concat([features[row["feature"]], measures[row["measure"]]], axis=1).dropna()
        ax.scatter(pair.iloc[:, 0], pair.iloc[:, 1], s=18)
        ax.set_xlabel(row["feature"], fontsize=7)
        ax.set_ylabel(row["measure"], fontsize=7)
        ax.set_title(
            f"rho {row['rho']:.2f} [{row['rho_ci_low']:.2f}, {row['rho_ci_high']:.2f}], "
            f"q={row['q']:.2g}",
            fontsize=7,
        )
    fig.tight_layout()
    return fig
