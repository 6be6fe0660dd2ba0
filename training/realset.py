"""Build the real-recordings evaluation set: excerpts of REAL music, speech and effects,
damaged three ways, and the list of the remaining recordings for training.

    python -m reelrestore.training.realset --out realset/            # ~23 excerpts, ~430 items
    python -m reelrestore.training.realset --out realset/ --extra    # + ~/.cache/reelrestore/remote
    python -m reelrestore.training.realset --out devset/ --development realset/ --extra
                                     # a development set from the TRAINING part (~414 items)
    python -m reelrestore.training.realset --out speechdev/ --development realset/ --extra --kind speech
                                     # its speech alone, every recording in 6 clips (114 items)
    python -m reelrestore.training.realset --out heldoutdev/ --held-out-speech
                                     # voices no training takes (hedgewars-data, ktuberling-data)
    python -m reelrestore.training.realset --out speecheval/ \
        --evaluation-extra ~/.cache/reelrestore/remote-evaluation
                                     # speakers for evaluation only (remote --evaluation), all of
                                     # them evaluation: an evaluation set of their own

Sources are what Debian installs (``apt-get install`` the packages of :data:`PACKAGES`):
game soundtracks (Ogg Vorbis, MP3, and the Ogg tracks inside nexuiz's ``music.pk3``),
hyperrogue's sound effects, and the studio speech of alsa-utils (``Noise.wav``, a test
signal, is left out). ``--extra DIR`` adds a folder described by ``DIR/sources.json``, a
list of ``{"file": path relative to DIR, "kind": "speech"|"effects"|"music", "license":
str, "origin": str}``. Identical files (symbolic links, copies) count once.

Split, by recording, never by excerpt: recordings are grouped by (package, kind) and
ordered by sha256 of ``"package/path"``; the evaluation part takes the first
:attr:`RealsetConfig.eval_per_group` of every group of long recordings (leaving at least
one for training), the first clip's worth of every group of short recordings (shorter
than the excerpt: speech, effects; joined with short gaps), and every recording of
:attr:`RealsetConfig.all_eval_packages` (the alsa speech, 1-2 clips). Everything else is
the training part, listed in the manifest with its sha256 so the model work can use it.

Per evaluation recording: one excerpt of :attr:`RealsetConfig.seconds` at 48 kHz mono
(channels averaged, polyphase resampling) from the loudest window after the first 10 %,
peak-normalised to a seeded level. Lossy sources carry their encoder's low-pass, so each
excerpt's own bandwidth is measured (:func:`measured_bandwidth_hz`) and stored as
``score_max_hz``: scores are computed only below it.

Items, every excerpt at every design cutoff, the low-pass shape cycling over Butterworth
order 2, 4, 8 and the optical slit (zero-phase, :func:`degrade.lowpass`)::

    target  = clean + hiss                      (the hiss is part of the recording)
    hiss_cut:   damaged = lowpass(clean + hiss)  (hiss cut together with the signal)
    hiss_after: damaged = lowpass(clean) + hiss  (a print's broadband grain, after the cut)
    uncut:      damaged = target                 (one per excerpt: nothing should change)

``cutoff_hz`` is the -3 dB point of the response actually applied (a zero-phase Butterworth
applies |H|^2, the slit its kernel), found numerically; ``design_hz`` is what the filter
was designed with. A cutoff is skipped where ``cutoff_hz >= 0.8 * score_max_hz``.

Layout of ``--out``::

    manifest.json                 config, sources, training list, items; written LAST
    sources/<source>.wav          clean excerpt, no hiss (24-bit)
    items/<id>.target.wav         clean + hiss
    items/<id>.damaged.wav        the model's input

The same config (and the same installed files) gives byte-identical output.
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import json
import math
import re
import subprocess
import zipfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from scipy import signal

from ..engine.safety import stops_in_one_line
from . import remote
from .degrade import SR, hiss, lowpass, lowpass_brickwall, minus3db_hz
from .heldout import GAP_SECONDS, SUBTYPE, _level, read_manifest

REALSET_VERSION = 1  # bump when the generation changes: results on different versions do not compare
FORMAT = "reelrestore-realset"
KINDS = ("music", "speech", "effects")
VARIANTS = ("hiss_cut", "hiss_after", "uncut")
# Debian packages with real recordings -> (kind of the files, license when the copyright
# file is free text rather than machine-readable DEP-5).
PACKAGES: dict[str, tuple[str, str]] = {
    "alsa-utils": ("speech", "GPL-2"),
    "asc-music": ("music", "GPL-2+"),
    "drascula-music": ("music", "Drascula-License"),
    "hyperrogue-music": ("music", "CC-BY-SA-3.0"),
    "nexuiz-music": ("music", "GPL-2+"),
    "planetblupi-music-ogg": ("music", "GPL-3+"),
    "singularity-music": ("music", "CC-BY-SA-3.0"),
    "wesnoth-1.16-music": ("music", "GPL-2+"),
}
# Debian packages whose recordings only ever go into training (`training_recordings`, `realtrain
# --package`), never into the real set or its development sets: 0 A.D.'s orchestral score,
# voice actors and foley (CC-BY-SA-3.0; 0ad-data 0.0.26: 2.9 h of music, 3.6 min of voices, 48 min
# of effects and ambience, Ogg at 44.1 and 48 kHz, one 3 GB archive).
# Hedgewars' voice packs (GFDL-1.3: fifteen characters' exclamations, 44.1 kHz Ogg) and
# KTuberling's spoken words (GPL-2+: single words read in twenty languages, 1,164 of them at 32
# kHz or more outside the held-out voices below) are real voices too, speakers no other source
# holds.
TRAINING_PACKAGES: dict[str, tuple[str, str]] = {
    "0ad-data": ("effects", "CC-BY-SA-3.0"),
    "hedgewars-data": ("effects", "GFDL-1.3"),
    "ktuberling-data": ("speech", "GPL-2+"),
}
# A training-only package's recordings sampled under this are left out: their band ends under
# 16 kHz, and a model taught from them that the band above is empty learns the wrong thing
# (0ad-data: 8 of its 904, at 11.025 and 22.05 kHz).
TRAINING_PACKAGE_MIN_RATE = 32000
ALL_PACKAGES = {**PACKAGES, **TRAINING_PACKAGES}  # every package's default kind and license
# A file (or archive member) whose path holds one of these folders is of that kind; any other
# is of its package's kind.
PATH_KINDS: dict[str, tuple[tuple[str, str], ...]] = {
    "hyperrogue-music": (("/sounds/", "effects"),),
    "0ad-data": (("audio/voice/", "speech"), ("audio/music/", "music")),
    "hedgewars-data": (("/Sounds/voices/", "speech"), ("/Music/", "music")),
}
# Voices of the training-only packages that no training takes (`training_package_recordings`
# leaves them out): a development set of speakers the model never heard (`--held-out-speech`).
# The speech development set (`--development ... --kind speech`) holds the very speakers the
# default model was trained on, and there its STOI with the hiss kept stands over the input's
# while on the real set's unheard voices it falls under it; over these it only matches it
# (models/default.md, "Speakers the model never heard").
HELD_OUT_VOICES: dict[str, tuple[str, ...]] = {
    "hedgewars-data": ("/voices/Pirate/", "/voices/Singer/"),
    "ktuberling-data": ("/sounds/el/", "/sounds/gl/"),
}
AUDIO_SUFFIXES = (".ogg", ".oga", ".mp3", ".wav", ".flac")
ARCHIVE_SUFFIXES = (".pk3", ".zip")
# Test signals and silence, not recordings (matched against the file name).
NOT_RECORDINGS = ("noise", "silence")
DEFAULT_EXTRA = Path("~/.cache/reelrestore/remote").expanduser()
FADE_SECONDS = 0.01  # raised-cosine fade at both ends of an excerpt
MEMBER_SEP = "!"  # "ARCHIVE!MEMBER" names a file inside a zip archive


class NoSourcesError(FileNotFoundError):
    """No real recording is installed; the message names the apt packages."""


@dataclass(frozen=True)
class RealsetConfig:
    """What to build. The defaults give ~23 excerpts x 19 items of 8 s, ~1 h of audio."""

    seconds: float = 8.0  # excerpt length
    # Design cutoffs of the low-pass, every excerpt at every one (both hiss variants).
    cutoffs_hz: tuple[float, ...] = (150.0, 300.0, 600.0, 1000.0, 2000.0, 3000.0, 4500.0, 6000.0, 8000.0)
    # (shape, Butterworth order; 0 for the slit), cycled per (excerpt, cutoff).
    shapes: tuple[tuple[str, int], ...] = (("butterworth", 2), ("butterworth", 4), ("butterworth", 8), ("slit", 0))
    hiss_db: tuple[float, float] = (-75.0, -45.0)  # uniform, dBFS RMS; part of the target
    peak_db: tuple[float, float] = (-12.0, -3.0)  # uniform excerpt peak level, dBFS
    # Excerpt e is levelled with default_rng(level_seed + e); item slot s of excerpt e is
    # damaged with default_rng(damage_seed + e * slots + s), slots = 2 * len(cutoffs) + 1.
    level_seed: int = 5150
    damage_seed: int = 8_000_000
    eval_per_group: int = 3  # long recordings per (package, kind) in the evaluation part
    all_eval_packages: tuple[str, ...] = ("alsa-utils",)  # wholly evaluation (the real speech)
    max_clips: int = 2  # clips of joined short recordings per all-eval group
    # Group recordings by their sample rate too, so that a clip never joins a 16 kHz
    # recording to a 24 kHz one: an excerpt's bandwidth is read against the floor under the
    # lower rate's Nyquist frequency, where the other one's content would stand.
    clip_by_rate: bool = False
    skip_fraction: float = 0.1  # the excerpt is taken after this fraction of a recording
    max_cutoff_fraction: float = 0.8  # skip cutoff_hz >= this x score_max_hz
    # Debian packages to take recordings from; None = every one of PACKAGES installed.
    packages: tuple[str, ...] | None = None
    extra: str | None = None  # folder with sources.json, see the module docstring
    # A lossy copy's band edge, (low, high) Hz, or None: each excerpt is first low-passed by a
    # brick wall drawn uniformly from this range (default_rng((level_seed, excerpt))), as a
    # source taken from an MP3 or Ogg at modest rates holds it, then damaged; for development
    # sets that try the cutoff on such sources (`--codec-edge`).
    codec_edge_hz: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.seconds <= 0:
            raise ValueError(f"expected seconds > 0, got {self.seconds}")
        if not self.cutoffs_hz or not all(0 < c < SR / 2 for c in self.cutoffs_hz):
            raise ValueError(f"expected cutoffs in (0, {SR // 2}) Hz, got {self.cutoffs_hz}")
        for shape, order in self.shapes:
            if shape not in ("butterworth", "slit") or (shape == "butterworth" and order < 1):
                raise ValueError(f"expected ('butterworth', order >= 1) or ('slit', 0), got {(shape, order)}")
        if self.eval_per_group < 1:
            raise ValueError(f"expected eval_per_group >= 1, got {self.eval_per_group}")
        if self.codec_edge_hz is not None and not 0 < self.codec_edge_hz[0] <= self.codec_edge_hz[1] < SR / 2:
            raise ValueError(f"expected a codec edge range 0 < low <= high < {SR // 2} Hz, got {self.codec_edge_hz}")


# A development set (``--development``) differs from the real set in its recordings (the
# real set's training part) and in these seeds.
DEVELOPMENT_SEEDS = {"level_seed": 777, "damage_seed": 9_100_000}
# An evaluation set of the recordings for evaluation only (``--evaluation-extra``, speakers
# no training part holds) differs from the real set in these seeds; its short recordings are
# joined into at most this many clips.
EVALUATION_EXTRA_SEEDS = {"level_seed": 4242, "damage_seed": 9_200_000}
EVALUATION_EXTRA_CLIPS = 8
# The development set of held-out voices (``--held-out-speech``) has these seeds, and its
# words and exclamations are joined into at most this many clips per package and rate.
HELD_OUT_SEEDS = {"level_seed": 5151, "damage_seed": 9_300_000}
HELD_OUT_CLIPS = 6
# A development set of one kind of material (``--development ... --kind speech``) takes
# every recording of that kind, joined into at most this many clips per package: the
# training part's speech is 14 short recordings of one package, of which the plain
# development set takes one excerpt.
DEVELOPMENT_KIND_CLIPS = 6


# --------------------------------------------------------------------------- sources


@dataclass(frozen=True)
class Recording:
    """One source recording (a file, or a member of a zip archive)."""

    package: str  # Debian package, or "extra"
    path: str  # absolute path, "ARCHIVE!MEMBER", or (extra) relative to the extra folder
    kind: str
    license: str
    origin: str
    sha256: str
    seconds: float
    rate: int  # the file's own sample rate
    root: str = field(default="", compare=False)  # extra folder the path is relative to

    @property
    def key(self) -> str:
        """``"package/path"``: what the split hashes."""
        return f"{self.package}/{self.path.lstrip('/')}"

    def data(self) -> bytes:
        if MEMBER_SEP in self.path:
            archive, member = self.path.split(MEMBER_SEP, 1)
            with zipfile.ZipFile(archive) as z:
                return z.read(member)
        return (Path(self.root) / self.path).read_bytes()

    def row(self) -> dict[str, Any]:
        return {"package": self.package, "path": self.path, "sha256": self.sha256, "license": self.license,
                "kind": self.kind, "origin": self.origin, "seconds": round(self.seconds, 3), "rate": self.rate}


def to_mono_48k(x: np.ndarray, sr: int) -> np.ndarray:
    """``[n, channels]`` at ``sr`` -> mono float64 ``[m]`` at 48 kHz (polyphase)."""
    x = x.mean(axis=1)
    if sr != SR:
        g = math.gcd(SR, sr)
        x = signal.resample_poly(x, SR // g, sr // g)
    return x


def read_recording(rec: Recording) -> np.ndarray:
    """The whole recording as mono float64 ``[n]`` at 48 kHz."""
    x, sr = sf.read(io.BytesIO(rec.data()), dtype="float64", always_2d=True)
    return to_mono_48k(x, sr)


def package_files(package: str) -> list[str]:
    """Files ``dpkg -L`` lists for ``package`` ([] when it is not installed)."""
    try:
        out = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True, check=False).stdout
    except FileNotFoundError:  # no dpkg: not Debian
        return []
    return sorted({line for line in out.splitlines() if line.startswith("/") and Path(line).is_file()})


def package_license(package: str, path: str) -> str:
    """The license of ``path`` from ``/usr/share/doc/<package>/copyright``: the last DEP-5
    ``Files:`` stanza whose pattern matches the end of the path (``*`` matches all), else
    the package's entry in :data:`PACKAGES` (free-text copyright files)."""
    fallback = ALL_PACKAGES.get(package, ("music", "unknown"))[1]
    doc = Path("/usr/share/doc") / package / "copyright"
    if not doc.is_file():
        return fallback
    text = doc.read_text(errors="replace")
    if not text.startswith("Format:"):
        return fallback
    found = None
    for stanza in re.split(r"\n\s*\n", text):
        files = re.search(r"^Files:(.*(?:\n[ \t].*)*)", stanza, re.M)
        lic = re.search(r"^License:[ \t]*(\S+)", stanza, re.M)
        if not files or not lic:
            continue
        for pattern in files.group(1).split():
            if pattern.startswith("debian/"):
                continue
            depth = pattern.count("/") + 1
            tail = "/".join(path.split(MEMBER_SEP)[0].split("/")[-depth:])
            if pattern == "*" or fnmatch.fnmatchcase(tail, pattern):
                found = lic.group(1)
    return found or fallback


