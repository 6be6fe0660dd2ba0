"""The thesis's GAN trainer for :mod:`reelrestore.models.thesis` (driven by
:func:`reelrestore.training.loop.fit`, like every trainer).

    restore-train --config training/configs/thesis_exp11_tiny.toml --data builtin --out runs/tiny

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
  resumes as soon as G starts fooling it. Skips are counted (``d_skips`` in total, the
  streak in a row per D); once ``d_max_skips`` due steps in a row were skipped, the
  next due step is forced (``d_forced``) and the streak resets. Then a G step:
  ``adv_weight * BCE(D(y), g_target) + content_weight * MSE(y, z_real)``.
* **WGAN-GP**: a critic step on every batch (``D(y) - D(real) + lambda * GP``) and a G step
  on every ``n_critic``-th batch; labels and the D-skip rule do not apply.

Two options of the thesis's "future work", both off by default:

* **Several discriminators** (``loss.discriminators``, any non-empty subset of ``image``,
  ``spectral``, ``level``): ``image`` is the D above; ``spectral`` and ``level`` judge the
  restored contract spectrum ``G.synthesise(y, x)`` (real: the target's STFT) through
  fixed views, see :mod:`reelrestore.models.critics`. Each has its own Adam, grad scaler
  and D-skip state (skip while THAT D's latest fake loss is below the threshold, forced
  after ``d_max_skips`` in a row; ``d_steps``/``d_skips``/``d_forced`` count all of them).
  BCE: every D is trained with the smoothed labels; WGAN-GP: every critic has its own
  critic loss and gradient penalty. G's adversarial loss is the sum over the
  discriminators, each weighted by ``adv_weight``. Logged keys carry the name
  (``d_fake_spectral``, ``gp_level``, ``g_adv_spectral``); the ``image`` D has the
  plain keys (``d_fake``, ``gp``), and ``g_adv`` is always the sum.
* **Dynamic content schedule** (``loss.content_schedule = "dynamic"``): the MSE term's
  weight drops to 0 for good (latched in the loop state, with the step and the
  reason) from epoch ``content_off_epoch`` on, or once G reproduces its input band: the
  running mean (EMA over G steps) of the passband error -- energy of (restored -
  target) below the cutoff over the target's, in dB,
  :func:`~reelrestore.training.losses.passband_error_db` -- is below
  ``content_off_below_db`` after at least ``content_min_steps`` G steps
  (:class:`~reelrestore.training.losses.ContentSchedule`). Every G step logs the weight
  used (``g_content_weight``) and the passband error of the restored batch
  (``g_passband_db``) and of the damaged input itself (``g_passband_input_db``: what a
  plain pass-through would score, the floor the damage in the band sets).

Under torchrun (several ranks, :mod:`reelrestore.training.distributed`) every ``_update``
averages the gradients over the ranks right after the backward pass (still loss-scaled,
so an fp16 overflow on any rank skips the step on all), and the D-skip rule and the
content schedule read the means over ranks of the fake loss and the passband error.

Mixed precision (``torch.autocast``) covers only the networks; the representation, the
critics' views, losses and the gradient penalty run in float32. Checkpoint parts:
``generator``, ``opt_g``, ``scaler_g`` and, per discriminator name,
``discriminator_<name>``, ``opt_d_<name>``, ``scaler_d_<name>``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import torch

from reelrestore.models.critics import LevelCritic, SpectralCritic
from reelrestore.models.spectral import istft, stft
from reelrestore.models.thesis import ThesisDiscriminator, ThesisGenerator, count_layers, format_counts
from reelrestore.training.config import TrainConfig
from reelrestore.training.loop import Trainer
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

__all__ = ["GanTrainer", "log_key"]

# fp16 loss scaling starts here, not at GradScaler's 2^16: the thesis recipe's loss (MSE
# x100 plus the adversary) times 2^16 overflows fp16 in the first backward pass, so every
# first step was skipped and the weights did not move. The scaler still grows the scale
# (x2 after 2000 clean steps) and halves it on overflow.
INIT_LOSS_SCALE = 1024.0


def log_key(base: str, name: str) -> str:
    """Log / history key of discriminator ``name``: ``d_fake`` for the "image" D,
    ``d_fake_spectral`` for the others."""
    return base if name == "image" else f"{base}_{name}"


class GanTrainer(Trainer):
    """Generator, discriminators, their optimisers and grad scalers; one
    :meth:`train_step` per batch."""

    config_class = TrainConfig
    shown = ("g_adv", "g_content", "d_fake", "gp")

    def __init__(self, cfg: TrainConfig, device: str | torch.device | None = None) -> None:
        super().__init__(cfg, device)
        self.amp_dtype = _resolve_amp(cfg.schedule.amp, self.device)
        self.generator = ThesisGenerator(cfg.model).to(self.device)
        # In config order; built after G from the same seed, so ("image",) starts as a single-D run.
        self.discriminators: dict[str, torch.nn.Module] = {
            name: self._build_discriminator(name).to(self.device) for name in cfg.loss.discriminators}
        o = cfg.optim
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=o.g_lr, betas=o.betas)
        self.opt_ds = {name: torch.optim.Adam(D.parameters(), lr=o.d_lr, betas=o.betas)
                       for name, D in self.discriminators.items()}
        scale = self.amp_dtype == torch.float16  # bf16 and fp32 need no loss scaling
        self.scaler_g = self._scaler(scale)
        self.scaler_ds = {name: self._scaler(scale) for name in self.discriminators}
        self.content_schedule = ContentSchedule.from_config(cfg.loss)

    def _scaler(self, enabled: bool) -> torch.amp.GradScaler:
        return torch.amp.GradScaler(self.device.type, init_scale=INIT_LOSS_SCALE, enabled=enabled)

    def _build_discriminator(self, name: str) -> torch.nn.Module:
        m = self.cfg.model
        if name == "image":
            return ThesisDiscriminator(m)
        width = self.cfg.loss.critic_width or m.d_width
        act, slope = m.discriminator_activation
        slope = slope if act == "leaky_relu" else 0.3  # the critics always use LeakyReLU
        if name == "spectral":
            return SpectralCritic(m.n_bins, width, slope, m.d_dropout)
        return LevelCritic(m.n_bins, m.sample_rate, width, slope=slope, dropout=m.d_dropout)

    def parts(self) -> dict[str, Any]:
        parts: dict[str, Any] = {"generator": self.generator, "opt_g": self.opt_g, "scaler_g": self.scaler_g}
        for name, D in self.discriminators.items():
            parts.update({f"discriminator_{name}": D, f"opt_d_{name}": self.opt_ds[name],
                          f"scaler_d_{name}": self.scaler_ds[name]})
        return parts

    def summary(self) -> str:
        """The generator's architecture and its layer table (parameters, multiply-adds)."""
        m = self.cfg.model
        table = format_counts(count_layers(self.generator, (1, 2, m.n_bins, m.segment_frames)))
        return f"{m.architecture}\n\n{table}\n"

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
        """D's (real, fake) targets in the running epoch."""
        lc = self.cfg.loss
        return smoothed_labels(self.state.epoch, lc.label_epochs, lc.real_labels, lc.fake_labels)

    def _kernels(self) -> contextlib.AbstractContextManager:
        """bf16 autocast on a CPU runs its convolutions, forward and backward, without
        oneDNN. On CPUs with AMX (Sapphire Rapids), torch 2.13's oneDNN bf16 convolutions
        return NaN for some small shapes, varying from call to call: measured here, a
        (2, 32, 65, 2) input to the thesis D's last conv gave NaN in 5 of 5 tiny steps,
        0 of 5 with ``ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16`` or without oneDNN (which was
        also not slower at these sizes: 1.8 s against 2.5 s for the 5 steps)."""
        if self.amp_dtype != torch.bfloat16 or self.device.type != "cpu":
            return contextlib.nullcontext()
        return _without_onednn()

    def train_step(self, batch: Mapping[str, Any]) -> dict[str, float]:
        """One batch: D/critic steps when due, a G step when due. Returns logged values."""
        with self._kernels():
            return self._train_step(batch)

    def _train_step(self, batch: Mapping[str, Any]) -> dict[str, float]:
        lc, st = self.cfg.loss, self.state
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
        if lc.loss == "bce":
            real_label, fake_label = self.labels()
            with self._autocast():
                y = G.net(z).float()  # (B, C, F', T), reused by the D and the G step
            inputs, restored = self._d_inputs(y, z_real, x_spec, y_spec)
            if st.step % lc.g_steps_per_d == 0:
                for name, (real, fake) in inputs.items():
                    logs.update(self._bce_d_step(name, real, fake.detach(), real_label, fake_label))
            logs.update(self._g_step(y, z_real, inputs, restored, x_spec, y_spec, cutoff, fake_label))
        else:
            g_due = (st.step + 1) % lc.n_critic == 0
            with torch.set_grad_enabled(g_due):
                with self._autocast():
                    y = G.net(z).float()
                inputs, restored = self._d_inputs(y, z_real, x_spec, y_spec)
            for name, (real, fake) in inputs.items():
                logs.update(self._critic_step(name, real, fake.detach()))
            if g_due:
                logs.update(self._g_step(y, z_real, inputs, restored, x_spec, y_spec, cutoff, None))
        return self.finish_batch(logs)  # means over ranks in a torchrun run

    def _cutoff_bins(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor | None:
        """The batch's cutoffs as fractional STFT bins (B,), or None when it has none."""
        if "cutoff_hz" not in batch:
            if self.content_schedule.kind == "dynamic" and self.cfg.loss.content_off_below_db is not None:
                raise ValueError(f"expected batch key 'cutoff_hz' for loss.content_schedule='dynamic' with "
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
        self.average_gradients(net)  # over ranks (torchrun); still scaled: an overflow reaches every rank
        if self.cfg.optim.grad_clip is not None:
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(net.parameters(), self.cfg.optim.grad_clip)
        scaler.step(opt)
        scaler.update()

    def _bce_d_step(self, name: str, real: torch.Tensor, fake: torch.Tensor, real_label: float,
                    fake_label: float) -> dict[str, float]:
        lc, st = self.cfg.loss, self.state
        skip, forced = st.skip_d(name, lc.d_skip_threshold, lc.d_max_skips)
        if skip:
            return {log_key("d_skipped", name): 1.0}
        D = self.discriminators[name]
        with self._autocast():
            real_logits, fake_logits = D(real), D(fake)  # (B,), (B,)
        loss, real_loss, fake_loss = bce_discriminator_loss(real_logits, fake_logits, real_label, fake_label)
        self._update(loss, D, self.opt_ds[name], self.scaler_ds[name])
        st.d_stepped(name, self.mean_over_ranks(fake_loss), forced)  # the skip rule decides alike on every rank
        return {log_key("d_total", name): loss.item(), log_key("d_real", name): real_loss.item(),
                log_key("d_fake", name): fake_loss.item(), log_key("d_skipped", name): 0.0,
                log_key("d_forced", name): float(forced)}

    def _critic_step(self, name: str, real: torch.Tensor, fake: torch.Tensor) -> dict[str, float]:
        D = self.discriminators[name]
        with self._autocast():
            real_scores, fake_scores = D(real), D(fake)  # (B,), (B,)
        w = wgan_critic_loss(real_scores, fake_scores)
        gp = gradient_penalty(D, real, fake)  # float32, outside autocast
        loss = w + self.cfg.loss.gp_lambda * gp
        self._update(loss, D, self.opt_ds[name], self.scaler_ds[name])
        self.state.d_steps += 1
        return {log_key("d_total", name): loss.item(), log_key("d_wasserstein", name): -w.item(),
                log_key("gp", name): gp.item()}

    def _g_step(self, y: torch.Tensor, z_real: torch.Tensor, inputs: Mapping[str, tuple[torch.Tensor, torch.Tensor]],
                restored: torch.Tensor | None, x_spec: torch.Tensor, y_spec: torch.Tensor,
                cutoff: torch.Tensor | None, fake_label: float | None) -> dict[str, float]:
        lc, st = self.cfg.loss, self.state
        logs: dict[str, float] = {}
        passband = None
        if cutoff is not None:
            with torch.no_grad():
                if restored is None:
                    restored = self.generator.synthesise(y, x_spec)
                passband = self.mean_over_ranks(passband_error_db(restored.detach(), y_spec, cutoff))
                logs["g_passband_db"] = passband
                logs["g_passband_input_db"] = passband_error_db(x_spec, y_spec, cutoff).item()
        content_weight = self.content_schedule.weight(st, lc.content_weight, passband)
        for D in self.discriminators.values():
            D.requires_grad_(False)  # G's backward needs D's input gradient only
        try:
            with self._autocast():
                logits = {name: D(inputs[name][1]) for name, D in self.discriminators.items()}  # (B,) each
            if lc.loss == "bce":
                advs = {name: bce_generator_loss(l, lc.g_target) for name, l in logits.items()}
            else:
                advs = {name: wgan_generator_loss(l) for name, l in logits.items()}
            adv = sum(advs.values())  # each D's term, each weighted by adv_weight below
            content = content_loss(y, z_real, lc.content_loss)
            total = lc.adv_weight * adv + content_weight * content
            self._update(total, self.generator, self.opt_g, self.scaler_g)
        finally:
            for D in self.discriminators.values():
                D.requires_grad_(True)
        st.g_steps += 1
        if fake_label is not None:  # free refresh of each D's fake loss for the skip rule
            for name, l in logits.items():
                st.set_fake_loss(name, self.mean_over_ranks(bce(l.detach(), fake_label)))
        logs.update({"g_adv": adv.item(), "g_content": content.item(), "g_total": total.item(),
                     "g_content_weight": content_weight})
        if len(advs) > 1:
            logs.update({f"g_adv_{name}": a.item() for name, a in advs.items()})
        return logs

    # ------------------------------------------------------------------------ validation
    def restore_batch(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        """Generator on the damaged STFT -> iSTFT, (B, L); and the content loss against the
        target's image (``val_content``)."""
        G, m = self.generator, self.cfg.model
        x_spec, y_spec = self.spectra(batch)
        z = G.analyse(x_spec)
        with self._kernels(), self._autocast():
            y = G.net(z).float()
        content = content_loss(y, G.analyse(y_spec, ref=x_spec)).item()
        restored = istft(G.synthesise(y, x_spec), batch["damaged"].shape[-1], m.n_fft, m.hop_length)  # (B, L)
        return restored, {"content": content}

    # ---------------------------------------------------------------------- epoch rows
    def epoch_values(self) -> dict[str, Any]:
        """The epoch's labels, means of its losses, its D counters per discriminator."""
        st = self.state
        real_label, fake_label = self.labels()
        row: dict[str, Any] = {"real_label": real_label, "fake_label": fake_label}
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


@contextlib.contextmanager
def _without_onednn():
    """oneDNN (mkldnn) kernels off inside the block (see `GanTrainer._kernels`)."""
    import warnings

    with warnings.catch_warnings():  # "TF32 acceleration on top of oneDNN is available for Intel GPUs"
        warnings.simplefilter("ignore", UserWarning)
        with torch.backends.mkldnn.flags(enabled=False):
            yield


def _resolve_amp(name: str, device: torch.device) -> torch.dtype | None:
    if name == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16  # bf16 needs no scaling
    return {"off": None, "fp16": torch.float16, "bf16": torch.bfloat16}[name]
