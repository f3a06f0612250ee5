"""Figures of clone dynamics; each function returns a matplotlib Figure and never saves it."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from clonetrack.pl._message import message, message_figure

CLASS_COLOURS = {
    "expanding": "#d7301f",
    "persistent": "#fc8d59",
    "emergent": "#7a0177",
    "contracting": "#4575b4",
    "eliminated": "#91bfdb",
    "undetermined": "#969696",
}


def _clone_colours(clones, classes: pd.DataFrame | None, patient_id: str) -> dict:
    if classes is None:
        cmap = plt.get_cmap("tab20")
        return {c: cmap(i % 20) for i, c in enumerate(clones)}
    cls = classes[classes["patient_id"] == patient_id].set_index("clone")["class"]
    out = {}
    for name, group in pd.Series(clones).groupby(pd.Series(clones).map(cls).fillna("undetermined")):
        base = np.array(plt.matplotlib.colors.to_rgb(CLASS_COLOURS.get(name, "#969696")))
        # shades of the class colour keep neighbouring clones of one class apart
        for i, clone in enumerate(group):
            out[clone] = tuple(base + (1 - base) * (0.45 * i / max(len(group), 1)))
    return out


def plot_clone_dynamics(
    freqs: pd.DataFrame, patient_id: str, *, classes: pd.DataFrame | None = None
) -> Figure:
    """Stacked clone frequencies over a patient's timepoints, and the malignant fraction.

    Parameters
    ----------
    freqs
        Output of :func:`clonetrack.clones.dynamics.clone_frequencies`.
    patient_id
        Patient to draw.
    classes
        Output of :func:`clonetrack.clones.dynamics.classify_clones`; colours clones by class.

    Returns
    -------
    Figure with two axes: stacked areas of clone frequency (the compartment sums to 1 at each
    timepoint) over timepoint order, and the malignant fraction of all cells with its interval.
    A patient without rows in ``freqs`` (no clone in any sample) gets one panel saying so.
    """
    f = freqs[freqs["patient_id"] == patient_id]
    if f.empty:
        return message_figure(
            f"{patient_id}: no clones were defined (see the clone sources table)."
        )
    fig, (ax, ax2) = plt.subplots(
        2, 1, figsize=(6, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    _stacked_frequencies(ax, f, patient_id, classes)
    _malignant_fraction(ax2, f.drop_duplicates("timepoint_order").sort_values("timepoint_order"))
    fig.tight_layout()
    return fig


def _stacked_frequencies(
    ax, f: pd.DataFrame, patient_id: str, classes: pd.DataFrame | None
) -> None:
    """Each clone's share of the compartment over timepoint order, largest at the bottom."""
    ax.set_title(f"{patient_id}: clone dynamics")
    # timepoints without compartment cells have no frequency and drop out here
    wide = f.pivot_table(
        index="timepoint_order", columns="clone", values="frequency", aggfunc="first"
    ).fillna(0.0)
    if wide.empty:
        message(ax, "no malignant cell with a clone at any timepoint")
        return
    wide = wide[wide.mean().sort_values(ascending=False).index]
    colours = _clone_colours(list(wide.columns), classes, patient_id)
    ax.stackplot(
        wide.index.to_numpy(dtype=float),
        wide.T.to_numpy(),
        labels=list(wide.columns),
        colors=[colours[c] for c in wide.columns],
        edgecolor="white",
        linewidth=0.5,
    )
    ax.set_ylim(0, 1)
    ax.set_ylabel("clone frequency\n(malignant cells with a clone)")
    if classes is not None:
        present = classes[classes["patient_id"] == patient_id]["class"].unique()
        handles = [Line2D([], [], color=CLASS_COLOURS.get(c, "#969696"), lw=6) for c in present]
        ax.legend(handles, list(present), loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    elif wide.shape[1] <= 15:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)


