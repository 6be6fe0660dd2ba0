"""Spectrograms of real-set items: reference, damaged, and each model's restoration.

    python -m reelrestore.training.spectrograms --realset realset/ --out models/spectrograms-2.2.png \\
        --model baseline --model models/default.onnx --cutoff true --cutoff auto \\
        --item 01-alsa-utils-speech-clip-hisscut-3k-butterworth8 \\
        --item 07-hyperrogue-music-effects-clip-hisscut-3k-butterworth2

One row per item, one column per signal (reference / damaged / each ``--model`` at each
``--cutoff``), log power in dB over 0-16 kHz, the true cutoff drawn as a dashed line. Every
model restores the item through the engine (``restore_array``) as the evaluation does: at
the item's true cutoff, or with ``auto`` at the cutoff the engine finds itself (what a user
gets by default), where the band it restored begins drawn as a dotted line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from reelrestore.engine.contract import DEFAULT_CONTRACT

from .evaluate import open_warm_system
from .heldout import read_mono_48k
from .realset import load_manifest

SR = DEFAULT_CONTRACT.sample_rate


def spectrogram_db(x: np.ndarray, n_fft: int = 1024, hop: int = 256) -> np.ndarray:
    """(bins, frames) power in dB of ``x [n]`` (periodic Hann)."""
    window = np.hanning(n_fft + 1)[:-1]
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop] * window
    return 10 * np.log10(np.abs(np.fft.rfft(frames, axis=1)).T ** 2 + 1e-12)


CUTOFF_MODES = ("true", "auto")
DEFAULT_CUTOFFS = ("true",)  # as the evaluation scores: at the item's true cutoff


def render(realset: str | Path, item_ids: list[str], models: list[str], out: str | Path,
           max_hz: float = 16000.0, seconds: float = 4.0, cutoffs: tuple[str, ...] = DEFAULT_CUTOFFS) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from reelrestore.engine.restore import restore_array
    from reelrestore.engine.stream import StreamConfig

    manifest = load_manifest(realset)
    items = {it["id"]: it for it in manifest["items"]}
    missing = [i for i in item_ids if i not in items]
    if missing:
        raise ValueError(f"not in {realset}: {', '.join(missing)}")
    unknown = [c for c in cutoffs if c not in CUTOFF_MODES]
    if unknown or not cutoffs:
        raise ValueError(f"expected cutoffs among {', '.join(CUTOFF_MODES)}, got {', '.join(cutoffs) or 'none'}")
    systems = {m: open_warm_system(m, 1, SR, 0.5)[0] for m in models}  # each model opened once
    runs = [(systems[m], "noise fill" if m == "baseline" else Path(m).stem, mode) for m in models for mode in cutoffs]
    columns = ["reference", "damaged"] + [name if mode == "true" else f"{name}, auto" for _, name, mode in runs]
    fig, axes = plt.subplots(len(item_ids), len(columns), figsize=(3.2 * len(columns), 2.6 * len(item_ids)),
                             squeeze=False, sharey=True)
    for row, item_id in enumerate(item_ids):
        it = items[item_id]
        target = read_mono_48k(Path(realset) / it["target"])[: int(seconds * SR)]
        damaged = read_mono_48k(Path(realset) / it["damaged"])[: int(seconds * SR)]
        signals, begins = [target, damaged], [None, None]
        for system, _, mode in runs:
            config = StreamConfig(cutoff_hz=it["cutoff_hz"] if mode == "true" else None)
            y, decisions = restore_array(damaged[None].astype(np.float32), system, config)
            signals.append(y[0])
            begins.append(decisions[0].merge_hz if mode == "auto" and decisions[0] is not None else None)
        for col, (name, x, begin) in enumerate(zip(columns, signals, begins)):
            db = spectrogram_db(np.asarray(x, np.float64))
            top = int(max_hz / (SR / 1024))
            ax = axes[row, col]
            ax.imshow(db[:top], origin="lower", aspect="auto", cmap="magma", vmin=-110, vmax=-10,
                      extent=(0, x.size / SR, 0, top * SR / 1024 / 1000))
            ax.axhline(it["cutoff_hz"] / 1000, color="cyan", lw=0.8, ls="--")
            if begin is not None:
                ax.axhline(begin / 1000, color="white", lw=0.9, ls=":")
            if row == 0:
                ax.set_title(name, fontsize=10)
            if col == 0:
                ax.set_ylabel(f"{it['kind']}, cut {it['cutoff_hz'] / 1000:.2f} kHz\nkHz", fontsize=8)
            ax.tick_params(labelsize=7)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=70)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m reelrestore.training.spectrograms", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--realset", required=True, help="real set folder")
    ap.add_argument("--item", action="append", required=True, help="item id (repeat)")
    ap.add_argument("--model", action="append", default=[], help="'baseline' or a .onnx model (repeat)")
    ap.add_argument("--cutoff", action="append", choices=CUTOFF_MODES, default=None,
                    help="restore at the true cutoff or the engine's own (auto); repeat for both (default: true)")
    ap.add_argument("--out", required=True, help="PNG to write")
    ap.add_argument("--seconds", type=float, default=4.0, help="seconds of each item shown")
    a = ap.parse_args(argv)
    try:
        print(render(a.realset, a.item, a.model, a.out, seconds=a.seconds, cutoffs=tuple(a.cutoff or DEFAULT_CUTOFFS)))
    except (ValueError, FileNotFoundError) as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
