"""What every workflow script does first: log to the rule's log file, fix seeds, quiet caches."""

from __future__ import annotations

import contextlib
import logging
import os
import random
import resource
import sys
import tempfile
import time


def start(log_path: str, *, seed: int | None = None, threads: int = 1) -> logging.Logger:
    """Send stderr and logging to ``log_path``; seed Python and NumPy; cap BLAS/numba threads."""
    os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
    stream = open(log_path, "w", buffering=1)  # noqa: SIM115 - lives as long as the process
    sys.stderr = stream
    logging.basicConfig(
        stream=stream, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
    )
    logging.captureWarnings(True)
    cache = os.path.join(tempfile.gettempdir(), "clonetrack-cache")
    os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(cache, "numba"))
    os.environ.setdefault("MPLCONFIGDIR", os.path.join(cache, "matplotlib"))
    os.environ.setdefault("MPLBACKEND", "Agg")
    os.environ["NUMBA_NUM_THREADS"] = str(threads)
    if seed is not None:
        import numpy as np

        random.seed(seed)
        np.random.seed(seed)
    return logging.getLogger("clonetrack")


@contextlib.contextmanager
def timed(log: logging.Logger, step: str):
    """Log how long ``step`` took and the process's peak RSS so far, to find a job's costly step."""
    start = time.perf_counter()
    yield
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    log.info("%s: %.1f s (peak RSS so far %.0f MB)", step, time.perf_counter() - start, peak_mb)
