"""PairedSegments and the built-in corpus: item contract, split by file, determinism,
resampling alignment."""

import json
import math
import pickle
import shutil

import numpy as np
import pytest
import soundfile as sf
from scipy import signal

from reelrestore.training.corpus import CorpusConfig, build_corpus, midi_file_bytes
from reelrestore.training.dataset import SEGMENT as SEG
from reelrestore.training.dataset import SR, PairedSegments, read_segment, split_by_file
from reelrestore.training.degrade import DegradeConfig, DegradeRanges


@pytest.fixture
def folder(tmp_path):
    """Ten clean files at assorted rates, formats and channel counts, 1-2.2 s each."""
    rng = np.random.default_rng(0)
    kinds = [(48000, 1, "wav"), (44100, 2, "flac"), (22050, 1, "ogg"), (32000, 2, "wav"), (48000, 2, "flac")]
    for i in range(10):
        sr, ch, ext = kinds[i % len(kinds)]
        n = int(sr * (1.0 + 0.3 * (i % 5)))
        sub = tmp_path / ("a" if i < 5 else "b")
        sub.mkdir(exist_ok=True)
        sf.write(sub / f"clip{i}.{ext}", rng.uniform(-0.5, 0.5, (n, ch)), sr)
    (tmp_path / "notes.txt").write_text("not audio, ignored")
    return tmp_path


def test_items_follow_the_training_contract(folder):
    ds = PairedSegments(folder, "train", seed=0)
    assert len(ds) > 0
    for i in (0, len(ds) - 1):
        item = ds[i]
        assert set(item) == {"damaged", "target", "cutoff_hz"}
        for key in ("damaged", "target"):
            assert item[key].dtype == np.float32 and item[key].shape == (SEG,)
        assert isinstance(item["cutoff_hz"], float) and 150.0 <= item["cutoff_hz"] <= 8000.0
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_split_is_by_source_file_never_by_segment(folder):
    train = PairedSegments(folder, "train", seed=3, val_fraction=0.3)
    val = PairedSegments(folder, "val", seed=3, val_fraction=0.3)
    assert not set(train.files) & set(val.files)
    assert len(val.files) == 3 and len(train.files) == 7
    assert {train.source_of(i)[0] for i in range(len(train))} <= set(train.files)
    assert {val.source_of(i)[0] for i in range(len(val))} <= set(val.files)
    other = PairedSegments(folder, "val", seed=4, val_fraction=0.3)
    assert set(other.files) != set(val.files)  # the seed moves the split...
    moved = folder.parent / "moved"
    shutil.copytree(folder, moved)
    assert [f.relative_to(moved) for f in PairedSegments(moved, "val", seed=3, val_fraction=0.3).files] \
        == [f.relative_to(folder) for f in val.files]  # ...the folder's location does not


def test_split_by_file_stratifies_and_refuses_impossible_splits(tmp_path):
    files = [tmp_path / f"{k}-{i}.flac" for k in ("music", "speech") for i in range(5)]
    train, val = split_by_file(files, 0.2, seed=0, strata=[f.name.split("-")[0] for f in files])
    assert sorted(f.name.split("-")[0] for f in val) == ["music", "speech"]
    assert set(train) | set(val) == set(files) and not set(train) & set(val)
    with pytest.raises(ValueError, match="expected more source files"):
        split_by_file(files[:1], 0.2, seed=0)


def test_items_are_deterministic_given_seed_and_epoch(folder):
    a, b = PairedSegments(folder, "train", seed=1), PairedSegments(folder, "train", seed=1)
    c = PairedSegments(folder, "train", seed=2)
    same = [np.array_equal(a[i]["damaged"], b[i]["damaged"]) for i in range(3)]
    assert all(same)
    assert a.files != c.files or not np.array_equal(a[0]["damaged"], c[0]["damaged"])
    first = a[0]
    a.set_epoch(1)
    assert not np.array_equal(first["damaged"], a[0]["damaged"])  # fresh damage every epoch
    val = PairedSegments(folder, "val", seed=1)
    before = val[0]["damaged"]
    assert np.array_equal(pickle.loads(pickle.dumps(val))[0]["damaged"], before)  # DataLoader workers
    val.set_epoch(5)
    assert np.array_equal(before, val[0]["damaged"])  # validation is fixed


