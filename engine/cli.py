"""`restore-stream`: restore a reel to a file, to the sound card, or both.

Thin: options mirror `StreamConfig`; every mode is one `job.Job` (a `pipeline.run` from a
file or the input device into a file, the sound card, or both); errors become one line on
stderr and a non-zero exit code. Only click is imported until there is work to do, so
`--help` and `--version` answer at once.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import click

from .console import report_error
from .safety import (
    OutputError,
    check_outputs,
    describe_os_error,
    exit_code,
    guarded,
    one_line,
    signal_name,
    signals_deferred,
    write_text,
)
from .units import parse_cutoff, parse_db

DEFAULT_MODEL_NAME = "default.onnx"
# Trained for --latency low: restores only each frame's newest hop, cheap enough for 94
# frames a second (models/low-latency.md); the default in that mode when it is installed.
LOW_LATENCY_MODEL_NAME = "low-latency.onnx"

EXAMPLES = """
\b
Examples:
  restore-stream reel.wav                      # play the restored reel
  restore-stream reel.wav --device 3 --cutoff 4k
  restore-stream --input-device "Line In"      # restore a live feed (duplex)
  restore-stream --input-device 2 --latency low --device-block 256   # beside a picture
  restore-stream reel.wav -o reel_restored.wav --report run.json
  restore-stream reel.flac -o out.flac --cutoff 3kHz --amount -6dB
  restore-stream reel.wav -o out.wav --output-added added.wav --figure what.png
  restore-stream reel.wav -o out.wav --play    # write and play
  restore-stream reel.wav -o out.wav --model my_model.onnx --overlap 0.75
  restore-stream --list-devices

