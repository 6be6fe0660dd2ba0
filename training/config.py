"""Typed training configuration, one shape for every trainer, and its one override syntax.

Every trainer's config is a :class:`RunConfig`: the ``trainer`` name (a key of
:data:`RUN_CONFIGS`, and of ``reelrestore.training.trainers.TRAINERS``) and five sections,
each a dataclass::

    trainer = "realtime"   # thesis (the default when a file names none) | realtime | unet
    [model]      # the network: ThesisConfig, RealtimeConfig or UNetConfig (reelrestore.models)
    [data]       # DataConfig
    [optim]      # OptimConfig
    [loss]       # the trainer's losses and game: ThesisLossConfig, RealtimeLossConfig, UNetLossConfig
    [schedule]   # ScheduleConfig

Every section and key is optional (see ``training/configs/*.toml``). ``to_dict()`` gives
the plain dict that travels inside checkpoints; ``from_dict()`` reads it back, refusing
unknown keys and values of the wrong type ("expected an integer for data.batch_size").
Overrides (:func:`apply_overrides`) are ``path=value``:

* ``section.key=value`` (``model.width=8``, ``loss.content_weight=50``);
* a longer path into a nested table (``model.contract.frame_seconds=0.25``,
  ``data.extra.cutoff_point=minus3db``);
* a bare ``key=value`` when exactly one section has that key (``epochs=20``).

Values are TOML literals (``0.5``, ``true``, ``[0, 10]``, ``"text"``); anything else is a
bare string (``loss=wgan_gp``), and ``none``/``null`` is None.

Nothing here loads torch (the networks' configs are `reelrestore.models.configs`):
:func:`load_config` reads and checks a file and its overrides before a trainer is built,
so ``restore-train`` refuses a bad one at once.
"""

from __future__ import annotations

import copy
import math
import re
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, ClassVar

from reelrestore.models.configs import RealtimeConfig, ThesisConfig, UNetConfig
from reelrestore.training.content_schedule import ContentSchedule

DISCRIMINATORS = ("image", "spectral", "level")  # names of the thesis's loss.discriminators

__all__ = [
    "DEFAULT_TRAINER",
    "DISCRIMINATORS",
    "DataConfig",
    "OptimConfig",
    "RUN_CONFIGS",
    "RealtimeLossConfig",
    "RealtimeTrainConfig",
    "RunConfig",
    "ScheduleConfig",
    "ThesisLossConfig",
    "TrainConfig",
    "UNetLossConfig",
    "UNetTrainConfig",
    "apply_overrides",
    "choices",
    "config_class",
    "config_from_dict",
    "load_config",
    "read_config_file",
]


# ------------------------------------------------------------------ sections every trainer has
@dataclass(frozen=True)
class DataConfig:
    """Arguments of ``reelrestore.training.dataset.PairedSegments`` and the loaders."""

    source: str | None = None  # folder of clean recordings; None (or "builtin") = built-in corpus
    val_fraction: float = 0.2  # split by file, so no recording is in both sets
    cache_dir: str | None = None  # where PairedSegments may cache decoded/degraded audio
    batch_size: int = 16  # 0.5 s segments per step; per rank under torchrun (a step takes ranks x batch_size)
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
        if self.num_workers < 0 or (self.val_batches is not None and self.val_batches < 1):
            raise ValueError(f"expected data.num_workers >= 0 and data.val_batches >= 1 (or none), got "
                             f"{self.num_workers}, {self.val_batches}")


@dataclass(frozen=True)
class OptimConfig:
    """Adam for every network, DCGAN's betas, separate learning rates for G and D."""

    g_lr: float = 2e-4
    d_lr: float = 2e-4  # the thesis tuned D and G separately to balance the game
    betas: tuple[float, float] = (0.5, 0.999)  # beta1 0.5: less momentum, steadier GAN (DCGAN)
    grad_clip: float | None = None  # max global grad norm per network; None = off (thesis)

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        if len(self.betas) != 2:
            raise ValueError(f"expected optim.betas of length 2, got {self.betas}")
        for name in ("g_lr", "d_lr"):
            if not 0 < getattr(self, name) < math.inf:
                raise ValueError(f"expected optim.{name} > 0 and finite, got {getattr(self, name)}")
        if self.grad_clip is not None and not 0 < self.grad_clip < math.inf:
            raise ValueError(f"expected optim.grad_clip > 0 and finite (or none), got {self.grad_clip}")


