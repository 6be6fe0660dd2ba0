"""The cutoff probe: reels cut from a training folder, the engine's decision on each."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from reelrestore.training import cutprobe

ALSA = Path("/usr/share/sounds/alsa")


@pytest.fixture(scope="module")
def training_folder(tmp_path_factory) -> Path:
    """A realtrain-like folder with one real recording: the alsa-utils takes joined (12 s)."""
    paths = sorted(p for p in ALSA.glob("*.wav") if "noise" not in p.stem.lower())
    if not paths:
        pytest.skip("needs alsa-utils (/usr/share/sounds/alsa/*.wav)")
    x = np.concatenate([sf.read(p, always_2d=True)[0].mean(axis=1) for p in paths])
    folder = tmp_path_factory.mktemp("real-train")
    (folder / "speech").mkdir()
    sf.write(folder / "speech" / "alsa.wav", x.astype(np.float32), 48000, subtype="PCM_16")
    manifest = {"files": [{"file": "speech/alsa.wav", "kind": "speech", "rate": 48000}]}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_every_reel_is_probed_three_ways_and_the_intact_one_is_left_alone(training_folder, tmp_path, capsys):
    out = tmp_path / "probe.json"
    cutprobe.main(["--data", str(training_folder), "--seed", "1", "--seed", "2", "--design", "3000",
                   "--json", str(out)])
    rows = json.loads(out.read_text())
    assert [(r["seed"], r["variant"]) for r in rows] == [(s, v) for s in (1, 2) for v in cutprobe.VARIANTS]
    for r in rows:
        if r["variant"] == "uncut":
            assert r["hz"] is None, r  # studio speech with a hiss: no cut
        elif r["variant"] == "hiss_cut":  # a 3 kHz cut with the hiss gone is found, the hiss read as lost
            assert r["design_hz"] == 3000.0 and r["cutoff_hz"] < 3000.0
            assert r["ratio"] is not None and 0.95 <= r["ratio"] <= 1.5 and r["hiss_kept"] is False, r
        else:  # over a kept hiss a cut may go unfound (passed through), never read as lost
            assert r["hiss_kept"] in (None, True), r
    table = capsys.readouterr().out
    assert "hiss_cut" in table and "uncut" in table and "in window" in table


def test_a_missing_training_folder_is_one_line_naming_the_command_that_builds_it(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        cutprobe.main(["--data", str(tmp_path / "nowhere")])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("cutprobe: error:") and "reelrestore.training.realtrain" in err[0]
