"""Data-parallel training (torchrun; reelrestore.training.distributed): two gloo ranks on
the CPU, spawned by the test, train the tiny thesis GAN through ``fit`` as ``restore-train``
under torchrun does.

Which runs must agree with one process on the global batch (two ranks x batch 2 = one
process x batch 4): the thesis GAN's losses are all means over items of per-item terms
(BCE of D's logits, the MSE content term, each item normalised by its own peak, LayerNorm
in Experiment 11), so the mean of the two ranks' losses and gradients IS the global
batch's, up to float rounding. D's dropout is switched off (a mask of 4 items is drawn
differently from two of 2). Not decomposable, so not compared: the passband error (one
ratio of the batch's pooled energies, averaged over ranks in dB), the real-time trainer's
spectral convergence (a norm over the whole batch) and its envelope loss (normalised by
the batch's count of bands above the cutoffs), BatchNorm (batch statistics per rank), and
the WGAN-GP penalty (random interpolation points).
"""

from __future__ import annotations

import math
import os
import socket
from datetime import timedelta
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from reelrestore.training.distributed import Launch, interleave, shard, shard_batches
from reelrestore.training.loop import EpochSampler, fit
from reelrestore.training.trainers import new_trainer, resume

from test_gan_training import SyntheticPairs, same, tiny_run, without_time

WORLD = 2
STEPS, STOP = 4, 1  # 2 epochs of 2 global batches; the stopped run ends after the first step
RUN = ["model.d_dropout=0", "loss.d_skip_threshold=0.7", "schedule.epochs=2", "schedule.steps_per_epoch=2"]
COMPARED = ("d_total", "d_real", "d_fake", "g_adv", "g_content", "g_total")


def data() -> tuple[SyntheticPairs, SyntheticPairs]:
    return SyntheticPairs(8, 0), SyntheticPairs(4, 1)


