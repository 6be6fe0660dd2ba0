"""What a perfect envelope is worth: the band above the cutoff filled with noise shaped
by the *reference's* own band energies, frame by frame (an evaluation bound, not a system
that could run: it reads the answer).

The shipped models and the DSP noise fill make the missing band out of a noise-like
excitation under an envelope. How well can any such system score? This fill uses the
target's energy in each of the real-time model's 96 log-spaced bands in every STFT frame
(n_fft 2048, hop 512, the LSD's own framing) with complex Gaussian noise of that power, so
the only thing it lacks is the reference's fine structure: what is left of the LSD above
the cutoff is the price of a noise excitation, not of a wrong level. The evaluation runs
it as the system ``oracle-envelope`` (true cutoff only)::

    python -m reelrestore.training.evaluate --realset realset/ --model oracle-envelope --cutoff true
"""

from __future__ import annotations

import numpy as np
from scipy import signal

NAME = "oracle-envelope"
N_FFT, HOP = 2048, 512


def _frames(x: np.ndarray) -> np.ndarray:
    """STFT as the LSD frames it (centred, zero-padded, periodic Hann): (bins, frames)."""
    padded = np.pad(x, N_FFT // 2)
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP]
    return np.fft.rfft(frames * signal.get_window("hann", N_FFT), axis=-1).T


def _overlap_add(spec: np.ndarray, n: int) -> np.ndarray:
    """Least-squares inverse of :func:`_frames` (weighted overlap-add), ``n`` samples."""
    window = signal.get_window("hann", N_FFT)
    frames = np.fft.irfft(spec.T, n=N_FFT, axis=-1) * window
    length = (frames.shape[0] - 1) * HOP + N_FFT
    out, norm = np.zeros(length), np.zeros(length)
    for t, frame in enumerate(frames):
        out[t * HOP:t * HOP + N_FFT] += frame
        norm[t * HOP:t * HOP + N_FFT] += window ** 2
    return (out / np.maximum(norm, 1e-8))[N_FFT // 2:N_FFT // 2 + n]


def oracle_envelope_fill(damaged: np.ndarray, target: np.ndarray, cutoff_hz: float, sr: int = 48000,
                         seed: int = 0) -> np.ndarray:
    """``damaged [channels, n]`` with every STFT bin above ``cutoff_hz`` replaced by complex
    Gaussian noise whose power is the target's mean power in that bin's bands, that
    frame: ``[channels, n]`` float32."""
    from reelrestore.models.realtime import RealtimeConfig, band_matrix  # torch: only when the bound is asked for

    weights = band_matrix(RealtimeConfig()).numpy().astype(np.float64)  # (bins, bands), columns sum to 1
    to_bins = weights / np.maximum(weights.sum(axis=1, keepdims=True), 1e-12)
    rng = np.random.default_rng(seed)
    above = np.arange(N_FFT // 2 + 1) * sr / N_FFT > cutoff_hz
    out = np.empty(damaged.shape, dtype=np.float32)
    for c in range(damaged.shape[0]):
        ref, spec = _frames(np.asarray(target[c], np.float64)), _frames(np.asarray(damaged[c], np.float64))
        power = to_bins @ (weights.T @ np.abs(ref) ** 2)  # (bins, frames): band means back on the bins
        noise = (rng.standard_normal(spec.shape) + 1j * rng.standard_normal(spec.shape)) / np.sqrt(2.0)
        # Frames of independent noise add in power, not in amplitude: the overlap-add of
        # n_fft / hop of them, normalised by the sum of squared windows, keeps hop / n_fft of
        # the power a coherent signal keeps. Scale the noise back to the target's power.
        noise *= np.sqrt(N_FFT / HOP)
        spec[above] = np.sqrt(power[above]) * noise[above]
        out[c] = _overlap_add(spec, damaged.shape[1])
    return out
