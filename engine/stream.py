"""The streaming restorer: any block size in, restored audio out, one code path.

    input  ──► frames of F samples every H = F·(1 - overlap) samples
           ──► STFT ─► model ─► band merge ─► iSTFT
           ──► synthesis window (sums to one) ─► overlap-add ─► output

Output sample n is the restored input sample n: `feed` returns whatever has become final,
`flush` the rest, so concatenating every return value gives exactly as many samples as
were fed, aligned with them. A sample's restored value leaves `feed` once
``latency_samples`` further samples have entered (see `latency_samples`).

Offline processing is this object fed with large blocks; there is no other path.

Two framings (`StreamConfig.latency`). "full": each sample is restored from frames
centred around it (about a frame of latency, 0.5 s). "low": a frame still covers the
last 0.5 s, but it ends `lookahead` samples after the newest hop it restores; frames
start every `low_hop` samples, and only their newest hop (plus a short crossfade) is
played — the synthesis window is zero everywhere else. Both are one code path: a frame,
a synthesis window whose copies sum to one, and overlap-add; the latency is always
``frame - (first sample the window weighs) - 1``.

The recording and the band the model adds are overlap-added separately; `feed` returns
their sum (the render) and leaves the added band of the same samples in `added`, so a
monitor can let the listener hear the recording alone, the band alone or another amount
without touching what is rendered.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np

from .band import (COURSE_FROM_HZ, KEPT_BAND_DB, LIFT_ALL, LIFT_NONE, LIFT_OVER_FLOOR, LIMIT_LEVEL_HZ, SKIRT_ANCHORS,
                   added_band_limit, band_db, hold_at_hiss, limit_band, merge, merge_gains, steepen_course, window_leakage)
from .contract import Contract
from .cutoff import SMOOTH_OCTAVES, CutoffDecision, CutoffLearner, later_floor
from .locator import CutoffLocator
from .model import ModelError, OnnxModel
from .skirt import LOBES_AGREE, LOBES_MIN_HZ, N_CURVES, SkirtFit, fit_floor, fit_lobes, skirt_family, sought_families
from .stft import StftPlan


@dataclass(frozen=True)
class StreamConfig:
    """How the engine frames and merges; everything else comes from the model."""

    # Fraction of each frame shared with the next. 0.5 hides frame edges under a Hann-like
    # crossfade at half the compute of 0.75; 0 is cheapest but lets frame seams through.
    overlap: float = 0.5
    # Where the surviving band ends, in Hz; None learns it per channel from the reel
    # (`cutoff.CutoffLearner`: passes the audio through until it has locked a cut).
    cutoff_hz: float | None = None
    # 0 = the input as it is, 1 = fully restored above the cutoff.
    mix: float = 1.0
    # Bins over which the restored band fades in above the cutoff (10 bins = 234 Hz at 48 kHz).
    fade_bins: int = 10
    # Samples at each frame end left out of the overlap-add, in half-FFTs: there the STFT
    # reflects the frame and the model sees an edge. Shrinks when the overlap is too small.
    edge_margin: int = 1
    # Frames restored per model call when a large block arrives (times channels = batch).
    max_batch_frames: int = 8
    # Pass the input through untouched (still delayed by the latency, so toggling is seamless).
    bypass: bool = False
    # "full": frames centred on what they restore (latency about a frame); "low": frames
    # that end `lookahead` samples after the hop they restore, every `low_hop` samples,
    # crossfaded over `low_crossfade` (latency lookahead + low_hop + low_crossfade - 1;
    # `overlap` and `edge_margin` are then unused). lookahead None: the one the model was
    # trained for (its metadata ``lookahead_samples``), else `DEFAULT_LOOKAHEAD`.
    latency: str = "full"
    low_hop: int = 512
    lookahead: int | None = None
    low_crossfade: int = 256
    # Lift the signal's residue above the cutoff towards the model's level (`band.merge`);
    # False: the model's band is only added. "full" framing only: the columns "low" plays
    # lie within half an FFT of the frame's end, where the STFT sees the frame's edge, and
    # a lift would raise that edge's leakage with the residue.
    lift: bool = True

    def __post_init__(self):
        if not 0.0 <= self.overlap < 1.0:
            raise ValueError(f"overlap: expected 0 <= overlap < 1, got {self.overlap}")
        if not 0.0 <= self.mix <= 1.0:
            raise ValueError(f"mix: expected 0 <= mix <= 1, got {self.mix}")
        if self.cutoff_hz is not None and self.cutoff_hz < 0:
            raise ValueError(f"cutoff: expected a frequency >= 0 Hz, got {self.cutoff_hz}")
        if self.max_batch_frames < 1:
            raise ValueError(f"max_batch_frames: expected >= 1, got {self.max_batch_frames}")
        if self.latency not in ("full", "low"):
            raise ValueError(f"latency: expected 'full' or 'low', got {self.latency!r}")
        if self.low_hop < 1 or (self.lookahead or 0) < 0 or not 0 <= self.low_crossfade <= self.low_hop:
            raise ValueError(f"low latency: expected low_hop >= 1, lookahead >= 0 and 0 <= low_crossfade <= low_hop, "
                             f"got {self.low_hop}, {self.lookahead}, {self.low_crossfade}")

    @property
    def lifts(self) -> bool:
        """Whether the merge lifts the skirt's residue: `lift` on, in the full framing."""
        return self.lift and self.latency == "full"


DEFAULT_LOOKAHEAD = 512  # samples of future a low-latency frame holds, for a model that does not say

