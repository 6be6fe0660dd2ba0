"""Degradation chain that turns clean audio into a damaged film-reel soundtrack.

Every stage is a plain function on float arrays shaped ``[..., n]`` (time on the last
axis, any leading channel axes) at 48 kHz, parameterised explicitly and seeded through a
``numpy.random.Generator``. :func:`degrade` chains them in the order the damage happens
physically and returns the training pair::

    recording = clean + hiss                       # hiss is part of the original: KEPT
    recording = level(wow_flutter(recording))      # transport / print density: shared
    target    = recording
    damaged   = hum(lowpass(crackle(clicks(recording))))

Wow/flutter and level changes are applied to the target as well: the engine passes the
surviving band through unchanged and a frame-local model cannot undo a time warp, so the
pair must stay aligned. With those stages off, ``target == clean + hiss`` exactly.
Clicks and crackle sit on the print, so the reader's low-pass smears them too; hum is
picked up by the playback electronics after the reader and is not low-passed.

Example::

    rng = np.random.default_rng(0)
    damaged, target, info = degrade(clean, DegradeConfig(cutoff_hz=2000, hiss_db=-50), rng)
    cfg = sample_degrade_config(rng)            # random parameters for training
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numba
import numpy as np
from scipy import optimize, signal

from reelrestore.engine.contract import DEFAULT_CONTRACT

SR = DEFAULT_CONTRACT.sample_rate  # damage is made at the rate the models restore
N_FFT, HOP = DEFAULT_CONTRACT.n_fft, DEFAULT_CONTRACT.hop_length  # the brick wall cuts the engine's STFT bins
SHAPES = ("brickwall", "butterworth", "slit")
# Cutoffs the thesis evaluated; training also draws any cutoff up to MAX_CUTOFF_HZ.
THESIS_CUTOFFS_HZ = (150.0, 250.0, 500.0, 1000.0, 1500.0, 2000.0, 3000.0)
MIN_CUTOFF_HZ, MAX_CUTOFF_HZ = 150.0, 8000.0
HUM_DECAY_DB = 6.0  # each hum harmonic this much under the one below


def db_to_amp(db: float) -> float:
    return 10.0 ** (db / 20.0)


def _check_audio(x: np.ndarray, name: str = "clean") -> np.ndarray:
    x = np.asarray(x)
    if x.ndim < 1 or x.shape[-1] == 0:
        raise ValueError(f"expected {name} shaped [..., n] with n > 0, got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"expected {name} as a float array, got dtype {x.dtype}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"expected finite samples in {name}, got NaN or inf")
    return x


# --------------------------------------------------------------------------- low-pass


def lowpass_brickwall(x: np.ndarray, cutoff_hz: float, sr: int = SR,
                      n_fft: int = N_FFT, hop: int = HOP) -> np.ndarray:
    """Zero every STFT bin above ``cutoff_hz`` (periodic Hann, centred, reflect-padded),
    then resynthesise by weighted overlap-add. ``[..., n] -> [..., n]`` float64."""
    assert n_fft % hop == 0, "overlap-add below needs hop to divide n_fft"
    n, pad = x.shape[-1], n_fft // 2
    n_frames = 1 + math.ceil(n / hop)
    extra = (n_frames - 1) * hop + n_fft - (n + 2 * pad)
    lead = [(0, 0)] * (x.ndim - 1)
    xp = np.pad(x, lead + [(pad, pad + extra)], mode="reflect" if n > pad + extra else "constant")
    win = signal.get_window("hann", n_fft)  # periodic
    frames = np.lib.stride_tricks.sliding_window_view(xp, n_fft, axis=-1)[..., ::hop, :]
    spec = np.fft.rfft(frames * win, axis=-1)  # [..., frames, n_fft//2+1]
    spec[..., np.arange(spec.shape[-1]) * sr / n_fft > cutoff_hz] = 0.0
    y = np.fft.irfft(spec, n_fft, axis=-1) * win  # [..., frames, n_fft]
    r = n_fft // hop
    y = y.reshape(*y.shape[:-1], r, hop)  # [..., frames, r, hop]
    out = np.zeros((*y.shape[:-3], n_frames + r - 1, hop))
    norm = np.zeros((n_frames + r - 1, hop))
    w2 = (win ** 2).reshape(r, hop)
    for j in range(r):
        out[..., j:j + n_frames, :] += y[..., :, j, :]
        norm[j:j + n_frames] += w2[j]
    # norm is 1.5 everywhere except the padded ends, which are cropped before dividing.
    return out.reshape(*out.shape[:-2], -1)[..., pad:pad + n] / norm.reshape(-1)[pad:pad + n]


def lowpass_butterworth(x: np.ndarray, cutoff_hz: float, order: int = 8, sr: int = SR,
                        zero_phase: bool = True) -> np.ndarray:
    """Butterworth low-pass. Zero-phase (sosfiltfilt) is -6 dB at the cutoff with twice
    the slope; causal (sosfilt, like the analog original) is -3 dB with phase shift."""
    sos = signal.butter(order, cutoff_hz, btype="low", fs=sr, output="sos")
    if zero_phase:
        return signal.sosfiltfilt(sos, x, axis=-1)
    return signal.sosfilt(sos, x, axis=-1)


# sinc^2(x) = 1/2 at x = 0.44295: the -6 dB point of one triangular kernel.
_SINC2_HALF = 0.44295


def slit_kernel(cutoff_hz: float, sr: int = SR, spread: float = 0.15) -> np.ndarray:
    """Impulse response ``[2h+1]`` (unit DC gain, symmetric) of an optical slit reader.

    Model: the photocell integrates the track over the width w of the reading slit, a
    moving average whose response is sinc(f w / v) at film speed v. The print was itself
    exposed through a recording slit of about the same width, so the chain is
    sinc^2(f w / v): a triangular kernel in time, nulls at multiples of v / w and no
    polarity flips. Real slits have width tolerance and azimuth error, which averages
    neighbouring widths and fills the nulls: we average triangles whose width varies by
    ``±spread``. The width is solved so that the response is exactly -6 dB at
    ``cutoff_hz``; lens and emulsion losses are folded into that one number.
    """

    spreads = 1.0 + spread * np.linspace(-1.0, 1.0, 9)

    def kernel(half_width: float) -> np.ndarray:
        widths = half_width * spreads
        t = np.arange(-math.ceil(widths.max()), math.ceil(widths.max()) + 1)
        k = np.maximum(1.0 - np.abs(t) / widths[:, None], 0.0).mean(axis=0)  # one triangle per row
        return k / k.sum()

    def gain_minus_half(half_width: float) -> float:
        k = kernel(half_width)
        t = np.arange(k.size) - k.size // 2
        return float(np.sum(k * np.cos(2 * np.pi * cutoff_hz * t / sr))) - 0.5

    guess = _SINC2_HALF * sr / cutoff_hz
    return kernel(optimize.brentq(gain_minus_half, 0.5 * guess, 2.0 * guess, xtol=1e-6))


def lowpass_slit(x: np.ndarray, cutoff_hz: float, sr: int = SR, spread: float = 0.15) -> np.ndarray:
    """Gentle sinc^2-like roll-off of an optical slit (see :func:`slit_kernel`), zero-phase,
    edges reflected. ``[..., n] -> [..., n]``."""
    return _convolve_slit(x, slit_kernel(cutoff_hz, sr, spread))


def _convolve_slit(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    h = k.size // 2
    x2 = x.reshape(-1, x.shape[-1])
    xp = np.pad(x2, [(0, 0), (h, h)], mode="reflect" if x.shape[-1] > h else "constant")
    return signal.fftconvolve(xp, k[None, :], mode="valid", axes=-1).reshape(x.shape)


def _slit_response(kernel: np.ndarray, freqs_hz: np.ndarray, sr: int) -> np.ndarray:
    """Real amplitude response of a symmetric slit kernel at ``freqs_hz``."""
    t = np.arange(kernel.size) - kernel.size // 2
    return np.abs(np.cos(2 * np.pi * np.outer(freqs_hz, t) / sr) @ kernel)


def lowpass_response(shape: str, order: int, cutoff_hz: float, freqs_hz: np.ndarray, sr: int = SR,
                     zero_phase: bool = True, slit_spread: float = 0.15) -> np.ndarray:
    """Amplitude response ``[len(freqs)]`` that :func:`lowpass` applies: |H|^2 of a
    zero-phase Butterworth (run forward and back), |H| of a causal one, the slit kernel's
    (real) response, 1/0 for the brick wall."""
    freqs_hz = np.atleast_1d(np.asarray(freqs_hz, dtype=np.float64))
    if shape == "brickwall":
        return (freqs_hz <= cutoff_hz).astype(np.float64)
    if shape == "butterworth":
        sos = signal.butter(order, cutoff_hz, btype="low", fs=sr, output="sos")
        h = np.abs(signal.sosfreqz(sos, worN=freqs_hz, fs=sr)[1])
        return h**2 if zero_phase else h
    return _slit_response(slit_kernel(cutoff_hz, sr, slit_spread), freqs_hz, sr)


def minus3db_hz(shape: str, order: int, cutoff_hz: float, sr: int = SR, zero_phase: bool = True,
                slit_spread: float = 0.15) -> float:
    """Where :func:`lowpass_response` crosses -3 dB: the cutoff as the engine estimates
    it and the evaluation scores it. The zero-phase shapes are -6 dB at ``cutoff_hz``, so
    their -3 dB point lies below it; a causal Butterworth's is ``cutoff_hz`` itself.

    Cheap enough for every training item: the Butterworth in closed form (scipy designs
    it by the prewarped bilinear transform, |H|^2 = 1 / (1 + (tan(pi f/sr) / tan(pi fc/sr))^(2n))),
    the slit by a root search on one kernel's response."""
    if shape == "brickwall" or (shape == "butterworth" and not zero_phase):
        return float(cutoff_hz)
    target = 10 ** (-3 / 20)
    if shape == "butterworth":  # zero-phase: |H|^2 = target
        ratio = (1.0 / target - 1.0) ** (1.0 / (2 * order))
        return float(sr / np.pi * np.arctan(ratio * np.tan(np.pi * cutoff_hz / sr)))
    return _slit_minus3db_hz(slit_kernel(cutoff_hz, sr, slit_spread), cutoff_hz, sr)