@dataclass(frozen=True)
class ScheduleConfig:
    """How long, where, how often."""

    epochs: int = 100
    max_steps: int | None = None  # stop after this many batches in total (None: epochs decide)
    steps_per_epoch: int | None = None  # cap an epoch (None: the whole training split)
    seed: int = 0  # weights, shuffling, dropout; data synthesis uses it too
    device: str = "auto"  # auto (cuda when available) | cpu | cuda | cuda:N
    amp: str = "auto"  # thesis only: auto (bf16 on CUDA where supported, else fp16; off on CPU) | off | fp16 | bf16
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
        for name in ("validate_every", "checkpoint_every", "steps_per_epoch", "checkpoint_every_steps"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"expected schedule.{name} >= 1, got {value}")
        if self.keep_checkpoints < 0:
            raise ValueError(f"expected schedule.keep_checkpoints >= 0 (0: keep all), got {self.keep_checkpoints}")
        if not re.fullmatch(r"auto|cpu|mps|(cuda|xpu)(:\d+)?", self.device):
            raise ValueError(f"expected schedule.device auto|cpu|cuda|cuda:N, got {self.device!r}")


# ------------------------------------------------------------------------- loss sections
@dataclass(frozen=True)
class ThesisLossConfig:
    """The thesis's adversarial game (its BCE rules, or WGAN-GP) and content term."""

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
            raise ValueError(f"expected loss.discriminators as a non-empty list of distinct names from "
                             f"{DISCRIMINATORS}, got {list(names)}")
        if self.critic_width is not None and self.critic_width < 1:
            raise ValueError(f"expected loss.critic_width >= 1 or None, got {self.critic_width}")
        ContentSchedule.from_config(self)  # validates the content_* fields
        if self.loss not in ("bce", "wgan_gp"):
            raise ValueError(f"expected loss.loss in ('bce', 'wgan_gp'), got {self.loss!r}")
        if self.content_loss not in ("mse", "none"):
            raise ValueError(f"expected loss.content_loss in ('mse', 'none'), got {self.content_loss!r}")
        n = len(self.label_epochs)
        if not n or len(self.real_labels) != n or len(self.fake_labels) != n:
            raise ValueError(f"expected label_epochs, real_labels, fake_labels of one non-zero length, got "
                             f"{n}, {len(self.real_labels)}, {len(self.fake_labels)}")
        if self.label_epochs[0] != 0 or list(self.label_epochs) != sorted(self.label_epochs):
            raise ValueError(f"expected loss.label_epochs ascending from 0, got {self.label_epochs}")
        if self.g_steps_per_d < 1 or self.n_critic < 1 or self.d_max_skips < 0:
            raise ValueError(f"expected g_steps_per_d >= 1, n_critic >= 1, d_max_skips >= 0, got "
                             f"{self.g_steps_per_d}, {self.n_critic}, {self.d_max_skips}")


