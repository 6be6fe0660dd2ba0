"""The seeds' second model: a time-domain U-Net trained as a WGAN-GP, and its helpers.

    waveform (B, L) ──► UNetGenerator ──► waveform (B, L)

* **Down blocks** — an inception module (parallel 1-D convolutions with kernels 3, 9, 27
  and 81, concatenated: short kernels see transients, long ones pitch) and LeakyReLU, then
  *superpixel* down-sampling: (C, L) → (2C, L/2), samples folded into channels, so no
  information is thrown away the way striding throws it away.
* **Up blocks** — an inception module to twice the channels, then *subpixel* up-sampling
  (2C, L/2) → (C, L), the transposed fold (no checkerboard artefacts of transposed
  convolutions), then the matching down block's output concatenated (skip connection).
* Filters double with depth, capped at ``d_max``; an optional input-to-output skip makes
  the network learn the residual — the missing band — rather than the whole waveform.
* **Critic** (``UNetCritic``): inception blocks with superpixel down-sampling and LayerNorm
  (``GroupNorm(1, C)``, normalising each example over channels and time: WGAN-GP's
  gradient penalty is per example, which BatchNorm's batch coupling would break), then two
  fully connected layers on a fixed-size pooled summary. No sigmoid: a Wasserstein critic.
* **Autoencoder** (``UNetAutoencoder``): the generator without skip connections (4 blocks).
  Pre-trained to reproduce clean audio, its bottleneck features give the content loss
  L_ae = ||φ(G(x)) − φ(y)||² (a learned perceptual feature space, like VGG features in
  image super-resolution).

For the engine, ``UNetSpectrumModel`` keeps the spectrum contract: contract spectrum →
iSTFT (``ConvSTFT``: DFT kernels as transposed convolution, which ONNX exports where
``torch.istft`` does not) → U-Net → STFT → the input's band kept below the cutoff (the
engine's own raised-cosine merge gains, ``keep_gains``), the U-Net's above it; both from
:mod:`reelrestore.models.spectral`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from reelrestore.models.configs import UNetConfig
from reelrestore.models.spectral import ConvSTFT, keep_gains
from torch import nn

__all__ = ["UNetAutoencoder", "UNetConfig", "UNetCritic", "UNetGenerator", "UNetSpectrumModel", "superpixel",
           "subpixel"]


# --------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------
def superpixel(x: torch.Tensor, r: int = 2) -> torch.Tensor:
    """(B, C, L) -> (B, C*r, L/r): every r consecutive samples become r channels."""
    b, c, n = x.shape
    return x.reshape(b, c, n // r, r).permute(0, 1, 3, 2).reshape(b, c * r, n // r)


def subpixel(x: torch.Tensor, r: int = 2) -> torch.Tensor:
    """(B, C*r, L) -> (B, C, L*r): the inverse of :func:`superpixel`."""
    b, cr, n = x.shape
    return x.reshape(b, cr // r, r, n).permute(0, 1, 3, 2).reshape(b, cr // r, n * r)


class Inception(nn.Module):
    """Parallel 'same' convolutions, one per kernel size, concatenated: (B, C_in, L) -> (B, C_out, L)."""

    def __init__(self, c_in: int, c_out: int, kernels: tuple[int, ...]) -> None:
        super().__init__()
        if c_out % len(kernels):
            raise ValueError(f"expected {c_out} output channels divisible by {len(kernels)} branches")
        self.branches = nn.ModuleList(nn.Conv1d(c_in, c_out // len(kernels), k, padding=k // 2) for k in kernels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


class _Down(nn.Module):
    """Inception to c_out/2 channels, LeakyReLU, superpixel: (B, c_in, L) -> (B, c_out, L/2)."""

    def __init__(self, c_in: int, c_out: int, cfg: UNetConfig) -> None:
        super().__init__()
        self.conv = Inception(c_in, c_out // 2, cfg.kernels)
        self.act = nn.LeakyReLU(cfg.slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return superpixel(self.act(self.conv(x)))


class _Up(nn.Module):
    """Inception to 2·c_out channels, LeakyReLU, subpixel: (B, c_in, L) -> (B, c_out, 2L)."""

    def __init__(self, c_in: int, c_out: int, cfg: UNetConfig) -> None:
        super().__init__()
        self.conv = Inception(c_in, 2 * c_out, cfg.kernels)
        self.act = nn.LeakyReLU(cfg.slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return subpixel(self.act(self.conv(x)))


# --------------------------------------------------------------------------------------
# Generator and autoencoder
# --------------------------------------------------------------------------------------
class UNetGenerator(nn.Module):
    """Waveform -> waveform U-Net: (B, L) -> (B, L), any L (padded to a multiple of 2**B)."""

    def __init__(self, cfg: UNetConfig = UNetConfig(), blocks: int | None = None, skips: bool | None = None,
                 input_skip: bool | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.n_blocks = cfg.blocks if blocks is None else blocks
        self.skips = cfg.skips if skips is None else skips
        self.input_skip = cfg.input_skip if input_skip is None else input_skip
        widths = [cfg.width(i) for i in range(self.n_blocks)]
        self.down = nn.ModuleList(_Down(1 if i == 0 else widths[i - 1], w, cfg) for i, w in enumerate(widths))
        self.bottleneck = Inception(widths[-1], widths[-1], cfg.kernels)
        self.act = nn.LeakyReLU(cfg.slope)
        up = []
        for i in reversed(range(self.n_blocks)):  # up block i restores the length of down block i's input
            c_in = widths[i] if i == self.n_blocks - 1 else widths[i] * (2 if self.skips else 1)
            up.append(_Up(c_in, widths[i - 1] if i > 0 else widths[0], cfg))
        self.up = nn.ModuleList(up)
        self.out = nn.Conv1d(widths[0], 1, 9, padding=4)

    @property
    def multiple(self) -> int:
        return 2**self.n_blocks

    def encode(self, audio: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(B, L) with L a multiple of 2**B -> bottleneck (B, C, L/2**B) and the down outputs."""
        h = audio[:, None]  # (B, 1, L)
        outs = []
        for block in self.down:
            h = block(h)
            outs.append(h)
        return self.act(self.bottleneck(h)), outs

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        if audio.ndim != 2:
            raise ValueError(f"expected audio (batch, samples), got {tuple(audio.shape)}")
        n = audio.shape[1]
        pad = (-n) % self.multiple
        x = F.pad(audio, (0, pad))  # (B, L'), zeros after the end
        h, outs = self.encode(x)
        for j, block in enumerate(self.up):
            h = block(h)  # (B, C, 2L)
            below = self.n_blocks - 2 - j  # the down block whose output has this length
            if self.skips and below >= 0:
                h = torch.cat([h, outs[below]], dim=1)
        y = self.out(h)[:, 0, :n]  # (B, L)
        return audio + y if self.input_skip else y


