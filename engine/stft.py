"""STFT and inverse STFT of batches of frames, compiled with numba.

The transform is the one every reelrestore model is trained on (torch.stft with
``center=True, pad_mode='reflect'`` and a periodic Hann window:
``reelrestore.models.spectral.stft``, held to this one by tests/test_spectral_parity.py),
so the engine can hand the model exactly the spectrum it learned from, without importing
torch:

    spectrum[b, 0, k, t] + 1j * spectrum[b, 1, k, t]
        = sum_n  xpad[b, t*hop + n] * window[n] * exp(-2j*pi*k*n/n_fft)

where ``xpad`` is the frame reflect-padded by ``n_fft // 2`` on both sides. The inverse
is the least-squares overlap-add (Griffin & Lim 1984) that ``torch.istft`` computes: the
windowed inverse FFTs are summed and divided by the summed squared window, which makes
``inverse(forward(x)) == x`` to rounding for any frame length longer than ``n_fft // 2``.

``np.fft`` works inside ``@njit`` through the rocket-fft package (imported for its side
effect of registering the FFT with numba). Kernels take preallocated outputs; the plan
object owns the window, the squared-window normalisation and the work buffers.
"""

from __future__ import annotations

import numba
import numpy as np
import rocket_fft  # noqa: F401  (registers np.fft for numba)

from .contract import Contract, n_stft_frames