@dataclass(frozen=True)
class RealtimeLossConfig:
    """The real-time generator's losses (``reelrestore.training.realtime``)."""

    envelope_weight: float = 1.0  # L1 on log band energies above the cutoff
    stft_weight: float = 1.0  # multi-resolution STFT loss on the waveform
    stft_sizes: tuple[int, ...] = (512, 1024, 2048)
    # Log-spectral distance above the cutoff, the evaluation's own metric (RMS over the
    # bins of log10 power, n_fft 2048 / hop 512, mean over frames), on the restored
    # waveform. Matching band energies (the envelope term) is not what minimises it: the
    # bins under a band can miss the reference's while the band's energy matches.
    lsd_weight: float = 0.0
    lsd_max_hz: float = 15000.0  # bins above it are not scored (lossy sources end ~16 kHz)
    # One minus the correlation over time of each band's magnitude above the cutoff with
    # the reference's (`training.realtime.envelope_correlation_loss`): STOI's measure of a
    # band, its course over a segment whatever its level. Off in every shipped model: 2.3
    # trained on 2,000 steps at weight 2 gained 0.001 of STOI on the speech development set
    # (models/default.md, thirty-seventh session).
    envelope_corr_weight: float = 0.0
    # What the losses judge above the cutoff: "replace" (the model's own output, its band in
    # place of the input's) or "engine" (the engine's merge: the input's band, plus the
    # model's only where it is louder, `models.spectral.missing_power_merge`), so the
    # model learns that hiss the input keeps above the cut is already there.
    merge: str = "replace"
    # For a model trained for the low-latency framing (``model.lookahead`` > 0): the
    # log-spectral distance above the cutoff once more, on the STFT columns that reach
    # the hop the engine plays of each frame (the frame's newest, `model.lookahead`
    # samples before its end), where the model sees almost no future.
    end_weight: float = 0.0
    adv_weight: float = 0.1  # adversarial term: adds texture, kept small so it cannot lead
    fm_weight: float = 1.0  # feature matching on D's hidden maps
    real_label: float = 0.9  # one-sided label smoothing (the thesis's 0.9)
    g_steps_per_d: int = 1  # k generator steps per discriminator step
    d_skip_threshold: float = 0.1  # skip D while its fake loss is below this ...
    d_max_skips: int = 10  # ... but force a D step after this many skips in a row
    adv_start_step: int = 200  # reconstruction-only warm-up before the adversary joins
    d_width: int = 32

    def __post_init__(self) -> None:
        if self.merge not in ("replace", "engine"):
            raise ValueError(f"expected loss.merge 'replace' or 'engine', got {self.merge!r}")
        if self.end_weight < 0 or self.envelope_corr_weight < 0:
            raise ValueError(f"expected loss.end_weight and loss.envelope_corr_weight >= 0, got "
                             f"{self.end_weight}, {self.envelope_corr_weight}")


@dataclass(frozen=True)
class UNetLossConfig:
    """The time-domain U-Net's WGAN-GP losses (``reelrestore.training.unet``)."""

    gp_lambda: float = 10.0  # WGAN-GP gradient-penalty weight (Gulrajani et al.)
    n_critic: int = 5  # critic steps per generator step
    time_weight: float = 1000.0  # L_time: waveform MSE (~1e-4 on music: weighted to ~0.1)
    freq_weight: float = 1.0  # L_freq: MSE of log10 power spectrograms
    ae_weight: float = 1.0  # L_ae: MSE of the autoencoder's bottleneck features
    adv_weight: float = 1e-3  # the critic's score: small, texture on top of the content terms
    ae_pretrain_steps: int = 100  # batches of autoencoder training before the GAN starts
    content_schedule: str = "constant"  # "constant" | "dynamic" (L_time dropped, see training/unet.py)
    content_off_epoch: int | None = None
    content_off_below_db: float | None = -20.0
    content_min_steps: int = 50
    content_ema_decay: float = 0.9

    def __post_init__(self) -> None:
        if self.n_critic < 1 or self.ae_pretrain_steps < 0:
            raise ValueError(f"expected loss.n_critic >= 1 and ae_pretrain_steps >= 0, got "
                             f"{self.n_critic}, {self.ae_pretrain_steps}")
        ContentSchedule.from_config(self)  # refuses impossible schedule settings
        if self.ae_weight > 0 and self.ae_pretrain_steps == 0:
            raise ValueError("expected loss.ae_pretrain_steps > 0 when ae_weight > 0 (an untrained autoencoder's "
                             "features are noise)")


