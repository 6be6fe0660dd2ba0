"""Live restoration on a sound device: the card's callback only copies.

    file / input callback ──► in ring ──► worker: StreamRestorer.feed ──► out ring ──► output callback

The callbacks copy between preallocated rings and count; they never allocate arrays,
lock, log or wait. Framing, STFT, inference and overlap-add run on the worker thread,
which stays ahead of the card by the prefill. When the worker falls behind anyway, the
output callback plays silence, counts an underrun and *owes* the missing samples: they
are skipped when the worker catches up, so the delay stays what was reported (no drift,
no growing latency). Input the worker could not take in time is replaced by zeros of the
same length, for the same reason.

Total latency, input sample to speaker (duplex), is derived, never hand-written:
    prefill = restorer latency + 1 + block - gcd(block, hop) + headroom
    total   = prefill + device input latency + device output latency
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import asdict, dataclass

import numpy as np

from .io import FileSink, FileSource
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
    played_samples: int = 0
    compute_seconds: float = 0.0  # worker time spent in feed/flush


@dataclass
class LatencyReport:
    """Where the delay between an input sample and the speaker comes from, in samples."""

    sample_rate: int
    frame: int
    hop: int
    block: int
    restorer: int  # StreamRestorer.latency_samples
    headroom: int  # compute headroom kept in the out ring
    prefill: int  # zeros in the out ring at start = restorer + 1 + block - gcd + headroom
    device_input: int
    device_output: int

    @property
    def total(self) -> int:
        return self.prefill + self.device_input + self.device_output

    def to_dict(self) -> dict:
        d = asdict(self)
        d["total"] = self.total
        d["total_ms"] = 1000.0 * self.total / self.sample_rate
        return d

    def describe(self) -> str:
        ms = lambda n: f"{1000.0 * n / self.sample_rate:.1f} ms"  # noqa: E731
        return (
            f"latency {ms(self.total)} = frame {ms(self.frame)} (hop {ms(self.hop)}) "
            f"+ block {ms(self.block)} + headroom {ms(self.headroom)} "
            f"+ device in {ms(self.device_input)} / out {ms(self.device_output)}"
        )


def prefill_samples(latency: int, block: int, hop: int, headroom: int) -> int:
    """Zeros the out ring needs so that an instant worker never starves the callback.

    After N input samples the restorer has returned floor(N/H)·H - (F - H) samples, so
    the callback that brings input block k finds output up to block k - 1's; the worst
    shortfall over k is F + B - gcd(B, H), i.e. latency + 1 + B - gcd(B, H).
    """
    return latency + 1 + block - math.gcd(block, hop) + headroom


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
        raise DeviceError(f"input device {device!r}: {exc}")
    return min(most, max(1, int(info["max_input_channels"])))


def check_output_device(device) -> None:
    sd = _sounddevice()
    try:
        sd.query_devices(device, kind="output")
    except (ValueError, sd.PortAudioError) as exc:
        what = "no output device found" if device is None else f"output device {device!r}: {exc}"
        raise DeviceError(f"{what}; write a file instead with -o OUT.wav")


class LivePlayer:
    """Plays a StreamRestorer's output on a device, from a file or a live input.

    >>> player = LivePlayer(restorer, source=FileSource("reel.wav", 48000))
    >>> player.run()            # returns when the file has played or stop() is called
    """

    def __init__(
        self,
        restorer: StreamRestorer,
        source: FileSource | None = None,
        input_device=None,
        output_device=None,
        block_size: int = 512,
        headroom_seconds: float = 0.1,
        sink: FileSink | None = None,
        live_input: bool = False,
    ):
        if source is None and not live_input:
            raise ValueError("expected a file source or live_input=True")
        self.sd = _sounddevice()
        check_output_device(output_device)
        self.restorer, self.source, self.sink = restorer, source, sink
        self.live_input = live_input
        self.block = block_size
        self.sr = restorer.sample_rate
        self.channels = restorer.channels
        self.stats = LiveStats()
        headroom = int(math.ceil(headroom_seconds * self.sr / block_size)) * block_size
        prefill = prefill_samples(restorer.latency_samples, block_size, restorer.hop, headroom)
        # room for the prefill plus two frames of burst from the worker
        self.out_ring = Ring(prefill + 2 * restorer.frame_length + 4 * block_size, self.channels)
        self.in_ring = Ring(restorer.frame_length + 8 * block_size, self.channels) if live_input else None
        self._stop = threading.Event()
        self._stop_requested = False
        self.completed = False  # the whole file was restored and played
        self._worker_done = threading.Event()
        self._error: BaseException | None = None
        kwargs = dict(samplerate=self.sr, blocksize=block_size, channels=self.channels, dtype="float32")
        if live_input:
            self.stream = self.sd.Stream(device=(input_device, output_device), callback=self._duplex_callback, **kwargs)
            latency_in, latency_out = self.stream.latency
        else:
            self.stream = self.sd.OutputStream(device=output_device, callback=self._output_callback, **kwargs)
            latency_in, latency_out = 0.0, self.stream.latency
        self.latency = LatencyReport(
            sample_rate=self.sr, frame=restorer.frame_length, hop=restorer.hop, block=block_size,
            restorer=restorer.latency_samples, headroom=headroom, prefill=prefill,
            device_input=int(round(latency_in * self.sr)), device_output=int(round(latency_out * self.sr)),
        )

    # -- callbacks: copy and count, nothing else ---------------------------------------
    def _play(self, outdata: np.ndarray, status) -> None:
        stats = self.stats
        stats.callbacks += 1
        if status.output_underflow or status.input_overflow:  # not priming or other flags
            stats.device_xruns += 1
            stats.last_xrun_sample = stats.played_samples
        got = self.out_ring.read_into(outdata)
        if got < len(outdata):
            outdata[got:] = 0.0
            if not self._worker_done.is_set():
                stats.underruns += 1
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

    # -- worker ------------------------------------------------------------------------
    def _deliver(self, out: np.ndarray) -> None:
        """Queue restored audio (channels, n) for the card, waiting while the ring is full."""
        if self.sink is not None:
            self.sink.write(out)
        data = out.T
        while len(data) and not self._stop.is_set():
            n = self.out_ring.write(data)
            data = data[n:]
            if len(data):
                time.sleep(0.25 * self.block / self.sr)

    def _feed(self, block: np.ndarray) -> None:
        start = time.perf_counter()
        out = self.restorer.feed(block)
        self.stats.compute_seconds += time.perf_counter() - start
        self._deliver(out)

    def _work(self) -> None:
        try:
            if self.live_input:
                self._work_live()
            else:
                for block in self.source.blocks():
                    if self._stop.is_set():
                        break
                    self._feed(block)
                if not self._stop.is_set():
                    start = time.perf_counter()
                    tail = self.restorer.flush()
                    self.stats.compute_seconds += time.perf_counter() - start
                    self._deliver(tail)
        except BaseException as exc:  # reported by run(), in the main thread
            self._error = exc
        finally:
            self._worker_done.set()

    def _work_live(self) -> None:
        buf = np.zeros((self.in_ring.capacity, self.channels), dtype=np.float32)
        zeros_fed = 0
        while not self._stop.is_set():
            n = self.in_ring.read_into(buf)
            if n:
                self._feed(np.ascontiguousarray(buf[:n].T))
            # input the callback had to drop is replaced by as many zeros, after what was
            # queued before it (approximately: blocks queued after the drop precede them)
            owed = self.stats.dropped_samples - zeros_fed
            if owed:
                self._feed(np.zeros((self.channels, owed), dtype=np.float32))
                zeros_fed += owed
            if not n:
                time.sleep(0.25 * self.block / self.sr)

    # -- control -----------------------------------------------------------------------
    def start(self) -> None:
        """Prefill, then start the worker and the device."""
        self.restorer.warm_up()  # no first-frame stall (numba cache load holds the GIL)
        if self.live_input:
            self.out_ring.write(np.zeros((self.latency.prefill, self.channels), dtype=np.float32))
        self._thread = threading.Thread(target=self._work, name="reelrestore-worker", daemon=True)
        self._thread.start()
        if not self.live_input:  # a file: wait until the prefill is restored (or the file ends)
            while self.out_ring.available < self.latency.prefill and not self._worker_done.is_set():
                time.sleep(0.005)
        self.stream.start()

    def stop(self) -> None:
        self._stop.set()
        self.stream.stop()
        self.stream.close()
        self._thread.join(timeout=5)

    @property
    def active(self) -> bool:
        return self.stream.active and self._error is None

    def request_stop(self) -> None:
        """Ask `run` to stop at its next tick (safe from any thread)."""
        self._stop_requested = True

    @property
    def stopped_early(self) -> bool:
        return not self.completed

    def run(self, on_tick=None) -> None:
        """Start, wait until the file has played (or forever, for a live input), stop.

        on_tick: called about ten times a second from this thread (key handling, display).
        """
        self.start()
        try:
            while self.stream.active and self._error is None and not self._stop_requested:
                if on_tick is not None:
                    on_tick()
                time.sleep(0.1)
            self.completed = (
                not self.live_input and self._worker_done.is_set() and self._error is None
                and not self._stop_requested and self.out_ring.available == 0
            )
        finally:
            self.stop()
        if self._error is not None:
            raise self._error

    @property
    def real_time_factor(self) -> float:
        seconds = self.stats.played_samples / self.sr
        return self.stats.compute_seconds / seconds if seconds else 0.0

    def summary(self) -> dict:
        s = self.stats
        return {
            "played_seconds": s.played_samples / self.sr,
            "underruns": s.underruns,
            "missing_samples": s.missing_samples,
            "overruns": s.overruns,
            "dropped_samples": s.dropped_samples,
            "device_xruns": s.device_xruns,
            "last_xrun_seconds": s.last_xrun_sample / self.sr if s.last_xrun_sample >= 0 else None,
            "real_time_factor": self.real_time_factor,
            "latency": self.latency.to_dict(),
        }
