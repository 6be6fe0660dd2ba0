"""What the bench builds for itself: an identity ONNX model and reel-like test audio.

The identity model honours the default contract (`DEFAULT_CONTRACT`) and costs almost
nothing to run, so the figures measured with it are the engine's own overhead: framing,
STFT, cutoff tracking, band merge, iSTFT and overlap-add. Pass a real model to add
inference.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reelrestore.engine.contract import DEFAULT_CONTRACT

# The identity model's metadata_props: the default contract and what the model is.
CONTRACT_METADATA = {**DEFAULT_CONTRACT.to_metadata(), "architecture": "identity", "model_version": "bench"}


def build_identity_model(path: Path) -> Path:
    """Write `restored = spectrum` with a dynamic batch axis and a `cutoff_hz` input."""
    try:
        import onnx
        from onnx import TensorProto, helper
    except ImportError:
        raise RuntimeError(
            "expected the onnx package to build the default identity model, got none installed; "
            "pip install onnx, or pass --model MODEL.onnx"
        ) from None
    shape = ["batch", 2, DEFAULT_CONTRACT.n_bins, "frames"]  # (B, 2, bins, T)
    inputs = [
        helper.make_tensor_value_info("spectrum", TensorProto.FLOAT, shape),
        helper.make_tensor_value_info("cutoff_hz", TensorProto.FLOAT, ["batch"]),
    ]
    output = helper.make_tensor_value_info("restored", TensorProto.FLOAT, shape)
    graph = helper.make_graph([helper.make_node("Identity", ["spectrum"], ["restored"])], "identity", inputs, [output])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    helper.set_model_props(model, CONTRACT_METADATA)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def reel_audio(seconds: float, channels: int, sample_rate: int = DEFAULT_CONTRACT.sample_rate,
               cutoff_hz: float = 4000.0, seed: int = 0) -> np.ndarray:
    """A damaged reel in miniature: partials and hiss, brick-wall low-passed at `cutoff_hz`
    (so the engine's cutoff tracker has a real cliff to find), plus a faint floor above it.

    returns: (channels, n) float32, peak about 0.5
    """
    n = int(round(seconds * sample_rate))
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sample_rate
    out = np.empty((channels, n), dtype=np.float32)
    keep = np.fft.rfftfreq(n, 1.0 / sample_rate) <= cutoff_hz
    for c in range(channels):
        f0 = rng.uniform(110.0, 440.0)
        x = sum(0.3 / k * np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6)) for k in range(1, 16))
        x = x * (0.6 + 0.4 * np.sin(2 * np.pi * 0.7 * t)) + 0.02 * rng.standard_normal(n)
        x = np.fft.irfft(np.fft.rfft(x) * keep, n)  # the reel lost everything above the cutoff
        out[c] = 0.5 * x / max(np.abs(x).max(), 1e-9) + 1e-5 * rng.standard_normal(n)
    return out
