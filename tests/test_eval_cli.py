"""restore-eval: scores, JSON, figure, and clear refusals."""

import json
import math

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner
from scipy import signal

from reelrestore.training.eval_cli import main

SR = 48000


@pytest.fixture
def files(tmp_path):
    """reference = speech-like noise + floor; restored = 0.9 x reference (SNR 20 dB);
    damaged = reference low-passed at 2 kHz."""
    rng = np.random.default_rng(0)
    t = np.arange(2 * SR) / SR
    ref = rng.standard_normal(t.size) * (0.05 + np.maximum(np.sin(2 * np.pi * 4 * t), 0) ** 2) * 0.1
    damaged = signal.sosfiltfilt(signal.butter(8, 2000, fs=SR, output="sos"), ref)
    paths = {name: tmp_path / f"{name}.wav" for name in ("ref", "restored", "damaged")}
    for name, x in (("ref", ref), ("restored", 0.9 * ref), ("damaged", damaged)):
        sf.write(paths[name], x, SR, subtype="DOUBLE")
    return paths


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_scores_json_and_figure(files, tmp_path):
    out = run("--reference", files["ref"], "--restored", files["restored"], "--damaged", files["damaged"],
              "--cutoff", 2000, "--json", tmp_path / "s.json", "--figure", tmp_path / "spec.png")
    assert out.exit_code == 0, out.output
    for label in ("MSE", "RMSE", "SNR (dB)", "LSD whole", "LSD above 2000 Hz", "LSD below 2000 Hz", "STOI"):
        assert label in out.output
    report = json.loads((tmp_path / "s.json").read_text())
    restored, damaged = report["metrics"]["restored"], report["metrics"]["damaged"]
    assert restored["snr_db"] == pytest.approx(20.0, abs=1e-6)
    assert restored["rmse"] == pytest.approx(math.sqrt(restored["mse"]))
    for band in ("lsd", "lsd_above", "lsd_below"):
        assert restored[band] == pytest.approx(2 * abs(math.log10(0.9)), rel=1e-3)
    assert damaged["lsd_above"] > 1.0 > damaged["lsd_below"]  # the damage sits above the cutoff
    assert report["compared_samples"] == 2 * SR and report["length_mismatch"] is None
    png = (tmp_path / "spec.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_without_cutoff_reports_whole_band_only(files, tmp_path):
    out = run("--reference", files["ref"], "--restored", files["ref"], "--json", tmp_path / "s.json")
    assert out.exit_code == 0, out.output
    metrics = json.loads((tmp_path / "s.json").read_text())["metrics"]["restored"]
    assert metrics["lsd"] == 0.0 and metrics["lsd_above"] is None and metrics["snr_db"] == "inf"
    assert "need --cutoff" in out.output


def test_length_mismatch_compares_common_length_and_says_so(files, tmp_path):
    x, _ = sf.read(files["restored"])
    sf.write(tmp_path / "short.wav", x[:-4800], SR, subtype="DOUBLE")
    out = run("--reference", files["ref"], "--restored", tmp_path / "short.wav", "--json", tmp_path / "s.json")
    assert out.exit_code == 0, out.output
    assert "lengths differ" in out.output and str(2 * SR - 4800) in out.output
    report = json.loads((tmp_path / "s.json").read_text())
    assert report["compared_samples"] == 2 * SR - 4800
    assert report["metrics"]["restored"]["snr_db"] == pytest.approx(20.0, abs=1e-6)


def test_mismatched_rate_is_refused(files, tmp_path):
    x, _ = sf.read(files["restored"])
    sf.write(tmp_path / "r44.wav", x, 44100)
    out = run("--reference", files["ref"], "--restored", tmp_path / "r44.wav")
    assert out.exit_code != 0
    assert "expected restored at the reference rate 48000 Hz, got 44100 Hz" in out.output


def test_missing_and_unreadable_files_are_refused(files, tmp_path):
    out = run("--reference", files["ref"], "--restored", tmp_path / "nope.wav")
    assert out.exit_code != 0 and "nope.wav" in out.output and "found none" in out.output
    (tmp_path / "junk.wav").write_text("junk")
    out = run("--reference", tmp_path / "junk.wav", "--restored", files["ref"])
    assert out.exit_code != 0 and "expected a readable reference" in out.output
    out = run("--reference", files["ref"], "--restored", files["ref"], "--figure", tmp_path / "no" / "f.png")
    assert out.exit_code != 0 and "does not exist" in out.output