def _slit_minus3db_hz(kernel: np.ndarray, cutoff_hz: float, sr: int) -> float:
    target = 10 ** (-3 / 20)
    return float(optimize.brentq(lambda f: _slit_response(kernel, np.array([f]), sr)[0] - target,
                                 0.05 * cutoff_hz, cutoff_hz, xtol=1e-4))


def cut_kernel(cfg: "DegradeConfig", sr: int = SR) -> tuple[np.ndarray | None, float]:
    """The slit's kernel (None for the other shapes) and the cut's -3 dB point: the
    kernel solved once, for the cut and for that point."""
    if cfg.shape == "slit":
        kernel = slit_kernel(cfg.cutoff_hz, sr, cfg.slit_spread)
        return kernel, _slit_minus3db_hz(kernel, cfg.cutoff_hz, sr)
    return None, minus3db_hz(cfg.shape, cfg.order, cfg.cutoff_hz, sr, cfg.zero_phase, cfg.slit_spread)


def lowpass(x: np.ndarray, cutoff_hz: float, shape: str = "butterworth", order: int = 8,
            sr: int = SR, zero_phase: bool = True, slit_spread: float = 0.15) -> np.ndarray:
    """Dispatch on ``shape`` in :data:`SHAPES`."""
    if shape == "brickwall":
        return lowpass_brickwall(x, cutoff_hz, sr)
    if shape == "butterworth":
        return lowpass_butterworth(x, cutoff_hz, order, sr, zero_phase)
    if shape == "slit":
        return lowpass_slit(x, cutoff_hz, sr, slit_spread)
    raise ValueError(f"expected shape in {SHAPES}, got {shape!r}")


