"""A hostile user's corpus for restore-stream, restore-degrade and restore-eval.

Every case asserts what an archivist running thousands of files unattended needs: a
non-zero exit code, one line on stderr naming the problem (no traceback), no output left
behind (not even a hidden temporary file), and every input byte-for-byte unchanged.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner
from conftest import CONTRACT_METADATA, build_model, music
from onnx import helper

from reelrestore.engine.cli import main as stream
from reelrestore.training.degrade_cli import main as degrade
from reelrestore.training.eval_cli import main as evaluate

SR = 48000


def snapshot(folder) -> dict[str, str]:
    """Every file under `folder` (hidden ones too) -> sha256 of what it points to."""
    state = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        if path.is_symlink() and not path.exists():
            state[key] = "dangling link"
        elif path.is_file():
            state[key] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            state[key] = "folder" if path.is_dir() else "special"
    return state


@pytest.fixture
def reel(tmp_path):
    """A small folder of inputs: a clean reel, a stereo reel at 44.1 kHz, models."""
    sf.write(tmp_path / "reel.wav", music(0.6, 1, seed=1), SR, subtype="PCM_16")
    sf.write(tmp_path / "reel441.wav", music(0.6, 2, sr=44100, seed=2), 44100, subtype="FLOAT")
    build_model(tmp_path / "identity.onnx")
    return tmp_path


def refused(command, args, folder, message: str, code: int | None = None) -> None:
    before = snapshot(folder)
    result = CliRunner().invoke(command, [str(a) for a in args])
    assert result.exit_code != 0 and (code is None or result.exit_code == code), (result.exit_code, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    err = result.stderr
    assert "Traceback" not in result.output and message in err, err
    if result.exit_code != 2:  # click's usage errors print the usage line too
        assert err.count("\n") == 1, err
    assert snapshot(folder) == before  # nothing written, nothing changed


def nan_model(path):
    nodes = [helper.make_node("Sub", ["spectrum", "spectrum"], ["zero"]),
             helper.make_node("Div", ["spectrum", "zero"], ["restored"])]
    return build_model(path, nodes=nodes)


def make(path, content: bytes | str):
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def ogg_bytes(folder) -> bytes:
    """A complete Ogg Vorbis file of a second of music (written aside, then read)."""
    path = folder / "whole" / "music.ogg"
    path.parent.mkdir(exist_ok=True)
    sf.write(path, music(1.0, 1, seed=3), SR, format="OGG", subtype="VORBIS")
    data = path.read_bytes()
    path.unlink()
    path.parent.rmdir()
    return data


def mp3_bytes(folder) -> bytes:
    """A complete MP3 of a second of noise (written aside, then read)."""
    path = folder / "whole" / "noise.mp3"
    path.parent.mkdir(exist_ok=True)
    sf.write(path, 0.1 * np.random.default_rng(0).standard_normal(SR), SR, subtype="MPEG_LAYER_III")
    data = path.read_bytes()
    path.unlink()
    path.parent.rmdir()
    return data


def write(path, data, sr=SR, subtype="FLOAT"):
    sf.write(path, data, sr, subtype=subtype)
    return path


# --------------------------------------------------------------------------- restore-stream
STREAM_CASES = {
    # name: (setup(folder) -> args, message, exit code or None)
    "missing input": (lambda f: [f / "nope.wav", "-o", f / "o.wav"], "no such file", 1),
    "empty input": (lambda f: [make(f / "e.wav", b""), "-o", f / "o.wav"], "empty file", 1),
    "text input": (lambda f: [make(f / "t.wav", "hello"), "-o", f / "o.wav"],
                   "not a readable audio file", 1),
    "truncated input": (lambda f: [make(f / "cut.wav", (f / "reel.wav").read_bytes()[:20000]),
                                   "-o", f / "o.wav"], "truncated", 1),
    "truncated Ogg": (lambda f: [make(f / "cut.ogg", ogg_bytes(f)[:-3000]), "-o", f / "o.wav"],
                      "the Ogg stream ends without its last page", 1),
    "truncated MP3": (lambda f: [make(f / "cut.mp3", mp3_bytes(f)[:-2000]), "-o", f / "o.wav"], "truncated: read", 1),
    "NaN samples": (lambda f: [write(f / "nan.wav", np.where(np.arange(SR) == 9000, np.nan, 0.1)), "-o", f / "o.wav"],
                    "sample 9000 is NaN or infinite", 1),
    "input is a folder": (lambda f: [(f / "dir").mkdir() or f / "dir", "-o", f / "o.wav"], "not a regular file", 1),
    "input at 1 Hz": (lambda f: [write(f / "slow.wav", np.zeros(10), sr=1), "-o", f / "o.wav"],
                      "expected audio at 4000 Hz or more", 1),
    "-o is the input": (lambda f: [f / "reel.wav", "-o", f / "reel.wav"], "would overwrite the input", 1),
    "-o through a symlink": (lambda f: [f / "reel.wav", "-o", os.symlink(f / "reel.wav", f / "ln.wav") or f / "ln.wav"],
                             "would overwrite the input", 1),
    "-o a hard link": (lambda f: [f / "reel.wav", "-o", os.link(f / "reel.wav", f / "hl.wav") or f / "hl.wav", "-y"],
                       "would overwrite the input", 1),
    "--report is the input": (lambda f: [f / "reel.wav", "-o", f / "o.wav", "--report", f / "reel.wav"],
                              "--report would overwrite the input", 1),
    "--report is the model": (lambda f: [f / "reel.wav", "-o", f / "o.wav", "--report", f / "identity.onnx"],
                              "would overwrite the input", 1),
    "--report is -o": (lambda f: [f / "reel.wav", "-o", f / "o.wav", "--report", f / "o.wav"],
                       "name the same file", 1),
    "--figure is the input": (lambda f: [f / "reel.wav", "-o", f / "o.wav", "--figure", f / "reel.wav"],
                              "would overwrite the input", 1),
    "--output-added is -o": (lambda f: [f / "reel.wav", "-o", f / "o.wav", "--output-added", f / "o.wav"],
                             "name the same file", 1),
    "-o exists": (lambda f: [f / "reel.wav", "-o", f / "reel441.wav"], "exists; pass -y", 1),
    "-o exists, -n": (lambda f: [f / "reel.wav", "-o", f / "reel441.wav", "-n"], "-n never overwrites", 1),
    "-o in a missing folder": (lambda f: [f / "reel.wav", "-o", f / "no" / "o.wav"], "does not exist", 1),
    "-o is a folder": (lambda f: [f / "reel.wav", "-o", (f / "d").mkdir() or f / "d"], "is a folder", 1),
    "-o is a device": (lambda f: [f / "reel.wav", "-o", "/dev/null", "-y"], "not a regular file", 1),
    "-o is a symlink loop": (lambda f: [f / "reel.wav", "-o", os.symlink(f / "loop.wav", f / "loop.wav") or
                                        f / "loop.wav"], "cannot be resolved", 1),
    "--report in a missing folder": (lambda f: [f / "reel.wav", "-o", f / "o.wav", "--report", f / "no" / "r.json"],
                                     "does not exist", 1),
    "--report is a folder": (lambda f: [f / "reel.wav", "-o", f / "o.wav", "--report", (f / "r").mkdir() or f / "r"],
                             "is a folder", 1),
    "unknown output format": (lambda f: [f / "reel.wav", "-o", f / "o.xyz"], "unknown output format", 1),
    "--figure not png": (lambda f: [f / "reel.wav", "-o", f / "o.wav", "--figure", f / "f.jpg"],
                         "expected a .png file name", 1),
    "--cutoff nan": (lambda f: [f / "reel.wav", "-o", f / "o.wav", "--cutoff", "nan"], "expected 'auto' or", 1),
    "--cutoff -3k": (lambda f: [f / "reel.wav", "-o", f / "o.wav", "--cutoff", "-3k"], "above 0 Hz", 1),
    "--cutoff 0": (lambda f: [f / "reel.wav", "-o", f / "o.wav", "--cutoff", "0"], "above 0 Hz", 1),
    "--cutoff words": (lambda f: [f / "reel.wav", "-o", f / "o.wav", "--cutoff", "high"], "like 3000, 3k", 1),
    "--amount +3dB": (lambda f: [f / "reel.wav", "-o", f / "o.wav", "--amount", "3dB"], "at most 0dB", 1),
    "--amount nan": (lambda f: [f / "reel.wav", "-o", f / "o.wav", "--amount", "nan"], "finite level", 1),
    "--mix and --amount": (lambda f: [f / "reel.wav", "-o", f / "o.wav", "--mix", "0.5", "--amount", "-6dB"],
                           "give one", 2),
    "--sample-rate 1e9": (lambda f: [f / "reel.wav", "-o", f / "o.wav", "--sample-rate", "1000000000"],
                          "--sample-rate", 2),
    "--sample-rate without -o": (lambda f: [f / "reel.wav", "--sample-rate", "44100"], "add -o OUT.wav", 2),
    "--subtype FLAC float": (lambda f: [f / "reel.wav", "-o", f / "o.flac", "--subtype", "FLOAT"],
                             "cannot hold --subtype FLOAT", 1),
    "--overlap 1": (lambda f: [f / "reel.wav", "-o", f / "o.wav", "--overlap", "1"], "--overlap", 2),
    "--overlap with --latency low": (lambda f: [f / "reel.wav", "-o", f / "o.wav", "--overlap", "0.75", "--latency",
                                                "low"], "--latency low plays only each frame's newest hop", 2),
    "--latency bad": (lambda f: [f / "reel.wav", "-o", f / "o.wav", "--latency", "lowest"], "--latency", 2),
    "--mix 2": (lambda f: [f / "reel.wav", "-o", f / "o.wav", "--mix", "2"], "--mix", 2),
    "--block-size -1": (lambda f: [f / "reel.wav", "-o", f / "o.wav", "--block-size", "-1"], "--block-size", 2),
    "file and --input-device": (lambda f: [f / "reel.wav", "--input-device", "x"], "not both", 2),
    "no source": (lambda f: ["-o", f / "o.wav"], "expected a file to restore", 2),
    "missing model": (lambda f: [f / "reel.wav", "-o", f / "o.wav", "--model", f / "none.onnx"], "no such file", 1),
    "model is text": (lambda f: [f / "reel.wav", "-o", f / "o.wav", "--model",
                                 make(f / "m.onnx", "x")], "cannot load it", 1),
    "model representation": (lambda f: [f / "reel.wav", "-o", f / "o.wav", "--model", build_model(
        f / "mf.onnx", metadata=dict(CONTRACT_METADATA, representation="mfcc"))], "representation", 1),
    "model frame of 1e9 s": (lambda f: [f / "reel.wav", "-o", f / "o.wav", "--model", build_model(
        f / "big.onnx", metadata=dict(CONTRACT_METADATA, frame_seconds="1e9"))], "at most 10 s", 1),
    "model frame NaN": (lambda f: [f / "reel.wav", "-o", f / "o.wav", "--model", build_model(
        f / "nanf.onnx", metadata=dict(CONTRACT_METADATA, frame_seconds="nan"))], "frame_seconds", 1),
    "model returns NaN": (lambda f: [f / "reel.wav", "-o", f / "o.wav", "--cutoff", "3k", "--model",
                                     nan_model(f / "nan.onnx")], "NaN or infinite values", 1),
    "--provider cuda without a GPU": (lambda f: [f / "reel.wav", "-o", f / "o.wav", "--provider", "cuda"],
                                      "no NVIDIA driver", 1),
}


@pytest.mark.parametrize("case", list(STREAM_CASES))
def test_restore_stream_refuses(reel, case):
    setup, message, code = STREAM_CASES[case]
    if case == "--provider cuda without a GPU" and os.path.exists("/proc/driver/nvidia/version"):
        pytest.skip("this machine has an NVIDIA driver")
    args = setup(reel)
    if "--model" not in args:
        args += ["--model", reel / "identity.onnx"]
    args += ["-q"]  # the header would come first: the error itself must be one line
    refused(stream, args, reel, message, code)


# -------------------------------------------------------------------------- restore-degrade
DEGRADE_CASES = {
    "missing input": (lambda f: [f / "nope.wav", "-o", f / "d.wav"], "does not exist", 2),
    "-o is the input": (lambda f: [f / "reel.wav", "-o", f / "reel.wav"], "would overwrite the input", 1),
    "--target is -o": (lambda f: [f / "reel.wav", "-o", f / "d.wav", "--target", f / "d.wav"], "name the same file", 1),
    "--target is the input": (lambda f: [f / "reel.wav", "-o", f / "d.wav", "--target", f / "reel.wav"],
                              "would overwrite the input", 1),
    "-o exists": (lambda f: [f / "reel.wav", "-o", f / "reel441.wav"], "exists; pass -y", 1),
    "truncated input": (lambda f: [make(f / "cut.wav", (f / "reel.wav").read_bytes()[:20000]),
                                   "-o", f / "d.wav"], "truncated", 1),
    "truncated Ogg": (lambda f: [make(f / "cut.ogg", ogg_bytes(f)[:-3000]), "-o", f / "d.wav"],
                      "the Ogg stream ends without its last page", 1),
    "NaN input": (lambda f: [write(f / "nan.wav", np.full(SR, np.nan)), "-o", f / "d.wav"], "finite", 1),
    "one sample": (lambda f: [write(f / "one.wav", np.full(1, 0.1)), "-o", f / "d.wav"], "", 1),
    "ten samples": (lambda f: [write(f / "ten.wav", np.full(10, 0.1)), "-o", f / "d.wav"], "", 1),
    "text input": (lambda f: [make(f / "t.wav", "x"), "-o", f / "d.wav"],
                   "expected a readable audio file", 1),
    "--cutoff above Nyquist": (lambda f: [f / "reel.wav", "-o", f / "d.wav", "--cutoff", "30k"], "below 24000 Hz", 1),
    "--cutoff words": (lambda f: [f / "reel.wav", "-o", f / "d.wav", "--cutoff", "warm"], "like 3000, 3k", 1),
    "--hiss loud": (lambda f: [f / "reel.wav", "-o", f / "d.wav", "--hiss", "loud"], "like -40dB", 1),
    "--hum-level +3dB": (lambda f: [f / "reel.wav", "-o", f / "d.wav", "--hum-level", "+3dB"], "at or below 0", 1),
    "-o not audio": (lambda f: [f / "reel.wav", "-o", f / "d.txt"], "expected an audio file name", 1),
    "-o missing folder": (lambda f: [f / "reel.wav", "-o", f / "no" / "d.wav"], "does not exist", 1),
    "--order 0": (lambda f: [f / "reel.wav", "-o", f / "d.wav", "--order", "0"], "--order", 2),
}


@pytest.mark.parametrize("case", list(DEGRADE_CASES))
def test_restore_degrade_refuses(reel, case):
    setup, message, code = DEGRADE_CASES[case]
    refused(degrade, setup(reel), reel, message, code)


# ----------------------------------------------------------------------------- restore-eval
def _eval(f, *extra):
    return ["--reference", f / "reel.wav", "--restored", f / "reel.wav", *extra]


EVAL_CASES = {
    "--json is the reference": (lambda f: _eval(f, "--json", f / "reel.wav"), "would overwrite the input", 1),
    "--figure is the restored": (lambda f: ["--reference", f / "reel441.wav", "--restored", f / "reel.wav",
                                            "--figure", f / "reel.wav"], "would overwrite the input", 1),
    "--json is --figure": (lambda f: _eval(f, "--json", f / "x.png", "--figure", f / "x.png"), "name the same file", 1),
    "--json exists": (lambda f: _eval(f, "--json", f / "reel441.wav"), "exists; pass -y", 1),
    "rates differ": (lambda f: ["--reference", f / "reel.wav", "--restored", f / "reel441.wav"], "resample it first", 1),
    "channels differ": (lambda f: ["--reference", f / "reel.wav", "--restored",
                                   write(f / "st.wav", np.zeros((SR, 2)))], "channel(s)", 1),
    "missing restored": (lambda f: ["--reference", f / "reel.wav", "--restored", f / "nope.wav"], "found none", 1),
    "one sample": (lambda f: ["--reference", write(f / "a.wav", np.full(1, 0.1)), "--restored",
                              write(f / "b.wav", np.full(1, 0.1))], "", 1),
    "NaN restored": (lambda f: ["--reference", f / "reel.wav", "--restored",
                                write(f / "n.wav", np.full(int(0.6 * SR), np.nan))], "NaN", 1),
    "--cutoff above Nyquist": (lambda f: _eval(f, "--cutoff", "30k"), "below Nyquist", 1),
    "--cutoff words": (lambda f: _eval(f, "--cutoff", "3x"), "like 3000, 3k", 2),
}


@pytest.mark.parametrize("case", list(EVAL_CASES))
def test_restore_eval_refuses(reel, case):
    setup, message, code = EVAL_CASES[case]
    refused(evaluate, setup(reel), reel, message, code)


def test_a_pcm_output_that_would_clip_is_refused_not_written(tmp_path):
    from reelrestore.engine.io import AudioError, FileSink

    sink = FileSink(tmp_path / "o.wav", SR, 1, "PCM_16")
    sink.write(np.full((1, 100), 1.5, np.float32))
    with pytest.raises(AudioError, match="100 samples would clip in PCM_16 .peak \\+3.5 dBFS.; nothing was written"):
        sink.finish()
    assert list(tmp_path.iterdir()) == []
    float_sink = FileSink(tmp_path / "f.wav", SR, 1, "FLOAT")  # a float file holds it: kept, peak reported
    float_sink.write(np.full((1, 100), 1.5, np.float32))
    float_sink.finish()
    assert float_sink.peak == 1.5 and sf.read(tmp_path / "f.wav")[0].max() == 1.5


# ----------------------------------------------------------------------------- interruptions
@pytest.mark.slow
@pytest.mark.parametrize("command", ["restore-stream", "restore-degrade"])
def test_signals_at_random_moments_leave_nothing_or_complete_files(tmp_path, identity_model, command):
    """SIGINT, SIGTERM and SIGHUP at random moments (fixed seed): exit 130/143/129 (or 0
    when the run finished first), at most one line, no traceback, outputs absent or
    complete, no temporary file."""
    src = tmp_path / "long.wav"
    sf.write(src, music(20.0, 2), SR, subtype="FLOAT")
    rng = np.random.default_rng(0)
    codes = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129}
    for i, sig in enumerate([signal.SIGINT, signal.SIGTERM, signal.SIGHUP] * 2):
        out, extra = tmp_path / f"o{i}.wav", tmp_path / f"x{i}.wav"
        if command == "restore-stream":
            cmd = [sys.executable, "-m", "reelrestore.engine", str(src), "-o", str(out), "--output-added", str(extra),
                   "--report", str(tmp_path / f"r{i}.json"), "--model", str(identity_model), "--cutoff", "3k",
                   "--block-size", "256", "-q"]
        else:
            cmd = [sys.executable, "-m", "reelrestore.training.degrade_cli", str(src), "-o", str(out),
                   "--target", str(extra), "--clicks", "5", "--wow", "0.1", "-q"]
        proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
        time.sleep(float(rng.uniform(0.3, 2.5)))
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
        # 128 + n from the command's own handler; -n when the signal came before Python
        # had started the command (killed by it, which the shell reports as 128 + n too)
        assert proc.returncode in (codes[sig], -sig, 0), (sig, proc.returncode, err)
        assert "Traceback" not in err and err.count("\n") <= 1, err
        for path in (out, extra):
            if path.exists():  # only a complete file may be there
                assert sf.info(path).frames == 20 * SR, (sig, path)
        if proc.returncode == 0:
            assert out.exists() and extra.exists()
        assert not [p.name for p in tmp_path.iterdir() if ".partial" in p.name or p.name.startswith(".rr-")]


DEFERRED = """
import os, signal, sys, time
from reelrestore.engine.safety import signals_as_interrupts, signals_deferred
sig = getattr(signal, sys.argv[1])
seen = []
with signals_as_interrupts():
    try:
        with signals_deferred():  # as around `import torch`: the signal must wait for the end
            os.kill(os.getpid(), sig)
            time.sleep(0.2)
            seen.append("block finished")
        seen.append("went on")
    except KeyboardInterrupt as exc:
        seen.append(type(exc).__name__)
