"""The default model's recipe as one command: its stages in order, what is done skipped, a
run stopped part-way resumed, and the model at the end carrying the band level."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import soundfile as sf

from reelrestore.engine.cli import default_model_path
from reelrestore.training import recipe

SR = 48000
TINY = ("schedule.steps_per_epoch=2", "schedule.validate_every=100", "data.val_batches=1", "data.batch_size=2")


@pytest.fixture
def data(tmp_path):
    """Four recordings of 2 s: tones over noise."""
    rng = np.random.default_rng(3)
    root = tmp_path / "data"
    root.mkdir()
    t = np.arange(2 * SR) / SR
    for i in range(4):
        x = 0.2 * np.sin(2 * np.pi * 300 * (i + 1) * t) + 0.05 * rng.standard_normal(t.size)
        sf.write(str(root / f"rec{i}.wav"), x.astype(np.float32), SR, subtype="PCM_16")
    return root


def test_the_plan_is_the_model_cards_four_stages_and_skips_what_is_done(tmp_path):
    out = tmp_path / "run"
    steps = recipe.plan(out, "data", None, tmp_path / "level.onnx")
    assert [s.what for s in steps] == [
        "train 2.0 to step 8600", "train 2.0 to step 12300", "export 2.0.onnx", "train 2.1 to step 6400",
        "export 2.1.onnx", f"2.2: 2.1 with the band level of {tmp_path / 'level.onnx'}", "train 2.3 to step 9000",
        "export net-2.3.onnx", "default.onnx: the averaged network with 2.2's band level"]
    first, second = steps[0].argv, steps[1].argv
    assert "--config" in first and "data.source=data" in first and "--init" not in first
    assert "--resume" in second and "optim.g_lr=1e-4" in second and "optim.d_lr=4e-5" in second
    lsd = steps[3].argv
    assert lsd[lsd.index("--init") + 1] == str(out / "2.0.onnx") and "data.source=data" in lsd
    last = steps[6].argv
    assert last[last.index("--init") + 1] == str(out / "2.2.onnx")
    for train in (first, second, lsd, last):  # no stage trains the adversary
        assert "loss.adv_weight=0" in train and "loss.fm_weight=0" in train

    # a run part-way is resumed at its part, a stage whose file exists is done
    (out / "2.0").mkdir(parents=True)
    (out / "2.0" / "last.pt").write_bytes(b"")
    (out / "2.0" / "history.json").write_text(json.dumps([{"step": 12300}]))
    (out / "2.0.onnx").write_bytes(b"")
    steps = recipe.plan(out, "data", None, tmp_path / "level.onnx")
    assert [s.done() for s in steps[:4]] == [True, True, True, False]
    assert "--resume" in steps[0].argv  # had it stopped before 8,600, it would go on from last.pt


@pytest.mark.slow
def test_the_recipe_runs_every_stage_and_resumes_after_a_stop(data, tmp_path, capsys, monkeypatch):
    out = tmp_path / "recipe"
    argv = ["--data", str(data), "--out", str(out), "--level-from", str(default_model_path()), "--scale", "0.001",
            "--device", "cpu", *TINY]
    recipe.main([*argv, "--dry-run"])
    said = capsys.readouterr().out
    assert "# 9 of 9 steps left" in said and "reelrestore.training.train --config" in said

    # stop after the first export: the recipe run again goes on from there
    calls = []
    real = recipe._run

    def until_the_first_export(args):
        calls.append(args)
        if any(a.endswith("2.1.onnx") for a in args):
            raise recipe.RecipeError("stopped")
        real(args)

    monkeypatch.setattr(recipe, "_run", until_the_first_export)
    with pytest.raises(SystemExit, match="stopped"):
        recipe.main(argv)
    assert (out / "2.0.onnx").is_file() and not (out / "2.1.onnx").exists()
    monkeypatch.setattr(recipe, "_run", real)
    recipe.main([*argv, "--dry-run"])
    assert "# 5 of 9 steps left" in capsys.readouterr().out  # the 2.1 run's training is done, its export not
    recipe.main(argv)
    assert capsys.readouterr().out.strip().endswith("default.onnx")

    import onnx

    meta = {p.key: p.value for p in onnx.load(str(out / "default.onnx")).metadata_props}
    shipped = {p.key: p.value for p in onnx.load(str(default_model_path())).metadata_props}
    assert meta["band_level"] == shipped["band_level"] and meta["model_version"].startswith("2.3.0")
    # 2.3 is the average of its run's checkpoints from step 6 (of 9) on, one per step
    picked = recipe.checkpoints_from(out / "2.3", 6)
    assert len(picked) >= 2 and int(meta["averaged_checkpoints"]) == len(picked)


def test_bad_inputs_are_named_in_one_line_and_nothing_is_written(tmp_path):
    for argv, says in ((["--data", str(tmp_path / "none"), "--level-from", str(default_model_path())], "no such folder"),
                       (["--data", str(tmp_path), "--devset", str(tmp_path)], "no manifest.json"),
                       (["--data", str(tmp_path), "--level-from", str(default_model_path()), "--scale", "2"], "--scale"),
                       (["--data", str(tmp_path), "--level-from", str(default_model_path()), "lr"], "section.key=value")):
        with pytest.raises(SystemExit) as err:
            recipe.main([*argv, "--out", str(tmp_path / "out")])
        assert says in str(err.value.code) and "\n" not in str(err.value.code)
        assert not (tmp_path / "out").exists()
    assert sys.executable  # the stages run under this interpreter


STOPPED_RUN = r"""
import signal, sys, time
from pathlib import Path
from reelrestore.training import recipe

here = Path(sys.argv[1])
child = ("import signal, sys, time; from pathlib import Path; "
         "signal.signal(signal.SIGTERM, lambda *a: (Path(sys.argv[1]).write_text('saved'), sys.exit(143))); "
         "Path(sys.argv[2]).write_text('ready'); time.sleep(60)")
run = recipe.Step("a long run", (here / "saved").is_file,
                  (sys.executable, "-c", child, str(here / "saved"), str(here / "ready")))
recipe.plan = lambda *a, **k: [run]
recipe.main(["--data", str(here), "--level-from", __file__, "--out", str(here / "out")])
"""


def test_sigterm_to_the_recipe_reaches_its_run_once_and_ends_in_one_line(tmp_path):
    import signal
    import subprocess
    import time

    script = tmp_path / "stopped.py"
    script.write_text(STOPPED_RUN)
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path)], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (tmp_path / "ready").is_file() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)  # to the recipe alone, as `kill` or `timeout` sends it
    _, err = proc.communicate(timeout=60)
    assert (tmp_path / "saved").read_text() == "saved"  # the run was told, and stopped before the recipe
    assert proc.returncode == 128 + signal.SIGTERM
    last = err.strip().splitlines()[-1]
    assert last == "recipe: stopped by SIGTERM; run the same command again to go on where it was"
    assert "Traceback" not in err


def test_dry_run_into_a_closed_pipe_ends_quietly(tmp_path):
    import os
    import subprocess

    read, write = os.pipe()
    os.close(read)  # the reader (`| head`) has gone before anything is printed
    done = subprocess.run([sys.executable, "-m", "reelrestore.training.recipe", "--data", str(tmp_path),
                           "--level-from", str(default_model_path()), "--out", str(tmp_path / "out"), "--dry-run"],
                          stdout=write, stderr=subprocess.PIPE, text=True, timeout=120)
    os.close(write)
    assert done.returncode == 0 and done.stderr == ""
