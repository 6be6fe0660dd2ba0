"""The per-reel band level: features of the reel, the metadata that carries the fit, the
engine applying it, and the fit finding a level that depends on the reel."""

from __future__ import annotations

import json

import numpy as np
import pytest

from reelrestore.engine.console import describe_lock
from reelrestore.engine.contract import DEFAULT_CONTRACT
from reelrestore.engine.level import FEATURES, METADATA_KEY, BandLevel, BandLevelError, reel_features
from reelrestore.engine.model import ModelError, ModelSpec, OnnxModel
from reelrestore.engine.restore import restore_array
from reelrestore.engine.stream import StreamConfig
from reelrestore.training.band_level import best_offset, constant_level, fit, write_model

from conftest import CONTRACT_METADATA, music

SR = DEFAULT_CONTRACT.sample_rate
BIN_HZ = DEFAULT_CONTRACT.bin_hz


def sloped(db_per_octave: float) -> np.ndarray:
    """(bins,) dB: a long-term spectrum falling `db_per_octave` above 100 Hz."""
    f = np.maximum(np.arange(DEFAULT_CONTRACT.n_bins) * BIN_HZ, 100.0)
    return -40.0 + db_per_octave * np.log2(f / 100.0)


def test_reel_features_read_how_the_spectrum_falls_towards_the_cut():
    flat = dict(zip(FEATURES, reel_features(sloped(0.0), BIN_HZ, 4000.0, floor_kept=False)))
    assert flat["log2_cutoff_khz"] == pytest.approx(2.0)
    for name in ("top_vs_octave_db", "octave_vs_second_db", "second_vs_third_db", "top_vs_band_db", "roughness_db"):
        assert flat[name] == pytest.approx(0.0, abs=1e-6)
    assert flat["band_db"] == pytest.approx(-40.0, abs=1e-6) and flat["floor_kept"] == 0.0
    falling = dict(zip(FEATURES, reel_features(sloped(-12.0), BIN_HZ, 4000.0, floor_kept=True)))
    # octave against octave: 12 dB down (power means over bands an octave apart)
    assert -14.0 < falling["octave_vs_second_db"] < -10.0 and -14.0 < falling["second_vs_third_db"] < -10.0
    assert falling["top_vs_band_db"] < -15.0  # the top of the band lies far under its (bass-heavy) mean
    assert falling["floor_kept"] == 1.0
    # a cut so low that its octaves hold no bin reads 0 dB there, never NaN
    low = reel_features(sloped(-12.0), BIN_HZ, 60.0, floor_kept=False)
    assert all(np.isfinite(low))


def test_band_level_travels_in_metadata_and_bad_metadata_is_one_line():
    level = BandLevel(FEATURES, (0.0,) * 8, (1.0,) * 8, (1.0,) + (0.0,) * 7, 2.0, fitted_on="test")
    back = BandLevel.from_metadata(level.to_metadata())
    assert back == level
    assert back.gain_db((1.5,) + (0.0,) * 7) == pytest.approx(3.5)
    assert back.gain_db((100.0,) + (0.0,) * 7) == 9.0  # clipped to its range
    assert BandLevel.from_metadata({}) is None
    spec = ModelSpec.from_metadata(dict(CONTRACT_METADATA, **level.to_metadata()))
    assert spec.band_level == level
    with pytest.raises(BandLevelError, match="expected features"):
        BandLevel(("x",), (0.0,), (1.0,), (0.0,), 0.0)
    broken = json.loads(level.to_metadata()[METADATA_KEY])
    broken["scale"][0] = 0.0
    with pytest.raises(ModelError, match="scale") as err:
        ModelSpec.from_metadata(dict(CONTRACT_METADATA, **{METADATA_KEY: json.dumps(broken)}))
    assert "\n" not in str(err.value)
    with pytest.raises(ModelError, match="band_level"):
        ModelSpec.from_metadata(dict(CONTRACT_METADATA, **{METADATA_KEY: "{not json"}))


def cut_music(seconds: float = 4.0, cutoff_hz: float = 3000.0) -> np.ndarray:
    x = music(seconds, 1, seed=3)[:, 0]
    spec = np.fft.rfft(x)
    spec[np.fft.rfftfreq(x.size, 1 / SR) > cutoff_hz] = 0
    return np.fft.irfft(spec, x.size).astype(np.float32)[None, :]


def band_power_db(x: np.ndarray, lo_hz: float, hi_hz: float) -> float:
    spec = np.abs(np.fft.rfft(x[0])) ** 2
    f = np.fft.rfftfreq(x.shape[1], 1 / SR)
    return float(10 * np.log10(spec[(f > lo_hz) & (f < hi_hz)].sum() + 1e-30))


