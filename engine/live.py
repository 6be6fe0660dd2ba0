"""Live restoration on a sound device: the card's callback only copies.

    file / input callback ──► in ring ──► worker: pipeline.run ──► out ring ──► output callback

The callbacks copy between preallocated rings and count; they never allocate arrays, log
or wait, and the only lock they take is the brief one of waking the worker once an input
block is queued (`DeviceSource.arrived`, a `threading.Event`, at the callback's end).
Framing, STFT, inference and overlap-add run on the worker thread (`pipeline.run` with a
`DeviceSource` or a file, into a `DeviceSink`), which stays ahead of the card by the
prefill. When the worker falls behind anyway, the output callback plays silence, counts
an underrun and *owes* the missing samples: they are skipped when the worker catches up,
so the delay stays what was reported (no drift, no growing latency).
Input the worker could not take in time is replaced by zeros of the same length, for the
same reason. The worker runs under real-time scheduling where the system allows it (below
a real-time sound server's own threads), and while playing Python hands the GIL to a
waiting callback within 0.5 ms: on a busy 2-core machine these two decide whether a 10 ms
headroom holds (`LiveStats.margin_ms` shows how close each block came).

Total latency, input sample to speaker (duplex), is derived, never hand-written, and the
printed terms add up to it:
    total = restorer + block alignment + headroom + device input + device output
    prefill (zeros in the out ring at start) = restorer + block alignment + headroom
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

import numpy as np

from . import pipeline
from .pipeline import Sink, Source, Tee
from .stream import StreamRestorer


class DeviceError(RuntimeError):
    """No usable sound device; the message says what to do instead."""


class Ring:
    """Single-producer, single-consumer ring of (capacity, channels) float32 frames.

    Each side only advances its own counter, after copying, so the GIL's atomic integer
    stores are all the synchronisation needed.
    """

    def __init__(self, capacity: int, channels: int):
        self.capacity = capacity
        self._buf = np.zeros((capacity, channels), dtype=np.float32)
        self._read = 0  # total frames consumed (reader's counter)
        self._written = 0  # total frames produced (writer's counter)
        self.debt = 0  # frames the reader played as silence and will skip (reader-owned)

    @property
    def available(self) -> int:
        return self._written - self._read

    @property
    def free(self) -> int:
        return self.capacity - self.available

    def write(self, data: np.ndarray) -> int:
        """Copy as much of data (n, channels) as fits; return the frames written."""
        n = min(len(data), self.free)
        start = self._written % self.capacity
        first = min(n, self.capacity - start)
        self._buf[start : start + first] = data[:first]
        self._buf[: n - first] = data[first:n]
        self._written += n
        return n

    def read_into(self, out: np.ndarray) -> int:
        """Pay any debt, then fill out (n, channels) as far as possible; return frames read."""
        if self.debt:
            skip = min(self.debt, self.available)
            self._read += skip
            self.debt -= skip
        n = min(len(out), self.available)
        start = self._read % self.capacity
        first = min(n, self.capacity - start)
        out[:first] = self._buf[start : start + first]
        out[first:n] = self._buf[: n - first]
        self._read += n
        return n


MARGIN_BINS = 64  # the margin histogram's 1 ms bins; the last one holds everything longer
# How long after a device xrun an underrun is counted as its consequence: the blocks a
# stalled sound server catches up on come back to back, faster than any restorer (a
# 50 ms stall drains 50 ms of output in an instant), and the worker needs a few hops of
# compute to rebuild its margin.
XRUN_SHADOW_SECONDS = 0.1


@dataclass
class LiveStats:
    """Counters shared by the callback (writer) and the reporting thread (reader)."""

    callbacks: int = 0
    underruns: int = 0  # output callbacks the worker could not fill in time
    missing_samples: int = 0  # samples played as silence because of them
    overruns: int = 0  # input callbacks whose block did not fit in the in ring
    dropped_samples: int = 0  # input samples replaced by zeros because of them
    device_xruns: int = 0  # under/overflows PortAudio itself reported
    last_xrun_sample: int = -1  # output position of the latest one (-1: none)
    last_xrun_callback: int = -(10**9)  # the output callback that reported it
    # Underruns in the shadow of a device xrun (within XRUN_SHADOW_SECONDS after one): the
    # sound server itself lost time, as when the machine stalls, and then asks for the
    # blocks it missed all at once; the rest are the worker's own lateness.
    underruns_after_xrun: int = 0
    played_samples: int = 0
    # How close the worker came to an underrun: at each output callback the worker was
    # keeping up with, the restored output still queued after the block was taken, in
    # 1 ms bins (bin k: k to k+1 ms). Its low end shows whether more headroom would help.
    margin_ms: np.ndarray = field(default_factory=lambda: np.zeros(MARGIN_BINS, dtype=np.int64))

    def margins(self) -> dict:
        """The margin histogram for a report: the least margin seen and the callbacks per
        1 ms bin, up to the last non-empty one."""
        seen = np.flatnonzero(self.margin_ms)
        if not seen.size:
            return {"least_ms": None, "callbacks_per_ms": []}
        return {"least_ms": int(seen[0]), "callbacks_per_ms": self.margin_ms[: seen[-1] + 1].tolist()}


@dataclass
class LatencyReport:
    """Where the delay between an input sample and the speaker comes from, in samples.

    The terms add up: ``total = restorer + alignment + headroom + device_input +
    device_output``, and `describe` prints exactly these terms.
    """

    sample_rate: int
    frame: int
    hop: int
    block: int
    restorer: int  # StreamRestorer.latency_samples (frame - first weighed sample - 1)
    alignment: int  # 1 + block - gcd(block, hop): blocks and hops do not line up
    headroom: int  # compute headroom kept in the out ring
    device_input: int
    device_output: int

    @property
    def prefill(self) -> int:
        """Zeros in the out ring at start (see `prefill_samples`)."""
        return self.restorer + self.alignment + self.headroom

    @property
    def total(self) -> int:
        return self.prefill + self.device_input + self.device_output

    def terms(self) -> list[tuple[str, int]]:
        return [("restorer", self.restorer), ("block alignment", self.alignment), ("headroom", self.headroom),
                ("device in", self.device_input), ("device out", self.device_output)]

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(prefill=self.prefill, total=self.total, total_ms=self.ms(self.total))
        return d

    def ms(self, samples: int) -> float:
        return 1000.0 * samples / self.sample_rate

    def describe(self) -> str:
        """"latency 700.0 ms = restorer 478.6 ms + block alignment 21.3 ms + ...", then the
        frame and hop the restorer's term comes from."""
        terms = " + ".join(f"{name} {self.ms(n):.1f} ms" for name, n in self.terms())
        return (f"latency {self.ms(self.total):.1f} ms = {terms} "
                f"(frames of {self.ms(self.frame):.1f} ms every {self.ms(self.hop):.1f} ms)")


