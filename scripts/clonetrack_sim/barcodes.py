"""Barcode strings from integer codes, as cell and lentiviral barcodes are written."""

from __future__ import annotations

import numpy as np


def barcode_strings(codes, *, length: int = 16, suffix: str = "-1") -> np.ndarray:
    """Codes written in base 4 as ``ACGT``, least significant digit first, plus ``suffix``.

    Vectorised: a million cell barcodes take a second, not a minute.
    """
    codes = np.asarray(codes, dtype=np.int64).reshape(-1)
    digits = (codes[:, None] >> (2 * np.arange(length, dtype=np.int64))) & 3
    letters = np.ascontiguousarray(np.array(list("ACGT"))[digits])
    words = letters.view(f"<U{length}").reshape(-1)
    return np.char.add(words, suffix).astype(object)
