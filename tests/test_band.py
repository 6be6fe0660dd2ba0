"""The band merge keeps the recording: dry below the cutoff, only the missing power added above."""

import numpy as np
import pytest

from reelrestore.engine.band import COURSE_RANGE_DB, HOLD_MAX_DB, band_db, hold_at_hiss, merge, merge_gains, steepen_course
from reelrestore.engine.contract import DEFAULT_CONTRACT
from reelrestore.engine.stft import StftPlan

C = DEFAULT_CONTRACT
BINS, FRAME = C.n_bins, C.frame_length


def spectrum_of(x: np.ndarray) -> np.ndarray:
    return StftPlan.from_contract(C, x.shape[-1]).forward(np.atleast_2d(x).astype(np.float32))


def band_power_db(spec: np.ndarray, lo: int, hi: int, frames: slice = slice(None)) -> float:
    return float(10 * np.log10(np.mean(spec[:, 0, lo:hi, frames] ** 2 + spec[:, 1, lo:hi, frames] ** 2)))


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


def test_the_band_is_held_at_the_lost_hiss_where_it_falls_under_it_and_nowhere_else():
    """A model's band that falls 30 dB under the hiss above 6 kHz and is silent in one column
    of 6 is raised to the hiss there; under the cut, in a louder column and in a row with
    nothing to hold, nothing moves."""
    rng = np.random.default_rng(4)
    wet = rng.standard_normal((2, 2, BINS, 6)).astype(np.float32)  # 3 dB per bin
    wet[:, :, 256:] *= 10 ** (-30 / 20)  # from 6 kHz up: -27 dB
    wet[:, :, :, 2] = 0.0  # a column the model left silent
    wet[:, :, 256:, 4] *= 10 ** (45 / 20)  # and one 8 dB over the hiss
    before = wet.copy()
    keep = merge_gains(np.array([100.0, 100.0]), BINS, 10)
    out = hold_at_hiss(wet, keep, np.array([-10.0, -np.inf]))
    assert out is wet
    np.testing.assert_array_equal(out[1], before[1])  # nothing held in that row
    np.testing.assert_array_equal(out[0, :, :101], before[0, :, :101])  # the kept band
    for t in (0, 1, 3, 5):
        assert band_power_db(out[:1], 300, 1000, slice(t, t + 1)) == pytest.approx(-10.0, abs=0.5)
        np.testing.assert_array_equal(out[0, :, 110:250, t], before[0, :, 110:250, t])  # 3 dB: over the hiss
    np.testing.assert_array_equal(out[0, :, :, 2], 0.0)  # silence stays silence (at most HOLD_MAX_DB)
    np.testing.assert_array_equal(out[0, :, 300:, 4], before[0, :, 300:, 4])
    quiet = before.copy()
    quiet[:, :, 256:] *= 10 ** (-(HOLD_MAX_DB + 20) / 20)  # 3 - 30 - 60 = -87 dB: raised by HOLD_MAX_DB only
    hold_at_hiss(quiet, keep, np.array([-10.0, -np.inf]))
    assert band_power_db(quiet[:1], 300, 1000, slice(0, 1)) == pytest.approx(-87.0 + HOLD_MAX_DB, abs=0.5)


def test_the_band_s_course_is_made_steeper_about_its_mean_from_the_given_bin_up():
    """A band whose level rises and falls by 6 dB over the columns: from the given bin up
    each third of an octave's course in dB is 1.5 times as steep, its mean in dB the same;
    under it, nothing moves."""
    rng = np.random.default_rng(9)
    course = 6.0 * np.sin(np.linspace(0.0, 2.0 * np.pi, 8, endpoint=False))  # dB per column
    wet = (rng.standard_normal((1, 2, BINS, 8)) * 10 ** (course / 20)).astype(np.float32)
    before = wet.copy()
    out = steepen_course(wet, np.array([192.0]), 1.5)  # 4.5 kHz
    assert out is wet
    np.testing.assert_array_equal(out[0, :, :192], before[0, :, :192])
    for lo, hi in ((192, 241), (604, 760)):  # a third of an octave each, as the function groups them
        db = [10 * np.log10((x[0, :, lo:hi] ** 2).sum(axis=(0, 1))) for x in (before, out)]
        np.testing.assert_allclose(db[1] - db[1].mean(), 1.5 * (db[0] - db[0].mean()), atol=1e-3)
        assert db[1].mean() == pytest.approx(db[0].mean(), abs=1e-3)
    np.testing.assert_array_equal(steepen_course(before.copy(), np.array([192.0]), 1.0), before)
    both = np.concatenate([before, before])
    steepen_course(both, np.array([192.0, np.inf]), 1.5)  # a row that holds nothing: untouched
    np.testing.assert_allclose(both[0], out[0], rtol=1e-5)
    np.testing.assert_array_equal(both[1], before[0])


