"""The thesis's GAN training loop for :mod:`reelrestore.models.thesis`.

One batch of paired 0.5 s segments (``damaged``, ``target``: float32 ``(B, 24000)``)
is one step:

* both are turned into contract STFTs ``(B, 2, 1025, 47)``; the generator's
  representation maps them to images ``z`` (damaged) and ``z_real`` (target, in the
  damaged input's scale); the generator's network gives ``y = G.net(z)``;
* **BCE game** (the thesis): a discriminator step is *due* every ``k = g_steps_per_d``
  batches; it trains D on ``z_real`` (label ``real``) and ``y.detach()`` (label
  ``fake``), with smoothed labels from :func:`~reelrestore.training.losses.smoothed_labels`.
  **D-skip rule**: a due D step is skipped while D's latest loss on fakes is below
  ``d_skip_threshold`` (D already wins). "Latest" is refreshed on every D step and on
  every G step (from the logits the G step computes anyway, at no extra cost), so D
  resumes as soon as G starts fooling it. Skips are counted (``d_skips`` in total,
  ``d_skip_streak`` in a row); once ``d_max_skips`` due steps in a row were skipped, the
  next due step is forced (``d_forced``) and the streak resets. Then a G step:
  ``adv_weight * BCE(D(y), g_target) + content_weight * MSE(y, z_real)``.
* **WGAN-GP**: a critic step on every batch (``D(y) - D(real) + lambda * GP``) and a G step
  on every ``n_critic``-th batch; labels and the D-skip rule do not apply.

Two options of the thesis's "future work", both off by default:

* **Several discriminators** (``gan.discriminators``, any non-empty subset of ``image``,
  ``spectral``, ``level``): ``image`` is the D above; ``spectral`` and ``level`` judge the
  restored contract spectrum ``G.synthesise(y, x)`` (real: the target's STFT) through
  fixed views, see :mod:`reelrestore.models.critics`. Each has its own Adam, grad scaler
  and D-skip state (skip while THAT D's latest fake loss is below the threshold, forced
  after ``d_max_skips`` in a row; ``d_steps``/``d_skips``/``d_forced`` count all of them).
  BCE: every D is trained with the smoothed labels; WGAN-GP: every critic has its own
  critic loss and gradient penalty. G's adversarial loss is the sum over the
  discriminators, each weighted by ``adv_weight``. Logged keys carry the name
  (``d_fake_spectral``, ``gp_level``, ``g_adv_spectral``); the ``image`` D keeps the
  plain keys (``d_fake``, ``gp``), and ``g_adv`` is always the sum.
* **Dynamic content schedule** (``gan.content_schedule = "dynamic"``): the MSE term's
  weight drops to 0 for good (latched in :class:`TrainState`, with the step and the
  reason) from epoch ``content_off_epoch`` on, or once G reproduces its input band: the
  running mean (EMA over G steps) of the passband error -- energy of (restored -
  target) below the cutoff over the target's, in dB,
  :func:`~reelrestore.training.losses.passband_error_db` -- is below
  ``content_off_below_db`` after at least ``content_min_steps`` G steps
  (:class:`~reelrestore.training.losses.ContentSchedule`). Every G step logs the weight
  used (``g_content_weight``) and the passband error of the restored batch
  (``g_passband_db``) and of the damaged input itself (``g_passband_input_db``: what a
  plain pass-through would score, the floor the damage in the band sets).

Mixed precision (``torch.autocast``) covers only the networks; the representation, the
critics' views, losses and the gradient penalty run in float32. Checkpoints carry the
full config dict, the model class name, every network's state dict (the ``image`` D
under ``discriminator``/``opt_d``/``scaler_d`` as before, the others under ``critics``),
optimiser and grad-scaler states, the loop state (epoch, position in the epoch,
counters, skip and content-schedule state) and every RNG state, so a resumed run
continues bit-for-bit on the same device.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from reelrestore.models.critics import LevelCritic, SpectralCritic
from reelrestore.models.thesis import ThesisDiscriminator, ThesisGenerator, count_layers, format_counts, istft, stft
from reelrestore.training.config import TrainConfig
from reelrestore.training.losses import (
    ContentSchedule,
    bce,
    bce_discriminator_loss,
    bce_generator_loss,
    content_loss,
    cutoff_bins,
    gradient_penalty,
    passband_error_db,
    smoothed_labels,
    wgan_critic_loss,
    wgan_generator_loss,
)

__all__ = ["CHECKPOINT_FORMAT", "DEFAULT_DISCRIMINATOR", "EpochSampler", "GanTrainer", "TrainState", "fit",
           "log_key", "plot_history", "validation_metrics", "write_history"]

CHECKPOINT_FORMAT = 1
GENERATOR_CLASS = f"{ThesisGenerator.__module__}.{ThesisGenerator.__qualname__}"
DISCRIMINATOR_CLASS = f"{ThesisDiscriminator.__module__}.{ThesisDiscriminator.__qualname__}"
CRITIC_CLASSES = {"image": ThesisDiscriminator, "spectral": SpectralCritic, "level": LevelCritic}
# The discriminator whose skip state lives in TrainState's scalar fields (d_skip_streak,
# last_d_fake_loss) and whose logs and checkpoint entries keep the unsuffixed names.
DEFAULT_DISCRIMINATOR = "image"


def log_key(base: str, name: str) -> str:
    """Log / history key of discriminator ``name``: ``d_fake`` for the default ("image")
    D, ``d_fake_spectral`` for the others."""
    return base if name == DEFAULT_DISCRIMINATOR else f"{base}_{name}"


@dataclass
class TrainState:
    """Loop position and counters; plain values so checkpoints stay weights-only.

    Skip state is kept per discriminator name: the default one (``"image"``, and the
    only one of single-D trainers such as ``training/realtime.py``) in the scalar fields
    ``d_skip_streak`` / ``last_d_fake_loss``, every other in the dicts keyed by name.
    The ``d_steps`` / ``d_skips`` / ``d_forced`` totals count all discriminators.
    """

    epoch: int = 0  # completed epochs (0-based index of the running one)
    batch_in_epoch: int = 0  # batches of the running epoch already trained on
    step: int = 0  # batches trained on in total
    g_steps: int = 0
    d_steps: int = 0  # D (critic) steps taken, all discriminators together
    d_skips: int = 0  # due D steps skipped by the threshold rule, in total
    d_skip_streak: int = 0  # ... in a row, since the default D's last step
    d_forced: int = 0  # D steps forced after d_max_skips skips in a row
    last_d_fake_loss: float = math.inf  # default D's latest BCE on fakes (inf: none yet, so D steps)
    d_skip_streaks: dict[str, int] = field(default_factory=dict)  # d_skip_streak of the other Ds, by name
    last_d_fake_losses: dict[str, float] = field(default_factory=dict)  # last_d_fake_loss of the other Ds
    # Dynamic content schedule (reelrestore.training.losses.ContentSchedule):
    content_off: bool = False  # latched: the MSE content term is off for good
    content_off_step: int | None = None  # ``step`` (0-based batch) of the G step that switched it off
    content_off_reason: str | None = None  # "epoch" | "passband"
    passband_db_mean: float | None = None  # running mean (EMA over G steps) of the passband error, dB
    passband_steps: int = 0  # G steps that fed it
    sums: dict[str, float] = field(default_factory=dict)  # running epoch sums of logged losses
    counts: dict[str, int] = field(default_factory=dict)
    started: float = field(default_factory=time.time)  # wall clock of the running epoch

    def fake_loss(self, name: str = DEFAULT_DISCRIMINATOR) -> float:
        """Discriminator ``name``'s latest BCE on fakes (inf: none yet)."""
        if name == DEFAULT_DISCRIMINATOR:
            return self.last_d_fake_loss
        return self.last_d_fake_losses.get(name, math.inf)

    def set_fake_loss(self, value: float, name: str = DEFAULT_DISCRIMINATOR) -> None:
        if name == DEFAULT_DISCRIMINATOR:
            self.last_d_fake_loss = value
        else:
            self.last_d_fake_losses[name] = value

    def skip_streak(self, name: str = DEFAULT_DISCRIMINATOR) -> int:
        """Due steps of discriminator ``name`` skipped in a row."""
        if name == DEFAULT_DISCRIMINATOR:
            return self.d_skip_streak
        return self.d_skip_streaks.get(name, 0)

    def _set_skip_streak(self, value: int, name: str) -> None:
        if name == DEFAULT_DISCRIMINATOR:
            self.d_skip_streak = value
        else:
            self.d_skip_streaks[name] = value

    def skip_d(self, threshold: float, max_skips: int, name: str = DEFAULT_DISCRIMINATOR) -> tuple[bool, bool]:
        """The thesis's D-skip rule for a due step of discriminator ``name``: (skip,
        forced). Skip (and count it) while its latest fake loss is below ``threshold``, at
        most ``max_skips`` times in a row (0 = never skip); the step after that is forced."""
        below = self.fake_loss(name) < threshold
        streak = self.skip_streak(name)
        if below and max_skips > 0 and streak < max_skips:
            self.d_skips += 1
            self._set_skip_streak(streak + 1, name)
            return True, False
        return False, below and max_skips > 0

    def d_stepped(self, fake_loss: float, forced: bool, name: str = DEFAULT_DISCRIMINATOR) -> None:
        """Record a step of discriminator ``name`` that ran and its loss on the fakes it saw."""
        self.d_steps += 1
        self.d_forced += int(forced)
        self._set_skip_streak(0, name)
        self.set_fake_loss(fake_loss, name)

    def finish_batch(self, logs: Mapping[str, float]) -> None:
        """Count one trained batch and add its logged values to the epoch's sums."""
        self.step += 1
        self.batch_in_epoch += 1
        for key, value in logs.items():
            self.sums[key] = self.sums.get(key, 0.0) + value
            self.counts[key] = self.counts.get(key, 0) + 1