def _recording(package: str, path: str, kind: str, license_: str, origin: str, data: bytes,
               root: str = "") -> Recording | None:
    try:
        info = sf.info(io.BytesIO(data))
    except (RuntimeError, sf.LibsndfileError):  # not audio libsndfile reads (e.g. an old mp3 build)
        return None
    if info.frames < 0.5 * info.samplerate:
        return None
    return Recording(package, path, kind, license_, origin, hashlib.sha256(data).hexdigest(),
                     info.frames / info.samplerate, int(info.samplerate), root)


def path_kind(package: str, path: str) -> str:
    """The kind of the recording at ``path`` (``ARCHIVE!MEMBER`` for an archive's member) of
    ``package``: by the folders of :data:`PATH_KINDS`, else the package's own."""
    for folder, kind in PATH_KINDS.get(package, ()):
        if folder in path:
            return kind
    return ALL_PACKAGES.get(package, ("music", ""))[0]


def find_package_recordings(packages: tuple[str, ...] | None = None) -> list[Recording]:
    """Every readable recording of the installed ``packages`` (default all of
    :data:`PACKAGES`), zip archives opened, test signals left out."""
    found = []
    for package in sorted(PACKAGES if packages is None else packages):
        origin = f"debian:{package}"
        for path in package_files(package):
            name = Path(path).name.lower()
            if any(word in Path(path).stem.lower() for word in NOT_RECORDINGS):
                continue
            if name.endswith(AUDIO_SUFFIXES):
                rec = _recording(package, path, path_kind(package, path), package_license(package, path), origin,
                                 Path(path).read_bytes())
                if rec is not None:
                    found.append(rec)
            elif name.endswith(ARCHIVE_SUFFIXES):
                with zipfile.ZipFile(path) as z:
                    for member in sorted(m for m in z.namelist() if m.lower().endswith(AUDIO_SUFFIXES)):
                        inside = f"{path}{MEMBER_SEP}{member}"
                        rec = _recording(package, inside, path_kind(package, inside),
                                         package_license(package, path), origin, z.read(member))
                        if rec is not None:
                            found.append(rec)
    return found


