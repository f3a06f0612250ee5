"""Malignant clones: copy-number segments (one truncal per patient, one private per clone),
trajectories and the cell types each clone resembles."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from clonetrack.errors import InputError

from clonetrack_sim.design import (
    AUTOSOMES,
    LSC17,
    RESISTANCE_FIXED,
    RESPONSE_PLANS,
    CohortDesign,
)
from clonetrack_sim.programmes import GeneModel

TRAJECTORIES = ["contracting", "expanding", "stable"]
# Each clone resembles a mix of HSC, Prog and GMP (the first types), or of GMP, ProMono and Mono
# in a monocytic leukaemia; responders keep a minor, patient-specific monocytic share.
_LIKE_PRIMITIVE = [2.0, 3.0, 2.0]
_LIKE_BY_RESPONSE = {True: [0.5, 0.5, 2.0, 5.0, 6.0], False: [2.0, 3.0, 2.0, 0.4, 0.4]}


@dataclass
class ClonePlan:
    """Every patient's clones: ``cnv`` (per-gene multiplier by clone), ``meta`` (patient,
    trajectory, resistant, segment text, cell-type mixture ``like``), ``segments`` (truth rows,
    with gene indices ``start_i``/``end_i``) and ``patients`` ((patient, clone names,
    trajectories) in order)."""

    cnv: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, dict] = field(default_factory=dict)
    segments: list[dict] = field(default_factory=list)
    patients: list[tuple[str, list[str], list[str]]] = field(default_factory=list)

    def segment_genes(self, symbols: np.ndarray) -> set[str]:
        """Genes inside any copy-number segment."""
        return set(symbols[[i for r in self.segments for i in range(r["start_i"], r["end_i"])]])


def _segment_text(seg: dict) -> str:
    return f"{seg['chromosome']}:{seg['start']}-{seg['end']}:{seg['type']}"


def _draw_segment(rng, model: GeneModel, design: CohortDesign, taken: np.ndarray) -> dict:
    """Consecutive genes on one autosome, clear of the malignant and resistance programmes and of
    earlier segments, so that a segment's shift is its only difference between a clone and
    normal cells of the same type."""
    forbidden = np.isin(model.symbols, LSC17 + ["BCL2"] + RESISTANCE_FIXED)
    chrom = model.genes["chromosome"].to_numpy()
    for _ in range(1000):
        c = rng.choice(AUTOSOMES)
        idx = np.flatnonzero(chrom == c)
        if len(idx) < 60:
            continue
        length = int(min(rng.integers(design.cnv_min_genes, design.cnv_max_genes + 1), len(idx)))
        s = idx[0] + int(rng.integers(0, len(idx) - length + 1))
        if not (forbidden[s : s + length].any() or taken[s : s + length].any()):
            taken[s : s + length] = True
            return {"start_i": s, "end_i": s + length}
    raise InputError("could not place copy-number segments; give more genes per chromosome")


def _segment_row(model: GeneModel, patient: str, clone: str, seg: dict) -> dict:
    a, b = seg["start_i"], seg["end_i"]
    return {
        "patient_id": patient,
        "clone": clone,
        "chromosome": model.genes["chromosome"].iloc[a],
        "start": int(model.genes["start"].iloc[a]),
        "end": int(model.genes["end"].iloc[b - 1]),
        "first_gene": model.symbols[a],
        "last_gene": model.symbols[b - 1],
        "n_genes": b - a,
        "type": str(seg["type"]),
        "multiplier": 1.5 if seg["type"] == "gain" else 0.5,
        "truncal": seg["truncal"],
        "start_i": a,
        "end_i": b,
    }


def _add_clone(plan, model, patient, name, trajectory, segments, like) -> None:
    cnv = np.ones(len(model.symbols))
    texts = []
    for seg in segments:
        row = _segment_row(model, patient, name, seg)
        cnv[row["start_i"] : row["end_i"]] *= row["multiplier"]
        plan.segments.append(row)
        texts.append(_segment_text(row))
    plan.cnv[name] = cnv
    plan.meta[name] = {
        "patient_id": patient,
        "trajectory": trajectory,
        "resistant": trajectory == "expanding",
        "cnv_segments": ";".join(texts),
        "like": like,
    }


def plan_clones(model: GeneModel, design: CohortDesign, rng, crng) -> ClonePlan:
    """Clones of every patient: a truncal gain or loss shared by the patient's clones, one private
    event per clone (x1.5 or x0.5), trajectories from the patient's response plan (default:
    contracting, expanding, stable). ``crng`` draws what only response cohorts use, so the
    default toy's draws do not depend on it."""
    plan = ClonePlan()
    responses = design.responses or {}
    for p, k in zip(design.patients, design.n_clones, strict=True):
        taken = np.zeros(len(model.symbols), bool)
        response = RESPONSE_PLANS.get(responses.get(p, ""))
        trajectories = TRAJECTORIES[:k]
        if response:
            trajectories = list(response["trajectories"] * 2)[:k]
        truncal = _draw_segment(rng, model, design, taken)
        truncal.update(type=rng.choice(["gain", "loss"]), truncal=True)
        names = [f"{p}_C{j + 1}" for j in range(k)]
        for name, trajectory in zip(names, trajectories, strict=True):
            private = _draw_segment(rng, model, design, taken)
            private.update(type=rng.choice(["gain", "loss"]), truncal=False)
            like = rng.dirichlet(_LIKE_PRIMITIVE)
            if response:
                like = crng.dirichlet(_LIKE_BY_RESPONSE[response["monocytic"]])
            _add_clone(plan, model, p, name, trajectory, (truncal, private), like)
        plan.patients.append((p, names, trajectories))
    return plan
