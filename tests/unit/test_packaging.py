"""Packaging: exact pins, the conda environment, rule resources, lint, formatting, SLURM profile."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from packaging.version import Version
from runner import REPO, copy_repo

DEV_REQUIREMENTS = REPO / "requirements-dev.txt"

BIN = Path(sys.executable).parent
SNAKEMAKE = BIN / "snakemake"
SNAKEFMT = BIN / "snakefmt"
ACTIONS = ("script", "shell", "run", "wrapper", "notebook", "cwl")
REQUIRED_DIRECTIVES = ("log", "benchmark", "threads", "resources", "conda")
SLURM_COMMANDS = ("sbatch", "squeue", "sacct", "sinfo", "scontrol", "scancel", "srun", "sshare",
                  "sacctmgr")  # fmt: skip
# Commands that would submit, cancel or build something; read-only queries (the plugin asks
# `scontrol show config` even in a dry run) are allowed.
ACTING_COMMANDS = ("sbatch", "srun", "scancel", "conda")


def _load_sync_envs():
    spec = importlib.util.spec_from_file_location("sync_envs", REPO / "scripts" / "sync_envs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sync_envs = _load_sync_envs()


def env_pins(text: str) -> dict[str, str]:
    """Versions pinned in a conda environment file, at the conda level and under pip."""
    env = yaml.safe_load(text)
    pins = {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            for line in dep["pip"]:
                name, _, version = line.partition("==")
                assert version, f"pip entry {line!r} in the environment is not an exact pin"
                pins[name.lower()] = version
        else:
            name, _, version = dep.partition("=")
            pins[name.lower()] = version
    return pins


# ----------------------------------------------------------------------------------------------
# pins


def test_every_requirement_is_an_exact_pin():
    pins = sync_envs.read_pins()
    assert len(pins) > 50
    names = [name.lower().replace("_", "-") for name, _ in pins]
    assert len(names) == len(set(names)), "a package is pinned twice in requirements.txt"
    dev = [name.lower().replace("_", "-") for name, _ in sync_envs.read_pins(DEV_REQUIREMENTS)]
    assert {"ruff", "snakefmt", "playwright"} <= set(dev)
    assert not set(dev) & set(names), "a package is pinned in both requirements files"


def test_job_environment_has_no_linters_or_formatters():
    env = env_pins((REPO / "envs" / "clonetrack.yaml").read_text())
    assert not set(env) & {"ruff", "black", "snakefmt", "playwright"}


@pytest.mark.parametrize(
    "line",
    ["numpy", "numpy>=2.0", "numpy~=2.4", "numpy==2.*", "-e .", "--find-links /opt/wheels",
     "torch==2.13.0 ; sys_platform == 'linux'"],
)  # fmt: skip
def test_loose_requirements_are_refused(tmp_path, line):
    path = tmp_path / "requirements.txt"
    path.write_text(f"# comment\n\nscanpy==1.11.5\n{line}\n")
    with pytest.raises(ValueError, match="line 4"):
        sync_envs.read_pins(path)


def test_environment_pins_equal_requirements():
    requirements = {name.lower(): version for name, version in sync_envs.read_pins()}
    env = env_pins((REPO / "envs" / "clonetrack.yaml").read_text())
    assert env.pop("python") == sync_envs.python_version()
    drift = {
        name: (requirements.get(name), env.get(name))
        for name in set(requirements) | set(env)
        if requirements.get(name) != env.get(name)
    }
    assert not drift, (
        f"requirements.txt vs envs/clonetrack.yaml (run scripts/sync_envs.py): {drift}"
    )


def test_environment_file_is_what_sync_envs_writes():
    expected = sync_envs.render(sync_envs.read_pins(), sync_envs.python_version())
    assert (REPO / "envs" / "clonetrack.yaml").read_text() == expected


def test_drift_would_be_noticed():
    pins = sync_envs.read_pins()
    bumped = [(n, v + ".post99" if n == "scanpy" else v) for n, v in pins]
    text = sync_envs.render(bumped, sync_envs.python_version())
    assert env_pins(text)["scanpy"] != dict(pins)["scanpy"]
    assert text != (REPO / "envs" / "clonetrack.yaml").read_text()


def test_key_pins():
    pins = {name.lower(): version for name, version in sync_envs.read_pins()}
    assert pins["torch"] == "2.13.0"
    # pynndescent 0.7 changed the neighbour search the UMAP and kNN results were checked against
    assert Version(pins["pynndescent"]) < Version("0.7")
    for name in ("snakemake", "snakemake-executor-plugin-slurm"):
        assert name in pins
    dev = {name.lower() for name, _ in sync_envs.read_pins(DEV_REQUIREMENTS)}
    assert {"snakefmt", "ruff"} <= dev


# ----------------------------------------------------------------------------------------------
# rules, read from the sources


def rule_blocks() -> dict[str, tuple[str, str]]:
    """Each ``rule NAME:`` block of the Snakefile and workflow/rules/*.smk: name -> (file, body)."""
    blocks = {}
    for path in [REPO / "Snakefile", *sorted((REPO / "workflow" / "rules").glob("*.smk"))]:
        text = path.read_text()
        for match in re.finditer(r"^rule (\w+):\n((?:[ \t]+.*\n|[ \t]*\n)*)", text, re.M):
            assert match.group(1) not in blocks, f"rule {match.group(1)} defined twice"
            blocks[match.group(1)] = (path.name, match.group(2))
    return blocks


def directives(body: str) -> dict[str, str]:
    """Directive name -> its text (the line and the indented lines below it)."""
    found = {}
    for match in re.finditer(r"^    (\w+):(.*\n(?:(?:        .*|\s*)\n)*)", body, re.M):
        found[match.group(1)] = match.group(2)
    return found


def job_rules() -> dict[str, tuple[str, dict[str, str]]]:
    """Rules that run something (``rule all`` and other pure targets are left out)."""
    out = {}
    for name, (path, body) in rule_blocks().items():
        found = directives(body)
        if any(action in found for action in ACTIONS):
            out[name] = (path, found)
    return out


def test_rule_parser_finds_the_pipeline():
    rules = job_rules()
    for expected in ("qc_sample", "merge_normalise", "integrate", "cluster_cells"):
        assert expected in rules
    assert "all" in rule_blocks() and "all" not in rules


@pytest.mark.parametrize("rule", sorted(job_rules()))
def test_rule_declares_resources(rule):
    path, found = job_rules()[rule]
    missing = [d for d in REQUIRED_DIRECTIVES if d not in found]
    assert not missing, f"rule {rule} ({path}) lacks {missing}"
    resources = found["resources"]
    assert re.search(r"\bmem_mb\s*=", resources), f"rule {rule}: resources without mem_mb"
    assert re.search(r"\bruntime\s*=", resources), f"rule {rule}: resources without runtime"
    assert "mem_mb_per_cpu" not in resources, f"rule {rule}: use mem_mb only"
    assert "envs/clonetrack.yaml" in found["conda"]
    assert f"logs/{rule}/" in found["log"], f"rule {rule}: log outside logs/{rule}/"
    assert f"benchmarks/{rule}/" in found["benchmark"], f"rule {rule}: benchmark outside its folder"


# ----------------------------------------------------------------------------------------------
# profiles


def load_profile(name: str) -> dict:
    return yaml.safe_load((REPO / "profiles" / name / "config.yaml").read_text())


def test_slurm_profile():
    profile = load_profile("slurm")
    assert profile["executor"] == "slurm"
    assert profile["retries"] == 2
    assert profile["software-deployment-method"] == "conda"
    assert int(profile["jobs"]) >= 1 and int(profile["latency-wait"]) >= 30
    assert {"slurm_account", "slurm_partition"} <= set(profile["default-resources"])
    assert "slurm_partition" in profile["set-resources"]["integrate"]


@pytest.mark.parametrize("name", ["default", "slurm"])
def test_profiles_never_use_mem_per_cpu(name):
    settings = json.dumps(load_profile(name))  # comments may name it; settings must not
    assert "mem_mb_per_cpu" not in settings and "mem_per_cpu" not in settings


def test_default_profile_is_portable():
    profile = load_profile("default")
    assert "executor" not in profile
    assert not any("slurm" in str(key) for key in profile)
    assert "slurm" not in json.dumps(profile.get("default-resources", {}))


# ----------------------------------------------------------------------------------------------
# Snakemake itself: lint, formatting, rules as Snakemake sees them, dry runs (seconds each)


@pytest.fixture
def workdir(tmp_path):
    """A copy of what the workflow needs, so nothing is written into the repository."""
    return copy_repo(tmp_path)


def run(cmd: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    base = {**os.environ, "MPLBACKEND": "Agg"}
    base.setdefault("NUMBA_CACHE_DIR", "/tmp/numba-cache")
    return subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env={**base, **(env or {})}, capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip


@pytest.mark.workflow
def test_snakemake_lint_is_clean(workdir):
    proc = run([SNAKEMAKE, "--lint"], workdir)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "Lints for" not in output, output


@pytest.mark.workflow
def test_snakefmt_check():
    proc = run([SNAKEFMT, "--check", "Snakefile", "workflow/rules"], REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr


DUMP_RULES = textwrap.dedent("""
    import json
    from pathlib import Path
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ResourceSettings

    with SnakemakeApi() as api:
        workflow = api.workflow(
            resource_settings=ResourceSettings(), snakefile=Path("Snakefile"), workdir=Path(".")
        )._workflow
        print(json.dumps([
            {
                "name": r.name,
                "norun": r.norun,
                "snakefile": r.snakefile,
                "log": [str(x) for x in r.log],
                "benchmark": str(r.benchmark) if r.benchmark else None,
                "conda": str(r.conda_env) if r.conda_env else None,
                "resources": sorted(r.resources),
            }
            for r in workflow.rules
        ]))
    """)


@pytest.mark.workflow
def test_rules_as_snakemake_sees_them(workdir):
    proc = run([sys.executable, "-c", DUMP_RULES], workdir)
    assert proc.returncode == 0, proc.stderr
    rules = {r["name"]: r for r in json.loads(proc.stdout.strip().splitlines()[-1])}
    runnable = {name for name, r in rules.items() if not r["norun"]}
    # the source parser above must see exactly the rules Snakemake runs
    assert runnable == set(job_rules())
    for name in runnable:
        rule = rules[name]
        assert rule["log"] and rule["benchmark"], name
        env = (Path(rule["snakefile"]).parent / rule["conda"]).resolve()
        assert env == (workdir / "envs" / "clonetrack.yaml").resolve(), name
        assert {"mem_mb", "runtime", "_cores"} <= set(rule["resources"]), name
        assert "mem_mb_per_cpu" not in rule["resources"], name


@pytest.fixture
def fake_cluster(tmp_path):
    """Stand-ins for SLURM and conda that record every call; conda answers only its checks."""
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls.log"
    for command in SLURM_COMMANDS:
        script = bin_dir / command
        # sacctmgr vouches for the placeholder account; everything else fails after recording
        answer = "echo YOUR_ACCOUNT" if command == "sacctmgr" else "exit 1"
        script.write_text(f'#!/bin/sh\necho "{command} $*" >> {calls}\n{answer}\n')
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
    info = json.dumps({"conda_prefix": str(tmp_path / "conda"), "platform": "linux-64"})
    priority = json.dumps({"get": {"channel_priority": "strict"}})
    conda = bin_dir / "conda"
    conda.write_text(
        textwrap.dedent(f"""\
            #!/bin/sh
            case "$*" in
              "info --json") echo '{info}' ;;
              "--version") echo "conda 24.11.3" ;;
              "config --get channel_priority --json") echo '{priority}' ;;
              *) echo "conda $*" >> {calls}; exit 1 ;;
            esac
            """)
    )
    conda.chmod(conda.stat().st_mode | stat.S_IEXEC)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}, calls


def acting_calls(calls: Path) -> list[str]:
    """Recorded calls that would submit, cancel or create something."""
    lines = calls.read_text().splitlines() if calls.exists() else []
    return [line for line in lines if line.split()[0] in ACTING_COMMANDS]


def dry_run_jobs(output: str) -> list[dict]:
    """Rule name and resources of every job printed by a dry run."""
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", output):
        head = re.match(r"(?:local)?rule (\w+):", block)
        res = re.search(r"^\s+resources: (.*)$", block, re.M)
        if head and res:
            pairs = dict(item.split("=", 1) for item in res.group(1).split(", "))
            jobs.append({"rule": head.group(1), "resources": pairs})
    return jobs


@pytest.mark.workflow
@pytest.mark.parametrize(
    ("method", "gpu", "partition"),
    [("harmony", "0", "YOUR_PARTITION"), ("scvi", "1", "YOUR_GPU_PARTITION")],
)
def test_slurm_dry_run(workdir, fake_cluster, method, gpu, partition):
    env, calls = fake_cluster
    proc = run(
        [SNAKEMAKE, "--workflow-profile", "profiles/slurm", "--dry-run", "--printshellcmds",
         "--config", f"integration={{method: {method}}}"],
        workdir, env,
    )  # fmt: skip
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert not acting_calls(calls), f"a dry run called {acting_calls(calls)}"
    assert not (workdir / "results").exists()
    jobs = [j for j in dry_run_jobs(output) if j["rule"] != "all"]
    assert {j["rule"] for j in jobs} >= {
        "qc_sample",
        "merge_normalise",
        "integrate",
        "cluster_cells",
    }
    for job in jobs:
        res = job["resources"]
        assert re.fullmatch(r"\d+", res.get("mem_mb", "")), job
        assert re.fullmatch(r"\d+", res.get("runtime", "")), job
        assert res["slurm_account"] == "YOUR_ACCOUNT", job
        assert "mem_mb_per_cpu" not in res, job
        if job["rule"] != "integrate":
            assert res["slurm_partition"] == "YOUR_PARTITION", job
            assert res.get("gpu", "0") == "0", job
    (integrate,) = [j for j in jobs if j["rule"] == "integrate"]
    assert integrate["resources"]["gpu"] == gpu
    assert integrate["resources"]["slurm_partition"] == partition


@pytest.mark.workflow
def test_slurm_dry_run_with_account_on_the_command_line(workdir, fake_cluster):
    """The documented alternative to editing the profile (docs/cluster.md)."""
    env, calls = fake_cluster
    proc = run(
        [SNAKEMAKE, "--workflow-profile", "profiles/slurm", "--dry-run",
         "--default-resources", "slurm_account=lab42", "slurm_partition=cpu",
         "--set-resources", "integrate:slurm_partition=cpu"],
        workdir, env,
    )  # fmt: skip
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert not acting_calls(calls), f"a dry run called {acting_calls(calls)}"
    jobs = [j for j in dry_run_jobs(output) if j["rule"] != "all"]
    assert jobs
    for job in jobs:
        assert job["resources"]["slurm_account"] == "lab42", job
        assert job["resources"]["slurm_partition"] == "cpu", job
        assert re.fullmatch(r"\d+", job["resources"]["mem_mb"]), job


@pytest.mark.workflow
def test_slurm_submission_of_the_scvi_job(workdir, fake_cluster):
    """A real (not dry) run reaches sbatch, so the dry runs above would have seen a submission.

    Only ``integrate`` may run, on stand-in merge outputs; the fake sbatch refuses the job.
    """
    env, calls = fake_cluster
    (workdir / "results" / "merged").mkdir(parents=True)
    for name in ("adata.h5ad", "counts.h5ad"):
        (workdir / "results" / "merged" / name).touch()
    proc = run(
        [SNAKEMAKE, "--workflow-profile", "profiles/slurm", "--sdm=env-modules", "--retries", "0",
         "--slurm-init-seconds-before-status-checks=1", "--seconds-between-status-checks=1",
         "--allowed-rules", "integrate", "--config", "integration={method: scvi}",
         "--", "results/integrate/method~scvi/cells.h5ad"],
        workdir, env,
    )  # fmt: skip
    assert proc.returncode != 0  # the fake sbatch refused the job
    submitted = [line for line in acting_calls(calls) if line.startswith("sbatch ")]
    assert len(submitted) == 1, calls.read_text() if calls.exists() else proc.stderr
    sbatch = submitted[0].split(" --wrap=")[0]
    assert " -A YOUR_ACCOUNT " in sbatch
    assert " -p YOUR_GPU_PARTITION " in sbatch
    assert " --gpus=1" in sbatch
    assert re.search(r" --mem \d+ ", sbatch) and " -t 240 " in sbatch
    assert "--mem-per-cpu" not in sbatch