def find_extra_recordings(folder: str | Path, evaluation: bool = False) -> list[Recording]:
    """The recordings ``folder/sources.json`` describes (see the module docstring). A
    folder of recordings for evaluation only (``remote --evaluation``: its records say
    ``"use": "evaluation"``) is refused unless ``evaluation`` (``--evaluation-extra``): no
    training part, development set or training folder may take them."""
    folder = Path(folder).expanduser()
    index = folder / "sources.json"
    if not index.is_file():
        raise FileNotFoundError(f"expected {index} listing the extra recordings, found none")
    entries = json.loads(index.read_text())
    if not isinstance(entries, list):
        raise ValueError(f"expected a JSON list in {index}, got {type(entries).__name__}")
    found = []
    for i, e in enumerate(entries):
        missing = {"file", "kind", "license", "origin"} - set(e)
        if missing:
            raise ValueError(f"{index}[{i}]: expected keys file, kind, license, origin; missing {sorted(missing)}")
        if e["kind"] not in KINDS:
            raise ValueError(f"{index}[{i}]: expected kind in {KINDS}, got {e['kind']!r}")
        if e.get("use") == remote.EVALUATION and not evaluation:
            raise ValueError(f"{folder} holds recordings for evaluation only ({e['file']}); never train or "
                             f"tune on them: build their own set with --evaluation-extra {folder}")
        rec = _recording("extra", str(e["file"]), e["kind"], str(e["license"]), str(e["origin"]),
                         (folder / e["file"]).read_bytes(), str(folder))
        if rec is not None:
            found.append(rec)
    return found


