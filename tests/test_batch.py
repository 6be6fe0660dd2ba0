"""restore-batch: a catalog restored exactly once, on the local pool and on Ray.

The catalog is small (4 s reels cut at 3 kHz) and restored by the shipped model, so each
output is a real restoration; what is checked is the catalog's bookkeeping: mirrored
outputs, sidecars, skips, redo on change, bad reels, kills and reruns.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import butter, sosfiltfilt

from reelrestore.engine import batch
from reelrestore.engine.cli import default_model_path
from reelrestore.engine.model import file_sha256

SR = 48000


def write_reel(path: Path, seed: int, seconds: float = 4.0, subtype: str = "PCM_16") -> Path:
    """Noise bursts and a swelling tone, cut at 3 kHz (Butterworth 8), a faint hiss after the cut."""
    rng = np.random.default_rng(seed)
    n = int(SR * seconds)
    t = np.arange(n) / SR
    bursts = np.repeat(rng.uniform(0.02, 1.0, int(seconds * 8) + 1), SR // 8)[:n]
    x = 0.1 * rng.standard_normal(n) * bursts + 0.3 * np.sin(2 * np.pi * (220 + 40 * seed) * t) * (1 + np.sin(np.pi * t)) / 2
    x = sosfiltfilt(butter(8, 3000, fs=SR, output="sos"), x) + 1e-4 * rng.standard_normal(n)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, x.astype(np.float32), SR, subtype=subtype)
    return path


@pytest.fixture
def archive(tmp_path) -> Path:
    """in/a.wav, in/sub/b.flac, in/sub/deeper/c.wav; a note and a photo that are not audio;
    a .wav that is not one (a bad reel)."""
    root = tmp_path / "in"
    write_reel(root / "a.wav", 0)
    write_reel(root / "sub" / "b.flac", 2)
    write_reel(root / "sub" / "deeper" / "c.wav", 3)
    (root / "notes.txt").write_text("reel 3 has a splice at 2:10\n")
    (root / "sub" / "label.jpg").write_bytes(b"\xff\xd8\xff\xe0 not audio")
    (root / "sub" / "broken.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt \x10 garbage")
    return root


def restore_batch(*args, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reelrestore.engine.batch_cli", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def outputs(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` but sidecars and the lock, by relative path."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.name.endswith(batch.SIDECAR_SUFFIX) and p.name != batch.LOCK_NAME}


def sidecars(folder: Path) -> dict[str, dict]:
    return {str(p.relative_to(folder)): json.loads(p.read_text()) for p in sorted(folder.rglob("*" + batch.SIDECAR_SUFFIX))}


EXPECTED = {"a.wav", "sub/b.flac", "sub/deeper/c.wav"}


def test_a_folder_is_restored_into_a_mirrored_tree_and_a_bad_reel_is_reported(archive, tmp_path):
    out, summary = tmp_path / "out", tmp_path / "summary.json"
    done = restore_batch(archive, "-o", out, "--workers", "2", "--summary", summary)
    assert done.returncode == 1, done.stderr  # one reel failed
    assert set(outputs(out)) == EXPECTED  # audio only, by content; the bad .wav wrote nothing
    assert set(sidecars(out)) == {name + batch.SIDECAR_SUFFIX for name in EXPECTED}  # nor claimed anything
    assert "Traceback" not in done.stderr
    assert "failed: " in done.stderr and "broken.wav: not a readable audio file" in done.stderr
    assert "2 files that are not audio ignored" in done.stderr
    report = json.loads(summary.read_text())
    by_name = {Path(r["input"]).name: r for r in report["reels"]}
    assert report["done"] == 3 and report["failed"] == 1 and report["skipped"] == 0
    assert by_name["broken.wav"]["status"] == "failed" and "not a readable audio file" in by_name["broken.wav"]["reason"]
    assert by_name["a.wav"]["audio_seconds"] == pytest.approx(4.0, abs=0.01)
    assert by_name["a.wav"]["real_time_factor"] > 0
    assert 2800 < by_name["a.wav"]["cutoffs_hz"][0] < 3750  # the cut, learned per reel
    assert report["hours_per_hour"] > 0
    for name in EXPECTED:  # the same format and depth as the input, restored above the cut
        info_in, info_out = sf.info(archive / name), sf.info(out / name)
        assert (info_out.format, info_out.subtype, info_out.frames) == (info_in.format, info_in.subtype, info_in.frames)
        side = sidecars(out)[name + batch.SIDECAR_SUFFIX]
        assert side["state"] == "done" and side["input_sha256"] == file_sha256(archive / name)
        assert side["output_sha256"] == file_sha256(out / name)
        assert side["model_sha256"] == file_sha256(default_model_path())
    restored, _ = sf.read(out / "a.wav")
    original, _ = sf.read(archive / "a.wav")
    above = lambda x: np.abs(np.fft.rfft(x))[int(5000 * len(x) / SR):int(9000 * len(x) / SR)].mean()  # noqa: E731
    assert above(restored) > 3 * above(original)


def test_a_rerun_skips_what_is_done_and_redoes_what_changed(archive, tmp_path):
    out = tmp_path / "out"
    (archive / "sub" / "broken.wav").unlink()
    quiet = restore_batch(archive, "-o", out, "-q")
    assert quiet.returncode == 0 and quiet.stderr == ""  # -q: errors only
    first = outputs(out)
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.wav")}
    write_reel(archive / "sub" / "deeper" / "c.wav", 9)  # a new transfer of reel c
    summary = tmp_path / "s.csv"
    again = restore_batch(archive, "-o", out, "--summary", summary)
    assert again.returncode == 0, again.stderr
    rows = summary.read_text().splitlines()
    assert rows[0].startswith("input,output,status,reason,audio_seconds")
    status = {Path(r.split(",")[0]).name: r.split(",")[2] for r in rows[1:]}
    assert status == {"a.wav": "skipped", "b.flac": "skipped", "c.wav": "done"}
    assert (out / "a.wav").stat().st_mtime_ns == stamps[out / "a.wav"]  # not rewritten
    assert outputs(out)["a.wav"] == first["a.wav"] and outputs(out)["sub/deeper/c.wav"] != first["sub/deeper/c.wav"]
    # other settings make other outputs: every reel is redone
    mixed = restore_batch(archive, "-o", out, "--mix", "0.5", "--summary", summary, "-v")
    assert mixed.returncode == 0, mixed.stderr
    assert mixed.stderr.count("done: ") == 3  # -v: a line per reel
    assert [r.split(",")[2] for r in summary.read_text().splitlines()[1:]] == ["done"] * 3
    assert all(s["settings"]["mix"] == 0.5 for s in sidecars(out).values())
    # an output damaged after the fact (its sha256 no longer the sidecar's) is redone
    (out / "a.wav").write_bytes(first["a.wav"][:1000])
    assert restore_batch(archive, "-o", out, "--mix", "0.5", "-q").returncode == 0
    assert sf.info(out / "a.wav").frames == sf.info(archive / "a.wav").frames


def test_ray_restores_the_catalog_bit_identically_to_the_local_pool(archive, tmp_path):
    ray = pytest.importorskip("ray")  # installed by install.sh (the `ray` extra)
    (archive / "sub" / "broken.wav").unlink()
    model = str(default_model_path())
    local_reels, _ = batch.scan_folder(archive, tmp_path / "local", batch.Settings())
    ray_reels, _ = batch.scan_folder(archive, tmp_path / "ray", batch.Settings())
    local = batch.run_catalog(local_reels, model, workers=2, threads=1)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        on_ray = batch.run_catalog(ray_reels, model, workers=2, threads=1, ray_address="auto")
    finally:
        ray.shutdown()
    assert [o.status for o in local.outcomes] == [o.status for o in on_ray.outcomes] == ["done"] * 3
    assert on_ray.executor == "ray"
    assert outputs(tmp_path / "ray") == outputs(tmp_path / "local")
    assert len({o.worker for o in on_ray.outcomes}) >= 1 and all(":" in o.worker for o in on_ray.outcomes)


def test_a_driver_killed_part_way_and_rerun_completes_with_nothing_duplicated_or_partial(tmp_path):
    """SIGKILL the driver while its worker writes; the worker dies with it, and a rerun
    finishes the catalog: every output complete (= a clean run's), none twice, no temporary
    files, every sidecar done."""
    archive = tmp_path / "in"
    for i in range(5):
        write_reel(archive / f"r{i}.wav", i, seconds=8.0)
    clean = tmp_path / "clean"
    assert restore_batch(archive, "-o", clean, "-q", "--workers", "1").returncode == 0
    out = tmp_path / "out"
    driver = subprocess.Popen([sys.executable, "-m", "reelrestore.engine.batch_cli", str(archive), "-o", str(out),
                               "-q", "--workers", "1"], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # kill once one reel is done and the next is under way
        done = [s for s in sidecars(out).values() if s["state"] == "done"] if out.exists() else []
        if done and any(s["state"] == "writing" for s in sidecars(out).values()):
            break
        time.sleep(0.02)
    driver.send_signal(signal.SIGKILL)
    driver.wait(timeout=30)
    time.sleep(1.0)  # the worker gets SIGTERM from the kernel and removes its partial output
    assert len(outputs(out)) < 5  # it really was part-way
    rerun = restore_batch(archive, "-o", out)
    assert rerun.returncode == 0, rerun.stderr
    assert outputs(out) == outputs(clean)  # complete, bit for bit; no .rr-*.partial left
    assert not list(out.rglob(".rr-*"))
    assert not (out / batch.LOCK_NAME).exists()
    assert {s["state"] for s in sidecars(out).values()} == {"done"} and len(sidecars(out)) == 5
    assert " skipped, 0 failed of 5 reels" in rerun.stderr


def test_a_worker_killed_mid_catalog_is_replaced_and_its_reel_retried(archive, tmp_path):
    (archive / "sub" / "broken.wav").unlink()
    reels, _ = batch.scan_folder(archive, tmp_path / "out", batch.Settings())
    killed = []

    def kill_first_worker(outcome: batch.Outcome) -> None:
        if not killed:
            pid = int(outcome.worker.rsplit(":", 1)[1])
            os.kill(pid, signal.SIGKILL)  # it is given the next reel right after
            killed.append(pid)

    result = batch.run_catalog(reels, str(default_model_path()), workers=1, threads=1, on_outcome=kill_first_worker)
    assert killed
    assert [o.status for o in result.outcomes] == ["done"] * 3
    assert len({o.worker for o in result.outcomes}) == 2  # the replacement did the rest
    assert set(outputs(tmp_path / "out")) == EXPECTED


def test_a_manifest_gives_per_reel_outputs_and_settings(archive, tmp_path):
    manifest = tmp_path / "catalog.csv"
    manifest.write_text("input,output,cutoff,mix\n"
                        "in/a.wav,,2k,\n"
                        "in/sub/b.flac,elsewhere/b_restored.wav,,0\n")
    out = tmp_path / "out"
    done = restore_batch(manifest, "-o", out, "-q", "--summary", tmp_path / "s.json")
    assert done.returncode == 0, done.stderr
    report = {Path(r["input"]).name: r for r in json.loads((tmp_path / "s.json").read_text())["reels"]}
    assert report["a.wav"]["cutoffs_hz"] == [2000.0]  # the row's cutoff, not auto
    assert (out / "in" / "a.wav").is_file()  # mirrored relative to the manifest's folder
    written = tmp_path / "elsewhere" / "b_restored.wav"
    assert sf.info(written).format == "WAV"
    # mix 0: the input itself (same samples, as the FLAC's 16 bits read back)
    np.testing.assert_array_equal(sf.read(written, dtype="int16")[0], sf.read(archive / "sub" / "b.flac", dtype="int16")[0])
    lines = tmp_path / "catalog.jsonl"
    lines.write_text('{"input": "in/a.wav", "cutoff": "3000"}\n\n{"input": "in/sub/deeper/c.wav", "overlap": 0.25}\n')
    assert restore_batch(lines, "-o", tmp_path / "out2", "-q").returncode == 0
    assert sidecars(tmp_path / "out2")["in/sub/deeper/c.wav.restore.json"]["settings"]["overlap"] == 0.25


@pytest.mark.parametrize("manifest_text, message", [
    ("path,cutoff\na.wav,3k\n", "expected a CSV header with an 'input' column"),
    ("input,cutoff\nin/a.wav,loud\n", "catalog.csv:2"),
    ("input,speed\nin/a.wav,2\n", "unknown column"),
    ("input,mix\nin/a.wav,1.5\n", "mix: expected 0..1"),
    ("input,output\nin/a.wav,x.wav\nin/sub/b.flac,x.wav\n", "the output of both"),
])
def test_a_bad_manifest_is_refused_in_one_line(archive, tmp_path, manifest_text, message):
    manifest = tmp_path / "catalog.csv"
    manifest.write_text(manifest_text)
    done = restore_batch(manifest, "-o", tmp_path / "out")
    assert done.returncode != 0
    assert message in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.wav"))


def test_outputs_not_written_by_restore_batch_need_y_or_n(archive, tmp_path):
    (archive / "sub" / "broken.wav").unlink()
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    (out / "sub" / "b.flac").write_bytes(b"somebody's file")
    refused = restore_batch(archive, "-o", out)
    assert refused.returncode == 1 and "pass -y to replace them or -n" in refused.stderr
    assert (out / "sub" / "b.flac").read_bytes() == b"somebody's file" and not (out / "a.wav").exists()
    kept = restore_batch(archive, "-o", out, "-n", "--summary", tmp_path / "s.json")
    assert kept.returncode == 0, kept.stderr
    assert (out / "sub" / "b.flac").read_bytes() == b"somebody's file" and (out / "a.wav").is_file()
    status = {Path(r["input"]).name: r["status"] for r in json.loads((tmp_path / "s.json").read_text())["reels"]}
    assert status == {"a.wav": "done", "b.flac": "skipped", "c.wav": "done"}
    assert restore_batch(archive, "-o", out, "-y", "-q").returncode == 0
    assert sf.info(out / "sub" / "b.flac").frames == 4 * SR


def test_one_driver_per_output_folder(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    lock = batch.OutputLock(out)
    lock.acquire()  # this process holds it: a second driver is refused
    with pytest.raises(batch.CatalogError, match="another restore-batch"):
        batch.OutputLock(out).acquire()
    lock.release()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (out / batch.LOCK_NAME).write_text(json.dumps({"host": os.uname().nodename, "pid": int(dead.stdout)}))
    (out / ".rr-0badf00d.partial.wav").write_bytes(b"half a reel")
    with batch.OutputLock(out):  # a dead driver's lock is taken over
        assert batch.remove_partials(out) == 1
    assert not (out / batch.LOCK_NAME).exists()


@pytest.mark.parametrize("args, message", [
    (["missing_folder", "-o", "OUT"], "no such file or folder"),
    (["IN", "-o", "IN"], "-o is the input folder"),
    (["IN", "-o", "IN/a.wav"], "-o is a file"),
    (["EMPTY", "-o", "OUT"], "no audio files found"),
    (["IN", "-o", "OUT", "--cutoff", "loud"], "cutoff"),
    (["IN", "-o", "OUT", "--model", "nothing.onnx"], "no such file"),
    (["IN", "-o", "OUT", "--ray", "auto"], "--ray auto: no Ray cluster there"),
])
def test_bad_invocations_fail_in_one_line(archive, tmp_path, args, message):
    (tmp_path / "EMPTY").mkdir()
    (tmp_path / "EMPTY" / "readme.txt").write_text("nothing here")
    names = {"IN": str(archive), "OUT": str(tmp_path / "out"), "EMPTY": str(tmp_path / "EMPTY")}
    done = restore_batch(*[names.get(a, a).replace("IN/", str(archive) + "/") for a in args])
    assert done.returncode != 0 and message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
