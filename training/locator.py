"""Train the cutoff locator (`reelrestore.engine.locator`) on real recordings with known cuts.

    python -m reelrestore.training.locator build --out ~/.cache/reelrestore/locator-data.npz
    python -m reelrestore.training.locator train --data ~/.cache/reelrestore/locator-data.npz \\
        --out models/cutoff-locator.npz --members 2

(README, "Retrain the cutoff locator", gives the shipped locator's exact recipe; `join`
makes one locator of the members of several.)

`build` takes the recordings the real set leaves for training (`realset.split`: never its
evaluation part) plus the synthetic corpus (espeak speech, General MIDI music, effects),
cuts random excerpts of 4-40 s, and damages each as a reel is damaged, with the cut known:

- a low-pass with its -3 dB point log-uniform over 90 Hz-11 kHz: Butterworth of order
  2-8 (zero-phase or not) or the optical slit (its width tolerance varied); or no cut;
- the print's hiss (white or tilted) cut with the signal, added after the cut, both, or
  none; hum, DC, rumble, a leader tone and clicks now and then; the level at random;
- a PCM-24 round trip;
- with `--p-wall`, that share of the excerpts first band-limited by a brick wall at 4.5-13.5
  kHz, as a copy made at a low rate or by a lossy codec holds it. The engine reads a reel
  past a wall it finds at 8.8 kHz or more (`cutoff.codec_edge`, `past_codec_edge`), and so
  is the example read; a wall it does not find there, or one lower (a 16 kHz transfer's at
  7-8 kHz), is the reel's loss, and the example's cut is the wall where it lies under the
  film cut (the wall is its own -3 dB point).

`--extra DIR` adds the recordings of a folder `training.remote` fetched (real speech and
effects), as the real set splits them (never a folder for evaluation only); `--package
0ad-data` every recording of that training-only Debian package (`realset.TRAINING_PACKAGES`).

It stores each example's frame spectra on the locator's grid (the engine's `band.band_db`
through `locator.grid_db`; `train` turns them into `locator.grid_features`) and the true
-3 dB point (0 for no cut). Recordings are split by hash into a training and a validation
part. `train` fits `--members` nets (seeds `--seed`, `--seed` + 1, ...; about 20 minutes
each on two cores) and writes the `.npz` the engine loads, with its config and the
validation figures of the members together.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import multiprocessing as mp
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import fft as sp_fft
from scipy import signal

from ..engine import cutoff, locator
from ..engine.band import SILENCE_DB, band_db
from ..engine.contract import DEFAULT_CONTRACT
from ..engine.safety import AtomicPath, stops_in_one_line
from ..engine.stft import StftPlan
from .degrade import SR, add_clicks, lowpass, lowpass_brickwall, mains_hum, minus3db_hz
from .evaluate import RATIO_LOW, RATIO_OK
from .realset import (TRAINING_PACKAGES, NoSourcesError, RealsetConfig, Recording, find_recordings, read_recording,
                      split, to_mono_48k, training_package_recordings)

DEFAULT_DATA = Path.home() / ".cache" / "reelrestore" / "locator-data.npz"
MIN_CROP_FRAMES = 12  # 6 s


@dataclass(frozen=True)
class LocatorDataConfig:
    examples_per_hour: float = 3000.0  # of source audio (at least `min_per_recording` each)
    min_per_recording: int = 8
    seconds: tuple[float, float] = (4.0, 40.0)  # excerpt length, log-uniform
    cut_hz: tuple[float, float] = (90.0, 11000.0)  # -3 dB point, log-uniform
    p_uncut: float = 0.15
    orders: tuple[int, ...] = (2, 3, 4, 5, 6, 8)
    p_slit: float = 0.3
    # Where the print's hiss is: cut with the signal, added after the cut, both, or none.
    hiss_where: tuple[float, float, float, float] = (0.4, 0.4, 0.12, 0.08)
    hiss_db: tuple[float, float] = (-85.0, -40.0)  # RMS dBFS
    peak_db: tuple[float, float] = (-20.0, -1.0)
    min_source_rate: int = 32000  # recordings sampled lower are band-limited already
    validation_percent: int = 12  # recordings (by hash of their key) kept for validation
    seed: int = 20261201
    # The share of excerpts band-limited first by a brick wall (a low-rate or lossy copy),
    # log-uniform over `wall_hz`.
    p_wall: float = 0.0
    wall_hz: tuple[float, float] = (4500.0, 13500.0)
    extra: str | None = None  # a folder of `training.remote` recordings to add (their training part)
    # training-only Debian packages to add (`realset.TRAINING_PACKAGES`, e.g. 0 A.D.'s data)
    packages: tuple[str, ...] = ()


def _validation(key: str, percent: int) -> bool:
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % 100 < percent


def _noise(n: int, level_db: float, tilt_db_per_octave: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise of RMS `level_db` dBFS whose spectrum tilts by this many dB per octave
    (around 1 kHz): a print's grain is white-ish, not exactly white."""
    x = rng.standard_normal(n)
    if tilt_db_per_octave:
        m = sp_fft.next_fast_len(n, real=True)  # an awkward length makes the FFT ten times slower
        spec = sp_fft.rfft(x, m)
        f = np.maximum(sp_fft.rfftfreq(m, 1.0 / SR), 20.0)
        spec *= (f / 1000.0) ** (tilt_db_per_octave / (20.0 * math.log10(2.0)))
        x = sp_fft.irfft(spec, m)[:n]
    return x * (10.0 ** (level_db / 20.0) / (np.sqrt(np.mean(x * x)) + 1e-20))


