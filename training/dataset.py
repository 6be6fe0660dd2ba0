"""Paired (damaged, target) 0.5 s segments for training and validation; torch-free.

Clean audio comes from any folder of wav/flac/ogg files (any rate, resampled to the
contract's 48 kHz, mono-ised or one stream per channel) or, with no folder, from the
built-in corpus. Files are cut into non-overlapping segments of one engine frame (24000
samples; ``DEFAULT_CONTRACT.frame_length``; the tail is dropped) and damaged
on the fly with :func:`reelrestore.training.degrade.degrade`.

* The train/validation split is by SOURCE FILE, never by segment: neighbouring segments
  of one recording are too alike to validate each other.
* Item ``i`` is deterministic given ``(seed, split, i)``, and for ``train`` also the epoch
  (:meth:`PairedSegments.set_epoch` draws new damage each epoch); validation damage never
  changes, so validation numbers compare across epochs.

A torch ``DataLoader`` wraps it as is::

    ds = PairedSegments(None, "train", seed=0)             # built-in corpus
    item = ds[0]   # {'damaged': float32[24000], 'target': float32[24000], 'cutoff_hz': float}
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np
import soundfile as sf
from scipy import signal

from reelrestore.engine.contract import DEFAULT_CONTRACT

from .corpus import CorpusConfig, build_corpus
from .degrade import DegradeConfig, DegradeRanges, degrade as apply_degrade, sample_degrade_config

SR = DEFAULT_CONTRACT.sample_rate  # items are at the rate the models restore ...
SEGMENT = DEFAULT_CONTRACT.frame_length  # ... one engine frame long
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
SPLITS = ("train", "val", "all")
CUTOFF_POINTS = ("design", "minus3db")
DAMAGE_ON = ("worker", "device")
DegradeFn = Callable[[np.ndarray, np.random.Generator], tuple[np.ndarray, np.ndarray, dict[str, Any]]]
DegradeSpec = Union[None, DegradeConfig, DegradeRanges, dict, DegradeFn]


def list_audio_files(source: str | Path) -> list[Path]:
    """Sorted wav/flac/ogg files under ``source`` (recursive), or ``[source]`` for a file."""
    source = Path(source)
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise FileNotFoundError(f"expected a folder or audio file, got {source} (does not exist)")
    files = sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"expected {'/'.join(AUDIO_SUFFIXES)} files under {source}, found none")
    return files


def split_by_file(files: list[Path], val_fraction: float, seed: int, root: Path | None = None,
                  strata: list[str] | None = None) -> tuple[list[Path], list[Path]]:
    """``(train, val)`` lists of files. Files are ranked by a seeded hash of their path
    (relative to ``root``, so the split survives moving the folder) and the first
    ``round(val_fraction * n)`` go to validation, at least one. With ``strata`` (one label
    per file, e.g. music/speech/effects) each label contributes its own share."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"expected 0 <= val_fraction < 1, got {val_fraction}")
    labels = strata if strata is not None else [""] * len(files)
    if len(labels) != len(files):
        raise ValueError(f"expected one stratum per file ({len(files)}), got {len(labels)}")

    def rank(p: Path) -> str:
        name = p.relative_to(root).as_posix() if root is not None else p.name
        return hashlib.sha256(f"{seed}:{name}".encode()).hexdigest()

    val: list[Path] = []
    for label in sorted(set(labels)):
        group = sorted((f for f, g in zip(files, labels) if g == label), key=rank)
        val += group[: round(val_fraction * len(group))]
    if val_fraction > 0 and not val:
        val = sorted(files, key=rank)[:1]
    if val and len(val) >= len(files):
        raise ValueError(f"expected more source files than the {len(val)} validation needs, got {len(files)}")
    chosen = set(val)
    return [f for f in files if f not in chosen], [f for f in files if f in chosen]


