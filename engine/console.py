"""What `restore-stream` says on the terminal: errors, cutoffs, progress, live status, keys.

Everything here writes to stderr (stdout stays free) and stays quiet with `-q`, except
errors.
"""

from __future__ import annotations

import os
import select
import sys
import time

import click


def report_error(message: str) -> None:
    click.echo(f"restore-stream: error: {message}", err=True)


def say(message: str, nl: bool = True) -> None:
    click.echo(message, err=True, nl=nl)


def describe_lock(event: dict, channels: int, band_gain_db: float = 0.0,
                  course: tuple[float, float] | None = None, curve: dict | None = None) -> str:
    """One line for a cutoff lock: "ch 1: cutoff 2.98 kHz (...)" (", locked at 4.0 s" when
    learned while playing; the reel's band level when the model sets one, or the `course`
    it takes as the programme goes; the cut's `curve` where the reel's hiss or lobes read it,
    `StreamRestorer.lift_curve`; a hint when no cut was found)."""
    from .cutoff import CutoffDecision

    where = f"ch {event['channel'] + 1}: " if channels > 1 else ""
    decision = CutoffDecision.from_event(event)
    when = f", locked at {event['at_seconds']:.1f} s" if event["at_seconds"] > 0 else ""
    level = f", band {band_gain_db:+.1f} dB for this reel" if event["hz"] is not None and band_gain_db else ""
    if event["hz"] is not None and course is not None:
        level = f", band {course[0]:+.1f} to {course[1]:+.1f} dB as the programme goes"
    hint = " (set --cutoff HZ to restore it anyway)" if event["hz"] is None else ""
    skirt = f"; its skirt read from {curve['read_from']}: {curve['name']}" if event["hz"] is not None and curve else ""
    return f"{where}{decision.describe()}{when}{level}{skirt}{hint}"


class LockPrinter:
    """Prints each cutoff lock of a restorer's timeline once."""

    def __init__(self, restorer, quiet: bool):
        self.restorer, self.quiet, self.shown = restorer, quiet, 0

    def __call__(self, prefix: str = "") -> None:
        from .cutoff import CutoffDecision

        timeline = self.restorer.cutoff_timeline
        if not self.quiet:
            for event in timeline[self.shown:]:
                gain = self.restorer.band_gain_db(CutoffDecision.from_event(event))
                # a file's decisions, locked before the first sample, carry the level's course
                decision = self.restorer.cutoffs[event["channel"]] if self.restorer.learner.frozen else None
                course = self.restorer.band_gain_course_db(decision) if decision is not None else None
                curve = self.restorer.lift_curve(decision) if decision is not None else None
                say(prefix + describe_lock(event, self.restorer.channels, gain, course, curve))
        self.shown = len(timeline)


class Progress:
    """A progress bar in seconds of audio with the speed (x real time) and the time left,
    created on the first update."""

    def __init__(self, sample_rate: int):
        self.sample_rate, self.bar, self.start = sample_rate, None, time.perf_counter()

    def __call__(self, done: int, total: int | None) -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=(total or done) / self.sample_rate, desc="restoring", file=sys.stderr,
                            bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} s [{elapsed}<{remaining}{postfix}]")
        self.bar.total, self.bar.n = (total or done) / self.sample_rate, done / self.sample_rate
        elapsed = time.perf_counter() - self.start
        if elapsed > 0:
            self.bar.set_postfix_str(f"{done / self.sample_rate / elapsed:.1f}x real time", refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _duration(seconds: float) -> str:
    minutes, secs = divmod(seconds, 60)
    return f"{int(minutes // 60):02d}:{int(minutes % 60):02d}:{secs:05.2f}"


def header(source, restorer, sinks) -> str:
    """The stream at a glance, before any work (ffmpeg-like): input, model, cutoff,
    latency, outputs, and every conversion on the way."""
    from .io import DEPTH
    from .pipeline import innermost

    model, spec, config = restorer.model, restorer.model.spec, restorer.config
    ms = lambda n: f"{1000.0 * n / spec.sample_rate:.1f} ms"
    if hasattr(source, "info"):
        info = source.info
        what = f"{info.format} {info.subtype}, {source.input_sample_rate} Hz, {source.channels} ch, " \
               f"{_duration(info.frames / source.input_sample_rate)}"
    else:
        what = f"{source.input_sample_rate} Hz, {source.channels} ch, live"
    if source.input_sample_rate != spec.sample_rate:
        what += f" (resampled to the model's {spec.sample_rate} Hz)"
    cutoff = "auto: learned per channel " + ("from the whole file" if source.rewindable else "over the first seconds")
    if config.cutoff_hz is not None:
        cutoff = f"{config.cutoff_hz:g} Hz (set)"
    lines = [
        f"input   {source.name}: {what}",
        f"model   {model.path.name} ({spec.architecture} {spec.model_version}, sha256 {model.sha256[:12]}) "
        f"on {model.provider}, {spec.sample_rate} Hz",
        f"engine  frames {ms(restorer.frame_length)} every {ms(restorer.hop)}, latency {ms(restorer.latency_samples)}"
        f"{' (low: the newest hop of each frame)' if config.latency == 'low' else ''}, "
        f"cutoff {cutoff}" + (", bypassed" if config.bypass else f", mix {config.mix:.2g}"),
    ]
    for sink in sinks:
        file = innermost(sink)
        if not hasattr(file, "format"):
            lines.append(f"figure  {file.path}: input | restored spectrograms, drawn at the end")
            continue
        what = "added" if type(sink).__name__ == "AddedBand" else "output"
        line = f"{what:7s} {file.path}: {file.format} {file.subtype}, {file.sample_rate} Hz, {source.channels} ch"
        if file.sample_rate != spec.sample_rate:
            line += f" (resampled from {spec.sample_rate} Hz)"
        if DEPTH.get(file.subtype, 0) < DEPTH.get(source.subtype, DEPTH["FLOAT"]):
            line += f" (shallower than the input's {source.subtype}: the deepest {file.format} holds)"
        lines.append(line)
    return "\n".join(lines)


class Keys:
    """Single keystrokes from a terminal without Enter, restored on exit; inert otherwise."""

    def __init__(self):
        self.enabled = sys.stdin.isatty()
        self._saved = None

    def __enter__(self) -> Keys:
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
    """"  12.3 / 60.0 s (47.7 s left)  mix 1.0  cut 3.0k 3.0k  L -12 ######   R -60 #  underruns 0"."""
    import math

    monitor, at = player.monitor, player.stats.played_samples / player.sr
    state = {"bypass": "BYPASS", "added": f"ADDED {monitor.mix:.1f}"}.get(monitor.mode, f"mix {monitor.mix:.1f}")
    where = f"{at:7.1f} s"
    total = player.source.total
    if total:
        seconds = total / player.sr
        where = f"{at:7.1f} / {seconds:.1f} s ({max(0.0, seconds - at):.1f} s left)"
    cuts = " ".join("--" if d is None else "none" if d.hz is None else f"{d.hz / 1000:.1f}k"
                    for d in player.restorer.cutoffs)
    meters = []
    for name, peak in zip("LR" if player.channels == 2 else "123456789", player.take_peaks()):
        db = 20 * math.log10(peak) if peak > 1e-6 else -120.0
        meters.append(f"{name} {max(db, -99):4.0f} {'#' * max(0, min(10, int((db + 60) / 6))):10s}")
    return f"\r{where}  {state:9s}  cut {cuts}  {'  '.join(meters)}  underruns {player.stats.underruns}  "
