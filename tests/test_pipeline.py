"""One driver for every mode: sources, sinks, `run`, one report, no import cycle."""

import ast
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
from conftest import music

from reelrestore.engine.io import AudioError, FileSink
from reelrestore.engine.live import DeviceSource, LatencyReport, LivePlayer, LiveStats, Ring, block_alignment
from reelrestore.engine.model import OnnxModel
from reelrestore.engine.pipeline import ArraySink, ArraySource, ResamplingSink, Tee, run
from reelrestore.engine.restore import RunReport, restore_array, restore_file
from reelrestore.engine.stream import StreamConfig, StreamRestorer

ENGINE = Path(__file__).resolve().parents[1] / "engine"


class Failing(ArraySource):
    """An array source whose third block is unreadable."""

    def blocks(self):
        for i, block in enumerate(super().blocks()):
            if i == 2:
                raise AudioError("sample 9 is NaN or infinite")
            yield block


def test_array_file_and_resampled_sinks_get_the_same_restoration(gain_model, tmp_path):
    x = music(1.3, 2, seed=3).T.copy()
    model = OnnxModel(gain_model)
    config = StreamConfig(cutoff_hz=3000.0)
    first = ArraySink(2)
    path = tmp_path / "out.wav"
    resampled = ResamplingSink(FileSink(tmp_path / "r.wav", 44100, 2, "FLOAT"), 48000, 44100, 2)
    result = run(ArraySource(x, 48000, 4096), StreamRestorer(model, 2, config),
                 Tee(first, FileSink(path, 48000, 2, "FLOAT"), resampled))
    assert result.completed and result.samples_in == result.samples_out == x.shape[1]
    again, _ = restore_array(x, model, config, block_size=777)  # another block size: same output
    np.testing.assert_allclose(first.audio, again, atol=1e-6)
    np.testing.assert_array_equal(sf.read(path, dtype="float32", always_2d=True)[0].T, first.audio)
    down = sf.read(tmp_path / "r.wav", dtype="float32", always_2d=True)[0].T
    np.testing.assert_allclose(down, soxr.resample(first.audio.T, 48000, 44100, quality="HQ").T, atol=1e-4)
    assert not np.allclose(first.audio, x, atol=1e-3)  # the gain model did restore something


def test_an_error_mid_stream_aborts_every_sink_and_leaves_no_file(gain_model, tmp_path):
    x = music(2.0, 1).T.copy()
    restorer = StreamRestorer(OnnxModel(gain_model), 1, StreamConfig(cutoff_hz=3000.0))
    (tmp_path / "out").mkdir()
    sink = Tee(ArraySink(1), FileSink(tmp_path / "out" / "out.wav", 48000, 1))
    with pytest.raises(AudioError, match="NaN"):
        run(Failing(x, 48000, 24000), restorer, sink, first_pass=False)
    assert list((tmp_path / "out").iterdir()) == []  # neither output nor partial file
    assert sink.sinks[0].audio is None


def test_a_stop_abandons_the_run_and_removes_the_partial_file(identity_model, tmp_path):
    x = music(3.0, 1).T.copy()
    calls = []
    (tmp_path / "out").mkdir()
    result = run(ArraySource(x, 48000, 12000), StreamRestorer(OnnxModel(identity_model), 1),
                 FileSink(tmp_path / "out" / "out.wav", 48000, 1), stop=lambda: len(calls.append(1) or calls) > 4)
    assert not result.completed and 0 < result.samples_in < x.shape[1]
    assert list((tmp_path / "out").iterdir()) == []


def test_a_live_feed_is_passed_through_while_the_cutoff_is_learned(gain_model):
    """Without the first pass (a device feed), nothing is restored before the lock."""
    x = music(2.0, 1, seed=5).T.copy()
    restorer = StreamRestorer(OnnxModel(gain_model), 1, StreamConfig())
    sink = ArraySink(1)
    run(ArraySource(x, 48000, 512), restorer, sink, first_pass=False)
    np.testing.assert_allclose(sink.audio, x, atol=1e-6)
    assert restorer.cutoff_timeline == []  # 2 s is too short to lock: still listening


def test_file_report_has_the_one_schema(identity_model, write_wav, tmp_path):
    src = write_wav("in.wav", music(0.5, 2))
    report = restore_file(src, tmp_path / "out.wav", OnnxModel(identity_model)).to_dict()
    assert list(report) == list(RunReport.__dataclass_fields__)
    assert report["completed"] and report["playback"] is None and report["output"].endswith("out.wav")
    assert report["input"] == str(src) and report["samples_in"] == report["samples_out"] == 24000


def test_the_printed_latency_terms_add_up_to_the_printed_total():
    for block, hop, headroom, dev_in, dev_out in [(512, 12000, 5120, 1024, 1024), (1000, 6000, 0, 0, 480)]:
        report = LatencyReport(sample_rate=48000, frame=24000, hop=hop, block=block, restorer=22975,
                               alignment=block_alignment(block, hop), headroom=headroom,
                               device_input=dev_in, device_output=dev_out)
        text = report.describe()
        total, terms = text.split(" = ")
        printed = [float(part.split()[-2]) for part in terms.split(" (")[0].split(" + ")]
        assert len(printed) == 5
        assert float(total.split()[1]) == pytest.approx(sum(printed), abs=0.05 * len(printed))
        assert report.total == sum(n for _, n in report.terms()) == report.prefill + dev_in + dev_out
        assert f"restorer {1000 * 22975 / 48000:.1f} ms" in text


