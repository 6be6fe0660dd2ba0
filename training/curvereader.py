"""Train the curve reader (`reelrestore.engine.curvereader`) on real recordings with known cuts.

    python -m reelrestore.training.curvereader build --out reader-a.npz --seed 4242 \\
        --extra ~/.cache/reelrestore/remote --corpus ~/.cache/reelrestore/corpus/corpus-*/
    python -m reelrestore.training.curvereader train --data reader-a.npz reader-b.npz \\
        --out models/cut-curve.npz

(README, "Retrain the curve reader", gives the shipped reader's exact recipe.)

`build` takes what the cutoff locator's examples take (`training.locator`: the real set's
training part, never its evaluation part, the remote recordings' training part with
`--extra`, and the synthetic corpus) and damages random excerpts of 4-40 s the same way
(`locator.damage_with_cut`), but every one is cut (Butterworth of order 2-8, zero-phase or
not, or the optical slit, its -3 dB point over 90 Hz-11 kHz), and the print's hiss goes with
the cut (60 %), with the cut and again after it (25 %), or there is none (15 %): the reels
on which the engine lifts the residue and asks how deep the cut goes. It stores each
example's frame spectra on the locator's grid and the cut's true loss there (dB,
`degrade.lowpass_response`).

`train` fits the net: its input is the locator's features of the reel and the cutoff, given
0.9-1.2x off the true -3 dB point (as a cutoff read or given is off), and it learns the loss
in dB (mean squared error on the loss / 20 dB, from half an octave under the cutoff up, where
the loss is under 90 dB; the target clipped at 120 dB). Recordings are split by hash into a
training and a validation part (`validation_percent`); the validation figures (the reading's
error in dB from the cutoff to two octaves over it, where the cut has taken at most 60 dB)
travel in the `.npz`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from ..engine import curvereader, locator
from ..engine.band import SILENCE_DB
from ..engine.contract import DEFAULT_CONTRACT
from ..engine.safety import AtomicPath, stops_in_one_line
from ..engine.stft import StftPlan
from .degrade import SR, lowpass_response
from .locator import LocatorDataConfig, NoSourcesError, _read, _validation, build_jobs, damage_with_cut, reel_profiles

# The locator's data, every excerpt cut, its hiss cut with it, cut and added again, or none.
DATA = replace(LocatorDataConfig(), examples_per_hour=1500.0, p_uncut=0.0, hiss_where=(0.6, 0.0, 0.25, 0.15))
DEEPEST_DB = 120.0  # the target is clipped here
MAX_WEIGHED_DB = 90.0  # grid points the cut took further down do not count
FROM_OCTAVES = -0.5  # ... nor those further under the cutoff
SCORE_OCTAVES, SCORE_DB = 2.0, 60.0  # the validation figures: up to two octaves over the cutoff, 60 dB down


@dataclass(frozen=True)
class CurveTrainConfig:
    width: int = 48
    dilations: tuple[int, ...] = (1, 2, 4, 8, 16, 1)
    kernel: int = 5
    epochs: int = 25
    batch: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    told: tuple[float, float] = (0.9, 1.2)  # the cutoff the net is told, times the true -3 dB point (log-uniform)
    seed: int = 1  # the net's initial weights
    order_seed: int = 0  # the order of the examples and the cutoffs told


def _build_one(args) -> list[tuple[np.ndarray, np.ndarray, float, str]]:
    """One source's examples: (grid spectra (frames, grid) float16, the cut's loss on the grid
    (dB, float32), its -3 dB point, a note)."""
    source, recordings, count, seed, cfg = args
    rng = np.random.default_rng(seed)
    audio = _read(source, recordings)
    plan, frame = StftPlan.from_contract(DEFAULT_CONTRACT), DEFAULT_CONTRACT.frame_length
    grid = locator.grid_hz()
    out = []
    for _ in range(count):
        n = int(math.exp(rng.uniform(*np.log(cfg.seconds))) * SR)
        if audio.size <= n:
            clip = audio
        else:
            start = int(rng.integers(0, audio.size - n))
            clip = audio[start : start + n]
        if np.max(np.abs(clip)) < 1e-4:
            continue
        x, true_hz, note, _, cut = damage_with_cut(clip, rng, cfg)
        if cut is None:
            continue
        p = reel_profiles(x, plan, frame)
        p = p[p.max(axis=1) >= SILENCE_DB]
        if len(p) < locator.MIN_FRAMES:
            continue
        amplitude = lowpass_response(cut.shape, cut.order or 2, cut.design_hz, grid, SR, cut.zero_phase, cut.spread)
        loss = np.maximum(20.0 * np.log10(np.maximum(amplitude, 1e-12)), -150.0)  # the power it leaves, dB
        out.append((locator.grid_db(p, DEFAULT_CONTRACT.bin_hz).astype(np.float16), loss.astype(np.float32),
                    true_hz, f"{source.key}: {note}"))
    return out


def build(out: Path, cfg: LocatorDataConfig, corpus: Path | None, workers: int) -> None:
    grids, losses, true_hz, notes, valid = [], [], [], [], []
    for job, made in build_jobs(cfg, corpus, _build_one, workers):
        for g, loss, hz, note in made:
            grids.append(g)
            losses.append(loss)
            true_hz.append(hz)
            notes.append(note)
            valid.append(_validation(job[0].key, cfg.validation_percent))
    with AtomicPath(out) as tmp, open(tmp, "wb") as fh:  # whole or not at all
        np.savez_compressed(fh, grid=np.concatenate(grids), frames=np.array([len(g) for g in grids]),
                            loss=np.stack(losses), true_hz=np.array(true_hz), notes=np.array(notes),
                            valid=np.array(valid), config=np.array(json.dumps(asdict(cfg))))


def load_examples(paths: list[Path]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
    """Built example files -> (features (N, CHANNELS, grid), loss (N, grid) dB, true -3 dB
    points, valid, config of the first)."""
    feats, loss, true_hz, valid = [], [], [], []
    for path in paths:
        with np.load(path) as d:
            ends = np.cumsum(d["frames"])
            grid = d["grid"].astype(np.float64)
            feats += [locator.grid_features(grid[e - n : e]) for e, n in zip(ends, d["frames"])]
            loss.append(d["loss"])
            true_hz.append(d["true_hz"])
            valid.append(d["valid"])
            if path == paths[0]:
                config = json.loads(str(d["config"]))
    return np.stack(feats), np.concatenate(loss), np.concatenate(true_hz), np.concatenate(valid), config


def _torch_net(width: int, dilations: tuple[int, ...], kernel: int):
    import torch
    from torch import nn

    class CurveNet(nn.Module):
        """The net `engine.curvereader.CurveReader` runs in numpy, layer for layer."""

        def __init__(self):
            super().__init__()
            self.inp = nn.Conv1d(locator.CHANNELS + 1, width, kernel, padding=kernel // 2)
            self.blocks = nn.ModuleList(nn.Conv1d(width, width, kernel, dilation=d, padding=d * (kernel - 1) // 2)
                                        for d in dilations)
            self.out = nn.Conv1d(width, 1, 1)

        def forward(self, x):  # (B, CHANNELS + 1, grid) -> (B, grid): the loss / DB_SCALE, at most 0
            h = torch.relu(self.inp(x))
            for block in self.blocks:
                h = torch.relu(h + block(h))
            return -nn.functional.softplus(self.out(h)[:, 0])

        def weights(self) -> dict[str, np.ndarray]:
            w = {"in.w": self.inp.weight, "in.b": self.inp.bias, "out.w": self.out.weight, "out.b": self.out.bias}
            for i, block in enumerate(self.blocks):
                w[f"block{i}.w"], w[f"block{i}.b"] = block.weight, block.bias
            return {k: v.detach().cpu().numpy().astype(np.float32) for k, v in w.items()}

    return CurveNet()


def score(reading_db: np.ndarray, loss_db: np.ndarray, true_hz: np.ndarray) -> dict[str, float]:
    """The reading's error in dB (mean absolute, root mean square) where it matters most: from
    the cutoff to `SCORE_OCTAVES` over it, where the cut has taken at most `SCORE_DB`."""
    octaves = np.log2(locator.grid_hz())[None, :] - np.log2(true_hz)[:, None]
    scored = (octaves >= 0.0) & (octaves <= SCORE_OCTAVES) & (loss_db > -SCORE_DB)
    miss = (reading_db - np.maximum(loss_db, -DEEPEST_DB))[scored]
    return {"mae_db": float(np.mean(np.abs(miss))), "rmse_db": float(np.sqrt(np.mean(miss**2))), "n": int(len(true_hz))}


def reader_config(cfg: CurveTrainConfig) -> dict:
    """What the engine checks against its own features (`CurveReader`), and the recipe."""
    return {"grid": [locator.LOW_HZ, locator.HIGH_HZ, locator.PER_OCTAVE], "quantiles": list(locator.QUANTILES),
            "shape_quantiles": list(locator.SHAPE_QUANTILES), "cutoff_octaves": list(curvereader.CUTOFF_OCTAVES),
            "cutoff_scale": curvereader.CUTOFF_SCALE, "db_scale": curvereader.DB_SCALE,
            "dilations": list(cfg.dilations), "train": asdict(cfg)}


def train(data: list[Path], out: Path, cfg: CurveTrainConfig, threads: int = 2) -> dict:
    """Fit the net on the training part of the built examples, write it to `out` with its
    figures on the validation part (other recordings), and return those figures."""
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(cfg.seed)
    feats, loss_db, true_hz, valid, data_config = load_examples(data)
    target = np.clip(loss_db, -DEEPEST_DB, 0.0) / curvereader.DB_SCALE
    x, y = torch.from_numpy(feats[~valid]), torch.from_numpy(target[~valid].astype(np.float32))
    hz, counted = true_hz[~valid], loss_db[~valid] > -MAX_WEIGHED_DB
    log_grid = np.log2(locator.grid_hz())
    net = _torch_net(cfg.width, cfg.dilations, cfg.kernel)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=cfg.epochs * (len(x) // cfg.batch))
    rng = np.random.default_rng(cfg.order_seed)
    config = dict(reader_config(cfg), data=data_config, examples=int(len(x)))

    def validate() -> dict[str, float]:
        reader = curvereader.CurveReader(net.weights(), config)
        reading = np.stack([reader.loss_db(f, h) for f, h in zip(feats[valid], true_hz[valid])])
        return score(reading, loss_db[valid], true_hz[valid])

    t0 = time.time()
    for epoch in range(cfg.epochs):
        order, total = rng.permutation(len(x)), 0.0
        for i in range(0, len(order) - cfg.batch + 1, cfg.batch):
            idx = order[i : i + cfg.batch]
            told = hz[idx] * np.exp(rng.uniform(*np.log(cfg.told), len(idx)))
            inputs = torch.cat([x[idx], torch.from_numpy(curvereader.cutoff_channel(told))], dim=1)
            weight = torch.from_numpy(((log_grid[None, :] - np.log2(told)[:, None] >= FROM_OCTAVES)
                                       & counted[idx]).astype(np.float32))
            loss = ((net(inputs) - y[idx]) ** 2 * weight).sum() / weight.sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        if epoch % 5 == 4 or epoch == cfg.epochs - 1:
            figures = validate()
            print(f"epoch {epoch + 1}: loss {total / len(x):.4f}, validation {figures['mae_db']:.2f} dB mean "
                  f"error ({figures['rmse_db']:.2f} rms) ({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)
    config["validation"] = validate()
    curvereader.CurveReader(net.weights(), config).save(out)
    return config["validation"]


@stops_in_one_line("curvereader")
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m reelrestore.training.curvereader", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="make the training examples")
    b.add_argument("--out", type=Path, required=True)
    b.add_argument("--corpus", type=Path, default=None, help="synthetic corpus folder (*.flac) to add")
    b.add_argument("--per-hour", type=float, default=DATA.examples_per_hour)
    b.add_argument("--workers", type=int, default=2)
    b.add_argument("--seed", type=int, default=DATA.seed, help="another seed, other examples")
    b.add_argument("--extra", type=Path, default=None, metavar="DIR",
                   help="also take the recordings of a folder `python -m reelrestore.training.remote` fetched "
                        "(their training part, as the real set splits them)")
    t = sub.add_parser("train", help="fit the net and write the .npz the engine loads")
    t.add_argument("--data", type=Path, nargs="+", required=True)
    t.add_argument("--out", type=Path,
                   default=Path(__file__).resolve().parent.parent / "models" / curvereader.DEFAULT_NAME)
    t.add_argument("--epochs", type=int, default=CurveTrainConfig.epochs)
    t.add_argument("--seed", type=int, default=CurveTrainConfig.seed)
    t.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    if args.cmd == "train":
        if args.epochs < 1:
            ap.exit(2, "error: --epochs must be 1 or more\n")
        missing = [str(p) for p in args.data if not p.is_file()]
        if missing:
            ap.exit(2, f"error: no examples at {', '.join(missing)}; make them with "
                       f"`python -m reelrestore.training.curvereader build --out FILE`\n")
        print(json.dumps(train(args.data, args.out, CurveTrainConfig(epochs=args.epochs, seed=args.seed),
                               args.threads), indent=1))
        return
    if args.corpus is not None and not any(args.corpus.glob("*.flac")):
        ap.exit(2, f"error: no *.flac in --corpus {args.corpus}; leave it out or name the corpus folder\n")
    try:
        build(args.out, replace(DATA, examples_per_hour=args.per_hour, seed=args.seed,
                                extra=None if args.extra is None else str(args.extra)), args.corpus, args.workers)
    except (NoSourcesError, FileNotFoundError, ValueError) as e:
        ap.exit(2, f"error: {e}\n")


if __name__ == "__main__":
    main()
