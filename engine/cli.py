"""`restore-stream`: restore a reel to a file (and, later, to the sound card).

Thin: options mirror `StreamConfig` and `restore_file`; errors become one line on stderr
and a non-zero exit code.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import click

from .io import AudioError
from .model import ModelError, OnnxModel
from .restore import restore_file
from .stream import StreamConfig

DEFAULT_MODEL_NAME = "default.onnx"

EXAMPLES = """
\b
Examples:
  restore-stream reel.wav                      # play the restored reel
  restore-stream reel.wav --device 3 --cutoff 4k
  restore-stream --input-device "Line In"      # restore a live feed (duplex)
  restore-stream reel.wav -o reel_restored.wav --report run.json
  restore-stream reel.flac -o out.wav --cutoff 3000 --mix 0.8
  restore-stream reel.wav -o out.wav --play    # write and play
  restore-stream reel.wav -o out.wav --model my_model.onnx --overlap 0.75
  restore-stream --list-devices

\b
While playing: b = bypass on/off, + / - = mix up/down, q = stop (Ctrl-C works too).
"""


def default_model_path() -> Path:
    """The model shipped inside the package (reelrestore/models/default.onnx)."""
    spec = importlib.util.find_spec("reelrestore.models")  # locates, does not import (no torch)
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        candidate = Path(folder) / DEFAULT_MODEL_NAME
        if candidate.is_file():
            return candidate
    raise ModelError("no default model is installed; pass --model MODEL.onnx")


def parse_cutoff(value: str) -> float | None:
    if value.strip().lower() == "auto":
        return None
    text = value.strip().lower().removesuffix("hz").strip()
    try:
        hz = float(text[:-1]) * 1000 if text.endswith("k") else float(text)
    except ValueError:
        raise click.BadParameter(f"expected 'auto' or a frequency like 3000 or 3k, got {value!r}")
    if not math.isfinite(hz) or hz <= 0:
        raise click.BadParameter(f"expected 'auto' or a frequency above 0 Hz like 3000 or 3k, got {value!r}")
    return hz


def report_error(message: str) -> None:
    click.echo(f"restore-stream: error: {message}", err=True)


def fail(message: str, code: int = 1) -> None:
    report_error(message)
    sys.exit(code)


@click.command(epilog=EXAMPLES, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("source", type=click.Path(path_type=Path), required=False)
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write the restored reel to this file.")
@click.option("--play", is_flag=True, help="With -o: also play while writing.")
@click.option("--device", "output_device", help="Output device, name or index (default: the system's).")
@click.option("--input-device", help="Restore a live input from this device and play it (duplex).")
@click.option("--list-devices", is_flag=True, help="List sound devices and exit.")
@click.option("--device-block", type=click.IntRange(16, 16384), default=1024, show_default=True,
              help="Samples per sound-card callback.")
@click.option("--headroom-ms", type=click.FloatRange(0, 5000), default=100.0, show_default=True,
              help="Extra output buffering that absorbs slow frames (adds to the latency).")
@click.option("--model", type=click.Path(path_type=Path), help="ONNX model (default: the shipped model).")
@click.option("--overlap", type=click.FloatRange(0.0, 0.95), default=0.5, show_default=True,
              help="Fraction of each 0.5 s frame shared with the next.")
@click.option("--cutoff", default="auto", show_default=True,
              help="Where the surviving band ends: 'auto' (learned per channel from the whole file, "
                   "or live over the first seconds; no cut found = passed through) or Hz, e.g. 3000 or 3k.")
@click.option("--mix", type=click.FloatRange(0.0, 1.0), default=1.0, show_default=True,
              help="0 = the input as it is, 1 = fully restored above the cutoff.")
@click.option("--bypass", is_flag=True, help="Pass the audio through unrestored (same latency).")
@click.option("--block-size", type=click.IntRange(min=0), default=96000, show_default=True,
              help="Samples read per block (0 = whole file).")
@click.option("--sample-rate", "output_rate", type=click.IntRange(min=1000),
              help="Output rate in Hz (default: the model's rate).")
@click.option("--provider", "compute", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True, help="Where the model runs; 'auto' uses CUDA only when an NVIDIA driver is present.")
@click.option("--report", type=click.Path(path_type=Path), help="Write what ran (model, provider, latency, RTF) as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or summary.")
def main(source, output, play, output_device, input_device, list_devices, device_block, headroom_ms,
         model, overlap, cutoff, mix, bypass, block_size, output_rate, compute, report, quiet):
    """Restore the soundtrack SOURCE: bring back the band a film reel lost, keep the rest.

    Plays on the sound card unless -o is given; --input-device restores a live feed.
    """
    if list_devices:
        from .live import DeviceError, list_devices as devices

        try:
            listing = devices().strip()
        except DeviceError as exc:
            fail(str(exc))
        click.echo(listing or "no sound devices found (is a sound server or card available?)")
        return
    if source is None and input_device is None:
        fail("expected a file to restore (or --input-device for a live feed); see --help", 2)
    try:
        config = StreamConfig(overlap=overlap, cutoff_hz=parse_cutoff(cutoff), mix=mix, bypass=bypass)
        onnx_model = OnnxModel(model or default_model_path(), device=compute)
    except (ModelError, ValueError, click.BadParameter) as exc:
        fail(str(exc).splitlines()[0])
    if not quiet:
        spec = onnx_model.spec
        click.echo(f"model {onnx_model.path.name} ({spec.architecture} {spec.model_version}, "
                   f"sha256 {onnx_model.sha256[:12]}) on {onnx_model.provider}", err=True)
    if output is None or play or input_device is not None:
        from .live_cli import run_live

        sys.exit(run_live(source, output, onnx_model, config, output_device, input_device,
                          device_block, headroom_ms, report, quiet))
    sys.exit(run_file(source, output, onnx_model, config, block_size, output_rate, report, quiet))


def run_file(source, output, onnx_model, config, block_size, output_rate, report, quiet) -> int:
    """The file job: restore SOURCE into OUTPUT as fast as the machine goes."""
    bars = []  # created on the first progress call, once the input has been checked

    def progress(done: int, total: int) -> None:
        if not bars:
            from tqdm import tqdm

            bars.append(tqdm(total=0, desc="restoring", file=sys.stderr,
                             bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} s [{elapsed}<{remaining}]"))
        rate = onnx_model.spec.sample_rate
        bars[0].total, bars[0].n = total / rate, done / rate
        bars[0].refresh()

    def show_cutoffs(decisions) -> None:
        if quiet:
            return
        for channel, decision in enumerate(decisions):
            where = f"ch {channel + 1}: " if len(decisions) > 1 else ""
            hint = " (set --cutoff HZ to restore it anyway)" if decision.hz is None else ""
            click.echo(f"{where}{decision.describe()}{hint}", err=True)

    try:
        try:
            result = restore_file(source, output, onnx_model, config, block_size, output_rate,
                                  None if quiet else progress, show_cutoffs)
        finally:
            for bar in bars:
                bar.close()
    except (AudioError, ModelError, ValueError) as exc:
        fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    except KeyboardInterrupt:
        fail(f"interrupted; nothing was written to {output}", 130)
    except OSError as exc:
        fail(f"{exc.strerror or exc}: {exc.filename or output}")

    if report is not None:
        report.write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    if not quiet:
        click.echo(
            f"wrote {output} ({result.samples_out} samples x {result.channels} ch at "
            f"{result.output_sample_rate} Hz); latency {result.latency_ms:.1f} ms, "
            f"real-time factor {result.real_time_factor:.3f}",
            err=True,
        )
    return 0
