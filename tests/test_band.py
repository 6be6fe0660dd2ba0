"""The band merge keeps the recording: dry below the cutoff, only the missing power added above."""

import numpy as np
import pytest

from reelrestore.engine.band import band_db, merge, merge_gains
from reelrestore.engine.contract import DEFAULT_CONTRACT
from reelrestore.engine.stft import StftPlan

C = DEFAULT_CONTRACT
BINS, FRAME = C.n_bins, C.frame_length


def spectrum_of(x: np.ndarray) -> np.ndarray:
    return StftPlan.from_contract(C, x.shape[-1]).forward(np.atleast_2d(x).astype(np.float32))


def band_power_db(spec: np.ndarray, lo: int, hi: int) -> float:
    return float(10 * np.log10(np.mean(spec[:, 0, lo:hi] ** 2 + spec[:, 1, lo:hi] ** 2)))


def test_merge_gains_keep_everything_up_to_the_cutoff_bin_then_fade_out():
    g = merge_gains(np.array([100.0]), BINS, 10)[0]
    assert np.all(g[:101] == 1.0)
    assert np.all(g[110:] == 0.0)
    assert np.all(np.diff(g[100:111]) < 0)


def test_below_the_cutoff_the_output_is_the_input_bit_for_bit():
    rng = np.random.default_rng(1)
    dry = rng.standard_normal((2, 2, BINS, 5)).astype(np.float32)
    wet = 10 * rng.standard_normal((2, 2, BINS, 5)).astype(np.float32)
    keep = merge_gains(np.array([200.0, 600.0]), BINS, 8)
    out = merge(dry, wet.copy(), keep, mix=1.0)
    np.testing.assert_array_equal(out[0, :, :201], dry[0, :, :201])
    np.testing.assert_array_equal(out[1, :, :601], dry[1, :, :601])


def test_a_silent_band_above_the_cut_receives_the_models_band_whole():
    rng = np.random.default_rng(2)
    dry = np.zeros((1, 2, BINS, 6), np.float32)
    dry[:, :, :300] = rng.standard_normal((1, 2, 300, 6))
    wet = rng.standard_normal((1, 2, BINS, 6)).astype(np.float32)
    out = merge(dry, wet.copy(), merge_gains(np.array([300.0]), BINS, 10), mix=1.0)
    np.testing.assert_allclose(out[:, :, 320:], wet[:, :, 320:], rtol=1e-5, atol=1e-6)


def test_hiss_above_the_cut_is_kept_and_never_painted_over():
    """The print's hiss above the cut is the recording: where the model's band is no
    louder than it, nothing changes; where it is louder, only the difference is added."""
    rng = np.random.default_rng(3)
    hiss = 10 ** (-60 / 20) * rng.standard_normal(FRAME)
    dry = spectrum_of(hiss)
    quiet = spectrum_of(10 ** (-80 / 20) * rng.standard_normal(FRAME))  # model 20 dB under the hiss
    out = merge(dry, quiet.copy(), merge_gains(np.array([200.0]), BINS, 10), mix=1.0)
    assert abs(band_power_db(out, 300, 900) - band_power_db(dry, 300, 900)) < 0.1

    loud = spectrum_of(10 ** (-50 / 20) * rng.standard_normal(FRAME))  # model 10 dB above the hiss
    out = merge(dry, loud.copy(), merge_gains(np.array([200.0]), BINS, 10), mix=1.0)
    # the sum has the model's level (to within the random overlap of two noises), not hiss + model
    assert abs(band_power_db(out, 300, 900) - band_power_db(loud, 300, 900)) < 0.5


def test_a_model_that_returns_the_input_changes_nothing():
    rng = np.random.default_rng(4)
    dry = spectrum_of(rng.standard_normal(FRAME))
    out = merge(dry, dry.copy(), merge_gains(np.array([100.0]), BINS, 10), mix=1.0)
    np.testing.assert_allclose(out, dry, rtol=1e-6, atol=1e-6)