print(",".join(seen))
"""


@pytest.mark.parametrize("name, raised", [("SIGINT", "KeyboardInterrupt"), ("SIGTERM", "Terminated"),
                                          ("SIGHUP", "Terminated")])
def test_a_signal_during_a_native_import_waits_for_the_import_to_end(name, raised):
    # torch raising KeyboardInterrupt inside its C++ start-up aborted restore-export with
    # SIGABRT (seen in CI); held, the stop arrives after the block, as a clean interrupt
    out = subprocess.run([sys.executable, "-c", DEFERRED, name], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"block finished,{raised}"


LEFT_BEHIND = """
import os, signal, sys, click
from reelrestore.engine.safety import guarded

class HalfBuilt:  # as llvmlite's ObjectRef when numba's compiling is interrupted
    def __del__(self):
        raise AttributeError("half-built: no _as_parameter_")

left = []

@click.command()
@guarded("prog")
def main():
    left.append(HalfBuilt())
    os.kill(os.getpid(), getattr(signal, sys.argv[1]))
    signal.pause()

main(args=[])
"""


@pytest.mark.parametrize("name, code", [("SIGINT", 130), ("SIGTERM", 143)])
def test_a_stop_ends_in_one_line_even_when_a_finaliser_complains_at_exit(name, code):
    # seen in CI: Ctrl-C while numba compiled a kernel left an object whose __del__ raised
    # at exit, and "Exception ignored in ... Traceback" followed the command's one line
    out = subprocess.run([sys.executable, "-c", LEFT_BEHIND, name], capture_output=True, text=True, timeout=60)
    assert out.returncode == code, out.stderr
    assert out.stderr.count("\n") == 1 and "stopped by" in out.stderr and "Traceback" not in out.stderr, out.stderr


@pytest.mark.parametrize("command", ["restore-stream", "restore-degrade", "restore-eval"])
def test_a_full_disk_ends_in_one_line_and_leaves_nothing(reel, command):
    """`ulimit -f 64`: any file beyond 64 KiB fails with EFBIG, as on a full disk."""
    src = write(reel / "long.wav", music(3.0, 2), subtype="PCM_16")  # 560 KiB: the input itself is readable
    args = {
        "restore-stream": ["-m", "reelrestore.engine", src, "-o", reel / "o.wav", "--model", reel / "identity.onnx",
                           "--cutoff", "3k", "-q"],
        "restore-degrade": ["-m", "reelrestore.training.degrade_cli", src, "-o", reel / "d.wav", "-q"],
        "restore-eval": ["-m", "reelrestore.training.eval_cli", "--reference", src, "--restored", src,
                         "--figure", reel / "f.png", "-q"],
    }[command]
    before = snapshot(reel)
    cmd = ["bash", "-c", 'ulimit -f 64 && exec "$0" "$@"', sys.executable, *map(str, args)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith(f"{command}: error: ") and done.stderr.count("\n") == 1, done.stderr
    assert "is the disk full?" in done.stderr, done.stderr
    assert snapshot(reel) == before


BENCH_CASES = {
    "--json is the model": (lambda f: ["--model", f / "identity.onnx", "--json", f / "identity.onnx"],
                            "would overwrite the input", 1),
    "--json exists": (lambda f: ["--json", f / "reel.wav"], "exists; pass -y", 1),
    "--plot in a missing folder": (lambda f: ["--plot", f / "no" / "p.png"], "does not exist", 1),
    "--json is --plot": (lambda f: ["--json", f / "b.out", "--plot", f / "b.out"], "name the same file", 1),
}


@pytest.mark.parametrize("case", list(BENCH_CASES))
def test_restore_bench_refuses(reel, case):
    from reelrestore.bench.cli import main as bench

    setup, message, code = BENCH_CASES[case]
    refused(bench, setup(reel) + ["--quick", "--only", "stft"], reel, message, code)


STOPPED_TOOL = r"""
import os, signal, sys, time
from reelrestore.engine.safety import stops_in_one_line

