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
  n from 1 to 12;
* the same filters made digitally (a transfer low-passed in software, the bilinear
  transform, prewarped at the cutoff): f / f0 read as tan(pi f / fs) / tan(pi f0 / fs).
  Near the cutoff the two agree; further up the digital one falls faster (a zero-phase
  Butterworth-2 with its -3 dB point at 1.6 kHz: 65 dB against 74 dB down at 12.8 kHz),
  and a lift that follows the analogue curve there leaves the band 9 dB short.

**Where the reel shows its hiss** (`fit_floor`): a reel that swings like speech
(`cutoff.CutoffDecision.holds_hiss`, read over the whole file: `stream.StreamRestorer`'s
`_floor_curve`) falls silent between its words, and there its floor
under the cut is the print's hiss alone. The hiss is broadband and went through the cut
with the signal, so its floor above the cut is that level through |H|^2: the cut's loss,
read bin by bin from the recording itself, without the model. The family is fitted to it by
shape, and the lift then follows that curve as far as it lifts (`band.skirt_rules`). Over
music the floor under the cut is the programme's own quiet and falls with frequency as
music does: the floor then reads a steeper loss than the cut's, and the model's word rules
as before.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

# (p, n): power of the response and order of the Butterworth-kind curves.
BUTTERWORTH = tuple((p, n) for p in (1, 2) for n in (1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0))
# Relative spread of the slit's width (width tolerance and azimuth): 0 is a pure sinc^2.
SLIT_SPREADS = (0.0, 0.15, 0.3, 0.45)
MINUS3DB_AMPLITUDE = 10.0 ** (-3.0 / 20.0)
# `fit_floor` reads the floor above the cut where it stands at least FLOOR_OVER_BOTTOM_DB
# over the floor's own bottom there (5th percentile of its bins above the cut: the
# recording's noise floor, 16 or 24 bit, where the hiss's residue has sunk into it) and at
# most FLOOR_DEPTH_DB under the floor under the cut, and needs FLOOR_MIN_BINS such bins.
# Development sets (training part), hiss cut, 2.3, LSD above the cut, true cutoff / auto:
# speech 0.875 / 0.867 as before, 0.865 / 0.862 with the digital curves in the family,
# 0.753 / 0.736 with the floor's curve followed (STOI 0.9135 / 0.9135 -> 0.9155 / 0.9165);
# the music etc. set 0.832 / 0.861 -> 0.829 / 0.860 -> 0.820 / 0.850. Variants (the
# curve sought at `band.SKIRT_ANCHORS` only, speech): these bounds 0.752 / 0.751; read down
# to 30 dB 1.015 / 1.033 (the deep bins tell the shapes apart), to 70 dB 0.751 / 0.756;
# from 6 dB over the bottom to 90 dB 0.765 / 0.770. Read on every reel whose hiss went with
# the cut (music too), the music set 1.129 at the true cutoff: its floor is the programme's.
FLOOR_OVER_BOTTOM_DB, FLOOR_DEPTH_DB, FLOOR_MIN_BINS = 10.0, 50.0, 4


