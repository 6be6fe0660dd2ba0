"""The registry of trainers: a config's or a checkpoint's ``trainer`` names one.

    >>> sorted(TRAINERS)
    ['realtime', 'thesis', 'unet']

A new trainer is a :class:`~reelrestore.training.loop.Trainer` subclass with its
:class:`~reelrestore.training.config.RunConfig`, added to the tuple below.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from reelrestore.training.config import RunConfig, apply_overrides, read_config_file
from reelrestore.training.gan import GanTrainer
from reelrestore.training.loop import Trainer, read_checkpoint
from reelrestore.training.realtime import RealtimeTrainer
from reelrestore.training.unet import UNetTrainer

__all__ = ["DEFAULT_TRAINER", "TRAINERS", "config_from_dict", "load_config", "new_trainer", "resume",
           "trainer_class"]

TRAINERS: dict[str, type[Trainer]] = {cls.config_class.trainer: cls for cls in (GanTrainer, RealtimeTrainer,
                                                                                 UNetTrainer)}
DEFAULT_TRAINER = "thesis"  # a config that names no trainer (restore-train's built-in defaults)


def trainer_class(name: str) -> type[Trainer]:
    """The trainer registered as ``name``."""
    if name not in TRAINERS:
        raise ValueError(f"expected trainer in {sorted(TRAINERS)}, got {name!r}")
    return TRAINERS[name]


def config_from_dict(data: Mapping[str, Any], overrides: Sequence[str] = ()) -> RunConfig:
    """The config of the trainer ``data`` names (``trainer``; default thesis), with
    ``overrides`` (``path=value``, see :mod:`reelrestore.training.config`) applied."""
    cls = trainer_class(data.get("trainer", DEFAULT_TRAINER)).config_class
    return cls.from_dict(apply_overrides(cls, data, overrides))


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> RunConfig:
    """Defaults <- file (``.toml``, ``.yaml``/``.yml``) <- overrides."""
    return config_from_dict(read_config_file(path) if path is not None else {}, overrides)


def new_trainer(cfg: RunConfig, device: str | torch.device | None = None) -> Trainer:
    """A fresh trainer for ``cfg`` (seeded from ``cfg.schedule.seed``)."""
    return trainer_class(cfg.trainer)(cfg, device)


def resume(path: str | Path, overrides: Sequence[str] = (), device: str | torch.device | None = None) -> Trainer:
    """The trainer a checkpoint names, with the checkpoint's config (plus ``overrides``, e.g.
    a longer schedule or a lower learning rate; the model config must stay) and its
    complete state: networks, optimisers, loop state, history, random states."""
    ckpt = read_checkpoint(path)
    cls = trainer_class(ckpt["trainer"])
    cfg = cls.config_class.from_dict(apply_overrides(cls.config_class, ckpt["config"], overrides))
    trainer = cls(cfg, device)
    trainer.load_checkpoint(ckpt)
    return trainer