class EpochSampler(Sampler[int]):
    """A permutation fixed by (seed, epoch), starting at ``start``: resuming mid-epoch
    replays exactly the remaining order without touching any global RNG."""

    def __init__(self, n: int, seed: int, epoch: int, start: int = 0) -> None:
        self.n, self.seed, self.epoch, self.start = n, seed, epoch, start

    def _order(self) -> list[int]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return torch.randperm(self.n, generator=g).tolist()

    def __iter__(self) -> Iterator[int]:
        return iter(self._order()[self.start :])

    def __len__(self) -> int:
        return max(self.n - self.start, 0)






# fp16 loss scaling starts here, not at GradScaler's 2^16: the thesis recipe's loss (MSE
# x100 plus the adversary) times 2^16 overflows fp16 in the first backward pass, so every
# first step was skipped and the weights did not move. The scaler still grows the scale
# (x2 after 2000 clean steps) and halves it on overflow.
INIT_LOSS_SCALE = 1024.0

class GanTrainer:
    """Networks, optimisers, scalers and loop state; one :meth:`train_step` per batch."""

    def __init__(self, cfg: TrainConfig, device: str | torch.device | None = None) -> None:
        self.cfg = cfg
        self.device = _resolve_device(cfg.schedule.device if device is None else device)
        self.amp_dtype = _resolve_amp(cfg.schedule.amp, self.device)
        # The run owns the process: seeding here makes initial weights reproducible.
        torch.manual_seed(cfg.schedule.seed)
        self.generator = ThesisGenerator(cfg.model).to(self.device)
        # In config order; built after G from the same seed, so ("image",) starts as before.
        self.discriminators: dict[str, torch.nn.Module] = {
            name: self._build_discriminator(name).to(self.device) for name in cfg.gan.discriminators}
        o = cfg.optim
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=o.g_lr, betas=o.betas)
        self.opt_ds = {name: torch.optim.Adam(D.parameters(), lr=o.d_lr, betas=o.betas)
                       for name, D in self.discriminators.items()}
        scale = self.amp_dtype == torch.float16  # bf16 and fp32 need no loss scaling
        self.scaler_g = torch.amp.GradScaler(self.device.type, init_scale=INIT_LOSS_SCALE, enabled=scale)
        self.scaler_ds = {name: torch.amp.GradScaler(self.device.type, init_scale=INIT_LOSS_SCALE, enabled=scale) for name in self.discriminators}
        self.content_schedule = ContentSchedule.from_config(cfg.gan)
        self.state = TrainState()
        self.history: list[dict[str, Any]] = []

    def _build_discriminator(self, name: str) -> torch.nn.Module:
        m = self.cfg.model
        if name == "image":
            return ThesisDiscriminator(m)
        width = self.cfg.gan.critic_width or m.d_width
        act, slope = m.discriminator_activation
        slope = slope if act == "leaky_relu" else 0.3  # the critics always use LeakyReLU
        if name == "spectral":
            return SpectralCritic(m.n_bins, width, slope, m.d_dropout)
        return LevelCritic(m.n_bins, m.sample_rate, width, slope=slope, dropout=m.d_dropout)

    # The default ("image") discriminator under its old names, for single-D code and tests.
    @property
    def discriminator(self) -> torch.nn.Module:
        return self._default("discriminators")

    @property
    def opt_d(self) -> torch.optim.Optimizer:
        return self._default("opt_ds")

    @property
    def scaler_d(self) -> torch.amp.GradScaler:
        return self._default("scaler_ds")

    def _default(self, attr: str) -> Any:
        table = getattr(self, attr)
        if DEFAULT_DISCRIMINATOR not in table:
            raise AttributeError(f"expected gan.discriminators to include {DEFAULT_DISCRIMINATOR!r} for this "
                                 f"attribute, got {list(table)}; use trainer.{attr}[name]")
        return table[DEFAULT_DISCRIMINATOR]

    # ----------------------------------------------------------------------------- steps
    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def spectra(self, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch dict -> contract STFTs of damaged and target, (B, 2, 1025, T) each."""
        out = []
        for key in ("damaged", "target"):
            if key not in batch:
                raise ValueError(f"expected batch keys 'damaged' and 'target', got {sorted(batch)}")
            audio = torch.as_tensor(batch[key]).to(self.device, torch.float32, non_blocking=True)
            if audio.ndim != 2:
                raise ValueError(f"expected {key} as (batch, samples), got {tuple(audio.shape)}")
            out.append(stft(audio, self.cfg.model.n_fft, self.cfg.model.hop_length))
        return out[0], out[1]

    def labels(self) -> tuple[float, float]:
        g = self.cfg.gan
        return smoothed_labels(self.state.epoch, g.label_epochs, g.real_labels, g.fake_labels)

    def train_step(self, batch: Mapping[str, torch.Tensor]) -> dict[str, float]:
        """One batch: D/critic steps when due, a G step when due. Returns logged values."""
        g_cfg, st = self.cfg.gan, self.state
        G = self.generator
        G.train()
        for D in self.discriminators.values():
            D.train()
        x_spec, y_spec = self.spectra(batch)  # (B, 2, 1025, T) each
        cutoff = self._cutoff_bins(batch)  # (B,) or None
        with torch.no_grad():
            z = G.analyse(x_spec)  # (B, C, F', T)
            z_real = G.analyse(y_spec, ref=x_spec)  # target in the input's scale
        logs: dict[str, float] = {}
        if g_cfg.loss == "bce":
            real_label, fake_label = self.labels()
            with self._autocast():
                y = G.net(z).float()  # (B, C, F', T), reused by the D and the G step
            inputs, restored = self._d_inputs(y, z_real, x_spec, y_spec)
            if st.step % g_cfg.g_steps_per_d == 0:
                for name, (real, fake) in inputs.items():
                    logs.update(self._bce_d_step(name, real, fake.detach(), real_label, fake_label))
            logs.update(self._g_step(y, z_real, inputs, restored, x_spec, y_spec, cutoff, fake_label))
        else:
            g_due = (st.step + 1) % g_cfg.n_critic == 0
            with torch.set_grad_enabled(g_due):
                with self._autocast():
                    y = G.net(z).float()
                inputs, restored = self._d_inputs(y, z_real, x_spec, y_spec)
            for name, (real, fake) in inputs.items():
                logs.update(self._critic_step(name, real, fake.detach()))
            if g_due:
                logs.update(self._g_step(y, z_real, inputs, restored, x_spec, y_spec, cutoff, None))
        st.finish_batch(logs)
        return logs

    def _cutoff_bins(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor | None:
        """The batch's cutoffs as fractional STFT bins (B,), or None when it has none."""
        if "cutoff_hz" not in batch:
            if self.content_schedule.kind == "dynamic" and self.cfg.gan.content_off_below_db is not None:
                raise ValueError(f"expected batch key 'cutoff_hz' for gan.content_schedule='dynamic' with "
                                 f"content_off_below_db set, got {sorted(batch)}")
            return None
        m = self.cfg.model
        return cutoff_bins(torch.as_tensor(batch["cutoff_hz"]), m.sample_rate, m.n_fft).to(self.device)

    def _d_inputs(self, y: torch.Tensor, z_real: torch.Tensor, x_spec: torch.Tensor, y_spec: torch.Tensor,
                  ) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], torch.Tensor | None]:
        """(real, fake) input of every discriminator, and the restored spectrum (B, 2, F, T)
        when a critic needed it (None otherwise). The image D sees ``z_real`` and ``y``;
        the critics their views of ``y_spec`` and of ``G.synthesise(y, x_spec)``. Fakes
        carry gradient to G when it is enabled; reals never do."""
        restored = None
        inputs: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        for name, D in self.discriminators.items():
            if name == "image":
                inputs[name] = (z_real, y)
                continue
            if restored is None:
                restored = self.generator.synthesise(y, x_spec)  # (B, 2, F, T), float32
            with torch.no_grad():
                real = D.view(y_spec, x_spec)  # (B, 1, bins, T)
            inputs[name] = (real, D.view(restored, x_spec))
        return inputs, restored

    def _update(self, loss: torch.Tensor, net: torch.nn.Module, opt: torch.optim.Optimizer,
                scaler: torch.amp.GradScaler) -> None:
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if self.cfg.optim.grad_clip is not None:
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(net.parameters(), self.cfg.optim.grad_clip)
        scaler.step(opt)
        scaler.update()

    def _bce_d_step(self, name: str, real: torch.Tensor, fake: torch.Tensor, real_label: float,
                    fake_label: float) -> dict[str, float]:
        g_cfg, st = self.cfg.gan, self.state
        skip, forced = st.skip_d(g_cfg.d_skip_threshold, g_cfg.d_max_skips, name)
        if skip:
            return {log_key("d_skipped", name): 1.0}
        D = self.discriminators[name]
        with self._autocast():
            real_logits, fake_logits = D(real), D(fake)  # (B,), (B,)
        loss, real_loss, fake_loss = bce_discriminator_loss(real_logits, fake_logits, real_label, fake_label)
        self._update(loss, D, self.opt_ds[name], self.scaler_ds[name])
        st.d_stepped(fake_loss.item(), forced, name)
        return {log_key("d_total", name): loss.item(), log_key("d_real", name): real_loss.item(),
                log_key("d_fake", name): fake_loss.item(), log_key("d_skipped", name): 0.0,
                log_key("d_forced", name): float(forced)}

    def _critic_step(self, name: str, real: torch.Tensor, fake: torch.Tensor) -> dict[str, float]:
        D = self.discriminators[name]
        with self._autocast():
            real_scores, fake_scores = D(real), D(fake)  # (B,), (B,)
        w = wgan_critic_loss(real_scores, fake_scores)
        gp = gradient_penalty(D, real, fake)  # float32, outside autocast
        loss = w + self.cfg.gan.gp_lambda * gp
        self._update(loss, D, self.opt_ds[name], self.scaler_ds[name])
        self.state.d_steps += 1
        return {log_key("d_total", name): loss.item(), log_key("d_wasserstein", name): -w.item(),
                log_key("gp", name): gp.item()}

    def _g_step(self, y: torch.Tensor, z_real: torch.Tensor, inputs: Mapping[str, tuple[torch.Tensor, torch.Tensor]],
                restored: torch.Tensor | None, x_spec: torch.Tensor, y_spec: torch.Tensor,
                cutoff: torch.Tensor | None, fake_label: float | None) -> dict[str, float]:
        g_cfg, st = self.cfg.gan, self.state
        logs: dict[str, float] = {}
        passband = None
        if cutoff is not None:
            with torch.no_grad():
                if restored is None:
                    restored = self.generator.synthesise(y, x_spec)
                passband = passband_error_db(restored.detach(), y_spec, cutoff).item()
                logs["g_passband_db"] = passband
                logs["g_passband_input_db"] = passband_error_db(x_spec, y_spec, cutoff).item()
        content_weight = self.content_schedule.weight(st, g_cfg.content_weight, passband)
        for D in self.discriminators.values():
            D.requires_grad_(False)  # G's backward needs D's input gradient only
        try:
            with self._autocast():
                logits = {name: D(inputs[name][1]) for name, D in self.discriminators.items()}  # (B,) each
            if g_cfg.loss == "bce":
                advs = {name: bce_generator_loss(l, g_cfg.g_target) for name, l in logits.items()}
            else:
                advs = {name: wgan_generator_loss(l) for name, l in logits.items()}
            adv = sum(advs.values())  # each D's term, each weighted by adv_weight below
            content = content_loss(y, z_real, g_cfg.content_loss)
            total = g_cfg.adv_weight * adv + content_weight * content
            self._update(total, self.generator, self.opt_g, self.scaler_g)
        finally:
            for D in self.discriminators.values():
                D.requires_grad_(True)
        st.g_steps += 1
        if fake_label is not None:  # free refresh of each D's fake loss for the skip rule
            for name, l in logits.items():
                st.set_fake_loss(bce(l.detach(), fake_label).item(), name)
        logs.update({"g_adv": adv.item(), "g_content": content.item(), "g_total": total.item(),
                     "g_content_weight": content_weight})
        if len(advs) > 1:
            logs.update({f"g_adv_{name}": a.item() for name, a in advs.items()})
        return logs

    # ------------------------------------------------------------------------ validation
    @torch.no_grad()
    def validate(self, loader: DataLoader, max_batches: int | None = None,
                 metrics: Callable[..., dict[str, float]] | None = None) -> dict[str, float]:
        """Generator on the damaged STFT -> iSTFT -> metrics against the target; means
        over items, prefixed ``val_``; ``val_input_*`` score the damaged input itself."""
        metrics = metrics or validation_metrics
        G = self.generator
        G.eval()
        rows: list[dict[str, float]] = []
        content = []
        try:
            for i, batch in enumerate(loader):
                if max_batches is not None and i >= max_batches:
                    break
                x_spec, y_spec = self.spectra(batch)
                z = G.analyse(x_spec)
                with self._autocast():
                    y = G.net(z).float()
                content.append(content_loss(y, G.analyse(y_spec, ref=x_spec)).item())
                restored = istft(G.synthesise(y, x_spec), batch["damaged"].shape[-1],
                                 self.cfg.model.n_fft, self.cfg.model.hop_length)  # (B, L)
                rows += score_items(batch, restored, self.cfg.model.sample_rate, metrics)
        finally:
            G.train()
        return {"val_content": float(np.mean(content)) if content else math.nan, **mean_scores(rows)}

    # ---------------------------------------------------------------------- checkpoints
    def checkpoint(self) -> dict[str, Any]:
        """Everything needed to resume, as a weights-only-loadable dict."""
        np_state = np.random.get_state()
        ckpt: dict[str, Any] = {
            "format": CHECKPOINT_FORMAT,
            "model_class": GENERATOR_CLASS,
            "model_config": self.cfg.model.to_dict(),
            "config": self.cfg.to_dict(),
            "generator": self.generator.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "scaler_g": self.scaler_g.state_dict(),
            "discriminators": list(self.discriminators),
        }
        if DEFAULT_DISCRIMINATOR in self.discriminators:  # the keys of single-D checkpoints
            ckpt.update({"discriminator_class": DISCRIMINATOR_CLASS,
                         "discriminator": self.discriminator.state_dict(),
                         "opt_d": self.opt_d.state_dict(), "scaler_d": self.scaler_d.state_dict()})
        ckpt["critics"] = {
            name: {"class": f"{type(D).__module__}.{type(D).__qualname__}", "model": D.state_dict(),
                   "opt": self.opt_ds[name].state_dict(), "scaler": self.scaler_ds[name].state_dict()}
            for name, D in self.discriminators.items() if name != DEFAULT_DISCRIMINATOR}
        return {
            **ckpt,
            "state": asdict(self.state),
            "history": list(self.history),
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
                "python": list(random.getstate()),
            },
            "torch_version": str(torch.__version__),
        }

    def save_checkpoint(self, path: str | Path) -> Path:
        return save_atomic(self.checkpoint(), path)

    def load_checkpoint(self, ckpt: Mapping[str, Any]) -> None:
        """Restore everything from :meth:`checkpoint` (same model config required)."""
        if ckpt.get("format") != CHECKPOINT_FORMAT or ckpt.get("model_class") != GENERATOR_CLASS:
            raise ValueError(f"expected a checkpoint of format {CHECKPOINT_FORMAT} for {GENERATOR_CLASS}, got "
                             f"format {ckpt.get('format')!r} for {ckpt.get('model_class')!r}")
        if ckpt["model_config"] != self.cfg.model.to_dict():
            raise ValueError(f"expected the checkpoint's model config {ckpt['model_config']}, "
                             f"got {self.cfg.model.to_dict()}")
        saved = list(ckpt.get("discriminators", [DEFAULT_DISCRIMINATOR]))  # older checkpoints: image only
        if saved != list(self.discriminators):
            raise ValueError(f"expected a checkpoint with discriminators {list(self.discriminators)} "
                             f"(gan.discriminators), got {saved}")
        self.generator.load_state_dict(ckpt["generator"])
        self.opt_g.load_state_dict(ckpt["opt_g"])
        self.scaler_g.load_state_dict(ckpt["scaler_g"])
        for name, D in self.discriminators.items():
            if name == DEFAULT_DISCRIMINATOR:
                entry = {"model": ckpt["discriminator"], "opt": ckpt["opt_d"], "scaler": ckpt["scaler_d"]}
            else:
                entry = ckpt["critics"][name]
            D.load_state_dict(entry["model"])
            self.opt_ds[name].load_state_dict(entry["opt"])
            self.scaler_ds[name].load_state_dict(entry["scaler"])
        self.state = TrainState(**{**ckpt["state"], "started": time.time()})
        self.history = list(ckpt["history"])
        rng = ckpt["rng"]
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] and torch.cuda.is_available() and len(rng["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(rng["cuda"])
        kind, keys, *rest = rng["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))
        version, internal, gauss = rng["python"]
        random.setstate((version, tuple(internal), gauss))

    @classmethod
    def from_checkpoint(cls, path: str | Path, cfg: TrainConfig | None = None,
                        device: str | torch.device | None = None) -> GanTrainer:
        """Resume: the checkpoint's config unless ``cfg`` is given (e.g. with more
        epochs); a different model config is refused."""
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        trainer = cls(cfg or TrainConfig.from_dict(ckpt["config"]), device)
        trainer.load_checkpoint(ckpt)
        return trainer

    # ---------------------------------------------------------------------- epoch rows
    def epoch_row(self, complete: bool) -> dict[str, Any]:
        """Means of the running epoch's logged values, its D counters and labels."""
        st = self.state
        real_label, fake_label = self.labels()
        row: dict[str, Any] = {"epoch": st.epoch + 1, "complete": complete, "step": st.step,
                               "batches": st.batch_in_epoch, "real_label": real_label,
                               "fake_label": fake_label, "time_s": round(time.time() - st.started, 3)}
        names = list(self.discriminators)
        means = ["g_adv", "g_content", "g_total", "g_content_weight", "g_passband_db", "g_passband_input_db"]
        means += [f"g_adv_{name}" for name in names]
        means += [log_key(base, name) for name in names
                  for base in ("d_total", "d_real", "d_fake", "d_wasserstein", "gp")]
        for key in means:
            if key in st.sums:
                row[key] = st.sums[key] / st.counts[key]
        counters = {name: (st.counts.get(log_key("d_total", name), 0), int(st.sums.get(log_key("d_skipped", name), 0)),
                           int(st.sums.get(log_key("d_forced", name), 0))) for name in names}
        for i, key in enumerate(("d_steps", "d_skips", "d_forced")):  # totals over the discriminators
            row[key] = sum(c[i] for c in counters.values())
            if len(names) > 1:
                row.update({f"{key}_{name}": c[i] for name, c in counters.items()})
        row["content_off"] = st.content_off
        return row


# ------------------------------------------------------------------------------ metrics
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


def score_items(batch: Mapping[str, Any], restored: torch.Tensor, sample_rate: int,
                metrics: Callable[..., dict[str, float]] | None = None) -> list[dict[str, float]]:
    """One row per item of a validation batch: ``metrics`` of the restored (B, L) audio
    against the target, and (prefixed ``input_``) of the damaged input itself."""
    metrics = metrics or validation_metrics
    restored = restored.detach().cpu().numpy()
    damaged = torch.as_tensor(batch["damaged"]).cpu().numpy()
    target = torch.as_tensor(batch["target"]).cpu().numpy()
    cutoffs = batch.get("cutoff_hz")
    rows = []
    for j in range(target.shape[0]):
        cutoff = None if cutoffs is None else float(cutoffs[j])
        row = metrics(target[j], restored[j], cutoff, sample_rate)
        row.update({f"input_{k}": v for k, v in metrics(target[j], damaged[j], cutoff, sample_rate).items()})
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


def save_atomic(checkpoint: Mapping[str, Any], path: str | Path) -> Path:
    """torch.save to a temporary name, then rename: never a half-written checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(checkpoint, tmp)
    os.replace(tmp, path)
    return path


# ---------------------------------------------------------------------------------- fit
def fit(trainer: GanTrainer, train_set: Dataset, val_set: Dataset | None, out_dir: str | Path,
        metrics: Callable[..., dict[str, float]] | None = None) -> list[dict[str, Any]]:
    """Train until ``schedule.epochs`` or ``schedule.max_steps``; continues from
    ``trainer.state`` (so a resumed trainer picks up mid-epoch). Writes to ``out_dir``:
    ``history.csv``/``.json``, ``losses.png``, ``config.json``, ``model.txt``,
    ``checkpoints/*.pt`` and ``last.pt``. Returns the history rows."""

    cfg, st = trainer.cfg, trainer.state
    sch, data = cfg.schedule, cfg.data
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    shape = (1, 2, cfg.model.n_bins, cfg.model.segment_frames)
    table = format_counts(count_layers(trainer.generator, shape))
    (out / "model.txt").write_text(f"{cfg.model.architecture}\n\n{table}\n")

    n_batches = len(train_set) // data.batch_size
    if n_batches < 1:
        raise ValueError(f"expected at least batch_size={data.batch_size} training segments, got {len(train_set)}")
    if sch.steps_per_epoch is not None:
        n_batches = min(n_batches, sch.steps_per_epoch)
    pin = trainer.device.type == "cuda"
    val_loader = None if val_set is None else DataLoader(val_set, batch_size=data.batch_size, shuffle=False,
                                                         num_workers=data.num_workers, pin_memory=pin)

    def done() -> bool:
        return sch.max_steps is not None and st.step >= sch.max_steps

    while st.epoch < sch.epochs and not done():
        if st.batch_in_epoch == 0:
            st.started = time.time()
        train_epoch(trainer, train_set, n_batches, ("g_adv", "g_content", "d_fake", "gp"),
                    lambda: _save(trainer, out, sch.keep_checkpoints))
        if st.batch_in_epoch < n_batches:  # stopped by max_steps mid-epoch
            break
        row = trainer.epoch_row(complete=True)
        if val_loader is not None and (st.epoch + 1) % sch.validate_every == 0:
            row.update(trainer.validate(val_loader, data.val_batches, metrics))
        trainer.history.append(row)
        st.epoch += 1
        st.batch_in_epoch = 0
        st.sums, st.counts = {}, {}
        if st.epoch % sch.checkpoint_every == 0 or st.epoch >= sch.epochs or done():
            _save(trainer, out, sch.keep_checkpoints)
        write_history(out, trainer.history)

    rows = list(trainer.history)
    if st.batch_in_epoch > 0:  # a partial epoch: checkpoint first, so resume redoes its row
        _save(trainer, out, sch.keep_checkpoints)
        row = trainer.epoch_row(complete=False)
        if val_loader is not None:
            row.update(trainer.validate(val_loader, data.val_batches, metrics))
        rows.append(row)
    elif not (out / "last.pt").exists():
        _save(trainer, out, sch.keep_checkpoints)
    write_history(out, rows)
    return rows


def train_epoch(trainer: Any, train_set: Dataset, n_batches: int, shown: Sequence[str],
                save: Callable[[], None]) -> None:
    """Train on the rest of the running epoch: its batches in the order fixed by (seed,
    epoch), from ``trainer.state.batch_in_epoch``, until ``n_batches`` or
    ``schedule.max_steps``; ``save`` every ``schedule.checkpoint_every_steps``. Shared by
    the thesis GAN and the real-time generator (any trainer with cfg, state, device and
    ``train_step``)."""
    from tqdm.auto import tqdm

    cfg, st = trainer.cfg, trainer.state
    sch, data = cfg.schedule, cfg.data
    if hasattr(train_set, "set_epoch"):  # PairedSegments draws new damage per epoch
        train_set.set_epoch(st.epoch)
    loader_rng = torch.Generator().manual_seed(sch.seed * 7919 + st.epoch)  # worker seeds only
    sampler = EpochSampler(len(train_set), sch.seed, st.epoch, start=st.batch_in_epoch * data.batch_size)
    loader = DataLoader(train_set, batch_size=data.batch_size, sampler=sampler, drop_last=True,
                        num_workers=data.num_workers, pin_memory=trainer.device.type == "cuda",
                        generator=loader_rng)
    bar = tqdm(total=n_batches, initial=st.batch_in_epoch, desc=f"epoch {st.epoch + 1}/{sch.epochs}",
               disable=not sch.progress, leave=False, dynamic_ncols=True)
    for batch in loader:
        if st.batch_in_epoch >= n_batches or (sch.max_steps is not None and st.step >= sch.max_steps):
            break
        logs = trainer.train_step(batch)
        bar.update(1)
        bar.set_postfix({k: f"{v:.3g}" for k, v in logs.items() if k in shown}, refresh=False)
        if sch.checkpoint_every_steps and st.step % sch.checkpoint_every_steps == 0:
            save()
    bar.close()


def _save(trainer: GanTrainer, out: Path, keep: int) -> None:
    st = trainer.state
    folder = out / "checkpoints"
    trainer.save_checkpoint(folder / f"epoch{st.epoch:04d}-step{st.step:08d}.pt")
    trainer.save_checkpoint(out / "last.pt")
    for old in sorted(folder.glob("epoch*-step*.pt"))[:-keep] if keep > 0 else []:
        old.unlink()


def write_history(out: str | Path, rows: list[dict[str, Any]]) -> None:
    """history.json, history.csv (union of columns) and losses.png."""
    out = Path(out)
    (out / "history.json").write_text(json.dumps(rows, indent=2, default=float))
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    with open(out / "history.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, columns)
        writer.writeheader()
        writer.writerows(rows)
    if rows:
        plot_history(rows, out / "losses.png")


def plot_history(rows: list[dict[str, Any]], path: str | Path) -> None:
    """Losses and validation metrics per epoch (Agg canvas; no pyplot global state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(20, 4))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 5)
    x = [r["epoch"] for r in rows]
    named = sorted({k for r in rows for k in r if k.startswith(("d_fake_", "d_real_", "gp_"))
                    and not k.startswith(("d_forced", "d_skips", "d_steps"))})  # the other discriminators
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
    fig.savefig(path, dpi=100)


def _resolve_device(name: str | torch.device) -> torch.device:
    if str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"expected a CUDA device to be available for device={name!r}, got none")
    return device


def _resolve_amp(name: str, device: torch.device) -> torch.dtype | None:
    if name == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16  # bf16 needs no scaling
    return {"off": None, "fp16": torch.float16, "bf16": torch.bfloat16}[name]
