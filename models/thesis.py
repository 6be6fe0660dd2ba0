"""The source thesis's DCGAN/SpecGAN-hybrid restorer, on STFT "images".

The generator maps the complex STFT of one damaged 0.5 s segment to the complex STFT of
the restored segment, ``(B, 2, 1025, 47) -> (B, 2, 1025, 47)`` (real, imaginary: the
transform of its config's :class:`~reelrestore.engine.contract.Contract`, exactly
:func:`reelrestore.models.spectral.stft`). Whatever representation an experiment used
(complex RI, log-magnitude, log-MFCC) is computed *inside* ``forward``, so an ONNX export
sees one graph from complex spectrum to complex spectrum and the engine never learns
about it.

Inside, it is an encoder of stride-2 ``Conv2d`` layers followed by a generator of
``ConvTranspose2d`` layers (DCGAN/SpecGAN's 5x5 kernels, 5 or 4 layers, Tanh out). The
discriminator is DCGAN's: stride-2 ``Conv2d`` layers, dropout, one ``Linear`` logit.

The thesis text is not available to this project; :func:`experiment` documents how each
of its Experiments 1-11 is read into a :class:`ThesisConfig`. Build a tiny network for
tests with :func:`tiny_config`; count parameters and multiply-adds per layer with
:func:`count_layers`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from reelrestore.models.configs import ACTIVATIONS, NORMS, REPRESENTATIONS, ThesisConfig, experiment, tiny_config
from reelrestore.models.spectral import ConvSTFT
from torch import nn

__all__ = [
    "ACTIVATIONS",
    "NORMS",
    "REPRESENTATIONS",
    "LayerCount",
    "SpectralRepresentation",
    "ThesisConfig",
    "ThesisDiscriminator",
    "ThesisGenerator",
    "ThesisNet",
    "count_layers",
    "experiment",
    "format_counts",
    "load_generator",
    "tiny_config",
]

# --------------------------------------------------------------------------------------
# Representation (inside the graph)
# --------------------------------------------------------------------------------------
def _magnitude(spec: torch.Tensor) -> torch.Tensor:
    """(B, 2, F, T) -> (B, 1, F, T); clamped so sqrt has a finite gradient at 0."""
    return spec.pow(2).sum(1, keepdim=True).clamp_min(1e-20).sqrt()


def _phasor(spec: torch.Tensor) -> torch.Tensor:
    """(B, 2, F, T) -> unit complex (B, 2, F, T); 1+0i where the bin is silent."""
    mag = _magnitude(spec)  # (B, 1, F, T)
    zero_phase = spec.new_tensor([1.0, 0.0]).view(1, 2, 1, 1)  # broadcast: no shape baked into a graph
    return torch.where(mag > 1e-9, spec / mag, zero_phase)


def _peak(spec: torch.Tensor) -> torch.Tensor:
    """(B, 2, F, T) -> (B, 1, 1, 1): largest |re| or |im|, so spec/peak is in [-1, 1]."""
    return spec.abs().amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-8)


def _mel_filterbank(n_mels: int, n_bins: int, sample_rate: int) -> torch.Tensor:
    """HTK-mel triangles (peak 1), (n_mels, n_bins), float64."""
    def hz_to_mel(f: torch.Tensor) -> torch.Tensor:
        return 2595.0 * torch.log10(1.0 + f / 700.0)

    def mel_to_hz(m: torch.Tensor) -> torch.Tensor:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)

    bins_hz = torch.linspace(0, sample_rate / 2, n_bins, dtype=torch.float64)
    edges = mel_to_hz(torch.linspace(0, float(hz_to_mel(torch.tensor(sample_rate / 2.0))), n_mels + 2,
                                     dtype=torch.float64))
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]  # (M, 1)
    rising = (bins_hz - lo) / (mid - lo)
    falling = (hi - bins_hz) / (hi - mid)
    return torch.clamp(torch.minimum(rising, falling), min=0.0)  # (M, F)


def _dct_matrix(n_out: int, n_in: int) -> torch.Tensor:
    """Orthonormal DCT-II, first n_out rows: (n_out, n_in), float64."""
    n = torch.arange(n_in, dtype=torch.float64)
    k = torch.arange(n_out, dtype=torch.float64)[:, None]
    basis = torch.cos(math.pi / n_in * (n + 0.5) * k) * math.sqrt(2.0 / n_in)
    basis[0] /= math.sqrt(2.0)
    return basis


class SpectralRepresentation(nn.Module):
    """Complex spectrum <-> the image the network sees, in roughly [-1, 1] (Tanh's range).

    Parameter-free; everything is a derived buffer, so state dicts hold only weights.
    """

    def __init__(self, cfg: ThesisConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.kind = cfg.representation
        self.log_lo = math.log(cfg.log_eps)
        self.log_span = math.log(cfg.log_max) - self.log_lo
        if self.kind == "log_mfcc":
            fb = _mel_filterbank(cfg.n_mels, cfg.n_bins, cfg.sample_rate)  # (M, F)
            self.register_buffer("mel", fb.float(), persistent=False)
            self.register_buffer("mel_pinv", torch.linalg.pinv(fb).float(), persistent=False)  # (F, M)
            self.register_buffer("dct", _dct_matrix(cfg.n_mfcc, cfg.n_mels).float(), persistent=False)
        self.uses_griffin_lim = self.kind == "log_mfcc" or (self.kind == "log_stft" and cfg.phase == "griffin_lim")
        self.conv_stft = ConvSTFT(cfg.contract.n_fft, cfg.contract.hop_length) if self.uses_griffin_lim else None

    def _log_unit(self, mag: torch.Tensor) -> torch.Tensor:
        return 2.0 * (torch.log(mag + self.cfg.log_eps) - self.log_lo) / self.log_span - 1.0

    def _from_log_unit(self, unit: torch.Tensor) -> torch.Tensor:
        # Tanh keeps log_stft in [-1, 1], but an inverse DCT can overshoot: cap at +1.5
        # (~100x log_max) so exp cannot overflow.
        unit = unit.clamp(-1.0, 1.5)
        return (torch.exp((unit + 1.0) * 0.5 * self.log_span + self.log_lo) - self.cfg.log_eps).clamp_min(0.0)

    def analyse(self, spec: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 2, F, T) -> (B, C, F', T). ``ref`` supplies the scale (complex_ri peak), so
        a target can be expressed in the damaged input's units for the content loss."""
        if self.kind == "complex_ri":
            return spec / _peak(spec if ref is None else ref)  # (B, 2, F, T)
        log_mag = self._log_unit(_magnitude(spec))  # (B, 1, F, T)
        if self.kind == "log_stft":
            return log_mag
        mel = torch.matmul(self.mel, _magnitude(spec))  # (B, 1, M, T)
        return torch.matmul(self.dct, self._log_unit(mel)) / math.sqrt(self.cfg.n_mels)  # (B, 1, K, T)

    def synthesise(self, y: torch.Tensor, spec: torch.Tensor) -> torch.Tensor:
        """(B, C, F', T) network output + (B, 2, F, T) input -> (B, 2, F, T) spectrum."""
        if self.kind == "complex_ri":
            return y * _peak(spec)
        if self.kind == "log_stft":
            mag = self._from_log_unit(y)  # (B, 1, F, T)
        else:
            log_mel = torch.matmul(self.dct.t(), y * math.sqrt(self.cfg.n_mels))  # (B, 1, M, T)
            mag = torch.matmul(self.mel_pinv, self._from_log_unit(log_mel)).clamp_min(0.0)  # (B, 1, F, T)
        phasor = _phasor(spec)  # (B, 2, F, T)
        if self.uses_griffin_lim:
            phasor = self.griffin_lim(mag, phasor)
        return mag * phasor

    def griffin_lim(self, mag: torch.Tensor, phasor: torch.Tensor) -> torch.Tensor:
        """Phase for (B, 1, F, T) magnitudes, started from the input's phase -> (B, 2, F, T)."""
        assert self.conv_stft is not None
        for _ in range(self.cfg.griffin_lim_iters):
            audio = self.conv_stft.inverse(mag * phasor)  # (B, (T-1)*hop)
            phasor = _phasor(self.conv_stft(audio))  # (B, 2, F, T)
        return phasor


# --------------------------------------------------------------------------------------
# Networks
# --------------------------------------------------------------------------------------
def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":
        # LayerNorm over (C, F, T) of each example with per-channel affine; unlike
        # nn.LayerNorm([C, F, T]) it does not tie the weights to one frame count.
        return nn.GroupNorm(1, channels)
    return nn.Identity()


def _activation(kind: str, slope: float) -> nn.Module:
    if kind == "relu":
        return nn.ReLU()
    if kind == "leaky_relu":
        return nn.LeakyReLU(slope)
    return nn.ELU()


class _Up(nn.Module):
    """ConvTranspose2d that doubles the strided axes, cropped back to the encoder's size."""

    def __init__(self, c_in: int, c_out: int, cfg: ThesisConfig, last: bool) -> None:
        super().__init__()
        k, s = cfg.kernel_size, cfg.stride
        # output = in*stride exactly (padding k//2, output_padding stride-1)
        self.conv = nn.ConvTranspose2d(c_in, c_out, k, s, padding=k // 2,
                                       output_padding=(s[0] - 1, s[1] - 1),
                                       bias=last or cfg.norm == "none")
        if last:
            self.post = nn.Tanh()
        else:
            self.post = nn.Sequential(_norm(cfg.norm, c_out), _activation(cfg.activation, cfg.leaky_slope),
                                      nn.Dropout(cfg.dropout))

    def forward(self, h: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        h = self.conv(h)[..., : size[0], : size[1]]  # (B, c_out, F_level, T_level)
        return self.post(h)


class ThesisNet(nn.Module):
    """Encoder (Conv2d, stride) then generator (ConvTranspose2d), Tanh out; no skips.

    (B, C, F, T) -> (B, C, F, T) for any F, T.
    """

    def __init__(self, cfg: ThesisConfig) -> None:
        super().__init__()
        k, c = cfg.kernel_size, cfg.repr_channels
        chans = [c] + [cfg.width * 2**i for i in range(cfg.n_layers)]  # e.g. 2, 64 .. 1024
        self.enc = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(chans[i], chans[i + 1], k, cfg.stride, padding=k // 2, bias=cfg.norm == "none"),
                _norm(cfg.norm, chans[i + 1]),
                _activation(cfg.activation, cfg.leaky_slope),
            )
            for i in range(cfg.n_layers)
        )
        self.dec = nn.ModuleList(
            _Up(chans[i + 1], chans[i], cfg, last=i == 0) for i in reversed(range(cfg.n_layers))
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        sizes = []
        h = z  # (B, C, F, T)
        for block in self.enc:
            sizes.append(h.shape[-2:])
            h = block(h)  # (B, d*2**i, ceil(F/2**(i+1)), T)
        for block, size in zip(self.dec, reversed(sizes)):
            h = block(h, size)  # back up one level; the last is (B, C, F, T) in [-1, 1]
        return h


class ThesisGenerator(nn.Module):
    """Complex spectrum -> restored complex spectrum, representation inside the graph.

    ``forward``: (B, 2, 1025, T) -> (B, 2, 1025, T); T is free (47 for 0.5 s).
    Training code may call the three parts separately (``analyse`` / ``net`` /
    ``synthesise``) to compute losses in the representation domain.
    """

    def __init__(self, cfg: ThesisConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or ThesisConfig()
        self.representation = SpectralRepresentation(self.cfg)
        self.net = ThesisNet(self.cfg)

    def analyse(self, spectrum: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        return self.representation.analyse(spectrum, ref)

    def synthesise(self, y: torch.Tensor, spectrum: torch.Tensor) -> torch.Tensor:
        return self.representation.synthesise(y, spectrum)

    def forward(self, spectrum: torch.Tensor) -> torch.Tensor:
        if spectrum.ndim != 4 or spectrum.shape[1] != 2 or spectrum.shape[2] != self.cfg.n_bins:
            raise ValueError(f"expected spectrum (batch, 2, {self.cfg.n_bins}, frames), "
                             f"got {tuple(spectrum.shape)}")
        z = self.analyse(spectrum)  # (B, C, F', T)
        y = self.net(z)  # (B, C, F', T), Tanh
        return self.synthesise(y, spectrum)  # (B, 2, F, T)


def _conv_out(n: int, k: int, s: int) -> int:
    return (n + 2 * (k // 2) - k) // s + 1


class ThesisDiscriminator(nn.Module):
    """DCGAN discriminator on the representation image: (B, C, F', T) -> (B,) logits.

    ``Linear`` needs a fixed size, so D is built for ``cfg.segment_frames`` frames (it
    is a training-time network; only the generator is exported).
    """

    def __init__(self, cfg: ThesisConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or ThesisConfig()
        k, s = cfg.kernel_size, cfg.d_stride
        act, slope = cfg.discriminator_activation
        self.input_shape = (cfg.repr_channels, cfg.repr_bins, cfg.segment_frames)
        chans = [cfg.repr_channels] + [cfg.d_width * 2**i for i in range(cfg.d_layers)]
        layers: list[nn.Module] = []
        f, t = self.input_shape[1:]
        for i in range(cfg.d_layers):
            norm = "none" if i == 0 else cfg.discriminator_norm  # DCGAN: no norm on the input layer
            layers += [nn.Conv2d(chans[i], chans[i + 1], k, s, padding=k // 2, bias=norm == "none"),
                       _norm(norm, chans[i + 1]), _activation(act, slope), nn.Dropout(cfg.d_dropout)]
            f, t = _conv_out(f, k, s[0]), _conv_out(t, k, s[1])
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(chans[-1] * f * t, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if tuple(z.shape[1:]) != self.input_shape:
            raise ValueError(f"expected discriminator input (batch, {', '.join(map(str, self.input_shape))}), "
                             f"got {tuple(z.shape)}")
        h = self.features(z)  # (B, d*2**(L-1), F'', T'')
        return self.head(h.flatten(1)).squeeze(1)  # (B,)


def load_generator(checkpoint: Mapping[str, Any], map_location: str | torch.device = "cpu") -> ThesisGenerator:
    """A generator from a training checkpoint dict (``torch.load(path)``), eval mode.

    Needs only this module: the checkpoint carries ``model_class``, ``model_config`` and
    the ``generator`` state dict (see ``reelrestore.training.loop``).
    """
    name = checkpoint.get("model_class")
    if name != f"{__name__}.ThesisGenerator":
        raise ValueError(f"expected model_class {__name__}.ThesisGenerator, got {name!r}")
    model = ThesisGenerator(ThesisConfig.from_dict(checkpoint["model_config"]))
    model.load_state_dict(checkpoint["generator"])
    return model.to(map_location).eval()


# --------------------------------------------------------------------------------------
# Parameter and multiply-add counting
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LayerCount:
    name: str  # module path, e.g. "net.enc.0.0"
    kind: str  # class name
    params: int  # parameters owned by this module (not its children)
    macs: int  # multiply-adds per batch-1 forward (conv/linear weights only)
    output_shape: tuple[int, ...]


def _macs(module: nn.Module, inp: torch.Tensor, out: torch.Tensor) -> int:
    if isinstance(module, nn.Conv2d | nn.Conv1d):  # every output element: C_in/g * k MACs
        return out[0].numel() * (module.in_channels // module.groups) * math.prod(module.kernel_size)
    if isinstance(module, nn.ConvTranspose2d | nn.ConvTranspose1d):  # every input element scatters
        return inp[0].numel() * (module.out_channels // module.groups) * math.prod(module.kernel_size)
    if isinstance(module, nn.Linear):
        return out[0].numel() * module.in_features
    return 0


def count_layers(model: nn.Module, input_shape: Sequence[int]) -> list[LayerCount]:
    """Parameters and multiply-adds of every leaf module for one input of ``input_shape``
    (batch 1 recommended: MACs are reported for batch 1).

    Runs a copy of ``model`` on the meta device, so full width costs no compute. MACs
    count conv/linear weights only; norms, activations and the representation's
    STFT/Griffin-Lim (functional calls) are not counted.
    """
    shadow = copy.deepcopy(model).to("meta").eval()
    rows: list[LayerCount] = []

    def hook(name: str):
        def record(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
            params = sum(p.numel() for p in module.parameters(recurse=False))
            macs = _macs(module, args[0], out) * args[0].shape[0]
            rows.append(LayerCount(name, type(module).__name__, params, macs, tuple(out.shape)))
        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in shadow.named_modules()
               if not list(m.children()) and (isinstance(m, nn.Conv1d | nn.Conv2d | nn.ConvTranspose1d |
                                                         nn.ConvTranspose2d | nn.Linear)
                                              or any(True for _ in m.parameters(recurse=False)))]
    try:
        with torch.no_grad():
            shadow(torch.zeros(tuple(input_shape), device="meta"))
    finally:
        for h in handles:
            h.remove()
    return rows


def format_counts(rows: Sequence[LayerCount]) -> str:
    """A per-layer table with totals (for logs and model cards)."""
    lines = [f"{'layer':<24}{'kind':<18}{'params':>12}{'MACs':>16}  output"]
    for r in rows:
        lines.append(f"{r.name:<24}{r.kind:<18}{r.params:>12,}{r.macs:>16,}  {r.output_shape}")
    total_p, total_m = sum(r.params for r in rows), sum(r.macs for r in rows)
    lines.append(f"{'total':<42}{total_p:>12,}{total_m:>16,}  ({total_m / 1e9:.2f} G MACs)")
    return "\n".join(lines)
