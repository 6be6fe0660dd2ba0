"""What the real-time and the U-Net trainers share: checkpoints, validation through the
engine's view, epoch rows, and the loop that drives them (:func:`fit_trainer`).

A trainer built on :class:`LoopTrainer` sets ``cfg``, ``device``, ``generator``, ``state``
and ``history`` and says what is its own: ``checkpoint_format``, ``generator_class``,
``config_class``, ``shown`` (progress-bar keys), :meth:`parts` (the networks and
optimisers a checkpoint holds, by key) and :meth:`restore_batch` (the damaged audio of a
validation batch as the exported model would restore it).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Mapping

import torch
from torch.utils.data import DataLoader

from reelrestore.training.gan import TrainState, mean_scores, save_atomic, score_items, train_epoch, write_history


class LoopTrainer:
    """Checkpointing, validation and epoch rows for trainers driven by :func:`fit_trainer`."""

    checkpoint_format: str
    generator_class: str
    config_class: type
    shown: tuple[str, ...] = ()

    def parts(self) -> dict[str, Any]:
        """Everything with a state dict that a checkpoint holds, by checkpoint key."""
        raise NotImplementedError

    def restore_batch(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """The batch's damaged audio restored as the exported model does: (B, L)."""
        raise NotImplementedError

    @torch.no_grad()
    def validate(self, loader: DataLoader, max_batches: int | None = None) -> dict[str, float]:
        G = self.generator
        G.eval()
        rows = []
        try:
            for i, batch in enumerate(loader):
                if max_batches is not None and i >= max_batches:
                    break
                rows += score_items(batch, self.restore_batch(batch), self.cfg.model.sample_rate)
        finally:
            G.train()
        return mean_scores(rows)

    def checkpoint(self) -> dict[str, Any]:
        return {
            "format": self.checkpoint_format,
            "model_class": self.generator_class,
            "model_config": self.cfg.model.to_dict(),
            "config": self.cfg.to_dict(),
            **{key: part.state_dict() for key, part in self.parts().items()},
            "state": asdict(self.state),
            "history": list(self.history),
            "torch_rng": torch.get_rng_state(),
        }

    def save_checkpoint(self, path: str | Path) -> Path:
        return save_atomic(self.checkpoint(), path)

    @classmethod
    def from_checkpoint(cls, path: str | Path, cfg: Any = None) -> Any:
        """Resume: the checkpoint's config unless ``cfg`` is given; a different model
        config is refused."""
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        if ckpt.get("format") != cls.checkpoint_format:
            raise ValueError(f"expected a {cls.checkpoint_format} checkpoint, got {ckpt.get('format')!r}")
        trainer = cls(cfg or cls.config_class.from_dict(ckpt["config"]))
        if ckpt["model_config"] != trainer.cfg.model.to_dict():
            raise ValueError("the checkpoint's model config differs from the requested one")
        for key, part in trainer.parts().items():
            part.load_state_dict(ckpt[key])
        # An optimiser's state dict carries its learning rate; the config's wins, so
        # `--resume last.pt optim.g_lr=1e-4` lowers it for the rest of the run.
        parts, o = trainer.parts(), trainer.cfg.optim
        for key, lr in (("opt_g", o.g_lr), ("opt_d", o.d_lr)):
            for group in parts[key].param_groups if key in parts else []:
                group["lr"] = lr
        trainer.state = TrainState(**{**ckpt["state"], "started": time.time()})
        trainer.history = list(ckpt["history"])
        torch.set_rng_state(ckpt["torch_rng"])
        return trainer

    def epoch_row(self) -> dict[str, Any]:
        """The running epoch's counters and the means of its logged values."""
        st = self.state
        row: dict[str, Any] = {"epoch": st.epoch + 1, "step": st.step, "g_steps": st.g_steps,
                               "d_steps": st.d_steps, "d_skips": st.d_skips, "d_forced": st.d_forced,
                               "time_s": round(time.time() - st.started, 3)}
        row.update({k: st.sums[k] / st.counts[k] for k in st.sums})
        return row


def fit_trainer(trainer: LoopTrainer, train_set, val_set, out_dir: str | Path) -> list[dict[str, Any]]:
    """Train to ``schedule.epochs`` / ``max_steps``, resuming from ``trainer.state``; writes
    config.json, history.{csv,json}, losses.png, checkpoints/ and last.pt into out_dir.
    Any trainer with cfg, state, history, ``shown``, ``train_step``, ``validate``,
    ``epoch_row`` and ``save_checkpoint`` (the real-time and the U-Net trainers)."""
    cfg, st = trainer.cfg, trainer.state
    sch, data = cfg.schedule, cfg.data
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    n_batches = len(train_set) // data.batch_size
    if n_batches < 1:
        raise ValueError(f"expected at least batch_size={data.batch_size} training segments, got {len(train_set)}")
    if sch.steps_per_epoch is not None:
        n_batches = min(n_batches, sch.steps_per_epoch)
    val_loader = DataLoader(val_set, batch_size=data.batch_size, shuffle=False) if val_set is not None else None

    def done() -> bool:
        return sch.max_steps is not None and st.step >= sch.max_steps

    def save() -> None:
        trainer.save_checkpoint(out / "checkpoints" / f"epoch{st.epoch:04d}-step{st.step:08d}.pt")
        trainer.save_checkpoint(out / "last.pt")
        for old in sorted((out / "checkpoints").glob("epoch*-step*.pt"))[: -sch.keep_checkpoints]:
            old.unlink()

    while st.epoch < sch.epochs and not done():
        train_epoch(trainer, train_set, n_batches, trainer.shown, save)
        row = trainer.epoch_row()
        if val_loader is not None and (st.epoch + 1) % sch.validate_every == 0:
            row.update(trainer.validate(val_loader, data.val_batches))
        trainer.history.append(row)
        write_history(out, trainer.history)
        if st.batch_in_epoch < n_batches:  # stopped by max_steps mid-epoch
            save()
            break
        st.epoch += 1
        st.batch_in_epoch = 0
        st.sums, st.counts = {}, {}
        st.started = time.time()
        save()
    return list(trainer.history)
