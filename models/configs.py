"""The networks' configs, without torch: what a training config file, a checkpoint and an
exported model's metadata say about a network's shape.

Each lives here rather than beside its network (`reelrestore.models.thesis`, `.realtime`,
`.unet`, which import it from here) so that a config is read and checked without loading
torch: ``restore-train`` refuses a bad config file or override before torch starts (a few
seconds on a small machine), and whatever reads a model's metadata can parse its config.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from reelrestore.engine.contract import (
    DEFAULT_CONTRACT,
    FLAT_CONFIG_KEYS,
    Contract,
    HoldsContract,
    pop_contract,
)

__all__ = ["ACTIVATIONS", "NORMS", "PHASES", "REPRESENTATIONS", "RealtimeConfig", "ThesisConfig", "UNetConfig",
           "experiment", "tiny_config"]

# ------------------------------- the thesis's DCGAN/SpecGAN (reelrestore.models.thesis)
REPRESENTATIONS = ("complex_ri", "log_stft", "log_mfcc")
NORMS = ("none", "batch", "layer")
ACTIVATIONS = ("relu", "leaky_relu", "elu")
PHASES = ("input", "griffin_lim")


@dataclass(frozen=True)
class ThesisConfig(HoldsContract):
    """Every choice the thesis's experiments varied, plus the engine's contract.

    The default is Experiment 11 at full width (see :func:`experiment`).
    """

    # Label only (model cards, metadata); the fields below decide the network.
    experiment: int | None = 11

    # --- representation the network sees (computed inside forward) ---
    # complex_ri: real+imag scaled by the input's peak -> phase is modelled directly.
    # log_stft: log-magnitude (SpecGAN's image); phase from the input or Griffin-Lim.
    # log_mfcc: DCT of the log-mel magnitude; inverted by pseudo-inverse mel + Griffin-Lim.
    representation: str = "complex_ri"
    # Phase for log_stft: "input" is free and keeps the surviving band's phase;
    # "griffin_lim" is SpecGAN's inversion (log_mfcc always uses Griffin-Lim).
    phase: str = "input"
    griffin_lim_iters: int = 32  # per forward; each costs one iSTFT + one STFT
    log_eps: float = 1e-5  # magnitude floor: log(eps) maps to -1 (inaudible, > fp16 tiny)
    log_max: float = 1024.0  # magnitude that maps to +1: a full-scale bin with Hann sum 1024
    n_mels: int = 128  # mel bands for log_mfcc
    n_mfcc: int = 128  # cepstral coefficients kept; = n_mels keeps the DCT invertible

    # --- generator: encoder (Conv2d) then generator (ConvTranspose2d) ---
    n_layers: int = 5  # per half; the thesis tried 5 and 4
    width: int = 64  # base channels d; layer i has d * 2**i (DCGAN's 64..1024)
    kernel_size: int = 5  # SpecGAN's 5x5 (odd, so padding k//2 keeps sizes exact)
    # (freq, time) stride. Only frequency is halved: a 0.5 s segment has just 47 STFT
    # frames (`Contract.frames_per_frame`); keeping them puts full width at 75.7 G MACs,
    # the project's quoted ~72 G.
    stride: tuple[int, int] = (2, 1)
    norm: str = "layer"  # none | batch | layer (LayerNorm over (C, F, T) per example)
    activation: str = "leaky_relu"  # relu | leaky_relu | elu, hidden layers of G and D
    leaky_slope: float = 0.3  # negative slope for leaky_relu
    dropout: float = 0.0  # after each hidden generator (decoder) layer, pix2pix-style

    # --- discriminator: DCGAN, stride-2 Conv2d layers then Linear to one logit ---
    d_layers: int = 5
    d_width: int = 64
    d_stride: tuple[int, int] = (2, 2)  # D only classifies, so it may shrink time too
    d_norm: str | None = None  # None: same as norm (no norm on D's first layer, as DCGAN)
    d_activation: str | None = None  # None: same as activation
    d_leaky_slope: float | None = None  # None: same as leaky_slope
    d_dropout: float = 0.3  # after every D layer: keeps D from memorising the small corpus

    # --- the spectrum in and out (the engine's contract; export writes it as metadata).
    # Its `representation` is what the graph's input holds, always complex; the field
    # `representation` above is what the network sees inside the graph.
    contract: Contract = DEFAULT_CONTRACT

    def __post_init__(self) -> None:
        _expect_in("representation", self.representation, REPRESENTATIONS)
        _expect_in("phase", self.phase, PHASES)
        _expect_in("norm", self.norm, NORMS)
        _expect_in("activation", self.activation, ACTIVATIONS)
        _expect_in("d_norm", self.d_norm, (None, *NORMS))
        _expect_in("d_activation", self.d_activation, (None, *ACTIVATIONS))
        for name in ("n_layers", "width", "d_layers", "d_width", "n_mels", "n_mfcc"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"expected {name} >= 1, got {getattr(self, name)}")
        if self.n_mfcc > self.n_mels:
            raise ValueError(f"expected n_mfcc <= n_mels={self.n_mels}, got {self.n_mfcc}")
        if self.kernel_size % 2 != 1:
            raise ValueError(f"expected an odd kernel_size, got {self.kernel_size}")
        for name in ("stride", "d_stride"):
            value = tuple(getattr(self, name))
            if len(value) != 2 or min(value) < 1:
                raise ValueError(f"expected {name} = (freq, time) >= 1, got {value}")
            object.__setattr__(self, name, (int(value[0]), int(value[1])))
        for name in ("dropout", "d_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"expected 0 <= {name} < 1, got {getattr(self, name)}")
        if not 0.0 < self.log_eps < self.log_max:
            raise ValueError(f"expected 0 < log_eps < log_max, got {self.log_eps}, {self.log_max}")

    # Derived, resolved values -------------------------------------------------------



    @property
    def segment_frames(self) -> int:
        """STFT frames of one engine frame (47 for 0.5 s): sizes D's Linear."""
        return self.contract.frames_per_frame

    @property
    def repr_channels(self) -> int:
        return 2 if self.representation == "complex_ri" else 1

    @property
    def repr_bins(self) -> int:
        return self.n_mfcc if self.representation == "log_mfcc" else self.n_bins

    @property
    def discriminator_norm(self) -> str:
        return self.norm if self.d_norm is None else self.d_norm

    @property
    def discriminator_activation(self) -> tuple[str, float]:
        act = self.activation if self.d_activation is None else self.d_activation
        slope = self.leaky_slope if self.d_leaky_slope is None else self.d_leaky_slope
        return act, slope

    @property
    def architecture(self) -> str:
        """One line for model cards and ONNX metadata."""
        act = self.activation + (f"({self.leaky_slope:g})" if self.activation == "leaky_relu" else "")
        return (
            f"thesis-dcgan-specgan exp{self.experiment} {self.representation} "
            f"L{self.n_layers} w{self.width} k{self.kernel_size} s{self.stride[0]}x{self.stride[1]} "
            f"{self.norm} {act} dropout{self.dropout:g}"
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain, TOML/JSON-friendly dict (tuples become lists, the contract a table)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ThesisConfig:
        """Inverse of :meth:`to_dict`. An ``experiment`` key starts from that preset and
        the other keys override it, so a file can say ``experiment = 3`` and ``width = 8``.
        Dicts written before the contract was one object (flat ``sample_rate``, ``n_fft``,
        ``hop_length``, ``segment_frames``) are read too."""
        values = _known(cls, data, "segment_frames")
        segment_frames = values.pop("segment_frames", None)
        contract = pop_contract(values)
        if segment_frames not in (None, contract.frames_per_frame):
            raise ValueError(f"expected segment_frames {contract.frames_per_frame} (the contract's STFT frames "
                             f"per frame), got {segment_frames}")
        preset = values.pop("experiment", 11)
        base = replace(cls(), experiment=None) if preset is None else experiment(preset)
        for key in ("stride", "d_stride"):
            if key in values:
                values[key] = tuple(values[key])
        return replace(base, contract=contract, **values)


def experiment(n: int, **overrides: Any) -> ThesisConfig:
    """The thesis's Experiment ``n`` (1..11) as a config, at full width.

    The thesis is not available here, so this is a documented *reading*: the experiments
    moved one axis at a time from a DCGAN/SpecGAN baseline to the final model.

    ==  ===========  ======  =====  =====================  =========  =========
    n   represent.   layers  norm   activation (G / D)     G dropout  D dropout
    ==  ===========  ======  =====  =====================  =========  =========
    1   log_stft     5       batch  ReLU / LeakyReLU 0.2   0          0
    2   log_mfcc     5       batch  ReLU / LeakyReLU 0.2   0          0
    3   complex_ri   5       batch  ReLU / LeakyReLU 0.2   0          0
    4   complex_ri   4       batch  ReLU / LeakyReLU 0.2   0          0
    5   complex_ri   5       none   ReLU / LeakyReLU 0.2   0          0
    6   complex_ri   5       batch  LeakyReLU 0.2          0          0
    7   complex_ri   5       batch  ELU                    0          0
    8   complex_ri   5       batch  LeakyReLU 0.2          0.5        0.3
    9   complex_ri   5       layer  LeakyReLU 0.2          0          0.3
    10  complex_ri   5       layer  ELU                    0          0.3
    11  complex_ri   5       layer  LeakyReLU 0.3          0          0.3
    ==  ===========  ======  =====  =====================  =========  =========

    1 is SpecGAN's log-magnitude image with DCGAN's BatchNorm/ReLU (phase taken from the
    input); 2 tries the compact cepstral image; 3 keeps phase by feeding real+imag; 4
    halves the depth; 5 removes normalisation; 6-7 swap the generator's activation; 8
    adds dropout; 9-11 replace BatchNorm by LayerNorm (batch-independent, so batch-1
    real-time inference behaves as in training) and tune the slope. Training-side
    choices (content loss, label smoothing, WGAN-GP) live in the training config.
    """
    dcgan = dict(norm="batch", activation="relu", d_activation="leaky_relu", d_leaky_slope=0.2,
                 d_dropout=0.0)
    table: dict[int, dict[str, Any]] = {
        1: dict(dcgan, representation="log_stft"),
        2: dict(dcgan, representation="log_mfcc"),
        3: dict(dcgan),
        4: dict(dcgan, n_layers=4, d_layers=4),
        5: dict(dcgan, norm="none"),
        6: dict(norm="batch", leaky_slope=0.2, d_dropout=0.0),
        7: dict(norm="batch", activation="elu", d_dropout=0.0),
        8: dict(norm="batch", leaky_slope=0.2, dropout=0.5),
        9: dict(leaky_slope=0.2),
        10: dict(activation="elu"),
        11: dict(),
    }
    if n not in table:
        raise ValueError(f"expected an experiment number in 1..11, got {n!r}")
    return replace(ThesisConfig(), experiment=n, **{**table[n], **overrides})


def tiny_config(n: int = 11, **overrides: Any) -> ThesisConfig:
    """Experiment ``n`` at width 4 (a few hundred M MACs): the test hook."""
    base = dict(width=4, d_width=4, griffin_lim_iters=2)
    return experiment(n, **{**base, **overrides})


# -------------------------------- the real-time generator (reelrestore.models.realtime)
@dataclass(frozen=True)
class RealtimeConfig(HoldsContract):
    """Shape of the real-time generator; travels in checkpoints and ONNX metadata."""

    contract: Contract = DEFAULT_CONTRACT  # the spectrum in and out; export writes it as metadata
    # Log-spaced bands the envelope is predicted on: fine enough to follow formants and
    # the hiss tilt (96 bands ~ 1/9 octave), coarse enough for a tiny network.
    n_bands: int = 96
    min_hz: float = 40.0  # lowest band centre; below it bands would be narrower than a bin
    width: int = 256  # channels of the temporal convolution
    layers: int = 4  # dilated residual layers: receptive field 1 + 2·(2^layers - 1) STFT frames
    slope: float = 0.3  # LeakyReLU slope, as the thesis's Experiment 11
    fade_bins: int = 10  # raised-cosine fade-in above the cutoff (the engine's merge default)
    copy_bins: int = 96  # width of the band replicated upward (2.25 kHz), or the whole band if less
    # The network corrects a DSP prior rather than starting from nothing: the level of the
    # half octave under the cutoff, falling this steeply, never below the hiss floor there.
    prior_slope_db_per_octave: float = -12.0
    noise_frames: int = 128  # frames of the fixed noise excitation (longest frame: 1.36 s)
    # Which noise columns a frame reads. "fixed" (the first models): from column 0, so
    # every frame of a stream gets the same noise and the added band repeats one frozen
    # noise at the hop rate, visible as a striped spectrogram. "input": from an offset
    # the input picks, the loudest frame in each of 16 bands (argmax: discrete, so ONNX
    # Runtime and PyTorch agree; where hiss decides, it moves from frame to frame).
    # "position": from the frame's place in the stream (an input the engine passes, in
    # STFT columns), so a stretch of the stream reads the same noise in every frame that
    # covers it and none repeats at the hop rate — which "input" cannot promise when
    # frames move one column at a time (the low-latency framing).
    noise_start: str = "fixed"
    # Padding of the temporal convolutions at the frame's ends: "zeros" (the first
    # models) pulls the envelope toward silence there; "replicate" continues the edge.
    conv_padding: str = "zeros"
    # Whether the network also sees what the input holds above the cutoff (its band
    # energies there, relative to the level reference). The first models saw only the
    # surviving band, so they could not tell a print whose hiss stayed above the cut from
    # one cut to silence, and added the same band to both.
    input_above: bool = False
    # The framing the model is trained for. 0: whole frames, each sample restored from a
    # frame centred on it (the engine's full framing). > 0: the engine's low-latency
    # framing, where only the hop that ends this many samples before the frame's end is
    # played (the frame is the last 0.5 s; `restore-stream --latency low`); export writes
    # it as the metadata ``lookahead_samples`` and the engine frames by it.
    lookahead: int = 0
    # Low-latency framing only: give the columns that framing plays (see
    # `reelrestore.engine.stream.played_columns`) one envelope and noise share, their mean
    # (the envelope's in the log domain, where it is predicted). The frame's last columns
    # read its end differently from one another (padding, look-ahead), and per column that
    # difference is heard inside every played hop as a level pattern at the STFT column
    # rate (94 Hz, 2.9 dB for low-latency 1.0); held, the hop's level moves only from one
    # frame to the next.
    hold_played: bool = False
    eps: float = 1e-8

    def __post_init__(self) -> None:
        if self.noise_start not in ("fixed", "input", "position"):
            raise ValueError(f"expected noise_start 'fixed', 'input' or 'position', got {self.noise_start!r}")
        if self.conv_padding not in ("zeros", "replicate"):
            raise ValueError(f"expected conv_padding 'zeros' or 'replicate', got {self.conv_padding!r}")
        if not 0 <= self.lookahead < self.contract.frame_length:
            raise ValueError(f"expected 0 <= lookahead < {self.contract.frame_length} samples, got {self.lookahead}")
        if self.hold_played and not self.lookahead:
            raise ValueError("hold_played holds the columns the low-latency framing plays: set lookahead too")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict; the contract is a nested table."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RealtimeConfig":
        """Inverse of `to_dict`; also reads dicts written before the contract was one
        object (flat ``sample_rate``, ``n_fft``, ``hop_length``)."""
        values = _known(cls, data)
        return cls(contract=pop_contract(values), **values)


# -------------------------------------- the time-domain U-Net (reelrestore.models.unet)
@dataclass(frozen=True)
class UNetConfig(HoldsContract):
    """Shape of the U-Net, its critic and autoencoder; travels in checkpoints and ONNX metadata."""

    contract: Contract = DEFAULT_CONTRACT  # the spectrum the wrapper inverts and re-analyses; exported as metadata
    blocks: int = 4  # B down and B up blocks; inputs are padded to a multiple of 2**B
    filters: int = 8  # filters of the first block, doubling with depth ...
    d_max: int = 64  # ... capped here
    kernels: tuple[int, ...] = (3, 9, 27, 81)  # the inception module's parallel kernels
    slope: float = 0.2  # LeakyReLU slope
    skips: bool = True  # U-Net skip connections (the autoencoder has none)
    input_skip: bool = True  # output = input + network: learn the missing band only
    fade_bins: int = 10  # spectrum wrapper: raised-cosine fade from kept to restored band
    critic_filters: int = 8
    critic_blocks: int = 5
    critic_pool: int = 16  # the critic's pooled length before its fully connected layers
    critic_hidden: int = 64  # width of the first fully connected layer
    ae_blocks: int = 4

    def __post_init__(self) -> None:
        object.__setattr__(self, "kernels", tuple(int(k) for k in self.kernels))
        if self.blocks < 1 or self.ae_blocks < 1 or self.critic_blocks < 1:
            raise ValueError(f"expected blocks, ae_blocks, critic_blocks >= 1, got "
                             f"{self.blocks}, {self.ae_blocks}, {self.critic_blocks}")
        if any(k < 1 or k % 2 == 0 for k in self.kernels) or not self.kernels:
            raise ValueError(f"expected odd inception kernels, got {self.kernels}")
        for name in ("filters", "d_max", "critic_filters"):
            if getattr(self, name) % (2 * len(self.kernels)):
                raise ValueError(f"expected {name} divisible by {2 * len(self.kernels)} (two halves of "
                                 f"{len(self.kernels)} inception branches), got {getattr(self, name)}")

    def width(self, depth: int) -> int:
        """Filters at block ``depth`` (0-based): ``filters * 2**depth``, at most ``d_max``."""
        return min(self.filters * 2**depth, self.d_max)




    @property
    def multiple(self) -> int:
        return 2**self.blocks

    @property
    def architecture(self) -> str:
        skips = "skips" if self.skips else "no-skips"
        return (f"time-unet-wgan-gp b{self.blocks} f{self.filters} dmax{self.d_max} "
                f"k{'/'.join(map(str, self.kernels))} {skips}")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict; the contract is a nested table."""
        data = asdict(self)
        data["kernels"] = list(self.kernels)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "UNetConfig":
        """Inverse of `to_dict`; also reads dicts written before the contract was one
        object (flat ``sample_rate``, ``n_fft``, ``hop_length``)."""
        values = _known(cls, data)
        return cls(contract=pop_contract(values), **values)


def _expect_in(name: str, value: Any, allowed: Sequence[Any]) -> None:
    if value not in allowed:
        raise ValueError(f"expected {name} in {tuple(allowed)}, got {value!r}")


def _known(cls: type, data: Mapping[str, Any], *also: str) -> dict[str, Any]:
    """A copy of `data`, whose keys must be fields of `cls`, the flat contract keys that
    dicts written before the contract was one object hold, or `also`."""
    known = {f.name for f in fields(cls)} | set(FLAT_CONFIG_KEYS) | set(also)
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown model config keys {unknown} for {cls.__name__}; expected some of {sorted(known)}")
    return dict(data)