\b
While playing (what you hear only; a file written with -o gets the chosen settings):
b = bypass on/off, a = the added band alone on/off, + / - = mix, q = stop (Ctrl-C too).
"""


def default_model_path(latency: str = "full") -> Path:
    """The model shipped inside the package for this framing: reelrestore/models/
    default.onnx, or low-latency.onnx for ``latency="low"`` (default.onnx if it is absent)."""
    from .model import ModelError

    spec = importlib.util.find_spec("reelrestore.models")  # locates, does not import (no torch)
    folders = list(spec.submodule_search_locations or []) if spec else []
    names = (LOW_LATENCY_MODEL_NAME, DEFAULT_MODEL_NAME) if latency == "low" else (DEFAULT_MODEL_NAME,)
    for name in names:
        for folder in folders:
            candidate = Path(folder) / name
            if candidate.is_file():
                return candidate
    raise ModelError("no default model is installed; pass --model MODEL.onnx")


def fail(message: str, code: int = 1) -> None:
    report_error(message)
    sys.exit(code)


def option_error(message: str) -> None:
    fail(message, 2)


@click.command(epilog=EXAMPLES, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="reelrestore", prog_name="restore-stream", message="%(prog)s %(version)s")
@guarded("restore-stream")
@click.argument("source", type=click.Path(path_type=Path), required=False)
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write the restored reel to this file.")
@click.option("--output-added", type=click.Path(path_type=Path),
              help="Also write the band the model added, alone and sample-aligned (hear what was added).")
@click.option("--figure", type=click.Path(path_type=Path),
              help="Also draw input and output spectrograms with the cutoff and the added band's level "
                   "(PNG; needs matplotlib).")
@click.option("--play", is_flag=True, help="With -o: also play while writing.")
@click.option("--device", "output_device", help="Output device, name or index (default: the system's).")
@click.option("--input-device", help="Restore a live input from this device and play it (duplex).")
@click.option("--list-devices", is_flag=True, help="List sound devices and exit.")
@click.option("--device-block", type=click.IntRange(16, 16384), default=1024, show_default=True,
              help="Samples per sound-card callback.")
@click.option("--headroom-ms", type=click.FloatRange(0, 5000),
              help="Extra output buffering that absorbs slow frames (adds to the latency; default 100 ms, "
                   "with --latency low 10 ms).")
@click.option("--realtime/--no-realtime", default=True, show_default=True,
              help="Playing: run the restoring thread under real-time scheduling where the system allows it "
                   "(root, or an rtprio limit such as the audio group's), so it keeps its deadlines on a busy "
                   "machine; the report's playback.worker_realtime says whether it did.")
@click.option("--latency", "latency_mode", type=click.Choice(["full", "low"]),
              help="'full': each sample restored from the 0.5 s around it (about 0.5 s of delay); 'low': from "
                   "the 0.5 s up to 10.7 ms after it, every 10.7 ms (about 27 ms plus the device's). Default: "
                   "low for a live input with a model made for it (the shipped one is), full otherwise.")
@click.option("--model", type=click.Path(path_type=Path),
              help="ONNX model (default: the shipped model; with --latency low the shipped low-latency model).")
@click.option("--overlap", type=click.FloatRange(0.0, 0.95),
              help="Fraction of each 0.5 s frame shared with the next (default 0.5; --latency full only).")
@click.option("--cutoff", default="auto", show_default=True,
              help="Where the surviving band ends: 'auto' (learned per channel from the whole file, "
                   "or live over the first seconds; no cut found = passed through) or Hz, e.g. 3000, 3k or 3kHz.")
@click.option("--mix", type=click.FloatRange(0.0, 1.0),
              help="0 = the input as it is, 1 = fully restored above the cutoff (default 1).")
@click.option("--amount", help="The added band's level in dB, 0dB = as the model made it (e.g. -6dB; "
                               "the same as --mix in dB, so not both).")
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
@click.option("-y", "--overwrite", "overwrite", flag_value=True, default=None,
              help="Replace output files that exist (without -y or -n an existing output is refused).")
@click.option("-n", "--no-overwrite", "overwrite", flag_value=False, help="Never replace an existing output.")
@click.option("-q", "--quiet", is_flag=True, help="No header, progress bar or summary (errors only).")
@click.option("-v", "--verbose", is_flag=True, help="Also print the run report (what --report writes) at the end.")
def main(source, output, output_added, figure, play, output_device, input_device, list_devices, device_block, headroom_ms,
         realtime, latency_mode, model, overlap, cutoff, mix, amount, bypass, block_size, output_rate, subtype, compute, report,
         overwrite, quiet, verbose):
    """Restore the soundtrack SOURCE: bring back the band a film reel lost, keep the rest.

    Plays on the sound card unless -o is given; --input-device restores a live feed.
    """
    if list_devices:
        from .live import DeviceError
        from .live import list_devices as devices

        try:
            listing = devices().strip()
        except DeviceError as exc:
            fail(str(exc))
        click.echo(listing or "no sound devices found (is a sound server or card available?)")
        return
    if source is None and input_device is None:
        option_error("expected a file to restore (or --input-device for a live feed); see --help")
    if source is not None and input_device is not None:
        option_error("expected a file or --input-device, not both; see --help")
    for given, name in ((output_rate, "--sample-rate"), (subtype, "--subtype")):
        if given is not None and output is None:
            option_error(f"{name} sets the file written with -o; add -o OUT.wav "
                         "(the sound card runs at the model's rate)")
    if mix is not None and amount is not None:
        option_error("--mix and --amount set the same thing; give one")
    if latency_mode is None and (input_device is None or overlap is not None):
        latency_mode = "full"  # a file, or a framing asked for: whole frames
    if overlap is not None and latency_mode == "low":
        option_error("--overlap sets the full framing; --latency low plays only each frame's newest hop (drop one)")
    try:
        check_outputs([source, model], [("-o", output), ("--output-added", output_added), ("--figure", figure),
                                        ("--report", report)], overwrite)
    except OutputError as exc:
        fail(str(exc))
    with signals_deferred():  # ONNX Runtime starting up must not be interrupted (see safety)
        from .io import AudioError
        from .job import Job
        from .live import DeviceError
        from .model import ModelError, OnnxModel
        from .stream import StreamConfig

    try:
        mix = mix if amount is None else amount_to_mix(amount)
        live = output is None or play or input_device is not None
        # Low latency calls the model 94 times a second on two small frames: one ONNX Runtime
        # thread does that faster than a pool woken for each call (real-time factor 0.27
        # against 0.33-0.43 with two, models/low-latency.md) and leaves a core to the sound
        # server. A live input without --latency is low latency unless its model is not.
        threads = 1 if latency_mode in ("low", None) else 0
        onnx_model = OnnxModel(model or default_model_path(latency_mode or "low"), device=compute, spin=not live,
                               threads=threads)
        latency_mode = latency_mode or default_latency(onnx_model.spec)  # a live input, framing not asked for
        config = StreamConfig(overlap=0.5 if overlap is None else overlap, cutoff_hz=parse_cutoff(cutoff),
                              mix=1.0 if mix is None else mix, bypass=bypass, latency=latency_mode)
    except (ModelError, ValueError) as exc:
        fail(one_line(exc))
    if headroom_ms is None:
        headroom_ms = 10.0 if latency_mode == "low" else 100.0
    job = Job(source, output, output_added, figure, output_rate, subtype, block_size, quiet, live=live,
              input_device=_device(input_device), output_device=_device(output_device), device_block=device_block,
              headroom_ms=headroom_ms, realtime=realtime)
    try:
        result = job.run(onnx_model, config)
    except KeyboardInterrupt as exc:
        fail(f"stopped by {signal_name(exc)}; nothing was written" + (f" to {output}" if output else ""),
             exit_code(exc))
    except (AudioError, ModelError, DeviceError, ValueError) as exc:
        fail(one_line(exc))
    except OSError as exc:  # e.g. a full disk while numba writes its cache: the error names its own file
        fail(describe_os_error(exc))
    if report is not None:
        write_text(report, json.dumps(result.to_dict(), indent=2) + "\n")
    if not quiet:
        from .job import summarise

        summarise(result)
    if verbose:
        click.echo(json.dumps(result.to_dict(), indent=2), err=True)
    code = exit_code(job.stopped_by) if job.stopped_by is not None else 0
    if output is not None and result.output is None:  # a file stopped part-way by q or a signal
        how = signal_name(job.stopped_by) if job.stopped_by is not None else "q"
        seconds = result.playback["played_seconds"] if result.playback else result.audio_seconds
        fail(f"stopped by {how} after {seconds:.1f} s: nothing was written to {output} "
             "(a file is kept only when the whole reel is restored)", code or 1)
    sys.exit(code)


def default_latency(spec) -> str:
    """The framing of a live input when --latency is not given: "low" (sound in step with
    a picture) with a model made for it (one that declares the look-ahead it was trained
    for, as the shipped low-latency model does), else "full" (a whole-frame model would
    cost a frame per 10.7 ms hop)."""
    return "low" if spec.lookahead_samples is not None else "full"


def amount_to_mix(amount: str) -> float:
    """--amount in dB (at most 0) -> the linear --mix."""
    db = parse_db(amount)
    if db > 0:
        raise ValueError(f"--amount: expected at most 0dB (the model's band is already the most the engine adds), "
                         f"got {amount!r}")
    return 10 ** (db / 20)


def _device(value):
    """Device option: an index if numeric, else a name (substring match by PortAudio)."""
    if value is None:
        return None
    return int(value) if str(value).isdigit() else value
