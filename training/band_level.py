"""Fit a model's per-reel band level (`reelrestore.engine.level.BandLevel`) on a development set.

    python -m reelrestore.training.band_level --devset devset/ --model models/default.onnx \\
        --out models/default.onnx -y --model-version 2.2.0     # 6.4-8.0 min on two cores (5 engine passes)

A development set is built like the real set from the recordings of its *training* part
(``python -m reelrestore.training.realset --out devset/ --development realset/``); never
fit this on the evaluation part.

Every cut item of the set (hiss cut with the signal and hiss after the cut) is restored
by the engine at its true cutoff once per level offset in `--gains` (the same model with a
constant band level, so the engine's merge and limit judge each offset as they will play
it), and scored by LSD above the cut. Each item's best offset (a parabola through the
best grid point and its neighbours) is regressed on the reel's features
(`level.reel_features`, read by the engine's first pass) with ridge regression; the ridge
weight is chosen by leave-one-recording-out: every recording's offsets are predicted by
a fit on the others, and the weight whose predictions score best wins. The final fit
(all items) is written into a copy of the model's metadata (key ``band_level``); the
printed table gives, per variant, LSD above at 0 dB, with the left-out predictions, and
with each item's own best offset.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..engine.level import FEATURES, METADATA_KEY, BandLevel
from ..engine.model import ModelError, OnnxModel
from ..engine.safety import AtomicPath, stops_in_one_line
from ..engine.restore import restore_array
from ..engine.stream import StreamConfig
from .evaluate import BLOCK, load_real_items, score_real
from .realset import load_manifest

DEFAULT_GAINS = (-6.0, -3.0, 0.0, 3.0, 6.0)
LAMBDAS = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0)  # ridge weights tried (features standardised)


def constant_level(gain_db: float) -> BandLevel:
    """A band level that moves every reel's band by `gain_db`."""
    n = len(FEATURES)
    return BandLevel(FEATURES, (0.0,) * n, (1.0,) * n, (0.0,) * n, float(gain_db),
                     lowest=min(gain_db, 0.0), highest=max(gain_db, 0.0))


def best_offset(gains: np.ndarray, curve: np.ndarray) -> float:
    """The offset that minimises a curve sampled at `gains`: the vertex of the parabola
    through the best sample and its neighbours, within the grid."""
    k = int(np.argmin(curve))
    if k == 0 or k == len(gains) - 1:
        return float(gains[k])
    x, y = gains[k - 1 : k + 2], curve[k - 1 : k + 2]
    a, b, _ = np.polyfit(x, y, 2)
    return float(np.clip(-b / (2 * a), x[0], x[2])) if a > 0 else float(gains[k])


def curve_at(gains: np.ndarray, curve: np.ndarray, gain: float) -> float:
    """A curve sampled at `gains`, read at `gain` (linear between samples, flat outside)."""
    return float(np.interp(gain, gains, curve))


