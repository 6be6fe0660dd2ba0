"""GAN losses of the thesis (BCE with smoothed labels, MSE content) and WGAN-GP, and
the dynamic content schedule.

Pure functions of tensors and numbers; the rules about *when* to use them (label
schedule by epoch, D-skip counter, k and n_critic) live in the trainers. The one rule kept
here is :class:`ContentSchedule` (when the MSE content term is switched off), because
more than one trainer uses it: it works on any loop state with the fields listed in
:class:`ContentScheduleState` (``reelrestore.training.loop.TrainState`` has them), and
:func:`passband_error_db` is what it watches.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import torch
import torch.nn.functional as F

__all__ = [
    "CONTENT_SCHEDULES",
    "ContentSchedule",
    "ContentScheduleState",
    "bce",
    "bce_discriminator_loss",
    "bce_generator_loss",
    "content_loss",
    "cutoff_bins",
    "gradient_penalty",
    "passband_error_db",
    "smoothed_labels",
    "wgan_critic_loss",
    "wgan_generator_loss",
]


def smoothed_labels(epoch: int, label_epochs: Sequence[int], real_labels: Sequence[float],
                    fake_labels: Sequence[float]) -> tuple[float, float]:
    """(real, fake) targets for ``epoch`` (0-based): the last entry whose start epoch
    ``label_epochs[i]`` is <= epoch. E.g. (0, 10, 20, 40) with 0.9, 0.99, 0.999, 0.9995:
    epochs 0-9 -> 0.9, 10-19 -> 0.99, 20-39 -> 0.999, 40+ -> 0.9995."""
    if epoch < 0:
        raise ValueError(f"expected epoch >= 0, got {epoch}")
    i = max(j for j, start in enumerate(label_epochs) if start <= epoch)
    return float(real_labels[i]), float(fake_labels[i])


def bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    """Mean BCE-with-logits of (B,) logits against one constant target, in float32."""
    return F.binary_cross_entropy_with_logits(logits.float(), torch.full_like(logits, target, dtype=torch.float32))


def bce_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, real_label: float,
                           fake_label: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(total, real part, fake part); total = real + fake, each a mean over the batch."""
    real = bce(real_logits, real_label)
    fake = bce(fake_logits, fake_label)
    return real + fake, real, fake


def bce_generator_loss(fake_logits: torch.Tensor, target: float = 1.0) -> torch.Tensor:
    """Non-saturating generator loss: BCE of D(G(x)) against ``target``."""
    return bce(fake_logits, target)


def content_loss(output: torch.Tensor, target: torch.Tensor, kind: str = "mse") -> torch.Tensor:
    """Reconstruction loss in the representation domain (both ~[-1, 1])."""
    if kind == "mse":
        return F.mse_loss(output.float(), target.float())
    if kind == "none":
        return output.new_zeros((), dtype=torch.float32)
    raise ValueError(f"expected content loss 'mse' or 'none', got {kind!r}")


def wgan_critic_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """E[D(fake)] - E[D(real)] (the critic minimises it)."""
    return fake_scores.float().mean() - real_scores.float().mean()


def wgan_generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    return -fake_scores.float().mean()


