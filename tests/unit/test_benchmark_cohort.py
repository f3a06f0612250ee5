"""The benchmark's cohort generator writes what the workflow accepts."""

import importlib.util
import re
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "benchmark_cohort.py"


def load():
    spec = importlib.util.spec_from_file_location("benchmark_cohort", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_barcodes_are_10x_like_and_distinct_across_samples():
    # the checks before any job refuse two samples sharing barcodes (the same cells twice)
    bench = load()
    samples = [bench.barcodes(k, 9_000) for k in (0, 1, 124)]
    pattern = re.compile(r"^[ACGT]{16}-1$")
    assert all(pattern.match(b) for s in samples for b in s)
    everything = [b for s in samples for b in s]
    assert len(set(everything)) == len(everything) == 27_000
    assert bench.barcodes(1, 3) == bench.barcodes(1, 3)