def test_the_engine_moves_the_models_band_by_the_reels_level_and_nothing_else(tmp_path):
    from reelrestore.training.baseline import build_onnx

    plain = tmp_path / "fill.onnx"
    build_onnx(plain)
    quieter = tmp_path / "fill-6.onnx"
    write_model(plain, quieter, constant_level(-6.0))
    usual = tmp_path / "usual"
    usual.write_bytes(b"")
    assert quieter.stat().st_mode == usual.stat().st_mode  # not a temporary file's 0600
    x = cut_music()
    config = StreamConfig(cutoff_hz=3000.0)
    y0, d0 = restore_array(x, OnnxModel(plain), config)
    y1, d1 = restore_array(x, OnnxModel(quieter), config)
    assert d1[0].reel is not None and d1[0].reel == d0[0].reel  # read by the first pass, model-independent
    drop = band_power_db(y1, 4000, 20000) - band_power_db(y0, 4000, 20000)
    assert -6.3 < drop < -4.0, drop  # at most the level's 6 dB (the limit may have held the louder band back)
    moved = y1 - y0  # only the added band changed: nothing of the change lies under the cut
    assert band_power_db(moved, 20, 2000) < band_power_db(moved, 4000, 20000) - 40.0
    # an uncut recording stays untouched whatever the level
    whole = (0.05 * np.random.default_rng(4).standard_normal((1, 4 * SR))).astype(np.float32)  # full band
    untouched, decisions = restore_array(whole, OnnxModel(quieter), StreamConfig())
    assert decisions[0].hz is None
    np.testing.assert_allclose(untouched, whole, atol=1e-6)


def test_the_console_says_the_reels_band_level():
    event = {"channel": 0, "hz": 2980.0, "reason": "97% sure", "learned_seconds": 8.0, "at_seconds": 0.0}
    assert describe_lock(event, 1, -2.04).endswith("band -2.0 dB for this reel")
    assert "band" not in describe_lock(event, 1, 0.0)
    assert describe_lock(event, 1, -2.04, (-3.14, 0.81)).endswith("band -3.1 to +0.8 dB as the programme goes")
    # where the reel's hiss or its lobes read the cut's curve (`StreamRestorer.lift_curve`), the line names it
    curve = {"name": "butterworth-zero-phase n2 digital", "minus3db_hz": 2950.0, "read_from": "the hiss"}
    assert describe_lock(event, 1, -2.04, None, curve).endswith(
        "band -2.0 dB for this reel; its skirt read from the hiss: butterworth-zero-phase n2 digital")
    slit = {"name": "slit ±15 % digital", "minus3db_hz": 2950.0, "read_from": "its lobes"}
    assert describe_lock(event, 1, -2.04, None, slit).endswith("; its skirt read from its lobes: slit ±15 % digital")
    assert "skirt" not in describe_lock(dict(event, hz=None, reason="no cut found (90% sure)"), 1, 0.0, None, curve)


def test_best_offset_is_the_vertex_between_grid_points():
    gains = np.array([-6.0, -3.0, 0.0, 3.0, 6.0])
    assert best_offset(gains, (gains - 1.2) ** 2) == pytest.approx(1.2)
    assert best_offset(gains, (gains + 9.0) ** 2) == -6.0  # at the edge: the edge


def test_the_fit_learns_a_level_that_depends_on_the_reel_and_scores_it_held_out():
    rng = np.random.default_rng(0)
    gains = [-6.0, -3.0, 0.0, 3.0, 6.0]
    items = []
    for k in range(60):
        features = list(rng.normal(size=len(FEATURES)))
        best = 2.0 * features[1] - 1.0  # the level this reel wants: it depends on one feature
        items.append({"source": f"rec{k // 3}", "variant": "hiss_cut" if k % 2 else "hiss_after",
                      "features": features,
                      "lsd_above": [1.0 + 0.01 * (g - best) ** 2 for g in gains]})
    level, figures = fit({"devset": "synthetic", "gains": gains, "items": items})
    probe = [0.0] * len(FEATURES)
    probe[1] = 1.5
    assert level.gain_db(tuple(probe)) == pytest.approx(2.0, abs=0.3)
    for v in figures["per_variant"].values():
        # on recordings it did not see it closes most of the way from 0 dB to each item's best
        gap = v["lsd_above_0db"] - v["lsd_above_best_per_item"]
        assert gap > 0 and v["lsd_above_held_out"] - v["lsd_above_best_per_item"] < 0.5 * gap


