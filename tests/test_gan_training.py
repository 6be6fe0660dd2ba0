"""The thesis GAN trainer and the one loop every trainer runs in: steps train, the D-skip
rule and label schedule hold, WGAN-GP runs; every trainer's runs resume bit for bit with one
history row per epoch, share one checkpoint layout, one config shape and one override
syntax; the CLI works. Tiny widths, CPU."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from reelrestore.models.spectral import stft
from reelrestore.models.thesis import load_generator
from reelrestore.training.config import RunConfig, TrainConfig, read_config_file
from reelrestore.training.gan import GanTrainer
from reelrestore.training.loop import CHECKPOINT_FORMAT, fit
from reelrestore.training.losses import bce_discriminator_loss, gradient_penalty, smoothed_labels
from reelrestore.training.trainers import TRAINERS, load_config, new_trainer, resume

SAMPLES = 8192  # shorter than 0.5 s (24000 samples, 47 frames): 3x faster steps
SECONDS = SAMPLES / 48000  # the contract frame of SAMPLES samples (17 STFT frames)
CONFIGS = Path(__file__).resolve().parents[1] / "training" / "configs"
# Each trainer's recipe, shrunk to steps of a fraction of a second (the U-Net to test_unet's TINY).
TINY_RUNS = {
    "thesis": (None, ["model.width=4", "model.d_width=4"]),
    "realtime": ("realtime_tiny.toml", ["loss.stft_sizes=[512]"]),
    "unet": ("unet_wgan_tiny.toml", ["model.blocks=3", "model.d_max=16", "model.critic_blocks=3",
                                     "model.critic_pool=4", "model.critic_hidden=8", "model.ae_blocks=2",
                                     "loss.ae_pretrain_steps=1", "loss.n_critic=2"]),
}


class SyntheticPairs(torch.utils.data.Dataset):
    """PairedSegments' item format from harmonic tones with a 4 kHz brick-wall cut."""

    def __init__(self, n: int = 8, seed: int = 0) -> None:
        from conftest import tone_pairs

        self.items = tone_pairs(n, SAMPLES, seed)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


def tiny_run(trainer: str, *overrides: str) -> RunConfig:
    """``trainer``'s tiny run on SECONDS-long segments, batches of 2, on the CPU."""
    recipe, shrink = TINY_RUNS[trainer]
    base = [f"model.contract.frame_seconds={SECONDS}", "data.batch_size=2", "schedule.progress=false",
            "schedule.device=cpu", "schedule.amp=off"]
    return load_config(None if recipe is None else CONFIGS / recipe, base + shrink + list(overrides))


def tiny(*overrides: str) -> TrainConfig:
    return tiny_run("thesis", *overrides)


def batch(seed: int = 0, n: int = 2) -> dict:
    return torch.utils.data.default_collate(SyntheticPairs(n, seed).items)


