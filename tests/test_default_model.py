"""The shipped default model: found without --model, within budget, keeps the surviving
band, and extends hiss into the restored band at the level the input shows."""

import json

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner
from scipy import signal

from reelrestore.engine.cli import default_model_path, main
from reelrestore.engine.contract import DEFAULT_CONTRACT
from reelrestore.engine.model import OnnxModel, file_sha256
from reelrestore.engine.restore import restore_array
from reelrestore.engine.stream import StreamConfig

SR = DEFAULT_CONTRACT.sample_rate


@pytest.fixture(scope="module")
def model():
    return OnnxModel(default_model_path())


def restore(model, x: np.ndarray, cutoff: float | None) -> np.ndarray:
    """As a file is restored: the first pass reads the reel's hiss floor, then the stream."""
    return restore_array(x[None].astype(np.float32), model, StreamConfig(cutoff_hz=cutoff))[0][0]


def brickwall(x: np.ndarray, cutoff: float) -> np.ndarray:
    spec = np.fft.rfft(x)
    spec[np.fft.rfftfreq(x.size, 1 / SR) > cutoff] = 0
    return np.fft.irfft(spec, x.size)


def test_the_default_model_ships_within_budget(model):
    assert default_model_path().stat().st_size <= 20_000_000  # the budget of the model issue
    meta = model.spec.metadata
    assert model.spec.contract == DEFAULT_CONTRACT
    assert model.has_cutoff and meta["architecture"].startswith("realtime")
    assert len(meta["weights_sha256"]) == 64 and int(meta["training_steps"]) > 0
    assert "val_lsd_above" in json.loads(meta["metrics"])


def test_restore_stream_uses_it_without_model_option(tmp_path):
    rng = np.random.default_rng(0)
    src = tmp_path / "in.wav"
    sf.write(src, brickwall(0.05 * rng.standard_normal(SR), 2000.0), SR, subtype="FLOAT")
    report = tmp_path / "r.json"
    result = CliRunner().invoke(main, [str(src), "-o", str(tmp_path / "out.wav"), "--report", str(report), "-q"])
    assert result.exit_code == 0, result.output
    got = json.loads(report.read_text())
    assert got["model_sha256"] == file_sha256(default_model_path())
    assert got["provider"] == "CPUExecutionProvider"