# ---------------------------------------------------------------------------- run configs
@dataclass(frozen=True)
class RunConfig:
    """The shape of every trainer's config: a ``trainer`` name (class-level) and the
    sections model, data, optim, loss and schedule, declared by each subclass."""

    trainer: ClassVar[str]

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of plain values (tuples as lists), ``trainer`` first: JSON, TOML and
        torch.save safe."""
        return {"trainer": self.trainer, **{f.name: _plain(getattr(self, f.name)) for f in fields(self)}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunConfig:
        """Inverse of :meth:`to_dict`; absent sections and keys keep their defaults, unknown
        ones and another trainer's name are refused."""
        name = data.get("trainer", cls.trainer)
        if name != cls.trainer:
            raise ValueError(f"expected trainer = {cls.trainer!r} for {cls.__name__}, got {name!r}")
        return _build(cls, {k: v for k, v in data.items() if k != "trainer"})


@dataclass(frozen=True)
class TrainConfig(RunConfig):
    """The thesis GAN's run (``reelrestore.training.gan``), the default of ``restore-train``."""

    trainer: ClassVar[str] = "thesis"
    model: ThesisConfig = field(default_factory=ThesisConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: ThesisLossConfig = field(default_factory=ThesisLossConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)


@dataclass(frozen=True)
class RealtimeTrainConfig(RunConfig):
    """The real-time generator's run (``reelrestore.training.realtime``)."""

    trainer: ClassVar[str] = "realtime"
    model: RealtimeConfig = field(default_factory=RealtimeConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(g_lr=1e-3, d_lr=2e-4))
    loss: RealtimeLossConfig = field(default_factory=RealtimeLossConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)

    def __post_init__(self) -> None:
        if self.loss.end_weight > 0 and self.model.lookahead == 0:
            raise ValueError("loss.end_weight judges the hop the low-latency framing plays; "
                             "expected model.lookahead > 0 with it")


@dataclass(frozen=True)
class UNetTrainConfig(RunConfig):
    """The time-domain U-Net's WGAN-GP run (``reelrestore.training.unet``)."""

    trainer: ClassVar[str] = "unet"
    model: UNetConfig = field(default_factory=UNetConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(g_lr=1e-4, d_lr=1e-4, betas=(0.5, 0.9)))
    loss: UNetLossConfig = field(default_factory=UNetLossConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)


RUN_CONFIGS: dict[str, type[RunConfig]] = {cls.trainer: cls for cls in (TrainConfig, RealtimeTrainConfig,
                                                                        UNetTrainConfig)}
DEFAULT_TRAINER = "thesis"  # a config that names no trainer (restore-train's built-in defaults)


def config_class(name: str) -> type[RunConfig]:
    """The config of the trainer registered as ``name``."""
    if not isinstance(name, str) or name not in RUN_CONFIGS:
        raise ValueError(f"expected trainer in {sorted(RUN_CONFIGS)}, got {name!r}")
    return RUN_CONFIGS[name]


def choices() -> str:
    """The trainer line a config file needs, every choice: 'trainer = "thesis" | ...'."""
    return "trainer = " + " | ".join(f'"{name}"' for name in RUN_CONFIGS)


def config_from_dict(data: Mapping[str, Any], overrides: Sequence[str] = ()) -> RunConfig:
    """The config of the trainer ``data`` names (``trainer``; default thesis), with
    ``overrides`` (``path=value``, see above) applied."""
    cls = config_class(data.get("trainer", DEFAULT_TRAINER))
    return cls.from_dict(apply_overrides(cls, data, overrides))


def load_config(path: str | Path | None = None, overrides: Sequence[str] = (),
                default_trainer: str | None = DEFAULT_TRAINER) -> RunConfig:
    """Defaults <- file (``.toml``, ``.yaml``/``.yml``) <- overrides. A file that names no
    ``trainer`` gets ``default_trainer``; with None it is refused (``restore-train`` does
    so: an empty file must not silently train the full thesis model)."""
    data = read_config_file(path) if path is not None else {}
    if path is not None and "trainer" not in data:
        if default_trainer is None:
            raise ValueError(f"{path} names no trainer; add {choices()} at its top")
        data = {"trainer": default_trainer, **data}
    return config_from_dict(data, overrides)


# ------------------------------------------------------------------------- files, overrides
def read_config_file(path: str | Path) -> dict[str, Any]:
    """The plain dict in a ``.toml``, ``.yaml`` or ``.yml`` config file; a file that is not
    one (malformed, not UTF-8 text, not a table at the top) is refused in one line."""
    path = Path(path)
    if path.suffix not in (".toml", ".yaml", ".yml"):
        raise ValueError(f"expected a .toml, .yaml or .yml config file, got {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text (byte {exc.start}); expected a TOML or YAML config") from None
    if path.suffix == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path}: not valid TOML: {exc}") from None
    else:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" (at line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
            what = getattr(exc, "problem", None) or " ".join(str(exc).split())
            raise ValueError(f"{path}: not valid YAML: {what}{where}") from None
        data = {} if data is None else data
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: expected a table of sections (trainer, model, data, optim, loss, schedule) at "
                         f"the top, got a {type(data).__name__}")
    return dict(data)


