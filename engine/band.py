"""Band merge: the recording stays, the model's band is added above the cutoff.

The surviving band is the recording itself: below the cutoff the engine outputs the input
spectrum untouched. Above it the model's band is faded in over a few bins and *added* to
what the input holds there, never painted over it (see `merge`). Where the cutoff is:
`cutoff.py`.
"""

from __future__ import annotations

import numba
import numpy as np

# Power below this is digital silence and says nothing about the cutoff.
SILENCE_DB = -120.0
# Bins over which the merge compares the input's power with the model's (9 bins = 211 Hz
# at 48 kHz): wide enough that one bin's random level does not decide, narrow enough to
# follow the hiss's tilt and the model's envelope.
MERGE_BAND_BINS = 9
# dB per octave the added band may fall at most and must fall at least (see
# `added_band_limit`): music above 1 kHz falls at least 6 dB/octave; steeper than 24 the
# octave under the cut is a filter skirt, not the recording.
LIMIT_SLOPE_DB = (-24.0, -6.0)


def merge_gains(cutoff_bins: np.ndarray, n_bins: int, fade_bins: int) -> np.ndarray:
    """Weight of the input spectrum per row and bin: 1 up to the cutoff bin, then a
    raised-cosine fade to 0 over `fade_bins` bins. Models keep their input's band with the
    same curve (`reelrestore.models.spectral.keep_gains`; tests/test_spectral_parity.py).

    cutoff_bins: (B,) float — last bin kept from the input, per row
    returns:     (B, n_bins) float32
    """
    k = np.arange(n_bins)[None, :] - np.asarray(cutoff_bins, dtype=np.float64)[:, None]
    ramp = np.clip(k / max(fade_bins, 1), 0.0, 1.0)
    return (0.5 + 0.5 * np.cos(np.pi * ramp)).astype(np.float32)


def added_band_limit(dry: np.ndarray, cutoff_bins: np.ndarray, hiss_db: np.ndarray) -> np.ndarray:
    """The loudest band the engine lets a model add above the cutoff, per row and bin.

    A model's band is a guess; on real recordings an over-loud guess is worse than the
    untouched input. The limit continues the recording's own spectrum: the level of the
    quarter octave under the cutoff, falling as steeply as the octave under it falls
    (least squares on log frequency), at least `LIMIT_SLOPE_DB[1]` and at most
    `LIMIT_SLOPE_DB[0]` dB per octave; and never below the print's hiss where the cut took
    it away (`hiss_db`, from `cutoff.CutoffDecision`; -inf where the input kept its floor).

    dry: (B, 2, bins, T); cutoff_bins, hiss_db: (B,) -> (B, bins) mean STFT power per bin
    """
    out = np.empty((dry.shape[0], dry.shape[2]))
    _limit_kernel(dry, np.asarray(cutoff_bins, dtype=np.float64), np.asarray(hiss_db, dtype=np.float64),
                  LIMIT_SLOPE_DB[0], LIMIT_SLOPE_DB[1], out)
    return out


@numba.njit(cache=True, nogil=True)
def _limit_kernel(dry, cutoff_bins, hiss_db, steepest, gentlest, out):  # pragma: no cover  (compiled)
    """`added_band_limit` row by row: out (B, bins) = the limit's power, inf where none."""
    n_rows, _, n_bins, n_frames = dry.shape
    db = np.empty(n_bins)
    for b in range(n_rows):
        for k in range(n_bins):  # mean power over the frame, in dB
            acc = 0.0
            for t in range(n_frames):
                acc += dry[b, 0, k, t] * dry[b, 0, k, t] + dry[b, 1, k, t] * dry[b, 1, k, t]
            db[k] = 10.0 * np.log10(acc / n_frames + 1e-30)
        cut = cutoff_bins[b]
        out[b, :] = np.inf
        # the octave under the cutoff, x = log2(bin / cutoff): a least-squares slope on it
        n, sum_x, sum_y = 0, 0.0, 0.0
        for k in range(1, n_bins):
            if 2 * k > cut and k <= cut:
                n += 1
                sum_x += np.log2(k / cut)
                sum_y += db[k]
        if n == 0:
            continue  # a cutoff under two bins: nothing to continue
        x_mean, y_mean = sum_x / n, sum_y / n
        cov, var, n_top, sum_top = 0.0, 0.0, 0, 0.0
        for k in range(1, n_bins):
            if 2 * k > cut and k <= cut:
                x = np.log2(k / cut)
                cov += (x - x_mean) * (db[k] - y_mean)
                var += (x - x_mean) ** 2
                if x > -0.25:  # the quarter octave under the cutoff: the level to continue
                    n_top += 1
                    sum_top += db[k]
        slope = cov / var if n >= 2 and var > 0.0 else gentlest
        slope = min(max(slope, steepest), gentlest)
        level = sum_top / n_top if n_top else db[min(max(int(np.floor(cut)), 1), n_bins - 1)]
        for k in range(1, n_bins):
            if k > cut:
                out[b, k] = 10.0 ** (max(level + slope * np.log2(k / cut), hiss_db[b]) / 10.0)


