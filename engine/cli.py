"""`restore-stream`: restore a reel to a file, to the sound card, or both.

Thin: options mirror `StreamConfig`; every mode is one `pipeline.run` from a source (a
file or the input device) into sinks (a file, the sound card, or both); errors become one
line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import click

from .console import KEYS_HELP, Keys, LockPrinter, Progress, apply_key, one_line, report_error, say, status_line
from .io import AudioError, FileSource
from .live import DeviceError, LivePlayer, input_channels
from .model import ModelError, OnnxModel
from .pipeline import run
from .restore import RunReport, check_paths, make_report, open_output
from .stream import StreamConfig, StreamRestorer

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
While playing (what you hear only; a file written with -o gets the chosen settings):
b = bypass on/off, a = the added band alone on/off, + / - = mix, q = stop (Ctrl-C too).
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
              help="Samples read from the file per block, in every mode (0 = the whole file).")
@click.option("--sample-rate", "output_rate", type=click.IntRange(1000, 768000),
              help="Rate in Hz of the file written with -o, in every mode (default: the input's; "
                   "the model and the sound card run at the model's rate).")
@click.option("--subtype", type=click.Choice(["PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"], case_sensitive=False),
              help="Sample format of the file written with -o (default: the input's, or deeper "
                   "where the format cannot hold it: float WAV to FLAC is 24-bit).")
@click.option("--provider", "compute", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True, help="Where the model runs; 'auto' uses CUDA only when an NVIDIA driver is present.")
@click.option("--report", type=click.Path(path_type=Path), help="Write what ran (model, provider, latency, RTF) as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or summary.")
def main(source, output, play, output_device, input_device, list_devices, device_block, headroom_ms,
         model, overlap, cutoff, mix, bypass, block_size, output_rate, subtype, compute, report, quiet):
    """Restore the soundtrack SOURCE: bring back the band a film reel lost, keep the rest.

    Plays on the sound card unless -o is given; --input-device restores a live feed.
    """
    if list_devices:
        from .live import list_devices as devices

        try:
            listing = devices().strip()
        except DeviceError as exc:
            fail(str(exc))
        click.echo(listing or "no sound devices found (is a sound server or card available?)")
        return
    if source is None and input_device is None:
        fail("expected a file to restore (or --input-device for a live feed); see --help", 2)
    if source is not None and input_device is not None:
        fail("expected a file or --input-device, not both; see --help", 2)
    for given, name in ((output_rate, "--sample-rate"), (subtype, "--subtype")):
        if given is not None and output is None:
            fail(f"{name} sets the file written with -o; add -o OUT.wav "
                 "(the sound card runs at the model's rate)", 2)
    try:
        config = StreamConfig(overlap=overlap, cutoff_hz=parse_cutoff(cutoff), mix=mix, bypass=bypass)
        onnx_model = OnnxModel(model or default_model_path(), device=compute)
    except (ModelError, ValueError, click.BadParameter) as exc:
        fail(one_line(exc))
    if not quiet:
        spec = onnx_model.spec
        say(f"model {onnx_model.path.name} ({spec.architecture} {spec.model_version}, "
            f"sha256 {onnx_model.sha256[:12]}) on {onnx_model.provider}")
    job = Job(source, output, output_rate, subtype, block_size, quiet,
              live=output is None or play or input_device is not None, input_device=_device(input_device),
              output_device=_device(output_device), device_block=device_block, headroom_ms=headroom_ms)
    try:
        result = job.run(onnx_model, config)
    except KeyboardInterrupt:
        fail("interrupted; nothing was written" + (f" to {output}" if output else ""), 130)
    except (AudioError, ModelError, DeviceError, ValueError) as exc:
        fail(one_line(exc))
    except OSError as exc:
        fail(f"{exc.strerror or exc}: {exc.filename or output}")
    if report is not None:
        report.write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    if not quiet:
        summarise(result)
    code = 130 if result.interrupted else 0
    if output is not None and result.output is None:  # a file stopped part-way by q or Ctrl-C
        how = "Ctrl-C" if result.interrupted else "q"
        seconds = result.playback["played_seconds"] if result.playback else result.audio_seconds
        fail(f"stopped by {how} after {seconds:.1f} s: nothing was written to {output} "
             "(a file is kept only when the whole reel is restored)", code or 1)
    sys.exit(code)


@dataclass
class Job:
    """One run of `restore-stream`: a file or the input device, into a file, the card or both."""

    source: Path | None  # None: the input device
    output: Path | None
    output_rate: int | None
    subtype: str | None
    block_size: int
    quiet: bool
    live: bool  # through the sound card
    input_device: int | str | None
    output_device: int | str | None
    device_block: int
    headroom_ms: float

    def run(self, model: OnnxModel, config: StreamConfig) -> RunReport:
        rate = model.spec.sample_rate
        source = None
        if self.source is not None:
            if self.output is not None:
                check_paths(self.source, self.output)
            source = FileSource(self.source, rate, self.block_size)
        channels = source.channels if source is not None else input_channels(self.input_device)
        restorer = StreamRestorer(model, channels, config)
        player = self._player(restorer, source) if self.live else None
        fed = player.source if player is not None else source
        sink = open_output(self.output, fed, rate, self.output_rate, self.subtype) if self.output else None
        locks = LockPrinter(restorer, self.quiet)
        if player is not None:
            return self._play(player, sink, locks)
        progress = None if self.quiet else Progress(rate)
        try:
            result = run(source, restorer, sink, progress=progress, on_cutoffs=lambda _: locks())
        finally:
            if progress is not None:
                progress.close()
        return make_report(source, restorer, result, sink, self.output)

    def _player(self, restorer: StreamRestorer, source: FileSource | None) -> LivePlayer:
        try:
            return LivePlayer(restorer, source, self.input_device, self.output_device,
                              self.device_block, self.headroom_ms / 1000.0)
        except DeviceError:
            raise
        except Exception as exc:  # PortAudio errors opening the stream
            raise DeviceError(f"cannot open the sound device: {one_line(exc)}") from None

    def _play(self, player: LivePlayer, sink, locks: LockPrinter) -> RunReport:
        """Play (and write) until the file ends, q, or Ctrl-C; keys change bypass and mix."""
        restorer = player.restorer
        show_status = not self.quiet and sys.stderr.isatty()
        if not self.quiet:
            say(player.latency.describe())
            if Keys().enabled:
                say(KEYS_HELP)
        interrupted = False
        with Keys() as keys:

            def tick() -> None:
                locks("\n" if show_status else "")
                for key in keys.poll():
                    apply_key(key, player)
                if show_status:
                    say(status_line(player), nl=False)

            try:
                player.run(tick, sink)
            except KeyboardInterrupt:
                interrupted = True
        if show_status:
            say("")
        return make_report(player.source, restorer, player.result, sink, self.output,
                           playback=player.playback(), interrupted=interrupted)


def summarise(result: RunReport) -> None:
    """The closing lines: what was played and written, how fast."""
    playback = result.playback
    if playback is not None:
        say(f"played {playback['played_seconds']:.1f} s, underruns {playback['underruns']} "
            f"({playback['missing_samples']} samples), overruns {playback['overruns']}, "
            f"real-time factor {result.real_time_factor:.3f}")
        if playback["underruns"]:
            say("underruns: the model could not keep up; try --headroom-ms 300, a larger "
                "--device-block, less --overlap, or a lighter model")
    if result.output is not None:
        say(f"wrote {result.output} ({result.samples_out} samples x {result.channels} ch at "
            f"{result.output_sample_rate} Hz); latency {result.latency_ms:.1f} ms, "
            f"real-time factor {result.real_time_factor:.3f}")


def _device(value):
    """Device option: an index if numeric, else a name (substring match by PortAudio)."""
    if value is None:
        return None
    return int(value) if str(value).isdigit() else value
