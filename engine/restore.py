"""Restore a file: FileSource ─► StreamRestorer ─► FileSink, as fast as the CPU goes.

This is the streaming path fed with large blocks, nothing else: the same `StreamRestorer`
that serves the sound card, so file output and live output cannot disagree.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .io import AudioError, FileSink, FileSource, Resampler
from .model import OnnxModel
from .stream import StreamConfig, StreamRestorer


@dataclass
class RunReport:
    """What ran and how fast; written by `restore-stream --report`."""

    input: str
    output: str
    model: str
    model_sha256: str
    architecture: str
    model_version: str
    provider: str
    channels: int
    input_sample_rate: int
    model_sample_rate: int
    output_sample_rate: int
    frame_samples: int
    hop_samples: int
    overlap: float
    latency_samples: int
    latency_ms: float
    cutoff: str  # "auto" or the fixed frequency in Hz
    cutoff_hz_estimated: list[float] = field(default_factory=list)  # last estimate per channel
    mix: float = 1.0
    bypass: bool = False
    samples_in: int = 0  # per channel, at the input's rate
    samples_out: int = 0  # per channel, at the output's rate
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    real_time_factor: float = 0.0  # wall time / audio time; < 1 is faster than real time
    frames_restored: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def check_paths(source: Path, dest: Path) -> None:
    """Refuse to overwrite the input (by name, link or hard link)."""
    if source.resolve() == dest.resolve() or (dest.exists() and source.exists() and dest.samefile(source)):
        raise AudioError(f"{dest}: the output would overwrite the input; choose another name")


def restore_file(
    source_path: str | Path,
    dest_path: str | Path,
    model: OnnxModel,
    config: StreamConfig = StreamConfig(),
    block_size: int = 96000,
    output_rate: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> RunReport:
    """Restore `source_path` into `dest_path` (written atomically) and report on it.

    block_size: samples per read at the file's rate (0 = the whole file at once).
    output_rate: Hz of the written file; None = the model's rate.
    progress: called as progress(done, total) in samples at the model's rate.
    """
    source_path, dest_path = Path(source_path), Path(dest_path)
    check_paths(source_path, dest_path)
    spec = model.spec
    source = FileSource(source_path, spec.sample_rate, block_size)
    out_rate = output_rate or spec.sample_rate
    restorer = StreamRestorer(model, source.channels, config)
    to_output = Resampler(spec.sample_rate, out_rate, source.channels)
    subtype = source.info.subtype
    start = time.perf_counter()
    done, total = 0, source.expected_output_frames
    with FileSink(dest_path, out_rate, source.channels, subtype) as sink:
        for block in source.blocks():
            sink.write(to_output(restorer.feed(block)))
            done += block.shape[1]
            if progress is not None:
                progress(min(done, total), total)
        sink.write(to_output(restorer.flush(), last=True))
        sink.commit()
    wall = time.perf_counter() - start
    audio_seconds = source.frames / source.file_rate
    return RunReport(
        input=str(source_path),
        output=str(dest_path),
        model=str(model.path),
        model_sha256=model.sha256,
        architecture=spec.architecture,
        model_version=spec.model_version,
        provider=model.provider,
        channels=source.channels,
        input_sample_rate=source.file_rate,
        model_sample_rate=spec.sample_rate,
        output_sample_rate=out_rate,
        frame_samples=restorer.frame_length,
        hop_samples=restorer.hop,
        overlap=config.overlap,
        latency_samples=restorer.latency_samples,
        latency_ms=1000.0 * restorer.latency_seconds,
        cutoff="auto" if config.cutoff_hz is None else f"{config.cutoff_hz:g}",
        cutoff_hz_estimated=[float(c) for c in np.nan_to_num(restorer.last_cutoff_hz)],
        mix=config.mix,
        bypass=config.bypass,
        samples_in=source.frames,
        samples_out=sink.frames,
        audio_seconds=audio_seconds,
        wall_seconds=wall,
        real_time_factor=wall / audio_seconds,
        frames_restored=restorer.frames_restored,
    )