def test_learning_as_it_plays_the_level_comes_with_the_lock(tmp_path):
    # live (no first pass): the reel's features are read with the cutoff from the first
    # seconds, and from the lock on the band plays at the reel's level
    from reelrestore.engine.pipeline import ArraySink, ArraySource, run
    from reelrestore.engine.stream import StreamRestorer
    from reelrestore.training.baseline import build_onnx

    plain = tmp_path / "fill.onnx"
    build_onnx(plain)
    quieter = tmp_path / "fill-6.onnx"
    write_model(plain, quieter, constant_level(-6.0))
    x = cut_music(9.0)
    out = {}
    for name, path in (("plain", plain), ("quieter", quieter)):
        restorer = StreamRestorer(OnnxModel(path), 1, StreamConfig(cutoff_hz=3000.0))
        sink = ArraySink(1)
        run(ArraySource(x, SR, 4800), restorer, sink, first_pass=False)
        out[name] = sink.audio
        locks = restorer.cutoff_timeline
        assert len(locks) == 1 and locks[0]["at_seconds"] > 0 and locks[0]["reel"] is not None
    late = slice(6 * SR, 9 * SR)
    drop = band_power_db(out["quieter"][:, late], 4000, 20000) - band_power_db(out["plain"][:, late], 4000, 20000)
    assert -6.3 < drop < -4.0, drop
    early = slice(0, SR // 2)  # before the lock the user's cutoff is used, at the model's own level
    assert band_power_db(out["quieter"][:, early], 4000, 20000) == pytest.approx(
        band_power_db(out["plain"][:, early], 4000, 20000), abs=0.01)


def test_the_fit_command_refuses_bad_input_in_one_line(tmp_path):
    import subprocess
    import sys

    from reelrestore.training.baseline import build_onnx

    model = tmp_path / "m.onnx"
    build_onnx(model)
    (tmp_path / "empty.onnx").write_bytes(b"")
    cases = ((["--devset", str(tmp_path), "--model", str(tmp_path / "empty.onnx")], "cannot load it"),
             (["--devset", str(tmp_path)], "no manifest.json"),
             (["--devset", str(tmp_path), "--gains", "1,2,3"], "including 0"),
             (["--measured", str(tmp_path / "none.json")], "cannot read it"),
             ([], "give --devset"))
    for extra, message in cases:
        done = subprocess.run([sys.executable, "-m", "reelrestore.training.band_level", "--model", str(model),
                               "--out", str(tmp_path / "out.onnx"), *extra], capture_output=True, text=True)
        # (a second --model replaces the first)
        assert done.returncode == 2 and message in done.stderr and done.stderr.count("\n") == 1, (extra, done.stderr)
    assert not (tmp_path / "out.onnx").exists()


def two_passages(seconds: float = 20.0) -> np.ndarray:
    """The same music twice, the second time darker (a first-order low-pass at 400 Hz, as
    loud), cut at 3 kHz: (1, n) float32."""
    from scipy import signal

    x = music(seconds, 1, seed=5)[:, 0]
    dark = signal.sosfilt(signal.butter(1, 400.0, fs=SR, output="sos"), x)
    x = np.concatenate([x, dark * np.sqrt(np.mean(x ** 2) / np.mean(dark ** 2))])
    spec = np.fft.rfft(x)
    spec[np.fft.rfftfreq(x.size, 1 / SR) > 3000.0] = 0
    return np.fft.irfft(spec, x.size).astype(np.float32)[None, :]


@pytest.fixture(scope="module")
def level_follows(tmp_path_factory):
    """The noise fill with a band level that rises 0.5 dB per dB the top of the band under the
    cut falls against its mean (the bright passage reads -10.9 dB, the dark one -23.3)."""
    from reelrestore.training.baseline import build_onnx

    folder = tmp_path_factory.mktemp("level")
    build_onnx(folder / "fill.onnx")
    weights = tuple(-0.5 if name == "top_vs_band_db" else 0.0 for name in FEATURES)
    mean = tuple(-10.9 if name == "top_vs_band_db" else 0.0 for name in FEATURES)
    level = BandLevel(FEATURES, mean, (1.0,) * len(FEATURES), weights, 0.0)
    write_model(folder / "fill.onnx", folder / "follows.onnx", level)
    return OnnxModel(folder / "follows.onnx")


def added_db(y: np.ndarray, x: np.ndarray, start_s: float, stop_s: float) -> float:
    """Power of what the engine added from 4 to 16 kHz over [start_s, stop_s), dB."""
    part = slice(int(start_s * SR), int(stop_s * SR))
    return band_power_db((y - x)[:, part], 4000.0, 16000.0)


def test_a_files_band_level_follows_its_programme_over_a_long_reel(level_follows):
    # `BandLevel` was fitted on 8 s items; over minutes a reel's mean spectrum blends its
    # passages. Here a darker passage asks for a band 6 dB louder than the bright one (the
    # level above), and read over the whole reel its level lies near the bright one's. The
    # band's level is read over the 8 s around each moment: each passage's band is as it is
    # when the passage is restored alone, not as the whole reel's one reading would have it.
    from dataclasses import replace

    from reelrestore.engine.pipeline import ArraySink, ArraySource, run
    from reelrestore.engine.stream import StreamRestorer

    x = two_passages()
    config = StreamConfig(cutoff_hz=3000.0)
    whole, decisions = restore_array(x, level_follows, config)
    alone, _ = restore_array(x[:, x.shape[1] // 2 :], level_follows, config)
    d = decisions[0]
    assert d.levels is not None and len(d.levels) >= 10
    level = level_follows.spec.band_level
    gains = [level.gain_db(reading.reel) for reading in d.levels]
    assert max(gains) - min(gains) > 4.0  # the two passages ask for levels 6 dB apart ...
    assert max(gains) - level.gain_db(d.reel) > 3.0  # ... and the whole reel's lies near the bright one's
    dark = added_db(whole, x, 26.0, 38.0)
    assert abs(dark - added_db(alone, x[:, x.shape[1] // 2 :], 6.0, 18.0)) < 0.5
    # the reel's one reading would have put the dark passage's band several dB under that
    restorer = StreamRestorer(level_follows, 1, config)
    restorer.lock_cutoffs([replace(d, levels=None)])
    sink = ArraySink(1)
    run(ArraySource(x, SR, 96000), restorer, sink, first_pass=False)
    assert added_db(np.asarray(sink.audio), x, 26.0, 38.0) < dark - 3.0


def test_a_files_lost_hiss_follows_its_programme_over_a_long_reel(tmp_path):
    # Where the hiss went with the cut, the band is let at least as loud as the floor under
    # the cut, extended above it (`band.added_band_limit`). Over a whole reel that floor is
    # read in its quietest passages; a loud passage's band was capped as though it were one
    # of them. Here music, then the same 25 dB quieter, cut at 3 kHz with all above it gone,
    # through the noise fill with its band 9 dB louder (so that the cap decides its level):
    # the loud passage's band from the whole file is as it is restored alone.
    from dataclasses import replace

    from reelrestore.engine.pipeline import ArraySink, ArraySource, run
    from reelrestore.engine.stream import StreamRestorer
    from reelrestore.training.baseline import build_onnx

    build_onnx(tmp_path / "fill.onnx")
    n = len(FEATURES)
    write_model(tmp_path / "fill.onnx", tmp_path / "loud.onnx", BandLevel(FEATURES, (0.0,) * n, (1.0,) * n, (0.0,) * n, 9.0))
    model = OnnxModel(tmp_path / "loud.onnx")
    half = 12 * SR
    x = music(24.0, 1, seed=5)[:, 0] * np.where(np.arange(24 * SR) < half, 1.0, 10 ** (-25 / 20))
    x = x + np.random.default_rng(3).standard_normal(x.size) * 1e-4
    spec = np.fft.rfft(x)
    spec[np.fft.rfftfreq(x.size, 1 / SR) > 3000.0] = 0
    x = np.fft.irfft(spec, x.size).astype(np.float32)[None, :]
    config = StreamConfig(cutoff_hz=3000.0)
    whole, decisions = restore_array(x, model, config)
    d = decisions[0]
    assert d.hiss_db is not None and d.levels is not None
    assert d.levels[0].hiss_db > d.hiss_db + 15.0  # the loud passage's floor, over the reel's
    low, high = d.to_dict()["hiss_db_range"]  # as `--report` carries it
    assert high - low > 15.0 and low <= d.hiss_db + 3.0
    alone, _ = restore_array(x[:, :half], model, config)
    loud = added_db(whole, x, 2.0, 8.0)
    assert abs(loud - added_db(alone, x[:, :half], 2.0, 8.0)) < 0.5
    # the reel's one reading caps the loud passage's band at the quiet one's floor
    restorer = StreamRestorer(model, 1, config)
    restorer.lock_cutoffs([replace(d, levels=None)])
    sink = ArraySink(1)
    run(ArraySource(x, SR, 96000), restorer, sink, first_pass=False)
    assert added_db(np.asarray(sink.audio), x, 2.0, 8.0) < loud - 6.0
