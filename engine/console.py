"""What `restore-stream` says on the terminal: errors, cutoffs, progress, live status, keys.

Everything here writes to stderr (stdout stays free) and stays quiet with `-q`, except
errors.
"""

from __future__ import annotations

import os
import select
import sys

import click

from .cutoff import CutoffDecision


def one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def report_error(message: str) -> None:
    click.echo(f"restore-stream: error: {message}", err=True)


def say(message: str, nl: bool = True) -> None:
    click.echo(message, err=True, nl=nl)


def describe_lock(event: dict, channels: int) -> str:
    """One line for a cutoff lock: "ch 1: cutoff 2.98 kHz (...)" (", locked at 4.0 s" when
    learned while playing; a hint when no cut was found)."""
    where = f"ch {event['channel'] + 1}: " if channels > 1 else ""
    decision = CutoffDecision(event["hz"], event["reason"], event["learned_seconds"])
    when = f", locked at {event['at_seconds']:.1f} s" if event["at_seconds"] > 0 else ""
    hint = " (set --cutoff HZ to restore it anyway)" if event["hz"] is None else ""
    return f"{where}{decision.describe()}{when}{hint}"


class LockPrinter:
    """Prints each cutoff lock of a restorer's timeline once."""

    def __init__(self, restorer, quiet: bool):
        self.restorer, self.quiet, self.shown = restorer, quiet, 0

    def __call__(self, prefix: str = "") -> None:
        timeline = self.restorer.cutoff_timeline
        if not self.quiet:
            for event in timeline[self.shown:]:
                say(prefix + describe_lock(event, self.restorer.channels))
        self.shown = len(timeline)


class Progress:
    """A progress bar in seconds of audio, created on the first update."""

    def __init__(self, sample_rate: int):
        self.sample_rate, self.bar = sample_rate, None

    def __call__(self, done: int, total: int | None) -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=0, desc="restoring", file=sys.stderr,
                            bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} s [{elapsed}<{remaining}]")
        self.bar.total, self.bar.n = (total or done) / self.sample_rate, done / self.sample_rate
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


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


KEYS_HELP = "keys (what you hear only; the file gets the chosen settings): b = bypass, a = added band only, +/- = mix, q = stop"


def apply_key(key: str, player) -> None:
    """b = hear the recording alone on/off, a = the added band alone on/off, + / - = the
    heard mix ±0.1, q = stop. None of them changes what is rendered."""
    monitor, now = player.monitor, player.stats.played_samples / player.sr
    if key in "ba":
        mode = {"b": "bypass", "a": "added"}[key]
        monitor.set(now, mode="restored" if monitor.mode == mode else mode)
    elif key in "+=":
        monitor.set(now, mix=monitor.mix + 0.1)
    elif key in "-_":
        monitor.set(now, mix=monitor.mix - 0.1)
    elif key == "q":
        player.request_stop()


def status_line(player) -> str:
    monitor = player.monitor
    state = {"bypass": "BYPASS", "added": f"ADDED {monitor.mix:.1f}"}.get(monitor.mode, f"mix {monitor.mix:.1f}")
    return (f"\r{player.stats.played_samples / player.sr:7.1f} s  {state:9s}  "
            f"underruns {player.stats.underruns}  ")