def _malignant_fraction(ax, tp: pd.DataFrame) -> None:
    """The malignant fraction of all cells at each timepoint (``tp``: one row each), with its
    interval; tick labels give the compartment cells with a clone."""
    mf = tp["malignant_fraction"].to_numpy()
    err = np.vstack(
        [
            mf - tp["malignant_fraction_ci_low"].to_numpy(),
            tp["malignant_fraction_ci_high"].to_numpy() - mf,
        ]
    )
    ax.errorbar(tp["timepoint_order"], mf, yerr=err, marker="o", color="black", capsize=3)
    ax.set_ylim(0, 1)
    ax.set_ylabel("malignant\nfraction")
    ax.set_xticks(tp["timepoint_order"].to_numpy(dtype=float))
    ax.set_xticklabels(
        [f"{t}\n(n={n})" for t, n in zip(tp["timepoint"], tp["n_malignant"], strict=True)]
    )


def plot_cohort_overview(freqs: pd.DataFrame, classes: pd.DataFrame) -> Figure:
    """Dot heatmap: one row per patient x clone, one column per timepoint label.

    Dot area is proportional to the clone's frequency, colour is its class; an open circle marks
    a timepoint where the clone was not detected. A cohort without clones gets one panel
    saying so.
    """
    rows = classes.sort_values(["patient_id", "class", "clone"])[["patient_id", "clone", "class"]]
    if rows.empty:
        return message_figure("No clone in any sample (see the clone sources table).")
    order = freqs.groupby("timepoint")["timepoint_order"].median().sort_values().index.tolist()
    cls = rows.set_index(["patient_id", "clone"])["class"]
    key = pd.MultiIndex.from_frame(freqs[["patient_id", "clone"]])
    classed = key.isin(cls.index)
    f, key = freqs.loc[classed], key[classed]
    y = cls.index.get_indexer(key)
    x = f["timepoint"].map({t: i for i, t in enumerate(order)}).to_numpy()
    colour = np.array([CLASS_COLOURS.get(c, "#969696") for c in cls.loc[key]], dtype=object)
    freq = f["frequency"].fillna(0).to_numpy()

    fig, ax = plt.subplots(figsize=(1.2 * len(order) + 3, 0.25 * len(rows) + 1.5))
    seen = freq > 0
    ax.scatter(x[seen], y[seen], s=20 + 400 * freq[seen], c=colour[seen])
    ax.scatter(x[~seen], y[~seen], s=12, facecolors="none", edgecolors="#bdbdbd")
    ax.set_xticks(range(len(order)))
    ax.set_xticklabels(order, rotation=30, ha="right")
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([f"{p} {c}" for p, c in cls.index], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(-0.5, len(order) - 0.5)
    present = list(dict.fromkeys(rows["class"]))
    handles = [
        Line2D([], [], marker="o", ls="", color=CLASS_COLOURS.get(c, "#969696")) for c in present
    ]
    ax.legend(handles, present, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    ax.set_title("clone frequency by timepoint (dot area) and class (colour)")
    fig.tight_layout()
    return fig


def plot_signature_scores(scores: pd.DataFrame, *, signatures: list[str]) -> Figure:
    """One panel per signature: each clone's score by status, lines joining a patient's clones."""
    names = [s for s in signatures if s in scores]
    fig, axes = plt.subplots(
        1, max(1, len(names)), figsize=(3.2 * max(1, len(names)), 3.6), squeeze=False
    )
    if scores.empty or not names:
        message(axes[0, 0], "No clone classed resistant or sensitive.")
        return fig
    positions = {"sensitive": 0, "resistant": 1}
    colours = {"sensitive": CLASS_COLOURS["contracting"], "resistant": CLASS_COLOURS["expanding"]}
    for ax, name in zip(axes[0], names, strict=False):
        for _patient, group in scores.groupby("patient_id"):
            means = group.groupby("status")[name].mean()
            if {"sensitive", "resistant"} <= set(means.dropna().index):
                ax.plot([0, 1], [means["sensitive"], means["resistant"]], color="#bbbbbb", lw=0.8)
            for _, row in group.iterrows():
                ax.scatter(
                    positions[row["status"]],
                    row[name],
                    color=colours[row["status"]],
                    s=12 + 40 * np.sqrt(row["n_cells"] / scores["n_cells"].max()),
                )
        ax.set_xticks([0, 1], ["sensitive", "resistant"])
        ax.set_xlim(-0.5, 1.5)
        ax.set_title(name)
    axes[0, 0].set_ylabel("score (pseudobulk log2 CPM)")
    fig.tight_layout()
    return fig