def params(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def moved(before: list[torch.Tensor], module: torch.nn.Module) -> list[bool]:
    return [not torch.equal(a, b) for a, b in zip(before, module.parameters())]


def same(a, b) -> bool:
    """Equal state: tensors bit for bit, containers element by element."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return isinstance(b, list | tuple) and len(a) == len(b) and all(map(same, a, b))
    return a == b


def without_time(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "time_s"} for row in rows]


def test_one_step_moves_every_generator_and_discriminator_parameter():
    trainer = GanTrainer(tiny())
    g0, d0 = params(trainer.generator), params(trainer.discriminators["image"])
    logs = trainer.train_step(batch())
    assert all(moved(g0, trainer.generator)), "a generator parameter did not move"
    assert all(moved(d0, trainer.discriminators["image"])), "a discriminator parameter did not move"
    assert all(math.isfinite(v) for v in logs.values())
    assert {"g_adv", "g_content", "d_real", "d_fake"} <= set(logs)
    assert trainer.state.g_steps == trainer.state.d_steps == 1


def test_d_step_is_skipped_below_threshold_and_forced_after_max_skips():
    # Threshold far above any BCE: after the first D step every due step is "below".
    trainer = GanTrainer(tiny("loss.d_skip_threshold=1e9", "loss.d_max_skips=3"))
    st, b = trainer.state, batch()
    d0 = params(trainer.discriminators["image"])
    trainer.train_step(b)  # no fake loss yet (inf): D steps
    assert any(moved(d0, trainer.discriminators["image"])) and st.d_steps == 1
    for skip in (1, 2, 3):
        d0, g0 = params(trainer.discriminators["image"]), params(trainer.generator)
        logs = trainer.train_step(b)
        assert not any(moved(d0, trainer.discriminators["image"])), f"D moved on skip {skip}"
        assert any(moved(g0, trainer.generator)), "G must keep training while D is skipped"
        assert (st.d_skips, st.skip_streak("image"), logs["d_skipped"]) == (skip, skip, 1.0)
    d0 = params(trainer.discriminators["image"])
    logs = trainer.train_step(b)  # 3 skips in a row: forced
    assert any(moved(d0, trainer.discriminators["image"]))
    assert (st.d_steps, st.d_forced, st.skip_streak("image"), st.d_skips, logs["d_forced"]) == (2, 1, 0, 3, 1.0)


def test_d_skip_decision_follows_the_last_fake_loss():
    trainer = GanTrainer(tiny("loss.d_skip_threshold=0.1"))
    st, b = trainer.state, batch()
    trainer.train_step(b)
    st.set_fake_loss("image", 0.05)  # D wins: skip
    d0 = params(trainer.discriminators["image"])
    trainer.train_step(b)
    assert not any(moved(d0, trainer.discriminators["image"])) and st.d_skips == 1
    st.set_fake_loss("image", 0.2)  # D no longer wins: step
    trainer.train_step(b)
    assert any(moved(d0, trainer.discriminators["image"])) and st.skip_streak("image") == 0 and st.d_forced == 0
    # the G step refreshes the fake loss from its own D(G(x)) logits
    assert st.fake_loss("image") != 0.2 and math.isfinite(st.fake_loss("image"))


def test_k_generator_steps_per_discriminator_step():
    trainer = GanTrainer(tiny("loss.g_steps_per_d=3", "loss.d_skip_threshold=0"))
    for _ in range(7):
        trainer.train_step(batch())
    assert (trainer.state.g_steps, trainer.state.d_steps, trainer.state.d_skips) == (7, 3, 0)  # steps 0, 3, 6


def test_label_smoothing_follows_the_epoch_schedule():
    cfg = tiny()
    g = cfg.loss
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
    trainer = GanTrainer(tiny("loss.loss=wgan_gp", "loss.n_critic=2"))
    g0, d0 = params(trainer.generator), params(trainer.discriminators["image"])
    logs = trainer.train_step(batch())  # critic only
    assert math.isfinite(logs["gp"]) and logs["gp"] >= 0 and "g_adv" not in logs
    # every critic weight moves; the head's bias cannot: it cancels in D(fake) - D(real)
    assert not any(moved(g0, trainer.generator)) and all(moved(d0, trainer.discriminators["image"])[:-1])
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
    trainer = GanTrainer(tiny(f"schedule.amp={amp}", f"schedule.device={device}", f"loss.loss={loss}",
                              "loss.n_critic=1"))
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


@pytest.mark.parametrize("name", sorted(TINY_RUNS))
def test_a_run_stopped_mid_epoch_and_resumed_is_the_run_that_went_on(name, tmp_path):
    """max_steps stops a run mid-epoch: that epoch's row is recorded once (complete: false)
    and resuming replaces it; weights, optimisers, counters, history and every random
    stream (python, numpy, torch) continue bit for bit."""
    train, val = SyntheticPairs(8, 0), SyntheticPairs(2, 1)
    schedule = ["schedule.epochs=2", "schedule.steps_per_epoch=3"]
    if name != "unet":
        schedule.append("loss.d_skip_threshold=0.7")  # some D steps are skipped: its counters travel too
    random.seed(0)
    np.random.seed(0)
    straight = new_trainer(tiny_run(name, *schedule, "schedule.max_steps=5"))
    rows = fit(straight, train, val, tmp_path / "straight")
    straight_rng = (random.getstate(), np.random.get_state()[1].tolist(), torch.get_rng_state())

    random.seed(0)
    np.random.seed(0)
    first = fit(new_trainer(tiny_run(name, *schedule, "schedule.max_steps=2")), train, val, tmp_path / "resumed")
    assert [(r["epoch"], r["complete"], r["step"]) for r in first] == [(1, False, 2)]
    ckpt = torch.load(tmp_path / "resumed" / "last.pt", weights_only=True)
    assert ckpt["config"]["schedule"]["max_steps"] == 2 and ckpt["state"]["batch_in_epoch"] == 2
    random.seed(1234)  # whatever happens in between must not matter
    np.random.seed(1234)
    torch.manual_seed(1234)
    resumed = resume(tmp_path / "resumed" / "last.pt", ["schedule.max_steps=5"])
    resumed_rows = fit(resumed, train, val, tmp_path / "resumed")

    assert [(r["epoch"], r["complete"], r["step"]) for r in resumed_rows] == [(1, True, 3), (2, False, 5)]
    assert without_time(resumed_rows) == without_time(rows)
    assert [r["epoch"] for r in json.loads((tmp_path / "resumed" / "history.json").read_text())] == [1, 2]
    assert same({k: p.state_dict() for k, p in resumed.parts().items()},
                {k: p.state_dict() for k, p in straight.parts().items()})
    assert same((random.getstate(), np.random.get_state()[1].tolist(), torch.get_rng_state()), straight_rng)
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
    toml.write_text('[model]\nexperiment = 4\nwidth = 8\n[loss]\nloss = "wgan_gp"\n[optim]\nbetas = [0.0, 0.9]\n')
    cfg = load_config(toml, ["d_lr=1e-3", "schedule.epochs=3", "loss.real_labels=[0.8, 0.9, 0.95, 0.99]"])
    assert type(cfg) is TrainConfig  # a file that names no trainer is the thesis's
    assert (cfg.model.n_layers, cfg.model.width, cfg.loss.loss, cfg.optim.betas) == (4, 8, "wgan_gp", (0.0, 0.9))
    assert (cfg.optim.d_lr, cfg.schedule.epochs, cfg.loss.real_labels[0]) == (1e-3, 3, 0.8)
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    yaml = tmp_path / "c.yaml"
    yaml.write_text("model:\n  width: 8\ndata:\n  source: builtin\n")
    assert load_config(yaml).model.width == 8 and load_config(yaml).data.source is None
    with pytest.raises(ValueError, match="unknown config key 'loss.lr'"):
        load_config(None, ["loss.lr=1"])
    with pytest.raises(ValueError, match="expected an override like section.key=value"):
        load_config(None, ["epochs"])
    with pytest.raises(ValueError, match="unknown ThesisLossConfig keys"):
        TrainConfig.from_dict({"loss": {"los": "bce"}})
    with pytest.raises(ValueError, match="expected trainer = 'thesis' for TrainConfig, got 'unet'"):
        TrainConfig.from_dict({"trainer": "unet"})
    toml.write_text('trainer = "vae"\n')
    with pytest.raises(ValueError, match=r"expected trainer in \['realtime', 'thesis', 'unet'\], got 'vae'"):
        load_config(toml)


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.toml")), ids=lambda p: p.name)
def test_every_recipe_names_its_trainer_and_round_trips_through_one_dict_shape(path):
    raw = read_config_file(path)
    assert raw["trainer"] in TRAINERS
    cfg = load_config(path)
    assert type(cfg) is TRAINERS[raw["trainer"]].config_class
    plain = cfg.to_dict()
    assert list(plain) == ["trainer", "model", "data", "optim", "loss", "schedule"]
    assert type(cfg).from_dict(json.loads(json.dumps(plain))) == cfg


@pytest.mark.parametrize("recipe", ["thesis_exp11_tiny.toml", "realtime_tiny.toml", "unet_wgan_tiny.toml"])
def test_one_override_syntax_for_every_trainer(recipe):
    cfg = load_config(CONFIGS / recipe, ["epochs=3", "optim.g_lr=1e-5", "data.extra.cutoff_point=minus3db",
                                         "model.contract.frame_seconds=0.25", "steps_per_epoch=none"])
    assert (cfg.schedule.epochs, cfg.optim.g_lr, cfg.data.extra["cutoff_point"]) == (3, 1e-5, "minus3db")
    assert cfg.model.contract.frame_seconds == 0.25 and cfg.schedule.steps_per_epoch is None
    with pytest.raises(ValueError, match="unknown config key 'optim.lr'"):
        load_config(CONFIGS / recipe, ["optim.lr=1"])
    with pytest.raises(ValueError, match="unknown config key 'model.contract.rate'"):
        load_config(CONFIGS / recipe, ["model.contract.rate=1"])
    with pytest.raises(ValueError, match="exactly one section"):
        load_config(CONFIGS / recipe, ["adv_weightt=1"])


@pytest.mark.parametrize("name", sorted(TINY_RUNS))
def test_every_trainer_writes_one_checkpoint_layout_that_export_reads(name, tmp_path):
    from reelrestore.export.onnx_export import load_checkpoint

    trainer = new_trainer(tiny_run(name))
    trainer.train_step(batch())
    ckpt = torch.load(trainer.save_checkpoint(tmp_path / "c.pt"), weights_only=True)
    layout = {"format", "trainer", "model_class", "model_config", "config", "parts", "state", "history", "rng",
              "torch_version"}
    assert set(ckpt) == layout | set(ckpt["parts"]) and "generator" in ckpt["parts"]
    assert (ckpt["format"], ckpt["trainer"], ckpt["config"]["trainer"]) == (CHECKPOINT_FORMAT, name, name)
    assert set(ckpt["rng"]) == {"python", "numpy", "torch", "cuda"}
    loaded = load_checkpoint(tmp_path / "c.pt")
    assert loaded.steps == 1 and loaded.config == ckpt["config"]


def test_resume_refuses_a_checkpoint_of_an_older_format(tmp_path):
    path = new_trainer(tiny_run("realtime")).save_checkpoint(tmp_path / "c.pt")
    ckpt = torch.load(path, weights_only=True)
    torch.save({**ckpt, "format": "reelrestore-realtime-1"}, path)
    with pytest.raises(ValueError, match="expected a restore-train checkpoint of format"):
        resume(path)


class FakePairedSegments(SyntheticPairs):
    """Stands in for PairedSegments(source, split, seed, cache_dir=..., val_fraction=...)."""

    def __init__(self, source, split: str, seed: int, **kwargs) -> None:
        super().__init__(6 if split == "train" else 2, seed + (split == "val"))


def test_restore_train_cli_trains_and_resumes(tmp_path, monkeypatch):
    from reelrestore.training import dataset, train

    monkeypatch.setattr(dataset, "PairedSegments", FakePairedSegments)
    out = tmp_path / "run"
    args = ["--data", "builtin", "--out", str(out), "--steps", "2", "model.width=4", "d_width=4",
            f"model.contract.frame_seconds={SECONDS}", "batch_size=2", "progress=false", "device=cpu", "amp=off",
            "steps_per_epoch=2"]
    result = CliRunner().invoke(train.main, args)
    assert result.exit_code == 0, result.output
    assert (out / "last.pt").exists() and "done:" in result.output
    result = CliRunner().invoke(train.main, ["--resume", str(out / "last.pt"), "--steps", "3"])
    assert result.exit_code == 0, result.output
    assert torch.load(out / "last.pt", weights_only=True)["state"]["step"] == 3
    result = CliRunner().invoke(train.main, ["--steps", "1", "widht=4"])
    assert result.exit_code != 0 and "widht" in result.output