def find_recordings(cfg: RealsetConfig) -> list[Recording]:
    """Package and extra recordings, each content (sha256) once: the first by key wins."""
    recs = find_package_recordings(cfg.packages)
    if cfg.extra is not None:
        recs += find_extra_recordings(cfg.extra)
    seen: set[str] = set()
    unique = []
    for rec in sorted(recs, key=lambda r: r.key):
        if rec.sha256 not in seen:
            seen.add(rec.sha256)
            unique.append(rec)
    if not unique:
        names = " ".join(p for p in PACKAGES)
        raise NoSourcesError(f"expected real recordings, found none: apt-get install {names} "
                             f"(or pass --extra DIR with a sources.json)")
    return unique


# ----------------------------------------------------------------------------- split


@dataclass(frozen=True)
class EvalSource:
    """One evaluation excerpt: a long recording, or a clip of short ones joined."""

    recordings: tuple[Recording, ...]

    @property
    def kind(self) -> str:
        return self.recordings[0].kind

    @property
    def name(self) -> str:
        r = self.recordings[0]
        stem = Path(r.path.split(MEMBER_SEP)[-1]).stem
        name = f"{r.package}-{stem}" if len(self.recordings) == 1 else f"{r.package}-{r.kind}-clip"
        return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:48]


def _hash_order(recs: list[Recording]) -> list[Recording]:
    return sorted(recs, key=lambda r: hashlib.sha256(r.key.encode()).hexdigest())


def _clips(recs: list[Recording], seconds: float, n_clips: int | None) -> tuple[list[tuple[Recording, ...]], int]:
    """Recordings joined in order (gaps of :data:`GAP_SECONDS`) into clips of at most
    ``seconds``; ``(clips, recordings used)``, at most ``n_clips`` clips (None = all)."""
    clips: list[tuple[Recording, ...]] = []
    current: list[Recording] = []
    length = 0.0
    for i, r in enumerate(recs):
        if current and length + GAP_SECONDS + r.seconds > seconds:
            clips.append(tuple(current))
            current, length = [], 0.0
            if n_clips is not None and len(clips) == n_clips:
                return clips, i
        length += (GAP_SECONDS if current else 0.0) + min(r.seconds, seconds)
        current.append(r)
    if current:
        clips.append(tuple(current))
    return clips, len(recs)


