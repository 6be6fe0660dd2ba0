"""Quality metrics (numpy/scipy): MSE, RMSE, SNR, LSD (whole / above / below the cutoff)
and STOI, used by validation and by ``restore-eval``.

All functions take a reference and an estimate of the same shape ``[..., n]`` (time on
the last axis); leading axes (channels) are pooled: sums and means run over them too,
STOI is averaged over them.

LSD follows AP-BWE / AERO: log10 of the STFT power (n_fft 2048, hop 512, periodic Hann,
centred frames with zero padding, no normalisation, power clamped at 1e-8), RMS over the
frequency bins of the band, mean over frames. ``below`` holds bins at or under the
cutoff (what a brick-wall cut keeps), ``above`` the rest; with ``max_hz`` every band stops
at that frequency (a lossy source's own bandwidth: above it there is nothing to score).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import signal

N_FFT, HOP = 2048, 512
LSD_CLAMP = 1e-8
STOI_SR = 10000
BANDS = ("whole", "above", "below")


def _pair(ref: np.ndarray, est: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ref, est = np.asarray(ref, dtype=np.float64), np.asarray(est, dtype=np.float64)
    if ref.shape != est.shape:
        raise ValueError(f"expected reference and estimate of the same shape, got {ref.shape} and {est.shape}")
    if ref.ndim < 1 or ref.shape[-1] == 0:
        raise ValueError(f"expected signals shaped [..., n] with n > 0, got {ref.shape}")
    return ref, est


def mse(ref: np.ndarray, est: np.ndarray) -> float:
    ref, est = _pair(ref, est)
    return float(np.mean((ref - est) ** 2))


def rmse(ref: np.ndarray, est: np.ndarray) -> float:
    return math.sqrt(mse(ref, est))


def snr_db(ref: np.ndarray, est: np.ndarray) -> float:
    """10 log10(sum ref^2 / sum (ref - est)^2); +inf when identical."""
    ref, est = _pair(ref, est)
    noise = float(np.sum((ref - est) ** 2))
    signal_ = float(np.sum(ref ** 2))
    if noise == 0.0:
        return math.inf
    return 10.0 * math.log10(signal_ / noise) if signal_ > 0 else -math.inf


def stft_power(x: np.ndarray, n_fft: int = N_FFT, hop: int = HOP) -> np.ndarray:
    """|STFT|^2 of ``x [..., n]`` -> ``[..., n_fft//2+1, frames]``, frames = 1 + n // hop:
    frame t covers ``x[t*hop - n_fft/2 : t*hop + n_fft/2]`` (zeros outside), periodic Hann."""
    x = np.asarray(x, dtype=np.float64)
    pad = n_fft // 2
    xp = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(pad, pad)])
    frames = np.lib.stride_tricks.sliding_window_view(xp, n_fft, axis=-1)[..., ::hop, :]
    spec = np.fft.rfft(frames * signal.get_window("hann", n_fft), axis=-1)  # [..., frames, bins]
    return np.swapaxes(np.abs(spec) ** 2, -1, -2)


def lsd(ref: np.ndarray, est: np.ndarray, sr: int = 48000, cutoff_hz: float | None = None,
        band: str = "whole", n_fft: int = N_FFT, hop: int = HOP) -> float:
    """Log-spectral distance over ``band`` ('whole', 'above' or 'below' ``cutoff_hz``)."""
    return lsd_bands(ref, est, sr, cutoff_hz, n_fft, hop, bands=(band,))[band]


def lsd_bands(ref: np.ndarray, est: np.ndarray, sr: int = 48000, cutoff_hz: float | None = None,
              n_fft: int = N_FFT, hop: int = HOP, bands: tuple[str, ...] = BANDS,
              max_hz: float | None = None) -> dict[str, float]:
    """LSD for each of ``bands`` from one STFT; 'above'/'below' need ``cutoff_hz``.
    ``max_hz`` drops the bins above it from every band (None = keep all)."""
    ref, est = _pair(ref, est)
    for b in bands:
        if b not in BANDS:
            raise ValueError(f"expected band in {BANDS}, got {b!r}")
        if b != "whole" and cutoff_hz is None:
            raise ValueError(f"band {b!r} needs cutoff_hz, got None")
    diff = np.log10(np.maximum(stft_power(ref, n_fft, hop), LSD_CLAMP)) \
        - np.log10(np.maximum(stft_power(est, n_fft, hop), LSD_CLAMP))  # [..., bins, frames]
    freqs = np.arange(n_fft // 2 + 1) * sr / n_fft
    out = {}
    for b in bands:
        keep = {"whole": freqs >= 0, "above": freqs > (cutoff_hz or 0), "below": freqs <= (cutoff_hz or 0)}[b]
        if max_hz is not None:
            keep = keep & (freqs <= max_hz)
        if not keep.any():
            out[b] = math.nan  # e.g. cutoff above Nyquist: no bin in the band
            continue
        out[b] = float(np.mean(np.sqrt(np.mean(diff[..., keep, :] ** 2, axis=-2))))
    return out


def stoi(ref: np.ndarray, est: np.ndarray, sr: int = 48000, extended: bool = False) -> float:
    """STOI (pystoi) after resampling both to 10 kHz with a polyphase filter; mean over
    leading axes. Needs roughly 0.4 s of non-silent audio, else pystoi returns ~1e-5."""
    from pystoi import stoi as _stoi

    ref, est = _pair(ref, est)
    g = math.gcd(STOI_SR, int(sr))
    if sr != STOI_SR:
        ref = signal.resample_poly(ref, STOI_SR // g, int(sr) // g, axis=-1)
        est = signal.resample_poly(est, STOI_SR // g, int(sr) // g, axis=-1)
    pairs = zip(ref.reshape(-1, ref.shape[-1]), est.reshape(-1, est.shape[-1]))
    return float(np.mean([_stoi(r, e, STOI_SR, extended=extended) for r, e in pairs]))


def all_metrics(ref: np.ndarray, est: np.ndarray, sr: int = 48000,
                cutoff_hz: float | None = None, max_hz: float | None = None) -> dict[str, float | None]:
    """Every metric at once: mse, rmse, snr_db, lsd, lsd_above, lsd_below (None without a
    cutoff), stoi. ``max_hz`` limits the LSD bands (see :func:`lsd_bands`)."""
    bands = lsd_bands(ref, est, sr, cutoff_hz, bands=BANDS if cutoff_hz is not None else ("whole",), max_hz=max_hz)
    return {
        "mse": mse(ref, est),
        "rmse": rmse(ref, est),
        "snr_db": snr_db(ref, est),
        "lsd": bands["whole"],
        "lsd_above": bands.get("above"),
        "lsd_below": bands.get("below"),
        "stoi": stoi(ref, est, sr),
    }


# ------------------------------------------------------------------------------ seams


def _band(x: np.ndarray, lo_hz: float, hi_hz: float, sr: int) -> np.ndarray:
    sos = signal.butter(8, [lo_hz, hi_hz], btype="band", fs=sr, output="sos")
    return signal.sosfiltfilt(sos, np.asarray(x, dtype=np.float64), axis=-1)


def hop_rate_swing_db(x: np.ndarray, hop: int, lo_hz: float, hi_hz: float, sr: int = 48000,
                      window_s: float = 0.05, skip_s: float = 2.0) -> float:
    """How much the level of the band [lo_hz, hi_hz] of ``x [n]`` moves with the engine's
    frame hop: its power in windows of ``window_s`` (a level meter's time constant, short
    against the hop), averaged over all hops phase by phase (the hop-synchronous part;
    random fluctuation averages out), peak to peak in dB. ``skip_s`` at each end are left
    out (the stream's start and end). A steady input restored without seams gives ~0."""
    band = _band(x, lo_hz, hi_hz, sr)[int(skip_s * sr): x.shape[-1] - int(skip_s * sr)]
    win = max(1, int(round(window_s * sr)))
    per_hop = max(1, hop // win)
    win = hop // per_hop  # whole windows per hop, so phases line up
    n_hops = band.size // hop
    if n_hops < 4:
        raise ValueError(f"expected at least 4 hops of {hop} samples after the skipped ends, got {n_hops}")
    hops = band[: n_hops * hop].reshape(n_hops, hop)[:, : per_hop * win]  # a hop's last hop % win samples unused
    power = np.mean(hops.reshape(n_hops, per_hop, win) ** 2, axis=2)  # (hops, phases)
    folded = 10 * np.log10(np.maximum(power.mean(axis=0), 1e-30))
    return float(folded.max() - folded.min())


def deepest_notch_db(x: np.ndarray, lo_hz: float, hi_hz: float, sr: int = 48000) -> float:
    """Depth in dB of the deepest fixed notch of ``x [n]`` between lo_hz and hi_hz: its
    long-term spectrum (Welch) smoothed over 1/6 octave, against the median over the
    octave around each frequency. A smooth band gives a few dB at most."""
    f, p = signal.welch(np.asarray(x, dtype=np.float64), sr, nperseg=4096)
    db = 10 * np.log10(np.maximum(p, 1e-30))
    inside = np.flatnonzero((f >= lo_hz) & (f <= hi_hz))
    depth = 0.0
    for i in inside:
        sixth = (f >= f[i] * 2 ** (-1 / 12)) & (f <= f[i] * 2 ** (1 / 12))
        octave = (f >= f[i] / 2 ** 0.5) & (f <= f[i] * 2 ** 0.5)
        depth = max(depth, float(np.median(db[octave]) - np.mean(db[sixth])))
    return depth
