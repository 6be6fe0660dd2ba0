"""Catalog throughput of `restore-batch`: hours of audio restored per hour of wall time, on
the local process pool and on Ray, for 1..N workers, and the time Ray adds per reel.

    python -m reelrestore.bench.batch_speed                          # 16 reels x 60 s, 1 and 2 workers
    python -m reelrestore.bench.batch_speed --input realset/ --workers 1 --workers 2 --json out.json

Each run restores the whole catalog into a fresh folder (nothing skipped) with the
shipped model, one model thread per worker; the wall time includes starting the workers
(and, for Ray, its actors, but not `ray.init`, which is timed apart). Without --input the
catalog is synthetic (noise bursts, cut at 3 kHz, a faint hiss after the cut),
so the model runs on every frame. Run it on an idle machine: the figures are wall times.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def synthetic_catalog(folder: Path, reels: int, seconds: float, sample_rate: int = 48000) -> Path:
    import soundfile as sf
    from scipy.signal import butter, sosfiltfilt

    sos = butter(8, 3000, fs=sample_rate, output="sos")
    for i in range(reels):
        rng = np.random.default_rng(i)
        n = int(seconds * sample_rate)
        bursts = np.repeat(rng.uniform(0.02, 1.0, int(seconds * 8) + 1), sample_rate // 8)[:n]
        # noise bursts: content that moves, as music does (the estimate learns the cut from it)
        x = rng.standard_normal(n) * bursts
        x = sosfiltfilt(sos, x)
        x = 0.25 * x / np.abs(x).max() + 1e-4 * rng.standard_normal(n)  # -12 dBFS: room for the restored band
        sf.write(folder / f"reel{i:03d}.wav", x.astype(np.float32), sample_rate, subtype="PCM_16")
    return folder


def measure(source: Path, workers: list[int], ray: bool, model: str) -> list[dict]:
    from reelrestore.engine import batch

    rows = []
    executors = ["local"] + (["ray"] if ray else [])
    ray_init = None
    for executor in executors:
        if executor == "ray":
            import ray as ray_module

            start = time.perf_counter()
            ray_module.init(num_cpus=max(workers), include_dashboard=False, log_to_driver=False,
                            logging_level="ERROR")
            ray_init = time.perf_counter() - start
        try:
            for n in workers:
                with tempfile.TemporaryDirectory() as out:
                    reels, _ = batch.scan_folder(source, Path(out), batch.Settings())
                    result = batch.run_catalog(reels, model, workers=n, threads=1,
                                               ray_address="auto" if executor == "ray" else None)
                failed = result.counts["failed"]
                rows.append({"executor": executor, "workers": n, "reels": len(reels),
                             "audio_seconds": round(result.audio_seconds, 1), "failed": failed,
                             "wall_seconds": round(result.wall_seconds, 2),
                             "hours_per_hour": round(result.hours_per_hour, 1),
                             "ray_init_seconds": None if executor == "local" else round(ray_init, 2)})
                print(f"{executor:5s} {n} worker(s): {len(reels)} reels, {result.audio_seconds / 60:.1f} min of audio "
                      f"in {result.wall_seconds:.1f} s = {result.hours_per_hour:.1f} h/h" +
                      (f" ({failed} failed)" if failed else ""), flush=True)
        finally:
            if executor == "ray":
                ray_module.shutdown()
    local = {r["workers"]: r for r in rows if r["executor"] == "local"}
    for row in rows:
        base = local[row["workers"]]
        row["speedup_vs_1_worker"] = round(local[min(local)]["wall_seconds"] / row["wall_seconds"], 2) \
            if row["executor"] == "local" else None
        row["ray_seconds_per_reel"] = round((row["wall_seconds"] - base["wall_seconds"]) / row["reels"], 3) \
            if row["executor"] == "ray" else None
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m reelrestore.bench.batch_speed", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", type=Path, help="a folder of reels (default: a synthetic catalog)")
    parser.add_argument("--reels", type=int, default=16, help="synthetic reels")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each synthetic reel")
    parser.add_argument("--workers", type=int, action="append", help="worker counts to try (default 1 and 2)")
    parser.add_argument("--no-ray", action="store_true", help="the local pool only")
    parser.add_argument("--model", help="ONNX model (default: the shipped one)")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = parser.parse_args(argv)
    from reelrestore.engine.cli import default_model_path

    model = args.model or str(default_model_path())
    ray = not args.no_ray
    if ray:
        try:
            import ray as _  # noqa: F401
        except ImportError:
            parser.error("Ray is not installed: pip install 'reelrestore[ray]', or pass --no-ray")
    with tempfile.TemporaryDirectory() as tmp:
        source = args.input or synthetic_catalog(Path(tmp), args.reels, args.seconds)
        rows = measure(source, sorted(set(args.workers or [1, 2])), ray, model)
    print(json.dumps(rows, indent=2))
    if args.json:
        from reelrestore.engine.safety import write_text

        write_text(args.json, json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
