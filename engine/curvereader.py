"""The curve reader: a small learned net that reads how deep a reel's cut goes, frequency by frequency.

Where the print's hiss went with the cut, everything the input holds above the cutoff is
the recording through the cut's response |H(f)|^2, and the merge's lift gives it back by
1 / |H| (`band.merge`). How far |H| falls is what the lift must know. A reel that falls silent
shows it in its floor (`skirt.fit_floor`), a slit in its lobes (`skirt.fit_lobes`); on every
other reel (music, mostly) the lift fitted the skirt family to the model's band over the
residue (ΣW / ΣR), and the model's word errs in shape: its loud onset frames rule the sums,
and it has no idea of the band's long-term fall at depth (development set, a zero-phase
Butterworth-2 at 2.4 kHz read as a causal Butterworth-4: the band 2-4 dB loud over the first
octave, 8-10 dB short three octaves up).

The reader is trained for this one question (`reelrestore.training.curvereader`): from the
reel's frame spectra, as the cutoff locator reads them (`locator.features`: level quantiles
per 1/24 octave, how each point follows the frame's loudness, the absolute floor), and the
cutoff the engine uses (one more channel: each grid point's distance from it in octaves), it
gives the cut's loss in dB at every grid point. It learned from real recordings cut by
Butterworths of order 2-8 (zero-phase or not) and the optical slit, their hiss cut with the
signal. `skirt.fit_reading` then fits the skirt family to that reading (the lift follows a
physical curve, not the net's), and the lift follows it `skirt.READING_FOLLOW_DB` deep.

Input: (`locator.CHANNELS`, grid) features and a cutoff in Hz. Output: (grid,) dB, at most 0.
The weights live in one `.npz` beside the models (`models/cut-curve.npz`) with their
`config` (grid, quantiles, layers, how they were trained) as JSON inside.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .locator import HIGH_HZ, LOW_HZ, PER_OCTAVE, QUANTILES, SHAPE_QUANTILES, _conv, default_path, grid_hz
from .safety import AtomicPath

DEFAULT_NAME = "cut-curve.npz"
# The cutoff channel: each grid point's distance from the cutoff, in octaves, within these
# bounds, divided by CUTOFF_SCALE.
CUTOFF_OCTAVES = (-2.0, 6.0)
CUTOFF_SCALE = 4.0
DB_SCALE = 20.0  # the net's output is the loss in dB / DB_SCALE


def cutoff_channel(cutoff_hz: float | np.ndarray) -> np.ndarray:
    """(N,) cutoffs -> (N, 1, grid) float32: each grid point's distance from its cutoff."""
    octaves = np.log2(grid_hz())[None, :] - np.log2(np.atleast_1d(cutoff_hz))[:, None]
    return (np.clip(octaves, *CUTOFF_OCTAVES) / CUTOFF_SCALE)[:, None, :].astype(np.float32)


class CurveReader:
    """The trained net, run in numpy: `loss_db(features, cutoff_hz)`."""

    def __init__(self, weights: dict[str, np.ndarray], config: dict):
        self.config = config
        self.weights = {k: np.asarray(v, dtype=np.float32) for k, v in weights.items()}
        self.dilations = [int(d) for d in config["dilations"]]
        expected = {"grid": [LOW_HZ, HIGH_HZ, PER_OCTAVE], "quantiles": list(QUANTILES),
                    "shape_quantiles": list(SHAPE_QUANTILES), "cutoff_octaves": list(CUTOFF_OCTAVES),
                    "cutoff_scale": CUTOFF_SCALE, "db_scale": DB_SCALE}
        for key, value in expected.items():
            if config.get(key) != value:
                raise ValueError(f"curve reader: {key} {config.get(key)} does not match this engine's {value}; "
                                 f"retrain it with `python -m reelrestore.training.curvereader`")

    @classmethod
    def load(cls, path: str | Path | None = None) -> CurveReader:
        with np.load(default_path(DEFAULT_NAME) if path is None else path, allow_pickle=False) as data:
            config = json.loads(str(data["config"]))
            return cls({k: data[k] for k in data.files if k != "config"}, config)

    def save(self, path: str | Path) -> None:
        """Written whole under `path` (no ``.npz`` added) or not at all."""
        with AtomicPath(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, config=np.array(json.dumps(self.config, sort_keys=True)), **self.weights)

    def loss_db(self, feats: np.ndarray, cutoff_hz: float) -> np.ndarray:
        """(CHANNELS, grid) features of a reel and the cutoff in use -> (grid,) the cut's loss, dB (<= 0)."""
        w = self.weights
        x = np.concatenate([feats, cutoff_channel(cutoff_hz)[0]]).astype(np.float32)
        h = np.maximum(_conv(x, w["in.w"], w["in.b"]), 0.0)
        for i, d in enumerate(self.dilations):
            h = np.maximum(h + _conv(h, w[f"block{i}.w"], w[f"block{i}.b"], d), 0.0)
        z = _conv(h, w["out.w"], w["out.b"])[0]
        return -DB_SCALE * np.logaddexp(0.0, z)  # - softplus: a loss, never a gain
