"""Score restoration systems on the held-out set, through the engine, at the true cutoff.

    python -m reelrestore.training.heldout --out heldout/
    python -m reelrestore.training.evaluate --heldout heldout/ --model damaged --model baseline \\
        --model models/thesis.onnx --json heldout-scores.json --markdown heldout-scores.md

Systems (``--model``, repeatable):

* ``damaged``  -- the damaged input itself, the floor every restoration must clear;
* ``baseline`` -- :mod:`reelrestore.training.baseline` (shaped noise), in numpy through the
  engine's :class:`StreamRestorer`;
* ``PATH.onnx`` -- any model honouring the contract, loaded by the engine's ``OnnxModel``;
* ``oracle-envelope`` (real set, true cutoff only) -- a bound, not a system: noise under
  the *target's* own band energies, frame by frame (:mod:`reelrestore.training.oracle`),
  what any noise-excited band scores with a perfect envelope.

Every item's damaged file is restored by ``restore_array`` (as a file) with ``cutoff_hz`` fixed to the
item's true cutoff, so every model is judged at the same cutoff (the automatic estimate
is the engine's business, not the model's). Metrics (:mod:`training.metrics`) compare
with the item's target, clean + hiss: LSD whole / above / below the cutoff, SNR, STOI,
MSE, RMSE; they are averaged per cutoff, per kind of material and over all items. For
engine-run systems the real-time factor (engine wall time / audio time, feed + flush,
after a warm-up) is reported too; on a shared CPU it is indicative only.

Real recordings (``--realset``, built by :mod:`reelrestore.training.realset`)::

    python -m reelrestore.training.realset --out realset/
    python -m reelrestore.training.evaluate --realset realset/ --model damaged --model baseline \\
        --model models/default.onnx --cutoff true --cutoff auto --json r.json --markdown r.md

Every system restores every item through the engine's ``restore_array``, once per cutoff
mode: ``true`` fixes the cutoff at the item's -3 dB point, ``auto`` lets the engine find
it (and records its decision: the estimate, or "no cut found"; in both modes, for a cut
the engine ran, ``hiss_lost``: whether it read the print's hiss as gone with the cut, which
decides how the band above is lifted); uncut items have no true
cutoff, so the engine decides for them in both modes. Scores stop at the item's
``score_max_hz`` (the source's own bandwidth): LSD whole / above / below the true cutoff
for cut items, whole-band LSD for uncut ones (~0 for a system that leaves them alone),
and "worse than input", the share of items whose LSD above the cutoff exceeds the damaged
input's by more than 0.01. Aggregated per variant, variant x design cutoff, shape and kind,
plus the cutoff accuracy of ``auto``. STOI only with ``--stoi`` (slow).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import zlib
from pathlib import Path
from typing import Any, Callable

import click
import numpy as np
import soundfile as sf

from reelrestore.engine.model import OnnxModel
from reelrestore.engine.restore import restore_array
from reelrestore.engine.safety import guarded
from reelrestore.engine.stream import StreamConfig

from .baseline import BaselineModel
from .degrade import hiss
from .heldout import load_manifest
from .metrics import all_metrics, lsd_bands, stoi
from .oracle import NAME as ORACLE
from .oracle import oracle_envelope_fill
from .realset import VARIANTS as REAL_VARIANTS
from .realset import load_manifest as load_realset_manifest

BUILTIN = ("damaged", "baseline", ORACLE)
METRICS = ("lsd", "lsd_above", "lsd_below", "snr_db", "stoi", "mse", "rmse")
TABLE = (("lsd", "LSD"), ("lsd_above", "LSD above"), ("lsd_below", "LSD below"), ("snr_db", "SNR (dB)"),
         ("stoi", "STOI"))
BLOCK = 96000  # samples per feed, as restore_file reads


def load_items(folder: Path, manifest: dict[str, Any], limit: int | None = None) -> list[dict[str, Any]]:
    """Manifest items with ``target`` and ``damaged`` audio ``[channels, n]`` float32."""
    out = []
    for item in manifest["items"][:limit]:
        audio = {}
        for role in ("target", "damaged"):
            x, sr = sf.read(str(folder / item[role]), dtype="float32", always_2d=True)
            if sr != manifest["sample_rate"]:
                raise ValueError(f"expected {item[role]} at {manifest['sample_rate']} Hz, got {sr} Hz")
            audio[role] = np.ascontiguousarray(x.T)
        out.append({**item, **audio})
    return out


def open_system(name: str, threads: int = 0):
    """``damaged`` -> None, ``baseline`` -> :class:`BaselineModel`, a path -> ``OnnxModel``."""
    if name == "damaged":
        return None
    if name == "baseline":
        return BaselineModel()
    if name == ORACLE:
        raise click.BadParameter(f"{ORACLE} is a bound on the real set (--realset), not a system to run",
                                 param_hint="--model")
    path = Path(name)
    if path.suffix.lower() != ".onnx":
        raise click.BadParameter(f"expected 'damaged', 'baseline' or a .onnx file, got {name!r}",
                                 param_hint="--model")
    return OnnxModel(path, threads=threads)


def open_warm_system(name: str, threads: int, sample_rate: int, overlap: float, latency: str = "full"):
    """`open_system`, checked against the set's rate and run once on a second of noise in
    the framing it will run in (JIT, session and caches, so nothing of it is timed);
    ``(model or None, report info)``."""
    model = open_system(name, threads)
    info: dict[str, Any] = {"system": name}
    if model is not None:
        if model.spec.sample_rate != sample_rate:
            raise click.ClickException(f"{name}: expected a {sample_rate} Hz model like the set, "
                                       f"got {model.spec.sample_rate} Hz")
        info.update(architecture=model.spec.architecture, model_version=model.spec.model_version,
                    sha256=model.sha256, provider=model.provider)
        warm = np.random.default_rng(0).standard_normal((1, sample_rate)).astype(np.float32) * 0.01
        run_engine(model, warm, 2000.0, overlap, latency)
    return model, info


def run_engine(model, audio: np.ndarray, cutoff_hz: float, overlap: float,
               latency: str = "full") -> tuple[np.ndarray, float]:
    """Restore ``audio [channels, n]`` at a fixed cutoff exactly as a file is restored
    (`restore_array`: first pass, then the streaming engine); ``(restored [channels, n],
    wall seconds)``."""
    start = time.perf_counter()
    config = StreamConfig(overlap=overlap, cutoff_hz=cutoff_hz, latency=latency)
    restored, _ = restore_array(np.ascontiguousarray(audio), model, config, BLOCK)
    return restored, time.perf_counter() - start


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else math.nan


def aggregate(rows: list[dict[str, Any]], key: str | None) -> dict[str, dict[str, float]]:
    """Mean of every metric over ``rows``, grouped by ``rows[key]`` (None = all)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault("all" if key is None else f"{r[key]:g}" if isinstance(r[key], float) else str(r[key]),
                          []).append(r)
    return {g: {"items": len(rs), **{m: _mean([r[m] for r in rs]) for m in METRICS}} for g, rs in groups.items()}


