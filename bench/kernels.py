"""The two kernels of the engine path in isolation: STFT/iSTFT against the obvious
alternatives, and model inference (ONNX Runtime settings; PyTorch eager when given).

Every STFT implementation does the same job as the engine's: a (length,) float32 signal
to the contract layout (2, n_fft/2+1, T) float32 (real and imaginary planes, frequency
major), centred with reflect padding and a periodic Hann window, and back. The layout
conversion is part of the timed work because the engine needs it.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from reelrestore.engine.contract import DEFAULT_CONTRACT, n_stft_frames
from reelrestore.engine.model import ModelError, OnnxModel
from reelrestore.engine.stft import StftPlan, periodic_hann

from .doubles import reel_audio
from .timing import median_ms


@dataclass(frozen=True)
class StftImpl:
    name: str
    forward: Callable[[np.ndarray], np.ndarray]  # (L,) float32 -> (2, bins, T) float32
    inverse: Callable[[np.ndarray], np.ndarray]  # (2, bins, T) float32 -> (L,) float32
    note: str


def engine_stft(n_fft: int, hop: int, length: int) -> StftImpl:
    plan = StftPlan(n_fft, hop, length)
    return StftImpl("engine (numba)", lambda x: plan.forward(x[None])[0], lambda s: plan.inverse(s[None])[0],
                    "StftPlan: numba + rocket-fft, float64 inside, single thread")


def numpy_stft(n_fft: int, hop: int, length: int) -> StftImpl:
    """Vectorised framing (a strided view), one batched rfft, overlap-add in n_fft/hop slabs."""
    if n_fft % hop:
        raise ValueError(f"expected n_fft a multiple of hop for the numpy overlap-add, got {n_fft} and {hop}")
    window = periodic_hann(n_fft).astype(np.float32)
    pad, frames = n_fft // 2, n_stft_frames(length, hop)
    wsum = np.zeros((frames - 1) * hop + n_fft)
    for t in range(frames):
        wsum[t * hop : t * hop + n_fft] += window.astype(np.float64) ** 2
    inv_wsum = (1.0 / wsum[pad : pad + length]).astype(np.float32)

    def forward(x: np.ndarray) -> np.ndarray:
        padded = np.pad(x, pad, mode="reflect")  # (L + n_fft,)
        view = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]  # (T, n_fft)
        spec = np.fft.rfft(view * window, axis=-1)  # (T, bins) complex64
        return np.stack([spec.real.T, spec.imag.T])  # (2, bins, T)

    def inverse(s: np.ndarray) -> np.ndarray:
        z = np.empty(s.shape[:0:-1], dtype=np.complex64)  # (T, bins)
        z.real, z.imag = s[0].T, s[1].T
        y = np.fft.irfft(z, n_fft, axis=-1) * window  # (T, n_fft)
        acc = np.zeros(wsum.size, dtype=np.float32)
        for j in range(n_fft // hop):  # slab j of every frame lands at t*hop + j*hop
            acc[j * hop : j * hop + frames * hop] += y[:, j * hop : (j + 1) * hop].reshape(-1)
        return acc[pad : pad + length] * inv_wsum

    return StftImpl("numpy.fft", forward, inverse, "pocketfft in numpy >= 2: float32 stays complex64")


def scipy_stft(n_fft: int, hop: int, length: int) -> StftImpl:
    from scipy.signal import ShortTimeFFT

    window = periodic_hann(n_fft)
    stft = ShortTimeFFT(window, hop, fs=1.0, fft_mode="onesided", phase_shift=None)
    frames, pad = n_stft_frames(length, hop), n_fft // 2
    # istft wants slices from p_min (< 0) on and divides by the steady-state window sum
    # (its canonical dual window); a centred STFT has slices 0..T-1 only, so the edges are
    # renormalised by steady / actual window sum, as torch.istft and the engine do.
    lead = np.zeros((n_fft // 2 + 1, -stft.p_min), dtype=np.complex128)
    offset = 2 * n_fft  # sample n of the signal is index n + offset below
    actual, steady = np.zeros(length + 2 * offset), np.zeros(length + 2 * offset)
    for t in range(-n_fft // hop - 1, frames + n_fft // hop + 1):  # every frame that touches the signal
        start = t * hop - pad + offset
        steady[start : start + n_fft] += window**2
        if 0 <= t < frames:
            actual[start : start + n_fft] += window**2
    renorm = steady[offset : offset + length] / actual[offset : offset + length]

    def forward(x: np.ndarray) -> np.ndarray:
        spec = stft.stft(x, p0=0, p1=frames, padding="even")  # (bins, T); 'even' = reflect
        return np.stack([spec.real, spec.imag]).astype(np.float32)

    def inverse(s: np.ndarray) -> np.ndarray:
        spec = np.concatenate([lead, s[0] + 1j * s[1]], axis=1)  # (bins, T - p_min)
        return (stft.istft(spec, k1=length) * renorm).astype(np.float32)

    return StftImpl("scipy ShortTimeFFT", forward, inverse,
                    "float64 window, so float64 inside; istft edges renormalised (one multiply)")


def torch_stft(n_fft: int, hop: int, length: int) -> StftImpl:
    import torch

    window = torch.hann_window(n_fft, periodic=True)

    def forward(x: np.ndarray) -> np.ndarray:
        spec = torch.stft(torch.from_numpy(x), n_fft, hop, window=window, center=True, pad_mode="reflect",
                          return_complex=True)  # (bins, T) complex64
        return torch.view_as_real(spec).permute(2, 0, 1).contiguous().numpy()  # (2, bins, T)

    def inverse(s: np.ndarray) -> np.ndarray:
        spec = torch.complex(torch.from_numpy(s[0]), torch.from_numpy(s[1]))
        return torch.istft(spec, n_fft, hop, window=window, center=True, length=length).numpy()

    return StftImpl("torch.stft", forward, inverse, "pocketfft/MKL, float32, 1 intra-op thread")


def compare_stft(n_fft: int, hop: int, sizes: dict[str, int], repeats: dict[str, int],
                 sample_rate: int = DEFAULT_CONTRACT.sample_rate) -> dict:
    """Median ms per forward and inverse call per size; errors against the engine:
    forward = max |X - X_engine| / max |X_engine|; inverse = max |y - y_engine| on the
    engine's spectrum; round trip = max |inverse(forward(x)) - x| (x peaks at 0.5)."""
    builders = {"engine": engine_stft, "numpy": numpy_stft, "scipy": scipy_stft, "torch": torch_stft}
    skipped, results = {}, {}
    torch_threads = None
    try:
        import torch

        torch_threads = torch.get_num_threads()
        torch.set_num_threads(1)  # every other implementation here runs on one thread
    except ImportError:
        pass
    try:
        for label, length in sizes.items():
            x = reel_audio(length / sample_rate, 1, sample_rate)[0]
            rows = {}
            for key, build in builders.items():
                try:
                    rows[key] = build(n_fft, hop, length)
                except ImportError as exc:
                    skipped[key] = f"not installed ({exc.name})"
            ref = rows["engine"]
            ref_spec, reps = ref.forward(x), repeats[label]
            ref_back = ref.inverse(ref_spec)
            table = {}
            for key, impl in rows.items():
                spec = impl.forward(x)  # also the numba warm-up: compile before timing
                back = impl.inverse(ref_spec)
                forward_ms = median_ms(lambda: impl.forward(x), reps)
                inverse_ms = median_ms(lambda: impl.inverse(ref_spec), reps)
                table[key] = {
                    "name": impl.name,
                    "note": impl.note,
                    "forward_ms": forward_ms,
                    "inverse_ms": inverse_ms,
                    "forward_max_rel_error": float(np.abs(spec - ref_spec).max() / np.abs(ref_spec).max()),
                    "inverse_max_abs_error": float(np.abs(back - ref_back).max()),
                    "round_trip_max_abs_error": float(np.abs(impl.inverse(spec) - x).max()),
                }
            for row in table.values():
                row["forward_vs_engine"] = row["forward_ms"] / table["engine"]["forward_ms"]
                row["inverse_vs_engine"] = row["inverse_ms"] / table["engine"]["inverse_ms"]
            results[label] = {"samples": length, "spectrum_shape": list(ref_spec.shape), "repeats": reps,
                              "implementations": table}
    finally:
        if torch_threads is not None:
            import torch

            torch.set_num_threads(torch_threads)
    return {"n_fft": n_fft, "hop": hop, "sizes": results, "skipped": skipped}


