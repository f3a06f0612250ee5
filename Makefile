# Quick start: `make run` (toy dataset end to end) and `make test` (whole test suite).
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= 2
export MPLBACKEND := Agg
export NUMBA_CACHE_DIR ?= $(CURDIR)/.snakemake/numba-cache
export MPLCONFIGDIR ?= $(CURDIR)/.snakemake/mpl-config

.PHONY: venv browser run report test lint clean

venv: $(VENV)/.installed

# torch first and pinned: a bare or unpinned torch would pull a multi-GB CUDA build.
# uv honours --find-links so the CPU wheel on local disk (if any) is used.
# requirements.txt is what jobs need (envs/clonetrack.yaml pins the same); requirements-dev.txt adds
# the linters, formatters and the report test's browser driver.
$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip uv==0.13.9
	$(BIN)/uv pip install --compile-bytecode --python $(BIN)/python $(if $(wildcard /opt/wheels),--find-links /opt/wheels) torch==2.13.0
	$(BIN)/uv pip install --compile-bytecode --python $(BIN)/python $(if $(wildcard /opt/wheels),--find-links /opt/wheels) -r requirements.txt -r requirements-dev.txt
	touch $@

run: venv
	$(BIN)/snakemake --cores $(CORES) --workflow-profile profiles/default
	$(BIN)/snakemake --cores $(CORES) --workflow-profile profiles/default --report results/report.html

# The report test drives Debian's headless Chromium (no browser download at run time).
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

test: venv browser
	$(BIN)/python -m pytest

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check Snakefile workflow/rules

clean:
	rm -rf results logs benchmarks
