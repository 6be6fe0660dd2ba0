"""Timing statistics and the description of the machine the figures were measured on.

Every figure the bench reports is a median: of many calls for a kernel, or, for a
distribution (per-hop times), the field-wise median of the percentiles of repeated runs,
so one run disturbed by another job on the machine does not move the result.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import time
from dataclasses import asdict, dataclass, fields
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class Distribution:
    """Percentiles of a set of durations, in milliseconds."""

    n: int
    p50: float
    p95: float
    p99: float
    max: float
    mean: float

    @classmethod
    def of_seconds(cls, seconds: np.ndarray | list[float]) -> "Distribution":
        ms = 1000.0 * np.asarray(seconds, dtype=np.float64)
        if ms.size == 0:
            raise ValueError("expected at least one duration, got none")
        p50, p95, p99 = np.percentile(ms, [50, 95, 99])
        return cls(int(ms.size), float(p50), float(p95), float(p99), float(ms.max()), float(ms.mean()))

    @classmethod
    def median_of(cls, runs: list["Distribution"]) -> "Distribution":
        """Field-wise median of repeated runs (n is the total count)."""
        if not runs:
            raise ValueError("expected at least one run, got none")
        values = {f.name: float(np.median([getattr(r, f.name) for r in runs])) for f in fields(cls)}
        values["n"] = sum(r.n for r in runs)
        return cls(**values)

    def to_dict(self) -> dict:
        return asdict(self)


def time_calls(fn: Callable[[], object], repeats: int, warmup: int = 3, budget_s: float = 5.0) -> np.ndarray:
    """Seconds per call of `fn` over `repeats` calls, after `warmup` untimed calls; stops
    early (after at least 3 calls) once the timed calls have taken `budget_s`, so one slow
    configuration cannot stretch the bench by minutes."""
    for _ in range(warmup):
        fn()
    out: list[float] = []
    while len(out) < repeats and (len(out) < 3 or sum(out) < budget_s):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return np.array(out)


def median_ms(fn: Callable[[], object], repeats: int, warmup: int = 3, budget_s: float = 5.0) -> float:
    return float(1000.0 * np.median(time_calls(fn, repeats, warmup, budget_s)))


def _version(distribution: str) -> str | None:
    """Installed version, read from package metadata (importing torch just to ask is slow)."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def describe_machine() -> dict:
    """CPU, cores, load, and the versions of everything on the measured path."""
    import onnxruntime as ort

    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu_model": _cpu_model(),
        "logical_cores": os.cpu_count() or 0,
        "usable_cores": affinity or 0,
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(),
        "python": platform.python_version(),
        "ort_providers_available": ort.get_available_providers(),
        "ort_build": ort.get_device(),  # what this onnxruntime was built for, not what is present
        "versions": {
            "numpy": _version("numpy"), "numba": _version("numba"), "rocket-fft": _version("rocket-fft"),
            "onnxruntime": ort.__version__, "scipy": _version("scipy"), "torch": _version("torch"),
        },
    }
