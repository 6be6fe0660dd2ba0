"""The cutoff locator: a small learned net that reads where a reel's band was cut.

`cutoff.find_cut` used to place the cut by rules alone (a knee walk, a skirt check, a slit
null). Rules read a clean cliff well, but on real recordings the music's own roll-off,
a hiss floor and a filter skirt overlap, and the rules landed within 0.95-1.25x of the
true -3 dB point on only about half of the steep cuts of the real set. The locator
learns that reading from real recordings with known cuts
(`reelrestore.training.locator`), and is small enough to run in numpy.

Input: the reel's frame spectra (`band.band_db`, one row per engine frame), as
`find_cut` gets them. `features` puts every frame on a log-frequency grid
(1/`PER_OCTAVE` octave from `LOW_HZ` to `HIGH_HZ`) and describes each grid point over the
reel: its level quantiles over frames (`QUANTILES`, relative to the loudest point of the
90th percentile), and how its level follows the frame's overall loudness (a cut's floor
does not move with the music; natural roll-off does). The grid reaches 20 kHz although
cuts are sought only up to 8 kHz: an optical slit is only 5 dB down at 1.25x its -3 dB
point, and what tells it from music rolling off is its first null, 2.3x higher (13 kHz
for a slit at 5.7 kHz).

Output: a probability for "no cut in the grid" and, per grid point, that the cut is
there. The net is trained to put the cut at `TARGET_RATIO` times the -3 dB point, the
middle (in octaves) of 0.95-1.25x: an estimate that errs high rather than into the kept
band (a gentle slope, 12-18 dB/octave, a little higher still:
`training.locator.LocatorTrainConfig.gentle_target_ratio`). The engine reports that
reading; where it restores the band from (`cutoff.CutoffDecision.merge_hz`) is read lower
on the posterior (`Located.low_hz`, at `MERGE_QUANTILE`), divided by `TARGET_RATIO`: on a
steep cut the posterior is sharp and that lies near the reading / `TARGET_RATIO`, on a
gentle slope it spreads and lies further under.

Several nets trained alike (other seeds) can make one locator: their posteriors are
averaged. The weights live in one `.npz` beside the models (`models/cutoff-locator.npz`),
with its `config` (grid, quantiles, layers, what it was trained on) as JSON inside.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .band import SILENCE_DB, bin_means
from .safety import AtomicPath

LOW_HZ, HIGH_HZ, PER_OCTAVE = 60.0, 20000.0, 24
QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9, 1.0)
SHAPE_QUANTILES = (0.1, 0.5, 0.9)
CHANNELS = len(QUANTILES) + len(SHAPE_QUANTILES) + 2  # + how each point follows the frame loudness, + floor
# The absolute floor channel is read around this level (band_db of a white hiss at -60 dBFS
# RMS reads -33 dB; digital silence in PCM 24 about -117 dB).
FLOOR_REF_DB = -30.0
DB_SCALE = 20.0  # features are dB / DB_SCALE
DEPTH_DB = 150.0  # relative levels are clipped this far down
TARGET_RATIO = 1.09
# Where the band begins is read lower on the posterior than the reported cut (`Located.low_hz`).
# Development set (music), auto, LSD above the true cutoff with the hiss cut: 0.2 1.0928,
# 0.35 1.0972, the reading itself (0.65) 1.1092; with the floor above the cut still read
# at the reading / TARGET_RATIO, 0.1 1.0997 and 0.2 1.0988.
MERGE_QUANTILE = 0.2
MIN_FRAMES = 4
DEFAULT_NAME = "cutoff-locator.npz"


def default_path() -> Path:
    """The locator shipped inside the package (reelrestore/models/cutoff-locator.npz)."""
    spec = importlib.util.find_spec("reelrestore.models")  # locates, does not import (no torch)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        if (Path(folder) / DEFAULT_NAME).is_file():
            return Path(folder) / DEFAULT_NAME
    raise FileNotFoundError(f"no {DEFAULT_NAME} is installed with reelrestore; reinstall the package")


def grid_hz() -> np.ndarray:
    """Centre frequencies of the grid points."""
    n = int(np.floor(PER_OCTAVE * np.log2(HIGH_HZ / LOW_HZ))) + 1
    return LOW_HZ * 2.0 ** (np.arange(n) / PER_OCTAVE)


def grid_db(profiles: np.ndarray, bin_hz: float) -> np.ndarray:
    """(frames, bins) dB -> (frames, grid) dB: the mean power of the bins within half a
    grid step either side of each point (at least the nearest bin)."""
    f = grid_hz()
    half = 2.0 ** (0.5 / PER_OCTAVE)
    n_bins = profiles.shape[1]
    lo = np.clip(np.round(f / half / bin_hz).astype(int), 0, n_bins - 1)
    hi = np.clip(np.maximum(np.round(f * half / bin_hz).astype(int), lo + 1), 1, n_bins)
    return 10.0 * np.log10(bin_means(10.0 ** (profiles.astype(np.float64) / 10.0), lo, hi) + 1e-30)


def sound_frames(profiles: np.ndarray) -> np.ndarray | None:
    """The frames (rows) of `profiles` that hold sound (any bin at `SILENCE_DB` or over),
    or None when there are fewer than MIN_FRAMES of them: too little to read a reel from."""
    rows = profiles[profiles.max(axis=1) >= SILENCE_DB]
    return None if len(rows) < MIN_FRAMES else rows


def features(profiles: np.ndarray, bin_hz: float) -> np.ndarray | None:
    """(frames, bins) dB -> (CHANNELS, grid) float32, or None with fewer than MIN_FRAMES
    frames of sound."""
    rows = sound_frames(profiles)
    return None if rows is None else grid_features(grid_db(rows, bin_hz))


def grid_features(g: np.ndarray) -> np.ndarray:
    """(frames, grid) dB -> (CHANNELS, grid) float32: per grid point over the frames,
    - the level quantiles, relative to the loudest point of the 90th percentile;
    - the quantiles of the level relative to the frame's own loudness (a fixed ceiling
      stays put under a loud and a quiet frame alike; natural roll-off moves with them);
    - how the level follows the frame's loudness (correlation over frames);
    - the quietest level, absolute (digital silence, hiss or music)."""
    q = np.quantile(g, QUANTILES, axis=0)  # (len(QUANTILES), grid)
    ref = q[QUANTILES.index(0.9)].max()
    levels = np.maximum(q - ref, -DEPTH_DB) / DB_SCALE
    loud = 10.0 * np.log10(np.mean(10.0 ** (g / 10.0), axis=1))  # (frames,) overall loudness
    shape = np.quantile(np.maximum(g - loud[:, None], -DEPTH_DB), SHAPE_QUANTILES, axis=0) / DB_SCALE
    a, b = g - g.mean(axis=0), loud - loud.mean()
    norm = np.sqrt((a ** 2).sum(axis=0) * (b ** 2).sum())
    follows = np.where(norm > 1e-9, (a * b[:, None]).sum(axis=0) / np.maximum(norm, 1e-9), 0.0)
    floor = np.clip(q[0] - FLOOR_REF_DB, -DEPTH_DB, DEPTH_DB) / (2.5 * DB_SCALE)
    return np.concatenate([levels, shape, follows[None], floor[None]]).astype(np.float32)


def _conv(x: np.ndarray, w: np.ndarray, b: np.ndarray, dilation: int = 1) -> np.ndarray:
    """'same' 1-D convolution (cross-correlation, as torch): x (C, G), w (O, C, k) -> (O, G)."""
    k = w.shape[2]
    pad = dilation * (k - 1) // 2
    xp = np.pad(x, ((0, 0), (pad, pad)))
    g = x.shape[1]
    out = np.repeat(b[:, None], g, axis=1).astype(np.float32)
    for j in range(k):
        out += w[:, :, j] @ xp[:, j * dilation : j * dilation + g]
    return out


@dataclass(frozen=True)
class Located:
    """What the locator read: `hz` None when it finds no cut; `p_cut` its confidence;
    `low_hz` where the posterior reaches `MERGE_QUANTILE` (at most `hz`): the reading
    errs high on purpose, by little where the posterior is sharp (a steep cut) and by
    more where it spreads over a gentle slope."""

    hz: float | None
    p_cut: float
    low_hz: float | None = None


class CutoffLocator:
    """The trained net, run in numpy: `locate(profiles, bin_hz)`. An ensemble of nets
    trained alike (other seeds) is one locator whose posterior is their mean."""

    def __init__(self, members: list[dict[str, np.ndarray]], config: dict):
        self.config = config
        self.members = [{k: np.asarray(v, dtype=np.float32) for k, v in w.items()} for w in members]
        self.dilations = [int(d) for d in config["dilations"]]
        # A cut when its probability reaches p_cut, placed where the posterior over the
        # grid reaches `quantile` (above the median: errs high rather than low).
        self.quantile, self.p_cut = float(config["decide"]["quantile"]), float(config["decide"]["p_cut"])
        expected = {"grid": [LOW_HZ, HIGH_HZ, PER_OCTAVE], "quantiles": list(QUANTILES),
                    "shape_quantiles": list(SHAPE_QUANTILES), "target_ratio": TARGET_RATIO}
        for key, value in expected.items():
            if config.get(key) != value:
                raise ValueError(f"cutoff locator: {key} {config.get(key)} does not match this engine's "
                                 f"{value}; retrain it with `python -m reelrestore.training.locator`")

    @classmethod
    def load(cls, path: str | Path | None = None) -> CutoffLocator:
        """Weights are stored as `m<member>.<layer>` beside the JSON `config`."""
        with np.load(default_path() if path is None else path, allow_pickle=False) as data:
            config = json.loads(str(data["config"]))
            members: dict[int, dict[str, np.ndarray]] = {}
            for key in data.files:
                if key == "config":
                    continue
                member, _, name = key.partition(".")
                if not (member[:1] == "m" and member[1:].isdigit() and name):
                    raise ValueError(f"cutoff locator {path or default_path()}: weight {key!r} is not "
                                     f"m<member>.<layer> (saved by an older version); retrain it with "
                                     f"`python -m reelrestore.training.locator`")
                members.setdefault(int(member[1:]), {})[name] = data[key]
        return cls([members[m] for m in sorted(members)], config)

    def save(self, path: str | Path) -> None:
        """Written whole under `path` (no ``.npz`` added) or not at all."""
        weights = {f"m{m}.{k}": v for m, w in enumerate(self.members) for k, v in w.items()}
        with AtomicPath(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, config=np.array(json.dumps(self.config, sort_keys=True)), **weights)

    def logits(self, feats: np.ndarray, member: int = 0) -> tuple[np.ndarray, float]:
        """(CHANNELS, grid) -> one member's (per-point logits (grid,), the no-cut logit)."""
        w = self.members[member]
        h = np.maximum(_conv(feats, w["in.w"], w["in.b"]), 0.0)
        for i, d in enumerate(self.dilations):
            h = np.maximum(h + _conv(h, w[f"block{i}.w"], w[f"block{i}.b"], d), 0.0)
        points = _conv(h, w["out.w"], w["out.b"])[0]
        pooled = np.concatenate([h.mean(axis=1), h.max(axis=1)])
        none = float(w["none.w"] @ pooled + w["none.b"][0])
        return points, none

    def posterior(self, feats: np.ndarray) -> np.ndarray:
        """(CHANNELS, grid) -> (grid + 1,) probabilities, the last "no cut": the members' mean."""
        p = np.zeros(feats.shape[1] + 1)
        for m in range(len(self.members)):
            points, none = self.logits(feats, m)
            z = np.concatenate([points, [none]])
            e = np.exp(z - z.max())
            p += e / e.sum()
        return p / len(self.members)

    def locate(self, profiles: np.ndarray, bin_hz: float) -> Located | None:
        """Where the cut is, or None without enough sound to say."""
        feats = features(profiles, bin_hz)
        return None if feats is None else self.decide(feats)

    def decide(self, feats: np.ndarray) -> Located:
        """(CHANNELS, grid) features -> the cut, or no cut when that is likelier."""
        p = self.posterior(feats)
        p_cut = float(1.0 - p[-1])
        if p_cut < self.p_cut:
            return Located(None, p_cut)
        cdf = np.cumsum(p[:-1]) / (1.0 - p[-1])
        hz = _quantile_hz(cdf, self.quantile)
        return Located(hz, p_cut, min(hz, _quantile_hz(cdf, MERGE_QUANTILE)))


def _quantile_hz(cdf: np.ndarray, quantile: float) -> float:
    """Where a posterior's cdf over the grid reaches `quantile`, interpolated in octaves."""
    i = min(int(np.searchsorted(cdf, quantile)), len(cdf) - 1)
    pos = 0.0  # in grid steps, between point i - 1 (cdf under the quantile) and point i
    if i > 0:
        pos = i - 1.0 + (quantile - cdf[i - 1]) / max(cdf[i] - cdf[i - 1], 1e-12)
    return float(LOW_HZ * 2.0 ** (pos / PER_OCTAVE))