# Before a file is restored, the lift's sums for the reel (`band.merge`'s `reel_sums`, which
# set one gain per bin for the residue of the signal above the cut) are read over its first
# this many seconds (`StreamRestorer.prime_lift`: those seconds restored once more, the output
# dropped); they go on growing as the reel plays. Without it (live, as ever) the gain is read
# from the first frames alone, and a reel's start, often a pause or an intro, sets it apart
# from its programme: real speech cut by a slit at 108 Hz with its hiss, the residue at 1.8 kHz
# raised 36 dB in the first 0.5 s, 50 dB to 1.1 s, 64 dB from there on (on the development sets'
# 6-8 s items, a quarter of what STOI reads). The speech development set (the training voices'
# held-out takes, hiss cut, 54 items; with `band._mean_without_loudest` for the click guard),
# true cutoff / auto: STOI against the input's +0.0030 / +0.0037 -> +0.0053 / +0.0059 (recipe's
# model; 150 Hz -0.017 / -0.003 -> -0.003 / +0.014), +0.0047 / +0.0052 -> +0.0073 / +0.0075
# (2.3); LSD above the cut 0.7194 / 0.6942 -> 0.6979 / 0.6855 and 0.7215 / 0.6977 -> 0.6991 /
# 0.6871; with the hiss kept within 0.001 in both. The items are shorter than this: read whole.
# Its cost: the model over these seconds once more, a sixth more for a 60 s reel.
LIFT_PRIME_SECONDS = 10.0


