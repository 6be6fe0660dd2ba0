"""Where the surviving band ends: learned over the reel, locked, shown to the user.

A cut is a property of the reel, not of a frame. A low-pass leaves a fixed *ceiling*:
over the whole reel no content rises above it, and above it lies a *floor* that does not
follow the music — digital silence or filter residue far below the band under the cut,
or the print's hiss, flat and steady. Natural roll-off is different: the highs come and
go with the music. DC, hum, rumble and leader tones are steady lines, not a band of
moving content.

`find_cut` reads that from many frame spectra (one row per 0.5 s frame, the median power
over its STFT frames, as `band.band_db` gives):

1. where the cut lies is read by the learned locator (`locator.CutoffLocator`, trained on
   real recordings with known cuts: Butterworth skirts of every order, the optical slit,
   hiss cut with the signal or left above it). Rules placed the cut within 0.95-1.25x of
   the true -3 dB point on about half of the real set's steep cuts: a knee walk stops in
   the music's own dips, a slit is -3 dB well before its steep part, and a hiss floor
   hides the skirt;
2. a cut outside `MIN_HZ`..`MAX_HZ` (the range of optical-track losses, with `LOW_SPREAD`
   and `HIGH_SPREAD` for where the -3 dB point and an estimate that errs high can land;
   up to `GENTLE_SPREAD` for a band edge that rolls off rather than falls like a codec's
   brick wall, `CODEC_DROP_DB`, and up to `WIDE_SPREAD` where the hiss went with such a
   roll-off and its likely -3 dB point lies in range) is reported and passed through; so
   is anything the locator is unsure of. A codec's band edge (a lossy copy's brick wall at
   8.8-13.5 kHz, `codec_edge`) is no film loss either: the locator reads the reel as if the edge were
   not there (`past_codec_edge`), and a reading that still lies just under the edge is
   the edge itself: passed through, and said so;
3. the band under the cut must hold moving content (ceiling minus floor over the reel of
   at least `MIN_ACTIVITY_DB`), else it is a steady tone or hum: no cut (unless it is a
   broadband hiss that went with the cut, `BROADBAND_FROM_HZ`); a reel whose
   loudness never moves and whose ceiling does not step down across the cut is a hiss
   floor without programme (`STEADY_DB`, `MIN_STEP_DB`): no cut either;
4. whether the print's hiss went with the cut (`_lost_hiss_db`): then its level under the
   cut travels with the decision, for the band merge to extend, and where the reel's
   pauses show that level to be the hiss itself (`HISS_SEEN_SWING_DB`), the restored band
   is held at least at it (`CutoffDecision.holds_hiss`);
5. the locator's reading errs high on purpose (`locator.TARGET_RATIO` times the -3 dB
   point, and higher still on a gentle slope): it is what the engine reports and checks;
   where the hiss went with the cut, the band is restored from the most likely -3 dB
   point (`CutoffDecision.merge_hz`): where the locator's posterior reaches its lower
   tail (`locator.Located.low_hz`), divided by that margin, and at most `MAX_MARGIN`
   under the reading. On a steep cut the posterior is sharp and that lies just under the
   reading / `TARGET_RATIO`; on a gentle slope it spreads, and the band begins further
   under the reading. The band level's features and the floor above the cut are read
   from there.

`CutoffLearner` applies this to a stream: it learns over the first seconds, locks, refines
the lock as more of the reel is heard, and re-learns from the last seconds only on a
sustained change (a new reel).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from .band import SILENCE_DB, octave_smooth, power_mean_db
from .level import reel_features
from .locator import MIN_FRAMES, TARGET_RATIO, CutoffLocator, sound_frames  # MIN_FRAMES: frames of sound to decide

MIN_HZ, MAX_HZ = 150.0, 8000.0  # cuts outside this range are left alone
# The -3 dB point of a cut made at MIN_HZ can lie well under it (an optical slit whose
# -6 dB point is 150 Hz is -3 dB at 108 Hz, a Butterworth-2 made there at 120 Hz), so
# cuts are accepted from MIN_HZ / LOW_SPREAD = 100 Hz.
LOW_SPREAD = 1.5
# An estimate errs high (the locator aims at 1.09x the -3 dB point), so cuts are accepted
# up to MAX_HZ * HIGH_SPREAD = 8.8 kHz (a Butterworth-8 made at 8 kHz is -3 dB at 7.6 kHz
# and read at about 8.3). Not higher: a codec's band edge at 9-10 kHz is not a film loss.
# Chosen on the dev sets (steep cuts found / intact recordings left alone): 8.4 kHz
# 86.8 / 97.1 %, 8.64 kHz 87.9 / 96.2 %, 8.8 and 8.96 kHz 88.2 / 96.2 %.
HIGH_SPREAD = 1.10
# A gentle cut at 8 kHz (a Butterworth-2's -3 dB point lies at 6.6 kHz) is read at 9-10.6 kHz,
# where a codec's band edge also lies; but a codec's edge is a brick wall and a film loss a
# roll-off. Up to MAX_HZ * GENTLE_SPREAD = 10 kHz (the estimate's own tolerance: at most 1.25x
# the -3 dB point) a band edge is taken for a cut if its ceiling (95th percentile over the
# reel) falls less than CODEC_DROP_DB over the 1/6 octave above it. Chosen on the
# development set: its codec edges (asc-music, 9.4-9.7 kHz) fall 17.6 and 24.8 dB there, its
# film cuts read above 8.8 kHz 1.1-10.3 dB. Not higher: intact studio speech (alsa-utils)
# whose own band ends at 10.3-10.6 kHz is read there as a gentle edge.
GENTLE_SPREAD = 1.25
CODEC_DROP_DB = 14.0
# A gentle cut at 8 kHz can be read higher still (a Butterworth-2's -3 dB point at 6.6 kHz read
# at 10.1 and 10.6 kHz on the music development set, and passed through, leaving everything
# above 6.6 kHz unrestored: LSD above the cut 3.8 and 2.7 against 0.7 and 0.2 at the true
# cutoff). Up to MAX_HZ * WIDE_SPREAD = 11.2 kHz a reading is a cut when the locator's
# posterior puts its likely -3 dB point (its lower tail / TARGET_RATIO, as for the merge) at
# MAX_HZ or under, the edge is no brick wall (as above), and the hiss went with the cut (the
# floor over it falls away, `_lost_hiss_db`): an intact reel whose own band ends there keeps
# its hiss over that end. Development set, auto, hiss cut: 0.9125 -> 0.8861 (those two
# items), every other figure unchanged; on 1,026 excerpts of the training part (cut at 3-8
# kHz with the hiss cut or kept, and uncut) no decision changed; without the hiss condition
# two intact excerpts whose band ends at 10.9-11.1 kHz were taken for cut.
WIDE_SPREAD = 1.4
LOWEST_HZ = 60.0  # bins below are DC, rumble and hum: never evidence of a cut
TOP_HZ = 20000.0  # the spectrum is read up to here (resamplers roll off above)
SMOOTH_OCTAVES = 1.0 / 12.0
CEILING_QUANTILE, FLOOR_QUANTILE = 0.95, 0.10
# Median ceiling-minus-floor spread under the cut below which the "band" is a steady line.
MIN_ACTIVITY_DB = 1.0
# ... unless it is broadband and went with the cut: from BROADBAND_FROM_HZ up (an octave
# there holds 40 bins and more; hum, rumble and DC lie under it), an octave under the cut
# whose mean spectrum lies within BROADBAND_DB of its loudest bin over at least
# BROADBAND_SHARE of its bins (a leader or test tone: 1-9 % of them), with the floor above
# the cut falling away (`_lost_hiss_db`), is the print's steady hiss that the cut took away
# over quiet music. On 342 training-part excerpts with the hiss cut at 3-8 kHz, 8 were passed
# through as "steady tones", all now read within 0.95-1.25x but one gentle slope (1.34x);
# of 342 with the hiss kept, one would have been read at 0.77x without the condition on
# the floor (now passed through as before), and no intact excerpt was passed through by the
# rule; on the music development set one reel (8 kHz, LSD above the cut 2.04 passed
# through, 0.30 at the true cutoff).
BROADBAND_FROM_HZ, BROADBAND_DB, BROADBAND_SHARE = 2000.0, 10.0, 0.5
# A reel whose loudness hardly moves (95th minus 10th percentile of its frames' loudness
# above LOWEST_HZ under STEADY_DB; a steady hiss reads 0.1-0.15 dB, programme on the dev
# sets 0.8 dB and more) and whose ceiling does not step down across the "cut" (from 1.3x
# to 2x the cut less than MIN_STEP_DB under the octave under it) is a hiss floor with
# nothing cut: a reel of grain noise and DC, say.
STEADY_DB, MIN_STEP_DB = 0.5, 2.0
# The input keeps its own floor above the cut when that floor is flat within this from
# twice the cutoff to the top of the spectrum and no more than OWN_FLOOR_DB under the
# floor below the cut (else it is filter residue: the hiss went with the signal).
FLAT_FLOOR_DB, OWN_FLOOR_DB = 6.0, 45.0
# ... and when, fitted over the same span (twice the cutoff to the top), the floor does not
# fall faster than FLOOR_FALL_DB per octave. Near 8 kHz twice the cut and the top lie a third
# of an octave apart, and the residue of a loud hiss cut by a gentle skirt (a Butterworth-2)
# passed the flatness test alone: the reel was read as keeping its hiss. Measured
# (`training.cutprobe` on the training part, and the development sets): a hiss kept above
# the cut falls at most 12.4 dB per octave (dev sets: 9.2); the floor of an intact reel whose
# own highs roll off, 21-44; those misread residues 58-113. The line is drawn between: a
# speech development item (LSD above its cut 1.34 -> 0.28) and 2 of 339 probe reels cut at
# 8 kHz are read right, and nothing else changes (at 12 dB, one kept reel and three intact
# ones read as cut would have taken the hiss for gone).
FLOOR_FALL_DB = 48.0
# The band begins at most this far under the reading (`CutoffDecision.margin`): the
# locator's posterior can trail far under its reading, and beginning there lifts the kept
# band. 1.25x under the reading / TARGET_RATIO, the width of the window for a
# reading. Development sets, auto, without the cap -> with it: LSD below the true cutoff
# with the hiss cut, music 0.0998 -> 0.0985 (the input's 0.101), speech 0.1012 -> 0.1009;
# above it, music 1.0928 -> 1.0926, speech 1.1220 -> 1.1288.
MAX_MARGIN = TARGET_RATIO * 1.25
# Median over STFT frames of a noise bin's power lies this far under its mean (ln 2).
MEDIAN_TO_MEAN_DB = 1.59
# A lossy copy (MP3, Vorbis, AAC at modest rates) ends in its encoder's brick wall, often
# at 9-14 kHz. The locator, trained on cuts up to 11 kHz, took such an edge at 9.75 or
# 11 kHz for a film cut in 16 and 17 of the 28 intact development reels (music and speech,
# a brick wall put on them), and read cuts under it too high or not at all (steep cuts
# within 0.95-1.25x, with the hiss cut: 94 % -> 78 / 76 %; with it kept 78 % -> 21 / 32 %).
# Where the reel has such an edge (`codec_edge`), the locator reads the reel continued past
# it (`past_codec_edge`), and a reading within EDGE_OCTAVES under the edge is the edge
# itself: 27 and 28 of 28 left alone, steep cuts 83 / 82 % and 72 / 76 %; reels without a
# wall as before. An edge is where, somewhere in CODEC_EDGE_HZ, the reel's ceiling (95th
# percentile, per bin) steps down by EDGE_WALL_DB from the EDGE_STEP_BINS bins under it to
# those over it (8 bins, 190 Hz, each side; a steep film cut's skirt falls some 6 dB there) and by
# EDGE_DROP_DB from the 1/12 octave under it to the 1/12 octave over it (one loud tone
# under the edge does not do that), and stays down for 1/6 octave. Without the first test,
# 4 of 453 cut excerpts of the training part's 195 recordings showed an "edge" (a steep
# skirt and the music falling together at 9-11 kHz); with both, none.
CODEC_EDGE_HZ = (MAX_HZ * HIGH_SPREAD, 13500.0)
EDGE_STEP_BINS, EDGE_DROP_DB, EDGE_WALL_DB = 8, 10.0, 15.0
# Nearly every frame must step down there too (by EDGE_FRAME_DB in all but
# EDGE_FRAME_QUANTILE of them): a wall cuts every frame alike (the development set's one
# real codec's edge, asc-music at 9.6 kHz: the 20th percentile of its frames' steps 10 to
# 34 dB). Without this test, 2 of those 453 excerpts as they were (with a hiss) showed an edge.
EDGE_FRAME_QUANTILE, EDGE_FRAME_DB = 0.2, 5.0
# And what it cuts lies at most EDGE_DEPTH_DB under the reel's loudest point: deep in a
# cut's skirt the residue meets the digital floor, or a source's own quirks show; there a
# wall is neither seen reliably nor does it matter much.
EDGE_DEPTH_DB = 85.0
EDGE_OCTAVES = 1.0 / 6.0
# Where the hiss went with the cut, its level read under the cut is the print's hiss only
# where the programme falls silent: a reel whose loudness swings by HISS_SEEN_SWING_DB or
# more (speech's pauses, an effect's gaps), read over an octave under the cut that lies
# from HISS_SEEN_FROM_HZ up (under it a reel's floor is its bass, hum and rumble). There
# the restored band is held at least at that level (`CutoffDecision.holds_hiss`,
# `band.hold_at_hiss`): the hiss is part of the recording, and the model's band falls under
# it above a few kHz and in the pauses. Elsewhere the floor under the cut is the programme's
# own quiet (music reels cut with their hiss, development set: median 30 dB over the hiss;
# speech reels' pauses 0.6 dB), and held there the band is far too loud. Development sets
# (training part), hiss cut, LSD above the cut, true cutoff / auto: speech (54 items)
# 1.0721 -> 0.9456 / 1.0789 -> 0.9260 (STOI 0.9157 -> 0.9147 / 0.9139); the music set's
# speech (9) 1.0034 -> 0.8658 / 0.9947 -> 0.8639, its effects (16) 0.9291 -> 0.9201 /
# 0.9353 -> 0.9265, its music (171) and every item whose hiss was kept unchanged. A swing
# of 15 dB let music reels through (floor 15-37 dB over the hiss: music 0.8294 -> 0.8522);
# the loudest swing of a music reel so misread there, 17.6 dB; speech and effects swing
# 22 dB and more (5th percentile). Without the 150 Hz bound two music reels cut at 150 Hz
# (swing 28-29 dB, their floor there their bass, 30 dB over the hiss) were held: auto,
# 1.09 and 1.85 worse. Left: on the training-part probe (4 seeds, 1,374 reels) six music
# decisions (one short piece that swings 21 dB) are held at a floor 7-18 dB over its hiss.
# And only from HISS_SEEN_SECONDS of audio on: in a shorter recording (read in overlapping
# slices) the quietest 0.5 s frames need not hold a pause (one second of synthetic speech:
# its floor read 24 dB over its hiss).
HISS_SEEN_SWING_DB, HISS_SEEN_FROM_HZ, HISS_SEEN_SECONDS = 20.0, 150.0, 3.0
# The swing is that of 8 s items, on which it was set: over a reel longer than
# HISS_SEEN_SPAN_SECONDS it is read over each such span of it and the median taken (speech
# swings so within every few seconds, between its words). Read over minutes, music that
# only swings from passage to passage passed for speech: on one of eight 3 min reels of the
# training part (`training.reelcheck`'s reels, the hiss cut with the signal) the band was
# held at the floor of its quiet passages, 4-12 dB over the hiss (forty-first session).
HISS_SEEN_SPAN_SECONDS = 8.0


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
    # The reel's long-term spectrum under the cut (`level.reel_features`), from which a
    # model's `level.BandLevel` sets the restored band's level; None when not read.
    reel: tuple[float, ...] | None = None
    # The reel's floor per bin (dB of the mean STFT power per bin: its quietest moments,
    # hiss or filter residue), for the band merge's lift; None when not read.
    floor_db: np.ndarray | None = field(default=None, compare=False, repr=False)
    # The band is restored from `merge_hz` = hz / margin. The locator reads a cut at
    # `locator.TARGET_RATIO` times its -3 dB point (an estimate that errs high, more so on
    # a gentle slope); where the hiss went with the cut and the engine lifts the skirt's
    # residue, the margin is the reading over the posterior's lower tail
    # (`locator.Located.low_hz`) / TARGET_RATIO, at most `MAX_MARGIN`. 1 where the input
    # keeps its hiss (the top of the skirt stands over it as the recording holds it),
    # without the lift (`find_cut`'s `lifted`) and for a cutoff the user set.
    margin: float = 1.0
    # Whether the restored band is held at least at the lost hiss (`hiss_db`): where the reel
    # shows the hiss itself, in the programme's pauses (`HISS_SEEN_SWING_DB`).
    holds_hiss: bool = False
    # The band's level as the programme goes (`level_track`): the `reel` features and the lost
    # hiss read over the span around each moment, in time order; None where the reel is no
    # longer than one span (then `reel` and `hiss_db` are read over all of it).
    levels: tuple[LevelReading, ...] | None = field(default=None, compare=False, repr=False)
    # The reel's mean power per bin (dB of its frames' median STFT power per bin, `band.band_db`)
    # over the first and the second half of the frames it was read from, (2, bins), NaN past the bins read (a codec's edge, `TOP_HZ`):
    # where a slit's lobes show in both (`skirt.fit_lobes`), the lift follows that slit.
    halves_db: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def merge_hz(self) -> float | None:
        """Where the restored band begins. Where the hiss went with the cut: its most
        likely -3 dB point, under the reading (`margin`). The merge adds to what the input
        holds and lifts the skirt's residue rather than painting over it, so beginning there
        costs the band under the cut nothing on average (development set, music, auto: LSD
        below the true cutoff 0.1013 from the reading, 0.1004 from the reading / 1.09,
        0.0985 from the posterior's lower tail; the input's 0.101), while beginning at the
        reading left the top of the skirt unrestored."""
        return None if self.hz is None else self.hz / self.margin

    @classmethod
    def from_event(cls, event: dict) -> CutoffDecision:
        """A decision back from its `to_dict` (a timeline event), without the floor."""
        reel = None if event.get("reel") is None else tuple(event["reel"])
        hz, merge_hz = event["hz"], event.get("merge_hz")
        margin = hz / merge_hz if hz is not None and merge_hz else 1.0
        return cls(hz, event["reason"], event.get("learned_seconds", 0.0), event.get("hiss_db"), reel, margin=margin,
                   holds_hiss=bool(event.get("holds_hiss", False)))

    @property
    def held_db(self) -> float | None:
        """The level the restored band is held at, at least (`band.hold_at_hiss`), or None:
        the lost hiss where the reel's pauses show it (`holds_hiss`), else, on a reel longer
        than one span (`levels`), its quietest span's floor under the cut where it lies as a hiss
        does (`QUIET_SLOPE_DB`)."""
        if self.hiss_db is None:
            return None
        if self.holds_hiss:
            return self.hiss_db
        spans = [r for r in self.levels or () if r.hiss_db is not None]
        quietest = min(spans, key=lambda r: r.hiss_db, default=None)
        return quietest.hiss_db if quietest is not None and quietest.hiss_flat else None

    @property
    def keeps_hiss(self) -> bool:
        """A cut whose reel was read and whose input still carries its own floor (the
        print's hiss) above the cut: the merge lifts only over it and the model's band
        goes in `band.KEPT_BAND_DB` under its level."""
        return self.hz is not None and self.reel is not None and self.hiss_db is None

    def describe(self) -> str:
        if self.hz is None:
            return f"{self.reason}: passing through"
        begins = f", restored from {self.merge_hz / 1000:.2f} kHz" if self.margin != 1.0 else ""
        held = ", the band held at the print's hiss" if self.held_db is not None else ""
        return f"cutoff {self.hz / 1000:.2f} kHz{begins}{held} ({self.reason})"

    @property
    def hiss_db_range(self) -> tuple[float, float] | None:
        """The lowest and highest lost hiss read as the programme goes (`levels`), or None
        where it is read once for the reel (or the input keeps its hiss)."""
        read = [r.hiss_db for r in self.levels or () if r.hiss_db is not None]
        return (min(read), max(read)) if read else None

    def to_dict(self) -> dict:
        span = self.hiss_db_range
        return {"hz": self.hz, "merge_hz": self.merge_hz, "reason": self.reason,
                "learned_seconds": round(self.seconds, 3),
                "hiss_db": None if self.hiss_db is None else round(self.hiss_db, 2),
                "hiss_db_range": None if span is None else [round(v, 2) for v in span], "holds_hiss": self.holds_hiss,
                "held_db": None if self.held_db is None else round(self.held_db, 2),
                "reel": None if self.reel is None else [round(v, 3) for v in self.reel]}


def _smooth(db: np.ndarray, octaves: float) -> np.ndarray:
    """(F, K) dB -> power-averaged over ±`octaves` around each bin (`band.octave_smooth`), in dB."""
    return 10.0 * np.log10(octave_smooth(10.0 ** (db / 10.0), octaves) + 1e-30)


@dataclass(frozen=True)
class _Reel:
    """Long-term view of one channel: per-bin ceiling and floor over its frames."""

    ceiling: np.ndarray  # (bins,) dB, 95th percentile over frames, 1/12-octave smoothed
    floor: np.ndarray  # (bins,) dB, 10th percentile
    low: int  # first bin that can be evidence (above DC, rumble, hum)
    top: int  # bins read: [0, top)
    swing_db: float  # how the frames' loudness in [low, top) moves: 95th minus 10th percentile
    span_swing_db: float  # the same over each `HISS_SEEN_SPAN_SECONDS` of the reel, the median
    mean: np.ndarray  # (bins,) dB, the mean power over its frames (`level.reel_features` reads it)
    halves: np.ndarray  # (2, bins) dB, the mean power over the first and the second half of its frames, NaN past the bins read
    edge: int | None = None  # bins read under a codec's band edge (`codec_edge`): [0, edge); None without one


def _reel(profiles: np.ndarray, bin_hz: float, edge: int | None = None, seconds: float = 0.0) -> _Reel | None:
    """The long-term view of `profiles` (frames, bins) dB, `seconds` of audio (0: unknown,
    read as one span)."""
    rows = sound_frames(profiles)
    if rows is None:
        return None
    smooth = _smooth(rows, SMOOTH_OCTAVES)
    ceiling = np.quantile(smooth, CEILING_QUANTILE, axis=0)
    low, top = _lowest_bin(bin_hz), min(len(ceiling), int(TOP_HZ / bin_hz))
    loud = 10.0 * np.log10(np.mean(10.0 ** (rows[:, low:top] / 10.0), axis=1) + 1e-30)
    span = len(loud)
    if seconds > 0.0:
        span = max(MIN_FRAMES, int(round(HISS_SEEN_SPAN_SECONDS * len(profiles) / seconds)))
    spans = [loud[a : a + span] for a in range(0, len(loud) - span + 1, span)] or [loud]
    read_to = top if edge is None else min(top, int(edge * 2 ** (-1 / 24)))
    halves = np.stack([power_mean_db(part, axis=0) for part in np.array_split(rows, 2)])
    halves[:, read_to:] = np.nan
    return _Reel(ceiling, np.quantile(smooth, FLOOR_QUANTILE, axis=0), low, top, _swing(loud),
                 float(np.median([_swing(part) for part in spans])), power_mean_db(rows, axis=0), halves,
                 None if edge is None else read_to)


def _lowest_bin(bin_hz: float) -> int:
    """The first bin that can be evidence: above DC, rumble and hum (`LOWEST_HZ`)."""
    return max(3, int(np.ceil(LOWEST_HZ / bin_hz)))


def _octave_under(low: int, reading: int) -> slice:
    """The bins of the octave under `reading` (a bin), from `low` up: where the lost hiss is read."""
    return slice(max(low, reading // 2), reading + 1)


def _swing(loud: np.ndarray) -> float:
    """How frames' loudness (dB) moves: the 95th minus the 10th percentile."""
    return float(np.quantile(loud, CEILING_QUANTILE) - np.quantile(loud, FLOOR_QUANTILE))


def _lost_hiss_db(reel: _Reel, cut: int, reading: int | None = None) -> float | None:
    """The hiss level to extend above `cut` (the bin of the cut's -3 dB point), or None
    when the input keeps a floor there.

    The floor under the cut (10th percentile over the reel: its quietest moments, read
    over the octave under `reading`, the bin the cut was read at, where the skirt leaves
    the hiss most exposed; `cut` when None) is the print's hiss. Above the cut the input
    either still holds it — a floor that stays flat from twice the cutoff up to the top
    of the spectrum, the hiss added after the cut — or lost it with the signal (silence,
    or filter residue that keeps falling: `FLOOR_FALL_DB`).
    """
    reading = cut if reading is None else reading
    below = reel.floor[_octave_under(reel.low, reading)]
    if below.size == 0:
        return None
    under = power_mean_db(below) + MEDIAN_TO_MEAN_DB
    # Past a codec's band edge the copy holds nothing of the recording: the floor is read
    # under the edge, where its top third of an octave lies clear above the near floor.
    # Where there is no room for that, the hiss is taken as gone with the cut. All that
    # stands past the edge is the damage: a hiss added after the cut, or the residue of
    # one cut with it, which an optical slit leaves nearly flat (its sidelobes), and the two
    # read alike. Read as a kept hiss (until the thirty-third session) the band was
    # restored as over a kept hiss; read as gone, from the lower tail with the hiss
    # extended, and that was better for both. The development set as sources from MP3s
    # (`training.realset --development ... --codec-edge 8500 11000`, 404 items), LSD above
    # the cut: auto, hiss cut 0.7656 -> 0.7608, kept 1.0143 -> 1.0097; true cutoff, kept
    # 0.9712 -> 0.9674; the 7 items that changed each better (slits and one Butterworth-2
    # at 4.5-8 kHz, e.g. 0.883 -> 0.289). A copy made after the damage holds nothing past
    # its edge: there the floor already said the hiss was gone.
    if reel.edge is not None and 2.8 * cut * 2 ** (1 / 3) > reel.edge:
        return under
    top = reel.top if reel.edge is None else reel.edge
    near = reel.floor[min(2 * cut, top - 2) : min(int(2.8 * cut) + 1, top)]
    far = reel.floor[int(top / 2 ** (1 / 3)) : top]
    if near.size and far.size:
        near_db, far_db = power_mean_db(near), power_mean_db(far)
        if abs(near_db - far_db) <= FLAT_FLOOR_DB and far_db + MEDIAN_TO_MEAN_DB >= under - OWN_FLOOR_DB \
                and _floor_fall(reel.floor, min(2 * cut, top - 8), top) <= FLOOR_FALL_DB:
            return None
    return under


def _hiss_seen(reel: _Reel, reading: int, bin_hz: float, seconds: float) -> bool:
    """Whether the floor read under `reading` (a bin) over `seconds` of audio is the print's
    hiss itself: the reel falls silent (`HISS_SEEN_SWING_DB`), long enough to show it
    (`HISS_SEEN_SECONDS`), and the octave under the reading lies above its bass
    (`HISS_SEEN_FROM_HZ`); the swing read over spans of a long reel (`HISS_SEEN_SPAN_SECONDS`)."""
    return reel.span_swing_db >= HISS_SEEN_SWING_DB and seconds >= HISS_SEEN_SECONDS \
        and _octave_under(reel.low, reading).start * bin_hz >= HISS_SEEN_FROM_HZ


def _broadband(reel: _Reel, under: slice, hz: float) -> bool:
    """Whether the reel's mean spectrum over `under` (the octave under a cut read at `hz`) is
    broadband, a hiss rather than tones: `BROADBAND_FROM_HZ`."""
    mean = reel.mean[under]
    return hz >= BROADBAND_FROM_HZ and mean.size > 0 \
        and float(np.mean(mean >= mean.max() - BROADBAND_DB)) >= BROADBAND_SHARE


def _floor_fall(floor: np.ndarray, first: int, stop: int) -> float:
    """How fast `floor` (dB per bin) falls over bins [first, stop): dB per octave, from a
    straight line fitted against log frequency (negative where it rises)."""
    bins = np.arange(max(first, 1), stop)
    return -float(np.polyfit(np.log2(bins), floor[bins], 1)[0])


def codec_edge(profiles: np.ndarray, bin_hz: float) -> int | None:
    """The bin where a codec's brick wall ends the reel's band, or None. Looked for in
    `CODEC_EDGE_HZ`, from the bottom: where the ceiling (95th percentile over the frames of
    sound, per bin) falls by `EDGE_WALL_DB` from the `EDGE_STEP_BINS` under a bin to those
    over it and by `EDGE_DROP_DB` from the 1/12 octave under it to the 1/12 octave over it
    (medians), stays down (within `EDGE_DROP_DB` - 4 dB) for 1/6 octave and lies at most
    `EDGE_DEPTH_DB` under the reel's loudest point, and where nearly every frame steps down
    too (by `EDGE_FRAME_DB` in all but `EDGE_FRAME_QUANTILE` of them). Returned: the first
    bin from there on that has fallen by half of `EDGE_DROP_DB`."""
    rows = sound_frames(profiles)
    if rows is None:
        return None
    ceiling = np.quantile(rows, CEILING_QUANTILE, axis=0)
    loudest = float(ceiling[int(LOWEST_HZ / bin_hz) :].max())
    first = int(CODEC_EDGE_HZ[0] / bin_hz)
    last = min(int(CODEC_EDGE_HZ[1] / bin_hz), int(len(ceiling) / 2 ** (1 / 6)) - 2)
    m = EDGE_STEP_BINS
    for k in range(first, last):
        n = max(m, int(k * (2 ** (1 / 12) - 1)))
        under = float(np.median(ceiling[k - n : k]))
        over = ceiling[k + 2 : max(k + 2 + n, int(k * 2 ** (1 / 6)))]
        if under < loudest - EDGE_DEPTH_DB or under - float(np.median(over[:n])) < EDGE_DROP_DB \
                or under - float(over.max()) < EDGE_DROP_DB - 4.0:
            continue
        # ... and within EDGE_STEP_BINS each side: a brick wall, not a skirt falling fast.
        if float(np.median(ceiling[k - m : k]) - np.median(ceiling[k + 2 : k + 2 + m])) < EDGE_WALL_DB:
            continue
        # A wall cuts every frame alike; music falling there, or one loud tone, does not.
        steps = np.median(rows[:, k - n : k], axis=1) - np.median(rows[:, k + 2 : k + 2 + n], axis=1)
        if float(np.quantile(steps, EDGE_FRAME_QUANTILE)) < EDGE_FRAME_DB:
            continue
        # The wall itself: the first bin from here down by half the step.
        wall = k
        while wall < k + n and ceiling[wall] > under - EDGE_DROP_DB / 2:
            wall += 1
        return wall
    return None


def past_codec_edge(profiles: np.ndarray, bin_hz: float, edge: int) -> np.ndarray:
    """The frame spectra with everything from 1/24 octave under a codec's `edge` up
    replaced by what the reel suggests lay there: each frame's level (power mean) over
    the 1/6 octave under the edge, falling at the slope of the reel's mean spectrum over
    the third of an octave under it (0 to -48 dB/octave)."""
    db = np.asarray(profiles, dtype=np.float64)
    hz = np.arange(db.shape[1]) * bin_hz
    start, under, low = int(edge * 2 ** (-1 / 24)), int(edge * 2 ** (-1 / 6)), int(edge * 2 ** (-1 / 3))
    level = power_mean_db(db[:, under:start], axis=1)
    mean = power_mean_db(db[:, low:start], axis=0)  # the reel's mean spectrum there
    slope = float(np.polyfit(np.log2(hz[low:start] / hz[start]), mean, 1)[0])
    slope = min(max(slope, -48.0), 0.0)
    out = db.copy()
    out[:, start:] = level[:, None] + slope * np.log2(hz[start:] / hz[(start + under) // 2])[None, :]
    return out.astype(np.asarray(profiles).dtype)


def fixed_cut(profiles: np.ndarray, bin_hz: float, hz: float, seconds: float = 0.0,
              reason: str = "set by the user") -> CutoffDecision:
    """A cutoff the user gave, with the hiss floor read from the reel as `find_cut` does."""
    reel = _reel(profiles, bin_hz, codec_edge(profiles, bin_hz), seconds)
    if reel is None:
        return CutoffDecision(float(hz), reason, seconds)
    cut = int(round(hz / bin_hz))
    hiss = _lost_hiss_db(reel, cut)
    return CutoffDecision(float(hz), reason, seconds, hiss, reel_features(reel.mean, bin_hz, hz, hiss is None),
                          reel.floor + MEDIAN_TO_MEAN_DB,
                          holds_hiss=hiss is not None and _hiss_seen(reel, cut, bin_hz, seconds), halves_db=reel.halves)


def find_cut(profiles: np.ndarray, bin_hz: float, locator: CutoffLocator, seconds: float = 0.0,
             lifted: bool = True) -> CutoffDecision:
    """Decide the cutoff of one channel from its frame spectra.

    profiles: (frames, bins) dB, one row per engine frame (`band.band_db`)
    lifted: whether the engine lifts the skirt's residue (`band.merge`; the full framing
    with its lift on). Without the lift the band always begins at the reading: beginning
    under it would only add the model's band over the top of the kept band (real set,
    low-latency framing, 150 items, auto: LSD below the true cutoff 0.110 -> 0.113, the
    input's 0.106).
    """
    edge = codec_edge(profiles, bin_hz)
    got = locator.locate(profiles if edge is None else past_codec_edge(profiles, bin_hz, edge), bin_hz)
    if got is None:
        return CutoffDecision(None, "not enough sound to find a cut", seconds)
    if got.hz is None:
        codec = "" if edge is None else f" under a brick wall at {edge * bin_hz / 1000:.2f} kHz (a codec's band edge)"
        return CutoffDecision(None, f"no cut found ({1.0 - got.p_cut:.0%} sure){codec}", seconds)
    reel = _reel(profiles, bin_hz, edge, seconds)  # the same frames of sound the locator read: not None
    knee = max(1, int(round(got.hz / bin_hz)))  # the bin nearest the estimate (which errs high)
    hz = knee * bin_hz
    if edge is not None and knee >= edge * 2 ** -EDGE_OCTAVES:
        return CutoffDecision(None, f"band ends at {edge * bin_hz / 1000:.2f} kHz in a brick wall (a codec's), "
                                    f"above the {MIN_HZ:g} Hz-{MAX_HZ / 1000:g} kHz range of film losses", seconds)
    # The most likely -3 dB point: the posterior's lower tail / TARGET_RATIO (see below), and
    # whether the hiss went with the cut, read from there.
    low_hz = hz if got.low_hz is None else min(hz, got.low_hz)
    start = int(round(low_hz / TARGET_RATIO / bin_hz))
    hiss = _lost_hiss_db(reel, start, knee)
    wide = MAX_HZ * GENTLE_SPREAD < hz <= MAX_HZ * WIDE_SPREAD and low_hz / TARGET_RATIO <= MAX_HZ \
        and hiss is not None
    if MAX_HZ * HIGH_SPREAD < hz <= MAX_HZ * GENTLE_SPREAD or wide:
        above = reel.ceiling[min(len(reel.ceiling) - 1, int(round(knee * 2 ** (1 / 6))))]
        if float(reel.ceiling[knee] - above) >= CODEC_DROP_DB:
            return CutoffDecision(None, f"band ends at {hz / 1000:.2f} kHz in a brick wall (a codec's), above the "
                                        f"{MIN_HZ:g} Hz-{MAX_HZ / 1000:g} kHz range of film losses", seconds)
    elif not MIN_HZ / LOW_SPREAD <= hz <= MAX_HZ * HIGH_SPREAD:
        where = "below" if hz < MIN_HZ else "above"
        return CutoffDecision(None, f"band ends at {hz / 1000:.2f} kHz, {where} the "
                                    f"{MIN_HZ:g} Hz-{MAX_HZ / 1000:g} kHz range of film losses", seconds)
    under = slice(max(reel.low, knee // 2), knee)
    if float(np.median((reel.ceiling - reel.floor)[under])) < MIN_ACTIVITY_DB \
            and not (hiss is not None and _broadband(reel, under, hz)):
        return CutoffDecision(None, "only steady tones under the band edge, no cut", seconds)
    above = reel.ceiling[int(1.3 * knee) : min(2 * knee, reel.top)]
    if reel.swing_db < STEADY_DB and above.size \
            and float(np.median(reel.ceiling[under]) - np.median(above)) < MIN_STEP_DB:
        return CutoffDecision(None, f"a steady, flat floor around {hz / 1000:.2f} kHz (hiss), no cut", seconds)
    # The floor above the cut is read from its most likely -3 dB point: the posterior's
    # lower tail / TARGET_RATIO (development sets, auto, LSD above the true cutoff with
    # the hiss cut: music 1.109 -> 1.093, speech 1.172 -> 1.129, against the reading /
    # TARGET_RATIO; their gentle slopes 1.224 -> 1.144 and 1.241 -> 1.099). Where the hiss
    # went with the cut, everything between that point and the reading is the skirt's
    # loss, and the band is restored from there (`CutoffDecision.merge_hz`), with the band
    # level's features read there too (as the model's `BandLevel` was fitted, at true
    # cutoffs), at most MAX_MARGIN under the reading (the floor is read from the lower
    # tail itself, as measured). Where the input keeps its hiss, the top of the skirt
    # stands over it as the recording holds it, and the band begins at the reading.
    margin = min(hz * TARGET_RATIO / low_hz, MAX_MARGIN) if hiss is not None and lifted else 1.0
    return CutoffDecision(float(hz), f"{got.p_cut:.0%} sure, learned over {seconds:.1f} s", seconds, hiss,
                          reel_features(reel.mean, bin_hz, hz / margin, hiss is None), reel.floor + MEDIAN_TO_MEAN_DB,
                          margin=margin, holds_hiss=hiss is not None and _hiss_seen(reel, knee, bin_hz, seconds),
                          halves_db=reel.halves)


# Where the print's hiss went with the cut, a hiss added after it (the grain of a later print
# over a recording whose own hiss was cut) can lie flat over the top of the spectrum, under the
# lost one. The lift raises what the input holds above the cut by the cut's loss, and raised so,
# that later hiss, which never went through the cut, stood 30-70 dB over the reference (a speech
# item of the development set, a Butterworth-2 at 0.6 kHz, its hiss cut and one 18 dB quieter
# added: LSD above the cut 3.11 in the input, 4.10 restored). The lift reads the residue over
# it (`later_floor`): the floor over the top octave read (under a codec's edge, or `TOP_HZ`),
# where its thirds of an octave lie within LATER_FLOOR_FLAT_DB of each other, the octave begins
# above twice the band's beginning, and the floor lies at most `OWN_FLOOR_DB` under the lost
# hiss. Deeper it is the recording's own bottom (a 24-bit floor) or the skirt's residue still
# falling, and raising it is what the hiss-cut development items need (the reel's 5th
# percentile above the cut taken off instead: music etc. 0.786 -> 0.850, speech 0.737 -> 0.820;
# the top octave flat within 3 dB but at any depth: 0.797, 0.771). Where there is such a
# floor, a curve the reel's floor reads is followed only as deep as it was read
# (`skirt.fit_floor`'s `later`). Development sets' hiss-cut items with a second hiss added
# after the cut, 10-30 dB under theirs (`training.evaluate --later-hiss 10 30`), LSD above the
# cut, true cutoff / auto: speech (54 items) 1.617 / 1.718 -> 1.553 / 1.580, items worse than
# the input 0 / 1 -> 0 / 0 (the input's 2.362); music etc. (196) 1.220 / 1.266 -> 1.212 / 1.256
# (the input's 2.770); the hiss-cut items as they are: unchanged. Reading the floor above the
# cut from where the band begins as well (the posterior's tail capped at `MAX_MARGIN`) read
# such reels as keeping their hiss and lost their margin (a first check, every second music
# etc. item with another draw of the second hiss: auto 1.331 -> 1.377), and was left.
LATER_FLOOR_FLAT_DB = 3.0


def later_floor(decision: CutoffDecision, bin_hz: float) -> float:
    """The floor a hiss added after the cut left above it, as power per bin (the engine's mean
    STFT power), where the cut took the print's hiss with the signal (`decision.hiss_db`);
    0 where there is none (see `LATER_FLOOR_FLAT_DB`)."""
    if decision.hiss_db is None or decision.floor_db is None or decision.merge_hz is None:
        return 0.0
    top = int(TOP_HZ / bin_hz)
    if decision.halves_db is not None:
        read = np.flatnonzero(np.isfinite(decision.halves_db[0]))
        top = min(top, int(read[-1]) + 1) if read.size else top
    edges = (top * 2.0 ** (-np.arange(3, -1, -1) / 3.0)).astype(int)  # the top octave in thirds
    if edges[0] <= 2 * decision.merge_hz / bin_hz:
        return 0.0
    power = 10.0 ** (decision.floor_db / 10.0)
    thirds = np.array([power[a:b].mean() for a, b in zip(edges[:-1], edges[1:])])
    level = float(thirds.mean())
    if 10.0 * np.log10(thirds.max() / thirds.min()) > LATER_FLOOR_FLAT_DB \
            or 10.0 * np.log10(level) < decision.hiss_db - OWN_FLOOR_DB:
        return 0.0
    return level


# A file's band level is read over the programme around each moment, not over the whole
# reel. `level.BandLevel` was fitted on 8 s items; over minutes a reel's mean spectrum is
# another thing (the power mean of many passages, ruled by the loudest), and a passage unlike
# that mean got a level fitted to none of them. A reel longer than LEVEL_SPAN_SECONDS gets a
# reading every LEVEL_EVERY_SECONDS, each over the span around it (kept inside the reel, and
# at least LEVEL_MIN_FRAMES of the frames the first pass read, which lie further apart on a
# reel longer than `pipeline.MAX_LEARN_FRAMES` frames), and the stream follows them, linearly
# in dB between readings; an item of 8 s or less is read whole, as before. Whole reels of the
# training part (`training.reelcheck`, 4 reels of 3 min x 4 cuts), LSD above the cut with the
# hiss cut, true cutoff / auto: 0.721 / 0.732 -> 0.707 / 0.718; with it kept unchanged. Live,
# the level stays the lock's: read over the last 8 s instead, it came late to each passage
# and made those reels with the hiss cut worse (models/default.md, forty-first session).
# The lost hiss (`CutoffDecision.hiss_db`, the floor under the cut that the band is let reach
# above it: `band.added_band_limit`) is read over the same spans. Over a whole reel that floor
# is its quietest passages', and a loud passage's band was capped at it (whole reels,
# `training.reelcheck`, 8 reels of 3 min x 4 cuts, hiss cut, true cutoff: 0.794 -> 0.765;
# models/default.md, forty-second session). The hold at the print's hiss (`holds_hiss`) keeps
# the reel's reading: there the floor is the hiss itself.
LEVEL_SPAN_SECONDS = 8.0
LEVEL_EVERY_SECONDS = 2.0
LEVEL_MIN_FRAMES = 16
# Where the hiss went with the cut but the reel does not swing like speech (`holds_hiss`),
# its quietest span shows the print's hiss where the floor under the cut there lies as a hiss
# does: within QUIET_SLOPE_DB per octave of flat over the octave under the cut, and smooth
# (its deviation from that line at most QUIET_ROUGH_DB), that octave from HISS_SEEN_FROM_HZ up
# (under it a reel's floor is its bass and hum). The band is then held at that floor
# (`CutoffDecision.held_db`, `band.hold_at_hiss`), without the steeper course that speech gets.
# Music that never falls silent under the cut has a floor there 10-25 dB over its hiss, and
# held at it the band is far too loud; mostly that floor falls or is ragged, not always.
# Whole reels of the training part (`training.reelcheck`, 3 min, hiss cut, whole file), LSD
# above the cut: 8 reels x 4 cuts, true cutoff, 0.765 -> 0.684 (19 better, 4 worse, by up to
# 0.18: a slit's reel whose quiet floor reads flat music); 4 x 4, auto, 0.714 -> 0.689
# (`models/default.md`, forty-second session, with a check on 8 reels this test was not set on).
QUIET_SLOPE_DB, QUIET_ROUGH_DB = 6.0, 1.5


class LevelReading(NamedTuple):
    """One reading of `level_track`: the band's level features and the lost hiss over the
    span centred `seconds` into the stream."""

    seconds: float
    reel: tuple[float, ...]
    hiss_db: float | None
    hiss_flat: bool = False  # the floor under the cut lies flat and smooth, as a hiss does (`_span_hiss_db`)


def level_track(profiles: np.ndarray, bin_hz: float, decision: CutoffDecision,
                frame_seconds: float) -> tuple[LevelReading, ...] | None:
    """The readings of `CutoffDecision.levels` for a reel so decided, from its frame spectra
    (`profiles` (frames, bins) dB, one every `frame_seconds`, the first at 0 s); None where
    the reel is no longer than one span, or no span holds enough sound to read."""
    if decision.hz is None or decision.reel is None:
        return None
    span = max(LEVEL_MIN_FRAMES, int(round(LEVEL_SPAN_SECONDS / frame_seconds)))
    n = len(profiles)
    if n <= span:
        return None
    every = max(1, int(round(LEVEL_EVERY_SECONDS / frame_seconds)))
    starts = list(range(0, n - span, every)) + [n - span]
    reading = max(1, int(round(decision.hz / bin_hz)))
    track = []
    for a in starts:
        rows = sound_frames(profiles[a : a + span])
        if rows is not None:
            features = reel_features(power_mean_db(rows, axis=0), bin_hz, decision.merge_hz, decision.hiss_db is None)
            hiss = None if decision.hiss_db is None else _span_hiss_db(rows, bin_hz, reading)
            level, flat = (decision.hiss_db, False) if hiss is None else hiss
            track.append(LevelReading((a + span / 2) * frame_seconds, features, level, flat))
    return tuple(track) or None


def _span_hiss_db(rows: np.ndarray, bin_hz: float, reading: int) -> tuple[float, bool] | None:
    """The lost hiss's level over these frames (dB): as `_lost_hiss_db` reads it over a reel,
    the floor over the octave under `reading` (a bin), and whether that floor lies as a hiss
    does (`QUIET_SLOPE_DB`, `QUIET_ROUGH_DB`, read from `HISS_SEEN_FROM_HZ` up); None where
    that octave holds too few bins to tell."""
    under = _octave_under(_lowest_bin(bin_hz), reading)
    if under.stop - under.start < 3:
        return None
    smooth = _smooth(rows[:, : min(rows.shape[1], 2 * reading + 2)], SMOOTH_OCTAVES)  # reaches 1/12 octave over
    floor = np.quantile(smooth[:, under], FLOOR_QUANTILE, axis=0)
    octaves = np.log2(np.arange(under.start, under.stop))
    line = np.polyfit(octaves, floor, 1)
    flat = bool(abs(line[0]) <= QUIET_SLOPE_DB and float(np.std(floor - np.polyval(line, octaves))) <= QUIET_ROUGH_DB
                and under.start * bin_hz >= HISS_SEEN_FROM_HZ)  # under it a reel's floor is its bass and hum, as for `holds_hiss`
    return power_mean_db(floor) + MEDIAN_TO_MEAN_DB, flat


def _changed(old: CutoffDecision, new: CutoffDecision) -> bool:
    """Whether a reading parts from a decision: a cut found or lost, read elsewhere, or read
    alike but with the print's hiss gone with it where the decision kept it, or the other
    way round. The band is merged two different ways over the two (`band.LIFT_ALL`, the
    whole residue raised and the hiss extended; `band.LIFT_OVER_FLOOR`, the input's hiss kept):
    a lock that read the hiss wrongly over the first seconds held that reading for the rest
    of the reel while every later reading found the same cut (live, auto, a reel of real music
    cut by a Butterworth-4 at 6 kHz with the hiss after it: LSD above the cut 0.92 against its
    input's 0.51; `training.reelcheck`, models/default.md, forty-first session)."""
    if (old.hz is None) != (new.hz is None):
        return True
    return old.hz is not None and (not 0.85 <= new.hz / old.hz <= 1.18
                                   or (old.hiss_db is None) != (new.hiss_db is None))


def _sustained(run: list[CutoffDecision], current: CutoffDecision, reading: CutoffDecision, needed: int) -> bool:
    """Keep in `run` the readings in a row that part from `current` (a reading that agrees
    with it clears the run); True, and the run cleared, once `needed` of them in a row
    part from it and agree with one another."""
    if not _changed(current, reading):
        run.clear()
        return False
    run.append(reading)
    del run[:-needed]
    if len(run) == needed and not any(_changed(reading, r) for r in run):
        run.clear()
        return True
    return False


# Live, a reel's cutoff is re-read every `check_seconds` two ways (`CutoffLearner`): over
# all of the reel since the last lock (at most REEL_SECONDS, read as at most READ_FRAMES
# frames evenly spread), which refines the lock as the reel goes on, and over the last
# `window_seconds`, which sees a change of reel. Either replaces the lock only when it has
# parted from it in `sustain` (the reel) or CHANGE_SUSTAIN (the last seconds) checks in a
# row, each reading agreeing with the others. Real music of the training part
# (`training.reelcheck --locks --minutes 3 --reels 8`: 8 reels x 6 cuts x 2 variants, and
# uncut), locks per reel and share of the time the cut in use was right (0.95-1.25x):
# re-read over the last 8 s alone and re-locked after 3 checks in a row that parted from
# the lock whatever they read (until the fortieth session), hiss kept 6.71 / 0.472, hiss
# cut 1.58 / 0.785, uncut 3.75 / 0.861; as here 4.04 / 0.517, 1.38 / 0.792, 2.25 / 0.890
# (the whole file's reading: 0.708, 0.854, 1.000).
REEL_SECONDS = 60.0
READ_FRAMES = 120
CHANGE_SUSTAIN = 8


class CutoffLearner:
    """Per-channel cutoff for a stream: learn, lock, refine, re-learn on a change of reel.

    Feed it each frame's spectrum (`observe`); `decisions` holds what to use now (None
    until locked: the engine passes the audio through meanwhile; with `fixed_hz` the
    user's cutoff from the start, and the lock adds the hiss floor read from the reel).
    After `learn_seconds` of sound it locks. It then re-reads the cut every
    `check_seconds` over the reel so far (`REEL_SECONDS` at most) and over the last
    `window_seconds`; a reading of the reel that parts from the lock in `sustain` checks in
    a row, or one of the last seconds that does in `change_sustain` (a new reel), each
    agreeing with the others, is locked. `timeline` lists every lock, with the time.
    """

    def __init__(self, channels: int, bin_hz: float, frame_hop_seconds: float, locator: CutoffLocator,
                 learn_seconds: float = 4.0, window_seconds: float = 8.0,
                 check_seconds: float = 2.0, sustain: int = 3, fixed_hz: float | None = None,
                 lifted: bool = True, reel_seconds: float = REEL_SECONDS, change_sustain: int = CHANGE_SUSTAIN):
        self.channels, self.bin_hz, self.step = channels, bin_hz, frame_hop_seconds
        self.locator = locator  # reads where the cut is (`find_cut`)
        self.lifted = lifted  # whether the engine lifts the skirt's residue (`find_cut`)
        # A cutoff the user set: used from the first frame; learning only reads the hiss floor.
        self.fixed_hz = fixed_hz
        self.learn_frames = max(MIN_FRAMES, int(round(learn_seconds / frame_hop_seconds)))
        self.check_frames = max(1, int(round(check_seconds / frame_hop_seconds)))
        self.window = max(self.learn_frames, int(round(window_seconds / frame_hop_seconds)))
        self.reel_frames = max(self.window, int(round(reel_seconds / frame_hop_seconds)))
        self.sustain, self.change_sustain = sustain, change_sustain
        self.frozen = False  # set by `lock`: decided from the whole file, never re-learned
        # Every lock, per channel, with its stream time; kept across `reset` for reports.
        self.timeline: list[dict] = []
        self.reset()

    def reset(self) -> None:
        """Start learning a new stream (the timeline of earlier locks is kept)."""
        self.history: list[deque] = [deque(maxlen=self.reel_frames) for _ in range(self.channels)]
        provisional = None if self.fixed_hz is None else CutoffDecision(float(self.fixed_hz), "set by the user")
        self.decisions: list[CutoffDecision | None] = [provisional] * self.channels
        self._locked = [False] * self.channels
        self.frames = 0
        # Per channel, the readings in a row that part from the lock: of the reel, of the last seconds.
        self._reel_run: list[list[CutoffDecision]] = [[] for _ in range(self.channels)]
        self._recent_run: list[list[CutoffDecision]] = [[] for _ in range(self.channels)]

    @property
    def seconds(self) -> float:
        return self.frames * self.step

    @property
    def latest(self) -> list[CutoffDecision | None]:
        """Per channel, the decision in use, or else the last one locked (after `reset`)."""
        last: list[CutoffDecision | None] = [None] * self.channels
        for event in self.timeline:
            last[event["channel"]] = CutoffDecision.from_event(event)
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
            if not self._locked[c]:
                if len(self.history[c]) >= self.learn_frames:
                    self._lock(c, self._decide(np.stack(self.history[c])))
            elif self.fixed_hz is None and self.frames % self.check_frames == 0 \
                    and len(self.history[c]) >= self.learn_frames:
                self._check(c)
        return self.decisions

    def _check(self, c: int) -> None:
        """Re-read channel `c`'s cut over the last seconds and over the reel; lock a sustained change."""
        rows, current = np.stack(self.history[c]), self.decisions[c]
        recent = self._decide(rows[-self.window :])
        if _sustained(self._recent_run[c], current, recent, self.change_sustain):  # a new reel
            self._lock(c, recent)
            for _ in range(max(0, len(rows) - self.window)):  # the reel begins with the last seconds
                self.history[c].popleft()
            return
        if len(rows) > self.window:  # the reel so far: more than the last seconds
            whole = self._decide(rows)
            if _sustained(self._reel_run[c], current, whole, self.sustain):
                self._lock(c, whole)

    def _decide(self, rows: np.ndarray) -> CutoffDecision:
        seconds = len(rows) * self.step
        if len(rows) > READ_FRAMES:  # evenly spread over the reel: more adds time, not certainty
            rows = rows[np.linspace(0, len(rows) - 1, READ_FRAMES).round().astype(int)]
        if self.fixed_hz is not None:
            return fixed_cut(rows, self.bin_hz, self.fixed_hz, seconds)
        return find_cut(rows, self.bin_hz, self.locator, seconds, self.lifted)

    def _lock(self, c: int, decision: CutoffDecision) -> None:
        self.decisions[c] = decision
        self._locked[c] = True
        self._reel_run[c].clear()
        self._recent_run[c].clear()
        self.timeline.append(dict(at_seconds=round(self.seconds, 3), channel=c, **decision.to_dict()))