def evaluate(heldout: str | Path, systems: list[str], threads: int = 0, overlap: float = 0.5,
             limit: int | None = None, save_dir: Path | None = None,
             log: Callable[[str], None] = lambda s: None) -> dict[str, Any]:
    """Score ``systems`` on the held-out set in ``heldout``; returns the report (see
    :func:`write_json` for its layout)."""
    folder = Path(heldout)
    manifest = load_manifest(folder)
    sr = int(manifest["sample_rate"])
    items = load_items(folder, manifest, limit)
    audio_seconds = sum(it["target"].shape[1] for it in items) / sr
    names = _labels(systems)
    report: dict[str, Any] = {
        "heldout": str(folder), "manifest_sha256": hashlib.sha256((folder / "manifest.json").read_bytes()).hexdigest(),
        "heldout_version": manifest["version"], "n_items": len(items), "audio_seconds": audio_seconds,
        "sample_rate": sr, "overlap": overlap, "reference": "target = clean + hiss", "systems": {},
    }
    for label, name in names.items():
        model, info = open_warm_system(name, threads, sr, overlap)
        start = time.perf_counter()
        rows, engine_wall = [], 0.0
        for it in items:
            if model is None:
                restored = it["damaged"]
            else:
                restored, wall = run_engine(model, it["damaged"], it["cutoff_hz"], overlap)
                engine_wall += wall
            if save_dir is not None:
                (save_dir / label).mkdir(parents=True, exist_ok=True)
                sf.write(save_dir / label / f"{it['id']}.wav", restored.T, sr, subtype="FLOAT")
            scores = all_metrics(it["target"], restored, sr, it["cutoff_hz"])
            rows.append({"id": it["id"], "kind": it["kind"], "cutoff_hz": it["cutoff_hz"], "shape": it["shape"],
                         **{m: float(scores[m]) for m in METRICS}})
        info.update(
            real_time_factor=engine_wall / audio_seconds if model is not None else None,
            engine_seconds=engine_wall if model is not None else None,
            wall_seconds=time.perf_counter() - start,
            overall=aggregate(rows, None)["all"],
            per_cutoff=aggregate(rows, "cutoff_hz"),
            per_kind=aggregate(rows, "kind"),
            per_shape=aggregate(rows, "shape"),
            items=rows,
        )
        report["systems"][label] = info
        log(f"{label}: {len(rows)} items in {info['wall_seconds']:.1f} s"
            + (f", engine real-time factor {info['real_time_factor']:.3f}" if model is not None else ""))
    return report


