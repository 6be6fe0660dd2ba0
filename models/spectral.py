"""The contract's transforms in torch: STFT, inverse STFT and the band-merge gains.

Every torch module that turns audio into the contract's spectrum, or keeps the input's
band below a cutoff, takes it from here, and ``tests/test_spectral_parity.py`` holds each
one to its engine twin:

* :func:`stft` / :func:`istft` -- ``torch.stft`` centred with reflect padding and a
  periodic Hann window, the transform of :class:`reelrestore.engine.stft.StftPlan`;
* :class:`ConvSTFT` -- the same STFT as convolutions with DFT kernels, which ONNX exports
  where ``torch.istft`` does not (Griffin-Lim inside a graph, the U-Net's adapter);
* :func:`keep_gains` -- the raised-cosine fade of :func:`reelrestore.engine.band.merge_gains`.

The defaults are the contract's (:data:`reelrestore.engine.contract.DEFAULT_CONTRACT`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from reelrestore.engine.contract import DEFAULT_CONTRACT

__all__ = ["ConvSTFT", "istft", "keep_gains", "stft"]


def stft(audio: torch.Tensor, n_fft: int = DEFAULT_CONTRACT.n_fft,
         hop_length: int = DEFAULT_CONTRACT.hop_length) -> torch.Tensor:
    """Contract STFT as a real tensor: (B, L) -> (B, 2, n_fft//2+1, 1 + L//hop)."""
    if audio.ndim != 2:
        raise ValueError(f"expected audio (batch, samples), got shape {tuple(audio.shape)}")
    window = torch.hann_window(n_fft, periodic=True, device=audio.device, dtype=audio.dtype)
    spec = torch.stft(audio, n_fft, hop_length, window=window, center=True, pad_mode="reflect",
                      return_complex=True)  # (B, F, T) complex
    return torch.view_as_real(spec).permute(0, 3, 1, 2).contiguous()  # (B, 2, F, T)


def istft(spectrum: torch.Tensor, length: int, n_fft: int = DEFAULT_CONTRACT.n_fft,
          hop_length: int = DEFAULT_CONTRACT.hop_length) -> torch.Tensor:
    """Inverse of :func:`stft`: (B, 2, F, T) -> (B, length)."""
    if spectrum.ndim != 4 or spectrum.shape[1] != 2:
        raise ValueError(f"expected spectrum (batch, 2, bins, frames), got {tuple(spectrum.shape)}")
    window = torch.hann_window(n_fft, periodic=True, device=spectrum.device, dtype=spectrum.dtype)
    spec = torch.complex(spectrum[:, 0], spectrum[:, 1])  # (B, F, T)
    return torch.istft(spec, n_fft, hop_length, window=window, center=True, length=length)


class ConvSTFT(nn.Module):
    """STFT/iSTFT as Conv1d/ConvTranspose1d with DFT kernels (same maths as torch.stft).

    For transforms inside an exported graph (the thesis generator's Griffin-Lim, the
    U-Net's spectrum adapter): convolutions export to ONNX where ``torch.istft`` does not.
    The kernels are derived, so they are not in state dicts.
    """

    def __init__(self, n_fft: int, hop_length: int) -> None:
        super().__init__()
        self.n_fft, self.hop_length = n_fft, hop_length
        n_bins = n_fft // 2 + 1
        n = torch.arange(n_fft, dtype=torch.float64)
        k = torch.arange(n_bins, dtype=torch.float64)[:, None]
        window = torch.hann_window(n_fft, periodic=True, dtype=torch.float64)
        angle = 2 * math.pi * k * n / n_fft  # (F, N)
        # X[k] = sum_n x[n] w[n] e^{-i angle}
        analysis = torch.cat([torch.cos(angle), -torch.sin(angle)]) * window  # (2F, N)
        # irfft: x[n] = (1/N) sum_k c_k Re(X[k] e^{+i angle}), c = 1 at DC/Nyquist, 2 elsewhere
        c = torch.full((n_bins, 1), 2.0, dtype=torch.float64)
        c[0] = c[-1] = 1.0
        synthesis = torch.cat([c * torch.cos(angle), -c * torch.sin(angle)]) * window / n_fft
        self.register_buffer("analysis", analysis[:, None].float(), persistent=False)  # (2F, 1, N)
        self.register_buffer("synthesis", synthesis[:, None].float(), persistent=False)
        self.register_buffer("window_sq", (window**2)[None, None].float(), persistent=False)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """(B, L) -> (B, 2, F, 1 + L//hop)"""
        pad = self.n_fft // 2
        x = F.pad(audio[:, None], (pad, pad), mode="reflect")  # (B, 1, L + N)
        spec = F.conv1d(x, self.analysis, stride=self.hop_length)  # (B, 2F, T)
        return spec.unflatten(1, (2, -1))  # (B, 2, F, T)

    def inverse(self, spectrum: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """(B, 2, F, T) -> (B, length), centred as torch.istft; length <= (T-1)*hop + n_fft//2.
        None: (T-1)*hop samples, which re-analyse to exactly T frames; the trim then uses
        constant indices, so an exported graph keeps T dynamic."""
        frames = spectrum.flatten(1, 2)  # (B, 2F, T)
        x = F.conv_transpose1d(frames, self.synthesis, stride=self.hop_length)  # (B, 1, (T-1)hop+N)
        ones = torch.ones_like(frames[:1, :1])  # (1, 1, T)
        envelope = F.conv_transpose1d(ones, self.window_sq, stride=self.hop_length)  # (1, 1, same)
        x = x / envelope.clamp_min(1e-11)
        start = self.n_fft // 2
        if length is None:
            return x[:, 0, start:-start]  # (B, (T-1)*hop)
        return x[:, 0, start : start + length]  # (B, length)


def missing_power_merge(dry: torch.Tensor, wet: torch.Tensor, keep: torch.Tensor, band_bins: int = 9) -> torch.Tensor:
    """The engine's band merge (reelrestore.engine.band.merge, mix 1, no limit) in torch, so
    a model can be trained on what the engine will play: the input, plus the model's band
    only where it is louder than what the input already holds there,

        out = dry + (1 - keep) * g * wet,   g = sqrt(max(0, 1 - P_dry / P_wet)),

    P the power of each frame summed over ``band_bins`` neighbouring bins.
    dry, wet: (B, 2, bins, T); keep: (B, bins) -> (B, 2, bins, T)."""
    def band_power(x: torch.Tensor) -> torch.Tensor:  # (B, 2, bins, T) -> (B, bins, T), mean over neighbours
        p = (x[:, 0] ** 2 + x[:, 1] ** 2).transpose(1, 2)  # (B, T, bins)
        shape = p.shape
        p = nn.functional.avg_pool1d(p.reshape(-1, 1, shape[2]), band_bins, 1, band_bins // 2,
                                     count_include_pad=False)  # the mean over the bins there are
        return p.reshape(shape).transpose(1, 2)

    p_dry, p_wet = band_power(dry), band_power(wet)
    missing = torch.clamp(1.0 - p_dry / p_wet.clamp_min(1e-30), 0.0, 1.0)
    gain = torch.sqrt(missing + 1e-12) * (p_wet > 1e-30)  # sqrt has no gradient at 0
    return dry + ((1.0 - keep)[:, :, None] * gain)[:, None] * wet


def keep_gains(cutoff_bin: torch.Tensor, n_bins: int, fade_bins: int) -> torch.Tensor:
    """(B,) cutoff bin -> (B, bins): 1 up to the cutoff bin, raised-cosine fade to 0 above
    (the same curve as reelrestore.engine.band.merge_gains)."""
    k = torch.arange(n_bins, dtype=torch.float32, device=cutoff_bin.device)[None, :]
    ramp = torch.clamp((k - cutoff_bin[:, None]) / max(fade_bins, 1), 0.0, 1.0)
    return 0.5 + 0.5 * torch.cos(math.pi * ramp)
