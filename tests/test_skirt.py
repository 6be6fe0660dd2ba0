"""The skirt curves the lift fits a reel's loss to (`engine/skirt.py`)."""

import numpy as np
import pytest

from reelrestore.engine.skirt import names, skirt_family
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
