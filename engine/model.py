"""An ONNX restoration model and the contract it must honour (see DESIGN.md).

Every signal-processing parameter comes from the model's ``metadata_props`` (the
`Contract` in them); nothing here hard-codes a sample rate, FFT size or frame length. A
model that does not fit is rejected with one line that says what is wrong.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np
import onnxruntime as ort

from .contract import METADATA_KEYS, Contract, ContractError
from .level import BandLevel, BandLevelError

SPECTRUM_INPUT = "spectrum"
CUTOFF_INPUT = "cutoff_hz"
POSITION_INPUT = "position"
RESTORED_OUTPUT = "restored"
REQUIRED_METADATA = (*METADATA_KEYS, "architecture", "model_version")


class ModelError(ValueError):
    """The model file cannot be used by the engine; the message says why, in one line."""


@dataclass(frozen=True, kw_only=True)
class ModelSpec(Contract):
    """What the engine needs to know about a model, read from its metadata: the contract
    it honours (sample rate, STFT, frame; see `Contract`) and what it is."""

    architecture: str
    model_version: str
    # A model trained for the low-latency framing (`StreamConfig.latency` "low") declares
    # the look-ahead it was trained for, in samples, and may restore only the newest
    # columns of a frame (the ones that framing plays); None for whole-frame models.
    lookahead_samples: int | None = None
    restored_columns: int | None = None
    # The restored band's level per reel, fitted to this model after training (see
    # `level.BandLevel`); None: the model's band is played at the level it gives.
    band_level: BandLevel | None = None
    metadata: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def contract(self) -> Contract:
        """The contract alone, comparable with a model config's."""
        return Contract.from_dict({name: getattr(self, name) for name in METADATA_KEYS})

    @classmethod
    def from_metadata(cls, meta: Mapping[str, str]) -> ModelSpec:
        """The spec an ONNX model's ``metadata_props`` describe; ModelError names what is
        missing or wrong."""
        missing = [k for k in REQUIRED_METADATA if k not in meta]
        if missing:
            raise ModelError(f"model metadata lacks {', '.join(missing)}")
        try:
            contract = Contract.from_metadata(meta)
        except ContractError as exc:
            raise ModelError(str(exc)) from None
        optional = {}
        for key in ("lookahead_samples", "restored_columns"):
            if key in meta:
                try:
                    optional[key] = int(meta[key])
                except ValueError:
                    raise ModelError(f"model metadata {key}: expected an int, got {meta[key]!r}") from None
                if optional[key] < (1 if key == "restored_columns" else 0):
                    raise ModelError(f"model metadata {key}: out of range, got {optional[key]}")
        try:
            band_level = BandLevel.from_metadata(meta)
        except BandLevelError as exc:
            raise ModelError(f"model metadata {exc}") from None
        return cls(**asdict(contract), architecture=meta["architecture"], model_version=meta["model_version"],
                   band_level=band_level, metadata=dict(meta), **optional)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _gpu_present() -> bool:
    # onnxruntime-gpu lists CUDA as "available" on any machine; trying it without a driver
    # only prints a page of errors, so ask for it only when an NVIDIA driver is loaded.
    return os.path.exists("/proc/driver/nvidia/version")


def _check_dims(name: str, dims: list, expected: tuple) -> None:
    """Static dims must match `expected`; None in `expected` (or a symbolic dim) is free."""
    if len(dims) != len(expected):
        raise ModelError(f"{name}: expected {len(expected)} dims {expected}, got {dims}")
    for got, want in zip(dims, expected):
        if want is not None and isinstance(got, int) and got != want:
            raise ModelError(f"{name}: expected shape {expected}, got {dims}")


