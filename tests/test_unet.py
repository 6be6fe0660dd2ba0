"""The time-domain U-Net option: shapes and resampling folds, a per-example critic, the
kept band of the spectrum adapter, one step of each part trains, resume, export, engine."""

import json

import numpy as np
import pytest
import soundfile as sf

torch = pytest.importorskip("torch")

from click.testing import CliRunner  # noqa: E402

from reelrestore.models.spectral import stft  # noqa: E402
from reelrestore.models.unet import (  # noqa: E402
    UNetAutoencoder,
    UNetConfig,
    UNetCritic,
    UNetGenerator,
    UNetSpectrumModel,
    subpixel,
    superpixel,
)
from reelrestore.training.config import UNetLossConfig, UNetTrainConfig  # noqa: E402
from reelrestore.training.trainers import resume  # noqa: E402
from reelrestore.training.unet import UNetTrainer  # noqa: E402

TINY = UNetConfig(blocks=3, filters=8, d_max=16, critic_filters=8, critic_blocks=3, critic_pool=4, critic_hidden=8,
                  ae_blocks=2)


def pairs(n: int, seed: int = 0, samples: int = 4800) -> dict:
    """A batch like PairedSegments': harmonics + hiss, brick-wall cut at 1-4 kHz."""
    from conftest import cut_pairs

    items = cut_pairs(n, seed, samples)
    return {k: torch.as_tensor(np.stack([i[k] for i in items])) for k in ("damaged", "target", "cutoff_hz")}


def trainer(**loss) -> UNetTrainer:
    defaults = dict(ae_pretrain_steps=1, n_critic=1)
    return UNetTrainer(UNetTrainConfig(model=TINY, loss=UNetLossConfig(**{**defaults, **loss})), device="cpu")


def snapshot(module):
    return {n: p.detach().clone() for n, p in module.named_parameters()}


def unmoved(before, module):
    return [n for n, p in module.named_parameters() if torch.equal(p, before[n])]


def test_superpixel_and_subpixel_fold_samples_into_channels_and_back():
    x = torch.arange(2 * 3 * 8, dtype=torch.float32).reshape(2, 3, 8)
    folded = superpixel(x)
    assert folded.shape == (2, 6, 4)
    torch.testing.assert_close(folded[0, :2, 0], x[0, 0, :2])  # samples 0, 1 of channel 0 -> channels 0, 1
    assert torch.equal(subpixel(folded), x)


@pytest.mark.parametrize("length", [4800, 4801, 777])
def test_generator_maps_any_length_to_the_same_length_and_starts_near_identity(length):
    g = UNetTrainer(UNetTrainConfig(model=TINY), device="cpu").generator
    x = torch.randn(2, length)
    y = g(x)
    assert y.shape == x.shape and not torch.equal(y, x)
    assert (y - x).square().mean() < 1e-3 * x.square().mean()  # the input skip, a small residual
    torch.nn.init.zeros_(g.out.weight)
    torch.nn.init.zeros_(g.out.bias)
    assert torch.equal(g(x), x)


def test_filters_double_with_depth_up_to_d_max():
    cfg = UNetConfig(blocks=5, filters=8, d_max=32)
    assert [cfg.width(i) for i in range(5)] == [8, 16, 32, 32, 32]
    g = UNetGenerator(cfg)
    assert [block.conv.branches[0].out_channels * 4 * 2 for block in g.down] == [8, 16, 32, 32, 32]
    assert [branch.kernel_size[0] for branch in g.down[0].conv.branches] == [3, 9, 27, 81]


def test_autoencoder_has_no_skips_and_its_bottleneck_is_compact():
    ae = UNetAutoencoder(TINY)
    assert not ae.net.skips and not ae.net.input_skip and len(ae.net.down) == 2
    feats = ae.features(torch.randn(3, 4800))
    assert feats.shape == (3, TINY.width(1), 4800 // 4)


def test_critic_scores_each_example_on_its_own():
    critic = UNetCritic(TINY)
    x = torch.randn(4, 4800)
    scores = critic(x)
    assert scores.shape == (4,)
    # LayerNorm, not BatchNorm: an example's score does not depend on its batch mates
    torch.testing.assert_close(critic(x[:1]), scores[:1], rtol=1e-5, atol=1e-6)
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in critic.modules())


def test_spectrum_adapter_keeps_the_input_band_and_restores_above_it():
    torch.manual_seed(0)
    g = UNetGenerator(TINY)
    model = UNetSpectrumModel(g).eval()
    audio = torch.randn(2, 24000) * 0.1
    spectrum = stft(audio)
    cutoff = torch.tensor([1000.0, 4000.0])
    with torch.no_grad():
        out = model(spectrum, cutoff)
    assert out.shape == spectrum.shape
    for i, c in enumerate(cutoff.tolist()):
        kept = int(c / (48000 / 2048))
        torch.testing.assert_close(out[i, :, : kept + 1], spectrum[i, :, : kept + 1], rtol=0, atol=0)
        assert (out[i, :, kept + 12:] - spectrum[i, :, kept + 12:]).abs().max() > 1e-3


def test_pretraining_steps_train_only_the_autoencoder():
    tr = trainer(ae_pretrain_steps=2)
    g0, d0, a0 = snapshot(tr.generator), snapshot(tr.critic), snapshot(tr.autoencoder)
    logs = tr.train_step(pairs(2))
    assert set(logs) == {"ae_loss"} and np.isfinite(logs["ae_loss"])
    assert not unmoved(a0, tr.autoencoder)
    assert unmoved(g0, tr.generator) == list(g0) and unmoved(d0, tr.critic) == list(d0)


