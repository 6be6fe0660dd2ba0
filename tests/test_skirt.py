"""The skirt curves the lift fits a reel's loss to (`engine/skirt.py`)."""

import numpy as np
import pytest

from reelrestore.engine.skirt import fit_floor, names, skirt_family
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
