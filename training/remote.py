"""Fetch the REAL recordings (speech, sound effects) listed in ``remote_sources.json``.

    python -m reelrestore.training.remote --out ~/.cache/reelrestore/remote --mirror /work/.mirror
    python -m reelrestore.training.remote --evaluation --mirror /work/.mirror
                     # remote_evaluation.json: speakers for evaluation only, never for training

Every manifest entry names a public GitHub repository, a commit, a path, its sha256 and its
license. A file is taken from a local mirror when ``--mirror`` holds that commit
(``<mirror>/<owner>+<name>/`` containing a git directory), else downloaded from
``https://raw.githubusercontent.com/<repo>/<commit>/<path>``. A wrong sha256 is an error; files
already present with the right sha256 are skipped. Layout of ``--out``::

    <kind>/<owner>__<name>__<basename>     the recording, byte-identical to the source
    sources.json                           [{file, kind, license, origin, sha256}, ...]

``sources.json`` is written last, so its presence means the set is complete. With
``--evaluation`` (``remote_evaluation.json``, into ``~/.cache/reelrestore/remote-evaluation``)
every record also says ``"use": "evaluation"``: speakers that no model or setting here was
trained or tuned on, which ``realset --evaluation-extra`` builds into an evaluation set of
their own and every training path refuses (``realset.find_extra_recordings``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from ..engine.safety import stops_in_one_line

MANIFEST = Path(__file__).with_name("remote_sources.json")
DEFAULT_OUT = Path.home() / ".cache" / "reelrestore" / "remote"
EVALUATION_MANIFEST = Path(__file__).with_name("remote_evaluation.json")
EVALUATION_OUT = Path.home() / ".cache" / "reelrestore" / "remote-evaluation"
EVALUATION = "evaluation"  # a record's "use": for evaluation only
KINDS = ("speech", "effects", "music")
FIELDS = ("repo", "commit", "path", "sha256", "license", "license_source", "kind", "description")
# The project's independent evaluation material: never train or tune on audio from these.
FORBIDDEN_REPOS = frozenset({
    "librosa/data", "iver56/audiomentations", "Rikorose/DeepFilterNet", "MTG/sms-tools",
    "totalgee/binaural-livecoding", "deezer/spleeter", "LCAV/pyroomacoustics",
    "mir-dataset-loaders/mirdata", "facebookresearch/audiocraft", "IBM/MAX-Audio-Classifier",
    "hsbakshi/ambient-engine",
})
RAW_URL = "https://raw.githubusercontent.com/{repo}/{commit}/{path}"


class RemoteError(RuntimeError):
    """A one-line, user-facing failure (bad manifest, unreachable source, checksum mismatch)."""


def load_manifest(path: Path | None = None) -> list[dict[str, str]]:
    """Read and validate a manifest (default: the packaged ``remote_sources.json``)."""
    path = MANIFEST if path is None else Path(path)
    entries = json.loads(path.read_text())
    targets: set[str] = set()
    for i, entry in enumerate(entries):
        missing = [f for f in FIELDS if not entry.get(f)]
        if missing:
            raise RemoteError(f"{path.name} entry {i}: missing {', '.join(missing)}")
        if entry["kind"] not in KINDS:
            raise RemoteError(f"{path.name} entry {i}: kind {entry['kind']!r} not in {KINDS}")
        if entry["repo"].lower() in {r.lower() for r in FORBIDDEN_REPOS}:
            raise RemoteError(f"{path.name} entry {i}: {entry['repo']} is held-out evaluation material")
        target = target_name(entry)
        if target in targets:
            raise RemoteError(f"{path.name} entry {i}: duplicate target {target}")
        targets.add(target)
    return entries


def target_name(entry: dict[str, str]) -> str:
    """``<kind>/<owner>__<name>__<basename>``, relative to the output folder."""
    owner, name = entry["repo"].split("/")
    return f"{entry['kind']}/{owner}__{name}__{Path(entry['path']).name}"


def origin(entry: dict[str, str]) -> str:
    return f"{entry['repo']}@{entry['commit']}:{entry['path']}"


def _git_dir(mirror: Path, repo: str) -> Path | None:
    base = mirror / repo.replace("/", "+")
    for candidate in (base / "repo" / ".git", base / "repo", base / ".git", base):
        if (candidate / "objects").is_dir() and (candidate / "HEAD").is_file():
            return candidate
    return None


def _from_mirror(mirror: Path, entry: dict[str, str]) -> bytes | None:
    git_dir = _git_dir(mirror, entry["repo"])
    if git_dir is None:
        return None
    try:
        done = subprocess.run(["git", "--git-dir", str(git_dir), "show", f"{entry['commit']}:{entry['path']}"],
                              capture_output=True, check=False)
    except OSError:  # no git executable
        return None
    return done.stdout if done.returncode == 0 else None


def _download(entry: dict[str, str]) -> bytes:
    url = RAW_URL.format(**entry)
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.read()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise RemoteError(f"cannot download {origin(entry)} ({reason}); pass --mirror with a local copy") from None


def _write_atomic(dest: Path, data: bytes) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    part.write_bytes(data)
    os.replace(part, dest)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def build_remote(out: Path | str, mirror: Path | str | None = None,
                 manifest: Path | str | None = None, evaluation: bool = False) -> list[dict[str, str]]:
    """Materialise every manifest entry under ``out``; returns the ``sources.json`` records
    (with ``evaluation``, each marked ``"use": "evaluation"``)."""
    out = Path(out).expanduser()
    mirror_dir = Path(mirror).expanduser() if mirror is not None else None
    records = []
    for entry in load_manifest(None if manifest is None else Path(manifest)):
        rel = target_name(entry)
        dest = out / rel
        if not (dest.is_file() and _sha256(dest.read_bytes()) == entry["sha256"]):
            data = _from_mirror(mirror_dir, entry) if mirror_dir is not None else None
            if data is None:
                data = _download(entry)
            got = _sha256(data)
            if got != entry["sha256"]:
                raise RemoteError(f"{rel}: sha256 mismatch for {origin(entry)} (expected {entry['sha256']}, got {got})")
            _write_atomic(dest, data)
        record = {"file": rel, "kind": entry["kind"], "license": entry["license"],
                  "origin": origin(entry), "sha256": entry["sha256"]}
        records.append(record | {"use": EVALUATION} if evaluation else record)
    _write_atomic(out / "sources.json", (json.dumps(records, indent=1) + "\n").encode())
    return records


def summarize(out: Path, records: list[dict[str, Any]]) -> str:
    """Files and seconds per kind, files per license."""
    import soundfile as sf

    seconds: Counter[str] = Counter()
    for record in records:
        seconds[record["kind"]] += sf.info(str(out / record["file"])).duration
    files = Counter(r["kind"] for r in records)
    licenses = Counter(r["license"] for r in records)
    lines = [f"{len(records)} files in {out}"]
    lines += [f"  {kind}: {files[kind]} files, {seconds[kind]:.1f} s" for kind in KINDS if files[kind]]
    lines += [f"  license {lic}: {n}" for lic, n in licenses.most_common()]
    return "\n".join(lines)


@stops_in_one_line("remote", "each file is written whole: run it again to fetch the rest")
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reelrestore.training.remote", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None,
                        help=f"output folder (default {DEFAULT_OUT}; with --evaluation {EVALUATION_OUT})")
    parser.add_argument("--mirror", type=Path, default=None, help="folder of local git mirrors (owner+name/...)")
    parser.add_argument("--manifest", type=Path, default=None, help="manifest to use (default: remote_sources.json)")
    parser.add_argument("--evaluation", action="store_true",
                        help="fetch the recordings for evaluation only (remote_evaluation.json unless --manifest), "
                             "marked so that no training path takes them")
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = EVALUATION_OUT if args.evaluation else DEFAULT_OUT
    manifest = EVALUATION_MANIFEST if args.evaluation and args.manifest is None else args.manifest
    try:
        records = build_remote(args.out, args.mirror, manifest, evaluation=args.evaluation)
    except (RemoteError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(summarize(args.out.expanduser(), records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
