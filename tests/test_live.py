"""Live restoration on a real (JACK, dummy-clocked) sound device.

The fixture starts a private JACK server; restore-stream and a test rig are separate JACK
clients, wired rig → restore-stream → rig with jack_connect, so what the rig records is
exactly what restore-stream played, sample-accurately timed by the JACK clock.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from reelrestore.bench.live_loop import band_gain_db, jack_server, measure

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("jackd") is None, reason="needs jackd (apt install jackd2)"),
]

SR, BLOCK = 48000, 512


def realtime_allowed() -> bool:
    """Whether a thread of this machine may take real-time scheduling (asked in a thread
    that ends with the answer)."""
    import threading

    from reelrestore.engine.live import realtime_scheduling

    got = []
    t = threading.Thread(target=lambda: got.append(realtime_scheduling()))
    t.start()
    t.join()
    return got[0]


def band_pieces(m: dict, start_s: float, stop_s: float, cut_hz: float) -> tuple[np.ndarray, list[np.ndarray]]:
    """The band gain (output over input, dB) of each 1 s piece of a live measurement, split
    into the pieces whose band below the cut came back within 1 dB and the rest. A dropout
    (an underrun or a device xrun under load) splatters a click 25 dB over the probe's
    valleys in its piece, so gains are judged piece by piece, not as a median that a
    loaded machine can tip."""
    clean = []
    for start in np.arange(start_s, stop_s - 1.0 + 1e-9, 1.0):
        f, gain_db = band_gain_db(m["played"], m["aligned"], start, start + 1.0)
        if np.all(np.abs(gain_db[(f > 200) & (f < cut_hz - 500)]) < 1.0):
            clean.append(gain_db)
    return f, clean


def assert_band_restored(m: dict, start_s: float, stop_s: float, cut_hz: float) -> None:
    """Below the cut the input passes unchanged and above it a band comes back, in every
    piece the device played without a dropout; pieces with one only where the report
    counted underruns or device xruns."""
    f, clean = band_pieces(m, start_s, stop_s, cut_hz)
    n_pieces = len(np.arange(start_s, stop_s - 1.0 + 1e-9, 1.0))
    playback = m["report"]["playback"]
    assert clean, "no piece passed the band below the cut unchanged"
    if len(clean) < n_pieces:
        assert playback["underruns"] + playback["device_xruns"] > 0, (len(clean), n_pieces, playback)
    for gain_db in clean:
        assert np.all(gain_db[(f > cut_hz + 1000) & (f < 16000)] > 20.0)


@pytest.fixture
def jack():
    with jack_server(BLOCK) as env:
        yield env


def test_live_duplex_restores_with_the_reported_latency_and_no_underruns(jack, tmp_path):
    # rig (a reel cut at 3 kHz) → restore-stream (live input, the DSP noise fill) → rig, for 20 s
    from reelrestore.training.baseline import build_onnx

    model = tmp_path / "baseline.onnx"
    build_onnx(model)
    recording = tmp_path / "duplex.wav"
    m = measure(model, 20.0, tmp_path, jack, BLOCK, "3000", extra_args=("-o", str(recording)), lowpass_hz=3000.0)
    report = m["report"]
    got = report["playback"]
    # latency: measured through the device equals the reported one within one block
    assert abs(m["measured_latency"] - got["latency"]["total"]) <= BLOCK, (m["measured_latency"], got["latency"])
    # no underruns at a sensible block size over 20 s: the worker always kept ahead.
    # The device's own xruns are reported but not bounded here: with a non-realtime jackd
    # they count how the OS scheduled every client on a shared 2-core machine (0-2 in 20 s
    # here, 18 once in CI), which is the live benchmark's figure, not the engine's behaviour.
    assert got["underruns"] == 0 and got["overruns"] == 0
    assert isinstance(got["device_xruns"], int) and got["device_xruns"] >= 0
    assert (got["last_xrun_seconds"] is None) == (got["device_xruns"] == 0)
    assert got["played_seconds"] >= 20.0
    # how close it came: every callback's spare output counted in 1 ms bins, none below
    # zero (no underruns) and the least under the prefill (restorer + headroom, 100 ms)
    margin = got["margin"]
    assert sum(margin["callbacks_per_ms"]) >= 20 * SR // BLOCK
    assert margin["callbacks_per_ms"][margin["least_ms"]] > 0 and 0 <= margin["least_ms"] < got["latency"]["prefill"] * 1000 // SR
    # the worker ran under real-time scheduling exactly where this machine allows it
    assert got["worker_realtime"] == realtime_allowed()
    # the cutoff it used, and when it locked the hiss floor read from the first seconds
    assert [c["hz"] for c in report["cutoffs"]] == [3000.0, 3000.0]
    assert {e["channel"] for e in report["cutoff_timeline"]} == {0, 1}
    # restored content present: a band above the 3 kHz cut where the input had none,
    # the input untouched below
    assert_band_restored(m, 3.0, 21.0, 3000.0)
    # with -o the restored feed is recorded: stopped by Ctrl-C, the file is kept, complete
    import soundfile as sf

    info = sf.info(recording)
    assert report["output"] == str(recording) and report["completed"] and report["interrupted"]
    assert info.samplerate == SR and info.channels == 2 and info.frames == report["samples_out"] >= 20 * SR



def test_low_latency_live_duplex_has_the_reported_latency(tmp_path):
    # --latency low at 256-sample device blocks: what the device measures between input and
    # speaker equals the reported latency within one block, and the band still comes back.
    from reelrestore.training.baseline import build_onnx

    block = 256
    model = tmp_path / "baseline.onnx"
    build_onnx(model)
    with jack_server(block) as env:
        # 30 ms of headroom: whether 10 ms (the default) keeps up depends on the machine's
        # load, which is the live benchmark's figure; latency and content are checked here
        extra = ("--latency", "low", "--headroom-ms", "30", "--no-realtime")
        m = measure(model, 10.0, tmp_path, env, block, "3000", extra_args=extra, lowpass_hz=3000.0)
    got = m["report"]["playback"]
    assert abs(m["measured_latency"] - got["latency"]["total"]) <= block, (m["measured_latency"], got["latency"])
    assert got["latency"]["restorer"] == 512 + 512 + 256 - 1  # lookahead + hop + crossfade - 1
    assert got["latency"]["headroom"] == 6 * block  # 30 ms, in whole blocks
    assert got["worker_realtime"] is False  # --no-realtime: not asked for
    assert_band_restored(m, 3.0, 11.0, 3000.0)

STARVE = """
import json, sys, time
from reelrestore.engine.live import LivePlayer
from reelrestore.engine.model import OnnxModel
from reelrestore.engine.stream import StreamConfig, StreamRestorer


