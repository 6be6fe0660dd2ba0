"""The thesis GAN loop: steps train, the D-skip rule and label schedule hold, WGAN-GP runs,
checkpoints resume bit-for-bit, config files and the CLI work. Tiny widths, CPU."""

from __future__ import annotations

import json
import math

import pytest
import torch
from click.testing import CliRunner

from reelrestore.models.thesis import load_generator, stft
from reelrestore.training.config import TrainConfig, load_config
from reelrestore.training.gan import GanTrainer, fit
from reelrestore.training.losses import bce_discriminator_loss, gradient_penalty, smoothed_labels


SAMPLES, FRAMES = 8192, 17  # shorter than 0.5 s (24000, 47 frames): 3x faster steps


class SyntheticPairs(torch.utils.data.Dataset):
    """PairedSegments' item format from harmonic tones with a 4 kHz brick-wall cut."""

    def __init__(self, n: int = 8, seed: int = 0) -> None:
        from conftest import tone_pairs

        self.items = tone_pairs(n, SAMPLES, seed)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


def tiny(*overrides: str) -> TrainConfig:
    base = ["model.width=4", "model.d_width=4", f"model.segment_frames={FRAMES}", "data.batch_size=2",
            "schedule.progress=false", "schedule.device=cpu", "schedule.amp=off"]
    return load_config(None, base + list(overrides))


def batch(seed: int = 0, n: int = 2) -> dict:
    return torch.utils.data.default_collate(SyntheticPairs(n, seed).items)


def params(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def moved(before: list[torch.Tensor], module: torch.nn.Module) -> list[bool]:
    return [not torch.equal(a, b) for a, b in zip(before, module.parameters())]


def test_one_step_moves_every_generator_and_discriminator_parameter():
    trainer = GanTrainer(tiny())
    g0, d0 = params(trainer.generator), params(trainer.discriminator)
    logs = trainer.train_step(batch())
    assert all(moved(g0, trainer.generator)), "a generator parameter did not move"
    assert all(moved(d0, trainer.discriminator)), "a discriminator parameter did not move"
    assert all(math.isfinite(v) for v in logs.values())
    assert {"g_adv", "g_content", "d_real", "d_fake"} <= set(logs)
    assert trainer.state.g_steps == trainer.state.d_steps == 1


def test_d_step_is_skipped_below_threshold_and_forced_after_max_skips():
    # Threshold far above any BCE: after the first D step every due step is "below".
    trainer = GanTrainer(tiny("gan.d_skip_threshold=1e9", "gan.d_max_skips=3"))
    st, b = trainer.state, batch()
    d0 = params(trainer.discriminator)
    trainer.train_step(b)  # no fake loss yet (inf): D steps
    assert any(moved(d0, trainer.discriminator)) and st.d_steps == 1
    for skip in (1, 2, 3):
        d0, g0 = params(trainer.discriminator), params(trainer.generator)
        logs = trainer.train_step(b)
        assert not any(moved(d0, trainer.discriminator)), f"D moved on skip {skip}"
        assert any(moved(g0, trainer.generator)), "G must keep training while D is skipped"
        assert (st.d_skips, st.d_skip_streak, logs["d_skipped"]) == (skip, skip, 1.0)
    d0 = params(trainer.discriminator)
    logs = trainer.train_step(b)  # 3 skips in a row: forced
    assert any(moved(d0, trainer.discriminator))
    assert (st.d_steps, st.d_forced, st.d_skip_streak, st.d_skips, logs["d_forced"]) == (2, 1, 0, 3, 1.0)


def test_d_skip_decision_follows_the_last_fake_loss():
    trainer = GanTrainer(tiny("gan.d_skip_threshold=0.1"))
    st, b = trainer.state, batch()
    trainer.train_step(b)
    st.last_d_fake_loss = 0.05  # D wins: skip
    d0 = params(trainer.discriminator)
    trainer.train_step(b)
    assert not any(moved(d0, trainer.discriminator)) and st.d_skips == 1
    st.last_d_fake_loss = 0.2  # D no longer wins: step
    trainer.train_step(b)
    assert any(moved(d0, trainer.discriminator)) and st.d_skip_streak == 0 and st.d_forced == 0
    # the G step refreshes the fake loss from its own D(G(x)) logits
    assert st.last_d_fake_loss != 0.2 and math.isfinite(st.last_d_fake_loss)


def test_k_generator_steps_per_discriminator_step():
    trainer = GanTrainer(tiny("gan.g_steps_per_d=3", "gan.d_skip_threshold=0"))
    for _ in range(7):
        trainer.train_step(batch())
    assert (trainer.state.g_steps, trainer.state.d_steps, trainer.state.d_skips) == (7, 3, 0)  # steps 0, 3, 6


def test_label_smoothing_follows_the_epoch_schedule():
    cfg = tiny()
    g = cfg.gan
    expected = {0: 0.9, 9: 0.9, 10: 0.99, 19: 0.99, 20: 0.999, 39: 0.999, 40: 0.9995, 500: 0.9995}
    for epoch, real in expected.items():
        got_real, got_fake = smoothed_labels(epoch, g.label_epochs, g.real_labels, g.fake_labels)
        assert got_real == real and got_fake == pytest.approx(1 - real)
    trainer = GanTrainer(cfg)
    trainer.state.epoch = 25
    assert trainer.labels() == (0.999, 0.001)
    # the loss really targets the smoothed labels: BCE(l, y) = softplus(l) - y l
    logits = torch.tensor([-2.0, 0.5, 3.0])
    _, real, fake = bce_discriminator_loss(logits, logits, 0.9, 0.1)
    sp = torch.nn.functional.softplus(logits)
    assert real.item() == pytest.approx((sp - 0.9 * logits).mean().item())
    assert fake.item() == pytest.approx((sp - 0.1 * logits).mean().item())


def test_wgan_gp_critic_and_generator_steps_run_with_finite_penalty():
    trainer = GanTrainer(tiny("gan.loss=wgan_gp", "gan.n_critic=2"))
    g0, d0 = params(trainer.generator), params(trainer.discriminator)
    logs = trainer.train_step(batch())  # critic only
    assert math.isfinite(logs["gp"]) and logs["gp"] >= 0 and "g_adv" not in logs
    # every critic weight moves; the head's bias cannot: it cancels in D(fake) - D(real)
    assert not any(moved(g0, trainer.generator)) and all(moved(d0, trainer.discriminator)[:-1])
    logs = trainer.train_step(batch())  # critic + generator
    assert "g_adv" in logs and any(moved(g0, trainer.generator))
    assert (trainer.state.d_steps, trainer.state.g_steps) == (2, 1)


@pytest.mark.parametrize("amp, device", [
    ("bf16", "cpu"),
    ("fp16", "cpu"),  # loss scaling as on CUDA: the first step must not be skipped
    pytest.param("fp16", "cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")),
])
@pytest.mark.parametrize("loss", ["bce", "wgan_gp"])
def test_mixed_precision_steps_train_with_finite_losses(amp, device, loss):
    trainer = GanTrainer(tiny(f"schedule.amp={amp}", f"schedule.device={device}", f"gan.loss={loss}",
                              "gan.n_critic=1"))
    g0 = params(trainer.generator)
    logs = trainer.train_step(batch())
    assert all(math.isfinite(v) for v in logs.values()), logs
    assert any(moved([p.to(device) for p in g0], trainer.generator))
    assert all(p.dtype == torch.float32 for p in trainer.generator.parameters())  # autocast, not .half()


