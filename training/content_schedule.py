"""When the MSE content term is on: the dynamic content schedule, in plain Python.

More than one trainer uses it (:mod:`reelrestore.training.gan`, :mod:`reelrestore.training.unet`),
on any loop state with the fields :class:`ContentScheduleState` lists
(``reelrestore.training.loop.TrainState`` has them); it watches
:func:`reelrestore.training.losses.passband_error_db`. It needs no torch, so a training
config (:mod:`reelrestore.training.config`) checks its schedule settings before torch loads.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

__all__ = ["CONTENT_SCHEDULES", "ContentSchedule", "ContentScheduleState"]

CONTENT_SCHEDULES = ("constant", "dynamic")


class ContentScheduleState(Protocol):
    """The loop-state fields :class:`ContentSchedule` reads and writes (plain values, so
    they are checkpointed with the rest of the state). ``TrainState`` has them."""

    epoch: int  # 0-based index of the running epoch (read)
    step: int  # batches trained on before this one (read: the latch records it)
    content_off: bool  # latched: the content term is off for good
    content_off_step: int | None  # ``step`` of the G step that latched it
    content_off_reason: str | None  # "epoch" | "passband"
    passband_db_mean: float | None  # running mean (EMA) of the passband error, dB
    passband_steps: int  # G steps that fed the running mean


class ContentSchedule:
    """When the MSE content term is on: ``constant`` (always) or ``dynamic``.

    ``dynamic`` switches it off, once and for good (latched in the state), at the first G
    step where either rule holds:

    * ``off_epoch``: the running epoch (0-based) is ``>= off_epoch``;
    * ``off_below_db``: the generator reproduces its input band: the running mean of
      :func:`~reelrestore.training.losses.passband_error_db` is below ``off_below_db``, after at least ``min_steps``
      observed G steps (so one lucky batch early on cannot end it).

    The running mean is exponential over G steps: the first value starts it, then
    ``mean += (1 - ema_decay) * (value - mean)`` (0.9: about the last 10 G steps).
    Non-finite values are ignored. ``constant`` keeps the running mean too (for logs) but
    never switches off. Usage, once per G step, before the generator loss::

        sched = ContentSchedule.from_config(cfg.loss)
        with torch.no_grad():
            db = passband_error_db(restored, target_spec, cutoff_bins(cutoff_hz, sr, n_fft))
        weight = sched.weight(state, cfg.loss.content_weight, db.item())  # 0.0 once off
        total = adv_weight * adv + weight * content
    """

    def __init__(self, kind: str = "constant", off_epoch: int | None = None, off_below_db: float | None = -20.0,
                 min_steps: int = 50, ema_decay: float = 0.9) -> None:
        if kind not in CONTENT_SCHEDULES:
            raise ValueError(f"expected content schedule in {CONTENT_SCHEDULES}, got {kind!r}")
        if off_epoch is not None and off_epoch < 0:
            raise ValueError(f"expected content_off_epoch >= 0 or None, got {off_epoch}")
        if kind == "dynamic" and off_epoch is None and off_below_db is None:
            raise ValueError("expected content_off_epoch or content_off_below_db for the dynamic content "
                             "schedule, got neither (it could never switch off)")
        if kind == "constant" and off_epoch is not None:
            raise ValueError(f"expected content_off_epoch None with the constant content schedule, got "
                             f"{off_epoch} (it would have no effect; use content_schedule='dynamic')")
        if off_below_db is not None and not math.isfinite(off_below_db):
            raise ValueError(f"expected a finite content_off_below_db or None, got {off_below_db}")
        if min_steps < 0:
            raise ValueError(f"expected content_min_steps >= 0, got {min_steps}")
        if not 0.0 <= ema_decay < 1.0:
            raise ValueError(f"expected 0 <= content_ema_decay < 1, got {ema_decay}")
        self.kind, self.off_epoch, self.off_below_db = kind, off_epoch, off_below_db
        self.min_steps, self.ema_decay = min_steps, ema_decay

    @classmethod
    def from_config(cls, cfg: Any) -> ContentSchedule:
        """From any config with a ``content_schedule`` field and, optionally (else the
        defaults above), ``content_off_epoch``, ``content_off_below_db``,
        ``content_min_steps``, ``content_ema_decay`` (``ThesisLossConfig`` and ``UNetLossConfig`` have all five)."""
        return cls(cfg.content_schedule, getattr(cfg, "content_off_epoch", None),
                   getattr(cfg, "content_off_below_db", -20.0), getattr(cfg, "content_min_steps", 50),
                   getattr(cfg, "content_ema_decay", 0.9))

    def __repr__(self) -> str:
        return (f"ContentSchedule({self.kind!r}, off_epoch={self.off_epoch}, off_below_db={self.off_below_db}, "
                f"min_steps={self.min_steps}, ema_decay={self.ema_decay})")

    def factor(self, state: ContentScheduleState) -> float:
        """The content factor now, 1.0 (on) or 0.0 (off), without observing anything
        (``constant`` is always 1.0, even on a state latched by a dynamic run)."""
        return 0.0 if self.kind == "dynamic" and state.content_off else 1.0

    def weight(self, state: ContentScheduleState, base_weight: float, passband_db: float | None = None) -> float:
        """``base_weight * update(state, passband_db)``: the content weight for this G step."""
        return base_weight * self.update(state, passband_db)

    def update(self, state: ContentScheduleState, passband_db: float | None = None) -> float:
        """Observe one G step: feed ``passband_db`` (this step's :func:`passband_error_db`;
        None: nothing to observe, only the epoch rule runs) into the running mean, latch
        the switch-off if a rule holds, and return the content factor for THIS step: 1.0
        (on) or 0.0 (off). Call exactly once per G step."""
        if passband_db is not None and math.isfinite(passband_db):
            mean = state.passband_db_mean
            state.passband_db_mean = (float(passband_db) if mean is None or state.passband_steps == 0
                                      else mean + (1.0 - self.ema_decay) * (float(passband_db) - mean))
            state.passband_steps += 1
        if self.kind == "dynamic" and not state.content_off:
            reason = None
            if self.off_epoch is not None and state.epoch >= self.off_epoch:
                reason = "epoch"
            elif (self.off_below_db is not None and state.passband_steps >= max(self.min_steps, 1)
                  and state.passband_db_mean is not None and state.passband_db_mean < self.off_below_db):
                reason = "passband"
            if reason is not None:
                state.content_off, state.content_off_step, state.content_off_reason = True, state.step, reason
        return self.factor(state)
