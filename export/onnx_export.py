"""Torch generator -> ONNX model the engine can run, verified or refused.

    restore-export runs/realtime-default/last.pt -o models/default.onnx

The exported graph takes the contract's inputs (``spectrum`` [batch, 2, bins, frames],
``cutoff_hz`` [batch] when the generator uses it) and returns ``restored``; both the batch
and frames axes are dynamic. Every representation step is inside the generator's forward,
so the graph is spectrum in, spectrum out. The contract (rate, STFT, frame) is the one in
the generator's config: it sizes the verification inputs and is written as the metadata.
The file is checked with onnx.checker, run by ONNX Runtime on random and on real (music +
hiss, low-passed) spectra and compared with PyTorch, written beside the destination under a
temporary name and opened with the engine's own loader; only when all of that passes is it
renamed into place. A failure, Ctrl-C or SIGTERM deletes it; a failure raises ExportError
(exit status 1).
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import onnx
import torch
from torch import nn

from reelrestore.engine.contract import METADATA_KEYS, Contract
from reelrestore.engine.model import ModelError, OnnxModel
from reelrestore.engine.safety import AtomicPath
from reelrestore.engine.stream import played_columns
from reelrestore.models.checkpoint import first_line, load_checkpoint_file
from reelrestore.models.spectral import stft


class ExportError(RuntimeError):
    """The export failed or does not match PyTorch; the message says how."""


class _WithCutoff(nn.Module):
    def __init__(self, generator: nn.Module, newest: int = 0):
        super().__init__()
        self.generator, self.newest = generator, newest

    def forward(self, spectrum: torch.Tensor, cutoff_hz: torch.Tensor) -> torch.Tensor:
        if self.newest:  # a model for the low-latency framing: only the columns it plays
            return self.generator(spectrum, cutoff_hz, newest=self.newest)
        return self.generator(spectrum, cutoff_hz)


class _WithPosition(_WithCutoff):
    """A real-time generator that reads its noise by the frame's place in the stream."""

    def forward(self, spectrum: torch.Tensor, cutoff_hz: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
        return self.generator(spectrum, cutoff_hz, newest=self.newest, position=position)


class _SpectrumOnly(nn.Module):
    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = generator

    def forward(self, spectrum: torch.Tensor) -> torch.Tensor:
        return self.generator(spectrum)


class _Half(nn.Module):
    """fp16 weights and arithmetic inside, the contract's float32 at the edges."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner.half()

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.inner(*(x.half() for x in inputs)).float()


@dataclass(frozen=True)
class Framing:
    """What a model trained for the engine's low-latency framing exports differently: it
    restores only the frame's newest `restored_columns` STFT columns, was trained with
    `lookahead_samples` of future after the hop it restores (both become metadata the
    engine reads), and may read its noise by the frame's stream position."""

    lookahead_samples: int
    restored_columns: int
    uses_position: bool = False

    def metadata(self) -> dict[str, str]:
        return {"lookahead_samples": str(self.lookahead_samples), "restored_columns": str(self.restored_columns)}


@dataclass(frozen=True)
class Loaded:
    """A generator rebuilt from a checkpoint, with what the metadata needs to say."""

    generator: nn.Module
    uses_cutoff: bool
    architecture: str
    contract: Contract  # the model config's: sizes the verification and becomes the metadata
    steps: int
    config: Mapping[str, Any]
    metrics: Mapping[str, float]
    framing: Framing | None = None  # a model for the low-latency framing
    averaged: tuple[str, ...] = ()  # the checkpoints whose mean it is (file names), if several


def load_checkpoint(path: str | Path) -> Loaded:
    """Rebuild the generator a `restore-train` checkpoint holds (real-time, U-Net or thesis);
    the U-Net comes wrapped in its spectrum-contract adapter. A file that is no such
    checkpoint (unreadable, incomplete, weights that do not fit) raises ExportError."""
    return _loaded(path, _read(path))


def load_averaged(paths: list[str | Path] | tuple[str | Path, ...]) -> Loaded:
    """The generator whose every weight is the mean of the checkpoints' (stochastic weight
    averaging over one run's checkpoints: the point between where the run wandered at the
    end, which generalises better than any one of them). All must hold the same model
    (class and config); everything else (steps, metrics, config) is the newest's, by
    training step. Buffers that are not floating point must agree. A checkpoint that holds
    the same step and weights as one before it (a run saves its every-N-steps checkpoint
    and its epoch's end at the same step) counts once."""
    if not paths:
        raise ExportError("no checkpoint to average")
    ckpts: list[tuple[str | Path, Any]] = []  # what averaging needs of each (not its optimizers' states)
    for path in paths:
        ckpt = _read(path)
        _check(path, ckpt)
        ckpt = {k: ckpt[k] for k in ("model_class", "model_config", "generator", "state") if k in ckpt}
        if not any(_same_point(ckpt, kept) for _, kept in ckpts):
            ckpts.append((path, ckpt))
    newest_path = max(ckpts, key=lambda pc: _step(pc[1]))[0]
    newest = _read(newest_path)  # whole: its config, history and metrics go into the metadata
    first_path, first = ckpts[0]
    for path, ckpt in ckpts[1:]:
        if ckpt["model_class"] != first["model_class"] or ckpt["model_config"] != first["model_config"]:
            raise ExportError(f"{path}: another model than {first_path}'s (class or config differ); average "
                              f"only checkpoints of one run")
    weights: dict[str, torch.Tensor] = {}
    for key, value in first["generator"].items():
        values = [ckpt["generator"].get(key) for _, ckpt in ckpts]
        missing = [str(path) for (path, _), v in zip(ckpts, values) if v is None or v.shape != value.shape]
        if missing:
            raise ExportError(f"{missing[0]}: no weight {key!r} of shape {tuple(value.shape)}; average only "
                              f"checkpoints of one run")
        if value.is_floating_point():
            weights[key] = torch.stack([v.double() for v in values]).mean(0).to(value.dtype)
        else:
            differs = [path for (path, _), v in zip(ckpts, values) if not torch.equal(v, value)]
            if differs:
                raise ExportError(f"{differs[0]}: its {key!r} differs from {first_path}'s and cannot be averaged")
            weights[key] = value
    return replace(_loaded(newest_path, dict(newest, generator=weights)),
                   averaged=tuple(Path(path).name for path, _ in ckpts))


def _step(ckpt: Mapping[str, Any]) -> int:
    return int(ckpt.get("state", {}).get("step", 0))


def _same_point(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two checkpoints hold one step of one run: the same step and the same weights."""
    ga, gb = a["generator"], b["generator"]
    return (_step(a) == _step(b) and ga.keys() == gb.keys()
            and all(torch.equal(ga[k], gb[k]) for k in ga))  # equal: same shape and values


def _read(path: str | Path) -> Any:
    try:
        return load_checkpoint_file(path)
    except ValueError as exc:
        raise ExportError(str(exc)) from None


def _check(path: str | Path, ckpt: Any) -> None:
    """Raise ExportError unless ``ckpt`` is a complete checkpoint of a known generator."""
    if not isinstance(ckpt, Mapping):
        raise ExportError(f"{path}: holds a {type(ckpt).__name__}, not a restore-train checkpoint")
    name = ckpt.get("model_class")
    known = name in (f"reelrestore.models.{m}" for m in ("realtime.RealtimeGenerator", "unet.UNetGenerator",
                                                          "thesis.ThesisGenerator"))
    if not known:
        raise ExportError(f"{path}: unknown model_class {name!r}; expected a restore-train checkpoint")
    missing = [key for key in ("model_config", "generator") if key not in ckpt]
    if missing:
        raise ExportError(f"{path}: not a complete restore-train checkpoint: missing {missing}")


def _loaded(path: str | Path, ckpt: Any) -> Loaded:
    _check(path, ckpt)
    name = ckpt["model_class"]
    try:
        return _rebuild(name, ckpt)
    except ExportError:
        raise
    except Exception as exc:  # a config the model refuses, weights of other shapes
        raise ExportError(f"{path}: cannot rebuild its {name.rsplit('.', 1)[-1]} ({first_line(exc)}); "
                          f"is the file damaged?") from None


def _rebuild(name: str, ckpt: Mapping[str, Any]) -> Loaded:
    """The generator of a checkpoint whose ``model_class`` is ``name``, and what it says."""
    # the newest validation: a run stopped mid-epoch (resumable) ends on a row without one
    validated = [row for row in ckpt.get("history") or [] if any(k.startswith("val_") for k in row)] or [{}]
    metrics = {k: float(v) for k, v in validated[-1].items() if k.startswith("val_") and isinstance(v, (int, float))}
    if validated[-1]:
        metrics["val_step"] = float(validated[-1].get("step", 0))
    steps = int(ckpt.get("state", {}).get("step", 0))
    config = ckpt["config"] if isinstance(ckpt.get("config"), Mapping) else {}
    if name == "reelrestore.models.realtime.RealtimeGenerator":
        from reelrestore.models.realtime import RealtimeConfig, RealtimeGenerator

        cfg = RealtimeConfig.from_dict(ckpt["model_config"])
        gen = RealtimeGenerator(cfg)
        gen.load_state_dict(ckpt["generator"])
        arch = f"realtime-sbr-envelope b{cfg.n_bands} w{cfg.width} l{cfg.layers}"
        arch += "".join(f" {opt}" for opt, on in (("pad-replicate", cfg.conv_padding == "replicate"),
                                                    ("noise-from-input", cfg.noise_start == "input"),
                                                    ("noise-by-position", cfg.noise_start == "position"),
                                                    ("sees-above", cfg.input_above)) if on)
        arch += f" lookahead{cfg.lookahead}" if cfg.lookahead else ""
        arch += " hold-played" if cfg.hold_played else ""
        return Loaded(gen.eval(), True, arch, cfg.contract, steps, config, metrics, realtime_framing(cfg))
    if name == "reelrestore.models.unet.UNetGenerator":
        from reelrestore.models.unet import UNetConfig, UNetGenerator, UNetSpectrumModel

        cfg = UNetConfig.from_dict(ckpt["model_config"])
        unet = UNetGenerator(cfg)
        unet.load_state_dict(ckpt["generator"])
        return Loaded(UNetSpectrumModel(unet).eval(), True, cfg.architecture, cfg.contract, steps, config, metrics)
    from reelrestore.models.thesis import load_generator

    gen = load_generator(ckpt)
    return Loaded(gen, False, gen.cfg.architecture, gen.cfg.contract, steps, config, metrics)


def realtime_framing(cfg: Any) -> Framing | None:
    """The `Framing` a real-time generator of config `cfg` exports with: None for a
    whole-frame model that draws its own noise."""
    if not cfg.lookahead and cfg.noise_start != "position":
        return None
    newest = cfg.contract.frames_per_frame - played_columns(cfg.contract, cfg.lookahead).start if cfg.lookahead else 0
    return Framing(cfg.lookahead, newest, cfg.noise_start == "position")


def real_spectra(contract: Contract, batch: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Spectra of one frame of realistic input — harmonics with vibrato, hiss, a
    brick-wall cut at 1, 3 and 6 kHz — and those cutoffs: ((B, 2, bins, T), (B,))."""
    rng = np.random.default_rng(seed)
    sr = contract.sample_rate
    n = (contract.frames_per_frame - 1) * contract.hop_length
    t = np.arange(n) / sr
    cutoffs = np.array([1000.0, 3000.0, 6000.0, 2000.0, 4000.0][:batch])
    audio = np.empty((batch, n))
    for b in range(batch):
        f0 = rng.uniform(110, 330) * (1 + 0.01 * np.sin(2 * np.pi * 5 * t))
        phase = 2 * np.pi * np.cumsum(f0) / sr
        x = sum(0.3 / k * np.sin(k * phase) for k in range(1, 30)) + 0.003 * rng.standard_normal(n)
        spec = np.fft.rfft(x)
        spec[np.fft.rfftfreq(n, 1 / sr) > cutoffs[b]] = 0
        audio[b] = np.fft.irfft(spec, n)
    spectra = stft(torch.tensor(audio, dtype=torch.float32), contract.n_fft, contract.hop_length)
    return spectra, torch.tensor(cutoffs, dtype=torch.float32)


def verify(module: nn.Module, onnx_bytes: bytes, contract: Contract, uses_cutoff: bool,
           tolerance: float, uses_position: bool = False) -> dict[str, float]:
    """Run ONNX Runtime and PyTorch on random and real inputs of the contract's shape (and
    another batch/frames size); return the worst relative error per case, raise
    ExportError beyond tolerance."""
    import onnxruntime as ort

    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    gen = torch.Generator().manual_seed(1)
    bins, frames = contract.n_bins, contract.frames_per_frame
    cases = {
        "random": (torch.randn(2, 2, bins, frames, generator=gen) * 20.0, torch.tensor([2500.0, 800.0])),
        "real": real_spectra(contract),
        "other_shape": (torch.randn(5, 2, bins, frames // 2, generator=gen) * 5.0, torch.full((5,), 4000.0)),
    }
    errors = {}
    for name, (spectrum, cutoff) in cases.items():
        args = (spectrum, cutoff) if uses_cutoff else (spectrum,)
        if uses_position:  # frames from anywhere in a stream, past the noise's length too
            args += (torch.arange(spectrum.shape[0], dtype=torch.float32) * 97.0 + 3.0,)
        with torch.no_grad():
            expected = module(*args).numpy()
        feeds = dict(zip(("spectrum", "cutoff_hz", "position"), (a.numpy() for a in args)))
        try:
            (got,) = session.run(["restored"], feeds)
        except Exception as exc:
            raise ExportError(f"ONNX Runtime cannot run the export on {name} input: {first_line(exc)}")
        if got.shape != expected.shape:
            raise ExportError(f"{name} input: ONNX gives shape {got.shape}, PyTorch {expected.shape}")
        scale = max(float(np.abs(expected).max()), 1e-12)
        errors[name] = float(np.abs(got - expected).max()) / scale
        if not np.isfinite(got).all() or errors[name] > tolerance:
            raise ExportError(f"ONNX Runtime and PyTorch disagree on {name} input: max error "
                              f"{errors[name]:.3g} of the output's peak (tolerance {tolerance:g})")
    return errors


def export_module(
    generator: nn.Module,
    dest: str | Path,
    contract: Contract,
    metadata: Mapping[str, str],
    uses_cutoff: bool,
    opset: int = 17,
    fp16: bool = False,
    tolerance: float | None = None,
    dynamo: bool = False,
    framing: Framing | None = None,
) -> dict[str, float]:
    """Export, check, verify and atomically write `generator`, which restores spectra of
    `contract` (its config's); returns the verify errors. The metadata is the contract's
    followed by `metadata` (the model's identity: architecture, version, training) and,
    for a model of the low-latency framing, the framing's (`Framing`)."""
    dest = Path(dest)
    restated = sorted(set(metadata) & set(METADATA_KEYS))
    if restated:
        raise ExportError(f"metadata restates the contract's {restated}; expected them from the model's contract")
    newest = framing.restored_columns if framing else 0
    uses_position = bool(framing and framing.uses_position)
    if (newest or uses_position) and not uses_cutoff:
        raise ExportError("a model of the low-latency framing takes the cutoff; expected uses_cutoff")
    module: nn.Module = ((_WithPosition if uses_position else _WithCutoff)(generator, newest) if uses_cutoff
                         else _SpectrumOnly(generator))
    module = module.eval()
    reference = module  # PyTorch in float32 is the reference, also for an fp16 export
    if fp16:
        import copy

        module = _Half(copy.deepcopy(module)).eval()
    tolerance = tolerance if tolerance is not None else (2e-2 if fp16 else 1e-4)
    spectrum = torch.randn(2, 2, contract.n_bins, contract.frames_per_frame)
    args = (spectrum, torch.tensor([2000.0, 5000.0])) if uses_cutoff else (spectrum,)
    names = ["spectrum", "cutoff_hz"] if uses_cutoff else ["spectrum"]
    if uses_position:
        args, names = args + (torch.tensor([0.0, 200.0]),), names + ["position"]
    buffer = io.BytesIO()
    try:
        if dynamo:
            from torch.export import Dim

            batch, frames = Dim("batch"), Dim("frames")
            shapes = {"spectrum": {0: batch, 3: frames}}
            for name in names[1:]:
                shapes[name] = {0: batch}
            program = torch.onnx.export(module, args, input_names=names, output_names=["restored"],
                                        dynamo=True, dynamic_shapes=shapes, opset_version=opset)
            proto = program.model_proto
        else:
            axes = {"spectrum": {0: "batch", 3: "frames"}, "restored": {0: "batch", 3: "frames"}}
            if newest:
                axes["restored"] = {0: "batch"}  # the newest columns: a fixed count
            for name in names[1:]:
                axes[name] = {0: "batch"}
            torch.onnx.export(module, args, buffer, input_names=names, output_names=["restored"],
                              dynamic_axes=axes, opset_version=opset, dynamo=False)
            proto = onnx.load_from_string(buffer.getvalue())
    except ExportError:
        raise
    except Exception as exc:
        raise ExportError(f"torch.onnx.export failed: {first_line(exc)}")
    weights = hashlib.sha256(b"".join(onnx.numpy_helper.to_array(t).tobytes() for t in proto.graph.initializer))
    meta = {**contract.to_metadata(), **{k: str(v) for k, v in metadata.items()},
            **(framing.metadata() if framing and newest else {}),
            "weights_sha256": weights.hexdigest(), "precision": "fp16" if fp16 else "fp32"}
    onnx.helper.set_model_props(proto, meta)
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"onnx.checker rejects the export: {first_line(exc)}")
    data = proto.SerializeToString()
    errors = verify(reference, data, contract, uses_cutoff, tolerance, uses_position)
    with AtomicPath(dest) as temp:  # whole or not at all, whatever stops it; errors name `dest`
        temp.write_bytes(data)
        check_with_engine(temp, contract)
    return errors


def check_with_engine(path: Path, contract: Contract) -> None:
    """Open `path` with the engine's own loader; raise ExportError if it refuses the file
    or reads another contract from it than `contract`."""
    try:
        spec = OnnxModel(path, device="cpu").spec
    except ModelError as exc:
        raise ExportError(f"the engine refuses the export: {exc}") from None
    if spec.contract != contract:
        raise ExportError(f"the engine reads {spec.contract} from the export, expected {contract}")


def describe_data(source: str) -> str:
    """The training data in one line: a realtrain folder by its manifest, else its path."""
    manifest = Path(source) / "manifest.json"
    try:
        m = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return str(source)
    if m.get("format") != "reelrestore-realtrain-1":
        return str(source)
    origins = sorted({f["origin"].split(":")[0] if f["origin"].startswith("debian:") else "github" for f in m["files"]})
    return (f"real recordings, the real set's training part: {m['n_files']} recordings, "
            f"{m['total_seconds'] / 3600:.2f} h ({', '.join(origins)}; reelrestore.training.realtrain)")


def export_checkpoint(checkpoint: str | Path | list[str | Path], dest: str | Path, opset: int = 17,
                      fp16: bool = False, tolerance: float | None = None, dynamo: bool = False,
                      training_data: str = "built-in corpus (reelrestore.training.corpus)",
                      version: str = "1.0.0") -> dict[str, Any]:
    """`restore-export`: a checkpoint to a verified ONNX model with its contract's metadata;
    several checkpoints of one run (a list) are averaged weight by weight first."""
    several = isinstance(checkpoint, (list, tuple))
    loaded = load_averaged(checkpoint) if several else load_checkpoint(checkpoint)
    data = loaded.config.get("data")
    data_source = data.get("source") if isinstance(data, Mapping) else None
    if data_source not in (None, "builtin"):
        training_data = describe_data(data_source)
    metadata = {
        "architecture": loaded.architecture,
        "model_version": f"{version}+step{loaded.steps}",
        "training_data": training_data,
        "training_steps": loaded.steps,
        "training_config": json.dumps(loaded.config, sort_keys=True),
        "metrics": json.dumps(loaded.metrics, sort_keys=True),
        "checkpoint": ", ".join(loaded.averaged) if several else Path(checkpoint).name,
    }
    if several:
        metadata["averaged_checkpoints"] = len(loaded.averaged)
    errors = export_module(loaded.generator, dest, loaded.contract, metadata, loaded.uses_cutoff, opset, fp16,
                           tolerance, dynamo, loaded.framing)
    return {"output": str(dest), "architecture": loaded.architecture, "steps": loaded.steps,
            "uses_cutoff": loaded.uses_cutoff, "verify_max_rel_error": errors,
            "size_bytes": Path(dest).stat().st_size}


def realtime_generator_from_onnx(path: str | Path, tolerance: float = 1e-4) -> nn.Module:
    """The PyTorch real-time generator an exported ``.onnx`` was made from, to train on from
    its weights (``restore-train --init``). The export folds each GroupNorm's scale and
    shift into unnamed constants; they are read in the graph's order, and the rebuilt
    network must give the file's output (`verify`, ``tolerance``) or ExportError says so."""
    import onnx
    from onnx import numpy_helper

    from reelrestore.models.realtime import RealtimeConfig, RealtimeGenerator

    data = Path(path).read_bytes()
    try:
        proto = onnx.load_from_string(data)
        meta = {p.key: p.value for p in proto.metadata_props}
        cfg = RealtimeConfig.from_dict(json.loads(meta["training_config"])["model"])
    except Exception as exc:  # not ONNX, no training config, another trainer's model
        raise ExportError(f"{path}: not a restore-export of the real-time generator ({first_line(exc)})") from None
    gen = RealtimeGenerator(cfg)
    state = gen.state_dict()
    init = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    loaded = {k[len("generator."):]: torch.from_numpy(v.copy()) for k, v in init.items()
              if k.startswith("generator.") and k[len("generator."):] in state}
    folded = {"Mul": [], "Add": []}  # the GroupNorm affine, in the order the graph applies it
    for node in proto.graph.node:
        if node.op_type in folded:
            for name in node.input:
                if name in init and not name.startswith("generator.") and init[name].shape == (cfg.width, 1):
                    folded[node.op_type].append(init[name])
    if len(folded["Mul"]) != cfg.layers or len(folded["Add"]) != cfg.layers:
        raise ExportError(f"{path}: expected {cfg.layers} folded GroupNorm scales and shifts, "
                          f"found {len(folded['Mul'])} and {len(folded['Add'])}")
    for i in range(cfg.layers):
        loaded[f"body.{i}.norm.weight"] = torch.from_numpy(folded["Mul"][i].reshape(-1).copy())
        loaded[f"body.{i}.norm.bias"] = torch.from_numpy(folded["Add"][i].reshape(-1).copy())
    # the noise excitation is seeded in __init__, so the fresh network already holds it
    # (a graph that reads a fixed slice of it keeps only that slice, as a folded constant)
    loaded.setdefault("noise", state["noise"])
    missing = sorted(set(state) - set(loaded))
    if missing:
        raise ExportError(f"{path}: the file lacks the weights {missing[:4]}")
    gen.load_state_dict(loaded)
    gen.eval()
    framing = realtime_framing(cfg)
    newest, position = (framing.restored_columns, framing.uses_position) if framing else (0, False)
    module = (_WithPosition if position else _WithCutoff)(gen, newest)
    verify(module, data, cfg.contract, True, tolerance, position)  # the rebuilt network is the file's
    return gen
