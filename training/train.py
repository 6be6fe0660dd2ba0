"""``restore-train``: train a restoration model on paired damaged/clean 0.5 s segments.

The config's ``trainer`` key picks the trainer (``reelrestore.training.trainers.TRAINERS``):
``thesis`` (the thesis GAN, the default), ``realtime`` (the shipped default model) or
``unet`` (the WGAN-GP time-domain U-Net); a checkpoint names its own.

A small CPU run on the built-in corpus (minutes)::

    restore-train --config training/configs/thesis_exp11_tiny.toml --data builtin --out runs/tiny

The full Experiment 11 model (GPU), a folder of clean recordings, overrides::

    restore-train --config training/configs/thesis_exp11.toml --data /audio/clean \\
        --out runs/exp11 loss.content_weight=50 optim.d_lr=1e-4

Fine-tune: a new run whose generator starts from a trained model (a checkpoint, or for
the real-time model its exported ONNX)::

    restore-train --config training/configs/realtime_lsd.toml --init models/default.onnx --out runs/ft

Resume (the checkpoint's config; ``--steps``/``--epochs``/overrides may extend it)::

    restore-train --resume runs/exp11/last.pt --epochs 200

Data-parallel on several GPUs (NCCL, one rank per GPU) or CPU processes (gloo), one
global batch of ranks x ``data.batch_size`` per step; only rank 0 writes and prints
(:mod:`reelrestore.training.distributed`)::

    torchrun --standalone --nproc-per-node 4 -m reelrestore.training.train \
        --config training/configs/realtime_real.toml --out runs/rt-4gpu
    torchrun --standalone --nproc-per-node 4 -m reelrestore.training.train --resume runs/rt-4gpu/last.pt

The run folder gets ``config.json``, ``model.txt``, ``history.csv``/``.json``,
``losses.png``, ``checkpoints/`` and ``last.pt``, each written whole (a temporary name,
renamed when complete), so Ctrl-C, SIGTERM or SIGHUP at any moment leave complete files;
``restore-export last.pt`` turns it into ONNX. The folder must be new, empty, or the
resumed run's own; another run's (or any folder with files) only with ``-y``.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from reelrestore.engine.safety import OutputError, guarded, same_file, signals_deferred
from reelrestore.models.checkpoint import check_checkpoint_file
from reelrestore.training.config import load_config

RUN_FILES = ("config.json", "model.txt", "history.json", "history.csv", "losses.png", "last.pt")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="reelrestore", prog_name="restore-train", message="%(prog)s %(version)s")
@guarded("restore-train")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help='TOML or YAML training config; it must name its trainer (trainer = "thesis" | "realtime" | '
                   '"unet"). Without --config: the built-in defaults (thesis Experiment 11, full width).')
@click.option("--data", default=None, help="Folder of clean recordings, or 'builtin' for the built-in corpus.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Run folder: new, empty, or the resumed run's own (default: runs/<trainer>-<time>; with "
                   "--resume: the checkpoint's run folder). A folder that holds other files needs -y.")
@click.option("--resume", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Checkpoint to continue from (last.pt or checkpoints/*.pt); read whole before anything is "
                   "written, so the run may go on in its own folder and update its last.pt.")
@click.option("--init", "init_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Start the generator from the weights of this file (fine-tuning): a checkpoint of the same "
                   "trainer, or a restore-export .onnx of the real-time model; the model config must match (a "
                   "real-time model may gain model.input_above, at zero weight); optimisers and step start fresh.")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Stop after N batches in total.")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Number of epochs in total.")
@click.option("-y", "--overwrite", is_flag=True,
              help="Start the run in an --out folder that already holds files: its run files (config.json, "
                   "model.txt, history.*, losses.png, last.pt) are replaced and its numbered checkpoints removed "
                   "once this run has saved one. Other files stay.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar, start or closing line (errors only).")
@click.option("-v", "--verbose", is_flag=True, help="Print every epoch's history row at the end, not only the last.")
@click.argument("overrides", nargs=-1)
def main(config_path: Path | None, data: str | None, out_dir: Path | None, resume: Path | None,
         init_path: Path | None, steps: int | None, epochs: int | None, overwrite: bool, quiet: bool, verbose: bool,
         overrides: tuple[str, ...]) -> None:
    """Train a restoration model on paired damaged/clean 0.5 s segments: the trainer the
    config names (trainer = "thesis" | "realtime" | "unet"; a config file must name one).

    \b
    restore-train --config training/configs/thesis_exp11_tiny.toml --data builtin --out runs/tiny
    restore-train --config training/configs/realtime_default.toml --data builtin --out runs/rt
    restore-train --config training/configs/thesis_exp11.toml --data /audio/clean loss.content_weight=50
    restore-train --resume runs/tiny/last.pt --epochs 20 optim.g_lr=1e-4
    restore-train --config training/configs/realtime_lsd.toml --init models/default.onnx --out runs/ft

    OVERRIDES are path=value, the same for every trainer: section.key=value
    (sections: model, data, optim, loss, schedule), a longer path into a nested table
    (data.extra.cutoff_point=minus3db), or key=value when one section alone has the key
    (epochs=20). Values are TOML (0.5, true, [0, 10], "text") or a bare word.

    The run folder (--out) gets config.json, model.txt, history.csv/.json, losses.png,
    checkpoints/ and last.pt, each written whole: Ctrl-C, SIGTERM or SIGHUP at any moment
    leave complete files (the folder appears with the first epoch's results). It must be
    new, empty, or the resumed run's own folder; a folder with other files is refused
    unless -y, and the data folder always.
    """
    if resume is not None and config_path is not None:
        raise click.UsageError("--resume uses the checkpoint's config; pass overrides instead of --config")
    if resume is not None and init_path is not None:
        raise click.UsageError("--init starts a new run from a model's weights; --resume continues one: give one")
    inputs = [p for p in (config_path, resume, init_path) if p is not None]
    replace = False
    if out_dir is not None:  # before torch loads: a refused folder answers at once
        replace = _check_run_folder(out_dir, resume, inputs, overwrite)

    extra = list(overrides)
    if data is not None:
        extra.append(f"data.source={'none' if data == 'builtin' else _quote(data)}")
    if steps is not None:
        extra.append(f"schedule.max_steps={steps}")
    if epochs is not None:
        extra.append(f"schedule.epochs={epochs}")
    if quiet:
        extra.append("schedule.progress=false")
    if resume is not None:  # what torch would read, checked before it loads (--init may be an ONNX model)
        check_checkpoint_file(resume)
    elif init_path is not None and init_path.suffix.lower() != ".onnx":
        check_checkpoint_file(init_path)
    cfg, sets = None, None
    if resume is None:  # read and checked before torch loads: a bad file, override or data folder is refused at once
        cfg = load_config(config_path, extra, default_trainer=None)  # a file must name its trainer
        if out_dir is not None:
            _refuse_the_data_folder(cfg, out_dir)
        sets = _training_sets(cfg)  # (a resumed run's data are named in its checkpoint, which torch reads)

    with signals_deferred():  # torch starting up must not be interrupted (see engine.safety)
        from reelrestore.training import distributed, trainers  # here, so `--help` and a bad config need no torch

    launch = distributed.Launch.from_environment()  # None: a plain run (no torchrun, or one process)
    device = None
    if launch is not None:  # the rank's device (one GPU per rank), refused in one line before any rendezvous
        device = launch.device(_resumed_device(resume, extra) if cfg is None else cfg.schedule.device)
        distributed.init(launch, device)
    try:
        trainer = trainers.resume(resume, extra, device) if resume is not None else trainers.new_trainer(cfg, device)
        if init_path is not None:
            trainers.init_generator(trainer, init_path)
        _fit(trainer, sets, config_path, resume, out_dir, replace, inputs, overwrite, quiet, verbose)
    finally:
        if launch is not None:
            distributed.shutdown()


def _fit(trainer, sets: tuple | None, config_path: Path | None, resume: Path | None, out_dir: Path | None,
         replace: bool, inputs: list[Path], overwrite: bool, quiet: bool, verbose: bool) -> None:
    """The rest of ``restore-train``: data (``sets``, where they were read before torch
    loaded), the start line, :func:`fit`, the closing lines (in a run of several ranks
    rank 0 alone prints)."""
    cfg = trainer.cfg
    quiet = quiet or not trainer.is_main
    if out_dir is None:
        out_dir = _run_folder(None, resume, cfg.trainer)
        replace = _check_run_folder(out_dir, resume, inputs, overwrite)
    _refuse_the_data_folder(cfg, out_dir)

    from reelrestore.training.loop import fit

    train_set, val_set = sets if sets is not None else _training_sets(cfg)
    if not quiet:
        G = trainer.generator
        origin = "" if config_path is not None or resume is not None else " (built-in defaults: no --config)"
        ranks = "" if trainer.group is None else \
            f" x {trainer.world_size} ranks (global batch {trainer.world_size} x {cfg.data.batch_size})"
        click.echo(f"{cfg.trainer} trainer{origin}: {type(G).__name__}, "
                   f"{sum(p.numel() for p in G.parameters()):,} parameters, on {trainer.device}{ranks}; "
                   f"{len(train_set)} train / {len(val_set)} val segments"
                   f"{', damaged on ' + str(trainer.device) if getattr(train_set, 'damage_on', '') == 'device' else ''}"
                   f" -> {out_dir}")
    rows = fit(trainer, train_set, val_set, out_dir, replace=replace)
    keys = ("epoch", "step", *trainer.shown, "val_lsd", "val_lsd_above", "val_lsd_below", "val_input_lsd_above")
    for row in rows if verbose else rows[-1:] if not quiet else []:
        click.echo(("done: " if row is rows[-1] else "") + _row(row, keys))


def _refuse_the_data_folder(cfg, out_dir: Path) -> None:
    """A run folder must not be the data folder (its files would be read as recordings)."""
    if cfg.data.source is not None and same_file(Path(cfg.data.source), out_dir):
        raise OutputError(f"{out_dir}: --out is the data folder; choose a run folder of its own")


def _training_sets(cfg) -> tuple:
    """``(train, val)`` segments for ``cfg`` (`dataset.training_sets`: no torch), a bad
    ``data.extra`` key said as such."""
    from reelrestore.training.dataset import training_sets

    try:
        return training_sets(cfg)
    except TypeError as exc:  # data.extra names an argument PairedSegments does not take
        raise ValueError(f"data.extra: {exc}") from None


def _resumed_device(resume: Path, extra: list[str]) -> str:
    """``schedule.device`` of the checkpoint's config with the overrides (read without
    loading its tensors: memory-mapped)."""
    import torch

    from reelrestore.training.loop import read_checkpoint
    from reelrestore.training.trainers import config_from_dict

    try:
        ckpt = torch.load(resume, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # not a zip checkpoint: read_checkpoint says what it is, in one line
        ckpt = read_checkpoint(resume)
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("config"), dict):
        ckpt = read_checkpoint(resume)  # refuses other formats in one line
    try:
        return config_from_dict(ckpt["config"], extra).schedule.device
    except (ValueError, TypeError, AttributeError) as exc:
        raise ValueError(f"{resume}: {exc}") from None


def _resumed_folder(resume: Path) -> Path:
    """The run folder of a checkpoint: its folder, or the one above ``checkpoints/``."""
    return resume.parent.parent if resume.parent.name == "checkpoints" else resume.parent


def _run_folder(out_dir: Path | None, resume: Path | None, name: str) -> Path:
    """--out, else the resumed checkpoint's run folder, else runs/<name>-<time>."""
    if out_dir is not None:
        return out_dir
    if resume is not None:
        return _resumed_folder(resume)
    return Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def _check_run_folder(out: Path, resume: Path | None, inputs: list[Path], overwrite: bool) -> bool:
    """Refuse a run folder that is a file, holds files of something else (unless
    ``overwrite``), or would put a run file over an input. True when the run replaces the
    files of another run (-y on a folder with files); the resumed run's own folder is
    continued, not replaced."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: --out is a file; expected a run folder")
    own = resume is not None and same_file(out, _resumed_folder(resume))
    for name in RUN_FILES:
        for src in inputs:
            if not (own and src == resume) and same_file(src, out / name):
                raise OutputError(f"{out / name}: the run would overwrite the input {src}; choose another --out")
    if own or not out.is_dir() or not any(out.iterdir()):
        return False
    if not overwrite:
        which = "" if resume is None else f" and is not the run folder of {resume}"
        raise OutputError(f"{out}: the --out folder is not empty{which}; pass -y to start this run in it (its run "
                          f"files are replaced) or choose a new folder")
    return True


def _row(row: dict, keys: tuple[str, ...]) -> str:
    """A history row's ``keys`` as ``k=v, ...``."""
    return ", ".join(f"{k}={row[k]:.4g}" if isinstance(row[k], float) else f"{k}={row[k]}" for k in keys if k in row)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


if __name__ == "__main__":
    main()