def damage(clean: np.ndarray, rng: np.random.Generator, cfg: LocatorDataConfig
           ) -> tuple[np.ndarray, float, str, float | None]:
    """One damaged excerpt, its film cut's -3 dB point (0.0: no cut), a short description,
    and the brick wall the copy was first band-limited by (None: none; `cfg.p_wall`)."""
    n = clean.size
    wall = None
    if cfg.p_wall > 0 and rng.random() < cfg.p_wall:
        wall = math.exp(rng.uniform(math.log(cfg.wall_hz[0]), math.log(cfg.wall_hz[1])))
        clean = lowpass_brickwall(clean, wall)
    x = clean * (10.0 ** (rng.uniform(*cfg.peak_db) / 20.0) / (np.max(np.abs(clean)) + 1e-12))
    if rng.random() < 0.15:  # a leader or test tone at the head of the reel
        k = int(rng.uniform(1.0, 4.0) * SR)
        tone = 10.0 ** (rng.uniform(-30, -10) / 20) * np.sin(2 * np.pi * rng.uniform(200, 5000) * np.arange(k) / SR)
        x[:k] += tone[: min(k, n)]
    level = rng.uniform(*cfg.hiss_db)
    tilt = rng.uniform(-3.0, 1.0) if rng.random() < 0.5 else 0.0
    hiss_where = rng.choice(["cut", "after", "both", "none"], p=list(cfg.hiss_where))
    if hiss_where in ("cut", "both"):
        x = x + _noise(n, level, tilt, rng)
    if rng.random() < cfg.p_uncut:
        true_hz, what = 0.0, "uncut"
    else:
        zero_phase = bool(rng.random() < 0.75)
        if rng.random() < cfg.p_slit:
            shape, order, spread = "slit", 0, float(rng.uniform(0.08, 0.25))
        else:
            shape, order, spread = "butterworth", int(rng.choice(cfg.orders)), 0.15
        # Design cutoff from the wanted -3 dB point (the ratio is fixed per shape).
        want = math.exp(rng.uniform(math.log(cfg.cut_hz[0]), math.log(cfg.cut_hz[1])))
        ratio = minus3db_hz(shape, order, 1000.0, SR, zero_phase, spread) / 1000.0
        design = min(want / ratio, 0.45 * SR)
        x = lowpass(x, design, shape, order, SR, zero_phase, spread)
        true_hz = minus3db_hz(shape, order, design, SR, zero_phase, spread)
        what = f"{shape}{order or ''}{'' if zero_phase else ' causal'}"
    if hiss_where in ("after", "both"):
        x = x + _noise(n, level - (rng.uniform(0, 10) if hiss_where == "both" else 0.0), tilt, rng)
    if rng.random() < 0.2:
        x = x + mains_hum(n, float(rng.choice([50.0, 60.0])), rng.uniform(-70, -35), rng)
    if rng.random() < 0.1:
        x = x + rng.uniform(-0.02, 0.02)  # DC
    if rng.random() < 0.1:  # rumble
        sos = signal.butter(2, rng.uniform(15, 40), fs=SR, output="sos")
        x = x + signal.sosfilt(sos, _noise(n, rng.uniform(-50, -30), 0.0, rng))
    if rng.random() < 0.1:
        x = add_clicks(x, rng.uniform(0.5, 5.0), rng.uniform(-20, -6), rng)[0]
    x = np.clip(np.round(x * 2 ** 23) / 2 ** 23, -1.0, 1.0 - 2 ** -23)  # PCM 24
    note = f"{what} hiss {hiss_where} {level:.0f} dB" + ("" if wall is None else f" wall {wall:.0f} Hz")
    return x.astype(np.float32), float(true_hz), note, wall


