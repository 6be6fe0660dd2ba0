"""`restore-stream --figure`: see what the restoration did, without a clean reference.

`FigureSink` is a pipeline sink: from each restored block and the band the restorer added
to it (`StreamRestorer.added`) it knows both the recording (render - band) and the render,
and keeps a spectrogram column of each every `stride` samples (the channels' mean power),
so memory stays flat for any length. `finish` draws input | output with the cutoff each
channel used and the restored band outlined, states the added band's level, and writes
the PNG atomically. Needs matplotlib (imported only here).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .io import AudioError
from .safety import AtomicPath

N_FFT = 2048  # the figure's own analysis: a picture, not the model's contract
MAX_COLUMNS = 1200


class FigureSink:
    """Collects spectrogram columns of the recording and the render; draws them at `finish`."""

    waited_seconds = 0.0

    def __init__(self, path: Path, restorer, total: int | None):
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise AudioError(f"{path}: drawing a figure needs matplotlib; pip install matplotlib") from None
        if path.suffix.lower() != ".png":
            raise AudioError(f"{path}: expected a .png file name for --figure")
        if not path.parent.is_dir():
            raise AudioError(f"{path}: output folder {path.parent} does not exist")
        self.path, self.restorer = path, restorer
        rate = restorer.sample_rate
        self.stride = max(N_FFT, (total or 600 * rate) // MAX_COLUMNS)
        self.window = np.hanning(N_FFT).astype(np.float32)
        self._pending = np.zeros((2, restorer.channels, 0), np.float32)  # recording, render
        self._next = 0  # stream position of the next column's first sample
        self._seen = 0  # samples received
        self.columns: list[np.ndarray] = []  # (2, bins) dB per column
        self.energy = np.zeros(2)  # added band, render: sum of squares above the cut
        self.frames = 0

    def write(self, block: np.ndarray) -> None:
        band = self.restorer.added
        self._count(block, band)
        self._pending = np.concatenate([self._pending, np.stack([block - band, block])], axis=2)  # (2, C, n)
        self._seen += block.shape[1]
        self.frames += block.shape[1]
        base = self._seen - self._pending.shape[2]  # stream position of the first pending sample
        while self._next + N_FFT <= self._seen:
            start = self._next - base
            piece = self._pending[:, :, start : start + N_FFT]  # (2, C, N_FFT)
            power = np.abs(np.fft.rfft(piece * self.window, axis=-1)) ** 2  # (2, C, bins)
            self.columns.append(10 * np.log10(power.mean(axis=1) + 1e-20))
            self._next += self.stride
        self._pending = self._pending[:, :, min(self._next, self._seen) - base :]

    def _count(self, block: np.ndarray, band: np.ndarray) -> None:
        """Energy of the added band and of the render (both only above the cut matter:
        below it the band is zero)."""
        self.energy += [float(np.sum(band.astype(np.float64) ** 2)), float(np.sum(block.astype(np.float64) ** 2))]

    def added_level(self) -> tuple[float, float]:
        """(added band RMS in dBFS, added band energy relative to the render's in dB)."""
        samples = max(self._seen * self.restorer.channels, 1)
        rms_db = 10 * np.log10(self.energy[0] / samples + 1e-20)
        return float(rms_db), float(10 * np.log10((self.energy[0] + 1e-20) / (self.energy[1] + 1e-20)))

    def finish(self) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        rate = self.restorer.sample_rate
        columns = np.stack(self.columns) if self.columns else np.full((1, 2, N_FFT // 2 + 1), -200.0)
        seconds = len(columns) * self.stride / rate
        top = columns.max()
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True, constrained_layout=True)
        extent = (0, seconds, 0, rate / 2000)
        for ax, which, title in zip(axes, (0, 1), ("input", "restored")):
            image = ax.imshow(columns[:, which].T, origin="lower", aspect="auto", extent=extent,
                              vmin=top - 100, vmax=top, cmap="magma")
            ax.set_title(title)
            ax.set_xlabel("time (s)")
        axes[0].set_ylabel("frequency (kHz)")
        cutoffs = [d for d in self.restorer.cutoffs if d is not None and d.hz is not None]
        for channel, d in enumerate(cutoffs):  # the cut as read; the band restored from `start`
            hz, start = d.hz, d.merge_hz
            for ax in axes:
                ax.axhline(hz / 1000, color="cyan", lw=0.8, ls="--")
            axes[1].add_patch(plt.Rectangle((0, start / 1000), seconds, rate / 2000 - start / 1000, fill=False,
                                            ec="cyan", lw=1.2))
            begins = f", band from {start:.0f} Hz" if d.margin != 1.0 else ""  # as `CutoffDecision.describe`
            axes[0].text(0.01 * seconds, hz / 1000, f" cutoff ch {channel + 1}: {hz:.0f} Hz{begins}", color="cyan",
                         va="bottom", fontsize=8)
        rms_db, relative_db = self.added_level()
        if cutoffs:
            axes[1].set_title(f"restored: added band (outlined) {rms_db:.1f} dBFS RMS, {relative_db:.1f} dB "
                              "re the output", fontsize=9)
        else:
            axes[1].set_title("restored: no cut found, nothing added", fontsize=9)
        fig.colorbar(image, ax=axes, label="dB", shrink=0.9)
        try:
            with AtomicPath(self.path) as temp:
                fig.savefig(temp, dpi=80, format="png")
        finally:
            plt.close(fig)

    def abort(self) -> None:
        self.columns.clear()
