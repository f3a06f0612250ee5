"""Run the workflow once per dataset, in a temporary copy of the repository, for all tests."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
COPIED = ("Snakefile", "workflow", "config", "resources", "profiles", "envs")


def copy_repo(dest: Path) -> Path:
    for name in COPIED:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, dest / name)
    return dest


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run snakemake from this interpreter's environment in ``workdir``."""
    env = dict(os.environ)
    cache = workdir / ".cache"
    env.update(
        MPLBACKEND="Agg",
        NUMBA_CACHE_DIR=str(cache / "numba"),
        MPLCONFIGDIR=str(cache / "mpl"),
    )
    command = [sys.executable, "-m", "snakemake", "--cores", "2", *args]
    result = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-60:])
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{tail}")
    return result


def run_dataset(tmp_path_factory, name: str, *config: str) -> Path:
    workdir = copy_repo(tmp_path_factory.mktemp(name))
    extra = ["--config", *config] if config else []
    snakemake(workdir, *extra)
    snakemake(workdir, *extra, "--report", "results/report.html")
    return workdir


@pytest.fixture(scope="session")
def toy_run(tmp_path_factory) -> Path:
    """The default configuration on the bundled toy dataset.

    CLONETRACK_TOY_RUN may name a finished run (a folder holding the copied repository and its
    results/) to check it without running again.
    """
    existing = os.environ.get("CLONETRACK_TOY_RUN")
    if existing:
        return Path(existing)
    return run_dataset(tmp_path_factory, "toy")


@pytest.fixture(scope="session")
def vangalen_run(tmp_path_factory) -> Path:
    """Real AML marrow at diagnosis (van Galen 2019 subset); the two healthy donors join every
    patient's copy-number reference."""
    existing = os.environ.get("CLONETRACK_VANGALEN_RUN")
    if existing:
        return Path(existing)
    sheet = REPO / "tests" / "data" / "vangalen2019" / "samples.tsv"
    return run_dataset(
        tmp_path_factory,
        "vangalen",
        f"samples={sheet}",
        "clones={'cnv': {'reference_samples': ['BM1', 'BM2']}}",
    )
