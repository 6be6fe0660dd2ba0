"""Training the real-time generator (reelrestore.models.realtime).

    restore-train --config training/configs/realtime_default.toml --data builtin --out runs/realtime

Losses, and why:
* envelope L1 on log band energies above the cutoff — the task itself, in the domain the
  network predicts, so it learns from the first step;
* multi-resolution STFT loss (spectral convergence + log magnitude at 512/1024/2048,
  Yamamoto et al. 2020) on the waveform — judges fine structure at several time/frequency
  trade-offs, the reconstruction loss that made GAN vocoders and AERO/AP-BWE train well;
* the thesis's adversarial game — BCE with one-sided label smoothing, k generator steps
  per D step, D skipped while its fake loss is under 0.1 (forced after N skips) — with a
  band-energy discriminator, plus feature matching (MelGAN/HiFi-GAN), which steadies G.
The band below the cutoff cannot change (the model keeps it by construction), so every
loss only ever sees the restored band differ.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from reelrestore.models.realtime import BandDiscriminator, RealtimeConfig, RealtimeGenerator
from reelrestore.models.thesis import istft, stft
from reelrestore.training.config import (  # noqa: F401  (read_config_file: re-exported for restore-train)
    DataConfig,
    OptimConfig,
    ScheduleConfig,
    _build,
    _parse_value,
    _plain,
    read_config_file,
)
from reelrestore.training.gan import (
    TrainState,
    _resolve_device,
    mean_scores,
    save_atomic,
    score_items,
    train_epoch,
    write_history,
)
from reelrestore.training.losses import bce, bce_discriminator_loss, bce_generator_loss

GENERATOR_CLASS = "reelrestore.models.realtime.RealtimeGenerator"
CHECKPOINT_FORMAT = "reelrestore-realtime-1"


@dataclass(frozen=True)
class RealtimeLossConfig:
    envelope_weight: float = 1.0  # L1 on log band energies above the cutoff
    stft_weight: float = 1.0  # multi-resolution STFT loss on the waveform
    stft_sizes: tuple[int, ...] = (512, 1024, 2048)
    adv_weight: float = 0.1  # adversarial term: adds texture, kept small so it cannot lead
    fm_weight: float = 1.0  # feature matching on D's hidden maps
    real_label: float = 0.9  # one-sided label smoothing (the thesis's 0.9)
    g_steps_per_d: int = 1  # k generator steps per discriminator step
    d_skip_threshold: float = 0.1  # skip D while its fake loss is below this ...
    d_max_skips: int = 10  # ... but force a D step after this many skips in a row
    adv_start_step: int = 200  # reconstruction-only warm-up before the adversary joins
    d_width: int = 32


@dataclass(frozen=True)
class RealtimeTrainConfig:
    """Everything a real-time run needs; travels (as a dict) in every checkpoint."""

    trainer: str = "realtime"
    model: RealtimeConfig = field(default_factory=RealtimeConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(g_lr=1e-3, d_lr=2e-4))
    loss: RealtimeLossConfig = field(default_factory=RealtimeLossConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)

    def to_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RealtimeTrainConfig":
        sections = {f.name: f for f in fields(cls)} 
        unknown = sorted(set(data) - set(sections))
        if unknown:
            raise ValueError(f"unknown config sections {unknown}; expected some of {sorted(sections)}")
        if data.get("trainer", "realtime") != "realtime":
            raise ValueError(f"expected trainer = 'realtime', got {data.get('trainer')!r}")
        types = {"model": RealtimeConfig, "data": DataConfig, "optim": OptimConfig,
                 "loss": RealtimeLossConfig, "schedule": ScheduleConfig}
        built = {name: _build(kind, data[name]) for name, kind in types.items() if name in data}
        return cls(**built)


def is_realtime_config(data: Mapping[str, Any]) -> bool:
    return data.get("trainer") == "realtime"


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """``section.key=value`` overrides on a realtime config dict."""
    out = {k: dict(v) if isinstance(v, Mapping) else v for k, v in data.items()}
    for item in overrides:
        key, sep, raw = item.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot:
            raise ValueError(f"expected an override like section.key=value, got {item!r}")
        out.setdefault(section, {})[name] = _parse_value(raw.strip())
    return out


# ----------------------------------------------------------------------------- losses
def multi_resolution_stft_loss(estimate: torch.Tensor, target: torch.Tensor, sizes: Sequence[int]) -> torch.Tensor:
    """Mean over sizes of spectral convergence + L1 log magnitude. (B, L) each."""
    total = estimate.new_zeros(())
    for n in sizes:
        window = torch.hann_window(n, device=estimate.device)
        e = torch.stft(estimate, n, n // 4, window=window, return_complex=True).abs()
        t = torch.stft(target, n, n // 4, window=window, return_complex=True).abs()
        # spectral convergence over the whole batch: a silent segment (||t|| = 0) must
        # not divide by zero and dwarf the rest
        sc = torch.linalg.norm(t - e) / (torch.linalg.norm(t) + 1e-7)
        mag = F.l1_loss(torch.log(e + 1e-7), torch.log(t + 1e-7))
        total = total + sc + mag
    return total / len(sizes)


class RealtimeTrainer:
    """Generator, band discriminator, optimisers, loop state; one `train_step` per batch."""

    shown = ("g_envelope", "g_stft", "g_adv")  # keys on the progress bar

    def __init__(self, cfg: RealtimeTrainConfig, device: str | None = None):
        self.cfg = cfg
        self.device = _resolve_device(device or cfg.schedule.device)
        torch.manual_seed(cfg.schedule.seed)
        self.generator = RealtimeGenerator(cfg.model).to(self.device)
        nn_out = self.generator.out
        torch.nn.init.zeros_(nn_out.weight)  # start from "the passband's mean level, flat"
        torch.nn.init.zeros_(nn_out.bias)
        self.discriminator = BandDiscriminator(cfg.model.n_bands, cfg.loss.d_width, cfg.model.slope).to(self.device)
        o = cfg.optim
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=o.g_lr, betas=o.betas)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=o.d_lr, betas=o.betas)
        self.state = TrainState()
        self.history: list[dict[str, Any]] = []

    def _batch(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, ...]:
        x = torch.as_tensor(batch["damaged"]).to(self.device, torch.float32)  # (B, L)
        y = torch.as_tensor(batch["target"]).to(self.device, torch.float32)  # (B, L)
        cutoff = torch.as_tensor(batch["cutoff_hz"]).to(self.device, torch.float32)  # (B,)
        m = self.cfg.model
        return x, y, stft(x, m.n_fft, m.hop_length), stft(y, m.n_fft, m.hop_length), cutoff

    def _image(self, spec: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        """Band-energy image for D: (B, 1, bands, T), in the input's level reference."""
        return ((self.generator.band_energy(spec) - ref) / 10.0)[:, None]

    def train_step(self, batch: Mapping[str, Any]) -> dict[str, float]:
        lc, st, G, D = self.cfg.loss, self.state, self.generator, self.discriminator
        x, y, xs, ys, cutoff = self._batch(batch)
        restored = G(xs, cutoff)  # (B, 2, bins, T)
        wave = istft(restored, x.shape[-1], self.cfg.model.n_fft, self.cfg.model.hop_length)  # (B, L)
        above = 1.0 - G.condition(cutoff)[:, :, None]  # (B, bands, 1)
        env_loss = ((G.band_energy(restored) - G.band_energy(ys)).abs() * above).sum() / (
            above.sum() * restored.shape[3] + 1e-6)
        stft_loss = multi_resolution_stft_loss(wave, y, lc.stft_sizes)
        logs = {"g_envelope": env_loss.item(), "g_stft": stft_loss.item()}
        total = lc.envelope_weight * env_loss + lc.stft_weight * stft_loss

        adversarial = st.step >= lc.adv_start_step and lc.adv_weight > 0
        if adversarial:
            with torch.no_grad():
                _, ref, _ = G.envelope(xs, cutoff)
            real_img, fake_img = self._image(ys, ref), self._image(restored, ref)
            if st.step % lc.g_steps_per_d == 0:
                logs.update(self._d_step(real_img, fake_img.detach()))
            D.requires_grad_(False)
            fake_logits, fake_feats = D(fake_img)
            with torch.no_grad():
                _, real_feats = D(real_img)
            D.requires_grad_(True)
            adv = bce_generator_loss(fake_logits, 1.0)
            fm = sum(F.l1_loss(f, r) for f, r in zip(fake_feats, real_feats)) / len(fake_feats)
            total = total + lc.adv_weight * adv + lc.fm_weight * fm
            st.last_d_fake_loss = bce(fake_logits.detach(), 0.0).item()
            logs.update({"g_adv": adv.item(), "g_fm": fm.item()})
        self.opt_g.zero_grad(set_to_none=True)
        total.backward()
        if self.cfg.optim.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(G.parameters(), self.cfg.optim.grad_clip)
        self.opt_g.step()
        logs["g_total"] = total.item()
        st.g_steps += 1
        st.finish_batch(logs)
        return logs

    def _d_step(self, real_img: torch.Tensor, fake_img: torch.Tensor) -> dict[str, float]:
        lc, st = self.cfg.loss, self.state
        skip, forced = st.skip_d(lc.d_skip_threshold, lc.d_max_skips)
        if skip:
            return {"d_skipped": 1.0}
        real_logits, _ = self.discriminator(real_img)
        fake_logits, _ = self.discriminator(fake_img)
        loss, real, fake = bce_discriminator_loss(real_logits, fake_logits, lc.real_label, 0.0)
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_d.step()
        st.d_stepped(fake.item(), forced)
        return {"d_total": loss.item(), "d_real": real.item(), "d_fake": fake.item(), "d_skipped": 0.0}

    @torch.no_grad()
    def validate(self, loader: DataLoader, max_batches: int | None = None) -> dict[str, float]:
        G = self.generator
        G.eval()
        rows = []
        try:
            for i, batch in enumerate(loader):
                if max_batches is not None and i >= max_batches:
                    break
                x, y, xs, ys, cutoff = self._batch(batch)
                wave = istft(G(xs, cutoff), x.shape[-1], self.cfg.model.n_fft, self.cfg.model.hop_length)
                rows += score_items(batch, wave, self.cfg.model.sample_rate)
        finally:
            G.train()
        return mean_scores(rows)

    # -- checkpoints -------------------------------------------------------------------
    def checkpoint(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "model_class": GENERATOR_CLASS,
            "model_config": self.cfg.model.to_dict(),
            "config": self.cfg.to_dict(),
            "generator": self.generator.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "state": asdict(self.state),
            "history": list(self.history),
            "torch_rng": torch.get_rng_state(),
        }

    def save_checkpoint(self, path: str | Path) -> Path:
        return save_atomic(self.checkpoint(), path)

    @classmethod
    def from_checkpoint(cls, path: str | Path, cfg: RealtimeTrainConfig | None = None) -> "RealtimeTrainer":
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        if ckpt.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"expected a {CHECKPOINT_FORMAT} checkpoint, got {ckpt.get('format')!r}")
        trainer = cls(cfg or RealtimeTrainConfig.from_dict(ckpt["config"]))
        if ckpt["model_config"] != trainer.cfg.model.to_dict():
            raise ValueError("the checkpoint's model config differs from the requested one")
        trainer.generator.load_state_dict(ckpt["generator"])
        trainer.discriminator.load_state_dict(ckpt["discriminator"])
        trainer.opt_g.load_state_dict(ckpt["opt_g"])
        trainer.opt_d.load_state_dict(ckpt["opt_d"])
        trainer.state = TrainState(**{**ckpt["state"], "started": time.time()})
        trainer.history = list(ckpt["history"])
        torch.set_rng_state(ckpt["torch_rng"])
        return trainer

    def epoch_row(self) -> dict[str, Any]:
        st = self.state
        row: dict[str, Any] = {"epoch": st.epoch + 1, "step": st.step, "d_skips": st.d_skips,
                               "d_forced": st.d_forced, "time_s": round(time.time() - st.started, 3)}
        row.update({k: st.sums[k] / st.counts[k] for k in st.sums})
        return row


def fit_trainer(trainer: Any, train_set, val_set, out_dir: str | Path) -> list[dict[str, Any]]:
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
