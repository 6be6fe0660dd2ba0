"""Audio files in and out, block by block (memory does not grow with the file's length).

Sources yield (channels, n) float32 blocks at the rate the model wants, resampling with a
streaming soxr resampler when the file has another rate. Sinks write (channels, n) blocks
to a temporary file beside the destination and rename it into place only when the whole
stream is written, so an error or Ctrl-C never leaves a half-written file behind.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from .safety import AtomicPath, one_line

# Formats whose header gives only an estimate of the length, and how far short of it a
# complete file may decode (MP3: encoder delay and padding; a real cut is far more).
ESTIMATED_LENGTH = {"MP3": 0.01}
MIN_RATE = 4000  # Hz; below this a file is not a recording of sound worth restoring


class AudioError(ValueError):
    """Audio that cannot be read or written; the message says why, in one line."""


class FileSource:
    """Reads an audio file as float32 blocks of shape (channels, n) at `sample_rate`
    (a `pipeline.Source` that can be read twice)."""

    rewindable = True
    waited_seconds = 0.0

    def __init__(self, path: str | Path, sample_rate: int | None = None, block_size: int = 48000):
        self.path = Path(path)
        if not self.path.exists():
            raise AudioError(f"{self.path}: no such file")
        if not self.path.is_file():
            raise AudioError(f"{self.path}: not a regular file")
        if self.path.stat().st_size == 0:
            raise AudioError(f"{self.path}: empty file")
        try:
            info = sf.info(str(self.path))
        except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError, TypeError
            raise AudioError(f"{self.path}: not a readable audio file ({one_line(exc)})")
        if info.frames == 0:
            raise AudioError(f"{self.path}: contains no audio samples")
        if info.samplerate < MIN_RATE:
            raise AudioError(f"{self.path}: sample rate {info.samplerate} Hz; expected audio at {MIN_RATE} Hz or more")
        why = truncation(self.path, info)
        if why:
            raise AudioError(f"{self.path}: truncated ({why})")
        self.info = info
        self.name, self.subtype = str(self.path), info.subtype
        self.channels = info.channels
        self.file_rate = self.input_sample_rate = info.samplerate
        self.sample_rate = sample_rate or info.samplerate
        self.frames = info.frames  # at the file's rate
        self.block_size = block_size  # samples per read at the file's rate; 0 = whole file

    @property
    def total(self) -> int:
        """Samples the source yields in total, at `sample_rate`."""
        return int(round(self.frames * self.sample_rate / self.file_rate))

    def blocks(self) -> Iterator[np.ndarray]:
        """Yield (channels, n) float32 blocks; raises AudioError on NaN/Inf or bad data."""
        resample = Resampler(self.file_rate, self.sample_rate, self.channels)
        block = self.block_size or self.frames
        done = 0
        with sf.SoundFile(str(self.path)) as f:
            while True:
                try:
                    data = f.read(block, dtype="float32", always_2d=True)  # (n, channels)
                except Exception as exc:
                    raise AudioError(f"{self.path}: unreadable at sample {done}: {one_line(exc)}")
                last = data.shape[0] < block or done + data.shape[0] >= self.frames
                if not np.isfinite(data).all():
                    bad = done + int(np.argmax(~np.isfinite(data).all(axis=1)))
                    raise AudioError(f"{self.path}: sample {bad} is NaN or infinite")
                done += data.shape[0]
                out = resample(np.ascontiguousarray(data.T), last=last)
                if out.shape[1]:
                    yield out
                if last:
                    break
        slack = ESTIMATED_LENGTH.get(self.info.format, 0.0) * self.frames
        if done < self.frames - slack:
            raise AudioError(f"{self.path}: truncated: read {done} of {self.frames} samples")


def truncation(path: Path, info) -> str | None:
    """Why the file is cut off, or None. libsndfile reads a cut-off WAV/AIFF silently but
    notes 'data : X (should be Y)'; a cut-off Ogg decodes shorter without a word, but its
    last page lacks the end-of-stream flag."""
    if any(line.strip().lower().startswith(("data", "ssnd")) and "should be" in line
           for line in info.extra_info.splitlines()):
        return "the header announces more audio than the file holds"
    if info.format == "OGG":
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 65536))
            tail = f.read()
        page = tail.rfind(b"OggS")
        if page < 0 or page + 5 >= len(tail) or not tail[page + 5] & 0x04:
            return "the Ogg stream ends without its last page"
    return None


# Linear subtypes by depth; a lossy or other input counts as float (what it decodes to).
DEPTH = {"PCM_S8": 8, "PCM_U8": 8, "PCM_16": 16, "PCM_24": 24, "PCM_32": 32, "FLOAT": 33, "DOUBLE": 64}


def output_format(path: Path, like_subtype: str | None = None, subtype: str | None = None) -> tuple[str, str]:
    """(format, subtype) for writing `path`: the format from its extension; the subtype
    asked for, or else the input's where it is linear and the format holds it, or else
    the shallowest the format holds that is not shallower than the input (the deepest
    when none is)."""
    ext = path.suffix.lstrip(".").upper()
    fmt = {"AIF": "AIFF", "OGA": "OGG"}.get(ext, ext)
    if fmt not in sf.available_formats():
        raise AudioError(f"{path}: unknown output format '.{ext.lower()}' (try .wav or .flac)")
    if subtype is not None:
        if not sf.check_format(fmt, subtype.upper()):
            held = ", ".join(s for s in sf.available_subtypes(fmt) if s in DEPTH)
            raise AudioError(f"{path}: {fmt} cannot hold --subtype {subtype}; choose one of {held}")
        return fmt, subtype.upper()
    if like_subtype in DEPTH and sf.check_format(fmt, like_subtype):
        return fmt, like_subtype
    linear = sorted((DEPTH[s], s) for s in sf.available_subtypes(fmt) if s in DEPTH and s != "PCM_U8")
    if not linear:
        return fmt, sf.default_subtype(fmt)  # a lossy format (Ogg Vorbis, Opus)
    need = DEPTH.get(like_subtype, DEPTH["FLOAT"])
    deep_enough = [s for depth, s in linear if depth >= need]
    return fmt, deep_enough[0] if deep_enough else linear[-1][1]


PCM_BITS = {"PCM_16": 16, "PCM_24": 24, "PCM_32": 32}


class FileSink:
    """Writes (channels, n) blocks to `path` atomically: a temporary file that `finish`
    renames into place, and that `abort` (or leaving a `with` block by an exception) removes
    (a `pipeline.Sink`)."""

    waited_seconds = 0.0

    def __init__(self, path: str | Path, sample_rate: int, channels: int, like_subtype: str | None = None,
                 subtype: str | None = None):
        self.path, self.sample_rate = Path(path), sample_rate
        parent = self.path.parent
        if not parent.is_dir():
            raise AudioError(f"{self.path}: output folder {parent} does not exist")
        if not os.access(parent, os.W_OK):
            raise AudioError(f"{self.path}: output folder {parent} is not writable")
        if self.path.is_dir():
            raise AudioError(f"{self.path}: is a folder, expected a file name")
        fmt, subtype = output_format(self.path, like_subtype, subtype)
        self.format, self.subtype = fmt, subtype
        self._atomic = AtomicPath(self.path)
        self.temp = self._atomic.temp
        try:
            self._file = sf.SoundFile(
                str(self.temp), "w", samplerate=sample_rate, channels=channels, format=fmt, subtype=subtype
            )
        except BaseException as exc:  # Ctrl-C too: never leave the temporary file behind
            self.temp.unlink(missing_ok=True)
            if not isinstance(exc, Exception):
                raise
            raise AudioError(f"{self.path}: cannot write: {one_line(exc)}")
        self._bits = PCM_BITS.get(subtype)
        self.frames = 0
        self.peak = 0.0  # largest |sample| written
        self.clipped = 0  # samples beyond full scale in a format that cannot hold them

    def write(self, block: np.ndarray) -> None:
        """block: (channels, n) float32."""
        if block.shape[1]:
            peak = float(np.max(np.abs(block)))
            if not np.isfinite(peak):
                raise AudioError(f"{self.path}: the restoration produced NaN or infinite samples; nothing was written")
            self.peak = max(self.peak, peak)
            if peak > 1.0 and self.subtype not in ("FLOAT", "DOUBLE"):
                self.clipped += int(np.count_nonzero(np.abs(block) > 1.0))
            try:
                self._file.write(self._quantise(block.T))
            except (RuntimeError, OSError) as exc:  # soundfile says "System error." for a full disk
                raise AudioError(f"{self.path}: writing failed ({one_line(exc)}); is the disk full?") from None
            self.frames += block.shape[1]

    def _quantise(self, data: np.ndarray) -> np.ndarray:
        """Round float samples to the file's integer grid ourselves (libsndfile truncates
        and scales by 2^(b-1) - 1), so a PCM input passes through bit-exact."""
        if self._bits is None:
            return data
        scale = float(2 ** (self._bits - 1))
        q = np.clip(np.rint(data.astype(np.float64) * scale), -scale, scale - 1)
        if self._bits == 16:
            return q.astype(np.int16)
        return q.astype(np.int32) << (32 - self._bits)  # libsndfile takes int32 left-aligned

    def finish(self) -> None:
        """Rename the complete file into place; refused (and removed) if samples would clip."""
        self._file.close()
        if self.clipped:
            self.abort()
            raise AudioError(
                f"{self.path}: {self.clipped} samples would clip in {self.subtype} (peak "
                f"{20 * np.log10(self.peak):+.1f} dBFS); nothing was written: write float with --subtype FLOAT, "
                "or lower --amount")
        self._atomic.commit()

    def abort(self) -> None:
        if not self._file.closed:
            self._file.close()
        self._atomic.discard()

    def __enter__(self) -> FileSink:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()


class Resampler:
    """Streaming resampler for (channels, n) blocks; identity when the rates match."""

    def __init__(self, in_rate: int, out_rate: int, channels: int):
        self.active = in_rate != out_rate
        if self.active:
            self._stream = soxr.ResampleStream(in_rate, out_rate, channels, dtype="float32", quality="HQ")

    def __call__(self, block: np.ndarray, last: bool = False) -> np.ndarray:
        if not self.active:
            return block
        return np.ascontiguousarray(self._stream.resample_chunk(np.ascontiguousarray(block.T), last=last).T)