@stops_in_one_line("tool", "what it left")
def main(signum):
    if signum:
        os.kill(os.getpid(), signum)  # as a terminal's hang-up or a service manager's stop arrives
        time.sleep(30)
    return "done"

print(main(int(sys.argv[1])))
"""


TORN_DOWN = r"""
import atexit, os, signal, sys, time
import click
from reelrestore.engine.safety import guarded, stops_in_one_line

atexit.register(lambda: print("the interpreter's teardown ran"))  # as a native library's finaliser would

@click.command()
@click.argument("signum", type=int)
@guarded("command")
def command(signum):
    os.kill(os.getpid(), signum)
    time.sleep(30)

@stops_in_one_line("tool")
def tool(signum):
    os.kill(os.getpid(), signum)
    time.sleep(30)

if sys.argv[1] == "command":
    command([sys.argv[2]])
tool(int(sys.argv[2]))
"""


@pytest.mark.parametrize("kind", ["command", "tool"])
def test_a_stop_ends_the_process_without_the_interpreters_teardown(kind, tmp_path):
    """After a signal's one line nothing more runs: the teardown would run native
    libraries' finalisers over the work the signal broke into (a SIGSEGV at exit, once)."""
    script = tmp_path / "torn.py"
    script.write_text(TORN_DOWN)
    done = subprocess.run([sys.executable, str(script), kind, str(int(signal.SIGHUP))], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 129 and done.stdout == "", (done.returncode, done.stdout, done.stderr)
    assert done.stderr.startswith(f"{kind}: stopped by SIGHUP") and done.stderr.count("\n") == 1


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_training_tool_stopped_by_a_signal_says_so_in_one_line(signum, tmp_path):
    script = tmp_path / "tool.py"
    script.write_text(STOPPED_TOOL)
    done = subprocess.run([sys.executable, str(script), str(int(signum))], capture_output=True, text=True,
                          timeout=60)
    name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
    assert done.returncode == 128 + signum and done.stdout == ""
    assert done.stderr == f"tool: stopped by {name}; what it left\n"  # one line, no traceback


def test_a_training_tool_that_is_not_stopped_returns_and_raises_as_it_would():
    from reelrestore.engine.safety import stops_in_one_line

    @stops_in_one_line("tool")
    def main(fail: bool) -> str:
        if fail:
            raise ValueError("bad input")
        return "done"

    assert main(False) == "done"
    with pytest.raises(ValueError, match="bad input"):
        main(True)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handlers are given back
