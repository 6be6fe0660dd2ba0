"""`restore-export`: turn a training checkpoint into a verified engine model."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import click
from reelrestore.engine.safety import check_outputs, guarded, signals_deferred
from reelrestore.models.checkpoint import check_checkpoint_file

EXAMPLES = """
\b
Examples:
  restore-export runs/realtime-default/last.pt -o models/default.onnx
  restore-export runs/exp11/last.pt -o exp11.onnx --opset 17
  restore-export runs/realtime-default/last.pt -o default_fp16.onnx --fp16 -y
  restore-export runs/rt/checkpoints/epoch008*.pt -o averaged.onnx   # epochs 80-89 of one run, averaged
"""

MAX_TOLERANCE = 0.1  # beyond 10 % of the output's peak a "parity check" checks nothing


def _tolerance(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    if value is not None and not 0 < value <= MAX_TOLERANCE:  # also refuses nan: no comparison holds
        raise click.BadParameter(f"expected a number above 0 and at most {MAX_TOLERANCE:g}, got {value:g}")
    return value


@click.command(epilog=EXAMPLES, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="reelrestore", prog_name="restore-export", message="%(prog)s %(version)s")
@guarded("restore-export")
@click.argument("checkpoints", metavar="CHECKPOINT...", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="ONNX file to write (written whole: a temporary name beside it, renamed once verified).")
@click.option("-y", "--overwrite", is_flag=True, help="Replace an existing output file.")
@click.option("-n", "--no-overwrite", is_flag=True, help="Never replace an existing output file (refuse instead).")
@click.option("--fp16", is_flag=True, help="Store weights and compute in float16 (inputs/outputs stay float32).")
@click.option("--opset", type=click.IntRange(13, 23), default=17, show_default=True)
@click.option("--dynamo", is_flag=True, help="Use the torch.export-based exporter instead of TorchScript tracing.")
@click.option("--tolerance", type=float, callback=_tolerance,
              help=f"Max ONNX vs PyTorch error relative to the output's peak, above 0 and at most {MAX_TOLERANCE:g} "
                   "(default 1e-4, 2e-2 with --fp16).")
@click.option("--model-version", default="1.0.0", show_default=True,
              help="Version written to the metadata (the training step is appended: 2.0.0+step12000).")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing on success (errors only).")
@click.option("-v", "--verbose", is_flag=True, help="Also print every metadata entry written into the model.")
def main(checkpoints: tuple[Path, ...], output: Path, overwrite: bool, no_overwrite: bool, fp16: bool, opset: int,
         dynamo: bool, tolerance: float | None, model_version: str, quiet: bool, verbose: bool) -> None:
    """Export CHECKPOINT (from restore-train) to ONNX, write the engine's metadata, and
    verify ONNX Runtime against PyTorch; a mismatch writes nothing and exits 1. Several
    checkpoints of one run are averaged weight by weight (stochastic weight averaging;
    a step saved twice counts once); the metadata is then the newest's, by training step.

    The output is never the checkpoint (by name or link) and replaces an existing file
    only with -y; Ctrl-C, SIGTERM or SIGHUP leave no file or a complete one.
    """
    if overwrite and no_overwrite:
        raise click.UsageError("pass -y (overwrite) or -n (never overwrite), not both")
    for checkpoint in checkpoints:
        if not checkpoint.exists():
            raise ValueError(f"{checkpoint}: no such file")
        if not checkpoint.is_file():
            raise ValueError(f"{checkpoint}: is a folder or a special file; expected a checkpoint file (.pt)")
    if len(set(p.resolve() for p in checkpoints)) < len(checkpoints):
        raise ValueError("the same checkpoint is named twice; name each checkpoint to average once")
    for checkpoint in checkpoints:
        check_checkpoint_file(checkpoint)  # no torch yet: a file that is no checkpoint is refused at once
    check_outputs(list(checkpoints), [("-o", output)], overwrite=True if overwrite else False if no_overwrite else None)

    with signals_deferred():  # torch starting up must not be interrupted (see safety)
        from reelrestore.export.onnx_export import export_checkpoint  # here: the checks above answer at once

    if quiet:  # the exporter's own UserWarnings (constant folding) are not errors
        warnings.filterwarnings("ignore", category=UserWarning)
    source = checkpoints[0] if len(checkpoints) == 1 else list(checkpoints)
    result = export_checkpoint(source, output, opset=opset, fp16=fp16, tolerance=tolerance, dynamo=dynamo,
                               version=model_version)
    if verbose:
        import onnx

        result = dict(result, metadata={p.key: p.value for p in onnx.load(str(output)).metadata_props})
    if not quiet:
        click.echo(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