def split(recs: list[Recording], cfg: RealsetConfig) -> tuple[list[EvalSource], list[Recording]]:
    """``(evaluation sources, training recordings)``, disjoint by recording (see the
    module docstring); both in a fixed order."""
    groups: dict[tuple[str, str, int], list[Recording]] = {}
    for r in recs:
        groups.setdefault((r.package, r.kind, r.rate if cfg.clip_by_rate else 0), []).append(r)
    evals: list[EvalSource] = []
    train: list[Recording] = []
    for (package, _, _), group in sorted(groups.items()):
        ordered = _hash_order(group)
        short = float(np.median([r.seconds for r in group])) < cfg.seconds
        if package in cfg.all_eval_packages:
            clips, _ = _clips(ordered, cfg.seconds, None) if short else ([(r,) for r in ordered], len(ordered))
            if short and len(clips) > cfg.max_clips:  # fold into max_clips longer clips
                per = math.ceil(len(ordered) / cfg.max_clips)
                clips = [tuple(ordered[i:i + per]) for i in range(0, len(ordered), per)]
            evals += [EvalSource(c) for c in clips]
            continue
        if short:
            clips, used = _clips(ordered, cfg.seconds, 1)
        else:
            used = min(cfg.eval_per_group, max(1, len(ordered) - 1))
            clips = [(r,) for r in ordered[:used]]
        evals += [EvalSource(c) for c in clips]
        train += ordered[used:]
    return evals, sorted(train, key=lambda r: r.key)


# ---------------------------------------------------------------------------- excerpt


def _fade(x: np.ndarray) -> np.ndarray:
    fade = min(x.size // 2, int(FADE_SECONDS * SR))
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(fade) / fade)
    x = x.copy()
    x[:fade] *= ramp
    x[x.size - fade:] *= ramp[::-1]
    return x


