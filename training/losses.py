"""GAN losses of the thesis (BCE with smoothed labels, MSE content) and WGAN-GP.

Pure functions of tensors and numbers; the rules about *when* to use them (label
schedule by epoch, D-skip counter, k and n_critic) live in ``gan.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "bce",
    "bce_discriminator_loss",
    "bce_generator_loss",
    "content_loss",
    "gradient_penalty",
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