def gradient_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor,
                     fake: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Gulrajani et al.: E[(||grad D(x_hat)||_2 - 1)^2] on random interpolates x_hat.

    real, fake: (B, ...) of the same shape; fake should be detached. Run in float32.
    """
    if real.shape != fake.shape:
        raise ValueError(f"expected real and fake of one shape, got {tuple(real.shape)} and {tuple(fake.shape)}")
    shape = (real.shape[0],) + (1,) * (real.ndim - 1)  # (B, 1, 1, 1)
    alpha = torch.rand(shape, device=real.device, dtype=torch.float32, generator=generator)
    x_hat = (alpha * real.float() + (1 - alpha) * fake.float()).requires_grad_(True)
    scores = critic(x_hat).float()  # (B,)
    (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1.0) ** 2).mean()


# ------------------------------------------------------------------ dynamic content term
CONTENT_SCHEDULES = ("constant", "dynamic")


def cutoff_bins(cutoff_hz: torch.Tensor, sample_rate: int, n_fft: int) -> torch.Tensor:
    """Cutoff frequencies (B,) in Hz -> fractional STFT bins (B,): ``hz / (sr / n_fft)``."""
    return torch.as_tensor(cutoff_hz, dtype=torch.float32) * (n_fft / sample_rate)


def passband_error_db(estimate: torch.Tensor, target: torch.Tensor, cutoff_bin: torch.Tensor,
                      reduction: str = "batch", eps: float = 1e-12) -> torch.Tensor:
    """How well ``estimate`` reproduces ``target`` below the cutoff, in dB.

    ``10 log10(E_err / E_target)`` with ``E_err`` the energy of ``estimate - target`` and
    ``E_target`` that of ``target``, both over the bins ``f < cutoff_bin`` (every frame).
    ``estimate = 0.9 * target`` gives exactly ``20 log10(0.1) = -20`` dB; a copy gives
    about -120 dB (``eps`` keeps it finite); a silent estimate gives 0 dB.

    estimate, target: contract spectra (B, 2, F, T) (real, imaginary), same units.
    cutoff_bin: (B,) float, e.g. :func:`cutoff_bins` of the batch's ``cutoff_hz``.
    reduction: ``"batch"`` -> () one ratio of the batch's pooled energies (a silent or
    fully cut item cannot dominate it); ``"none"`` -> (B,) one value per item.
    Float32, differentiable (callers that only watch it wrap it in ``torch.no_grad``).
    """
    if estimate.shape != target.shape or estimate.ndim != 4 or estimate.shape[1] != 2:
        raise ValueError(f"expected estimate and target of one shape (batch, 2, bins, frames), got "
                         f"{tuple(estimate.shape)} and {tuple(target.shape)}")
    cutoff_bin = torch.as_tensor(cutoff_bin, device=target.device, dtype=torch.float32).reshape(-1)
    if cutoff_bin.shape[0] != target.shape[0]:
        raise ValueError(f"expected one cutoff_bin per item ({target.shape[0]}), got {tuple(cutoff_bin.shape)}")
    bins = torch.arange(target.shape[2], device=target.device, dtype=torch.float32)  # (F,)
    mask = (bins[None, :] < cutoff_bin[:, None]).float()[:, None, :, None]  # (B, 1, F, 1)
    err = ((estimate.float() - target.float()).pow(2) * mask).sum(dim=(1, 2, 3))  # (B,)
    ref = (target.float().pow(2) * mask).sum(dim=(1, 2, 3))  # (B,)
    if reduction == "batch":
        err, ref = err.sum(), ref.sum()
    elif reduction != "none":
        raise ValueError(f"expected reduction 'batch' or 'none', got {reduction!r}")
    return 10.0 * torch.log10((err + eps) / (ref + eps))


class ContentScheduleState(Protocol):
    """The loop-state fields :class:`ContentSchedule` reads and writes (plain values, so
    they are checkpointed with the rest of the state). ``TrainState`` has them."""

    epoch: int  # 0-based index of the running epoch (read)
    step: int  # batches trained on before this one (read: the latch records it)
    content_off: bool  # latched: the content term is off for good
    content_off_step: int | None  # ``step`` of the G step that latched it
    content_off_reason: str | None  # "epoch" | "passband"
    passband_db_mean: float | None  # running mean (EMA) of the passband error, dB
    passband_steps: int  # G steps that fed the running mean


class ContentSchedule:
    """When the MSE content term is on: ``constant`` (always) or ``dynamic``.

    ``dynamic`` switches it off, once and for good (latched in the state), at the first G
    step where either rule holds:

    * ``off_epoch``: the running epoch (0-based) is ``>= off_epoch``;
    * ``off_below_db``: the generator reproduces its input band: the running mean of
      :func:`passband_error_db` is below ``off_below_db``, after at least ``min_steps``
      observed G steps (so one lucky batch early on cannot end it).

    The running mean is exponential over G steps: the first value starts it, then
    ``mean += (1 - ema_decay) * (value - mean)`` (0.9: about the last 10 G steps).
    Non-finite values are ignored. ``constant`` keeps the running mean too (for logs) but
    never switches off. Usage, once per G step, before the generator loss::

        sched = ContentSchedule.from_config(cfg.loss)
        with torch.no_grad():
            db = passband_error_db(restored, target_spec, cutoff_bins(cutoff_hz, sr, n_fft))
        weight = sched.weight(state, cfg.loss.content_weight, db.item())  # 0.0 once off
        total = adv_weight * adv + weight * content
    """

    def __init__(self, kind: str = "constant", off_epoch: int | None = None, off_below_db: float | None = -20.0,
                 min_steps: int = 50, ema_decay: float = 0.9) -> None:
        if kind not in CONTENT_SCHEDULES:
            raise ValueError(f"expected content schedule in {CONTENT_SCHEDULES}, got {kind!r}")
        if off_epoch is not None and off_epoch < 0:
            raise ValueError(f"expected content_off_epoch >= 0 or None, got {off_epoch}")
        if kind == "dynamic" and off_epoch is None and off_below_db is None:
            raise ValueError("expected content_off_epoch or content_off_below_db for the dynamic content "
                             "schedule, got neither (it could never switch off)")
        if kind == "constant" and off_epoch is not None:
            raise ValueError(f"expected content_off_epoch None with the constant content schedule, got "
                             f"{off_epoch} (it would have no effect; use content_schedule='dynamic')")
        if off_below_db is not None and not math.isfinite(off_below_db):
            raise ValueError(f"expected a finite content_off_below_db or None, got {off_below_db}")
        if min_steps < 0:
            raise ValueError(f"expected content_min_steps >= 0, got {min_steps}")
        if not 0.0 <= ema_decay < 1.0:
            raise ValueError(f"expected 0 <= content_ema_decay < 1, got {ema_decay}")
        self.kind, self.off_epoch, self.off_below_db = kind, off_epoch, off_below_db
        self.min_steps, self.ema_decay = min_steps, ema_decay

    @classmethod
    def from_config(cls, cfg: Any) -> ContentSchedule:
        """From any config with a ``content_schedule`` field and, optionally (else the
        defaults above), ``content_off_epoch``, ``content_off_below_db``,
        ``content_min_steps``, ``content_ema_decay`` (``ThesisLossConfig`` and ``UNetLossConfig`` have all five)."""
        return cls(cfg.content_schedule, getattr(cfg, "content_off_epoch", None),
                   getattr(cfg, "content_off_below_db", -20.0), getattr(cfg, "content_min_steps", 50),
                   getattr(cfg, "content_ema_decay", 0.9))

    def __repr__(self) -> str:
        return (f"ContentSchedule({self.kind!r}, off_epoch={self.off_epoch}, off_below_db={self.off_below_db}, "
                f"min_steps={self.min_steps}, ema_decay={self.ema_decay})")

    def factor(self, state: ContentScheduleState) -> float:
        """The content factor now, 1.0 (on) or 0.0 (off), without observing anything
        (``constant`` is always 1.0, even on a state latched by a dynamic run)."""
        return 0.0 if self.kind == "dynamic" and state.content_off else 1.0

    def weight(self, state: ContentScheduleState, base_weight: float, passband_db: float | None = None) -> float:
        """``base_weight * update(state, passband_db)``: the content weight for this G step."""
        return base_weight * self.update(state, passband_db)

    def update(self, state: ContentScheduleState, passband_db: float | None = None) -> float:
        """Observe one G step: feed ``passband_db`` (this step's :func:`passband_error_db`;
        None: nothing to observe, only the epoch rule runs) into the running mean, latch
        the switch-off if a rule holds, and return the content factor for THIS step: 1.0
        (on) or 0.0 (off). Call exactly once per G step."""
        if passband_db is not None and math.isfinite(passband_db):
            mean = state.passband_db_mean
            state.passband_db_mean = (float(passband_db) if mean is None or state.passband_steps == 0
                                      else mean + (1.0 - self.ema_decay) * (float(passband_db) - mean))
            state.passband_steps += 1
        if self.kind == "dynamic" and not state.content_off:
            reason = None
            if self.off_epoch is not None and state.epoch >= self.off_epoch:
                reason = "epoch"
            elif (self.off_below_db is not None and state.passband_steps >= max(self.min_steps, 1)
                  and state.passband_db_mean is not None and state.passband_db_mean < self.off_below_db):
                reason = "passband"
            if reason is not None:
                state.content_off, state.content_off_step, state.content_off_reason = True, state.step, reason
        return self.factor(state)
