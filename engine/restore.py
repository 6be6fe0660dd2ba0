"""Restore a file: FileSource ─► StreamRestorer ─► FileSink, as fast as the CPU goes.

This is the streaming path fed with large blocks, nothing else: the same `StreamRestorer`
that serves the sound card, so file output and live output cannot disagree. The one
thing a file allows that a live feed does not is a first pass: with `--cutoff auto` the
cutoff is learned from the whole file (`learn_cutoffs`) and locked before the first
sample is restored, so the start of a reel is restored like the rest of it.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from .io import AudioError, FileSink, FileSource, Resampler
from .band import band_db
from .cutoff import CutoffDecision, find_cut, fixed_cut
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
    # Per channel: {hz (None = no cut: passed through), reason, learned_seconds}.
    cutoffs: list[dict] = field(default_factory=list)
    # Every lock, per channel, with the stream time (a live run re-learns on a new reel).
    cutoff_timeline: list[dict] = field(default_factory=list)
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
    on_cutoffs: Callable[[list], None] | None = None,
) -> RunReport:
    """Restore `source_path` into `dest_path` (written atomically) and report on it.

    block_size: samples per read at the file's rate (0 = the whole file at once).
    output_rate: Hz of the written file; None = the model's rate.
    progress: called as progress(done, total) in samples at the model's rate.
    on_cutoffs: called with the per-channel `CutoffDecision`s once they are locked.
    """
    source_path, dest_path = Path(source_path), Path(dest_path)
    check_paths(source_path, dest_path)
    spec = model.spec
    source = FileSource(source_path, spec.sample_rate, block_size)
    out_rate = output_rate or spec.sample_rate
    restorer = StreamRestorer(model, source.channels, config)
    start = time.perf_counter()
    if not config.bypass:
        restorer.lock_cutoffs(learn_cutoffs(source.blocks(), restorer, source.expected_output_frames))
        if on_cutoffs is not None:
            on_cutoffs(restorer.cutoffs)
    to_output = Resampler(spec.sample_rate, out_rate, source.channels)
    subtype = source.info.subtype
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
        cutoffs=[d.to_dict() if d is not None else None for d in restorer.cutoffs],
        cutoff_timeline=restorer.cutoff_timeline,
        mix=config.mix,
        bypass=config.bypass,
        samples_in=source.frames,
        samples_out=sink.frames,
        audio_seconds=audio_seconds,
        wall_seconds=wall,
        real_time_factor=wall / audio_seconds,
        frames_restored=restorer.frames_restored,
    )



# At most this many frames are analysed per channel to learn a file's cutoff (10 minutes
# of 0.5 s frames), spread evenly over the file; more adds time, not certainty.
MAX_LEARN_FRAMES = 1200


def learn_cutoffs(blocks: Iterable[np.ndarray], restorer: StreamRestorer, total: int) -> list[CutoffDecision]:
    """First pass: the cutoff of each channel from the whole recording.

    blocks: (channels, n) float32 at the model's rate, `total` samples in all. Cuts it
    into the restorer's frames (no overlap), keeps every k-th so at most
    `MAX_LEARN_FRAMES` are read, and decides per channel with `cutoff.find_cut` (or,
    when the user set the cutoff, reads only the hiss floor with `cutoff.fixed_cut`).
    """
    frame, c = restorer.frame_length, restorer.channels
    stride = max(1, -(-(total // frame) // MAX_LEARN_FRAMES))  # ceil
    pending = np.zeros((c, 0), dtype=np.float32)
    profiles: list[np.ndarray] = []  # (C, bins) per kept frame
    index = 0
    for block in blocks:
        pending = np.concatenate([pending, block], axis=1)
        usable = pending.shape[1] // frame
        picked = [i for i in range(usable) if (index + i) % stride == 0]
        if picked:
            frames = np.stack([pending[:, i * frame : (i + 1) * frame] for i in picked])  # (P, C, F)
            db = band_db(restorer.plan.forward(frames.reshape(-1, frame)))  # (P·C, bins)
            profiles.extend(db.reshape(len(picked), c, -1))
        index += usable
        pending = pending[:, usable * frame :]
    seconds = index * frame / restorer.sample_rate
    stacked = np.stack(profiles) if profiles else np.zeros((0, c, restorer.model.spec.n_bins))  # (P, C, bins)
    fixed = restorer.config.cutoff_hz
    if fixed is not None:
        return [fixed_cut(stacked[:, ch], restorer.bin_hz, fixed, seconds) for ch in range(c)]
    return [find_cut(stacked[:, ch], restorer.bin_hz, seconds) for ch in range(c)]

def restore_array(audio: np.ndarray, model: OnnxModel, config: StreamConfig = StreamConfig(),
                  block_size: int = 96000) -> tuple[np.ndarray, list[CutoffDecision]]:
    """Restore ``audio [channels, n]`` float32 at the model's rate exactly as
    `restore_file` restores a file (the same first pass, the same streaming path);
    returns ``(restored [channels, n], the cutoff decision per channel)``."""
    restorer = StreamRestorer(model, audio.shape[0], config)
    step = max(block_size, 1)
    blocks = lambda: (np.ascontiguousarray(audio[:, i:i + step]) for i in range(0, audio.shape[1], step))  # noqa: E731
    if not config.bypass:
        restorer.lock_cutoffs(learn_cutoffs(blocks(), restorer, audio.shape[1]))
    parts = [restorer.feed(b) for b in blocks()]
    parts.append(restorer.flush())
    return np.concatenate(parts, axis=1), restorer.cutoffs
