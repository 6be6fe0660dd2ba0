"""Built-in clean corpus, generated once and cached: sampled instruments (fluidsynth
playing random multi-instrument MIDI through the GM soundfont), synthetic speech
(espeak-ng) and procedural sound effects. Every item is its own FLAC file at 48 kHz so
datasets split by file. Deterministic given ``CorpusConfig.seed``.

Programs and voices are configurable so a held-out evaluation corpus can use instruments
and voices the model never heard::

    train = build_corpus()                                             # ~4.5 min, cached
    held_out = build_corpus(cfg=CorpusConfig(seed=1, programs=EVAL_PROGRAMS, voices=EVAL_VOICES))

Needs the ``fluidsynth``, ``espeak-ng`` executables and a GM soundfont
(Debian: fluidsynth, fluid-soundfont-gm, espeak-ng). espeak-ng speaks at 22.05 kHz, so the
speech items carry nothing above 11 kHz (the restored band stops at 8 kHz, hiss is added
on top).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import signal

from reelrestore.engine.contract import DEFAULT_CONTRACT

SR = DEFAULT_CONTRACT.sample_rate  # the corpus is made at the rate the models restore
CORPUS_VERSION = 1  # bump when generation changes, so old caches are not reused
DEFAULT_SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")

# General MIDI programs (0-based). Train and eval sets are disjoint on purpose.
TRAIN_PROGRAMS = (0, 4, 11, 19, 24, 32, 33, 40, 42, 46, 48, 56, 57, 60, 65, 68, 71, 73)
EVAL_PROGRAMS = (1, 6, 8, 13, 21, 25, 41, 43, 49, 52, 58, 61, 64, 70, 74)
# espeak-ng voice[+variant]; foreign voices reading English add phonetic variety.
TRAIN_VOICES = ("en-us", "en-gb+f3", "en-us+m3", "en-gb-x-rp+f2", "de+m2", "fr-fr+f4", "es+m4", "it+f1")
EVAL_VOICES = ("en-gb-scotland+m7", "en-us+f5", "nl+m5", "pt+f2")

_WORDS = ("reel projector light film sound track silver studio night city train station "
          "letter window river mountain doctor captain lady gentleman telephone morning "
          "evening music theatre ticket orchestra picture camera secret garden harbour "
          "storm money office street corner promise honest strange quiet little wonderful "
          "never always tomorrow yesterday again here there where when why listen "
          "remember believe follow open close wait stop look come go run stay").split()
_SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10), "dorian": (0, 2, 3, 5, 7, 9, 10)}


@dataclass(frozen=True)
class CorpusConfig:
    """What to generate. The default (~4.5 minutes) builds in well under a minute."""

    seed: int = 0
    # Music: n_music pieces of music_seconds each, 2-4 instruments from `programs`,
    # drums (GM channel 10) in a fraction of them for sharp broadband transients.
    n_music: int = 6
    music_seconds: float = 20.0
    programs: tuple[int, ...] = TRAIN_PROGRAMS
    p_drums: float = 0.3
    # Speech: n_speech utterances of `sentences` random sentences, random voice from
    # `voices`, rate (words per minute) and pitch (0-99) drawn from the ranges.
    n_speech: int = 12
    sentences: int = 3
    voices: tuple[str, ...] = TRAIN_VOICES
    rate_wpm: tuple[int, int] = (120, 200)
    pitch: tuple[int, int] = (25, 75)
    # Procedural effects (impacts, bells, wind, engines, rain, sweeps).
    n_effects: int = 6
    effect_seconds: float = 10.0
    soundfont: str = str(DEFAULT_SOUNDFONT)

    def __post_init__(self) -> None:
        bad = [p for p in self.programs if not 0 <= p <= 127]
        if bad or not self.programs:
            raise ValueError(f"expected GM programs in 0..127, got {self.programs}")
        if self.n_speech and not self.voices:
            raise ValueError("expected at least one espeak-ng voice, got none")

    def key(self) -> str:
        blob = json.dumps({"version": CORPUS_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/reelrestore/corpus`` (``~/.cache/reelrestore/corpus``)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "reelrestore" / "corpus"


# ------------------------------------------------------------------------------ MIDI


def _vlq(n: int) -> bytes:
    out = [n & 0x7F]
    while n > 0x7F:
        n >>= 7
        out.append(0x80 | (n & 0x7F))
    return bytes(reversed(out))


def midi_file_bytes(notes: list[tuple[float, float, int, int, int]], programs: dict[int, int],
                    bpm: float, ticks_per_beat: int = 480) -> bytes:
    """Standard MIDI file, format 0. ``notes``: (start_beat, length_beats, channel, pitch,
    velocity); ``programs``: channel -> GM program (channel 9 is drums, needs none)."""
    events = [(0, 0, bytes([0xFF, 0x51, 3]) + round(60e6 / bpm).to_bytes(3, "big"))]
    events += [(0, 1, bytes([0xC0 | ch, prog])) for ch, prog in programs.items()]
    for start, length, ch, pitch, vel in notes:
        on = round(start * ticks_per_beat)
        off = max(on + 1, round((start + length) * ticks_per_beat))
        events += [(on, 3, bytes([0x90 | ch, pitch, vel])), (off, 2, bytes([0x80 | ch, pitch, 0]))]
    track, now = b"", 0
    for tick, _, data in sorted(events, key=lambda e: (e[0], e[1])):  # note-offs before note-ons
        track += _vlq(tick - now) + data
        now = tick
    track += b"\x00\xff\x2f\x00"
    header = b"MThd" + (6).to_bytes(4, "big") + (0).to_bytes(2, "big") + (1).to_bytes(2, "big") \
        + ticks_per_beat.to_bytes(2, "big")
    return header + b"MTrk" + len(track).to_bytes(4, "big") + track


def random_song(rng: np.random.Generator, programs: tuple[int, ...], seconds: float,
                p_drums: float = 0.3) -> tuple[bytes, dict]:
    """Random tonal piece: bass, chords, then melody/arpeggio voices on 2-4 programs."""
    bpm = float(rng.uniform(70, 140))
    root = int(rng.integers(0, 12))
    scale = _SCALES[str(rng.choice(list(_SCALES)))]
    beats = int(seconds * bpm / 60)
    chosen = [int(p) for p in rng.choice(programs, size=min(len(programs), int(rng.integers(2, 5))), replace=False)]
    notes = []

    def pitch(degree: int, octave: int) -> int:
        return 12 * (octave + degree // 7) + root + scale[degree % 7]

    progression = [int(d) for d in rng.choice([0, 3, 4, 5, 1], size=beats // 4 + 1)]
    for ch, _ in enumerate(chosen):
        role = ("bass", "chords")[ch] if ch < 2 else str(rng.choice(["melody", "arpeggio"]))
        octave = {"bass": 3, "chords": 4, "melody": 5, "arpeggio": 5}[role]
        degree, t = 0, 0.0
        while t < beats:
            chord = progression[int(t) // 4]
            vel = int(rng.integers(50, 100))
            if role == "bass":
                notes.append((t, 1.8, ch, pitch(chord, octave), vel)); t += 2.0
            elif role == "chords":
                notes += [(t, 3.9, ch, pitch(chord + k, octave), vel - 10) for k in (0, 2, 4)]; t += 4.0
            elif role == "arpeggio":
                notes.append((t, 0.45, ch, pitch(chord + int(rng.choice([0, 2, 4, 7])), octave), vel)); t += 0.5
            else:
                length = float(rng.choice([0.25, 0.5, 1.0, 1.5, 2.0]))
                degree = int(np.clip(degree + rng.integers(-2, 3), -3, 10))
                if rng.random() > 0.15:  # leave some rests
                    notes.append((t, length * 0.95, ch, pitch(degree, octave), vel))
                t += length
    drums = bool(rng.random() < p_drums)
    if drums:
        for b in range(beats * 2):  # kick, snare, hats in eighths
            notes.append((b / 2, 0.25, 9, 42, int(rng.integers(40, 80))))
            if b % 4 == 0:
                notes.append((b / 2, 0.25, 9, 36, 100))
            if b % 4 == 2:
                notes.append((b / 2, 0.25, 9, 38, 90))
    notes = [n for n in notes if n[0] < beats]
    meta = {"programs": chosen, "bpm": round(bpm, 2), "drums": drums}
    return midi_file_bytes(notes, dict(enumerate(chosen)), bpm), meta


def render_midi(midi: Path, wav: Path, soundfont: str | Path, gain: float = 1.0) -> subprocess.Popen:
    """Start fluidsynth (no shell, no audio device) rendering ``midi`` to a 48 kHz WAV."""
    cmd = ["fluidsynth", "-ni", "-g", str(gain), "-F", str(wav), "-r", str(SR), str(soundfont), str(midi)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


# ---------------------------------------------------------------------------- speech


def speak(text: str, voice: str, rate_wpm: int, pitch: int, workdir: Path) -> np.ndarray:
    """espeak-ng utterance ``[n]`` at 48 kHz (22.05 kHz -> 48 kHz, polyphase 320/147)."""
    wav = workdir / "speech.wav"
    cmd = ["espeak-ng", "-v", voice, "-s", str(rate_wpm), "-p", str(pitch), "-w", str(wav), text]
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    x, sr = sf.read(wav, dtype="float64")
    g = math.gcd(SR, sr)
    return signal.resample_poly(x, SR // g, sr // g)


def random_text(rng: np.random.Generator, sentences: int) -> str:
    out = []
    for _ in range(sentences):
        words = list(rng.choice(_WORDS, size=int(rng.integers(4, 11))))
        out.append(" ".join(words).capitalize() + str(rng.choice([".", ".", "?", "!"])))
    return " ".join(out)


# --------------------------------------------------------------------------- effects


def _decay(n: int, tau_s: float) -> np.ndarray:
    return np.exp(-np.arange(n) / (tau_s * SR))


def effect_event(rng: np.random.Generator, kind: str, seconds: float) -> np.ndarray:
    """One procedural sound ``[n]``, peak ~1: impact, bell, wind, engine, rain or sweep."""
    n = int(seconds * SR)
    t = np.arange(n) / SR
    if kind == "impact":  # knock / footstep / shot: resonant-filtered noise burst
        lo = float(rng.uniform(80, 2000))
        sos = signal.butter(2, [lo, min(lo * rng.uniform(2, 10), 20000)], "bandpass", fs=SR, output="sos")
        y = signal.sosfilt(sos, rng.standard_normal(n) * _decay(n, rng.uniform(0.01, 0.3)))
    elif kind == "bell":  # inharmonic partials, higher ones die faster
        f0 = float(rng.uniform(200, 1500))
        y = sum(np.sin(2 * np.pi * f0 * r * t) * _decay(n, rng.uniform(0.3, 2.5) / r) / r
                for r in (1.0, 2.0, 2.76, 3.0, 4.07, 5.4))
    elif kind == "wind":  # band-passed noise under a slow swell
        band = [float(rng.uniform(100, 400)), float(rng.uniform(1500, 6000))]
        sos = signal.butter(2, band, "bandpass", fs=SR, output="sos")
        y = signal.sosfilt(sos, rng.standard_normal(n)) * (1.2 + np.sin(2 * np.pi * rng.uniform(0.1, 0.6) * t))
    elif kind == "engine":  # harmonic buzz with jittery speed and firing AM
        f0 = float(rng.uniform(25, 90)) * (1 + 0.02 * np.sin(2 * np.pi * rng.uniform(0.2, 1) * t))
        phase = 2 * np.pi * np.cumsum(f0) / SR
        y = sum(np.sin(k * phase) / k for k in range(1, 30)) * (1 + 0.5 * np.sin(phase / 2))
    elif kind == "rain":  # dense droplets: high-passed sparse impulses
        drops = np.zeros(n)
        idx = rng.integers(0, n, int(rng.uniform(200, 2000) * seconds))
        drops[idx] = rng.standard_normal(idx.size)
        y = signal.sosfilt(signal.butter(2, float(rng.uniform(1000, 5000)), "highpass", fs=SR, output="sos"), drops)
    elif kind == "sweep":  # siren / sci-fi: frequency-swept tone with harmonics
        f = float(rng.uniform(300, 1200)) * (1 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.2, 3) * t))
        phase = 2 * np.pi * np.cumsum(f) / SR
        y = sum(np.sin(k * phase) / k ** 1.5 for k in range(1, 8))
    else:
        raise ValueError(f"expected an effect kind in {EFFECT_KINDS}, got {kind!r}")
    fade = min(n // 2, int(0.01 * SR))
    y = np.asarray(y, dtype=np.float64)
    y[:fade] *= np.linspace(0, 1, fade)
    y[n - fade:] *= np.linspace(1, 0, fade)
    return y / (np.max(np.abs(y)) + 1e-12)


EFFECT_KINDS = ("impact", "bell", "wind", "engine", "rain", "sweep")


def random_effects(rng: np.random.Generator, seconds: float) -> tuple[np.ndarray, list[str]]:
    """A scene ``[n]`` of 2-5 events at random times and levels."""
    n = int(seconds * SR)
    scene = np.zeros(n)
    kinds = [str(k) for k in rng.choice(EFFECT_KINDS, size=int(rng.integers(2, 6)))]
    for kind in kinds:
        length = float(rng.uniform(0.2, seconds * 0.6))
        start = int(rng.integers(0, max(1, n - int(length * SR))))
        ev = effect_event(rng, kind, length) * 10 ** (rng.uniform(-18, 0) / 20)
        scene[start:start + ev.size] += ev[: n - start]
    return scene, kinds


# ----------------------------------------------------------------------------- build


def _normalise(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Peak at a random -12..-1 dBFS: clean material comes at many levels."""
    return x * (10 ** (rng.uniform(-12, -1) / 20) / (np.max(np.abs(x)) + 1e-12))


