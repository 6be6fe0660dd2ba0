"""restore-stream on files: exact round trips, clear errors, never a half-written output."""

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf
import soxr
from click.testing import CliRunner
from conftest import music

from reelrestore.engine.cli import main


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".partial" in p.name)


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("block", [1, 64, 65, 8193, 0])
def test_identity_model_round_trip_through_files(identity_model, write_wav, tmp_path, channels, block):
    x = music(0.7, channels, seed=channels)
    src = write_wav("in.wav", x)
    out = tmp_path / "out.wav"
    result = run(src, "-o", out, "--model", identity_model, "--block-size", block, "-q")
    assert result.exit_code == 0, result.output
    y, sr = sf.read(out, dtype="float32", always_2d=True)
    assert sr == 48000 and y.shape == x.shape  # same length, same channels
    assert np.abs(y - x).max() <= 1e-4  # and no offset


def test_bit_depth_is_kept_and_pcm_survives_bit_exact(identity_model, write_wav, tmp_path):
    # broadband, nothing cut: passed through (the synthetic `music` reads as cut at ~5 kHz)
    t = np.arange(int(0.6 * 48000)) / 48000
    noise = np.random.default_rng(4).standard_normal((t.size, 2)) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.7 * t))[:, None]
    x = (0.2 * noise).astype(np.float32)
    src = write_wav("in16.wav", x, subtype="PCM_16")
    out = tmp_path / "out.wav"
    assert run(src, "-o", out, "--model", identity_model, "-q").exit_code == 0
    assert sf.info(out).subtype == "PCM_16"
    np.testing.assert_array_equal(sf.read(out, dtype="int16")[0], sf.read(src, dtype="int16")[0])


def test_flac_in_flac_out(identity_model, write_wav, tmp_path):
    src = write_wav("in.flac", music(0.6, 1), subtype="PCM_24")
    out = tmp_path / "out.flac"
    assert run(src, "-o", out, "--model", identity_model, "-q").exit_code == 0
    assert sf.info(out).format == "FLAC"
    assert np.abs(sf.read(out)[0] - sf.read(src)[0]).max() < 1e-5


def test_other_rates_are_resampled_to_the_model_rate_and_back(identity_model, write_wav, tmp_path):
    x = music(1.0, 2, sr=44100, seed=9)
    src = write_wav("in441.wav", x, sr=44100)
    up = tmp_path / "up.wav"
    assert run(src, "-o", up, "--model", identity_model, "--sample-rate", 48000, "-q").exit_code == 0
    y, sr = sf.read(up, dtype="float32")
    assert sr == 48000 and y.shape[0] == round(x.shape[0] * 48000 / 44100)
    expected = soxr.resample(x, 44100, 48000, quality="HQ")
    assert np.abs(y - expected).max() < 1e-4  # streamed resampling == one-shot resampling
    back = tmp_path / "back.wav"
    assert run(src, "-o", back, "--model", identity_model, "-q").exit_code == 0  # default: the input's rate
    z, sr = sf.read(back, dtype="float32")
    assert sr == 44100 and z.shape == x.shape
    round_trip = soxr.resample(expected, 48000, 44100, quality="HQ")  # loses only what HQ cuts
    assert np.abs(z - round_trip).max() < 1e-4


@pytest.mark.parametrize("rate", [44100, 96000])
@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "FLOAT"])
def test_the_master_keeps_its_rate_and_bit_depth(identity_model, write_wav, tmp_path, rate, subtype):
    src = write_wav("master.wav", music(0.6, 2, sr=rate, seed=1), sr=rate, subtype=subtype)
    out = tmp_path / "out.wav"
    assert run(src, "-o", out, "--model", identity_model, "--cutoff", "3k", "-q").exit_code == 0
    info = sf.info(out)
    assert (info.samplerate, info.channels, info.subtype, info.frames) == (rate, 2, subtype, sf.info(src).frames)