def prefill_samples(latency: int, block: int, hop: int, headroom: int) -> int:
    """Zeros the out ring needs so that an instant worker never starves the callback.

    After N input samples the restorer has returned floor(N/H)·H - (F - H) samples, so
    the callback that brings input block k finds output up to block k - 1's; the worst
    shortfall over k is F + B - gcd(B, H), i.e. latency + 1 + B - gcd(B, H).
    """
    return latency + block_alignment(block, hop) + headroom


def block_alignment(block: int, hop: int) -> int:
    """Extra delay because device blocks of B samples and hops of H do not line up."""
    return 1 + block - math.gcd(block, hop)


# SCHED_FIFO priority of the worker thread: above every ordinary thread (the worker then
# meets its hop's deadline whatever else the machine runs), under a real-time JACK's own
# threads (10 and up by default), so the device callbacks still come first.
WORKER_PRIORITY = 5
# While playing, a thread waiting for the GIL (a device callback) gets it after this long
# at most, instead of Python's 5 ms default, which is a whole 256-sample block.
GIL_SWITCH_SECONDS = 0.0005


def realtime_scheduling(priority: int = WORKER_PRIORITY) -> bool:
    """Run the calling thread under SCHED_FIFO at `priority` when the system allows it
    (root, or an rtprio limit such as the audio group's); return whether it does."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except (AttributeError, OSError):  # not Linux, or no permission
        return False
    return True


def _sounddevice():
    try:
        import sounddevice
    except OSError as exc:  # PortAudio library missing
        raise DeviceError(f"no sound system ({exc}); install libportaudio2 or write a file with -o OUT.wav")
    return sounddevice


def list_devices() -> str:
    return str(_sounddevice().query_devices())


def input_channels(device, most: int = 2) -> int:
    """Channels to restore from an input device: its count, at most `most`."""
    sd = _sounddevice()
    try:
        info = sd.query_devices(device, kind="input")
    except (ValueError, sd.PortAudioError) as exc:
        raise DeviceError(f"input device {device!r}: {exc}; restore-stream --list-devices lists them")
    return min(most, max(1, int(info["max_input_channels"])))


def check_output_device(device) -> None:
    sd = _sounddevice()
    try:
        sd.query_devices(device, kind="output")
    except (ValueError, sd.PortAudioError) as exc:
        if device is None:
            raise DeviceError("no output device found; write a file instead with -o OUT.wav")
        raise DeviceError(f"output device {device!r}: {exc}; restore-stream --list-devices lists them")


MONITOR_MODES = ("restored", "bypass", "added")


class Monitor:
    """What the listener hears, apart from what is rendered (keys change only this).

    The out ring carries the render (recording + added band) and the added band side by
    side; the output callback mixes what is heard from them, so a key is heard within one
    device block:

        restored: recording + (mix / render mix) · band   (mix = the render's: as written)
        bypass:   the recording alone
        added:    (mix / render mix) · band alone

    Gains move along a linear ramp over one device block, so switching never clicks; the
    mixing works in place on preallocated arrays (it runs in the callback). `auditioned`
    lists each change with the playback time it was made at.
    """

    def __init__(self, restorer: StreamRestorer, block: int):
        self.render_mix = 0.0 if restorer.bypass else restorer.mix
        self.mode, self.mix = "restored", self.render_mix
        self._gains = self._target()
        self._ramp = np.linspace(0.0, 1.0, block, dtype=np.float32)[:, None]  # (block, 1)
        self._gain = np.zeros_like(self._ramp)
        self.auditioned: list[dict] = []

    def set(self, at_seconds: float, mode: str | None = None, mix: float | None = None) -> None:
        """Change what is heard from the next device block on (from the main thread)."""
        self.mode = mode or self.mode
        self.mix = self.mix if mix is None else min(1.0, max(0.0, round(mix, 1)))
        self.auditioned.append({"at_seconds": round(at_seconds, 3), "mode": self.mode, "mix": self.mix})

    def _target(self) -> tuple[float, float]:
        band = self.mix / self.render_mix if self.render_mix else 0.0
        return {"restored": (1.0, band), "bypass": (1.0, 0.0), "added": (0.0, band)}[self.mode]

    def mix_into(self, out: np.ndarray, render: np.ndarray, band: np.ndarray) -> None:
        """out (n, C) = what is heard of render and band (n, C); `band` is overwritten."""
        start, target = self._gains, self._target()
        self._gains = target
        if start == target == (1.0, 1.0):
            out[:] = render
            return
        np.subtract(render, band, out=out)  # the recording
        self._scale(out, start[0], target[0])
        self._scale(band, start[1], target[1])
        out += band

    def _scale(self, data: np.ndarray, start: float, target: float) -> None:
        n = len(data)
        if start == target:
            data *= target
            return
        gain = self._gain[:n]
        np.multiply(self._ramp[:n], target - start, out=gain)
        gain += start
        data *= gain


class DeviceSink:
    """The worker's side of the out ring (a `pipeline.Sink`): each block with its added
    band (`StreamRestorer.added`) beside it, for the `Monitor`; waits while the ring is
    full, until the card has stopped (then drops the rest)."""

    def __init__(self, ring: Ring, pause: float, card_stopped: threading.Event, restorer: StreamRestorer):
        self.ring, self.pause, self.stopped, self.restorer = ring, pause, card_stopped, restorer
        self.frames = 0
        self.waited_seconds = 0.0

    def write(self, block: np.ndarray) -> None:
        data = np.concatenate([block, self.restorer.added]).T  # (n, 2C): render | band
        while len(data) and not self.stopped.is_set():
            n = self.ring.write(data)
            data = data[n:]
            self.frames += n
            if len(data):
                self.waited_seconds += self.pause
                time.sleep(self.pause)

    def finish(self) -> None:
        pass  # the callback plays what is queued, then stops

    def abort(self) -> None:
        pass


class DeviceSource:
    """The worker's side of the in ring (a `pipeline.Source`): blocks as they arrive,
    zeros for input the callback had to drop, until `end` is called. The callback calls
    `arrived` after each block it queues, and the worker, waiting on it, starts on the
    block at once rather than at its next look (a sleep of a quarter block, and the
    sleep's own slack, taken from the headroom)."""

    rewindable = False
    total = None
    subtype = "FLOAT"

    def __init__(self, name: str, ring: Ring, sample_rate: int, stats: LiveStats, pause: float):
        self.name, self.ring, self.stats, self.pause = name, ring, stats, pause
        self.channels = ring._buf.shape[1]
        self.sample_rate = self.input_sample_rate = sample_rate
        self.waited_seconds = 0.0
        self._ended = threading.Event()
        self._arrived = threading.Event()

    def arrived(self) -> None:
        """Input was queued (the device callback)."""
        self._arrived.set()

    def end(self) -> None:
        """Stop after the block in hand: the feed is over (the restorer flushes its tail)."""
        self._ended.set()
        self._arrived.set()

    def blocks(self) -> Iterator[np.ndarray]:
        buf = np.zeros((self.ring.capacity, self.channels), dtype=np.float32)
        zeros_fed = 0
        while not self._ended.is_set():
            self._arrived.clear()  # before reading: a block queued after the read sets it again
            n = self.ring.read_into(buf)
            if n:
                yield np.ascontiguousarray(buf[:n].T)
            # input the callback had to drop is replaced by as many zeros, after what was
            # queued before it (approximately: blocks queued after the drop precede them)
            owed = self.stats.dropped_samples - zeros_fed
            if owed:
                yield np.zeros((self.channels, owed), dtype=np.float32)
                zeros_fed += owed
            if not n:
                start = time.perf_counter()
                self._arrived.wait(4 * self.pause)  # one block; the timeout only bounds a lost wake-up
                self.waited_seconds += time.perf_counter() - start


class LivePlayer:
    """Plays a StreamRestorer's output on a device, from a file or a live input.

    >>> player = LivePlayer(restorer, source=FileSource("reel.wav", 48000))
    >>> player.run()            # returns when the file has played or a stop was requested

    source: what to restore (None: the input device, duplex). The worker drives it with
        `pipeline.run` into the card and the sink given to `run` (e.g. a file), like any
        other run. A stop ends a live input normally (the restorer's tail is flushed and
        the sink finished); it abandons a file part-way (the sink aborted).
    realtime_worker: run the worker under real-time scheduling (`realtime_scheduling`)
        where the system allows it; `worker_realtime` says whether it did.
    """

    def __init__(
        self,
        restorer: StreamRestorer,
        source: Source | None = None,
        input_device=None,
        output_device=None,
        block_size: int = 512,
        headroom_seconds: float = 0.1,
        realtime_worker: bool = True,
    ):
        self.sd = _sounddevice()
        check_output_device(output_device)
        self.live_input = source is None
        self.restorer, self.block = restorer, block_size
        self.sr, self.channels = restorer.sample_rate, restorer.channels
        self.stats = LiveStats()
        self._xrun_shadow = math.ceil(XRUN_SHADOW_SECONDS * self.sr / block_size)  # in callbacks
        headroom = int(math.ceil(headroom_seconds * self.sr / block_size)) * block_size
        prefill = prefill_samples(restorer.latency_samples, block_size, restorer.hop, headroom)
        pause = 0.25 * block_size / self.sr
        self._abandon = threading.Event()  # the worker stops and aborts its sinks
        self._card_stopped = threading.Event()
        # room for the prefill plus two frames of burst from the worker; render | band
        self.out_ring = Ring(prefill + 2 * restorer.frame_length + 4 * block_size, 2 * self.channels)
        self._heard = np.zeros((block_size, 2 * self.channels), dtype=np.float32)  # callback scratch
        self._meter = np.zeros((block_size, self.channels), dtype=np.float32)  # callback scratch
        self._block_peaks = np.zeros(self.channels, dtype=np.float32)
        self.peaks = np.zeros(self.channels, dtype=np.float32)  # heard since `take_peaks`, per channel
        self.in_ring = Ring(restorer.frame_length + 8 * block_size, self.channels) if self.live_input else None
        if self.live_input:
            name = "default input" if input_device is None else f"input device {input_device}"
            source = DeviceSource(name, self.in_ring, self.sr, self.stats, pause)
        self.source = source
        self.monitor = Monitor(restorer, block_size)
        self.device_sink = DeviceSink(self.out_ring, pause, self._card_stopped, restorer)
        self.result: pipeline.RunResult | None = None
        self.realtime_asked = realtime_worker  # real-time scheduling asked for the worker
        self.worker_realtime = False  # and whether it got it
        self._stop_requested = False
        self.completed = False  # the whole source was restored and played
        self._worker_done = threading.Event()
        self._error: BaseException | None = None
        kwargs = dict(samplerate=self.sr, blocksize=block_size, channels=self.channels, dtype="float32")
        if self.live_input:
            self.stream = self.sd.Stream(device=(input_device, output_device), callback=self._duplex_callback, **kwargs)
            latency_in, latency_out = self.stream.latency
        else:
            self.stream = self.sd.OutputStream(device=output_device, callback=self._output_callback, **kwargs)
            latency_in, latency_out = 0.0, self.stream.latency
        self.latency = LatencyReport(
            sample_rate=self.sr, frame=restorer.frame_length, hop=restorer.hop, block=block_size,
            restorer=restorer.latency_samples, alignment=block_alignment(block_size, restorer.hop),
            headroom=headroom, device_input=int(round(latency_in * self.sr)),
            device_output=int(round(latency_out * self.sr)),
        )

    # -- callbacks: copy and count, nothing else ---------------------------------------
    def _play(self, outdata: np.ndarray, status) -> None:
        stats = self.stats
        stats.callbacks += 1
        if status.output_underflow or status.input_overflow:  # not priming or other flags
            stats.device_xruns += 1
            stats.last_xrun_sample = stats.played_samples
            stats.last_xrun_callback = stats.callbacks
        queued = self._heard[: len(outdata)]
        got = self.out_ring.read_into(queued)
        if got == len(outdata):  # the margin this block left (integer arithmetic, no allocation)
            stats.margin_ms[min(self.out_ring.available * 1000 // self.sr, MARGIN_BINS - 1)] += 1
        c = self.channels
        self.monitor.mix_into(outdata[:got], queued[:got, :c], queued[:got, c:])
        if got:  # peak meter, in place
            np.abs(outdata[:got], out=self._meter[:got])
            self._meter[:got].max(axis=0, out=self._block_peaks)
            np.maximum(self.peaks, self._block_peaks, out=self.peaks)
        if got < len(outdata):
            outdata[got:] = 0.0
            if not self._worker_done.is_set():
                stats.underruns += 1
                if stats.callbacks - stats.last_xrun_callback <= self._xrun_shadow:
                    stats.underruns_after_xrun += 1
                stats.missing_samples += len(outdata) - got
                self.out_ring.debt += len(outdata) - got
            elif got == 0:
                raise self.sd.CallbackStop
        stats.played_samples += got

    def _output_callback(self, outdata, frames, time_info, status) -> None:
        self._play(outdata, status)

    def _duplex_callback(self, indata, outdata, frames, time_info, status) -> None:
        taken = self.in_ring.write(indata)
        if taken < frames:
            self.stats.overruns += 1
            self.stats.dropped_samples += frames - taken  # the worker feeds zeros for these
        self._play(outdata, status)
        self.source.arrived()  # last: the worker it wakes would otherwise take the GIL mid-callback

    # -- worker ------------------------------------------------------------------------
    def _work(self, sink: Sink) -> None:
        if self.realtime_asked:
            self.worker_realtime = realtime_scheduling()
        try:
            self.result = pipeline.run(self.source, self.restorer, sink, stop=self._abandon.is_set)
        except BaseException as exc:  # reported by run(), in the main thread
            self._error = exc
        finally:
            self._worker_done.set()

    # -- control -----------------------------------------------------------------------
    def start(self, sink: Sink | None = None) -> None:
        """Prefill, then start the worker and the device; `sink` also gets every block."""
        self.restorer.warm_up()  # no first-frame stall (numba cache load holds the GIL)
        if self.live_input:
            self.out_ring.write(np.zeros((self.latency.prefill, 2 * self.channels), dtype=np.float32))
        sink = self.device_sink if sink is None else Tee(self.device_sink, sink)
        self._thread = threading.Thread(target=self._work, args=(sink,), name="reelrestore-worker", daemon=True)
        self._thread.start()
        if not self.live_input:  # a file: wait until the prefill is restored (or the file ends)
            while self.out_ring.available < self.latency.prefill and not self._worker_done.is_set():
                time.sleep(0.005)
        self._switch_interval = sys.getswitchinterval()  # put back by `stop`
        sys.setswitchinterval(min(self._switch_interval, GIL_SWITCH_SECONDS))
        try:
            self.stream.start()
        except BaseException:
            sys.setswitchinterval(self._switch_interval)
            raise

    def stop(self) -> None:
        """End the run now: a live input is flushed and finished, a file abandoned (unless
        it was restored to the end already)."""
        self.stream.stop()
        self.stream.close()
        self._card_stopped.set()
        if self.live_input:
            self.source.end()
        else:
            self._abandon.set()
        self._thread.join()
        sys.setswitchinterval(self._switch_interval)

    def request_stop(self) -> None:
        """Ask `run` to stop at its next tick (safe from any thread)."""
        self._stop_requested = True

    def run(self, on_tick=None, sink: Sink | None = None) -> None:
        """Start, wait until the source has played (a live input: until a stop), stop.

        on_tick: called about ten times a second from this thread (key handling, display).
        sink: also gets every restored block (e.g. a file), finished or aborted by the run.
        """
        self.start(sink)
        try:
            while self.stream.active and self._error is None and not self._stop_requested:
                if on_tick is not None:
                    on_tick()
                time.sleep(0.1)
        finally:
            self.stop()
        if self._error is not None:
            raise self._error
        self.completed = self.result is not None and self.result.completed and (
            self.live_input or self.out_ring.available == 0)

    def take_peaks(self) -> np.ndarray:
        """Peak per channel heard since the last call (for a level meter)."""
        peaks = self.peaks.copy()
        self.peaks[:] = 0.0
        return peaks

    @property
    def real_time_factor(self) -> float:
        """Worker time restoring (not waiting) over audio time restored."""
        if self.result is None or not self.result.samples_in:
            return 0.0
        return self.result.busy_seconds * self.sr / self.result.samples_in

    def playback(self) -> dict:
        """What the device side saw, for the run report."""
        s = self.stats
        return {
            "played_seconds": s.played_samples / self.sr,
            "underruns": s.underruns,
            "missing_samples": s.missing_samples,
            "overruns": s.overruns,
            "dropped_samples": s.dropped_samples,
            "device_xruns": s.device_xruns,
            "underruns_after_xrun": s.underruns_after_xrun,
            "last_xrun_seconds": s.last_xrun_sample / self.sr if s.last_xrun_sample >= 0 else None,
            "margin": s.margins(),
            "realtime_asked": self.realtime_asked,
            "worker_realtime": self.worker_realtime,
            "latency": self.latency.to_dict(),
            "auditioned": list(self.monitor.auditioned),
        }