def test_fixed_config_gives_target_equal_to_clean_segment(folder):
    cfg = DegradeConfig(cutoff_hz=1000.0, hiss_db=None)
    ds = PairedSegments(folder, "all", seed=0, degrade=cfg)
    for i in (0, len(ds) // 2):
        path, channel, start = ds.source_of(i)
        item = ds[i]
        np.testing.assert_array_equal(item["target"], read_segment(path, start, SEG, channel))
        assert item["cutoff_hz"] == 1000.0
    only_250 = DegradeRanges(p_thesis_cutoff=1.0, thesis_cutoffs_hz=(250.0,))
    ranged = PairedSegments(folder, "all", seed=0, degrade=only_250)
    assert ranged[0]["cutoff_hz"] == 250.0


def test_callable_degrade_and_bad_specs(folder):
    def halve(clean, rng):
        return clean * 0.5, clean, {"cutoff_hz": 123.0}

    item = PairedSegments(folder, "all", degrade=halve)[0]
    np.testing.assert_array_equal(item["damaged"], item["target"] * 0.5)
    assert item["cutoff_hz"] == 123.0
    with pytest.raises(KeyError, match="cutoff_hz"):
        PairedSegments(folder, "all", degrade=lambda c, r: (c, c, {}))[0]
    with pytest.raises(TypeError, match="expected degrade"):
        PairedSegments(folder, "all", degrade=42)
    with pytest.raises(ValueError, match="expected split"):
        PairedSegments(folder, "test")


@pytest.mark.parametrize("sr", [44100, 22050, 32000])
def test_resampled_segment_matches_whole_file_resampling(tmp_path, sr):
    x = np.random.default_rng(sr).uniform(-0.5, 0.5, int(sr * 1.7))
    sf.write(tmp_path / "x.wav", x, sr, subtype="FLOAT")
    g = math.gcd(sr, SR)
    whole = signal.resample_poly(x.astype(np.float32).astype(np.float64), SR // g, sr // g)
    for start in (0, SEG, 30001, whole.size - SEG):
        np.testing.assert_allclose(read_segment(tmp_path / "x.wav", start, SEG), whole[start:start + SEG], atol=1e-6)
    tail = read_segment(tmp_path / "x.wav", whole.size - 100, 200)
    assert not tail[100:].any()  # zeros past the end


def test_channels_each_makes_one_stream_per_channel(folder):
    mono = PairedSegments(folder, "all", channels="mono")
    each = PairedSegments(folder, "all", channels="each")
    assert len(each) > len(mono)
    stereo = [i for i in range(len(each)) if each.source_of(i)[1] == 1]
    assert stereo
    path, _, start = each.source_of(stereo[0])
    left = read_segment(path, start, SEG, 0)
    right = read_segment(path, start, SEG, 1)
    np.testing.assert_allclose(read_segment(path, start, SEG, None), (left + right) / 2, atol=1e-6)


def test_missing_or_empty_folder_fails_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        PairedSegments(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="found none"):
        PairedSegments(tmp_path)


def test_midi_file_bytes_is_a_valid_format0_file():
    data = midi_file_bytes([(0.0, 1.0, 0, 60, 100), (0.5, 300.0, 1, 64, 80)], {0: 40, 1: 0}, bpm=120.0)
    assert data[:4] == b"MThd" and int.from_bytes(data[8:10], "big") == 0
    assert int.from_bytes(data[12:14], "big") == 480
    assert data[14:18] == b"MTrk" and int.from_bytes(data[18:22], "big") == len(data) - 22
    assert data.endswith(b"\xff\x2f\x00")
    assert b"\xc0\x28" in data and b"\x90\x3c\x64" in data and b"\x80\x3c\x00" in data
    # last note-off: 480 ticks (A off) -> 144240 (B off) = 143760 = 8*128^2 + 99*128 + 16
    assert b"\x88\xe3\x10\x81\x40\x00" in data


TINY = CorpusConfig(seed=5, n_music=1, music_seconds=2.0, n_speech=2, sentences=1, n_effects=2, effect_seconds=1.0,
                    programs=(40, 73), voices=("en-us", "de+m2"))


@pytest.mark.skipif(not (shutil.which("fluidsynth") and shutil.which("espeak-ng")),
                    reason="needs the fluidsynth and espeak-ng executables")
def test_tiny_corpus_is_cached_deterministic_and_feeds_the_dataset(tmp_path):
    files = build_corpus(tmp_path / "a", TINY)
    assert [f.name.split("-")[0] for f in files] == ["effects", "effects", "music", "speech", "speech"]
    for f in files:
        info = sf.info(str(f))
        assert info.samplerate == SR and info.frames > SR // 2
    manifest = json.loads((files[0].parent / "manifest.json").read_text())
    music = [m for m in manifest["items"] if m["kind"] == "music"][0]
    assert set(music["programs"]) <= {40, 73}
    assert {m["voice"] for m in manifest["items"] if m["kind"] == "speech"} <= {"en-us", "de+m2"}
    usual = tmp_path / "usual"
    usual.mkdir()
    assert files[0].parent.stat().st_mode == usual.stat().st_mode  # not a temporary folder's 0700
    stamp = files[0].stat().st_mtime_ns
    assert build_corpus(tmp_path / "a", TINY) == files and files[0].stat().st_mtime_ns == stamp  # cached
    again = build_corpus(tmp_path / "b", TINY)
    for f, g in zip(files, again):
        assert np.array_equal(sf.read(f)[0], sf.read(g)[0])
    train = PairedSegments(None, "train", seed=0, cache_dir=tmp_path / "a", corpus=TINY, val_fraction=0.4)
    val = PairedSegments(None, "val", seed=0, cache_dir=tmp_path / "a", corpus=TINY, val_fraction=0.4)
    assert len(train) > 0 and len(val) > 0 and not set(train.files) & set(val.files)
    assert train[0]["damaged"].shape == (SEG,)
    as_dict = {**TINY.__dict__, "programs": list(TINY.programs)}  # what a TOML config gives
    from_dict = PairedSegments(None, "val", seed=0, cache_dir=tmp_path / "a", corpus=as_dict, val_fraction=0.4)
    assert from_dict.files == val.files


def test_torch_dataloader_wraps_it_as_is(folder):
    torch = pytest.importorskip("torch")
    batch = next(iter(torch.utils.data.DataLoader(PairedSegments(folder, "train", seed=0), batch_size=4)))
    assert batch["damaged"].shape == batch["target"].shape == (4, SEG)
    assert batch["damaged"].dtype == torch.float32 and batch["cutoff_hz"].shape == (4,)


def test_cutoff_point_and_degrade_ranges_from_a_config_dict(folder):
    ranges = {"p_thesis_cutoff": 1.0, "thesis_cutoffs_hz": [3000.0], "shapes": ["butterworth"], "orders": [2]}
    design = PairedSegments(folder, "all", seed=0, degrade=ranges)
    minus3 = PairedSegments(folder, "all", seed=0, degrade=ranges, cutoff_point="minus3db")
    assert design[0]["cutoff_hz"] == 3000.0
    # zero-phase analog Butterworth-2: |H|^2 = 1 / (1 + (f/fc)^4) is -3 dB at fc (10^0.15 - 1)^(1/4);
    # the digital filter's bilinear warp moves that by under 1 %
    assert minus3[0]["cutoff_hz"] == pytest.approx(3000.0 * (10 ** 0.15 - 1) ** 0.25, rel=1e-2)
    assert np.array_equal(design[0]["damaged"], minus3[0]["damaged"])
    with pytest.raises(ValueError, match="cutoff_point"):
        PairedSegments(folder, "all", cutoff_point="-6dB")


def test_training_sets_cut_items_one_frame_of_the_models_contract_long(folder):
    pytest.importorskip("torch")
    from reelrestore.training.dataset import training_sets
    from reelrestore.training.trainers import config_from_dict

    for trainer in ("realtime", "thesis"):
        cfg = config_from_dict({"trainer": trainer, "data": {"source": str(folder)}},
                               ["model.contract.frame_seconds=0.25"])
        train, val = training_sets(cfg)
        assert train[0]["damaged"].shape == val[0]["target"].shape == (cfg.model.contract.frame_length,) == (12000,)