def read_segment(path: Path, start: int, length: int, channel: int | None = None,
                 info: Any = None) -> np.ndarray:
    """Samples ``[start, start + length)`` at 48 kHz of ``path`` -> float32 ``[length]``
    (zeros past the end). ``channel=None`` averages the channels.

    Other rates are resampled by a polyphase filter on just the needed slice plus a
    margin; the slice starts on a multiple of the decimation factor so its samples land
    exactly where whole-file ``resample_poly`` would put them.
    """
    info = info if info is not None else sf.info(str(path))
    sr = info.samplerate

    def load(a: int, b: int) -> np.ndarray:
        x = sf.read(str(path), start=a, stop=b, dtype="float64", always_2d=True)[0]  # [frames, ch]
        return x.mean(axis=1) if channel is None else x[:, channel]

    if sr == SR:
        x = load(start, min(start + length, info.frames))
    else:
        g = math.gcd(sr, SR)
        up, down = SR // g, sr // g
        margin = math.ceil((10 * max(up, down) / up + 2) / down) * down  # resample_poly's half filter
        a = max(0, (start * down // up) // down * down - margin)
        b = min(info.frames, math.ceil((start + length) * down / up) + margin)
        y = signal.resample_poly(load(a, b), up, down)
        off = start - a * up // down
        x = y[off:off + length]
    out = np.zeros(length, np.float32)
    out[: x.size] = x
    return out


def _tuples(fields: dict[str, Any]) -> dict[str, Any]:
    """A config table's fields with its lists as tuples (the frozen dataclasses' types)."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}


def training_sets(cfg: Any) -> tuple["PairedSegments", "PairedSegments"]:
    """``(train, val)`` for a trainer config's ``data`` and ``schedule.seed``, in items one
    frame of the model's contract long."""
    d = cfg.data
    common = dict(seed=cfg.schedule.seed, cache_dir=d.cache_dir, val_fraction=d.val_fraction,
                  segment=cfg.model.contract.frame_length, **d.extra)
    # validation damages on the workers whatever the training does: its items stay fixed
    return PairedSegments(d.source, "train", **common), PairedSegments(d.source, "val", **{**common, "damage_on": "worker"})


@dataclass(frozen=True)
class _Source:
    path: Path
    info: Any  # soundfile info: frames, samplerate, channels
    channel: int | None  # None = mono mix


class PairedSegments:
    """Damaged/target pairs of 0.5 s.

    Args:
        source: folder (or single file) of clean audio; None = built-in corpus.
        split: 'train', 'val' or 'all'.
        seed: drives the split and every item's damage.
        cache_dir: where the built-in corpus is cached (default: user cache dir).
        val_fraction: share of SOURCE FILES held out for validation.
        degrade: None = random parameters from the default :class:`DegradeRanges`; a
            :class:`DegradeRanges` (or the dict of its fields, from a config) = random
            from those; a :class:`DegradeConfig` = fixed
            damage; or a callable ``(clean[n], rng) -> (damaged, target, info)`` whose
            ``info`` has ``cutoff_hz``.
        channels: 'mono' mixes channels; 'each' makes one stream per channel (both
            channels of a file stay in the same split).
        segment: samples per item (24000 = 0.5 s at 48 kHz).
        corpus: which built-in corpus to build when ``source`` is None (a
            :class:`CorpusConfig` or the dict of its fields).
        cutoff_point: what ``cutoff_hz`` reports: 'design' (what the filter was designed
            with, -6 dB for the zero-phase shapes) or 'minus3db' (the -3 dB point of the
            response applied: the cutoff the engine estimates and the evaluation scores at).
        damage_on: 'worker' damages each item here (in the DataLoader's workers);
            'device' only draws its damage (:func:`~reelrestore.training.device_damage.plan_damage`)
            and the training loop damages the batch on the trainer's device (a GPU), by
            :func:`~reelrestore.training.device_damage.damage_batch`.

    ``ds[i]`` -> ``{'damaged': float32[segment], 'target': float32[segment], 'cutoff_hz': float}``;
    with ``damage_on='device'``: ``{'clean': float32[segment], 'plan': dict, 'cutoff_hz': float}``.
    """

    def __init__(self, source: str | Path | None = None, split: str = "train", seed: int = 0,
                 cache_dir: str | Path | None = None, val_fraction: float = 0.2,
                 degrade: DegradeSpec = None, *, channels: str = "mono", segment: int = SEGMENT,
                 corpus: CorpusConfig | dict[str, Any] | None = None, cutoff_point: str = "design",
                 damage_on: str = "worker") -> None:
        if split not in SPLITS:
            raise ValueError(f"expected split in {SPLITS}, got {split!r}")
        if channels not in ("mono", "each"):
            raise ValueError(f"expected channels 'mono' or 'each', got {channels!r}")
        if segment <= 0:
            raise ValueError(f"expected segment > 0 samples, got {segment}")
        if cutoff_point not in CUTOFF_POINTS:
            raise ValueError(f"expected cutoff_point in {CUTOFF_POINTS}, got {cutoff_point!r}")
        if isinstance(degrade, dict):  # ranges from a TOML/YAML config
            degrade = DegradeRanges(**_tuples(degrade))
        if damage_on not in DAMAGE_ON:
            raise ValueError(f"expected damage_on in {DAMAGE_ON}, got {damage_on!r}")
        if damage_on == "device":
            ranges = degrade if isinstance(degrade, DegradeRanges) else DegradeRanges()
            if not (degrade is None or isinstance(degrade, (DegradeConfig, DegradeRanges))):
                raise ValueError("expected the damage as ranges or one DegradeConfig for damage_on='device', "
                                 "got a callable: damage it on the workers (damage_on='worker')")
            if (isinstance(degrade, DegradeConfig) and not degrade.zero_phase) or ranges.p_causal > 0:
                raise ValueError("expected zero-phase cuts only (p_causal = 0) for damage_on='device': "
                                 "damage causal cuts on the workers (damage_on='worker')")
        self.damage_on = damage_on
        if isinstance(corpus, dict):  # from a TOML/YAML config
            corpus = CorpusConfig(**_tuples(corpus))
        if source is None:  # corpus files are named <kind>-<nnn>.flac: stratify by kind
            files, root = build_corpus(cache_dir, corpus), None
            strata = [f.name.split("-")[0] for f in files]
        else:
            files, strata = list_audio_files(source), None
            root = Path(source) if Path(source).is_dir() else None
        if split != "all":
            train, val = split_by_file(files, val_fraction, seed, root, strata)
            files = train if split == "train" else val
        self.split, self.seed, self.segment, self.epoch = split, seed, segment, 0
        self.cutoff_key = "cutoff_hz" if cutoff_point == "design" else "cutoff_3db_hz"
        self.files = files
        if not (degrade is None or isinstance(degrade, (DegradeConfig, DegradeRanges)) or callable(degrade)):
            raise TypeError(f"expected degrade as None, DegradeConfig, DegradeRanges or a callable, "
                            f"got {type(degrade).__name__}")
        self.degrade = degrade  # kept as given (no lambdas) so DataLoader workers can pickle us
        self._sources: list[_Source] = []
        rows = []  # (source index, segment start)
        for path in files:
            try:
                info = sf.info(str(path))
            except RuntimeError as err:
                raise ValueError(f"expected a readable audio file, got {path}: {err}") from None
            n48 = info.frames * SR // info.samplerate
            for ch in ([None] if channels == "mono" else range(info.channels)):
                self._sources.append(_Source(path, info, ch))
                rows += [(len(self._sources) - 1, k * segment) for k in range(n48 // segment)]
        self._rows = np.array(rows, dtype=np.int64).reshape(-1, 2)

    def _config(self, rng: np.random.Generator) -> DegradeConfig | None:
        """The item's damage parameters (drawn from ``rng`` for ranges); None for a callable."""
        spec = self.degrade
        if spec is None or isinstance(spec, DegradeRanges):
            return sample_degrade_config(rng, spec)
        return spec if isinstance(spec, DegradeConfig) else None

    def _damage(self, clean: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        cfg = self._config(rng)
        return self.degrade(clean, rng) if cfg is None else apply_degrade(clean, cfg, rng)

    def set_epoch(self, epoch: int) -> None:
        """New damage for every training item (validation stays fixed)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"expected index in [0, {len(self)}), got {i}")
        i = int(i) % len(self)
        src_i, start = self._rows[i]
        src = self._sources[src_i]
        clean = read_segment(src.path, int(start), self.segment, src.channel, src.info)
        epoch = self.epoch if self.split == "train" else 0
        rng = np.random.default_rng([self.seed, SPLITS.index(self.split), epoch, i])
        if self.damage_on == "device":  # the same draws as _damage makes; the batch is damaged on the device
            from .device_damage import plan_damage

            cfg = self._config(rng)  # never None here: callables are refused for device damage
            plan = plan_damage(clean.shape[-1], cfg, rng)
            cutoff = plan["cutoff_3db_hz"] if self.cutoff_key == "cutoff_3db_hz" else float(cfg.cutoff_hz)
            return {"clean": np.asarray(clean, np.float32), "plan": plan, "cutoff_hz": cutoff}
        damaged, target, info = self._damage(clean, rng)
        if self.cutoff_key not in info:
            raise KeyError(f"expected the degrade callable's info to hold {self.cutoff_key!r}, got keys {sorted(info)}")
        return {"damaged": np.asarray(damaged, np.float32), "target": np.asarray(target, np.float32),
                "cutoff_hz": float(info[self.cutoff_key])}

    def source_of(self, i: int) -> tuple[Path, int | None, int]:
        """``(file, channel or None, start sample at 48 kHz)`` behind item ``i``."""
        src_i, start = self._rows[i]
        src = self._sources[src_i]
        return src.path, src.channel, int(start)
