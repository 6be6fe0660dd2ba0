"""Where the surviving band ends: learned over the reel, locked, shown to the user.

A cut is a property of the reel, not of a frame. A low-pass leaves a fixed *ceiling*:
over the whole reel no content rises above it, and above it lies a *floor* that does not
follow the music — digital silence or filter residue far below the band under the cut,
or the print's hiss, flat and steady. Natural roll-off is different: the highs come and
go with the music, so some moments reach above any "floor". DC, hum, rumble and leader
tones are steady lines, not a band of moving content.

`find_cut` reads that from many frame spectra (one row per 0.5 s frame, the median power
over its STFT frames, as `band.band_db` gives). The filter H(f) is fixed and the music
S(f, t) moves, so the ceiling (a high percentile over frames) traces |H|^2 · max S until
it meets the floor; the music's own slope and peaks are the noise the estimate fights.

1. smooth each frame spectrum over 1/12 octave and take, per bin, the ceiling (95th
   percentile over frames) and the floor (10th percentile); for the octave-under
   reference of step 2, a tone's narrow line in the ceiling is clipped (`_without_lines`);
2. the *stop band* starts at the lowest bin above which every bin either stays within
   `FLOOR_TOL_DB` of the level at the top of the spectrum (a flat hiss floor or silence,
   at least `FLOOR_STEP_DB` under the band below) or lies `DEEP_DB` below the ceiling of
   the octave under it (filter residue);
3. the band under it must hold moving content (ceiling minus floor of at least
   `MIN_ACTIVITY_DB`), else it is a steady tone or hum: no cut;
4. from the start of the stop band, walk down to the highest bin whose ceiling is within
   `KNEE_DB` of the median ceiling from half to a sixth of an octave below it: the
   knee, an estimate of the -3 dB point that errs high (keeping a little of the slope
   as it is) rather than low (overwriting the recording);
5. check the knee against the skirt (`_skirt_octaves`): a cut is `REACH_DB` down at most
   `REACH_OCTAVES` above its -3 dB point, so a skirt that takes longer than that to get
   there says the walk stopped in a dip of the music under the real knee; the knee is
   raised accordingly (never lowered);
6. an optical slit (a sinc^2-like response: -3 dB well before its steep part, then a
   filled null and a sidelobe) fools the walk, which stops on its gentle shoulder, and
   its sidelobes can hide the stop band altogether. Its first null, `SLIT_NULL_RATIO`
   times the -3 dB point, is a sharp anchor (`_slit_null_hz`): above a knee it replaces
   the knee; where no stop band was found (or only one above the range) a deep null with
   a sidelobe and only quiet content above it is taken as the cut (`_slit_cut`);
7. tell whether the print's hiss went with the cut (`_lost_hiss_db`): then its level
   under the cut travels with the decision, for the band merge to extend.

A cut outside `MIN_HZ`..`MAX_HZ` (the range of optical-track losses, with `LOW_SPREAD`
and `HIGH_SPREAD` for where the -3 dB point and an estimate that errs high can land) is
reported and passed through; so is anything unsure. `CutoffLearner` applies this to a
stream: it learns over the first seconds, locks, and re-learns only on a sustained change.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .band import SILENCE_DB

MIN_HZ, MAX_HZ = 150.0, 8000.0  # cuts outside this range are left alone
# The -3 dB point of a cut made at MIN_HZ can lie this much under it (a Butterworth-2
# designed at 150 Hz is -3 dB at 120 Hz), so cuts are accepted from MIN_HZ / LOW_SPREAD.
# Above MAX_HZ nothing is accepted: a codec's band edge at 9-10 kHz is not a film loss.
LOW_SPREAD = 1.25
# An estimate errs high, so a cut made at MAX_HZ (a Butterworth-8 is -3 dB at 7.64 kHz)
# is accepted up to MAX_HZ * HIGH_SPREAD.
HIGH_SPREAD = 1.05
LOWEST_HZ = 60.0  # bins below are DC, rumble and hum: never evidence of a cut
TOP_HZ = 20000.0  # the spectrum is read up to here (resamplers roll off above)
SMOOTH_OCTAVES = 1.0 / 12.0
CEILING_QUANTILE, FLOOR_QUANTILE = 0.95, 0.10
# A bin within this of the level at the top of the spectrum is floor (hiss or silence).
FLOOR_TOL_DB = 3.0
# ... and the floor lies at least this far below the ceiling of the octave under the cut
# (a recording that is as loud at the top as everywhere else has no cut).
FLOOR_STEP_DB = 10.0
# A bin this far below the ceiling of the octave under it is stop band (filter residue).
DEEP_DB = 35.0
# ... that ceiling read with lines (tones) clipped to LINE_DB above its median over
# LINE_BINS bins (`_without_lines`).
LINE_BINS, LINE_DB = 9, 6.0
# Median ceiling-minus-floor spread under the cut below which the "band" is a steady line.
MIN_ACTIVITY_DB = 1.0
# The knee: the first bin, walking down, within this of the band from half an octave to
# a sixth of an octave under it (far enough down to sit under a Butterworth-4 skirt).
KNEE_DB = 7.0
# The skirt check: the ceiling of the third of an octave under the knee, minus REACH_DB,
# is reached by every bin above (or the floor is) within REACH_OCTAVES above a knee
# placed near a steep cut's -3 dB point. When it takes d octaves, the knee is raised by
# 2 ** (REACH_GAIN * (d - REACH_OCTAVES)), at most REACH_MAX times (never lowered).
REACH_DB, REACH_OCTAVES, REACH_GAIN, REACH_MAX = 20.0, 0.3, 0.5, 1.1
# An optical slit (training's sinc^2 model, width tolerance filling its nulls) is -1 dB
# at half its -3 dB point, -7 dB at 1.5 times it and -13 dB at twice it, then dives into
# its first null at SLIT_NULL_RATIO times it (-41 dB) and comes back up to a sidelobe
# (-28 dB at 4.5 times). On a 1/24-octave grid of the ceiling, a null is the lowest point
# within SLIT_NULL_OCTAVES either side, SLIT_DIP_DB under the ceiling half an octave
# below, SLIT_LOBE_DB under the highest point from 1/4 to 5/8 octave above (the
# sidelobe), and not on a rising stretch (the ceiling an octave below at least as high
# as half an octave below: the slit's shoulder falls).
SLIT_NULL_RATIO = 3.2
SLIT_NULL_OCTAVES = 1.0 / 6.0
SLIT_DIP_DB, SLIT_LOBE_DB = 12.0, 6.0
SLIT_ERR_HIGH = 1.05  # an estimate from the null errs this much high
# Above a knee, a null is looked for from SLIT_SEARCH[0] to SLIT_SEARCH[1] times it.
SLIT_SEARCH = (1.2, 3.0)
# Without a stop band, a null is a cut when it lies SLIT_DEEP_DB under the ceiling of
# the octave under it (its 90th percentile) and everything above the sidelobe's start
# stays SLIT_QUIET_DB under that (a slit's sidelobes are ~28 dB down and falling).
SLIT_DEEP_DB, SLIT_QUIET_DB = 30.0, 20.0
GRID_PER_OCTAVE = 24
MIN_FRAMES = 4  # frames of sound needed before deciding anything
# The input keeps its own floor above the cut when that floor is flat within this from
# twice the cutoff to the top of the spectrum and no more than OWN_FLOOR_DB under the
# floor below the cut (else it is filter residue: the hiss went with the signal).
FLAT_FLOOR_DB, OWN_FLOOR_DB = 6.0, 45.0
# Median over STFT frames of a noise bin's power lies this far under its mean (ln 2).
MEDIAN_TO_MEAN_DB = 1.59


@dataclass(frozen=True)
class CutoffDecision:
    """What the engine decided for one channel; `hz` None means pass through untouched."""

    hz: float | None
    reason: str  # one line for the console and the report
    seconds: float = 0.0  # audio the decision was learned from
    # The print's hiss when the cut took it away with the signal: its level (dB of the
    # mean STFT power per bin, as the engine's spectra) under the cut, to be extended
    # above it. None when the input still carries its own floor above the cut.
    hiss_db: float | None = None

    def describe(self) -> str:
        if self.hz is None:
            return f"{self.reason}: passing through"
        return f"cutoff {self.hz / 1000:.2f} kHz ({self.reason})"

    def to_dict(self) -> dict:
        return {"hz": self.hz, "reason": self.reason, "learned_seconds": round(self.seconds, 3),
                "hiss_db": None if self.hiss_db is None else round(self.hiss_db, 2)}


def _smooth(db: np.ndarray, octaves: float) -> np.ndarray:
    """(F, K) dB -> power-averaged over ±`octaves` around each bin, in dB."""
    frames, k = db.shape
    power = 10.0 ** (db / 10.0)
    csum = np.zeros((frames, k + 1))
    np.cumsum(power, axis=1, out=csum[:, 1:])
    idx = np.arange(k)
    half = np.round(idx * (2.0 ** octaves - 1.0)).astype(int)
    lo, hi = np.maximum(idx - half, 0), np.minimum(idx + half + 1, k)
    return 10.0 * np.log10((csum[:, hi] - csum[:, lo]) / (hi - lo) + 1e-30)


@dataclass(frozen=True)
class _Reel:
    """Long-term view of one channel: per-bin ceiling and floor over its frames."""

    ceiling: np.ndarray  # (bins,) dB, 95th percentile over frames, 1/12-octave smoothed
    floor: np.ndarray  # (bins,) dB, 10th percentile
    low: int  # first bin that can be evidence (above DC, rumble, hum)
    top: int  # bins read: [0, top)
    top_level: float  # median ceiling of the top third octave: the floor, if there is one


def _reel(profiles: np.ndarray, bin_hz: float) -> _Reel | None:
    rows = profiles[profiles.max(axis=1) >= SILENCE_DB]
    if len(rows) < MIN_FRAMES:
        return None
    smooth = _smooth(rows, SMOOTH_OCTAVES)
    ceiling = np.quantile(smooth, CEILING_QUANTILE, axis=0)
    top = min(len(ceiling), int(TOP_HZ / bin_hz))
    return _Reel(ceiling, np.quantile(smooth, FLOOR_QUANTILE, axis=0), max(3, int(np.ceil(LOWEST_HZ / bin_hz))),
                 top, float(np.median(ceiling[int(top / 2 ** (1 / 3)) : top])))


def _without_lines(ceiling: np.ndarray) -> np.ndarray:
    """The ceiling with narrow peaks clipped to LINE_DB above its running median over
    LINE_BINS bins: a strong tone (a held note, a test tone) is a line a few bins wide,
    and as the reference of the octave above it, it made the music's whole band there
    look like a stop band (a steady 500 Hz tone in noise cut at 3 kHz: "cut" at 0.5 kHz)."""
    half = LINE_BINS // 2
    windows = np.lib.stride_tricks.sliding_window_view(np.pad(ceiling, half, mode="edge"), LINE_BINS)
    return np.minimum(ceiling, np.median(windows, axis=1) + LINE_DB)


def _octave_under_quantile(ceiling: np.ndarray, low: int, top: int, q: float) -> np.ndarray:
    """(top,) the q-quantile (linear, as np.quantile) of ceiling[max(low, k // 2) : k] for
    every k from low + 2, inf below: all windows at once, as rows of one sorted matrix."""
    k = np.arange(low + 2, top)
    start = np.maximum(low, k // 2)
    n = k - start  # window lengths, >= 2
    width = int(n.max())
    cols = np.arange(width)
    # window values right-aligned in each row, -inf before them, so sorting keeps them last
    rows = np.where(cols[None, :] >= width - n[:, None],
                    ceiling[np.clip(k[:, None] - width + cols[None, :], 0, None)], -np.inf)
    rows.sort(axis=1)
    pos = (width - n) + q * (n - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, width - 1)
    frac = pos - lo
    r = np.arange(k.size)
    out = np.full(top, np.inf)
    out[low + 2 :] = rows[r, lo] + frac * (rows[r, hi] - rows[r, lo])
    return out


def _mean_db(db: np.ndarray) -> float:
    return float(10.0 * np.log10(np.mean(10.0 ** (db / 10.0)) + 1e-30))


def _lost_hiss_db(reel: _Reel, cut: int) -> float | None:
    """The hiss level to extend above `cut`, or None when the input keeps a floor there.

    The floor under the cut (10th percentile over the reel: its quietest moments) is
    the print's hiss. Above the cut the input either still holds it — a floor that stays
    flat up to the top of the spectrum, the hiss added after the cut — or lost it with
    the signal (silence, or filter residue that keeps falling).
    """
    below = reel.floor[max(reel.low, cut // 2) : cut + 1]
    if below.size == 0:
        return None
    under = _mean_db(below) + MEDIAN_TO_MEAN_DB
    near = reel.floor[min(2 * cut, reel.top - 2) : min(int(2.8 * cut) + 1, reel.top)]
    far = reel.floor[int(reel.top / 2 ** (1 / 3)) : reel.top]
    if near.size and far.size:
        near_db, far_db = _mean_db(near), _mean_db(far)
        if abs(near_db - far_db) <= FLAT_FLOOR_DB and far_db + MEDIAN_TO_MEAN_DB >= under - OWN_FLOOR_DB:
            return None
    return under


def _skirt_octaves(reel: _Reel, knee: int) -> float | None:
    """Octaves from `knee` up to the bin from which the ceiling (or the floor) stays
    REACH_DB under the ceiling of the third of an octave under the knee; None if never."""
    level = float(np.median(reel.ceiling[int(knee / 2 ** (1 / 3)) : knee + 1]))
    highest_above = np.maximum.accumulate(reel.ceiling[knee : reel.top][::-1])[::-1]
    reached = np.flatnonzero(np.maximum(highest_above, reel.top_level) <= level - REACH_DB)
    return None if reached.size == 0 else float(np.log2((knee + reached[0]) / knee))


def _grid_ceiling(reel: _Reel, bin_hz: float) -> tuple[np.ndarray, np.ndarray]:
    """(frequencies in Hz, ceiling in dB) on a 1/GRID_PER_OCTAVE-octave grid, 100 Hz up."""
    grid = 2.0 ** np.arange(np.log2(100.0), np.log2(0.9 * TOP_HZ), 1.0 / GRID_PER_OCTAVE)
    return grid, np.interp(grid / bin_hz, np.arange(reel.ceiling.size), reel.ceiling)


def _slit_nulls(c: np.ndarray) -> Iterator[int]:
    """Grid indices of slit-like nulls of the gridded ceiling `c`, lowest first."""
    per, w = GRID_PER_OCTAVE, int(round(SLIT_NULL_OCTAVES * GRID_PER_OCTAVE))
    half, lobe = per // 2, (per // 4, 5 * per // 8)
    for i in range(per, c.size - lobe[1]):
        if c[i] > c[i - w : i + w + 1].min():
            continue
        if (c[i + lobe[0] : i + lobe[1]].max() - c[i] >= SLIT_LOBE_DB and c[i - half] - c[i] >= SLIT_DIP_DB
                and c[i - per] >= c[i - half]):
            yield i


def _slit_null_hz(reel: _Reel, bin_hz: float, knee_hz: float) -> float | None:
    """The first slit-like null from SLIT_SEARCH[0] to SLIT_SEARCH[1] times a knee at
    `knee_hz`, in Hz, or None. A Butterworth skirt keeps falling: no sidelobe, no null."""
    grid, c = _grid_ceiling(reel, bin_hz)
    for i in _slit_nulls(c):
        if grid[i] > SLIT_SEARCH[1] * knee_hz:
            break
        if grid[i] >= SLIT_SEARCH[0] * knee_hz:
            return float(grid[i])
    return None


def _slit_cut(reel: _Reel, bin_hz: float, seconds: float) -> CutoffDecision | None:
    """A slit's cut where no stop band was found: the first deep null with only quiet
    content above it whose -3 dB point lies in the range of film losses; or None."""
    grid, c = _grid_ceiling(reel, bin_hz)
    highest_above = np.maximum.accumulate(c[::-1])[::-1]
    for i in _slit_nulls(c):
        hz = grid[i] / SLIT_NULL_RATIO * SLIT_ERR_HIGH
        if not MIN_HZ / LOW_SPREAD <= hz <= MAX_HZ:
            continue
        under = float(np.quantile(c[i - GRID_PER_OCTAVE : i], 0.9))
        if (under - c[i] < SLIT_DEEP_DB or highest_above[i + GRID_PER_OCTAVE // 4] > under - SLIT_QUIET_DB
                or reel.top_level > under - FLOOR_STEP_DB):
            continue
        knee = int(np.ceil(hz / bin_hz))
        if float(np.median((reel.ceiling - reel.floor)[max(reel.low, knee // 2) : knee])) < MIN_ACTIVITY_DB:
            return None
        return CutoffDecision(float(knee * bin_hz), f"slit null {under - c[i]:.0f} dB down, learned over "
                                                    f"{seconds:.1f} s", seconds, _lost_hiss_db(reel, knee))
    return None


def fixed_cut(profiles: np.ndarray, bin_hz: float, hz: float, seconds: float = 0.0,
              reason: str = "set by the user") -> CutoffDecision:
    """A cutoff the user gave, with the hiss floor read from the reel as `find_cut` does."""
    reel = _reel(profiles, bin_hz)
    hiss = None if reel is None else _lost_hiss_db(reel, int(round(hz / bin_hz)))
    return CutoffDecision(float(hz), reason, seconds, hiss)


def find_cut(profiles: np.ndarray, bin_hz: float, seconds: float = 0.0) -> CutoffDecision:
    """Decide the cutoff of one channel from its frame spectra.

    profiles: (frames, bins) dB, one row per engine frame (`band.band_db`)
    """
    reel = _reel(profiles, bin_hz)
    if reel is None:
        return CutoffDecision(None, "not enough sound to find a cut", seconds)
    ceiling, low, top, top_level = reel.ceiling, reel.low, reel.top, reel.top_level

    # Highest level at or above each bin, floor bins excluded, and the ceiling of the
    # octave under each bin: the stop band starts where the first lies DEEP_DB below the second.
    above_floor = np.where(ceiling[:top] > top_level + FLOOR_TOL_DB, ceiling[:top], -np.inf)
    highest_above = np.maximum.accumulate(above_floor[::-1])[::-1]
    octave_under = _octave_under_quantile(_without_lines(ceiling), low, top, 0.9)
    stop = np.flatnonzero((highest_above[low + 2 :] <= octave_under[low + 2 :] - DEEP_DB)
                          & (top_level <= octave_under[low + 2 :] - FLOOR_STEP_DB))
    if stop.size == 0:
        return _slit_cut(reel, bin_hz, seconds) or CutoffDecision(None, "no cut found", seconds)
    start = int(stop[0]) + low + 2

    activity = float(np.median((ceiling - reel.floor)[max(low, start // 2) : start]))
    if activity < MIN_ACTIVITY_DB:
        return CutoffDecision(None, "only steady tones under the band edge, no cut", seconds)
    knee = start
    for k in range(start - 1, low, -1):
        under = ceiling[int(k / 2 ** 0.5) : max(int(k / 2 ** (1 / 6)), int(k / 2 ** 0.5) + 1)]
        if ceiling[k] >= np.median(under) - KNEE_DB:
            knee = k + 1  # the first bin past the knee: errs high, never into the kept band
            break
    reach = _skirt_octaves(reel, knee)
    if reach is not None and reach > REACH_OCTAVES:
        knee = int(np.ceil(knee * min(2.0 ** (REACH_GAIN * (reach - REACH_OCTAVES)), REACH_MAX)))
    null_hz = _slit_null_hz(reel, bin_hz, knee * bin_hz)
    if null_hz is not None:
        knee = int(np.ceil(null_hz / SLIT_NULL_RATIO * SLIT_ERR_HIGH / bin_hz))
    hz = knee * bin_hz
    depth = float(octave_under[start] - max(highest_above[start], top_level))
    if not MIN_HZ / LOW_SPREAD <= hz <= MAX_HZ * HIGH_SPREAD:
        where = "below" if hz < MIN_HZ else "above"
        slit = _slit_cut(reel, bin_hz, seconds) if where == "above" else None
        if slit is not None:  # the slit's sidelobes pushed the stop band above the range
            return slit
        return CutoffDecision(None, f"band ends at {hz / 1000:.2f} kHz, {where} the "
                                    f"{MIN_HZ:g} Hz-{MAX_HZ / 1000:g} kHz range of film losses", seconds)
    return CutoffDecision(float(hz), f"floor {depth:.0f} dB down, learned over {seconds:.1f} s", seconds,
                          _lost_hiss_db(reel, knee))


def _changed(old: CutoffDecision, new: CutoffDecision) -> bool:
    if (old.hz is None) != (new.hz is None):
        return True
    return old.hz is not None and not 0.85 <= new.hz / old.hz <= 1.18


class CutoffLearner:
    """Per-channel cutoff for a stream: learn, lock, re-learn on a sustained change.

    Feed it each frame's spectrum (`observe`); `decisions` holds what to use now (None
    until locked: the engine passes the audio through meanwhile; with `fixed_hz` the
    user's cutoff from the start, and the lock adds the hiss floor read from the reel). After `learn_seconds`
    of sound it locks. It then keeps the last `window_seconds` and re-decides every
    `check_seconds`; only when `sustain` checks in a row disagree with the lock (a new
    reel) does it lock the new decision. `timeline` lists every lock, with the time.
    """

    def __init__(self, channels: int, bin_hz: float, frame_hop_seconds: float,
                 learn_seconds: float = 4.0, window_seconds: float = 8.0,
                 check_seconds: float = 2.0, sustain: int = 3, fixed_hz: float | None = None):
        self.channels, self.bin_hz, self.step = channels, bin_hz, frame_hop_seconds
        # A cutoff the user set: used from the first frame; learning only reads the hiss floor.
        self.fixed_hz = fixed_hz
        self.learn_frames = max(MIN_FRAMES, int(round(learn_seconds / frame_hop_seconds)))
        self.check_frames = max(1, int(round(check_seconds / frame_hop_seconds)))
        self.window = max(self.learn_frames, int(round(window_seconds / frame_hop_seconds)))
        self.sustain = sustain
        self.frozen = False  # set by `lock`: decided from the whole file, never re-learned
        # Every lock, per channel, with its stream time; kept across `reset` for reports.
        self.timeline: list[dict] = []
        self.reset()

    def reset(self) -> None:
        """Start learning a new stream (the timeline of earlier locks is kept)."""
        self.history: list[deque] = [deque(maxlen=self.window) for _ in range(self.channels)]
        provisional = None if self.fixed_hz is None else CutoffDecision(float(self.fixed_hz), "set by the user")
        self.decisions: list[CutoffDecision | None] = [provisional] * self.channels
        self._locked = [False] * self.channels
        self.frames = 0
        self._disagree = [0] * self.channels

    @property
    def seconds(self) -> float:
        return self.frames * self.step

    @property
    def latest(self) -> list[CutoffDecision | None]:
        """Per channel, the decision in use, or else the last one locked (after `reset`)."""
        last: list[CutoffDecision | None] = [None] * self.channels
        for event in self.timeline:
            last[event["channel"]] = CutoffDecision(event["hz"], event["reason"], event["learned_seconds"],
                                                    event["hiss_db"])
        return [d if d is not None else old for d, old in zip(self.decisions, last)]

    def lock(self, decisions: list[CutoffDecision]) -> None:
        """Use these decisions for the whole stream (a file's first pass made them)."""
        if len(decisions) != self.channels:
            raise ValueError(f"expected {self.channels} decisions, got {len(decisions)}")
        self.reset()
        self.decisions = list(decisions)
        self._locked = [True] * self.channels
        self.frozen = True
        self.timeline = [dict(at_seconds=0.0, channel=c, **d.to_dict()) for c, d in enumerate(decisions)]

    @property
    def listening(self) -> bool:
        """Whether `observe` still needs frame spectra: not once a file's decisions are
        locked, nor once the hiss floor under a user's cutoff has been read."""
        return not (self.frozen or (self.fixed_hz is not None and all(self._locked)))

    def observe(self, db: np.ndarray) -> list[CutoffDecision | None]:
        """db: (channels, bins) of one frame -> the decision per channel to use for it."""
        if not self.listening:
            return self.decisions
        self.frames += 1
        for c in range(self.channels):
            if db[c].max() >= SILENCE_DB:
                self.history[c].append(db[c].astype(np.float32))
            current = self.decisions[c]
            if not self._locked[c]:
                if len(self.history[c]) >= self.learn_frames:
                    self._lock(c, self._decide(c))
            elif self.fixed_hz is None and self.frames % self.check_frames == 0 \
                    and len(self.history[c]) >= self.learn_frames:
                fresh = self._decide(c)
                self._disagree[c] = self._disagree[c] + 1 if _changed(current, fresh) else 0
                if self._disagree[c] >= self.sustain:
                    self._lock(c, fresh)
        return self.decisions

    def _decide(self, c: int) -> CutoffDecision:
        profiles, seconds = np.stack(self.history[c]), len(self.history[c]) * self.step
        if self.fixed_hz is not None:
            return fixed_cut(profiles, self.bin_hz, self.fixed_hz, seconds)
        return find_cut(profiles, self.bin_hz, seconds)

    def _lock(self, c: int, decision: CutoffDecision) -> None:
        self.decisions[c] = decision
        self._locked[c] = True
        self._disagree[c] = 0
        self.timeline.append(dict(at_seconds=round(self.seconds, 3), channel=c, **decision.to_dict()))