def merge(dry: np.ndarray, wet: np.ndarray, keep: np.ndarray, mix: float,
          limit: np.ndarray | None = None, band_bins: int = MERGE_BAND_BINS,
          columns: slice = slice(None)) -> np.ndarray:
    """Add the model's band to the recording; never paint over what the recording holds.

        out = dry + mix · (1 - keep) · g · wet,   g = sqrt(max(0, 1 - P_dry / P_wet))

    with P the power of each STFT frame averaged over `band_bins` neighbouring bins.
    Below the cutoff (keep = 1) the output is the input. Above it, what the input holds
    there (the print's hiss, residue of the signal) stays, and the model only adds the
    power it finds missing: where the input is silent the model's band comes in whole,
    where the input is already as loud as the model's estimate nothing is added. A
    model that returns the input above the cutoff therefore changes nothing. With
    `limit` ((B, bins) power, from `added_band_limit`), the model's band is first scaled
    down per bin wherever its mean power over the frame exceeds the limit.
    In place on `wet`.

    dry, wet: (B, 2, bins, T); keep: (B, bins) from `merge_gains`; mix in [0, 1].
    With `columns`, only those STFT frames are merged and returned (the limit still
    weighs the model's band over the whole frame).
    """
    n_rows, _, n_bins, n_frames = wet.shape
    lo, hi, step = columns.indices(n_frames)
    if step != 1:
        raise ValueError("merge: expected a contiguous range of columns")
    if limit is None:
        limit = np.full((n_rows, n_bins), np.inf)
    _merge_kernel(dry, wet, keep, float(mix), limit, band_bins // 2, lo, hi)
    return wet[..., lo:hi]


@numba.njit(cache=True, nogil=True)
def _merge_kernel(dry, wet, keep, mix, limit, half, lo, hi):  # pragma: no cover  (compiled)
    """`merge` in one pass per row, in place on wet[..., lo:hi]. The missing-power gain is
    sqrt(max(0, 1 - P_dry / P_wet)), both powers summed over bins k - half .. k + half
    (fewer at the edges), the model's after the limit's scale."""
    n_rows, _, n_bins, n_frames = wet.shape
    n_cols = hi - lo
    p_dry = np.empty((n_bins, n_cols))
    p_wet = np.empty((n_bins, n_cols))
    sum_dry = np.empty(n_cols)
    sum_wet = np.empty(n_cols)
    scale = np.empty(n_bins)
    for b in range(n_rows):
        for k in range(n_bins):  # the limit weighs the model's band over all its columns
            acc = 0.0
            for t in range(n_frames):
                acc += wet[b, 0, k, t] * wet[b, 0, k, t] + wet[b, 1, k, t] * wet[b, 1, k, t]
            scale[k] = np.sqrt(min(1.0, limit[b, k] / max(acc / n_frames, 1e-30)))
            for t in range(n_cols):  # rows of contiguous columns: the inner loops vectorise
                re, im = wet[b, 0, k, lo + t] * scale[k], wet[b, 1, k, lo + t] * scale[k]
                p_wet[k, t] = re * re + im * im
                # the same arithmetic (float64) for both: a model that returns the input adds nothing
                re, im = np.float64(dry[b, 0, k, lo + t]), np.float64(dry[b, 1, k, lo + t])
                p_dry[k, t] = re * re + im * im
        sum_dry[:] = 0.0
        sum_wet[:] = 0.0
        first, stop = 0, 0  # bins [first, stop) are in the running sums
        for k in range(n_bins):
            while stop < min(k + half + 1, n_bins):
                sum_dry += p_dry[stop]
                sum_wet += p_wet[stop]
                stop += 1
            while first < k - half:
                sum_dry -= p_dry[first]
                sum_wet -= p_wet[first]
                first += 1
            weight = mix * (1.0 - keep[b, k]) * scale[k]
            for t in range(n_cols):
                missing = 1.0 - sum_dry[t] / sum_wet[t] if sum_wet[t] > 1e-30 else 0.0
                gain = weight * np.sqrt(min(missing, 1.0)) if missing > 0.0 else 0.0
                for part in range(2):
                    wet[b, part, k, lo + t] = dry[b, part, k, lo + t] + gain * wet[b, part, k, lo + t]


def power_mean_db(db: np.ndarray, axis: int | None = None) -> np.ndarray | float:
    """The mean power of levels in dB, in dB (over `axis`, or all of them: a float)."""
    out = 10.0 * np.log10(np.mean(10.0 ** (np.asarray(db, dtype=np.float64) / 10.0), axis=axis) + 1e-30)
    return float(out) if axis is None else out


def band_db(spectrum: np.ndarray) -> np.ndarray:
    """Median-over-time power in dB per bin, robust to clicks. (B, 2, bins, T) -> (B, bins)."""
    power = spectrum[:, 0] ** 2 + spectrum[:, 1] ** 2  # (B, bins, T)
    return 10.0 * np.log10(np.maximum(_median(power), 1e-30))


def _median(x: np.ndarray) -> np.ndarray:
    """Median over the last axis by partial sort (np.median sorts: 6x slower here)."""
    n = x.shape[-1]
    upper = np.partition(x, n // 2, axis=-1)[..., n // 2]
    if n % 2:
        return upper
    return 0.5 * (upper + np.partition(x, n // 2 - 1, axis=-1)[..., n // 2 - 1])