def apply_overrides(cls: type[RunConfig], data: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """A copy of the config dict ``data`` of a ``cls`` run with ``path=value`` overrides
    applied (syntax: module docstring); a path that names no field of ``cls`` is refused."""
    out = copy.deepcopy(dict(data))
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"expected an override like section.key=value, got {item!r}")
        *parents, name = _override_path(cls, key)
        table = out
        for i, part in enumerate(parents):
            table = table.setdefault(part, {})
            if not isinstance(table, dict):
                raise ValueError(f"expected a table for {'.'.join(parents[:i + 1])}, got {table!r}")
        table[name] = _parse_value(raw.strip())
    return out


def _override_path(cls: type, key: str) -> list[str]:
    """``key`` as a path of names from ``cls`` down, checked against the dataclass fields
    on the way (below a free-form table such as ``data.extra`` anything goes)."""
    if "." not in key:
        owners = [name for name, tp in _field_types(cls).items() if key in _field_types(tp)]
        if len(owners) != 1:
            raise ValueError(f"expected config key {key!r} to name exactly one section's field, got "
                             f"{owners or 'none'}; write section.{key}=...")
        return [owners[0], key]
    path = key.split(".")
    tp: Any = cls
    for i, part in enumerate(path):
        if typing.get_origin(tp) in (dict, Mapping):
            break
        types_ = _field_types(tp)
        if part not in types_:
            where = f"{tp.__name__} has no {part!r}; expected one of {sorted(types_)}" if types_ else \
                f"{'.'.join(path[:i])} is a value, not a table"
            raise ValueError(f"unknown config key {key!r}: {where}")
        tp = types_[part]
    return path


def _field_types(tp: Any) -> dict[str, Any]:
    """Field name -> type of a dataclass (its optional form unwrapped); {} for others."""
    return {name: _unwrap_optional(hint) for name, hint in _field_hints(tp).items()}


