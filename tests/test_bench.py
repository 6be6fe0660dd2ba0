"""restore-bench: the quick run writes a JSON with every section, well formed.

Checks the structure (keys, types, signs), never the figures: timings are the machine's,
not the code's.
"""

import json
import math

import pytest
from click.testing import CliRunner

pytest.importorskip("onnx")  # the bench builds its own identity model with it

from reelrestore.bench.cli import SECTIONS, main  # noqa: E402
from reelrestore.engine.contract import DEFAULT_CONTRACT  # noqa: E402

# Differences that may rightly come out below zero (noise between two measurements).
SIGNED = {"growth_mb"}


def numbers(tree, path=""):
    """(path, value) of every number in a JSON tree."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from numbers(value, f"{path}.{key}")
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            yield from numbers(value, f"{path}[{i}]")
    elif isinstance(tree, (int, float)) and not isinstance(tree, bool):
        yield path, tree


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bench")
    out, plot = tmp / "out.json", tmp / "out.png"
    result = CliRunner().invoke(main, ["--quick", "--json", str(out), "--plot", str(plot), "--workdir", str(tmp)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return json.loads(out.read_text()), result.output, plot


def test_quick_run_reports_every_section(quick_run):
    report, output, _ = quick_run
    assert set(SECTIONS) - {"hop", "rtf"} <= set(report)
    assert {"per_hop", "throughput", "machine", "model", "bench"} <= set(report)
    assert report["skipped"] == {} and report["bench"]["quick"] is True
    assert "per-hop compute" in output and "real-time factor" in output


def test_every_number_is_finite_and_non_negative(quick_run):
    report, _, _ = quick_run
    found = list(numbers(report))
    assert len(found) > 100
    for path, value in found:
        assert math.isfinite(value), path
        assert value >= 0 or path.rsplit(".", 1)[-1] in SIGNED, f"{path} = {value}"


def test_per_hop_figures_are_against_the_hop_budget(quick_run):
    hop = quick_run[0]["per_hop"]
    assert hop["hop_samples"] == 12000 and hop["budget_ms"] == pytest.approx(250.0)
    assert set(hop["ms"]) == set(hop["process_cpu_ms"]) == {"n", "p50", "p95", "p99", "max", "mean"}
    assert set(hop["fraction_of_budget"]) == {"p50", "p95", "p99", "max"}
    assert hop["ms"]["p50"] <= hop["ms"]["p99"] <= hop["ms"]["max"]
    assert isinstance(hop["samples_ms"], list) and len(hop["samples_ms"]) == hop["ms"]["n"]
    assert {"stft", "inference", "istft", "other", "total"} <= set(hop["stages_ms"])


def test_throughput_sweeps_name_the_largest_real_time_count(quick_run):
    throughput = quick_run[0]["throughput"]
    assert set(throughput) == {"channels", "streams_round_robin", "streams_threads"}
    for sweep in throughput.values():
        counts = [p["count"] for p in sweep["points"]]
        assert counts == sorted(counts) and counts[0] == 1
        assert isinstance(sweep["max_realtime"], int) and isinstance(sweep["bounded"], bool)


def test_latency_separates_algorithmic_from_measured(quick_run):
    latency = quick_run[0]["latency"]
    assert latency["latency_samples"] == 22975 and latency["derived_ms"] == pytest.approx(22975 / 48)
    for key in ("measured_ms", "algorithmic_ms", "added_ms", "compute_ms"):
        assert set(latency[key]) == {"n", "p50", "p95", "p99", "max", "mean"}
    assert latency["algorithmic_ms"]["max"] <= latency["derived_worst_with_block_ms"] + 1e-6
    assert isinstance(latency["late_blocks"], int)


def test_stft_comparison_covers_each_implementation_and_size(quick_run):
    stft = quick_run[0]["stft"]
    assert set(stft["sizes"]) == {"frame", "10s"}
    c = DEFAULT_CONTRACT
    assert stft["sizes"]["frame"]["spectrum_shape"] == [2, c.n_bins, c.frames_per_frame]
    for size in stft["sizes"].values():
        impls = size["implementations"]
        assert set(impls) | set(stft["skipped"]) == {"engine", "numpy", "scipy", "torch"}
        assert impls["engine"]["forward_vs_engine"] == 1.0
        for row in impls.values():
            assert isinstance(row["name"], str) and row["forward_max_rel_error"] < 1e-3


def test_inference_says_what_ran_and_what_was_skipped(quick_run):
    inference = quick_run[0]["inference"]
    assert {(r["threads"], r["batch"]) for r in inference["rows"]} >= {(1, 1), (2, 1), (1, 8), (2, 8)}
    assert all(isinstance(r["provider"], str) for r in inference["rows"])
    assert {"fp16", "int8", "torch_eager"} <= set(inference["skipped"])  # the identity model offers none


def test_memory_and_machine_are_described(quick_run):
    report, _, plot = quick_run
    assert [r["minutes"] for r in report["memory"]["runs"]] == sorted(r["minutes"] for r in report["memory"]["runs"])
    assert report["memory"]["baseline_rss_mb"] > 0
    machine = report["machine"]
    assert isinstance(machine["cpu_model"], str) and machine["usable_cores"] >= 1
    assert {"numpy", "numba", "onnxruntime", "torch"} <= set(machine["versions"])
    if report["bench"]["plot"] == str(plot):
        assert plot.stat().st_size > 0
    else:
        assert report["bench"]["plot"].startswith("not drawn: matplotlib")


def test_train_speed_measures_data_and_train_rates(tmp_path):
    import numpy as np
    import soundfile as sf

    from reelrestore.bench import train_speed

    rng = np.random.default_rng(0)
    for i in range(4):
        sf.write(tmp_path / f"clip{i}.wav", 0.1 * rng.standard_normal(48000 * 2), 48000)
    out = tmp_path / "speed.json"
    train_speed.main(["--config", "training/configs/realtime_real.toml", "--data", str(tmp_path), "--steps", "2",
                      "--warmup", "1", "--batch", "2", "--json", str(out), "model.width=16", "model.layers=2",
                      "model.n_bands=24", "data.val_fraction=0.25"])
    row = json.loads(out.read_text())["rows"][0]
    assert row["batch"] == 2 and row["device"] == "cpu"
    assert row["data_batches_per_s"] > 0 and row["train_steps_per_s"] > 0 and row["resident_steps_per_s"] > 0
    assert (row["segments"], row["passes"]) == (12, 1)  # 3 training clips of 2 s
    # more timed batches than the folder holds: it is read again, and the row says so
    train_speed.main(["--config", "training/configs/realtime_real.toml", "--data", str(tmp_path), "--steps", "5",
                      "--warmup", "1", "--batch", "4", "--json", str(out), "model.width=16", "model.layers=2",
                      "model.n_bands=24", "data.val_fraction=0.25"])
    row = json.loads(out.read_text())["rows"][0]
    assert (row["segments"], row["passes"], row["steps"]) == (12, 2, 5) and row["train_steps_per_s"] > 0
    # damage made on the device: the workers read and draw, the trainer's device damages
    train_speed.main(["--config", "training/configs/realtime_real.toml", "--data", str(tmp_path), "--steps", "2",
                      "--warmup", "1", "--batch", "2", "--json", str(out), "model.width=16", "model.layers=2",
                      "model.n_bands=24", "data.val_fraction=0.25", "data.extra.damage_on=device"])
    row = json.loads(out.read_text())["rows"][0]
    assert row["train_steps_per_s"] > 0 and row["resident_steps_per_s"] > 0
    with pytest.raises(SystemExit, match="steps >= 16 for 2 workers"):  # the loader's buffer would be timed
        train_speed.main(["--config", "training/configs/realtime_real.toml", "--data", str(tmp_path),
                          "--steps", "4", "--workers", "2"])
    with pytest.raises(SystemExit, match="at least"):
        train_speed.main(["--config", "training/configs/realtime_real.toml", "--data", str(tmp_path),
                          "--steps", "50", "--batch", "64"])


def test_quiet_bench_prints_nothing(tmp_path):
    result = CliRunner().invoke(main, ["--quick", "--only", "stft", "-q", "--workdir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.output == ""


def test_the_low_latency_framing_is_benchmarked_hop_by_hop_with_every_hop_restoring(tmp_path):
    out = tmp_path / "low.json"
    result = CliRunner().invoke(main, ["--quick", "--only", "hop", "--latency", "low", "--threads", "1",
                                       "--channels", "2", "--json", str(out), "--workdir", str(tmp_path)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    report = json.loads(out.read_text())
    assert report["model"]["latency"] == "low" and report["model"]["hop_samples"] == 512
    assert report["model"]["latency_samples"] == 512 + 512 + 256 - 1
    assert report["per_hop"]["budget_ms"] == pytest.approx(1000 * 512 / DEFAULT_CONTRACT.sample_rate)
    assert report["bench"]["config"]["threads"] == 1
    assert report["per_hop"]["stages_ms"]["inference"] > 0  # a fixed cutoff: the model runs from the first hop


def test_the_stall_probe_bins_each_wakeup_by_its_lateness_and_reports_every_cpu():
    import os

    from reelrestore.bench.stalls import EDGES_MS, histogram, probes_running

    assert histogram([0.0, 0.99, 1.0, 4.9, 5.0, 12.0, 60.0]) == [2, 1, 1, 1, 1, 0, 1]
    assert len(histogram([])) == len(EDGES_MS) + 1
    with probes_running() as stalls:
        import time

        time.sleep(1.0)
    assert sorted(p["cpu"] for p in stalls["per_cpu"]) == sorted(os.sched_getaffinity(0))
    for p in stalls["per_cpu"]:
        assert sum(p["late_per_bin"]) == p["wakeups"] > 100  # ~1000 a second, whatever the load
        assert p["worst_ms"] >= 0.0
    assert stalls["stalls_5ms_or_more"] == sum(sum(p["late_per_bin"][3:]) for p in stalls["per_cpu"])
    assert stalls["steal_seconds"] is None or stalls["steal_seconds"] >= 0.0
