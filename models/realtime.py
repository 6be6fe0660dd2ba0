"""A real-time bandwidth-extension generator built for the engine's contract.

    spectrum (B, 2, 1025, T), cutoff_hz (B,) ──► restored (B, 2, 1025, T)

What the thesis generator lacked, this one has by construction:

* **The surviving band cannot be erased.** The output is ``keep·X + (1 - keep)·Y`` with
  ``keep`` = 1 up to the cutoff bin (the engine's own merge gains,
  :func:`reelrestore.models.spectral.keep_gains`), so below the cutoff
  the output *is* the input, whatever the weights.
* **Cheap.** The network never sees the 1025 × T image: it predicts a log energy
  envelope on `n_bands` log-spaced bands from the input's band energies with a small
  dilated 1-D convolution over time (~0.8 M parameters, ~40 M multiply-adds a frame).
* **Fine structure and phase come mostly from the recording itself** (spectral band
  replication): bins above the cutoff copy the spectrum just below it, whitened, blended
  per band with a fixed whitened noise excitation in a proportion the network predicts
  (tonal copies where the band above is tonal, noise where it is hiss), and the predicted
  envelope is imposed on the blend.
* **It corrects a DSP prior instead of inventing from nothing**: the envelope starts as
  the level of the half octave under the cutoff, sloping down 12 dB/octave, never below
  the hiss floor measured there — so an untrained network already extends the hiss at the
  level the input shows, and training only has to learn what the prior gets wrong.

Every step is a tensor op that ONNX exports (gather, mod, matmul, conv1d).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Mapping

import torch
from reelrestore.models.configs import RealtimeConfig
from reelrestore.models.spectral import keep_gains
from torch import nn


def band_matrix(cfg: RealtimeConfig) -> torch.Tensor:
    """(bins, bands) triangular weights on log-spaced centres, each column summing to 1
    (so bins @ W is the mean power per bin in a band)."""
    top = cfg.contract.sample_rate / 2
    centres = torch.logspace(math.log10(cfg.min_hz), math.log10(top), cfg.n_bands, dtype=torch.float64)
    edges = torch.cat([torch.tensor([0.0], dtype=torch.float64), centres, torch.tensor([top * 1.01], dtype=torch.float64)])
    freqs = torch.arange(cfg.n_bins, dtype=torch.float64) * cfg.bin_hz
    w = torch.zeros(cfg.n_bins, cfg.n_bands, dtype=torch.float64)
    for b in range(cfg.n_bands):
        lo, mid, hi = edges[b], edges[b + 1], edges[b + 2]
        rise = (freqs - lo) / (mid - lo)
        fall = (hi - freqs) / (hi - mid)
        w[:, b] = torch.clamp(torch.minimum(rise, fall), min=0.0)
        if w[:, b].sum() == 0:  # a band narrower than a bin: give it its nearest bin
            w[int(torch.argmin((freqs - mid).abs())), b] = 1.0
    return (w / w.sum(dim=0, keepdim=True)).float()


def widens(old: RealtimeConfig, new: RealtimeConfig) -> bool:
    """Whether ``new`` is ``old`` that also sees the input above the cutoff."""
    return new.input_above and not old.input_above and replace(old, input_above=True) == new


def weights_fit(old: RealtimeConfig, new: RealtimeConfig) -> bool:
    """Whether a generator of config ``old`` has exactly the weights one of ``new`` needs:
    the configs differ at most in `hold_played`, which changes what the network computes
    from its outputs, not its parameters."""
    return replace(old, hold_played=new.hold_played) == new


def widen_state(state: Mapping[str, torch.Tensor], old: RealtimeConfig, new: RealtimeConfig) -> dict[str, torch.Tensor]:
    """Weights of a generator of config ``old`` for one of config ``new`` that differs only
    by ``input_above`` (False -> True): the new input channels get zero weights, so the
    widened network computes exactly what the old one did until training moves them."""
    if old == new:
        return dict(state)
    if not widens(old, new):
        raise ValueError("expected configs that differ only by input_above (False -> True)")
    out = dict(state)
    w = state["inp.weight"]  # (width, 3·bands, k)
    out["inp.weight"] = torch.cat([w, w.new_zeros(w.shape[0], new.n_bands, w.shape[2])], dim=1)
    return out


class _Residual(nn.Module):
    def __init__(self, width: int, dilation: int, slope: float, padding_mode: str = "zeros"):
        super().__init__()
        self.conv = nn.Conv1d(width, width, 3, padding=dilation, dilation=dilation, padding_mode=padding_mode)
        self.norm = nn.GroupNorm(1, width)  # LayerNorm over (channels, time), per example
        self.act = nn.LeakyReLU(slope)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.act(self.norm(self.conv(h)))


class RealtimeGenerator(nn.Module):
    """Envelope predictor + spectral band replication; see the module docstring."""

    def __init__(self, cfg: RealtimeConfig = RealtimeConfig()):
        super().__init__()
        self.cfg = cfg
        w = band_matrix(cfg)  # (bins, bands)
        self.register_buffer("bands", w, persistent=False)
        # band -> bin interpolation: each bin's share of the bands, rows summing to 1
        self.register_buffer("to_bins", (w / w.sum(dim=1, keepdim=True).clamp_min(1e-12)), persistent=False)
        centres = (torch.arange(cfg.n_bins, dtype=torch.float32) * cfg.bin_hz) @ w  # (bands,) centre freq
        self.register_buffer("band_hz", centres, persistent=False)
        # Noise excitation: the STFT of seeded white noise, whitened like the band copy. It
        # travels in the state dict so an exported model is bit-for-bit the trained one.
        gen = torch.Generator().manual_seed(20261121)
        n_fft, hop = cfg.contract.n_fft, cfg.contract.hop_length
        noise = torch.stft(torch.randn(n_fft + (cfg.noise_frames - 1) * hop, generator=gen),
                           n_fft, hop, window=torch.hann_window(n_fft), center=False,
                           return_complex=True)  # (bins, noise_frames)
        noise = noise / noise.abs().mean(dim=0, keepdim=True)
        self.register_buffer("noise", torch.stack([noise.real, noise.imag]))  # (2, bins, noise_frames)
        c = (4 if cfg.input_above else 3) * cfg.n_bands
        self.inp = nn.Conv1d(c, cfg.width, 3, padding=1, padding_mode=cfg.conv_padding)
        self.body = nn.Sequential(*[_Residual(cfg.width, 2**i, cfg.slope, cfg.conv_padding) for i in range(cfg.layers)])
        self.out = nn.Conv1d(cfg.width, 2 * cfg.n_bands, 1)  # envelope correction, noise share
        self.act = nn.LeakyReLU(cfg.slope)
        self.held = None  # (first, stop) counted back from the frame's end: the played columns
        if cfg.hold_played:
            from reelrestore.engine.stream import played_columns  # the engine's framing, only then

            played, frame = played_columns(cfg.contract, cfg.lookahead), cfg.contract.frames_per_frame
            self.held = (frame - played.start, frame - played.stop)

    # -- pieces, exposed for the losses ------------------------------------------------
    def band_energy(self, spectrum: torch.Tensor) -> torch.Tensor:
        """(B, 2, bins, T) -> log mean power per bin in each band, (B, bands, T)."""
        power = (spectrum * spectrum).sum(dim=1)  # (B, bins, T)
        # a matrix product (ONNX MatMul, a GEMM) rather than an einsum: the same sums, and
        # in ONNX Runtime 0.24 instead of 0.35 ms for a stereo frame here, the largest
        # product of the low-latency model
        return torch.log(torch.matmul(power.transpose(1, 2), self.bands).transpose(1, 2) + self.cfg.eps)

    def condition(self, cutoff_hz: torch.Tensor) -> torch.Tensor:
        """(B,) -> (B, bands) soft mask, 1 for bands wholly inside the surviving band."""
        return torch.sigmoid((cutoff_hz[:, None] - self.band_hz[None, :]) / (0.05 * self.band_hz[None, :] + 1.0))

    def envelope(
        self, spectrum: torch.Tensor, cutoff_hz: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Log band energies (B, bands, T) relative to the input's reference level (B, 1, 1),
        and the share of noise in the excitation (B, bands, T)."""
        energy = self.band_energy(spectrum)  # (B, bands, T)
        mask = self.condition(cutoff_hz)[:, :, None]  # (B, bands, 1)
        # level reference: mean log energy of the surviving band, so the net sees shapes, not gain
        ref = (energy * mask).sum(dim=(1, 2), keepdim=True) / (mask.sum(dim=1, keepdim=True) * energy.shape[2] + 1e-6)
        rel = (energy - ref) * mask  # (B, bands, T), zero above the cutoff
        floor = torch.amin(rel, dim=2, keepdim=True) * mask  # (B, bands, 1) per-band minimum: the hiss floor
        parts = [rel / 10.0, floor.expand_as(rel) / 10.0, mask.expand_as(rel)]
        if self.cfg.input_above:  # what the input still holds above the cutoff: hiss, a skirt, silence
            parts.append((energy - ref) * (1.0 - mask) / 10.0)
        h = torch.cat(parts, dim=1)  # (B, 3 or 4 · bands, T)
        h = self.out(self.body(self.act(self.inp(h))))  # (B, 2·bands, T)
        correction, noise_logit = h[:, : self.cfg.n_bands], h[:, self.cfg.n_bands :]
        # bounded: ±30 nepers of power (±130 dB) around the prior, so a bad step cannot push
        # exp() to infinity; 0 (the initial output) = the prior itself
        log_env = self.prior(rel, floor, mask, cutoff_hz) + 30.0 * torch.tanh(correction / 30.0)
        noise_share = torch.sigmoid(noise_logit)
        if self.held is not None:
            log_env, noise_share = self.hold(log_env), self.hold(noise_share)
        return log_env, ref, noise_share

    def hold(self, h: torch.Tensor) -> torch.Tensor:
        """(B, bands, T) with the played columns (`self.held`) replaced by their mean."""
        T = h.shape[2]
        first, stop = T - self.held[0], T - self.held[1]
        mean = h[..., first:stop].mean(dim=2, keepdim=True).expand(-1, -1, stop - first)
        return torch.cat([h[..., :first], mean, h[..., stop:]], dim=2)

    def prior(self, rel: torch.Tensor, floor: torch.Tensor, mask: torch.Tensor, cutoff_hz: torch.Tensor) -> torch.Tensor:
        """DSP guess of the missing band (B, bands, T): the level of the half octave under
        the cutoff, sloping down by `prior_slope_db_per_octave`, held above its hiss floor."""
        cutoff = cutoff_hz[:, None, None].clamp_min(1.0)  # (B, 1, 1)
        hz = self.band_hz[None, :, None]  # (1, bands, 1)
        edge = mask * torch.sigmoid((hz - cutoff * 0.7071) / (0.05 * hz + 1.0))  # (B, bands, 1)
        weight = edge / (edge.sum(dim=1, keepdim=True) + 1e-6)
        level = (rel * weight).sum(dim=1, keepdim=True)  # (B, 1, T)
        hiss = (floor * weight).sum(dim=1, keepdim=True)  # (B, 1, 1)
        octaves = torch.clamp(torch.log2(hz / cutoff), min=0.0)  # (B, bands, 1)
        slope = self.cfg.prior_slope_db_per_octave / (10.0 / math.log(10.0))  # dB -> nepers of power
        a, b = level + slope * octaves, hiss  # soft maximum, log(e^a + e^b), in ONNX-exportable ops
        return torch.maximum(a, b) + torch.log1p(torch.exp(-torch.abs(a - b)))

    def replicate(self, columns: torch.Tensor, cutoff_bin: torch.Tensor) -> torch.Tensor:
        """Whitened copy of the band under the cutoff, tiled upward. columns (B, T, 2,
        bins), the spectrum column by column (see `_synthesize`) -> (B, T, 2, bins)."""
        B, T, _, n_bins = columns.shape
        c = torch.clamp(cutoff_bin.floor().long(), min=2, max=n_bins - 1)[:, None]  # (B, 1)
        width = torch.clamp(c, max=self.cfg.copy_bins)  # (B, 1)
        k = torch.arange(n_bins, device=columns.device)[None, :]  # (1, bins)
        src = torch.where(k > c, c + 1 - width + torch.remainder(k - c - 1, width), k)  # (B, bins)
        # one row per (example, bin): the copy is a gather of whole rows (ONNX Gather), not
        # of single elements by an index as large as the spectrum (GatherElements)
        rows = columns.permute(0, 3, 1, 2).reshape(B * n_bins, T * 2)
        src = (src + n_bins * torch.arange(B, device=columns.device)[:, None]).reshape(-1)  # (B·bins,)
        copied = rows[src].reshape(B, n_bins, T, 2).permute(0, 2, 3, 1)  # (B, T, 2, bins)
        mag = torch.sqrt(copied[:, :, 0] ** 2 + copied[:, :, 1] ** 2 + self.cfg.eps)  # (B, T, bins)
        smooth = nn.functional.avg_pool1d(mag.reshape(-1, 1, n_bins), 9, 1, 4, count_include_pad=False)
        return copied / (smooth.reshape(B, T, 1, n_bins) + self.cfg.eps)

    def noise_excitation(self, spectrum: torch.Tensor, newest: int = 0,
                         position: torch.Tensor | None = None) -> torch.Tensor:
        """The noise columns a frame reads (see `RealtimeConfig.noise_start`), wrapping
        around the `noise_frames` columns: (1, 2, bins, T) from column 0 ("fixed"), or
        (B, 2, bins, T) from an offset set by the loudest frame of each of 16 bands of the
        input ("input") or by the frame's place in the stream, `position` (B,) in STFT
        columns ("position"). Only the `newest` columns when that is > 0. Column by column,
        as `generate` works: (1 or B, T, 2, bins)."""
        T, N = spectrum.shape[3], self.cfg.noise_frames
        first = T - newest if newest else 0
        by_column = self.noise.permute(2, 0, 1)  # (N, 2, bins): a column is one contiguous row
        if self.cfg.noise_start == "fixed":
            return by_column[None, first:T]
        B, _, bins, _ = spectrum.shape
        if self.cfg.noise_start == "position":
            if position is None:
                raise ValueError("noise_start 'position': expected the frame's position in the stream")
            start = torch.remainder(position.floor().long(), N)  # (B,)
        else:
            groups = 16  # bands of bins/16 bins: in some of them the loudest frame is the hiss's chance
            power = spectrum[:, 0, : bins - bins % groups] ** 2 + spectrum[:, 1, : bins - bins % groups] ** 2
            loudest = torch.argmax(power.reshape(B, groups, -1, T).sum(dim=2), dim=2)  # (B, groups) frame index
            odd = torch.arange(1, 2 * groups, 2, device=spectrum.device)  # 1, 3, 5, ...
            start = torch.remainder((loudest * odd[None, :]).sum(dim=1), N)  # (B,)
        cols = torch.remainder(start[:, None] + torch.arange(first, T, device=spectrum.device)[None, :], N)
        return by_column[cols]  # (B, T, 2, bins)

    def forward(self, spectrum: torch.Tensor, cutoff_hz: torch.Tensor, newest: int = 0,
                position: torch.Tensor | None = None) -> torch.Tensor:
        """spectrum (B, 2, bins, T), cutoff_hz (B,) -> restored (B, 2, bins, T), or only its
        `newest` columns (B, 2, bins, newest) when that is > 0 (see `generate`)."""
        generated, columns, keep = self._synthesize(spectrum, cutoff_hz, newest, position)
        keep = keep[:, None, None, :]  # (B, 1, 1, bins)
        return (keep * columns + (1.0 - keep) * generated).permute(0, 2, 3, 1)

    def generate(self, spectrum: torch.Tensor, cutoff_hz: torch.Tensor, newest: int = 0,
                 position: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The band the model makes, (B, 2, bins, T), over the whole spectrum, and the
        weight (B, bins) the input keeps in the merge (1 up to the cutoff bin).

        With `newest` > 0 the band of only the frame's newest columns, (B, 2, bins,
        newest), equal to those columns of the whole band: the envelope still reads the
        whole frame, but the per-bin synthesis, most of the cost, runs where the
        low-latency framing listens. `position` (B,): where each frame starts in its
        stream, in STFT columns, for the noise of ``noise_start = "position"``."""
        generated, _, keep = self._synthesize(spectrum, cutoff_hz, newest, position)
        return generated.permute(0, 2, 3, 1), keep

    def _synthesize(self, spectrum: torch.Tensor, cutoff_hz: torch.Tensor, newest: int,
                    position: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`generate` column by column: the band (B, T, 2, bins), the input's columns it is
        made for (B, T, 2, bins) and the keep weight (B, bins).

        The per-bin work runs column by column, every broadcast along the bins and the band
        -> bin products as GEMMs with the bins as their long side: in ONNX Runtime the low-
        latency model's stereo frame takes a tenth less time than with the columns last,
        where each broadcast strides over 4 columns (the same arithmetic)."""
        cutoff_bin = cutoff_hz / self.cfg.bin_hz  # (B,)
        log_env, ref, noise_share = self.envelope(spectrum, cutoff_hz)  # (B, bands, T), (B, 1, 1), (B, bands, T)
        noise = self.noise_excitation(spectrum, newest, position)  # (1 or B, T or newest, 2, bins)
        if newest:
            log_env, noise_share = log_env[..., -newest:], noise_share[..., -newest:]
            spectrum = spectrum[..., -newest:]
        up = self.to_bins.t()  # (bands, bins)
        amp = torch.exp(0.5 * torch.matmul((log_env + ref).transpose(1, 2), up))  # (B, T, bins)
        share = torch.matmul(noise_share.transpose(1, 2), up)[:, :, None]  # (B, T, 1, bins)
        share = share.clamp(1e-4, 1.0 - 1e-4)  # sqrt has no gradient at 0 (bins no band covers)
        columns = spectrum.permute(0, 3, 1, 2)  # (B, T, 2, bins)
        excitation = torch.sqrt(1.0 - share) * self.replicate(columns, cutoff_bin) + torch.sqrt(share) * noise
        keep = keep_gains(cutoff_bin, spectrum.shape[2], self.cfg.fade_bins)
        return excitation * amp[:, :, None], columns, keep


class BandDiscriminator(nn.Module):
    """Judges log band-energy images (B, 1, bands, T) with strided 2-D convolutions;
    returns the logit and the hidden feature maps (for feature matching)."""

    def __init__(self, n_bands: int = 96, width: int = 32, slope: float = 0.3):
        super().__init__()
        chans = [1, width, 2 * width, 4 * width, 4 * width]
        self.convs = nn.ModuleList(
            nn.Conv2d(a, b, (5, 3), stride=(2, 1) if i % 2 else (2, 2), padding=(2, 1))
            for i, (a, b) in enumerate(zip(chans[:-1], chans[1:]))
        )
        self.act = nn.LeakyReLU(slope)
        self.head = nn.Conv2d(chans[-1], 1, 3, padding=1)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        feats = []
        h = image
        for conv in self.convs:
            h = self.act(conv(h))
            feats.append(h)
        return self.head(h).mean(dim=(1, 2, 3)), feats  # (B,), [...]


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
