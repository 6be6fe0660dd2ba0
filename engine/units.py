"""One syntax for frequencies and levels on every command line: 3000, 3k, 3kHz; -40dB.

Plain functions raising ValueError with the expected form; the commands turn that into
their one-line error.
"""

from __future__ import annotations

import math


def parse_hz(value: str | float) -> float:
    """'3000', '3k', '3 kHz', '3000Hz' -> 3000.0 (finite, above 0)."""
    text = str(value).strip().lower().replace(" ", "").removesuffix("hz")
    try:
        hz = float(text[:-1]) * 1000 if text.endswith("k") else float(text)
    except ValueError:
        raise ValueError(f"expected a frequency like 3000, 3k or 3kHz, got {value!r}") from None
    if not math.isfinite(hz) or hz <= 0:
        raise ValueError(f"expected a frequency above 0 Hz like 3000, 3k or 3kHz, got {value!r}")
    return hz


def parse_cutoff(value: str) -> float | None:
    """'auto' -> None, else `parse_hz`."""
    if str(value).strip().lower() == "auto":
        return None
    try:
        return parse_hz(value)
    except ValueError as exc:
        raise ValueError(f"expected 'auto' or {str(exc).removeprefix('expected ')}") from None


def parse_db(value: str | float) -> float:
    """'-40dB', '-40 dB', '-40' -> -40.0 (finite)."""
    text = str(value).strip().lower().replace(" ", "").removesuffix("db")
    try:
        db = float(text)
    except ValueError:
        raise ValueError(f"expected a level like -40dB or -40, got {value!r}") from None
    if not math.isfinite(db):
        raise ValueError(f"expected a finite level like -40dB, got {value!r}")
    return db
