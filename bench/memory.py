"""Peak memory of `restore-stream` against the length of the file it restores.

    python -m reelrestore.bench.memory --model MODEL.onnx --minutes 1 60

Each run happens in a fresh process (so peaks don't mix) on a synthetic 48 kHz stereo
file written block by block into a temporary folder; prints peak RSS per length as JSON.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import click
import numpy as np
from scipy import signal
import soundfile as sf


def write_long_file(path: Path, minutes: float, sr: int = 48000, channels: int = 2) -> None:
    """A reel that lost its highs: a tone + swelling noise cut at 4 kHz (8th-order Butterworth, its
    state carried across pieces), so `--cutoff auto` finds the cut and the model runs on
    every frame. Written in 10 s pieces (never held whole in memory)."""
    rng = np.random.default_rng(0)
    sos = signal.butter(8, 4000, fs=sr, output="sos")
    state = np.zeros((sos.shape[0], 2, channels))
    total = int(minutes * 60 * sr)
    with sf.SoundFile(str(path), "w", samplerate=sr, channels=channels, subtype="PCM_16") as f:
        for start in range(0, total, 10 * sr):
            n = min(10 * sr, total - start)
            t = (start + np.arange(n)) / sr
            tone = 0.3 * np.sin(2 * np.pi * 440 * t)
            swell = 10 ** (10 * np.sin(2 * np.pi * 0.3 * t) / 20)[:, None]  # ±10 dB: moving content
            noise, state = signal.sosfilt(sos, 0.05 * swell * rng.standard_normal((n, channels)), axis=0, zi=state)
            f.write(np.stack([tone] * channels, axis=1) + noise)


def peak_rss_mb(model: Path, source: Path, dest: Path) -> tuple[float, float]:
    """(peak RSS in MB, wall seconds) of one restore-stream run in a child process.

    The child reads its own high-water mark (VmHWM): ru_maxrss would report the
    parent's peak when that is larger, since it survives fork."""
    code = (
        "import sys\n"
        "from reelrestore.engine.model import OnnxModel\n"
        "from reelrestore.engine.restore import restore_file\n"
        "r = restore_file(sys.argv[2], sys.argv[3], OnnxModel(sys.argv[1]))\n"
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
        "print(int(hwm) / 1024, r.wall_seconds)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(model), str(source), str(dest)],
        check=True, capture_output=True, text=True,
    ).stdout.split()
    return float(out[0]), float(out[1])


@click.command()
@click.option("--model", type=click.Path(exists=True, path_type=Path), required=True)
@click.option("--minutes", type=float, multiple=True, default=(1.0, 60.0), show_default=True)
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the test files go (default: a temporary folder).")
def main(model: Path, minutes: tuple[float, ...], workdir: Path | None) -> None:
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        results = []
        for m in minutes:
            src, dst = Path(tmp) / f"in_{m:g}min.wav", Path(tmp) / f"out_{m:g}min.wav"
            write_long_file(src, m)
            peak, wall = peak_rss_mb(model, src, dst)
            results.append({"minutes": m, "peak_rss_mb": round(peak, 1), "wall_seconds": round(wall, 2),
                            "real_time_factor": round(wall / (m * 60), 4)})
            click.echo(json.dumps(results[-1]), err=True)
            src.unlink()
            dst.unlink()
    click.echo(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