@pytest.mark.parametrize("subtype,ext,expected", [
    ("FLOAT", ".flac", "PCM_24"),  # FLAC holds no float: its deepest, never 16-bit
    ("PCM_16", ".flac", "PCM_16"),
    ("PCM_24", ".aiff", "PCM_24"),
    ("VORBIS", ".wav", "FLOAT"),  # a lossy input decodes to float
    ("MPEG_LAYER_III", ".wav", "FLOAT"),
])
def test_a_format_that_cannot_hold_the_input_gets_the_next_deeper_depth(identity_model, write_wav, tmp_path,
                                                                       subtype, ext, expected):
    name = {"VORBIS": "in.ogg", "MPEG_LAYER_III": "in.mp3"}.get(subtype, "in.wav")
    src = write_wav(name, music(0.6, 1), subtype=subtype)
    out = tmp_path / f"out{ext}"
    assert run(src, "-o", out, "--model", identity_model, "-q").exit_code == 0
    assert sf.info(out).subtype == expected


def test_subtype_and_sample_rate_choose_the_written_format(identity_model, write_wav, tmp_path):
    src = write_wav("in.wav", music(0.6, 1), subtype="FLOAT")
    out = tmp_path / "out.wav"
    assert run(src, "-o", out, "--model", identity_model, "--subtype", "pcm_24", "--sample-rate", 32000,
               "-q").exit_code == 0
    assert (sf.info(out).subtype, sf.info(out).samplerate) == ("PCM_24", 32000)
    result = run(src, "-o", tmp_path / "o.flac", "--model", identity_model, "--subtype", "FLOAT")
    assert result.exit_code == 1 and "FLAC cannot hold --subtype FLOAT; choose one of" in result.stderr
    result = run(src, "--model", identity_model, "--subtype", "PCM_24")
    assert result.exit_code == 2 and "add -o OUT.wav" in result.stderr


def test_report_says_what_ran(identity_model, write_wav, tmp_path):
    src = write_wav("in.wav", music(0.8, 2))
    report = tmp_path / "run.json"
    result = run(src, "-o", tmp_path / "out.wav", "--model", identity_model, "--report", report, "--cutoff", "3k")
    assert result.exit_code == 0, result.output
    got = json.loads(report.read_text())
    assert got["model_sha256"] == digest(identity_model)
    assert got["provider"] == "CPUExecutionProvider"
    assert got["samples_in"] == got["samples_out"] == 38400
    assert got["latency_samples"] == 24000 - 1024 - 1 and got["hop_samples"] == 12000  # frame - margin - 1
    assert got["cutoff"] == "3000" and got["real_time_factor"] > 0
    assert "latency 478.6 ms" in result.stderr and "sha256" in result.stderr


def test_low_latency_file_restore_keeps_the_samples_aligned_and_reports_its_latency(identity_model, write_wav,
                                                                                   tmp_path):
    x = music(0.8, 2)
    src, out, report = write_wav("in.wav", x), tmp_path / "out.wav", tmp_path / "run.json"
    result = run(src, "-o", out, "--model", identity_model, "--report", report, "--cutoff", "3k", "--latency", "low")
    assert result.exit_code == 0, result.output
    got = json.loads(report.read_text())
    assert got["latency_mode"] == "low" and got["hop_samples"] == 512
    assert got["latency_samples"] == 512 + 512 + 256 - 1  # lookahead + hop + crossfade - 1
    assert "latency 26.6 ms" in result.stderr
    y, _ = sf.read(out, dtype="float32", always_2d=True)
    assert y.shape == x.shape and np.abs(y - x).max() < 1e-4  # identity in, identity out, aligned


