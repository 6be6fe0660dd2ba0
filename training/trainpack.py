"""Carry the training folder to a machine that cannot build it: pack it small, unpack it there.

A lent GPU machine cannot install the Debian music packages or reach GitHub, and takes
only a few tens of MiB of files beside the working tree, while the training folder
(`realtrain`: 4.0 h of 16-bit WAV) is 1.4 GB. ``pack`` writes every recording of that
folder as Ogg Opus (about 61 kbit/s: libsndfile's compression level `OPUS_LEVEL`), as
many seconds of each as fit a budget: every recording the same length, or all of it when
it is shorter (the sources are played from their start, after realtrain's skip).
``unpack`` decodes a pack into a folder the trainer reads as it reads realtrain's: the
same file names (so the same train/validation split, `dataset.split_by_file`), 16-bit
WAV at 48 kHz, and a manifest in realtrain's format that says it came from a pack::

    python -m reelrestore.training.trainpack pack data/real-train pack/          # 40 MiB
    python -m reelrestore.training.trainpack unpack pack/ /tmp/real-train       # there
    restore-train --config training/configs/realtime_real.toml --out runs/rt data.source=/tmp/real-train

What the codec costs: Opus keeps the band each recording has (within 1 dB up to 16 kHz on
the real set's music) and adds a faint floor where a source had none (a lossy source's
empty top octave); the damage the trainer draws (hiss at -75 dBFS and louder) lies far
over it. Each file's sha256 is in the pack's ``pack.json`` and checked when unpacking.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import soundfile as sf

from ..engine.model import file_sha256
from ..engine.safety import stops_in_one_line
from .realtrain import FORMAT as FOLDER_FORMAT
from .realset import SR

FORMAT = "reelrestore-trainpack-1"
# libsndfile's compression level for Opus sets its bit rate. On 30 s of ten recordings of
# the training folder, band energy per octave (250 Hz-16 kHz) against the WAV's: 0.75
# (74 kbit/s) within 0.14 dB, 0.8 (61 kbit/s) within 0.29 dB, 0.85 (46 kbit/s) 1.8 dB
# under at 4-8 kHz on average and up to 4.5 dB off: the encoder then thins the bands.
OPUS_LEVEL = 0.8
# A lent GPU machine takes 64 MiB with the working tree: 16 MB of it tracked (the models),
# 3.4 MB of wheels that machine lacks (soundfile, soxr, rocket-fft, ...); 40 MiB is left.
DEFAULT_BUDGET_MIB = 40.0
# A recording packed shorter than this teaches little, and a budget that leaves less is
# refused: a 0.5 s training segment needs room to be drawn from.
MIN_SECONDS = 2.0
MIB = 1 << 20


class PackError(ValueError):
    """A pack or folder that cannot be read, or a budget that cannot be met."""


def even_share(lengths: np.ndarray, total: float) -> float:
    """The length s with sum(min(lengths, s)) == total (all of every recording when they
    fit): each recording gets the same seconds, the short ones all of theirs."""
    if lengths.sum() <= total:
        return float(lengths.max())
    ordered = np.sort(lengths)
    done = 0.0  # seconds of the recordings shorter than the share, taken whole
    for i, n in enumerate(ordered):
        share = (total - done) / (len(ordered) - i)
        if share <= n:
            return float(share)
        done += n
    return float(ordered[-1])


def _read_manifest(folder: Path, name: str, fmt: str, what: str) -> dict[str, Any]:
    path = folder / name
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise PackError(f"{folder}: expected {what} with its {name} ({exc.__class__.__name__})") from None
    if manifest.get("format") != fmt:
        raise PackError(f"{path}: expected format {fmt!r}, got {manifest.get('format')!r}")
    return manifest


@contextmanager
def _written_whole(out: Path, source: Path, overwrite: bool) -> Iterator[Path]:
    """A temporary sibling of `out` to write into: renamed onto `out` when the block
    completes, removed when it fails. Never the folder `source` it is made from, nor one
    that holds it; a folder with files only with `overwrite`."""
    if out.resolve() in (source.resolve(), *source.resolve().parents):
        raise PackError(f"{out} would replace {source}, which it is read from: choose another folder")
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise PackError(f"{out} exists and is not empty; choose a new folder or pass -y to replace it")
    tmp = out.with_name(out.name + ".part")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        shutil.rmtree(out) if out.is_dir() else out.unlink()
    tmp.rename(out)


def pack(folder: str | Path, out: str | Path, budget_mib: float = DEFAULT_BUDGET_MIB, level: float = OPUS_LEVEL,
         overwrite: bool = False, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Write the pack of a realtrain `folder` into `out` (see the module docstring);
    returns its manifest. The share of each recording is set from the bit rate the first
    files reach, then lowered and the longer files written again if the pack comes out
    over the budget."""
    folder, out = Path(folder), Path(out)
    source = _read_manifest(folder, "manifest.json", FOLDER_FORMAT,
                            "a training folder (python -m reelrestore.training.realtrain)")
    rows = source["files"]
    if not rows:
        raise PackError(f"{folder}: its manifest lists no recordings")
    missing = [r["file"] for r in rows if not (folder / r["file"]).is_file()]
    if missing:
        raise PackError(f"{folder / missing[0]}: missing ({len(missing)} of the manifest's {len(rows)} files); "
                        f"build the folder again with python -m reelrestore.training.realtrain")
    lengths = np.array([sf.info(str(folder / r["file"])).frames / SR for r in rows])
    budget = budget_mib * MIB
    with _written_whole(out, folder, overwrite) as tmp:
        rate = None  # bytes per second of audio, measured on what was written
        share = float(lengths.max())
        written: dict[int, int] = {}  # row -> samples in the pack
        for attempt in range(4):
            if rate is not None:
                share = even_share(lengths, 0.97 * budget / rate)
            if share < MIN_SECONDS:
                raise PackError(f"a budget of {budget_mib:g} MiB leaves {share:.1f} s of each of {len(rows)} "
                                f"recordings (at least {MIN_SECONDS:g} s): give a larger --budget-mib")
            for i, row in enumerate(rows):
                frames = int(round(min(lengths[i], share) * SR))
                if written.get(i) == frames:
                    continue
                if log:
                    log(f"[{i + 1}/{len(rows)}] {row['file']}")
                x, sr = sf.read(str(folder / row["file"]), frames=frames, dtype="float32")
                if sr != SR or x.ndim != 1:
                    raise PackError(f"{folder / row['file']}: expected mono at {SR} Hz, got {x.shape} at {sr} Hz")
                target = tmp / Path(row["file"]).with_suffix(".ogg")
                target.parent.mkdir(parents=True, exist_ok=True)
                sf.write(str(target), x, SR, format="OGG", subtype="OPUS", compression_level=level)
                written[i] = frames
                if rate is None and sum(written.values()) >= 60 * SR:
                    break  # enough to know the rate: set the share from it
            size = sum(f.stat().st_size for f in tmp.rglob("*.ogg"))
            rate = size / (sum(written.values()) / SR)
            if len(written) == len(rows) and size <= budget:
                break
        else:
            raise PackError(f"could not fit {len(rows)} recordings into {budget_mib:g} MiB")
        files = []
        for i, row in enumerate(rows):
            packed = Path(row["file"]).with_suffix(".ogg").as_posix()
            kept = {k: v for k, v in row.items() if k not in ("seconds_used", "wav_sha256")}
            files.append({**kept, "packed": packed, "frames_packed": written[i],
                          "packed_sha256": file_sha256(tmp / packed)})
        manifest = {"format": FORMAT, "from": {k: v for k, v in source.items() if k != "files"},
                    "codec": "Ogg Opus", "opus_level": level, "budget_mib": budget_mib, "sample_rate": SR,
                    "n_files": len(files), "total_seconds": round(sum(written.values()) / SR, 1),
                    "total_bytes": int(size), "files": files}
        (tmp / "pack.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def unpack(pack_dir: str | Path, out: str | Path, overwrite: bool = False,
           log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Decode a pack into a training folder `out` (realtrain's layout and manifest
    format); every packed file's sha256 is checked first. Returns the folder's manifest."""
    pack_dir, out = Path(pack_dir), Path(out)
    manifest = _read_manifest(pack_dir, "pack.json", FORMAT, "a training pack (python -m "
                              "reelrestore.training.trainpack pack)")
    for row in manifest["files"]:
        path = pack_dir / row["packed"]
        if not path.is_file() or file_sha256(path) != row["packed_sha256"]:
            raise PackError(f"{path}: {'missing' if not path.is_file() else 'changed since it was packed'} "
                            f"(sha256 in pack.json); pack the folder again")
    with _written_whole(out, pack_dir, overwrite) as tmp:
        rows = []
        for i, row in enumerate(manifest["files"]):
            if log:
                log(f"[{i + 1}/{len(manifest['files'])}] {row['file']}")
            x, sr = sf.read(str(pack_dir / row["packed"]), dtype="float32")
            if sr != SR:
                raise PackError(f"{pack_dir / row['packed']}: expected {SR} Hz, got {sr} Hz")
            peak = float(np.max(np.abs(x))) if x.size else 0.0
            if peak > 1.0:  # the codec's overshoot of a full-scale master: keep it in 16 bits, as realtrain does
                x = x / peak
            target = tmp / row["file"]
            target.parent.mkdir(parents=True, exist_ok=True)
            sf.write(str(target), x, SR, subtype="PCM_16")
            kept = {k: v for k, v in row.items() if k not in ("packed_sha256", "frames_packed")}
            rows.append({**kept, "seconds_used": round(x.size / SR, 3), "wav_sha256": file_sha256(target)})
        folder = {**manifest["from"], "format": FOLDER_FORMAT, "unpacked_from": {
            "pack": str(pack_dir), "codec": manifest["codec"], "opus_level": manifest["opus_level"]},
            "n_files": len(rows), "total_seconds": round(sum(r["seconds_used"] for r in rows), 1), "files": rows}
        (tmp / "manifest.json").write_text(json.dumps(folder, indent=1))
    return folder


@stops_in_one_line("trainpack")
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m reelrestore.training.trainpack", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="a training folder -> a pack of Ogg Opus files within a budget")
    p.add_argument("folder", type=Path, help="training folder (python -m reelrestore.training.realtrain)")
    p.add_argument("out", type=Path, help="the pack's folder (new or empty)")
    p.add_argument("--budget-mib", type=float, default=DEFAULT_BUDGET_MIB, help="the pack's size at most (MiB)")
    p.add_argument("--level", type=float, default=OPUS_LEVEL,
                   help="libsndfile's Opus compression level, 0-1 (higher: fewer bits; 0.8 is about 61 kbit/s)")
    p.add_argument("-y", "--overwrite", action="store_true", help="replace OUT if it holds files")
    u = sub.add_parser("unpack", help="a pack -> a training folder of 16-bit WAV")
    u.add_argument("pack", type=Path, help="the pack's folder (its pack.json)")
    u.add_argument("out", type=Path, help="the training folder to write (new or empty)")
    u.add_argument("-y", "--overwrite", action="store_true", help="replace OUT if it holds files")
    a = ap.parse_args(argv)

    shown = []  # a progress line is on the terminal: end it before the next line

    def log(line: str) -> None:
        print(f"\r{line[:78]:78s}", end="", file=sys.stderr, flush=True)
        shown[:] = [True]

    def end_progress() -> None:
        if shown:
            print(file=sys.stderr)
            shown.clear()

    try:
        if a.command == "pack":
            if not 0.0 <= a.level <= 1.0:
                raise PackError(f"--level: expected 0-1, got {a.level:g}")
            if not a.budget_mib > 0:
                raise PackError(f"--budget-mib: expected a size above 0, got {a.budget_mib:g}")
            m = pack(a.folder, a.out, a.budget_mib, a.level, a.overwrite, log)
            end_progress()
            print(f"{m['n_files']} recordings, {m['total_seconds'] / 3600:.2f} h, "
                  f"{m['total_bytes'] / MIB:.1f} MiB -> {a.out}")
        else:
            m = unpack(a.pack, a.out, a.overwrite, log)
            end_progress()
            print(f"{m['n_files']} recordings, {m['total_seconds'] / 3600:.2f} h -> {a.out}")
    except PackError as exc:  # the message is printed at exit, after `finally` ended the progress line
        sys.exit(f"trainpack: error: {exc}")
    finally:  # a stop's line (stops_in_one_line) begins on a line of its own
        end_progress()


if __name__ == "__main__":
    main()
