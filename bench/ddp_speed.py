"""Data-parallel step time: one process against N ranks (torch.distributed, as
``restore-train`` under torchrun runs them) at the same per-rank batch.

    python -m reelrestore.bench.ddp_speed                       # realtime_real.toml, CPU, 1 vs 2 ranks
    python -m reelrestore.bench.ddp_speed --config training/configs/thesis_exp11_tiny.toml --batch 8 --ranks 4
    python -m reelrestore.bench.ddp_speed --device cuda --ranks 4 --batch 16   # 1 GPU vs 4 GPUs (NCCL)

Data: synthetic pairs made here (harmonic tones + hiss, brick-wall cut at 1, 2 or 4 kHz,
one contract frame long), so no corpus is needed and the loader costs nothing: the
figures are the trainer's steps plus, for N ranks, the gradient all-reduce (gloo on the
CPU, NCCL on GPUs). Each rank trains on its own items of every global batch of N x batch,
as in a real run. On the CPU the cores are shared: one process gets them all (torch's
threads), N ranks get cores / N threads each, so the speed-up shows what splitting the
batch over processes buys over torch's own threads, not over idle cores.

Per configuration: seconds per step (median over ``--steps`` after ``--warmup``) and
items per second (global batch / step time). The run is short and the machine may be
busy with other work: the figures are indicative.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import time
from pathlib import Path

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "training" / "configs" / "realtime_real.toml"


def synthetic_pairs(n: int, samples: int, seed: int) -> list[dict]:
    """PairedSegments' items, torch-free: tones 100-400 Hz with 40 harmonics + hiss, cut
    by a brick wall at 1, 2 or 4 kHz (48 kHz)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    t = np.arange(samples) / 48000
    items = []
    for _ in range(n):
        f0 = rng.uniform(100, 400)
        clean = sum(0.2 / k * np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6)) for k in range(1, 40)
                    if f0 * k < 20000)
        target = (clean + 0.003 * rng.standard_normal(samples)).astype(np.float32)
        cutoff = float(rng.choice([1000.0, 2000.0, 4000.0]))
        spec = np.fft.rfft(target)
        spec[np.fft.rfftfreq(samples, 1 / 48000) > cutoff] = 0
        items.append({"damaged": np.fft.irfft(spec, samples).astype(np.float32), "target": target,
                      "cutoff_hz": cutoff})
    return items


def run_rank(rank: int, world: int, port: int, args: argparse.Namespace, threads: int, out: str | None) -> dict:
    """One rank (or the single process when ``world`` is 1): build the trainer, train
    ``warmup + steps`` global batches, return the step times measured on this rank."""
    import torch

    from reelrestore.training import distributed
    from reelrestore.training.trainers import load_config, new_trainer

    torch.set_num_threads(threads)
    launch = None
    device = args.device
    if world > 1:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank),
                          LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world))
        launch = distributed.Launch.from_environment()
        device = launch.device(args.device)
        distributed.init(launch, device)
    elif args.device != "cpu":
        device = "cuda:0" if torch.cuda.is_available() else "cpu"
    try:
        cfg = load_config(Path(args.config), [f"data.batch_size={args.batch}", f"schedule.device={device}",
                                              "schedule.progress=false", *args.overrides])
        trainer = new_trainer(cfg)
        trainer.prepare_ranks()
        b, n = args.batch, args.warmup + args.steps
        items = synthetic_pairs(n * b, cfg.model.contract.frame_length, seed=1000 * rank)
        batches = [torch.utils.data.default_collate(items[i * b:(i + 1) * b]) for i in range(n)]
        times = []
        for i, batch in enumerate(batches):
            if trainer.device.type == "cuda":
                torch.cuda.synchronize(trainer.device)
            start = time.perf_counter()
            trainer.train_step(batch)
            if trainer.device.type == "cuda":
                torch.cuda.synchronize(trainer.device)
            if i >= args.warmup:
                times.append(time.perf_counter() - start)
        result = {"ranks": world, "threads": threads, "device": str(trainer.device),
                  "params": sum(p.numel() for p in trainer.generator.parameters()),
                  "model": type(trainer.generator).__name__, "s_per_step": statistics.median(times)}
        if out is not None and rank == 0:
            Path(out).write_text(json.dumps(result))
        return result
    finally:
        if launch is not None:
            distributed.shutdown()


def _spawned(rank: int, world: int, port: int, args: argparse.Namespace, threads: int, out: str) -> None:
    run_rank(rank, world, port, args, threads, out)


def measure(world: int, args: argparse.Namespace, tmp: Path) -> dict:
    import torch

    cores = os.cpu_count() or 1
    threads = max(1, cores // world) if args.threads is None else args.threads
    if world == 1:
        result = run_rank(0, 1, 0, args, threads, None)
    else:
        out = tmp / f"ranks{world}.json"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        torch.multiprocessing.spawn(_spawned, args=(world, port, args, threads, str(out)), nprocs=world, join=True)
        result = json.loads(out.read_text())
    result["items_per_s"] = world * args.batch / result["s_per_step"]
    return result


def main(argv: list[str] | None = None) -> int:
    import tempfile

    import torch

    p = argparse.ArgumentParser(prog="python -m reelrestore.bench.ddp_speed", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=str(DEFAULT_CONFIG), help="training config (default: realtime_real.toml)")
    p.add_argument("--batch", type=int, default=None, help="per-rank batch (default: the config's data.batch_size)")
    p.add_argument("--ranks", type=int, action="append", default=None,
                   help="rank counts to compare with one process (repeatable; default 2)")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--threads", type=int, default=None, help="torch threads per process (default: cores / ranks)")
    p.add_argument("--json", type=Path, default=None, help="also write the rows here")
    p.add_argument("overrides", nargs="*", help="config overrides, section.key=value")
    args = p.parse_args(argv)
    from reelrestore.training.trainers import load_config

    cfg = load_config(Path(args.config), args.overrides)
    args.batch = args.batch or cfg.data.batch_size
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    ranks = args.ranks or [2]
    if args.device == "cuda":
        ranks = [n for n in ranks if n <= torch.cuda.device_count()]
        if not ranks:
            print(f"expected at least 2 GPUs for --device cuda, got {torch.cuda.device_count()}", file=sys.stderr)
            return 1
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for world in [1, *ranks]:
            rows.append(measure(world, args, Path(tmp)))
    backend = "NCCL" if args.device == "cuda" else "gloo"
    print(f"{Path(args.config).name}: {rows[0]['model']} ({rows[0]['params']:,} parameters), synthetic tone pairs of "
          f"{cfg.model.contract.frame_length} samples, {args.batch} items per rank and step, {args.device} "
          f"({os.cpu_count()} cores), {backend}; median of {args.steps} steps after {args.warmup}; torch "
          f"{torch.__version__}")
    print(f"{'ranks':>5} {'threads/rank':>12} {'global batch':>12} {'s/step':>8} {'items/s':>8} {'speed-up':>8}")
    for row in rows:
        print(f"{row['ranks']:>5} {row['threads']:>12} {row['ranks'] * args.batch:>12} {row['s_per_step']:>8.3f} "
              f"{row['items_per_s']:>8.1f} {row['items_per_s'] / rows[0]['items_per_s']:>7.2f}x")
    if args.json is not None:
        args.json.write_text(json.dumps({"config": args.config, "batch_per_rank": args.batch, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
