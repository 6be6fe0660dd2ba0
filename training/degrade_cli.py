"""``restore-degrade``: make damaged test material from clean audio.

    restore-degrade clean.wav -o damaged.wav --cutoff 2000 --hiss -50dB --target target.wav
"""

from __future__ import annotations

import json
from pathlib import Path

import click
from reelrestore.engine.safety import AtomicPath, check_outputs, guarded, signals_deferred
from reelrestore.engine.units import parse_db, parse_hz

SHAPES = ("brickwall", "butterworth", "slit")  # degrade.SHAPES (tests check they agree); no numpy/scipy for --help
SR = 48000  # degrade.SR, the default contract's rate (tests check they agree)


def level(option: str, text: str, allow_off: bool = False) -> float | None:
    """'-50dB', '-50 dB', '-50' -> -50.0 (at most 0 dBFS); 'off'/'none' -> None where allowed."""
    if allow_off and text.strip().lower() in ("off", "none"):
        return None
    try:
        value = parse_db(text)
    except ValueError as exc:
        raise click.ClickException(f"{option}: {exc}" + (" or 'off'" if allow_off else "")) from None
    if value > 0:
        raise click.ClickException(f"{option}: expected a level at or below 0 dBFS, got {text!r}")
    return value


def frequency(option: str, text: str) -> float:
    try:
        hz = parse_hz(text)
    except ValueError as exc:
        raise click.ClickException(f"{option}: {exc}") from None
    if hz >= SR / 2:
        raise click.ClickException(f"{option}: expected a frequency below {SR // 2} Hz, got {text!r}")
    return hz


EPILOG = """\b
Examples:
  restore-degrade clean.wav -o damaged.wav --cutoff 2k --hiss -50dB --target target.wav
  restore-degrade clean.flac -o reel.wav --cutoff 500 --shape slit --clicks 5 --hum 50 --hum-level -40dB --wow 0.1
  restore-degrade clean.wav -o thesis.wav --cutoff 1500 --shape brickwall --hiss off

The target (--target) is clean + hiss (+ the same wow and level changes): what a perfect
restoration should give back. Files at other rates are resampled to 48 kHz first.
"""


