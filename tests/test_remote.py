"""The remote-recordings manifest and its builder (no network: a tiny git mirror in tmp_path)."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from reelrestore.training import remote

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="needs the git executable")


def test_manifest_well_formed() -> None:
    entries = remote.load_manifest()
    assert len(entries) >= 20
    for e in entries:
        assert set(remote.FIELDS) <= set(e)
        assert re.fullmatch(r"[0-9a-f]{40}", e["commit"]), e
        assert re.fullmatch(r"[0-9a-f]{64}", e["sha256"]), e
        assert e["kind"] in remote.KINDS
        assert e["repo"] not in remote.FORBIDDEN_REPOS
    kinds = {e["kind"] for e in entries}
    assert {"speech", "effects"} <= kinds
    assert len({e["repo"] for e in entries}) >= 3


def test_evaluation_manifest_well_formed_and_apart_from_the_training_one() -> None:
    """The recordings for evaluation only: well formed, none of them (by content or by
    path) in the manifest the training parts are built from."""
    entries = remote.load_manifest(remote.EVALUATION_MANIFEST)
    assert len(entries) >= 10 and {e["kind"] for e in entries} == {"speech"}
    for e in entries:
        assert set(remote.FIELDS) <= set(e) and e["repo"] not in remote.FORBIDDEN_REPOS
    training = remote.load_manifest()
    assert not {e["sha256"] for e in entries} & {e["sha256"] for e in training}
    assert not {remote.origin(e) for e in entries} & {remote.origin(e) for e in training}


def test_forbidden_repo_rejected(tmp_path: Path) -> None:
    entry = dict.fromkeys(remote.FIELDS, "x") | {"repo": "librosa/data", "kind": "music"}
    (tmp_path / "m.json").write_text(json.dumps([entry]))
    with pytest.raises(remote.RemoteError, match="held-out"):
        remote.load_manifest(tmp_path / "m.json")


@pytest.fixture
def fake_mirror(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """``<mirror>/acme+sounds/repo`` holding one committed wav; returns (mirror, manifest entry)."""
    work = tmp_path / "mirror" / "acme+sounds" / "repo"
    (work / "clips").mkdir(parents=True)
    sf.write(work / "clips" / "tone.wav", 0.1 * np.sin(np.arange(4800) / 7.0), 48000, subtype="PCM_16")
    git = ["git", "-C", str(work), "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q", str(work)], check=True)
    subprocess.run(git + ["add", "."], check=True)
    subprocess.run(git + ["commit", "-q", "-m", "clip"], check=True)
    commit = subprocess.run(git + ["rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    entry = {"repo": "acme/sounds", "commit": commit, "path": "clips/tone.wav",
             "sha256": hashlib.sha256((work / "clips" / "tone.wav").read_bytes()).hexdigest(),
             "license": "CC0-1.0", "license_source": "LICENSE", "kind": "effects", "description": "test tone"}
    return tmp_path / "mirror", entry


@needs_git
def test_build_from_mirror_then_skip(tmp_path: Path, fake_mirror: tuple[Path, dict[str, str]]) -> None:
    mirror, entry = fake_mirror
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps([entry]))
    out = tmp_path / "out"
    records = remote.build_remote(out, mirror, manifest=manifest)
    clip = out / "effects" / "acme__sounds__tone.wav"
    assert records == [{"file": "effects/acme__sounds__tone.wav", "kind": "effects", "license": "CC0-1.0",
                        "origin": f"acme/sounds@{entry['commit']}:clips/tone.wav", "sha256": entry["sha256"]}]
    assert json.loads((out / "sources.json").read_text()) == records
    assert sf.info(str(clip)).samplerate == 48000

    stamp = clip.stat().st_mtime_ns
    shutil.rmtree(mirror)  # a second run must not need the source at all
    assert remote.build_remote(out, mirror, manifest=manifest) == records
    assert clip.stat().st_mtime_ns == stamp

    # for evaluation only: every record says so (the training paths refuse such a folder)
    marked = remote.build_remote(out, mirror, manifest=manifest, evaluation=True)
    assert marked == [records[0] | {"use": "evaluation"}]
    assert json.loads((out / "sources.json").read_text()) == marked


@needs_git
def test_wrong_sha256_fails_cleanly(tmp_path: Path, fake_mirror: tuple[Path, dict[str, str]],
                                    capsys: pytest.CaptureFixture[str]) -> None:
    mirror, entry = fake_mirror
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps([entry | {"sha256": "0" * 64}]))
    out = tmp_path / "out"
    with pytest.raises(remote.RemoteError, match="tone.wav: sha256 mismatch"):
        remote.build_remote(out, mirror, manifest=manifest)
    assert not [p for p in out.rglob("*") if p.is_file()]  # nothing partial, no sources.json

    assert remote.main(["--out", str(out), "--mirror", str(mirror), "--manifest", str(manifest)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "sha256 mismatch" in err


@needs_git
def test_evaluation_cli_writes_its_own_folder_marked_for_evaluation(tmp_path: Path, monkeypatch,
                                                                   fake_mirror: tuple[Path, dict[str, str]]) -> None:
    """`remote --evaluation` without --out writes the evaluation folder (not the training
    one), every record marked; the training default is left untouched."""
    mirror, entry = fake_mirror
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps([entry]))
    monkeypatch.setattr(remote, "EVALUATION_OUT", tmp_path / "evaluation")
    monkeypatch.setattr(remote, "DEFAULT_OUT", tmp_path / "training")
    assert remote.main(["--evaluation", "--mirror", str(mirror), "--manifest", str(manifest)]) == 0
    records = json.loads((tmp_path / "evaluation" / "sources.json").read_text())
    assert [r["use"] for r in records] == ["evaluation"] and not (tmp_path / "training").exists()
