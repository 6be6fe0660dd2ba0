"""Prepare the training part of the real-recordings set as a folder the trainer reads fast.

    python -m reelrestore.training.realtrain --realset realset/ --out data/real-train
    python -m reelrestore.training.realtrain --realset realset/ --out data/real-train \\
        --extra ~/.cache/reelrestore/remote          # + real speech and effects from GitHub
    python -m reelrestore.training.realtrain --realset realset/ --out data/real-train \\
        --extra ~/.cache/reelrestore/remote --package 0ad-data   # + a training-only Debian package

What goes in: every recording the real set's manifest lists as its training part (the
evaluation part is never touched: it is identified by sha256 and refused), plus, with
``--extra``, the recordings of that folder's ``sources.json`` that are not in the
evaluation part, and with ``--package``, every recording of a training-only Debian package
(``realset.TRAINING_PACKAGES``: 0 A.D.'s score, voices and foley, ``apt-get install 0ad-data``;
Hedgewars' voice packs and score, ``hedgewars-data``; KTuberling's spoken words,
``ktuberling-data``) sampled at 32 kHz or more, which the real set itself never holds; the
voices of ``realset.HELD_OUT_VOICES`` never go in (a development set of their own,
``realset --held-out-speech``). Each is decoded once,
mixed to mono, resampled to 48 kHz and written as 16-bit WAV (at most ``--max-seconds`` of
it, from after its first ``--skip-seconds``), so a training step reads a 0.5 s slice with one
seek instead of decoding Ogg. The folder's ``manifest.json`` lists every file with its
source, the source's sha256 and license, and the sha256 of the WAV written; the same
installed sources give the same folder.

Then train on it (``data.source``)::

    restore-train --config training/configs/realtime_real.toml --out runs/realtime-real
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from ..engine.safety import AtomicPath, stops_in_one_line
from .realset import SR, TRAINING_PACKAGES, Recording, read_recording, training_recordings

FORMAT = "reelrestore-realtrain-1"


def _name(rec: Recording) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(rec.path.replace("!", "/")).stem)
    return f"{rec.kind}/{rec.package}__{stem}__{rec.sha256[:8]}.wav"


def build_training_folder(realset: str | Path, out: str | Path, extra: str | Path | None = None,
                          max_seconds: float = 180.0, skip_seconds: float = 2.0,
                          progress: bool = True, packages: tuple[str, ...] = ()) -> dict[str, Any]:
    """Write the folder (see the module docstring); returns its manifest."""
    out = Path(out)
    recs = training_recordings(realset, extra, packages)
    (out / "manifest.json").unlink(missing_ok=True)  # a build stopped part-way never looks complete
    try:
        rows = _write_recordings(recs, out, max_seconds, skip_seconds, progress)
    finally:
        if progress:
            print(file=sys.stderr)  # end the progress line, also before an error's or a stop's line
    manifest = {"format": FORMAT, "realset": str(realset), "extra": str(extra) if extra else None,
                "packages": list(packages),
                "max_seconds": max_seconds, "skip_seconds": skip_seconds, "sample_rate": SR,
                "n_files": len(rows), "total_seconds": round(sum(r["seconds_used"] for r in rows), 1),
                "files": rows}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def _write_recordings(recs: list[Recording], out: Path, max_seconds: float, skip_seconds: float,
                      progress: bool) -> list[dict[str, Any]]:
    """Each recording's excerpt as 16-bit WAV under `out`, each written whole; their rows."""
    rows = []
    for i, rec in enumerate(recs):
        if progress:
            print(f"\r[{i + 1}/{len(recs)}] {rec.package} {Path(rec.path).name[:40]:40s}", end="",
                  file=sys.stderr, flush=True)
        raw = rec.data()
        if hashlib.sha256(raw).hexdigest() != rec.sha256:
            raise ValueError(f"{rec.path} changed since the real set was built (sha256 differs): rebuild it")
        x = read_recording(rec)
        skip = int(skip_seconds * SR) if x.size > int((skip_seconds + 1) * SR) else 0
        x = x[skip: skip + int(max_seconds * SR)]
        peak = float(np.max(np.abs(x))) if x.size else 0.0
        if peak > 1.0:  # resampling overshoot of a full-scale master: keep it in 16 bits
            x = x / peak
        rel = _name(rec)
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with AtomicPath(path) as tmp:
            sf.write(tmp, x.astype(np.float32), SR, subtype="PCM_16")
        rows.append({**asdict(rec), "file": rel, "seconds_used": round(x.size / SR, 3),
                     "wav_sha256": hashlib.sha256(path.read_bytes()).hexdigest()})
    return rows


@stops_in_one_line("realtrain", "the folder it was writing has no manifest.json (incomplete): run the command again")
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m reelrestore.training.realtrain", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--realset", required=True, help="real set folder (its manifest.json names the training part)")
    ap.add_argument("--out", required=True, help="folder to write (WAVs + manifest.json)")
    ap.add_argument("--extra", default=None, help="folder with a sources.json of more real recordings")
    ap.add_argument("--package", action="append", default=[], choices=sorted(TRAINING_PACKAGES),
                    help="also every recording of this installed training-only Debian package (repeatable)")
    ap.add_argument("--max-seconds", type=float, default=180.0, help="at most this much of each recording")
    ap.add_argument("--skip-seconds", type=float, default=2.0, help="skip this much of each recording's start")
    a = ap.parse_args(argv)
    if not (Path(a.realset) / "manifest.json").is_file():
        print(f"realtrain: error: {a.realset}/manifest.json not found: build the set first "
              f"(python -m reelrestore.training.realset --out {a.realset})", file=sys.stderr)
        sys.exit(2)  # one line, as a usage error, without the usage
    try:
        m = build_training_folder(a.realset, a.out, a.extra, a.max_seconds, a.skip_seconds,
                                  packages=tuple(a.package))
    except (ValueError, FileNotFoundError) as err:
        sys.exit(f"error: {err}")
    print(f"{m['n_files']} recordings, {m['total_seconds'] / 3600:.2f} h -> {a.out}")


if __name__ == "__main__":
    main()