def test_digital_silence_beside_programme_does_not_raise_the_programme_s_course():
    """Half the frame's columns silent (a reel's lead), half a steady band: the silence
    counts as COURSE_RANGE_DB under the programme, so the programme rises by at most half of
    half that (15 dB at 1.5x), not by half the depth of digital silence; the silence stays."""
    rng = np.random.default_rng(10)
    wet = rng.standard_normal((1, 2, BINS, 8)).astype(np.float32) * 1e-2
    wet[..., :4] = 0.0
    before = wet.copy()
    steepen_course(wet, np.array([192.0]), 1.5)
    gain_db = 10 * np.log10((wet[0, :, 192:, 4:] ** 2).sum() / (before[0, :, 192:, 4:] ** 2).sum())
    assert gain_db == pytest.approx(0.5 * COURSE_RANGE_DB / 2, abs=0.5)
    np.testing.assert_array_equal(wet[..., :4], 0.0)


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


def test_under_a_low_cut_the_added_band_may_stay_level_up_to_1_khz():
    """A 300 Hz cut whose octave under it falls 12 dB/octave (half of it skirt): the limit
    stays at the level of the top of the band up to LIMIT_LEVEL_HZ, then falls as before."""
    from reelrestore.engine.band import LIMIT_LEVEL_HZ, added_band_limit

    f = np.arange(BINS) * C.bin_hz
    level = np.where(f > 0, -12 * np.log2(np.maximum(f, 1) / 100), 0.0)
    level[f > 300] = -200.0
    dry = np.zeros((1, 2, BINS, 4), np.float32)
    dry[:, 0] = (10 ** (level / 20))[None, :, None]
    cut = np.array([300 / C.bin_hz])
    limit_db = 10 * np.log10(added_band_limit(dry, cut, np.array([-np.inf]), LIMIT_LEVEL_HZ / C.bin_hz)[0])
    falling_db = 10 * np.log10(added_band_limit(dry, cut, np.array([-np.inf]))[0])
    at = lambda db, hz: db[int(round(hz / C.bin_hz))]  # noqa: E731
    assert LIMIT_LEVEL_HZ == 1000.0
    assert at(limit_db, 900) == pytest.approx(at(limit_db, 400), abs=0.01)  # level under 1 kHz
    assert at(limit_db, 400) == pytest.approx(at(falling_db, 310), abs=1.0)  # at the top of the band's level
    assert at(limit_db, 4000) - at(limit_db, 8000) == pytest.approx(12.0, abs=1.0)  # then falling as before
    assert at(limit_db, 2000) - at(falling_db, 2000) == pytest.approx(12 * np.log2(1000 / 300), abs=1.0)
    # a cut above LIMIT_LEVEL_HZ is limited as without it
    high = np.array([2000 / C.bin_hz])
    np.testing.assert_array_equal(added_band_limit(dry, high, np.array([-np.inf]), LIMIT_LEVEL_HZ / C.bin_hz),
                                  added_band_limit(dry, high, np.array([-np.inf])))


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


# -- the lift: the signal's residue above the cut, raised towards the model's level --------

INNER = slice(2, 45)  # the STFT frames clear of the frame's edges (`StreamRestorer._inner`)


