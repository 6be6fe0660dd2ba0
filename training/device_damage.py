"""The damage chain of :func:`~reelrestore.training.degrade.degrade`, split so that a GPU
makes its heavy part: a data-loader worker draws every random choice of an item (its
``plan``), the trainer's device applies the plans of a whole batch at once.

    worker (CPU, per item):   plan = plan_damage(n, cfg, rng)        # cheap: draws, clicks, slit kernel
    device (per batch):       damaged, target = apply_plans(clean, plans)

Why: on a GPU the damage made per item on the CPU starves the trainer. On an NVIDIA H200
with 15 workers the real-time trainer took 1.9-2.1k segments/s at batch 64 or 256, while
one batch held on the GPU trained at 50 steps/s (12.7k segments/s at batch 256); with the
damage made there, 19.3 steps/s at 256 (4.9k segments/s; `bench/README.md`). The costly
stages (the cut, the warp's band-limited read, the hum, the Gaussian hiss) are dense
per-sample work that a GPU does for a batch in one pass.

The two halves reproduce :func:`degrade` stage for stage, in its order and with its
child random generators: the same ``rng`` gives the same cutoff, clicks, crackle, warp,
level ride and hum. What differs:

* the hiss (before and after the cut) is drawn on the device, from torch's generator
  (a checkpoint carries it, so a resumed run continues it);
* the zero-phase Butterworth is applied as its |H|^2 on a reflect-padded FFT, where
  ``degrade`` runs ``sosfiltfilt``: the same filter, other edges (the first and last
  few ms differ); the slit's convolution and the brick wall's STFT are the same
  operations as on the CPU;
* float32 audio on the device (positions and phases in float64).

Causal (phase-shifting) cuts are not made here: a recipe that draws them (``p_causal > 0``)
damages on the workers.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from .degrade import (
    HOP, N_FFT, SR, DegradeConfig, add_clicks, add_crackle, cut_kernel, db_to_amp, hum_harmonics, level_envelope,
)

__all__ = ["SHAPE_CODES", "apply_plans", "damage_batch", "plan_damage"]

SHAPE_CODES = {"brickwall": 0, "butterworth": 1, "slit": 2}
SLIT_TAPS = 1025  # a slit kernel travels centred in this many taps: cutoffs down to ~50 Hz
HUM_SLOTS = 16  # harmonics a plan can carry
EDGE_PAD = 8192  # reflect padding of the FFT cut: the Butterworth's ringing at 150 Hz dies within it


def plan_damage(n: int, cfg: DegradeConfig, rng: np.random.Generator, sr: int = SR) -> dict[str, Any]:
    """Every random choice :func:`degrade` makes for ``n`` samples under ``cfg``, but the
    hiss: plain arrays of fixed shapes (a DataLoader stacks them into a batch).

    ``impulses [n]`` (clicks + crackle, added before the cut), ``level [n]`` (the gain
    ride), ``warp [6]`` (wow %, Hz, phase, flutter %, Hz, phase), ``cut [3]`` (shape code,
    order, cutoff Hz), ``slit [SLIT_TAPS]`` (the slit's kernel, centred; zeros for other
    shapes), ``hum [2, HUM_SLOTS]`` (amplitude and phase per harmonic), ``hum_hz``,
    ``hiss [2]`` (RMS before and after the cut, 0 = none) and ``cutoff_3db_hz``.
    """
    if not cfg.zero_phase:
        raise ValueError("expected zero-phase cuts for damage on the device, got a causal one "
                         "(p_causal > 0): damage on the data-loader workers (data.extra.damage_on=worker)")
    _, r_warp, r_level, r_clicks, r_crackle, r_hum, _ = rng.spawn(7)  # degrade()'s children, in order
    warp = np.zeros(6)
    for i, (pct, hz) in enumerate(((cfg.wow_percent, cfg.wow_hz), (cfg.flutter_percent, cfg.flutter_hz))):
        if pct > 0:  # wow_flutter draws a phase only for a stage that is on
            warp[3 * i: 3 * i + 3] = pct, hz, r_warp.uniform(0, 2 * np.pi)
    level = level_envelope(n, cfg.level_db, cfg.level_hz, r_level, sr) if cfg.level_db > 0 else np.ones(n)
    impulses = np.zeros(n)
    if cfg.clicks_per_s > 0:
        impulses, _ = add_clicks(impulses, cfg.clicks_per_s, cfg.click_db, r_clicks, sr)
    if cfg.crackle_per_s > 0:
        impulses = add_crackle(impulses, cfg.crackle_per_s, cfg.crackle_db, r_crackle, sr)
    hum = np.zeros((2, HUM_SLOTS))
    if cfg.hum_hz > 0:  # mains_hum's draws: one phase per harmonic under Nyquist, in order
        harmonics = hum_harmonics(cfg.hum_hz, cfg.hum_db, cfg.hum_harmonics, sr=sr)
        if len(harmonics) > HUM_SLOTS:
            raise ValueError(f"expected at most {HUM_SLOTS} hum harmonics for damage on the device, got {len(harmonics)}")
        for slot, (_, amp) in enumerate(harmonics):  # harmonic k in slot k - 1
            hum[:, slot] = amp, r_hum.uniform(0, 2 * np.pi)
    slit = np.zeros(SLIT_TAPS)
    kernel, cutoff_3db = cut_kernel(cfg, sr)
    if kernel is not None:
        if kernel.size > SLIT_TAPS:
            raise ValueError(f"expected a slit cutoff of 50 Hz or more for damage on the device, got {cfg.cutoff_hz:g} Hz")
        mid, h = SLIT_TAPS // 2, kernel.size // 2
        slit[mid - h: mid + h + 1] = kernel
    return {
        "impulses": impulses.astype(np.float32), "level": level.astype(np.float32), "warp": warp,
        "cut": np.array([SHAPE_CODES[cfg.shape], cfg.order, cfg.cutoff_hz]), "slit": slit.astype(np.float32),
        "hum": hum, "hum_hz": float(cfg.hum_hz),
        "hiss": np.array([0.0 if cfg.hiss_db is None else db_to_amp(cfg.hiss_db),
                          0.0 if cfg.hiss_after_db is None else db_to_amp(cfg.hiss_after_db)]),
        "cutoff_3db_hz": float(cutoff_3db),
    }


def apply_plans(clean: torch.Tensor, plans: dict[str, Any], sr: int = SR) -> tuple[torch.Tensor, torch.Tensor]:
    """``clean (B, n)`` damaged by the stacked ``plans`` (tensors or arrays with a leading
    batch axis, as a DataLoader collates :func:`plan_damage`'s dicts), on ``clean``'s
    device. Returns float32 ``(damaged, target)``, each ``(B, n)``, as :func:`degrade`:
    the target is the recording (clean, hiss, warp, level), the damaged copy adds the
    clicks, the cut, the hiss after it (also in the target) and the hum.

    Which rows take which stage is read from the plans where they arrive (the loader's
    CPU tensors), so on a GPU the chain queues its work without waiting on the device."""
    dev = clean.device
    host = {k: torch.as_tensor(plans[k]).cpu() for k in ("cut", "warp", "hum")}  # no copy when already there
    p = {k: torch.as_tensor(v).to(dev, non_blocking=True) for k, v in plans.items() if k != "cutoff_3db_hz"}
    shape = host["cut"][:, 0].round().to(torch.int64)
    rows = {  # row indices per stage, on the device
        "warp": ((host["warp"][:, 0] > 0) | (host["warp"][:, 3] > 0)).nonzero().squeeze(1),
        "brick": (shape == SHAPE_CODES["brickwall"]).nonzero().squeeze(1),
        "fft": (shape != SHAPE_CODES["brickwall"]).nonzero().squeeze(1),
    }
    any_slit = bool((shape == SHAPE_CODES["slit"]).any())
    hum_slots = int((host["hum"][:, 0] > 0).sum(dim=1).max()) if len(shape) else 0
    rows = {k: v.to(dev, non_blocking=True) for k, v in rows.items()}
    x = clean.to(torch.float32)
    b, n = x.shape
    hiss = p["hiss"].to(torch.float32)
    x = x + torch.randn(b, n, device=dev) * hiss[:, 0:1]
    if rows["warp"].numel():
        x = x.index_copy(0, rows["warp"], _warp(x[rows["warp"]], p["warp"][rows["warp"]].to(torch.float64), sr))
    x = x * p["level"].to(torch.float32)
    target = x
    x = x + p["impulses"].to(torch.float32)
    cut, out = p["cut"].to(torch.float64), x
    if rows["brick"].numel():
        out = out.index_copy(0, rows["brick"], _brickwall(x[rows["brick"]], cut[rows["brick"], 2], sr))
    if rows["fft"].numel():
        out = out.index_copy(0, rows["fft"], _fft_cut(x[rows["fft"]], cut[rows["fft"]], p["slit"][rows["fft"]], any_slit, sr))
    x = out
    late = torch.randn(b, n, device=dev) * hiss[:, 1:2]
    x, target = x + late, target + late
    if hum_slots:
        x = x + _hum(n, p["hum_hz"].to(torch.float64), p["hum"][:, :, :hum_slots].to(torch.float64), sr)
    return x, target


def damage_batch(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """A collated batch as the trainers take it (``damaged``, ``target``, ``cutoff_hz`` on
    ``device``): a batch of plans (``clean`` + ``plan``) is damaged there; any other
    batch passes unchanged."""
    if "plan" not in batch:
        return batch
    clean = torch.as_tensor(batch["clean"]).to(device, non_blocking=True)
    damaged, target = apply_plans(clean, batch["plan"])
    return {"damaged": damaged, "target": target, "cutoff_hz": batch["cutoff_hz"]}


# ----------------------------------------------------------------------------- stages


def _warp(x: torch.Tensor, warp: torch.Tensor, sr: int, taps: int = 8) -> torch.Tensor:
    """:func:`~reelrestore.training.degrade.wow_flutter` for rows ``x (R, n)`` with their
    ``warp (R, 6)``: read ``x`` at ``k + d(k)`` by the same Lanczos sum; the displacement
    d in float64 and split into its whole and fractional parts, so positions keep their
    precision at any length."""
    n = x.shape[-1]
    t = torch.arange(n, device=x.device, dtype=torch.float64) / sr
    disp = torch.zeros(x.shape[0], n, device=x.device, dtype=torch.float64)
    for pct, hz, phase in ((warp[:, 0], warp[:, 1], warp[:, 2]), (warp[:, 3], warp[:, 4], warp[:, 5])):
        f = torch.where(pct > 0, hz, torch.ones_like(hz))[:, None]  # an off stage adds 0
        disp += sr * (pct[:, None] / 100.0) / (2 * math.pi * f) * torch.sin(2 * math.pi * f * t + phase[:, None])
    whole = torch.floor(disp)
    frac = disp - whole
    i0 = torch.arange(n, device=x.device)[None, :] + whole.to(torch.int64)
    out = torch.zeros_like(frac)
    wsum = torch.zeros_like(frac)
    for j in range(-taps + 1, taps + 1):
        d = frac - j
        wj = torch.sinc(d) * torch.sinc(d / taps)
        out += torch.gather(x, 1, (i0 + j).clamp(0, n - 1)).to(torch.float64) * wj
        wsum += wj
    return (out / wsum).to(x.dtype)


def _fft_cut(x: torch.Tensor, cut: torch.Tensor, slit: torch.Tensor, any_slit: bool, sr: int) -> torch.Tensor:
    """The Butterworth (zero-phase: |H|^2 in closed form) and slit (its kernel's response)
    rows ``x (R, n)`` cut on one reflect-padded FFT; ``cut (R, 3)`` and ``slit (R, taps)``
    are theirs, ``any_slit`` says whether a slit is among them."""
    n = x.shape[-1]
    pad = min(EDGE_PAD, n - 1)
    xp = torch.nn.functional.pad(x[:, None], (pad, pad), mode="reflect")[:, 0]
    length = xp.shape[-1]
    freqs = torch.fft.rfftfreq(length, 1.0 / sr, device=x.device, dtype=torch.float64)
    # zero-phase Butterworth as scipy designs it (bilinear, prewarped): |H|^2 = 1 / (1 + r^(2n))
    r = torch.tan(math.pi * freqs[None, :].clamp(max=sr / 2 * (1 - 1e-9)) / sr) / torch.tan(math.pi * cut[:, 2:3] / sr)
    gain = 1.0 / (1.0 + r ** (2 * cut[:, 1:2]))
    if any_slit:
        mid = slit.shape[-1] // 2
        circ = torch.zeros(slit.shape[0], length, device=x.device, dtype=torch.float64)
        circ[:, : mid + 1] = slit[:, mid:].to(torch.float64)  # centred kernel, taps 0..h
        circ[:, length - mid:] = slit[:, :mid].to(torch.float64)  # and -h..-1, wrapped
        is_slit = (cut[:, 0:1].round() == SHAPE_CODES["slit"])
        gain = torch.where(is_slit, torch.fft.rfft(circ).real, gain)
    y = torch.fft.irfft(torch.fft.rfft(xp.to(torch.float64)) * gain, length)
    return y[:, pad: pad + n].to(x.dtype)


def _brickwall(x: torch.Tensor, cutoff_hz: torch.Tensor, sr: int) -> torch.Tensor:
    """:func:`~reelrestore.training.degrade.lowpass_brickwall` for a batch: every STFT
    bin above its row's cutoff zeroed (periodic Hann, centred, reflect-padded), weighted
    overlap-add."""
    win = torch.hann_window(N_FFT, periodic=True, device=x.device, dtype=torch.float64)
    spec = torch.stft(x.to(torch.float64), N_FFT, HOP, window=win, center=True, pad_mode="reflect",
                      return_complex=True)
    freqs = torch.arange(spec.shape[1], device=x.device, dtype=torch.float64) * sr / N_FFT
    spec = spec * (freqs[None, :, None] <= cutoff_hz[:, None, None])
    return torch.istft(spec, N_FFT, HOP, window=win, center=True, length=x.shape[-1]).to(x.dtype)


def _hum(n: int, hum_hz: torch.Tensor, hum: torch.Tensor, sr: int) -> torch.Tensor:
    """:func:`~reelrestore.training.degrade.mains_hum` for a batch, from each row's
    amplitudes and phases per harmonic slot ``hum (B, 2, slots)`` (silent rows and slots:
    amplitude 0)."""
    t = torch.arange(n, device=hum.device, dtype=torch.float64) / sr
    out = torch.zeros(hum.shape[0], n, device=hum.device, dtype=torch.float64)
    for slot in range(hum.shape[-1]):
        amp, phase = hum[:, 0, slot], hum[:, 1, slot]
        out += amp[:, None] * torch.sin(2 * math.pi * (slot + 1) * hum_hz[:, None] * t + phase[:, None])
    return out.to(torch.float32)
