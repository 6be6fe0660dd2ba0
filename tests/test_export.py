"""restore-export: checkpoints become verified engine models carrying their own contract;
a broken export, or one the engine would refuse, is not written."""

import json

import numpy as np
import pytest
import soundfile as sf

torch = pytest.importorskip("torch")

from click.testing import CliRunner  # noqa: E402

from reelrestore.engine.contract import DEFAULT_CONTRACT, Contract  # noqa: E402
from reelrestore.engine.model import OnnxModel  # noqa: E402
from reelrestore.engine.restore import restore_file  # noqa: E402
from reelrestore.engine.stream import StreamConfig  # noqa: E402
from reelrestore.export.cli import main  # noqa: E402
from reelrestore.export.onnx_export import ExportError, export_module  # noqa: E402
from reelrestore.models.realtime import RealtimeConfig, RealtimeGenerator  # noqa: E402
from reelrestore.training.realtime import RealtimeTrainConfig, RealtimeTrainer  # noqa: E402

TINY = RealtimeConfig(n_bands=24, width=16, layers=2)
IDENTITY = {"architecture": "test", "model_version": "0"}


@pytest.fixture(params=["first", "fresh-noise"])
def realtime_checkpoint(tmp_path, request):
    model = TINY if request.param == "first" else RealtimeConfig(
        n_bands=24, width=16, layers=2, noise_start="input", conv_padding="replicate")
    trainer = RealtimeTrainer(RealtimeTrainConfig(model=model))
    for p in trainer.generator.parameters():  # as if trained: non-zero everywhere
        torch.nn.init.normal_(p, std=0.05)
    return trainer.save_checkpoint(tmp_path / "rt.pt")


def test_realtime_checkpoint_exports_with_metadata_and_runs_in_the_engine(realtime_checkpoint, tmp_path, write_wav):
    out = tmp_path / "rt.onnx"
    result = CliRunner().invoke(main, [str(realtime_checkpoint), "-o", str(out)])
    assert result.exit_code == 0, result.output + result.stderr
    report = json.loads(result.stdout)
    assert max(report["verify_max_rel_error"].values()) <= 1e-4
    model = OnnxModel(out)  # the engine accepts it: contract inputs, outputs, metadata
    assert model.has_cutoff and model.spec.representation == "complex_ri"
    meta = model.spec.metadata
    for key in ("weights_sha256", "training_steps", "training_data", "metrics", "architecture"):
        assert key in meta
    from conftest import music

    src = write_wav("in.wav", music(1.2, 1))
    run = restore_file(src, tmp_path / "out.wav", model, StreamConfig(cutoff_hz=2000.0))
    y, _ = sf.read(tmp_path / "out.wav")
    assert run.samples_out == y.shape[0] == 57600 and np.isfinite(y).all()


def test_thesis_checkpoint_exports_and_runs_in_the_engine(tmp_path):
    from reelrestore.models.thesis import tiny_config
    from reelrestore.training.config import TrainConfig
    from reelrestore.training.gan import GanTrainer

    cfg = TrainConfig(model=tiny_config())
    ckpt = GanTrainer(cfg).save_checkpoint(tmp_path / "thesis.pt")
    out = tmp_path / "thesis.onnx"
    result = CliRunner().invoke(main, [str(ckpt), "-o", str(out)])
    assert result.exit_code == 0, result.output + result.stderr
    model = OnnxModel(out)
    assert not model.has_cutoff
    assert model.spec.contract == cfg.model.contract
    x = np.random.default_rng(0).standard_normal((1, 2, model.spec.n_bins, model.spec.frames_per_frame))
    assert model.run(x.astype(np.float32), np.zeros(1, np.float32)).shape == x.shape


class TraceTimeBranch(torch.nn.Module):
    """Python control flow on data: tracing freezes the branch, so ONNX silently differs."""

    def forward(self, spectrum, cutoff_hz):
        gain = 1.0 + 0.0 * cutoff_hz[:, None, None, None]  # (B, 1, 1, 1): uses both inputs
        if float(spectrum.abs().mean()) > 10.0:
            return spectrum * 2.0 * gain
        return spectrum * gain


def test_a_broken_export_is_caught_and_nothing_is_written(tmp_path):
    out = tmp_path / "broken.onnx"
    with pytest.raises(ExportError, match="disagree"):
        export_module(TraceTimeBranch(), out, DEFAULT_CONTRACT, IDENTITY, uses_cutoff=True)
    assert not out.exists() and not list(tmp_path.glob(".*partial*"))


class DropsTheTopBin(torch.nn.Module):
    """Agrees with its own export, but returns one bin fewer than the contract's."""

    def forward(self, spectrum, cutoff_hz):
        return spectrum[:, :, :-1] * (1.0 + 0.0 * cutoff_hz[:, None, None, None])


def test_an_export_the_engines_loader_refuses_is_not_written(tmp_path):
    out = tmp_path / "short.onnx"
    with pytest.raises(ExportError, match=r"the engine refuses the export: restored: expected shape"):
        export_module(DropsTheTopBin(), out, DEFAULT_CONTRACT, IDENTITY, uses_cutoff=True)
    assert not out.exists() and not list(tmp_path.glob(".*partial*"))