def test_hiss_is_extended_near_the_level_the_input_shows(model):
    rng = np.random.default_rng(1)
    hiss = 10 ** (-50 / 20) * rng.standard_normal(3 * SR)  # white hiss at -50 dBFS
    restored = restore(model, brickwall(hiss, 3000.0), 3000.0)
    f, p = signal.welch(restored[SR // 2 : -SR // 2], SR, nperseg=4096)
    below = 10 * np.log10(np.mean(p[(f > 1000) & (f < 2800)]))
    above = 10 * np.log10(np.mean(p[(f > 4000) & (f < 16000)]))
    # The real-data model (2.0) extends pure white hiss 9.3 dB under the level it shows
    # (the 1.0 model: within 6 dB); on real recordings it is the better model by far
    # (models/default.md). It must still extend the hiss, never drop it, never exceed it.
    assert -12.0 < above - below < 3.0, (below, above)


def test_the_surviving_band_is_untouched(model):
    rng = np.random.default_rng(2)
    t = np.arange(2 * SR) / SR
    music = sum(0.2 / k * np.sin(2 * np.pi * 220 * k * t) for k in range(1, 20)) + 0.003 * rng.standard_normal(t.size)
    damaged = brickwall(music, 2000.0)
    restored = restore(model, damaged, 2000.0)
    f, p_in = signal.welch(damaged, SR, nperseg=8192)
    _, p_out = signal.welch(restored, SR, nperseg=8192)
    band = (f > 100) & (f < 1900)
    assert np.max(np.abs(10 * np.log10(p_out[band] / p_in[band]))) < 0.5
    assert np.mean(p_out[f > 3000]) > 100 * np.mean(p_in[f > 3000])  # and it restores above


def test_the_end_of_a_reel_is_restored_like_its_middle(model):
    # flush completes the last frames with the recording mirrored, not with silence: the
    # model judges level and hiss floor over whole frames, so silence would darken the end
    rng = np.random.default_rng(3)
    damaged = brickwall(10 ** (-50 / 20) * rng.standard_normal(2 * SR + 7000), 3000.0)
    restored = restore(model, damaged, 3000.0)

    def high_band_db(x):
        f, p = signal.welch(x, SR, nperseg=2048)
        return 10 * np.log10(np.mean(p[(f > 5000) & (f < 16000)]))

    middle, end = high_band_db(restored[SR // 2 : SR]), high_band_db(restored[-8000:])
    assert abs(end - middle) < 3.0, (middle, end)


def test_consecutive_frames_join_without_pumping_or_notches(model):
    # Steady hiss with tones, cut at 3 kHz: the restored band's level must not move with
    # the engine's hop (0.25 s) and its long-term spectrum must have no fixed holes.
    from reelrestore.training.metrics import deepest_notch_db, hop_rate_swing_db

    rng = np.random.default_rng(0)
    t = np.arange(14 * SR) / SR
    x = 10 ** (-50 / 20) * rng.standard_normal(t.size)
    x += sum(0.05 * np.sin(2 * np.pi * f * t) for f in (220, 440, 660, 1320, 2000))
    damaged = signal.sosfiltfilt(signal.butter(8, 3000, fs=SR, output="sos"), x)
    restored = restore(model, damaged, 3000.0)
    assert hop_rate_swing_db(restored, SR // 4, 4500, 15000) <= 1.0
    assert deepest_notch_db(restored, 4500, 15000) <= 4.0


def test_the_shipped_low_latency_model_is_the_default_of_that_framing_and_restores_in_it(tmp_path):
    """models/low-latency.onnx: made for --latency low (its look-ahead, the 4 columns it
    restores, the stream position), picked without --model in that framing, and it keeps
    the surviving band while it adds one above the cut."""
    path = default_model_path("low")
    assert path.name == "low-latency.onnx" and path.stat().st_size <= 20_000_000
    low = OnnxModel(path)
    assert (low.spec.lookahead_samples, low.spec.restored_columns, low.has_position) == (512, 4, True)
    rng = np.random.default_rng(2)
    x = brickwall(0.05 * rng.standard_normal(3 * SR), 3000.0)
    src, out, report = tmp_path / "in.wav", tmp_path / "out.wav", tmp_path / "r.json"
    sf.write(src, x, SR, subtype="FLOAT")
    result = CliRunner().invoke(main, [str(src), "-o", str(out), "--latency", "low", "--cutoff", "3000",
                                       "--report", str(report), "-q"])
    assert result.exit_code == 0, result.output
    got = json.loads(report.read_text())
    assert got["model_sha256"] == file_sha256(path) and got["latency_mode"] == "low"
    y, _ = sf.read(out)
    assert y.shape == x.shape
    f, p_out = signal.welch(y[SR // 2 : -SR // 2], SR, nperseg=4096)
    _, p_in = signal.welch(x[SR // 2 : -SR // 2], SR, nperseg=4096)
    below = (f > 300) & (f < 2500)
    assert np.all(np.abs(10 * np.log10(p_out[below] / p_in[below])) < 0.5)  # the surviving band kept
    above = (f > 4000) & (f < 16000)
    assert 10 * np.log10(p_out[above].mean() / p_in[below].mean()) > -40.0  # a band is there
    assert 10 * np.log10(p_in[above].mean() / p_in[below].mean()) < -100.0  # (the input had none)


def test_the_low_latency_models_band_keeps_its_level_within_each_hop():
    # Steady hiss with tones, cut at 3 kHz, in the low-latency framing (a frame every 512
    # samples, its newest hop played): the restored band's level folded over the hop, on a
    # 64-sample meter, must not follow the STFT columns the hop is made of (1.0 swung
    # 2.8 dB at 94 Hz), and its long-term spectrum must have no fixed holes.
    from reelrestore.training.metrics import deepest_notch_db, hop_rate_swing_db

    low = OnnxModel(default_model_path("low"), threads=1)
    rng = np.random.default_rng(0)
    t = np.arange(8 * SR) / SR
    x = 10 ** (-50 / 20) * rng.standard_normal(t.size)
    x += sum(0.05 * np.sin(2 * np.pi * f * t) for f in (220, 440, 660, 1320, 2000))
    damaged = signal.sosfiltfilt(signal.butter(8, 3000, fs=SR, output="sos"), x)
    restored = restore_array(damaged[None].astype(np.float32), low, StreamConfig(cutoff_hz=3000.0, latency="low"))[0][0]
    assert hop_rate_swing_db(restored, 512, 4500, 15000, window_s=64 / SR) <= 1.0
    assert deepest_notch_db(restored, 4500, 15000) <= 4.0
