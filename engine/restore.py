"""Restore a file or an array, and the one report every mode writes.

`restore_file` is `pipeline.run` from a `FileSource` into a `FileSink` as fast as the CPU
goes: the same `StreamRestorer` and the same driver that serve the sound card, so file
output and live output cannot disagree. The one thing a file allows that a live feed does
not is a first pass: with `--cutoff auto` the cutoff is learned from the whole file and
locked before the first sample is restored, so the start of a reel is restored like the
rest of it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .cutoff import CutoffDecision
from .io import FileSink, FileSource
from .model import OnnxModel
from .pipeline import (
    ArraySink,
    ArraySource,
    ResamplingSink,
    RunResult,
    Sink,
    Source,
    innermost,
    run,
)
from .safety import check_outputs
from .stream import StreamConfig, StreamRestorer


@dataclass
class RunReport:
    """What ran and how fast, in every mode; written by `restore-stream --report`."""

    input: str  # a path, or the input device
    output: str | None  # the file written (None: none, or not kept)
    added_output: str | None  # the added band alone (--output-added), when written
    figure: str | None  # input | restored spectrograms (--figure), when drawn
    model: str
    model_sha256: str
    architecture: str
    model_version: str
    provider: str
    channels: int
    input_sample_rate: int
    model_sample_rate: int
    output_sample_rate: int | None  # of the file written
    output_subtype: str | None
    output_peak_dbfs: float | None  # the written file's largest sample (a PCM file that would clip is refused)
    frame_samples: int
    hop_samples: int
    overlap: float  # with latency_mode "full"
    latency_mode: str  # "full" (frames centred on what they restore) or "low" (see StreamConfig.latency)
    latency_samples: int  # the restorer's; a device adds `playback.latency`
    latency_ms: float
    cutoff: str  # "auto" or the fixed frequency in Hz
    # Per channel: {hz (None = no cut: passed through), reason, learned_seconds}.
    cutoffs: list[dict] = field(default_factory=list)
    # Every lock, per channel, with the stream time (a live run re-learns on a new reel).
    cutoff_timeline: list[dict] = field(default_factory=list)
    mix: float = 1.0
    bypass: bool = False
    completed: bool = False  # the whole source was restored (and the file written)
    interrupted: bool = False  # stopped by Ctrl-C
    samples_in: int = 0  # per channel restored, at the model's rate
    samples_out: int = 0  # per channel written, at the output file's rate
    audio_seconds: float = 0.0  # restored
    wall_seconds: float = 0.0
    busy_seconds: float = 0.0  # wall time less waiting for input or for the sound card
    real_time_factor: float = 0.0  # busy time / audio time; < 1 is faster than real time
    frames_restored: int = 0
    # Live runs: played_seconds, underruns, overruns, device_xruns, latency terms, ...
    playback: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def make_report(source: Source, restorer: StreamRestorer, result: RunResult | None, output: Sink | None,
                output_path: Path | None, playback: dict | None = None, interrupted: bool = False,
                added_path: Path | None = None, figure_path: Path | None = None) -> RunReport:
    """The report of one run of `source` through `restorer` (result None: it failed early)."""
    model, config = restorer.model, restorer.config
    spec = model.spec
    samples_in = result.samples_in if result else 0
    audio_seconds = samples_in / spec.sample_rate
    busy = result.busy_seconds if result else 0.0
    completed = result is not None and result.completed
    return RunReport(
        input=source.name,
        output=str(output_path) if completed and output is not None else None,
        added_output=str(added_path) if completed and added_path is not None else None,
        figure=str(figure_path) if completed and figure_path is not None else None,
        model=str(model.path),
        model_sha256=model.sha256,
        architecture=spec.architecture,
        model_version=spec.model_version,
        provider=model.provider,
        channels=restorer.channels,
        input_sample_rate=source.input_sample_rate,
        model_sample_rate=spec.sample_rate,
        output_sample_rate=getattr(output, "sample_rate", None),
        output_subtype=getattr(output, "subtype", None),
        output_peak_dbfs=_peak_dbfs(output),
        frame_samples=restorer.frame_length,
        hop_samples=restorer.hop,
        overlap=config.overlap,
        latency_mode=config.latency,
        latency_samples=restorer.latency_samples,
        latency_ms=1000.0 * restorer.latency_seconds,
        cutoff="auto" if config.cutoff_hz is None else f"{config.cutoff_hz:g}",
        cutoffs=[dict(d.to_dict(), band_gain_db=round(restorer.band_gain_db(d), 2),
                      band_gain_db_range=_rounded(restorer.band_gain_course_db(d)),
                      lift_curve=restorer.lift_curve(d)) if d is not None else None
                 for d in restorer.cutoffs],
        cutoff_timeline=restorer.cutoff_timeline,
        mix=config.mix,
        bypass=config.bypass,
        completed=bool(result and result.completed),
        interrupted=interrupted,
        samples_in=samples_in,
        samples_out=output.frames if output is not None else 0,
        audio_seconds=audio_seconds,
        wall_seconds=result.wall_seconds if result else 0.0,
        busy_seconds=busy,
        real_time_factor=busy / audio_seconds if audio_seconds else 0.0,
        frames_restored=restorer.frames_restored,
        playback=playback,
    )


def _rounded(course: tuple[float, float] | None) -> list[float] | None:
    return None if course is None else [round(v, 2) for v in course]


def _peak_dbfs(output: Sink | None) -> float | None:
    peak = getattr(innermost(output), "peak", None) if output is not None else None
    return None if peak is None else round(20 * math.log10(max(peak, 1e-10)), 2)


def check_paths(source: Path, dest: Path) -> None:
    """Refuse to overwrite the input (by name, link or hard link); see `safety.check_outputs`."""
    check_outputs([source], [("the output", dest)], overwrite=True)


def open_output(path: Path, source: Source, model_rate: int, output_rate: int | None = None,
                subtype: str | None = None) -> Sink:
    """The file sink for `path`, written atomically (see `FileSink`): at `output_rate`
    (None: the input's rate, resampled back from the model's), in `subtype` (None: the
    input's depth or deeper where the format allows, see `io.output_format`)."""
    rate = output_rate or source.input_sample_rate
    sink = FileSink(path, rate, source.channels, source.subtype, subtype)
    try:
        return sink if rate == model_rate else ResamplingSink(sink, model_rate, rate, source.channels)
    except BaseException:
        sink.abort()
        raise


def restore_file(
    source_path: str | Path,
    dest_path: str | Path,
    model: OnnxModel,
    config: StreamConfig = StreamConfig(),
    block_size: int = 96000,
    output_rate: int | None = None,
    progress: Callable[[int, int | None], None] | None = None,
    on_cutoffs: Callable[[list], None] | None = None,
    subtype: str | None = None,
) -> RunReport:
    """Restore `source_path` into `dest_path` (written atomically) and report on it.

    block_size: samples per read at the file's rate (0 = the whole file at once).
    output_rate, subtype: of the written file; None = the input's (see `open_output`).
    progress: called as progress(done, total) in samples at the model's rate.
    on_cutoffs: called with the per-channel `CutoffDecision`s once they are locked.
    """
    source_path, dest_path = Path(source_path), Path(dest_path)
    check_paths(source_path, dest_path)
    source = FileSource(source_path, model.spec.sample_rate, block_size)
    restorer = StreamRestorer(model, source.channels, config)
    sink = open_output(dest_path, source, model.spec.sample_rate, output_rate, subtype)
    result = run(source, restorer, sink, progress=progress, on_cutoffs=on_cutoffs)
    return make_report(source, restorer, result, sink, dest_path)


def restore_array(audio: np.ndarray, model: OnnxModel, config: StreamConfig = StreamConfig(),
                  block_size: int = 96000) -> tuple[np.ndarray, list[CutoffDecision]]:
    """Restore ``audio [channels, n]`` float32 at the model's rate exactly as
    `restore_file` restores a file (the same first pass, the same streaming path);
    returns ``(restored [channels, n], the cutoff decision per channel)``."""
    restorer = StreamRestorer(model, audio.shape[0], config)
    sink = ArraySink(audio.shape[0])
    run(ArraySource(audio, restorer.sample_rate, block_size), restorer, sink)
    return sink.audio, restorer.cutoffs
