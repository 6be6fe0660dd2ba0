"""Whole reels: does the engine restore minutes of a reel as well as it restores 8 s of it?

    python -m reelrestore.training.reelcheck --data data/real-train --model models/default.onnx

The real set scores 8 s items. A reel runs for minutes, and what the engine learns over it
is kept for the reel: the cutoff (learned over the whole file, or live over its first
seconds and then locked) and the lift's sums (`engine.band.merge`, one gain per bin from
the reel's frames so far). This check takes long recordings (real music of the training
part; a development check, never the real set's evaluation part), levels each and adds the
print's hiss, cuts it as the real set cuts its items, with the hiss cut with the signal or
added after the cut, and restores it three ways:

* ``alone``: every 8 s window on its own, as the real set's items are restored;
* ``file``: the whole reel as `restore-stream reel.wav -o out.wav` restores it (a first
  pass over the file, then the stream);
* ``live``: the whole reel as it plays, the cutoff learned while it plays (no first pass).

Each is scored per 8 s window (LSD above the true cutoff, below the source's own band, against
the reel with its hiss), beside the untouched input's. A reel restored whole should be no
worse than its windows alone, early or late in the reel. It prints, per reel and cut, the
mean over windows and the mean over each minute of ``file - alone``.

With ``--locks`` it only reads the cut (`--cutoff auto`, the noise fill restoring), on more
cuts and an uncut copy of each reel: the whole file's reading, and every cutoff the live run
locked, with the share of the reel during which the one in use was right (within 0.95-1.25x
of the true -3 dB point; "no cut" on the uncut copy).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ..engine.pipeline import ArraySink, ArraySource, run
from ..engine.safety import stops_in_one_line
from ..engine.stream import StreamConfig, StreamRestorer
from .degrade import SR, hiss, minus3db_hz
from .evaluate import RATIO_OK
from .metrics import lsd_bands
from .realset import damage, loudest_window, measured_bandwidth_hz

WINDOW_S = 8.0
# (shape, Butterworth order, design Hz): every reel is cut by each.
CUTS = (("butterworth", 8, 3000.0), ("slit", 0, 2000.0), ("butterworth", 4, 1000.0), ("butterworth", 4, 6000.0))
HISS_DB = -55.0
PEAK_DB = -6.0
WAYS = ("alone", "file", "live")
VARIANT = {"cut": "hiss_cut", "after": "hiss_after"}  # --hiss -> `realset.VARIANTS`
# `--locks`: these cuts and an uncut copy of every reel.
LOCK_CUTS = CUTS + (("butterworth", 2, 4000.0), ("slit", 0, 6000.0))


def long_recordings(folder: Path, minutes: float, reels: int) -> list[Path]:
    """``reels`` WAVs of at least ``minutes`` under ``folder`` (recursively), spread evenly
    over the sorted list of those long enough."""
    import soundfile as sf

    long_enough = [p for p in sorted(folder.rglob("*.wav")) if sf.info(p).duration >= 60 * minutes]
    if not long_enough:
        raise FileNotFoundError(f"no WAV of {minutes:g} min or more under {folder}: build it with "
                                "python -m reelrestore.training.realtrain")
    picks = np.linspace(0, len(long_enough) - 1, min(reels, len(long_enough))).round().astype(int)
    return [long_enough[i] for i in sorted(set(picks))]


def read_reel(path: Path, minutes: float) -> np.ndarray:
    """``minutes`` of ``path`` (mono, 48 kHz) from the loudest start after its first tenth,
    peak at `PEAK_DB`: (n,) float64."""
    import soundfile as sf

    x, sr = sf.read(path, always_2d=True)
    if sr != SR:
        raise ValueError(f"{path}: expected {SR} Hz, got {sr} Hz")
    x = x.mean(axis=1)
    n = int(60 * minutes * SR)
    start = loudest_window(x, n, 0.1)
    x = x[start:start + n]
    return x * 10 ** (PEAK_DB / 20) / max(float(np.max(np.abs(x))), 1e-9)


def restore(model, audio: np.ndarray, cutoff_hz: float | None, first_pass: bool) -> tuple[np.ndarray, list[dict]]:
    """``audio`` (n,) restored by the engine's one streaming path: ((n,) float64, every
    cutoff it locked: ``{"at_seconds", "hz"}``, hz None for "no cut")."""
    config = StreamConfig(cutoff_hz=cutoff_hz)
    restorer = StreamRestorer(model, 1, config)
    sink = ArraySink(1)
    run(ArraySource(audio[None].astype(np.float32), restorer.sample_rate, 96000), restorer, sink,
        first_pass=first_pass)
    locks = [{"at_seconds": e["at_seconds"], "hz": e["hz"]} for e in restorer.cutoff_timeline]
    return np.asarray(sink.audio[0], dtype=np.float64), locks


def reel_case(model, clean: np.ndarray, shape: str, order: int, design_hz: float, hiss_where: str,
              auto: bool, seed: int = 0, window_s: float = WINDOW_S) -> dict:
    """Scores of one reel cut one way: per `window_s` window, LSD above the cut of the input and of
    each of `WAYS`, and the cutoff the whole file and the live run read (auto)."""
    noise = hiss(clean.shape, HISS_DB, np.random.default_rng(seed))
    target = clean + noise
    cut = damage(VARIANT[hiss_where], clean, noise, design_hz, shape, order)
    cutoff = minus3db_hz(shape, order or None, design_hz)
    given = None if auto else cutoff
    w = int(window_s * SR)
    starts = range(0, clean.size - w + 1, w)
    (file, file_locks), (live, live_locks) = restore(model, cut, given, True), restore(model, cut, given, False)
    alone = [restore(model, cut[s:s + w], given, True) for s in starts]
    outputs = {"file": file, "live": live, "alone": np.concatenate([y for y, _ in alone])}
    top = measured_bandwidth_hz(clean, SR)
    rows = []
    for i, s in enumerate(starts):
        def above(y: np.ndarray, k: int = i) -> float:
            part = slice(k * w, (k + 1) * w) if y is outputs["alone"] else slice(s, s + w)
            return lsd_bands(target[s:s + w], y[part], SR, cutoff, bands=("above",), max_hz=top)["above"]

        rows.append({"start_s": s / SR, "alone_hz": alone[i][1][-1]["hz"] if alone[i][1] else None,
                     "input": above(cut), **{way: above(outputs[way]) for way in WAYS}})
    return {"shape": f"{shape}{order or ''}", "design_hz": design_hz, "cutoff_hz": round(cutoff, 2),
            "hiss": hiss_where, "windows": rows, "file_locks": file_locks, "live_locks": live_locks,
            **{k: float(np.mean([r[k] for r in rows])) for k in ("input", *WAYS)}}


def share_right(locks: list[dict], seconds: float, cutoff_hz: float | None) -> float:
    """Share of `seconds` during which the cutoff in use was right: within 0.95-1.25x of
    `cutoff_hz`, or "no cut" where there is none (before the first lock: not right)."""
    right = 0.0
    for i, event in enumerate(locks):
        end = locks[i + 1]["at_seconds"] if i + 1 < len(locks) else seconds
        hz = event["hz"]
        ok = hz is None if cutoff_hz is None else hz is not None and RATIO_OK[0] <= hz / cutoff_hz <= RATIO_OK[1]
        right += (end - event["at_seconds"]) * ok
    return right / seconds


def lock_case(clean: np.ndarray, shape: str | None, order: int, design_hz: float, hiss_where: str,
              seed: int = 0) -> dict:
    """How `--cutoff auto` reads one reel cut one way (or uncut, `shape` None): the cutoffs
    the live run locked, with the share of the reel each was right, and the whole file's
    reading. The noise fill restores it (what is read does not depend on the model)."""
    from .baseline import BaselineModel

    noise = hiss(clean.shape, HISS_DB, np.random.default_rng(seed))
    cut = damage("uncut" if shape is None else VARIANT[hiss_where], clean, noise, design_hz, shape, order)
    cutoff = None if shape is None else minus3db_hz(shape, order or None, design_hz)
    model, seconds = BaselineModel(), clean.size / SR
    _, file_locks = restore(model, cut, None, True)
    _, live_locks = restore(model, cut, None, False)
    return {"shape": "uncut" if shape is None else f"{shape}{order or ''}", "design_hz": design_hz,
            "cutoff_hz": cutoff, "hiss": hiss_where, "file_locks": file_locks, "live_locks": live_locks,
            "file_right": share_right(file_locks, seconds, cutoff),
            "live_right": share_right(live_locks, seconds, cutoff)}


def per_minute(case: dict, a: str = "file", b: str = "alone") -> list[float]:
    """Mean of ``a - b`` over the windows that start in each minute of the reel."""
    minutes = sorted({int(r["start_s"] // 60) for r in case["windows"]})
    return [float(np.mean([r[a] - r[b] for r in case["windows"] if int(r["start_s"] // 60) == m])) for m in minutes]


def _khz(hz: float | None) -> str:
    return "none" if hz is None else f"{hz / 1000:.2f}"


@stops_in_one_line("reelcheck")
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m reelrestore.training.reelcheck", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("data/real-train"),
                    help="folder of long 48 kHz WAVs (default data/real-train: the real set's training part)")
    ap.add_argument("--model", default="models/default.onnx", help="a .onnx model, or 'baseline' (the noise fill)")
    ap.add_argument("--minutes", type=float, default=3.0, help="length of each reel (default 3)")
    ap.add_argument("--reels", type=int, default=4, help="how many recordings (default 4)")
    ap.add_argument("--cutoff", choices=("true", "auto"), default="true",
                    help="restore at the true -3 dB cutoff (default) or let the engine find it")
    ap.add_argument("--hiss", choices=("cut", "after"), action="append",
                    help="the hiss cut with the signal and/or added after the cut (default both)")
    ap.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads")
    ap.add_argument("--locks", action="store_true",
                    help="only how --cutoff auto reads each reel, live and from the whole file (no model; "
                         "more cuts and an uncut copy)")
    ap.add_argument("--json", type=Path, help="write every window's scores here")
    a = ap.parse_args(argv)
    if a.model != "baseline" and not (a.model.lower().endswith(".onnx") and Path(a.model).is_file()):
        ap.exit(2, f"reelcheck: error: --model {a.model}: expected 'baseline' or an existing .onnx file\n")
    if not a.data.is_dir():
        ap.exit(2, f"reelcheck: error: --data {a.data}: no such folder; build it with "
                   "python -m reelrestore.training.realtrain\n")
    if not (a.minutes * 60 >= 2 * WINDOW_S and a.reels >= 1):
        ap.exit(2, f"reelcheck: error: expected --minutes of at least {2 * WINDOW_S / 60:g} and --reels >= 1\n")
    from ..engine.model import ModelError, OnnxModel
    from .baseline import BaselineModel

    try:
        paths = long_recordings(a.data, a.minutes, a.reels)
        model = BaselineModel() if a.model == "baseline" else OnnxModel(Path(a.model), threads=a.threads)
    except (FileNotFoundError, ModelError, OSError) as err:
        raise SystemExit(f"reelcheck: error: {err}") from None
    if a.locks:
        return _locks_main(paths, a)
    cases = []
    print(f"{'reel':34s} {'cut':18s} {'hiss':5s} {'input':>6s} {'alone':>6s} {'file':>6s} {'live':>6s}"
          "  file - alone per minute")
    for r, path in enumerate(paths):
        clean = read_reel(path, a.minutes)
        for shape, order, design in CUTS:
            for where in a.hiss or ("cut", "after"):
                case = reel_case(model, clean, shape, order, design, where, a.cutoff == "auto", seed=r)
                case["reel"] = path.name
                cases.append(case)
                trend = " ".join(f"{d:+.3f}" for d in per_minute(case))
                if a.cutoff == "auto":
                    trend += (f"  read {_khz(case['file_locks'][-1]['hz'])} kHz, live "
                              + ", ".join(f"{_khz(e['hz'])} at {e['at_seconds']:.0f} s" for e in case["live_locks"]))
                print(f"{path.stem[:34]:34s} {case['shape'] + ' ' + format(design, 'g'):18s} {where:5s} "
                      + " ".join(f"{case[k]:6.3f}" for k in ("input", *WAYS)) + f"  {trend}", flush=True)
    means = {k: float(np.mean([c[k] for c in cases])) for k in ("input", *WAYS)}
    print(f"{'mean of ' + str(len(cases)) + ' reels x cuts':59s} "
          + " ".join(f"{means[k]:6.3f}" for k in ("input", *WAYS)))
    if a.json:
        a.json.write_text(json.dumps({"model": a.model, "cutoff": a.cutoff, "minutes": a.minutes,
                                      "means": means, "cases": cases}, indent=1) + "\n")


def _locks_main(paths: list[Path], a: argparse.Namespace) -> None:
    print(f"{'reel':34s} {'cut':18s} {'hiss':5s} {'true':>6s} {'file':>6s} right  live: locks right  (kHz at s)")
    cases = []
    for r, path in enumerate(paths):
        clean = read_reel(path, a.minutes)
        plan = [(c, w) for c in LOCK_CUTS for w in a.hiss or ("cut", "after")] + [((None, 0, 0.0), "none")]
        for (shape, order, design), where in plan:
            case = lock_case(clean, shape, order, design, where, seed=r)
            case["reel"] = path.name
            cases.append(case)
            label = case["shape"] + ("" if shape is None else " " + format(design, "g"))
            lives = ", ".join(f"{_khz(e['hz'])} at {e['at_seconds']:.0f}" for e in case["live_locks"])
            print(f"{path.stem[:34]:34s} {label:18s} {where:5s} {_khz(case['cutoff_hz']):>6s} "
                  f"{_khz(case['file_locks'][-1]['hz']):>6s} {case['file_right']:5.2f}  "
                  f"{len(case['live_locks']):5d} {case['live_right']:5.2f}  ({lives})", flush=True)
    for where in sorted({c["hiss"] for c in cases}):
        group = [c for c in cases if c["hiss"] == where]
        locks = np.mean([len(c["live_locks"]) for c in group])
        print(f"hiss {where:5s} {len(group):3d} reels x cuts: the whole file's reading right "
              f"{np.mean([c['file_right'] for c in group]):.3f}; live {locks:.2f} locks per reel, "
              f"right {np.mean([c['live_right'] for c in group]):.3f} of the time, "
              f"{sum(len(c['live_locks']) > 2 for c in group)} reels locked more than twice")
    if a.json:
        a.json.write_text(json.dumps({"minutes": a.minutes, "cases": cases}, indent=1) + "\n")


if __name__ == "__main__":
    main()