def names() -> list[str]:
    """One name per curve of `skirt_family`, in its order (for reports and tests)."""
    return ([f"butterworth{'-zero-phase' if p == 2 else ''} n{n:g}{kind}" for kind in ("", " digital")
             for p, n in BUTTERWORTH]
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
N_CURVES = 2 * len(BUTTERWORTH) + len(SLIT_SPREADS)


def skirt_family(cutoff_hz: float, bin_hz: float, n_bins: int) -> np.ndarray:
    """ln |H(f)|^2 of every curve at the STFT's bins (bins 0 .. n_bins - 1, the last at
    Nyquist), (curves, n_bins) float64, each -3 dB at `cutoff_hz` (0 at DC; floored at
    -300, past any lift)."""
    f = np.arange(n_bins) * bin_hz / cutoff_hz  # in units of the cutoff
    sample_rate = 2.0 * bin_hz * (n_bins - 1)
    warp = np.pi * np.minimum(np.arange(n_bins) * bin_hz / sample_rate, 0.4999)  # short of Nyquist's pole
    f_digital = np.tan(warp) / np.tan(np.pi * min(cutoff_hz / sample_rate, 0.4999))
    out = np.empty((N_CURVES, n_bins))
    for kind, ratio in enumerate((f, f_digital)):
        for i, (p, n) in enumerate(BUTTERWORTH):
            # (1 + (fc/f0)^(2n))^p = 10^0.3  ->  (fc/f0)^(2n) = 10^(0.3/p) - 1
            scale = (10.0 ** (0.3 / p) - 1.0) ** (1.0 / (2.0 * n))
            out[kind * len(BUTTERWORTH) + i] = -p * np.log1p((ratio * scale) ** (2.0 * n))
    for j, (spread, width) in enumerate(zip(SLIT_SPREADS, _SLIT_WIDTHS)):
        amplitude = _slit_amplitude(f * width, spread)
        out[2 * len(BUTTERWORTH) + j] = 2.0 * np.log(np.maximum(amplitude, 1e-300))
    return np.maximum(out, -300.0)


class FloorFit(NamedTuple):
    """The curve a reel's floor reads (`fit_floor`)."""

    curve: np.ndarray  # (bins,) ln |H|^2, as `skirt_family`'s rows
    name: str  # as `names()`
    minus3db_hz: float  # where the curve is -3 dB: the cutoff it reads


def fit_floor(cutoff_hz: float, bin_hz: float, floor_db: np.ndarray, under_db: float) -> FloorFit | None:
    """The curve of the family whose shape fits the loss the reel's floor shows:
    `floor_db` (bins,) its quietest moments per bin, `under_db` the floor under the cut
    (`CutoffDecision.hiss_db`), both dB of the engine's mean STFT power per bin. Read over
    the bins above `cutoff_hz` that stand clear of the floor's bottom (`FLOOR_OVER_BOTTOM_DB`)
    and at most `FLOOR_DEPTH_DB` down; each octave weighs the same, and the level is left
    free (the hiss need not be white to the dB). The curve's -3 dB point is sought too, from
    0.8 to 1.25x `cutoff_hz` in steps of 1 %: a cutoff read or given within a few per cent
    moves a steep curve's top by several dB. None where fewer than `FLOOR_MIN_BINS` bins can
    be read."""
    n_bins = floor_db.size
    cut_bin = int(cutoff_hz / bin_hz)
    if cut_bin + 1 >= n_bins:
        return None
    bottom = float(np.percentile(floor_db[cut_bin + 1 :], 5.0))
    loss = under_db - floor_db  # dB the floor lies under the floor under the cut
    k = np.arange(n_bins)
    read = (k > cut_bin) & (floor_db > bottom + FLOOR_OVER_BOTTOM_DB) & (loss < FLOOR_DEPTH_DB) & (loss > -20.0)
    if read.sum() < FLOOR_MIN_BINS:
        return None
    weight = 1.0 / k[read]
    weight /= weight.sum()
    anchors = 1.01 ** np.arange(np.ceil(np.log(0.8) / np.log(1.01)), np.log(1.25) / np.log(1.01) + 1e-9)
    best, best_cost = None, np.inf
    for anchor in anchors:
        family = skirt_family(cutoff_hz * anchor, bin_hz, n_bins)
        miss = loss[read] - np.minimum(-family[:, read] * (10.0 / np.log(10.0)), FLOOR_DEPTH_DB)
        cost = np.sum(weight * miss**2, axis=-1) - np.sum(weight * miss, axis=-1) ** 2  # the spread about the mean
        j = int(np.argmin(cost))
        if cost[j] < best_cost:
            best, best_cost = (family[j], j, cutoff_hz * anchor), cost[j]
    curve, j, hz = best
    return FloorFit(curve, names()[j], float(hz))
