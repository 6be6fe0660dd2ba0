"""Score restoration systems on the held-out set, through the engine, at the true cutoff.

    python -m reelrestore.training.heldout --out heldout/
    python -m reelrestore.training.evaluate --heldout heldout/ --model damaged --model baseline \\
        --model models/thesis.onnx --json heldout-scores.json --markdown heldout-scores.md

Systems (``--model``, repeatable):

* ``damaged``  -- the damaged input itself, the floor every restoration must clear;
* ``baseline`` -- :mod:`reelrestore.training.baseline` (shaped noise), in numpy through the
  engine's :class:`StreamRestorer`;
* ``PATH.onnx`` -- any model honouring the contract, loaded by the engine's ``OnnxModel``.

Every item's damaged file is restored by ``StreamRestorer`` with ``cutoff_hz`` fixed to the
item's true cutoff, so every model is judged at the same cutoff (the automatic estimate
is the engine's business, not the model's). Metrics (:mod:`training.metrics`) compare
with the item's target, clean + hiss: LSD whole / above / below the cutoff, SNR, STOI,
MSE, RMSE; they are averaged per cutoff, per kind of material and over all items. For
engine-run systems the real-time factor (engine wall time / audio time, feed + flush,
after a warm-up) is reported too; on a shared CPU it is indicative only.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path
from typing import Any, Callable

import click
import numpy as np
import soundfile as sf

from reelrestore.engine.model import OnnxModel
from reelrestore.engine.stream import StreamConfig, StreamRestorer

from .baseline import BaselineModel
from .heldout import load_manifest
from .metrics import all_metrics

BUILTIN = ("damaged", "baseline")
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
    path = Path(name)
    if path.suffix.lower() != ".onnx":
        raise click.BadParameter(f"expected 'damaged', 'baseline' or a .onnx file, got {name!r}",
                                 param_hint="--model")
    return OnnxModel(path, threads=threads)


def run_engine(model, audio: np.ndarray, cutoff_hz: float, overlap: float) -> tuple[np.ndarray, float]:
    """Restore ``audio [channels, n]`` with the streaming engine at a fixed cutoff;
    ``(restored [channels, n], wall seconds)``."""
    restorer = StreamRestorer(model, audio.shape[0], StreamConfig(overlap=overlap, cutoff_hz=cutoff_hz))
    start = time.perf_counter()
    parts = [restorer.feed(audio[:, i:i + BLOCK]) for i in range(0, audio.shape[1], BLOCK)]
    parts.append(restorer.flush())
    wall = time.perf_counter() - start
    return np.concatenate(parts, axis=1), wall


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
    names = {}
    for name in systems:  # unique labels: damaged, baseline, file names
        label = name if name in BUILTIN else Path(name).name
        while label in names:
            label += "'"
        names[label] = name
    report: dict[str, Any] = {
        "heldout": str(folder), "manifest_sha256": hashlib.sha256((folder / "manifest.json").read_bytes()).hexdigest(),
        "heldout_version": manifest["version"], "n_items": len(items), "audio_seconds": audio_seconds,
        "sample_rate": sr, "overlap": overlap, "reference": "target = clean + hiss", "systems": {},
    }
    for label, name in names.items():
        model = open_system(name, threads)
        info: dict[str, Any] = {"system": name}
        if model is not None:
            if model.spec.sample_rate != sr:
                raise click.ClickException(f"{name}: expected a {sr} Hz model like the held-out set, "
                                           f"got {model.spec.sample_rate} Hz")
            info.update(architecture=model.spec.architecture, model_version=model.spec.model_version,
                        sha256=model.sha256, provider=model.provider)
            warm = np.random.default_rng(0).standard_normal((1, sr)).astype(np.float32) * 0.01
            run_engine(model, warm, 2000.0, overlap)  # JIT, session and caches: not timed
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
    per_shape, items: [...]}}}``; inf/nan as strings."""
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


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--heldout", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder built by python -m reelrestore.training.heldout.")
@click.option("--model", "models", multiple=True, required=True,
              help="'damaged', 'baseline' or a .onnx model; repeat for several.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the full report (per item too) here.")
@click.option("--markdown", "md_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the tables here.")
@click.option("--threads", type=click.IntRange(0), default=0, show_default=True,
              help="ONNX Runtime intra-op threads (0 = its default).")
@click.option("--overlap", type=click.FloatRange(0, 1, max_open=True), default=StreamConfig.overlap,
              show_default=True, help="Engine frame overlap.")
@click.option("--limit", type=click.IntRange(1), default=None, help="Only the first N items (quick checks).")
@click.option("--save-restored", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Also write every restored item here, one folder per system.")
def main(heldout: Path, models: tuple[str, ...], json_path: Path | None, md_path: Path | None, threads: int,
         overlap: float, limit: int | None, save_restored: Path | None) -> None:
    """Score systems on the held-out set: LSD whole/above/below, SNR, STOI, real-time factor."""
    for out in (json_path, md_path):
        if out is not None and not out.parent.is_dir():
            raise click.ClickException(f"expected an existing folder for {out}, got {out.parent}")
    try:
        report = evaluate(heldout, list(models), threads, overlap, limit, save_restored,
                          log=lambda s: click.echo(s, err=True))
    except (FileNotFoundError, ValueError) as err:  # ModelError is a ValueError
        raise click.ClickException(str(err)) from None
    text = markdown(report)
    if json_path is not None:
        write_json(report, json_path)
    if md_path is not None:
        md_path.write_text(text)
    click.echo(text)


if __name__ == "__main__":
    main()