def _json_safe(x):
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)  # JSON has no inf/nan
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_json_safe(v) for v in x]
    return x


def write_json(report: dict[str, Any], path: Path) -> None:
    """``{heldout, manifest_sha256, n_items, audio_seconds, ..., systems: {label: {system,
    real_time_factor, overall: {metric: mean}, per_cutoff: {"1000": {...}}, per_kind,
    per_shape, items: [...]}}}``; for a real-recordings report ``{realset, ..., systems:
    {label: {system, modes: {"true"|"auto": {wall_seconds, real_time_factor, per_variant,
    per_variant_cutoff: {"hiss_cut/1000": {...}}, per_shape, per_kind, cutoff_accuracy,
    items: [...]}}}}}``; inf/nan as strings."""
    path.write_text(json.dumps(_json_safe(report), indent=1) + "\n")


def _fmt(v: float | None, digits: int = 3) -> str:
    if v is None:
        return "–"
    return f"{v:.{digits}f}" if math.isfinite(v) else str(v)


def markdown(report: dict[str, Any]) -> str:
    """Tables: systems x metrics overall, then per cutoff and per kind of material."""
    systems = report["systems"]
    head = "| system | " + " | ".join(label for _, label in TABLE)
    sep = "|---|" + "---:|" * len(TABLE)
    lines = [
        "# Held-out evaluation", "",
        f"{report['n_items']} items, {report['audio_seconds']:.1f} s of audio (held-out set `{report['heldout']}`, "
        f"version {report['heldout_version']}, manifest sha256 `{report['manifest_sha256'][:12]}`). "
        "Reference: the target, clean + hiss. Every system restores at the item's true cutoff.",
        "LSD in log10-power units, lower is better (below the cutoff it must stay ~0); SNR and STOI higher is "
        "better; RTF = engine wall time / audio time (lower is faster).", "",
        "## Overall", "", head + " | RTF |", sep + "---:|",
    ]
    for label, s in systems.items():
        lines.append(f"| {label} | " + " | ".join(_fmt(s["overall"][m]) for m, _ in TABLE)
                     + f" | {_fmt(s['real_time_factor'])} |")
    for title, key, unit in (("Per cutoff", "per_cutoff", " Hz"), ("Per kind of material", "per_kind", ""),
                             ("Per low-pass shape", "per_shape", "")):
        groups = sorted({g for s in systems.values() for g in s[key]},
                        key=lambda g: (float(g), g) if g.replace(".", "", 1).isdigit() else (math.inf, g))
        lines += ["", f"## {title}", "", f"| group | items |{head[1:]} |", "|---|---:|---|" + "---:|" * len(TABLE)]
        for g in groups:
            for label, s in systems.items():
                row = s[key].get(g)
                if row is not None:
                    lines.append(f"| {g}{unit} | {row['items']} | {label} | "
                                 + " | ".join(_fmt(row[m]) for m, _ in TABLE) + " |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ real recordings

CUTOFF_MODES = ("true", "auto")
RATIO_OK = (0.95, 1.25)  # an auto estimate this close to the true cutoff is a hit
RATIO_LOW = 0.9  # below this it cuts into the kept band's top (a miss, "None", is not low)
WORSE_MARGIN = 0.01  # LSD above the cut this much over the input's is "worse than input"
REAL_METRICS = ("lsd", "lsd_below", "lsd_above", "stoi")


def decision_hz(decision: Any) -> tuple[float | None, str]:
    """``(hz or None = "no cut found", reason)`` of the engine's decision for one channel
    (a `CutoffDecision`; None while it is still learning)."""
    if decision is None or decision.hz is None:
        return None, (decision.reason if decision is not None else "") or "no cut found"
    return float(decision.hz), decision.reason


def _labels(systems: list[str]) -> dict[str, str]:
    """Unique labels -> system names: damaged, baseline, model file names."""
    names: dict[str, str] = {}
    for name in systems:
        label = name if name in BUILTIN else Path(name).name
        while label in names:
            label += "'"
        names[label] = name
    return names


def load_real_items(folder: Path, manifest: dict[str, Any], variants: tuple[str, ...] | None = None,
                    limit: int | None = None) -> list[dict[str, Any]]:
    """Manifest items of ``variants`` (None = all), ``limit`` of them spread evenly over the
    set, with ``target`` and ``damaged`` audio ``[1, n]`` float32."""
    chosen = [it for it in manifest["items"] if variants is None or it["variant"] in variants]
    if limit is not None and limit < len(chosen):  # spread over sources, variants and cutoffs
        chosen = [chosen[i] for i in sorted(set(np.linspace(0, len(chosen) - 1, limit).round().astype(int)))]
    return load_items(folder, {**manifest, "items": chosen})


def add_later_hiss(items: list[dict[str, Any]], under_db: tuple[float, float]) -> None:
    """To every ``hiss_cut`` item, in place, a second white hiss added after the cut, to its
    input and its reference alike (a later print's grain over a recording whose own hiss the
    cut took): ``under_db`` (lo, hi) dB under the item's own hiss, drawn per item from a seed
    of its id, so that every run and every system sees the same."""
    lo, hi = under_db
    for it in items:
        if it["variant"] != "hiss_cut":
            continue
        rng = np.random.default_rng(zlib.crc32(it["id"].encode()))
        level_db = it["hiss_db"] - rng.uniform(lo, hi)
        later = hiss(it["target"].shape, level_db, rng).astype(np.float32)
        it["target"], it["damaged"] = it["target"] + later, it["damaged"] + later
        it["later_hiss_db"] = round(float(level_db), 2)


def score_real(item: dict[str, Any], restored: np.ndarray, sr: int, with_stoi: bool) -> dict[str, float | None]:
    """LSD (and STOI) of ``restored`` against the item's target, below its ``score_max_hz``:
    whole, below and above the true cutoff for cut items, whole only for uncut ones."""
    cutoff = item["cutoff_hz"]
    bands = ("whole", "below", "above") if cutoff is not None else ("whole",)
    scores = lsd_bands(item["target"], restored, sr, cutoff, bands=bands, max_hz=item["score_max_hz"])
    return {"lsd": scores["whole"], "lsd_below": scores.get("below"), "lsd_above": scores.get("above"),
            "stoi": stoi(item["target"], restored, sr) if with_stoi else None}


def _mean_of(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None and math.isfinite(r[key])]
    return float(np.mean(values)) if values else None


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """``{items, lsd, lsd_below, lsd_above, stoi, worse_than_input}``: means over ``rows``
    (None where no row has the metric); worse_than_input is a fraction."""
    worse = [r["worse_than_input"] for r in rows if r.get("worse_than_input") is not None]
    return {"items": len(rows), **{m: _mean_of(rows, m) for m in REAL_METRICS},
            "worse_than_input": float(np.mean(worse)) if worse else None}


def group_by(rows: list[dict[str, Any]], key: Callable[[dict[str, Any]], str | None]) -> dict[str, dict[str, Any]]:
    """:func:`summarise` per value of ``key(row)`` (rows where it is None are left out)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        k = key(r)
        if k is not None:
            groups.setdefault(k, []).append(r)
    return {k: summarise(rs) for k, rs in groups.items()}


def _accuracy(rs: list[dict[str, Any]]) -> dict[str, Any]:
    """Of the ``auto`` rows ``rs`` (cut items): how many, the share with estimate / true cutoff
    in :data:`RATIO_OK`, below :data:`RATIO_LOW` and missed, and the median ratio found."""
    ratios = [r["ratio"] for r in rs]
    found = [q for q in ratios if q is not None]
    return {
        "items": len(rs),
        "in_range": float(np.mean([q is not None and RATIO_OK[0] <= q <= RATIO_OK[1] for q in ratios])) if rs else None,
        "below": float(np.mean([q is not None and q < RATIO_LOW for q in ratios])) if rs else None,
        "missed": float(np.mean([q is None for q in ratios])) if rs else None,
        "median_ratio": float(np.median(found)) if found else None,
    }


def shape_label(row: dict[str, Any]) -> str:
    """"butterworth4", "slit": the low-pass shape of a cut item."""
    return f"{row['shape']}{row['order'] or ''}"


def cutoff_accuracy(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per variant, of the ``auto`` decisions: for cut items, steep and gentle separately,
    and per low-pass shape (``per_shape``), the share with estimate / true cutoff in
    :data:`RATIO_OK`, below :data:`RATIO_LOW`, and missed ("no cut found"), and the median
    ratio of those found; for uncut items the share left alone."""
    out: dict[str, dict[str, Any]] = {}
    for variant in sorted({r["variant"] for r in rows}):
        vrows = [r for r in rows if r["variant"] == variant]
        if variant == "uncut":
            out[variant] = {"items": len(vrows), "left_alone": float(np.mean([r["est_hz"] is None for r in vrows]))}
            continue
        entry: dict[str, Any] = {name: _accuracy([r for r in vrows if r["steep"] is steep])
                                 for name, steep in (("steep", True), ("gentle", False))}
        entry["per_shape"] = {shape: _accuracy([r for r in vrows if shape_label(r) == shape])
                              for shape in sorted({shape_label(r) for r in vrows})}
        out[variant] = entry
    return out


def evaluate_realset(folder: str | Path, systems: list[str], modes: tuple[str, ...] = ("true",),
                     variants: tuple[str, ...] | None = None, limit: int | None = None, with_stoi: bool = False,
                     threads: int = 0, overlap: float = 0.5, latency: str = "full",
                     log: Callable[[str], None] = lambda s: None,
                     later_hiss: tuple[float, float] | None = None) -> dict[str, Any]:
    """Score ``systems`` x cutoff ``modes`` on the real-recordings set in ``folder``, the
    engine framed as `latency` says (`StreamConfig.latency`: "full" or "low"), with a
    second hiss after the cut on the ``hiss_cut`` items where ``later_hiss`` says
    (:func:`add_later_hiss`);
    returns the report (see :func:`write_json`; ``systems[label]["modes"][mode]`` holds the
    aggregates and the per-item rows)."""
    folder = Path(folder)
    manifest = load_realset_manifest(folder)
    sr = int(manifest["sample_rate"])
    for mode in modes:
        if mode not in CUTOFF_MODES:
            raise ValueError(f"expected cutoff mode in {CUTOFF_MODES}, got {mode!r}")
    items = load_real_items(folder, manifest, variants, limit)
    if later_hiss is not None:
        add_later_hiss(items, later_hiss)
    audio_seconds = sum(it["target"].shape[1] for it in items) / sr
    # The input's own scores: the reference of "worse than input".
    inputs = {it["id"]: score_real(it, it["damaged"], sr, False) for it in items}
    report: dict[str, Any] = {
        "realset": str(folder), "manifest_sha256": hashlib.sha256((folder / "manifest.json").read_bytes()).hexdigest(),
        "realset_version": manifest["version"], "n_items": len(items), "audio_seconds": audio_seconds,
        "sample_rate": sr, "overlap": overlap, "latency": latency, "modes": list(modes),
        "variants": sorted({it["variant"] for it in items}),
        "reference": "target = clean + hiss; scored below each item's score_max_hz", "systems": {},
    }
    if later_hiss is not None:
        report["later_hiss_db_under"] = list(later_hiss)
        report["reference"] += "; hiss_cut items: + a second hiss after the cut, in the input too"
    for label, name in _labels(systems).items():
        oracle = name == ORACLE
        model, info = (None, {"system": name}) if oracle else open_warm_system(name, threads, sr, overlap, latency)
        info["modes"] = {}
        for mode in modes:
            if oracle and mode != "true":
                log(f"{label}: reads the target, so it runs at the true cutoff only (not {mode})")
                continue
            start, engine_wall, rows = time.perf_counter(), 0.0, []
            for it in items:
                est: float | None = None
                reason = None
                hiss_lost: bool | None = None
                if oracle:
                    restored = (it["damaged"] if it["cutoff_hz"] is None
                                else oracle_envelope_fill(it["damaged"], it["target"], it["cutoff_hz"], sr))
                elif model is None:
                    restored = it["damaged"]
                else:
                    cfg = StreamConfig(overlap=overlap, cutoff_hz=it["cutoff_hz"] if mode == "true" else None,
                                       latency=latency)
                    t0 = time.perf_counter()
                    restored, decisions = restore_array(it["damaged"], model, cfg, block_size=BLOCK)
                    engine_wall += time.perf_counter() - t0
                    est, reason = decision_hz(decisions[0])
                    if decisions[0] is not None and decisions[0].hz is not None:
                        hiss_lost = decisions[0].hiss_db is not None
                scores = score_real(it, restored, sr, with_stoi)
                ref = inputs[it["id"]]
                band = "lsd_above" if it["cutoff_hz"] is not None else "lsd"
                row = {k: it[k] for k in ("id", "source", "kind", "variant", "design_hz", "cutoff_hz", "shape",
                                          "order", "steep", "hiss_db", "score_max_hz")}
                row.update(scores, worse_than_input=bool(scores[band] > ref[band] + WORSE_MARGIN), hiss_lost=hiss_lost)
                if model is not None and cfg.cutoff_hz is None:  # auto, or an uncut item: the engine decided
                    row.update(est_hz=est, reason=reason,
                               ratio=None if est is None or it["cutoff_hz"] is None else est / it["cutoff_hz"])
                rows.append(row)
            wall = time.perf_counter() - start
            entry: dict[str, Any] = {
                "wall_seconds": wall,
                "real_time_factor": engine_wall / audio_seconds if model is not None and audio_seconds else None,
                "per_variant": group_by(rows, lambda r: r["variant"]),
                "per_variant_cutoff": group_by(
                    rows, lambda r: None if r["design_hz"] is None else f"{r['variant']}/{r['design_hz']:g}"),
                "per_shape": group_by(rows, lambda r: None if r["shape"] is None
                                      else f"{r['shape']}{r['order'] or ''}"),
                "per_variant_shape": group_by(rows, lambda r: None if r["shape"] is None
                                              else f"{r['variant']}/{r['shape']}{r['order'] or ''}"),
                "per_kind": group_by(rows, lambda r: f"{r['variant']}/{r['kind']}"),
                "cutoff_accuracy": cutoff_accuracy(rows) if model is not None and mode == "auto" else None,
                "items": rows,
            }
            info["modes"][mode] = entry
            log(f"{label} / cutoff {mode}: {len(rows)} items in {wall:.1f} s"
                + (f", engine real-time factor {entry['real_time_factor']:.3f}" if model is not None else ""))
        report["systems"][label] = info
    return report


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.0f} %"


