"""The registry of trainers: a config's or a checkpoint's ``trainer`` names one.

    >>> sorted(TRAINERS)
    ['realtime', 'thesis', 'unet']

A new trainer is a :class:`~reelrestore.training.loop.Trainer` subclass with its
:class:`~reelrestore.training.config.RunConfig`, added to the tuple below, its config to
:data:`reelrestore.training.config.RUN_CONFIGS` (which reads configs without torch). The
config functions (`load_config`, `config_from_dict`, `choices`) are importable from here too.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from reelrestore.models.realtime import weights_fit, widen_state, widens
from reelrestore.training.config import (
    DEFAULT_TRAINER,
    RunConfig,
    apply_overrides,
    choices,
    config_class,
    config_from_dict,
    load_config,
)
from reelrestore.training.gan import GanTrainer
from reelrestore.training.loop import Trainer, read_checkpoint
from reelrestore.training.realtime import RealtimeTrainer
from reelrestore.training.unet import UNetTrainer

__all__ = ["DEFAULT_TRAINER", "TRAINERS", "choices", "config_from_dict", "init_generator", "load_config",
           "new_trainer", "resume", "trainer_class"]

TRAINERS: dict[str, type[Trainer]] = {cls.config_class.trainer: cls for cls in (GanTrainer, RealtimeTrainer,
                                                                                 UNetTrainer)}


def trainer_class(name: str) -> type[Trainer]:
    """The trainer registered as ``name``."""
    config_class(name)  # refuses an unknown name in one line
    return TRAINERS[name]


def new_trainer(cfg: RunConfig, device: str | torch.device | None = None) -> Trainer:
    """A fresh trainer for ``cfg`` (seeded from ``cfg.schedule.seed``)."""
    return trainer_class(cfg.trainer)(cfg, device)


def resume(path: str | Path, overrides: Sequence[str] = (), device: str | torch.device | None = None) -> Trainer:
    """The trainer a checkpoint names, with the checkpoint's config (plus ``overrides``, e.g.
    a longer schedule or a lower learning rate; the model config must stay) and its
    complete state: networks, optimisers, loop state, history, random states."""
    ckpt = read_checkpoint(path)
    required = ("trainer", "config", "model_config", "parts", "state", "history", "rng")
    missing = [key for key in required if key not in ckpt]
    if missing:
        raise ValueError(f"{path}: not a complete restore-train checkpoint: missing {missing}")
    cls = trainer_class(ckpt["trainer"])
    try:
        cfg = cls.config_class.from_dict(apply_overrides(cls.config_class, ckpt["config"], overrides))
    except (ValueError, TypeError, AttributeError) as exc:  # a config that is not a table of tables
        raise ValueError(f"{path}: {exc}") from None
    trainer = cls(cfg, device)
    try:
        trainer.load_checkpoint(ckpt)
    except (KeyError, TypeError, RuntimeError) as exc:  # parts missing or of other shapes
        what = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{path}: its state does not fit its own config ({what}); is the file damaged?") from None
    return trainer


def init_generator(trainer: Trainer, path: str | Path) -> None:
    """Start ``trainer``'s generator from the weights in ``path`` (fine-tuning): a
    restore-train checkpoint of the same trainer, or, for the real-time trainer, a
    ``restore-export`` ONNX file. The model config must be the run's own; optimisers,
    step and data order stay fresh; a real-time model may gain ``input_above`` on the way
    (`reelrestore.models.realtime.widen_state`) or `hold_played` (the same weights). A file
    that does not fit raises ValueError."""
    path = Path(path)
    own = trainer.cfg.model
    if path.suffix.lower() == ".onnx":
        if not isinstance(trainer, RealtimeTrainer):
            raise ValueError(f"{path}: starting from an ONNX file works for the realtime trainer only; "
                             f"give a checkpoint (.pt) of the {trainer.cfg.trainer} trainer")
        from reelrestore.export.onnx_export import ExportError, realtime_generator_from_onnx

        try:
            gen = realtime_generator_from_onnx(path)
        except ExportError as exc:
            raise ValueError(str(exc)) from None
        theirs, weights = gen.cfg, gen.state_dict()
    else:
        ckpt = read_checkpoint(path)
        if ckpt.get("trainer") != trainer.cfg.trainer or "generator" not in ckpt:
            raise ValueError(f"{path}: expected a checkpoint of the {trainer.cfg.trainer} trainer, "
                             f"got {ckpt.get('trainer')!r}")
        theirs, weights = type(own).from_dict(ckpt["model_config"]), ckpt["generator"]
    realtime = isinstance(trainer, RealtimeTrainer)
    if theirs != own and not (realtime and weights_fit(theirs, own)):  # hold_played: the same weights
        if not (realtime and widens(theirs, own)):
            diff = sorted(k for k, v in own.to_dict().items() if theirs.to_dict().get(k) != v)
            raise ValueError(f"{path}: its model config differs from the run's in {diff}; "
                             f"set them as the file has them (model.<key>=...)")
        weights = widen_state(weights, theirs, own)  # it now also sees above the cutoff, from zero weights
    trainer.generator.load_state_dict(weights)
