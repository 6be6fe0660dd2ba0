"""Training throughput: steps/s of a trainer (any: the config names it) on its real data,
and whether the data keeps up.

    python -m reelrestore.bench.train_speed --config training/configs/realtime_real.toml \\
        --data data/real-train --workers 0 --workers 2 --batch 16 --batch 64 --json train-speed.json

For every (batch, workers) pair, three figures over ``--steps`` batches after ``--warmup``
(plus one per worker: a worker's first batch carries its start, imports and JIT loads):

* ``data``: batches/s of the DataLoader alone (reading WAV slices + damage synthesis on
  the CPU), what the data side can feed;
* ``train``: steps/s of the whole loop (loader + ``train_step`` on ``--device``);
* ``resident``: steps/s of ``train_step`` on one batch held on the device, what the
  device could do if the data were free.

Up to two batches per worker wait in the loader when timing starts, so ``--steps`` must
be at least eight per worker. If ``train`` ≈ ``data`` and well under ``resident``, the
trainer waits on its data: add workers, or damage on the device
(``data.extra.damage_on=device``: the workers only read and draw, and ``train`` and
``resident`` include the damage made on the device). The device, torch version and CPU
count are in the JSON. Nothing here needs a GPU; with CUDA present, ``--device cuda`` (or
auto) measures it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


BUFFERED_PER_WORKER = 2  # DataLoader's prefetch_factor: batches each worker holds ready
STEPS_PER_WORKER = 4 * BUFFERED_PER_WORKER  # timed batches per worker, at least: the buffer a quarter of them


def measure(config: str, data: str, batch: int, workers: int, steps: int, warmup: int, device: str,
            overrides: list[str]) -> dict:
    if steps < STEPS_PER_WORKER * workers:  # before any trainer is built
        raise ValueError(f"expected --steps >= {STEPS_PER_WORKER * workers} for {workers} workers, got {steps}: "
                         f"up to {BUFFERED_PER_WORKER * workers} batches wait in the loader when timing starts")
    import torch
    from torch.utils.data import DataLoader

    from reelrestore.training.dataset import training_sets
    from reelrestore.training.device_damage import damage_batch
    from reelrestore.training.loop import EpochSampler
    from reelrestore.training.trainers import load_config, new_trainer

    cfg = load_config(Path(config), [f"data.source={json.dumps(data)}", f"data.batch_size={batch}",
                                     f"data.num_workers={workers}", f"schedule.device={device}", *overrides])
    trainer = new_trainer(cfg)
    ds, _ = training_sets(cfg)
    warmup_batches = warmup + workers
    n = (steps + warmup_batches) * batch
    if len(ds) < batch:
        raise ValueError(f"expected at least one batch of {batch} training segments, got {len(ds)}")
    # A folder shorter than the timed batches is read again (epoch after epoch's order): each
    # segment costs the same to read and damage, so the rates hold; "passes" says so.
    passes = -(-n // len(ds))
    order = [i for epoch in range(passes) for i in EpochSampler(len(ds), 0, epoch)][:n]

    def loader() -> DataLoader:
        return DataLoader(ds, batch_size=batch, sampler=order, drop_last=True,
                          num_workers=workers, pin_memory=trainer.device.type == "cuda",
                          persistent_workers=False, prefetch_factor=BUFFERED_PER_WORKER if workers else None)

    def timed(step) -> float:
        it = iter(loader())
        for _ in range(warmup_batches):
            step(next(it))
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            step(next(it))
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        return steps / (time.perf_counter() - start)

    def step(b) -> None:  # a batch of damage plans is damaged on the device first (data.extra.damage_on)
        trainer.train_step(damage_batch(b, trainer.device))

    def on_device(b):
        if isinstance(b, dict):
            return {k: on_device(v) for k, v in b.items()}
        return b.to(trainer.device) if isinstance(b, torch.Tensor) else b

    def resident() -> float:  # one batch held on the device (plans damaged there each step): data for free
        it = iter(loader())
        held = on_device(next(it))
        del it  # its workers stop: they must not share the CPU with the timed steps
        for _ in range(warmup):
            step(held)
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            step(held)
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        return steps / (time.perf_counter() - start)

    data_rate = timed(lambda b: None)
    train_rate = timed(step)
    held_rate = resident()
    return {"batch": batch, "workers": workers, "device": str(trainer.device), "steps": steps,
            "data_batches_per_s": round(data_rate, 3), "train_steps_per_s": round(train_rate, 3),
            "train_segments_per_s": round(train_rate * batch, 1),
            "resident_steps_per_s": round(held_rate, 3),
            "waits_on_data": train_rate > 0.8 * data_rate, "segments": len(ds), "passes": passes}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m reelrestore.bench.train_speed", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="restore-train config (TOML/YAML) of any trainer")
    ap.add_argument("--data", required=True, help="folder of clean recordings (e.g. from training.realtrain)")
    ap.add_argument("--batch", type=int, action="append", help="batch size (repeat; default 16)")
    ap.add_argument("--workers", type=int, action="append", help="DataLoader workers (repeat; default 0)")
    ap.add_argument("--steps", type=int, default=30, help="timed batches per figure")
    ap.add_argument("--warmup", type=int, default=3, help="untimed batches first")
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda")
    ap.add_argument("--json", default=None, help="write the figures here")
    ap.add_argument("overrides", nargs="*", help="config overrides as for restore-train: section.key=value, key=value")
    a = ap.parse_args(argv)
    import torch

    rows = []
    try:
        for batch in a.batch or [16]:
            for workers in a.workers or [0]:
                row = measure(a.config, a.data, batch, workers, a.steps, a.warmup, a.device, a.overrides)
                rows.append(row)
                print(f"batch {batch:4d} workers {workers}: data {row['data_batches_per_s']:7.2f} batches/s, "
                      f"train {row['train_steps_per_s']:7.2f} steps/s ({row['train_segments_per_s']:.0f} "
                      f"segments/s) on {row['device']}, {row['resident_steps_per_s']:.2f} with one batch held "
                      f"there{'  (waits on data)' if row['waits_on_data'] else ''}")
    except (ValueError, FileNotFoundError) as err:
        sys.exit(f"error: {err}")
    if a.json:
        machine = {"cpus": os.cpu_count(), "torch": torch.__version__, "cuda": torch.cuda.is_available(),
                   "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                   "load_average": os.getloadavg()}
        Path(a.json).write_text(json.dumps({"command": sys.argv, "machine": machine, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