def ridge(x: np.ndarray, y: np.ndarray, lam: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Ridge regression on standardised features: (mean, scale, weights, bias)."""
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale = np.where(scale > 1e-9, scale, 1.0)
    z = (x - mean) / scale
    a = np.c_[z, np.ones(len(z))]
    reg = lam * np.diag([1.0] * z.shape[1] + [0.0])  # the bias is not shrunk
    w = np.linalg.solve(a.T @ a + reg, a.T @ y)
    return mean, scale, w[:-1], float(w[-1])


def predict(x: np.ndarray, fit: tuple[np.ndarray, np.ndarray, np.ndarray, float], lowest: float,
            highest: float) -> np.ndarray:
    mean, scale, w, bias = fit
    return np.clip(bias + ((x - mean) / scale) @ w, lowest, highest)


def leave_one_group_out(x: np.ndarray, y: np.ndarray, groups: np.ndarray, lam: float, lowest: float,
                        highest: float) -> np.ndarray:
    """Each group's predictions from a fit on the other groups."""
    out = np.zeros(len(y))
    for g in np.unique(groups):
        held = groups == g
        out[held] = predict(x[held], ridge(x[~held], y[~held], lam), lowest, highest)
    return out


def measure(devset: Path, model_path: Path, gains: tuple[float, ...], threads: int, latency: str = "full",
            log=lambda s: None) -> dict:
    """LSD above per cut item of `devset` at each band offset, and each item's reel
    features, the engine framed as `latency` says (`StreamConfig.latency`)."""
    manifest = load_manifest(devset)
    items = [it for it in load_real_items(devset, manifest, ("hiss_cut", "hiss_after")) if it["cutoff_hz"] is not None]
    model = OnnxModel(model_path, threads=threads)
    plain = replace(model.spec, band_level=None)
    rows = [{"id": it["id"], "source": it["source"], "variant": it["variant"], "cutoff_hz": it["cutoff_hz"],
             "lsd_above": []} for it in items]
    for gain in gains:
        t0 = time.perf_counter()
        model.spec = replace(plain, band_level=constant_level(gain)) if gain else plain
        for it, row in zip(items, rows):
            config = StreamConfig(cutoff_hz=it["cutoff_hz"], latency=latency)
            restored, decisions = restore_array(it["damaged"], model, config, BLOCK)
            row["lsd_above"].append(score_real(it, restored, int(manifest["sample_rate"]), False)["lsd_above"])
            row["features"] = None if decisions[0].reel is None else list(decisions[0].reel)
        log(f"offset {gain:+.1f} dB: {len(items)} items in {time.perf_counter() - t0:.0f} s")
    sha = hashlib.sha256((devset / "manifest.json").read_bytes()).hexdigest()
    return {"devset": str(devset), "manifest_sha256": sha, "model": str(model_path), "latency": latency,
            "gains": [float(g) for g in gains], "items": rows}


def fit(measured: dict, lowest: float = -9.0, highest: float = 9.0) -> tuple[BandLevel, dict]:
    """The band level fitted on every item with the ridge weight that scored best left out,
    and the figures (per variant: LSD above at 0 dB, left out, per-item best)."""
    gains = np.array(measured["gains"])
    rows = [r for r in measured["items"] if r["features"] is not None]
    if len(rows) < 10 or 0.0 not in gains:
        raise ValueError(f"expected >= 10 items with reel features and 0 among the gains, got {len(rows)}, {list(gains)}")
    x = np.array([r["features"] for r in rows])
    curves = np.array([r["lsd_above"] for r in rows])
    y = np.array([best_offset(gains, c) for c in curves])
    groups = np.array([r["source"] for r in rows])
    variants = np.array([r["variant"] for r in rows])
    zero = int(np.flatnonzero(gains == 0.0)[0])

    def score(pred: np.ndarray) -> float:
        return float(np.mean([curve_at(gains, c, p) for c, p in zip(curves, pred)]))

    held_out = {lam: leave_one_group_out(x, y, groups, lam, lowest, highest) for lam in LAMBDAS}
    lam = min(LAMBDAS, key=lambda k: score(held_out[k]))
    figures = {"items": len(rows), "recordings": len(set(groups)), "ridge": lam,
               "held_out_by_ridge": {str(k): round(score(v), 4) for k, v in held_out.items()}, "per_variant": {}}
    for v in sorted(set(variants)):
        m = variants == v
        figures["per_variant"][v] = {
            "items": int(m.sum()),
            "lsd_above_0db": round(float(curves[m, zero].mean()), 4),
            "lsd_above_held_out": round(float(np.mean([curve_at(gains, c, p) for c, p in zip(curves[m], held_out[lam][m])])), 4),
            "lsd_above_best_per_item": round(float(np.mean([curve_at(gains, c, b) for c, b in zip(curves[m], y[m])])), 4),
            "mean_offset_held_out_db": round(float(held_out[lam][m].mean()), 2),
        }
    mean, scale, w, bias = ridge(x, y, lam)
    fitted_on = (f"{len(rows)} items of {len(set(groups))} recordings of a development set (manifest sha256 "
                 f"{measured.get('manifest_sha256', '?')[:12]}; hiss cut and after, true cutoff, "
                 f"{measured.get('latency', 'full')} framing), offsets "
                 f"{', '.join(f'{g:g}' for g in gains)} dB, ridge {lam:g}")
    level = BandLevel(FEATURES, tuple(mean), tuple(scale), tuple(w), bias, lowest, highest, fitted_on)
    return level, figures


def write_model(src: Path, dest: Path, level: BandLevel, model_version: str | None = None) -> None:
    """A copy of the ONNX model `src` at `dest` whose metadata carries `level` (replaced
    if it had one) and, if given, a new `model_version`; written beside `dest` and renamed
    into place."""
    import onnx

    proto = onnx.load(str(src))
    meta = {p.key: p.value for p in proto.metadata_props}
    meta.update(level.to_metadata())
    if model_version is not None:
        meta["model_version"] = model_version
    del proto.metadata_props[:]
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=value)
    with AtomicPath(dest) as tmp:  # renamed into place with the usual mode (a mkstemp file's is 0600)
        onnx.save(proto, str(tmp))
        OnnxModel(tmp)  # the engine loads it, band level included


