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


LOW = RealtimeConfig(n_bands=24, width=16, layers=2, noise_start="position", conv_padding="replicate",
                     lookahead=512)  # a model for the low-latency framing


@pytest.fixture(params=["first", "fresh-noise", "low-latency"])
def realtime_checkpoint(tmp_path, request):
    model = {"first": TINY, "low-latency": LOW}.get(request.param) or RealtimeConfig(
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
    latency = "low" if model.spec.restored_columns else "full"
    run = restore_file(src, tmp_path / "out.wav", model, StreamConfig(cutoff_hz=2000.0, latency=latency))
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
                 if k in ("noise_start", "conv_padding", "lookahead")]
    result = CliRunner().invoke(train_main, ["--config", "training/configs/realtime_tiny.toml", "--data", str(data),
                                             "--out", str(tmp_path / "run"), "--init", str(onnx_path), "--steps", "1",
                                             *overrides])
    assert result.exit_code == 0, result.output
    both = CliRunner().invoke(train_main, ["--resume", str(tmp_path / "run" / "last.pt"), "--init", str(onnx_path)])
    assert both.exit_code == 2 and "--init" in both.output


def test_a_low_latency_model_exports_only_the_columns_its_framing_plays(tmp_path):
    """A model trained for the low-latency framing: the file restores the frame's newest
    columns (equal to those of the whole network's output), says its look-ahead, reads the
    frames' stream position, and the engine frames by it — and refuses it for the full
    framing in one line."""
    from reelrestore.engine.model import ModelError
    from reelrestore.engine.stream import StreamRestorer
    from reelrestore.export.onnx_export import realtime_framing

    gen = RealtimeGenerator(LOW).eval()
    for p in gen.parameters():
        torch.nn.init.normal_(p, std=0.05)
    framing = realtime_framing(LOW)
    assert (framing.lookahead_samples, framing.restored_columns, framing.uses_position) == (512, 4, True)
    out = tmp_path / "low.onnx"
    export_module(gen, out, LOW.contract, IDENTITY, uses_cutoff=True, framing=framing)
    model = OnnxModel(out)
    assert model.has_position and (model.spec.lookahead_samples, model.spec.restored_columns) == (512, 4)
    spectrum = torch.randn(3, 2, 1025, 47)
    cutoff, position = torch.tensor([1000.0, 3000.0, 6000.0]), torch.tensor([0.0, 5.0, 300.0])
    with torch.no_grad():
        whole = gen(spectrum, cutoff, position=position).numpy()
    got = model.run(spectrum.numpy(), cutoff.numpy(), position.numpy())
    assert got.shape == (3, 2, 1025, 4)
    np.testing.assert_allclose(got, whole[..., -4:], atol=1e-4 * np.abs(whole).max())
    with pytest.raises(ValueError, match="position"):
        model.run(spectrum.numpy(), cutoff.numpy())
    low = StreamRestorer(model, 1, StreamConfig(latency="low", cutoff_hz=2000.0))
    assert low.config.lookahead == 512 and low.latency_samples == 512 + 512 + 256 - 1
    with pytest.raises(ModelError, match="--latency low"):
        StreamRestorer(model, 1, StreamConfig(cutoff_hz=2000.0))
    with pytest.raises(ModelError, match="newest 4"):
        StreamRestorer(model, 1, StreamConfig(latency="low", lookahead=4096, cutoff_hz=2000.0))


