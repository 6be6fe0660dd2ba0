"""Damage made on the trainer's device: the same chain as degrade(), its draws made in the
data-loader worker, its hiss on the device; a run that damages there resumes bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from torch.utils.data import default_collate

from reelrestore.training.dataset import PairedSegments
from reelrestore.training.degrade import SR, DegradeConfig, DegradeRanges, degrade, lowpass_brickwall
from reelrestore.training.device_damage import apply_plans, damage_batch, plan_damage
from reelrestore.training.loop import fit
from reelrestore.training.trainers import new_trainer, resume

from test_gan_training import same, tiny_run, without_time

N = 24000
EDGE = 4800  # 0.1 s: where the Butterworth's edges (sosfiltfilt's odd padding vs a reflected FFT) differ


def clean(seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(N)).astype(np.float32)


def on_device(x: np.ndarray, cfg: DegradeConfig, seed: int) -> tuple[np.ndarray, np.ndarray, dict]:
    plan = plan_damage(N, cfg, np.random.default_rng(seed))
    damaged, target = apply_plans(torch.from_numpy(x)[None], default_collate([plan]))
    return damaged[0].numpy(), target[0].numpy(), plan


@pytest.mark.parametrize("shape", ["slit", "butterworth", "brickwall"])
def test_without_hiss_the_device_makes_what_degrade_makes(shape):
    """Clicks, crackle, warp, level ride, cut and hum from the same draws: the target
    equal everywhere, the damaged copy everywhere for the slit (the same reflected
    convolution) and inside the edges for the others."""
    cfg = DegradeConfig(cutoff_hz=1500.0, shape=shape, order=4, hiss_db=None, clicks_per_s=5.0, crackle_per_s=100.0,
                        hum_hz=50.0, wow_percent=0.2, flutter_percent=0.05, level_db=3.0)
    x = clean()
    damaged, target, info = degrade(x, cfg, np.random.default_rng(5))
    d_damaged, d_target, plan = on_device(x, cfg, 5)
    assert np.abs(d_target - target).max() < 1e-6
    inner = slice(None) if shape == "slit" else slice(EDGE, -EDGE)
    assert np.abs(d_damaged - damaged)[inner].max() < 1e-6
    assert np.abs(damaged - target).max() > 0.01  # the comparison has something to compare
    assert plan["cutoff_3db_hz"] == info["cutoff_3db_hz"]


def test_the_hiss_drawn_on_the_device_has_its_levels_and_places():
    """Hiss before the cut is cut with the signal; hiss after it stays broadband and is in
    the target too: above the cut the damaged copy holds only the late hiss."""
    cfg = DegradeConfig(cutoff_hz=2000.0, shape="brickwall", hiss_db=-40.0, hiss_after_db=-55.0)
    x = np.zeros(N, np.float32)
    torch.manual_seed(0)
    damaged, target, _ = on_device(x, cfg, 0)
    rms_db = lambda v: 10 * np.log10(np.mean(np.asarray(v, np.float64) ** 2))  # noqa: E731
    assert rms_db(target) == pytest.approx(10 * np.log10(1e-4 + 10 ** -5.5), abs=0.2)
    above = damaged - lowpass_brickwall(damaged.astype(np.float64), 2000.0)
    assert rms_db(above) == pytest.approx(-55.0 + 10 * np.log10((SR / 2 - 2000.0) / (SR / 2)), abs=0.3)
    torch.manual_seed(1)
    assert not np.allclose(on_device(x, cfg, 0)[1], target)  # the hiss is torch's draw, the rest the plan's


def test_a_dataset_that_damages_on_the_device_draws_what_the_workers_would(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(2):
        sf.write(tmp_path / f"clip{i}.wav", 0.1 * rng.standard_normal(SR * 2), SR)
    ranges = DegradeRanges(p_hiss=0.0, shapes=("slit",))  # no hiss: the rest must match exactly
    kw = dict(split="all", degrade=ranges, cutoff_point="minus3db")
    worker, device = PairedSegments(tmp_path, **kw), PairedSegments(tmp_path, damage_on="device", **kw)
    items = [device[i] for i in range(len(device))]
    assert set(items[0]) == {"clean", "plan", "cutoff_hz"}
    batch = damage_batch(default_collate(items), torch.device("cpu"))
    for i in range(len(worker)):
        ref = worker[i]
        assert float(batch["cutoff_hz"][i]) == ref["cutoff_hz"]
        assert np.abs(batch["target"][i].numpy() - ref["target"]).max() < 1e-6
        assert np.abs(batch["damaged"][i].numpy() - ref["damaged"]).max() < 1e-6
    with pytest.raises(ValueError, match="zero-phase"):
        PairedSegments(tmp_path, damage_on="device", degrade=DegradeRanges(p_causal=0.5))
    with pytest.raises(ValueError, match="damage_on"):
        PairedSegments(tmp_path, damage_on="gpu")


def test_a_run_that_damages_on_the_device_resumes_bit_for_bit(tmp_path):
    """The device's hiss comes from torch's generator, which the checkpoint carries."""
    rng = np.random.default_rng(1)
    for i in range(3):
        sf.write(tmp_path / f"clip{i}.wav", 0.1 * rng.standard_normal(SR * 2), SR)
    train = PairedSegments(tmp_path, "train", val_fraction=0.34, damage_on="device", cutoff_point="minus3db")
    val = PairedSegments(tmp_path, "val", val_fraction=0.34, cutoff_point="minus3db")
    schedule = ["schedule.epochs=2", "schedule.steps_per_epoch=3", "data.batch_size=2"]
    straight = new_trainer(tiny_run("realtime", *schedule, "schedule.max_steps=5"))
    rows = fit(straight, train, val, tmp_path / "straight")
    fit(new_trainer(tiny_run("realtime", *schedule, "schedule.max_steps=2")), train, val, tmp_path / "resumed")
    torch.manual_seed(1234)  # whatever happens in between must not matter
    resumed = resume(tmp_path / "resumed" / "last.pt", ["schedule.max_steps=5"])
    assert without_time(fit(resumed, train, val, tmp_path / "resumed")) == without_time(rows)
    assert same({k: p.state_dict() for k, p in resumed.parts().items()},
                {k: p.state_dict() for k, p in straight.parts().items()})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_the_damage_made_on_cuda_is_the_damage_made_on_the_cpu():
    """(Run on an H200 as a script, 2026-12-04: max difference 0 / 1.8e-12 over 256 plans.)"""
    from reelrestore.training.degrade import sample_degrade_config

    rng = np.random.default_rng(0)
    ranges = DegradeRanges(p_hiss=0.0, p_clicks=0.5, p_hum=0.5, p_wow=0.5, p_level=0.5)
    plans = default_collate([plan_damage(N, sample_degrade_config(rng, ranges), np.random.default_rng(i))
                             for i in range(32)])
    x = torch.tensor(0.1 * rng.standard_normal((32, N)), dtype=torch.float32)
    on_cpu, on_cuda = apply_plans(x, plans), apply_plans(x.cuda(), plans)
    for a, b in zip(on_cpu, on_cuda):
        assert b.device.type == "cuda" and (a - b.cpu()).abs().max().item() < 1e-5
