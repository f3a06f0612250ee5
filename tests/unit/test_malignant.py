"""Malignant calls from seeds and expression (label spreading) and copy-number evidence."""

import numpy as np
import pandas as pd
from clonetrack.clones import malignant


def planted(n_normal=300, n_malignant=200, seed=0):
    """Normal cells (lymphoid seeds and unseeded myeloid) and malignant cells in expression space;
    a few malignant cells carry a mutant read."""
    rng = np.random.default_rng(seed)
    normal = rng.normal(0, 1, size=(n_normal, 10))
    normal[: n_normal // 2, 0] += 6  # lymphoid
    leukaemic = rng.normal(0, 1, size=(n_malignant, 10))
    leukaemic[:, 1] += 6
    embedding = np.vstack([normal, leukaemic])
    truth = np.r_[np.zeros(n_normal, bool), np.ones(n_malignant, bool)]
    lymphoid = np.r_[np.arange(n_normal) < n_normal // 2, np.zeros(n_malignant, bool)]
    genotype = np.zeros(len(truth))
    genotype[rng.choice(np.flatnonzero(truth), 15, replace=False)] = np.log(50)
    genotype[rng.choice(np.flatnonzero(~truth & ~lymphoid), 20, replace=False)] = np.log(0.5 / 0.99)
    evidence = pd.DataFrame({"genotype_log_odds": genotype, "cnv_log_odds": 0.0})
    return embedding, truth, lymphoid, evidence


def test_seeds_spread_to_the_cells_that_look_like_them():
    embedding, truth, lymphoid, evidence = planted()
    calls, note = malignant.call_malignant(embedding, normal_seed=lymphoid, evidence=evidence)
    called = calls["malignant"].to_numpy()
    precision = (called & truth).sum() / called.sum()
    recall = (called & truth).sum() / truth.sum()
    assert note == ""
    assert precision > 0.95 and recall > 0.95
    assert (calls.loc[lymphoid, "malignant_seed"] == "normal").all()
    assert (calls["malignant_seed"] == "malignant").sum() == 15


def test_without_a_malignant_seed_nothing_is_guessed():
    embedding, truth, lymphoid, evidence = planted()
    evidence["genotype_log_odds"] = 0.0
    calls, note = malignant.call_malignant(embedding, normal_seed=lymphoid, evidence=evidence)
    assert not calls["malignant"].any()
    assert "no malignant seed" in note


def test_copy_number_log_odds_rise_with_the_score():
    rng = np.random.default_rng(0)
    score = np.r_[rng.normal(0, 1, 200), rng.normal(6, 1, 100)]
    normal = np.r_[np.ones(200, bool), np.zeros(100, bool)]
    types = np.repeat("Prog", 300)
    odds = malignant.cnv_log_odds(score, normal, ~normal, types)
    assert odds[:200].mean() < -3 and odds[200:].mean() > 3
    assert odds[np.argmax(score)] > 0  # far beyond the malignant mean is still malignant
    # no malignant group, or a weak separation: no evidence
    assert not malignant.cnv_log_odds(score, normal, np.zeros(300, bool), types).any()
    weak = np.r_[score[:200], rng.normal(2, 1, 100)]
    assert not malignant.cnv_log_odds(weak, normal, ~normal, types).any()


def test_copy_number_scores_are_judged_against_normal_cells_of_the_same_type():
    """Normal erythroid cells score high from haemoglobin loci alone: against their own normal
    type they are no evidence; a type without normal reference cells gets none either."""
    rng = np.random.default_rng(1)
    types = np.repeat(["T", "lateEry", "Mono", "Prog", "Prog"], [200, 100, 100, 100, 50])
    score = rng.normal(0, 1, 550)
    score[types == "lateEry"] += 6  # expression artefact of every erythroid cell
    leukaemic = np.r_[np.zeros(400, bool), np.ones(100, bool), np.zeros(50, bool)]
    score[leukaemic] += 8  # leukaemic progenitors with a copy-number change
    # healthy-donor progenitors and erythroid cells, and the patient's T cells
    normal = (
        (types == "T") | ((types == "lateEry") & (np.arange(550) < 250)) | (np.arange(550) >= 500)
    )
    odds = malignant.cnv_log_odds(score, normal, leukaemic, types)
    assert (odds[leukaemic] > 3).mean() > 0.9
    assert (odds[(types == "lateEry") & ~normal] < 3).all()
    assert not odds[types == "Mono"].any()  # no normal monocytes to judge them against
