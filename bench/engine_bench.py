"""Benchmarks of the whole engine path (framing, STFT, cutoff, inference, band merge,
iSTFT, overlap-add): per-hop compute time, real-time factor, latency and peak memory.

Everything here drives the public engine objects exactly as `restore-stream` does:
`StreamRestorer.feed`/`flush` and `restore_file`.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf

from reelrestore.engine.io import FileSource
from reelrestore.engine.model import OnnxModel
from reelrestore.engine.restore import restore_file
from reelrestore.engine.stream import StreamConfig, StreamRestorer

from .doubles import reel_audio
from .timing import Distribution


class BenchSkipped(Exception):
    """A benchmark that cannot run here; the message says why (it goes into the report)."""


def _blocks(audio: np.ndarray, size: int) -> list[np.ndarray]:
    """(C, n) -> contiguous (C, size) blocks, as a sound card or file reader delivers them."""
    return [np.ascontiguousarray(audio[:, i : i + size]) for i in range(0, audio.shape[1], size)]


# -- per-hop compute ---------------------------------------------------------------------
def per_hop(model: OnnxModel, config: StreamConfig, channels: int, hops: int, warmup: int,
            repeats: int) -> dict:
    """Time each `feed` of one hop that returns output (wall clock, and the process's CPU
    time); `repeats` fresh streams of `warmup + hops` hops each; the first `warmup` timed
    feeds of each are dropped."""
    probe = StreamRestorer(model, channels, config)
    hop, rate = probe.hop, probe.sample_rate
    blocks = _blocks(reel_audio((warmup + hops + 1) * hop / rate, channels, rate), hop)
    runs, cpu_runs, samples = [], [], []
    for _ in range(repeats):
        restorer = StreamRestorer(model, channels, config)
        times, cpu = [], []
        for block in blocks:
            start, start_cpu = time.perf_counter(), time.process_time()
            out = restorer.feed(block)
            elapsed, elapsed_cpu = time.perf_counter() - start, time.process_time() - start_cpu
            if out.shape[1]:
                times.append(elapsed)
                cpu.append(elapsed_cpu)
        runs.append(Distribution.of_seconds(times[warmup:]))
        cpu_runs.append(Distribution.of_seconds(cpu[warmup:]))
        samples += times[warmup:]
    budget_ms = 1000.0 * hop / rate
    dist = Distribution.median_of(runs)
    return {
        "channels": channels,
        "hop_samples": hop,
        "budget_ms": budget_ms,
        "hops_per_run": len(samples) // repeats,
        "warmup_hops": warmup,
        "repeats": repeats,
        "ms": dist.to_dict(),
        "fraction_of_budget": {k: getattr(dist, k) / budget_ms for k in ("p50", "p95", "p99", "max")},
        # CPU time of the whole process during the feed: wall >> cpu means other jobs preempted it
        "process_cpu_ms": Distribution.median_of(cpu_runs).to_dict(),
        "samples_ms": [round(1000.0 * s, 4) for s in samples],
    }


class _Stopwatch:
    """Wraps a callable and adds up the seconds spent inside it."""

    def __init__(self, fn: Callable):
        self.fn, self.seconds = fn, 0.0

    def __call__(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - start


class _TimedModel:
    """The model with a stopwatch on `run`; every other attribute is the model's."""

    def __init__(self, model: OnnxModel, watch: _Stopwatch):
        self._model, self.run = model, watch

    def __getattr__(self, name: str):
        return getattr(self._model, name)


def stage_breakdown(model: OnnxModel, config: StreamConfig, channels: int, hops: int, warmup: int) -> dict:
    """Median ms per hop spent in each stage, from stopwatches put on one restorer's
    STFT plan, model and cutoff estimate (this instance only; the engine is untouched).
    'other' is framing, band merge, overlap-add and Python glue (and the cutoff estimate
    if a future engine no longer has `_cutoff_bins`)."""
    restorer = StreamRestorer(model, channels, config)
    watches = {"stft": _Stopwatch(restorer.plan.forward), "inference": _Stopwatch(model.run),
               "istft": _Stopwatch(restorer.plan.inverse)}
    restorer.plan.forward, restorer.plan.inverse = watches["stft"], watches["istft"]
    restorer.model = _TimedModel(model, watches["inference"])
    if hasattr(restorer, "_cutoff_bins"):  # private, but it is the whole cutoff stage
        restorer._cutoff_bins = watches["cutoff"] = _Stopwatch(restorer._cutoff_bins)
    per_stage: dict[str, list[float]] = {name: [] for name in (*watches, "other", "total")}
    for block in _blocks(reel_audio((warmup + hops + 1) * restorer.hop / restorer.sample_rate, channels), restorer.hop):
        for w in watches.values():
            w.seconds = 0.0
        start = time.perf_counter()
        out = restorer.feed(block)
        total = time.perf_counter() - start
        if out.shape[1]:
            for name, w in watches.items():
                per_stage[name].append(w.seconds)
            per_stage["other"].append(total - sum(w.seconds for w in watches.values()))
            per_stage["total"].append(total)
    return {name: float(1000.0 * np.median(v[warmup:])) for name, v in per_stage.items()}


