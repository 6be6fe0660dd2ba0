"""Build the held-out evaluation set: material and damage the training never sees.

    python -m reelrestore.training.heldout --out heldout/          # 40 items, 160 s of audio, ~5 s to build

Sources (mono, 48 kHz, peak-normalised to a seeded level):

* music  -- random pieces on the GM programs of :data:`corpus.EVAL_PROGRAMS` (disjoint from
  the training programs), rendered by fluidsynth;
* speech -- espeak-ng on the voices of :data:`corpus.EVAL_VOICES` (disjoint from the
  training voices), one item per voice in turn;
* real   -- REAL recordings found under ``/usr/share/sounds`` (Debian's alsa-utils ships
  studio speech, ``/usr/share/sounds/alsa/Front_Center.wav`` ...), concatenated into clips.
  Test signals (``Noise.wav``) are left out; the manifest lists what was used, with sha256.

Every source is damaged at every cutoff of :attr:`HeldoutConfig.cutoffs_hz`, the low-pass
shape alternating brick-wall / Butterworth so each cutoff and each kind gets both. The
damage is :func:`degrade.degrade` with hiss only (no clicks, hum or wow): the set measures
band restoration, and ``target == clean + hiss`` exactly, the hiss KEPT as the archive
wants it. Damage seeds are ``damage_seed + item index``, plain integers, never the
``[seed, split, epoch, i]`` lists the training dataset draws from.

Layout of ``--out``::

    manifest.json                 config, sources, items (id, source, kind, cutoff, shape, ...)
    sources/<source>.wav          clean source, no hiss (24-bit)
    items/<id>.target.wav         clean + hiss: what a restoration should give back
    items/<id>.damaged.wav        low-passed target: the model's input

The same config gives byte-identical files (fluidsynth and espeak-ng render
deterministically); ``manifest.json`` is written last, so its presence means the set is
complete.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from scipy import signal

from ..engine.safety import stops_in_one_line
from .corpus import (DEFAULT_SOUNDFONT, EVAL_PROGRAMS, EVAL_VOICES, random_song, random_text, render_midi,
                     speak)
from .degrade import SR, DegradeConfig, degrade

HELDOUT_VERSION = 1  # bump when the generation changes: results on different versions do not compare
REAL_SEARCH_ROOT = Path("/usr/share/sounds")
REAL_SUFFIXES = (".wav", ".flac", ".ogg", ".oga")
# Files under REAL_SEARCH_ROOT that are test signals, not recordings.
NOT_RECORDINGS = ("noise",)
KINDS = ("music", "speech", "real")
GAP_SECONDS = 0.15  # silence between concatenated real recordings
FADE_SECONDS = 0.01  # raised-cosine fade where a source is cut
# 24-bit PCM: far below the quietest hiss (-70 dBFS), and unlike float WAV it carries no
# PEAK chunk, whose timestamp would make every build differ.
SUBTYPE = "PCM_24"


@dataclass(frozen=True)
class HeldoutConfig:
    """What to build. The defaults give 10 sources x 4 cutoffs = 40 items, ~3 min of audio."""

    # Drives the music and speech content and the source levels; not a training seed.
    seed: int = 4242
    # Item i is damaged with np.random.default_rng(damage_seed + i).
    damage_seed: int = 7_000_000
    n_music: int = 3
    n_speech: int = 4  # voices are taken in turn, so 4 covers every EVAL_VOICES entry
    n_real: int = 3  # clips of concatenated real recordings (fewer if fewer files exist)
    seconds: float = 4.0  # music and speech items are cut to this length
    real_seconds: float = 5.0  # a real clip holds whole recordings up to this length
    programs: tuple[int, ...] = EVAL_PROGRAMS
    voices: tuple[str, ...] = EVAL_VOICES
    # Brick-wall is the thesis's idealised cut; Butterworth the analog reader. Zero-phase,
    # so the kept band stays aligned with the target as the engine's band merge assumes.
    cutoffs_hz: tuple[float, ...] = (1000.0, 2000.0, 3000.0, 6000.0)
    shapes: tuple[str, ...] = ("brickwall", "butterworth")
    butterworth_orders: tuple[int, ...] = (4, 8)
    hiss_db: tuple[float, float] = (-70.0, -45.0)  # uniform, dBFS RMS; kept in the target
    peak_db: tuple[float, float] = (-12.0, -3.0)  # uniform source peak level, dBFS
    # Real recordings: None = search REAL_SEARCH_ROOT; else these files, in this order.
    real_files: tuple[str, ...] | None = None
    soundfont: str = str(DEFAULT_SOUNDFONT)

    def __post_init__(self) -> None:
        for name in ("n_music", "n_speech", "n_real"):
            if getattr(self, name) < 0:
                raise ValueError(f"expected {name} >= 0, got {getattr(self, name)}")
        if self.seconds <= 0 or self.real_seconds <= 0:
            raise ValueError(f"expected positive lengths, got seconds={self.seconds}, "
                             f"real_seconds={self.real_seconds}")
        if not self.cutoffs_hz or not all(0 < c < SR / 2 for c in self.cutoffs_hz):
            raise ValueError(f"expected cutoffs in (0, {SR // 2}) Hz, got {self.cutoffs_hz}")
        if not self.shapes:
            raise ValueError("expected at least one low-pass shape, got none")
        if self.n_speech and not self.voices:
            raise ValueError("expected at least one espeak-ng voice, got none")


# --------------------------------------------------------------------------- sources


def _fit(x: np.ndarray, n: int) -> np.ndarray:
    """Cut ``x [m]`` to at most ``n`` samples with a short fade at the cut."""
    if x.size <= n:
        return x
    x = x[:n].copy()
    fade = min(n // 2, int(FADE_SECONDS * SR))
    x[n - fade:] *= 0.5 + 0.5 * np.cos(np.pi * np.arange(fade) / fade)
    return x


def _level(x: np.ndarray, rng: np.random.Generator, peak_db: tuple[float, float]) -> np.ndarray:
    return x * (10 ** (rng.uniform(*peak_db) / 20) / (np.max(np.abs(x)) + 1e-12))


def find_real_recordings(root: Path = REAL_SEARCH_ROOT) -> tuple[list[Path], list[Path]]:
    """``(recordings, excluded)``: sorted readable audio files under ``root`` of at least
    0.5 s, and the test signals left out by name (:data:`NOT_RECORDINGS`)."""
    if not root.is_dir():
        return [], []
    found, excluded = [], []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in REAL_SUFFIXES):
        if any(word in path.stem.lower() for word in NOT_RECORDINGS):
            excluded.append(path)
            continue
        try:
            info = sf.info(str(path))
        except RuntimeError:  # soundfile.LibsndfileError: not audio after all
            continue
        if info.frames >= 0.5 * info.samplerate:
            found.append(path)
    return found, excluded


def read_mono_48k(path: Path) -> np.ndarray:
    """Whole file as mono float64 ``[n]`` at 48 kHz (channels averaged, polyphase resampling)."""
    x, sr = sf.read(str(path), dtype="float64", always_2d=True)
    x = x.mean(axis=1)
    if sr != SR:
        g = math.gcd(SR, sr)
        x = signal.resample_poly(x, SR // g, sr // g)
    return x


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def real_clips(files: list[Path], n_clips: int, seconds: float) -> list[tuple[np.ndarray, list[Path]]]:
    """Up to ``n_clips`` clips ``([n], files used)``: whole recordings in order, joined by
    :data:`GAP_SECONDS` of silence while the clip stays within ``seconds`` (a single
    longer recording is cut)."""
    clips: list[tuple[np.ndarray, list[Path]]] = []
    limit, gap = int(seconds * SR), np.zeros(int(GAP_SECONDS * SR))
    parts: list[np.ndarray] = []
    used: list[Path] = []
    for path in files:
        x = read_mono_48k(path)
        # length of the clip with x appended after one more gap
        if parts and sum(p.size for p in parts) + gap.size * len(parts) + x.size > limit:
            clips.append((np.concatenate([q for p in parts for q in (gap, p)][1:]), used))
            parts, used = [], []
            if len(clips) == n_clips:
                return clips
        parts.append(_fit(x, limit))
        used.append(path)
    if parts and len(clips) < n_clips:
        clips.append((np.concatenate([q for p in parts for q in (gap, p)][1:]), used))
    return clips


def make_sources(cfg: HeldoutConfig, workdir: Path) -> list[tuple[str, str, np.ndarray, dict[str, Any]]]:
    """``[(source id, kind, clean [n] float64, provenance)]`` in a fixed order:
    music, speech, real."""
    rngs = iter(np.random.default_rng(cfg.seed).spawn(cfg.n_music + cfg.n_speech + cfg.n_real))
    n = int(round(cfg.seconds * SR))
    sources = []
    for i in range(cfg.n_music):
        rng = next(rngs)
        midi_bytes, meta = random_song(rng, cfg.programs, cfg.seconds + 1.0)
        midi, wav = workdir / f"music-{i}.mid", workdir / f"music-{i}.wav"
        midi.write_bytes(midi_bytes)
        for gain in (1.0, 0.4):  # fluidsynth's 16-bit output clips: render again, quieter
            _, err = render_midi(midi, wav, cfg.soundfont, gain).communicate(timeout=120)
            x, _ = sf.read(str(wav), dtype="float64", always_2d=True)
            if np.max(np.abs(x)) < 0.999:
                break
        if x.shape[0] == 0:
            raise RuntimeError(f"fluidsynth rendered nothing for music-{i}: {err.decode(errors='replace').strip()}")
        x = _fit(x.mean(axis=1), n)
        sources.append((f"music-{i}", "music", _level(x, rng, cfg.peak_db),
                        {**meta, "soundfont": Path(cfg.soundfont).name}))
    for i in range(cfg.n_speech):
        rng = next(rngs)
        voice = cfg.voices[i % len(cfg.voices)]
        rate, pitch = int(rng.integers(120, 200)), int(rng.integers(25, 75))
        text = random_text(rng, 2)
        x = _fit(speak(text, voice, rate, pitch, workdir), n)
        sources.append((f"speech-{i}", "speech", _level(x, rng, cfg.peak_db),
                        {"voice": voice, "rate_wpm": rate, "pitch": pitch, "text": text}))
    if cfg.n_real:
        files = [Path(f) for f in cfg.real_files] if cfg.real_files is not None else find_real_recordings()[0]
        if not files:
            raise FileNotFoundError(
                f"expected real recordings under {REAL_SEARCH_ROOT} (Debian: apt-get install alsa-utils "
                f"ships /usr/share/sounds/alsa/*.wav), found none; pass real_files or n_real=0")
        for i, (x, used) in enumerate(real_clips(files, cfg.n_real, cfg.real_seconds)):
            rng = next(rngs)
            sources.append((f"real-{i}", "real", _level(x, rng, cfg.peak_db),
                            {"files": [str(p) for p in used], "sha256": [_sha256(p) for p in used]}))
    return sources


# ----------------------------------------------------------------------------- build


def item_plan(n_sources: int, cfg: HeldoutConfig) -> list[tuple[int, float, str]]:
    """``[(source index, cutoff, shape)]``: every source at every cutoff, the shape
    alternating over (source + cutoff index) so both shapes meet every cutoff and kind."""
    return [(s, float(c), cfg.shapes[(s + j) % len(cfg.shapes)])
            for s in range(n_sources) for j, c in enumerate(cfg.cutoffs_hz)]


def build_heldout(out: str | Path, cfg: HeldoutConfig | None = None) -> dict[str, Any]:
    """Write the held-out set into ``out`` (see the module docstring); return the manifest.
    An old manifest is removed first, so an interrupted build never looks complete."""
    cfg = cfg if cfg is not None else HeldoutConfig()
    out = Path(out)
    (out / "sources").mkdir(parents=True, exist_ok=True)
    (out / "items").mkdir(exist_ok=True)
    (out / "manifest.json").unlink(missing_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".heldout-", dir=out))
    try:
        sources = make_sources(cfg, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    source_rows = []
    for sid, kind, x, meta in sources:
        sf.write(out / "sources" / f"{sid}.wav", x.astype(np.float32), SR, subtype=SUBTYPE)
        source_rows.append({"id": sid, "kind": kind, "file": f"sources/{sid}.wav",
                            "duration_s": round(x.size / SR, 6), **meta})

    items = []
    for index, (s, cutoff, shape) in enumerate(item_plan(len(sources), cfg)):
        sid, kind, clean, _ = sources[s]
        seed = cfg.damage_seed + index
        params, damage = np.random.default_rng(seed).spawn(2)
        order = int(params.choice(cfg.butterworth_orders))
        hiss_db = round(float(params.uniform(*cfg.hiss_db)), 2)
        dcfg = DegradeConfig(cutoff_hz=cutoff, shape=shape, order=order, hiss_db=hiss_db, zero_phase=True)
        damaged, target, _ = degrade(clean, dcfg, damage)
        item_id = f"{index:02d}-{sid}-{cutoff / 1000:g}k-{shape}"
        files = {"target": f"items/{item_id}.target.wav", "damaged": f"items/{item_id}.damaged.wav"}
        sf.write(out / files["target"], target, SR, subtype=SUBTYPE)
        sf.write(out / files["damaged"], damaged, SR, subtype=SUBTYPE)
        items.append({"id": item_id, "source": sid, "kind": kind, "cutoff_hz": cutoff, "shape": shape,
                      "order": order if shape == "butterworth" else None, "hiss_db": hiss_db, "seed": seed,
                      "duration_s": round(target.shape[-1] / SR, 6), "samples": int(target.shape[-1]),
                      **files})

    real = [f for row in source_rows if row["kind"] == "real" for f in row["files"]]
    excluded = [str(p) for p in find_real_recordings()[1]] if cfg.real_files is None and cfg.n_real else []
    manifest = {
        "format": "reelrestore-heldout", "version": HELDOUT_VERSION, "sample_rate": SR,
        "target": "clean + hiss (hiss kept, as the archive wants it)",
        "config": asdict(cfg), "real_recordings": real, "excluded_test_signals": excluded,
        "n_items": len(items), "total_seconds": round(sum(i["duration_s"] for i in items), 6),
        "sources": source_rows, "items": items,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def read_manifest(folder: str | Path, fmt: str, what: str, builder: str) -> dict[str, Any]:
    """The manifest.json of a built evaluation set in `folder`, or a one-line error that
    says how to build it (`builder`: the module that does)."""
    path = Path(folder) / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"expected {what} with {path}, found none "
                                f"(build it: python -m {builder} --out {folder})")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != fmt:
        raise ValueError(f"expected a {fmt} manifest in {path}, got format {manifest.get('format')!r}")
    return manifest


def load_manifest(folder: str | Path) -> dict[str, Any]:
    """The manifest of a built held-out set, or a one-line error."""
    return read_manifest(folder, "reelrestore-heldout", "a held-out set", "reelrestore.training.heldout")


@stops_in_one_line("heldout", "the folder it was writing has no manifest.json (incomplete): run the command again")
def main(argv: list[str] | None = None) -> None:
    import argparse
    import time

    parser = argparse.ArgumentParser(prog="python -m reelrestore.training.heldout",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="folder to write the set into")
    parser.add_argument("--seconds", type=float, default=HeldoutConfig.seconds, help="music/speech item length")
    parser.add_argument("--real-dir", type=Path, default=None,
                        help=f"take real recordings from this folder instead of {REAL_SEARCH_ROOT}")
    args = parser.parse_args(argv)
    real = None
    if args.real_dir is not None:
        real = tuple(str(p) for p in find_real_recordings(args.real_dir)[0])
    start = time.perf_counter()
    m = build_heldout(args.out, HeldoutConfig(seconds=args.seconds, real_files=real))
    kinds = {k: sum(i["kind"] == k for i in m["items"]) for k in KINDS}
    print(f"{m['n_items']} items ({', '.join(f'{v} {k}' for k, v in kinds.items())}), "
          f"{m['total_seconds']:.1f} s of audio, {len(m['real_recordings'])} real recordings, "
          f"written to {args.out} in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
