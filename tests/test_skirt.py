"""The skirt curves the lift fits a reel's loss to (`engine/skirt.py`)."""

import numpy as np
import pytest

from conftest import alsa_speech_with_hiss

from reelrestore.engine.skirt import LOBES_MIN_HZ, fit_floor, fit_lobes, names, skirt_family
from reelrestore.training.degrade import lowpass_response, minus3db_hz

BIN_HZ = 48000 / 2048


@pytest.mark.parametrize("cutoff", [150.0, 1000.0, 6000.0])
def test_every_curve_is_minus_3_db_at_the_cutoff_and_falls_past_it(cutoff):
    assert skirt_family(cutoff, BIN_HZ, 1025).shape == (len(names()), 1025)
    family = skirt_family(cutoff, cutoff / 8, 64)  # bin 8 is the cutoff, bin 16 twice it
    db = 10 * np.log10(np.exp(family))
    assert np.all(db[:, 0] == 0.0)  # no loss at DC
    assert np.all(np.abs(db[:, 8] + 3.0) < 0.05), db[:, 8]
    assert np.all(db[:, 16] < -4.0), db[:, 16]
    assert np.all(np.diff(db[:, :9], axis=1) <= 0.0)  # falling all the way to the cutoff


@pytest.mark.parametrize("shape,order", [("butterworth", 2), ("butterworth", 4), ("slit", 0)])
def test_the_family_holds_the_cuts_the_real_set_applies(shape, order):
    # A zero-phase Butterworth and the optical slit of `training.degrade`, each at its -3 dB
    # point: one curve of the family follows it within 1.5 dB down to 20 dB of loss.
    from scipy import optimize

    design = optimize.brentq(lambda c: minus3db_hz(shape, order, c) - 2000.0, 1000.0, 6000.0)
    f = np.arange(1025) * BIN_HZ
    true_db = 20 * np.log10(np.maximum(lowpass_response(shape, order, design, f), 1e-12))
    family_db = 10 * np.log10(np.exp(skirt_family(2000.0, BIN_HZ, 1025)))
    within = (f > 2000.0) & (true_db > -20.0)
    assert within.sum() > 10
    worst = np.abs(family_db[:, within] - true_db[within]).max(axis=1)
    assert worst.min() < 1.5, dict(zip(names(), np.round(worst, 1)))


def test_the_digital_curves_follow_a_digital_butterworth_where_the_analogue_ones_part_from_it():
    # A transfer low-passed in software (the bilinear transform) falls faster than its
    # analogue model far past the cutoff; the family holds both. Zero-phase Butterworth-2
    # made at 2 kHz (-3 dB at 1.6 kHz): the digital curve within 0.2 dB of it down to
    # 80 dB of loss, the analogue 9.7 dB short at 8x the cutoff.
    cutoff = minus3db_hz("butterworth", 2, 2000.0)
    f = np.arange(1025) * BIN_HZ
    true_db = 20 * np.log10(np.maximum(lowpass_response("butterworth", 2, 2000.0, f), 1e-12))
    family_db = 10 * np.log10(np.exp(skirt_family(cutoff, BIN_HZ, 1025)))
    digital, analogue = (family_db[names().index(n)] for n in ("butterworth-zero-phase n2 digital",
                                                               "butterworth-zero-phase n2"))
    deep = true_db > -80.0
    assert np.abs(digital[deep] - true_db[deep]).max() < 0.2
    eight = int(round(8 * cutoff / BIN_HZ))
    assert analogue[eight] - true_db[eight] > 5.0, analogue[eight] - true_db[eight]  # measured 9.7 dB


