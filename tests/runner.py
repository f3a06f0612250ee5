"""Helpers to run the workflow in a temporary copy of the repository (imported by the tests)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
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
        # one compiled-code cache for every run of the session (as `make` sets it): numba keys it
        # by the library's source, which all the copies share
        NUMBA_CACHE_DIR=os.environ.get("NUMBA_CACHE_DIR", str(REPO / ".snakemake" / "numba-cache")),
        MPLCONFIGDIR=str(cache / "mpl"),
    )
    command = [sys.executable, "-m", "snakemake", "--cores", "2", *args]
    result = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-60:])
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{tail}")
    return result
