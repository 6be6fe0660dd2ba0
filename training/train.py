"""``restore-train``: train a restoration model on paired damaged/clean 0.5 s segments.

Three trainers, chosen by the config's ``trainer`` key (or the checkpoint's format): the
thesis GAN (default), ``trainer = "realtime"`` (the shipped default model) and
``trainer = "unet"`` (the WGAN-GP time-domain U-Net).

A small CPU run on the built-in corpus (minutes)::

    restore-train --config training/configs/thesis_exp11_tiny.toml --data builtin --out runs/tiny

The full Experiment 11 model (GPU), a folder of clean recordings, overrides::

    restore-train --config training/configs/thesis_exp11.toml --data /audio/clean \\
        --out runs/exp11 gan.content_weight=50 optim.d_lr=1e-4

Resume (the checkpoint's config; ``--steps``/``--epochs``/overrides may extend it)::

    restore-train --resume runs/exp11/last.pt --epochs 200

Overrides are ``section.key=value`` or ``key=value`` (sections: model, data, optim, gan,
schedule; ``model.experiment=N`` selects a thesis preset). The run folder gets
``config.json``, ``model.txt``, ``history.csv``/``.json``, ``losses.png``,
``checkpoints/`` and ``last.pt``; ``restore-export last.pt`` turns it into ONNX.
"""

from __future__ import annotations

import time
from pathlib import Path

import click


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="TOML or YAML training config (default: built-in defaults = Experiment 11, full width).")
@click.option("--data", default=None, help="Folder of clean recordings, or 'builtin' for the built-in corpus.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Run folder (default: runs/<experiment>-<time>; with --resume: the checkpoint's run folder).")
@click.option("--resume", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Checkpoint to continue from (last.pt or checkpoints/*.pt).")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Stop after N batches in total.")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Number of epochs in total.")
@click.argument("overrides", nargs=-1)
def main(config_path: Path | None, data: str | None, out_dir: Path | None, resume: Path | None,
         steps: int | None, epochs: int | None, overrides: tuple[str, ...]) -> None:
    """Train a restoration model on paired damaged/clean 0.5 s segments: the thesis GAN,
    or (by the config's trainer key) the real-time generator or the WGAN-GP U-Net.

    \b
    restore-train --config training/configs/thesis_exp11_tiny.toml --data builtin --out runs/tiny
    restore-train --config training/configs/unet_wgan_tiny.toml --data builtin --out runs/unet
    restore-train --config training/configs/thesis_exp11.toml --data /audio/clean gan.content_weight=50
    restore-train --resume runs/tiny/last.pt --epochs 20

    OVERRIDES are section.key=value or key=value (sections: model, data, optim, gan,
    schedule; the realtime and unet trainers have loss instead of gan and take
    section.key=value only); model.experiment=N selects a thesis preset.
    """
    import torch  # imported here so `restore-train --help` and the package import stay light

    from reelrestore.training.config import TrainConfig, apply_overrides, load_config
    from reelrestore.training.dataset import training_sets
    from reelrestore.training.gan import GanTrainer, fit

    extra = list(overrides)
    if data is not None:
        extra.append(f"data.source={'none' if data == 'builtin' else _quote(data)}")
    if steps is not None:
        extra.append(f"schedule.max_steps={steps}")
    if epochs is not None:
        extra.append(f"schedule.epochs={epochs}")
    from reelrestore.training import realtime as rt
    from reelrestore.training import unet

    try:
        raw = rt.read_config_file(config_path) if config_path is not None else {}
        saved_format = torch.load(resume, map_location="cpu", weights_only=True).get("format") if resume else None
    except ValueError as err:
        raise click.BadParameter(str(err)) from None
    if rt.is_realtime_config(raw) or saved_format == rt.CHECKPOINT_FORMAT:
        _train_other(rt.RealtimeTrainConfig, rt.RealtimeTrainer, "realtime", raw, extra, resume, out_dir)
        return
    if unet.is_unet_config(raw) or saved_format == unet.CHECKPOINT_FORMAT:
        _train_other(unet.UNetTrainConfig, unet.UNetTrainer, "unet", raw, extra, resume, out_dir)
        return
    try:
        if resume is not None:
            if config_path is not None:
                raise click.UsageError("--resume uses the checkpoint's config; pass overrides instead of --config")
            saved = torch.load(resume, map_location="cpu", weights_only=True)["config"]
            cfg = TrainConfig.from_dict(apply_overrides(saved, extra))
            trainer = GanTrainer.from_checkpoint(resume, cfg)
        else:
            cfg = load_config(config_path, extra)
            trainer = GanTrainer(cfg)
        out_dir = _run_folder(out_dir, resume, f"thesis-exp{cfg.model.experiment}")
    except ValueError as err:
        raise click.BadParameter(str(err)) from None

    train_set, val_set = training_sets(cfg)
    click.echo(f"{cfg.model.architecture} on {trainer.device} (amp: {trainer.amp_dtype}); "
               f"{len(train_set)} train / {len(val_set)} val segments -> {out_dir}")
    _report(fit(trainer, train_set, val_set, out_dir),
            ("epoch", "step", "g_content", "val_lsd", "val_input_lsd", "val_snr_db"))


def _train_other(config_cls, trainer_cls, name: str, raw: dict, extra: list[str], resume: Path | None,
                 out_dir: Path | None) -> None:
    """The real-time generator (models/realtime.py) or the time-domain U-Net
    (models/unet.py): same data and loop, their own losses."""
    import torch

    from reelrestore.training import realtime as rt
    from reelrestore.training.dataset import training_sets
    from reelrestore.training.loop import fit_trainer

    try:
        if resume is not None:
            saved = torch.load(resume, map_location="cpu", weights_only=True)["config"]
            cfg = config_cls.from_dict(rt.apply_overrides(saved, extra))
            trainer = trainer_cls.from_checkpoint(resume, cfg)
        else:
            cfg = config_cls.from_dict(rt.apply_overrides(raw, extra))
            trainer = trainer_cls(cfg)
        out_dir = _run_folder(out_dir, resume, name)
    except ValueError as err:
        raise click.BadParameter(str(err)) from None
    train_set, val_set = training_sets(cfg)
    click.echo(f"{name} generator on {trainer.device}; {len(train_set)} train / {len(val_set)} val "
               f"segments -> {out_dir}")
    _report(fit_trainer(trainer, train_set, val_set, out_dir),
            ("epoch", "step", "g_envelope", "g_time", "val_lsd_above", "val_input_lsd_above", "val_lsd_below"))


def _run_folder(out_dir: Path | None, resume: Path | None, name: str) -> Path:
    """--out, else the resumed checkpoint's run folder, else runs/<name>-<time>."""
    if out_dir is not None:
        return out_dir
    if resume is not None:
        return resume.parent.parent if resume.parent.name == "checkpoints" else resume.parent
    return Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def _report(rows: list[dict], keys: tuple[str, ...]) -> None:
    """One 'done:' line with the last history row's ``keys``."""
    if rows:
        last = rows[-1]
        shown = [f"{k}={last[k]:.4g}" if isinstance(last[k], float) else f"{k}={last[k]}" for k in keys if k in last]
        click.echo("done: " + ", ".join(shown))


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


if __name__ == "__main__":
    main()
