"""``restore-degrade``: make damaged test material from clean audio.

    restore-degrade clean.wav -o damaged.wav --cutoff 2000 --hiss -50dB --target target.wav
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

import click
import numpy as np
import soundfile as sf

from .degrade import SHAPES, SR, DegradeConfig, degrade


def parse_db(text: str) -> float | None:
    """'-50dB', '-50 dB', '-50' -> -50.0; 'off'/'none' -> None."""
    t = text.strip().lower()
    if t in ("off", "none"):
        return None
    try:
        value = float(t[:-2] if t.endswith("db") else t)
    except ValueError:
        raise click.ClickException(f"--hiss: expected a level like -50dB or 'off', got {text!r}") from None
    if not math.isfinite(value) or value > 0:
        raise click.ClickException(f"--hiss: expected a level at or below 0 dBFS, got {text!r}")
    return value


def write_atomic(path: Path, audio: np.ndarray, sr: int, subtype: str | None) -> None:
    """Write through a temporary file in the same folder, then rename: a crash never
    leaves a half-written file under the requested name."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    try:
        sf.write(tmp, audio, sr, subtype=subtype)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


EPILOG = """\b
Examples:
  restore-degrade clean.wav -o damaged.wav --cutoff 2000 --hiss -50dB --target target.wav
  restore-degrade clean.flac -o reel.wav --cutoff 500 --shape slit --clicks 5 --hum 50 --wow 0.1
  restore-degrade clean.wav -o thesis.wav --cutoff 1500 --shape brickwall --hiss off

The target (--target) is clean + hiss (+ the same wow and level changes): what a perfect
restoration should give back. Files at other rates are resampled to 48 kHz first.
"""


@click.command(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("clean", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Damaged file to write.")
@click.option("--target", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the training target (clean + hiss).")
@click.option("--cutoff", type=click.FloatRange(1.0, SR / 2, max_open=True), default=2000.0, show_default=True,
              help="Low-pass cutoff in Hz (thesis: 150 250 500 1000 1500 2000 3000).")
@click.option("--shape", type=click.Choice(SHAPES), default="butterworth", show_default=True,
              help="Low-pass shape.")
@click.option("--order", type=click.IntRange(1, 32), default=8, show_default=True, help="Butterworth order.")
@click.option("--causal", is_flag=True, help="Causal Butterworth (phase shift) instead of zero-phase.")
@click.option("--hiss", "hiss", default="-60dB", show_default=True,
              help="Hiss RMS re full scale, e.g. -50dB, or 'off'. Kept in the target.")
@click.option("--clicks", type=click.FloatRange(0), default=0.0, show_default=True, help="Clicks per second.")
@click.option("--crackle", type=click.FloatRange(0), default=0.0, show_default=True,
              help="Crackle impulses per second.")
@click.option("--hum", type=click.FloatRange(0), default=0.0, show_default=True,
              help="Mains hum in Hz (50, 60; 0 = off).")
@click.option("--hum-level", type=float, default=-50.0, show_default=True, help="Hum fundamental RMS in dBFS.")
@click.option("--wow", type=click.FloatRange(0), default=0.0, show_default=True,
              help="Wow: peak speed deviation in percent.")
@click.option("--flutter", type=click.FloatRange(0), default=0.0, show_default=True,
              help="Flutter (24 Hz): peak deviation in percent.")
@click.option("--level", type=click.FloatRange(0), default=0.0, show_default=True,
              help="Slow level changes: max deviation in dB.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed: same seed, same damage.")
@click.option("--subtype", default=None, help="soundfile subtype (default FLOAT for wav, PCM_24 for flac).")
def main(clean: Path, output: Path, target: Path | None, cutoff: float, shape: str, order: int, causal: bool,
         hiss: str, clicks: float, crackle: float, hum: float, hum_level: float, wow: float, flutter: float,
         level: float, seed: int, subtype: str | None) -> None:
    """Damage CLEAN like a worn optical film soundtrack and write it to -o DAMAGED."""
    try:  # check everything cheap before reading and processing the audio
        cfg = DegradeConfig(cutoff_hz=cutoff, shape=shape, order=order, zero_phase=not causal,
                            hiss_db=parse_db(hiss), clicks_per_s=clicks, crackle_per_s=crackle,
                            hum_hz=hum, hum_db=hum_level, wow_percent=wow, flutter_percent=flutter, level_db=level)
    except ValueError as err:
        raise click.ClickException(str(err)) from None
    formats = sf.available_formats()
    for out in (output, target):
        if out is None:
            continue
        if out.suffix[1:].upper() not in formats:
            raise click.ClickException(f"expected an audio file name (.wav, .flac, ...), got {out}")
        if not out.parent.is_dir():
            raise click.ClickException(f"expected an existing folder for {out}, got {out.parent}")
    try:
        audio, sr = sf.read(str(clean), dtype="float32", always_2d=True)  # [n, channels]
    except RuntimeError as err:  # soundfile.LibsndfileError
        raise click.ClickException(f"expected a readable audio file, got {clean}: {err}") from None
    if audio.shape[0] == 0:
        raise click.ClickException(f"expected audio samples in {clean}, got an empty file")
    if sr != SR:
        import soxr

        click.echo(f"note: resampling {clean.name} from {sr} Hz to {SR} Hz", err=True)
        audio = soxr.resample(audio, sr, SR, quality="HQ").astype(np.float32)
    damaged, tgt, info = degrade(audio.T, cfg, np.random.default_rng(seed))  # [channels, n]
    for path, data in ((output, damaged), (target, tgt)):
        if path is None:
            continue
        kind = subtype or {".wav": "FLOAT", ".flac": "PCM_24"}.get(path.suffix.lower())  # None: soundfile's
        peak = float(np.max(np.abs(data)))
        if peak > 1.0 and kind not in ("FLOAT", "DOUBLE"):
            click.echo(f"warning: {path.name} peaks at {peak:.2f} > 1.0 and will clip in {kind or 'PCM'}", err=True)
        try:
            write_atomic(path, data.T, SR, kind)
        except (RuntimeError, ValueError, TypeError) as err:
            raise click.ClickException(f"could not write {path}: {err}") from None
    summary = {k: v for k, v in info["config"].items() if k in ("cutoff_hz", "shape", "hiss_db")}
    click.echo(f"wrote {output} ({damaged.shape[-1] / SR:.2f} s, {len(info['click_samples'])} clicks) "
               f"{json.dumps(summary)}")


if __name__ == "__main__":
    main()
