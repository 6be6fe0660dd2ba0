"""The thesis GAN's "future work" options: the dynamic MSE content schedule and several
discriminators with summed adversarial losses. Tiny networks, short segments, CPU."""

from __future__ import annotations

import math
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
import torch

from reelrestore.models.critics import LevelCritic, SpectralCritic, level_view, log_band_matrix, spectral_view
from reelrestore.training.config import TrainConfig
from reelrestore.training.gan import GanTrainer
from reelrestore.training.loop import TrainState
from reelrestore.training.losses import ContentSchedule, cutoff_bins, passband_error_db
from reelrestore.training.trainers import load_config, resume

SAMPLES = 4096  # 85 ms (9 STFT frames): the options' plumbing does not need 0.5 s
CONFIGS = Path(__file__).resolve().parents[1] / "training" / "configs"
ALL_D = '["image", "spectral", "level"]'


def tiny(*overrides: str) -> TrainConfig:
    base = ["model.width=4", "model.d_width=4", "model.n_layers=2", "model.d_layers=2",
            f"model.contract.frame_seconds={SAMPLES / 48000}", "data.batch_size=2", "schedule.progress=false",
            "schedule.device=cpu", "schedule.amp=off"]
    return load_config(None, base + list(overrides))


def batch(seed: int = 0, n: int = 2) -> dict:
    """Harmonic tones, brick-wall cut at 4 kHz: PairedSegments' item format."""
    from conftest import tone_pairs

    return torch.utils.data.default_collate(tone_pairs(n, SAMPLES, seed))