def effective_margin(frame: int, hop: int, margin: int) -> int:
    """The edge margin a frame/hop pair can hide under its overlap."""
    return max(0, min(margin, (frame - hop) // 2))


def synthesis_window(frame: int, hop: int, margin: int = 0) -> np.ndarray:
    """A window whose copies every `hop` samples sum to exactly one.

    Zero over `margin` samples at each end (where a frame's STFT sees its reflect padding
    and the model its edges), then a Tukey window over the rest — flat top, raised-cosine
    tapers as long as the overlap allows, sampled at half-sample offsets so no tap inside
    is zero — divided by the periodic sum of its shifted copies. The margin shrinks when
    the overlap is too small to hide it. With 50 % overlap and no margin this is the
    periodic Hann window.
    """
    margin = effective_margin(frame, hop, margin)
    inner = frame - 2 * margin
    taper = min(inner - hop, inner // 2)
    window = np.zeros(frame)
    window[margin : frame - margin] = 1.0
    if taper > 0:
        ramp = np.sin(0.5 * np.pi * (np.arange(taper) + 0.5) / taper) ** 2
        window[margin : margin + taper] = ramp
        window[frame - margin - taper : frame - margin] = ramp[::-1]
    total = np.zeros(hop)
    for start in range(0, frame, hop):
        piece = window[start : start + hop]
        total[: piece.size] += piece
    return window / np.resize(total, frame)


def tail_window(frame: int, hop: int, lookahead: int, crossfade: int) -> np.ndarray:
    """The low-latency synthesis window: zero except for the `hop` + `crossfade` samples
    that end `lookahead` samples before the frame's end, raised-cosine tapers of
    `crossfade` samples at both ends (sampled at half-sample offsets), so that copies every
    `hop` samples sum to exactly one."""
    if lookahead + hop + crossfade > frame:
        raise ValueError(f"low latency: lookahead {lookahead} + hop {hop} + crossfade {crossfade} samples "
                         f"exceed the model's frame of {frame}")
    stop = frame - lookahead
    start = stop - hop - crossfade
    window = np.zeros(frame)
    window[start:stop] = 1.0
    if crossfade:
        ramp = np.sin(0.5 * np.pi * (np.arange(crossfade) + 0.5) / crossfade) ** 2
        window[start : start + crossfade] = ramp
        window[stop - crossfade : stop] = ramp[::-1]  # ramp + its reverse shifted by `hop` = 1
    return window


def played_columns(contract: Contract, lookahead: int, config: StreamConfig = StreamConfig(latency="low")) -> slice:
    """The STFT columns of a frame that reach what the low-latency framing plays of it
    (its newest `config.low_hop` samples and crossfade, ending `lookahead` samples before
    the frame's end): what a model trained for that framing is judged on and restores."""
    stop = contract.frame_length - lookahead
    first, last = StftPlan.from_contract(contract).columns_covering(stop - config.low_hop - config.low_crossfade, stop)
    return slice(first, last)


def crossfade_gains(a: np.ndarray, b: np.ndarray, wa: np.ndarray, wb: np.ndarray) -> np.ndarray:
    """Gain (C, L) on ``wa·a + wb·b`` that keeps a crossfade's level where it should be.

    a, b: (C, L) the two frames' signals over their overlap, unweighted; wa, wb: (L,)
    amplitude weights that sum to one. Correlated signals (ρ = 1: the same recording,
    a band copied from it) add in amplitude and need no gain; uncorrelated ones (ρ = 0:
    two draws of noise) add in power and would dip by 1/(wa² + wb²), 3 dB mid-way. With
    Pa, Pb their powers and ρ their correlation (clipped to [0, 1]) over the overlap, the
    crossfade is brought to the level of an amplitude crossfade of correlated signals:

        g² = (wa·√Pa + wb·√Pb)² / (wa²·Pa + wb²·Pb + 2·ρ·wa·wb·√(Pa·Pb))

    so g = 1 at ρ = 1, a fade from silence stays the window's own fade, and two equal
    noises keep their power all the way across.
    """
    pa = np.mean(a.astype(np.float64) ** 2, axis=1, keepdims=True)  # (C, 1)
    pb = np.mean(b.astype(np.float64) ** 2, axis=1, keepdims=True)
    cross = np.mean(a.astype(np.float64) * b, axis=1, keepdims=True)
    rho = np.clip(cross / np.maximum(np.sqrt(pa * pb), 1e-30), 0.0, 1.0)
    wa, wb = wa.astype(np.float64)[None, :], wb.astype(np.float64)[None, :]
    target = (wa * np.sqrt(pa) + wb * np.sqrt(pb)) ** 2
    actual = wa**2 * pa + wb**2 * pb + 2.0 * rho * wa * wb * np.sqrt(pa * pb)
    gain = np.sqrt(np.divide(target, actual, out=np.ones_like(target), where=actual > 1e-30))
    return gain.astype(np.float32)


# The offset that keeps a stream's continuation joined to it (`_continue`) fades out over
# this many seconds: long enough to leave no kink, short enough to leave no step or DC.
CONTINUE_FADE_S = 0.01


def _continue(x: np.ndarray, n: int, fade: int) -> np.ndarray:
    """n samples continuing `x` (channels, m) past its last sample: `x` played backwards
    from there, upside down (bouncing back and forth if n > m - 1), plus twice the last
    sample fading out over `fade` samples (a raised cosine). Its first samples are the
    point reflection about the last one, so level and slope go on unbroken: a plain mirror
    breaks the slope, and the kink is broadband, "sound" above a cut in the frame's first
    columns (the band added there came out up to 14 dB too loud); and the offset is gone
    before it can read as a step or as DC. (channels, n)."""
    last, body = x[:, -1:], x[:, -2::-1]  # the samples before the last, newest first
    if body.shape[1] == 0:
        return np.zeros((x.shape[0], n), dtype=x.dtype)
    there_and_back = np.concatenate([body, body[:, ::-1]], axis=1)
    reps = -(-n // there_and_back.shape[1])  # ceil
    k = np.arange(n)
    offset = np.where(k < fade, 0.5 + 0.5 * np.cos(np.pi * k / max(fade, 1)), 0.0).astype(x.dtype)
    return np.ascontiguousarray(2.0 * last * offset - np.tile(there_and_back, (1, reps))[:, :n])


def _same(held: tuple, decisions: list) -> bool:
    """Whether these are the very decisions something was worked out for."""
    return len(held) == len(decisions) and all(a is b for a, b in zip(held, decisions))


class StreamRestorer:
    """Restores a multichannel stream block by block.

    >>> r = StreamRestorer(model, channels=2)
    >>> out = [r.feed(block) for block in blocks]   # block: (channels, n) float32, any n
    >>> out.append(r.flush())                       # the tail; r is reset afterwards
    """

    def __init__(self, model: OnnxModel, channels: int, config: StreamConfig = StreamConfig()):
        if channels < 1:
            raise ValueError(f"channels: expected >= 1, got {channels}")
        spec = model.spec
        if config.lookahead is None:
            trained = spec.lookahead_samples
            config = replace(config, lookahead=DEFAULT_LOOKAHEAD if trained is None else trained)
        self.model, self.channels, self.config = model, channels, config
        self.sample_rate = spec.sample_rate
        self.frame_length = F = spec.frame_length
        self.plan = StftPlan.from_contract(spec)
        if config.latency == "low":
            self.hop = config.low_hop
            window = tail_window(F, self.hop, config.lookahead, config.low_crossfade)
        else:
            self.hop = max(1, int(round(F * (1.0 - config.overlap))))
            margin = effective_margin(F, self.hop, config.edge_margin * spec.n_fft // 2)
            window = synthesis_window(F, self.hop, margin)
        self.window = window.astype(np.float32)
        weighed = np.flatnonzero(window > 0)
        # The samples of a frame its window weighs: [start, stop). "full": all but a margin
        # of half an FFT at each end, where the STFT sees the frame's edge; "low": the
        # newest hop and its crossfade, `lookahead` before the end.
        self.start, self.stop = int(weighed[0]), int(weighed[-1]) + 1
        # At most two frames overlap: the added band is crossfaded by `crossfade_gains`.
        self._pairwise = self.stop - self.start <= 2 * self.hop
        # Frames the cutoff learner reads: low latency, one per half frame (not 47 a second).
        self._learn_every = max(1, int(round(0.5 * F / self.hop))) if config.latency == "low" else 1
        # Only the STFT columns that reach [start, stop) are merged and inverted (low
        # latency: 4 of 47); the rest of a frame's added band is never heard.
        first, last, self._span_plan = self.plan.span_plan(self.start, self.stop)
        self._columns = slice(first, last)
        # A model that restores only a frame's newest columns must restore all these.
        self._restored_from = 0  # the frame's first column the model returns
        if spec.restored_columns is not None:
            self._restored_from = self.plan.n_frames - spec.restored_columns
            if config.latency != "low" or first < self._restored_from:
                raise ModelError(f"model {model.path.name} restores only the newest {spec.restored_columns} STFT "
                                 f"columns of a frame (made for --latency low, look-ahead "
                                 f"{spec.lookahead_samples} samples); this framing plays columns {first}-{last - 1} "
                                 f"of {self.plan.n_frames}: use --latency low with its look-ahead or another model")
        self._no_band = np.zeros((channels, self.stop - self.start), dtype=np.float32)  # a frame that adds nothing
        self.bin_hz = spec.bin_hz
        # For the merge's lift: what the window leaks, and the STFT frames clear of the frame's edges.
        self._leakage = window_leakage(self.plan.window, self.plan.n_bins)
        self._fade = int(round(CONTINUE_FADE_S * spec.sample_rate))  # see `_continue`
        half = spec.n_fft // 2
        self._inner = slice(-(-half // self.plan.hop), (F - half) // self.plan.hop + 1)
        self.learner = CutoffLearner(channels, self.bin_hz, self._learn_every * self.hop / spec.sample_rate,
                                     CutoffLocator.load(), fixed_hz=config.cutoff_hz,
                                     lifted=config.lifts)
        # The locked decisions with the cut's curve each one's reel read (`lock_cutoffs`).
        self._skirt_fits: list[tuple[CutoffDecision | None, SkirtFit | None]] = []
        # The locked decisions and the lift's sums `prime_lift` read for them: where `_lifts`
        # begins a reel's sums for those decisions, it begins from these.
        self._lift_primed: tuple[tuple, np.ndarray] | None = None
        # Live controls, read once per frame: a change takes effect at the next frame and
        # the overlap-add crossfades it, so toggling is click-free by construction.
        self.mix, self.bypass = config.mix, config.bypass
        self.frames_restored = 0  # model frames run so far (kept across `reset`, for reports)
        self.reset()

    # -- derived figures -------------------------------------------------------------
    @property
    def latency_samples(self) -> int:
        """Input samples that must follow a sample before its restored value is returned.

        Frames start every `hop` samples and a sample is final once the last frame that
        weighs it is complete. A frame weighs nothing before `start`, so for the first
        sample of a hop that frame ends ``frame_length - start - 1`` samples later ("full":
        a frame less its edge margin; "low": lookahead + hop + crossfade). Feeding blocks
        of B samples adds up to B - 1.
        """
        return self.frame_length - self.start - 1

    @property
    def latency_seconds(self) -> float:
        return self.latency_samples / self.sample_rate

    def warm_up(self) -> None:
        """Run one silent frame through every stage (numba kernels load, ONNX Runtime
        allocates) without touching the stream, so the first real frame is not slow —
        live, before the sound card starts."""
        frames = np.zeros((self.channels, self.frame_length), dtype=np.float32)
        spectrum = self.plan.forward(frames)
        self.model.run(spectrum, np.full(self.channels, 0.25 * self.sample_rate / 2, dtype=np.float32),
                       np.zeros(self.channels, dtype=np.float32))
        self.plan.inverse(spectrum)
        band_db(spectrum)

    def seconds_per_hop(self, hops: int = 12) -> float:
        """Compute for one hop of every channel on this machine: a throwaway restorer with
        this one's model and framing restores `hops` hops of noise after a first frame
        (warmed up; the median hop). Live, more than the hop itself (`hop / sample_rate`)
        cannot keep up."""
        probe = StreamRestorer(self.model, self.channels, replace(self.config, cutoff_hz=0.25 * self.sample_rate / 2,
                                                                  bypass=False, mix=1.0))
        probe.warm_up()
        F, H = self.frame_length, self.hop
        noise = 0.01 * np.random.default_rng(0).standard_normal((self.channels, F + hops * H)).astype(np.float32)
        probe.feed(noise[:, :F])
        times = []
        for k in range(hops):
            t0 = time.perf_counter()
            probe.feed(noise[:, F + k * H : F + (k + 1) * H])
            times.append(time.perf_counter() - t0)
        return float(np.median(times))

    # -- the cutoff ------------------------------------------------------------------
    @property
    def cutoffs(self) -> list[CutoffDecision | None]:
        """What each channel uses now (or last used, once the stream is flushed); None =
        still learning (passed through meanwhile)."""
        return self.learner.latest

    @property
    def cutoff_timeline(self) -> list[dict]:
        """Every cutoff locked so far, with the stream time, per channel."""
        return list(self.learner.timeline)

    def lock_cutoffs(self, decisions: list[CutoffDecision]) -> None:
        """Use these per-channel decisions for the whole stream (learned from a whole
        file beforehand, see `restore.learn_cutoffs`) instead of learning as it plays.
        Where a channel shows its hiss or a slit's lobes, the cut's curve they read is fitted
        here, once, before the first sample (`_read_skirt`; about 0.2 s a channel, off the audio path)."""
        self.learner.lock(decisions)
        self._skirt_fits = [(d, self._read_skirt(d)) for d in decisions]
        self._lift_primed = None

    def prime_lift(self, blocks: Iterable[np.ndarray]) -> None:
        """Read the lift's sums for each reel over the recording's first `LIFT_PRIME_SECONDS`
        before it is restored (a file's first pass, after `lock_cutoffs`; `blocks` (channels,
        n) from its start): the stream then lifts the residue above the cut from its first
        frame by the gain the reel's programme sets, not by what its first frames alone hold.
        Those seconds are restored once (the model runs over them), the output is dropped and
        the stream begins again. Nothing is done where no channel lifts."""
        decisions = tuple(self.learner.decisions)
        if (not self.config.lifts or self.bypass or self.mix == 0.0
                or not any(d is not None and d.hz is not None and d.floor_db is not None for d in decisions)):
            return
        wanted = int(round(LIFT_PRIME_SECONDS * self.sample_rate))
        fed = 0
        for block in blocks:
            take = block[:, : wanted - fed]
            self.feed(take)
            fed += take.shape[1]
            if fed >= wanted:
                break
        sums = self._lift_sums  # `flush` ends in `reset`, which begins new ones
        self.flush()
        self._lift_primed = (decisions, sums)

    # -- streaming API ---------------------------------------------------------------
    def reset(self) -> None:
        """Forget all pending audio; the next `feed` starts a new stream."""
        F, H, C = self.frame_length, self.hop, self.channels
        # Frames start every H samples on a grid that begins F - H samples before the
        # stream, so sample 0 is already covered by every frame it would be in mid-stream
        # (the window sum is one from the first sample). In the full framing the lead is
        # the stream's start continued backwards (`_continue`, once the first frame is
        # here), not silence: a model judges level over the frame, and with half of it
        # silent the band of every recording's first 0.1 s came out 3-11 dB dark (a steady
        # reel cut at 3 kHz, the default model; now within 1 dB). On the speech
        # development set's excerpts of 0.6-1.8 s, true cutoff, hiss cut: LSD above the cut
        # 1.226 -> 1.114, STOI 0.889 -> 0.894 (the input's 0.909); a plain mirror: 1.114,
        # but its kink made the band at the joint up to 14 dB loud; the point reflection
        # without the fade 1.108, but a reel that ends on a loud bass peak then carries
        # that peak's DC through the padding (its last 0.25 s restored 1.2 dB loud, with
        # the fade 0.5 dB). In the low-latency
        # framing the first frame holds one hop of the stream, too little to continue: the
        # lead stays silent (continued 512 samples, the band of the first 0.5 s came out
        # 5 dB dark).
        self._lead = F - H
        # After a frame is overlap-added, its first H + start samples are final (the next
        # frame weighs nothing before its `start`); the first `_emitted` of them went out
        # with the previous frame.
        self._emitted = 0
        self._frame = np.zeros((C, F), dtype=np.float32)
        self._fill = self._lead
        self._frames_started = 0  # complete frames so far; frame k starts at stream sample k·H - lead
        self._acc = np.zeros((C, F), dtype=np.float32)  # the recording through the window
        self._acc_band = np.zeros((C, F), dtype=np.float32)  # the added band, crossfaded
        self.added = np.zeros((C, 0), dtype=np.float32)  # the band in the last returned samples
        self._to_drop = self._lead
        self._fed = 0
        self._returned = 0
        self._ready: list[np.ndarray] = []
        # The previous frame's added band where it overlaps the next frame, unweighted: it
        # is crossfaded once that frame is here (see `_overlap_add`).
        self._tail = np.zeros((C, max(0, self.stop - self.start - H)), dtype=np.float32)
        self._frames_seen = 0  # frames whose cutoff was decided since the stream began
        self._gain_for: tuple = ()  # the decisions `_gains`, `_held`, `_steep` were worked out for (`_band_levels`)
        self._gains: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # per channel: `_level_course`
        self._held: list[float] = []  # per channel, the level its band is held at, dB (-inf: none)
        self._steep: list[bool] = []  # per channel, whether its band's course is made steeper
        self._lift_for: tuple = ()  # the decisions `_lift_codes`/`_lift_floor` were worked out for (`_lifts`)
        self._lift_codes = np.zeros(0, dtype=np.int8)  # per channel: LIFT_*
        self._lift_floor = np.zeros((0, 0))  # per channel: the floor kept above the cut, power per bin
        # Per channel, what its LIFT_ALL frames have summed so far (`band.merge`'s reel_sums):
        # one lift gain per bin for the reel, begun again with every new decision.
        self._lift_sums = np.zeros((C, 3, self.plan.n_bins))
        # Per channel, the curves its cut's loss may follow (`skirt.skirt_family`), ln power per bin,
        # at each of the anchors the lift fits them at (`band.SKIRT_ANCHORS`).
        self._lift_skirts = np.zeros((C, len(SKIRT_ANCHORS), N_CURVES, self.plan.n_bins))
        # Per channel, how deep its cut's loss was read from the reel itself (dB; 0: not read;
        # `skirt.fit_floor`, `skirt.fit_lobes`): its `_lift_skirts` then hold that one curve,
        # followed as `band.skirt_rules` says.
        self._lift_followed = np.zeros(C)
        self._previous: np.ndarray | None = None  # the last frame's spectrum, (C, 2, bins, T)
        self._spectra = [np.empty(0, dtype=np.float32)] * 2  # see `_spectra_out`
        self._keep: tuple[np.ndarray, np.ndarray] | None = None  # (cutoffs in Hz, their merge gains)
        self._flip = 0
        if not self.learner.frozen:
            self.learner.reset()

    def feed(self, block: np.ndarray) -> np.ndarray:
        """block: (channels, n) float32 -> (channels, m) restored samples that are final;
        `added` then holds the band the model added to them (render = recording + added)."""
        if block.ndim != 2 or block.shape[0] != self.channels:
            raise ValueError(f"expected a (channels={self.channels}, n) block, got {block.shape}")
        self._fed += block.shape[1]
        out, self.added = self._push(block)
        return out

    def flush(self) -> np.ndarray:
        """Return the rest of the stream and reset.

        The last frames are completed with the recording continued past its end
        (`_continue`) rather than with silence: a model judges level and
        hiss floor over the whole frame, and a frame that is half digital silence would
        make it restore the end of every reel too dark. The padding itself is never
        returned. (The frames before the stream's first hop are completed alike, with its
        start continued backwards: `_push`.)
        """
        missing = self._fed - self._returned
        pieces, bands = [], []
        if missing > 0:
            padding = self._mirror(missing + self.frame_length)  # (channels, n)
            for start in range(0, padding.shape[1], self.hop):
                out, band = self._push(padding[:, start : start + self.hop])
                pieces.append(out[:, :missing])
                bands.append(band[:, :missing])
                missing -= out.shape[1]
                if missing <= 0:
                    break
        self.reset()
        if not pieces:
            return self.added
        self.added = np.concatenate(bands, axis=1)
        return np.concatenate(pieces, axis=1)

    def _mirror(self, n: int) -> np.ndarray:
        """n samples continuing the stream past its end (`_continue`): (channels, n)."""
        recent = self._frame[:, : self._fill]  # the newest input, oldest first
        real = min(self._fed, self._fill)  # a short stream: not the lead before it
        recent = recent[:, self._fill - real :] if real else np.zeros((self.channels, 1), np.float32)
        return _continue(recent, n, self._fade)

    # -- internals -------------------------------------------------------------------
    def _push(self, block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Frame `block`, restore complete frames; (render, added band) that became final."""
        F, H = self.frame_length, self.hop
        pos, n = 0, block.shape[1]
        outputs: list[np.ndarray] = []
        while pos < n:
            take = min(F - self._fill, n - pos)
            self._frame[:, self._fill : self._fill + take] = block[:, pos : pos + take]
            self._fill += take
            pos += take
            if self._fill == F:
                if self._frames_started == 0 and self.config.latency == "full":  # the lead: see `reset`
                    back = min(self._lead, F - self._lead)  # as far back as the frame reaches forwards
                    self._frame[:, self._lead - back : self._lead] = _continue(
                        self._frame[:, : self._lead - 1 : -1], back, self._fade)[:, ::-1]
                self._ready.append(self._frame.copy())
                self._frames_started += 1
                self._frame[:, : F - H] = self._frame[:, H:]
                self._fill = F - H
                if len(self._ready) == self.config.max_batch_frames:
                    outputs += self._restore_ready()
        outputs += self._restore_ready()
        return self._collect(outputs)

    def _collect(self, outputs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(2, C, n) pieces (recording, band) -> (render, band), the lead dropped."""
        if not outputs:
            empty = np.zeros((self.channels, 0), dtype=np.float32)
            return empty, empty
        parts = outputs[0] if len(outputs) == 1 else np.concatenate(outputs, axis=2)
        if self._to_drop:
            drop = min(self._to_drop, parts.shape[2])
            parts = parts[:, :, drop:]
            self._to_drop -= drop
        self._returned += parts.shape[2]
        band = parts[1]
        return parts[0] + band, band

    def _restore_ready(self) -> list[np.ndarray]:
        """Restore the complete frames waiting in `_ready`; return their final hops."""
        if not self._ready:
            return []
        frames = np.stack(self._ready)  # (N, C, F)
        first = self._frames_started - len(self._ready)  # the waiting frames are the newest ones
        index = np.arange(first, self._frames_started, dtype=np.int64)
        starts = np.repeat(index * self.hop - self._lead, self.channels)  # stream samples, (N·C,) frame-major
        self._ready.clear()
        n, c, F = frames.shape
        added = self._restore_frames(frames.reshape(n * c, F), starts)
        added = added.reshape(n, c, -1) if added is not None else None
        H, start, stop = self.hop, self.start, self.stop
        final = H + start
        window = self.window[start:stop]
        outputs = []
        for i, dry in enumerate(frames):  # overlap-add, one frame at a time, in order
            # the window is zero outside [start, stop): only that span is added, and only
            # what is not yet final (from `start` on) moves with the frame grid
            self._acc[:, start:stop] += dry[:, start:stop] * window
            self._overlap_add(added[i] if added is not None else None)
            outputs.append(np.stack([self._acc[:, self._emitted : final], self._acc_band[:, self._emitted : final]]))
            self._emitted = final - H  # what went out before `start`, once the buffer shifts
            for acc in (self._acc, self._acc_band):
                acc[:, start : F - H] = acc[:, start + H :]
                acc[:, F - H :] = 0.0
        self.frames_restored += n
        return outputs

    def _overlap_add(self, added: np.ndarray | None) -> None:
        """Overlap-add one frame's added band over the samples its window weighs, [start,
        stop) of the frame, (C, stop - start), into `_acc_band` (None: nothing added).

        The recording goes through the synthesis window, which sums to one. The added
        band cannot: where the model invents it (a noise excitation), two frames' bands
        are uncorrelated and an amplitude crossfade dips their power by up to 3 dB in the
        middle of every overlap, a level that pumps at the hop rate. With at most two
        frames overlapping, the tail of the previous frame waits in `_tail` until this
        frame is here, and the pair is crossfaded with `crossfade_gains`; with more
        overlap, the synthesis window alone.
        """
        H, start, stop = self.hop, self.start, self.stop
        acc = self._acc_band
        if not self._pairwise:
            if added is not None:
                acc[:, start:stop] += added * self.window[start:stop]
            return
        if added is None:
            added = self._no_band
        shared = max(start, stop - H)  # [start, shared): where the previous frame still weighs
        a, b = self._tail, added[:, : shared - start]  # both (C, stop - start - H)
        if a.shape[1]:
            wa, wb = self.window[start + H : stop], self.window[start:shared]
            acc[:, start:shared] += crossfade_gains(a, b, wa, wb) * (wa * a + wb * b)
        acc[:, shared : start + H] += added[:, shared - start : H] * self.window[shared : start + H]
        self._tail[:] = added[:, H:]

    def _restore_frames(self, frames: np.ndarray, starts: np.ndarray) -> np.ndarray | None:
        """(N·C, F) frames, frame-major, starting at stream samples `starts` (N·C,) -> the
        band each adds above its cutoff over the samples the window weighs, [start, stop)
        of the frame, (N·C, stop - start); None when none adds anything.
        The frames themselves are the recording: the output is frame + added band, so
        below the cutoff it is the input exactly."""
        if self.bypass or self.mix == 0.0:
            self._previous = None
            return None  # the dry frame, through the same framing: same latency
        c = self.channels
        n = frames.shape[0] // c
        spectra = self.plan.forward_sliding(frames.reshape(n, c, -1), self._previous, self.hop, self._spectra_out(n))
        self._previous = spectra[-1]  # the next frame reuses its inner columns
        dry = spectra.reshape(-1, *spectra.shape[2:])  # (N·C, 2, bins, T)
        cutoff_hz, hiss_db, band_gain, held_db, steep = self._cutoffs(dry, starts)  # (N·C,) each; cutoff NaN = pass this row through
        rows = np.flatnonzero(np.isfinite(cutoff_hz))
        if rows.size == 0:
            return None
        top = (dry.shape[2] - 1) * self.bin_hz
        cut = np.minimum(cutoff_hz[rows], top)
        dry_rows = dry if rows.size == dry.shape[0] else dry[rows]
        position = np.floor_divide(starts[rows], self.plan.hop).astype(np.float32)  # in STFT columns
        wet = self.model.run(dry_rows, cut.astype(np.float32), position)
        if not np.isfinite(wet).all():
            raise ModelError(f"the model returned NaN or infinite values near {self._fed / self.sample_rate:.1f} s "
                             "of the input; nothing was written (try another model)")
        gain = band_gain[rows]
        if np.any(gain != 1.0):  # the reel's band level (`level.BandLevel`); the limit below still caps it
            gain = gain.astype(np.float32)[:, None, None, None]
            wet = wet * gain if np.may_share_memory(wet, dry_rows) else np.multiply(wet, gain, out=wet)
        if self._keep is None or not np.array_equal(self._keep[0], cut):  # the cutoff is locked: almost always
            self._keep = (cut, merge_gains(cut / self.bin_hz, dry.shape[2], self.config.fade_bins))
        keep = self._keep[1]
        held = held_db[rows]
        limit = added_band_limit(dry_rows, cut / self.bin_hz, hiss_db[rows], LIMIT_LEVEL_HZ / self.bin_hz)
        if np.isfinite(held).any():  # the print's hiss, where the reel shows it: the band holds it
            wet = wet.copy() if np.may_share_memory(wet, dry_rows) else wet
            # ... over a reel that swings like speech: its highs' course, steeper (other rows: inf)
            steepen_course(wet, np.where(steep[rows], np.maximum(cut, COURSE_FROM_HZ) / self.bin_hz, np.inf))
            # the model's guess capped first, then held at the hiss, which the cap must not pull back under
            holds = np.isfinite(held)[:, None]
            wet = hold_at_hiss(limit_band(wet, np.where(holds, limit, np.inf)), keep, held)
            limit = np.where(holds, np.inf, limit)
        offset = self._restored_from  # wet holds the frame's columns from here on
        columns = slice(self._columns.start - offset, self._columns.stop - offset)
        lift, floor = self._lifts(rows, starts[rows])
        merged = merge(dry_rows[..., offset:], wet, keep, self.mix, limit, columns=columns, floor=floor, lift=lift,
                       leakage=self._leakage, inner=slice(self._inner.start - offset, self._inner.stop - offset),
                       reel_sums=self._lift_sums, reel_of=rows % self.channels, skirts=self._lift_skirts,
                       followed=self._lift_followed)
        merged -= dry_rows[..., self._columns]  # what the model adds; the STFT is linear
        added = np.zeros((frames.shape[0], self.stop - self.start), dtype=frames.dtype)
        span = self._span_plan.inverse(np.ascontiguousarray(merged))  # frame samples from the first column's hop on
        lo, hi = self.start - self._columns.start * self.plan.hop, self.stop - self._columns.start * self.plan.hop
        added[rows] = span[:, lo:hi]
        return added

    def _spectra_out(self, n: int) -> np.ndarray:
        """Where the next `n` frames' spectra go: two buffers in turn, so the previous
        frame's spectrum (which the next one reuses) is never overwritten, and a hop
        allocates nothing (a fresh 0.8 MB array costs page faults every hop)."""
        self._flip ^= 1
        shape = (n, self.channels, *self.plan.spectrum_shape)
        if self._spectra[self._flip].shape != shape:
            self._spectra[self._flip] = np.empty(shape, dtype=np.float32)
        return self._spectra[self._flip]

    def _cutoffs(self, spectrum: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                          np.ndarray, np.ndarray]:
        """Cutoff, lost-hiss level, band gain, held level and steeper course per row of
        `spectrum` (N·C frames, frame-major, starting at stream samples `starts`): cutoff NaN
        where there is no cut, hiss -inf where the input keeps its floor, gain the amplitude
        factor the model's `BandLevel` sets for the reel where the frame lies (1 without one),
        held the level the band is held at (`CutoffDecision.held_db`, `band.hold_at_hiss`;
        -inf where the decision holds none), steep whether the band's course is made steeper
        (`band.steepen_course`: over a reel that swings like speech, `CutoffDecision.holds_hiss`)."""
        c, rows = self.channels, spectrum.shape[0]
        cut, hiss, gain, held = np.empty(rows), np.empty(rows), np.empty(rows), np.empty(rows)
        steep = np.zeros(rows, dtype=bool)
        for i in range(0, rows, c):
            read = self.learner.listening and self._frames_seen % self._learn_every == 0  # every half frame
            self._frames_seen += 1
            decisions = self.learner.observe(band_db(spectrum[i : i + c])) if read else self.learner.decisions
            cut[i : i + c] = [np.nan if d is None or d.hz is None else d.merge_hz for d in decisions]
            gain[i : i + c], hiss[i : i + c], held[i : i + c], steep[i : i + c] = self._band_levels(
                decisions, (starts[i] + self.frame_length / 2) / self.sample_rate)
        return cut, hiss, gain, held, steep

    def lift_curve(self, decision: CutoffDecision) -> dict | None:
        """The cut's curve the lift follows under `decision` where the reel itself reads it
        (`skirt.fit_floor`: a reel that shows its hiss; `skirt.fit_lobes`: a slit's lobes):
        its name, -3 dB point and what showed it; None where the model's word sets the lift,
        or nothing is lifted."""
        read = self._skirt_curve(decision) if self.config.lifts else None
        return None if read is None else {"name": read.name, "minus3db_hz": round(read.minus3db_hz, 1),
                                          "read_from": read.read_from}

    def _skirt_curve(self, decision: CutoffDecision) -> SkirtFit | None:
        """The curve `decision`'s reel read when it was locked (`lock_cutoffs`), or None.
        Only a decision read over the whole recording (a file's first pass) is so read:
        live, the first seconds decide whether a reel swings like speech, and a music intro
        passes for it (`training.reelcheck`, 8 music reels x 4 cuts, true cutoff: on one
        reel held so live, two cuts 0.843 -> 0.940 and 0.264 -> 0.341 with its floor's curve)."""
        return next((read for locked, read in self._skirt_fits if locked is decision), None)

    def _read_skirt(self, decision: CutoffDecision | None) -> SkirtFit | None:
        """The cut's curve where the hiss went with it and the reel shows it: a slit's lobes in
        its long-term spectrum (`skirt.fit_lobes`), or, where its pauses show the print's hiss
        (`holds_hiss`), its floor (`skirt.fit_floor`: above the cut, that hiss through the cut).
        Where both read a curve, the lobes' where they put the -3 dB point where the floor does
        (within `skirt.LOBES_AGREE`), followed as deep as the floor shows the loss; else the
        floor's. The lobes tell the slit apart more closely (real speech with its hiss cut by a
        slit at 0.7 and 2.2 kHz, restored by the noise fill: LSD above the cut 0.366 and 0.397
        with the floor's curve, read only 50 dB down, where the analogue slit passes for the one
        made in software; 0.076 and 0.107 with the lobes'); the floor fixes the -3 dB point more
        surely, as the hiss is flat and the programme is not (a speech item of the development
        set, a slit at 3.2 kHz, read from its lobes as a pure sinc^2 at 0.88x: LSD above the cut
        0.069 with its floor's curve, 0.488 with that)."""
        if decision is None or decision.hz is None or decision.hiss_db is None:
            return None
        hz, by_lobes = decision.merge_hz, decision.halves_db is not None and decision.merge_hz >= LOBES_MIN_HZ
        by_floor = decision.holds_hiss and decision.floor_db is not None
        families = sought_families(hz, self.bin_hz, self.plan.n_bins) if by_lobes or by_floor else None  # once for both
        lobes = fit_lobes(hz, self.bin_hz, decision.halves_db, self._leakage, families) if by_lobes else None
        floor = fit_floor(hz, self.bin_hz, decision.floor_db, decision.hiss_db, families,
                          later=later_floor(decision, self.bin_hz) > 0.0, smoothed=SMOOTH_OCTAVES) if by_floor else None
        if lobes is None or floor is None:
            return floor if lobes is None else lobes
        if abs(lobes.minus3db_hz / floor.minus3db_hz - 1.0) <= LOBES_AGREE:  # the floor shows the loss all the way down
            return lobes._replace(depth_db=floor.depth_db)
        return floor

    def _lifts(self, rows: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        """How `band.merge` lifts each of these rows (N·C frames, frame-major, starting at
        stream samples `starts`) and the floor it keeps there, from the channels' decisions
        in use: (lift (R,) int8, floor (R, bins) power), or (None, None) when nothing is
        lifted. A frame that holds more than the recording (the silent lead before it, the
        mirrored padding after it) is not lifted: where the recording starts or is
        mirrored, its edge leaks into the band above the cut, and a lift would raise that
        into a click."""
        if not self.config.lifts:
            return None, None
        decisions = self.learner.decisions
        if not _same(self._lift_for, decisions):  # worked out once per decision, as the band level
            self._lift_for = tuple(decisions)
            self._lift_codes = np.full(self.channels, LIFT_NONE, dtype=np.int8)
            self._lift_floor = np.zeros((self.channels, self.plan.n_bins))
            # from what `prime_lift` read ahead over the reel's start, for these decisions
            primed = self._lift_primed is not None and _same(self._lift_primed[0], decisions)
            self._lift_sums[:] = self._lift_primed[1] if primed else 0.0
            self._lift_followed[:] = 0.0
            for c, d in enumerate(decisions):
                if d is None or d.floor_db is None:
                    continue
                if d.keeps_hiss:  # the input keeps its own floor above the cut: it stays
                    self._lift_codes[c], self._lift_floor[c] = LIFT_OVER_FLOOR, 10.0 ** (d.floor_db / 10.0)
                else:  # the floor went with the cut: all of the residue is the recording's,
                    self._lift_codes[c] = LIFT_ALL  # over what a hiss added later left (`cutoff.later_floor`)
                    self._lift_floor[c] = later_floor(d, self.bin_hz)
                # either way the residue over the floor went through the cut's skirt
                read = self._skirt_curve(d)
                if read is not None:
                    self._lift_skirts[c] = read.curve  # that curve in every slot
                    self._lift_followed[c] = read.depth_db
                else:
                    self._lift_skirts[c] = [skirt_family(d.merge_hz * anchor, self.bin_hz, self.plan.n_bins)
                                            for anchor in SKIRT_ANCHORS]
        channels = rows % self.channels
        lift = self._lift_codes[channels]  # a copy (fancy indexing)
        lift[(starts < 0) | (starts + self.frame_length > self._fed)] = LIFT_NONE
        if not lift.any():
            return None, None
        return lift, self._lift_floor[channels]

    def _band_levels(self, decisions: list[CutoffDecision | None],
                     seconds: float) -> tuple[list[float], list[float], list[float], list[bool]]:
        """Per channel, for a frame centred `seconds` into the stream: the amplitude factor of
        `band_gain_db`, the lost hiss extended above the cut (dB, -inf: none; both between
        the readings of a decision's `levels`, linear in dB), the level its band is held at
        (dB, -inf: none) and whether its course is made steeper; the readings' gains are
        worked out again only when a decision changes."""
        if not _same(self._gain_for, decisions):
            self._gain_for = tuple(decisions)
            self._gains = [self._level_course(d) for d in decisions]
            self._held = [-np.inf if d is None or d.held_db is None else d.held_db for d in decisions]
            self._steep = [d is not None and d.held_db is not None and d.holds_hiss for d in decisions]
        gains = [10.0 ** (float(np.interp(seconds, times, db)) / 20.0) for times, db, _ in self._gains]
        hiss = [float(np.interp(seconds, times, db)) if np.isfinite(db[0]) else -np.inf for times, _, db in self._gains]
        return gains, hiss, self._held, self._steep

    def _level_course(self, decision: CutoffDecision | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(times (s), `band_gain_db` and the lost hiss (dB, -inf: none) at each) of a decision:
        its `levels` readings, or one reading for the whole reel."""
        if decision is None or not decision.levels:
            hiss = -np.inf if decision is None or decision.hiss_db is None else decision.hiss_db
            return np.zeros(1), np.array([self.band_gain_db(decision)]), np.array([hiss])
        levels = decision.levels
        return (np.array([r.seconds for r in levels]),
                np.array([self.band_gain_db(replace(decision, reel=r.reel)) for r in levels]),
                np.array([-np.inf if r.hiss_db is None else r.hiss_db for r in levels]))

    def band_gain_course_db(self, decision: CutoffDecision | None) -> tuple[float, float] | None:
        """The lowest and highest `band_gain_db` a decision's level takes as the programme
        goes (`CutoffDecision.levels`), or None where it has one level for the reel."""
        if decision is None or not decision.levels:
            return None
        _, gains, _ = self._level_course(decision)
        return float(gains.min()), float(gains.max())

    def band_gain_db(self, decision: CutoffDecision | None) -> float:
        """The level offset of the model's band for a reel so decided: its `BandLevel`
        (none when the model carries none), and `KEPT_BAND_DB` where the input keeps its own
        hiss above the cut; 0 dB for a decision without reel features."""
        if decision is None or decision.reel is None:
            return 0.0
        level = self.model.spec.band_level
        return (KEPT_BAND_DB if decision.keeps_hiss else 0.0) + (0.0 if level is None else level.gain_db(decision.reel))