# ------------------------------------------------------------------- additive damage


def hiss(shape: tuple[int, ...], level_db: float, rng: np.random.Generator) -> np.ndarray:
    """White Gaussian hiss whose RMS is ``level_db`` dB re full scale (1.0)."""
    return rng.standard_normal(shape) * db_to_amp(level_db)


def add_clicks(x: np.ndarray, per_s: float, peak_db: float, rng: np.random.Generator,
               sr: int = SR) -> tuple[np.ndarray, list[int]]:
    """Dust and scratch clicks: Poisson-timed bursts 0.1-2 ms long, one polarity plus some
    roughness, peak between ``peak_db - 10`` and ``peak_db``. Same time on all channels.
    Returns the damaged copy and the click start samples."""
    n = x.shape[-1]
    y = np.array(x, dtype=np.float64)
    starts = np.sort(rng.integers(0, n, rng.poisson(per_s * n / sr)))
    for s in starts:
        length = int(rng.integers(max(2, sr // 10000), max(3, sr // 500)))
        burst = np.hanning(length + 2)[1:-1] * (rng.choice([-1.0, 1.0]) + 0.6 * rng.standard_normal(length))
        burst *= db_to_amp(peak_db - rng.uniform(0.0, 10.0)) / np.max(np.abs(burst))
        end = min(n, s + length)
        y[..., s:end] += burst[: end - s]
    return y, [int(s) for s in starts]


def add_crackle(x: np.ndarray, per_s: float, peak_db: float, rng: np.random.Generator,
                sr: int = SR) -> np.ndarray:
    """Crackle: dense, tiny impulses (exponential amplitudes, random sign) smeared over
    three samples. Same impulses on all channels."""
    n = x.shape[-1]
    pos = rng.integers(0, n, rng.poisson(per_s * n / sr))
    amp = np.minimum(rng.exponential(0.3, pos.size), 1.0) * rng.choice([-1.0, 1.0], pos.size)
    train = np.zeros(n)
    np.add.at(train, pos, amp * db_to_amp(peak_db))
    return x + np.convolve(train, [0.5, 1.0, 0.5], mode="same")


def mains_hum(n: int, freq_hz: float, level_db: float, rng: np.random.Generator,
              harmonics: int = 6, decay_db: float = HUM_DECAY_DB, sr: int = SR) -> np.ndarray:
    """Mains hum ``[n]``: fundamental with RMS ``level_db`` dBFS plus harmonics 2..``harmonics``,
    each ``decay_db`` quieter than the one below, random phases."""
    t = np.arange(n) / sr
    return sum(amp * np.sin(2 * np.pi * k * freq_hz * t + rng.uniform(0, 2 * np.pi))
               for k, amp in hum_harmonics(freq_hz, level_db, harmonics, decay_db, sr))


def hum_harmonics(freq_hz: float, level_db: float, harmonics: int = 6, decay_db: float = HUM_DECAY_DB,
                  sr: int = SR) -> list[tuple[int, float]]:
    """``(k, peak amplitude)`` of each harmonic of :func:`mains_hum` under Nyquist, in the
    order it draws their phases."""
    amp = db_to_amp(level_db) * math.sqrt(2.0)
    return [(k, amp * db_to_amp(-decay_db * (k - 1))) for k in range(1, harmonics + 1) if k * freq_hz < sr / 2]


# -------------------------------------------------------------- shared (x and target)


def _interpolate(x: np.ndarray, pos: np.ndarray, taps: int = 8) -> np.ndarray:
    """Band-limited (Lanczos, ``2*taps`` points) read of ``x [..., n]`` at fractional
    positions ``pos [m]``; edges held. Returns ``[..., m]``."""
    rows = np.ascontiguousarray(x, dtype=np.float64).reshape(-1, x.shape[-1])
    out = _lanczos_read(rows, np.ascontiguousarray(pos, dtype=np.float64), taps)
    return out.reshape(*x.shape[:-1], pos.size)


@numba.njit(cache=True, nogil=True)
def _lanczos_read(rows: np.ndarray, pos: np.ndarray, taps: int) -> np.ndarray:
    """:func:`_interpolate` on ``rows [r, n]``. Tap ``j`` at ``d = frac - j`` weighs
    sinc(d) sinc(d / taps); neither sine is evaluated per tap: sin(pi d) = (-1)^j
    sin(pi frac), and sin(pi d / taps) follows from the sine and cosine of pi frac / taps
    by the angle-difference identity. (The damage of every training item is made on the
    CPU at each step; with np.sinc per tap this read was a third of it.)"""
    r, n = rows.shape
    out = np.zeros((r, pos.size))
    sin_b = np.sin(np.pi * np.arange(-taps + 1, taps + 1) / taps)
    cos_b = np.cos(np.pi * np.arange(-taps + 1, taps + 1) / taps)
    acc = np.zeros(r)
    for k in range(pos.size):
        i0 = int(np.floor(pos[k]))
        frac = pos[k] - i0
        if frac == 0.0:  # on a sample: every other tap's sinc is 0
            i = min(max(i0, 0), n - 1)
            for c in range(r):
                out[c, k] = rows[c, i]
            continue
        scale = np.sin(np.pi * frac) * taps / np.pi**2
        sin_a, cos_a = np.sin(np.pi * frac / taps), np.cos(np.pi * frac / taps)
        acc[:] = 0.0
        wsum = 0.0
        for t in range(2 * taps):
            j = t - taps + 1
            d = frac - j
            w = scale * (sin_a * cos_b[t] - cos_a * sin_b[t]) / (d * d)
            if j % 2:
                w = -w
            i = min(max(i0 + j, 0), n - 1)
            for c in range(r):
                acc[c] += rows[c, i] * w
            wsum += w
        for c in range(r):
            out[c, k] = acc[c] / wsum
    return out


def wow_flutter(x: np.ndarray, rng: np.random.Generator, wow_percent: float = 0.0,
                wow_hz: float = 0.8, flutter_percent: float = 0.0, flutter_hz: float = 24.0,
                sr: int = SR) -> np.ndarray:
    """Pitch modulation by reading ``x`` through a time-varying delay. Speed deviates by
    ``±wow_percent`` % at ``wow_hz`` and ``±flutter_percent`` % at ``flutter_hz`` (random
    phases), i.e. read position n + sr * sum(a / (2 pi f) * sin(2 pi f t + phi))."""
    n = x.shape[-1]
    t = np.arange(n) / sr
    pos = np.arange(n, dtype=np.float64)
    for pct, f in ((wow_percent, wow_hz), (flutter_percent, flutter_hz)):
        if pct > 0:
            pos += sr * (pct / 100.0) / (2 * np.pi * f) * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
    return _interpolate(x, pos)


def level_envelope(n: int, depth_db: float, rate_hz: float, rng: np.random.Generator,
                   sr: int = SR) -> np.ndarray:
    """Slow gain curve ``[n]``: knots every ``1/rate_hz`` s drawn in ``±depth_db``,
    joined by raised-cosine ramps (print density, changeovers, fader rides)."""
    step = max(1, int(sr / rate_hz))
    knots = db_to_amp(rng.uniform(-depth_db, depth_db, n // step + 2))
    idx = np.arange(n) / step
    k = idx.astype(np.int64)
    s = 0.5 - 0.5 * np.cos(np.pi * (idx - k))
    return knots[k] * (1 - s) + knots[k + 1] * s


# ------------------------------------------------------------------------ the chain


@dataclass
class DegradeConfig:
    """One set of damage parameters. Defaults: Butterworth cut at 2 kHz with -60 dBFS hiss."""

    # Where the surviving band ends. -6 dB point for the zero-phase shapes so one number
    # means the same across shapes; the model gets it as its `cutoff_hz` input.
    cutoff_hz: float = 2000.0
    # brickwall = idealised digital cut (the thesis); butterworth = analog reader
    # electronics; slit = the optical aperture itself, the gentlest and most realistic.
    shape: str = "butterworth"
    # Butterworth order (per pass). Analog readers and the thesis range 2..8.
    order: int = 8
    # Zero phase keeps the surviving band time-aligned with the target, which the
    # engine's band merge relies on; False = causal, as a real analog filter.
    zero_phase: bool = True
    # Slit width tolerance / azimuth error: averages widths, fills the sinc^2 nulls.
    slit_spread: float = 0.15
    # Hiss RMS in dBFS, None = none. Archivists keep hiss: it goes into the TARGET too.
    hiss_db: float | None = -60.0
    # Hiss that enters AFTER the cut, so it stays broadband above it (the print's grain
    # read by a wide photocell, the playback chain), in dBFS; None = none. Also kept in
    # the target: above the cut the reel then holds this hiss and the model must add the
    # lost signal to it, not paint over it.
    hiss_after_db: float | None = None
    # Dust/scratch clicks per second (Poisson) and their peak level in dBFS.
    clicks_per_s: float = 0.0
    click_db: float = -12.0
    # Crackle: many tiny impulses per second and their peak level in dBFS.
    crackle_per_s: float = 0.0
    crackle_db: float = -40.0
    # Mains hum fundamental (50 Europe, 60 Americas; 0 = off), its RMS in dBFS, and how
    # many harmonics (rectifiers and transformers make a buzz, not a pure tone).
    hum_hz: float = 0.0
    hum_db: float = -50.0
    hum_harmonics: int = 6
    # Wow: slow speed drift (eccentric reels), peak deviation in percent, rate in Hz.
    wow_percent: float = 0.0
    wow_hz: float = 0.8
    # Flutter: fast speed jitter; 24 Hz is the frame rate of sound film (perforations).
    flutter_percent: float = 0.0
    flutter_hz: float = 24.0
    # Slow level changes (density of the print), max deviation in dB and knot rate.
    level_db: float = 0.0
    level_hz: float = 0.5

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ValueError(f"expected shape in {SHAPES}, got {self.shape!r}")
        if not 0 < self.cutoff_hz < SR / 2:
            raise ValueError(f"expected 0 < cutoff_hz < {SR // 2}, got {self.cutoff_hz}")
        if self.order < 1:
            raise ValueError(f"expected order >= 1, got {self.order}")
        for name in ("clicks_per_s", "crackle_per_s", "hum_hz", "wow_percent", "flutter_percent", "level_db"):
            if getattr(self, name) < 0:
                raise ValueError(f"expected {name} >= 0, got {getattr(self, name)}")
        for name in ("wow_hz", "flutter_hz", "level_hz"):
            if getattr(self, name) <= 0:
                raise ValueError(f"expected {name} > 0, got {getattr(self, name)}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def degrade(clean: np.ndarray, cfg: DegradeConfig, rng: np.random.Generator,
            sr: int = SR) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Damage ``clean [..., n]`` per ``cfg``. Returns ``(damaged, target, info)``, both
    float32 ``[..., n]``; ``info`` holds the config and where clicks landed.

    Each stage draws from its own child generator, so switching one stage on or off does
    not change the randomness of the others (same seed, same hiss).
    """
    x = _check_audio(clean).astype(np.float64)
    r_hiss, r_warp, r_level, r_clicks, r_crackle, r_hum, r_late = rng.spawn(7)
    n = x.shape[-1]
    if cfg.hiss_db is not None:
        x = x + hiss(x.shape, cfg.hiss_db, r_hiss)
    if cfg.wow_percent > 0 or cfg.flutter_percent > 0:
        x = wow_flutter(x, r_warp, cfg.wow_percent, cfg.wow_hz, cfg.flutter_percent, cfg.flutter_hz, sr)
    if cfg.level_db > 0:
        x = x * level_envelope(n, cfg.level_db, cfg.level_hz, r_level, sr)
    target, clicks = x, []
    if cfg.clicks_per_s > 0:
        x, clicks = add_clicks(x, cfg.clicks_per_s, cfg.click_db, r_clicks, sr)
    if cfg.crackle_per_s > 0:
        x = add_crackle(x, cfg.crackle_per_s, cfg.crackle_db, r_crackle, sr)
    kernel, cutoff_3db = cut_kernel(cfg, sr)
    if kernel is not None:
        x = _convolve_slit(x, kernel)
    else:
        x = lowpass(x, cfg.cutoff_hz, cfg.shape, cfg.order, sr, cfg.zero_phase, cfg.slit_spread)
    if cfg.hiss_after_db is not None:
        late = hiss(x.shape, cfg.hiss_after_db, r_late)
        x, target = x + late, target + late
    if cfg.hum_hz > 0:
        x = x + mains_hum(n, cfg.hum_hz, cfg.hum_db, r_hum, cfg.hum_harmonics, sr=sr)
    info = {"cutoff_hz": float(cfg.cutoff_hz),
            "cutoff_3db_hz": cutoff_3db,
            "config": cfg.to_dict(), "click_samples": clicks}
    return x.astype(np.float32), target.astype(np.float32), info


# ------------------------------------------------------------------ random sampling


@dataclass(frozen=True)
class DegradeRanges:
    """Distributions :func:`sample_degrade_config` draws from. Each optional damage is on
    with its probability ``p_*``; ranges are uniform unless said otherwise."""

    # Half the draws hit a cutoff the thesis reports on, so results compare directly;
    # the rest are log-uniform in cutoff_range_hz so the model generalises between them.
    thesis_cutoffs_hz: tuple[float, ...] = THESIS_CUTOFFS_HZ
    p_thesis_cutoff: float = 0.5
    cutoff_range_hz: tuple[float, float] = (MIN_CUTOFF_HZ, MAX_CUTOFF_HZ)
    shapes: tuple[str, ...] = SHAPES
    orders: tuple[int, ...] = (2, 4, 6, 8)
    # Causal filters shift the kept band's phase away from the target; off by default.
    p_causal: float = 0.0
    # A few hiss-free examples so silence stays silence.
    p_hiss: float = 0.9
    hiss_db: tuple[float, float] = (-72.0, -36.0)
    # Hiss after the cut (broadband above it); off by default, the real-data recipe uses it.
    p_hiss_after: float = 0.0
    hiss_after_db: tuple[float, float] = (-75.0, -45.0)
    p_clicks: float = 0.3
    clicks_per_s: tuple[float, float] = (0.5, 10.0)
    click_db: tuple[float, float] = (-30.0, -6.0)
    p_crackle: float = 0.3
    crackle_per_s: tuple[float, float] = (20.0, 400.0)
    crackle_db: tuple[float, float] = (-50.0, -28.0)
    p_hum: float = 0.3
    hum_db: tuple[float, float] = (-65.0, -35.0)
    p_wow: float = 0.2
    wow_percent: tuple[float, float] = (0.02, 0.3)
    wow_hz: tuple[float, float] = (0.3, 3.0)
    flutter_percent: tuple[float, float] = (0.0, 0.1)
    flutter_hz: tuple[float, float] = (6.0, 96.0)
    p_level: float = 0.2
    level_db: tuple[float, float] = (0.5, 6.0)
    level_hz: tuple[float, float] = (0.2, 2.0)


def sample_degrade_config(rng: np.random.Generator, ranges: DegradeRanges | None = None) -> DegradeConfig:
    """Draw a random :class:`DegradeConfig` for training."""
    r = ranges if ranges is not None else DegradeRanges()
    u = lambda lo_hi: float(rng.uniform(*lo_hi))  # noqa: E731
    on = lambda p: bool(rng.random() < p)  # noqa: E731
    if on(r.p_thesis_cutoff):
        cutoff = float(rng.choice(r.thesis_cutoffs_hz))
    else:
        cutoff = float(np.exp(rng.uniform(*np.log(r.cutoff_range_hz))))
    wow = on(r.p_wow)
    return DegradeConfig(
        cutoff_hz=cutoff,
        shape=str(rng.choice(r.shapes)),
        order=int(rng.choice(r.orders)),
        zero_phase=not on(r.p_causal),
        hiss_db=u(r.hiss_db) if on(r.p_hiss) else None,
        clicks_per_s=u(r.clicks_per_s) if on(r.p_clicks) else 0.0,
        click_db=u(r.click_db),
        crackle_per_s=u(r.crackle_per_s) if on(r.p_crackle) else 0.0,
        crackle_db=u(r.crackle_db),
        hum_hz=float(rng.choice([50.0, 60.0])) if on(r.p_hum) else 0.0,
        hum_db=u(r.hum_db),
        wow_percent=u(r.wow_percent) if wow else 0.0,
        wow_hz=u(r.wow_hz),
        flutter_percent=u(r.flutter_percent) if wow else 0.0,
        flutter_hz=u(r.flutter_hz),
        level_db=u(r.level_db) if on(r.p_level) else 0.0,
        level_hz=u(r.level_hz),
        # drawn last, and only when on, so recipes without it keep their exact draws
        hiss_after_db=u(r.hiss_after_db) if r.p_hiss_after > 0 and on(r.p_hiss_after) else None,
    )