@pytest.mark.parametrize("bottom_db", [-117.0, -74.0])  # PCM 24 and PCM 16's noise floor
@pytest.mark.parametrize("given", [1.0, 1.07])  # the cutoff given exactly, or read 7 % high
def test_a_floor_that_is_the_hiss_through_the_cut_reads_the_cuts_curve(bottom_db, given):
    # Where the reel falls silent, its floor above the cut is the print's hiss through the
    # cut: the hiss floor under the cut minus the loss. Read from that alone (no model), the
    # fitted curve follows the cut within 1 dB wherever the floor stands clear of the
    # recording's own noise floor, whatever level the hiss has, and its -3 dB point lies
    # within 2 % of the cut's.
    rng = np.random.default_rng(3)
    cutoff = minus3db_hz("butterworth", 2, 2000.0)
    f = np.arange(1025) * BIN_HZ
    loss_db = -20 * np.log10(np.maximum(lowpass_response("butterworth", 2, 2000.0, f), 1e-12))
    under = -40.0
    floor = np.maximum(under - loss_db + rng.normal(0.0, 0.5, f.size), bottom_db + rng.normal(0.0, 1.0, f.size))
    got = fit_floor(given * cutoff, BIN_HZ, floor, under)
    assert got is not None
    curve_db = -10 * np.log10(np.exp(got.curve))
    seen = (f > given * cutoff) & (loss_db < min(under - bottom_db - 10.0, 50.0))
    miss = curve_db[seen] - loss_db[seen]
    assert np.abs(miss - miss.mean()).max() < 1.0, got.name
    assert abs(got.minus3db_hz / cutoff - 1.0) < 0.02, got.minus3db_hz / cutoff
    assert fit_floor(cutoff, BIN_HZ, np.full(1025, bottom_db), under) is None  # nothing to read
    # Ended by the recording's own bottom, the curve is followed all the way down; ended by a
    # hiss added after the cut (`later`), only as deep as the floor showed it.
    assert got.depth_db == np.inf
    later = fit_floor(given * cutoff, BIN_HZ, floor, under, later=True)
    assert later.name == got.name and later.depth_db == pytest.approx(loss_db[seen].max(), abs=3.0)


def test_the_digital_slit_follows_a_slit_made_in_software_where_the_analogue_one_parts_from_it():
    # A slit simulated in software (`degrade.slit_kernel`: its triangles sampled at 48 kHz)
    # folds the sinc^2's tail back; the family's digital slit is that kernel's response
    # (within 1e-6 dB down to 80 dB of loss), the analogue slit 6.6 dB short at 10x the cutoff.
    cutoff = minus3db_hz("slit", 0, 3000.0)
    f = np.arange(1025) * BIN_HZ
    true_db = 20 * np.log10(np.maximum(lowpass_response("slit", 0, 3000.0, f), 1e-12))
    family_db = 10 * np.log10(np.exp(skirt_family(cutoff, BIN_HZ, 1025)))
    digital, analogue = (family_db[names().index(n)] for n in ("slit ±15 % digital", "slit ±15 %"))
    deep = true_db > -80.0
    assert np.abs(digital[deep] - true_db[deep]).max() < 0.01
    ten = int(round(10 * cutoff / BIN_HZ))
    assert true_db[ten] - analogue[ten] > 4.0, true_db[ten] - analogue[ten]  # measured 6.6 dB