def test_the_metadata_is_the_exported_models_own_contract(tmp_path):
    contract = Contract(sample_rate=44100, n_fft=1024, hop_length=256)
    cfg = RealtimeConfig(contract=contract, n_bands=24, width=16, layers=2)
    out = tmp_path / "rt1024.onnx"
    errors = export_module(RealtimeGenerator(cfg).eval(), out, cfg.contract, IDENTITY, uses_cutoff=True)
    assert max(errors.values()) <= 1e-4  # verified on spectra of this contract's shape
    model = OnnxModel(out)
    assert model.spec.contract == contract and model.spec.metadata["n_fft"] == "1024"
    with pytest.raises(ExportError, match=r"restates the contract's \['n_fft'\]"):
        export_module(RealtimeGenerator(cfg).eval(), out, cfg.contract, {**IDENTITY, "n_fft": 2048}, uses_cutoff=True)


def test_a_checkpoint_from_before_the_contract_object_still_exports(tmp_path):
    trainer = RealtimeTrainer(RealtimeTrainConfig(model=TINY))
    ckpt = torch.load(trainer.save_checkpoint(tmp_path / "rt.pt"), weights_only=True)
    legacy = {k: v for k, v in ckpt["model_config"].items() if k != "contract"}
    ckpt["model_config"] = {"sample_rate": 48000, "n_fft": 2048, "hop_length": 512, **legacy}  # the old layout
    torch.save(ckpt, tmp_path / "old.pt")
    out = tmp_path / "old.onnx"
    result = CliRunner().invoke(main, [str(tmp_path / "old.pt"), "-o", str(out)])
    assert result.exit_code == 0, result.output + result.stderr
    assert OnnxModel(out).spec.contract == DEFAULT_CONTRACT


def test_unreadable_checkpoint_is_refused(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_text("not a checkpoint")
    result = CliRunner().invoke(main, [str(bad), "-o", str(tmp_path / "m.onnx")])
    assert result.exit_code == 1 and "not a readable checkpoint" in result.stderr
    assert not (tmp_path / "m.onnx").exists()


def test_quiet_prints_nothing_and_verbose_adds_the_metadata(realtime_checkpoint, tmp_path):
    quiet = CliRunner().invoke(main, [str(realtime_checkpoint), "-o", str(tmp_path / "q.onnx"), "-q"])
    assert quiet.exit_code == 0 and quiet.output == "" and (tmp_path / "q.onnx").is_file()
    verbose = CliRunner().invoke(main, [str(realtime_checkpoint), "-o", str(tmp_path / "v.onnx"), "-v"])
    assert verbose.exit_code == 0, verbose.output
    assert json.loads(verbose.output)["metadata"]["sample_rate"] == str(DEFAULT_CONTRACT.sample_rate)


def test_a_run_can_start_from_an_exported_model_or_a_checkpoint(realtime_checkpoint, tmp_path, write_wav):
    """restore-train --init: the generator starts as the file's (the ONNX's folded norms
    included), whatever the file; a model of another config is refused in one line."""
    from reelrestore.export.onnx_export import realtime_generator_from_onnx
    from reelrestore.training.train import main as train_main
    from reelrestore.training.trainers import init_generator, new_trainer

    onnx_path = tmp_path / "rt.onnx"
    assert CliRunner().invoke(main, [str(realtime_checkpoint), "-o", str(onnx_path), "-q"]).exit_code == 0
    saved = torch.load(realtime_checkpoint, weights_only=False)
    cfg = RealtimeTrainConfig(model=RealtimeConfig.from_dict(saved["model_config"]))
    rebuilt = realtime_generator_from_onnx(onnx_path).state_dict()
    assert set(rebuilt) == set(saved["generator"])
    for key, value in saved["generator"].items():
        assert torch.allclose(rebuilt[key], value), key
    for source in (onnx_path, realtime_checkpoint):
        trainer = new_trainer(cfg)
        assert not torch.equal(trainer.generator.out.weight, saved["generator"]["out.weight"])
        init_generator(trainer, source)
        assert all(torch.equal(v, saved["generator"][k]) for k, v in trainer.generator.state_dict().items())
    other = RealtimeTrainConfig(model=RealtimeConfig(n_bands=24, width=16, layers=3))
    with pytest.raises(ValueError, match="layers"):
        init_generator(new_trainer(other), onnx_path)
    # the command line: a short run from the ONNX; --init with --resume is refused
    from conftest import music

    data = tmp_path / "clean"
    data.mkdir()
    for i in range(2):
        sf.write(data / f"{i}.wav", music(2.0, 1, seed=i)[:, 0], 48000)
    overrides = [f"model.{k}={json.dumps(v)}" for k, v in saved["model_config"].items()
                 if k in ("noise_start", "conv_padding")]
    result = CliRunner().invoke(train_main, ["--config", "training/configs/realtime_tiny.toml", "--data", str(data),
                                             "--out", str(tmp_path / "run"), "--init", str(onnx_path), "--steps", "1",
                                             *overrides])
    assert result.exit_code == 0, result.output
    both = CliRunner().invoke(train_main, ["--resume", str(tmp_path / "run" / "last.pt"), "--init", str(onnx_path)])
    assert both.exit_code == 2 and "--init" in both.output