def build_corpus(cache_dir: str | Path | None = None, cfg: CorpusConfig | None = None) -> list[Path]:
    """Generate the corpus unless ``cache_dir/<config hash>/`` already holds it; return the
    sorted FLAC paths. Built in a temporary folder and renamed, so concurrent callers and
    interrupted builds never leave a half corpus behind."""
    cfg = cfg if cfg is not None else CorpusConfig()
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    out = root / f"corpus-{cfg.key()}"
    manifest = out / "manifest.json"
    if manifest.is_file():
        return sorted(out / item["file"] for item in json.loads(manifest.read_text())["items"])
    for exe in ("fluidsynth",) * (cfg.n_music > 0) + ("espeak-ng",) * (cfg.n_speech > 0):
        if shutil.which(exe) is None:
            raise RuntimeError(f"expected the {exe!r} executable on PATH to build the corpus, found none")
    if cfg.n_music and not Path(cfg.soundfont).is_file():
        raise FileNotFoundError(f"expected a GM soundfont at {cfg.soundfont}, found none")
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".building-", dir=root))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # the folder renamed into place has the usual mode, not mkdtemp's 0700
    try:
        items = _generate(cfg, tmp)
        (tmp / "manifest.json").write_text(json.dumps({"config": asdict(cfg), "items": items}, indent=1))
        try:
            tmp.rename(out)
        except OSError:  # another process finished first: keep theirs
            if not manifest.is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return sorted(out / item["file"] for item in items)


