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

from reelrestore.engine.stft import StftPlan

NAME = "oracle-envelope"
N_FFT, HOP = 2048, 512


def oracle_envelope_fill(damaged: np.ndarray, target: np.ndarray, cutoff_hz: float, sr: int = 48000,
                         seed: int = 0) -> np.ndarray:
    """``damaged [channels, n]`` with every STFT bin above ``cutoff_hz`` replaced by complex
    Gaussian noise whose power is the target's mean power in that bin's bands, that
    frame: ``[channels, n]`` float32. The transform is the engine's (`StftPlan` of the
    whole item: the LSD's window and hop)."""
    from reelrestore.models.realtime import RealtimeConfig, band_matrix  # torch: only when the bound is asked for

    weights = band_matrix(RealtimeConfig()).numpy().astype(np.float64)  # (bins, bands), columns sum to 1
    to_bins = weights / np.maximum(weights.sum(axis=1, keepdims=True), 1e-12)
    plan = StftPlan(N_FFT, HOP, damaged.shape[1])
    ref = plan.forward(np.asarray(target, np.float64))  # (channels, 2, bins, frames)
    spec = plan.forward(np.asarray(damaged, np.float64))
    power = np.einsum("fn,cnt->cft", to_bins, np.einsum("fn,cft->cnt", weights, ref[:, 0] ** 2 + ref[:, 1] ** 2))
    noise = np.random.default_rng(seed).standard_normal(spec.shape) / np.sqrt(2.0)  # complex Gaussian, unit power
    # Frames of independent noise add in power, not in amplitude: the overlap-add of
    # n_fft / hop of them, normalised by the sum of squared windows, keeps hop / n_fft of
    # the power a coherent signal keeps. Scale the noise back to the target's power.
    noise *= np.sqrt(N_FFT / HOP)
    above = np.arange(plan.n_bins) * sr / N_FFT > cutoff_hz
    spec[:, :, above] = np.sqrt(power[:, None, above]) * noise[:, :, above]
    return plan.inverse(spec).astype(np.float32)