# -- inference ---------------------------------------------------------------------------
VARIANT_SUFFIXES = {"fp16": (".fp16", "_fp16"), "int8": (".int8", "_int8")}


def find_variants(model_path: Path) -> dict[str, list[Path]]:
    """Per precision, the files that would hold it beside the model (MODEL.fp16.onnx,
    MODEL_fp16.onnx, …), existing ones first."""
    names = {p: [model_path.with_name(model_path.stem + s + model_path.suffix) for s in suffixes]
             for p, suffixes in VARIANT_SUFFIXES.items()}
    return {p: sorted(paths, key=lambda path: not path.is_file()) for p, paths in names.items()}


def _inputs(model: OnnxModel, batch: int, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Spectra of reel audio (so a real model sees its kind of input): (batch, 2, bins, T), (batch,)."""
    rng = np.random.default_rng(0)
    spec = model.spec
    audio = reel_audio(batch * spec.frame_seconds, 1, spec.sample_rate)[0][: batch * spec.frame_length]
    plan = StftPlan.from_contract(spec)
    x = plan.forward(audio.reshape(batch, spec.frame_length))  # (batch, 2, bins, T)
    assert x.shape[3] == frames, (x.shape, frames)
    return x + 1e-6 * rng.standard_normal(x.shape).astype(np.float32), np.full(batch, 4000.0, np.float32)


def _time_model(run: Callable[[np.ndarray, np.ndarray], np.ndarray], inputs: dict[int, tuple], repeats: int,
                **labels) -> list[dict]:
    rows = []
    for batch, (spec, cutoff) in inputs.items():
        ms = median_ms(lambda: run(spec, cutoff), repeats)
        rows.append({**labels, "batch": batch, "ms_per_call": ms, "ms_per_frame": ms / batch})
    return rows


def load_torch_module(path: Path):
    """An eager nn.Module from a checkpoint: a pickled module, or a training checkpoint
    dict naming its class (``model_class``), rebuilt by that module's ``load_generator``."""
    import torch

    ckpt = torch.load(str(path), map_location="cpu", weights_only=False)
    if isinstance(ckpt, torch.nn.Module):
        return ckpt.eval()
    if isinstance(ckpt, dict) and isinstance(ckpt.get("model_class"), str):
        module = importlib.import_module(ckpt["model_class"].rpartition(".")[0])
        if hasattr(module, "load_generator"):
            return module.load_generator(ckpt, map_location="cpu")
    raise ValueError(f"{path}: expected an nn.Module or a checkpoint dict with 'model_class', "
                     f"got {type(ckpt).__name__}")


def inference(model_path: Path, device: str, batches: tuple[int, ...], threads: tuple[int, ...], repeats: int,
              torch_checkpoint: Path | None) -> dict:
    """ms per call and per frame of `OnnxModel.run` for each intra-op thread count and
    batch; fp16/int8 variants and PyTorch eager when they are there, skipped (with the
    reason) when not."""
    skipped: dict[str, str] = {}
    models = {t: OnnxModel(model_path, device=device, threads=t) for t in threads}
    base = models[threads[0]]
    frames = base.spec.frames_per_frame
    inputs = {b: _inputs(base, b, frames) for b in batches}
    rows = []
    for t, m in models.items():
        rows += _time_model(m.run, inputs, repeats, runtime="onnxruntime", provider=m.provider, precision="fp32",
                            threads=t)
    reference = {b: base.run(*inputs[b]) for b in batches}

    def error_vs_onnx(run: Callable) -> float:
        """max |run - ONNX fp32| over the batched input, relative to max |ONNX fp32|."""
        b = max(batches)
        return float(np.abs(run(*inputs[b]) - reference[b]).max() / max(np.abs(reference[b]).max(), 1e-30))

    for precision, paths in find_variants(model_path).items():
        if not paths[0].is_file():
            names = " or ".join(p.name for p in paths)
            skipped[precision] = f"the model offers no {precision} variant (no {names} beside it)"
            continue
        try:
            m = OnnxModel(paths[0], device=device, threads=max(threads))
        except ModelError as exc:
            skipped[precision] = str(exc)
            continue
        found = _time_model(m.run, inputs, repeats, runtime="onnxruntime", provider=m.provider,
                            precision=precision, threads=max(threads))
        err = error_vs_onnx(m.run)
        rows += [{**r, "max_rel_error_vs_fp32": err} for r in found]
    if torch_checkpoint is None:
        skipped["torch_eager"] = "no --torch-checkpoint given"
    else:
        rows += _torch_rows(torch_checkpoint, inputs, threads, repeats, error_vs_onnx)
    return {"model": str(model_path), "frames_per_call": frames, "rows": rows, "skipped": skipped}


def _torch_rows(path: Path, inputs: dict, threads: tuple[int, ...], repeats: int,
                error_vs_onnx: Callable) -> list[dict]:
    import torch

    module = load_torch_module(path)
    takes_cutoff = len(inspect.signature(module.forward).parameters) >= 2

    def run(spec: np.ndarray, cutoff: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            args = (torch.from_numpy(spec), torch.from_numpy(cutoff)) if takes_cutoff else (torch.from_numpy(spec),)
            return module(*args).numpy()

    before = torch.get_num_threads()
    rows = []
    try:
        for t in threads:
            torch.set_num_threads(t)
            rows += _time_model(run, inputs, repeats, runtime="torch eager", provider="cpu", precision="fp32",
                                threads=t)
    finally:
        torch.set_num_threads(before)
    err = error_vs_onnx(run)  # meaningful when the ONNX model is this checkpoint's export
    return [{**r, "max_rel_error_vs_fp32": err} for r in rows]