def _generate(cfg: CorpusConfig, folder: Path) -> list[dict]:
    """Write every item into ``folder``; one child generator per item so items are
    independent of each other's randomness."""
    kinds = ["music"] * cfg.n_music + ["speech"] * cfg.n_speech + ["effects"] * cfg.n_effects
    rngs = np.random.default_rng(cfg.seed).spawn(len(kinds))
    items, renders = [], []
    for i, (kind, rng) in enumerate(zip(kinds, rngs)):
        name = f"{kind}-{i:03d}.flac"
        if kind == "music":
            midi, meta = random_song(rng, cfg.programs, cfg.music_seconds, cfg.p_drums)
            (folder / f"{i:03d}.mid").write_bytes(midi)
            renders.append((i, name, rng))
        elif kind == "speech":
            voice = str(rng.choice(cfg.voices))
            meta = {"voice": voice, "rate_wpm": int(rng.integers(*cfg.rate_wpm)),
                    "pitch": int(rng.integers(*cfg.pitch))}
            x = speak(random_text(rng, cfg.sentences), voice, meta["rate_wpm"], meta["pitch"], folder)
            sf.write(folder / name, _normalise(x, rng), SR, subtype="PCM_24")
        else:
            x, meta = random_effects(rng, cfg.effect_seconds)
            meta = {"events": meta}
            sf.write(folder / name, _normalise(x, rng), SR, subtype="PCM_24")
        items.append({"file": name, "kind": kind, **meta})
    # fluidsynth is single-threaded: render two pieces at a time.
    for batch in (renders[k:k + 2] for k in range(0, len(renders), 2)):
        procs = [render_midi(folder / f"{i:03d}.mid", folder / f"{i:03d}.wav", cfg.soundfont) for i, _, _ in batch]
        for proc, (i, name, rng) in zip(procs, batch):
            _, err = proc.communicate(timeout=120)
            if proc.returncode != 0:
                raise RuntimeError(f"fluidsynth failed on {name}: {err.decode(errors='replace').strip()}")
            wav = folder / f"{i:03d}.wav"
            x, _ = sf.read(wav, dtype="float64")
            if np.max(np.abs(x)) >= 0.999:  # clipped in fluidsynth's 16-bit output: again, quieter
                render_midi(folder / f"{i:03d}.mid", wav, cfg.soundfont, gain=0.4).communicate(timeout=120)
                x, _ = sf.read(wav, dtype="float64")
            x = x[: int(cfg.music_seconds * SR)]  # [n, channels]
            sf.write(folder / name, _normalise(x, rng), SR, subtype="PCM_24")
            wav.unlink()
    for f in folder.glob("*.mid"):
        f.unlink()
    (folder / "speech.wav").unlink(missing_ok=True)
    return items