def markdown_realset(report: dict[str, Any]) -> str:
    """Tables: overall per system x mode x variant, per design cutoff, cutoff accuracy,
    per shape, per variant and shape, and per kind; with a STOI column where it was
    computed (`--stoi`)."""
    systems = report["systems"]
    runs = [(label, mode, s["modes"][mode]) for label, s in systems.items() for mode in s["modes"]]
    stoi = any(g.get("stoi") is not None for _, _, e in runs for g in e["per_variant"].values())
    stoi_head, stoi_rule = (" STOI |", "---:|") if stoi else ("", "")

    def stoi_cell(g: dict[str, Any]) -> str:
        return f" {_fmt(g.get('stoi'), 4)} |" if stoi else ""

    lines = [
        "# Real-recordings evaluation", "",
        f"{report['n_items']} items, {report['audio_seconds'] / 60:.1f} min of audio (set `{report['realset']}`, "
        f"version {report['realset_version']}, manifest sha256 `{report['manifest_sha256'][:12]}`). "
        "Reference: the target, clean + hiss; every score stops at the item's own bandwidth (score_max_hz). "
        f"Engine framing: --latency {report.get('latency', 'full')}.",
        "LSD in log10-power units, lower is better; below the cutoff it must stay at the input's (~0). "
        f"'Worse than input': share of items whose LSD above the cutoff (whole band for uncut items) exceeds "
        f"the damaged input's by more than {WORSE_MARGIN}. Cutoff `true` = the item's -3 dB point, "
        "`auto` = the engine's estimate.", "",
        "## Overall", "",
        "| system | cutoff | variant | items | LSD below | LSD above | LSD whole | worse than input |"
        + stoi_head + " RTF |",
        "|---|---|---|---:|---:|---:|---:|---:|" + stoi_rule + "---:|",
    ]
    for label, mode, e in runs:
        for variant, g in e["per_variant"].items():
            lines.append(f"| {label} | {mode} | {variant} | {g['items']} | {_fmt(g['lsd_below'])} | "
                         f"{_fmt(g['lsd_above'])} | {_fmt(g['lsd'])} | {_pct(g['worse_than_input'])} |"
                         + stoi_cell(g) + f" {_fmt(e['real_time_factor'])} |")
    lines += ["", "## Per design cutoff", "",
              "| design | variant | system | cutoff | items | LSD below | LSD above | worse than input |",
              "|---:|---|---|---|---:|---:|---:|---:|"]
    keys = sorted({k for _, _, e in runs for k in e["per_variant_cutoff"]},
                  key=lambda k: (float(k.split("/")[1]), k))
    for k in keys:
        variant, design = k.split("/")
        for label, mode, e in runs:
            g = e["per_variant_cutoff"].get(k)
            if g is not None:
                lines.append(f"| {design} Hz | {variant} | {label} | {mode} | {g['items']} | {_fmt(g['lsd_below'])} | "
                             f"{_fmt(g['lsd_above'])} | {_pct(g['worse_than_input'])} |")
    lines += ["", "## Cutoff accuracy (auto)", "",
              f"Ratio = estimate / true -3 dB cutoff; hit = ratio in [{RATIO_OK[0]}, {RATIO_OK[1]}], low = below "
              f"{RATIO_LOW}, missed = no cut found. Steep: Butterworth order >= 4 and the slit; gentle: order 2.", "",
              "| system | variant | steep items | steep hit | steep low | steep missed | steep median ratio "
              "| gentle items | gentle hit | gentle low | gentle missed | gentle median ratio | uncut left alone |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for label, mode, e in runs:
        acc = e["cutoff_accuracy"]
        if not acc:
            continue
        alone = acc.get("uncut", {}).get("left_alone")
        for variant, a in acc.items():
            if variant == "uncut":
                continue
            st, ge = a["steep"], a["gentle"]
            lines.append(f"| {label} | {variant} | {st['items']} | {_pct(st['in_range'])} | {_pct(st['below'])} | "
                         f"{_pct(st['missed'])} | {_fmt(st['median_ratio'], 2)} | {ge['items']} | "
                         f"{_pct(ge['in_range'])} | {_pct(ge['below'])} | {_pct(ge['missed'])} | "
                         f"{_fmt(ge['median_ratio'], 2)} | {_pct(alone)} |")
        if set(acc) == {"uncut"}:
            lines.append(f"| {label} | uncut |" + " – |" * 10 + f" {_pct(alone)} |")
    shape_rows = [(label, variant, shape, a) for label, mode, e in runs if e["cutoff_accuracy"]
                  for variant, v in e["cutoff_accuracy"].items() if variant != "uncut"
                  for shape, a in v["per_shape"].items()]
    if shape_rows:
        lines += ["", "Per low-pass shape (from its -3 dB point to twice that, made at 1 kHz, the slit falls 10 dB "
                  "more, a zero-phase Butterworth-2 15 dB, -4 38 dB, -8 86 dB):", "",
                  "| system | variant | shape | items | hit | low | missed | median ratio |",
                  "|---|---|---|---:|---:|---:|---:|---:|"]
        lines += [f"| {label} | {variant} | {shape} | {a['items']} | {_pct(a['in_range'])} | {_pct(a['below'])} | "
                  f"{_pct(a['missed'])} | {_fmt(a['median_ratio'], 2)} |" for label, variant, shape, a in shape_rows]
    for title, key in (("Per low-pass shape", "per_shape"), ("Per variant and low-pass shape", "per_variant_shape"),
                       ("Per variant and kind of material", "per_kind")):
        lines += ["", f"## {title}", "", "| group | system | cutoff | items | LSD below | LSD above | LSD whole "
                  "| worse than input |" + stoi_head, "|---|---|---|---:|---:|---:|---:|---:|" + stoi_rule]
        for g in sorted({k for _, _, e in runs for k in e.get(key, {})}):  # (a report from before a grouping)
            for label, mode, e in runs:
                row = e.get(key, {}).get(g)
                if row is not None:
                    lines.append(f"| {g} | {label} | {mode} | {row['items']} | {_fmt(row['lsd_below'])} | "
                                 f"{_fmt(row['lsd_above'])} | {_fmt(row['lsd'])} | "
                                 f"{_pct(row['worse_than_input'])} |" + stoi_cell(row))
    return "\n".join(lines) + "\n"


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@guarded("evaluate")
@click.option("--heldout", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder built by python -m reelrestore.training.heldout.")
@click.option("--realset", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder built by python -m reelrestore.training.realset (instead of --heldout).")
@click.option("--model", "models", multiple=True, required=True,
              help="'damaged', 'baseline' or a .onnx model; repeat for several.")
@click.option("--cutoff", "cutoffs", multiple=True, type=click.Choice(CUTOFF_MODES), default=("true",),
              show_default=True, help="--realset: restore at the true cutoff and/or let the engine find it; "
                                      "repeat for both.")
@click.option("--variant", "variants", multiple=True, type=click.Choice(REAL_VARIANTS),
              help="--realset: only these variants (repeatable; default all).")
@click.option("--stoi", "with_stoi", is_flag=True, help="--realset: also compute STOI (slow).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the full report (per item too) here.")
@click.option("--markdown", "md_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the tables here.")
@click.option("--threads", type=click.IntRange(0), default=0, show_default=True,
              help="ONNX Runtime intra-op threads (0 = its default).")
@click.option("--overlap", type=click.FloatRange(0, 1, max_open=True), default=StreamConfig.overlap,
              show_default=True, help="Engine frame overlap.")
@click.option("--latency", type=click.Choice(["full", "low"]), default="full", show_default=True,
              help="--realset: the engine's framing (restore-stream --latency).")
@click.option("--later-hiss", type=(float, float), default=None, metavar="LO HI",
              help="--realset: add to every hiss_cut item a second white hiss after the cut, LO-HI dB under "
                   "its own, to the input and the reference alike (a later print's grain).")
@click.option("--limit", type=click.IntRange(1), default=None,
              help="Only N items (quick checks): the first N of --heldout, N spread over --realset.")
@click.option("--save-restored", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="--heldout: also write every restored item here, one folder per system.")
def main(heldout: Path | None, realset: Path | None, models: tuple[str, ...], cutoffs: tuple[str, ...],
         variants: tuple[str, ...], with_stoi: bool, json_path: Path | None, md_path: Path | None, threads: int,
         overlap: float, latency: str, later_hiss: tuple[float, float] | None, limit: int | None,
         save_restored: Path | None) -> None:
    """Score systems on the held-out set (LSD whole/above/below, SNR, STOI, real-time factor)
    or on the real-recordings set (LSD per variant and cutoff, cutoff accuracy)."""
    if (heldout is None) == (realset is None):
        raise click.UsageError("expected exactly one of --heldout and --realset")
    if heldout is not None and (variants or with_stoi or set(cutoffs) != {"true"} or latency != "full"):
        raise click.UsageError("--cutoff auto, --variant, --stoi and --latency apply to --realset only")
    if realset is not None and save_restored is not None:
        raise click.UsageError("--save-restored applies to --heldout only")
    if later_hiss is not None and (realset is None or not 0.0 <= later_hiss[0] <= later_hiss[1]):
        raise click.UsageError("--later-hiss LO HI applies to --realset, with 0 <= LO <= HI (dB under each item's hiss)")
    for out in (json_path, md_path):
        if out is not None and not out.parent.is_dir():
            raise click.ClickException(f"expected an existing folder for {out}, got {out.parent}")
    log = lambda s: click.echo(s, err=True)  # noqa: E731
    try:
        if heldout is not None:
            report = evaluate(heldout, list(models), threads, overlap, limit, save_restored, log=log)
            text = markdown(report)
        else:
            modes = tuple(dict.fromkeys(cutoffs))
            report = evaluate_realset(realset, list(models), modes, tuple(variants) or None, limit, with_stoi,
                                      threads, overlap, latency, log=log, later_hiss=later_hiss)
            text = markdown_realset(report)
    except (FileNotFoundError, ValueError) as err:  # ModelError is a ValueError
        raise click.ClickException(str(err)) from None
    if json_path is not None:
        write_json(report, json_path)
    if md_path is not None:
        md_path.write_text(text)
    click.echo(text)

if __name__ == "__main__":
    main()
