"""The plain DSP baseline every learned model must beat: shaped noise above the cutoff.

Per STFT frame of the engine's spectrum (the default contract's: n_fft 2048, hop 512,
periodic Hann, centred, reflect-padded: :class:`reelrestore.engine.stft.StftPlan`), with
``c`` the cutoff and ``L = 10 log10(power + EPS)`` in dB per bin and frame::

    level[t] = mean L over the top quarter octave below c, + G       (c/2^0.25 < f <= c)
    slope    = dB per octave of the time-averaged L over the octave below c, least
               squares on log2 f, clamped to [SLOPE_MIN_DB, SLOPE_MAX_DB]
    floor    = mean L over that octave in its quietest frame, + G + FLOOR_A + FLOOR_B / sqrt(bins)
               (minimum statistics: the hiss the archive keeps, which does not roll off)
    env      = min(level[t], max(level[t] + slope * log2(f / f_ref), floor))   in dB
    out[f, t] = 10^(env / 20) * N[f, t]                                for f > c
    out[f, t] = spectrum[f, t]                                         for f <= c

Levels are averaged in dB (geometric means), not in power: one loud harmonic just under
the cutoff would otherwise set the level of everything above it, and LSD judges log
spectra. ``G = 10 log10(e) * euler_gamma = 2.51 dB`` is the amount by which the mean dB of
noise-like bins sits below their mean power, so on noise ``level`` is the band's power.
``f_ref = c / 2^(1/8)`` is the middle of the level band. ``N`` is the STFT of white noise
from a fixed seed, scaled to unit mean power: random phase, and *consistent* (the STFT of
a real signal), so the engine's overlap-add keeps its level; independent random phases
per frame partly cancel there and come out ~6 dB too quiet. It is stored as a
``[2, bins, NOISE_FRAMES]`` table, tiled in time when a spectrum is longer. Below the
cutoff the input passes untouched, and the engine's band merge keeps it too.

The clamp range and the dB averaging were chosen on a development set built like the
held-out set but from the TRAINING programs and voices (never on the held-out set).

Three interchangeable forms, numerically the same:

* :func:`baseline_spectrum` -- numpy on ``[B, 2, bins, T]`` spectra;
* :class:`BaselineModel` -- that function behind the engine's model interface
  (``spec``, ``run``), so ``StreamRestorer(BaselineModel(), channels)`` restores with the
  baseline and no ONNX at all;
* :func:`build_onnx` -- the same graph in plain ONNX operators, honouring the model
  contract (inputs ``spectrum``, ``cutoff_hz``; output ``restored``; metadata), so
  ``restore-stream --model baseline.onnx`` runs it like any trained model::

    python -m reelrestore.training.baseline --onnx baseline.onnx   # writes + checks parity

The noise table repeats every engine frame (0.5 s); frames start every 0.25 s, which is
not a whole number of STFT hops, so neighbouring frames cross-fade different noise (and
that incoherent cross-fade costs ~1-2 dB of level in the engine, not corrected here).
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np

from reelrestore.engine.contract import DEFAULT_CONTRACT
from reelrestore.engine.model import ModelSpec
from reelrestore.engine.stft import StftPlan
from reelrestore.engine.restore import restore_array
from reelrestore.engine.stream import StreamConfig

LEVEL_OCTAVES = 0.25  # the level is read from this much of the band just below the cutoff
SLOPE_OCTAVES = 1.0  # the slope (and the floor) from this much
# dB/octave. Steeper measured slopes are formant edges or filter skirts; flatter ones
# (harmonics under a low cutoff) would extend full level to 24 kHz. Audio above 1 kHz
# falls at least this fast; -9 did better than -6 and -3 on the development set.
SLOPE_MIN_DB, SLOPE_MAX_DB = -18.0, -9.0
G_DB = 10.0 * np.euler_gamma / math.log(10.0)  # 2.507 dB: power mean - dB mean of noise bins
# For white noise, the minimum over the 47 frames of one engine frame of the dB mean of
# n bins lies G + FLOOR_A + FLOOR_B / sqrt(n) below its power (measured: n = 11 .. 128
# gives 8.3 .. 5.3 dB, this fit is within 0.3 dB).
FLOOR_A, FLOOR_B = 1.6, 13.8
SILENCE_DB = -120.0  # level when the band holds no bin (a cutoff under one bin)
NOISE_FRAMES = 64  # frames of the noise table (>= 47 STFT frames of one engine frame)
DEFAULT_SEED = 0
EPS = 1e-12
ARCHITECTURE = "dsp-noise-envelope-baseline"
VERSION = "1"


def noise_table(seed: int = DEFAULT_SEED, n_fft: int = DEFAULT_CONTRACT.n_fft, hop: int = DEFAULT_CONTRACT.hop_length,
                frames: int = NOISE_FRAMES) -> np.ndarray:
    """STFT ``[2, n_fft // 2 + 1, frames]`` float32 (real, imaginary) of seeded white noise,
    in the engine's transform, scaled to unit mean power per bin."""
    plan = StftPlan(n_fft, hop, (frames - 1) * hop)
    x = np.random.default_rng(seed).standard_normal((1, plan.length))
    spectrum = plan.forward(x)[0]  # (2, bins, frames)
    return (spectrum / np.sqrt(np.sum(plan.window ** 2))).astype(np.float32)


def _tile_time(noise: np.ndarray, frames: int) -> np.ndarray:
    reps = -(-frames // noise.shape[-1])
    return np.tile(noise, (1, 1, reps))[..., :frames] if reps > 1 else noise[..., :frames]


def envelope_db(power: np.ndarray, cutoff_hz: np.ndarray, sample_rate: int = DEFAULT_CONTRACT.sample_rate,
                n_fft: int = DEFAULT_CONTRACT.n_fft) -> np.ndarray:
    """Level in dB of the noise to put above the cutoff: ``power [B, bins, T]``,
    ``cutoff_hz [B]`` -> ``[B, bins, T]`` (meaningful only above the cutoff)."""
    f = (np.arange(power.shape[1]) * sample_rate / n_fft)[None, :, None]  # (1, bins, 1)
    x = np.log2(np.maximum(f, 0.5 * sample_rate / n_fft))  # (1, bins, 1) octaves
    c = np.asarray(cutoff_hz, dtype=np.float64).reshape(-1, 1, 1)  # (B, 1, 1)
    db = 10.0 * np.log10(power + EPS)  # (B, bins, T)

    def band_mean(mask: np.ndarray) -> np.ndarray:  # (B, bins, 1) mask -> dB mean (B, 1, T)
        n = mask.sum(axis=1, keepdims=True)
        return np.where(n > 0.5, (db * mask).sum(axis=1, keepdims=True) / np.maximum(n, 1.0) + G_DB, SILENCE_DB)

    level = band_mean(((f > c * 2.0 ** -LEVEL_OCTAVES) & (f <= c)).astype(np.float64))  # (B, 1, T)
    w = ((f > c * 2.0 ** -SLOPE_OCTAVES) & (f <= c)).astype(np.float64)  # (B, bins, 1)
    y = db.mean(axis=2, keepdims=True)  # (B, bins, 1)
    sw, sx, sy = w.sum(1, keepdims=True), (w * x).sum(1, keepdims=True), (w * y).sum(1, keepdims=True)
    sxx, sxy = (w * x * x).sum(1, keepdims=True), (w * x * y).sum(1, keepdims=True)
    den = sw * sxx - sx * sx
    slope = np.where(den > 1e-6, (sw * sxy - sx * sy) / np.where(den > 1e-6, den, 1.0), SLOPE_MAX_DB)
    slope = np.clip(slope, SLOPE_MIN_DB, SLOPE_MAX_DB)  # (B, 1, 1) dB/octave
    shaped = level + slope * (x - np.log2(c) + LEVEL_OCTAVES / 2)  # (B, bins, T)
    floor = band_mean(w).min(axis=2, keepdims=True) + FLOOR_A + FLOOR_B / np.sqrt(np.maximum(sw, 1.0))  # (B, 1, 1)
    return np.minimum(level, np.maximum(shaped, floor))


def baseline_spectrum(spectrum: np.ndarray, cutoff_hz: np.ndarray, noise: np.ndarray,
                      sample_rate: int = DEFAULT_CONTRACT.sample_rate,
                      n_fft: int = DEFAULT_CONTRACT.n_fft) -> np.ndarray:
    """``spectrum [B, 2, bins, T]``, ``cutoff_hz [B]``, ``noise [2, bins, >=1]`` ->
    restored ``[B, 2, bins, T]`` float32: the input at and below the cutoff, shaped noise
    above."""
    s = np.asarray(spectrum, dtype=np.float64)
    power = s[:, 0] ** 2 + s[:, 1] ** 2  # (B, bins, T)
    mag = 10.0 ** (envelope_db(power, cutoff_hz, sample_rate, n_fft) / 20.0)  # (B, bins, T)
    wet = mag[:, None] * _tile_time(noise, s.shape[-1])[None]  # (B, 2, bins, T)
    f = np.arange(s.shape[2]) * sample_rate / n_fft
    above = f[None, :] > np.asarray(cutoff_hz, dtype=np.float64)[:, None]  # (B, bins)
    return np.where(above[:, None, :, None], wet, s).astype(np.float32)


def contract_metadata(seed: int = DEFAULT_SEED) -> dict[str, str]:
    """The ONNX metadata_props of the baseline (also the spec of :class:`BaselineModel`)."""
    return {
        **DEFAULT_CONTRACT.to_metadata(),
        "architecture": ARCHITECTURE, "model_version": VERSION,
        "description": ("white noise above the cutoff at the dB level of the quarter octave below it, sloped as "
                        "measured over the octave below, over a minimum-statistics hiss floor"),
        "noise_seed": str(seed), "level_octaves": str(LEVEL_OCTAVES), "slope_octaves": str(SLOPE_OCTAVES),
        "slope_db_per_octave_range": f"{SLOPE_MIN_DB},{SLOPE_MAX_DB}",
        "floor_db": f"{FLOOR_A} + {FLOOR_B}/sqrt(bins)",
        "noise_frames": str(NOISE_FRAMES), "training_data": "none (no learned weights)", "training_steps": "0",
    }


class BaselineModel:
    """The baseline behind the engine's model interface, in numpy (no ONNX Runtime).

    ``run(spectrum (B, 2, bins, T), cutoff_hz (B,)) -> restored (B, 2, bins, T)``, like
    :class:`reelrestore.engine.model.OnnxModel`.
    """

    has_cutoff = True
    one_at_a_time = False
    provider = "numpy"

    def __init__(self, seed: int = DEFAULT_SEED):
        self.spec = ModelSpec.from_metadata(contract_metadata(seed))
        self.noise = noise_table(seed, self.spec.n_fft, self.spec.hop_length)
        self.path = Path(f"<{ARCHITECTURE} seed {seed}>")
        self.sha256 = hashlib.sha256(self.noise.tobytes()).hexdigest()

    def run(self, spectrum: np.ndarray, cutoff_hz: np.ndarray, position: np.ndarray | None = None) -> np.ndarray:
        """As `OnnxModel.run`; `position` is not read (the fill draws its noise by the input)."""
        return baseline_spectrum(spectrum, cutoff_hz, self.noise, self.spec.sample_rate, self.spec.n_fft)


def restore(audio: np.ndarray, cutoff_hz: float, model=None, block: int = 96000,
            config: StreamConfig | None = None) -> np.ndarray:
    """Restore ``audio [n]`` or ``[channels, n]`` (48 kHz) through the engine's
    :class:`StreamRestorer` with a fixed cutoff; ``model`` defaults to :class:`BaselineModel`.
    Returns float32 of the input's shape, sample-aligned with it."""
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim not in (1, 2) or x.shape[-1] == 0:
        raise ValueError(f"expected audio shaped [n] or [channels, n] with n > 0, got {x.shape}")
    x2 = x[None] if x.ndim == 1 else x
    model = model if model is not None else BaselineModel()
    cfg = config if config is not None else StreamConfig(cutoff_hz=cutoff_hz)
    y, _ = restore_array(np.ascontiguousarray(x2), model, cfg, block)  # exactly as a file is restored
    return y[0] if x.ndim == 1 else y


# ------------------------------------------------------------------------------ ONNX


def build_onnx(path: str | Path, seed: int = DEFAULT_SEED):
    """Write the baseline as an ONNX model (opset 17, plain operators) honouring the
    engine's contract; returns the ModelProto. Needs the ``onnx`` package."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], []

    def const(name: str, value) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(kind: str, inputs: list[str], out: str, **attrs) -> str:
        nodes.append(helper.make_node(kind, inputs, [out], **attrs))
        return out

    bins, bin_hz = DEFAULT_CONTRACT.n_bins, DEFAULT_CONTRACT.bin_hz
    f = np.arange(bins) * bin_hz
    const("freqs", f.reshape(1, bins, 1).astype(np.float32))
    const("log2f", np.log2(np.maximum(f, 0.5 * bin_hz)).reshape(1, bins, 1).astype(np.float32))
    const("noise", noise_table(seed))  # (2, bins, NOISE_FRAMES)
    f32 = lambda v: const(f"k{len(inits)}", np.array(v, dtype=np.float32))  # noqa: E731
    i64 = lambda v: const(f"k{len(inits)}", np.array(v, dtype=np.int64))  # noqa: E731
    fl = TensorProto.FLOAT

    # (B, 2, bins, T) -> re, im (B, bins, T); power (B, bins, T)
    op("Split", ["spectrum", i64([1, 1])], "re4", axis=1)
    nodes[-1].output.append("im4")
    op("Squeeze", ["re4", i64([1])], "re")
    op("Squeeze", ["im4", i64([1])], "im")
    op("Add", [op("Mul", ["re", "re"], "re2"), op("Mul", ["im", "im"], "im2")], "power")
    c = op("Reshape", ["cutoff_hz", i64([-1, 1, 1])], "c")  # (B, 1, 1)

    def band(lo_factor: float, name: str) -> str:  # (B, bins, 1) float mask of lo_factor*c < f <= c
        lo = op("Mul", [c, f32(lo_factor)], f"{name}_lo")
        both = op("And", [op("Greater", ["freqs", lo], f"{name}_gt"), op("LessOrEqual", ["freqs", c], f"{name}_le")],
                  f"{name}_and")
        return op("Cast", [both], name, to=fl)

    def bsum(x: str, name: str) -> str:  # sum over bins, keepdims
        return op("ReduceSum", [x, i64([1])], name, keepdims=1)

    one, to_db = f32(1.0), f32(10.0 / math.log(10.0))
    db = op("Mul", [op("Log", [op("Add", ["power", f32(EPS)], "power_eps")], "ln_power"), to_db], "db")  # (B, bins, T)

    def band_mean(mask: str, name: str) -> str:  # dB mean over the masked bins + G -> (B, 1, T)
        n = bsum(mask, f"{name}_n")
        mean = op("Div", [bsum(op("Mul", ["db", mask], f"{name}_db"), f"{name}_sum"),
                          op("Max", [n, one], f"{name}_n1")], f"{name}_mean")
        return op("Where", [op("Greater", [n, f32(0.5)], f"{name}_some"),
                            op("Add", [mean, f32(G_DB)], f"{name}_g"), f32(SILENCE_DB)], name)

    level = band_mean(band(2.0 ** -LEVEL_OCTAVES, "level_band"), "level")  # (B, 1, T)
    w = band(2.0 ** -SLOPE_OCTAVES, "slope_band")  # (B, bins, 1)
    y = op("ReduceMean", [db], "y", axes=[2], keepdims=1)  # (B, bins, 1)
    wx = op("Mul", [w, "log2f"], "wx")
    sw, sx = bsum(w, "sw"), bsum(wx, "sx")
    sy = bsum(op("Mul", [w, y], "wy"), "sy")
    sxx = bsum(op("Mul", [wx, "log2f"], "wxx"), "sxx")
    sxy = bsum(op("Mul", [wx, y], "wxy"), "sxy")
    den = op("Sub", [op("Mul", [sw, sxx], "sw_sxx"), op("Mul", [sx, sx], "sx_sx")], "den")
    num = op("Sub", [op("Mul", [sw, sxy], "sw_sxy"), op("Mul", [sx, sy], "sx_sy")], "num")
    ok = op("Greater", [den, f32(1e-6)], "den_ok")
    raw = op("Div", [num, op("Where", [ok, den, one], "den_safe")], "slope_raw")
    slope = op("Clip", [op("Where", [ok, raw, f32(SLOPE_MAX_DB)], "slope_ok"), f32(SLOPE_MIN_DB), f32(SLOPE_MAX_DB)],
               "slope")  # (B, 1, 1) dB/octave
    log2c = op("Mul", [op("Log", [c], "ln_c"), f32(1.0 / math.log(2.0))], "log2c")
    octs = op("Add", [op("Sub", ["log2f", log2c], "oct_raw"), f32(LEVEL_OCTAVES / 2)], "octs")  # (B, bins, 1)
    shaped = op("Add", [level, op("Mul", [slope, octs], "tilt")], "shaped")  # (B, bins, T)
    quiet = op("ReduceMin", [band_mean(w, "octave")], "quiet", axes=[2], keepdims=1)  # (B, 1, 1)
    bias = op("Add", [f32(FLOOR_A), op("Div", [f32(FLOOR_B), op("Sqrt", [op("Max", [sw, one], "sw1")], "sqrt_n")],
                                       "b_sqrt_n")], "bias")
    floor = op("Add", [quiet, bias], "floor")  # (B, 1, 1)
    env = op("Min", [level, op("Max", [shaped, floor], "env_max")], "env")  # (B, bins, T) dB
    mag = op("Exp", [op("Mul", [env, f32(math.log(10.0) / 20.0)], "ln_mag")], "mag")
    # noise (2, bins, NOISE_FRAMES) tiled to T frames -> (1, 2, bins, T)
    t = op("Slice", [op("Shape", ["spectrum"], "shape"), i64([3]), i64([4])], "t")
    reps = op("Div", [op("Add", [t, i64([NOISE_FRAMES - 1])], "t_up"), i64([NOISE_FRAMES])], "reps")
    tiled = op("Tile", ["noise", op("Concat", [i64([1, 1]), reps], "reps3", axis=0)], "tiled")
    noise4 = op("Unsqueeze", [op("Slice", [tiled, i64([0]), t, i64([2])], "noise3"), i64([0])], "noise4")
    wet = op("Mul", [op("Unsqueeze", [mag, i64([1])], "mag4"), noise4], "wet")  # (B, 2, bins, T)
    above = op("Unsqueeze", [op("Greater", ["freqs", c], "above3"), i64([1])], "above")  # (B, 1, bins, 1)
    op("Where", [above, wet, "spectrum"], "restored")

    shape = ["batch", 2, bins, "frames"]
    graph = helper.make_graph(
        nodes, ARCHITECTURE,
        [helper.make_tensor_value_info("spectrum", fl, shape),
         helper.make_tensor_value_info("cutoff_hz", fl, ["batch"])],
        [helper.make_tensor_value_info("restored", fl, shape)], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9,
                              producer_name="reelrestore.training.baseline")
    meta = contract_metadata(seed)
    meta["sha256_noise"] = hashlib.sha256(noise_table(seed).tobytes()).hexdigest()
    helper.set_model_props(model, meta)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return model


def check_onnx_parity(path: str | Path, seed: int = DEFAULT_SEED, atol: float = 1e-3, rtol: float = 1e-3) -> float:
    """Run the ONNX file and :func:`baseline_spectrum` on the same random spectra (several
    cutoffs, an engine frame and a longer one that tiles the noise); raise AssertionError
    beyond tolerance. Returns the largest absolute difference relative to the output peak."""
    from reelrestore.engine.model import OnnxModel

    model = OnnxModel(path, threads=1)
    noise = noise_table(seed, model.spec.n_fft, model.spec.hop_length)
    rng = np.random.default_rng(1)
    worst = 0.0
    bins = model.spec.n_bins
    for frames in (model.spec.frames_per_frame, NOISE_FRAMES + 30):
        f = np.arange(bins)[None, :, None]
        spectrum = (rng.standard_normal((4, 2, bins, frames)) * 30.0 / (1 + f / 50.0)).astype(np.float32)
        cutoff = np.array([150.0, 1000.0, 3000.0, 8000.0], dtype=np.float32)
        want = baseline_spectrum(spectrum, cutoff, noise)
        got = model.run(spectrum, cutoff)
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol * float(np.abs(want).max()))
        worst = max(worst, float(np.abs(got - want).max() / np.abs(want).max()))
    return worst


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m reelrestore.training.baseline",
                                     description="Write the DSP baseline as an ONNX model and check it against numpy.")
    parser.add_argument("--onnx", required=True, type=Path, help="where to write the model")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the noise")
    args = parser.parse_args(argv)
    build_onnx(args.onnx, args.seed)
    worst = check_onnx_parity(args.onnx, args.seed)  # AssertionError (non-zero exit) on mismatch
    print(f"wrote {args.onnx} ({args.onnx.stat().st_size / 1e6:.2f} MB); ONNX Runtime vs numpy: "
          f"max |diff| / peak = {worst:.2e}")


if __name__ == "__main__":
    main()
