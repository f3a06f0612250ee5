import os
import tempfile

# Writable caches for numba and matplotlib, whatever the install location.
_cache = os.path.join(tempfile.gettempdir(), "clonetrack-test-cache")
os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(_cache, "numba"))
os.environ.setdefault("MPLCONFIGDIR", os.path.join(_cache, "matplotlib"))
os.environ.setdefault("MPLBACKEND", "Agg")