def test_mix_zero_is_the_input():
    rng = np.random.default_rng(5)
    dry = rng.standard_normal((1, 2, BINS, 3)).astype(np.float32)
    out = merge(dry, 5 * rng.standard_normal((1, 2, BINS, 3)).astype(np.float32),
                merge_gains(np.array([100.0]), BINS, 10), mix=0.0)
    np.testing.assert_array_equal(out, dry)


def test_band_db_is_robust_to_a_click():
    rng = np.random.default_rng(6)
    x = 0.01 * rng.standard_normal(FRAME)
    clicked = x.copy()
    clicked[FRAME // 2] = 1.0
    diff = band_db(spectrum_of(clicked)) - band_db(spectrum_of(x))
    assert np.max(np.abs(diff)) < 3.0  # the median over STFT frames ignores one click


def test_the_added_band_continues_the_recordings_own_slope():
    """Below a 2 kHz cut the recording falls 12 dB/octave: the model may add at most that
    continuation above, and a louder model band is scaled down to it."""
    from reelrestore.engine.band import added_band_limit

    f = np.arange(BINS) * C.bin_hz
    level = np.where(f > 0, -12 * np.log2(np.maximum(f, 1) / 1000), 0.0)  # dB, -12 dB/oct
    level[f > 2000] = -200.0
    dry = np.zeros((1, 2, BINS, 4), np.float32)
    dry[:, 0] = (10 ** (level / 20))[None, :, None]
    cut = np.array([2000 / C.bin_hz])
    limit_db = 10 * np.log10(added_band_limit(dry, cut, np.array([-np.inf]))[0])
    at = lambda hz: limit_db[int(round(hz / C.bin_hz))]  # noqa: E731
    # the level is read over the quarter octave under the cut, 1.5 dB above the level at it
    assert at(8000) == pytest.approx(-12 * np.log2(8000 / 1000) + 1.5, abs=0.5)
    assert at(4000) - at(8000) == pytest.approx(12.0, abs=1.0)
    with_hiss = 10 * np.log10(added_band_limit(dry, cut, np.array([-40.0]))[0])
    assert with_hiss[int(16000 / C.bin_hz)] == pytest.approx(-40.0, abs=0.01)  # the lost hiss comes back

    loud = np.ones_like(dry)  # a model band at 0 dB everywhere
    out = merge(dry, loud, merge_gains(cut, BINS, 10), 1.0, added_band_limit(dry, cut, np.array([-np.inf])))
    got = 10 * np.log10(np.mean(out[0, 0] ** 2 + out[0, 1] ** 2, axis=-1))
    assert got[int(8000 / C.bin_hz)] == pytest.approx(at(8000), abs=1.0)


def test_merging_some_columns_equals_the_same_columns_of_a_whole_merge():
    # low latency merges only the STFT columns it will play; the limit still weighs the
    # model's band over the whole frame, so the columns merged are exactly the whole merge's
    from reelrestore.engine.band import added_band_limit

    rng = np.random.default_rng(3)
    dry = rng.standard_normal((2, 2, BINS, 47)).astype(np.float32)
    dry[:, :, 300:] *= 0.01
    wet = 3.0 * rng.standard_normal((2, 2, BINS, 47)).astype(np.float32)
    keep = merge_gains(np.array([280.0, 310.0]), BINS, 10)
    limit = added_band_limit(dry, np.array([280.0, 310.0]), np.array([-np.inf, -60.0]))
    whole = merge(dry, wet.copy(), keep, 0.8, limit)
    part = merge(dry, wet.copy(), keep, 0.8, limit, columns=slice(43, 47))
    np.testing.assert_allclose(part, whole[..., 43:47], rtol=1e-6, atol=1e-7)
    assert not np.allclose(whole[..., 43:47], dry[..., 43:47])  # something was added