# -- real-time factor --------------------------------------------------------------------
def sweep(measure: Callable[[int], float], limit: int, refine: int = 2) -> dict:
    """RTF at 1, 2, 4, … while it is below 0.5, then at the count a linear RTF would put
    10 % past real time (at most double), until it reaches 1 or `limit`; then `refine`
    bisections between the largest count below real time and the smallest above (the RTF
    grows faster than linearly with the count, so interpolating overshoots). Reports the
    largest count measured below real time; `bounded` says whether one above was seen."""
    points: dict[int, float] = {}
    n = 1
    while True:
        points[n] = rtf = measure(n)
        if rtf >= 1.0 or n >= limit:
            break
        n = min(limit, 2 * n if rtf < 0.5 else max(n + 1, min(2 * n, int(np.ceil(1.1 * n / rtf)))))

    def bracket() -> tuple[int, int | None]:
        good = max((k for k, v in points.items() if v < 1.0), default=0)
        return good, min((k for k, v in points.items() if v >= 1.0 and k > good), default=None)

    for _ in range(refine):
        good, bad = bracket()
        if bad is None or bad - good <= 1:
            break
        points[(good + bad) // 2] = measure((good + bad) // 2)
    good, bad = bracket()
    return {
        "points": [{"count": k, "real_time_factor": points[k]} for k in sorted(points)],
        "max_realtime": good,
        "bounded": bad is not None,
        "first_not_realtime": bad,
    }


def file_rtf(model: OnnxModel, config: StreamConfig, seconds: float, repeats: int, limit: int,
             workdir: Path) -> dict:
    """`restore_file` (the offline path: read, frame, restore, flush, write) on a C-channel
    file, channels batched in one StreamRestorer; RTF = wall time / audio duration, as
    `restore-stream --report` gives it (the flushed tail, two frames, is in the wall time)."""

    def measure(channels: int) -> float:
        src, dst = workdir / f"rtf_{channels}ch.wav", workdir / f"rtf_{channels}ch_out.wav"
        sf.write(str(src), reel_audio(seconds, channels, model.spec.sample_rate).T, model.spec.sample_rate,
                 subtype="PCM_16")
        rtf = float(np.median([restore_file(src, dst, model, config).real_time_factor for _ in range(repeats)]))
        src.unlink()
        dst.unlink()
        return rtf

    return {"audio_seconds": seconds, "repeats": repeats, **sweep(measure, limit)}


def _streams_wall(model: OnnxModel, config: StreamConfig, blocks: list[np.ndarray], n: int, threaded: bool) -> float:
    """Seconds to push the same mono audio through `n` StreamRestorers sharing one model
    (no `flush`: a live stream never ends, and the tail would add two frames per stream)."""
    restorers = [StreamRestorer(model, 1, config) for _ in range(n)]
    if not threaded:
        start = time.perf_counter()
        for block in blocks:
            for r in restorers:
                r.feed(block)
        return time.perf_counter() - start
    gate = threading.Barrier(n + 1, timeout=60)

    def run(r: StreamRestorer) -> None:
        gate.wait()
        for block in blocks:
            r.feed(block)

    with ThreadPoolExecutor(max_workers=n) as pool:
        futures = [pool.submit(run, r) for r in restorers]
        gate.wait()
        start = time.perf_counter()
        for f in futures:
            f.result()  # re-raises a worker's exception
        return time.perf_counter() - start


def streams_rtf(model: OnnxModel, config: StreamConfig, seconds: float, block: int, repeats: int, limit: int,
                threaded: bool, workdir: Path) -> dict:
    """N mono streams of the same file, read in device-sized blocks (reading not timed),
    fed round robin in this thread or one thread per stream; RTF = wall / audio duration."""
    rate = model.spec.sample_rate
    src = workdir / "streams_mono.wav"
    sf.write(str(src), reel_audio(seconds, 1, rate).T, rate, subtype="PCM_16")
    blocks = list(FileSource(src, rate, block).blocks())
    audio_seconds = sum(b.shape[1] for b in blocks) / rate

    def measure(n: int) -> float:
        walls = [_streams_wall(model, config, blocks, n, threaded) for _ in range(repeats)]
        return float(np.median(walls)) / audio_seconds

    mode = "threads" if threaded else "round_robin"
    return {"mode": mode, "block_samples": block, "audio_seconds": audio_seconds, "repeats": repeats,
            **sweep(measure, limit)}


# -- latency -----------------------------------------------------------------------------
def latency(model: OnnxModel, config: StreamConfig, channels: int, block: int, seconds: float,
            repeats: int) -> dict:
    """A simulated sound card: block k (samples [kB, (k+1)B)) is handed over at wall time
    t0 + (k+1)·B/rate, sample n was captured at t0 + (n+1)/rate. For each output, the first
    (oldest) restored sample's latency is measured = time it leaves `feed` - its capture;
    algorithmic = when the block that completed its frame was handed over - its capture;
    added = measured - algorithmic (waiting for the thread + compute)."""
    probe = StreamRestorer(model, channels, config)
    rate = probe.sample_rate
    blocks = _blocks(reel_audio(seconds, channels, rate), block)
    period = block / rate
    keys = ("measured", "algorithmic", "added", "compute")
    runs: dict[str, list[Distribution]] = {k: [] for k in keys}
    late = []
    for _ in range(repeats):
        restorer = StreamRestorer(model, channels, config)
        got: dict[str, list[float]] = {k: [] for k in keys}
        returned, behind = 0, 0
        t0 = time.perf_counter() + 0.05
        for k, b in enumerate(blocks):
            due = t0 + (k + 1) * period
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            start = time.perf_counter()
            out = restorer.feed(b)
            end = time.perf_counter()
            behind += end > due + period  # the next block was already waiting
            if out.shape[1]:
                captured = t0 + (returned + 1) / rate
                for key, value in zip(keys, (end - captured, due - captured, end - due, end - start)):
                    got[key].append(value)
                returned += out.shape[1]
        for key in keys:
            runs[key].append(Distribution.of_seconds(got[key]))
        late.append(behind)
    algorithmic = probe.latency_samples
    return {
        "block_samples": block,
        "block_ms": 1000.0 * period,
        "audio_seconds_per_run": seconds,
        "repeats": repeats,
        "latency_samples": algorithmic,
        "derived_ms": 1000.0 * algorithmic / rate,  # StreamRestorer.latency_seconds
        "derived_worst_with_block_ms": 1000.0 * (algorithmic + block - 1) / rate,
        **{f"{key}_ms": Distribution.median_of(runs[key]).to_dict() for key in keys},
        "late_blocks": int(np.median(late)),
    }


# -- memory ------------------------------------------------------------------------------
# The child's own peak is VmHWM: ru_maxrss (what memory.peak_rss_mb reads) inherits the
# parent's high-water mark through vfork + exec, so a child of this (large) process would
# report the bench's peak, not its own.
_CHILD = (
    "import sys\n"
    "import numpy as np\n"
    "from reelrestore.engine.model import OnnxModel\n"
    "from reelrestore.engine.restore import restore_file\n"
    "from reelrestore.engine.stft import StftPlan\n"
    "m, wall = OnnxModel(sys.argv[1]), 0.0\n"
    "if len(sys.argv) > 2:\n"
    "    wall = restore_file(sys.argv[2], sys.argv[3], m).wall_seconds\n"
    "else:  # the baseline: imports, session and kernels, no audio\n"
    "    plan = StftPlan.from_contract(m.spec)\n"
    "    plan.forward(np.zeros((1, m.spec.frame_length), np.float32))\n"
    "status = open('/proc/self/status').read().split('VmHWM:')[1]\n"
    "print(int(status.split()[0]) / 1024, wall)\n"
)


def _peak_rss_mb(*args: Path) -> tuple[float, float]:
    """(peak RSS in MB, restore_file wall seconds) of one fresh process: model [source dest]."""
    out = subprocess.run([sys.executable, "-c", _CHILD, *map(str, args)], check=True, capture_output=True,
                         text=True).stdout.split()
    return float(out[0]), float(out[1])


def memory(model_path: Path, minutes: tuple[float, ...], repeats: int, workdir: Path | None) -> dict:
    """Peak RSS of `restore_file` in a fresh process per run, for each file length (written
    by bench/memory.py's `write_long_file`); the growth from the shortest to the longest;
    and the baseline of a process that only imports the engine, loads the model and runs
    the STFT once. Linux (reads /proc/self/status)."""
    from .memory import write_long_file

    if not Path("/proc/self/status").exists():
        raise BenchSkipped("needs Linux's /proc/self/status for the child's peak RSS")
    rows = []
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        # the first baseline child also refreshes numba's on-disk cache if the kernels
        # changed, so no measured child pays for a compilation
        baseline = [_peak_rss_mb(model_path)[0] for _ in range(repeats + 1)][1:]
        for m in minutes:
            src, dst = Path(tmp) / f"long_{m:g}min.wav", Path(tmp) / f"long_{m:g}min_out.wav"
            write_long_file(src, m)
            runs = [_peak_rss_mb(model_path, src, dst) for _ in range(repeats)]
            peak, wall = float(np.median([r[0] for r in runs])), float(np.median([r[1] for r in runs]))
            rows.append({"minutes": m, "peak_rss_mb": peak, "wall_seconds": wall, "real_time_factor": wall / (60 * m)})
            src.unlink()
            dst.unlink(missing_ok=True)
    return {"baseline_rss_mb": float(np.median(baseline)), "runs": rows, "repeats": repeats,
            "growth_mb": rows[-1]["peak_rss_mb"] - rows[0]["peak_rss_mb"]}  # longest minus shortest file