class UNetAutoencoder(nn.Module):
    """The generator without skips (and without the input skip): its bottleneck is the
    feature space of the content loss L_ae. Pre-trained on clean audio, then frozen."""

    def __init__(self, cfg: UNetConfig = UNetConfig()) -> None:
        super().__init__()
        self.net = UNetGenerator(cfg, blocks=cfg.ae_blocks, skips=False, input_skip=False)

    def features(self, audio: torch.Tensor) -> torch.Tensor:
        """(B, L) -> bottleneck (B, C, L'/2**blocks)."""
        pad = (-audio.shape[1]) % self.net.multiple
        return self.net.encode(F.pad(audio, (0, pad)))[0]

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.net(audio)


# --------------------------------------------------------------------------------------
# Critic
# --------------------------------------------------------------------------------------
class UNetCritic(nn.Module):
    """Wasserstein critic on waveforms: (B, L) -> (B,) scores; inception + LayerNorm blocks,
    then two fully connected layers on an adaptive-pooled (C, critic_pool) summary."""

    def __init__(self, cfg: UNetConfig = UNetConfig()) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 1
        for i in range(cfg.critic_blocks):
            c_out = min(cfg.critic_filters * 2**i, cfg.d_max)
            layers += [Inception(c_in, c_out // 2, cfg.kernels), nn.GroupNorm(1, c_out // 2), nn.LeakyReLU(cfg.slope)]
            c_in = c_out  # after the superpixel fold
            layers.append(_Fold())
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool1d(cfg.critic_pool)
        self.fc = nn.Sequential(nn.Linear(c_in * cfg.critic_pool, cfg.critic_hidden), nn.LeakyReLU(cfg.slope),
                                nn.Linear(cfg.critic_hidden, 1, bias=False))  # E[D(fake)] - E[D(real)] cancels a bias
        self.multiple = 2**cfg.critic_blocks

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        pad = (-audio.shape[1]) % self.multiple
        h = self.features(F.pad(audio, (0, pad))[:, None])  # (B, C, L/2**blocks)
        return self.fc(self.pool(h).flatten(1))[:, 0]  # (B,)


class _Fold(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return superpixel(x)


# --------------------------------------------------------------------------------------
# The engine's spectrum contract
# --------------------------------------------------------------------------------------
class UNetSpectrumModel(nn.Module):
    """Contract adapter: spectrum (B, 2, F, T), cutoff_hz (B,) -> restored (B, 2, F, T).

    iSTFT to (T-1)·hop samples, U-Net, STFT back to T frames, then the input kept below the
    cutoff (raised-cosine fade over ``fade_bins``) and the U-Net's spectrum above it. The
    outermost half window of samples re-analyses against a reflected edge instead of the
    true neighbours; the engine discards frame edges (its edge margin) anyway.
    """

    def __init__(self, generator: UNetGenerator) -> None:
        super().__init__()
        self.generator = generator
        cfg = generator.cfg
        self.cfg = cfg
        self.conv_stft = ConvSTFT(cfg.contract.n_fft, cfg.contract.hop_length)
        self.bin_hz = cfg.contract.bin_hz

    def forward(self, spectrum: torch.Tensor, cutoff_hz: torch.Tensor) -> torch.Tensor:
        audio = self.conv_stft.inverse(spectrum)  # (B, (T-1)*hop)
        generated = self.conv_stft(self.generator(audio))  # (B, 2, F, T)
        keep = keep_gains(cutoff_hz / self.bin_hz, spectrum.shape[2], self.cfg.fade_bins)[:, None, :, None]
        return keep * spectrum + (1.0 - keep) * generated
