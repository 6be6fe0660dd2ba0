"""Real-recordings set and its evaluator: the split never lets a recording into both parts,
the variants hold the hiss where they should, the stored cutoff is the -3 dB point of the
response really applied, the build is byte-reproducible, and the evaluator scores the
untouched input as untouched."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner
from scipy import signal

from reelrestore.training import realset as R
from reelrestore.training.degrade import SR, lowpass
from reelrestore.training.evaluate import decision_hz, evaluate_realset
from reelrestore.training.evaluate import main as evaluate_main

ALSA = Path("/usr/share/sounds/alsa")
ALSA_FILES = sorted(p for p in ALSA.glob("*.wav") if "noise" not in p.stem.lower()) if ALSA.is_dir() else []


def tiny_config(extra: Path) -> R.RealsetConfig:
    """Four alsa recordings as an extra folder: two 1 s excerpts, two left for training,
    two cutoffs."""
    return R.RealsetConfig(seconds=1.0, cutoffs_hz=(1000.0, 3000.0), packages=(), extra=str(extra),
                           eval_per_group=2)


@pytest.fixture(scope="module")
def extra(tmp_path_factory) -> Path:
    if len(ALSA_FILES) < 4:
        pytest.skip("needs the alsa-utils recordings in /usr/share/sounds/alsa")
    folder = tmp_path_factory.mktemp("extra")
    entries = []
    for p in ALSA_FILES[:4]:
        shutil.copy(p, folder / p.name)
        entries.append({"file": p.name, "kind": "speech", "license": "GPL-2", "origin": "alsa-utils"})
    (folder / "sources.json").write_text(json.dumps(entries))
    return folder


@pytest.fixture(scope="module")
def tiny(extra, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("realset")
    R.build_realset(folder, tiny_config(extra))
    return folder


@pytest.fixture(scope="module")
def report(tiny) -> dict:
    return evaluate_realset(tiny, ["damaged", "baseline"], ("true", "auto"))


def read(folder: Path, rel: str) -> np.ndarray:
    return sf.read(str(folder / rel), dtype="float64")[0]


def band_power(x: np.ndarray, lo: float, hi: float) -> float:
    f, p = signal.welch(x, SR, nperseg=2048)
    return float(np.mean(p[(f >= lo) & (f <= hi)]))


def test_tiny_set_has_every_file_and_every_variant_per_excerpt(tiny):
    m = R.load_manifest(tiny)
    assert m["format"] == "reelrestore-realset" and m["version"] == R.REALSET_VERSION
    assert len(m["sources"]) == 2 and m["n_items"] == len(m["items"]) == 2 * (2 * 2 + 1)
    for s in m["sources"]:
        assert (tiny / s["file"]).is_file() and s["score_max_hz"] > 10000
        variants = sorted(i["variant"] for i in m["items"] if i["source"] == s["id"])
        assert variants == ["hiss_after"] * 2 + ["hiss_cut"] * 2 + ["uncut"]
    for it in m["items"]:
        for role in ("target", "damaged"):
            info = sf.info(str(tiny / it[role]))
            assert (info.samplerate, info.channels, info.subtype) == (SR, 1, "PCM_24")
        assert -75 <= it["hiss_db"] <= -45 and it["kind"] == "speech"
        if it["variant"] != "uncut":
            assert it["cutoff_hz"] < it["design_hz"] and it["cutoff_hz"] < 0.8 * it["score_max_hz"]
            assert it["steep"] == (it["shape"] == "slit" or it["order"] >= 4)


def test_eval_and_training_parts_share_no_recording(tiny, extra):
    m = R.load_manifest(tiny)
    evals = {r["sha256"] for s in m["sources"] for r in s["recordings"]}
    train = {r["sha256"] for r in m["training"]}
    assert evals and train and not evals & train
    assert {r["path"] for s in m["sources"] for r in s["recordings"]} | {r["path"] for r in m["training"]} \
        == {p.name for p in ALSA_FILES[:4]}
    assert all(r["license"] == "GPL-2" and r["kind"] == "speech" for r in m["training"])


def test_building_twice_gives_identical_bytes(tiny, extra, tmp_path):
    R.build_realset(tmp_path, tiny_config(extra))
    assert (tmp_path / "manifest.json").read_bytes() == (tiny / "manifest.json").read_bytes()
    files = sorted(p.relative_to(tiny) for p in tiny.rglob("*.wav"))
    assert files == sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.wav"))
    for rel in files:
        assert (tiny / rel).read_bytes() == (tmp_path / rel).read_bytes(), rel


def test_uncut_items_are_left_exactly_as_the_target(tiny):
    for it in R.load_manifest(tiny)["items"]:
        if it["variant"] == "uncut":
            assert it["cutoff_hz"] is None and it["design_hz"] is None
            assert (tiny / it["target"]).read_bytes() == (tiny / it["damaged"]).read_bytes()


def test_hiss_after_holds_the_hiss_above_the_cut_and_hiss_cut_does_not(tiny):
    m = R.load_manifest(tiny)
    clean = {s["id"]: read(tiny, s["file"]) for s in m["sources"]}
    for it in m["items"]:
        if it["variant"] == "uncut":
            continue
        x = clean[it["source"]]
        noise = read(tiny, it["target"]) - x  # target = clean + hiss
        assert np.std(noise) == pytest.approx(10 ** (it["hiss_db"] / 20), rel=0.05)
        # what the damaged file holds besides the low-passed signal
        rest = read(tiny, it["damaged"]) - lowpass(x, it["design_hz"], it["shape"], it["order"] or 8, SR)
        lo, hi = 3 * it["design_hz"], 0.8 * it["score_max_hz"]
        ratio = band_power(rest, lo, hi) / band_power(noise, lo, hi)
        if it["variant"] == "hiss_after":
            assert ratio == pytest.approx(1.0, abs=0.05), it["id"]  # the hiss, whole
        else:
            assert ratio < 0.01, it["id"]  # the hiss, cut with the signal


@pytest.mark.parametrize("shape,order", [("butterworth", 2), ("butterworth", 4), ("butterworth", 8), ("slit", 0)])
@pytest.mark.parametrize("design", [300.0, 3000.0])
def test_stored_cutoff_is_the_minus3db_point_of_the_applied_response(shape, order, design):
    cutoff = R.minus3db_hz(shape, order, design)
    assert cutoff < design
    t = np.arange(SR) / SR
    sine = np.sin(2 * np.pi * cutoff * t)
    out = lowpass(sine, design, shape, order or 8, SR, zero_phase=True)
    mid = slice(SR // 4, 3 * SR // 4)
    gain_db = 20 * np.log10(np.std(out[mid]) / np.std(sine[mid]))
    assert gain_db == pytest.approx(-3.0, abs=0.2)


def test_tiny_set_stores_the_measured_minus3db_cutoffs(tiny):
    for it in R.load_manifest(tiny)["items"]:
        if it["variant"] != "uncut":
            assert it["cutoff_hz"] == pytest.approx(R.minus3db_hz(it["shape"], it["order"] or 0, it["design_hz"]),
                                                    abs=0.01)


def test_debian_alsa_speech_is_found_with_its_license_and_without_the_noise_signal():
    if not ALSA_FILES:
        pytest.skip("alsa-utils is not installed")
    recs = R.find_package_recordings(("alsa-utils",))
    if not recs:
        pytest.skip("dpkg does not list alsa-utils here")
    assert {Path(r.path).name for r in recs} == {p.name for p in ALSA_FILES}
    assert all(r.kind == "speech" and r.license == "GPL-2" and r.package == "alsa-utils" for r in recs)


def test_no_installed_sources_is_a_one_line_error_naming_the_packages(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(R, "package_files", lambda package: [])
    with pytest.raises(SystemExit) as err:
        R.main(["--out", str(tmp_path / "set")])
    message = str(err.value.code)
    assert message.startswith("error: expected real recordings") and "\n" not in message
    assert "apt-get install" in message and "alsa-utils" in message and "wesnoth-1.16-music" in message
    assert not (tmp_path / "set" / "manifest.json").exists()


def test_decision_adapter_reads_the_engines_decisions():
    assert decision_hz(SimpleNamespace(hz=None, reason="flat top")) == (None, "flat top")
    assert decision_hz(SimpleNamespace(hz=2000.0, reason="ceiling")) == (2000.0, "ceiling")
    assert decision_hz(None) == (None, "no cut found")


def test_the_damaged_input_scores_as_untouched(report):
    runs = report["systems"]["damaged"]["modes"]
    assert set(runs) == {"true", "auto"}
    for mode in runs.values():
        for row in mode["items"]:
            if row["variant"] == "uncut":
                assert row["lsd"] == 0.0 and row["lsd_above"] is None
            else:
                # ~0: only the filter's own slope between its knee and the -3 dB point
                assert row["lsd_below"] < 0.15, row["id"]
                assert row["lsd_above"] > 5 * row["lsd_below"]
            assert row["worse_than_input"] is False
        assert mode["cutoff_accuracy"] is None


def test_the_baseline_runs_in_both_modes_and_auto_records_its_decisions(report):
    runs = report["systems"]["baseline"]["modes"]
    damaged = {row["id"]: row for row in report["systems"]["damaged"]["modes"]["true"]["items"]}
    for row in runs["true"]["items"]:  # the band below the cut passes through
        if row["variant"] != "uncut":
            assert row["lsd_below"] == pytest.approx(damaged[row["id"]]["lsd_below"], abs=0.01)
    for name, mode in runs.items():
        assert len(mode["items"]) == report["n_items"] == 10
        assert all(np.isfinite(row["lsd"]) for row in mode["items"])
        assert set(mode["per_variant"]) == set(R.VARIANTS)
        assert mode["real_time_factor"] > 0
    for row in runs["true"]["items"]:  # how the engine read the floor above the cut
        assert row["hiss_lost"] is None if row["variant"] == "uncut" else isinstance(row["hiss_lost"], bool), row["id"]
    auto = runs["auto"]
    assert all("est_hz" in row and "reason" in row for row in auto["items"])
    acc = auto["cutoff_accuracy"]
    assert set(acc) == set(R.VARIANTS) and 0.0 <= acc["uncut"]["left_alone"] <= 1.0
    assert acc["hiss_cut"]["steep"]["items"] + acc["hiss_cut"]["gentle"]["items"] == 4
    shapes = acc["hiss_cut"]["per_shape"]  # the same items, per low-pass shape
    assert sum(a["items"] for a in shapes.values()) == 4 and set(shapes) <= {"butterworth2", "butterworth4",
                                                                             "butterworth8", "slit"}, shapes
    steep = [a for s, a in shapes.items() if s != "butterworth2"]
    assert sum(a["items"] for a in steep) == acc["hiss_cut"]["steep"]["items"]
    from reelrestore.training.evaluate import markdown_realset

    text = markdown_realset(report)
    assert "Per low-pass shape (from its -3 dB point" in text
    assert all(f"| baseline | hiss_cut | {shape} | {a['items']} |" in text for shape, a in shapes.items()), text
    assert runs["true"]["cutoff_accuracy"] is None


def test_evaluate_cli_writes_json_and_markdown_for_the_realset(tiny, tmp_path):
    out = CliRunner().invoke(evaluate_main, [
        "--realset", str(tiny), "--model", "damaged", "--cutoff", "true", "--cutoff", "auto",
        "--variant", "uncut", "--variant", "hiss_cut", "--json", str(tmp_path / "r.json"),
        "--markdown", str(tmp_path / "r.md")])
    assert out.exit_code == 0, out.output
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["variants"] == ["hiss_cut", "uncut"] and data["n_items"] == 6
    text = (tmp_path / "r.md").read_text()
    for title in ("## Overall", "## Per design cutoff", "## Cutoff accuracy (auto)",
                  "## Per variant and low-pass shape"):
        assert title in text
    assert "STOI" not in text  # not computed, not shown
    shapes = data["systems"]["damaged"]["modes"]["true"]["per_variant_shape"]
    assert shapes and all(k.split("/")[0] == "hiss_cut" for k in shapes)

    # with --stoi, the tables carry it: the untouched input scores 1 against itself when uncut
    out = CliRunner().invoke(evaluate_main, [
        "--realset", str(tiny), "--model", "damaged", "--variant", "uncut", "--stoi",
        "--markdown", str(tmp_path / "s.md")])
    assert out.exit_code == 0, out.output
    text = (tmp_path / "s.md").read_text()
    overall = [line for line in text.splitlines() if line.startswith("| damaged | true | uncut")]
    assert "STOI" in text and overall and "| 1.0000 |" in overall[0]
    both = CliRunner().invoke(evaluate_main, ["--realset", str(tiny), "--heldout", str(tiny), "--model", "damaged"])
    assert both.exit_code != 0 and "exactly one of --heldout and --realset" in both.output


def test_a_later_hiss_goes_on_the_hiss_cut_items_input_and_reference_alike(tiny):
    """`--later-hiss LO HI`: a second white hiss after the cut on every hiss_cut item, LO-HI dB
    under its own, in the input and the reference alike, the same on every run; the other
    variants as they are."""
    from reelrestore.training.evaluate import add_later_hiss, load_real_items

    manifest = R.load_manifest(tiny)
    plain, later, again = (load_real_items(tiny, manifest) for _ in range(3))
    add_later_hiss(later, (10.0, 30.0))
    add_later_hiss(again, (10.0, 30.0))
    for p, q, r in zip(plain, later, again):
        np.testing.assert_array_equal(q["damaged"], r["damaged"])
        if p["variant"] != "hiss_cut":
            np.testing.assert_array_equal(q["damaged"], p["damaged"])
            continue
        added = q["damaged"] - p["damaged"]
        np.testing.assert_allclose(q["target"] - p["target"], added, atol=1e-6)
        level = 10 * np.log10(np.mean(added.astype(np.float64) ** 2))
        assert p["hiss_db"] - 30.5 <= level <= p["hiss_db"] - 9.5 and level == pytest.approx(q["later_hiss_db"], abs=0.5)
    out = CliRunner().invoke(evaluate_main, ["--realset", str(tiny), "--model", "damaged", "--later-hiss", "30", "10"])
    assert out.exit_code != 0 and "0 <= LO <= HI" in out.output


def test_evaluate_stopped_part_way_says_so_in_one_line_and_writes_no_report(tiny, tmp_path, monkeypatch):
    from reelrestore.training import evaluate as E

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(E, "evaluate_realset", stopped)
    out = CliRunner().invoke(evaluate_main, ["--realset", str(tiny), "--model", "damaged", "--json",
                                             str(tmp_path / "r.json")])
    assert out.exit_code == 130 and not (tmp_path / "r.json").exists()
    assert out.output.strip().splitlines()[-1] == "evaluate: stopped by Ctrl-C; nothing was left half-written"


def test_training_folder_holds_the_training_part_only_and_feeds_the_trainer(tiny, extra, tmp_path):
    from reelrestore.training import realtrain
    from reelrestore.training.dataset import PairedSegments

    manifest = json.loads((tiny / "manifest.json").read_text())
    evaluation = {r["sha256"] for s in manifest["sources"] for r in s["recordings"]}
    assert manifest["training"] and evaluation
    out = realtrain.build_training_folder(tiny, tmp_path / "train", extra, max_seconds=1.5, progress=False)
    assert {r["sha256"] for r in out["files"]} == {r["sha256"] for r in manifest["training"]}
    assert not {r["sha256"] for r in out["files"]} & evaluation
    for row in out["files"]:
        info = sf.info(str(tmp_path / "train" / row["file"]))
        assert (info.samplerate, info.channels, info.subtype) == (SR, 1, "PCM_16")
        assert info.frames <= 1.5 * SR and row["license"] and row["origin"]
    assert len(PairedSegments(tmp_path / "train", "all")) > 0

    # a training list that names an evaluation recording is refused, never copied
    bad = tmp_path / "bad"
    bad.mkdir()
    leaked = dict(manifest, training=manifest["training"] + [manifest["sources"][0]["recordings"][0]])
    (bad / "manifest.json").write_text(json.dumps(leaked))
    with pytest.raises(ValueError, match="evaluation part"):
        realtrain.build_training_folder(bad, tmp_path / "never", extra, progress=False)
    assert not (tmp_path / "never").exists()


def test_a_training_only_package_goes_into_the_training_folder_by_kind_and_nowhere_else(tiny, extra, tmp_path,
                                                                                         monkeypatch):
    # 0 A.D.'s data (`realset.TRAINING_PACKAGES`) is one archive of score, voices and foley: with
    # `realtrain --package 0ad-data` each member goes in as the kind its folder says; the real
    # set never takes it, and a package that is not installed is a one-line error.
    import io
    import zipfile

    from reelrestore.training import realtrain

    archive = tmp_path / "public.zip"
    rng = np.random.default_rng(5)
    with zipfile.ZipFile(archive, "w") as z:
        for member, rate in (("audio/voice/greek/civ/yes.wav", SR), ("audio/music/peace/theme.wav", 44100),
                             ("audio/attack/weapon/arrow.wav", SR), ("audio/actor/old/grunt.wav", 11025)):
            wav = io.BytesIO()
            sf.write(wav, 0.1 * rng.standard_normal(rate), rate, format="WAV")
            z.writestr(member, wav.getvalue())
    real_files = R.package_files
    monkeypatch.setattr(R, "package_files", lambda package: [str(archive)] if package == "0ad-data"
                        else real_files(package))
    assert "0ad-data" not in R.PACKAGES  # the real set and its development sets never look at it
    out = realtrain.build_training_folder(tiny, tmp_path / "train", extra, max_seconds=1.5, progress=False,
                                          packages=("0ad-data",))
    added = {Path(r["path"].split(R.MEMBER_SEP)[1]).stem: r for r in out["files"] if r["package"] == "0ad-data"}
    # by its folder's kind; the 11 kHz one left out (its band ends at 5.5 kHz)
    assert {k: r["kind"] for k, r in added.items()} == {"yes": "speech", "theme": "music", "arrow": "effects"}
    assert all(r["license"] == "CC-BY-SA-3.0" and r["origin"] == "debian:0ad-data" for r in added.values())
    assert out["packages"] == ["0ad-data"]
    plain = realtrain.build_training_folder(tiny, tmp_path / "plain", extra, max_seconds=1.5, progress=False)
    assert {r["sha256"] for r in out["files"] if r["package"] != "0ad-data"} == {r["sha256"] for r in plain["files"]}
    assert not [r for r in plain["files"] if r["package"] == "0ad-data"]  # only when asked for

    monkeypatch.setattr(R, "package_files", lambda package: [])
    with pytest.raises(SystemExit) as err:
        realtrain.main(["--realset", str(tiny), "--out", str(tmp_path / "none"), "--package", "0ad-data"])
    assert str(err.value.code) == "error: 0ad-data is not installed: apt-get install 0ad-data"
    assert not (tmp_path / "none").exists()


def test_held_out_voices_are_never_training_and_make_a_development_set_of_their_own(tmp_path, monkeypatch,
                                                                                      capsys):
    # Two Hedgewars characters and two KTuberling languages (`realset.HELD_OUT_VOICES`) are
    # speakers no training takes: `training_package_recordings` (realtrain and the locator's
    # build) leaves them out, and `--held-out-speech` builds a development set of them alone.
    rng = np.random.default_rng(7)
    files = {"hedgewars-data": [("share/games/hedgewars/Data/Sounds/voices/Pirate/Yes.wav", 44100),
                                ("share/games/hedgewars/Data/Sounds/voices/Default/Yes.wav", 44100),
                                ("share/games/hedgewars/Data/Music/theme.wav", SR)],
             "ktuberling-data": [("share/ktuberling/sounds/el/ball.wav", 44100),
                                 ("share/ktuberling/sounds/en/ball.wav", 44100),
                                 ("share/ktuberling/sounds/gl/ball.wav", 11025)]}
    for package, rows in files.items():
        for rel, rate in rows:
            path = tmp_path / package / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            band = signal.butter(8, min(12000.0, 0.4 * rate), fs=rate, output="sos")  # an edge to score under
            sf.write(path, signal.sosfilt(band, 0.1 * rng.standard_normal(int(0.8 * rate))), rate)
    installed = {p: [str(tmp_path / p / rel) for rel, _ in rows] for p, rows in files.items()}
    monkeypatch.setattr(R, "package_files", lambda package: installed.get(package, []))

    taken = R.training_package_recordings(("hedgewars-data", "ktuberling-data"))
    assert sorted((r.package, Path(r.path).parent.name, r.kind) for r in taken) == [
        ("hedgewars-data", "Default", "speech"), ("hedgewars-data", "Music", "music"),
        ("ktuberling-data", "en", "speech")]

    R.main(["--out", str(tmp_path / "heldout"), "--held-out-speech", "--seconds", "1"])
    assert "written to" in capsys.readouterr().out
    dev = R.load_manifest(tmp_path / "heldout")
    used = {Path(r["path"]).parent.name for s in dev["sources"] for r in s["recordings"]}
    assert used == {"Pirate", "el"}  # the held-out voices alone; gl's 11 kHz word left out
    assert {s["kind"] for s in dev["sources"]} == {"speech"} and not dev["training"]
    assert {i["variant"] for i in dev["items"]} == {"hiss_cut", "hiss_after", "uncut"}
    for key, value in R.HELD_OUT_SEEDS.items():
        assert dev["config"][key] == value

    with pytest.raises(SystemExit) as err:
        R.main(["--out", str(tmp_path / "both"), "--held-out-speech", "--extra", str(tmp_path)])
    assert "leave out --development, --extra" in str(err.value.code)
    monkeypatch.setattr(R, "package_files", lambda package: [])
    with pytest.raises(SystemExit) as err:
        R.main(["--out", str(tmp_path / "none"), "--held-out-speech"])
    assert str(err.value.code) == ("error: hedgewars-data, ktuberling-data not installed: "
                                   "apt-get install hedgewars-data ktuberling-data")
    assert not (tmp_path / "none").exists() and not (tmp_path / "both").exists()


def test_a_development_set_is_cut_from_the_training_part_only_with_its_own_seeds(tiny, extra, tmp_path, capsys):
    R.main(["--out", str(tmp_path / "dev"), "--development", str(tiny), "--extra", str(extra), "--seconds", "1"])
    assert "written to" in capsys.readouterr().out
    real, dev = R.load_manifest(tiny), R.load_manifest(tmp_path / "dev")
    used = {r["sha256"] for s in dev["sources"] for r in s["recordings"]}
    assert used and used <= {r["sha256"] for r in real["training"]}
    assert not used & {r["sha256"] for s in real["sources"] for r in s["recordings"]}
    for key, value in R.DEVELOPMENT_SEEDS.items():
        assert dev["config"][key] == value != real["config"][key]
    assert {i["variant"] for i in dev["items"]} == {"hiss_cut", "hiss_after", "uncut"}
    # never over the real set it reads from
    before = (tiny / "manifest.json").read_bytes()
    with pytest.raises(SystemExit) as err:
        R.main(["--out", str(tiny), "--development", str(tiny), "--extra", str(extra)])
    assert "folder of its own" in str(err.value.code) and (tiny / "manifest.json").read_bytes() == before


def test_a_development_set_with_a_codecs_edge_holds_nothing_over_it_and_scores_under_it(tiny, extra, tmp_path,
                                                                                        capsys):
    """--codec-edge LOW HIGH: every excerpt first takes a lossy copy's brick wall from that
    range (as a source from an MP3 would), then its damage; scores stop under the wall."""
    R.main(["--out", str(tmp_path / "edge"), "--development", str(tiny), "--extra", str(extra), "--seconds", "1",
            "--codec-edge", "9000", "10000"])
    assert "written to" in capsys.readouterr().out
    dev = R.load_manifest(tmp_path / "edge")
    assert dev["config"]["codec_edge_hz"] == [9000.0, 10000.0]
    for source in dev["sources"]:
        edge = source["codec_edge_hz"]
        assert 9000.0 <= edge <= 10000.0 and source["score_max_hz"] <= edge, source
        clean, sr = sf.read(tmp_path / "edge" / source["file"])
        f, p = signal.welch(clean, sr, nperseg=4096)
        assert p[f > edge + 200].sum() < 1e-6 * p.sum(), source["id"]  # nothing over the wall
    plain = R.load_manifest(tiny)
    assert "codec_edge_hz" not in plain["config"] and all("codec_edge_hz" not in s for s in plain["sources"])
    with pytest.raises(ValueError, match="codec edge"):
        R.RealsetConfig(codec_edge_hz=(12000.0, 9000.0))


def test_a_development_set_of_one_kind_joins_every_recording_of_it(tiny, extra, tmp_path, capsys):
    """--kind speech: the training part's speech alone, joined into clips (of one
    package, as the speech development set is built); a kind the part lacks, or --kind
    without --development, is a one-line error and writes nothing."""
    R.main(["--out", str(tmp_path / "speech"), "--development", str(tiny), "--extra", str(extra), "--seconds", "1",
            "--kind", "speech"])
    real, dev = R.load_manifest(tiny), R.load_manifest(tmp_path / "speech")
    assert {s["kind"] for s in dev["sources"]} == {"speech"}
    assert dev["config"]["all_eval_packages"] == ["extra"] and dev["config"]["max_clips"] == R.DEVELOPMENT_KIND_CLIPS
    used = {r["sha256"] for s in dev["sources"] for r in s["recordings"]}
    assert used == {r["sha256"] for r in real["training"]}  # every recording of the kind, none of the evaluation part
    for argv, says in ((["--development", str(tiny), "--kind", "music"], "holds no music"),
                       (["--kind", "speech"], "give --development"),
                       (["--development", str(tmp_path / "nowhere")], "no manifest.json; build the real set first")):
        with pytest.raises(SystemExit) as err:
            R.main(["--out", str(tmp_path / "none"), "--extra", str(extra), *argv])
        assert says in str(err.value.code) and not (tmp_path / "none").exists()


def test_training_folder_cli_names_a_missing_set(tmp_path, capsys):
    from reelrestore.training import realtrain

    with pytest.raises(SystemExit) as err:
        realtrain.main(["--realset", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")])
    lines = capsys.readouterr().err.strip().splitlines()
    assert err.value.code != 0 and len(lines) == 1 and "build the set first" in lines[0]


def test_a_training_folder_stopped_part_way_says_so_and_never_looks_complete(tiny, extra, tmp_path, capsys,
                                                                              monkeypatch):
    """Ctrl-C on the second recording of a rebuild: one line, status 130, the old manifest
    gone (the folder does not pass for complete), no temporary file left."""
    from reelrestore.training import realtrain

    out = tmp_path / "train"
    realtrain.main(["--realset", str(tiny), "--out", str(out), "--extra", str(extra), "--max-seconds", "1"])
    assert (out / "manifest.json").is_file()
    capsys.readouterr()
    read = []
    real_read = realtrain.read_recording

    def stopped_on_the_second(rec):
        if read:
            raise KeyboardInterrupt
        read.append(rec)
        return real_read(rec)

    monkeypatch.setattr(realtrain, "read_recording", stopped_on_the_second)
    with pytest.raises(SystemExit) as err:
        realtrain.main(["--realset", str(tiny), "--out", str(out), "--extra", str(extra), "--max-seconds", "1"])
    assert err.value.code == 130 and read
    said = capsys.readouterr().err.strip().splitlines()[-1]
    assert said == ("realtrain: stopped by Ctrl-C; the folder it was writing has no manifest.json (incomplete): "
                    "run the command again")
    assert not (out / "manifest.json").exists() and not list(out.rglob(".rr-*"))


def test_the_oracle_envelope_bound_fills_at_the_targets_level_and_runs_at_the_true_cutoff_only(tiny):
    from reelrestore.training.oracle import oracle_envelope_fill

    report = evaluate_realset(tiny, ["damaged", "oracle-envelope"], modes=("true", "auto"), variants=("hiss_cut",))
    oracle = report["systems"]["oracle-envelope"]["modes"]
    assert set(oracle) == {"true"}
    damaged = {r["id"]: r for r in report["systems"]["damaged"]["modes"]["true"]["items"]}
    for row in oracle["true"]["items"]:  # a perfect envelope beats the cut input by far
        assert row["lsd_above"] < 0.4 * damaged[row["id"]]["lsd_above"], row["id"]
    # the fill's power per octave above the cut is the target's; below it, the input stays
    rng = np.random.default_rng(0)
    target = lowpass(rng.standard_normal((1, SR)) * 0.1, 9000.0, "butterworth", 8)
    damaged_ = lowpass(target, 2000.0, "brickwall", 0)
    out = oracle_envelope_fill(damaged_, target, 2000.0)
    f, p_out = signal.welch(out[0], SR, nperseg=2048)
    _, p_ref = signal.welch(target[0], SR, nperseg=2048)
    for lo, hi in ((3000, 6000), (6000, 8000)):
        band = (f >= lo) & (f < hi)
        assert abs(10 * np.log10(p_out[band].sum() / p_ref[band].sum())) < 1.0, (lo, hi)
    band = (f > 12000) & (f < 20000)  # above the target's own band: nothing added
    assert p_out[band].sum() < 1e-4 * p_ref[(f > 3000) & (f < 6000)].sum()
    assert np.isfinite(out).all()
    low = (f < 1500)
    assert abs(10 * np.log10(p_out[low].sum() / signal.welch(damaged_[0], SR, nperseg=2048)[1][low].sum())) < 0.1


def test_a_model_made_for_the_low_latency_framing_is_evaluated_in_it(tiny, tmp_path):
    torch = pytest.importorskip("torch")
    from reelrestore.export.onnx_export import export_module, realtime_framing
    from reelrestore.models.realtime import RealtimeConfig, RealtimeGenerator

    cfg = RealtimeConfig(n_bands=24, width=16, layers=2, noise_start="position", lookahead=512)
    path = tmp_path / "low.onnx"
    with torch.no_grad():
        export_module(RealtimeGenerator(cfg).eval(), path, cfg.contract, {"architecture": "t", "model_version": "0"},
                      uses_cutoff=True, framing=realtime_framing(cfg))
    report = evaluate_realset(tiny, ["damaged", str(path)], ("true",), variants=("hiss_cut",), latency="low")
    assert report["latency"] == "low"
    rows = report["systems"]["low.onnx"]["modes"]["true"]["items"]
    damaged = {r["id"]: r for r in report["systems"]["damaged"]["modes"]["true"]["items"]}
    assert rows and all(r["lsd_above"] < damaged[r["id"]]["lsd_above"] for r in rows)  # a band was added


def test_spectrograms_draw_each_model_at_each_cutoff_asked_for(tiny, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from reelrestore.training import spectrograms

    item = next(it["id"] for it in R.load_manifest(tiny)["items"] if it["variant"] == "hiss_cut")

    def width(png: Path) -> int:  # the PNG's IHDR: one column of the figure is 3.2 in at 70 dpi
        data = png.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        return int.from_bytes(data[16:20], "big")

    one, both = tmp_path / "one.png", tmp_path / "both.png"
    spectrograms.main(["--realset", str(tiny), "--item", item, "--model", "baseline", "--out", str(one),
                       "--seconds", "1"])
    spectrograms.main(["--realset", str(tiny), "--item", item, "--model", "baseline", "--cutoff", "true",
                       "--cutoff", "auto", "--out", str(both), "--seconds", "1"])
    assert str(both) in capsys.readouterr().out
    # reference, damaged, the noise fill at the true cutoff; then also with the engine's own
    assert width(one) == pytest.approx(3 * 224, abs=4) and width(both) == pytest.approx(4 * 224, abs=4)
    with pytest.raises(ValueError, match="expected cutoffs among true, auto"):
        spectrograms.render(tiny, [item], ["baseline"], tmp_path / "x.png", cutoffs=("guess",))
    with pytest.raises(SystemExit) as err:
        spectrograms.main(["--realset", str(tiny), "--item", "nothing-like-it", "--out", str(tmp_path / "y.png")])
    assert "not in" in str(err.value.code) and not (tmp_path / "y.png").exists()


def test_recordings_for_evaluation_only_build_a_set_of_their_own_and_no_training_path_takes_them(
        tiny, extra, tmp_path, capsys):
    """A folder `remote --evaluation` fetched (its records say "use": "evaluation"):
    --evaluation-extra builds an evaluation set of those recordings alone, none left for
    training, clips never joining two sample rates; --extra, --development and the training
    folder refuse it in one line."""
    from reelrestore.training import realtrain

    if len(ALSA_FILES) < 8:
        pytest.skip("needs the eight alsa-utils speech recordings")
    folder = tmp_path / "evaluation-only"
    folder.mkdir()
    entries = []
    for n, p in enumerate(ALSA_FILES[4:8]):
        x, sr = sf.read(p)
        if n % 2:  # two of them as 16 kHz recordings
            x, sr = signal.resample_poly(x, 1, 3), 16000
        sf.write(folder / p.name, x, sr, subtype="PCM_16")
        entries.append({"file": p.name, "kind": "speech", "license": "GPL-2", "origin": "alsa-utils",
                        "use": "evaluation"})
    (folder / "sources.json").write_text(json.dumps(entries))

    R.main(["--out", str(tmp_path / "eval"), "--evaluation-extra", str(folder), "--seconds", "2"])
    assert "0 recordings left for training" in capsys.readouterr().out
    built = R.load_manifest(tmp_path / "eval")
    assert built["training"] == []
    used = [r for s in built["sources"] for r in s["recordings"]]
    assert sorted(r["path"] for r in used) == sorted(e["file"] for e in entries)
    assert all(len({r["rate"] for r in s["recordings"]}) == 1 for s in built["sources"])
    assert {r["rate"] for r in used} == {16000, 48000}
    for key, value in R.EVALUATION_EXTRA_SEEDS.items():
        assert built["config"][key] == value
    assert built["config"]["clip_by_rate"] is True and "clip_by_rate" not in R.load_manifest(tiny)["config"]

    with pytest.raises(SystemExit) as err:
        R.main(["--out", str(tmp_path / "never"), "--development", str(tiny), "--extra", str(folder)])
    assert "for evaluation only" in str(err.value.code) and not (tmp_path / "never").exists()
    with pytest.raises(ValueError, match="for evaluation only"):
        R.find_recordings(R.RealsetConfig(packages=(), extra=str(folder)))
    with pytest.raises(ValueError, match="for evaluation only"):
        realtrain.build_training_folder(tiny, tmp_path / "never", folder, progress=False)
    assert not (tmp_path / "never").exists()
    with pytest.raises(SystemExit) as err:
        R.main(["--out", str(tmp_path / "never"), "--evaluation-extra", str(folder), "--extra", str(extra)])
    assert "leave out" in str(err.value.code)


def test_a_development_set_in_the_issues_own_protocol_cuts_and_hisses_as_told(tiny, extra, tmp_path, capsys):
    """--cutoffs / --shapes / --hiss-db: the issue's own protocol (a zero-phase Butterworth-8
    at 1, 2, 3 and 6 kHz, hiss at -50 dBFS) instead of the real set's spread; a shape it
    cannot make is a one-line error that writes nothing."""
    R.main(["--out", str(tmp_path / "issue"), "--development", str(tiny), "--extra", str(extra), "--seconds", "1",
            "--cutoffs", "1000", "2000", "3000", "6000", "--shapes", "butterworth8", "--hiss-db", "-50", "-50"])
    assert "written to" in capsys.readouterr().out
    dev = R.load_manifest(tmp_path / "issue")
    cut = [i for i in dev["items"] if i["variant"] != "uncut"]
    assert cut and {i["design_hz"] for i in cut} <= {1000.0, 2000.0, 3000.0, 6000.0}
    assert {(i["shape"], i["order"]) for i in cut} == {("butterworth", 8)}
    assert {i["hiss_db"] for i in dev["items"]} == {-50.0}
    with pytest.raises(SystemExit) as err:
        R.main(["--out", str(tmp_path / "never"), "--development", str(tiny), "--shapes", "chebyshev3"])
    assert "butterworthN" in str(err.value.code) and not (tmp_path / "never").exists()
