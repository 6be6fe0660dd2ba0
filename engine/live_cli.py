"""The live half of `restore-stream`: play a reel (or a live feed) restored, with keys.

Keys (when stdin is a terminal): b = bypass on/off, + / - = mix ±0.1, q = stop.
"""

from __future__ import annotations

import json
import os
import select
import sys
from pathlib import Path

import click

from .cli import report_error
from .io import AudioError, FileSink, FileSource
from .live import DeviceError, LivePlayer, input_channels
from .model import OnnxModel
from .restore import check_paths
from .cutoff import CutoffDecision
from .stream import StreamConfig, StreamRestorer


class Keys:
    """Single keystrokes from a terminal without Enter, restored on exit; inert otherwise."""

    def __init__(self):
        self.enabled = sys.stdin.isatty()
        self._saved = None

    def __enter__(self) -> "Keys":
        if self.enabled:
            import termios
            import tty

            self._saved = termios.tcgetattr(sys.stdin)
            tty.setcbreak(sys.stdin.fileno())
        return self

    def __exit__(self, *exc) -> None:
        if self._saved is not None:
            import termios

            termios.tcsetattr(sys.stdin, termios.TCSADRAIN, self._saved)

    def poll(self) -> str:
        if self.enabled and select.select([sys.stdin], [], [], 0)[0]:
            return os.read(sys.stdin.fileno(), 1).decode(errors="ignore")
        return ""


def _status(restorer: StreamRestorer, player: LivePlayer) -> str:
    state = "BYPASS" if restorer.bypass else f"mix {restorer.mix:.1f}"
    return (f"\r{player.stats.played_samples / player.sr:7.1f} s  {state:8s}  "
            f"underruns {player.stats.underruns}  ")


def run_live(
    source: Path | None,
    output: Path | None,
    model: OnnxModel,
    config: StreamConfig,
    output_device,
    input_device,
    device_block: int,
    headroom_ms: float,
    report: Path | None,
    quiet: bool,
) -> int:
    """Play the restored SOURCE (or the live input) on the output device; -o as well."""

    def fail(message: str, code: int = 1) -> int:
        report_error(message)
        return code

    live_input = input_device is not None
    sink = None
    try:
        file_source = None
        channels = 2
        if not live_input:
            if output is not None:
                check_paths(source, output)
            file_source = FileSource(source, model.spec.sample_rate, block_size=device_block * 8)
            channels = file_source.channels
        else:
            channels = input_channels(_device(input_device))
        restorer = StreamRestorer(model, channels, config)
        if output is not None:
            sink = FileSink(output, model.spec.sample_rate, channels,
                            file_source.info.subtype if file_source else None)
        player = LivePlayer(
            restorer, source=file_source, input_device=_device(input_device), output_device=_device(output_device),
            block_size=device_block, headroom_seconds=headroom_ms / 1000.0, sink=sink, live_input=live_input,
        )
    except (AudioError, DeviceError, ValueError) as exc:
        if sink is not None:
            sink.abort()
        return fail(str(exc).splitlines()[0])
    except Exception as exc:  # PortAudio errors opening the stream
        if sink is not None:
            sink.abort()
        return fail(f"cannot open the sound device: {str(exc).splitlines()[0]}")

    if not quiet:
        click.echo(player.latency.describe(), err=True)
        if Keys().enabled:
            click.echo("keys: b = bypass, +/- = mix, q = stop", err=True)

    interrupted = False
    show_status = not quiet and sys.stderr.isatty()
    shown = [0]  # cutoff locks already printed
    with Keys() as keys:

        def on_tick() -> None:
            timeline = restorer.cutoff_timeline
            if not quiet and len(timeline) > shown[0]:
                for event in timeline[shown[0]:]:
                    click.echo(("\n" if show_status else "") + describe_lock(event, channels), err=True)
                shown[0] = len(timeline)
            for key in keys.poll():
                if key == "b":
                    restorer.bypass = not restorer.bypass
                elif key in "+=":
                    restorer.mix = min(1.0, round(restorer.mix + 0.1, 1))
                elif key in "-_":
                    restorer.mix = max(0.0, round(restorer.mix - 0.1, 1))
                elif key == "q":
                    player.request_stop()
            if show_status:
                click.echo(_status(restorer, player), err=True, nl=False)

        try:
            player.run(on_tick)
        except KeyboardInterrupt:
            interrupted = True
        except (AudioError, ValueError) as exc:
            if sink is not None:
                sink.abort()
            return fail(str(exc).splitlines()[0])

    if sink is not None:
        if interrupted or player.stopped_early:
            sink.abort()
        else:
            sink.commit()
    summary = player.summary()
    summary.update(model=str(model.path), model_sha256=model.sha256, provider=model.provider,
                   interrupted=interrupted, output=str(output) if output and not interrupted else None,
                   cutoff="auto" if config.cutoff_hz is None else f"{config.cutoff_hz:g}",
                   cutoffs=[d.to_dict() if d is not None else None for d in restorer.cutoffs],
                   cutoff_timeline=restorer.cutoff_timeline)
    if report is not None:
        report.write_text(json.dumps(summary, indent=2) + "\n")
    if not quiet:
        click.echo("", err=True)
        click.echo(
            f"played {summary['played_seconds']:.1f} s, underruns {summary['underruns']} "
            f"({summary['missing_samples']} samples), overruns {summary['overruns']}, "
            f"real-time factor {summary['real_time_factor']:.3f}",
            err=True,
        )
        if summary["underruns"]:
            click.echo("underruns: the model could not keep up; try --headroom-ms 300, a larger "
                       "--device-block, less --overlap, or a lighter model", err=True)
    return 130 if interrupted else 0


def describe_lock(event: dict, channels: int) -> str:
    """One console line for a cutoff lock: "ch 1: cutoff 2.98 kHz (...) at 4.0 s"."""
    where = f"ch {event['channel'] + 1}: " if channels > 1 else ""
    decision = CutoffDecision(event["hz"], event["reason"], event["learned_seconds"])
    return f"{where}{decision.describe()}, locked at {event['at_seconds']:.1f} s"


def _device(value):
    """Device option: an index if numeric, else a name (substring match by PortAudio)."""
    if value is None:
        return None
    return int(value) if str(value).isdigit() else value
