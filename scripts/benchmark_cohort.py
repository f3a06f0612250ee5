"""Time and measure the workflow against a bare scanpy script on synthetic cohorts of given sizes.

For each size (cells in total) this script

1. writes a synthetic cohort with the toy data's simulator (``scripts/clonetrack_sim``, its
   ``multinomial`` count model, which draws each cell's UMIs straight into a sparse matrix):
   ``--genes`` genes (default 20,000, real hg38 symbols and positions, so the copy-number step
   finds them), about 2,000 UMIs and 1,100 detected genes per good cell (6% of entries
   non-zero), the simulator's 13 marrow cell types, two malignant clones per patient with
   copy-number segments (one contracting, one expanding to relapse), 5% low-quality cells, 5%
   doublets, per-sample batch shifts, three timepoints per patient (diagnosis, on_treatment,
   relapse) and about ``--cells-per-sample`` cells per sample; one ``.h5ad`` per sample, written
   as it is made, plus ``samples.tsv``;
2. runs the workflow on it (``snakemake --cores N --workflow-profile profiles/default``) in a
   work folder holding a snapshot of ``Snakefile``, ``workflow/``, ``config/``, ``profiles/`` and
   ``resources/``, in two phases: "shared" builds only ``results/tables/markers.tsv`` and
   ``results/tables/leiden_resolutions.tsv``, i.e. the steps the bare script also does (QC,
   scrublet, merge, HVGs, PCA, harmony, neighbours, UMAP, Leiden, markers); "rest" then runs the
   default target, which leaves Snakemake only the remaining jobs. Each phase runs under
   ``/usr/bin/time -v``; afterwards every rule's ``benchmark:`` file (seconds, max RSS) is read;
3. runs the same analysis as one plain scanpy process (read, QC metrics, scrublet, concatenate,
   normalise, seurat_v3 variable genes, PCA, harmonypy, neighbours, UMAP, Leiden at the
   configured resolutions, Wilcoxon markers, one final write) under ``/usr/bin/time -v``;
4. prints tables of wall time, CPU time and peak memory with the ratios shared phase / bare and
   whole workflow / bare, and writes them to ``<work>/summary.md`` and ``<work>/summary.json``.

Two peak memory figures are given for every run: "largest process" is the peak RSS of the
largest single process (``time -v``); "concurrent" is the largest sum of the RSS of the command
and all its descendants, sampled every 0.5 s, which counts the jobs Snakemake runs side by side
(pages shared between processes are counted once per process, so it errs high).

Usage (from the repository root; sizes are total cells)::

    .venv/bin/python scripts/benchmark_cohort.py --sizes 10000 100000 --work /tmp/ct-bench
    .venv/bin/python scripts/benchmark_cohort.py --sizes 100000 \
        --config "clustering={markers_on_hvg: true}"
    .venv/bin/python scripts/benchmark_cohort.py --sizes 100000 --qc-only   # the QC jobs alone

Each size needs free disk of about 2.5 GB per 100,000 cells. This is a measurement, not a test.
``benchmark_cohort.py --table <work>/summary.json`` prints the tables of a finished run again.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
# The outputs of rule cluster_cells: the last of the steps the bare script does as well.
SHARED_TARGETS = ("results/tables/markers.tsv", "results/tables/leiden_resolutions.tsv")
# --qc-only: every sample's QC job, and the bare script up to its per-sample scrublet.
QC_TARGET = "results/tables/qc_ledger.tsv"


def environment() -> dict[str, str]:
    """Process environment for every run: headless plotting and one shared numba cache."""
    env = dict(os.environ)
    env.setdefault("MPLBACKEND", "Agg")
    env.setdefault("NUMBA_CACHE_DIR", "/tmp/numba-cache")
    env.setdefault("MPLCONFIGDIR", "/tmp/clonetrack-mpl")
    return env


# ----------------------------------------------------------------------------------------------
# synthetic cohort


def cohort_size(n_cells: int, cells_per_sample: int) -> tuple[int, int]:
    """Patients (at least two) and good cells per sample, so that every patient's samples (one
    per timepoint of the simulator, about ``cells_per_sample`` cells each with the low-quality
    cells and doublets on top) make about ``n_cells`` in all."""
    from clonetrack_sim import TIMEPOINTS, CohortDesign

    design = CohortDesign()
    extra = 1 + design.low_quality_fraction + design.doublet_fraction
    n_patients = max(2, round(n_cells / (len(TIMEPOINTS) * cells_per_sample)))
    return n_patients, round(n_cells / (n_patients * len(TIMEPOINTS)) / extra)


def write_cohort(out: Path, n_cells: int, *, n_genes: int, cells_per_sample: int, seed: int):
    """Simulate the cohort and write one ``.h5ad`` per sample, each as soon as it is made, and
    ``samples.tsv`` into ``out``; return the sheet path.

    Every sample is its own batch, as the bare script integrates by sample.
    """
    import pandas as pd
    from clonetrack_sim import (
        select_genes,
        simulate_cohort,
        with_mitochondrial_genes,
        write_counts_h5ad,
    )

    positions = pd.read_csv(REPO / "resources/genes/hg38_gene_positions.tsv.gz", sep="\t")
    positions = with_mitochondrial_genes(positions.rename(columns={"gene": "symbol"}))
    genes = select_genes(positions, n_genes=n_genes, seed=seed)
    n_patients, n_good = cohort_size(n_cells, cells_per_sample)
    out.mkdir(parents=True, exist_ok=True)

    def write(sample_id, adata) -> None:
        write_counts_h5ad(adata, out / f"{sample_id}.h5ad", compression=None)

    cohort = simulate_cohort(
        genes=genes,
        seed=seed,
        counts="multinomial",
        on_sample=write,
        n_cells_per_sample=n_good,
        patients=tuple(f"P{p + 1:02d}" for p in range(n_patients)),
        n_clones=(2,) * n_patients,
        given_clones_patients=(),
        genotyped_patients=(),
    )
    samples = cohort.samples
    sheet = samples.assign(
        path=samples["sample_id"] + ".h5ad", format="h5ad", batch=samples["sample_id"]
    )[["sample_id", "patient_id", "timepoint", "timepoint_order", "path", "format", "batch"]]
    sheet.to_csv(out / "samples.tsv", sep="\t", index=False)
    return out / "samples.tsv"


# ----------------------------------------------------------------------------------------------
# the workflow


def snapshot(dest: Path) -> None:
    """Copy the workflow code, config, profiles, envs and resources into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(REPO / "Snakefile", dest / "Snakefile")
    for folder in ("workflow", "config", "profiles", "envs"):
        shutil.copytree(
            REPO / folder,
            dest / folder,
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    shutil.copytree(REPO / "resources", dest / "resources", dirs_exist_ok=True)


def requested_memory(logs: list[str]) -> dict[str, int]:
    """``mem_mb`` each job asked for, keyed by its benchmark file, from Snakemake's job log.

    A retried job appears once per attempt; the last attempt's request is kept, as its
    benchmark file holds the last attempt's figures.
    """
    requests = {}
    for text in logs:
        benchmark = None
        for line in text.splitlines():
            line = line.strip()
            if line.startswith("benchmark: "):
                benchmark = line.removeprefix("benchmark: ")
            elif line.startswith("resources: ") and benchmark:
                found = re.search(r"\bmem_mb=(\d+)", line)
                if found:
                    requests[benchmark] = int(found.group(1))
                benchmark = None
    return requests


def read_benchmarks(workdir: Path) -> list[dict]:
    """Every ``benchmarks/<rule>/<job>.tsv`` as rule, job, seconds, max RSS and PSS (MB), CPU s,
    and the ``mem_mb`` the job requested (from the phases' logs; NaN when not found).

    Snakemake sums each measure over a job's processes. A job whose library forks workers (as
    infercnvpy's process pool did with more than one job) thus counts the pages parent and worker
    share twice in RSS, once in PSS: PSS is the memory the job really occupies (what a cgroup
    limit counts, about).
    """
    import pandas as pd

    requests = requested_memory([p.read_text() for p in sorted(workdir.glob("snakemake_*.log"))])
    rows = []
    for path in sorted((workdir / "benchmarks").glob("*/*.tsv")):
        table = pd.read_csv(path, sep="\t", na_values=["-", "NA"])
        last = table.iloc[-1]
        rows.append(
            {
                "rule": path.parent.name,
                "job": path.stem,
                "s": float(last["s"]),
                "max_rss_mb": float(last["max_rss"]) if pd.notna(last["max_rss"]) else 0.0,
                "max_pss_mb": float(last["max_pss"]) if pd.notna(last.get("max_pss")) else 0.0,
                "cpu_s": float(last["cpu_time"]) if "cpu_time" in last else float("nan"),
                "mem_mb": float(requests.get(str(path.relative_to(workdir)), float("nan"))),
            }
        )
    return rows


def time_v(stderr: str) -> dict:
    """CPU seconds (user + system) and peak RSS of the largest process from ``time -v`` output.

    The figures cover the whole process tree that was waited for, so for Snakemake they include
    every job it ran: CPU is their sum, the peak is that of the largest single process.
    """
    out = {}
    user = re.search(r"User time \(seconds\): ([\d.]+)", stderr)
    system = re.search(r"System time \(seconds\): ([\d.]+)", stderr)
    if user and system:
        out["tree_cpu_s"] = float(user.group(1)) + float(system.group(1))
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", stderr)
    if peak:
        out["tree_peak_rss_mb"] = int(peak.group(1)) / 1024
    return out


def timed(cmd: list[str]) -> list[str]:
    """``cmd`` under ``/usr/bin/time -v`` where that exists."""
    return ["/usr/bin/time", "-v", *cmd] if Path("/usr/bin/time").exists() else cmd


def tree_memory_mb(pid: int) -> tuple[float, float]:
    """Summed RSS and PSS (MB) of process ``pid`` and all its descendants; 0 once it has gone.

    PSS shares each page among the processes mapping it, so forked workers are not counted twice.
    """
    gone = (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess)
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except gone:
        return 0.0, 0.0
    rss = pss = 0
    for proc in procs:
        # jobs start and end between listing and reading; those simply do not count
        try:
            info = proc.memory_full_info()
        except gone:
            continue
        rss, pss = rss + info.rss, pss + info.pss
    return rss / 2**20, pss / 2**20


def measure(cmd: list[str], *, cwd: Path | None = None, interval: float = 0.5) -> dict:
    """Run ``cmd`` under ``time -v`` while a thread samples the RSS of its whole process tree.

    Returns wall time, exit code, load averages, ``time -v`` CPU and largest-process peak,
    the concurrent peaks (``concurrent_peak_rss_mb``, ``concurrent_peak_pss_mb``), and the
    captured ``stdout``/``stderr``.
    """
    load = os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.Popen(
        timed(cmd),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment(),
    )
    done = threading.Event()
    peak = [0.0, 0.0]

    def sample() -> None:
        while True:
            rss, pss = tree_memory_mb(proc.pid)
            peak[0], peak[1] = max(peak[0], rss), max(peak[1], pss)
            if done.wait(interval):
                return

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    # communicate() drains both pipes, so a chatty command cannot block on a full one
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    return {
        "wall_s": wall,
        "exit_code": proc.returncode,
        "load_before": load,
        "load_after": os.getloadavg()[0],
        **time_v(stderr),
        "concurrent_peak_rss_mb": peak[0],
        "concurrent_peak_pss_mb": peak[1],
        "stdout": stdout,
        "stderr": stderr,
    }


def run_workflow(
    workdir: Path, sheet: Path, cores: int, overrides: list[str], *, qc_only: bool = False
) -> dict:
    """Run the snapshot in ``workdir``: phase "shared" builds :data:`SHARED_TARGETS`, then
    phase "rest" the default target; with ``qc_only`` one phase "qc" builds the QC ledger only
    (every ``qc_sample`` job).

    Returns each phase's :func:`measure` figures under ``phases``, and as totals the summed wall
    and CPU time and the larger of each peak (NaN when the shared phase failed, as the rest
    phase is then skipped), the first non-zero exit code, and the per-rule benchmarks.
    """
    snapshot(workdir)
    base = [
        str(SNAKEMAKE),
        "--snakefile", str(workdir / "Snakefile"),
        "--directory", str(workdir),
        "--workflow-profile", str(workdir / "profiles/default"),
        "--cores", str(cores),
        "--keep-going",
    ]  # fmt: skip
    # Targets go before --config, which would take them as further overrides. --notemp keeps
    # the shared phase from deleting temp() files that jobs of the rest phase may still need.
    phases = {
        "shared": [*base, "--notemp", *SHARED_TARGETS],
        "rest": base,
    }
    if qc_only:
        phases = {"qc": [*base, QC_TARGET]}
    nan = float("nan")
    result: dict = {"phases": {}}
    for name, cmd in phases.items():
        run = measure([*cmd, "--config", f"samples={sheet}", *overrides], cwd=workdir)
        log = workdir / f"snakemake_{name}.log"
        log.write_text(run.pop("stdout") + run.pop("stderr"))
        result["phases"][name] = {**run, "log": str(log)}
        if run["exit_code"] != 0:
            break
    runs = list(result["phases"].values())
    complete = len(runs) == len(phases)

    def total(key: str, combine) -> float:
        values = [r.get(key, nan) for r in runs]
        return combine(values) if complete else nan

    result.update(
        {
            "exit_code": next((r["exit_code"] for r in runs if r["exit_code"] != 0), 0),
            "load_before": runs[0]["load_before"],
            "load_after": runs[-1]["load_after"],
            "wall_s": total("wall_s", sum),
            "tree_cpu_s": total("tree_cpu_s", sum),
            "tree_peak_rss_mb": total("tree_peak_rss_mb", max),
            "concurrent_peak_rss_mb": total("concurrent_peak_rss_mb", max),
            "concurrent_peak_pss_mb": total("concurrent_peak_pss_mb", max),
            "rules": read_benchmarks(workdir),
        }
    )
    return result


def summarise_rules(rules: list[dict]) -> list[dict]:
    """Per rule: jobs, summed and longest seconds, summed CPU seconds, peak RSS."""
    by_rule: dict[str, dict] = {}
    for row in rules:
        entry = by_rule.setdefault(
            row["rule"],
            {
                "rule": row["rule"],
                "jobs": 0,
                "s": 0.0,
                "max_s": 0.0,
                "cpu_s": 0.0,
                "max_rss_mb": 0.0,
                "max_pss_mb": 0.0,
                "max_mem_mb": float("nan"),
                "over_request": 0,
            },
        )
        entry["jobs"] += 1
        entry["s"] += row["s"]
        entry["max_s"] = max(entry["max_s"], row["s"])
        entry["cpu_s"] += row.get("cpu_s", 0.0) or 0.0
        entry["max_rss_mb"] = max(entry["max_rss_mb"], row["max_rss_mb"])
        entry["max_pss_mb"] = max(entry["max_pss_mb"], row.get("max_pss_mb", 0.0))
        requested = row.get("mem_mb", float("nan"))
        if requested == requested:
            known = entry["max_mem_mb"]
            entry["max_mem_mb"] = requested if known != known else max(known, requested)
            # PSS is what a cgroup limit would count; on SLURM such a job is killed and retried
            entry["over_request"] += int(row.get("max_pss_mb", 0.0) > requested)
    return list(by_rule.values())


# ----------------------------------------------------------------------------------------------
# the bare scanpy script, run as `benchmark_cohort.py --bare SHEET OUT CONFIG_JSON`


class _Steps:
    """Wall seconds per named step: each call closes the step that ran since the last call."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self.clock = time.perf_counter()

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        self.timings[name] = self.timings.get(name, 0.0) + now - self.clock
        self.clock = now


def _usage() -> dict:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"peak_rss_mb": usage.ru_maxrss / 1024, "cpu_s": usage.ru_utime + usage.ru_stime}


def _bare_qc(adata, qc: dict, step: _Steps):
    """QC metrics, the MAD thresholds of the workflow's QC and scrublet, on one sample."""
    import numpy as np
    import scanpy as sc

    adata.var["mt"] = adata.var_names.str.startswith(qc["mito_prefix"])
    sc.pp.calculate_qc_metrics(adata, qc_vars=["mt"], percent_top=None, inplace=True)
    obs = adata.obs
    keep = np.ones(adata.n_obs, dtype=bool)
    for metric, nmads, floor in (
        ("total_counts", qc["nmads_counts"], qc["min_counts"]),
        ("n_genes_by_counts", qc["nmads_genes"], qc["min_genes"]),
    ):
        logged = np.log1p(obs[metric].to_numpy(float))
        mad = np.median(np.abs(logged - np.median(logged)))
        low = max(np.expm1(np.median(logged) - nmads * mad), floor)
        high = np.expm1(np.median(logged) + nmads * mad)
        keep &= (obs[metric].to_numpy() >= low) & (obs[metric].to_numpy() <= high)
    mito = obs["pct_counts_mt"].to_numpy(float)
    high_mito = np.median(mito) + qc["nmads_mito"] * np.median(np.abs(mito - np.median(mito)))
    keep &= mito <= min(high_mito, qc["max_pct_mito"])
    adata = adata[keep].copy()
    step("qc_metrics")
    sc.pp.scrublet(
        adata,
        expected_doublet_rate=qc["expected_doublet_rate"],
        n_prin_comps=30,
        # as the workflow: exact kNN unless the sample is huge, so no pynndescent compile
        use_approx_neighbors=adata.n_obs > 30000,
        random_state=0,
        verbose=False,
    )
    adata = adata[~adata.obs["predicted_doublet"].to_numpy()].copy()
    step("scrublet")
    return adata


def _bare_embed(adata, settings: dict, step: _Steps) -> None:
    """Variable genes, normalisation, PCA, harmony, neighbours and UMAP, in place."""
    import harmonypy
    import numpy as np
    import scanpy as sc

    prep, clus = settings["preprocess"], settings["clustering"]
    adata.layers["counts"] = adata.X.copy()
    sc.pp.highly_variable_genes(
        adata,
        flavor="seurat_v3",
        n_top_genes=prep["n_top_genes"],
        layer="counts",
        batch_key="sample_id",
    )
    step("hvg")
    sc.pp.normalize_total(adata, target_sum=prep["target_sum"])
    sc.pp.log1p(adata)
    step("normalise")
    sc.pp.pca(adata, n_comps=prep["n_pcs"], mask_var="highly_variable", random_state=0)
    step("pca")
    result = harmonypy.run_harmony(
        np.asarray(adata.obsm["X_pca"], dtype=np.float64),
        adata.obs[["sample_id"]],
        ["sample_id"],
        theta=settings["integration"]["harmony_theta"],
        max_iter_harmony=settings["integration"]["harmony_max_iter"],
        random_state=0,
        verbose=False,
    )
    z = np.asarray(result.Z_corr)
    adata.obsm["X_harmony"] = (z if z.shape[0] == adata.n_obs else z.T).astype(np.float32)
    step("harmony")
    sc.pp.neighbors(adata, n_neighbors=clus["n_neighbors"], use_rep="X_harmony", random_state=0)
    step("neighbors")
    sc.tl.umap(adata, init_pos=clus["umap_init"], random_state=0)
    step("umap")


def _bare_cluster(adata, clus: dict, step: _Steps) -> bool:
    """Leiden at every configured resolution, then Wilcoxon markers of the middle one; returns
    whether the markers were tested on the variable genes only."""
    import scanpy as sc

    for res in clus["resolutions"]:
        sc.tl.leiden(
            adata,
            resolution=res,
            key_added=f"leiden_r{res:g}",
            flavor="igraph",
            n_iterations=2,
            directed=False,
            random_state=0,
        )
    adata.obs["leiden"] = adata.obs[
        f"leiden_r{clus['resolutions'][len(clus['resolutions']) // 2]:g}"
    ]
    step("leiden")
    # the workflow's own rule for clustering.markers_on_hvg, so both test the same genes
    sys.path.insert(0, str(REPO / "workflow" / "scripts"))
    from clonetrack.integrate.cluster import markers_on_hvg

    on_hvg = markers_on_hvg(clus["markers_on_hvg"], adata.n_obs)
    mask = adata.var["highly_variable"].to_numpy() if on_hvg else None
    sc.tl.rank_genes_groups(
        adata, groupby="leiden", method="wilcoxon", mask_var=mask, pts=True, use_raw=False
    )
    step("markers")
    return on_hvg


def bare(sheet: Path, out: Path, settings: dict) -> None:
    """The same analysis in one process with plain scanpy calls; prints step timings as JSON."""
    step = _Steps()
    # the libraries every step uses, imported up front so that their import time is its own step
    import anndata as ad
    import harmonypy  # noqa: F401
    import numpy as np
    import pandas as pd
    import scanpy as sc  # noqa: F401

    step("import")
    samples = pd.read_csv(sheet, sep="\t", dtype=str)
    kept = {}
    for row in samples.itertuples():
        adata = ad.read_h5ad(sheet.parent / row.path)
        adata.X = adata.X.astype(np.float32)
        step("read")
        kept[row.sample_id] = _bare_qc(adata, settings["qc"], step)
    if settings.get("qc_only"):
        print(json.dumps({"steps": step.timings, **_usage()}))
        return
    adata = ad.concat(kept, join="inner", label="sample_id", index_unique="_")
    del kept
    step("concat")
    _bare_embed(adata, settings, step)
    on_hvg = _bare_cluster(adata, settings["clustering"], step)
    adata.write_h5ad(out / "adata.h5ad")
    step("write")
    summary = {
        "steps": step.timings,
        "n_cells": adata.n_obs,
        "markers_on_hvg": on_hvg,
        **_usage(),
    }
    print(json.dumps(summary))


def run_bare(sheet: Path, out: Path, settings: dict) -> dict:
    """Run :func:`bare` in a fresh process through :func:`measure`; its figures plus the step
    timings the script prints."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "settings.json").write_text(json.dumps(settings))
    cmd = [sys.executable, __file__, "--bare", str(sheet), str(out), str(out / "settings.json")]
    result = measure(cmd)
    stdout = result.pop("stdout")
    (out / "stderr.log").write_text(result.pop("stderr"))
    lines = [ln for ln in stdout.splitlines() if ln.startswith("{")]
    if lines:
        result.update(json.loads(lines[-1]))
    return result


def apply_overrides(cfg: dict, overrides: list[str]) -> dict:
    """Apply ``key={yaml}`` overrides (as given to ``snakemake --config``) to a config dict."""
    import yaml

    for item in overrides:
        key, _, value = item.partition("=")
        value = yaml.safe_load(value)
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    return cfg


# ----------------------------------------------------------------------------------------------


def fmt_qc_table(results: list[dict]) -> str:
    """Markdown table of a ``--qc-only`` run: the qc_sample jobs (summed CPU and wall from their
    benchmark files, and the phase's wall) against the bare script's read + QC + scrublet."""
    lines = [
        "| cells | samples | qc_sample CPU s | qc_sample job s | phase wall s | "
        "bare read+QC+scrublet s | bare CPU s (with imports) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        jobs = [j for j in r.get("workflow", {}).get("rules", []) if j["rule"] == "qc_sample"]
        phase = r.get("workflow", {}).get("phases", {}).get("qc", {})
        steps = r.get("bare", {}).get("steps", {})
        bare_qc = sum(steps.get(k, 0.0) for k in ("read", "qc_metrics", "scrublet"))
        lines.append(
            f"| {r['n_cells']:,} | {r['n_samples']} | {sum(j['cpu_s'] for j in jobs):.0f} | "
            f"{sum(j['s'] for j in jobs):.0f} | {phase.get('wall_s', float('nan')):.0f} | "
            f"{bare_qc:.0f} | {r.get('bare', {}).get('cpu_s', float('nan')):.0f} |"
        )
    return "\n".join(lines)


def fmt_table(results: list[dict]) -> str:
    """Markdown tables: time and peak memory per size, then per rule and per bare step.

    Figures missing from a run (a skipped part, or a summary written before the shared phase
    and the concurrent peak were measured) are left blank.
    """
    nan, num, ratio = float("nan"), _num, _ratio
    lines = [
        "Time (shared: the workflow's phase up to markers, the steps the bare script does; "
        "workflow: both phases):",
        "",
        "| cells | samples | cells kept | bare wall s | shared wall s | shared/bare "
        "| workflow wall s | workflow/bare | bare CPU s | shared CPU s | shared/bare "
        "| workflow CPU s | workflow/bare |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    memory = [
        "| cells | bare largest process MB | bare concurrent MB | shared largest process MB "
        "| shared concurrent MB | workflow largest process MB | workflow largest job PSS MB "
        "| workflow concurrent MB | workflow concurrent PSS MB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        wf, b = r.get("workflow", {}), r.get("bare", {})
        shared = wf.get("phases", {}).get("shared", {})
        bare_wall, bare_cpu = b.get("wall_s", nan), b.get("tree_cpu_s", b.get("cpu_s", nan))
        times = [
            (shared.get("wall_s", nan), wf.get("wall_s", nan), bare_wall),
            (shared.get("tree_cpu_s", nan), wf.get("tree_cpu_s", nan), bare_cpu),
        ]
        row = f"| {r['n_cells']:,} | {r['n_samples']} | {b.get('n_cells', '')} "
        for part, whole, base in times:
            row += f"| {num(base)} | {num(part)} | {ratio(part, base)} "
            row += f"| {num(whole)} | {ratio(whole, base)} "
        lines.append(row + "|")
        # summaries from before time -v fall back to the rules' benchmark files
        wf_peak = wf.get(
            "tree_peak_rss_mb", max((x["max_rss_mb"] for x in wf.get("rules", [])), default=nan)
        )
        peaks = [
            b.get("tree_peak_rss_mb", b.get("peak_rss_mb", nan)),
            b.get("concurrent_peak_rss_mb", nan),
            shared.get("tree_peak_rss_mb", nan),
            shared.get("concurrent_peak_rss_mb", nan),
            wf_peak,
            max((x.get("max_pss_mb", nan) for x in wf.get("rules", [])), default=nan),
            wf.get("concurrent_peak_rss_mb", nan),
            wf.get("concurrent_peak_pss_mb", nan),
        ]
        memory.append(f"| {r['n_cells']:,} | " + " | ".join(num(x) for x in peaks) + " |")
    lines += [
        "",
        "Peak memory (largest process: time -v; largest job: the rules' benchmark files, summed "
        "over a job's processes; concurrent: whole process tree; PSS counts pages that "
        "processes share once):",
        "",
    ]
    lines += memory
    for r in results:
        lines += _detail_tables(r)
    return "\n".join(lines)


def _num(value, spec: str = ".0f") -> str:
    return "" if value is None or value != value else format(value, spec)


def _ratio(a: float, b: float) -> str:
    return _num(a / b if b else float("nan"), ".2f")


def _detail_tables(r: dict) -> list[str]:
    """Lines of the per-rule table of one size's workflow run and of its bare script's steps."""
    lines = []
    wf = r.get("workflow")
    if wf:
        lines += ["", f"Workflow rules at {r['n_cells']:,} cells (exit {wf['exit_code']}):", ""]
        lines += [
            "| rule | jobs | wall s (sum) | wall s (longest job) | CPU s (sum) | max RSS MB "
            "| max PSS MB | max mem_mb asked | jobs with PSS over mem_mb |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for x in summarise_rules(wf["rules"]):
            lines.append(
                f"| {x['rule']} | {x['jobs']} | {x['s']:.1f} | {x['max_s']:.1f} "
                f"| {x['cpu_s']:.1f} | {x['max_rss_mb']:.0f} "
                f"| {_num(x['max_pss_mb'] or float('nan'))} "
                f"| {_num(x.get('max_mem_mb', float('nan')))} | {x.get('over_request', '')} |"
            )
    b = r.get("bare")
    if b and "steps" in b:
        on_hvg = b.get("markers_on_hvg")
        note = "" if on_hvg is None else f", markers on {'HVGs' if on_hvg else 'all genes'}"
        lines += ["", f"Bare script steps at {r['n_cells']:,} cells (wall s{note}):", ""]
        lines += ["| step | s |", "|---|---:|"]
        lines += [f"| {k} | {v:.1f} |" for k, v in b["steps"].items()]
    return lines


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[10_000, 100_000, 500_000, 1_000_000]
    )
    parser.add_argument("--work", type=Path, default=Path("/tmp/clonetrack-benchmark"))
    parser.add_argument("--genes", type=int, default=20_000)
    parser.add_argument("--cells-per-sample", type=int, default=8_000)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--config",
        nargs="*",
        default=[],
        help="overrides passed to snakemake --config (and applied to the bare script)",
    )
    parser.add_argument(
        "--qc-only", action="store_true",
        help="per-sample QC only: the workflow's qc_sample jobs against the bare script's read, "
        "QC metrics and scrublet",
    )  # fmt: skip
    parser.add_argument("--skip-workflow", action="store_true")
    parser.add_argument("--skip-bare", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep data and results of each size")
    return parser


def _measure_size(args, n_cells: int, settings: dict, commit: str) -> dict:
    """Write the cohort of ``n_cells``, then run the workflow and the bare script on it."""
    folder = args.work / f"cells_{n_cells}"
    start = time.perf_counter()
    sheet = write_cohort(
        folder / "data",
        n_cells,
        n_genes=args.genes,
        cells_per_sample=args.cells_per_sample,
        seed=args.seed,
    )
    n_samples = sum(1 for _ in open(sheet)) - 1
    entry = {
        "n_cells": n_cells,
        "n_samples": n_samples,
        "generate_s": time.perf_counter() - start,
        "commit": commit,
        "config": args.config,
    }
    print(
        f"{n_cells:,} cells: {n_samples} samples written in {entry['generate_s']:.0f} s",
        flush=True,
    )
    if not args.skip_workflow:
        entry["workflow"] = run_workflow(
            folder / "workflow", sheet, args.cores, args.config, qc_only=args.qc_only
        )
        for name, run in entry["workflow"]["phases"].items():
            print(f"  workflow {name} {run['wall_s']:.0f} s, exit {run['exit_code']}", flush=True)
    if not args.skip_bare:
        entry["bare"] = run_bare(sheet, folder / "bare", settings)
        print(
            f"  bare {entry['bare']['wall_s']:.0f} s, exit {entry['bare']['exit_code']}",
            flush=True,
        )
    return entry


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--bare":
        bare(Path(argv[1]), Path(argv[2]), json.loads(Path(argv[3]).read_text()))
        return
    if argv and argv[0] == "--table":
        print(fmt_table(json.loads(Path(argv[1]).read_text())))
        return
    args = _parser().parse_args(argv)

    import yaml

    # the runtime package, and the simulator's errors, which are its input errors
    sys.path.insert(0, str(REPO / "workflow" / "scripts"))
    from clonetrack.organism import apply_preset

    # the organism's gene patterns, as the workflow fills them
    settings, _ = apply_preset(
        apply_overrides(yaml.safe_load((REPO / "config/config.yaml").read_text()), args.config),
        basedir=REPO,
    )
    settings["qc_only"] = args.qc_only
    commit = subprocess.run(
        ["git", "-C", str(REPO), "describe", "--always", "--dirty"], capture_output=True, text=True
    ).stdout.strip()
    results = []
    for n_cells in args.sizes:
        results.append(_measure_size(args, n_cells, settings, commit))
        args.work.mkdir(parents=True, exist_ok=True)
        (args.work / "summary.json").write_text(json.dumps(results, indent=1))
        table = fmt_qc_table(results) if args.qc_only else fmt_table(results)
        (args.work / "summary.md").write_text(table + "\n")
        if not args.keep:
            folder = args.work / f"cells_{n_cells}"
            for sub in ("data", "bare", "workflow/results"):
                shutil.rmtree(folder / sub, ignore_errors=True)
    print(fmt_qc_table(results) if args.qc_only else fmt_table(results))


if __name__ == "__main__":
    main()
