"""Extra discriminators for the thesis GAN (its "future work": several judges at once).

The thesis's :class:`~reelrestore.models.thesis.ThesisDiscriminator` judges the
representation image as a whole. The two critics here each judge one property of the
restored contract spectrum ``(B, 2, F, T)`` and nothing else, through a fixed *view*
(a parameter-free feature map computed in float32):

* :class:`SpectralCritic` on :func:`spectral_view` -- WHICH frequencies are present: the
  log-power spectrum with each frame's mean log level removed, so loudness (of the
  segment or of a frame) carries no information;
* :class:`LevelCritic` on :func:`level_view` -- HOW LOUD each region is: energies of
  log-spaced bands in dB relative to the damaged input's level, over time.

Both are small conv nets (LeakyReLU 0.3 as Experiment 11, ``GroupNorm(1, C)`` -- a
LayerNorm over (C, F, T) that does not tie weights to a frame count -- instead of
BatchNorm, none on the input layer as DCGAN). Frequency keeps its position (a conv head
spans all remaining bins) and time is averaged at the end, so one critic serves any
number of frames: ``(B, 1, bins, T) -> (B,)`` logits. They are training-time networks;
only the generator is exported.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from reelrestore.engine.contract import DEFAULT_CONTRACT

__all__ = [
    "LevelCritic",
    "SpectralCritic",
    "input_level_db",
    "level_view",
    "log_band_matrix",
    "spectral_view",
]

POWER_FLOOR = 1e-8  # power floor of the views: the LSD definition's clamp (-80 dB)
DB_SCALE = 20.0  # views are dB / 20, so typical values lie within a few units of 0


def _power(spec: torch.Tensor) -> torch.Tensor:
    """(B, 2, F, T) contract spectrum -> (B, 1, F, T) power |X|^2, float32."""
    return spec.float().pow(2).sum(1, keepdim=True)


def spectral_view(spec: torch.Tensor) -> torch.Tensor:
    """Which frequencies are present: (B, 2, F, T) -> (B, 1, F, T).

    ``10 log10(max(|X|^2, 1e-8))`` minus its mean over frequency in each frame, / 20.
    Scaling the spectrum (or one frame) by any factor leaves the view unchanged (above
    the floor), so only the spectral shape is judged.
    """
    db = 10.0 * torch.log10(_power(spec).clamp_min(POWER_FLOOR))  # (B, 1, F, T)
    return (db - db.mean(dim=2, keepdim=True)) / DB_SCALE


def log_band_matrix(n_bins: int, sample_rate: int, n_bands: int = 48, f_min: float = 40.0) -> torch.Tensor:
    """(n_bands, n_bins) averaging matrix of contiguous log-spaced bands, float32.

    Band edges are spaced geometrically from ``f_min`` to Nyquist, rounded to bins and
    widened to at least one bin each (the low bands are narrower than a bin); bins below
    ``f_min`` (DC included) are left out. Row ``i`` holds ``1 / width`` on its bins, so
    ``matrix @ power`` is each band's mean power.
    """
    n_fft = 2 * (n_bins - 1)
    bin_hz = sample_rate / n_fft
    edges_hz = torch.logspace(math.log10(f_min), math.log10(sample_rate / 2), n_bands + 1,
                              dtype=torch.float64)
    edges = [max(1, round(float(e) / bin_hz)) for e in edges_hz]
    for i in range(1, len(edges)):
        edges[i] = max(edges[i], edges[i - 1] + 1)
    edges[-1] = max(edges[-1], n_bins)  # Nyquist included in the top band
    if edges[-1] > n_bins:
        raise ValueError(f"expected at most {n_bins - 1} one-bin bands above DC, got n_bands={n_bands}")
    matrix = torch.zeros(n_bands, n_bins)
    for i in range(n_bands):
        matrix[i, edges[i] : edges[i + 1]] = 1.0 / (edges[i + 1] - edges[i])
    return matrix


def input_level_db(ref_spec: torch.Tensor) -> torch.Tensor:
    """The damaged input's level: mean power over bins and frames, in dB. (B, 2, F, T) -> (B, 1, 1, 1)."""
    return 10.0 * torch.log10(_power(ref_spec).mean(dim=(2, 3), keepdim=True).clamp_min(POWER_FLOOR))


