"""Training the real-time generator (reelrestore.models.realtime).

    restore-train --config training/configs/realtime_default.toml --data builtin --out runs/realtime

Losses, and why:
* envelope L1 on log band energies above the cutoff — the task itself, in the domain the
  network predicts, so it learns from the first step;
* multi-resolution STFT loss (spectral convergence + log magnitude at 512/1024/2048,
  Yamamoto et al. 2020) on the waveform — judges fine structure at several time/frequency
  trade-offs, the reconstruction loss that made GAN vocoders and AERO/AP-BWE train well;
* optionally (``loss.lsd_weight``) the log-spectral distance above the cutoff itself, the
  evaluation's metric, bin by bin: band energies can match while the bins under them do
  not (a tonal reference against a noise-like band), and only this term says so;
* optionally (``loss.envelope_corr_weight``) one minus the correlation over time of each
  band's magnitude above the cutoff with the reference's — what STOI measures of the band
  (an envelope's course, not its level): the L1 on log energies weighs a band's level in
  every column alike, and a band at the right mean level with a flat course scores well
  there yet follows no syllable;
* for a model trained for the low-latency framing (``loss.end_weight``), that distance
  once more on the STFT columns the engine plays of each frame (its newest hop), where the
  model sees only ``model.lookahead`` samples of future;
* the thesis's adversarial game — BCE with one-sided label smoothing, k generator steps
  per D step, D skipped while its fake loss is under 0.1 (forced after N skips) — with a
  band-energy discriminator, plus feature matching (MelGAN/HiFi-GAN), which steadies G.
Under torchrun the gradients are averaged over the ranks before each optimiser step and
the D-skip rule reads the mean over ranks of D's fake loss. The spectral-convergence and
envelope terms are ratios over the rank's batch, so N ranks of B items train on nearly,
not exactly, the loss of one process with N x B items.
The band below the cutoff cannot change (the model keeps it by construction), so every
loss only ever sees the restored band differ. The weights and the game's rules are the
``loss`` section, ``RealtimeLossConfig`` in ``training/config.py``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from reelrestore.models.realtime import BandDiscriminator, RealtimeGenerator
from reelrestore.models.spectral import istft, missing_power_merge, stft
from reelrestore.training.config import RealtimeTrainConfig
from reelrestore.training.loop import Trainer
from reelrestore.training.losses import bce, bce_discriminator_loss, bce_generator_loss

D_NAME = "band"  # the one discriminator's name in the loop state's D-skip bookkeeping


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


def log_spectral_distance(estimate: torch.Tensor, target: torch.Tensor, cutoff_hz: torch.Tensor, sample_rate: int,
                          max_hz: float, n_fft: int = 2048, hop: int = 512) -> torch.Tensor:
    """LSD above the cutoff as :func:`reelrestore.training.metrics.lsd_bands` scores it
    (log10 power of a zero-padded periodic-Hann STFT, clamped at 1e-8, RMS over the bins
    above ``cutoff_hz`` and at most ``max_hz``, mean over frames), averaged over the batch
    and differentiable. (B, L), (B, L), (B,) -> ()."""
    window = torch.hann_window(n_fft, periodic=True, device=estimate.device, dtype=estimate.dtype)

    def spectrum(x: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(x, n_fft, hop, window=window, center=True, pad_mode="constant", return_complex=True)
        return torch.stack([spec.real, spec.imag], dim=1)  # (B, 2, bins, T)

    return spectral_lsd(spectrum(estimate), spectrum(target), cutoff_hz, sample_rate / n_fft, max_hz)


def spectral_lsd(estimate: torch.Tensor, target: torch.Tensor, cutoff_hz: torch.Tensor, bin_hz: float,
                 max_hz: float) -> torch.Tensor:
    """`log_spectral_distance` between two spectra, (B, 2, bins, T) each: log10 power
    clamped at 1e-8, RMS over the bins above ``cutoff_hz`` and at most ``max_hz``, mean
    over the columns and the batch -> ()."""
    def log_power(spec: torch.Tensor) -> torch.Tensor:
        return torch.log10((spec[:, 0] ** 2 + spec[:, 1] ** 2).clamp_min(1e-8))  # (B, bins, T)

    freqs = torch.arange(estimate.shape[2], device=estimate.device, dtype=estimate.dtype) * bin_hz
    band = ((freqs[None, :] > cutoff_hz[:, None]) & (freqs[None, :] <= max_hz)).to(estimate.dtype)  # (B, bins)
    diff2 = (log_power(estimate) - log_power(target)) ** 2 * band[:, :, None]
    per_column = diff2.sum(dim=1) / band.sum(dim=1, keepdim=True).clamp_min(1.0)  # (B, T)
    return torch.sqrt(per_column + 1e-6).mean()


def envelope_correlation_loss(estimate: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """One minus the Pearson correlation over the columns of each band's magnitude
    (``exp(log power / 2)``) with the reference's, averaged under ``weight``: (B, bands, T)
    log band powers each, ``weight`` (B, bands, 1) -> (). A band whose reference does not
    move at all over the segment (digital silence) correlates with nothing and adds a
    constant, not a gradient."""
    def centred_unit(log_power: torch.Tensor) -> torch.Tensor:
        magnitude = torch.exp(0.5 * log_power)
        centred = magnitude - magnitude.mean(dim=-1, keepdim=True)
        return centred / (torch.linalg.vector_norm(centred, dim=-1, keepdim=True) + 1e-8)

    corr = (centred_unit(estimate) * centred_unit(target)).sum(dim=-1, keepdim=True)  # (B, bands, 1)
    return ((1.0 - corr) * weight).sum() / (weight.sum() + 1e-6)


class RealtimeTrainer(Trainer):
    """Generator, band discriminator and their optimisers; one :meth:`train_step` per batch.
    Checkpoint parts: ``generator``, ``discriminator``, ``opt_g``, ``opt_d``."""

    config_class = RealtimeTrainConfig
    shown = ("g_envelope", "g_stft", "g_adv")

    def __init__(self, cfg: RealtimeTrainConfig, device: str | torch.device | None = None) -> None:
        super().__init__(cfg, device)
        self.generator = RealtimeGenerator(cfg.model).to(self.device)
        nn_out = self.generator.out
        torch.nn.init.zeros_(nn_out.weight)  # start from "the passband's mean level, flat"
        torch.nn.init.zeros_(nn_out.bias)
        self.discriminator = BandDiscriminator(cfg.model.n_bands, cfg.loss.d_width, cfg.model.slope).to(self.device)
        o = cfg.optim
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=o.g_lr, betas=o.betas)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=o.d_lr, betas=o.betas)
        self._played = None  # the STFT columns the low framing plays, for loss.end_weight
        if cfg.loss.end_weight > 0:
            from reelrestore.engine.stream import played_columns  # the engine's framing (and ONNX Runtime) only then

            self._played = played_columns(cfg.model.contract, cfg.model.lookahead)

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
        restored = self._restore(xs, cutoff)  # (B, 2, bins, T)
        wave = istft(restored, x.shape[-1], self.cfg.model.n_fft, self.cfg.model.hop_length)  # (B, L)
        above = 1.0 - G.condition(cutoff)[:, :, None]  # (B, bands, 1)
        bands_out, bands_ref = G.band_energy(restored), G.band_energy(ys)
        env_loss = ((bands_out - bands_ref).abs() * above).sum() / (above.sum() * restored.shape[3] + 1e-6)
        stft_loss = multi_resolution_stft_loss(wave, y, lc.stft_sizes)
        logs = {"g_envelope": env_loss.item(), "g_stft": stft_loss.item()}
        total = lc.envelope_weight * env_loss + lc.stft_weight * stft_loss
        if lc.lsd_weight > 0:
            lsd = log_spectral_distance(wave, y, cutoff, self.cfg.model.sample_rate, lc.lsd_max_hz)
            total = total + lc.lsd_weight * lsd
            logs["g_lsd"] = lsd.item()
        if lc.envelope_corr_weight > 0:
            corr = envelope_correlation_loss(bands_out, bands_ref, above)
            total = total + lc.envelope_corr_weight * corr
            logs["g_env_corr"] = corr.item()
        if lc.end_weight > 0:  # the hop the low-latency framing plays
            cols = self._played
            end = spectral_lsd(restored[..., cols], ys[..., cols], cutoff, self.cfg.model.bin_hz, lc.lsd_max_hz)
            total = total + lc.end_weight * end
            logs["g_end_lsd"] = end.item()

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
            st.set_fake_loss(D_NAME, self.mean_over_ranks(bce(fake_logits.detach(), 0.0)))  # alike on every rank
            logs.update({"g_adv": adv.item(), "g_fm": fm.item()})
        self.opt_g.zero_grad(set_to_none=True)
        total.backward()
        self.average_gradients(G)  # over ranks (torchrun)
        if self.cfg.optim.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(G.parameters(), self.cfg.optim.grad_clip)
        self.opt_g.step()
        logs["g_total"] = total.item()
        st.g_steps += 1
        return self.finish_batch(logs)  # means over ranks in a torchrun run

    def _d_step(self, real_img: torch.Tensor, fake_img: torch.Tensor) -> dict[str, float]:
        lc, st = self.cfg.loss, self.state
        skip, forced = st.skip_d(D_NAME, lc.d_skip_threshold, lc.d_max_skips)
        if skip:
            return {"d_skipped": 1.0}
        real_logits, _ = self.discriminator(real_img)
        fake_logits, _ = self.discriminator(fake_img)
        loss, real, fake = bce_discriminator_loss(real_logits, fake_logits, lc.real_label, 0.0)
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self.average_gradients(self.discriminator)
        self.opt_d.step()
        st.d_stepped(D_NAME, self.mean_over_ranks(fake), forced)
        return {"d_total": loss.item(), "d_real": real.item(), "d_fake": fake.item(), "d_skipped": 0.0}

    def _restore(self, xs: torch.Tensor, cutoff: torch.Tensor) -> torch.Tensor:
        """What the losses judge: the generator's output, or the engine's merge of its band
        into the input (``loss.merge``)."""
        position = None
        if self.cfg.model.noise_start == "position":  # a frame from anywhere in a stream
            position = torch.randint(0, self.cfg.model.noise_frames, (xs.shape[0],), device=xs.device).float()
        if self.cfg.loss.merge == "engine":
            generated, keep = self.generator.generate(xs, cutoff, position=position)
            return missing_power_merge(xs, generated, keep)
        return self.generator(xs, cutoff, position=position)

    def restore_batch(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        x, _, xs, _, cutoff = self._batch(batch)
        m = self.cfg.model
        return istft(self._restore(xs, cutoff), x.shape[-1], m.n_fft, m.hop_length), {}

    def parts(self) -> dict[str, Any]:
        return {"generator": self.generator, "discriminator": self.discriminator, "opt_g": self.opt_g,
                "opt_d": self.opt_d}
