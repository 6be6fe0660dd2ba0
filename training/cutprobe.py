"""Probe `--cutoff auto` on many reels of the training part: what it reads, and why not.

    python -m reelrestore.training.cutprobe --data data/real-train --seed 5 --seed 6 --seed 7

The real set's evaluation part is for scoring, not for finding what to fix; its development
sets hold 22 reels per cutoff. This probe cuts many more reels from the training folder
(`reelrestore.training.realtrain`, the training part only), one 8 s excerpt (its loudest
window) per recording and seed, damaged as the real set damages its items: a cut drawn from
`--design` (Hz, the design frequency) and the real set's shapes (zero-phase Butterworth 2, 4,
8 and the optical slit), white hiss at -75 to -45 dBFS cut with the signal (`hiss_cut`),
added after the cut (`hiss_after`), or no cut at all (`uncut`). It runs only the engine's
cutoff decision (`cutoff.find_cut` on the frame spectra the engine's first pass reads), no
model, about a minute per 114 recordings on two cores, and prints per variant and design:
readings within 0.95-1.25x of the true -3 dB point, under 0.9x, not found (with why), and
whether the hiss was read as kept (`hiss_after`) or lost (`hiss_cut`). `--json` writes every
reel's decision, to compare two versions of the engine reel by reel.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from ..engine.contract import DEFAULT_CONTRACT
from ..engine.cutoff import find_cut
from ..engine.locator import CutoffLocator
from ..engine.safety import AtomicPath, stops_in_one_line
from ..engine.stft import StftPlan
from .degrade import SR, hiss, minus3db_hz
from .evaluate import RATIO_LOW, RATIO_OK
from .heldout import _level
from .locator import reel_profiles
from .realset import VARIANTS, RealsetConfig, damage, loudest_window, measured_bandwidth_hz

DESIGNS_HZ = (3000.0, 4500.0, 6000.0, 8000.0)
REALSET = RealsetConfig()  # the real set's shapes, hiss and peak levels, cutoff limit and skip


def probe_reel(clean: np.ndarray, source_rate: int, rng: np.random.Generator, designs: tuple[float, ...],
               locator: CutoffLocator, plan: StftPlan) -> list[dict]:
    """One excerpt, cut one way (design and shape drawn), in the three variants: a row each,
    or none when the cut lies too near the excerpt's own bandwidth (as the real set skips it)."""
    cfg = REALSET
    design = float(designs[rng.integers(len(designs))])
    shape, order = cfg.shapes[rng.integers(len(cfg.shapes))]
    cutoff = minus3db_hz(shape, order, design)
    if cutoff >= cfg.max_cutoff_fraction * measured_bandwidth_hz(clean, source_rate):
        return []
    hiss_db = float(rng.uniform(*cfg.hiss_db))
    noise = hiss(clean.shape, hiss_db, rng)
    rows = []
    for variant in VARIANTS:
        damaged = damage(variant, clean, noise, design, shape, order)
        profiles = reel_profiles(damaged.astype(np.float32), plan, DEFAULT_CONTRACT.frame_length)
        d = find_cut(profiles, DEFAULT_CONTRACT.sample_rate / DEFAULT_CONTRACT.n_fft, locator)
        rows.append({"variant": variant, "design_hz": design, "shape": f"{shape}{order or ''}",
                     "cutoff_hz": round(cutoff, 2), "hiss_db": round(hiss_db, 2),
                     "hz": d.hz, "ratio": None if d.hz is None else round(d.hz / cutoff, 4),
                     "hiss_kept": None if d.hz is None else d.hiss_db is None, "reason": d.reason})
    return rows


def run(data: Path, seeds: list[int], designs: tuple[float, ...], seconds: float = 8.0) -> list[dict]:
    """Every recording of the training folder `data`, once per seed: the rows of `probe_reel`."""
    manifest = json.loads((data / "manifest.json").read_text())
    locator, plan = CutoffLocator.load(), StftPlan.from_contract(DEFAULT_CONTRACT)
    n = int(seconds * SR)
    rows = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        for i, entry in enumerate(manifest["files"]):
            x, sr = sf.read(data / entry["file"], dtype="float32", always_2d=True)
            if sr != SR:
                raise ValueError(f"{data / entry['file']}: {sr} Hz, expected {SR} (a realtrain folder)")
            x = x.mean(axis=1)
            if x.size < n:
                continue
            start = loudest_window(x, n, REALSET.skip_fraction)
            clean = _level(x[start : start + n].astype(np.float64), rng, REALSET.peak_db)
            for row in probe_reel(clean, int(entry["rate"]), rng, designs, locator, plan):
                rows.append({"seed": seed, "file": entry["file"], "kind": entry["kind"], **row})
            print(f"\rseed {seed}: {i + 1} of {len(manifest['files'])} recordings", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
    return rows


def summary(rows: list[dict]) -> list[str]:
    """Lines per variant and design: readings within RATIO_OK, under RATIO_LOW, not found
    (and why), the hiss read as kept; for uncut reels, how many were left alone."""
    lines = [f"{'variant':10s} {'design':>7s} {'reels':>5s} {'in window':>9s} {'< 0.9x':>6s} "
             f"{'no cut':>6s} {'hiss kept':>9s}  why not found"]
    groups: dict[tuple, list[dict]] = collections.defaultdict(list)
    for r in rows:
        groups[(VARIANTS.index(r["variant"]), r["design_hz"] if r["variant"] != "uncut" else 0.0)].append(r)
    for (v, design), rs in sorted(groups.items()):
        found = [r for r in rs if r["ratio"] is not None]
        within = sum(RATIO_OK[0] <= r["ratio"] <= RATIO_OK[1] for r in found)
        low = sum(r["ratio"] < RATIO_LOW for r in found)
        why = collections.Counter(r["reason"].split(" (")[0].split(",")[0].split(" at ")[0]
                                  for r in rs if r["ratio"] is None)
        label = "-" if VARIANTS[v] == "uncut" else f"{design:g}"
        lines.append(f"{VARIANTS[v]:10s} {label:>7s} {len(rs):5d} {within:9d} {low:6d} {len(rs) - len(found):6d} "
                     f"{sum(bool(r['hiss_kept']) for r in found):9d}  "
                     + "; ".join(f"{k} {c}" for k, c in why.most_common()))
    return lines


@stops_in_one_line("cutprobe")
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m reelrestore.training.cutprobe", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("data/real-train"),
                    help="training folder built by python -m reelrestore.training.realtrain")
    ap.add_argument("--seed", type=int, action="append", help="one excerpt per recording per seed (repeatable; default 5)")
    ap.add_argument("--design", type=float, action="append", help=f"design cutoffs in Hz (repeatable; default {DESIGNS_HZ})")
    ap.add_argument("--json", type=Path, help="write every reel's decision here")
    a = ap.parse_args(argv)
    if not (a.data / "manifest.json").is_file():
        print(f"cutprobe: error: {a.data}/manifest.json not found: build the training folder first "
              f"(python -m reelrestore.training.realtrain --realset realset/ --out {a.data})", file=sys.stderr)
        sys.exit(2)  # one line, as a usage error, without the usage
    try:
        rows = run(a.data, a.seed or [5], tuple(a.design or DESIGNS_HZ))
    except (ValueError, OSError) as err:
        sys.exit(f"cutprobe: error: {err}")
    print("\n".join(summary(rows)))
    if a.json:
        with AtomicPath(a.json) as tmp:
            Path(tmp).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
