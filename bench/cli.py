"""`restore-bench`: latency, throughput and kernel benchmarks of the restoration engine.

    restore-bench                                        # identity model: the engine's own cost, ~3 min
    restore-bench --model MODEL.onnx --json bench.json --plot bench.png
    restore-bench --only stft --only inference --torch-checkpoint runs/x/last.pt
  restore-bench --model models/low-latency.onnx --latency low --threads 1 --channels 2 --block 256 --only hop
    restore-bench --quick --json out.json                # a few seconds; what tests/test_bench.py runs

Thin: options fill a `BenchConfig`; the benchmarks live in `engine_bench` and `kernels`;
how to read the output is in bench/README.md.
"""

from __future__ import annotations

import datetime
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import click

from reelrestore.engine.safety import check_outputs, guarded, signals_deferred, write_text

from .report import format_report, save_plot

SECTIONS = ("stft", "inference", "hop", "rtf", "latency", "memory")


@dataclass(frozen=True)
class BenchConfig:
    """What to measure and how often; every reported figure is a median over `repeats`."""

    repeats: int = 3  # runs per figure (per-hop runs, RTF runs, latency runs, memory runs)
    hops: int = 300  # timed hops per per-hop run (at 50 % overlap, 250 ms of audio each)
    warmup_hops: int = 5  # first output-producing feeds dropped: first-touch allocations, ORT's first run
    channels: int = 1  # channels of the per-hop and latency streams
    overlap: float = 0.5  # StreamConfig.overlap: sets the hop and so the real-time budget per hop
    # A fixed cutoff: every timed hop restores (with "auto" a stream passes its audio through
    # until the cutoff is learned, seconds that a short low-latency run never leaves).
    cutoff_hz: float = 4000.0
    latency: str = "full"  # StreamConfig.latency: "low" frames every 512 samples (restore-stream --latency low)
    threads: int = 0  # ONNX Runtime intra-op threads (0: its default; restore-stream uses 1 with --latency low)
    block: int = 512  # device block (samples) of the latency simulation and the streams' feeds
    rtf_seconds: float = 2.5  # audio per real-time-factor measurement (10 hops at 50 % overlap)
    max_count: int = 512  # channel and stream sweeps stop here even if still real time
    latency_seconds: float = 4.0  # audio per latency run, fed at wall-clock pace
    stft_repeats: int = 300  # calls per STFT figure for a 0.5 s frame (a tenth for 10 s)
    inference_repeats: int = 50  # calls per inference figure
    memory_minutes: float = 1.0  # longest file of the memory run (a quarter as long for the growth)

    @classmethod
    def quick(cls) -> "BenchConfig":
        """A tiny run: every section, every key of the JSON, no meaningful figures."""
        return cls(repeats=1, hops=6, warmup_hops=1, rtf_seconds=1.0, max_count=2, latency_seconds=1.2,
                   stft_repeats=5, inference_repeats=3, memory_minutes=0.02)

    def __post_init__(self):
        for name in ("repeats", "hops", "channels", "block", "max_count", "stft_repeats", "inference_repeats"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected >= 1, got {getattr(self, name)}")
        for name in ("rtf_seconds", "latency_seconds", "memory_minutes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}: expected > 0, got {getattr(self, name)}")
        if self.latency not in ("full", "low") or self.threads < 0:
            raise ValueError(f"latency, threads: expected 'full' or 'low' and >= 0, got {self.latency!r}, {self.threads}")


def run_bench(cfg: BenchConfig, model_path: Path | None, device: str, torch_checkpoint: Path | None,
              sections: tuple[str, ...], workdir: Path, echo: Callable[[str], None] = lambda message: None) -> dict:
    """Every selected benchmark, in SECTIONS order; returns the JSON-ready results."""
    with signals_deferred():  # ONNX Runtime (and torch) starting up must not be interrupted
        from reelrestore.engine.model import OnnxModel
        from reelrestore.engine.stream import StreamConfig, StreamRestorer

        from . import engine_bench as eb
        from . import kernels
        from .doubles import build_identity_model
        from .timing import describe_machine

    started = time.perf_counter()
    built = model_path is None
    model_path = build_identity_model(workdir / "identity.onnx") if built else model_path
    model = OnnxModel(model_path, device=device, threads=cfg.threads, spin=cfg.latency == "full")
    stream_cfg = StreamConfig(overlap=cfg.overlap, latency=cfg.latency, cutoff_hz=cfg.cutoff_hz)
    probe = StreamRestorer(model, cfg.channels, stream_cfg)
    spec = model.spec
    out: dict = {
        "bench": {"date": datetime.datetime.now().isoformat(timespec="seconds"), "config": asdict(cfg),
                  "sections": list(sections), "section_seconds": {}},
        "machine": describe_machine(),
        "model": {"path": str(model_path), "path_name": model_path.name, "built_identity": built,
                  "architecture": spec.architecture, "version": spec.model_version, "sha256": model.sha256,
                  "provider": model.provider, "sample_rate": spec.sample_rate, "frame_samples": probe.frame_length,
                  "hop_samples": probe.hop, "overlap": cfg.overlap, "latency": cfg.latency,
                  "latency_samples": probe.latency_samples},
        "skipped": {},
    }

    def timed(name: str, fn: Callable[[], None]) -> None:
        echo(f"restore-bench: {name} ...")
        start = time.perf_counter()
        try:
            fn()
        except eb.BenchSkipped as why:
            out["skipped"][name] = str(why)
        out["bench"]["section_seconds"][name] = time.perf_counter() - start

    frame = spec.frame_length
    steps = {
        "stft": lambda: out.update(stft=kernels.compare_stft(
            spec.n_fft, spec.hop_length, {"frame": frame, "10s": 10 * spec.sample_rate},
            {"frame": cfg.stft_repeats, "10s": max(3, cfg.stft_repeats // 10)}, spec.sample_rate)),
        "inference": lambda: out.update(inference=kernels.inference(
            model_path, device, (1, stream_cfg.max_batch_frames), (1, 2), cfg.inference_repeats, torch_checkpoint)),
        "hop": lambda: out.update(per_hop={
            **eb.per_hop(model, stream_cfg, cfg.channels, cfg.hops, cfg.warmup_hops, cfg.repeats),
            "stages_ms": eb.stage_breakdown(model, stream_cfg, cfg.channels, cfg.hops, cfg.warmup_hops)}),
        "rtf": lambda: out.update(throughput={
            "channels": eb.file_rtf(model, stream_cfg, cfg.rtf_seconds, cfg.repeats, cfg.max_count, workdir),
            **{f"streams_{mode}": eb.streams_rtf(model, stream_cfg, cfg.rtf_seconds, cfg.block, cfg.repeats,
                                                 cfg.max_count, mode == "threads", workdir)
               for mode in ("round_robin", "threads")}}),
        "latency": lambda: out.update(latency=eb.latency(model, stream_cfg, cfg.channels, cfg.block,
                                                         cfg.latency_seconds, cfg.repeats)),
        "memory": lambda: out.update(memory=eb.memory(model_path, (cfg.memory_minutes / 4, cfg.memory_minutes),
                                                      cfg.repeats, workdir)),
    }
    for name in SECTIONS:
        if name in sections:
            timed(name, steps[name])
        else:
            out["skipped"][name] = "not selected (--only)"
    out["bench"]["wall_seconds"] = time.perf_counter() - started
    out["bench"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    return out


_D = BenchConfig()  # the defaults, for --help


def _command_line(ctx: click.Context) -> str:
    """The options given on the command line, as they would be typed again."""
    words = ["restore-bench"]
    for param in ctx.command.params:
        if ctx.get_parameter_source(param.name) != click.core.ParameterSource.COMMANDLINE:
            continue
        value = ctx.params[param.name]
        for item in value if isinstance(value, tuple) else (value,):
            words += [param.opts[0]] + ([] if item is True else [str(item)])
    return " ".join(words)


def fail(message: str) -> None:
    click.echo(f"restore-bench: error: {message}", err=True)
    sys.exit(1)


EXAMPLES = """
\b
Examples:
  restore-bench                                        # identity model: the engine's own cost, ~3 min
  restore-bench --model models/default.onnx --json bench.json --plot bench.png
  restore-bench --only stft --only inference --torch-checkpoint runs/x/last.pt
  restore-bench --model models/low-latency.onnx --latency low --threads 1 --channels 2 --block 256 --only hop
  restore-bench --quick --json out.json                # a few seconds; figures meaningless

How to read the output: bench/README.md.
"""


@click.command(epilog=EXAMPLES, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="reelrestore", prog_name="restore-bench", message="%(prog)s %(version)s")
@guarded("restore-bench")
@click.option("--model", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="ONNX model (default: an identity model built here, so the figures are the engine's own cost).")
@click.option("--torch-checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Also time PyTorch eager on these weights (a training checkpoint or a pickled module).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="Where ONNX Runtime runs, as in restore-stream.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Write every figure here.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path),
              help="PNG: per-hop times against the hop budget, RTF against streams (needs matplotlib).")
@click.option("--quick", is_flag=True, help="A tiny run (seconds) that exercises everything; figures meaningless.")
@click.option("--only", type=click.Choice(SECTIONS), multiple=True, help="Run only these benchmarks (repeatable).")
@click.option("--repeats", type=click.IntRange(min=1),
              help=f"Runs per figure (median reported). [default: {_D.repeats}]")
@click.option("--hops", type=click.IntRange(min=1), help=f"Timed hops per per-hop run. [default: {_D.hops}]")
@click.option("--channels", type=click.IntRange(min=1),
              help=f"Channels of the per-hop and latency streams. [default: {_D.channels}]")
@click.option("--overlap", type=click.FloatRange(0.0, 0.95),
              help=f"Frame overlap, as in restore-stream. [default: {_D.overlap}]")
@click.option("--latency", type=click.Choice(["full", "low"]),
              help=f"The engine's framing, as restore-stream --latency. [default: {_D.latency}]")
@click.option("--threads", type=click.IntRange(min=0),
              help="ONNX Runtime intra-op threads (0 = its default; restore-stream --latency low uses 1). "
                   f"[default: {_D.threads}]")
@click.option("--block", type=click.IntRange(min=1),
              help=f"Device block in samples (latency, streams). [default: {_D.block}]")
@click.option("--seconds", "rtf_seconds", type=click.FloatRange(min=0.1),
              help=f"Seconds of audio per RTF run. [default: {_D.rtf_seconds}]")
@click.option("--latency-seconds", type=click.FloatRange(min=0.1),
              help=f"Seconds of audio per latency run, fed in real time. [default: {_D.latency_seconds}]")
@click.option("--max-streams", "max_count", type=click.IntRange(min=1),
              help=f"Stop the channel/stream sweeps here. [default: {_D.max_count}]")
@click.option("--memory-minutes", type=click.FloatRange(min=0.001),
              help=f"Length of the memory run's long file. [default: {_D.memory_minutes}]")
@click.option("--workdir", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Where temporary files go (default: the system's temporary folder).")
@click.option("-y", "--overwrite", "overwrite", flag_value=True, default=None,
              help="Replace --json/--plot files that exist (without -y or -n an existing one is refused).")
@click.option("-n", "--no-overwrite", "overwrite", flag_value=False, help="Never replace an existing output.")
@click.option("-q", "--quiet", is_flag=True, help="No progress lines and no report on the console (errors only).")
@click.option("-v", "--verbose", is_flag=True, help="Also print the whole result as JSON on the console.")
def main(model, torch_checkpoint, device, json_path, plot_path, quick, only, workdir, overwrite, quiet, verbose,
         **overrides):
    """Measure the engine: per-hop compute against the real-time budget, real-time factor
    and the number of real-time streams, latency, STFT kernels, inference, memory."""
    command = _command_line(click.get_current_context())
    try:
        check_outputs([model, torch_checkpoint], [("--json", json_path), ("--plot", plot_path)], overwrite)
        base = BenchConfig.quick() if quick else BenchConfig()
        cfg = replace(base, **{k: v for k, v in overrides.items() if v is not None})
        with tempfile.TemporaryDirectory(prefix="restore-bench-", dir=workdir) as tmp:
            result = run_bench(cfg, model, device, torch_checkpoint, only or SECTIONS, Path(tmp),
                               echo=lambda message: None if quiet else click.echo(message, err=True))
    except (ValueError, RuntimeError, OSError) as exc:  # ModelError and AudioError are ValueErrors
        fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    result["bench"].update(command=command, quick=quick)
    if plot_path is not None:
        why = save_plot(result, plot_path)
        result["bench"]["plot"] = str(plot_path) if why is None else f"not drawn: {why}"
    if not quiet:
        click.echo(format_report(result))
    if verbose:
        click.echo(json.dumps(result, indent=2))
    if json_path is not None:
        write_text(json_path, json.dumps(result, indent=2) + "\n")
