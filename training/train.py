"""``restore-train``: train a restoration model on paired damaged/clean 0.5 s segments.

The config's ``trainer`` key picks the trainer (``reelrestore.training.trainers.TRAINERS``):
``thesis`` (the thesis GAN, the default), ``realtime`` (the shipped default model) or
``unet`` (the WGAN-GP time-domain U-Net); a checkpoint names its own.

A small CPU run on the built-in corpus (minutes)::

    restore-train --config training/configs/thesis_exp11_tiny.toml --data builtin --out runs/tiny

The full Experiment 11 model (GPU), a folder of clean recordings, overrides::

    restore-train --config training/configs/thesis_exp11.toml --data /audio/clean \\
        --out runs/exp11 loss.content_weight=50 optim.d_lr=1e-4

Resume (the checkpoint's config; ``--steps``/``--epochs``/overrides may extend it)::

    restore-train --resume runs/exp11/last.pt --epochs 200

The run folder gets ``config.json``, ``model.txt``, ``history.csv``/``.json``,
``losses.png``, ``checkpoints/`` and ``last.pt``; ``restore-export last.pt`` turns it
into ONNX.
"""

from __future__ import annotations

import time
from pathlib import Path

import click


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="reelrestore", prog_name="restore-train", message="%(prog)s %(version)s")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="TOML or YAML training config (default: built-in defaults = thesis Experiment 11, full width).")
@click.option("--data", default=None, help="Folder of clean recordings, or 'builtin' for the built-in corpus.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Run folder (default: runs/<trainer>-<time>; with --resume: the checkpoint's run folder).")
@click.option("--resume", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Checkpoint to continue from (last.pt or checkpoints/*.pt).")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Stop after N batches in total.")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Number of epochs in total.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar, start or closing line (errors only).")
@click.option("-v", "--verbose", is_flag=True, help="Print every epoch's history row at the end, not only the last.")
@click.argument("overrides", nargs=-1)
def main(config_path: Path | None, data: str | None, out_dir: Path | None, resume: Path | None,
         steps: int | None, epochs: int | None, quiet: bool, verbose: bool, overrides: tuple[str, ...]) -> None:
    """Train a restoration model on paired damaged/clean 0.5 s segments: the trainer the
    config names (trainer = "thesis" | "realtime" | "unet"; thesis when it names none).

    \b
    restore-train --config training/configs/thesis_exp11_tiny.toml --data builtin --out runs/tiny
    restore-train --config training/configs/realtime_default.toml --data builtin --out runs/rt
    restore-train --config training/configs/thesis_exp11.toml --data /audio/clean loss.content_weight=50
    restore-train --resume runs/tiny/last.pt --epochs 20 optim.g_lr=1e-4

    OVERRIDES are path=value, the same for every trainer: section.key=value
    (sections: model, data, optim, loss, schedule), a longer path into a nested table
    (data.extra.cutoff_point=minus3db), or key=value when one section alone has the key
    (epochs=20). Values are TOML (0.5, true, [0, 10], "text") or a bare word.
    """
    from reelrestore.training import trainers  # here, so `restore-train --help` starts without torch
    from reelrestore.training.dataset import training_sets
    from reelrestore.training.loop import fit

    extra = list(overrides)
    if data is not None:
        extra.append(f"data.source={'none' if data == 'builtin' else _quote(data)}")
    if steps is not None:
        extra.append(f"schedule.max_steps={steps}")
    if epochs is not None:
        extra.append(f"schedule.epochs={epochs}")
    if quiet:
        extra.append("schedule.progress=false")
    try:
        if resume is not None:
            if config_path is not None:
                raise click.UsageError("--resume uses the checkpoint's config; pass overrides instead of --config")
            trainer = trainers.resume(resume, extra)
        else:
            trainer = trainers.new_trainer(trainers.load_config(config_path, extra))
    except ValueError as err:
        raise click.BadParameter(str(err)) from None
    out_dir = _run_folder(out_dir, resume, trainer.cfg.trainer)
    train_set, val_set = training_sets(trainer.cfg)
    if not quiet:
        click.echo(f"{trainer.cfg.trainer} trainer on {trainer.device}; {len(train_set)} train / {len(val_set)} val "
                   f"segments -> {out_dir}")
    rows = fit(trainer, train_set, val_set, out_dir)
    keys = ("epoch", "step", *trainer.shown, "val_lsd", "val_lsd_above", "val_lsd_below", "val_input_lsd_above")
    for row in rows if verbose else rows[-1:] if not quiet else []:
        click.echo(("done: " if row is rows[-1] else "") + _row(row, keys))


def _run_folder(out_dir: Path | None, resume: Path | None, name: str) -> Path:
    """--out, else the resumed checkpoint's run folder, else runs/<name>-<time>."""
    if out_dir is not None:
        return out_dir
    if resume is not None:
        return resume.parent.parent if resume.parent.name == "checkpoints" else resume.parent
    return Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def _row(row: dict, keys: tuple[str, ...]) -> str:
    """A history row's ``keys`` as ``k=v, ...``."""
    return ", ".join(f"{k}={row[k]:.4g}" if isinstance(row[k], float) else f"{k}={row[k]}" for k in keys if k in row)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


if __name__ == "__main__":
    main()
