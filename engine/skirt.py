"""The shapes a cut's skirt may have: what the lift fits the reel's residue to.

Where the print's hiss went with the cut, everything the input holds above the cutoff is
the recording through the cut's own response |H(f)|^2. The lift gives it back by
1 / |H|, and how far |H| falls past the cutoff is what it must know. The model's band says
it bin by bin, with the model's errors of level; a loss of a reel is a smooth curve from a
small family, and it passes through -3 dB at the cutoff by the cutoff's definition. So the
lift fits the family to the model's word (`band._reel_gains`) and takes the curve's own
level from the cutoff, not from the model.

The family (`skirt_family`), each curve -3 dB at the cutoff:

* the optical slit: the reading and the recording slit each integrate the track over
  their width, sinc(f w / v) twice, a sinc^2 amplitude; a real slit's width tolerance and
  azimuth error average neighbouring widths and fill the nulls (widths ±0-45 %);
* low-pass filters of the Butterworth kind, |H|^2 = (1 + (f / f0)^(2n))^-p: an analogue
  or causal one (p = 1) and one run forward and back (p = 2, zero-phase), of orders
  n from 1 to 12.
"""

from __future__ import annotations

import numpy as np

# (p, n): power of the response and order of the Butterworth-kind curves.
BUTTERWORTH = tuple((p, n) for p in (1, 2) for n in (1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0))
# Relative spread of the slit's width (width tolerance and azimuth): 0 is a pure sinc^2.
SLIT_SPREADS = (0.0, 0.15, 0.3, 0.45)
MINUS3DB_AMPLITUDE = 10.0 ** (-3.0 / 20.0)


def names() -> list[str]:
    """One name per curve of `skirt_family`, in its order (for reports and tests)."""
    return ([f"butterworth{'-zero-phase' if p == 2 else ''} n{n:g}" for p, n in BUTTERWORTH]
            + [f"slit ±{int(round(100 * s))} %" for s in SLIT_SPREADS])


def _slit_amplitude(x: np.ndarray, spread: float) -> np.ndarray:
    """Amplitude of the slit whose nominal width is 1 / x at frequency·width product x."""
    widths = 1.0 + spread * np.linspace(-1.0, 1.0, 9)
    return np.mean(np.sinc(np.multiply.outer(np.asarray(x, dtype=np.float64), widths)) ** 2, axis=-1)


def _slit_width(spread: float) -> float:
    """f·w where the slit of this spread is -3 dB (bisection: the amplitude falls over (0, 1))."""
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if _slit_amplitude(np.array([mid]), spread)[0] > MINUS3DB_AMPLITUDE else (lo, mid)
    return 0.5 * (lo + hi)


# f·w where each slit is -3 dB: the same for every cutoff, worked out once.
_SLIT_WIDTHS = tuple(_slit_width(spread) for spread in SLIT_SPREADS)
N_CURVES = len(BUTTERWORTH) + len(SLIT_SPREADS)


def skirt_family(cutoff_hz: float, bin_hz: float, n_bins: int) -> np.ndarray:
    """ln |H(f)|^2 of every curve at the STFT's bins, (curves, n_bins) float64, each
    -3 dB at `cutoff_hz` (0 at DC; floored at -300, past any lift)."""
    f = np.arange(n_bins) * bin_hz / cutoff_hz  # in units of the cutoff
    out = np.empty((N_CURVES, n_bins))
    for i, (p, n) in enumerate(BUTTERWORTH):
        # (1 + (fc/f0)^(2n))^p = 10^0.3  ->  (fc/f0)^(2n) = 10^(0.3/p) - 1
        scale = (10.0 ** (0.3 / p) - 1.0) ** (1.0 / (2.0 * n))
        out[i] = -p * np.log1p((f * scale) ** (2.0 * n))
    for j, (spread, width) in enumerate(zip(SLIT_SPREADS, _SLIT_WIDTHS)):
        amplitude = _slit_amplitude(f * width, spread)
        out[len(BUTTERWORTH) + j] = 2.0 * np.log(np.maximum(amplitude, 1e-300))
    return np.maximum(out, -300.0)