def harmonic_reel(seconds: float = 0.5, seed: int = 0) -> np.ndarray:
    """Harmonics up to 12 kHz with a moving envelope, and a little noise: (n,) float64."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * C.sample_rate)) / C.sample_rate
    f0 = 220.0
    x = sum(0.3 / k * np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6)) for k in range(1, 55))
    x *= 0.6 + 0.4 * np.sin(2 * np.pi * 3.0 * t)
    return x + 1e-3 * rng.standard_normal(t.size)


def envelope_noise(reference: np.ndarray, seed: int) -> np.ndarray:
    """A model's band at its best without detail: noise with the reference's mean power per bin."""
    noise = spectrum_of(np.random.default_rng(seed).standard_normal(FRAME))
    want = np.mean(reference[:, 0, :, INNER] ** 2 + reference[:, 1, :, INNER] ** 2, axis=-1)
    have = np.mean(noise[:, 0, :, INNER] ** 2 + noise[:, 1, :, INNER] ** 2, axis=-1)
    return (noise * np.sqrt(want / have)[:, None, :, None]).astype(np.float32)


def skirt_cut(x: np.ndarray, hz: float = 3000.0) -> np.ndarray:
    """A Butterworth-4 cut (zero phase), the frame taken from the middle of a longer signal
    so the filter's own start and end stay out of it."""
    from scipy import signal as sps

    return sps.sosfiltfilt(sps.butter(4, hz, fs=C.sample_rate, output="sos"), x)[FRAME : 2 * FRAME]


def likeness(a: np.ndarray, b: np.ndarray, lo: int, hi: int) -> float:
    """Normalised inner product of two spectra's complex values over bins [lo, hi) and the inner frames."""
    a, b = a[..., INNER], b[..., INNER]
    za, zb = a[0, 0, lo:hi] + 1j * a[0, 1, lo:hi], b[0, 0, lo:hi] + 1j * b[0, 1, lo:hi]
    return float(abs(np.vdot(za, zb)) / np.sqrt(np.vdot(za, za).real * np.vdot(zb, zb).real))


def lifted(dry, wet, cut_bin, mode, floor=None):
    keep = merge_gains(np.array([float(cut_bin)]), BINS, 10)
    floor = np.zeros((1, BINS)) if floor is None else floor
    return merge(dry, wet.copy(), keep, 1.0, floor=floor,
                 lift=np.array([mode], dtype=np.int8), inner=INNER)


def test_the_lift_raises_a_filter_skirts_residue_with_its_own_detail():
    """Cut by a Butterworth-4 at 3 kHz, the input still holds the harmonics above the cut,
    weakened: the lift brings them back near the reference's level *as they are* (their
    partials in place), where adding a band of noise at the right level does not."""
    from reelrestore.engine.band import LIFT_ALL, LIFT_NONE

    x = harmonic_reel(1.5)
    reference = spectrum_of(x[FRAME : 2 * FRAME])
    dry = spectrum_of(skirt_cut(x))
    wet = envelope_noise(reference, seed=1)
    cut = int(3000 / C.bin_hz)
    lo, hi = int(4500 / C.bin_hz), int(6500 / C.bin_hz)  # the skirt: 32-50 dB down, within the lift's reach
    with_lift = lifted(dry, wet, cut, LIFT_ALL)
    without = lifted(dry, wet, cut, LIFT_NONE)
    np.testing.assert_array_equal(with_lift[:, :, : cut + 1], dry[:, :, : cut + 1])  # the kept band: untouched
    # the input's own partials are most of the band (a noise band at the right level scores ~0.1)
    assert likeness(with_lift, reference, lo, hi) > 0.5
    assert likeness(without, reference, lo, hi) < 0.2
    assert abs(band_power_db(with_lift, lo, hi, INNER) - band_power_db(reference, lo, hi, INNER)) < 1.5
    assert band_power_db(dry, lo, hi, INNER) < band_power_db(reference, lo, hi, INNER) - 30.0  # it was cut


