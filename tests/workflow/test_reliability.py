"""A run that is killed and resumed ends with the same results as one that never stopped.

The toy workflow is started in a temporary copy of the repository, stopped twice the way a batch
scheduler or a user does it (SIGTERM to the whole process group once the first QC outputs exist,
then SIGKILL while the clustering job runs), and resumed with ``--rerun-incomplete``. Its tables and
final object are compared by value with the uninterrupted session run ``toy_run``: the same seed
and threads must give the same numbers, and an interruption must neither lose nor corrupt data.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from clonetrack import io
from clonetrack.io import contract
from clonetrack.io.sheet import read_sample_sheet
from clonetrack.qc import REMOVAL_REASONS
from runner import copy_repo, snakemake

pytestmark = pytest.mark.workflow

STARTUP_LIMIT_S = 1800  # a stage that never comes is a failure, not a hang


TABLES = [
    "results/tables/qc_ledger.tsv",
    "results/tables/qc_cells.tsv.gz",
    "results/tables/leiden_resolutions.tsv",
    "results/tables/markers.tsv",
    "results/tables/cluster_annotation.tsv",
    "results/tables/cell_type_composition.tsv",
    "results/tables/integration_metrics.tsv",
    "results/tables/de/timepoint_de.tsv",
    "results/tables/de/timepoint_de_summary.tsv",
    "results/tables/clones/frequencies.tsv",
    "results/tables/clones/comparisons.tsv",
    "results/tables/clones/classes.tsv",
    "results/tables/clones/resistance_de.tsv",
    "results/tables/clones/resistance_de_summary.tsv",
    "results/tables/clones/cohort_model.tsv",
    "results/tables/clones/cohort_per_patient.tsv",
    "results/tables/clones/signature_scores.tsv",
    "results/tables/clones/signature_comparison.tsv",
    *(
        f"results/clones/patient~{p}/{f}"
        for p in ("P1", "P2", "P3")
        for f in ("sources.tsv", "unmatched_rows.tsv", "cells.tsv.gz")
    ),
]
NOT_EMPTY = {
    "results/tables/qc_ledger.tsv",
    "results/tables/markers.tsv",
    "results/tables/de/timepoint_de.tsv",
    "results/tables/clones/classes.tsv",
    "results/tables/clones/comparisons.tsv",
}
OBS_LABELS = [
    "sample_id",
    "patient_id",
    "timepoint",
    "qc_reason",
    "leiden",
    "cell_type",
    "cell_type_cluster",
    "clone",
    "clone_source",
    "malignant",
    "cnv_clone",
]


# ----------------------------------------------------------------------------------------------
# running and stopping


def _start(workdir: Path, log: Path) -> subprocess.Popen:
    """snakemake in its own process group (its jobs inherit it), as the session helper runs it."""
    env = dict(os.environ)
    cache = workdir / ".cache"
    env.update(
        MPLBACKEND="Agg", NUMBA_CACHE_DIR=str(cache / "numba"), MPLCONFIGDIR=str(cache / "mpl")
    )
    with log.open("w") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "snakemake", "--cores", "2"],
            cwd=workdir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _wait_for(condition, proc: subprocess.Popen, what: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_LIMIT_S
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"snakemake ended before {what}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"{what} did not happen within {STARTUP_LIMIT_S} s")
        time.sleep(0.5)


def _finished(log: Path) -> str:
    """The 'Finished jobid: N (Rule: ...)' lines snakemake has printed so far."""
    text = log.read_text() if log.exists() else ""
    return "\n".join(line for line in text.splitlines() if line.startswith("Finished jobid"))


def _stop(proc: subprocess.Popen, sig: int) -> int:
    os.killpg(proc.pid, sig)
    try:
        return proc.wait(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        return proc.wait()


def _snapshot(workdir: Path) -> dict:
    """What an interruption left: output files, temporary files, locks, incomplete markers."""
    results = workdir / "results"
    files = sorted(p for p in results.rglob("*") if p.is_file()) if results.exists() else []
    meta = workdir / ".snakemake"
    snapshot = {
        "files": [str(p.relative_to(workdir)) for p in files if not p.name.startswith(".tmp-")],
        "tmp": [str(p.relative_to(workdir)) for p in files if p.name.startswith(".tmp-")],
        "locks": sorted(p.name for p in (meta / "locks").glob("*")),
        "incomplete": sorted(
            _marker_target(p.relative_to(meta / "incomplete"))
            for p in (meta / "incomplete").rglob("*")
            if p.is_file() and p.name != "migration_underway"
        ),
    }
    # Checked now: a resumed run may delete temporary outputs before the tests look.
    snapshot["unreadable"] = []
    for name in snapshot["files"]:
        if name not in snapshot["incomplete"]:
            try:
                _readable(workdir / name)
            except Exception as error:  # any failure to read counts
                snapshot["unreadable"].append(f"{name}: {error}")
    return snapshot


def _marker_target(marker: Path) -> str:
    """The output a Snakemake incomplete-marker stands for (urlsafe base64 of the path)."""
    encoded = "".join(part.lstrip("@") for part in marker.parts)
    return base64.urlsafe_b64decode(encoded).decode()


def _readable(path: Path) -> None:
    """Open an output the way its consumer does; raises if it is truncated."""
    if path.suffix == ".h5ad":
        ad.read_h5ad(path, backed="r").file.close()
    elif path.name.endswith((".tsv", ".tsv.gz")):
        pd.read_csv(path, sep="\t")
    elif path.suffix == ".png":
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 1000


@pytest.fixture(scope="module")
def resumed_run(tmp_path_factory):
    workdir = copy_repo(tmp_path_factory.mktemp("interrupted"))
    logs = tmp_path_factory.mktemp("interrupted_logs")
    started = time.monotonic()

    # 1. SIGTERM to the group once snakemake has registered the first finished QC job (the
    #    other one is then still running and is stopped halfway)
    proc = _start(workdir, logs / "1.log")
    _wait_for(
        lambda: "(Rule: qc_sample)" in _finished(logs / "1.log"),
        proc,
        "the first finished QC job",
        logs / "1.log",
    )
    _stop(proc, signal.SIGTERM)
    after_term = _snapshot(workdir)

    # 2. resume; SIGKILL to the group (no clean-up possible) while clustering runs
    proc = _start(workdir, logs / "2.log")
    _wait_for(
        lambda: (workdir / "logs/cluster_cells/cluster_cells.log").exists(),
        proc,
        "the clustering job",
        logs / "2.log",
    )
    time.sleep(5)
    _stop(proc, signal.SIGKILL)
    after_kill = _snapshot(workdir)

    # 3. the documented recovery: release the dead run's lock, rerun what was incomplete
    snakemake(workdir, "--unlock")
    resumed = snakemake(workdir, "--rerun-incomplete")
    nothing_left = snakemake(workdir, "--dry-run")
    return {
        "workdir": workdir,
        "after_term": after_term,
        "after_kill": after_kill,
        "resumed": resumed,
        "dry_run": nothing_left,
        "minutes": (time.monotonic() - started) / 60,
    }


# ----------------------------------------------------------------------------------------------
# (a) interruption: nothing lost, nothing corrupt


def test_sigterm_leaves_no_lock_and_only_whole_outputs(resumed_run):
    state = resumed_run["after_term"]
    assert state["locks"] == [], "a gracefully stopped run must release its lock"
    assert state["unreadable"] == []
    assert any(f.endswith("/ledger.tsv") for f in state["files"])
    # every per-sample QC output still there belongs to a sample whose QC finished
    samples = {Path(f).parts[2] for f in state["files"] if f.startswith("results/qc/")}
    for sample in samples:
        got = {Path(f).name for f in state["files"] if Path(f).parts[2:3] == (sample,)}
        assert got == {
            "cells_kept.h5ad",
            "cells.tsv",
            "droplets.tsv.gz",
            "ledger.tsv",
            "qc_metrics.png",
        }, sample


def test_sigkill_outputs_are_whole_or_marked_incomplete(resumed_run):
    state = resumed_run["after_kill"]
    assert state["locks"], "a killed run cannot release its lock (the test then needs --unlock)"
    # the clustering job was running: its outputs are marked incomplete for the next run
    running = {
        "results/cluster/cells.h5ad",
        "results/tables/leiden_resolutions.tsv",
        "results/tables/markers.tsv",
    }
    assert running <= set(state["incomplete"]), state["incomplete"]
    assert not any(f.startswith("results/final/") for f in state["files"])
    # every other output present is whole: it can be read the way its consumer reads it
    assert state["unreadable"] == []


def test_resumed_run_completes_and_leaves_nothing_to_do(resumed_run):
    text = resumed_run["dry_run"].stdout + resumed_run["dry_run"].stderr
    assert "Nothing to be done" in text, text[-2000:]
    workdir = resumed_run["workdir"]
    assert not list((workdir / ".snakemake/incomplete").rglob("*.*"))
    leftovers = sorted(str(p) for p in (workdir / "results").rglob(".tmp-*"))
    assert leftovers == [], f"temporary files of killed writers remain: {leftovers}"
    print(f"interrupted + resumed toy run: {resumed_run['minutes']:.1f} min")


# ----------------------------------------------------------------------------------------------
# (b) same seed and threads, same numbers


def _read_table(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", keep_default_na=True)


def _code_digest(root: Path) -> dict[str, str]:
    """Hash of every file the workflow runs from (the copied repository minus caches)."""
    digest = {}
    for name in ("Snakefile", "workflow", "config", "resources", "envs"):
        paths = [root / name] if (root / name).is_file() else sorted((root / name).rglob("*"))
        for path in paths:
            if path.is_file() and "__pycache__" not in path.parts:
                digest[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digest


@pytest.fixture(scope="module")
def same_code(resumed_run, toy_run):
    """Both runs must come from the same code and data, or a difference means nothing."""
    mine, reference = _code_digest(resumed_run["workdir"]), _code_digest(toy_run)
    changed = sorted(k for k in mine.keys() | reference.keys() if mine.get(k) != reference.get(k))
    if changed:
        pytest.fail(
            f"the reference run ({toy_run}) was made from other code or data: {changed[:10]} "
            "(CLONETRACK_TOY_RUN must name a run of the current tree)"
        )


@pytest.mark.parametrize("table", TABLES)
def test_tables_equal_uninterrupted_run(same_code, resumed_run, toy_run, table):
    if (toy_run / table).stat().st_size <= 1:
        # a table written without even a header (test_report checks that none is): same bytes
        assert (resumed_run["workdir"] / table).read_bytes() == (toy_run / table).read_bytes()
        return
    resumed = _read_table(resumed_run["workdir"] / table)
    reference = _read_table(toy_run / table)
    if table in NOT_EMPTY:
        assert len(reference) > 0, f"{table} is empty"
    pd.testing.assert_frame_equal(resumed, reference, check_exact=False, rtol=1e-9, atol=1e-12)


@pytest.fixture(scope="module")
def resumed_final(resumed_run):
    return ad.read_h5ad(resumed_run["workdir"] / "results/final/adata.h5ad")


@pytest.fixture(scope="module")
def reference_final(toy_run):
    return ad.read_h5ad(toy_run / "results/final/adata.h5ad")


def test_final_object_equals_uninterrupted_run(same_code, resumed_final, reference_final):
    a, b = resumed_final, reference_final
    assert list(a.obs_names) == list(b.obs_names)
    assert list(a.var_names) == list(b.var_names)
    for column in OBS_LABELS:
        same = a.obs[column].astype(str).to_numpy() == b.obs[column].astype(str).to_numpy()
        assert same.all(), f"{column}: {(~same).sum()} cells differ"
    for column in (
        "total_counts",
        "pct_counts_mt",
        "doublet_score",
        "cell_type_score",
        "cnv_score",
    ):
        np.testing.assert_allclose(
            a.obs[column].to_numpy(float), b.obs[column].to_numpy(float), rtol=1e-9, err_msg=column
        )
    for key in ("X_pca", "X_harmony", "X_umap"):
        np.testing.assert_allclose(
            np.abs(a.obsm[key]), np.abs(b.obsm[key]), rtol=1e-6, atol=1e-6, err_msg=key
        )
    assert (a.layers["counts"] != b.layers["counts"]).nnz == 0


# ----------------------------------------------------------------------------------------------
# (c) the final object is consistent with its inputs


@pytest.fixture(scope="module")
def sheet(toy_run):
    return read_sample_sheet(toy_run / "resources/toy/samples.tsv")


@pytest.mark.parametrize("which", ["reference", "resumed"])
def test_final_object_is_consistent(request, which, sheet, toy_run):
    final = request.getfixturevalue(f"{which}_final")
    workdir = toy_run if which == "reference" else request.getfixturevalue("resumed_run")["workdir"]
    ledger = _read_table(workdir / "results/tables/qc_ledger.tsv")
    cells = pd.read_csv(
        workdir / "results/tables/qc_cells.tsv.gz", sep="\t", dtype={"barcode": str}
    )

    # every input cell is in the ledger once; the object holds exactly the kept ones
    removed = ledger[[f"removed_{r}" for r in REMOVAL_REASONS]].sum(axis=1)
    assert (ledger["n_cells_in"] == removed + ledger["n_cells_kept"]).all()
    kept = cells[cells["qc_reason"] == "kept"]
    assert sorted(final.obs_names) == sorted(kept["sample_id"] + "_" + kept["barcode"])
    assert final.n_obs == ledger["n_cells_kept"].sum()
    assert set(final.obs["sample_id"].astype(str)) == set(sheet.index)
    contract.check_final(final, ledger)  # the workflow's own contract, re-checked from outside

    # shapes and required fields
    for column in (*contract.REQUIRED_OBS, "barcode", "batch", "sex", "cell_type_cluster"):
        assert column in final.obs, column
        assert final.obs[column].notna().all() or column in ("doublet_score",), column
    for key in ("X_pca", "X_harmony", "X_umap"):
        assert final.obsm[key].shape[0] == final.n_obs, key
    assert final.obsm["X_umap"].shape[1] == 2
    assert final.layers["counts"].shape == final.shape
    assert final.obs_names.is_unique and final.var_names.is_unique

    # counts: integers, equal to the input file of each sample for every kept cell
    counts = final.layers["counts"]
    assert sp.issparse(counts)
    assert np.array_equal(counts.data, np.round(counts.data)) and counts.data.min() >= 0
    for sample_id, row in sheet.iterrows():
        raw = io.read_counts(row["path"], sample_id=sample_id, fmt=row["format"] or None)
        mine = final.obs_names[final.obs["sample_id"].astype(str) == sample_id]
        assert len(mine) == int(ledger.set_index("sample_id").loc[sample_id, "n_cells_kept"])
        expected = raw[mine, final.var_names].X
        assert (final[mine].layers["counts"] != expected).nnz == 0, sample_id
    # X is the log-normalised counts (target sum from the config)
    target = float(final.uns["clonetrack"]["normalise"]["target_sum"])
    sums = np.asarray(np.expm1(final.X).sum(axis=1)).ravel()
    np.testing.assert_allclose(sums, target, rtol=1e-3)
    with gzip.open(workdir / "results/tables/qc_cells.tsv.gz", "rt") as fh:
        assert sum(1 for _ in fh) - 1 == ledger["n_cells_in"].sum()