def example_cut(profiles: np.ndarray, bin_hz: float, true_hz: float, wall: float | None
                ) -> tuple[np.ndarray, float]:
    """The spectra as the engine's `find_cut` hands them to the locator, and the cut it
    should read there: past a codec's wall the engine finds (`cutoff.codec_edge`) the reel
    is read as if the wall were not there and the film cut stands; a wall it does not find,
    within the locator's grid, is the reel's loss where it lies under the film cut."""
    edge = cutoff.codec_edge(profiles, bin_hz)
    if edge is not None:
        return cutoff.past_codec_edge(profiles, bin_hz, edge), true_hz
    if wall is not None and wall <= locator.HIGH_HZ and (true_hz == 0.0 or wall < true_hz):
        return profiles, float(wall)
    return profiles, true_hz


def reel_profiles(x: np.ndarray, plan: StftPlan, frame: int) -> np.ndarray:
    """(frames, bins) dB, as the engine's first pass reads a file (`pipeline.learn_cutoffs`)."""
    k = x.size // frame
    return band_db(plan.forward(x[: k * frame].reshape(k, frame).astype(np.float32)))


@dataclass(frozen=True)
class _Source:
    key: str
    path: str  # a Recording's key or a corpus file
    seconds: float


def _read(source: _Source, recordings: dict[str, Recording]) -> np.ndarray:
    if source.key in recordings:
        return read_recording(recordings[source.key])
    x, sr = sf.read(source.path, dtype="float64", always_2d=True)
    return to_mono_48k(x, sr)


def _build_one(args) -> tuple[list, list, list]:
    """One source's examples: (grid spectra (frames, grid) float16, true -3 dB points, notes)."""
    source, recordings, count, seed, cfg = args
    rng = np.random.default_rng(seed)
    audio = _read(source, recordings)
    plan, frame = StftPlan.from_contract(DEFAULT_CONTRACT), DEFAULT_CONTRACT.frame_length
    grids, labels, notes = [], [], []
    for _ in range(count):
        n = int(math.exp(rng.uniform(*np.log(cfg.seconds))) * SR)
        if audio.size <= n:
            clip = audio
        else:
            start = int(rng.integers(0, audio.size - n))
            clip = audio[start : start + n]
        if np.max(np.abs(clip)) < 1e-4:
            continue
        x, true_hz, note, wall = damage(clip, rng, cfg)
        p = reel_profiles(x, plan, frame)
        p = p[p.max(axis=1) >= SILENCE_DB]
        if len(p) < locator.MIN_FRAMES:
            continue
        if wall is not None:  # (without walls the examples are as the shipped recipe made them)
            p, true_hz = example_cut(p, DEFAULT_CONTRACT.bin_hz, true_hz, wall)
        grids.append(locator.grid_db(p, DEFAULT_CONTRACT.bin_hz).astype(np.float16))
        labels.append(true_hz)
        notes.append(f"{source.key}: {note}")
    return grids, labels, notes


