"""`restore-export`: turn a training checkpoint into a verified engine model."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

EXAMPLES = """
\b
Examples:
  restore-export runs/realtime-default/last.pt -o models/default.onnx
  restore-export runs/exp11/last.pt -o exp11.onnx --opset 17
  restore-export runs/realtime-default/last.pt -o default_fp16.onnx --fp16
"""


@click.command(epilog=EXAMPLES, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="reelrestore", prog_name="restore-export", message="%(prog)s %(version)s")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="ONNX file to write.")
@click.option("--fp16", is_flag=True, help="Store weights and compute in float16 (inputs/outputs stay float32).")
@click.option("--opset", type=click.IntRange(13, 23), default=17, show_default=True)
@click.option("--dynamo", is_flag=True, help="Use the torch.export-based exporter instead of TorchScript tracing.")
@click.option("--tolerance", type=float, help="Max ONNX vs PyTorch error relative to the output's peak "
              "(default 1e-4, 2e-2 with --fp16).")
@click.option("--model-version", default="1.0.0", show_default=True,
              help="Version written to the metadata (the training step is appended: 2.0.0+step12000).")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing on success (errors only).")
@click.option("-v", "--verbose", is_flag=True, help="Also print every metadata entry written into the model.")
def main(checkpoint: Path, output: Path, fp16: bool, opset: int, dynamo: bool, tolerance: float | None,
         model_version: str, quiet: bool, verbose: bool) -> None:
    """Export CHECKPOINT (from restore-train) to ONNX, write the engine's metadata, and
    verify ONNX Runtime against PyTorch; a mismatch deletes the file and exits 1."""
    from reelrestore.export.onnx_export import ExportError, export_checkpoint

    if not checkpoint.is_file():
        click.echo(f"restore-export: error: {checkpoint}: no such file", err=True)
        sys.exit(1)
    if not output.parent.is_dir():
        click.echo(f"restore-export: error: {output.parent}: folder does not exist", err=True)
        sys.exit(1)
    try:
        result = export_checkpoint(checkpoint, output, opset=opset, fp16=fp16, tolerance=tolerance, dynamo=dynamo,
                                   version=model_version)
    except ExportError as exc:
        click.echo(f"restore-export: error: {exc}", err=True)
        sys.exit(1)
    if verbose:
        import onnx

        result = dict(result, metadata={p.key: p.value for p in onnx.load(str(output)).metadata_props})
    if not quiet:
        click.echo(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
