"""GAN losses of the thesis (BCE with smoothed labels, MSE content) and WGAN-GP, and
what the dynamic content schedule watches.

Pure functions of tensors and numbers; the rules about *when* to use them (label
schedule by epoch, D-skip counter, k and n_critic) live in the trainers. The one rule
more than one trainer uses, :class:`ContentSchedule` (when the MSE content term is
switched off), is plain Python in :mod:`reelrestore.training.content_schedule` (a
training config checks its settings without torch) and importable from here too;
:func:`passband_error_db` is what it watches.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from reelrestore.training.content_schedule import CONTENT_SCHEDULES, ContentSchedule, ContentScheduleState

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
