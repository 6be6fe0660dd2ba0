"""The training pack: a training folder carried small (Ogg Opus within a budget) and unpacked
into a folder the trainer reads like the original."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from scipy import signal

from reelrestore.training import trainpack
from reelrestore.training.dataset import PairedSegments, list_audio_files, split_by_file
from reelrestore.training.realtrain import FORMAT as FOLDER_FORMAT

SR = 48000


@pytest.fixture
def folder(tmp_path):
    """A training folder in realtrain's layout: three recordings of 6, 3 and 1.5 s (a tone
    over pink noise: every octave holds sound)."""
    root = tmp_path / "train"
    rng = np.random.default_rng(5)
    rows = []
    for i, (kind, seconds) in enumerate((("music", 6.0), ("speech", 3.0), ("effects", 1.5))):
        t = np.arange(int(seconds * SR)) / SR
        spectrum = np.fft.rfft(rng.standard_normal(t.size)) / np.sqrt(np.maximum(np.fft.rfftfreq(t.size, 1 / SR), 20))
        x = 0.5 * np.fft.irfft(spectrum, t.size) / np.std(np.fft.irfft(spectrum, t.size)) * 0.1  # pink noise
        x += 0.2 * np.sin(2 * np.pi * (220 * (i + 1)) * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
        rel = f"{kind}/pkg__rec{i}__{i:08d}.wav"
        (root / kind).mkdir(parents=True, exist_ok=True)
        sf.write(str(root / rel), x.astype(np.float32), SR, subtype="PCM_16")
        rows.append({"package": "pkg", "path": f"/src/rec{i}.ogg", "kind": kind, "license": "CC0",
                     "origin": "test", "sha256": f"{i:064d}", "file": rel, "seconds_used": seconds,
                     "wav_sha256": "x"})
    (root / "manifest.json").write_text(json.dumps({"format": FOLDER_FORMAT, "realset": "r", "extra": None,
                                                    "max_seconds": 180.0, "skip_seconds": 2.0, "sample_rate": SR,
                                                    "n_files": 3, "total_seconds": 10.5, "files": rows}))
    return root


def test_an_even_share_gives_every_recording_the_same_seconds_and_the_short_ones_all_of_theirs():
    lengths = np.array([1.5, 3.0, 6.0, 20.0])
    share = trainpack.even_share(lengths, 10.0)
    assert np.minimum(lengths, share).sum() == pytest.approx(10.0) and 1.5 < share < 3.0
    assert trainpack.even_share(lengths, 100.0) == 20.0  # all of it fits: all of it


def test_a_pack_fits_its_budget_and_unpacks_into_the_folder_the_trainer_reads_alike(folder, tmp_path):
    budget = 0.05  # MiB: about 7 s of Opus at 61 kbit/s, of the folder's 10.5 s
    packed = trainpack.pack(folder, tmp_path / "pack", budget_mib=budget)
    size = sum(f.stat().st_size for f in (tmp_path / "pack").rglob("*.ogg"))
    assert size == packed["total_bytes"] <= budget * trainpack.MIB
    frames = {r["file"]: r["frames_packed"] for r in packed["files"]}
    share = max(frames.values())
    assert frames["effects/pkg__rec2__00000002.wav"] == 1.5 * SR  # shorter than the share: whole
    assert frames["music/pkg__rec0__00000000.wav"] == frames["speech/pkg__rec1__00000001.wav"] == share < 3.0 * SR
    assert not (tmp_path / "pack.part").exists() and not list((tmp_path / "pack").rglob("*.wav"))

    out = trainpack.unpack(tmp_path / "pack", tmp_path / "back")
    assert out["format"] == FOLDER_FORMAT and out["unpacked_from"]["codec"] == "Ogg Opus"
    for row in out["files"]:
        info = sf.info(str(tmp_path / "back" / row["file"]))
        assert (info.samplerate, info.channels, info.subtype) == (SR, 1, "PCM_16")
        assert info.frames == frames[row["file"]]
        original = sf.read(str(folder / row["file"]), frames=info.frames)[0]
        decoded = sf.read(str(tmp_path / "back" / row["file"]))[0]
        lags = np.arange(-200, 201)
        xcorr = [np.dot(decoded[200:-200], np.roll(original, lag)[200:-200]) for lag in lags]
        assert abs(lags[int(np.argmax(xcorr))]) <= 8, row["file"]  # in time (libsndfile's Opus: 4 samples early)
        _, p0 = signal.welch(original, SR, nperseg=4096)
        f, p1 = signal.welch(decoded, SR, nperseg=4096)
        for lo in (250, 500, 1000, 2000, 4000, 8000):  # the same spectrum, octave by octave
            band = (f >= lo) & (f < 2 * lo)
            assert abs(10 * np.log10(p1[band].sum() / p0[band].sum())) < 1.0, (row["file"], lo)
        assert row["license"] == "CC0" and row["sha256"] and row["wav_sha256"]
    # the same names: the trainer splits the unpacked folder as it splits the original
    def parts(root):
        return [[p.relative_to(root).as_posix() for p in part]
                for part in split_by_file(list_audio_files(root), 0.34, seed=1, root=root)]

    assert parts(tmp_path / "back") == parts(folder) and all(parts(folder))
    assert len(PairedSegments(tmp_path / "back", "all")) > 0


def test_a_budget_too_small_a_changed_pack_or_a_used_folder_is_refused_and_writes_nothing(folder, tmp_path):
    with pytest.raises(trainpack.PackError, match="--budget-mib"):
        trainpack.pack(folder, tmp_path / "tiny", budget_mib=0.01)
    assert not (tmp_path / "tiny").exists() and not (tmp_path / "tiny.part").exists()

    trainpack.pack(folder, tmp_path / "pack", budget_mib=0.2)
    victim = next((tmp_path / "pack").rglob("*.ogg"))
    victim.write_bytes(victim.read_bytes()[:-100])
    with pytest.raises(trainpack.PackError, match="changed since it was packed"):
        trainpack.unpack(tmp_path / "pack", tmp_path / "back")
    assert not (tmp_path / "back").exists()

    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "keep.txt").write_text("mine")
    with pytest.raises(trainpack.PackError, match="-y"):
        trainpack.pack(folder, tmp_path / "used")
    with pytest.raises(trainpack.PackError, match="read from"):
        trainpack.pack(folder, folder, overwrite=True)
    lost = folder / "effects" / "pkg__rec2__00000002.wav"
    lost.rename(tmp_path / "elsewhere.wav")
    with pytest.raises(trainpack.PackError, match="missing"):
        trainpack.pack(folder, tmp_path / "never")
    assert not (tmp_path / "never").exists()
    assert (tmp_path / "used" / "keep.txt").read_text() == "mine" and (folder / "manifest.json").is_file()


def test_the_command_line_names_the_problem_in_one_line(folder, tmp_path, capsys):
    with pytest.raises(SystemExit) as err:
        trainpack.main(["pack", str(folder), str(tmp_path / "p"), "--budget-mib", "0.01"])
    assert err.value.code != 0 and "trainpack: error:" in str(err.value.code) and "\n" not in str(err.value.code)
    capsys.readouterr()
    with pytest.raises(SystemExit) as err:
        trainpack.main(["unpack", str(tmp_path / "nowhere"), str(tmp_path / "b")])
    assert "expected a training pack" in str(err.value.code)
    assert capsys.readouterr().err == ""  # no empty line before it: no progress line was shown
    trainpack.main(["pack", str(folder), str(tmp_path / "p")])
    assert "3 recordings" in capsys.readouterr().out


def test_a_stop_while_unpacking_says_so_in_one_line_and_leaves_no_folder(folder, tmp_path, capsys, monkeypatch):
    import signal

    from reelrestore.engine.safety import Terminated

    trainpack.main(["pack", str(folder), str(tmp_path / "p")])
    capsys.readouterr()
    written = []
    real_write = sf.write

    def stopped_on_the_second_file(path, *args, **kwargs):
        if written:
            raise Terminated(signal.SIGTERM)  # as the handler raises it when SIGTERM arrives
        written.append(path)
        real_write(path, *args, **kwargs)

    monkeypatch.setattr(trainpack.sf, "write", stopped_on_the_second_file)
    with pytest.raises(SystemExit) as err:
        trainpack.main(["unpack", str(tmp_path / "p"), str(tmp_path / "out")])
    assert err.value.code == 128 + signal.SIGTERM and written
    said = capsys.readouterr().err.strip().splitlines()[-1]
    assert said == "trainpack: stopped by SIGTERM; nothing was left half-written"
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.part").exists()