def _first_pass(x: np.ndarray, cutoff: float):
    """The decision a file's first pass takes for (n,) audio at a cutoff the user set."""
    from reelrestore.engine.band import band_db
    from reelrestore.engine.cutoff import fixed_cut
    from reelrestore.engine.stft import StftPlan

    frames = x[: len(x) // 24000 * 24000].reshape(-1, 24000).astype(np.float32)
    return fixed_cut(band_db(StftPlan(2048, 512, 24000).forward(frames)), BIN_HZ, cutoff, len(x) / 48000)


@pytest.mark.parametrize("shape,order,design", [("slit", 0, 1000.0), ("slit", 0, 3000.0), ("butterworth", 4, 1000.0),
                                                ("butterworth", 2, 1000.0), ("butterworth", 8, 3000.0),
                                                ("slit", 0, 300.0)])
def test_a_slits_lobes_are_read_from_a_real_reel_and_no_butterworth_passes_for_one(shape, order, design):
    # Real speech with its hiss (-60 dBFS), cut together: where the cut is a slit, its lobes
    # and nulls show in the reel's long-term spectrum, in each half of it alike, and the
    # slit is read there (the software slit, within 2 dB of the cut as deep as it was read,
    # its -3 dB point within 3 %); a Butterworth's smooth skirt is never read as
    # one, nor a slit whose lobes lie as close as a voice's harmonics (300 Hz, -3 dB at 215 Hz).
    from reelrestore.engine.band import window_leakage
    from reelrestore.engine.stft import periodic_hann
    from reelrestore.training.degrade import lowpass

    reference = alsa_speech_with_hiss()
    cutoff = minus3db_hz(shape, order, design)
    decision = _first_pass(lowpass(reference, design, shape, order), cutoff)
    assert decision.hiss_db is not None  # the hiss went with the cut
    got = fit_lobes(cutoff, BIN_HZ, decision.halves_db, window_leakage(periodic_hann(2048), 1025))
    if shape == "butterworth" or cutoff < LOBES_MIN_HZ:
        assert got is None, got and got.name
        return
    assert got is not None and got.name == "slit ±15 % digital" and got.read_from == "its lobes"
    assert abs(got.minus3db_hz / cutoff - 1.0) < 0.03, got.minus3db_hz / cutoff
    f = np.arange(1025) * BIN_HZ
    true_db = 20 * np.log10(np.maximum(lowpass_response(shape, order, design, f), 1e-12))
    curve_db = 10 * np.log10(np.exp(got.curve))
    read = (f > cutoff) & (-curve_db <= got.depth_db)
    # measured: read 52.7 / 35.0 dB deep, within 0.0 / 1.6 dB (the second's -3 dB point 2 % high)
    assert got.depth_db > 30.0 and np.abs(curve_db[read] - true_db[read]).max() < 2.0, got.depth_db


def test_a_butterworth_falling_into_a_band_edge_is_not_read_as_a_slits_null(monkeypatch):
    # A transfer whose band ends in a brick wall (a codec's, a 16 kHz copy's) under a
    # Butterworth's skirt: the fall into the edge looks like a slit's first null, but the
    # reel's spectrum never rises again after it (`skirt._rises_after_null`). Real speech with
    # its hiss, a zero-phase Butterworth-2 made at 3 kHz, a brick wall at 7 kHz: no slit read;
    # without that check a pure sinc^2 is.
    from reelrestore.engine import skirt as skirt_module
    from reelrestore.engine.band import window_leakage
    from reelrestore.engine.stft import periodic_hann
    from reelrestore.training.degrade import lowpass

    reference = alsa_speech_with_hiss()
    cutoff = minus3db_hz("butterworth", 2, 3000.0)
    decision = _first_pass(lowpass(lowpass(reference, 3000.0, "butterworth", 2), 7000.0, "brickwall", 0), cutoff)
    leakage = window_leakage(periodic_hann(2048), 1025)
    assert fit_lobes(cutoff, BIN_HZ, decision.halves_db, leakage) is None
    monkeypatch.setattr(skirt_module, "_rises_after_null", lambda *args: True)
    misread = fit_lobes(cutoff, BIN_HZ, decision.halves_db, leakage)
    assert misread is not None and misread.name.startswith("slit"), misread


@pytest.mark.parametrize("design", [2000.0, 6000.0])
def test_a_floor_averaged_over_a_twelfth_of_an_octave_reads_a_steep_cut_where_it_lies(design):
    # The engine's floor is power-averaged over a twelfth of an octave about each bin
    # (`cutoff.SMOOTH_OCTAVES`); averaged so, a steep skirt is ruled by its loud side and
    # looks as if it fell later. The curves are averaged alike before they are compared: a
    # zero-phase Butterworth-8 is read at its -3 dB point (compared as they are, measured
    # 2 % and 3 % high).
    from reelrestore.engine.band import octave_smooth
    from reelrestore.engine.cutoff import SMOOTH_OCTAVES

    rng = np.random.default_rng(3)
    cutoff = minus3db_hz("butterworth", 8, design)
    f = np.arange(1025) * BIN_HZ
    power = np.maximum(lowpass_response("butterworth", 8, design, f) ** 2, 1e-12) * 10 ** rng.normal(0.0, 0.05, f.size)
    floor = 10 * np.log10(octave_smooth(1e-4 * power + 1e-12, SMOOTH_OCTAVES))  # a hiss at -40 dB through the cut
    alike = fit_floor(cutoff, BIN_HZ, floor, -40.0, smoothed=SMOOTH_OCTAVES)
    as_they_are = fit_floor(cutoff, BIN_HZ, floor, -40.0)
    assert abs(alike.minus3db_hz / cutoff - 1.0) < 0.005, alike.minus3db_hz / cutoff
    assert as_they_are.minus3db_hz / cutoff > 1.015, as_they_are.minus3db_hz / cutoff
