"""Atomic writers: a result appears whole under its name, or not at all."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import anndata as ad
import pandas as pd


@contextlib.contextmanager
def atomic_target(path: os.PathLike | str) -> Iterator[str]:
    """A temporary name in the target's folder, moved over ``path`` only if writing succeeds.

    The temporary name ends with the target's name so writers that infer compression or format
    from the suffix behave the same.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # A writer killed outright (SIGKILL, out of memory) cannot clean up: the next writer of the
    # same target removes what it left (one job writes a target at a time).
    for stale in target.parent.glob(f".tmp-*-{target.name}"):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=f"-{target.name}")
    os.close(fd)
    try:
        yield tmp
        # mkstemp creates the file 0600; give the result the usual permissions
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_h5ad_atomic(adata: ad.AnnData, path: os.PathLike | str, **write_kwargs) -> None:
    """Write ``adata`` to ``path`` so that readers never see a half-written file.

    Parameters
    ----------
    adata
        Object to write.
    path
        Target ``.h5ad``; its parent folders are created.
    **write_kwargs
        Passed to :meth:`anndata.AnnData.write_h5ad` (e.g. ``compression="gzip"``).
    """
    with atomic_target(path) as tmp:
        adata.write_h5ad(tmp, **write_kwargs)


def write_table_atomic(df: pd.DataFrame, path: os.PathLike | str, **to_csv_kwargs) -> None:
    """Write ``df`` as a tab-separated table so that readers never see a half-written file.

    Parameters
    ----------
    df
        Table to write.
    path
        Target file; its parent folders are created; a ``.gz`` name is gzipped.
    **to_csv_kwargs
        Passed to :meth:`pandas.DataFrame.to_csv`; ``sep`` defaults to a tab.
    """
    to_csv_kwargs.setdefault("sep", "\t")
    with atomic_target(path) as tmp:
        df.to_csv(tmp, **to_csv_kwargs)
