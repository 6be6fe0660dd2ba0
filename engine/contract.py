"""The model contract as one object: what every model, export, data set and test agrees on.

A `Contract` says how audio becomes the spectrum a model restores: the sample rate, the
STFT (size, hop, window), the length of the frames the engine cuts and what the
``spectrum`` tensor holds. Models carry it in their configs, export writes it into the
ONNX ``metadata_props`` with `Contract.to_metadata`, the engine reads it back with
`Contract.from_metadata`; nothing else restates these numbers.

    >>> DEFAULT_CONTRACT.n_bins, DEFAULT_CONTRACT.frame_length, DEFAULT_CONTRACT.frames_per_frame
    (1025, 24000, 47)

Torch-free: the engine imports it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from numbers import Integral, Real
from typing import Any

WINDOWS = ("hann",)  # periodic Hann, as torch.hann_window(n, periodic=True)
REPRESENTATIONS = ("complex_ri",)  # real and imaginary planes of the complex STFT
# Model configs written before the contract was one object held these keys flat.
FLAT_CONFIG_KEYS = ("sample_rate", "n_fft", "hop_length")


MAX_FRAME_SECONDS = 10.0  # longer frames are not streaming restoration (and would exhaust memory)
MAX_SAMPLE_RATE = 768000
MAX_N_FFT = 65536


class ContractError(ValueError):
    """The contract's values do not make a usable transform; the message says why, in one line."""


def n_stft_frames(length: int, hop: int) -> int:
    """STFT frames of a centred transform of `length` samples."""
    return 1 + length // hop


@dataclass(frozen=True)
class Contract:
    """Sample rate, STFT and frame of the spectrum a model restores (see DESIGN.md)."""

    sample_rate: int = 48000  # Hz; audio is resampled to this rate before framing
    n_fft: int = 2048  # STFT size; the spectrum has n_fft // 2 + 1 bins
    hop_length: int = 512  # STFT hop inside one frame
    window: str = "hann"  # STFT window, one of WINDOWS
    frame_seconds: float = 0.5  # length of the frames the engine cuts and the model restores
    representation: str = "complex_ri"  # what `spectrum` holds, one of REPRESENTATIONS

    def __post_init__(self) -> None:
        for name in ("sample_rate", "n_fft", "hop_length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, Integral) or value <= 0:
                raise ContractError(f"{name}: expected a positive int, got {value!r}")
            object.__setattr__(self, name, int(value))
        if isinstance(self.frame_seconds, bool) or not isinstance(self.frame_seconds, Real) \
                or not 0 < self.frame_seconds <= MAX_FRAME_SECONDS:
            raise ContractError(f"frame_seconds: expected a value above 0 and at most {MAX_FRAME_SECONDS:g} s, "
                                f"got {self.frame_seconds!r}")
        if self.sample_rate > MAX_SAMPLE_RATE or self.n_fft > MAX_N_FFT:
            raise ContractError(f"sample_rate {self.sample_rate} / n_fft {self.n_fft}: expected at most "
                                f"{MAX_SAMPLE_RATE} Hz and {MAX_N_FFT} points")
        object.__setattr__(self, "frame_seconds", float(self.frame_seconds))
        if self.window not in WINDOWS:
            raise ContractError(f"window: expected one of {WINDOWS}, got {self.window!r}")
        if self.representation not in REPRESENTATIONS:
            raise ContractError(f"representation: expected one of {REPRESENTATIONS}, got {self.representation!r}")
        # The periodic Hann window is 0 at its first sample, so a hop of n_fft or more
        # leaves samples no window covers; reflect padding needs a frame over n_fft / 2.
        if self.hop_length >= self.n_fft or self.frame_length <= self.n_fft // 2:
            raise ContractError(f"hop_length {self.hop_length}, n_fft {self.n_fft} and frame "
                                f"{self.frame_length} samples do not make a valid STFT")

    @property
    def frame_length(self) -> int:
        """Samples in one frame (24000 for 0.5 s at 48 kHz)."""
        return round(self.frame_seconds * self.sample_rate)

    @property
    def n_bins(self) -> int:
        """Frequency bins of the spectrum: n_fft // 2 + 1."""
        return self.n_fft // 2 + 1

    @property
    def bin_hz(self) -> float:
        """Width of one bin in Hz."""
        return self.sample_rate / self.n_fft

    @property
    def frames_per_frame(self) -> int:
        """STFT frames (the spectrum's time axis) of one engine frame: 47 for 0.5 s."""
        return n_stft_frames(self.frame_length, self.hop_length)

    def to_metadata(self) -> dict[str, str]:
        """The ONNX ``metadata_props`` that carry the contract: one string per field of
        `Contract` (a subclass's own fields are not the contract's)."""
        return {name: str(getattr(self, name)) for name in METADATA_KEYS}

    @staticmethod
    def from_metadata(meta: Mapping[str, str]) -> Contract:
        """Inverse of `to_metadata`; extra keys (the model's identity, metrics) are ignored."""
        missing = [name for name in METADATA_KEYS if name not in meta]
        if missing:
            raise ContractError(f"metadata lacks {', '.join(missing)}")
        values: dict[str, Any] = {}
        for f in fields(Contract):
            kind = type(f.default)  # int, float or str
            try:
                values[f.name] = kind(meta[f.name])
            except ValueError:
                raise ContractError(f"metadata {f.name}: expected {kind.__name__}, got {meta[f.name]!r}") from None
        try:
            return Contract(**values)
        except ContractError as exc:
            raise ContractError(f"metadata {exc}") from None

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> Contract:
        """A contract from a config table (TOML, JSON, a checkpoint); absent keys keep their defaults."""
        unknown = sorted(set(data) - set(METADATA_KEYS))
        if unknown:
            raise ContractError(f"unknown contract keys {unknown}; expected some of {list(METADATA_KEYS)}")
        return Contract(**data)


class HoldsContract:
    """For configs that hold a `contract` field: its figures read as the config's own
    (``cfg.sample_rate``, ``cfg.n_fft``, ``cfg.hop_length``, ``cfg.n_bins``, ``cfg.bin_hz``)."""

    contract: Contract

    @property
    def sample_rate(self) -> int:
        return self.contract.sample_rate

    @property
    def n_fft(self) -> int:
        return self.contract.n_fft

    @property
    def hop_length(self) -> int:
        return self.contract.hop_length

    @property
    def n_bins(self) -> int:
        return self.contract.n_bins

    @property
    def bin_hz(self) -> float:
        return self.contract.bin_hz


DEFAULT_CONTRACT = Contract()
METADATA_KEYS = tuple(f.name for f in fields(Contract))  # the contract's keys in metadata and config tables


def pop_contract(values: dict[str, Any]) -> Contract:
    """Take a model config's contract out of its table `values` (changed in place).

    The contract is the nested ``contract`` table (a `Contract` or a mapping), or, in
    configs written before it was one object, the flat keys `FLAT_CONFIG_KEYS`; neither
    gives the default contract.
    """
    nested = values.pop("contract", None)
    flat = {key: values.pop(key) for key in FLAT_CONFIG_KEYS if key in values}
    if nested is not None and flat:
        raise ContractError(f"expected the contract in one place, got a contract table and {sorted(flat)}")
    if isinstance(nested, Contract):
        return nested
    return Contract.from_dict(flat if nested is None else nested)
