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
`_read_skirt`) falls silent between its words, and there its floor
under the cut is the print's hiss alone. The hiss is broadband and went through the cut
with the signal, so its floor above the cut is that level through |H|^2: the cut's loss,
read bin by bin from the recording itself, without the model. The family is fitted to it by
shape, and the lift then follows that curve as far as it lifts (`band.skirt_rules`). Over
music the floor under the cut is the programme's own quiet and falls with frequency as
music does: the floor then reads a steeper loss than the cut's, and the model's word rules
as before.

**Where the reel shows a slit's lobes** (`fit_lobes`): an optical slit's response is not a
smooth fall but lobes and nulls, at multiples of 1 / (its width), about 2.3x its -3 dB point
apart. Where the hiss went with the cut, the residue above the cut is the recording through
that response, and the reel's long-term spectrum carries the nulls: the programme's own
spectrum is smooth over a lobe's width, the lobes are fixed in frequency while the
programme moves. So the family is fitted to the reel's mean spectrum above the cut with a
smooth term beside it (a quadratic in log frequency: the programme's tilt); where a slit
explains it clearly better than any Butterworth, in the reel's first half and its second
alike, at the same -3 dB point, that slit is the cut's curve and the lift follows it.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .band import octave_smooth

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
# The curve so read is followed as deep as the lift goes (`band.skirt_rules`' free depth): the
# floor sank into the recording's own bottom (its 16- or 24-bit floor) only because the
# loss went on. Not where a hiss added after the cut (a later print's grain over a lost hiss,
# `cutoff.later_floor`) ended the reading (`fit_floor`'s `later`): what the curve does under
# it was not seen, and there it is followed as deep as it was read, then held to the model's
# word. A speech item of the speakers kept for evaluation, a source with its own noise floor
# cut by a Butterworth-2 at 3.6 kHz over a hiss 26 dB under it: its floor fell into that hiss
# within a third of an octave, read as a Butterworth-12, and followed 96 dB deep it raised the
# residue 50-70 dB over the reference (LSD above the cut 0.94 in the input, 4.68 restored;
# 1.28 so).
# Followed only as deep as read on every reel, the speech development set with the hiss cut
# lost 0.737 / 0.719 -> 0.760 / 0.745 (true / auto); on every reel whose floor's bottom above
# the cut lies within 45 dB of the floor under it, 0.746 / 0.733 (slits at 4.5-6 kHz, whose
# sidelobes stay that high, read so).


def names() -> list[str]:
    """One name per curve of `skirt_family`, in its order (for reports and tests)."""
    return ([f"butterworth{'-zero-phase' if p == 2 else ''} n{n:g}{kind}" for kind in ("", " digital")
             for p, n in BUTTERWORTH]
            + [f"slit ±{int(round(100 * s))} %{kind}" for kind in ("", " digital") for s in SLIT_SPREADS])


def _widths(spread: float) -> np.ndarray:
    """The slit's widths relative to its nominal one: nine, evenly over ±spread."""
    return 1.0 + spread * np.linspace(-1.0, 1.0, 9)


def _slit_amplitude(x: np.ndarray, spread: float) -> np.ndarray:
    """Amplitude of the slit at x = f·w (w its nominal width): each width's sinc^2 (the
    triangle of a reading and a recording slit), weighted by the light it passes (its width)."""
    widths = _widths(spread)
    return np.mean(widths * np.sinc(np.multiply.outer(np.asarray(x, dtype=np.float64), widths)) ** 2, axis=-1)


def _slit_width(spread: float) -> float:
    """f·w where the slit of this spread is -3 dB (bisection: the amplitude falls over (0, 1))."""
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if _slit_amplitude(np.array([mid]), spread)[0] > MINUS3DB_AMPLITUDE else (lo, mid)
    return 0.5 * (lo + hi)


def _triangle_dtft(omega: np.ndarray, half: np.ndarray) -> np.ndarray:
    """sum over integers |t| < half of (1 - |t| / half) cos(omega t): a triangle of (not
    necessarily whole) half-width `half` samples, sampled, at angular frequencies `omega`
    (0 < omega <= pi; broadcast together). In closed form: the sum of cos(omega t) and of
    t cos(omega t) over t = 1..N."""
    n = np.ceil(half) - 1.0
    cosines = 0.5 * (np.sin((n + 0.5) * omega) / np.sin(0.5 * omega) - 1.0)
    ramp = ((n + 1.0) * np.cos(n * omega) - n * np.cos((n + 1.0) * omega) - 1.0) / (2.0 * (1.0 - np.cos(omega)))
    return 1.0 + 2.0 * cosines - 2.0 * ramp / half


def _digital_slit_amplitude(omega: np.ndarray, half: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """|H| of slits made in software (each `half`, `spread` broadcast against `omega`):
    each width's triangle sampled (nominal half-width `half` samples), the triangles summed
    as they pass light and the whole scaled to a DC gain of 1. Sampling folds the sinc^2's
    tail back (aliasing): at 10x a 2.15 kHz slit's -3 dB point, 48 kHz, it lies 7 dB over the
    analogue curve."""
    halves = np.asarray(half, dtype=np.float64)[..., None] * (
        1.0 + np.asarray(spread, dtype=np.float64)[..., None] * np.linspace(-1.0, 1.0, 9))  # as `_widths`
    whole = np.ceil(halves) - 1.0
    dc = np.sum(2.0 * whole + 1.0 - whole * (whole + 1.0) / halves, axis=-1)
    return np.abs(np.sum(_triangle_dtft(np.asarray(omega, dtype=np.float64)[..., None], halves), axis=-1) / dc)


def _digital_slit_halves(omega: float) -> np.ndarray:
    """Per spread of `SLIT_SPREADS`, the nominal half-width (samples) at which the sampled
    slit is -3 dB at `omega` (0 < omega < pi): near the analogue one, sought by bisection."""
    guess = np.array(_SLIT_WIDTHS) * 2.0 * np.pi / omega  # sampling moves it by a few per cent at most
    lo, hi, spreads = 0.8 * guess, 1.25 * guess, np.array(SLIT_SPREADS)
    for _ in range(24):
        mid = 0.5 * (lo + hi)
        above = _digital_slit_amplitude(np.full(mid.shape, omega), mid, spreads) > MINUS3DB_AMPLITUDE
        lo, hi = np.where(above, mid, lo), np.where(above, hi, mid)
    return 0.5 * (lo + hi)


# f·w where each slit is -3 dB: the same for every cutoff, worked out once.
_SLIT_WIDTHS = tuple(_slit_width(spread) for spread in SLIT_SPREADS)
N_CURVES = 2 * len(BUTTERWORTH) + 2 * len(SLIT_SPREADS)


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
    omega = np.pi * np.arange(n_bins) / (n_bins - 1)  # angular frequency at each bin, per sample
    halves = _digital_slit_halves(np.pi * min(2.0 * cutoff_hz / sample_rate, 0.999))
    for j, (spread, width) in enumerate(zip(SLIT_SPREADS, _SLIT_WIDTHS)):
        analogue = _slit_amplitude(f * width, spread)
        digital = np.ones(n_bins)
        digital[1:] = _digital_slit_amplitude(omega[1:], halves[j], spread)
        out[2 * len(BUTTERWORTH) + j] = 2.0 * np.log(np.maximum(analogue, 1e-300))
        out[2 * len(BUTTERWORTH) + len(SLIT_SPREADS) + j] = 2.0 * np.log(np.maximum(digital, 1e-300))
    return np.maximum(out, -300.0)


def _search_anchors(cutoff_hz: float, low: float = 0.8, high: float = 1.25) -> np.ndarray:
    """-3 dB points from `low` to `high` times the cutoff in steps of 1 %."""
    return cutoff_hz * 1.01 ** np.arange(np.ceil(np.log(low) / np.log(1.01)), np.log(high) / np.log(1.01) + 1e-9)


def sought_families(cutoff_hz: float, bin_hz: float, n_bins: int) -> list[tuple[float, np.ndarray]]:
    """(-3 dB point, `skirt_family` there) at each point `fit_floor` and `fit_lobes` seek, from
    0.8 to 1.25x `cutoff_hz` in steps of 1 %: worked out once where a reel is read both ways."""
    return [(float(hz), skirt_family(hz, bin_hz, n_bins)) for hz in _search_anchors(cutoff_hz)]


class SkirtFit(NamedTuple):
    """The curve a reel's own spectrum reads (`fit_floor`, `fit_lobes`)."""

    curve: np.ndarray  # (bins,) ln |H|^2, as `skirt_family`'s rows
    name: str  # as `names()`
    minus3db_hz: float  # where the curve is -3 dB: the cutoff it reads
    read_from: str  # what showed it: "the hiss" (`fit_floor`) or "its lobes" (`fit_lobes`)
    # how far down the curve the reel read it: the lift follows it that deep, and further down
    # holds it to the model's word (`band.skirt_rules`)
    depth_db: float


def fit_floor(cutoff_hz: float, bin_hz: float, floor_db: np.ndarray, under_db: float,
              families: list[tuple[float, np.ndarray]] | None = None, later: bool = False,
              smoothed: float = 0.0) -> SkirtFit | None:
    """The curve of the family whose shape fits the loss the reel's floor shows:
    `floor_db` (bins,) its quietest moments per bin, `under_db` the floor under the cut
    (`CutoffDecision.hiss_db`), both dB of the engine's mean STFT power per bin. Read over
    the bins above `cutoff_hz` that stand clear of the floor's bottom (`FLOOR_OVER_BOTTOM_DB`)
    and at most `FLOOR_DEPTH_DB` down; each octave weighs the same, and the level is left
    free (the hiss need not be white to the dB). The curve's -3 dB point is sought too, from
    0.8 to 1.25x `cutoff_hz` in steps of 1 %: a cutoff read or given within a few per cent
    moves a steep curve's top by several dB (`families`: `sought_families` for this cutoff,
    worked out here when None; `later`: a hiss added after the cut left a floor above it, and
    the curve is followed only as deep as read; `smoothed`: the octaves over which `floor_db`
    was power-averaged about each bin, `cutoff.SMOOTH_OCTAVES` for the engine's floor). The
    curves are averaged alike before they are compared: such an average of a steep skirt is
    ruled by its loud side, and compared with the curves as they are, the floor read the
    cut's -3 dB point high (Butterworths of the development sets read from their hiss, hiss
    cut, true cutoff: median 1.03x, 10th-90th percentile 1.00-1.04x; averaged alike 1.00x,
    0.98-1.01x). The curve returned is the family's own. None where fewer than
    `FLOOR_MIN_BINS` bins can be read."""
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
    best, best_cost = None, np.inf
    for hz, family in sought_families(cutoff_hz, bin_hz, n_bins) if families is None else families:
        seen = np.log(octave_smooth(np.exp(family), smoothed) + 1e-30) if smoothed > 0.0 else family
        miss = loss[read] - np.minimum(-seen[:, read] * (10.0 / np.log(10.0)), FLOOR_DEPTH_DB)
        cost = np.sum(weight * miss**2, axis=-1) - np.sum(weight * miss, axis=-1) ** 2  # the spread about the mean
        j = int(np.argmin(cost))
        if cost[j] < best_cost:
            best, best_cost = (family[j], j, hz), cost[j]
    curve, j, hz = best
    # followed all the way where the floor sank to the recording's own bottom; where it ended on
    # a later hiss's floor, only as deep as it was read (see above `names`)
    return SkirtFit(curve, names()[j], float(hz), "the hiss", float(np.max(loss[read])) if later else np.inf)


# `fit_lobes` reads a slit only from cutoffs of LOBES_MIN_HZ up: under it the lobes lie less
# than 2.3 x 250 = 575 Hz apart, as a voice's harmonics may, and a steady pitch's comb in a
# reel's mean spectrum can pass for them (a speech item of the development set cut by a
# Butterworth-4, -3 dB at 134 Hz, read as a slit, 1.4-1.5x better, in both halves). From
# 200 Hz, the development sets' slits made at 300 Hz (-3 dB at 215 Hz) were read too, and
# the music etc. set's hiss-cut items gained (0.786 -> 0.776), but two of its hiss-kept ones
# whose kept hiss the cutoff took for lost were raised with their hiss (+0.30, +0.47).
# The bins read stand LOBES_OVER_DB over the reel's own bottom above the cut (the 5th
# percentile there) and over what the analysis window leaks from the band under the cut
# (a Hann window's sidelobes fall 18 dB per octave and, under a loud band, hide a steep
# skirt: read there, four Butterworth items cut at 150 Hz fitted a slit twice as well).
# A slit is read where its fit's spread about the smooth term is LOBES_GAIN times smaller
# than the best Butterworth's over the whole reel and LOBES_HALF_GAIN times in each half,
# each half's -3 dB point within LOBES_AGREE of the whole's. Development sets (training
# part, hiss cut, true cutoff; 48 slits with their -3 dB point at 250 Hz-5.7 kHz, 181
# Butterworths): 25 slits read (their -3 dB point within 0.96-1.04x), no Butterworth; most
# of the slits not read are cut at 4.5-8 kHz, where no null lies under the band's end. In
# the prototype (before the check below), gains of 1.2 and 1.1 let one Butterworth through.
LOBES_MIN_HZ = 250.0
LOBES_OVER_DB = 10.0
LOBES_GAIN, LOBES_HALF_GAIN, LOBES_AGREE = 1.3, 1.2, 0.05
LOBES_DEGREE = 2  # the smooth term: a polynomial in log frequency of this degree
LOBES_MIN_BINS = 8
# And the reel's spectrum, the smooth term taken off, must rise again after the slit's first
# null by LOBES_RISE_DB (`_rises_after_null`): a Butterworth's fall into a band's own end (a
# codec's or a resampler's brick wall) passes for a null otherwise. Development set built with
# brick walls at 5-12 kHz (`realset --development realset/ --extra --codec-edge 5000 12000`,
# hiss cut, true cutoff): 1 of its 134 Butterworths read as a slit without it (LSD above the
# cut 0.802, 0.296 with the check), none with it; 12 of its 35 slits read with it. Where a
# null is read, the rise after it is 8 dB or more on every slit of the development sets, 0.5
# dB on that Butterworth. Real speech (alsa-utils) cut by a Butterworth-2 at 2-3 kHz and a
# brick wall at 5-9 kHz (25 cases): read as a slit in 6 without it, in none with it.
LOBES_RISE_DB = 3.0
_SLIT_ROWS = np.arange(2 * len(BUTTERWORTH), N_CURVES)
_OTHER_ROWS = np.arange(2 * len(BUTTERWORTH))


class _LobeRead(NamedTuple):
    gain: float  # the best Butterworth's spread over the best slit's
    row: int  # the slit's row in `skirt_family`
    hz: float  # its -3 dB point
    bins: np.ndarray  # the bins read


def _lobe_bins(cutoff_hz: float, bin_hz: float, mean_db: np.ndarray, leakage: np.ndarray) -> np.ndarray | None:
    """The bins of `mean_db` above the cut that `fit_lobes` reads (clear of the reel's bottom
    there and of the window's leakage from under the cut, `LOBES_OVER_DB`), or None where
    fewer than `LOBES_MIN_BINS`."""
    n_bins = mean_db.size
    cut = int(cutoff_hz / bin_hz)
    level = np.nan_to_num(mean_db, nan=-300.0)
    above = (np.arange(n_bins) > cut) & np.isfinite(mean_db)
    if cut < 1 or above.sum() < LOBES_MIN_BINS:
        return None
    leak_db = 10.0 * np.log10(np.convolve(10.0 ** (level[:cut] / 10.0), leakage)[:n_bins] + 1e-30)
    read = np.flatnonzero(above & (level > np.maximum(np.percentile(mean_db[above], 5.0), leak_db) + LOBES_OVER_DB))
    return read if read.size >= LOBES_MIN_BINS else None


def _read_lobes(cutoff_hz: float, bin_hz: float, spectra: np.ndarray, leakage: np.ndarray,
                families: list[tuple[float, np.ndarray]] | None) -> list[_LobeRead | None]:
    """Per row of `spectra` (rows, bins) dB: the slit and the Butterworth that best fit it
    above the cut, each beside a smooth term; None where too few bins can be read. The
    family is worked out once per -3 dB point sought, for every row."""
    n_bins = spectra.shape[1]
    rows = []  # per spectrum: (bins read, their levels, the weights' square roots, the smooth term's basis)
    for mean_db in spectra:
        bins = _lobe_bins(cutoff_hz, bin_hz, mean_db, leakage)
        if bins is None:
            rows.append(None)
            continue
        root_weight = np.sqrt(1.0 / bins / np.sum(1.0 / bins))  # each octave weighs the same
        octaves = np.log2(bins * bin_hz / cutoff_hz)
        basis, _ = np.linalg.qr(np.stack([octaves**d for d in range(LOBES_DEGREE + 1)], axis=1) * root_weight[:, None])
        rows.append((bins, mean_db[bins], root_weight, basis))
    best = [{"slit": (np.inf, -1, 0.0), "other": (np.inf, -1, 0.0)} for _ in rows]
    if all(r is None for r in rows):
        return [None] * len(rows)
    for hz, family in sought_families(cutoff_hz, bin_hz, n_bins) if families is None else families:
        family_db = np.maximum(family * (10.0 / np.log(10.0)), -200.0)
        for row, found in zip(rows, best):
            if row is None:
                continue
            bins, y, root_weight, basis = row
            miss = (y - family_db[:, bins]) * root_weight
            miss -= (miss @ basis) @ basis.T  # what the smooth term cannot take up
            cost = np.sum(miss**2, axis=1)
            for group, members in (("slit", _SLIT_ROWS), ("other", _OTHER_ROWS)):
                j = int(members[np.argmin(cost[members])])
                if cost[j] < found[group][0]:
                    found[group] = (float(cost[j]), j, float(hz))
    return [None if row is None else _LobeRead(found["other"][0] / max(found["slit"][0], 1e-12), found["slit"][1],
                                               found["slit"][2], row[0])
            for row, found in zip(rows, best)]


def _rises_after_null(cutoff_hz: float, bin_hz: float, curve: np.ndarray, mean_db: np.ndarray,
                      bins: np.ndarray) -> bool:
    """Whether the reel's `mean_db` read at `bins`, the smooth term beside the slit's `curve`
    (ln |H|^2) taken off, rises again after the curve's first null above the cut: by
    `LOBES_RISE_DB` from the bins read within 3 % of the null to the loudest read 1.1-1.6x
    above it (the next lobe's peak lies 1.4-1.5x above the null); where none is read at the
    null, read again after it. A band's own end (a codec's brick wall, a resampler's) falls
    and stays down."""
    cut = int(cutoff_hz / bin_hz)
    rising = np.flatnonzero(np.diff(curve[cut:]) > 0.0)
    if rising.size == 0:
        return False
    null = cut + rising[0]
    at_null, after = np.abs(bins - null) <= max(2.0, 0.03 * null), (bins > 1.1 * null) & (bins <= 1.6 * null)
    if not after.any():
        return False  # nothing read past it: a fall, not a null
    if not at_null.any():
        return True  # the null sinks under what is read, and the reel comes back after it
    root_weight = np.sqrt(1.0 / bins)
    octaves = np.log2(bins * bin_hz / cutoff_hz)
    smooth = np.stack([octaves**d for d in range(LOBES_DEGREE + 1)], axis=1)
    y = mean_db[bins]
    coef, *_ = np.linalg.lstsq(smooth * root_weight[:, None], (y - curve[bins] * (10.0 / np.log(10.0))) * root_weight,
                               rcond=None)
    lobes = y - smooth @ coef  # the reel's spectrum without the programme's tilt
    return float(lobes[after].max() - np.median(lobes[at_null])) >= LOBES_RISE_DB


def fit_lobes(cutoff_hz: float, bin_hz: float, halves_db: np.ndarray, leakage: np.ndarray,
              families: list[tuple[float, np.ndarray]] | None = None) -> SkirtFit | None:
    """The slit whose lobes the reel's long-term spectrum shows above `cutoff_hz`, or None.
    halves_db: (2, bins) the reel's mean power per bin (dB) over the first and the second
    half of its frames, NaN where not read (past a codec's edge); leakage: (bins,) the
    analysis window's (`band.window_leakage`). A slit is read where it fits the whole reel
    `LOBES_GAIN` times better than any Butterworth, each half `LOBES_HALF_GAIN` times, at
    the same -3 dB point (`LOBES_AGREE`), searched from 0.8 to 1.25x `cutoff_hz` in 1 %
    steps (`families`: `sought_families`, worked out here when None); never under
    `LOBES_MIN_HZ`."""
    if cutoff_hz < LOBES_MIN_HZ:
        return None
    halves_db = np.asarray(halves_db, dtype=np.float64)
    with np.errstate(invalid="ignore"):  # NaN bins stay NaN
        whole = 10.0 * np.log10(np.mean(10.0 ** (halves_db / 10.0), axis=0))
    got, *parts = _read_lobes(cutoff_hz, bin_hz, np.vstack([whole[None], halves_db]), leakage, families)
    if got is None or got.gain < LOBES_GAIN:
        return None
    for part in parts:
        if part is None or part.gain < LOBES_HALF_GAIN or abs(part.hz / got.hz - 1.0) > LOBES_AGREE:
            return None
    curve = skirt_family(got.hz, bin_hz, halves_db.shape[1])[got.row]
    if not _rises_after_null(got.hz, bin_hz, curve, whole, got.bins):
        return None  # a fall with no rise after it: a band's own end (a codec's, say), not a null
    # followed as deep as the bins read reach: under them lies the recording's own floor, or a
    # hiss the cutoff took for the cut's, and a null raised to 96 dB there would raise that
    return SkirtFit(curve, names()[got.row], got.hz, "its lobes", float(-curve[got.bins].min() * 10.0 / np.log(10.0)))
