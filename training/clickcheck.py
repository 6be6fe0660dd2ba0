"""A click after the cut: does the restored band hold, and is the click raised?

    python -m reelrestore.training.clickcheck --model models/default.onnx

Where the print's hiss went with the cut, the engine raises what the input holds above the
cut by one gain per bin for the reel (`engine.band.merge`, the lift). A click, a splice or a
dropout made in the transfer *after* the cut did not go through the cut's skirt, and deep in
the skirt it stands far over the residue. This check cuts real studio speech (Debian's
alsa-utils takes, joined, hiss at -60 dBFS cut with it, or with `--hiss after` added after
the cut) by each of a few cuts, puts one event
after the cut at 2 s, restores the reel with the cutoff given, once with the event and once
without, and prints per cut and event:

* the restored band (1.4-2.8x the cutoff) from 0.5 s after the event to 0.5 s before the end,
  with the event against without it, in dB (0 where the event did not touch the reel's lift);
* the output's peak within 50 ms of the event against the input's there (1.0: not raised).

`tests/test_stream.py` runs it with the noise fill; `models/default.md` gives its figures.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy import signal

from ..engine.restore import restore_array
from ..engine.safety import stops_in_one_line
from ..engine.stream import StreamConfig
from .degrade import SR, lowpass, minus3db_hz

ALSA = Path("/usr/share/sounds/alsa")
CUTS = (("butterworth", 8, 3000.0), ("butterworth", 2, 3000.0), ("slit", None, 3000.0),
        ("butterworth", 4, 1000.0), ("butterworth", 8, 600.0))
EVENTS = ("click", "small click", "splice")
EVENT_AT_S = 2.0


def alsa_speech() -> np.ndarray:
    """The alsa-utils takes joined, mono, peak 0.5: (n,) float64 at 48 kHz (FileNotFoundError
    without alsa-utils)."""
    import soundfile as sf

    paths = sorted(p for p in ALSA.glob("*.wav") if "noise" not in p.stem.lower())
    if not paths:
        raise FileNotFoundError(f"no speech in {ALSA}: install alsa-utils")
    x = np.concatenate([sf.read(p, always_2d=True)[0].mean(axis=1) for p in paths])
    return 0.5 * x / np.max(np.abs(x))


def with_event(x: np.ndarray, event: str, at: int) -> np.ndarray:
    """`x` with one `EVENTS` event at sample `at`: a digital click of 0.3 or 0.05, or a
    splice (the offset steps by 0.02 from there on)."""
    y = x.copy()
    if event == "click":
        y[at] += 0.3
    elif event == "small click":
        y[at] += 0.05
    elif event == "splice":
        y[at:] += 0.02
    else:
        raise ValueError(f"event: expected one of {EVENTS}, got {event!r}")
    return y


def click_case(model, speech: np.ndarray, shape: str, order: int | None, design_hz: float, event: str,
               seed: int = 3, hiss: str = "cut") -> tuple[float, float]:
    """(the band after the event with it against without, dB; the event's height in the
    output against the input's) for `speech` cut by `shape` with its hiss (`hiss` "cut") or
    with the hiss added after the cut ("after"), restored by `model` at the cut's -3 dB point."""
    if hiss not in ("cut", "after"):
        raise ValueError(f"hiss: expected 'cut' or 'after', got {hiss!r}")
    rng = np.random.default_rng(seed)
    noise = 10 ** (-60 / 20) * rng.standard_normal(speech.size)
    cut = (lowpass(speech + noise, design_hz, shape, order or 8) if hiss == "cut"
           else lowpass(speech, design_hz, shape, order or 8) + noise)
    cutoff = minus3db_hz(shape, order, design_hz)
    at = int(EVENT_AT_S * SR)
    hit = with_event(cut, event, at)
    config = StreamConfig(cutoff_hz=cutoff)
    clean, _ = restore_array(cut[None].astype(np.float32), model, config)
    restored, _ = restore_array(hit[None].astype(np.float32), model, config)
    sos = signal.butter(6, [1.4 * cutoff, 2.8 * cutoff], btype="bandpass", fs=SR, output="sos")
    after, near = slice(at + SR // 2, -SR // 2), slice(at - SR // 20, at + SR // 20)

    def band_db(y: np.ndarray) -> float:
        return float(10 * np.log10(np.mean(signal.sosfiltfilt(sos, np.asarray(y, dtype=np.float64))[after] ** 2)))

    return band_db(restored[0]) - band_db(clean[0]), float(np.abs(restored[0, near]).max() / np.abs(hit[near]).max())


@stops_in_one_line("clickcheck")
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m reelrestore.training.clickcheck", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="models/default.onnx", help="a .onnx model, or 'baseline' (the noise fill)")
    ap.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads")
    ap.add_argument("--hiss", choices=("cut", "after"), default="cut",
                    help="the print's hiss cut with the speech (default) or added after the cut")
    a = ap.parse_args(argv)
    if a.model != "baseline" and not (a.model.lower().endswith(".onnx") and Path(a.model).is_file()):
        ap.exit(2, f"clickcheck: error: --model {a.model}: expected 'baseline' or an existing .onnx file\n")
    from ..engine.model import ModelError, OnnxModel
    from .baseline import BaselineModel

    try:
        speech = alsa_speech()
        model = BaselineModel() if a.model == "baseline" else OnnxModel(Path(a.model), threads=a.threads)
    except (FileNotFoundError, ModelError, OSError) as err:
        raise SystemExit(f"clickcheck: error: {err}") from None
    print(f"{'cut':22s} " + " ".join(f"{e + ': band, height':>26s}" for e in EVENTS))
    for shape, order, design in CUTS:
        cells = [click_case(model, speech, shape, order, design, e, hiss=a.hiss) for e in EVENTS]
        label = f"{shape}{order or ''} at {design:g} Hz"
        print(f"{label:22s} " + " ".join(f"{db:+18.1f} dB {x:5.2f}x" for db, x in cells), flush=True)


if __name__ == "__main__":
    main()
