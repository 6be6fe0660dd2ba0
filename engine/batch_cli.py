"""`restore-batch`: restore a catalog of reels, exactly once, on all cores or a Ray cluster.

Thin: options become `batch.Settings` and a catalog of `batch.Reel`s; `batch.run_catalog`
does the work. Only click is imported until there is work to do, so `--help` answers at once.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from .safety import OutputError, check_outputs, exit_code, guarded, one_line, signal_name, signals_deferred

EXAMPLES = """
\b
Examples:
  restore-batch archive/ -o restored/                 # every audio file under archive/, all cores
  restore-batch archive/ -o restored/ --summary summary.csv
  restore-batch catalog.csv -o restored/              # a manifest: input[,output,cutoff,mix,overlap]
  restore-batch archive/ -o restored/ --ray auto      # on the running Ray cluster
  restore-batch archive/ -o restored/ --workers 4 --threads 2 --format flac

\b
Rerun the same command after a crash or a stop: reels already restored (same input, model
and settings, output intact) are skipped, the rest are done. Each output gets a sidecar
OUTPUT.restore.json (input and model sha256, settings, the run report).
"""


def fail(message: str, code: int = 1) -> None:
    click.echo(f"restore-batch: error: {message}", err=True)
    sys.exit(code)


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


@click.command(epilog=EXAMPLES, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="reelrestore", prog_name="restore-batch", message="%(prog)s %(version)s")
@guarded("restore-batch")
@click.argument("source", type=click.Path(path_type=Path))
@click.option("-o", "--output", "out", type=click.Path(path_type=Path), required=True,
              help="Folder to write into; it mirrors the input folder's tree.")
@click.option("--model", type=click.Path(path_type=Path), help="ONNX model (default: the shipped model).")
@click.option("--cutoff", default="auto", show_default=True,
              help="'auto' (learned per reel and channel) or Hz, e.g. 3k; a manifest's cutoff column wins.")
@click.option("--mix", type=click.FloatRange(0.0, 1.0),
              help="0 = the input as it is, 1 = fully restored above the cutoff (default 1).")
@click.option("--amount", help="The added band's level in dB, e.g. -6dB (the same as --mix in dB, so not both).")
@click.option("--overlap", type=click.FloatRange(0.0, 0.95), default=0.5, show_default=True,
              help="Fraction of each 0.5 s frame shared with the next.")
@click.option("--format", "fmt", type=click.Choice(["same", "wav", "flac"]), default="same", show_default=True,
              help="Output files' format: 'same' keeps the input's, lossy inputs (Ogg, MP3) become FLAC.")
@click.option("--sample-rate", "output_rate", type=click.IntRange(1000, 768000),
              help="Rate of the files written (default: each input's).")
@click.option("--subtype", type=click.Choice(["PCM_16", "PCM_24", "PCM_32", "FLOAT"], case_sensitive=False),
              help="Sample format of the files written (default: each input's, or deeper).")
@click.option("--workers", type=click.IntRange(1, 1024),
              help="Reels restored at once (default: the CPU cores / --threads; with --ray, the cluster's).")
@click.option("--threads", type=click.IntRange(1, 256), default=1, show_default=True,
              help="Model threads per worker (workers x threads should not exceed the cores).")
@click.option("--ray", "ray_address", is_flag=False, flag_value="local", default=None, metavar="[ADDRESS]",
              help="Run on Ray: alone, a Ray instance on this machine; 'auto' joins the running cluster; "
                   "or a cluster's address (needs pip install 'reelrestore[ray]').")
@click.option("--provider", "compute", type=click.Choice(["cpu", "cuda", "auto"]), default="cpu", show_default=True,
              help="Where each worker runs the model.")
@click.option("--summary", type=click.Path(path_type=Path),
              help="Also write the per-reel summary: .json, or CSV for any other name (replaced by a rerun).")
@click.option("-y", "--overwrite", "overwrite", flag_value=True, default=None,
              help="Replace outputs that exist but were not written by restore-batch.")
@click.option("-n", "--no-overwrite", "overwrite", flag_value=False,
              help="Keep such outputs and skip their reels.")
@click.option("-q", "--quiet", is_flag=True, help="No header, progress bar or summary (errors only).")
@click.option("-v", "--verbose", is_flag=True, help="Also print one line per reel as it finishes.")
def main(source, out, model, cutoff, mix, amount, overlap, fmt, output_rate, subtype, workers, threads, ray_address, compute,
         summary, overwrite, quiet, verbose):
    """Restore every reel of SOURCE (a folder, searched recursively for audio by content,
    or a CSV / JSON-lines manifest) into the folder -o, exactly once.

    Exits 0 when every reel is restored (or was already), 1 when any failed (each is
    named with its reason), 130 when stopped by Ctrl-C.
    """
    if not source.exists():
        fail(f"{source}: no such file or folder; expected a folder of reels or a manifest (.csv, .jsonl)")
    if out.exists() and not out.is_dir():
        fail(f"{out}: -o is a file; expected a folder to write the restored reels into")
    if source.is_dir() and out.resolve() == source.resolve():
        fail(f"{out}: -o is the input folder; choose another folder (inputs are never touched)")
    try:
        check_outputs([source, model], [("--summary", summary)], True)  # a rerun replaces its summary
    except OutputError as exc:
        fail(str(exc))
    with signals_deferred():  # ONNX Runtime starting up must not be interrupted (see safety)
        from . import batch
        from .cli import amount_to_mix, default_model_path
        from .model import ModelError, OnnxModel
        from .units import parse_cutoff

    try:
        parse_cutoff(cutoff)
    except ValueError as exc:
        fail(f"--cutoff: {one_line(exc)}", 2)
    if mix is not None and amount is not None:
        fail("--mix and --amount set the same thing; give one", 2)
    try:
        mix = amount_to_mix(amount) if amount is not None else 1.0 if mix is None else mix
    except ValueError as exc:
        fail(one_line(exc), 2)
    try:
        model_path = model or default_model_path()
        loaded = OnnxModel(model_path, device=compute)  # refuse a bad model before starting workers
    except (ModelError, ValueError) as exc:
        fail(one_line(exc))
    settings = batch.Settings(cutoff=cutoff, mix=mix, overlap=overlap, output_rate=output_rate,
                              subtype=subtype.upper() if subtype else None)
    try:
        if source.is_dir():
            reels, ignored = batch.scan_folder(source, out, settings, fmt)
        else:
            reels, ignored = batch.read_manifest(source, out, settings, fmt), 0
        batch.check_catalog(reels)
    except batch.CatalogError as exc:
        fail(str(exc))
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"{source}: cannot read the manifest ({one_line(exc)}); expected a CSV or JSON-lines file")
    if not reels:
        fail(f"{source}: no audio files found" + (f" ({ignored} other files ignored)" if ignored else ""))
    kept = []
    foreign = batch.foreign_outputs(reels)
    if foreign and overwrite is None:
        fail(f"{foreign[0].output}: exists and was not written by restore-batch ({len(foreign)} such outputs); "
             "pass -y to replace them or -n to keep them and skip their reels")
    if foreign and overwrite is False:
        kept = [r.outcome("skipped", "exists (not written by restore-batch); -n keeps it") for r in foreign]
        reels = [r for r in reels if r not in foreign]
    if ray_address is None and workers is None:
        workers = max(1, cpu_count() // threads)
    ray, started_ray = None, False
    if ray_address is not None:
        try:
            ray, started_ray = batch.connect_ray(ray_address)
        except batch.CatalogError as exc:
            fail(str(exc))
    seconds = sum(r.audio_seconds for r in reels)
    if not quiet:
        where = f"{workers} local worker(s)" if ray_address is None else \
            f"Ray ({ray_address}), {workers or 'one per ' + str(threads) + ' CPU(s)'} worker(s)"
        click.echo(f"restore-batch: {len(reels)} reels ({batch.duration(seconds)} of audio) from {source} to {out}; "
                   f"model {model_path.name} {loaded.spec.model_version}; {where} x {threads} thread(s)"
                   + (f"; {ignored} files that are not audio ignored" if ignored else ""), err=True)
    progress = CatalogProgress(len(reels), seconds, quiet, verbose)
    try:
        result = batch.run_catalog(reels, str(model_path), workers, threads, ray_address, compute,
                                   on_outcome=progress)
    except KeyboardInterrupt as exc:
        progress.close()
        fail(f"stopped by {signal_name(exc)} after {progress.finished} of {len(reels)} reels; every output "
             "written is complete; rerun the same command to finish the catalog", exit_code(exc))
    except batch.CatalogError as exc:
        progress.close()
        fail(str(exc))
    finally:
        if started_ray:
            ray.shutdown()
    progress.close()
    result.outcomes = kept + result.outcomes
    if summary is not None:
        result.write(summary)
    if not quiet:
        for line in result.lines():
            click.echo(line, err=True)
    sys.exit(1 if result.counts["failed"] else 0)


class CatalogProgress:
    """A bar over the whole catalog in hours of audio, with reels done and the rate."""

    def __init__(self, reels: int, seconds: float, quiet: bool, verbose: bool):
        self.reels, self.finished, self.failed, self.quiet, self.verbose = reels, 0, 0, quiet, verbose
        self.total, self.seconds, self.bar = seconds, 0.0, None
        if not quiet:
            from tqdm import tqdm

            self.unit, self.per = ("h", 3600) if seconds >= 7200 else ("min", 60)
            self.bar = tqdm(total=seconds / self.per, desc="catalog", file=sys.stderr,
                            bar_format="{l_bar}{bar}| {n:.2f}/{total:.2f} " + self.unit +
                                       " of audio [{elapsed}<{remaining}{postfix}]")
            self._postfix()

    def __call__(self, outcome) -> None:
        self.finished += 1
        self.failed += outcome.status == "failed"
        if self.bar is None:
            return
        if self.verbose or outcome.status == "failed":
            what = outcome.reason if outcome.status != "done" else \
                f"{outcome.audio_seconds:.1f} s in {outcome.wall_seconds:.1f} s, cutoff " + \
                ", ".join("none" if hz is None else f"{hz / 1000:.2f} kHz" for hz in outcome.cutoffs_hz)
            self.bar.write(f"{outcome.status}: {outcome.input}: {what}", file=sys.stderr)
        self.seconds += outcome.audio_seconds
        self.bar.n = min(self.seconds, self.total) / self.per
        self._postfix()

    def _postfix(self) -> None:
        self.bar.set_postfix_str(f"{self.finished}/{self.reels} reels" +
                                 (f", {self.failed} failed" if self.failed else ""), refresh=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


if __name__ == "__main__":
    main()
