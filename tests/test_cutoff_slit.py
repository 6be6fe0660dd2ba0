"""An optical slit's cut is placed at its -3 dB point, not at its gentle shoulder nor past
its first null, also where its sidelobes hide the stop band; and a Butterworth skirt (no
null, no sidelobe) is never read as a slit."""

import numpy as np
import pytest
from scipy import signal

from reelrestore.engine.band import band_db
from reelrestore.engine.cutoff import find_cut
from reelrestore.engine.locator import CutoffLocator
from reelrestore.engine.stft import StftPlan
from reelrestore.training.degrade import lowpass_slit, minus3db_hz

SR, FRAME, BIN_HZ = 48000, 24000, 48000 / 2048
LOCATOR = CutoffLocator.load()  # the shipped one


def music_like(seconds: float, seed: int, db_per_octave: float = 12.0) -> np.ndarray:
    """Noise falling `db_per_octave` (as a music ceiling does, 6-12 dB/octave), its level
    changing every 0.25 s: (n,) float64 at 48 kHz."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    f = np.fft.rfftfreq(n, 1 / SR)
    x = np.fft.irfft(np.fft.rfft(rng.standard_normal(n)) / np.maximum(f, 50.0) ** (db_per_octave / 6.02), n)
    level = np.repeat(rng.uniform(0.2, 1.0, n // 12000 + 1), 12000)[:n]
    return 0.3 * x * level / np.max(np.abs(x))


def profiles(x: np.ndarray) -> np.ndarray:
    n = x.size // FRAME
    frames = x[: n * FRAME].reshape(n, FRAME).astype(np.float32)
    return band_db(StftPlan(2048, 512, FRAME).forward(frames))


@pytest.mark.parametrize("design_hz", [600.0, 1000.0, 2000.0])
def test_a_slit_cut_with_its_hiss_is_found_near_its_minus_3_db_point_not_at_its_shoulder(design_hz):
    x = music_like(8.0, 1)
    hiss = 10 ** (-90 / 20) * np.random.default_rng(4).standard_normal(x.size)
    decision = find_cut(profiles(lowpass_slit(x + hiss, design_hz)), BIN_HZ, LOCATOR)
    assert decision.hz is not None, decision.reason
    ratio = decision.hz / minus3db_hz("slit", 0, design_hz)
    assert 0.95 <= ratio <= 1.25, f"expected the estimate within 0.95-1.25x the -3 dB point, got {ratio:.2f}x"


@pytest.mark.parametrize("design_hz", [600.0, 1000.0, 2000.0, 3000.0])
def test_a_slit_whose_sidelobes_hide_the_stop_band_is_found_by_its_null(design_hz):
    # Music falling 9 dB/octave keeps the sidelobes (~28 dB down) above the cut hiss up
    # to the top: no stop band, yet the slit's null is there.
    x = music_like(8.0, 1, db_per_octave=9.0)
    hiss = 10 ** (-75 / 20) * np.random.default_rng(4).standard_normal(x.size)
    decision = find_cut(profiles(lowpass_slit(x + hiss, design_hz)), BIN_HZ, LOCATOR)
    assert decision.hz is not None, decision.reason
    ratio = decision.hz / minus3db_hz("slit", 0, design_hz)
    assert 0.95 <= ratio <= 1.25, f"expected the estimate within 0.95-1.25x the -3 dB point, got {ratio:.2f}x"


@pytest.mark.parametrize("design_hz", [600.0, 1000.0, 2000.0])
def test_a_butterworth_skirt_is_not_read_as_a_slit(design_hz):
    x = music_like(8.0, 1)
    hiss = 10 ** (-90 / 20) * np.random.default_rng(4).standard_normal(x.size)
    y = signal.sosfiltfilt(signal.butter(4, design_hz, fs=SR, output="sos"), x + hiss)
    decision = find_cut(profiles(y), BIN_HZ, LOCATOR)
    assert decision.hz is not None, decision.reason
    ratio = decision.hz / minus3db_hz("butterworth", 4, design_hz)
    # A null taken from a skirt would put the estimate near a third of the cutoff.
    assert 0.9 <= ratio <= 1.3, f"expected the estimate within 0.9-1.3x the -3 dB point, got {ratio:.2f}x"