class SleepyModel:
    '''The real model, except that calls 8-10 sleep 0.6 s each: a worker starved on purpose.'''

    def __init__(self, model):
        self.model, self.spec, self.calls = model, model.spec, 0

    def run(self, spectrum, cutoff_hz, position=None):
        self.calls += 1
        if 8 <= self.calls <= 10:
            time.sleep(0.6)
        return self.model.run(spectrum, cutoff_hz)


restorer = StreamRestorer(SleepyModel(OnnxModel(sys.argv[1])), 2, StreamConfig(cutoff_hz=3000.0))
player = LivePlayer(restorer, None, input_device="system", output_device="system", block_size=512,
                    headroom_seconds=0.05)
timeline, switch = [], {"before": sys.getswitchinterval()}


def tick():
    s = player.stats
    timeline.append([time.monotonic(), s.underruns, s.overruns, player.out_ring.available + player.in_ring.available])
    switch["playing"] = sys.getswitchinterval()
    if s.played_samples > 9 * 48000:
        player.request_stop()


player.run(tick)
switch["after"] = sys.getswitchinterval()
print(json.dumps({"summary": player.playback(), "prefill": player.latency.prefill, "timeline": timeline,
                  "switch": switch}))
"""


def test_a_starved_worker_causes_counted_underruns_and_the_stream_recovers_in_sync(jack, tmp_path, identity_model):
    script = tmp_path / "starve.py"
    script.write_text(STARVE)
    done = subprocess.run([sys.executable, str(script), str(identity_model)], env=jack,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    summary, timeline = result["summary"], np.array(result["timeline"])
    assert summary["underruns"] > 0 and summary["missing_samples"] > 0  # counted and reported
    t = timeline[:, 0] - timeline[0, 0]
    # recovered: no new underruns or overruns over the last 3 s
    late = t > t[-1] - 3.0
    assert timeline[late, 1].min() == timeline[-1, 1] and timeline[late, 2].min() == timeline[-1, 2]
    # in sync: audio queued in the pipeline is back to what it was before the stall, not more
    before = timeline[(t > 0.3) & (t < 1.5), 3]
    after = timeline[late, 3]
    assert after.max() <= before.max() + 2 * 12000  # within a hop's worth of burst either way
    assert abs(np.median(after) - np.median(before)) <= 12000
    # while it played, a callback waited at most 0.5 ms for the GIL; Python's 5 ms after
    assert result["switch"] == {"before": 0.005, "playing": 0.0005, "after": 0.005}


def test_play_and_write_writes_what_writing_alone_writes_at_the_asked_rate(jack, tmp_path, gain_model):
    """`--play -o` is the same run as `-o` with the sound card as a second sink: same first
    pass, same --sample-rate and --block-size, the same report schema plus playback."""
    import soundfile as sf

    from conftest import music

    src = tmp_path / "in.wav"
    sf.write(src, music(1.5, 2, seed=2), 48000, subtype="FLOAT")
    common = [sys.executable, "-m", "reelrestore.engine", str(src), "--model", str(gain_model),
              "--sample-rate", "44100", "--block-size", "4096", "-q"]
    alone, played = tmp_path / "alone.wav", tmp_path / "played.wav"
    for out, extra in ((alone, []), (played, ["--play", "--device", "system"])):
        done = subprocess.run(common + ["-o", str(out), "--report", str(out.with_suffix(".json")), *extra],
                              env=jack, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    a, rate_a = sf.read(alone, dtype="float32")
    b, rate_b = sf.read(played, dtype="float32")
    assert rate_a == rate_b == 44100 and a.shape == b.shape == (66150, 2)
    np.testing.assert_array_equal(a, b)
    file_report = json.loads(alone.with_suffix(".json").read_text())
    play_report = json.loads(played.with_suffix(".json").read_text())
    assert list(file_report) == list(play_report)
    assert file_report["playback"] is None and play_report["playback"]["played_seconds"] >= 1.5
    assert play_report["output_sample_rate"] == 44100 and play_report["completed"]


def test_keys_change_what_is_heard_but_never_the_file(jack, tmp_path):
    """--play -o through the real device, keys typed on a terminal: `b` twice. The file is
    bit-identical to the no-keys render; what the device played lost its restored band
    for a while, and the report lists what was auditioned."""
    import os

    import soundfile as sf

    from reelrestore.bench.live_loop import connect, start_rig, wait_new_ports
    from reelrestore.bench.live_loop import ports as jack_ports
    from reelrestore.training.baseline import build_onnx

    model = tmp_path / "baseline.onnx"
    build_onnx(model)
    rng = np.random.default_rng(4)
    spec = np.fft.rfft(0.1 * rng.standard_normal((8 * SR, 2)), axis=0)
    spec[np.fft.rfftfreq(8 * SR, 1 / SR) > 3000] = 0
    src = tmp_path / "reel.wav"
    sf.write(src, np.fft.irfft(spec, 8 * SR, axis=0).astype(np.float32), SR, subtype="FLOAT")
    common = [sys.executable, "-m", "reelrestore.engine", str(src), "--model", str(model), "--cutoff", "3000"]
    alone = tmp_path / "alone.wav"
    assert subprocess.run(common + ["-o", str(alone), "-q"], env=jack, timeout=120).returncode == 0

    rig, rig_in, _, record = start_rig(jack, tmp_path, np.zeros((12 * SR, 2), np.float32), 12.0, "monitor")
    master, terminal = os.openpty()
    before = jack_ports(jack)
    played_path, report = tmp_path / "played.wav", tmp_path / "run.json"
    proc = subprocess.Popen(common + ["-o", str(played_path), "--play", "--device", "system", "--report", str(report)],
                            stdin=terminal, env=jack, stderr=subprocess.PIPE, text=True)
    _, restore_out = wait_new_ports(jack, before, proc, count=2)
    connect(jack, zip(restore_out, rig_in))
    for _ in range(2):
        time.sleep(2.5)
        os.write(master, b"b")
    _, err = proc.communicate(timeout=60)
    rig.wait(timeout=60)
    os.close(master)
    os.close(terminal)
    assert proc.returncode == 0, err

    np.testing.assert_array_equal(sf.read(played_path)[0], sf.read(alone)[0])  # the render ignores the keys
    got = json.loads(report.read_text())
    assert [a["mode"] for a in got["playback"]["auditioned"]] == ["bypass", "restored"]
    # what was heard: 0.25 s pieces of the recording that carry sound; the band above the cut
    # vanished in some (bypass) and was there in others, the band below it stayed
    heard = np.load(record)[:, 0]
    f = np.fft.rfftfreq(SR // 4, 1 / SR)
    pieces = [np.abs(np.fft.rfft(heard[i : i + SR // 4])) ** 2 for i in range(0, heard.size - SR // 4, SR // 4)]
    low = np.array([p[(f > 300) & (f < 2500)].sum() for p in pieces])
    high = np.array([p[(f > 5000) & (f < 12000)].sum() for p in pieces])
    sounding = low > 0.1 * np.median(low[low > 0])
    ratio_db = 10 * np.log10(high[sounding] / low[sounding] + 1e-20)
    assert (ratio_db < -30).sum() >= 4 and (ratio_db > -10).sum() >= 8, (np.round(ratio_db, 1).tolist(), got["playback"]["auditioned"])


@pytest.mark.parametrize("stop", ["q", "ctrl-c"])
def test_a_stop_during_play_and_write_says_the_file_was_not_written_and_fails(jack, tmp_path, identity_model, stop):
    import os
    import signal

    import soundfile as sf

    from conftest import music

    src, out, report = tmp_path / "reel.wav", tmp_path / "out.wav", tmp_path / "run.json"
    sf.write(src, music(8.0, 2), SR, subtype="FLOAT")
    master, terminal = os.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "reelrestore.engine", str(src), "-o", str(out), "--play",
                             "--device", "system", "--model", str(identity_model), "--report", str(report)],
                            stdin=terminal, env=jack, stderr=subprocess.PIPE, text=True)
    time.sleep(4.0)
    if stop == "q":
        os.write(master, b"q")
    else:
        proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    os.close(master)
    os.close(terminal)
    code, how = (1, "q") if stop == "q" else (130, "Ctrl-C")
    assert proc.returncode == code and f"stopped by {how}" in err and f"nothing was written to {out}" in err
    got = json.loads(report.read_text())
    assert got["completed"] is False and got["output"] is None and got["interrupted"] is (stop == "ctrl-c")
    assert not out.exists() and [p for p in tmp_path.iterdir() if ".partial" in p.name] == []


def test_a_missing_device_points_to_the_device_list(jack, tmp_path, identity_model):
    import soundfile as sf

    from conftest import music

    src = tmp_path / "reel.wav"
    sf.write(src, music(0.5, 1), SR)
    for option in ("--device", "--input-device"):
        args = [str(src)] if option == "--device" else []
        done = subprocess.run([sys.executable, "-m", "reelrestore.engine", *args, option, "no-such-card",
                               "--model", str(identity_model)], env=jack, capture_output=True, text=True, timeout=60)
        assert done.returncode == 1 and "'no-such-card'" in done.stderr, done.stderr
        assert "restore-stream --list-devices lists them" in done.stderr and done.stderr.count("\n") == 1