def periodic_hann(n: int) -> np.ndarray:
    """Periodic Hann window of length n (float64), as torch.hann_window(n, periodic=True)."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)


@numba.njit(cache=True, nogil=True)
def _reflect(j: int, length: int) -> int:
    if j < 0:
        return -j
    if j >= length:
        return 2 * (length - 1) - j
    return j


@numba.njit(cache=True, nogil=True)
def stft_kernel(frames, window, hop, work, out, first=0):
    """Centred STFT of each row of `frames`: its columns first, first + 1, ... (as many as
    `out` holds).

    frames: (B, L) float32/64 — time signals
    window: (n_fft,) float64 — analysis window
    work:   (>= T, n_fft) float64 — scratch
    out:    (B, 2, n_fft // 2 + 1, T) — real and imaginary parts, written in place
    """
    n_batch, length = frames.shape
    n_fft = window.shape[0]
    pad = n_fft // 2
    n_frames = out.shape[3]
    n_bins = out.shape[2]
    rows = work[:n_frames]
    for b in range(n_batch):
        for t in range(n_frames):  # (T, n_fft) windowed, reflect-padded frames
            start = (first + t) * hop - pad
            for i in range(n_fft):
                rows[t, i] = frames[b, _reflect(start + i, length)] * window[i]
        spec = np.fft.rfft(rows, axis=-1)  # (T, n_bins) complex128
        for k in range(n_bins):
            for t in range(n_frames):
                out[b, 0, k, t] = spec[t, k].real
                out[b, 1, k, t] = spec[t, k].imag


@numba.njit(cache=True, nogil=True)
def istft_kernel(spectrum, window, hop, inv_wsum, cwork, acc, out):
    """Inverse of `stft_kernel` by weighted overlap-add.

    spectrum: (B, 2, n_fft // 2 + 1, T)
    window:   (n_fft,) float64 — synthesis window (= analysis window)
    inv_wsum: (P,) float64 — 1 / sum of squared windows over the padded frame, 0 where it vanishes
    cwork:    (T, n_fft // 2 + 1) complex128 — scratch
    acc:      (P,) float64 — scratch, P >= (T - 1) * hop + n_fft
    out:      (B, L) — time signals, written in place
    """
    n_batch, length = out.shape
    n_fft = window.shape[0]
    pad = n_fft // 2
    n_frames = spectrum.shape[3]
    n_bins = spectrum.shape[2]
    for b in range(n_batch):
        for k in range(n_bins):
            for t in range(n_frames):
                cwork[t, k] = spectrum[b, 0, k, t] + 1j * spectrum[b, 1, k, t]
        frames = np.fft.irfft(cwork, n_fft, axis=-1)  # (T, n_fft) float64
        acc[:] = 0.0
        for t in range(n_frames):
            start = t * hop
            for i in range(n_fft):
                acc[start + i] += frames[t, i] * window[i]
        for n in range(length):
            out[b, n] = acc[n + pad] * inv_wsum[n + pad]


class StftPlan:
    """Forward and inverse STFT of frames of a fixed length.

    >>> plan = StftPlan.from_contract(DEFAULT_CONTRACT)   # n_fft 2048, hop 512, 24000 samples
    >>> spec = plan.forward(frames)          # (B, 24000) -> (B, 2, 1025, 47)
    >>> back = plan.inverse(spec)            # (B, 2, 1025, 47) -> (B, 24000)
    """

    def __init__(self, n_fft: int, hop: int, length: int, window: str = "hann"):
        if window != "hann":
            raise ValueError(f"expected window 'hann', got {window!r}")
        if not 0 < hop <= n_fft:
            raise ValueError(f"expected 0 < hop <= n_fft ({n_fft}), got hop={hop}")
        if length <= n_fft // 2:
            raise ValueError(
                f"expected a frame longer than n_fft/2 = {n_fft // 2} samples "
                f"(reflect padding), got {length}"
            )
        self.n_fft, self.hop, self.length = n_fft, hop, length
        self.n_bins = n_fft // 2 + 1
        self.n_frames = n_stft_frames(length, hop)
        self.window = periodic_hann(n_fft)
        padded = max(length + n_fft, (self.n_frames - 1) * hop + n_fft)
        wsum = np.zeros(padded)
        for t in range(self.n_frames):
            wsum[t * hop : t * hop + n_fft] += self.window**2
        self._inv_wsum = np.where(wsum > 1e-10, 1.0 / np.maximum(wsum, 1e-10), 0.0)
        if np.any(wsum[n_fft // 2 : n_fft // 2 + length] <= 1e-10):
            raise ValueError(f"hop {hop} leaves samples uncovered by the window (NOLA fails)")
        self._work = np.empty((self.n_frames, n_fft))
        self._cwork = np.empty((self.n_frames, self.n_bins), dtype=np.complex128)
        self._acc = np.empty(padded)

    @classmethod
    def from_contract(cls, contract: Contract, length: int | None = None) -> StftPlan:
        """The contract's transform of `length` samples (default: one frame)."""
        return cls(contract.n_fft, contract.hop_length, contract.frame_length if length is None else length,
                   contract.window)

    @property
    def spectrum_shape(self) -> tuple[int, int, int]:
        """Shape of one frame's spectrum: (2, n_bins, n_frames)."""
        return (2, self.n_bins, self.n_frames)

    def forward(self, frames: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """(B, length) -> (B, 2, n_bins, n_frames), in `out` when given."""
        assert frames.ndim == 2 and frames.shape[1] == self.length, frames.shape
        if out is None:
            out = np.empty((frames.shape[0], *self.spectrum_shape), dtype=frames.dtype)
        stft_kernel(frames, self.window, self.hop, self._work, out)
        return out

    def forward_sliding(self, frames: np.ndarray, previous: np.ndarray | None, shift: int,
                        out: np.ndarray | None = None) -> np.ndarray:
        """`forward` of frames that follow one another every `shift` samples (a multiple of
        the hop), reusing what the previous frame already transformed; in `out` when given
        (it must not be `previous`'s memory).

        frames: (N, C, L), frame n + 1 starting `shift` samples after frame n (per channel);
        previous: (C, 2, bins, T), the spectrum of the frame before frames[0], or None.
        A column whose window lies inside both frames is the same column of the previous
        frame, `shift / hop` columns later; only the columns at the frame's ends (reflect
        padding) and the newest ones are computed. Equal to `forward` to the last bit.
        """
        n, c, length = frames.shape
        if out is None:
            out = np.empty((n, c, *self.spectrum_shape), dtype=frames.dtype)
        m, pad, hop = shift // self.hop, self.n_fft // 2, self.hop
        inner_lo, inner_hi = -(-pad // hop), (length - pad) // hop  # columns wholly inside a frame
        lo, hi = inner_lo, inner_hi - m + 1  # new columns [lo, hi) = previous [lo + m, hi + m)
        if shift % hop or m < 1 or hi <= lo:
            return self.forward(frames.reshape(n * c, length), out.reshape(n * c, *self.spectrum_shape)).reshape(out.shape)
        for i in range(n):
            spec = out[i]
            if previous is None:
                stft_kernel(frames[i], self.window, hop, self._work, spec)
            else:
                spec[..., lo:hi] = previous[..., lo + m : hi + m]
                stft_kernel(frames[i], self.window, hop, self._work, spec[..., :lo])  # the reflect-padded start
                stft_kernel(frames[i], self.window, hop, self._work, spec[..., hi:], hi)  # the newest and the end
            previous = spec
        return out

    def columns_covering(self, lo: int, hi: int) -> tuple[int, int]:
        """[first, last) STFT columns whose windows reach samples [lo, hi) of the frame."""
        pad = self.n_fft // 2
        first = max(0, (lo + pad - self.n_fft) // self.hop + 1)
        last = min(self.n_frames, (hi - 1 + pad) // self.hop + 1)
        return first, last

    def span_plan(self, lo: int, hi: int) -> tuple[int, int, StftPlan]:
        """For `inverse` of samples [lo, hi) only: the columns that reach them, [first,
        last), and the plan whose inverse of just those columns gives frame samples from
        ``first * hop`` on, normalised exactly as the whole frame's (every column reaching
        them is among them)."""
        first, last = self.columns_covering(lo, hi)
        while first > 0:  # a plan needs more than n_fft/2 samples: take earlier columns if short
            length = (last - first) * self.hop - 1
            if length > self.n_fft // 2 and hi - first * self.hop <= length:
                return first, last, StftPlan(self.n_fft, self.hop, length)
            first -= 1
        return 0, self.n_frames, self

    def inverse(self, spectrum: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """(B, 2, n_bins, n_frames) -> (B, length), in `out` when given."""
        assert spectrum.shape[1:] == self.spectrum_shape, spectrum.shape
        if out is None:
            out = np.empty((spectrum.shape[0], self.length), dtype=spectrum.dtype)
        istft_kernel(spectrum, self.window, self.hop, self._inv_wsum, self._cwork, self._acc, out)
        return out