def test_beside_a_stray_event_the_lifted_band_is_still_restored():
    """An event made after the cut (a click, a tone's onset) in a few of a frame's columns
    stands far over what the cut left there: those columns are neither summed into the
    reel's lift nor lifted (`STRAY_COLUMN_DB`), and the event stays as the input holds it.
    The rest of those columns' band is still restored: where the input lacks it, the
    model's band comes in as in the columns that do not lift. (Left out, the whole lifted band fell
    to the skirt's residue for the event's length: a hole 30 dB and more deep; on a real
    effects clip, 45 dB for 30 ms at a beep's onset.)"""
    from reelrestore.engine.band import LIFT_ALL

    x = harmonic_reel(1.5)
    dry = spectrum_of(skirt_cut(x))
    wet = envelope_noise(spectrum_of(x[FRAME : 2 * FRAME]), seed=1)
    cut = int(3000 / C.bin_hz)
    keep = merge_gains(np.array([float(cut)]), BINS, 10)
    sums = np.zeros((1, 3, BINS))
    merge(dry, wet.copy(), keep, 1.0, floor=np.zeros((1, BINS)), lift=np.array([LIFT_ALL], dtype=np.int8),
          inner=INNER, reel_sums=sums, reel_of=np.array([0]))  # the reel's sums, from one frame of it

    def restored(spectrum):
        return merge(spectrum, wet.copy(), keep, 1.0, floor=np.zeros((1, BINS)),
                     lift=np.array([LIFT_ALL], dtype=np.int8), inner=INNER, reel_sums=sums.copy(),
                     reel_of=np.array([0]))

    tone, columns = int(9000 / C.bin_hz), slice(20, 23)  # a tone's onset after the cut, 3 columns long
    event = dry.copy()
    event[0, 0, tone - 1 : tone + 2, columns] = 100.0 * np.abs(wet[0, :, tone - 1 : tone + 2]).max()
    with_event, without = restored(event), restored(dry)
    lo, hi = int(4500 / C.bin_hz), int(6500 / C.bin_hz)  # the skirt, lifted; the tone is not there
    # the model's band at its own level where the reel's residue would have been raised (measured 4.5 dB
    # under that, the frame's loudest moment; left out: 37 dB under)
    assert band_power_db(with_event, lo, hi, columns) > band_power_db(without, lo, hi, columns) - 6.0
    assert band_power_db(dry, lo, hi, columns) < band_power_db(without, lo, hi, columns) - 25.0  # what a hole is
    held = np.hypot(*with_event[0, :, tone - 1 : tone + 2, columns])
    assert np.all(held <= 1.01 * np.hypot(*event[0, :, tone - 1 : tone + 2, columns]))  # the event: not raised


def test_a_brick_wall_cut_leaves_nothing_to_lift():
    """Above a brick-wall cut the input holds only what the analysis window leaks from the
    band under it (and rounding): raising that would raise the partials under the cut."""
    from reelrestore.engine.band import LIFT_ALL, LIFT_NONE

    x = harmonic_reel()[:FRAME]
    spec = np.fft.rfft(x)
    spec[np.fft.rfftfreq(x.size, 1 / C.sample_rate) > 3000] = 0
    dry = spectrum_of(np.fft.irfft(spec, x.size))
    wet = envelope_noise(spectrum_of(x), seed=2)
    cut = int(3000 / C.bin_hz)
    np.testing.assert_array_equal(lifted(dry, wet, cut, LIFT_ALL), lifted(dry, wet, cut, LIFT_NONE))