def state(trainer) -> dict:
    return {key: part.state_dict() for key, part in trainer.parts().items()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rank_main(rank: int, port: int, tmp: Path) -> None:
    """One rank, set up as torchrun does (its environment, then restore-train's Launch and
    init): a straight run of STEPS, a run stopped after STOP and resumed from its last.pt.
    Rank r > 0 is handed its own run folders (``*-rank1``): none may appear."""
    from reelrestore.training import distributed

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(WORLD), RANK=str(rank),
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(WORLD))
    launch = Launch.from_environment()
    distributed.init(launch, launch.device("cpu"), timeout=timedelta(seconds=60))  # a deadlock fails, not hangs
    try:
        folder = (lambda name: tmp / name) if rank == 0 else (lambda name: tmp / f"{name}-rank{rank}")
        train, val = data()
        straight = new_trainer(tiny_run("thesis", *RUN, f"schedule.max_steps={STEPS}"))
        fit(straight, train, val, folder("straight"))
        stopped = new_trainer(tiny_run("thesis", *RUN, f"schedule.max_steps={STOP}"))
        fit(stopped, train, val, folder("resumed"))
        torch.manual_seed(1234)  # whatever happens in between must not matter
        resumed = resume(tmp / "resumed" / "last.pt", [f"schedule.max_steps={STEPS}"])  # every rank: rank 0's file
        fit(resumed, train, val, folder("resumed"))
        torch.save({"straight": state(straight), "resumed": state(resumed), "first": stopped.history[0],
                    "rows": straight.history, "resumed_rows": resumed.history, "d_skips": straight.state.d_skips},
                   tmp / f"rank{rank}.pt")
    finally:
        distributed.shutdown()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> tuple[Path, list[dict]]:
    tmp = tmp_path_factory.mktemp("ddp")
    torch.multiprocessing.spawn(rank_main, args=(free_port(), tmp), nprocs=WORLD, join=True)
    return tmp, [torch.load(tmp / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]


@pytest.fixture(scope="module")
def single(tmp_path_factory) -> tuple[dict, list[dict], dict]:
    """One process, batch_size = WORLD x 2, the same schedule: its first step's row, its
    rows and its state after STEPS."""
    tmp = tmp_path_factory.mktemp("single")
    train, val = data()
    big = f"data.batch_size={2 * WORLD}"
    first = fit(new_trainer(tiny_run("thesis", *RUN, big, f"schedule.max_steps={STOP}")), train, val, tmp)[0]
    trainer = resume(tmp / "last.pt", [f"schedule.max_steps={STEPS}"])
    rows = fit(trainer, train, val, tmp)
    return first, rows, state(trainer)


def test_two_ranks_take_together_the_single_process_global_batch():
    n, b = 13, 2
    for start in (0, 4):
        one = list(EpochSampler(n, 5, 3, start=start))  # the batch_size = 4 process's order
        parts = [list(EpochSampler(n, 5, 3, start=start, rank=r, world_size=WORLD, batch_size=b)) for r in range(WORLD)]
        assert [len(p) for p in parts] == [len(EpochSampler(n, 5, 3, start=start, rank=r, world_size=WORLD,
                                                            batch_size=b)) for r in range(WORLD)]
        for k in range(len(parts[0]) // b):  # global batch k: rank 0's slice, then rank 1's
            assert parts[0][k * b:(k + 1) * b] + parts[1][k * b:(k + 1) * b] == one[k * 4:(k + 1) * 4]
        assert len(parts[0]) == len(parts[1]) == (n - start) // 4 * b  # a partial global batch is dropped
    assert shard(list(range(10)), 2, 1, 2) == [2, 3, 6, 7]
    val = [shard_batches(7, 2, None, r, WORLD) for r in range(WORLD)]
    assert val == [[[0, 1], [4, 5]], [[2, 3], [6]]] and interleave(val) == [[0, 1], [2, 3], [4, 5], [6]]
    assert shard_batches(7, 2, 3, 1, WORLD) == [[2, 3]]  # data.val_batches caps the batches of all ranks


def test_the_ranks_hold_identical_weights_after_every_run(ranks):
    _, (r0, r1) = ranks
    assert r0["d_skips"] > 0, "the D-skip rule never skipped: its decision across ranks went untested"
    assert same(r0["straight"], r1["straight"]), "the ranks' networks or optimisers diverged"
    assert same(r0["resumed"], r1["resumed"])
    assert without_time(r0["rows"]) == without_time(r1["rows"]), "the ranks logged different (unreduced) values"


def test_the_first_step_logs_the_single_process_losses_on_the_global_batch(ranks, single):
    _, (r0, _) = ranks
    first, _, _ = single
    assert (r0["first"]["step"], first["step"]) == (STOP, STOP)
    for key in COMPARED:
        assert r0["first"][key] == pytest.approx(first[key], rel=1e-5, abs=1e-7), key
    for key in [k for k in first if k.startswith("val_")]:  # sharded validation gathers every item
        assert r0["first"][key] == pytest.approx(first[key], rel=1e-4, abs=1e-6), key


def test_after_several_steps_the_ranks_hold_the_single_process_weights(ranks, single):
    _, (r0, _) = ranks
    _, rows, weights = single
    for key, part in weights.items():
        if not key.startswith(("generator", "discriminator")):
            continue
        for name, value in part.items():
            got = r0["straight"][key][name]
            assert torch.allclose(got, value, rtol=1e-4, atol=1e-6), (key, name, (got - value).abs().max())
    assert [(r["epoch"], r["step"], r["d_steps"], r["d_skips"]) for r in r0["rows"]] == \
        [(r["epoch"], r["step"], r["d_steps"], r["d_skips"]) for r in rows]
    for row, one in zip(r0["rows"], rows):
        assert row.keys() == one.keys()
        for key in [k for k in COMPARED if k in one]:  # an epoch whose D steps were all skipped logs no d_*
            assert row[key] == pytest.approx(one[key], rel=1e-4, abs=1e-6), key


def test_only_rank_0_writes_files(ranks):
    tmp, _ = ranks
    assert not list(tmp.glob("*-rank1")), "rank 1 wrote a run folder"
    for run in ("straight", "resumed"):
        names = {p.name for p in (tmp / run).iterdir()}
        assert {"config.json", "model.txt", "history.json", "history.csv", "losses.png", "last.pt"} <= names
    ckpt = torch.load(tmp / "straight" / "last.pt", weights_only=True)
    assert ckpt["world_size"] == WORLD and len(ckpt["rng_ranks"]) == WORLD
    assert not torch.equal(ckpt["rng_ranks"][0]["torch"], ckpt["rng_ranks"][1]["torch"]), "ranks share one stream"


def test_a_two_rank_run_stopped_and_resumed_is_the_straight_run(ranks):
    tmp, results = ranks
    for r in results:
        assert same(r["resumed"], r["straight"]), "the resumed run's weights differ from the straight run's"
        assert without_time(r["resumed_rows"]) == without_time(r["rows"])
    straight = torch.load(tmp / "straight" / "last.pt", weights_only=True)
    resumed = torch.load(tmp / "resumed" / "last.pt", weights_only=True)
    assert same(resumed["rng_ranks"], straight["rng_ranks"]), "a rank's random streams did not continue"
    assert math.isfinite(resumed["history"][-1]["g_total"])


@pytest.mark.skipif(torch.cuda.device_count() >= 2, reason="this machine has the GPUs the message is about")
@pytest.mark.parametrize("env, args, message", [
    ({"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29511"},
     ["device=cuda"], "expected one GPU per rank for device=cuda: 2 ranks on this node, got"),
    ({"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29511"},
     ["device=cuda:0"], "would put all 2 ranks on one GPU"),
    ({"WORLD_SIZE": "2"}, ["device=cpu"], "expected torchrun's environment (WORLD_SIZE, RANK, LOCAL_RANK"),
    ({"WORLD_SIZE": "2", "RANK": "2", "LOCAL_RANK": "0"}, ["device=cpu"], "expected 0 <= RANK < WORLD_SIZE"),
])
def test_an_inconsistent_torchrun_environment_is_refused_in_one_line(env, args, message, tmp_path, monkeypatch):
    from reelrestore.training import train

    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    result = CliRunner().invoke(train.main, ["--data", "builtin", "--out", str(tmp_path / "run"), "--steps", "1",
                                             *args])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("restore-train: error: ") and message in lines[0], result.output
    assert not (tmp_path / "run").exists()
