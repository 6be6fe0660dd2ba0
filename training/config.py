"""Typed training configuration: one ``TrainConfig`` of sections, loaded from TOML or YAML,
overridden from the command line, and saved as a plain dict inside every checkpoint.

File layout (every section and key optional; see ``training/configs/*.toml``)::

    [model]      # reelrestore.models.thesis.ThesisConfig; `experiment = n` picks a preset
    [data]       # DataConfig
    [optim]      # OptimConfig
    [gan]        # GanConfig
    [schedule]   # ScheduleConfig

Overrides are ``section.key=value`` or, when the key exists in one section only,
``key=value``; values are parsed as TOML literals (``0.5``, ``true``, ``[0, 10]``,
``"text"``) and fall back to a bare string (``loss=wgan_gp``).
"""

from __future__ import annotations

import math
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from reelrestore.models.thesis import ThesisConfig
from reelrestore.training.losses import ContentSchedule

DISCRIMINATORS = ("image", "spectral", "level")  # names of gan.discriminators

__all__ = [
    "DISCRIMINATORS",
    "DataConfig",
    "GanConfig",
    "OptimConfig",
    "ScheduleConfig",
    "TrainConfig",
    "apply_overrides",
    "load_config",
    "read_config_file",
]


@dataclass(frozen=True)
class DataConfig:
    """Arguments of ``reelrestore.training.dataset.PairedSegments`` and the loaders."""

    source: str | None = None  # folder of clean recordings; None (or "builtin") = built-in corpus
    val_fraction: float = 0.2  # split by file, so no recording is in both sets
    cache_dir: str | None = None  # where PairedSegments may cache decoded/degraded audio
    batch_size: int = 16  # 0.5 s segments per step
    num_workers: int = 0  # DataLoader workers; 0 keeps resume bit-exact on CPU
    val_batches: int | None = None  # cap validation cost per epoch; None = whole split
    extra: dict[str, Any] = field(default_factory=dict)  # more PairedSegments kwargs, passed through

    def __post_init__(self) -> None:
        if self.source == "builtin":
            object.__setattr__(self, "source", None)
        if self.batch_size < 1:
            raise ValueError(f"expected data.batch_size >= 1, got {self.batch_size}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"expected 0 < data.val_fraction < 1, got {self.val_fraction}")


@dataclass(frozen=True)
class OptimConfig:
    """Adam for both networks, DCGAN's betas, separate learning rates."""

    g_lr: float = 2e-4
    d_lr: float = 2e-4  # the thesis tuned D and G separately to balance the game
    betas: tuple[float, float] = (0.5, 0.999)  # beta1 0.5: less momentum, steadier GAN (DCGAN)
    grad_clip: float | None = None  # max global grad norm per network; None = off (thesis)

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        if len(self.betas) != 2:
            raise ValueError(f"expected optim.betas of length 2, got {self.betas}")


@dataclass(frozen=True)
class GanConfig:
    """The adversarial game: the thesis's BCE rules, or WGAN-GP."""

    loss: str = "bce"  # "bce" (thesis) | "wgan_gp"
    # Label smoothing schedule: from epoch label_epochs[i] (0-based) on, D's targets are
    # real_labels[i] / fake_labels[i]. Smoothing keeps D from growing over-confident
    # early and is relaxed as the generator improves (0.9 -> 0.99 -> 0.999 -> 0.9995).
    label_epochs: tuple[int, ...] = (0, 10, 20, 40)
    real_labels: tuple[float, ...] = (0.9, 0.99, 0.999, 0.9995)
    fake_labels: tuple[float, ...] = (0.1, 0.01, 0.001, 0.0005)  # mirror of real: 1 - real
    g_target: float = 1.0  # G's adversarial target; smoothing is a D regulariser only
    # k: generator steps per discriminator step (one G step per batch; D is due every k).
    g_steps_per_d: int = 1
    # D-skip rule: a due D step is skipped while D's latest loss on fakes is below this
    # (D already wins; stepping would starve G of gradient). Counted in d_skips.
    d_skip_threshold: float = 0.1
    # ...but after this many consecutive skips one D step is forced, so D cannot freeze
    # forever while G drifts. 0 disables skipping altogether.
    d_max_skips: int = 10
    content_loss: str = "mse"  # "mse" | "none": MSE between G output and target image
    content_weight: float = 100.0  # pix2pix-style weight: content dominates, GAN adds detail
    # Content schedule (thesis future work): "constant" keeps the MSE term all run long;
    # "dynamic" drops it for good once G has learnt to pass its input band through, so
    # that MSE's blur stops pulling against the discriminators in the restored band.
    # Rules (reelrestore.training.losses.ContentSchedule), whichever comes first:
    content_schedule: str = "constant"  # "constant" | "dynamic"
    content_off_epoch: int | None = None  # dynamic: off from this epoch (0-based) on
    # dynamic: off once the running mean of the passband error (energy of restored -
    # target below the cutoff over the target's, dB) is below this; None = epoch rule only.
    content_off_below_db: float | None = -20.0
    content_min_steps: int = 50  # ... but not before this many G steps fed the mean
    content_ema_decay: float = 0.9  # running mean = EMA over G steps (~ the last 10)
    adv_weight: float = 1.0  # per discriminator: G's adversarial loss is the sum over them
    # Discriminators, each with its own Adam (optim.d_lr) and skip state; any non-empty
    # subset of: "image" (the thesis's DCGAN D on the representation image), "spectral"
    # (which frequencies are present: per-frame level-free log spectrum), "level" (dB
    # levels of log-spaced bands relative to the damaged input's level). See
    # reelrestore.models.critics.
    discriminators: tuple[str, ...] = ("image",)
    critic_width: int | None = None  # base channels of the spectral/level critics; None = model.d_width
    gp_lambda: float = 10.0  # WGAN-GP gradient-penalty weight (Gulrajani et al.)
    n_critic: int = 5  # WGAN-GP: critic steps per generator step

    def __post_init__(self) -> None:
        for name in ("label_epochs", "real_labels", "fake_labels"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        names = (self.discriminators,) if isinstance(self.discriminators, str) else tuple(self.discriminators)
        object.__setattr__(self, "discriminators", names)
        if not names or any(n not in DISCRIMINATORS for n in names) or len(set(names)) != len(names):
            raise ValueError(f"expected gan.discriminators as a non-empty list of distinct names from "
                             f"{DISCRIMINATORS}, got {list(names)}")
        if self.critic_width is not None and self.critic_width < 1:
            raise ValueError(f"expected gan.critic_width >= 1 or None, got {self.critic_width}")
        ContentSchedule.from_config(self)  # validates the content_* fields
        if self.loss not in ("bce", "wgan_gp"):
            raise ValueError(f"expected gan.loss in ('bce', 'wgan_gp'), got {self.loss!r}")
        if self.content_loss not in ("mse", "none"):
            raise ValueError(f"expected gan.content_loss in ('mse', 'none'), got {self.content_loss!r}")
        n = len(self.label_epochs)
        if not n or len(self.real_labels) != n or len(self.fake_labels) != n:
            raise ValueError(f"expected label_epochs, real_labels, fake_labels of one non-zero length, got "
                             f"{n}, {len(self.real_labels)}, {len(self.fake_labels)}")
        if self.label_epochs[0] != 0 or list(self.label_epochs) != sorted(self.label_epochs):
            raise ValueError(f"expected gan.label_epochs ascending from 0, got {self.label_epochs}")
        if self.g_steps_per_d < 1 or self.n_critic < 1 or self.d_max_skips < 0:
            raise ValueError(f"expected g_steps_per_d >= 1, n_critic >= 1, d_max_skips >= 0, got "
                             f"{self.g_steps_per_d}, {self.n_critic}, {self.d_max_skips}")


@dataclass(frozen=True)
class ScheduleConfig:
    """How long, where, how often."""

    epochs: int = 100
    max_steps: int | None = None  # stop after this many batches in total (None: epochs decide)
    steps_per_epoch: int | None = None  # cap an epoch (None: the whole training split)
    seed: int = 0  # weights, shuffling, dropout; data synthesis uses it too
    device: str = "auto"  # auto (cuda when available) | cpu | cuda | cuda:N
    amp: str = "auto"  # auto (bf16 on CUDA where supported, else fp16; off on CPU) | off | fp16 | bf16
    validate_every: int = 1  # epochs
    checkpoint_every: int = 1  # epochs; the last state is always saved at the end
    checkpoint_every_steps: int | None = None  # also save mid-epoch every N steps
    keep_checkpoints: int = 3  # numbered checkpoints kept (full width: ~0.6 GB each); last.pt always
    progress: bool = True  # tqdm bar

    def __post_init__(self) -> None:
        if self.amp not in ("auto", "off", "fp16", "bf16"):
            raise ValueError(f"expected schedule.amp in auto|off|fp16|bf16, got {self.amp!r}")
        if self.epochs < 1 or (self.max_steps is not None and self.max_steps < 1):
            raise ValueError(f"expected schedule.epochs >= 1 and max_steps >= 1, got {self.epochs}, {self.max_steps}")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a run needs; ``to_dict()`` travels inside checkpoints."""

    model: ThesisConfig = field(default_factory=ThesisConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    gan: GanConfig = field(default_factory=GanConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of plain values (tuples as lists): JSON, TOML and torch.save safe."""
        return _plain(asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        sections = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - sections)
        if unknown:
            raise ValueError(f"unknown config sections {unknown}; expected some of {sorted(sections)}")
        model = ThesisConfig.from_dict(data.get("model", {}))
        return cls(model=model, **{name: _build(_section_type(name), data.get(name, {}))
                                   for name in sections - {"model"}})


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The plain dict in a ``.toml``, ``.yaml`` or ``.yml`` config file."""
    path = Path(path)
    if path.suffix == ".toml":
        return tomllib.loads(path.read_text())
    if path.suffix in (".yaml", ".yml"):
        import yaml

        return yaml.safe_load(path.read_text()) or {}
    raise ValueError(f"expected a .toml, .yaml or .yml config file, got {path}")


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> TrainConfig:
    """Defaults <- file (``.toml``, ``.yaml``/``.yml``) <- ``key=value`` overrides."""
    data = read_config_file(path) if path is not None else {}
    return TrainConfig.from_dict(apply_overrides(data, overrides))


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Return a copy of a config dict with ``section.key=value`` / ``key=value`` applied."""
    out = {k: dict(v) if isinstance(v, Mapping) else v for k, v in data.items()}
    keys = {name: {f.name for f in fields(_section_type(name))} for name in _SECTIONS}
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"expected an override like section.key=value, got {item!r}")
        if "." in key:
            section, _, name = key.partition(".")
            if section not in keys or name not in keys[section]:
                raise ValueError(f"unknown config key {key!r}; expected section.key with section in "
                                 f"{sorted(keys)} and a field of it")
        else:
            owners = [s for s, names in keys.items() if key in names]
            if len(owners) != 1:
                raise ValueError(f"expected config key {key!r} to name exactly one section's field, got "
                                 f"{owners or 'none'}; write section.{key}=...")
            section, name = owners[0], key
        out.setdefault(section, {})[name] = _parse_value(raw.strip())
    return out


# --------------------------------------------------------------------------------------
_SECTIONS = ("model", "data", "optim", "gan", "schedule")


def _section_type(name: str) -> type:
    return typing.get_type_hints(TrainConfig)[name]


def _parse_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        if raw.lower() in ("none", "null"):
            return None
        return raw


def _build(cls: type, data: Mapping[str, Any]) -> Any:
    """Dataclass from a dict: unknown keys refused, sequences made tuples where typed so."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ValueError(f"expected a table for {cls.__name__}, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys {unknown}; expected some of {sorted(known)}")
    values = {}
    for key, value in data.items():
        if _is_tuple_type(hints[key]) and isinstance(value, list):
            value = tuple(value)
        if isinstance(value, float) and math.isnan(value):
            raise ValueError(f"expected a number for {cls.__name__}.{key}, got nan")
        values[key] = value
    return cls(**values)


def build_trainer_config(cls: type, data: Mapping[str, Any]) -> Any:
    """A trainer's config dataclass (a ``trainer`` name and one dataclass per section) from
    a plain dict: unknown sections refused, another trainer's name refused, each given
    section built with :func:`_build`, the others left at their defaults."""
    hints = typing.get_type_hints(cls)
    sections = {f.name for f in fields(cls)} - {"trainer"}
    unknown = sorted(set(data) - sections - {"trainer"})
    if unknown:
        raise ValueError(f"unknown config sections {unknown}; expected some of {sorted(sections)}")
    name = cls.__dataclass_fields__["trainer"].default
    if data.get("trainer", name) != name:
        raise ValueError(f"expected trainer = {name!r}, got {data.get('trainer')!r}")
    return cls(**{section: _build(hints[section], data[section]) for section in sections if section in data})


def _is_tuple_type(tp: Any) -> bool:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return any(_is_tuple_type(a) for a in typing.get_args(tp))
    return tp is tuple or typing.get_origin(tp) is tuple


def _plain(value: Any) -> Any:
    if is_dataclass(value):
        return _plain(asdict(value))
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value
