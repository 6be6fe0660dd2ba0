"""Training the time-domain U-Net (reelrestore.models.unet) as a WGAN-GP.

    restore-train --config training/configs/unet_wgan_tiny.toml --data builtin --out runs/unet

One batch of paired 0.5 s segments is one step:

* **Autoencoder pre-training** (the first ``ae_pretrain_steps`` batches): the autoencoder
  learns to reproduce the *clean* targets (L2 + the power-spectrogram loss); then it is
  frozen and its bottleneck φ becomes the feature space of L_ae. Those batches train
  nothing else.
* **Critic** (every batch after that): E[D(ŷ)] − E[D(y)] + λ·GP on waveforms, with ŷ the
  generator's raw output.
* **Generator** (every ``n_critic``-th of those batches, so the critic takes ``n_critic``
  steps per generator step): ``time_weight·L_time + freq_weight·L_freq + ae_weight·L_ae +
  adv_weight·(−E[D(ŷ)])`` with
  L_time = MSE of waveforms, L_freq = MSE of log10 power spectrograms (contract STFT),
  L_ae = MSE of autoencoder bottleneck features.
* **Dynamic MSE** (``content_schedule = "dynamic"``, the thesis's future work): L_time is
  switched off once the generator reproduces its input band — the passband error of its
  raw output against the target below the cutoff falls under ``content_off_below_db`` —
  or from epoch ``content_off_epoch`` on; the same rule as the thesis trainer's
  (:class:`reelrestore.training.losses.ContentSchedule`).

Under torchrun the gradients are averaged over the ranks before each optimiser step and
the dynamic MSE's switch reads the mean over ranks of the passband error.

The losses see the raw U-Net output over the whole band (it has to learn to keep the
input band too); the engine and validation see it merged: input below the cutoff, U-Net
above (``UNetSpectrumModel``). The weights and rules are the ``loss`` section,
``UNetLossConfig`` in ``training/config.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from reelrestore.models.spectral import istft, keep_gains, stft
from reelrestore.models.unet import UNetAutoencoder, UNetCritic, UNetGenerator
from reelrestore.training.config import UNetTrainConfig
from reelrestore.training.loop import Trainer
from reelrestore.training.losses import (
    ContentSchedule,
    cutoff_bins,
    gradient_penalty,
    passband_error_db,
    wgan_critic_loss,
    wgan_generator_loss,
)


def log_power(spec: torch.Tensor) -> torch.Tensor:
    """Contract spectrum (B, 2, F, T) -> log10 power (B, F, T), clamped at 1e-8 as in LSD."""
    return torch.log10(spec.square().sum(1).clamp_min(1e-8))


class UNetTrainer(Trainer):
    """Generator, critic, autoencoder and their optimisers. Checkpoint parts:
    ``generator``, ``discriminator`` (the critic), ``autoencoder``, ``opt_g``, ``opt_d``,
    ``opt_ae``."""

    config_class = UNetTrainConfig
    shown = ("g_time", "g_freq", "g_ae", "d_wasserstein", "ae_loss")

    def __init__(self, cfg: UNetTrainConfig, device: str | torch.device | None = None) -> None:
        super().__init__(cfg, device)
        self.generator = UNetGenerator(cfg.model).to(self.device)
        with torch.no_grad():  # input skip: start near the identity (not at it: a zero output
            self.generator.out.weight.mul_(0.01)  # layer would block every other gradient)
            self.generator.out.bias.zero_()
        self.critic = UNetCritic(cfg.model).to(self.device)
        self.autoencoder = UNetAutoencoder(cfg.model).to(self.device)
        o = cfg.optim
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=o.g_lr, betas=o.betas)
        self.opt_d = torch.optim.Adam(self.critic.parameters(), lr=o.d_lr, betas=o.betas)
        self.opt_ae = torch.optim.Adam(self.autoencoder.parameters(), lr=o.g_lr, betas=o.betas)
        self.content = ContentSchedule.from_config(cfg.loss)

    def _batch(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = torch.as_tensor(batch["damaged"]).to(self.device, torch.float32)  # (B, L)
        y = torch.as_tensor(batch["target"]).to(self.device, torch.float32)  # (B, L)
        cutoff = torch.as_tensor(batch["cutoff_hz"]).to(self.device, torch.float32)  # (B,)
        return x, y, cutoff

    def _step(self, loss: torch.Tensor, net: torch.nn.Module, opt: torch.optim.Optimizer) -> None:
        opt.zero_grad(set_to_none=True)
        loss.backward()
        self.average_gradients(net)  # over ranks (torchrun)
        if self.cfg.optim.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(net.parameters(), self.cfg.optim.grad_clip)
        opt.step()

    def train_step(self, batch: Mapping[str, Any]) -> dict[str, float]:
        lc, st = self.cfg.loss, self.state
        x, y, cutoff = self._batch(batch)
        if st.step < lc.ae_pretrain_steps:
            logs = self._ae_step(y)
        else:
            gan_step = st.step - lc.ae_pretrain_steps
            g_due = (gan_step + 1) % lc.n_critic == 0
            with torch.set_grad_enabled(g_due):
                fake = self.generator(x)  # (B, L), reused by the critic and the generator step
            logs = self._critic_step(y, fake.detach())
            if g_due:
                logs.update(self._g_step(y, fake, cutoff))
        return self.finish_batch(logs)  # means over ranks in a torchrun run

    def _ae_step(self, y: torch.Tensor) -> dict[str, float]:
        m = self.cfg.model
        out = self.autoencoder(y)
        loss = self.cfg.loss.time_weight * F.mse_loss(out, y) + F.mse_loss(
            log_power(stft(out, m.n_fft, m.hop_length)), log_power(stft(y, m.n_fft, m.hop_length)))
        self._step(loss, self.autoencoder, self.opt_ae)
        return {"ae_loss": loss.item()}

    def _critic_step(self, real: torch.Tensor, fake: torch.Tensor) -> dict[str, float]:
        w = wgan_critic_loss(self.critic(real), self.critic(fake))
        gp = gradient_penalty(self.critic, real, fake)
        loss = w + self.cfg.loss.gp_lambda * gp
        self._step(loss, self.critic, self.opt_d)
        self.state.d_steps += 1
        return {"d_total": loss.item(), "d_wasserstein": -w.item(), "gp": gp.item()}

    def _g_step(self, y: torch.Tensor, fake: torch.Tensor, cutoff: torch.Tensor) -> dict[str, float]:
        lc, m, st = self.cfg.loss, self.cfg.model, self.state
        self.critic.requires_grad_(False)
        self.autoencoder.requires_grad_(False)
        try:
            l_time = F.mse_loss(fake, y)
            fake_spec, real_spec = stft(fake, m.n_fft, m.hop_length), stft(y, m.n_fft, m.hop_length)
            l_freq = F.mse_loss(log_power(fake_spec), log_power(real_spec))
            l_ae = F.mse_loss(self.autoencoder.features(fake), self.autoencoder.features(y)) \
                if lc.ae_weight > 0 else fake.new_zeros(())
            adv = wgan_generator_loss(self.critic(fake))
            passband = passband_error_db(fake_spec.detach(), real_spec, cutoff_bins(cutoff, m.sample_rate, m.n_fft))
            weight = self.content.weight(st, lc.time_weight, self.mean_over_ranks(passband))
            total = weight * l_time + lc.freq_weight * l_freq + lc.ae_weight * l_ae + lc.adv_weight * adv
            self._step(total, self.generator, self.opt_g)
        finally:
            self.critic.requires_grad_(True)
            self.autoencoder.requires_grad_(True)
        st.g_steps += 1
        return {"g_time": l_time.item(), "g_freq": l_freq.item(), "g_ae": l_ae.item(), "g_adv": adv.item(),
                "g_total": total.item(), "g_content_weight": weight, "g_passband_db": passband.item()}

    def restore_batch(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        """What the exported model does, in torch.stft terms: input below the cutoff, the
        U-Net's output above it. (B, L) -> (B, L)."""
        x, _, cutoff = self._batch(batch)
        m = self.cfg.model
        spec = stft(x, m.n_fft, m.hop_length)  # (B, 2, F, T)
        generated = stft(self.generator(x), m.n_fft, m.hop_length)
        keep = keep_gains(cutoff / (m.sample_rate / m.n_fft), spec.shape[2], m.fade_bins)[:, None, :, None]
        return istft(keep * spec + (1.0 - keep) * generated, x.shape[-1], m.n_fft, m.hop_length), {}

    def parts(self) -> dict[str, Any]:
        return {"generator": self.generator, "discriminator": self.critic, "autoencoder": self.autoencoder,
                "opt_g": self.opt_g, "opt_d": self.opt_d, "opt_ae": self.opt_ae}
