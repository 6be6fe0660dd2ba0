"""How long this machine keeps a ready thread from running: the floor under live audio.

    python -m reelrestore.bench.stalls --seconds 60          # one probe per CPU, JSON out

A probe is a process pinned to one CPU, at the highest real-time priority where the system
allows it, that sleeps 1 ms at a time and records how late each wake-up comes. Nothing on
the machine outranks it, so what it measures is what no program can avoid: the kernel's
and, on a virtual machine, the hypervisor's (another guest holding the physical core).
A live restorer with 10 ms of headroom underruns when its CPU stalls for about that long,
whatever its own speed: `live_loop --stall-probes` runs these probes beside a measurement.
They wake 2000 times a second in all, and on a virtual machine every wake-up asks the host
for a CPU: here (Firecracker) they raise the steal time from 0.1 to 0.8 s in 20 s, so a
measurement is cleaner without them and the machine is best characterised on its own.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager

import click

# Upper edges (ms) of the lateness histogram's bins; the last bin holds everything longer.
EDGES_MS = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0)
TICK_S = 0.001


def histogram(late_ms: list[float]) -> list[int]:
    """Wake-ups per lateness bin: bin i counts EDGES_MS[i-1] <= late < EDGES_MS[i]."""
    counts = [0] * (len(EDGES_MS) + 1)
    for late in late_ms:
        counts[sum(late >= edge for edge in EDGES_MS)] += 1
    return counts


def probe(seconds: float | None, cpu: int | None = None, ready=None) -> dict:
    """Sleep TICK_S at a time for `seconds` (None: until SIGTERM or SIGINT) on `cpu`;
    return the lateness histogram, the worst lateness and whether real-time priority held.
    `ready()` is called once a stop signal would be caught."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(os.sched_get_priority_max(os.SCHED_FIFO)))
        realtime = True
    except (OSError, AttributeError):
        realtime = False
    stop = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.append(True))
    if ready is not None:
        ready()
    late_ms: list[float] = []
    start = time.monotonic()
    end = start + seconds if seconds is not None else float("inf")
    while not stop:
        asleep = time.monotonic()
        if asleep >= end:
            break
        time.sleep(TICK_S)
        late_ms.append((time.monotonic() - asleep - TICK_S) * 1000.0)
    return {"cpu": cpu, "realtime": realtime, "seconds": round(time.monotonic() - start, 3),
            "wakeups": len(late_ms), "edges_ms": list(EDGES_MS), "late_per_bin": histogram(late_ms),
            "worst_ms": round(max(late_ms, default=0.0), 2)}


def steal_seconds() -> float | None:
    """CPU time the hypervisor gave to others while this machine's CPUs wanted it, summed
    over CPUs since boot (/proc/stat's steal); None where the system does not say."""
    try:
        with open("/proc/stat") as stat:
            fields = stat.readline().split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


@contextmanager
def probes_running():
    """One probe per CPU this process may use, for as long as the block runs; yields a dict
    that holds their results afterwards: per CPU, the stalls of 5 ms or more in all, the
    worst, and the CPU time the hypervisor took meanwhile (`steal_seconds`)."""
    procs = [subprocess.Popen([sys.executable, "-m", "reelrestore.bench.stalls", "--cpu", str(cpu)],
                              stdout=subprocess.PIPE, text=True)
             for cpu in sorted(os.sched_getaffinity(0))]
    for proc in procs:
        proc.stdout.readline()  # "probing": it now stops on SIGTERM with its figures
    results: dict = {}
    stolen = steal_seconds()
    try:
        yield results
    finally:
        per_cpu = []
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=30)  # the line after "probing"
            if proc.returncode == 0 and out.strip():
                per_cpu.append(json.loads(out))
        at_least_5 = EDGES_MS.index(5.0) + 1
        now = steal_seconds()
        results.update(per_cpu=per_cpu, steal_seconds=None if now is None or stolen is None else round(now - stolen, 2),
                       stalls_5ms_or_more=sum(sum(p["late_per_bin"][at_least_5:]) for p in per_cpu),
                       worst_ms=max((p["worst_ms"] for p in per_cpu), default=None))


@click.command()
@click.option("--seconds", type=float, help="How long to probe (default: until SIGTERM or Ctrl-C).")
@click.option("--cpu", type=int, help="Probe this CPU only, in this process (default: one probe per CPU).")
def main(seconds: float | None, cpu: int | None) -> None:
    """Measure how late a highest-priority thread wakes on this machine; print JSON."""
    if cpu is not None:
        click.echo(json.dumps(probe(seconds, cpu, ready=lambda: print("probing", flush=True))))
        return
    if seconds is None:
        raise click.UsageError("give --seconds (or --cpu N to probe one CPU until stopped)")
    with probes_running() as results:
        time.sleep(seconds)
    click.echo(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