def test_over_its_own_hiss_the_lift_raises_only_the_signal_and_never_a_click():
    """Hiss added after the cut stays as it is: where the input holds no residue over its
    hiss the merge is as without a lift, even with a click on the print in the frame; where
    it holds one, the residue is raised with its own time course (a reel's gain, not the
    model's column-by-column level); and a loud click on the print is not raised beyond
    `KEPT_LIFT_HEADROOM_DB` over the model's loudest column in the frame."""
    from reelrestore.engine.band import KEPT_LIFT_HEADROOM_DB, LIFT_NONE, LIFT_OVER_FLOOR, MERGE_BAND_BINS

    rng = np.random.default_rng(7)
    x_long = harmonic_reel(1.5, seed=3)
    x, cut_signal = x_long[FRAME : 2 * FRAME], skirt_cut(x_long)
    hiss = 10 ** (-70 / 20) * rng.standard_normal(FRAME)
    hiss_spectrum = spectrum_of(hiss)[..., INNER]
    floor = np.full((1, BINS), np.mean(hiss_spectrum[:, 0] ** 2 + hiss_spectrum[:, 1] ** 2))  # the hiss's power per bin
    reference = spectrum_of(x + hiss)
    wet = envelope_noise(reference, seed=4)
    cut = int(3000 / C.bin_hz)
    lo, hi = int(4500 / C.bin_hz), int(6500 / C.bin_hz)
    column = FRAME // 2 // C.hop_length  # the click's, in the middle of the frame
    power = lambda s: np.sum(s[0, 0, lo:hi, column] ** 2 + s[0, 1, lo:hi, column] ** 2)  # noqa: E731

    def restored(click):
        clicked = cut_signal + hiss
        clicked[FRAME // 2] += click  # a click on the print, after the cut
        dry = spectrum_of(clicked)
        return lifted(dry, wet, cut, LIFT_OVER_FLOOR, floor), lifted(dry, wet, cut, LIFT_NONE, floor)

    with_lift, without = restored(0.05)
    assert likeness(with_lift, reference, lo, hi) > likeness(without, reference, lo, hi) + 0.2
    no_residue = (int(18000 / C.bin_hz), int(20000 / C.bin_hz))  # the harmonics end at 12 kHz
    # nothing raised there; the model's band there follows the residue pooled over the octave
    # under it (`KEPT_POOLED_OCTAVES`: its own holds hiss and the click, whose few columns do not
    # pass `KEPT_POOLED_CHANCE`), about as loud over the frame (measured 0.3 dB under; with the
    # click's own course, at `KEPT_POOLED_CHANCE` 1.5, 2.1 dB under)
    raised = band_power_db(with_lift, *no_residue, INNER) - band_power_db(without, *no_residue, INNER)
    assert -1.0 < raised < 0.1
    # The frame is loudest in its middle (the reel's envelope): the residue, raised, is too
    # (the model's level there: 4.6 dB under the reference's; with the lift, measured -1.1 dB).
    assert power(restored(0.0)[0]) > 10 ** (-1.5 / 10) * power(reference) > 2.0 * power(wet)
    # A loud click: held at the headroom over the model's loudest column in the frame, bin
    # by bin over the merge's band of bins (it would be raised some 30 dB; 0.2 dB under).
    model = np.sum(wet[0, :, :, INNER] ** 2, axis=0)  # (bins, inner columns)
    half = MERGE_BAND_BINS // 2
    loudest = [np.max(model[k - half : k + half + 1].sum(axis=0)) / MERGE_BAND_BINS for k in range(lo, hi)]
    assert power(restored(0.5)[0]) <= 1.05 * 10 ** (KEPT_LIFT_HEADROOM_DB / 10) * np.sum(loudest)


def test_over_its_own_hiss_a_pause_is_not_raised_into_a_band():
    """Where the programme pauses, the input above the cut holds its hiss alone, and so does
    the reference. A band of 9 bins of hiss swells over its mean by half in one column of
    eight: read as a residue over the floor and raised by the reel's gain (here 14 dB), the
    swells would become a band of random bursts in the pause. A column is raised only by its
    share over `KEPT_FLOOR_MARGIN` times the floor: in the pause the band stays 2.1 dB over
    the hiss (2.1-6.8 dB over four draws of the hiss; over the floor itself 15.6-17.2 dB),
    while where the programme plays it comes within 1 dB of the reference."""
    from reelrestore.engine.band import LIFT_OVER_FLOOR

    rng = np.random.default_rng(11)
    x_long = harmonic_reel(1.5, seed=5)
    x_long[FRAME + FRAME // 2 :] = 0.0  # the programme stops half-way through the frame
    hiss = 10 ** (-70 / 20) * rng.standard_normal(FRAME)
    hiss_spectrum = spectrum_of(hiss)[..., INNER]
    floor = np.full((1, BINS), np.mean(hiss_spectrum[:, 0] ** 2 + hiss_spectrum[:, 1] ** 2))
    reference = spectrum_of(x_long[FRAME : 2 * FRAME] + hiss)
    dry = spectrum_of(skirt_cut(x_long) + hiss)
    restored = lifted(dry, envelope_noise(reference, seed=6), int(3000 / C.bin_hz), LIFT_OVER_FLOOR, floor)
    lo, hi = int(3300 / C.bin_hz), int(4500 / C.bin_hz)  # the skirt: the reel's gain raises it 14 dB
    pause = slice((FRAME // 2 + C.n_fft) // C.hop_length + 1, INNER.stop)  # columns that see no programme
    playing = slice(INNER.start, (FRAME // 2 - C.n_fft) // C.hop_length)
    assert band_power_db(dry, lo, hi, playing) < band_power_db(reference, lo, hi, playing) - 10.0  # it was cut
    assert abs(band_power_db(restored, lo, hi, playing) - band_power_db(reference, lo, hi, playing)) < 1.5
    assert band_power_db(restored, lo, hi, pause) - band_power_db(dry, lo, hi, pause) < 10.0


def test_over_a_kept_hiss_the_added_band_takes_the_residues_course():
    """Where the residue over a kept hiss shows only now and then (a consonant a few dB over
    the hiss, under it on the frame's average, so not raised), the model's band, steady over
    the frame, is added with the residue's course (`KEPT_COURSE_SHARE`): far louder where the
    residue shows than where it does not, about as loud over the frame as without."""
    from reelrestore.engine.band import LIFT_NONE, LIFT_OVER_FLOOR

    rng = np.random.default_rng(12)
    cut = int(3000 / C.bin_hz)
    lo, hi = int(4000 / C.bin_hz), int(8000 / C.bin_hz)
    programme = spectrum_of(10 ** (-40 / 20) * rng.standard_normal(FRAME))
    programme[:, :, cut + 1 :] = 0.0  # cut by a brick wall, then the hiss added after it
    hiss = spectrum_of(10 ** (-60 / 20) * rng.standard_normal(FRAME))
    floor = np.full((1, BINS), np.mean(hiss[:, 0] ** 2 + hiss[:, 1] ** 2))
    burst = np.zeros(FRAME)
    span = slice(int(0.05 * FRAME), int(0.5 * FRAME))  # 45 % of the frame
    burst[span] = 10 ** (-60 / 20) * np.sqrt(1.5) * rng.standard_normal(span.stop - span.start)
    residue = spectrum_of(burst)
    residue[:, :, :lo] = 0.0
    residue[:, :, hi:] = 0.0
    dry = programme + hiss + residue
    wet = spectrum_of(10 ** (-45 / 20) * rng.standard_normal(FRAME))  # the model's band: steady, over the hiss
    shows = np.mean(residue[0, 0, lo:hi] ** 2 + residue[0, 1, lo:hi] ** 2, axis=0)
    inner = np.arange(BINS)[: shows.size][INNER]
    loud, quiet = inner[shows[INNER] > 0.5 * shows.max()], inner[shows[INNER] < 1e-3 * shows.max()]
    assert loud.size > 5 and quiet.size > 5

    def added(mode):
        out = lifted(dry, wet, cut, mode, floor) - dry
        power = np.mean(out[0, 0, lo:hi] ** 2 + out[0, 1, lo:hi] ** 2, axis=0)
        return 10 * np.log10(power[loud].mean() / power[quiet].mean()), 10 * np.log10(power[INNER].mean())

    course, level = added(LIFT_OVER_FLOOR)
    flat, flat_level = added(LIFT_NONE)
    assert abs(flat) < 2.0  # the model's own band: steady
    assert course > flat + 6.0  # measured 9.2 dB more (0.0 without the course)
    assert abs(level - flat_level) < 3.0  # measured 0.5 dB under


def test_over_a_kept_hiss_the_added_band_follows_the_residue_pooled_over_the_band():
    """A residue too faint to read bin by bin (1.5 dB over the hiss, under the floor's margin
    in every band of bins: `_residue_course` leaves the band be) still shows summed over each
    octave above the cut (`KEPT_POOLED_OCTAVES`): the model's band, steady over the frame, is
    added louder where that residue shows than where it does not."""
    from reelrestore.engine.band import LIFT_NONE, LIFT_OVER_FLOOR

    rng = np.random.default_rng(14)
    cut = int(3000 / C.bin_hz)
    lo, hi = cut + 2, min(4 * cut, BINS)
    programme = spectrum_of(10 ** (-40 / 20) * rng.standard_normal(FRAME))
    programme[:, :, cut + 1 :] = 0.0  # cut by a brick wall, then the hiss added after it
    hiss = spectrum_of(10 ** (-60 / 20) * rng.standard_normal(FRAME))
    floor = np.full((1, BINS), np.mean(hiss[:, 0] ** 2 + hiss[:, 1] ** 2))
    burst = np.zeros(FRAME)
    span = slice(int(0.05 * FRAME), int(0.5 * FRAME))
    burst[span] = 10 ** (-60 / 20) * np.sqrt(10 ** 0.15 - 1.0) * rng.standard_normal(span.stop - span.start)
    residue = spectrum_of(burst)
    residue[:, :, : cut + 1] = 0.0
    dry = programme + hiss + residue
    wet = spectrum_of(10 ** (-45 / 20) * rng.standard_normal(FRAME))  # the model's band: steady, over the hiss
    shows = np.mean(residue[0, 0, lo:hi] ** 2 + residue[0, 1, lo:hi] ** 2, axis=0)
    inner = np.arange(shows.size)[INNER]
    loud, quiet = inner[shows[INNER] > 0.5 * shows.max()], inner[shows[INNER] < 1e-3 * shows.max()]
    assert loud.size > 5 and quiet.size > 5

    def added(mode):
        out = lifted(dry, wet, cut, mode, floor) - dry
        power = np.mean(out[0, 0, lo:hi] ** 2 + out[0, 1, lo:hi] ** 2, axis=0)
        return 10 * np.log10(power[loud].mean() / power[quiet].mean())

    assert abs(added(LIFT_NONE)) < 1.0  # the model's own band: steady
    assert added(LIFT_OVER_FLOOR) > 3.0  # measured 4.4 dB (0.0 without the pooled course)


def test_over_a_kept_hiss_each_octave_follows_its_own_pooled_residue_or_the_one_under_it():
    """The speech's envelope is not one course: its voicing shows in the octave above a low
    cut, its consonants octaves higher. Over a kept hiss the added band in each octave follows
    the residue pooled over that octave (`KEPT_POOLED_OCTAVES`) where that course stands out
    of the hiss's chance swells (`KEPT_POOLED_CHANCE`), else the octave's under it: an octave
    of hiss alone, over a floor read 1 dB low (its hiss then passes the residue's own tests),
    takes the first octave's course, not its own chance swells."""
    from reelrestore.engine.band import LIFT_NONE, LIFT_OVER_FLOOR

    rng = np.random.default_rng(15)
    cut = int(1500 / C.bin_hz)
    octaves = [(cut + 2, 2 * cut), (2 * cut, 4 * cut), (4 * cut, 8 * cut)]
    programme = spectrum_of(10 ** (-40 / 20) * rng.standard_normal(FRAME))
    programme[:, :, cut - 2 :] = 0.0  # cut by a brick wall (under the band's first bin), then the hiss added
    hiss = spectrum_of(10 ** (-60 / 20) * rng.standard_normal(FRAME))
    floor = np.full((1, BINS), np.mean(hiss[:, 0] ** 2 + hiss[:, 1] ** 2))
    floor[:, 2 * cut : 4 * cut] *= 10 ** -0.1  # read 1 dB low in the octave of hiss alone

    def burst(span, lo, hi, over_db):  # a residue over the hiss in bins lo .. hi - 1 and part of the frame
        x = np.zeros(FRAME)
        x[span] = 10 ** (-60 / 20) * np.sqrt(10 ** (over_db / 10) - 1.0) * rng.standard_normal(span.stop - span.start)
        spec = spectrum_of(x)
        spec[:, :, :lo] = 0.0
        spec[:, :, hi:] = 0.0
        return spec

    early, late = slice(int(0.05 * FRAME), int(0.45 * FRAME)), slice(int(0.55 * FRAME), int(0.95 * FRAME))
    voicing = burst(early, cut, 2 * cut, 1.5)  # faint: shows only pooled over its octave
    consonants = burst(late, 4 * cut, 8 * cut, 3.0)
    dry = programme + hiss + voicing + consonants
    wet = spectrum_of(10 ** (-45 / 20) * rng.standard_normal(FRAME))  # the model's band: steady, over the hiss
    t = np.arange(BINS)[: dry.shape[-1]]
    in_early = (t >= INNER.start + 4) & (t < (early.stop - C.n_fft) // C.hop_length)
    in_late = (t >= (late.start + C.n_fft) // C.hop_length) & (t < INNER.stop - 4)
    assert in_early.sum() > 5 and in_late.sum() > 5

    def contrast(mode, lo, hi):  # dB, the added band's power early against late
        out = lifted(dry, wet, cut, mode, floor) - dry
        power = np.mean(out[0, 0, lo:hi] ** 2 + out[0, 1, lo:hi] ** 2, axis=0)
        return 10 * np.log10(power[in_early].mean() / power[in_late].mean())

    for lo, hi in octaves:
        assert abs(contrast(LIFT_NONE, lo, hi)) < 1.0  # the model's own band: steady
    first, hiss_alone, own = (contrast(LIFT_OVER_FLOOR, lo, hi) for lo, hi in octaves)
    assert first > 1.5  # the voicing's course (measured 2.8 dB)
    assert hiss_alone > 1.0  # the octave under it (measured 2.1 dB; -0.2 dB with its own chance swells)
    assert own < -4.0  # the consonants' course (measured -8.9 dB; -0.8 dB with two octaves pooled for all)


def test_over_a_kept_hiss_the_added_band_keeps_only_half_its_own_course():
    """Over a kept hiss where the residue shows no course of its own, the model's band, which
    follows the band under the cut, is added with its course over the frame halved in dB
    (`KEPT_MODEL_COURSE`): a band 15 dB louder in the frame's first half than in its second
    comes in about 7.5 dB louder; with no hiss kept it comes in as the model gives it."""
    from reelrestore.engine.band import KEPT_MODEL_COURSE, LIFT_NONE, LIFT_OVER_FLOOR

    rng = np.random.default_rng(16)
    cut = int(2000 / C.bin_hz)
    lo, hi = cut + 8, 4 * cut
    programme = spectrum_of(10 ** (-40 / 20) * rng.standard_normal(FRAME))
    programme[:, :, cut + 1 :] = 0.0  # a brick-wall cut, then the hiss added after it
    hiss = spectrum_of(10 ** (-75 / 20) * rng.standard_normal(FRAME))
    floor = np.full((1, BINS), np.mean(hiss[:, 0] ** 2 + hiss[:, 1] ** 2))
    dry = programme + hiss
    swing = np.where(np.arange(FRAME) < FRAME // 2, 10 ** (-40 / 20), 10 ** (-55 / 20))
    wet = spectrum_of(swing * rng.standard_normal(FRAME))  # the model's band: 15 dB louder early
    t = np.arange(dry.shape[-1])
    half = FRAME // 2 // C.hop_length
    early = (t >= INNER.start + 2) & (t < half - 4)
    late = (t > half + 4) & (t < INNER.stop - 2)

    def contrast(mode):  # dB, the added band's power early against late
        out = lifted(dry, wet, cut, mode, floor) - dry
        power = np.mean(out[0, 0, lo:hi] ** 2 + out[0, 1, lo:hi] ** 2, axis=0)
        return 10 * np.log10(power[early].mean() / power[late].mean())

    own = contrast(LIFT_NONE)
    assert abs(own - 15.0) < 1.0  # as the model gives it
    # measured 7.5 dB (15.0 with its course whole)
    assert abs(contrast(LIFT_OVER_FLOOR) - KEPT_MODEL_COURSE * own) < 1.5


def test_over_a_kept_hiss_the_hiss_under_the_cut_is_read_where_the_hiss_is_alone():
    """The gate over a kept hiss weighs the band under the cut against the hiss there,
    taken as the reel's floor under the cut but at most the floor the input keeps at
    1.5-2x the cut (the reel's quietest moments under the cut may still hold programme).
    A band under the cut 10 dB over the hiss (90 % of its power above it) lets the model's
    band through at 0.9^2 in amplitude (-1.8 dB), though the reel's floor there reads 20 dB
    over the hiss; where the band under the cut is the hiss alone, next to nothing (its
    columns' random level over the hiss's mean)."""
    from reelrestore.engine.band import LIFT_NONE, LIFT_OVER_FLOOR

    rng = np.random.default_rng(8)
    cut = int(3000 / C.bin_hz)
    programme = spectrum_of(10 ** (-50 / 20) * rng.standard_normal(FRAME))
    programme[:, :, cut + 1 :] = 0.0  # a brick-wall cut, then the hiss added after it
    hiss = spectrum_of(10 ** (-60 / 20) * rng.standard_normal(FRAME))
    floor = np.full((1, BINS), np.mean(hiss[:, 0] ** 2 + hiss[:, 1] ** 2))
    floor[:, : cut + 1] *= 100.0  # the reel's floor under the cut: 20 dB over the hiss
    wet = spectrum_of(10 ** (-45 / 20) * rng.standard_normal(FRAME))  # the model's band, over the hiss
    lo, hi = int(4000 / C.bin_hz), int(8000 / C.bin_hz)

    def added_db(dry, mode):
        return band_power_db(lifted(dry, wet, cut, mode, floor) - dry, lo, hi, INNER)

    dry = programme + hiss
    assert abs(added_db(dry, LIFT_OVER_FLOOR) - added_db(dry, LIFT_NONE) + 1.8) < 0.5  # measured -1.7
    assert added_db(hiss, LIFT_OVER_FLOOR) < added_db(hiss, LIFT_NONE) - 15.0  # measured 31.7 dB less