def test_one_gan_step_moves_every_generator_and_critic_parameter_and_freezes_the_autoencoder():
    tr = trainer()
    tr.train_step(pairs(2))  # the one pre-training step
    g0, d0, a0 = snapshot(tr.generator), snapshot(tr.critic), snapshot(tr.autoencoder)
    logs = tr.train_step(pairs(2, seed=1))
    for key in ("d_wasserstein", "gp", "g_time", "g_freq", "g_ae", "g_adv", "g_total"):
        assert np.isfinite(logs[key]), key
    assert unmoved(g0, tr.generator) == []
    # the head's hidden bias only acts through LeakyReLU slopes, which may agree on real
    # and fake on one batch: every other critic parameter must move
    assert set(unmoved(d0, tr.critic)) <= {"fc.0.bias"}
    assert unmoved(a0, tr.autoencoder) == list(a0)


def test_the_critic_takes_n_critic_steps_per_generator_step():
    tr = trainer(n_critic=3)
    for seed in range(7):  # 1 pre-training batch + 6 GAN batches
        tr.train_step(pairs(2, seed=seed))
    assert (tr.state.d_steps, tr.state.g_steps) == (6, 2)


@pytest.mark.parametrize("weights", [dict(time_weight=0.0, ae_weight=0.0, adv_weight=0.0),
                                     dict(time_weight=0.0, freq_weight=0.0, adv_weight=0.0),
                                     dict(freq_weight=0.0, ae_weight=0.0, adv_weight=0.0)])
def test_each_content_loss_alone_trains_the_generator(weights):
    """L_freq, L_ae and L_time each give the generator a gradient of their own."""
    tr = trainer(**weights)
    tr.train_step(pairs(2))
    g0 = snapshot(tr.generator)
    tr.train_step(pairs(2, seed=1))
    assert unmoved(g0, tr.generator) == []


def test_checkpoint_resumes_to_the_same_next_step(tmp_path):
    tr = trainer()
    for seed in range(3):
        tr.train_step(pairs(2, seed=seed))
    path = tr.save_checkpoint(tmp_path / "u.pt")
    expected = tr.train_step(pairs(2, seed=9))
    resumed = resume(path)
    assert resumed.state.step == 3
    got = resumed.train_step(pairs(2, seed=9))
    assert got == expected


def test_restore_train_cli_trains_exports_and_the_engine_runs_it(tmp_path, write_wav):
    from conftest import music

    from reelrestore.engine.model import OnnxModel
    from reelrestore.engine.restore import restore_file
    from reelrestore.engine.stream import StreamConfig
    from reelrestore.export.cli import main as export_main
    from reelrestore.training.train import main as train_main

    config = tmp_path / "unet.toml"
    model = "\n".join(f"{k} = {json.dumps(v)}" for k, v in TINY.to_dict().items() if k != "contract")
    config.write_text(f'trainer = "unet"\n[model]\n{model}\n[data]\nbatch_size = 2\nval_batches = 1\n'
                      f'[loss]\nae_pretrain_steps = 1\nn_critic = 1\n'
                      f'[schedule]\nepochs = 1\nsteps_per_epoch = 3\ndevice = "cpu"\nprogress = false\n')
    result = CliRunner().invoke(train_main, ["--config", str(config), "--data", "builtin", "--out",
                                             str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert history[-1]["step"] == 3 and np.isfinite(history[-1]["val_lsd_above"])

    onnx_path = tmp_path / "unet.onnx"
    result = CliRunner().invoke(export_main, [str(tmp_path / "run" / "last.pt"), "-o", str(onnx_path)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert max(report["verify_max_rel_error"].values()) <= 1e-4 and report["uses_cutoff"]
    model = OnnxModel(onnx_path)
    assert model.has_cutoff and model.spec.metadata["architecture"].startswith("time-unet-wgan-gp")

    x = music(1.2, 1)
    src = write_wav("in.wav", x)
    run = restore_file(src, tmp_path / "out.wav", model, StreamConfig(cutoff_hz=2000.0))
    y, _ = sf.read(tmp_path / "out.wav")
    assert run.samples_out == y.shape[0] == x.shape[0] and np.isfinite(y).all()


def test_dynamic_mse_drops_l_time_at_the_configured_epoch_and_stays_off(tmp_path):
    tr = trainer(content_schedule="dynamic", content_off_epoch=1, content_off_below_db=None)
    tr.train_step(pairs(2))  # pre-training
    logs = tr.train_step(pairs(2, seed=1))
    assert logs["g_content_weight"] == tr.cfg.loss.time_weight and not tr.state.content_off
    tr.state.epoch = 1
    logs = tr.train_step(pairs(2, seed=2))
    assert logs["g_content_weight"] == 0.0 and tr.state.content_off_reason == "epoch"
    resumed = resume(tr.save_checkpoint(tmp_path / "u.pt"))
    resumed.state.epoch = 0  # latched: an earlier epoch cannot switch it back on
    assert resumed.train_step(pairs(2, seed=3))["g_content_weight"] == 0.0


def test_dynamic_mse_drops_l_time_once_the_input_band_is_reproduced():
    """Near-identity at the start, the U-Net reproduces the band it was given far better
    than -20 dB, so after content_min_steps G steps L_time switches off."""
    tr = trainer(content_schedule="dynamic", content_min_steps=2)
    weights = [tr.train_step(pairs(2, seed=s)).get("g_content_weight") for s in range(4)]
    assert weights[1:] == [tr.cfg.loss.time_weight, 0.0, 0.0]
    assert tr.state.content_off_reason == "passband" and tr.state.passband_db_mean < -20.0