def test_the_console_and_report_say_which_cutoff_was_locked(identity_model, write_wav, tmp_path):
    """Stereo: the left channel is cut at 2 kHz over a hiss floor, the right is intact."""
    rng = np.random.default_rng(0)
    t = np.arange(6 * 48000) / 48000
    bursts = rng.standard_normal(t.size) * np.repeat(10 ** (rng.uniform(-30, 0, 60) / 20), 4800)
    spec = np.fft.rfft(0.1 * bursts)
    spec[np.fft.rfftfreq(t.size, 1 / 48000) > 2000] = 0
    left = np.fft.irfft(spec, t.size) + 1e-3 * rng.standard_normal(t.size)
    right = 0.1 * bursts + 1e-3 * rng.standard_normal(t.size)
    src = write_wav("reel.wav", np.stack([left, right], axis=1).astype(np.float32))
    report = tmp_path / "run.json"
    result = run(src, "-o", tmp_path / "out.wav", "--model", identity_model, "--report", report)
    assert result.exit_code == 0, result.output
    # the input keeps its floor above the cut: the band begins at the reading itself
    locked = re.search(r"ch 1: cutoff (\d+\.\d+) kHz \(\d+% sure, learned over 6\.0 s\)", result.stderr)
    assert locked and 1.9 <= float(locked.group(1)) <= 2.5, result.stderr
    assert re.search(r"ch 2: no cut found \(\d+% sure\): passing through \(set --cutoff HZ to restore it anyway\)",
                     result.stderr), result.stderr
    got = json.loads(report.read_text())
    assert got["cutoff"] == "auto"
    assert 1900 <= got["cutoffs"][0]["hz"] <= 2500 and got["cutoffs"][1]["hz"] is None
    assert got["cutoffs"][0]["merge_hz"] == got["cutoffs"][0]["hz"]
    assert got["cutoffs"][0]["learned_seconds"] == pytest.approx(6.0)


@pytest.mark.parametrize(
    "content,message",
    [(None, "no such file"), (b"", "empty file"), (b"hello, not audio\n", "not a readable audio file")],
)
def test_unusable_inputs_fail_with_one_line_and_no_output(identity_model, tmp_path, content, message):
    src = tmp_path / "in.wav"
    if content is not None:
        src.write_bytes(content)
    out = tmp_path / "out.wav"
    result = run(src, "-o", out, "--model", identity_model, "-q")
    assert result.exit_code == 1
    assert message in result.stderr and result.stderr.count("\n") == 1
    assert not out.exists() and leftovers(tmp_path) == []