def sources(cfg: LocatorDataConfig, corpus: Path | None) -> tuple[list[_Source], dict[str, Recording]]:
    package_recs = training_package_recordings(cfg.packages)
    base = RealsetConfig(extra=cfg.extra)
    evaluation, train = split(find_recordings(base), base)
    held = {r.sha256 for s in evaluation for r in s.recordings}  # never a recording the evaluation part holds
    train = train + [r for r in package_recs if r.sha256 not in held]
    recs = {r.key: r for r in train if r.rate >= cfg.min_source_rate}
    out = [_Source(k, k, r.seconds) for k, r in sorted(recs.items())]
    if corpus is not None:
        for p in sorted(corpus.glob("*.flac")):
            out.append(_Source(f"corpus/{p.name}", str(p), sf.info(str(p)).duration))
    return out, recs


def build(out: Path, cfg: LocatorDataConfig, corpus: Path | None, workers: int) -> None:
    srcs, recs = sources(cfg, corpus)
    jobs = []
    for i, s in enumerate(srcs):
        count = max(cfg.min_per_recording, int(round(cfg.examples_per_hour * s.seconds / 3600.0)))
        jobs.append((s, recs, count, cfg.seed + 7919 * i, cfg))  # seed: see --seed
    jobs.sort(key=lambda j: -j[2])  # longest first, for an even finish
    print(f"{len(srcs)} sources, {sum(s.seconds for s in srcs) / 3600:.2f} h, "
          f"{sum(j[2] for j in jobs)} examples", file=sys.stderr)
    grids, labels, notes, valid = [], [], [], []
    t0 = time.time()
    with mp.get_context("spawn").Pool(workers) as pool:
        for k, (job, (f, lab, note)) in enumerate(zip(jobs, pool.imap(_build_one, jobs))):
            grids += f
            labels += lab
            notes += note
            valid += [_validation(job[0].key, cfg.validation_percent)] * len(f)
            print(f"\r{k + 1}/{len(jobs)} sources, {len(labels)} examples, {time.time() - t0:.0f} s",
                  end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    with AtomicPath(out) as tmp, open(tmp, "wb") as fh:  # whole or not at all
        np.savez_compressed(fh, grid=np.concatenate(grids), frames=np.array([len(g) for g in grids]),
                            true_hz=np.array(labels), valid=np.array(valid), notes=np.array(notes),
                            config=np.array(json.dumps(asdict(cfg))))


def load_examples(paths: list[Path], crops: int = 0, seed: int = 0
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
    """Built example files -> (features (N, CHANNELS, grid), true_hz, valid, notes, config
    of the first). With `crops`, every training example (not the validation ones) adds
    that many views of a random run of its frames (at least `MIN_CROP_FRAMES`): the same
    damage heard over a shorter stretch of the reel."""
    rng = np.random.default_rng(seed)
    feats, true_hz, valid, notes = [], [], [], []
    for path in paths:
        with np.load(path) as d:
            ends = np.cumsum(d["frames"])
            grid = d["grid"].astype(np.float64)
            views = []
            for e, n, v in zip(ends, d["frames"], d["valid"]):
                views.append(grid[e - n : e])
                for _ in range(0 if v else crops):
                    k = int(rng.integers(min(MIN_CROP_FRAMES, n), n + 1))
                    start = e - n + int(rng.integers(0, n - k + 1))
                    views.append(grid[start : start + k])
            feats += [locator.grid_features(g) for g in views]
            reps = np.where(d["valid"], 1, 1 + crops)
            true_hz.append(np.repeat(d["true_hz"], reps))
            valid.append(np.repeat(d["valid"], reps))
            notes.append(np.repeat(d["notes"], reps))
            if path == paths[0]:
                config = json.loads(str(d["config"]))
    return np.stack(feats), np.concatenate(true_hz), np.concatenate(valid), np.concatenate(notes), config


# ------------------------------------------------------------------------------ training

def _torch_net(width: int, dilations: tuple[int, ...], kernel: int):
    import torch
    from torch import nn

    class LocatorNet(nn.Module):
        """The net `engine.locator.CutoffLocator` runs in numpy, layer for layer."""

        def __init__(self):
            super().__init__()
            self.inp = nn.Conv1d(locator.CHANNELS, width, kernel, padding=kernel // 2)
            self.blocks = nn.ModuleList(nn.Conv1d(width, width, kernel, dilation=d, padding=d * (kernel - 1) // 2)
                                        for d in dilations)
            self.out = nn.Conv1d(width, 1, 1)
            self.none = nn.Linear(2 * width, 1)

        def forward(self, x):  # (B, CHANNELS, grid) -> (B, grid + 1) logits, the last "no cut"
            h = torch.relu(self.inp(x))
            for block in self.blocks:
                h = torch.relu(h + block(h))
            pooled = torch.cat([h.mean(-1), h.amax(-1)], dim=1)
            return torch.cat([self.out(h)[:, 0], self.none(pooled)], dim=1)

        def _named(self) -> dict:
            w = {"in.w": self.inp.weight, "in.b": self.inp.bias, "out.w": self.out.weight, "out.b": self.out.bias,
                 "none.w": self.none.weight[0], "none.b": self.none.bias}
            for i, block in enumerate(self.blocks):
                w[f"block{i}.w"], w[f"block{i}.b"] = block.weight, block.bias
            return w

        def weights(self) -> dict[str, np.ndarray]:
            return {k: v.detach().cpu().numpy().astype(np.float32) for k, v in self._named().items()}

        def set_weights(self, weights: dict[str, np.ndarray]) -> None:
            """Load a member of a saved locator (the inverse of `weights`)."""
            named = self._named()
            if set(weights) != set(named) or any(tuple(weights[k].shape) != tuple(v.shape) for k, v in named.items()):
                raise ValueError("expected a locator member of the same width, dilations and kernel")
            with torch.no_grad():
                for k, v in named.items():
                    v.copy_(torch.from_numpy(np.asarray(weights[k], dtype=np.float32)))

    return LocatorNet()


def targets(true_hz: np.ndarray, sigma: float, ratio: np.ndarray | float = locator.TARGET_RATIO) -> np.ndarray:
    """(N,) true -3 dB points (0: no cut) -> (N, grid + 1) soft targets: a Gaussian of
    `sigma` grid steps around `ratio` (per example or one for all) x the -3 dB point,
    or the no-cut class."""
    g = locator.grid_hz().size
    out = np.zeros((true_hz.size, g + 1), dtype=np.float32)
    pos = locator.PER_OCTAVE * np.log2(np.maximum(true_hz, 1e-9) * ratio / locator.LOW_HZ)
    inside = (true_hz > 0) & (pos >= 0) & (pos <= g - 1)
    k = np.arange(g)
    bumps = np.exp(-0.5 * ((k[None, :] - pos[inside, None]) / sigma) ** 2)
    out[inside, :g] = bumps / bumps.sum(axis=1, keepdims=True)
    out[~inside, g] = 1.0
    return out


def score(found_hz: np.ndarray, true_hz: np.ndarray, groups: np.ndarray) -> dict[str, dict[str, float]]:
    """Per group: items, hit (0.95-1.25x the -3 dB point), low (< 0.9x), missed (no cut),
    and for uncut items (true 0) left alone. found_hz: NaN for no cut."""
    out = {}
    for name in sorted(set(groups)):
        m = groups == name
        q = found_hz[m] / np.where(true_hz[m] > 0, true_hz[m], np.nan)
        if name == "uncut":
            out[name] = {"n": int(m.sum()), "left_alone": float(np.mean(np.isnan(found_hz[m])))}
            continue
        out[name] = {"n": int(m.sum()), "hit": float(np.mean((q >= RATIO_OK[0]) & (q <= RATIO_OK[1]))),
                     "low": float(np.mean(q < RATIO_LOW)), "missed": float(np.mean(np.isnan(q)))}
    return out


def locate_all(net: locator.CutoffLocator, feats: np.ndarray) -> np.ndarray:
    """(N, CHANNELS, grid) -> (N,) Hz, NaN where the locator finds no cut."""
    out = np.full(len(feats), np.nan)
    for i, f in enumerate(feats):
        got = net.decide(f)
        if got.hz is not None:
            out[i] = got.hz
    return out


@dataclass(frozen=True)
class LocatorTrainConfig:
    width: int = 48
    dilations: tuple[int, ...] = (1, 2, 4, 8, 16, 1)
    kernel: int = 5
    epochs: int = 20
    batch: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-4
    sigma: float = 0.8  # grid steps
    # A gentle slope (Butterworth order 2-3, 12-18 dB/octave) has no edge to read its -3 dB
    # point from: it is trained a little higher (its estimate may sit high, never low).
    gentle_orders: tuple[int, ...] = (2, 3)
    gentle_target_ratio: float = 1.18
    # The engine's decision (`CutoffLocator.decide`): a cut when its probability reaches
    # `decide_p_cut`, placed where the posterior over the grid reaches `decide_quantile`
    # (above its median: an estimate that errs high, never into the kept band).
    decide_quantile: float = 0.65
    decide_p_cut: float = 0.6
    crops: int = 1  # extra views of each training example (`load_examples`)
    crop_seed: int = 0  # which views: the same for every member
    members: int = 1  # nets trained alike with seeds seed, seed + 1, ...; the engine averages them
    seed: int = 1
    # A locator (.npz) whose member m starts net m (same width, dilations and kernel): training
    # then goes on from it, on other examples, instead of from random weights.
    init: str = ""


def locator_config(cfg: LocatorTrainConfig) -> dict:
    """What the engine checks against its own features (`CutoffLocator`), and the recipe."""
    return {"grid": [locator.LOW_HZ, locator.HIGH_HZ, locator.PER_OCTAVE], "quantiles": list(locator.QUANTILES),
            "shape_quantiles": list(locator.SHAPE_QUANTILES), "target_ratio": locator.TARGET_RATIO,
            "dilations": list(cfg.dilations), "decide": {"quantile": cfg.decide_quantile, "p_cut": cfg.decide_p_cut},
            "train": asdict(cfg)}


def train(data: list[Path], out: Path, cfg: LocatorTrainConfig, threads: int = 2) -> dict:
    """Fit `cfg.members` nets on the training part of the built examples, write them to
    `out` as one locator with its figures on the validation part (other recordings), and
    return those figures."""
    import torch

    torch.set_num_threads(threads)
    feats, true_hz, valid, notes, data_config = load_examples(data, cfg.crops, cfg.crop_seed)
    groups = np.array([n.split(": ", 1)[1].split(" hiss")[0].replace(" causal", "") for n in notes])
    gentle = np.isin(groups, [f"butterworth{k}" for k in cfg.gentle_orders])
    ratio = np.where(gentle, cfg.gentle_target_ratio, locator.TARGET_RATIO)
    x = torch.from_numpy(feats[~valid])
    y = torch.from_numpy(targets(true_hz[~valid], cfg.sigma, ratio[~valid]))
    config = dict(locator_config(cfg), data=data_config, examples=int(len(x)))
    t0, members = time.time(), []

    def validate(weights: list[dict[str, np.ndarray]]) -> dict:
        return score(locate_all(locator.CutoffLocator(weights, config), feats[valid]), true_hz[valid], groups[valid])

    start = locator.CutoffLocator.load(cfg.init).members if cfg.init else []
    if cfg.init and len(start) < cfg.members:
        raise ValueError(f"--init {cfg.init} has {len(start)} members, expected at least {cfg.members}")
    for m in range(cfg.members):
        torch.manual_seed(cfg.seed + m)
        net = _torch_net(cfg.width, cfg.dilations, cfg.kernel)
        if start:
            net.set_weights(start[m])
        opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        steps = cfg.epochs * max(1, len(x) // cfg.batch)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=steps)
        gen = torch.Generator().manual_seed(cfg.seed + m)
        for epoch in range(cfg.epochs):
            order = torch.randperm(len(x), generator=gen)
            total = 0.0
            for i in range(0, len(order) - cfg.batch + 1, cfg.batch):
                idx = order[i : i + cfg.batch]
                loss = -(y[idx] * torch.log_softmax(net(x[idx]), dim=1)).sum(dim=1).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                total += float(loss.detach()) * len(idx)
            if epoch % 5 == 4 or epoch == cfg.epochs - 1:
                print(f"member {m + 1}/{cfg.members} epoch {epoch + 1}: loss {total / len(x):.3f}, "
                      f"{_summary(validate([net.weights()]))} ({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)
        members.append(net.weights())
    figures = validate(members)
    if cfg.members > 1:
        print(f"all {cfg.members} members: {_summary(figures)}", file=sys.stderr, flush=True)
    config["validation"] = figures
    locator.CutoffLocator(members, config).save(out)
    return figures


def join(paths: list[Path], out: Path) -> locator.CutoffLocator:
    """One locator of the members of several (`train`'s outputs, or a shipped locator), the
    engine averaging them all; each part's recipe and validation figures are kept under
    ``"joined"``. Their features and decision must agree."""
    parts = [locator.CutoffLocator.load(p) for p in paths]
    shared = ("grid", "quantiles", "shape_quantiles", "target_ratio", "dilations", "decide")
    for path, part in zip(paths[1:], parts[1:]):
        differ = [k for k in shared if part.config.get(k) != parts[0].config.get(k)]
        if differ:
            raise ValueError(f"{path} reads or decides otherwise than {paths[0]} ({', '.join(differ)}): "
                             f"join locators trained by one recipe")
    config = {k: parts[0].config[k] for k in shared}
    config["joined"] = [{"file": Path(p).name, "members": len(part.members),
                         **{k: part.config[k] for k in ("train", "data", "examples", "validation", "joined")
                            if k in part.config}}
                        for p, part in zip(paths, parts)]
    joined = locator.CutoffLocator([m for part in parts for m in part.members], config)
    joined.save(out)
    return joined


def _summary(figures: dict) -> str:
    steep = [v["hit"] for k, v in figures.items() if k not in ("uncut", "butterworth2", "butterworth3")]
    return (f"validation steep hit {np.mean(steep):.1%}, "
            f"uncut left alone {figures.get('uncut', {}).get('left_alone', 0):.1%}")


@stops_in_one_line("locator")
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m reelrestore.training.locator", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="make the training examples")
    b.add_argument("--out", type=Path, default=DEFAULT_DATA)
    b.add_argument("--corpus", type=Path, default=None, help="synthetic corpus folder (*.flac) to add")
    b.add_argument("--per-hour", type=float, default=LocatorDataConfig.examples_per_hour)
    b.add_argument("--workers", type=int, default=2)
    b.add_argument("--seed", type=int, default=LocatorDataConfig.seed, help="another seed, other examples")
    b.add_argument("--p-slit", type=float, default=LocatorDataConfig.p_slit, help="share of cuts made by the slit")
    b.add_argument("--hiss-where", default=",".join(f"{p:g}" for p in LocatorDataConfig.hiss_where),
                   help="probabilities of the hiss cut with the signal, added after, both, none")
    b.add_argument("--p-wall", type=float, default=LocatorDataConfig.p_wall,
                   help="share of excerpts first band-limited by a brick wall at 4.5-13.5 kHz (a low-rate or "
                        "lossy copy)")
    b.add_argument("--package", action="append", default=[], choices=sorted(TRAINING_PACKAGES),
                   help="also every recording of this installed training-only Debian package (repeatable)")
    b.add_argument("--extra", type=Path, default=None, metavar="DIR",
                   help="also take the recordings of a folder `python -m reelrestore.training.remote` fetched "
                        "(their training part, as the real set splits them)")
    t = sub.add_parser("train", help="fit the net and write the .npz the engine loads")
    t.add_argument("--data", type=Path, nargs="+", default=[DEFAULT_DATA])
    t.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "models" / locator.DEFAULT_NAME)
    t.add_argument("--epochs", type=int, default=LocatorTrainConfig.epochs)
    t.add_argument("--members", type=int, default=LocatorTrainConfig.members,
                   help="nets trained alike with seeds --seed, --seed + 1, ...; the engine averages them")
    t.add_argument("--seed", type=int, default=LocatorTrainConfig.seed)
    t.add_argument("--init", type=Path, default=None, help="go on training the members of this locator (.npz)")
    t.add_argument("--lr", type=float, default=LocatorTrainConfig.lr, help="peak learning rate")
    t.add_argument("--width", type=int, default=LocatorTrainConfig.width, help="channels of each layer")
    t.add_argument("--threads", type=int, default=2)
    j = sub.add_parser("join", help="one locator of the members of several (the engine averages them all)")
    j.add_argument("locators", type=Path, nargs="+", metavar="LOCATOR.npz")
    j.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    if args.cmd == "join":
        if len(args.locators) < 2:
            ap.exit(2, "error: expected two or more locators to join, got one\n")
        missing = [str(p) for p in args.locators if not p.is_file()]
        if missing:
            ap.exit(2, f"error: no locator at {', '.join(missing)}\n")
        try:
            joined = join(args.locators, args.out)
        except ValueError as e:
            ap.exit(2, f"error: {e}\n")
        print(f"{len(joined.members)} members from {len(args.locators)} locators written to {args.out}")
        return
    if args.cmd == "train":
        if args.members < 1 or args.epochs < 1 or args.width < 1:
            ap.exit(2, "error: --members, --epochs and --width must be 1 or more\n")
        missing = [str(p) for p in args.data if not p.is_file()]
        if missing:
            ap.exit(2, f"error: no examples at {', '.join(missing)}; make them with "
                       f"`python -m reelrestore.training.locator build --out FILE`\n")
        if args.init is not None and not args.init.is_file():
            ap.exit(2, f"error: --init {args.init}: no such locator\n")
        cfg = LocatorTrainConfig(epochs=args.epochs, members=args.members, seed=args.seed, lr=args.lr,
                                 width=args.width, init=str(args.init or ""))
        figures = train(args.data, args.out, cfg, args.threads)
        print(json.dumps(figures, indent=1))
        return
    if args.corpus is not None and not any(args.corpus.glob("*.flac")):
        ap.exit(2, f"error: no *.flac in --corpus {args.corpus}; leave it out or name the corpus folder\n")
    try:
        where = tuple(float(v) for v in args.hiss_where.split(","))
    except ValueError:
        where = ()
    if len(where) != 4 or min(where) < 0 or abs(sum(where) - 1.0) > 1e-6 or not 0 <= args.p_slit <= 1 \
            or not 0 <= args.p_wall <= 1:
        ap.exit(2, f"error: expected --hiss-where as four probabilities summing to 1, --p-slit and --p-wall in "
                   f"0..1, got {args.hiss_where!r}, {args.p_slit} and {args.p_wall}\n")
    try:
        build(args.out, LocatorDataConfig(examples_per_hour=args.per_hour, seed=args.seed, p_slit=args.p_slit,
                                          hiss_where=where, p_wall=args.p_wall,
                                          extra=None if args.extra is None else str(args.extra),
                                          packages=tuple(args.package)),
              args.corpus, args.workers)
    except (NoSourcesError, FileNotFoundError, ValueError) as e:
        ap.exit(2, f"error: {e}\n")


if __name__ == "__main__":
    main()
