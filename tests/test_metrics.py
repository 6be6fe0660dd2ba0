"""Metrics against cases small enough to compute by hand."""

import math

import numpy as np
import pytest
from pystoi import stoi as pystoi_stoi
from scipy import signal

from reelrestore.training.metrics import all_metrics, lsd, lsd_bands, mse, rmse, snr_db, stft_power, stoi


def test_mse_and_rmse_hand_case():
    ref = np.array([1.0, 2.0, 3.0, 4.0])
    est = np.array([1.0, 2.0, 3.0, 6.0])  # one error of 2 -> squared 4, over 4 samples
    assert mse(ref, est) == pytest.approx(1.0)
    assert rmse(ref, est) == pytest.approx(1.0)
    assert rmse(ref, ref + 0.5) == pytest.approx(0.5)


@pytest.mark.parametrize("gain,expected_db", [(0.9, 20.0), (0.5, 20 * math.log10(2)), (1.1, 20.0), (0.0, 0.0)])
def test_snr_of_scaled_signal(gain, expected_db):
    # est = g * ref: the error is (1 - g) ref, so SNR = -20 log10 |1 - g|
    ref = np.random.default_rng(0).standard_normal(1000)
    assert snr_db(ref, gain * ref) == pytest.approx(expected_db)


def test_snr_identical_is_infinite():
    x = np.ones(10)
    assert snr_db(x, x) == math.inf


# Hand-worked STFT: n_fft 4, hop 2, periodic Hann [0, .5, 1, .5], x = [1, 1, 1, 1] padded with
# two zeros each side -> frames [0,0,1,1], [1,1,1,1], [1,1,0,0]; windowed [0,0,1,.5],
# [0,.5,1,.5], [0,.5,0,0]; |DFT|^2 per bin (0, 1, 2 cycles per frame):
HAND_POWER = np.array([[2.25, 1.25, 0.25],  # frame 0: X = 1.5, -1+.5j, .5
                       [4.0, 1.0, 0.0],  # frame 1: X = 2, -1, 0
                       [0.25, 0.25, 0.25]])  # frame 2: X = .5, -.5j, -.5


def test_stft_power_hand_case():
    np.testing.assert_allclose(stft_power(np.ones(4), n_fft=4, hop=2).T, HAND_POWER, atol=1e-12)


def test_lsd_hand_case_whole_above_below():
    # est = silence: every bin clamps to 1e-8, i.e. log10 = -8; the reference's zero bin clamps too.
    d = np.log10(np.maximum(HAND_POWER, 1e-8)) + 8  # [frames, bins]
    # sr 4 Hz -> bins at 0, 1, 2 Hz; cutoff 1 Hz: below = bins 0-1, above = bin 2
    expected = {
        "whole": np.mean(np.sqrt(np.mean(d ** 2, axis=1))),
        "below": np.mean(np.sqrt(np.mean(d[:, :2] ** 2, axis=1))),
        "above": np.mean(np.abs(d[:, 2])),
    }
    assert expected["above"] == pytest.approx((7.39794 + 0 + 7.39794) / 3, abs=1e-5)  # by hand: log10 .25 + 8
    got = lsd_bands(np.ones(4), np.zeros(4), sr=4, cutoff_hz=1.0, n_fft=4, hop=2)
    assert got == pytest.approx(expected)
    for band in ("whole", "above", "below"):
        one = lsd(np.ones(4), np.zeros(4), sr=4, cutoff_hz=1.0, band=band, n_fft=4, hop=2)
        assert one == pytest.approx(expected[band])


def test_lsd_of_gain_is_twice_log10_gain_in_every_band():
    # |g X|^2 = g^2 |X|^2: every unclamped bin moves by 2 log10 g
    ref = np.random.default_rng(1).standard_normal(48000)
    got = lsd_bands(ref, 10.0 * ref, sr=48000, cutoff_hz=2000.0)
    assert got == pytest.approx({"whole": 2.0, "above": 2.0, "below": 2.0})
    assert lsd(ref, ref) == 0.0


def test_lsd_bands_split_where_the_damage_is():
    rng = np.random.default_rng(2)
    ref = rng.standard_normal(48000) * 0.1
    sos = signal.butter(8, 2000, fs=48000, output="sos")
    est = signal.sosfiltfilt(sos, ref)  # highs removed, lows kept
    got = lsd_bands(ref, est, sr=48000, cutoff_hz=2000.0)
    assert got["below"] < 0.3 and got["above"] > 2.0


def test_lsd_needs_cutoff_for_bands_and_matching_shapes():
    x = np.zeros(4096)
    with pytest.raises(ValueError, match="needs cutoff_hz"):
        lsd(x, x, band="above")
    with pytest.raises(ValueError, match="expected band"):
        lsd(x, x, cutoff_hz=100.0, band="middle")
    with pytest.raises(ValueError, match="same shape"):
        mse(x, x[:-1])


def speechlike(seconds=2.0, sr=48000, seed=0):
    """Noise under a 4 Hz syllable envelope: enough for STOI's 30-frame analysis."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    env = np.maximum(np.sin(2 * np.pi * 4 * t), 0) ** 2
    sos = signal.butter(4, [200, 4000], "bandpass", fs=sr, output="sos")
    return signal.sosfilt(sos, rng.standard_normal(t.size)) * env


def test_stoi_resamples_to_10khz_and_matches_pystoi():
    ref = speechlike()
    noisy = ref + 2.0 * np.std(ref) * np.random.default_rng(5).standard_normal(ref.size)
    assert stoi(ref, ref) == pytest.approx(1.0, abs=1e-6)
    ours = stoi(ref, noisy, sr=48000)
    # the same signals resampled by hand (48 kHz -> 10 kHz = 5/24) and scored at 10 kHz
    direct = pystoi_stoi(signal.resample_poly(ref, 5, 24), signal.resample_poly(noisy, 5, 24), 10000)
    assert ours == pytest.approx(direct)
    assert 0.2 < ours < 0.95


def test_all_metrics_reports_every_number():
    ref = speechlike(1.0) + 1e-3 * np.random.default_rng(3).standard_normal(48000)  # no bin clamps
    got = all_metrics(ref, 0.9 * ref, sr=48000, cutoff_hz=2000.0)
    assert set(got) == {"mse", "rmse", "snr_db", "lsd", "lsd_above", "lsd_below", "stoi"}
    assert got["snr_db"] == pytest.approx(20.0)
    assert got["lsd_below"] == pytest.approx(2 * abs(math.log10(0.9)), rel=1e-3)
    assert all_metrics(ref, ref, 48000)["lsd_above"] is None


def test_the_hop_rate_meter_reads_hops_its_windows_do_not_divide():
    # a 512-sample hop (low latency) metered in 2 ms windows: 5 windows of 102 samples a hop
    from reelrestore.training.metrics import hop_rate_swing_db

    rng = np.random.default_rng(0)
    noise = rng.standard_normal(48000 * 12)
    assert hop_rate_swing_db(noise, 512, 4500, 15000, window_s=0.002) < 0.5
    pumped = noise * np.resize(np.where(np.arange(512) < 256, 1.0, 0.5), noise.size)  # 6 dB dips every hop
    assert hop_rate_swing_db(pumped, 512, 4500, 15000, window_s=0.002) > 4.0