def loudest_window(x: np.ndarray, n: int, skip_fraction: float, hop: int = SR // 4) -> int:
    """Start of the ``n``-sample window of highest RMS among starts on a ``hop`` grid at
    or after ``skip_fraction`` of ``x`` (0 when ``x`` is no longer than ``n``)."""
    if x.size <= n:
        return 0
    c = np.concatenate([[0.0], np.cumsum(x * x)])
    first = min(int(math.ceil(skip_fraction * x.size / hop)) * hop, x.size - n)
    starts = np.arange(first, x.size - n + 1, hop)
    energy = c[starts + n] - c[starts]
    return int(starts[int(np.argmax(energy))])


def excerpt(source: EvalSource, cfg: RealsetConfig) -> tuple[np.ndarray, float]:
    """``(clean [n] float64 at 48 kHz, not yet levelled, start in the recording in s)``:
    the loudest window of a long recording, or short recordings joined by gaps."""
    n = int(round(cfg.seconds * SR))
    if len(source.recordings) == 1:
        x = read_recording(source.recordings[0])
        start = loudest_window(x, n, cfg.skip_fraction)
        return _fade(x[start:start + n]), start / SR
    gap = np.zeros(int(GAP_SECONDS * SR))
    parts = [read_recording(r) for r in source.recordings]
    x = np.concatenate([q for p in parts for q in (gap, p)][1:])[:n]
    return _fade(x), 0.0


def measured_bandwidth_hz(x: np.ndarray, source_rate: int, margin_db: float = 10.0, step_hz: float = 250.0) -> float:
    """Highest frequency where the long-term spectrum of ``x`` (48 kHz) is still
    ``margin_db`` above its floor, the floor being the median level just under the
    source's own Nyquist frequency (90-97 % of it); rounded down to ``step_hz``.
    Conservative: a recording whose content reaches the top scores a little less."""
    nyq = min(source_rate, SR) / 2
    f, p = signal.welch(x, SR, nperseg=4096)
    db = 10 * np.log10(p + 1e-30)
    db = np.convolve(np.pad(db, 4, mode="edge"), np.ones(9) / 9, mode="valid")  # ~100 Hz smoothing
    floor = float(np.median(db[(f >= 0.90 * nyq) & (f <= 0.97 * nyq)]))
    above = np.nonzero((db >= floor + margin_db) & (f < nyq))[0]
    if above.size == 0:
        return 0.0
    return float(math.floor(f[above[-1]] / step_hz) * step_hz)


# ----------------------------------------------------------------------------- damage


def _write(out: Path, rel: str, x: np.ndarray) -> None:
    peak = float(np.max(np.abs(x)))
    if peak >= 1.0:
        raise ValueError(f"{rel}: expected a peak under full scale, got {peak:.3f}")
    sf.write(out / rel, x.astype(np.float32), SR, subtype=SUBTYPE)


# ----------------------------------------------------------------------------- build


def damage(variant: str, clean: np.ndarray, noise: np.ndarray, design: float | None, shape: str,
           order: int) -> np.ndarray:
    """One of `VARIANTS` of an item: the print's hiss `noise` cut with the signal by the
    zero-phase low-pass (`hiss_cut`), added after it (`hiss_after`), or no cut (`uncut`)."""
    if variant == "hiss_cut":
        return lowpass(clean + noise, design, shape, order, SR, zero_phase=True)
    if variant == "hiss_after":
        return lowpass(clean, design, shape, order, SR, zero_phase=True) + noise
    return clean + noise


def build_realset(out: str | Path, cfg: RealsetConfig | None = None,
                  recordings: list[Recording] | None = None) -> dict[str, Any]:
    """Write the set into ``out`` (see the module docstring); return the manifest. An old
    manifest is removed first, so an interrupted build never looks complete."""
    cfg = cfg if cfg is not None else RealsetConfig()
    recs = recordings if recordings is not None else find_recordings(cfg)
    evals, train = split(recs, cfg)
    out = Path(out)
    (out / "sources").mkdir(parents=True, exist_ok=True)
    (out / "items").mkdir(exist_ok=True)
    (out / "manifest.json").unlink(missing_ok=True)

    responses = {(shape, order, c): round(minus3db_hz(shape, order, c), 2)
                 for shape, order in cfg.shapes for c in cfg.cutoffs_hz}
    slots = 2 * len(cfg.cutoffs_hz) + 1
    source_rows, items = [], []
    for e, source in enumerate(evals):
        raw, start = excerpt(source, cfg)
        edge = None
        if cfg.codec_edge_hz is not None:
            edge = round(float(np.random.default_rng((cfg.level_seed, e)).uniform(*cfg.codec_edge_hz)), 1)
            raw = lowpass_brickwall(raw, edge)
        clean = _level(raw, np.random.default_rng(cfg.level_seed + e), cfg.peak_db)
        rate = min(r.rate for r in source.recordings)
        score_max = measured_bandwidth_hz(clean, rate)
        if edge is not None:  # the wall's own leakage over it is no band of the source
            score_max = min(score_max, math.floor(edge / 250.0) * 250.0)
        sid = f"{e:02d}-{source.name}"
        _write(out, f"sources/{sid}.wav", clean)
        source_rows.append({
            "id": sid, "kind": source.kind, "file": f"sources/{sid}.wav",
            "recordings": [r.row() for r in source.recordings], "excerpt_start_s": round(start, 6),
            "duration_s": round(clean.size / SR, 6), "source_rate": rate, "score_max_hz": score_max,
            "peak_dbfs": round(20 * math.log10(float(np.max(np.abs(clean))) + 1e-12), 2),
            **({} if edge is None else {"codec_edge_hz": edge}),
        })
        plan: list[tuple[int, str, float | None]] = [(slots - 1, "uncut", None)]
        plan += [(2 * j + v, variant, c) for j, c in enumerate(cfg.cutoffs_hz)
                 for v, variant in enumerate(VARIANTS[:2])]
        for slot, variant, design in sorted(plan):
            j = slot // 2
            shape, order = cfg.shapes[(e + j) % len(cfg.shapes)] if design is not None else ("none", 0)
            cutoff = responses[(shape, order, design)] if design is not None else None
            if cutoff is not None and cutoff >= cfg.max_cutoff_fraction * score_max:
                continue
            seed = cfg.damage_seed + e * slots + slot
            rng = np.random.default_rng(seed)
            hiss_db = round(float(rng.uniform(*cfg.hiss_db)), 2)
            noise = hiss(clean.shape, hiss_db, rng)
            target = clean + noise
            damaged = damage(variant, clean, noise, design, shape, order)
            label = "uncut" if design is None else f"{design / 1000:g}k-{shape}{order or ''}"
            item_id = f"{sid}-{variant.replace('_', '')}-{label}"
            files = {"target": f"items/{item_id}.target.wav", "damaged": f"items/{item_id}.damaged.wav"}
            _write(out, files["target"], target)
            _write(out, files["damaged"], damaged)
            items.append({
                "id": item_id, "source": sid, "kind": source.kind, "variant": variant,
                "design_hz": design, "cutoff_hz": cutoff, "shape": shape if design is not None else None,
                "order": order if shape == "butterworth" else None,
                "steep": None if design is None else not (shape == "butterworth" and order < 4),
                "hiss_db": hiss_db, "score_max_hz": score_max, "seed": seed,
                "samples": int(target.size), "duration_s": round(target.size / SR, 6), **files,
            })

    manifest = {
        "format": FORMAT, "version": REALSET_VERSION, "sample_rate": SR,
        "target": "clean + hiss (hiss kept, as the archive wants it)",
        # (a set built without a codec's edge keeps the manifest it always had)
        # the settings off by default are left out when off: a set built before them keeps its manifest
        "config": {k: v for k, v in asdict(cfg).items() if not (k in ("codec_edge_hz", "clip_by_rate") and not v)},
        "n_sources": len(source_rows), "n_items": len(items),
        "total_seconds": round(sum(i["duration_s"] for i in items), 6),
        "sources": source_rows,
        "training": [r.row() for r in train],
        "items": items,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def load_manifest(folder: str | Path) -> dict[str, Any]:
    """The manifest of a built real-recordings set, or a one-line error."""
    return read_manifest(folder, FORMAT, "a real-recordings set", "reelrestore.training.realset")


def training_package_recordings(packages: tuple[str, ...]) -> list[Recording]:
    """The recordings of the training-only ``packages`` (:data:`TRAINING_PACKAGES`) sampled
    at :data:`TRAINING_PACKAGE_MIN_RATE` or more, the held-out voices (:data:`HELD_OUT_VOICES`)
    left out; a package that is unknown or not installed is a one-line error naming the fix."""
    for package in packages:
        if package not in TRAINING_PACKAGES:
            raise ValueError(f"expected a training-only package ({', '.join(TRAINING_PACKAGES)}), got {package!r}")
        if not package_files(package):
            raise NoSourcesError(f"{package} is not installed: apt-get install {package}")
    if not packages:
        return []
    return [r for r in _wideband_recordings(tuple(packages)) if not held_out(r)]


def _wideband_recordings(packages: tuple[str, ...]) -> list[Recording]:
    """The recordings of ``packages`` sampled at :data:`TRAINING_PACKAGE_MIN_RATE` or more."""
    return [r for r in find_package_recordings(packages) if r.rate >= TRAINING_PACKAGE_MIN_RATE]


def held_out(rec: Recording) -> bool:
    """Whether ``rec`` is one of the voices no training takes (:data:`HELD_OUT_VOICES`)."""
    return any(folder in rec.path for folder in HELD_OUT_VOICES.get(rec.package, ()))


def held_out_recordings() -> list[Recording]:
    """The recordings of :data:`HELD_OUT_VOICES` sampled at :data:`TRAINING_PACKAGE_MIN_RATE`
    or more; their packages must be installed (a one-line error naming the fix)."""
    missing = [p for p in sorted(HELD_OUT_VOICES) if not package_files(p)]
    if missing:
        raise NoSourcesError(f"{', '.join(missing)} not installed: apt-get install {' '.join(missing)}")
    return [r for r in _wideband_recordings(tuple(sorted(HELD_OUT_VOICES))) if held_out(r)]


def training_recordings(realset: str | Path, extra: str | Path | None = None,
                        packages: tuple[str, ...] = ()) -> list[Recording]:
    """The real set's training part, then the extra folder's recordings and those of the
    training-only ``packages`` (:data:`TRAINING_PACKAGES`, each installed) outside its
    evaluation part; each content (sha256) once."""
    package_recs = training_package_recordings(packages)
    manifest = json.loads((Path(realset) / "manifest.json").read_text())
    evaluation = {r["sha256"] for s in manifest["sources"] for r in s["recordings"]}
    fields = set(Recording.__dataclass_fields__)
    extra_recs = (find_extra_recordings(extra) if extra is not None else []) + package_recs
    by_path = {r.path: r for r in extra_recs}
    recs = []
    for row in manifest["training"]:
        if row["package"] == "extra":  # the set was built with --extra: resolve against it
            if row["path"] not in by_path:
                raise FileNotFoundError(f"expected the extra folder the real set was built with "
                                        f"(--extra), to find {row['path']}")
            recs.append(by_path[row["path"]])
        else:
            recs.append(Recording(**{k: v for k, v in row.items() if k in fields}))
    recs += [r for r in extra_recs if r.sha256 not in evaluation]
    seen: set[str] = set()
    unique = []
    for r in recs:
        if r.sha256 in evaluation:
            raise ValueError(f"{r.path} is in the real set's evaluation part: never train on it")
        if r.sha256 not in seen:
            seen.add(r.sha256)
            unique.append(r)
    return unique


def parse_shape(text: str) -> tuple[str, int]:
    """'butterworth8' -> ('butterworth', 8); 'slit' -> ('slit', 0) (`RealsetConfig.shapes`)."""
    name = text.strip().lower()
    if name == "slit":
        return ("slit", 0)
    order = name.removeprefix("butterworth")
    if order == name or not order.isdigit() or int(order) < 1:
        raise ValueError(f"shape {text!r}: expected butterworthN (N the order, e.g. butterworth8) or slit")
    return ("butterworth", int(order))


@stops_in_one_line("realset", "the folder it was writing has no manifest.json (incomplete): run the command again")
def main(argv: list[str] | None = None) -> None:
    import argparse
    import sys
    import time

    parser = argparse.ArgumentParser(prog="python -m reelrestore.training.realset",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="folder to write the set into")
    parser.add_argument("--extra", type=Path, nargs="?", const=DEFAULT_EXTRA, default=None, metavar="DIR",
                        help=f"also take the recordings DIR/sources.json lists (DIR defaults to {DEFAULT_EXTRA})")
    parser.add_argument("--seconds", type=float, default=RealsetConfig.seconds, help="excerpt length")
    parser.add_argument("--development", type=Path, default=None, metavar="REALSET",
                        help="build a development set instead: items like the real set's, cut from the "
                             "recordings REALSET leaves for TRAINING (with --extra's), other seeds; for "
                             "choosing checkpoints and settings without touching the evaluation part")
    parser.add_argument("--kind", choices=KINDS, default=None,
                        help=f"with --development: that kind of material alone, every recording of it joined "
                             f"into at most {DEVELOPMENT_KIND_CLIPS} clips per package (e.g. the speech "
                             f"development set: --development realset/ --extra --kind speech)")
    parser.add_argument("--evaluation-extra", type=Path, default=None, metavar="DIR",
                        help="build an evaluation set of DIR's recordings alone, every one of them "
                             "evaluation, other seeds: the recordings for evaluation only that "
                             "'python -m reelrestore.training.remote --evaluation' fetches (speakers no "
                             "training part holds); the package recordings are left out")
    parser.add_argument("--held-out-speech", action="store_true",
                        help="build a development set of the voices no training takes (two Hedgewars "
                             "characters, two KTuberling languages: apt-get install hedgewars-data "
                             "ktuberling-data): speakers the model never heard, for choosing settings")
    parser.add_argument("--codec-edge", type=float, nargs=2, default=None, metavar=("LOW", "HIGH"),
                        help="give every excerpt a lossy copy's band edge first: a brick wall drawn from "
                             "LOW-HIGH Hz (e.g. --development realset/ --codec-edge 8500 11000: how the cutoff "
                             "reads sources taken from MP3 or Ogg)")
    parser.add_argument("--cutoffs", type=float, nargs="+", default=None, metavar="HZ",
                        help="design cutoffs of the low-pass (default: "
                             f"{' '.join(f'{c:g}' for c in RealsetConfig.cutoffs_hz)}); e.g. the issue's own "
                             "protocol: --cutoffs 1000 2000 3000 6000 --shapes butterworth8 --hiss-db -50 -50")
    parser.add_argument("--shapes", nargs="+", default=None, metavar="SHAPE",
                        help="low-pass shapes, cycled per (excerpt, cutoff): butterworthN (N the order) or slit "
                             f"(default: {' '.join(n if n == 'slit' else f'{n}{o}' for n, o in RealsetConfig.shapes)})")
    parser.add_argument("--hiss-db", type=float, nargs=2, default=None, metavar=("LO", "HI"),
                        help=f"hiss level, dBFS RMS, drawn uniformly from LO-HI (default: "
                             f"{RealsetConfig.hiss_db[0]:g} {RealsetConfig.hiss_db[1]:g})")
    args = parser.parse_args(argv)
    if args.kind is not None and args.development is None:
        sys.exit("error: --kind builds a development set of one kind; give --development REALSET too")
    if args.evaluation_extra is not None and (args.development is not None or args.extra is not None):
        sys.exit("error: --evaluation-extra builds a set of that folder's recordings alone; leave out "
                 "--development and --extra")
    if args.held_out_speech and (args.development is not None or args.extra is not None
                                 or args.evaluation_extra is not None):
        sys.exit("error: --held-out-speech builds a set of the held-out voices alone; leave out "
                 "--development, --extra and --evaluation-extra")
    start = time.perf_counter()
    if args.development is not None and not (args.development / "manifest.json").is_file():
        sys.exit(f"error: --development {args.development}: no manifest.json; build the real set first "
                 f"(python -m reelrestore.training.realset --out {args.development})")
    if args.development is not None and args.development.resolve() == args.out.resolve():
        sys.exit(f"error: --out {args.out} is the real set --development reads; give the development set "
                 f"a folder of its own")
    try:
        cfg = RealsetConfig(seconds=args.seconds, extra=None if args.extra is None else str(args.extra),
                            codec_edge_hz=None if args.codec_edge is None else tuple(args.codec_edge))
        if args.cutoffs is not None:
            cfg = replace(cfg, cutoffs_hz=tuple(args.cutoffs))
        if args.shapes is not None:
            cfg = replace(cfg, shapes=tuple(parse_shape(s) for s in args.shapes))
        if args.hiss_db is not None:
            cfg = replace(cfg, hiss_db=(min(args.hiss_db), max(args.hiss_db)))
        recordings = None
        if args.evaluation_extra is not None:
            recordings = find_extra_recordings(args.evaluation_extra, evaluation=True)
            if not recordings:
                sys.exit(f"error: {args.evaluation_extra}/sources.json lists no recordings")
            cfg = replace(cfg, all_eval_packages=tuple(sorted({r.package for r in recordings})),
                          max_clips=EVALUATION_EXTRA_CLIPS, clip_by_rate=True, **EVALUATION_EXTRA_SEEDS)
        if args.held_out_speech:
            recordings = held_out_recordings()
            cfg = replace(cfg, all_eval_packages=tuple(sorted(HELD_OUT_VOICES)), max_clips=HELD_OUT_CLIPS,
                          clip_by_rate=True, **HELD_OUT_SEEDS)
        if args.development is not None:
            recordings = training_recordings(args.development, args.extra)
            cfg = replace(cfg, extra=None, all_eval_packages=(), **DEVELOPMENT_SEEDS)
            if args.kind is not None:
                recordings = [r for r in recordings if r.kind == args.kind]
                if not recordings:
                    sys.exit(f"error: the training part of {args.development} holds no {args.kind}; "
                             f"add recordings of that kind (--extra) or choose another --kind")
                cfg = replace(cfg, all_eval_packages=tuple(sorted({r.package for r in recordings})),
                              max_clips=DEVELOPMENT_KIND_CLIPS)
        m = build_realset(args.out, cfg, recordings)
    except (FileNotFoundError, ValueError) as err:
        sys.exit(f"error: {err}")
    kinds = {k: sum(s["kind"] == k for s in m["sources"]) for k in KINDS}
    variants = {v: sum(i["variant"] == v for i in m["items"]) for v in VARIANTS}
    packages = sorted({r["package"] for s in m["sources"] for r in s["recordings"]})
    print(f"{m['n_sources']} excerpts ({', '.join(f'{v} {k}' for k, v in kinds.items())}) from {len(packages)} "
          f"packages, {m['n_items']} items ({', '.join(f'{v} {k}' for k, v in variants.items())}), "
          f"{m['total_seconds'] / 60:.1f} min of audio, {len(m['training'])} recordings left for training, "
          f"written to {args.out} in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