def test_gradient_penalty_of_a_linear_critic_is_exact():
    w = torch.randn(2, 5, 3)  # D(x) = <w, x>: grad = w everywhere, penalty (||w|| - 1)^2
    real, fake = torch.randn(4, 2, 5, 3), torch.randn(4, 2, 5, 3)
    gp = gradient_penalty(lambda x: (x * w).flatten(1).sum(1), real, fake)
    assert gp.item() == pytest.approx((w.norm().item() - 1) ** 2, rel=1e-5)


def test_checkpoint_resumes_bit_for_bit(tmp_path):
    train, val = SyntheticPairs(8, 0), SyntheticPairs(2, 1)
    cfg = tiny("schedule.epochs=2", "schedule.steps_per_epoch=3", "schedule.max_steps=5",
               "gan.d_skip_threshold=0.7")  # some D steps are skipped: its counters travel too
    straight = GanTrainer(cfg)
    rows = fit(straight, train, val, tmp_path / "straight")

    first = GanTrainer(tiny("schedule.epochs=2", "schedule.steps_per_epoch=3", "schedule.max_steps=2",
                            "gan.d_skip_threshold=0.7"))
    fit(first, train, val, tmp_path / "resumed")  # stops mid-epoch 0
    ckpt = torch.load(tmp_path / "resumed" / "last.pt", weights_only=True)
    assert ckpt["config"]["schedule"]["max_steps"] == 2 and ckpt["state"]["batch_in_epoch"] == 2
    assert ckpt["model_class"] == "reelrestore.models.thesis.ThesisGenerator"
    torch.manual_seed(1234)  # whatever happens in between must not matter
    resumed = GanTrainer.from_checkpoint(tmp_path / "resumed" / "last.pt", cfg)
    resumed_rows = fit(resumed, train, val, tmp_path / "resumed")

    for a, b in zip(straight.generator.state_dict().values(), resumed.generator.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(straight.discriminator.state_dict().values(), resumed.discriminator.state_dict().values()):
        assert torch.equal(a, b)
    keys = ("g_adv", "g_content", "d_fake", "d_skips", "val_lsd", "val_snr_db")
    assert [[r.get(k) for k in keys] for r in rows] == [[r.get(k) for k in keys] for r in resumed_rows]
    assert straight.state.d_skips == resumed.state.d_skips
    # the next step gives the same losses (both trainers share this process's RNG: rewind it)
    rng = torch.get_rng_state()
    after_straight = straight.train_step(batch(3))
    torch.set_rng_state(rng)
    assert resumed.train_step(batch(3)) == after_straight


def test_fit_logs_every_epoch_and_the_generator_loads_from_the_checkpoint(tmp_path):
    trainer = GanTrainer(tiny("schedule.epochs=2", "schedule.steps_per_epoch=2"))
    rows = fit(trainer, SyntheticPairs(6, 0), SyntheticPairs(2, 1), tmp_path)
    assert [r["epoch"] for r in rows] == [1, 2] and all(r["complete"] for r in rows)
    for key in ("g_adv", "g_content", "d_fake", "val_lsd", "val_lsd_above", "val_lsd_below", "val_snr_db",
                "val_input_lsd"):
        assert math.isfinite(rows[-1][key]), key
    assert json.loads((tmp_path / "history.json").read_text())[1]["step"] == 4
    assert (tmp_path / "history.csv").read_text().splitlines()[0].startswith("epoch,")
    assert (tmp_path / "losses.png").stat().st_size > 1000
    assert "G MACs" in (tmp_path / "model.txt").read_text()
    g = load_generator(torch.load(tmp_path / "last.pt", weights_only=True))
    x = stft(torch.as_tensor(SyntheticPairs(1, 5).items[0]["damaged"])[None])
    trainer.generator.eval()
    with torch.no_grad():
        assert torch.equal(g(x), trainer.generator(x))


def test_config_file_overrides_and_dict_round_trip(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text('[model]\nexperiment = 4\nwidth = 8\n[gan]\nloss = "wgan_gp"\n[optim]\nbetas = [0.0, 0.9]\n')
    cfg = load_config(toml, ["d_lr=1e-3", "schedule.epochs=3", "gan.real_labels=[0.8, 0.9, 0.95, 0.99]"])
    assert (cfg.model.n_layers, cfg.model.width, cfg.gan.loss, cfg.optim.betas) == (4, 8, "wgan_gp", (0.0, 0.9))
    assert (cfg.optim.d_lr, cfg.schedule.epochs, cfg.gan.real_labels[0]) == (1e-3, 3, 0.8)
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    yaml = tmp_path / "c.yaml"
    yaml.write_text("model:\n  width: 8\ndata:\n  source: builtin\n")
    assert load_config(yaml).model.width == 8 and load_config(yaml).data.source is None
    with pytest.raises(ValueError, match="unknown config key 'gan.lr'"):
        load_config(None, ["gan.lr=1"])
    with pytest.raises(ValueError, match="expected an override like section.key=value"):
        load_config(None, ["epochs"])
    with pytest.raises(ValueError, match="unknown GanConfig keys"):
        TrainConfig.from_dict({"gan": {"los": "bce"}})


class FakePairedSegments(SyntheticPairs):
    """Stands in for PairedSegments(source, split, seed, cache_dir=..., val_fraction=...)."""

    def __init__(self, source, split: str, seed: int, **kwargs) -> None:
        super().__init__(6 if split == "train" else 2, seed + (split == "val"))


def test_restore_train_cli_trains_and_resumes(tmp_path, monkeypatch):
    from reelrestore.training import dataset, train

    monkeypatch.setattr(dataset, "PairedSegments", FakePairedSegments)
    out = tmp_path / "run"
    args = ["--data", "builtin", "--out", str(out), "--steps", "2", "model.width=4", "d_width=4",
            f"segment_frames={FRAMES}",
            "batch_size=2", "progress=false", "device=cpu", "amp=off", "steps_per_epoch=2"]
    result = CliRunner().invoke(train.main, args)
    assert result.exit_code == 0, result.output
    assert (out / "last.pt").exists() and "done:" in result.output
    result = CliRunner().invoke(train.main, ["--resume", str(out / "last.pt"), "--steps", "3"])
    assert result.exit_code == 0, result.output
    assert torch.load(out / "last.pt", weights_only=True)["state"]["step"] == 3
    result = CliRunner().invoke(train.main, ["--steps", "1", "widht=4"])
    assert result.exit_code != 0 and "widht" in result.output
