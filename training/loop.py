"""The one training loop: :class:`Trainer` (what every trainer is) and :func:`fit`.

A trainer (the thesis GAN in ``gan.py``, the real-time generator in ``realtime.py``, the
U-Net in ``unet.py``; listed in ``trainers.TRAINERS``) owns its networks, optimisers and
losses and says three things: :meth:`Trainer.train_step` (one batch), :meth:`Trainer.parts`
(everything with a state dict, by checkpoint key) and :meth:`Trainer.restore_batch` (a
validation batch restored as the exported model would). Everything else is here, once:

* the loop state (:class:`TrainState`) and the batch order (:class:`EpochSampler`);
* :func:`fit`: epochs of batches until ``schedule.epochs`` or ``schedule.max_steps``; one
  history row per epoch, validated every ``schedule.validate_every`` epochs. A run stopped
  by ``max_steps`` mid-epoch records that epoch's row (``complete: false``, validated) once;
  a resumed run replaces it when the epoch goes on, so an epoch has exactly one row;
* checkpoints, one layout for every trainer (:meth:`Trainer.checkpoint`)::

      format         CHECKPOINT_FORMAT
      trainer        registry name: "thesis" | "realtime" | "unet"
      model_class    the generator's class, "reelrestore.models.realtime.RealtimeGenerator"
      model_config   the generator's config dict (restore-export rebuilds it from these two)
      config         the whole run config dict (RunConfig.to_dict)
      parts          the keys below that hold state dicts, e.g. ["generator", "opt_g", ...]
      generator, ... one state dict per part: networks, optimisers, grad scalers
      state          TrainState as a dict (epoch, position in it, counters, skip and
                     content-schedule state, the running epoch's sums)
      history        the epoch rows so far
      rng            python, numpy, torch CPU and every CUDA device's random state
      torch_version
      world_size     only in a run of several ranks (torchrun): their number, and
      rng_ranks      every rank's random states (rank 0's are ``rng``; CUDA: its own GPU's)

  The batch order and the DataLoader's worker seeds are derived from (seed, epoch) and
  the position in the epoch, so no sampler state is stored; with every random state
  restored, a resumed run continues bit for bit on the same device.

Under torchrun (several ranks, :mod:`reelrestore.training.distributed`) the same loop
trains data-parallel: each rank its slice of every global batch of ``ranks x
batch_size``, gradients averaged before every optimiser step, decisions and logs on the
means over ranks, files written by rank 0 only. A resume takes the same number of ranks
(or any, from a checkpoint at an epoch's end).
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from reelrestore.engine.safety import AtomicPath, write_text
from reelrestore.models.checkpoint import load_checkpoint_file
from reelrestore.training.config import RunConfig
from reelrestore.training.device_damage import damage_batch
from reelrestore.training.distributed import Group, interleave, rank_seed, shard, shard_batches

__all__ = ["CHECKPOINT_FORMAT", "EpochSampler", "TrainState", "Trainer", "fit", "read_checkpoint",
           "validation_metrics", "write_history"]

CHECKPOINT_FORMAT = "reelrestore-train-2"


@dataclass
class TrainState:
    """Loop position and counters; plain values so checkpoints stay weights-only.

    The D-skip rule's state is kept per discriminator name (the thesis names its
    discriminators, the real-time trainer its one "band" D); the ``d_steps`` /
    ``d_skips`` / ``d_forced`` totals count all of them.
    """

    epoch: int = 0  # completed epochs (0-based index of the running one)
    batch_in_epoch: int = 0  # batches of the running epoch already trained on
    step: int = 0  # batches trained on in total
    g_steps: int = 0
    d_steps: int = 0  # D (critic) steps taken, all discriminators together
    d_skips: int = 0  # due D steps skipped by the threshold rule, in total
    d_forced: int = 0  # D steps forced after d_max_skips skips in a row
    d_skip_streaks: dict[str, int] = field(default_factory=dict)  # due steps skipped in a row, by D name
    last_d_fake_losses: dict[str, float] = field(default_factory=dict)  # latest BCE on fakes, by D name
    # Dynamic content schedule (reelrestore.training.losses.ContentSchedule):
    content_off: bool = False  # latched: the MSE content term is off for good
    content_off_step: int | None = None  # ``step`` (0-based batch) of the G step that switched it off
    content_off_reason: str | None = None  # "epoch" | "passband"
    passband_db_mean: float | None = None  # running mean (EMA over G steps) of the passband error, dB
    passband_steps: int = 0  # G steps that fed it
    sums: dict[str, float] = field(default_factory=dict)  # running epoch sums of logged losses
    counts: dict[str, int] = field(default_factory=dict)
    started: float = field(default_factory=time.time)  # wall clock of the running epoch

    def fake_loss(self, name: str) -> float:
        """Discriminator ``name``'s latest BCE on fakes (inf: none yet, so it steps)."""
        return self.last_d_fake_losses.get(name, math.inf)

    def set_fake_loss(self, name: str, value: float) -> None:
        self.last_d_fake_losses[name] = value

    def skip_streak(self, name: str) -> int:
        """Due steps of discriminator ``name`` skipped in a row."""
        return self.d_skip_streaks.get(name, 0)

    def skip_d(self, name: str, threshold: float, max_skips: int) -> tuple[bool, bool]:
        """The thesis's D-skip rule for a due step of discriminator ``name``: (skip,
        forced). Skip (and count it) while its latest fake loss is below ``threshold``, at
        most ``max_skips`` times in a row (0 = never skip); the step after that is forced."""
        below = self.fake_loss(name) < threshold
        streak = self.skip_streak(name)
        if below and max_skips > 0 and streak < max_skips:
            self.d_skips += 1
            self.d_skip_streaks[name] = streak + 1
            return True, False
        return False, below and max_skips > 0

    def d_stepped(self, name: str, fake_loss: float, forced: bool) -> None:
        """Record a step of discriminator ``name`` that ran and its loss on the fakes it saw."""
        self.d_steps += 1
        self.d_forced += int(forced)
        self.d_skip_streaks[name] = 0
        self.last_d_fake_losses[name] = fake_loss

    def finish_batch(self, logs: Mapping[str, float]) -> None:
        """Count one trained batch and add its logged values to the epoch's sums."""
        self.step += 1
        self.batch_in_epoch += 1
        for key, value in logs.items():
            self.sums[key] = self.sums.get(key, 0.0) + value
            self.counts[key] = self.counts.get(key, 0) + 1


