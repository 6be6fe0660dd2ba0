"""Band merge keeps the input below the cutoff; `--cutoff auto` finds real cuts."""

import numpy as np
import pytest
from conftest import music
from scipy import signal

from reelrestore.engine.band import CutoffTracker, band_db, estimate_cutoff_bin, merge, merge_gains
from reelrestore.engine.stft import StftPlan

BIN_HZ = 48000 / 2048


def brickwall(x: np.ndarray, cutoff: float) -> np.ndarray:
    spec = np.fft.rfft(x)
    spec[np.fft.rfftfreq(x.size, 1 / 48000) > cutoff] = 0
    return np.fft.irfft(spec, x.size)


def frame_db(x: np.ndarray) -> np.ndarray:
    return band_db(StftPlan(2048, 512, x.size).forward(x[None]))[0]


@pytest.fixture
def wideband():
    """Music plus hiss up to Nyquist, as a clean reel with its hiss: (24000,)."""
    rng = np.random.default_rng(0)
    return music(0.5, 1)[:, 0].astype(np.float64) + 10 ** (-50 / 20) * rng.standard_normal(24000)


def test_merge_gains_keep_everything_up_to_the_cutoff_bin_then_fade_out():
    g = merge_gains(np.array([100.0]), 1025, 10)[0]
    assert np.all(g[:101] == 1.0)
    assert np.all(g[110:] == 0.0)
    assert np.all(np.diff(g[100:111]) < 0)


def test_merge_is_dry_below_the_cutoff_and_wet_above():
    rng = np.random.default_rng(1)
    dry = rng.standard_normal((2, 2, 1025, 5)).astype(np.float32)
    wet = rng.standard_normal((2, 2, 1025, 5)).astype(np.float32)
    keep = merge_gains(np.array([200.0, 600.0]), 1025, 8)
    out = merge(dry, wet.copy(), keep, mix=1.0)
    np.testing.assert_array_equal(out[0, :, :201], dry[0, :, :201])
    np.testing.assert_array_equal(out[1, :, :601], dry[1, :, :601])
    np.testing.assert_allclose(out[0, :, 210:], wet[0, :, 210:], atol=1e-6)


@pytest.mark.parametrize("cutoff", [150.0, 500.0, 2000.0, 4000.0, 8000.0])
def test_auto_cutoff_finds_a_brickwall_cut(wideband, cutoff):
    k = estimate_cutoff_bin(frame_db(brickwall(wideband, cutoff)))
    assert abs(k * BIN_HZ - cutoff) <= 2 * BIN_HZ


@pytest.mark.parametrize("cutoff", [500.0, 1000.0, 3000.0, 6000.0])
def test_auto_cutoff_finds_a_steep_butterworth_cut(wideband, cutoff):
    sos = signal.butter(8, cutoff, fs=48000, output="sos")
    damaged = signal.sosfilt(sos, wideband) + 1e-5 * np.random.default_rng(2).standard_normal(24000)
    k = estimate_cutoff_bin(frame_db(damaged))
    assert 0.8 * cutoff <= k * BIN_HZ <= 2.0 * cutoff  # within an octave above: errs on keeping


def test_auto_cutoff_survives_clicks(wideband):
    damaged = brickwall(wideband, 2000.0)
    damaged[[3000, 11000, 19000]] += 0.8  # clicks: broadband, but brief
    assert abs(estimate_cutoff_bin(frame_db(damaged)) * BIN_HZ - 2000.0) <= 2 * BIN_HZ


def test_no_cut_and_silence_mean_nothing_to_restore(wideband):
    assert estimate_cutoff_bin(frame_db(wideband)) == 1024
    assert estimate_cutoff_bin(frame_db(np.zeros(24000))) == 1024


def test_tracker_follows_each_channel_and_ignores_silent_frames(wideband):
    tracker = CutoffTracker(channels=2, n_bins=1025)
    low, high = frame_db(brickwall(wideband, 1000.0)), frame_db(brickwall(wideband, 5000.0))
    silent = frame_db(np.zeros(24000))
    bins = tracker.update(np.stack([low, high]))
    assert abs(bins[0] * BIN_HZ - 1000) <= 2 * BIN_HZ and abs(bins[1] * BIN_HZ - 5000) <= 2 * BIN_HZ
    again = tracker.update(np.stack([silent, silent]))
    np.testing.assert_array_equal(again, bins)
