"""The real-time generator: the surviving band is kept by construction, one step trains,
a checkpoint resumes to the same loss, and restore-train drives it from a config file and
resumes it with one history row per epoch."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from reelrestore.models.realtime import RealtimeConfig, RealtimeGenerator, band_matrix, count_parameters  # noqa: E402
from reelrestore.training.config import RealtimeLossConfig, RealtimeTrainConfig  # noqa: E402
from reelrestore.training.realtime import D_NAME, RealtimeTrainer, multi_resolution_stft_loss  # noqa: E402
from reelrestore.training.trainers import resume  # noqa: E402

TINY = RealtimeConfig(n_bands=24, width=16, layers=2)


def pairs(n: int, seed: int = 0) -> list[dict]:
    from conftest import cut_pairs

    return cut_pairs(n, seed)


def batch_of(items):
    return {k: torch.as_tensor(np.stack([i[k] for i in items])) for k in ("damaged", "target", "cutoff_hz")}


def test_band_matrix_columns_average_the_bins():
    w = band_matrix(TINY)
    assert w.shape == (1025, 24)
    torch.testing.assert_close(w.sum(dim=0), torch.ones(24))
    assert (w >= 0).all()


@pytest.mark.parametrize("frames", [47, 20])
def test_the_band_below_the_cutoff_is_the_input_whatever_the_weights(frames):
    torch.manual_seed(0)
    g = RealtimeGenerator(TINY).eval()
    for p in g.parameters():  # random, large weights: an untrained or broken network
        torch.nn.init.normal_(p, std=0.5)
    x = torch.randn(3, 2, 1025, frames) * 30
    cutoff = torch.tensor([150.0, 2000.0, 7000.0])
    with torch.no_grad():
        y = g(x, cutoff)
    assert y.shape == x.shape and torch.isfinite(y).all()
    for i, c in enumerate(cutoff.tolist()):
        kept = int(c / (48000 / 2048))
        torch.testing.assert_close(y[i, :, : kept + 1], x[i, :, : kept + 1], rtol=0, atol=0)
        assert (y[i, :, kept + 12 :] - x[i, :, kept + 12 :]).abs().max() > 0  # and above it, it restores


def test_the_default_size_fits_the_budget():
    g = RealtimeGenerator()
    assert count_parameters(g) < 1.25e6  # <= 5 MB as float32


def test_one_generator_and_one_discriminator_step_move_the_parameters():
    cfg = RealtimeTrainConfig(model=TINY, loss=RealtimeLossConfig(adv_start_step=0, d_width=4))
    trainer = RealtimeTrainer(cfg)
    g0 = [p.detach().clone() for p in trainer.generator.parameters()]
    d0 = [p.detach().clone() for p in trainer.discriminator.parameters()]
    batch = batch_of(pairs(2))
    logs = trainer.train_step(batch)
    assert {"g_envelope", "g_stft", "g_adv", "g_fm", "d_fake"} <= set(logs)
    assert all(not torch.equal(a, b) for a, b in zip(d0, trainer.discriminator.parameters()))
    # the output layer starts at zero (flat envelope), so the layers below move from step 2
    assert not torch.equal(g0[-1], trainer.generator.out.bias)
    trainer.train_step(batch)
    assert all(not torch.equal(a, b) for a, b in zip(g0, trainer.generator.parameters()))


def test_discriminator_is_skipped_while_its_fake_loss_is_low():
    cfg = RealtimeTrainConfig(model=TINY, loss=RealtimeLossConfig(adv_start_step=0, d_width=4, d_max_skips=2))
    trainer = RealtimeTrainer(cfg)
    batch = batch_of(pairs(2))
    trainer.train_step(batch)
    for expected_skips in (1, 2):
        trainer.state.set_fake_loss(D_NAME, 0.01)  # D is winning
        before = [p.detach().clone() for p in trainer.discriminator.parameters()]
        trainer.train_step(batch)
        assert trainer.state.d_skips == expected_skips
        assert all(torch.equal(a, b) for a, b in zip(before, trainer.discriminator.parameters()))
    trainer.state.set_fake_loss(D_NAME, 0.01)
    trainer.train_step(batch)  # two skips in a row: the third is forced
    assert trainer.state.d_forced == 1 and trainer.state.d_skips == 2


def test_training_lowers_the_envelope_loss():
    cfg = RealtimeTrainConfig(model=TINY, loss=RealtimeLossConfig(adv_weight=0.0, stft_sizes=(512,)))
    trainer = RealtimeTrainer(cfg)
    batch = batch_of(pairs(2, seed=1))
    first = trainer.train_step(batch)["g_envelope"]
    for _ in range(12):
        last = trainer.train_step(batch)["g_envelope"]
    assert last < 0.95 * first  # it learns beyond the DSP prior it starts from (and stays finite)


def test_checkpoint_resumes_to_the_same_loss(tmp_path):
    cfg = RealtimeTrainConfig(model=TINY, loss=RealtimeLossConfig(adv_start_step=0, d_width=4))
    trainer = RealtimeTrainer(cfg)
    b1, b2 = batch_of(pairs(2, seed=2)), batch_of(pairs(2, seed=3))
    trainer.train_step(b1)
    trainer.save_checkpoint(tmp_path / "c.pt")
    expected = trainer.train_step(b2)
    resumed = resume(tmp_path / "c.pt")
    got = resumed.train_step(b2)
    for key in ("g_envelope", "g_stft", "g_total"):
        assert got[key] == pytest.approx(expected[key], rel=1e-6, abs=1e-7)


def test_mr_stft_loss_is_zero_for_identical_signals_and_grows_with_error():
    x = torch.randn(2, 8000)
    assert multi_resolution_stft_loss(x, x, (256, 512)).item() < 1e-6
    assert multi_resolution_stft_loss(x + 0.5 * torch.randn(2, 8000), x, (256, 512)).item() > 0.1


def test_restore_train_runs_the_realtime_config_and_resumes_it_one_row_per_epoch(tmp_path):
    import json

    import soundfile as sf
    from click.testing import CliRunner

    from reelrestore.training.train import main

    data = tmp_path / "clean"
    data.mkdir()
    for i, item in enumerate(pairs(6, seed=4)):
        sf.write(data / f"clip{i}.wav", np.tile(item["target"], 3), 48000)
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["--config", "training/configs/realtime_tiny.toml", "--data", str(data),
                                       "--out", str(out), "--steps", "2", "epochs=2"])
    assert result.exit_code == 0, result.output
    assert (out / "last.pt").exists() and "done:" in result.output
    history = json.loads((out / "history.json").read_text())
    assert [(r["epoch"], r["complete"], r["step"]) for r in history] == [(1, False, 2)]
    # no --config: the checkpoint names its trainer
    result = CliRunner().invoke(main, ["--resume", str(out / "last.pt"), "--steps", "4", "-v"])
    assert result.exit_code == 0, result.output
    history = json.loads((out / "history.json").read_text())
    assert [(r["epoch"], r["complete"], r["step"]) for r in history] == [(1, True, 3), (2, False, 4)]
    assert np.isfinite(history[-1]["val_lsd_above"])
    assert "epoch=1, step=3" in result.output and "done: epoch=2, step=4" in result.output  # -v: every row
    quiet = CliRunner().invoke(main, ["--resume", str(out / "last.pt"), "--steps", "5", "-q"])
    assert quiet.exit_code == 0 and quiet.output.strip() == "", quiet.output
    # damage made on the trainer's device: the banner says where
    device = CliRunner().invoke(main, ["--config", "training/configs/realtime_tiny.toml", "--data", str(data),
                                       "--out", str(tmp_path / "device"), "--steps", "1", "data.extra.damage_on=device"])
    assert device.exit_code == 0, device.output
    assert "val segments, damaged on cpu ->" in device.output and "damaged on" not in result.output


def test_fresh_noise_frames_of_a_steady_input_read_different_noise():
    # Steady hiss with tones, cut at 3 kHz, framed as the engine frames it: with the first
    # models' fixed noise every frame reads the same columns (a frozen noise repeating at
    # the hop rate); with noise_start="input" consecutive frames read different ones.
    from scipy import signal

    from reelrestore.models.spectral import stft

    rng = np.random.default_rng(0)
    t = np.arange(4 * 48000) / 48000
    x = 10 ** (-50 / 20) * rng.standard_normal(t.size) + sum(0.05 * np.sin(2 * np.pi * f * t) for f in (220, 660, 2000))
    x = signal.sosfiltfilt(signal.butter(8, 3000, fs=48000, output="sos"), x).astype(np.float32)
    frames = torch.tensor(np.stack([x[s : s + 24000] for s in range(0, x.size - 24000, 12000)]))
    spec = stft(frames, 2048, 512)
    fixed = RealtimeGenerator(TINY).noise_excitation(spec)
    assert fixed.shape[0] == 1  # one noise for every frame
    fresh = RealtimeGenerator(RealtimeConfig(n_bands=24, width=16, layers=2, noise_start="input")).noise_excitation(spec)
    assert fresh.shape == (frames.shape[0], spec.shape[3], 2, 1025)  # column by column
    same = [torch.equal(fresh[i], fresh[i + 1]) for i in range(frames.shape[0] - 1)]
    assert sum(same) <= 1
    with pytest.raises(ValueError, match="noise_start"):
        RealtimeConfig(noise_start="random")


def test_resume_takes_the_learning_rate_of_the_config(tmp_path):
    from reelrestore.training.config import OptimConfig

    cfg = RealtimeTrainConfig(model=TINY, optim=OptimConfig(g_lr=1e-3, d_lr=2e-4))
    trainer = RealtimeTrainer(cfg)
    trainer.train_step(batch_of(pairs(2, seed=2)))
    trainer.save_checkpoint(tmp_path / "c.pt")
    same = resume(tmp_path / "c.pt")
    assert same.opt_g.param_groups[0]["lr"] == 1e-3 and same.opt_d.param_groups[0]["lr"] == 2e-4
    lower = resume(tmp_path / "c.pt", ["optim.g_lr=1e-4", "optim.d_lr=5e-5"])
    assert lower.opt_g.param_groups[0]["lr"] == 1e-4 and lower.opt_d.param_groups[0]["lr"] == 5e-5
    assert lower.opt_g.state_dict()["state"]  # Adam's moments came along


def test_the_lsd_loss_is_the_evaluation_metric_above_the_cutoff():
    from reelrestore.training.metrics import lsd_bands
    from reelrestore.training.realtime import log_spectral_distance

    rng = np.random.default_rng(5)
    ref = rng.standard_normal((2, 12000)) * 0.1
    est = ref + rng.standard_normal((2, 12000)) * np.linspace(0.001, 0.3, 12000)
    cut = np.array([3000.0, 7000.0])
    got = log_spectral_distance(torch.tensor(est), torch.tensor(ref), torch.tensor(cut), 48000, 15000.0)
    want = np.mean([lsd_bands(ref[b], est[b], 48000, cut[b], bands=("above",), max_hz=15000.0)["above"]
                    for b in range(2)])
    assert got.item() == pytest.approx(want, rel=1e-4)


def test_the_lsd_term_moves_the_band_towards_a_lower_lsd():
    from reelrestore.models.spectral import istft, stft
    from reelrestore.training.realtime import log_spectral_distance

    items = pairs(2, seed=6)
    cfg = RealtimeTrainConfig(model=TINY, loss=RealtimeLossConfig(adv_weight=0.0, envelope_weight=0.0,
                                                                  stft_weight=0.0, lsd_weight=1.0))
    trainer = RealtimeTrainer(cfg)
    batch = batch_of(items)
    x, y = torch.as_tensor(batch["damaged"]).float(), torch.as_tensor(batch["target"]).float()
    cutoff = torch.as_tensor(batch["cutoff_hz"]).float()

    def score() -> float:
        with torch.no_grad():
            wave = istft(trainer.generator(stft(x), cutoff), x.shape[-1])
            return log_spectral_distance(wave, y, cutoff, 48000, 15000.0).item()

    before = score()
    logs = [trainer.train_step(batch) for _ in range(15)]
    assert "g_lsd" in logs[0] and score() < 0.95 * before


def test_the_envelope_correlation_loss_reads_a_bands_course_not_its_level():
    from reelrestore.training.realtime import envelope_correlation_loss

    t = torch.linspace(0.0, 6.0 * np.pi, 47)
    course = torch.log((1.5 + torch.sin(t)) ** 2)  # a band's log power that rises and falls
    target = course.expand(2, 3, 47).clone()  # (B, bands, T)
    every = torch.ones(2, 3, 1)
    assert envelope_correlation_loss(target, target, every).item() == pytest.approx(0.0, abs=1e-5)
    assert envelope_correlation_loss(target + 3.0, target, every).item() == pytest.approx(0.0, abs=1e-5)  # louder
    flat = torch.full_like(target, float(course.mean())) + 1e-3 * torch.randn(2, 3, 47, generator=torch.manual_seed(0))
    assert envelope_correlation_loss(flat, target, every).item() == pytest.approx(1.0, abs=0.3)
    opposite = torch.log((1.5 - torch.sin(t)) ** 2).expand(2, 3, 47)
    assert envelope_correlation_loss(opposite, target, every).item() > 1.9
    # only the bands under the weight count: the others may do anything
    mixed = target.clone()
    mixed[:, 2] = opposite[:, 2]
    weight = torch.tensor([1.0, 1.0, 0.0]).reshape(1, 3, 1).expand(2, 3, 1)
    assert envelope_correlation_loss(mixed, target, weight).item() == pytest.approx(0.0, abs=1e-5)


def test_the_envelope_correlation_term_trains_the_band_towards_the_references_course():
    from reelrestore.models.spectral import stft
    from reelrestore.training.realtime import envelope_correlation_loss

    items = pairs(2, seed=9)
    cfg = RealtimeTrainConfig(model=TINY, loss=RealtimeLossConfig(adv_weight=0.0, envelope_weight=0.0, stft_weight=0.0,
                                                                  envelope_corr_weight=1.0))
    trainer = RealtimeTrainer(cfg)
    batch = batch_of(items)
    x, y = stft(torch.as_tensor(batch["damaged"]).float()), stft(torch.as_tensor(batch["target"]).float())
    cutoff = torch.as_tensor(batch["cutoff_hz"]).float()
    g = trainer.generator

    def score() -> float:
        with torch.no_grad():
            above = 1.0 - g.condition(cutoff)[:, :, None]
            return envelope_correlation_loss(g.band_energy(g(x, cutoff)), g.band_energy(y), above).item()

    before = score()
    logs = [trainer.train_step(batch) for _ in range(15)]
    assert "g_env_corr" in logs[0] and score() < before - 0.02
    assert "g_env_corr" not in RealtimeTrainer(RealtimeTrainConfig(model=TINY)).train_step(batch)
    with pytest.raises(ValueError, match="envelope_corr_weight"):
        RealtimeLossConfig(envelope_corr_weight=-1.0)


def test_the_training_merge_is_the_engines():
    from reelrestore.engine.band import merge, merge_gains
    from reelrestore.models.spectral import keep_gains, missing_power_merge

    rng = np.random.default_rng(7)
    dry = rng.standard_normal((2, 2, 1025, 5)).astype(np.float32)
    dry[:, :, 600:] *= 0.01  # a quiet floor above the cut
    wet = rng.standard_normal((2, 2, 1025, 5)).astype(np.float32) * rng.uniform(0.001, 0.1, (1, 1, 1025, 1))
    cut = np.array([300.0, 500.0])
    keep_np = merge_gains(cut, 1025, 10)
    want = merge(dry, wet.copy(), keep_np, 1.0)
    got = missing_power_merge(torch.tensor(dry), torch.tensor(wet), keep_gains(torch.tensor(cut), 1025, 10))
    assert np.allclose(got.numpy(), want, atol=1e-5 * np.abs(want).max())
    # below the cut the input; where the input is louder than the band, the input
    assert torch.equal(got[:, :, :300], torch.tensor(dry)[:, :, :300])


def test_training_through_the_engines_merge_keeps_the_inputs_band_and_learns():
    cfg = RealtimeTrainConfig(model=TINY, loss=RealtimeLossConfig(adv_weight=0.0, merge="engine", lsd_weight=1.0))
    trainer = RealtimeTrainer(cfg)
    batch = batch_of(pairs(2, seed=8))
    first = trainer.train_step(batch)["g_lsd"]
    for _ in range(10):
        last = trainer.train_step(batch)["g_lsd"]
    assert np.isfinite(last) and last < first
    with pytest.raises(ValueError, match="merge"):
        RealtimeLossConfig(merge="paint")


def test_a_model_widened_to_see_above_the_cutoff_starts_as_the_old_one_and_learns_from_it():
    from dataclasses import replace

    from reelrestore.models.realtime import widen_state

    old = RealtimeGenerator(TINY).eval()
    for p in old.parameters():
        torch.nn.init.normal_(p, std=0.05)
    new_cfg = replace(TINY, input_above=True)
    new = RealtimeGenerator(new_cfg).eval()
    new.load_state_dict(widen_state(old.state_dict(), TINY, new_cfg))
    spec, cutoff = torch.randn(2, 2, 1025, 20), torch.tensor([1500.0, 4000.0])
    spec[:, :, 300:] *= 0.01  # something above the cut for the new inputs to see
    with torch.no_grad():
        assert torch.allclose(new(spec, cutoff), old(spec, cutoff), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="input_above"):
        widen_state(old.state_dict(), TINY, replace(new_cfg, width=32))
    trainer = RealtimeTrainer(RealtimeTrainConfig(model=new_cfg, loss=RealtimeLossConfig(adv_weight=0.0)))
    trainer.generator.load_state_dict(new.state_dict())
    trainer.train_step(batch_of(pairs(2, seed=9)))
    seen = trainer.generator.inp.weight[:, 3 * TINY.n_bands:]
    assert seen.abs().max() > 0  # the band above the cutoff now reaches the network


def test_noise_by_position_gives_a_stream_column_the_same_noise_in_every_frame():
    """noise_start="position": frames one STFT column apart (the low-latency framing) read
    the same noise for the same stretch of the stream, so nothing repeats at the hop rate,
    and the newest columns alone are those of the whole frame."""
    gen = RealtimeGenerator(RealtimeConfig(n_bands=24, width=16, layers=2, noise_start="position"))
    spec = torch.randn(2, 2, 1025, 47)
    at = gen.noise_excitation(spec, position=torch.tensor([10.0, 11.0]))  # frame 1 starts a column later
    assert torch.equal(at[0, 1:], at[1, :-1])  # (B, T, 2, bins)
    assert not torch.equal(at[0], at[1])
    assert torch.equal(gen.noise_excitation(spec, 4, torch.tensor([10.0, 11.0])), at[:, -4:])
    past_the_end = gen.noise_excitation(spec, position=torch.tensor([10.0 + 128, 11.0]))  # wraps around its 128
    assert torch.equal(past_the_end[0], at[0])
    with pytest.raises(ValueError, match="position"):
        gen.noise_excitation(spec)


def test_the_frame_end_term_judges_the_columns_the_low_latency_framing_plays():
    from reelrestore.engine.stream import played_columns
    from reelrestore.training.realtime import spectral_lsd

    with pytest.raises(ValueError, match="lookahead"):
        RealtimeTrainConfig(model=TINY, loss=RealtimeLossConfig(end_weight=1.0))
    assert played_columns(TINY.contract, 512) == slice(43, 47)  # hop + crossfade ending 512 before the end
    a, b = torch.randn(2, 2, 1025, 5), torch.randn(2, 2, 1025, 5)
    assert spectral_lsd(a, a, torch.tensor([3000.0, 3000.0]), TINY.bin_hz, 15000.0).item() < 2e-3
    above = spectral_lsd(a, b, torch.tensor([3000.0, 3000.0]), TINY.bin_hz, 15000.0)
    b_below = b.clone()
    b_below[:, :, 200:] = a[:, :, 200:]  # the same above 4.7 kHz: only the bins under it differ
    assert spectral_lsd(a, b_below, torch.tensor([5000.0, 5000.0]), TINY.bin_hz, 15000.0).item() < 2e-3
    assert above.item() > 0.3
    low = RealtimeConfig(n_bands=24, width=16, layers=2, noise_start="position", lookahead=512)
    trainer = RealtimeTrainer(RealtimeTrainConfig(model=low, loss=RealtimeLossConfig(end_weight=1.0, lsd_weight=1.0)))
    logs = trainer.train_step(batch_of(pairs(2)))
    assert np.isfinite(logs["g_end_lsd"]) and logs["g_end_lsd"] > 0


def test_a_held_model_gives_the_played_columns_one_envelope_and_restores_them_alone_the_same():
    """hold_played: the columns the low-latency framing plays share one envelope and noise
    share (their mean), the others keep their own, and the newest columns computed alone
    equal those of the whole frame; the weights are the unheld model's (`--init` takes them)."""
    from dataclasses import replace

    from reelrestore.models.realtime import weights_fit

    with pytest.raises(ValueError, match="lookahead"):
        replace(TINY, hold_played=True)
    low = RealtimeConfig(n_bands=24, width=16, layers=2, noise_start="position", lookahead=512)
    free = RealtimeGenerator(low).eval()
    for p in free.parameters():
        torch.nn.init.normal_(p, std=0.1)
    held = RealtimeGenerator(replace(low, hold_played=True)).eval()
    held.load_state_dict(free.state_dict())
    spec, cutoff, position = torch.randn(2, 2, 1025, 47), torch.tensor([1500.0, 4000.0]), torch.tensor([3.0, 90.0])
    with torch.no_grad():
        env_free, _, share_free = free.envelope(spec, cutoff)
        env_held, _, share_held = held.envelope(spec, cutoff)
        whole = held(spec, cutoff, position=position)
        newest = held(spec, cutoff, newest=4, position=position)
    assert torch.equal(env_held[..., :43], env_free[..., :43])  # the columns before the played ones
    assert torch.allclose(env_held[..., 43:], env_free[..., 43:].mean(dim=2, keepdim=True).expand(-1, -1, 4))
    assert torch.allclose(share_held[..., 43:], share_free[..., 43:].mean(dim=2, keepdim=True).expand(-1, -1, 4))
    assert (env_free[..., 43:].std(dim=2) > 1e-3).any()  # the unheld model's played columns differ
    assert torch.allclose(newest, whole[..., -4:], rtol=1e-5, atol=1e-6)
    assert weights_fit(low, replace(low, hold_played=True)) and not weights_fit(low, replace(low, width=32))
