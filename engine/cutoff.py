"""Where the surviving band ends: learned over the reel, locked, shown to the user.

A cut is a property of the reel, not of a frame. A low-pass leaves a fixed *ceiling*:
over the whole reel no content rises above it, and above it lies a *floor* that does not
follow the music — digital silence or filter residue far below the band under the cut,
or the print's hiss, flat and steady. Natural roll-off is different: the highs come and
go with the music, so some moments reach above any "floor". DC, hum, rumble and leader
tones are steady lines, not a band of moving content.

`find_cut` reads that from many frame spectra (one row per 0.5 s frame, the median power
over its STFT frames, as `band.band_db` gives):

1. smooth each frame spectrum over 1/12 octave and take, per bin, the ceiling (95th
   percentile over frames) and the floor (10th percentile);
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
5. tell whether the print's hiss went with the cut (`_lost_hiss_db`): then its level
   under the cut travels with the decision, for the band merge to extend.

A cut outside `MIN_HZ`..`MAX_HZ` (the range of optical-track losses) is reported and
passed through; so is anything unsure. `CutoffLearner` applies this to a stream: it
learns over the first seconds, locks, and re-learns only on a sustained change.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from .band import SILENCE_DB

MIN_HZ, MAX_HZ = 150.0, 8000.0  # cuts outside this range are left alone
# The -3 dB point of a cut made at MIN_HZ can lie this much under it (a Butterworth-2
# designed at 150 Hz is -3 dB at 120 Hz), so cuts are accepted from MIN_HZ / LOW_SPREAD.
# Above MAX_HZ nothing is accepted: a codec's band edge at 9-10 kHz is not a film loss.
LOW_SPREAD = 1.25
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
# Median ceiling-minus-floor spread under the cut below which the "band" is a steady line.
MIN_ACTIVITY_DB = 1.0
# The knee: the first bin, walking down, within this of the band from half an octave to
# a sixth of an octave under it (far enough down to sit under a Butterworth-4 skirt).
KNEE_DB = 7.0
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
    octave_under = _octave_under_quantile(ceiling, low, top, 0.9)
    stop = np.flatnonzero((highest_above[low + 2 :] <= octave_under[low + 2 :] - DEEP_DB)
                          & (top_level <= octave_under[low + 2 :] - FLOOR_STEP_DB))
    if stop.size == 0:
        return CutoffDecision(None, "no cut found", seconds)
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
    hz = knee * bin_hz
    depth = float(octave_under[start] - max(highest_above[start], top_level))
    if not MIN_HZ / LOW_SPREAD <= hz <= MAX_HZ:
        where = "below" if hz < MIN_HZ else "above"
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