@click.command(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="reelrestore", prog_name="restore-degrade", message="%(prog)s %(version)s")
@guarded("restore-degrade")
@click.argument("clean", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Damaged file to write.")
@click.option("--target", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the training target (clean + hiss).")
@click.option("--cutoff", default="2000", show_default=True,
              help="Low-pass cutoff: 2000, 2k or 2kHz (thesis: 150 250 500 1000 1500 2000 3000).")
@click.option("--shape", type=click.Choice(SHAPES), default="butterworth", show_default=True,
              help="Low-pass shape.")
@click.option("--order", type=click.IntRange(1, 32), default=8, show_default=True, help="Butterworth order.")
@click.option("--causal", is_flag=True, help="Causal Butterworth (phase shift) instead of zero-phase.")
@click.option("--hiss", "hiss", default="-60dB", show_default=True,
              help="Hiss RMS re full scale, e.g. -50dB, or 'off'. Kept in the target.")
@click.option("--clicks", type=click.FloatRange(0), default=0.0, show_default=True, help="Clicks per second.")
@click.option("--crackle", type=click.FloatRange(0), default=0.0, show_default=True,
              help="Crackle impulses per second.")
@click.option("--hum", default="0", show_default=True, help="Mains hum: 50, 60 or 50Hz (0 = off).")
@click.option("--hum-level", default="-50dB", show_default=True, help="Hum fundamental RMS re full scale, e.g. -40dB.")
@click.option("--wow", type=click.FloatRange(0), default=0.0, show_default=True,
              help="Wow: peak speed deviation in percent.")
@click.option("--flutter", type=click.FloatRange(0), default=0.0, show_default=True,
              help="Flutter (24 Hz): peak deviation in percent.")
@click.option("--level", "level_changes", type=click.FloatRange(0), default=0.0, show_default=True,
              help="Slow level changes: max deviation in dB.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed: same seed, same damage.")
@click.option("--subtype", default=None, help="soundfile subtype (default FLOAT for wav, PCM_24 for flac).")
@click.option("-y", "--overwrite", "overwrite", flag_value=True, default=None,
              help="Replace output files that exist (without -y or -n an existing output is refused).")
@click.option("-n", "--no-overwrite", "overwrite", flag_value=False, help="Never replace an existing output.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing on success (errors only).")
@click.option("-v", "--verbose", is_flag=True, help="Print every damage parameter drawn, as JSON.")
def main(clean: Path, output: Path, target: Path | None, cutoff: str, shape: str, order: int, causal: bool,
         hiss: str, clicks: float, crackle: float, hum: str, hum_level: str, wow: float, flutter: float,
         level_changes: float, seed: int, subtype: str | None, overwrite: bool | None, quiet: bool,
         verbose: bool) -> None:
    """Damage CLEAN like a worn optical film soundtrack and write it to -o DAMAGED."""
    with signals_deferred():  # native libraries starting up must not be interrupted (see engine.safety)
        import numpy as np
        import soundfile as sf

        from reelrestore.engine.io import truncation

        from .degrade import DegradeConfig, degrade

    hum_hz = 0.0 if hum.strip().lower().removesuffix("hz").strip() in ("0", "0.0", "off") else frequency("--hum", hum)
    try:  # check everything cheap before reading and processing the audio
        cfg = DegradeConfig(cutoff_hz=frequency("--cutoff", cutoff), shape=shape, order=order, zero_phase=not causal,
                            hiss_db=level("--hiss", hiss, allow_off=True), clicks_per_s=clicks, crackle_per_s=crackle,
                            hum_hz=hum_hz, hum_db=level("--hum-level", hum_level), wow_percent=wow,
                            flutter_percent=flutter, level_db=level_changes)
    except ValueError as err:
        raise click.ClickException(str(err)) from None
    check_outputs([clean], [("-o", output), ("--target", target)], overwrite)
    formats = sf.available_formats()
    for out in (output, target):
        if out is not None and out.suffix[1:].upper() not in formats:
            raise click.ClickException(f"expected an audio file name (.wav, .flac, ...), got {out}")
    try:
        why = truncation(clean, sf.info(str(clean)))
        if why:
            raise click.ClickException(f"{clean}: truncated ({why})")
    except RuntimeError as err:  # soundfile.LibsndfileError
        raise click.ClickException(f"expected a readable audio file, got {clean}: {err}") from None
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
    written = [(AtomicPath(path), data) for path, data in ((output, damaged), (target, tgt)) if path is not None]
    try:  # both are written before either is renamed: an error leaves neither
        for atomic, data in written:
            kind = subtype or {".wav": "FLOAT", ".flac": "PCM_24"}.get(atomic.path.suffix.lower())  # None: soundfile's
            peak = float(np.max(np.abs(data)))
            if peak > 1.0 and kind not in ("FLOAT", "DOUBLE"):
                raise click.ClickException(f"{atomic.path}: peaks at {peak:.2f} > 1.0 and would clip in "
                                           f"{kind or 'PCM'}; write float (--subtype FLOAT) or lower the damage")
            try:
                sf.write(str(atomic.temp), data.T, SR, subtype=kind)
            except (RuntimeError, ValueError, TypeError) as err:
                raise click.ClickException(f"could not write {atomic.path}: {err}; is the disk full?") from None
        for atomic, _ in written:
            atomic.commit()
    finally:
        for atomic, _ in written:
            atomic.discard()
    if verbose:
        click.echo(json.dumps({k: v.tolist() if hasattr(v, "tolist") else v for k, v in info.items()}, indent=2,
                              default=str))
    elif not quiet:
        summary = {k: v for k, v in info["config"].items() if k in ("cutoff_hz", "shape", "hiss_db")}
        click.echo(f"wrote {output} ({damaged.shape[-1] / SR:.2f} s, {len(info['click_samples'])} clicks) "
                   f"{json.dumps(summary)}")

if __name__ == "__main__":
    main()
