"""Run the workflow once per dataset, in a temporary copy of the repository, for all tests."""

import os
from pathlib import Path

import pytest
from runner import REPO, copy_repo, snakemake  # noqa: F401 (helpers shared by the tests)


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


@pytest.fixture(scope="session")
def followup_run(tmp_path_factory) -> Path:
    """Real longitudinal AML marrow (van Galen 2019 follow-ups: remission samples of tens to
    hundreds of cells), genotype tables, a healthy CD34+ donor and a leukaemia cell line, with the
    default configuration."""
    existing = os.environ.get("CLONETRACK_FOLLOWUP_RUN")
    if existing:
        return Path(existing)
    sheet = REPO / "tests" / "data" / "vangalen2019_followup" / "samples.tsv"
    return run_dataset(tmp_path_factory, "followup", f"samples={sheet}")


@pytest.fixture(scope="session")
def cohort_run(tmp_path_factory) -> Path:
    """The toy cohort by response (resources/toy_cohort: 12 patients at diagnosis and follow-up,
    a patient table and a drug-sensitivity table), laid over the default configuration."""
    existing = os.environ.get("CLONETRACK_COHORT_RUN")
    if existing:
        return Path(existing)
    workdir = copy_repo(tmp_path_factory.mktemp("cohort"))
    # the cohort's tables only: the report and per-patient figures are checked on the toy run
    snakemake(workdir, "cohort_answer", "--configfile", "resources/toy_cohort/config.yaml")
    return workdir


@pytest.fixture(scope="session")
def mouse_run(tmp_path_factory) -> Path:
    """The barcoded mouse toy (resources/toy_mouse: two mice at baseline and relapse, mouse gene
    symbols, lentiviral-barcode matrices) with organism: mouse, up to the clone classes."""
    existing = os.environ.get("CLONETRACK_MOUSE_RUN")
    if existing:
        return Path(existing)
    workdir = copy_repo(tmp_path_factory.mktemp("mouse"))
    snakemake(
        workdir,
        "results/tables/clones/classes.tsv",
        "--configfile",
        "resources/toy_mouse/config.yaml",
    )
    return workdir


@pytest.fixture(scope="session")
def droplets_run(tmp_path_factory) -> Path:
    """A real unfiltered Cell Ranger matrix (tests/data/raw_droplets, 83,683 barcodes) given only
    as raw_path: cells called, ambient RNA removed, then through to the final object."""
    existing = os.environ.get("CLONETRACK_DROPLETS_RUN")
    if existing:
        return Path(existing)
    data = REPO / "tests" / "data" / "raw_droplets"
    workdir = copy_repo(tmp_path_factory.mktemp("droplets"))
    snakemake(
        workdir,
        "results/final/adata.h5ad",
        "results/tables/qc_ledger.tsv",
        "--configfile",
        str(data / "config.yaml"),
        "--config",
        f"samples={data / 'samples.tsv'}",
    )
    return workdir
