"""The restored band's level, set per reel: how bright a recording is above its cut.

A model restores one 0.5 s frame at a time, so it cannot see how bright the whole reel is
above its cut: on the development set (real recordings, hiss cut with the signal) the best
level offset for each item would lower 2.1's LSD above the cut from 1.212 to 1.098, one
offset for all of them only to 1.209 (`models/default.md`, 2.2). What a reel's long-term
spectrum under the cut says about that level
is learned after the model is trained, per model (`reelrestore.training.band_level`): a
ridge regression from `reel_features` to the offset, in dB, that the engine then applies
to the model's band of that reel. It travels in the model's metadata (`BandLevel`,
key ``band_level``); a model without it is played as it is.

The features are read from the same frame spectra the cutoff is learned from (the first
pass of a file, the first seconds live) and are locked with the cutoff
(`cutoff.CutoffDecision.reel`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

from .band import SILENCE_DB, power_mean_db

METADATA_KEY = "band_level"
# What `reel_features` returns, in order: where the cut is (log2 of kHz); how the long-term
# spectrum falls towards the cut (the top sixth of the band under it against the rest of
# that octave, and octave against octave); how loud the top of the band is against the
# whole band and in absolute terms; how rough the spectrum is (tonal or noisy); whether
# the input keeps its own floor (hiss) above the cut. (What the input holds at 1.25-2x the
# cut, tried as a ninth, left the development set's figures where they were.)
FEATURES = ("log2_cutoff_khz", "top_vs_octave_db", "octave_vs_second_db", "second_vs_third_db",
            "top_vs_band_db", "roughness_db", "band_db", "floor_kept")
# Octave edges under the cut, as fractions of it: (0.84, 1], (0.5, 0.84], (0.25, 0.5], (0.125, 0.25].
_EDGES = (1.0, 0.84, 0.5, 0.25, 0.125)
_ROUGH_BINS = 9  # moving mean the roughness is measured around


class BandLevelError(ValueError):
    """A model's band_level metadata is not usable; the message says why, in one line."""


def _power_mean_db(db: np.ndarray) -> float:
    return power_mean_db(db) if db.size else math.nan


def reel_features(mean_db: np.ndarray, bin_hz: float, cutoff_hz: float, floor_kept: bool) -> tuple[float, ...]:
    """The reel's long-term spectrum under `cutoff_hz` described by `FEATURES`.

    mean_db: (bins,) dB, the mean power over the reel's frames of sound (`band.band_db`
    rows, as `cutoff` reads them). A band with no bin (a cut near DC) reads 0 dB against
    its neighbour.
    """
    k = np.arange(mean_db.size) * bin_hz / cutoff_hz  # bin frequency over the cutoff
    bands = [_power_mean_db(mean_db[(k > lo) & (k <= hi)]) for hi, lo in zip(_EDGES[:-1], _EDGES[1:])]
    steps = [a - b if math.isfinite(a) and math.isfinite(b) else 0.0 for a, b in zip(bands[:-1], bands[1:])]
    under = mean_db[(k > 0) & (k <= 1.0)]
    band = _power_mean_db(under) if under.size else SILENCE_DB
    top = bands[0] if math.isfinite(bands[0]) else band
    rough = 0.0
    if under.size >= 2 * _ROUGH_BINS:
        smooth = np.convolve(under, np.ones(_ROUGH_BINS) / _ROUGH_BINS, mode="valid")
        h = _ROUGH_BINS // 2
        rough = float(np.std(under[h : h + smooth.size] - smooth))
    return (math.log2(cutoff_hz / 1000.0), *steps, top - band, rough, band, float(floor_kept))


@dataclass(frozen=True)
class BandLevel:
    """gain_db = clip(bias + Σ weights · (features - mean) / scale, lowest, highest): the
    level offset for the model's band of a reel (a ridge regression, fitted per model by
    `reelrestore.training.band_level`, which also records what it was fitted on)."""

    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float
    lowest: float = -9.0  # dB: a fit never moves a band further than this
    highest: float = 9.0
    fitted_on: str = ""  # what the regression learned from, for the model card and reports

    def __post_init__(self) -> None:
        if tuple(self.features) != FEATURES:
            raise BandLevelError(f"band_level: expected features {list(FEATURES)}, got {list(self.features)}")
        for name in ("mean", "scale", "weights"):
            values = getattr(self, name)
            if len(values) != len(FEATURES) or not all(math.isfinite(v) for v in values):
                raise BandLevelError(f"band_level {name}: expected {len(FEATURES)} finite numbers, got {values}")
            object.__setattr__(self, name, tuple(float(v) for v in values))
        if any(s <= 0 for s in self.scale):
            raise BandLevelError(f"band_level scale: expected positive numbers, got {self.scale}")
        if not (math.isfinite(self.bias) and self.lowest <= 0.0 <= self.highest):
            raise BandLevelError(f"band_level: expected a finite bias and lowest <= 0 <= highest, got "
                                 f"{self.bias}, {self.lowest}, {self.highest}")
        object.__setattr__(self, "features", tuple(self.features))

    def gain_db(self, features: tuple[float, ...]) -> float:
        z = (np.asarray(features, dtype=np.float64) - self.mean) / np.asarray(self.scale)
        return float(np.clip(self.bias + float(np.dot(self.weights, z)), self.lowest, self.highest))

    def to_metadata(self) -> dict[str, str]:
        return {METADATA_KEY: json.dumps(asdict(self))}

    @classmethod
    def from_metadata(cls, meta: Mapping[str, str]) -> BandLevel | None:
        """The model's band level, or None when it carries none."""
        if METADATA_KEY not in meta:
            return None
        try:
            return cls(**json.loads(meta[METADATA_KEY]))
        except (json.JSONDecodeError, TypeError) as exc:
            raise BandLevelError(f"band_level: not a fitted band level ({exc})") from None