def _unwrap_optional(tp: Any) -> Any:
    """``X | None`` -> ``X``; any other type as it is."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else tp
    return tp


def _parse_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        if raw.lower() in ("none", "null"):
            return None
        return raw


# ------------------------------------------------------------------ dict <-> dataclass
def _build(cls: type, data: Mapping[str, Any] | None, where: str = "") -> Any:
    """Dataclass ``cls`` from a plain dict: unknown keys refused, every value checked
    against its field's type (``where`` names the table, ``data.batch_size``), nested
    sections built (by their own ``from_dict`` where they have one: the model configs),
    lists made tuples where the field is a tuple."""
    data = {} if data is None else data
    if not isinstance(data, Mapping):
        raise ValueError(f"expected a table for {where or cls.__name__}, got {data!r}")
    hints = _field_hints(cls)
    unknown = sorted(map(str, set(data) - set(hints)))
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys {unknown}; expected some of {sorted(hints)}")
    values = {key: _value(hints[key], value, f"{where}.{key}" if where else key) for key, value in data.items()}
    try:
        return cls(**values)
    except TypeError as exc:  # a check in __post_init__ met a type the hints allow
        raise ValueError(f"{where or cls.__name__}: {exc}") from None


def _value(hint: Any, value: Any, where: str) -> Any:
    tp = _unwrap_optional(hint)
    if hasattr(tp, "from_dict"):
        value = {} if value is None else value
        _check_table(tp, value, where)
        try:
            return tp.from_dict(value)
        except TypeError as exc:
            raise ValueError(f"{where}: {exc}") from None
    if is_dataclass(tp):
        return _build(tp, value, where)
    _check_type(hint, value, where)
    if (tp is tuple or typing.get_origin(tp) is tuple) and isinstance(value, list):
        return tuple(value)
    return value


def _check_table(tp: Any, value: Any, where: str) -> None:
    """Check the values of a table that a ``from_dict`` builds (its own keys are its business)."""
    if not isinstance(value, Mapping):
        raise ValueError(f"expected a table for {where}, got {value!r}")
    hints = _field_hints(tp)
    for key, item in value.items():
        if key in hints:
            sub = _unwrap_optional(hints[key])
            if is_dataclass(sub) and item is not None:
                _check_table(sub, item, f"{where}.{key}")
            elif not is_dataclass(sub):
                _check_type(hints[key], item, f"{where}.{key}")


_PLURAL = {"an integer": "integers", "a number": "numbers", "a string": "strings", "true or false": "true/false values"}


def _check_type(hint: Any, value: Any, where: str) -> None:
    """Refuse ``value`` unless it is what the field ``where`` is declared as: "expected an
    integer for data.batch_size, got 'big'"."""
    wanted = _mismatch(hint, value)
    if wanted is not None:
        raise ValueError(f"expected {wanted} for {where}, got {value!r}")


def _mismatch(hint: Any, value: Any) -> str | None:
    """What a value of type ``hint`` is, in words, when ``value`` is not one; else None.
    A bool is no number, an int is a float, nan is no number, a list stands for a tuple
    (and a single string for a tuple of strings); other types are not checked."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        wanted = [_mismatch(a, value) for a in args if a is not type(None)]
        if None in wanted:
            return None
        return " or ".join(wanted) + (" (or none)" if type(None) in args else "")
    if hint is bool:
        return None if isinstance(value, bool) else "true or false"
    if hint is int:
        return None if isinstance(value, int) and not isinstance(value, bool) else "an integer"
    if hint is float:
        number = isinstance(value, int | float) and not isinstance(value, bool)
        return None if number and not math.isnan(value) else "a number"
    if hint is str:
        return None if isinstance(value, str) else "a string"
    if hint is tuple or origin is tuple:
        if isinstance(value, str) and args[:1] == (str,) and args[1:] == (Ellipsis,):
            return None
        if not isinstance(value, list | tuple):
            return "a list"
        items = [args[0]] * len(value) if args[1:] == (Ellipsis,) else list(args)
        if items and len(items) != len(value):
            return f"a list of {len(items)} items"
        for item, v in zip(items, value):
            wanted = _mismatch(item, v)
            if wanted is not None:
                return f"a list of {_PLURAL.get(wanted, wanted)}"
        return None
    if hint is dict or origin in (dict, Mapping) or is_dataclass(hint):
        return None if isinstance(value, Mapping) else "a table"
    return None


def _field_hints(tp: Any) -> dict[str, Any]:
    """Field name -> declared type (optional forms kept) of a dataclass; {} for others."""
    if not is_dataclass(tp):
        return {}
    hints = typing.get_type_hints(tp)
    return {f.name: hints[f.name] for f in fields(tp)}


def _plain(value: Any) -> Any:
    """Dataclasses (by their own ``to_dict`` where they have one), mappings and sequences
    as plain dicts and lists."""
    if hasattr(value, "to_dict"):
        return _plain(value.to_dict())
    if is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value
