"""Band merge and cutoff estimation.

The surviving band is the recording itself: below the cutoff the engine outputs the input
spectrum untouched and only above it does the model's spectrum come in, faded in over a
few bins *above* the cutoff so the kept band is never altered.
"""

from __future__ import annotations

import numpy as np

# A cut is a cliff: the band above it sits at least this far below the band under it.
# 25 dB finds cuts in music over hiss without flagging a hissy, uncut recording.
MIN_DROP_DB = 25.0
# Width of the bands compared on either side of a candidate cutoff bin.
EDGE_BINS = 16
# Power below this is digital silence and says nothing about the cutoff.
SILENCE_DB = -120.0


def merge_gains(cutoff_bins: np.ndarray, n_bins: int, fade_bins: int) -> np.ndarray:
    """Weight of the input spectrum per row and bin: 1 up to the cutoff bin, then a
    raised-cosine fade to 0 over `fade_bins` bins.

    cutoff_bins: (B,) float — last bin kept from the input, per row
    returns:     (B, n_bins) float32
    """
    k = np.arange(n_bins)[None, :] - np.asarray(cutoff_bins, dtype=np.float64)[:, None]
    ramp = np.clip(k / max(fade_bins, 1), 0.0, 1.0)
    return (0.5 + 0.5 * np.cos(np.pi * ramp)).astype(np.float32)


def merge(dry: np.ndarray, wet: np.ndarray, keep: np.ndarray, mix: float) -> np.ndarray:
    """out = dry + mix * (1 - keep) * (wet - dry), in place on `wet`.

    dry, wet: (B, 2, bins, T); keep: (B, bins) from `merge_gains`; mix in [0, 1].
    """
    weight = (mix * (1.0 - keep))[:, None, :, None]  # (B, 1, bins, 1)
    wet -= dry
    wet *= weight
    wet += dry
    return wet


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


def estimate_cutoff_bin(db: np.ndarray) -> int:
    """Last bin of the surviving band of a (bins,) dB spectrum, or the top bin if no cut.

    A low-pass leaves a cliff with only a floor beyond it, so the stopband starts at the
    lowest bin k above which *every* bin (smoothed over 3) lies `MIN_DROP_DB` below the
    passband level — the loudest mean of `EDGE_BINS` adjacent bins anywhere under k.
    Music's natural roll-off or a gap between harmonics never qualifies: something
    louder follows. Brick-wall and steep cuts are found to within a bin or two; on gentle
    slopes (Butterworth order <= 4) the estimate lands where the slope has fallen
    ~25 dB, above the -3 dB point, so the attenuated band in between is kept as it is.
    """
    n = db.shape[0]
    if db.max() < SILENCE_DB:
        return n - 1
    csum = np.concatenate(([0.0], np.cumsum(db)))
    k = np.arange(2, n - 2)  # candidate first bin of the stopband
    width = np.minimum(EDGE_BINS, k)
    passband = np.maximum.accumulate((csum[k] - csum[k - width]) / width)
    smooth = np.convolve(db, np.ones(3) / 3, mode="same")
    peak_above = np.maximum.accumulate(smooth[::-1])[::-1][k]  # loudest at or above k
    cut = np.flatnonzero(peak_above < passband - MIN_DROP_DB)
    return int(k[cut[0]]) - 1 if cut.size else n - 1


class CutoffTracker:
    """Per-channel running estimate of the cutoff, for `--cutoff auto`.

    Each frame's median spectrum updates an exponential average (silent frames are
    skipped), and the cutoff is re-estimated from the average, so a steady reel settles
    within a few frames and a change of reel is followed.
    """

    def __init__(self, channels: int, n_bins: int, smoothing: float = 0.3):
        self.smoothing = smoothing  # weight of the newest frame in the average
        self._avg = np.zeros((channels, n_bins))
        self._seen = np.zeros(channels, dtype=bool)
        self.n_bins = n_bins

    def reset(self) -> None:
        self._avg[:] = 0.0
        self._seen[:] = False

    def update(self, db: np.ndarray) -> np.ndarray:
        """db: (channels, bins) of one frame -> cutoff bin per channel (channels,)."""
        bins = np.empty(db.shape[0], dtype=np.int64)
        for c, row in enumerate(db):
            if row.max() >= SILENCE_DB:
                if self._seen[c]:
                    self._avg[c] += self.smoothing * (row - self._avg[c])
                else:
                    self._avg[c] = row
                    self._seen[c] = True
            bins[c] = estimate_cutoff_bin(self._avg[c]) if self._seen[c] else self.n_bins - 1
        return bins