@stops_in_one_line("band_level")
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m reelrestore.training.band_level", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devset", type=Path, help="a development set (never the real set's evaluation part)")
    ap.add_argument("--model", type=Path, required=True, help="the .onnx model to fit")
    ap.add_argument("--out", type=Path, required=True, help="where the fitted copy goes")
    ap.add_argument("-y", "--overwrite", action="store_true", help="replace --out if it exists")
    ap.add_argument("--gains", default=",".join(f"{g:g}" for g in DEFAULT_GAINS), help="offsets tried, dB")
    ap.add_argument("--model-version", help="the fitted copy's model_version (default: the model's own)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--latency", choices=("full", "low"), default="full",
                    help="the framing the model plays in (restore-stream --latency; low for models/low-latency.onnx)")
    ap.add_argument("--measured", type=Path, help="the --json of an earlier run: fit from its measurement (no engine passes)")
    ap.add_argument("--json", type=Path, help="write the measurement and the figures here")
    args = ap.parse_args(argv)

    def fail(message: str) -> None:
        print(f"band_level: error: {message}", file=sys.stderr)
        sys.exit(2)

    try:
        OnnxModel(args.model)
    except ModelError as exc:
        fail(f"--model: {exc}")
    if args.out.exists() and not args.overwrite:
        fail(f"{args.out} exists; pass -y to replace it")
    try:
        gains = tuple(sorted(float(g) for g in args.gains.split(",")))
    except ValueError:
        fail(f"--gains: expected comma-separated dB values, got {args.gains!r}")
    if len(gains) < 3 or 0.0 not in gains:
        fail(f"--gains: expected three or more offsets including 0, got {args.gains!r}")
    if args.measured is None and args.devset is None:
        fail("give --devset (or --measured, the --json of an earlier run)")
    if args.measured is None and not (args.devset / "manifest.json").is_file():
        fail(f"{args.devset}: no manifest.json; build it with python -m reelrestore.training.realset "
             "--out DIR --development REALSET")
    if args.measured is not None:
        try:
            measured = json.loads(args.measured.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            fail(f"--measured {args.measured}: cannot read it ({exc})")
        measured = measured.get("measured", measured)  # a --json of an earlier run holds it under "measured"
    else:
        measured = measure(args.devset, args.model, gains, args.threads, args.latency,
                           log=lambda s: print(s, file=sys.stderr, flush=True))
    try:
        level, figures = fit(measured)
    except (ValueError, KeyError, TypeError) as exc:
        fail(f"cannot fit: {exc}")
    write_model(args.model, args.out, level, args.model_version)
    if args.json is not None:
        args.json.write_text(json.dumps({"measured": measured, "figures": figures, "band_level": json.loads(
            level.to_metadata()[METADATA_KEY])}, indent=1))
    for v, f in figures["per_variant"].items():
        print(f"{v}: {f['items']} items, LSD above {f['lsd_above_0db']:.3f} as the model plays, "
              f"{f['lsd_above_held_out']:.3f} with the fitted level (each recording left out of its fit; "
              f"mean offset {f['mean_offset_held_out_db']:+.1f} dB), {f['lsd_above_best_per_item']:.3f} at each "
              f"item's best", file=sys.stderr)
    print(f"ridge {figures['ridge']:g} (left-out LSD per ridge: {figures['held_out_by_ridge']}); "
          f"band level written into {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