def level_view(spec: torch.Tensor, ref_spec: torch.Tensor, bands: torch.Tensor) -> torch.Tensor:
    """How loud each band is, relative to the input: (B, 2, F, T) -> (B, 1, n_bands, T).

    ``(10 log10(max(bands @ |X|^2, 1e-8)) - input_level_db(ref_spec)) / 20`` with
    ``bands`` from :func:`log_band_matrix` and ``ref_spec`` the damaged input's spectrum
    (the same for real and fake, so only the level of ``spec`` differs between them).
    """
    band_power = torch.matmul(bands, _power(spec))  # (n_bands, F) @ (B, 1, F, T) -> (B, 1, n_bands, T)
    db = 10.0 * torch.log10(band_power.clamp_min(POWER_FLOOR))
    return (db - input_level_db(ref_spec)) / DB_SCALE


def _conv_out(n: int, k: int, s: int) -> int:
    return (n + 2 * (k // 2) - k) // s + 1


class _ConvCritic(nn.Module):
    """Conv2d stack over a (B, 1, bins, T) view, then a conv head spanning every
    remaining bin, averaged over time: (B, 1, bins, T) -> (B,) logits."""

    def __init__(self, in_bins: int, channels: Sequence[int], kernels: Sequence[tuple[int, int]],
                 strides: Sequence[tuple[int, int]], slope: float, dropout: float) -> None:
        super().__init__()
        chans = [1, *channels]
        layers: list[nn.Module] = []
        f = in_bins
        for i, (k, s) in enumerate(zip(kernels, strides)):
            first = i == 0  # DCGAN: no norm on the input layer
            layers += [nn.Conv2d(chans[i], chans[i + 1], k, s, padding=(k[0] // 2, k[1] // 2), bias=first),
                       nn.Identity() if first else nn.GroupNorm(1, chans[i + 1]),
                       nn.LeakyReLU(slope), nn.Dropout(dropout)]
            f = _conv_out(f, k[0], s[0])
        self.in_bins = in_bins
        self.features = nn.Sequential(*layers)
        self.head = nn.Conv2d(chans[-1], 1, (f, 1))  # one logit per remaining frame

    def forward(self, view: torch.Tensor) -> torch.Tensor:
        if view.ndim != 4 or view.shape[1] != 1 or view.shape[2] != self.in_bins:
            raise ValueError(f"expected a view (batch, 1, {self.in_bins}, frames), got {tuple(view.shape)}")
        h = self.features(view)  # (B, C, F'', T'')
        return self.head(h).mean(dim=(1, 2, 3))  # (B, 1, 1, T'') -> (B,)


class SpectralCritic(_ConvCritic):
    """Judges which frequencies are present: :func:`spectral_view` (B, 1, F, T) -> (B,).

    Four convs, frequency stride 4 each (1025 -> 257 -> 65 -> 17 -> 5 bins), time stride 2
    in the middle two; channels ``width * (1, 2, 4, 8)``.
    """

    def __init__(self, n_bins: int = DEFAULT_CONTRACT.n_bins, width: int = 64, slope: float = 0.3,
                 dropout: float = 0.0) -> None:
        super().__init__(n_bins, [width, 2 * width, 4 * width, 8 * width],
                         [(9, 3), (5, 3), (5, 3), (5, 3)], [(4, 1), (4, 2), (4, 2), (4, 1)], slope, dropout)

    def view(self, spec: torch.Tensor, ref_spec: torch.Tensor | None = None) -> torch.Tensor:
        """:func:`spectral_view` of ``spec`` (``ref_spec`` unused: shape needs no reference)."""
        return spectral_view(spec)


class LevelCritic(_ConvCritic):
    """Judges band levels relative to the input: :func:`level_view` (B, 1, n_bands, T) -> (B,).

    Four 3x3 convs (bands 48 -> 48 -> 24 -> 12 -> 6, time stride 2 in the last two);
    channels ``width * (1, 2, 4, 4)``. Holds its band matrix as a derived (non-persistent)
    buffer, so state dicts carry weights only.
    """

    def __init__(self, n_bins: int = DEFAULT_CONTRACT.n_bins, sample_rate: int = DEFAULT_CONTRACT.sample_rate,
                 width: int = 64, n_bands: int = 48, slope: float = 0.3, dropout: float = 0.0) -> None:
        super().__init__(n_bands, [width, 2 * width, 4 * width, 4 * width],
                         [(3, 3)] * 4, [(1, 1), (2, 1), (2, 2), (2, 2)], slope, dropout)
        self.register_buffer("bands", log_band_matrix(n_bins, sample_rate, n_bands), persistent=False)

    def view(self, spec: torch.Tensor, ref_spec: torch.Tensor) -> torch.Tensor:
        """:func:`level_view` of ``spec`` against the damaged input ``ref_spec``."""
        return level_view(spec, ref_spec, self.bands)
