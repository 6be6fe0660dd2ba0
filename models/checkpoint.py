"""Reading a ``restore-train`` checkpoint file, for training (resume) and export alike.

A checkpoint is what ``torch.save`` writes: a zip archive whose pickled object is
``<name>/data.pkl``. :func:`check_checkpoint_file` reads that much without torch, so
``restore-train --resume`` and ``restore-export`` refuse a file that is none (empty, text,
truncated, an ONNX model) at once, before torch starts.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

EXPECTED = "expected a restore-train checkpoint (last.pt or checkpoints/*.pt)"


def first_line(exc: BaseException, limit: int = 160) -> str:
    """An exception's type and the first sentence of its message (torch's run to paragraphs)."""
    text = str(exc).strip()
    line = f"{type(exc).__name__}: {text.splitlines()[0].split('. ')[0].rstrip('.')}" if text else type(exc).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."


def check_checkpoint_file(path: str | Path) -> None:
    """Raise ValueError in one line unless ``path`` is a zip archive that holds a pickled
    object as ``torch.save`` writes it (``<name>/data.pkl``); needs no torch."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, EOFError, ValueError):
        raise ValueError(f"{path}: not a readable checkpoint (not the zip archive torch.save writes); "
                         f"{EXPECTED}") from None
    if not any(name.endswith("/data.pkl") for name in names):
        raise ValueError(f"{path}: not a readable checkpoint (a zip archive without the pickled object "
                         f"torch.save writes); {EXPECTED}")


def load_checkpoint_file(path: str | Path) -> Any:
    """``torch.load`` on the CPU, weights only; a file that is no checkpoint (empty,
    truncated, another format) raises ValueError in one line."""
    check_checkpoint_file(path)
    import torch  # here, so that the check above needs no torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except MemoryError:
        raise
    except Exception as exc:  # torch.load reports a bad file as any of pickle, zip, EOF, runtime errors
        raise ValueError(f"{path}: not a readable checkpoint ({first_line(exc)}); {EXPECTED}") from None