def test_truncated_file_is_refused(identity_model, write_wav, tmp_path):
    src = write_wav("cut.wav", music(1.0, 2), subtype="PCM_16")
    data = src.read_bytes()
    src.write_bytes(data[: len(data) // 2])
    before = digest(src)
    result = run(src, "-o", tmp_path / "out.wav", "--model", identity_model, "-q")
    assert result.exit_code == 1 and "truncated" in result.stderr
    assert digest(src) == before and not (tmp_path / "out.wav").exists()


def test_nan_samples_are_refused_and_the_partial_output_removed(identity_model, write_wav, tmp_path):
    x = music(2.0, 1)
    x[70000] = np.nan  # in the second block: output writing has begun
    src = write_wav("nan.wav", x)
    before = digest(src)
    result = run(src, "-o", tmp_path / "out.wav", "--model", identity_model, "--block-size", 48000, "-q")
    assert result.exit_code == 1 and "sample 70000 is NaN or infinite" in result.stderr
    assert digest(src) == before
    assert not (tmp_path / "out.wav").exists() and leftovers(tmp_path) == []


def test_output_equal_to_input_is_refused(identity_model, write_wav, tmp_path):
    src = write_wav("in.wav", music(0.5, 1))
    before = digest(src)
    for target in (src, tmp_path / "." / "in.wav"):
        result = run(src, "-o", target, "--model", identity_model, "-q")
        assert result.exit_code == 1 and "overwrite the input" in result.stderr
    assert digest(src) == before


def test_missing_output_folder_is_refused(identity_model, write_wav, tmp_path):
    src = write_wav("in.wav", music(0.5, 1))
    result = run(src, "-o", tmp_path / "nope" / "out.wav", "--model", identity_model, "-q")
    assert result.exit_code == 1 and "does not exist" in result.stderr


def test_model_that_does_not_fit_is_refused_before_any_output(write_wav, tmp_path):
    from conftest import CONTRACT_METADATA, build_model

    bad = build_model(tmp_path / "bad.onnx", metadata=dict(CONTRACT_METADATA, representation="mfcc"))
    src = write_wav("in.wav", music(0.5, 1))
    result = run(src, "-o", tmp_path / "out.wav", "--model", bad, "-q")
    assert result.exit_code == 1 and "representation" in result.stderr
    assert not (tmp_path / "out.wav").exists()


def test_without_a_sound_device_playback_suggests_writing_a_file(identity_model, write_wav):
    src = write_wav("in.wav", music(0.5, 1))
    env = dict(os.environ, JACK_DEFAULT_SERVER="reelrestore-no-such-server", JACK_NO_START_SERVER="1")
    done = subprocess.run([sys.executable, "-m", "reelrestore.engine", str(src), "--model", str(identity_model)],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "no output device found" in done.stderr and "-o OUT.wav" in done.stderr


def test_no_source_and_no_input_device_is_a_usage_error(identity_model):
    result = run("--model", identity_model)
    assert result.exit_code == 2 and "expected a file to restore" in result.stderr


@pytest.mark.parametrize("value", ["high", "nan", "inf", "-3k", "0"])
def test_bad_cutoff_value_is_refused(identity_model, write_wav, tmp_path, value):
    src = write_wav("in.wav", music(0.5, 1))
    result = run(src, "-o", tmp_path / "o.wav", "--model", identity_model, "--cutoff", value)
    assert result.exit_code == 1 and "expected 'auto' or a frequency" in result.stderr
    assert not (tmp_path / "o.wav").exists()


@pytest.mark.slow
def test_ctrl_c_leaves_no_output_or_a_complete_one(identity_model, write_wav, tmp_path):
    src = write_wav("long.wav", music(60.0, 2))
    out = tmp_path / "out.wav"
    # a long file in small blocks keeps the run going long enough to interrupt midway
    cmd = [sys.executable, "-m", "reelrestore.engine", str(src), "-o", str(out),
           "--model", str(identity_model), "--block-size", "16", "-q"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not leftovers(tmp_path) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)  # wait until the output is being written, then interrupt at once
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0, "the run finished before it could be interrupted"
    assert "stopped by Ctrl-C" in err and err.count("\n") == 1
    assert leftovers(tmp_path) == []
    if out.exists():  # only a finished, valid file may be there
        assert sf.info(out).frames == 60 * 48000


def test_ctrl_c_before_the_restoration_starts_leaves_no_partial_output(identity_model, write_wav, tmp_path,
                                                                     monkeypatch):
    # the outputs are open and the header is being printed when Ctrl-C lands (a window a
    # loaded machine widens): every output is removed, as when it lands mid-run
    import reelrestore.engine.job as job

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(job, "header", interrupted)
    src = write_wav("in.wav", music(1.0, 1))
    result = run(src, "-o", tmp_path / "out.wav", "--output-added", tmp_path / "added.wav",
                 "--model", identity_model)
    assert result.exit_code == 130 and "stopped by Ctrl-C" in result.stderr
    assert leftovers(tmp_path) == [] and not (tmp_path / "out.wav").exists()


def test_the_added_band_alone_is_written_sample_aligned_and_amount_scales_it(gain_model, write_wav, tmp_path):
    x = music(1.0, 2, seed=6)
    src = write_wav("in.wav", x)
    out, added = tmp_path / "out.wav", tmp_path / "added.wav"
    report = tmp_path / "run.json"
    result = run(src, "-o", out, "--output-added", added, "--model", gain_model, "--cutoff", "3kHz",
                 "--report", report)
    assert result.exit_code == 0, result.output
    y, a = sf.read(out, dtype="float32")[0], sf.read(added, dtype="float32")[0]
    assert y.shape == a.shape == x.shape
    np.testing.assert_allclose(y - a, x, atol=1e-5)  # render = recording + added band, sample for sample
    f = np.fft.rfftfreq(x.shape[0], 1 / 48000)
    power = np.abs(np.fft.rfft(a[:, 0])) ** 2
    assert power[f > 4000].sum() > 100 * power[f < 2000].sum()  # the band lives above the cut
    assert json.loads(report.read_text())["added_output"] == str(added)
    assert f"wrote {added} (the added band alone)" in result.stderr
    half = tmp_path / "half.wav"
    assert run(src, "-o", half, "--model", gain_model, "--cutoff", "3k", "--amount", "-6dB", "-q").exit_code == 0
    np.testing.assert_allclose(sf.read(half, dtype="float32")[0] - x, 10 ** (-6 / 20) * a, atol=1e-5)
    for bad, message in ((["--amount", "3dB"], "at most 0dB"), (["--amount", "loud"], "a level like -40dB"),
                         (["--amount", "-6dB", "--mix", "0.5"], "give one"),
                         (["--output-added", out], "name the same file")):
        result = run(src, "-o", out, "--model", gain_model, "-y", *bad)
        assert result.exit_code in (1, 2) and message in result.stderr, result.stderr


def test_the_header_says_what_goes_in_and_out_and_every_conversion(identity_model, write_wav, tmp_path):
    src = write_wav("in.wav", music(1.0, 2, sr=44100), sr=44100, subtype="FLOAT")
    result = run(src, "-o", tmp_path / "out.flac", "--model", identity_model, "--cutoff", "3k")
    assert result.exit_code == 0, result.stderr
    err = result.stderr
    assert f"input   {src}: WAV FLOAT, 44100 Hz, 2 ch, 00:00:01.00 (resampled to the model's 48000 Hz)" in err
    assert "sha256" in err and "latency 478.6 ms" in err and "cutoff 3000 Hz (set)" in err
    assert (f"output  {tmp_path / 'out.flac'}: FLAC PCM_24, 44100 Hz, 2 ch (resampled from 48000 Hz) "
            "(shallower than the input's FLOAT: the deepest FLAC holds)") in err
    assert "x real time" in err  # the progress line's speed


@pytest.mark.parametrize("module,name", [
    ("reelrestore.engine.cli", "restore-stream"), ("reelrestore.training.degrade_cli", "restore-degrade"),
    ("reelrestore.training.eval_cli", "restore-eval"), ("reelrestore.training.train", "restore-train"),
    ("reelrestore.export.cli", "restore-export"), ("reelrestore.engine.batch_cli", "restore-batch"),
])
def test_help_and_version_answer_without_loading_the_engine(module, name):
    code = (f"import sys; from click.testing import CliRunner; from {module} import main; "
            "r = CliRunner().invoke(main, ['--help']); v = CliRunner().invoke(main, ['--version']); "
            "print(r.exit_code, 'Examples' in r.output or 'restore-' in r.output.split('Options')[0], "
            "v.output.strip(), sorted(m for m in ('numba', 'onnxruntime', 'soundfile', 'numpy', 'torch') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == f"0 True {name} 0.1.0 []"


def test_the_figure_shows_input_and_restored_spectrograms(gain_model, write_wav, tmp_path):
    pytest.importorskip("matplotlib")
    src = write_wav("in.wav", music(2.0, 2, seed=2))
    figure, report = tmp_path / "what.png", tmp_path / "run.json"
    result = run(src, "-o", tmp_path / "out.wav", "--model", gain_model, "--cutoff", "3k", "--figure", figure,
                 "--report", report)
    assert result.exit_code == 0, result.stderr
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and figure.stat().st_size > 10_000
    assert json.loads(report.read_text())["figure"] == str(figure)
    assert f"drew {figure}" in result.stderr
    assert [p.name for p in tmp_path.iterdir() if ".partial" in p.name] == []
    bad = run(src, "-o", tmp_path / "o2.wav", "--model", gain_model, "--figure", tmp_path / "what.jpg", "-q")
    assert bad.exit_code == 1 and "expected a .png file name" in bad.stderr
    assert not (tmp_path / "o2.wav").exists() and not (tmp_path / "what.jpg").exists()


def test_quiet_and_verbose_on_every_command(identity_model, write_wav, tmp_path):
    """-q: errors only; -v: more than the default."""
    from reelrestore.training.degrade_cli import main as degrade
    from reelrestore.training.eval_cli import main as evaluate

    src = write_wav("in.wav", music(0.5, 1))
    runner = CliRunner()
    commands = {
        "restore-stream": (main, [src, "-o", tmp_path / "o.wav", "--model", identity_model, "--cutoff", "3k", "-y"]),
        "restore-degrade": (degrade, [src, "-o", tmp_path / "d.wav", "--cutoff", "3k", "-y"]),
        "restore-eval": (evaluate, ["--reference", src, "--restored", src, "--cutoff", "3k"]),
    }
    for name, (command, args) in commands.items():
        said = {}
        for flag in ("-q", None, "-v"):
            result = runner.invoke(command, [str(a) for a in args] + ([flag] if flag else []))
            assert result.exit_code == 0, (name, flag, result.output)
            said[flag] = result.output
        assert said["-q"].strip() == "", (name, said["-q"])
        assert len(said["-v"]) > len(said[None]) > 0, name


def test_a_legal_250_byte_output_name_is_written(identity_model, write_wav, tmp_path):
    src = write_wav("in.wav", music(0.3, 1))
    out = tmp_path / ("a" * 246 + ".wav")  # the longest name most file systems take; the temporary name is short
    assert run(src, "-o", out, "--model", identity_model, "-q").exit_code == 0
    assert out.is_file() and len(out.name) == 250


def test_a_live_input_defaults_to_low_latency_with_a_model_made_for_it():
    from reelrestore.engine.cli import default_latency
    from reelrestore.engine.contract import DEFAULT_CONTRACT
    from reelrestore.engine.model import ModelSpec

    meta = {**DEFAULT_CONTRACT.to_metadata(), "architecture": "t", "model_version": "0"}
    assert default_latency(ModelSpec.from_metadata(meta)) == "full"  # a whole-frame model: a frame per hop
    made_for_low = ModelSpec.from_metadata({**meta, "lookahead_samples": "512", "restored_columns": "4"})
    assert default_latency(made_for_low) == "low"
    assert (made_for_low.lookahead_samples, made_for_low.restored_columns) == (512, 4)
    from reelrestore.engine.model import ModelError

    for bad in ({"lookahead_samples": "soon"}, {"restored_columns": "0"}):
        with pytest.raises(ModelError, match=next(iter(bad))):
            ModelSpec.from_metadata({**meta, **bad})


@pytest.mark.parametrize("asked, granted, hinted", [(True, False, True), (False, False, False), (True, True, False)])
def test_the_underrun_advice_names_the_missing_priority_only_when_it_was_asked_for(capsys, asked, granted, hinted):
    """After a live run with underruns the closing lines advise; the real-time permission is
    named only when the worker asked for it and did not get it (not after --no-realtime)."""
    from types import SimpleNamespace

    from reelrestore.engine.job import summarise

    playback = {"played_seconds": 10.0, "underruns": 3, "missing_samples": 768, "overruns": 0,
                "realtime_asked": asked, "worker_realtime": granted}
    summarise(SimpleNamespace(playback=playback, real_time_factor=0.5, added_output=None, figure=None, output=None))
    err = capsys.readouterr().err
    assert "underruns 3 (768 samples)" in err and "could not keep up" in err
    assert ("ulimit -r" in err) == hinted


@pytest.mark.parametrize("after_xrun, own", [(0, True), (3, False), (1, True)])
def test_underruns_in_the_wake_of_a_device_xrun_are_told_apart_from_the_workers_own(capsys, after_xrun, own):
    """Underruns right after the sound device's own xrun (the machine stalled) are counted
    and explained as such; "could not keep up" is said only when some were the worker's."""
    from types import SimpleNamespace

    from reelrestore.engine.job import summarise

    playback = {"played_seconds": 10.0, "underruns": 3, "missing_samples": 768, "overruns": 0,
                "underruns_after_xrun": after_xrun, "realtime_asked": True, "worker_realtime": True}
    summarise(SimpleNamespace(playback=playback, real_time_factor=0.5, added_output=None, figure=None, output=None))
    err = capsys.readouterr().err
    assert ("could not keep up" in err) == own
    assert (f"{after_xrun} right after a device xrun" in err) == bool(after_xrun)
    assert ("sound device itself lost time" in err) == (not own)
