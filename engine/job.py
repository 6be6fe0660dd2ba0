"""One run of `restore-stream`: a source into sinks through `pipeline.run`, with the console.

The command line (`cli.py`) parses options and imports this module only when there is
work to do, so `--help` does not load numba, ONNX Runtime or soundfile.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from .console import (
    KEYS_HELP,
    Keys,
    LockPrinter,
    Progress,
    apply_key,
    header,
    say,
    status_line,
)
from .io import FileSource
from .live import DeviceError, LivePlayer, input_channels
from .model import OnnxModel
from .pipeline import AddedBand, Tee, run
from .restore import RunReport, make_report, open_output
from .safety import one_line
from .stream import StreamConfig, StreamRestorer


@dataclass
class Job:
    """One run of `restore-stream`: a file or the input device, into a file, the card or both."""

    source: Path | None  # None: the input device
    output: Path | None
    added_output: Path | None  # the added band alone, sample-aligned
    figure: Path | None  # input | output spectrograms (PNG)
    output_rate: int | None
    subtype: str | None
    block_size: int
    quiet: bool
    live: bool  # through the sound card
    input_device: int | str | None
    output_device: int | str | None
    device_block: int
    headroom_ms: float
    realtime: bool = True  # ask for real-time scheduling of the worker thread when playing
    stopped_by: KeyboardInterrupt | None = None  # the signal that ended a live run
    def run(self, model: OnnxModel, config: StreamConfig) -> RunReport:
        """Restore; the output paths were checked by `safety.check_outputs` beforehand."""
        rate = model.spec.sample_rate
        source = None if self.source is None else FileSource(self.source, rate, self.block_size)
        channels = source.channels if source is not None else input_channels(self.input_device)
        restorer = StreamRestorer(model, channels, config)
        player = self._player(restorer, source) if self.live else None
        fed = player.source if player is not None else source
        sink = open_output(self.output, fed, rate, self.output_rate, self.subtype) if self.output else None
        sinks = [] if sink is None else [sink]
        try:
            return self._restore(restorer, player, source, fed, rate, sink, sinks)
        except BaseException:
            # Whatever stops the run from here on, Ctrl-C included (even before the
            # restoration starts, while the header prints), leaves no partial output.
            for opened in sinks:
                opened.abort()
            raise

    def _restore(self, restorer: StreamRestorer, player: LivePlayer | None, source: FileSource | None, fed,
                 rate: int, sink, sinks: list) -> RunReport:
        """`run` once the main output is open: the other outputs (appended to `sinks`, which
        the caller aborts on any exception), then the restoration, played or as fast as it goes."""
        if self.added_output is not None:
            added = open_output(self.added_output, fed, rate, self.output_rate, self.subtype)
            sinks.append(AddedBand(added, restorer))
        if self.figure is not None:
            from .figure import FigureSink

            sinks.append(FigureSink(self.figure, restorer, fed.total))
        if not self.quiet:
            say(header(fed, restorer, sinks))
        locks = LockPrinter(restorer, self.quiet)
        every = None if not sinks else sinks[0] if len(sinks) == 1 else Tee(*sinks)
        if player is not None:
            return self._play(player, every, sink, locks)
        progress = None if self.quiet else Progress(rate)
        try:
            result = run(source, restorer, every, progress=progress, on_cutoffs=lambda _: locks())
        finally:
            if progress is not None:
                progress.close()
        return make_report(source, restorer, result, sink, self.output, added_path=self.added_output,
                           figure_path=self.figure)

    def _player(self, restorer: StreamRestorer, source: FileSource | None) -> LivePlayer:
        try:
            return LivePlayer(restorer, source, self.input_device, self.output_device,
                              self.device_block, self.headroom_ms / 1000.0, self.realtime)
        except DeviceError:
            raise
        except Exception as exc:  # PortAudio errors opening the stream
            raise DeviceError(f"cannot open the sound device: {one_line(exc)}") from None

    def _play(self, player: LivePlayer, sinks, sink, locks: LockPrinter) -> RunReport:
        """Play (and write) until the file ends, q, or Ctrl-C; keys change bypass and mix."""
        restorer = player.restorer
        show_status = not self.quiet and sys.stderr.isatty()
        if not self.quiet:
            say(player.latency.describe())
            need, hop = restorer.seconds_per_hop(), restorer.hop / restorer.sample_rate
            if need > hop:
                say(f"warning: the model needs {1000 * need:.1f} ms for every {1000 * hop:.1f} ms hop on this "
                    f"machine: expect dropouts (use a lighter model, or --latency full)")
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
                player.run(tick, sinks)
            except KeyboardInterrupt as exc:
                interrupted, self.stopped_by = True, exc
        if show_status:
            say("")
        return make_report(player.source, restorer, player.result, sink, self.output,
                           playback=player.playback(), interrupted=interrupted, added_path=self.added_output,
                           figure_path=self.figure)


def summarise(result: RunReport) -> None:
    """The closing lines: what was played and written, how fast."""
    playback = result.playback
    if playback is not None:
        after_xrun = playback.get("underruns_after_xrun", 0)
        shadow = f"; {after_xrun} right after a device xrun" if after_xrun else ""
        say(f"played {playback['played_seconds']:.1f} s, underruns {playback['underruns']} "
            f"({playback['missing_samples']} samples{shadow}), overruns {playback['overruns']}, "
            f"real-time factor {result.real_time_factor:.3f}")
        if playback["underruns"] > after_xrun:
            say("underruns: the model could not keep up; try --headroom-ms 300, a larger "
                "--device-block, less --overlap, or a lighter model")
        elif after_xrun:
            say("underruns: each came right after the sound device itself lost time (an xrun: the machine "
                "stalled); more --headroom-ms hides stalls shorter than it")
        if playback["underruns"] and playback["realtime_asked"] and not playback["worker_realtime"]:  # not when declined
            say("the restoring thread ran at normal priority (no permission for real-time scheduling: "
                "`ulimit -r` is 0); an rtprio limit, such as the audio group's, lets it keep its deadlines")
    if result.added_output is not None:
        say(f"wrote {result.added_output} (the added band alone)")
    if result.figure is not None:
        say(f"drew {result.figure} (input | restored spectrograms)")
    if result.output is not None:
        say(f"wrote {result.output} ({result.samples_out} samples x {result.channels} ch at "
            f"{result.output_sample_rate} Hz); latency {result.latency_ms:.1f} ms, "
            f"real-time factor {result.real_time_factor:.3f}")
