"""Measure live restoration through a real sound server: latency, underruns, content.

    python -m reelrestore.bench.live_loop --model MODEL.onnx --seconds 60 [--block 512] [--latency low]

Starts a private JACK server (dummy driver: a sample-accurate clock, no hardware), runs
`restore-stream --input-device system --device system` and a test rig as two JACK
clients, and wires rig → restore-stream → rig with jack_connect. The rig's own loop
(output straight to input) is measured first, so

    measured latency = delay(rig → restore-stream → rig) - delay(rig → rig)

is restore-stream's input-to-output latency alone, to compare with what it reports.
The tests use the same functions on shorter runs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

import click
import numpy as np
from scipy import signal as sps

from reelrestore.bench.stalls import probes_running

SR = 48000


@contextmanager
def jack_server(block: int = 512, realtime: bool = False):
    """A private JACK server; yields the environment its clients need. realtime: the
    server and its clients' process threads under real-time scheduling, as a sound
    server runs for live work (needs the permission); else ordinary threads (tests)."""
    name = f"reelrestore-{os.getpid()}-{time.monotonic_ns()}"
    env = dict(os.environ, JACK_DEFAULT_SERVER=name, JACK_NO_AUDIO_RESERVATION="1")
    server = subprocess.Popen(
        ["jackd", "-n", name, "--realtime" if realtime else "--no-realtime", "-X", "loopback",
         "-d", "dummy", "-r", str(SR), "-p", str(block)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while subprocess.run(["jack_lsp"], env=env, capture_output=True).returncode != 0:
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("jackd did not start")
            time.sleep(0.1)
        yield env
    finally:
        server.terminate()
        server.wait(timeout=10)


def ports(env) -> set[str]:
    return set(subprocess.run(["jack_lsp"], env=env, capture_output=True, text=True).stdout.split())


def wait_new_ports(env, before: set[str], proc, count: int = 4) -> tuple[list[str], list[str]]:
    """(inputs, outputs) of the client that `proc` registered after `before`."""
    deadline = time.monotonic() + 30
    while True:
        new = ports(env) - before
        if len(new) >= count:
            return sorted(p for p in new if ":in_" in p), sorted(p for p in new if ":out_" in p)
        if proc.poll() is not None:
            raise RuntimeError(f"client exited: {proc.communicate()}")
        if time.monotonic() > deadline:
            raise RuntimeError("client ports did not appear")
        time.sleep(0.1)


def connect(env, pairs) -> None:
    for src, dst in pairs:
        subprocess.run(["jack_connect", src, dst], env=env, check=True)


def start_rig(env, workdir: Path, play: np.ndarray, seconds: float, tag: str):
    """Start the rig playing `play`; returns (process, inputs, outputs, recording path)."""
    np.save(workdir / f"{tag}_play.npy", play)
    ready, record = workdir / f"{tag}.ready", workdir / f"{tag}_rec.npy"
    before = ports(env)
    rig = subprocess.Popen([sys.executable, "-m", "reelrestore.bench.jack_rig", str(workdir / f"{tag}_play.npy"),
                            str(record), str(seconds), str(ready)], env=env)
    ins, outs = wait_new_ports(env, before, rig)
    while not ready.exists():
        time.sleep(0.02)
    return rig, ins, outs, record


def delay(played: np.ndarray, recorded: np.ndarray) -> int:
    """Samples by which `recorded` lags `played` (cross-correlation peak, channel 0)."""
    corr = sps.correlate(recorded[:, 0], played[:, 0], mode="full", method="fft")
    return int(np.argmax(corr)) - (len(played) - 1)


def probe_signal(seconds: float, lead: float = 1.0, seed: int = 11, lowpass_hz: float | None = None) -> np.ndarray:
    """(n, 2): silence for `lead` s, then detuned partials + noise with clicks twice a
    second; with `lowpass_hz`, cut there by a brick wall (a reel that lost its highs)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    body = np.zeros((t.size, 2))
    for c in range(2):
        f0 = rng.uniform(110, 440)
        body[:, c] = sum(0.3 / k * np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6)) for k in range(1, 12))
    body = 0.25 * body + 0.005 * rng.standard_normal(body.shape)
    body[:: SR // 2] += 0.2
    if lowpass_hz is not None:
        spec = np.fft.rfft(body, axis=0)
        spec[np.fft.rfftfreq(t.size, 1 / SR) > lowpass_hz] = 0
        body = np.fft.irfft(spec, t.size, axis=0)
    return np.concatenate([np.zeros((int(lead * SR), 2)), body]).astype(np.float32)


def rig_loop_delay(env, workdir: Path) -> int:
    calib = probe_signal(2.0)
    rig, ins, outs, record = start_rig(env, workdir, calib, 4.0, "calib")
    connect(env, zip(outs, ins))
    rig.wait(timeout=60)
    return delay(calib, np.load(record))


def measure(model: Path, seconds: float, workdir: Path, env, block: int = 512, cutoff: str = "3000",
            extra_args: tuple[str, ...] = (), lowpass_hz: float | None = None) -> dict:
    """Run restore-stream live on the rig's signal (cut at `lowpass_hz`, if given) for
    `seconds`; return report + measurements."""
    rig_delay = rig_loop_delay(env, workdir)
    report = workdir / "live.json"
    before = ports(env)
    restore = subprocess.Popen(
        [sys.executable, "-m", "reelrestore.engine", "--input-device", "system", "--device", "system",
         "--device-block", str(block), "--model", str(model), "--cutoff", cutoff, "--report", str(report),
         "-q", *extra_args],
        env=env, stderr=subprocess.PIPE, text=True,
    )
    restore_in, restore_out = wait_new_ports(env, before, restore)
    time.sleep(1.0)
    played = probe_signal(seconds, lead=2.0, lowpass_hz=lowpass_hz)
    rig, rig_in, rig_out, record = start_rig(env, workdir, played, seconds + 4.0, "run")
    connect(env, list(zip(rig_out, restore_in)) + list(zip(restore_out, rig_in)))
    rig.wait(timeout=seconds + 120)
    restore.send_signal(signal.SIGINT)
    try:
        _, err = restore.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        restore.kill()  # never leave a live engine running behind a failed measurement
        _, err = restore.communicate()
        raise RuntimeError(f"restore-stream did not stop within 30 s of Ctrl-C: {err[-500:]}") from None
    if restore.returncode != 130:
        raise RuntimeError(f"restore-stream exited {restore.returncode}: {err}")
    got = json.loads(report.read_text())
    recorded = np.load(record)
    measured = delay(played, recorded) - rig_delay
    return {"report": got, "played": played, "recorded": recorded, "rig_delay": rig_delay,
            "measured_latency": measured, "aligned": recorded[measured + rig_delay :][: len(played)]}


def band_gain_db(played: np.ndarray, aligned: np.ndarray, start_s: float, stop_s: float):
    """(frequencies, gain in dB) of aligned over played, channel 0: the median over 1 s
    pieces of their Welch spectra's ratio, so one glitched second cannot move it."""
    gains = []
    for start in np.arange(start_s, stop_s - 1.0 + 1e-9, 1.0):
        span = slice(int(start * SR), int((start + 1.0) * SR))
        f, p_in = sps.welch(played[span, 0], SR, nperseg=4096)
        _, p_out = sps.welch(aligned[span, 0], SR, nperseg=4096)
        gains.append(10 * np.log10(np.maximum(p_out, 1e-30) / np.maximum(p_in, 1e-30)))
    return f, np.median(gains, axis=0)


@click.command()
@click.option("--model", type=click.Path(exists=True, path_type=Path), required=True)
@click.option("--seconds", type=float, default=60.0, show_default=True)
@click.option("--block", type=int, default=512, show_default=True, help="JACK period and device block.")
@click.option("--cutoff", default="3000", show_default=True)
@click.option("--latency", "mode", type=click.Choice(["full", "low"]), default="full", show_default=True,
              help="restore-stream's --latency.")
@click.option("--headroom-ms", type=float, help="restore-stream's --headroom-ms (default: its own).")
@click.option("--realtime/--no-realtime", default=True, show_default=True, help="restore-stream's --realtime.")
@click.option("--jack-realtime/--jack-no-realtime", default=False, show_default=True,
              help="Run jackd (and so every client's process thread) under real-time scheduling.")
@click.option("--bypass", is_flag=True,
              help="restore-stream's --bypass: the same framing, rings and threads without restoring, "
                   "the floor the machine and the sound server set (a control for the underruns).")
@click.option("--stall-probes/--no-stall-probes", default=False, show_default=True,
              help="Also measure how late a highest-priority thread wakes on each CPU meanwhile "
                   "(bench/stalls.py; the probes wake 1000 times a second, which on a VM adds to the stalls).")
def main(model: Path, seconds: float, block: int, cutoff: str, mode: str, headroom_ms: float | None,
         realtime: bool, jack_realtime: bool, bypass: bool, stall_probes: bool) -> None:
    extra = ("--latency", mode, "--realtime" if realtime else "--no-realtime") + (("--bypass",) if bypass else ())
    extra += ("--headroom-ms", str(headroom_ms)) if headroom_ms is not None else ()
    with tempfile.TemporaryDirectory() as tmp, jack_server(block, jack_realtime) as env, \
            (probes_running() if stall_probes else nullcontext(None)) as stalls:
        m = measure(model, seconds, Path(tmp), env, block, cutoff, extra_args=extra)
    rep = m["report"]["playback"]
    out = {
        "seconds": seconds, "block": block, "jack_realtime": jack_realtime, "bypass": bypass,
        "rig_loop_delay": m["rig_delay"],
        "measured_latency_samples": m["measured_latency"],
        "measured_latency_ms": 1000 * m["measured_latency"] / SR,
        "reported_latency_samples": rep["latency"]["total"], "reported_latency_ms": rep["latency"]["total_ms"],
        "latency_terms": {k: rep["latency"][k] for k in ("restorer", "alignment", "headroom", "device_input",
                                                          "device_output")},
        **{k: rep[k] for k in ("underruns", "underruns_after_xrun", "missing_samples", "overruns", "device_xruns",
                               "played_seconds")},
        "margin": rep["margin"], "worker_realtime": rep["worker_realtime"],
        "real_time_factor": m["report"]["real_time_factor"],
        # with --stall-probes: how late a highest-priority thread woke on each CPU meanwhile,
        # stalls no program avoids (bench/stalls.py), beside which the underruns are to be read
        "machine_stalls": stalls,
    }
    click.echo(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