def _engine_imports() -> dict[str, set[str]]:
    """engine module -> the engine modules it imports (relative or absolute)."""
    graph = {}
    for path in ENGINE.glob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                module = node.module or ""
                if node.level == 1:
                    names |= {module.split(".")[0]} if module else {a.name for a in node.names}
                elif module.startswith("reelrestore.engine."):
                    names.add(module.split(".")[2])
        graph[path.stem] = names & {p.stem for p in ENGINE.glob("*.py")}
    return graph


def test_the_engine_modules_import_each_other_without_a_cycle():
    graph, done, path = _engine_imports(), set(), []

    def visit(node: str) -> None:
        assert node not in path, f"import cycle: {' -> '.join(path[path.index(node):] + [node])}"
        if node in done:
            return
        path.append(node)
        for child in graph[node]:
            visit(child)
        path.pop()
        done.add(node)

    for module in graph:
        visit(module)
    assert "cli" in graph and "pipeline" in graph["restore"]


def test_the_live_status_line_shows_position_time_left_cutoffs_and_levels():
    from types import SimpleNamespace as NS

    from reelrestore.engine.console import status_line
    from reelrestore.engine.cutoff import CutoffDecision

    player = NS(monitor=NS(mode="bypass", mix=1.0), stats=NS(played_samples=12 * 48000, underruns=2), sr=48000,
                source=NS(total=60 * 48000), channels=2,
                restorer=NS(cutoffs=[CutoffDecision(3000.0, "set"), CutoffDecision(None, "no cut found")]),
                take_peaks=lambda: np.array([0.5, 1e-9], np.float32))
    line = status_line(player)
    assert "12.0 / 60.0 s (48.0 s left)" in line and "BYPASS" in line and "underruns 2" in line
    assert "cut 3.0k none" in line
    assert "L   -6 ########  " in line and "R  -99" in line


def test_the_live_worker_wakes_when_input_arrives_not_at_its_next_look():
    """The input callback wakes the worker (`DeviceSource.arrived`): a block queued while the
    worker waits reaches it at once, though its fallback look comes only seconds later."""
    import threading
    import time

    ring = Ring(4096, 2)
    source = DeviceSource("test input", ring, 48000, LiveStats(), pause=1.0)
    blocks = source.blocks()

    def callback():
        time.sleep(0.3)
        ring.write(np.ones((256, 2), dtype=np.float32))
        source.arrived()

    threading.Thread(target=callback).start()
    start = time.perf_counter()
    block = next(blocks)
    took = time.perf_counter() - start
    assert block.shape == (2, 256) and np.all(block == 1.0)
    assert 0.25 < took < 0.9  # woken by the arrival (0.3 s), not at its next look (1 s: the pause; 4 s: the timeout)
    assert source.waited_seconds == pytest.approx(took, abs=0.1)  # the wait is measured, not assumed
    source.end()
    assert list(blocks) == []


def test_underruns_right_after_a_device_xrun_are_counted_apart_from_the_workers_own():
    """The output callback counts an underrun within 0.1 s after the device reported an
    xrun (the sound server caught up on blocks it had missed) as the xrun's; a later one as
    the worker's own."""
    import threading
    from types import SimpleNamespace as NS

    block, sr = 512, 48000
    player = NS(stats=LiveStats(), out_ring=Ring(64 * block, 2), sr=sr, channels=1,
                _heard=np.zeros((block, 2), np.float32), _meter=np.zeros((block, 1), np.float32),
                _block_peaks=np.zeros(1, np.float32), peaks=np.zeros(1, np.float32),
                monitor=NS(mix_into=lambda out, render, band: out.__setitem__(slice(None), render)),
                _worker_done=threading.Event(), _xrun_shadow=int(np.ceil(0.1 * sr / block)))
    fine, xrun = NS(output_underflow=False, input_overflow=False), NS(output_underflow=True, input_overflow=False)
    out = np.zeros((block, 1), np.float32)
    player.out_ring.write(np.ones((4 * block, 2), np.float32))
    for status in (fine, fine, fine, xrun):  # the device reports an xrun; output still queued
        LivePlayer._play(player, out, status)
    LivePlayer._play(player, out, fine)  # the ring ran dry right after it: the xrun's
    player.out_ring.write(np.ones((21 * block, 2), np.float32))  # the worker catches up: the debt, then 20 blocks
    for _ in range(20):  # 0.2 s of blocks with output, then the ring runs dry again: the worker's own
        LivePlayer._play(player, out, fine)
    LivePlayer._play(player, out, fine)
    assert (player.stats.device_xruns, player.stats.underruns, player.stats.underruns_after_xrun) == (1, 2, 1)
