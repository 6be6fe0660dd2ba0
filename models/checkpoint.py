"""Reading a ``restore-train`` checkpoint file, for training (resume) and export alike."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch


def first_line(exc: BaseException, limit: int = 160) -> str:
    """An exception's type and the first sentence of its message (torch's run to paragraphs)."""
    text = str(exc).strip()
    line = f"{type(exc).__name__}: {text.splitlines()[0].split('. ')[0].rstrip('.')}" if text else type(exc).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."


def load_checkpoint_file(path: str | Path) -> Any:
    """``torch.load`` on the CPU, weights only; a file that is no checkpoint (empty,
    truncated, another format) raises ValueError in one line."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except MemoryError:
        raise
    except Exception as exc:  # torch.load reports a bad file as any of pickle, zip, EOF, runtime errors
        raise ValueError(f"{path}: not a readable checkpoint ({first_line(exc)}); expected a restore-train "
                         f"checkpoint (last.pt or checkpoints/*.pt)") from None