class OnnxModel:
    """An ONNX Runtime session checked against the model contract.

    ``run(spectrum (B, 2, bins, T), cutoff_hz (B,)[, position (B,)]) -> restored (B, 2,
    bins, T)``, or (B, 2, bins, K) for a model that restores only the newest K columns
    (`ModelSpec.restored_columns`). `provider` names what really runs (CUDA only when the
    session kept it).
    """

    def __init__(self, path: str | Path, device: str = "auto", threads: int = 0, spin: bool = True):
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelError(f"model {self.path}: no such file")
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: the engine reports what runs itself
        if threads:
            options.intra_op_num_threads = threads
        if not spin:
            # ONNX Runtime's pool busy-waits between calls by default: fine for a file, but
            # live it takes the cores the sound server and the device callback need.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if device == "cuda" and not _gpu_present():
            raise ModelError("--provider cuda: no NVIDIA driver on this machine; use --provider cpu or auto")
        want_cuda = device == "cuda" or (device == "auto" and _gpu_present())
        available = ort.get_available_providers()
        providers = ["CPUExecutionProvider"]
        if want_cuda and "CUDAExecutionProvider" in available:
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"model {self.path}: ONNX Runtime cannot load it: {first_line}")
        self.provider = self.session.get_providers()[0]
        self.spec = ModelSpec.from_metadata(self.session.get_modelmeta().custom_metadata_map)
        self.sha256 = file_sha256(self.path)
        self._check_signature()

    def _check_signature(self) -> None:
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = {o.name: o for o in self.session.get_outputs()}
        if SPECTRUM_INPUT not in inputs:
            raise ModelError(f"model inputs: expected '{SPECTRUM_INPUT}', got {sorted(inputs)}")
        extra = set(inputs) - {SPECTRUM_INPUT, CUTOFF_INPUT, POSITION_INPUT}
        if extra:
            raise ModelError(f"model inputs: unexpected {sorted(extra)}")
        if RESTORED_OUTPUT not in outputs:
            raise ModelError(f"model outputs: expected '{RESTORED_OUTPUT}', got {sorted(outputs)}")
        bins = self.spec.n_bins
        for name, arg in ((SPECTRUM_INPUT, inputs[SPECTRUM_INPUT]), (RESTORED_OUTPUT, outputs[RESTORED_OUTPUT])):
            if arg.type != "tensor(float)":
                raise ModelError(f"{name}: expected tensor(float), got {arg.type}")
            _check_dims(name, list(arg.shape), (None, 2, bins, None))
        self.has_cutoff = CUTOFF_INPUT in inputs
        self.has_position = POSITION_INPUT in inputs
        for name in (CUTOFF_INPUT, POSITION_INPUT):
            if name in inputs:
                if inputs[name].type != "tensor(float)":
                    raise ModelError(f"{name}: expected tensor(float), got {inputs[name].type}")
                _check_dims(name, list(inputs[name].shape), (None,))
        batch = inputs[SPECTRUM_INPUT].shape[0]
        if isinstance(batch, int) and batch != 1:
            raise ModelError(f"{SPECTRUM_INPUT}: expected a dynamic batch axis or batch 1, got {batch}")
        self.one_at_a_time = batch == 1

    def run(self, spectrum: np.ndarray, cutoff_hz: np.ndarray, position: np.ndarray | None = None) -> np.ndarray:
        """spectrum (B, 2, bins, T) float32, cutoff_hz (B,) float32 -> (B, 2, bins, T), or
        its newest `spec.restored_columns` columns. position (B,) float32: where each frame
        starts in its stream, in STFT columns; a model with that input needs it."""
        if self.has_position and position is None:
            raise ValueError(f"model {self.path.name} reads the frames' stream position: expected `position`")
        if self.one_at_a_time and spectrum.shape[0] != 1:
            positions = position if position is not None else [None] * spectrum.shape[0]
            return np.concatenate([self.run(s[None], c[None], None if p is None else np.atleast_1d(p))
                                   for s, c, p in zip(spectrum, cutoff_hz, positions)])
        feeds = {SPECTRUM_INPUT: spectrum}
        if self.has_cutoff:
            feeds[CUTOFF_INPUT] = cutoff_hz
        if self.has_position:
            feeds[POSITION_INPUT] = np.asarray(position, dtype=np.float32)
        (restored,) = self.session.run([RESTORED_OUTPUT], feeds)
        columns = self.spec.restored_columns or spectrum.shape[3]
        if restored.shape != (*spectrum.shape[:3], columns):
            raise ModelError(f"{RESTORED_OUTPUT}: expected shape {(*spectrum.shape[:3], columns)}, got {restored.shape}")
        return restored
