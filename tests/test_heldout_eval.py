"""Held-out set, DSP baseline and evaluation: the set rebuilds byte for byte, the baseline
keeps the surviving band and fills the lost one at the right level, the evaluation
scores through the engine and says so in a fixed structure."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from reelrestore.training import heldout as H
from reelrestore.training.baseline import BaselineModel, restore
from reelrestore.training.corpus import DEFAULT_SOUNDFONT, EVAL_PROGRAMS, EVAL_VOICES, TRAIN_PROGRAMS, TRAIN_VOICES
from reelrestore.training.degrade import SR, lowpass_brickwall
from reelrestore.training.evaluate import METRICS, evaluate
from reelrestore.training.evaluate import main as evaluate_main
from reelrestore.training.metrics import N_FFT, lsd_bands, stft_power


def tiny_config() -> H.HeldoutConfig:
    """One music, one speech and (where the system has any) one real item, 1 s, 2 kHz."""
    has_real = bool(H.find_real_recordings()[0])
    return H.HeldoutConfig(n_music=1, n_speech=1, n_real=int(has_real), seconds=1.0, real_seconds=1.0,
                           cutoffs_hz=(2000.0,))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    if shutil.which("fluidsynth") is None or shutil.which("espeak-ng") is None or not DEFAULT_SOUNDFONT.is_file():
        pytest.skip("the held-out set needs fluidsynth, espeak-ng and the GM soundfont")
    folder = tmp_path_factory.mktemp("heldout")
    H.build_heldout(folder, tiny_config())
    return folder


@pytest.fixture(scope="module")
def report(tiny) -> dict:
    return evaluate(tiny, ["damaged", "baseline"])


def read(folder: Path, rel: str) -> np.ndarray:
    return sf.read(str(folder / rel), dtype="float64")[0]


def test_tiny_heldout_rebuilds_byte_for_byte_and_its_manifest_describes_every_item(tiny, tmp_path):
    again = tmp_path / "again"
    H.build_heldout(again, tiny_config())
    files = sorted(p.relative_to(tiny) for p in tiny.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for rel in files:
        assert (tiny / rel).read_bytes() == (again / rel).read_bytes(), rel

    m = H.load_manifest(tiny)
    kinds = [i["kind"] for i in m["items"]]
    assert m["n_items"] == len(m["items"]) == len(kinds) and kinds[:2] == ["music", "speech"]
    assert 2 <= m["n_items"] <= 3 and set(kinds) <= set(H.KINDS)
    assert len({i["seed"] for i in m["items"]}) == m["n_items"]
    for item in m["items"]:
        assert {"id", "source", "kind", "cutoff_hz", "shape", "hiss_db", "seed", "duration_s"} <= set(item)
        assert item["cutoff_hz"] == 2000.0 and item["shape"] in ("brickwall", "butterworth")
        assert item["duration_s"] == pytest.approx(1.0, abs=1e-3)
        target, damaged = read(tiny, item["target"]), read(tiny, item["damaged"])
        assert target.shape == damaged.shape == (item["samples"],)
        source = read(tiny, next(s["file"] for s in m["sources"] if s["id"] == item["source"]))
        hiss_rms = np.sqrt(np.mean((target - source) ** 2))  # the hiss is kept in the target
        assert 20 * np.log10(hiss_rms) == pytest.approx(item["hiss_db"], abs=0.5)
    music, speech = m["sources"][0], m["sources"][1]
    assert set(music["programs"]) <= set(EVAL_PROGRAMS) and not set(music["programs"]) & set(TRAIN_PROGRAMS)
    assert speech["voice"] in EVAL_VOICES and speech["voice"] not in TRAIN_VOICES
    if "real" in kinds:
        assert m["real_recordings"] and all(Path(f).is_file() for f in m["real_recordings"])


def test_baseline_leaves_the_band_below_the_cutoff_as_the_damaged_input_had_it(tiny):
    for item in H.load_manifest(tiny)["items"]:
        damaged = read(tiny, item["damaged"]).astype(np.float32)
        restored = restore(damaged, item["cutoff_hz"])
        assert restored.shape == damaged.shape
        assert lsd_bands(damaged, restored, cutoff_hz=item["cutoff_hz"])["below"] < 0.01, item["id"]


def band_db(power: np.ndarray, lo: float, hi: float) -> float:
    f = np.arange(power.shape[0]) * SR / N_FFT  # stft_power's bins
    return 10 * np.log10(power[(f > lo) & (f <= hi)].mean())


def test_baseline_fills_the_band_above_at_the_level_of_the_band_just_below():
    cutoff = 3000.0
    white = np.random.default_rng(1).standard_normal(2 * SR) * 0.05
    damaged = lowpass_brickwall(white, cutoff).astype(np.float32)
    restored = restore(damaged, cutoff)
    p_damaged = stft_power(damaged)[:, 4:-4].mean(axis=1)  # (bins,), edge frames left out
    p_restored = stft_power(restored)[:, 4:-4].mean(axis=1)
    below = band_db(p_restored, cutoff * 2 ** -0.25, cutoff)
    assert below == pytest.approx(band_db(p_damaged, cutoff * 2 ** -0.25, cutoff), abs=0.1)
    # past the engine's 10-bin fade-in, white stays white up to 20 kHz (the engine's cross-fade of
    # frames holding different noise costs ~1-2 dB, hence the tolerance)
    for lo, hi in ((cutoff + 300, cutoff * 2 ** 0.5), (8000, 12000), (16000, 20000)):
        assert band_db(p_restored, lo, hi) == pytest.approx(below, abs=4.0), (lo, hi)
    assert band_db(p_damaged, cutoff + 300, 20000) < below - 60  # nothing there before


def test_onnx_baseline_matches_numpy_and_restores_the_same_through_the_engine(tmp_path):
    pytest.importorskip("onnx")
    from reelrestore.engine.model import OnnxModel
    from reelrestore.training.baseline import build_onnx, check_onnx_parity

    path = tmp_path / "baseline.onnx"
    build_onnx(path)
    assert check_onnx_parity(path) < 1e-4
    model = OnnxModel(path, threads=1)
    assert model.spec.architecture == BaselineModel().spec.architecture and model.has_cutoff
    x = (np.random.default_rng(2).standard_normal(SR) * 0.05).astype(np.float32)
    x = lowpass_brickwall(x, 1500.0).astype(np.float32)
    np.testing.assert_allclose(restore(x, 1500.0, model), restore(x, 1500.0), atol=1e-4)


def test_evaluate_cli_writes_json_and_markdown_for_damaged_and_baseline(tiny, tmp_path):
    out = CliRunner().invoke(evaluate_main, ["--heldout", str(tiny), "--model", "damaged", "--model", "baseline",
                                             "--json", str(tmp_path / "s.json"), "--markdown", str(tmp_path / "s.md")])
    assert out.exit_code == 0, out.output
    report = json.loads((tmp_path / "s.json").read_text())
    n = H.load_manifest(tiny)["n_items"]
    assert report["n_items"] == n and report["audio_seconds"] == pytest.approx(n * 1.0, abs=0.01)
    assert list(report["systems"]) == ["damaged", "baseline"]
    for label, s in report["systems"].items():
        assert set(METRICS) <= set(s["overall"]) and s["overall"]["items"] == n
        assert list(s["per_cutoff"]) == ["2000"] and set(s["per_kind"]) <= set(H.KINDS)
        assert [r["id"] for r in s["items"]] == [i["id"] for i in H.load_manifest(tiny)["items"]]
        assert all(isinstance(r[m], float) for r in s["items"] for m in METRICS)
    assert report["systems"]["damaged"]["real_time_factor"] is None
    assert 0 < report["systems"]["baseline"]["real_time_factor"] < 10
    md = (tmp_path / "s.md").read_text()
    for text in ("| system | LSD | LSD above | LSD below | SNR (dB) | STOI | RTF |", "| damaged |", "| baseline |",
                 "| 2000 Hz |"):
        assert text in md


def test_unknown_system_is_refused_in_one_line(tiny):
    out = CliRunner().invoke(evaluate_main, ["--heldout", str(tiny), "--model", "magic"])
    assert out.exit_code != 0 and "expected 'damaged', 'baseline' or a .onnx file" in out.output


def test_damaged_input_is_far_off_above_the_cutoff_and_the_baseline_closes_part_of_the_gap(tiny, report):
    for item in H.load_manifest(tiny)["items"]:
        target, damaged = read(tiny, item["target"]), read(tiny, item["damaged"])
        assert lsd_bands(target, target, cutoff_hz=item["cutoff_hz"])["above"] == 0.0
        assert lsd_bands(target, damaged, cutoff_hz=item["cutoff_hz"])["above"] > 1.0, item["id"]
    damaged, baseline = (report["systems"][k]["overall"] for k in ("damaged", "baseline"))
    assert baseline["lsd_above"] < damaged["lsd_above"] - 1.0
    assert baseline["lsd_below"] == pytest.approx(damaged["lsd_below"], abs=0.01)  # kept band: same score