def params(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def moved(before: list[torch.Tensor], module: torch.nn.Module) -> list[bool]:
    return [not torch.equal(a, b) for a, b in zip(before, module.parameters())]


# ------------------------------------------------------------------- passband error
def test_passband_error_db_is_exact_and_ignores_the_band_above_the_cutoff():
    target = torch.randn(2, 2, 64, 5)
    cutoff = torch.tensor([10.0, 20.5])  # bins 0-9 and 0-20
    estimate = 0.9 * target  # error = 0.1 * target: 20 log10(0.1) = -20 dB
    estimate[:, :, 21:] = 1e3 * torch.randn(2, 2, 43, 5)  # above both cutoffs: not counted
    estimate[0, :, 10:21] = 0.0  # above item 0's cutoff only
    assert passband_error_db(estimate, target, cutoff).item() == pytest.approx(-20.0, abs=1e-4)
    assert passband_error_db(estimate, target, cutoff, reduction="none").tolist() == pytest.approx([-20.0, -20.0],
                                                                                                   abs=1e-4)
    assert passband_error_db(torch.zeros_like(target), target, cutoff).item() == pytest.approx(0.0, abs=1e-6)
    assert passband_error_db(target, target, cutoff).item() < -100
    assert cutoff_bins(torch.tensor([4000.0, 24000.0]), 48000, 2048).tolist() == pytest.approx([4000 / 23.4375, 1024])
    with pytest.raises(ValueError, match="expected one cutoff_bin per item"):
        passband_error_db(estimate, target, torch.tensor([3.0]))


# ------------------------------------------------------------------ content schedule
def test_constant_schedule_never_switches_off():
    sched, st = ContentSchedule("constant"), TrainState(epoch=500)
    assert all(sched.update(st, -100.0) == 1.0 for _ in range(200))
    assert not st.content_off and st.passband_steps == 200 and st.passband_db_mean == pytest.approx(-100.0)
    assert sched.weight(st, 100.0, -100.0) == 100.0


def test_dynamic_schedule_switches_off_at_content_off_epoch_and_stays_off():
    sched, st = ContentSchedule("dynamic", off_epoch=2, off_below_db=None), TrainState()
    for epoch in (0, 1):
        st.epoch, st.step = epoch, 10 * epoch
        assert sched.update(st, -100.0) == 1.0  # the passband rule is disabled
    st.epoch, st.step = 2, 20
    assert sched.update(st, None) == 0.0
    assert (st.content_off, st.content_off_step, st.content_off_reason) == (True, 20, "epoch")
    st.epoch, st.step = 0, 21  # latched: nothing turns it back on
    assert sched.update(st, 30.0) == 0.0 and sched.factor(st) == 0.0 and st.content_off_step == 20


def test_dynamic_schedule_switches_off_below_the_passband_threshold_not_before_min_steps():
    sched, st = ContentSchedule("dynamic", off_below_db=-20.0, min_steps=4, ema_decay=0.5), TrainState()
    for i in range(3):  # far below the threshold, but too few G steps observed
        st.step = i
        assert sched.update(st, -60.0) == 1.0
    st.step = 3
    assert sched.update(st, -60.0) == 0.0
    assert (st.content_off_step, st.content_off_reason, st.passband_steps) == (3, "passband", 4)
    st.step = 4
    assert sched.update(st, 10.0) == 0.0  # G gets worse again: stays off


def test_dynamic_schedule_watches_a_running_mean_not_one_batch():
    sched, st = ContentSchedule("dynamic", off_below_db=-20.0, min_steps=1, ema_decay=0.5), TrainState()
    assert sched.update(st, 0.0) == 1.0 and st.passband_db_mean == 0.0  # the first value starts the mean
    assert sched.update(st, -40.0) == 1.0 and st.passband_db_mean == -20.0  # not *below* -20
    assert sched.update(st, None) == 1.0 and st.passband_steps == 2  # nothing observed
    assert sched.update(st, math.nan) == 1.0 and st.passband_steps == 2  # non-finite: ignored
    assert sched.update(st, -40.0) == 0.0 and st.passband_db_mean == -30.0


def test_schedule_state_survives_a_state_round_trip():
    sched, st = ContentSchedule("dynamic", off_below_db=-20.0, min_steps=1), TrainState(step=7)
    sched.update(st, -50.0)
    back = TrainState(**asdict(st))
    assert (back.content_off, back.content_off_step, back.content_off_reason, back.passband_db_mean,
            back.passband_steps) == (True, 7, "passband", -50.0, 1)


def test_invalid_content_schedules_raise():
    with pytest.raises(ValueError, match="content schedule in"):
        ContentSchedule("cosine")
    with pytest.raises(ValueError, match="could never switch off"):
        ContentSchedule("dynamic", off_epoch=None, off_below_db=None)
    with pytest.raises(ValueError, match="no effect"):
        tiny("loss.content_off_epoch=3")  # constant schedule: would be silently ignored
    with pytest.raises(ValueError, match="content_ema_decay"):
        tiny("loss.content_schedule=dynamic", "loss.content_ema_decay=1.0")


def test_trainer_drops_the_content_term_once_the_passband_error_is_low():
    # G starts ~ +14 dB off in the passband; a +50 dB threshold is met from the start, so
    # only content_min_steps holds it back for one step.
    trainer = GanTrainer(tiny("loss.content_schedule=dynamic", "loss.content_off_below_db=50.0",
                              "loss.content_min_steps=2", "loss.adv_weight=0.5"))
    st = trainer.state
    first = trainer.train_step(batch())
    assert first["g_content_weight"] == 100.0 and math.isfinite(first["g_passband_db"]) and not st.content_off
    assert first["g_passband_input_db"] < -30  # the damaged input itself passes the band (minus the noise)
    second = trainer.train_step(batch())
    assert second["g_content_weight"] == 0.0
    assert second["g_total"] == pytest.approx(0.5 * second["g_adv"], rel=1e-6)  # the MSE is out of G's loss
    assert (st.content_off, st.content_off_step, st.content_off_reason) == (True, 1, "passband")
    row = trainer.epoch_row(complete=False)
    assert row["g_content_weight"] == 50.0 and row["content_off"] and math.isfinite(row["g_passband_db"])


# --------------------------------------------------------------- several discriminators
def test_critic_views_judge_shape_and_level_only():
    spec = torch.randn(2, 2, 1025, 9)
    assert torch.allclose(spectral_view(7.0 * spec), spectral_view(spec), atol=1e-5)  # loudness-free
    bands = log_band_matrix(1025, 48000, 48)
    assert bands.shape == (48, 1025) and torch.allclose(bands.sum(1), torch.ones(48))
    assert (bands > 0).sum(0).max() == 1  # contiguous bands, no bin counted twice
    # +20 dB on the restored spectrum shifts the level view by +1 (20 dB / 20), same reference
    assert torch.allclose(level_view(10.0 * spec, spec, bands), level_view(spec, spec, bands) + 1.0, atol=1e-5)
    for critic, view in ((SpectralCritic(1025, 4), spectral_view(spec)),
                         (LevelCritic(1025, 48000, 4), level_view(spec, spec, bands))):
        assert critic(view).shape == (2,) and critic(view[..., :5]).shape == (2,)  # any frame count


def test_one_step_with_three_discriminators_moves_every_parameter_and_sums_their_terms():
    trainer = GanTrainer(tiny(f"loss.discriminators={ALL_D}", "loss.adv_weight=0.5"))
    assert list(trainer.discriminators) == ["image", "spectral", "level"]
    assert isinstance(trainer.discriminators["spectral"], SpectralCritic)
    g0 = params(trainer.generator)
    d0 = {name: params(D) for name, D in trainer.discriminators.items()}
    logs = trainer.train_step(batch())
    assert all(moved(g0, trainer.generator)), "a generator parameter did not move"
    for name, D in trainer.discriminators.items():
        assert all(moved(d0[name], D)), f"a parameter of the {name} discriminator did not move"
    assert all(math.isfinite(v) for v in logs.values()), logs
    assert {"d_fake", "d_fake_spectral", "d_fake_level", "d_real_level", "g_adv_image", "g_adv_spectral",
            "g_adv_level"} <= set(logs)
    advs = [logs[f"g_adv_{n}"] for n in ("image", "spectral", "level")]
    assert logs["g_adv"] == pytest.approx(sum(advs), rel=1e-6)
    assert logs["g_total"] == pytest.approx(0.5 * sum(advs) + 100.0 * logs["g_content"], rel=1e-5)
    assert (trainer.state.d_steps, trainer.state.g_steps) == (3, 1)
    # the G step refreshed every D's fake loss for its own skip rule
    assert all(math.isfinite(trainer.state.fake_loss(n)) for n in trainer.discriminators)
    row = trainer.epoch_row(complete=False)
    assert (row["d_steps"], row["d_steps_spectral"], row["d_steps_level"]) == (3, 1, 1)


def test_skip_state_is_kept_per_discriminator():
    st = TrainState()
    st.d_stepped("image", 0.01, False)  # image wins
    st.d_stepped("level", 0.5, False)  # level does not
    assert st.skip_d("image", 0.1, 1) == (True, False) and st.skip_d("level", 0.1, 1) == (False, False)
    assert st.skip_d("image", 0.1, 1) == (False, True)  # image: forced after 1 skip in a row
    st.d_stepped("image", 0.01, True)
    assert (st.skip_streak("image"), st.skip_streak("level"), st.d_skips, st.d_forced, st.d_steps) == (0, 0, 1, 1, 3)
    assert st.last_d_fake_losses == {"image": 0.01, "level": 0.5} and st.fake_loss("spectral") == math.inf


def test_a_discriminator_that_wins_is_skipped_while_the_others_train():
    trainer = GanTrainer(tiny('loss.discriminators=["image", "spectral"]', "loss.d_skip_threshold=0.1",
                              "loss.d_max_skips=1"))
    st, b = trainer.state, batch()
    trainer.train_step(b)
    st.set_fake_loss("spectral", 0.01)  # spectral wins: skip it
    st.set_fake_loss("image", 0.5)  # image does not
    image0, spectral0 = params(trainer.discriminators["image"]), params(trainer.discriminators["spectral"])
    logs = trainer.train_step(b)
    assert not any(moved(spectral0, trainer.discriminators["spectral"])), "the winning D moved"
    assert all(moved(image0, trainer.discriminators["image"]))
    assert (logs["d_skipped_spectral"], logs["d_skipped"], "d_fake_spectral" in logs) == (1.0, 0.0, False)
    assert (st.skip_streak("spectral"), st.skip_streak("image"), st.d_skips, st.d_steps) == (1, 0, 1, 3)
    assert "g_adv_spectral" in logs  # a skipped D still judges G
    st.set_fake_loss("spectral", 0.01)  # still winning, but d_max_skips=1 in a row: forced
    logs = trainer.train_step(b)
    assert logs["d_forced_spectral"] == 1.0 and st.skip_streak("spectral") == 0 and st.d_forced == 1


def test_wgan_gp_with_two_critics_trains_each_with_a_finite_penalty():
    trainer = GanTrainer(tiny('loss.discriminators=["spectral", "level"]', "loss.loss=wgan_gp", "loss.n_critic=1"))
    g0 = params(trainer.generator)
    d0 = {name: params(D) for name, D in trainer.discriminators.items()}
    logs = trainer.train_step(batch())
    for name, D in trainer.discriminators.items():
        assert math.isfinite(logs[f"gp_{name}"]) and logs[f"gp_{name}"] >= 0
        # every weight moves; the head's bias cannot: it cancels in D(fake) - D(real)
        assert all(moved(d0[name], D)[:-1]), name
    assert any(moved(g0, trainer.generator))
    assert logs["g_adv"] == pytest.approx(logs["g_adv_spectral"] + logs["g_adv_level"], rel=1e-6)
    assert "gp" not in logs and (trainer.state.d_steps, trainer.state.g_steps) == (2, 1)


def test_checkpoint_round_trips_every_discriminator_and_the_schedule(tmp_path):
    cfg = tiny(f"loss.discriminators={ALL_D}", "loss.content_schedule=dynamic", "loss.content_off_epoch=0")
    trainer = GanTrainer(cfg)
    trainer.train_step(batch())
    assert trainer.state.content_off and trainer.state.content_off_reason == "epoch"
    path = trainer.save_checkpoint(tmp_path / "c.pt")
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["parts"] == ["generator", "opt_g", "scaler_g"] + [
        f"{part}_{name}" for name in ("image", "spectral", "level") for part in ("discriminator", "opt_d", "scaler_d")]
    torch.manual_seed(99)  # whatever happens in between must not matter
    resumed = resume(path)
    for name, D in trainer.discriminators.items():
        for a, b in zip(D.state_dict().values(), resumed.discriminators[name].state_dict().values()):
            assert torch.equal(a, b), name
        assert resumed.opt_ds[name].state_dict()["state"][0]["step"] == 1
    assert asdict(resumed.state) | {"started": 0} == asdict(trainer.state) | {"started": 0}
    rng = torch.get_rng_state()
    after = trainer.train_step(batch(1))
    torch.set_rng_state(rng)
    assert resumed.train_step(batch(1)) == after  # bit for bit, content term still off
    assert after["g_content_weight"] == 0.0
    with pytest.raises(ValueError, match="expected a checkpoint with the parts"):
        GanTrainer(replace(cfg, loss=replace(cfg.loss, discriminators=("image",)))).load_checkpoint(ckpt)


@pytest.mark.parametrize("names", [[], ["image", "image"], ["image", "mel"]])
def test_invalid_discriminator_names_raise(names):
    with pytest.raises(ValueError, match="loss.discriminators"):
        load_config(None, [f"loss.discriminators={names!r}".replace("'", '"')])


# ------------------------------------------------------------------------------- config
def test_options_parse_from_overrides_and_toml_and_round_trip(tmp_path):
    cfg = load_config(None, ['loss.discriminators=["spectral","level"]', 'loss.content_schedule="dynamic"',
                             "loss.content_off_epoch=5", "content_min_steps=10", "loss.critic_width=8"])
    g = cfg.loss
    assert (g.discriminators, g.content_schedule, g.content_off_epoch, g.content_min_steps, g.critic_width) == \
        (("spectral", "level"), "dynamic", 5, 10, 8)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.to_dict()["loss"]["discriminators"] == ["spectral", "level"]
    assert load_config(None, ["loss.discriminators=spectral"]).loss.discriminators == ("spectral",)
    toml = tmp_path / "c.toml"
    toml.write_text('[loss]\ndiscriminators = ["spectral", "level"]\ncontent_schedule = "dynamic"\n'
                    "content_off_below_db = -25.0\n")
    from_file = load_config(toml)
    assert (from_file.loss.discriminators, from_file.loss.content_off_below_db) == (("spectral", "level"), -25.0)
    assert TrainConfig.from_dict(from_file.to_dict()) == from_file
    default = TrainConfig().loss
    assert (default.discriminators, default.content_schedule, default.content_off_epoch,
            default.content_off_below_db, default.content_min_steps) == (("image",), "constant", None, -20.0, 50)


@pytest.mark.parametrize("name, changed", [
    ("thesis_exp11_tiny_dynamic_mse.toml", {"content_schedule": "dynamic", "content_off_epoch": 4}),
    ("thesis_exp11_tiny_multi_d.toml", {"discriminators": ("image", "spectral", "level")}),
])
def test_option_configs_differ_from_the_tiny_run_in_their_option_only(name, changed):
    base, cfg = load_config(CONFIGS / "thesis_exp11_tiny.toml"), load_config(CONFIGS / name)
    assert cfg == replace(base, loss=replace(base.loss, **changed))


def test_both_options_train_export_and_run_in_the_engine(tmp_path):
    """The options change training only: the generator they train exports to the contract
    and the engine restores a short file with it."""
    import soundfile as sf

    from reelrestore.engine.model import OnnxModel
    from reelrestore.engine.restore import restore_file
    from reelrestore.engine.stream import StreamConfig
    from reelrestore.export.onnx_export import export_checkpoint

    cfg = tiny(f"loss.discriminators={ALL_D}", 'loss.content_schedule="dynamic"', "loss.content_off_epoch=0")
    trainer = GanTrainer(cfg)
    for seed in range(2):
        logs = trainer.train_step(batch(seed))
    assert logs["g_content_weight"] == 0.0 and "g_adv_level" in logs
    report = export_checkpoint(trainer.save_checkpoint(tmp_path / "t.pt"), tmp_path / "t.onnx")
    assert max(report["verify_max_rel_error"].values()) <= 1e-4
    t = np.arange(24000) / 48000
    sf.write(tmp_path / "in.wav", (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 48000, subtype="FLOAT")
    run = restore_file(tmp_path / "in.wav", tmp_path / "out.wav", OnnxModel(tmp_path / "t.onnx"),
                       StreamConfig(cutoff_hz=3000.0))
    y, _ = sf.read(tmp_path / "out.wav")
    assert run.samples_out == y.shape[0] == 24000 and np.isfinite(y).all()
