"""Shared fixtures: ONNX doubles built by the tests themselves (never written into the tree),
all honouring the engine's default contract."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

from reelrestore.bench.doubles import CONTRACT_METADATA as _BENCH_METADATA  # noqa: E402
from reelrestore.engine.contract import DEFAULT_CONTRACT  # noqa: E402

CONTRACT_METADATA = dict(_BENCH_METADATA, model_version="test")
SR = DEFAULT_CONTRACT.sample_rate


def build_model(
    path: Path,
    nodes: list | None = None,
    metadata: dict | None = None,
    with_cutoff: bool = True,
    bins: int = DEFAULT_CONTRACT.n_bins,
    extra_inputs: tuple[str, ...] = (),
) -> Path:
    """An ONNX model honouring the contract; by default restored = spectrum (identity)."""
    shape = ["batch", 2, bins, "frames"]
    inputs = [helper.make_tensor_value_info("spectrum", TensorProto.FLOAT, shape)]
    if with_cutoff:
        inputs.append(helper.make_tensor_value_info("cutoff_hz", TensorProto.FLOAT, ["batch"]))
    for name in extra_inputs:
        inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch"]))
    output = helper.make_tensor_value_info("restored", TensorProto.FLOAT, shape)
    nodes = nodes or [helper.make_node("Identity", ["spectrum"], ["restored"])]
    graph = helper.make_graph(nodes, "double", inputs, [output])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    meta = dict(CONTRACT_METADATA if metadata is None else metadata)
    helper.set_model_props(model, meta)
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


@pytest.fixture
def identity_model(tmp_path) -> Path:
    return build_model(tmp_path / "identity.onnx")


@pytest.fixture
def gain_model(tmp_path) -> Path:
    """restored = 3 * spectrum: a visible, deterministic 'restoration' of every bin."""
    three = helper.make_tensor("three", TensorProto.FLOAT, [], [3.0])
    nodes = [
        helper.make_node("Constant", [], ["k"], value=three),
        helper.make_node("Mul", ["spectrum", "k"], ["restored"]),
    ]
    return build_model(tmp_path / "gain3.onnx", nodes=nodes)


def music(seconds: float, channels: int = 1, sr: int = SR, seed: int = 0) -> np.ndarray:
    """A few detuned partials with a slow envelope and a little noise: (n, channels) float32."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    out = np.empty((t.size, channels), dtype=np.float32)
    for c in range(channels):
        f0 = rng.uniform(110, 440)
        x = sum(0.3 / k * np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6)) for k in range(1, 12))
        x *= 0.6 + 0.4 * np.sin(2 * np.pi * 0.7 * t)
        out[:, c] = 0.5 * x + 0.01 * rng.standard_normal(t.size)
    return out


def alsa_speech_with_hiss(hiss_db: float = -60.0, seed: int = 5) -> np.ndarray:
    """Real speech (the alsa-utils takes, `training.clickcheck.alsa_speech`) with a white hiss
    at `hiss_db` dBFS: (n,) float64 at 48 kHz. Skips the test where alsa-utils is missing."""
    from reelrestore.training.clickcheck import alsa_speech

    try:
        speech = alsa_speech()
    except FileNotFoundError:
        pytest.skip("needs alsa-utils (/usr/share/sounds/alsa/*.wav)")
    return speech + 10 ** (hiss_db / 20) * np.random.default_rng(seed).standard_normal(speech.size)


def tone_pairs(n: int, samples: int, seed: int = 0) -> list[dict]:
    """PairedSegments' items: harmonic tones (110-880 Hz, random phases) + hiss, cut by a
    brick wall at 4 kHz."""
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / SR
    items = []
    for _ in range(n):
        f0 = rng.uniform(110, 880)
        target = sum(0.3 / k * np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6)) for k in range(1, 30))
        target = (target + 0.01 * rng.standard_normal(t.size)).astype(np.float32)
        spec = np.fft.rfft(target)
        spec[4000 * samples // SR:] = 0
        items.append({"damaged": np.fft.irfft(spec, t.size).astype(np.float32), "target": target,
                      "cutoff_hz": 4000.0})
    return items


def cut_pairs(n: int, seed: int = 0, samples: int = DEFAULT_CONTRACT.frame_length) -> list[dict]:
    """PairedSegments' items: harmonics (100-400 Hz) + hiss, cut by a brick wall at a
    random 1, 2 or 4 kHz."""
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / SR
    items = []
    for _ in range(n):
        f0 = rng.uniform(100, 400)
        clean = sum(0.2 / k * np.sin(2 * np.pi * f0 * k * t) for k in range(1, 40) if f0 * k < 20000)
        target = (clean + 0.003 * rng.standard_normal(t.size)).astype(np.float32)
        cutoff = float(rng.choice([1000.0, 2000.0, 4000.0]))
        spec = np.fft.rfft(target)
        spec[np.fft.rfftfreq(t.size, 1 / SR) > cutoff] = 0
        items.append({"damaged": np.fft.irfft(spec, t.size).astype(np.float32), "target": target,
                      "cutoff_hz": cutoff})
    return items


@pytest.fixture
def write_wav(tmp_path):
    def write(name: str, data: np.ndarray, sr: int = SR, subtype: str = "FLOAT") -> Path:
        path = tmp_path / name
        sf.write(path, data, sr, subtype=subtype)
        return path

    return write