class EpochSampler(Sampler[int]):
    """A permutation fixed by (seed, epoch), starting at ``start``: resuming mid-epoch
    replays exactly the remaining order without touching any global RNG.

    In a run of ``world_size`` ranks every rank draws the same permutation and takes its
    slice of each global batch of ``world_size * batch_size`` items from ``start``
    (:func:`reelrestore.training.distributed.shard`)."""

    def __init__(self, n: int, seed: int, epoch: int, start: int = 0, *, rank: int = 0, world_size: int = 1,
                 batch_size: int = 1) -> None:
        self.n, self.seed, self.epoch, self.start = n, seed, epoch, start
        self.rank, self.world_size, self.batch_size = rank, world_size, batch_size

    def _order(self) -> list[int]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return torch.randperm(self.n, generator=g).tolist()

    def __iter__(self) -> Iterator[int]:
        rest = self._order()[self.start :]
        if self.world_size == 1:
            return iter(rest)
        return iter(shard(rest, self.batch_size, self.rank, self.world_size))

    def __len__(self) -> int:
        rest = max(self.n - self.start, 0)
        if self.world_size == 1:
            return rest
        return rest // (self.batch_size * self.world_size) * self.batch_size


# ------------------------------------------------------------------------------ trainer
class Trainer(ABC):
    """One run's networks, optimisers, losses and loop state, driven by :func:`fit`.

    A subclass sets ``config_class`` (its :class:`~reelrestore.training.config.RunConfig`,
    whose ``trainer`` name is its registry key) and ``shown`` (logged keys on the progress
    bar), builds ``self.generator`` and the rest after ``super().__init__`` (which seeds
    torch from ``schedule.seed``, so the initial weights are reproducible), and implements
    :meth:`train_step`, :meth:`parts` and :meth:`restore_batch`.

    Built inside a torch.distributed process group of several ranks (``restore-train``
    under torchrun), it is one rank of a data-parallel run (``self.group``): a subclass
    calls :meth:`average_gradients` right before every ``optimizer.step()``, takes every
    value a decision depends on through :meth:`mean_over_ranks`, and ends
    :meth:`train_step` with :meth:`finish_batch`. Outside one all three are what the
    single process always did.
    """

    config_class: ClassVar[type[RunConfig]]
    shown: ClassVar[tuple[str, ...]] = ()
    generator: torch.nn.Module  # the network export turns into ONNX

    def __init__(self, cfg: RunConfig, device: str | torch.device | None = None) -> None:
        if not isinstance(cfg, self.config_class):
            raise TypeError(f"expected a {self.config_class.__name__}, got {type(cfg).__name__}")
        self.cfg: Any = cfg
        self.device = resolve_device(cfg.schedule.device if device is None else device)
        self.group = Group.current(self.device)  # None: the single-process run
        self._ranks_ready = False  # weights broadcast and random streams split (prepare_ranks)
        torch.manual_seed(cfg.schedule.seed)  # the run owns the process
        self.state = TrainState()
        self.history: list[dict[str, Any]] = []

    @abstractmethod
    def train_step(self, batch: Mapping[str, Any]) -> dict[str, float]:
        """Train on one batch (``damaged``, ``target``: (B, L); ``cutoff_hz``: (B,)), end with
        ``self.state.finish_batch(logs)`` and return the logged values."""

    @abstractmethod
    def parts(self) -> dict[str, Any]:
        """Everything with a state dict that a checkpoint holds, by checkpoint key; the
        generator under ``"generator"``."""

    @abstractmethod
    def restore_batch(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        """A validation batch's damaged audio restored as the exported model does, (B, L),
        and the batch's validation losses (averaged over batches, prefixed ``val_``)."""

    # ------------------------------------------------------------------ several ranks
    @property
    def rank(self) -> int:
        return 0 if self.group is None else self.group.rank

    @property
    def world_size(self) -> int:
        return 1 if self.group is None else self.group.world_size

    @property
    def is_main(self) -> bool:
        """Whether this process writes the run's files and prints (rank 0, or the only one)."""
        return self.group is None or self.group.rank == 0

    def networks(self) -> list[torch.nn.Module]:
        return [part for part in self.parts().values() if isinstance(part, torch.nn.Module)]

    def average_gradients(self, module: torch.nn.Module) -> None:
        """Before every ``optimizer.step()`` of ``module`` (after the backward pass, before
        unscaling and clipping): its gradients become their mean over the ranks, one
        all-reduce, so every rank takes the same step. Nothing in a single process."""
        if self.group is not None:
            self.group.average_gradients(module.parameters())

    def mean_over_ranks(self, value: torch.Tensor | float) -> float:
        """A value a decision depends on (the D-skip rule's fake loss, the content
        schedule's passband error), as its mean over the ranks: every rank decides the
        same. A single process gets the value itself (``.item()``)."""
        if self.group is None:
            return value.item() if isinstance(value, torch.Tensor) else float(value)
        return self.group.mean([value])[0]

    def finish_batch(self, logs: Mapping[str, float]) -> dict[str, float]:
        """End of :meth:`train_step`: the logged values become their means over the ranks
        (one all-reduce) and BatchNorm running statistics are averaged; then the loop
        state counts the batch (:meth:`TrainState.finish_batch`). Returns the logs."""
        logs = dict(logs)
        if self.group is not None:
            logs = dict(zip(logs, self.group.mean(list(logs.values()))))
            self.group.average_buffers(self.networks())
        self.state.finish_batch(logs)
        return logs

    def prepare_ranks(self) -> None:
        """Once, before the first step of a run of several ranks (:func:`fit` calls it):
        rank 0's weights and buffers broadcast to every rank (they were initialised from
        one seed, so this only guards against a nondeterministic init), and a fresh run's
        ranks other than 0 re-seed torch from (seed, rank), so their random draws
        (dropout, noise) differ. A resumed trainer already has each rank's own states."""
        if self.group is None or self._ranks_ready:
            return
        self._ranks_ready = True
        self.group.broadcast_([t for net in self.networks() for t in (*net.parameters(), *net.buffers())])
        if self.rank > 0:
            torch.manual_seed(rank_seed(self.cfg.schedule.seed, self.rank))

    def summary(self) -> str:
        """The text of ``model.txt``: every network of the run and its size."""
        return "".join(f"{key}: {type(part).__name__}, {sum(p.numel() for p in part.parameters()):,} parameters\n"
                       for key, part in self.parts().items() if isinstance(part, torch.nn.Module))

    # ---------------------------------------------------------------------- history rows
    def epoch_row(self, complete: bool) -> dict[str, Any]:
        """The running epoch's history row: where it stands, then :meth:`epoch_values`."""
        st = self.state
        return {"epoch": st.epoch + 1, "complete": complete, "step": st.step, "batches": st.batch_in_epoch,
                "time_s": round(time.time() - st.started, 3), **self.epoch_values()}

    def epoch_values(self) -> dict[str, Any]:
        """The loop's counters so far and the epoch's mean of every logged value."""
        st = self.state
        return {"g_steps": st.g_steps, "d_steps": st.d_steps, "d_skips": st.d_skips, "d_forced": st.d_forced,
                **{key: st.sums[key] / st.counts[key] for key in st.sums}}

    @torch.no_grad()
    def validate(self, loader: DataLoader, max_batches: int | None = None) -> dict[str, float]:
        """Means over the validation items of :func:`validation_metrics` of the restored
        audio (``val_*``) and of the damaged input itself (``val_input_*``), after the means
        of the batches' own losses.

        In a run of several ranks ``loader`` holds this rank's share of the batches (round
        robin, :func:`~reelrestore.training.distributed.shard_batches`); the results are
        gathered back in batch order, so every rank returns the single-process means."""
        self.generator.eval()
        batches: list[tuple[list[dict[str, float | None]], dict[str, float]]] = []
        try:
            for batch in islice(loader, max_batches):
                restored, batch_losses = self.restore_batch(batch)
                batches.append((score_items(batch, restored, self.cfg.model.sample_rate), batch_losses))
        finally:
            self.generator.train()
        if self.group is not None:
            batches = interleave(self.group.all_gather(batches))
        losses: dict[str, list[float]] = {}
        rows: list[dict[str, float | None]] = []
        for batch_rows, batch_losses in batches:
            rows += batch_rows
            for key, value in batch_losses.items():
                losses.setdefault(key, []).append(value)
        return {**{f"val_{key}": float(np.mean(values)) for key, values in losses.items()}, **mean_scores(rows)}

    # ----------------------------------------------------------------------- checkpoints
    def checkpoint(self) -> dict[str, Any]:
        """Everything needed to resume, as a weights-only-loadable dict (layout: module
        docstring). In a run of several ranks every rank must call it (it gathers their
        random states); rank 0's is the one to save."""
        parts = self.parts()
        G = self.generator
        ranks: dict[str, Any] = {}
        rng = random_states()
        if self.group is not None:
            states = self.group.all_gather(self._rank_random_states())
            rng, ranks = states[0], {"world_size": self.world_size, "rng_ranks": states}
        return {
            "format": CHECKPOINT_FORMAT,
            "trainer": self.cfg.trainer,
            "model_class": f"{type(G).__module__}.{type(G).__qualname__}",
            "model_config": self.cfg.model.to_dict(),
            "config": self.cfg.to_dict(),
            "parts": list(parts),
            **{key: part.state_dict() for key, part in parts.items()},
            "state": asdict(self.state),
            "history": list(self.history),
            "rng": rng,
            "torch_version": str(torch.__version__),
            **ranks,
        }

    def _rank_random_states(self) -> dict[str, Any]:
        """:func:`random_states` of this rank, CUDA only for its own GPU."""
        states = random_states(cuda=False)
        states["cuda"] = [torch.cuda.get_rng_state(self.device)] if self.device.type == "cuda" else []
        return states

    def save_checkpoint(self, path: str | Path) -> Path:
        return save_atomic(self.checkpoint(), path)

    def load_checkpoint(self, ckpt: Mapping[str, Any]) -> None:
        """Restore everything :meth:`checkpoint` saved. The model config must be the one
        this trainer was built with; the rest of the config is this trainer's (so a resume
        may change the schedule, and every optimiser keeps the learning rate the config
        gave it: ``optim.g_lr=1e-4`` lowers it for the rest of the run)."""
        _check_format(ckpt)
        if ckpt["trainer"] != self.cfg.trainer:
            raise ValueError(f"expected a checkpoint of the {self.cfg.trainer!r} trainer, got {ckpt['trainer']!r}")
        if ckpt["model_config"] != self.cfg.model.to_dict():
            raise ValueError(f"expected the checkpoint's model config {ckpt['model_config']}, "
                             f"got {self.cfg.model.to_dict()}")
        parts = self.parts()
        if list(ckpt["parts"]) != list(parts):
            raise ValueError(f"expected a checkpoint with the parts {list(parts)} (from the config), "
                             f"got {list(ckpt['parts'])}")
        for key, part in parts.items():
            configured = [group["lr"] for group in getattr(part, "param_groups", [])]
            part.load_state_dict(ckpt[key])
            for group, lr in zip(getattr(part, "param_groups", []), configured):
                group["lr"] = lr
        self.state = TrainState(**{**ckpt["state"], "started": time.time()})
        self.history = list(ckpt["history"])
        saved_world = int(ckpt.get("world_size", 1))
        if self.group is None and saved_world == 1:
            set_random_states(ckpt["rng"])
            return
        if saved_world != self.world_size and self.state.batch_in_epoch:
            how = "plain restore-train" if saved_world == 1 else f"torchrun --nproc-per-node {saved_world}"
            raise ValueError(f"expected {saved_world} rank(s) to resume this checkpoint, got {self.world_size}: it "
                             f"stopped mid-epoch, where a step took {saved_world} x batch_size items; resume it with "
                             f"{how}, or from a checkpoint at an epoch's end")
        self._ranks_ready = True
        if saved_world == self.world_size:  # every rank continues its own random streams
            self._set_rank_random_states(ckpt["rng_ranks"][self.rank])
        else:  # another number of ranks, at an epoch's end: rank 0 continues, the others start afresh
            self._set_rank_random_states(ckpt["rng"])
            if self.rank > 0:
                torch.manual_seed(rank_seed(self.cfg.schedule.seed, self.rank, self.state.step))

    def _set_rank_random_states(self, rng: Mapping[str, Any]) -> None:
        set_random_states({**rng, "cuda": []})
        if rng["cuda"] and self.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"][0], self.device)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """A ``restore-train`` checkpoint of this :data:`CHECKPOINT_FORMAT`, loaded on the CPU;
    a file that is none (empty, truncated, another format) raises ValueError in one line."""
    ckpt = load_checkpoint_file(path)
    _check_format(ckpt, path)
    return ckpt


def _check_format(ckpt: Any, path: str | Path = "checkpoint") -> None:
    found = ckpt.get("format") if isinstance(ckpt, Mapping) else None
    if found != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: expected a restore-train checkpoint of format {CHECKPOINT_FORMAT!r}, got "
                         f"{found!r} (older checkpoints still export with restore-export but do not resume)")


def random_states(cuda: bool = True) -> dict[str, Any]:
    """Python's, numpy's, torch's and every CUDA device's random state (none with
    ``cuda=False``), as tensors and plain values (``torch.load(weights_only=True)`` reads
    them)."""
    kind, keys, *rest = np.random.get_state()
    return {"python": list(random.getstate()), "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), *rest],
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if cuda and torch.cuda.is_available() else []}


def set_random_states(rng: Mapping[str, Any]) -> None:
    """Inverse of :func:`random_states` (CUDA states only onto the same number of devices)."""
    version, internal, gauss = rng["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, *rest = rng["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] and torch.cuda.is_available() and len(rng["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(rng["cuda"])


# ---------------------------------------------------------------------------------- fit
def fit(trainer: Trainer, train_set: Dataset, val_set: Dataset | None, out_dir: str | Path,
        replace: bool = False) -> list[dict[str, Any]]:
    """Train until ``schedule.epochs`` or ``schedule.max_steps``, continuing from
    ``trainer.state`` (a resumed trainer picks up mid-epoch). Writes to ``out_dir``:
    ``config.json``, ``model.txt``, ``history.csv``/``.json``, ``losses.png``,
    ``checkpoints/*.pt`` and ``last.pt``. Returns the history rows.

    Every file is written whole or not at all (a temporary name, renamed when complete),
    so an error or a signal at any moment leaves the previous version or none. The folder
    and its first files appear with the first results (the first epoch's row or
    checkpoint): a run that fails before them leaves nothing. ``replace``: the folder
    holds another run's files, which this run replaces; its numbered checkpoints are
    removed once this run has saved its first one.

    A trainer of several ranks (torchrun) trains on its slice of every global batch of
    ``ranks x batch_size`` (an epoch is ``len(train_set) // (ranks x batch_size)`` steps),
    validates its share of the validation batches, and only rank 0 writes; every rank
    returns the same rows once the files are written.
    """
    cfg, st = trainer.cfg, trainer.state
    sch, data = cfg.schedule, cfg.data
    out = Path(out_dir)
    world = trainer.world_size
    n_batches = len(train_set) // (data.batch_size * world)
    if n_batches < 1:
        need = f"batch_size={data.batch_size}" if world == 1 else \
            f"{world} ranks x batch_size={data.batch_size} = {world * data.batch_size}"
        raise ValueError(f"expected at least {need} training segments, got {len(train_set)}")
    if sch.steps_per_epoch is not None:
        n_batches = min(n_batches, sch.steps_per_epoch)
    trainer.prepare_ranks()
    pin = trainer.device.type == "cuda"
    if val_set is None:
        val_loader = None
    elif trainer.group is None:
        val_loader = DataLoader(val_set, batch_size=data.batch_size, shuffle=False, num_workers=data.num_workers,
                                pin_memory=pin)
    else:  # this rank's share of the validation batches
        val_loader = DataLoader(val_set, batch_sampler=shard_batches(len(val_set), data.batch_size, data.val_batches,
                                                                     trainer.rank, world),
                                num_workers=data.num_workers, pin_memory=pin)
    stale = sorted((out / "checkpoints").glob("epoch*-step*.pt")) if replace and trainer.is_main else []
    started = saved = False

    def start() -> None:
        nonlocal started
        if not started and trainer.is_main:
            out.mkdir(parents=True, exist_ok=True)
            write_text(out / "config.json", json.dumps(cfg.to_dict(), indent=2))
            write_text(out / "model.txt", trainer.summary())
            started = True

    def done() -> bool:
        return sch.max_steps is not None and st.step >= sch.max_steps

    def save() -> None:
        nonlocal stale, saved
        start()
        save_checkpoints(trainer, out, sch.keep_checkpoints, stale)
        stale, saved = [], True

    def history() -> None:
        if trainer.is_main:
            start()
            write_history(out, trainer.history)

    while st.epoch < sch.epochs and not done():
        if st.batch_in_epoch == 0:
            st.started = time.time()
        train_epoch(trainer, train_set, n_batches, save)
        complete = st.batch_in_epoch >= n_batches
        row = trainer.epoch_row(complete)
        if val_loader is not None and not complete:
            row.update(validate_aside(trainer, val_loader, data.val_batches))
        elif val_loader is not None and (st.epoch + 1) % sch.validate_every == 0:
            row.update(trainer.validate(val_loader, data.val_batches))
        record_row(trainer.history, row)
        history()
        if not complete:  # stopped by max_steps mid-epoch: its row is recorded, resume replaces it
            save()
            break
        st.epoch += 1
        st.batch_in_epoch = 0
        st.sums, st.counts = {}, {}
        if st.epoch % sch.checkpoint_every == 0 or st.epoch >= sch.epochs or done():
            save()
    if not saved:  # nothing left to train: still leave a resumable run folder
        save()
    history()
    if trainer.group is not None:  # every rank returns once rank 0's files are written
        trainer.group.barrier()
    return list(trainer.history)


def train_epoch(trainer: Trainer, train_set: Dataset, n_batches: int, save: Callable[[], None]) -> None:
    """Train on the rest of the running epoch: its batches in the order fixed by (seed,
    epoch), from ``trainer.state.batch_in_epoch``, until ``n_batches`` or
    ``schedule.max_steps``; ``save`` every ``schedule.checkpoint_every_steps``."""
    from tqdm.auto import tqdm

    cfg, st = trainer.cfg, trainer.state
    sch, data = cfg.schedule, cfg.data
    if hasattr(train_set, "set_epoch"):  # PairedSegments draws new damage per epoch
        train_set.set_epoch(st.epoch)
    loader_rng = torch.Generator().manual_seed(sch.seed * 7919 + st.epoch)  # worker seeds only
    world = trainer.world_size  # each rank: its slice of every global batch of world x batch_size
    sampler = EpochSampler(len(train_set), sch.seed, st.epoch, start=st.batch_in_epoch * data.batch_size * world,
                           rank=trainer.rank, world_size=world, batch_size=data.batch_size)
    loader = DataLoader(train_set, batch_size=data.batch_size, sampler=sampler, drop_last=True,
                        num_workers=data.num_workers, pin_memory=trainer.device.type == "cuda",
                        generator=loader_rng)
    bar = tqdm(total=n_batches, initial=st.batch_in_epoch, desc=f"epoch {st.epoch + 1}/{sch.epochs}",
               disable=not sch.progress or not trainer.is_main, leave=False, dynamic_ncols=True)
    try:
        for batch in loader:
            if st.batch_in_epoch >= n_batches or (sch.max_steps is not None and st.step >= sch.max_steps):
                break
            logs = trainer.train_step(damage_batch(batch, trainer.device))  # data.extra.damage_on=device
            bar.update(1)
            bar.set_postfix({k: f"{v:.3g}" for k, v in logs.items() if k in trainer.shown}, refresh=False)
            if sch.checkpoint_every_steps and st.step % sch.checkpoint_every_steps == 0:
                save()
    finally:  # also on an error or a signal: an error's one line must not land on the bar's
        bar.close()


def validate_aside(trainer: Trainer, loader: DataLoader, max_batches: int | None) -> dict[str, float]:
    """:meth:`Trainer.validate` with torch's random state put back afterwards (iterating a
    DataLoader draws from it). For a run stopped mid-epoch: a run that goes on does not
    validate there, and the stopped one, resumed, must continue the same random stream."""
    devices = [trainer.device.index or 0] if trainer.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        return trainer.validate(loader, max_batches)


def record_row(history: list[dict[str, Any]], row: dict[str, Any]) -> None:
    """Append an epoch's row, or replace the last one when it is the same epoch's (the
    partial row of a run stopped mid-epoch): one row per epoch."""
    if history and history[-1]["epoch"] == row["epoch"]:
        history[-1] = row
    else:
        history.append(row)


def save_checkpoints(trainer: Trainer, out: Path, keep: int, stale: Sequence[Path] = ()) -> None:
    """``checkpoints/epochEEEE-stepSSSSSSSS.pt`` (the newest ``keep`` of them kept; 0: all)
    and ``last.pt``; then the ``stale`` checkpoints (another run's, which this one
    replaces) are removed. In a run of several ranks every rank calls it (the checkpoint
    gathers their random states) and rank 0 writes."""
    st = trainer.state
    folder = out / "checkpoints"
    save: Callable[[Path], Path] = trainer.save_checkpoint
    if trainer.group is not None:
        ckpt = trainer.checkpoint()
        if not trainer.is_main:
            return
        save = lambda path: save_atomic(ckpt, path)  # noqa: E731
    newest = save(folder / f"epoch{st.epoch:04d}-step{st.step:08d}.pt")
    save(out / "last.pt")
    for old in stale:
        if old != newest:
            old.unlink(missing_ok=True)
    for old in sorted(folder.glob("epoch*-step*.pt"))[:-keep] if keep > 0 else []:
        old.unlink()


class _Recorder:
    """The file torch.save writes through: it keeps what stopped a write (the OSError of a
    full disk; a signal's KeyboardInterrupt, raised by the handler inside ``write``), which
    torch itself turns into an internal error ("unexpected pos ...")."""

    def __init__(self, fh: Any) -> None:
        self.fh, self.error = fh, None

    def write(self, data: bytes) -> int:
        try:
            return self.fh.write(data)
        except BaseException as exc:
            self.error = exc
            raise

    def flush(self) -> None:
        self.fh.flush()


def save_atomic(checkpoint: Mapping[str, Any], path: str | Path) -> Path:
    """torch.save to a temporary name, flushed to the disk, then renamed: never a
    half-written checkpoint, whatever stops the run."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with AtomicPath(path) as temp, open(temp, "wb") as fh:
        sink = _Recorder(fh)
        try:
            torch.save(checkpoint, sink)
        except BaseException:
            if sink.error is None:
                raise
            raise sink.error from None
        fh.flush()
        os.fsync(fh.fileno())
    return path


def resolve_device(name: str | torch.device) -> torch.device:
    """``auto`` -> cuda when available, else cpu; a CUDA device that is not there is refused."""
    if str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"expected a CUDA device to be available for device={name!r}, got none")
    return device


# --------------------------------------------------------------------------- validation
def validation_metrics(target: np.ndarray, estimate: np.ndarray, cutoff_hz: float | None,
                       sample_rate: int) -> dict[str, float | None]:
    """mse, rmse, snr_db, lsd (+ lsd_above / lsd_below with a cutoff) of one item, from
    ``reelrestore.training.metrics`` (STOI is left to ``restore-eval``: too slow per epoch)."""
    from reelrestore.training import metrics as m

    bands = ("whole", "above", "below") if cutoff_hz is not None else ("whole",)
    lsd = m.lsd_bands(target, estimate, sample_rate, cutoff_hz, bands=bands)
    return {"mse": m.mse(target, estimate), "rmse": m.rmse(target, estimate),
            "snr_db": m.snr_db(target, estimate), "lsd": lsd["whole"],
            "lsd_above": lsd.get("above"), "lsd_below": lsd.get("below")}


def score_items(batch: Mapping[str, Any], restored: torch.Tensor, sample_rate: int) -> list[dict[str, float | None]]:
    """One row per item of a validation batch: :func:`validation_metrics` of the restored
    (B, L) audio against the target, and (prefixed ``input_``) of the damaged input itself."""
    restored = restored.detach().cpu().numpy()
    damaged = torch.as_tensor(batch["damaged"]).cpu().numpy()
    target = torch.as_tensor(batch["target"]).cpu().numpy()
    cutoffs = batch.get("cutoff_hz")
    rows = []
    for j in range(target.shape[0]):
        cutoff = None if cutoffs is None else float(cutoffs[j])
        row = validation_metrics(target[j], restored[j], cutoff, sample_rate)
        row.update({f"input_{k}": v for k, v in validation_metrics(target[j], damaged[j], cutoff, sample_rate).items()})
        rows.append(row)
    return rows


def mean_scores(rows: Sequence[Mapping[str, float | None]]) -> dict[str, float]:
    """Means over items, keys prefixed ``val_``. Silent segments give SNR -inf (nothing to
    compare), so means are over the finite values."""
    out = {}
    for key in rows[0] if rows else ():
        values = [r[key] for r in rows if r[key] is not None and math.isfinite(r[key])]
        out[f"val_{key}"] = float(np.mean(values)) if values else math.nan
    return out


# ------------------------------------------------------------------------ history files
def write_history(out: str | Path, rows: list[dict[str, Any]]) -> None:
    """history.json, history.csv (union of columns) and losses.png, each written whole."""
    out = Path(out)
    write_text(out / "history.json", json.dumps(rows, indent=2, default=float))
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    with AtomicPath(out / "history.csv") as temp, open(temp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, columns)
        writer.writeheader()
        writer.writerows(rows)
    if rows:
        plot_history(rows, out / "losses.png")


def plot_history(rows: list[dict[str, Any]], path: str | Path) -> None:
    """Losses and validation metrics per epoch (Agg canvas; no pyplot global state),
    written whole."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(20, 4))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 5)
    x = [r["epoch"] for r in rows]
    named = sorted({k for r in rows for k in r if k.startswith(("d_fake_", "d_real_", "gp_"))
                    and not k.startswith(("d_forced", "d_skips", "d_steps"))})  # the thesis's other discriminators
    panels = [("generator", ("g_adv", "g_content", "g_total")),
              ("discriminator", ("d_real", "d_fake", "d_total", "gp", *named)),
              ("passband error (dB)", ("g_passband_db", "g_passband_input_db")),
              ("validation LSD", ("val_lsd", "val_lsd_above", "val_lsd_below", "val_input_lsd")),
              ("validation SNR (dB)", ("val_snr_db", "val_input_snr_db"))]
    for ax, (title, keys) in zip(axes, panels):
        for key in keys:
            ys = [r.get(key, math.nan) for r in rows]
            if any(isinstance(v, float | int) and math.isfinite(v) for v in ys):
                ax.plot(x, ys, marker="o", ms=3, label=key)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        if ax.lines:
            ax.legend(fontsize=8)
    fig.tight_layout()
    with AtomicPath(Path(path)) as temp:  # the temporary name keeps .png: savefig picks the format by it
        fig.savefig(temp, dpi=100)