def test_the_engine_gives_a_low_latency_model_the_frames_stream_position(tmp_path):
    """Through the engine's low-latency framing (a frame every 512 samples), a model that
    reads its noise by the frame's stream position adds a band that does not repeat at the
    hop rate; one that reads the same noise columns in every frame does (the control)."""
    from reelrestore.engine.stream import StreamRestorer
    from reelrestore.export.onnx_export import Framing

    from scipy import signal

    rng = np.random.default_rng(3)
    hiss = signal.sosfilt(signal.butter(8, 3000, fs=48000, output="sos"), 0.01 * rng.standard_normal((1, 3 * 48000)))
    hiss = hiss.astype(np.float32)  # steady hiss cut at 3 kHz: the model's band is all there is above
    repeat = {}
    for noise in ("position", "fixed"):
        cfg = RealtimeConfig(n_bands=24, width=16, layers=2, noise_start=noise, lookahead=512)
        path = tmp_path / f"{noise}.onnx"
        gen = RealtimeGenerator(cfg).eval()
        with torch.no_grad():
            gen.out.bias[cfg.n_bands :] = 10.0  # an excitation of noise alone, no copy of the (fresh) input
        export_module(gen, path, cfg.contract, IDENTITY, uses_cutoff=True, framing=Framing(512, 4, noise == "position"))
        r = StreamRestorer(OnnxModel(path), 1, StreamConfig(latency="low", cutoff_hz=3000.0))
        bands = []
        for s in range(0, hiss.shape[1], 512):
            r.feed(hiss[:, s : s + 512])
            bands.append(r.added)
        band = np.concatenate(bands, axis=1)[0, 48000:]  # past the first second
        assert np.sqrt(np.mean(band**2)) > 1e-4  # a band was added
        a, b = band[:-512], band[512:]
        repeat[noise] = float(np.dot(a, b) / np.sqrt(np.dot(a, a) * np.dot(b, b)))
    assert repeat["fixed"] > 0.7 and abs(repeat["position"]) < 0.2, repeat  # measured 0.9+ and 0.01


def _checkpoint(tmp_path, name, model, seed, step):
    trainer = RealtimeTrainer(RealtimeTrainConfig(model=model))
    torch.manual_seed(seed)
    for p in trainer.generator.parameters():
        torch.nn.init.normal_(p, std=0.05)
    trainer.state.step = step
    return trainer.save_checkpoint(tmp_path / name), trainer.generator.state_dict()


def test_several_checkpoints_of_one_run_export_as_their_average(tmp_path):
    """restore-export A B B' C: every weight of the exported model is the mean of the three
    checkpoints' (B' holds B's step and weights under another name, as a run's periodic and
    epoch-end checkpoints do, and counts once); the metadata names them and is the newest's."""
    import shutil

    from reelrestore.export.onnx_export import realtime_generator_from_onnx

    model = RealtimeConfig(n_bands=24, width=16, layers=2, noise_start="input", conv_padding="replicate")
    saved = [_checkpoint(tmp_path, f"s{step}.pt", model, seed, step) for seed, step in ((1, 300), (2, 500), (3, 400))]
    again = shutil.copy(saved[1][0], tmp_path / "s500-again.pt")
    out = tmp_path / "avg.onnx"
    names = [str(saved[0][0]), str(saved[1][0]), str(again), str(saved[2][0])]
    result = CliRunner().invoke(main, [*names, "-o", str(out), "-v"])
    assert result.exit_code == 0, result.output + result.stderr
    report = json.loads(result.stdout)
    assert report["steps"] == 500 and report["metadata"]["averaged_checkpoints"] == "3"
    assert report["metadata"]["checkpoint"] == "s300.pt, s500.pt, s400.pt"
    rebuilt = realtime_generator_from_onnx(out).state_dict()
    for key, first in saved[0][1].items():
        mean = sum(weights[key] for _, weights in saved) / 3
        assert torch.allclose(rebuilt[key], mean, atol=1e-6), key
        if not torch.equal(first, saved[1][1][key]):  # a weight (the fixed noise table is a buffer)
            assert not torch.allclose(rebuilt[key], first), key


def test_checkpoints_of_different_models_are_not_averaged(tmp_path):
    base = dict(n_bands=24, width=16, noise_start="input", conv_padding="replicate")
    a, _ = _checkpoint(tmp_path, "a.pt", RealtimeConfig(layers=2, **base), 1, 100)
    b, _ = _checkpoint(tmp_path, "b.pt", RealtimeConfig(layers=3, **base), 2, 200)
    out = tmp_path / "m.onnx"
    mixed = CliRunner().invoke(main, [str(a), str(b), "-o", str(out)])
    assert mixed.exit_code == 1 and "another model" in mixed.stderr and "one run" in mixed.stderr
    twice = CliRunner().invoke(main, [str(a), str(tmp_path / "." / "a.pt"), "-o", str(out)])
    assert twice.exit_code == 1 and "named twice" in twice.stderr
    assert not out.exists()
