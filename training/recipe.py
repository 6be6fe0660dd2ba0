"""The shipped default model's recipe, every stage of it, as one resumable command.

    python -m reelrestore.training.recipe --data data/real-train --devset devset/ --out runs/default
    python -m reelrestore.training.recipe --data data/real-train --devset devset/ --out runs/default --dry-run
    python -m reelrestore.training.recipe --data /tmp/real-train --level-from models/default.onnx \\
        --out runs/gpu --device cuda data.num_workers=15        # a GPU machine without a development set

`models/default.onnx` (2.3) was made in four stages over several sessions
(`models/default.md`); this runs them in order, each in its own folder under ``--out``:

* ``2.0``: `training/configs/realtime_real.toml` from scratch, 8,600 steps at the config's
  rates (G 5e-4, D 2e-4), then on to step 12,300 at G 1e-4, D 4e-5; exported as ``2.0.onnx``;
* ``2.1``: `training/configs/realtime_lsd.toml` from 2.0's weights (widened to see the
  input above the cut), 6,400 steps; ``2.1.onnx``;
* ``2.2``: 2.1 with its band level fitted on a development set (`band_level`, never the real
  set's evaluation part), or copied from ``--level-from``; ``2.2.onnx``;
* ``2.3``: 2.2's network trained on 9,000 steps at G 5e-5, the weights of its checkpoints
  from step 6,000 on averaged (`restore-export` with several checkpoints) and 2.2's band
  level written in: ``default.onnx``.

One difference from how 2.3 was made: the adversarial terms are off in every stage (2.0 and
2.1 were trained with them on). At this weight they changed nothing measured and cost 1.4x
the time per step (`models/default.md`, "The adversarial term, on or off"); without them the
chain fits the issue's three hours on this 2-core CPU.

Run it again after a stop (Ctrl-C, a closed terminal, a machine given back) and it goes on
where it was: a stage whose model file exists is done, a run part-way is resumed from its
``last.pt`` (`restore-train --resume`). ``--dry-run`` prints what is left to run. Run end
to end on this 2-core CPU (2026-12-04): 2 h 44 min of wall clock with other work beside it,
about 2 h 23 min at its stages' median rates (seconds per 100 steps: 2.0 28.3, 2.1 31.5, 2.3 28.9;
2.2's band level 7.5 minutes).
OVERRIDES (``section.key=value``) go to every training run, after the recipe's own:
``data.num_workers=15`` on a GPU machine, ``schedule.steps_per_epoch=2`` with a small
``--scale`` to try the plumbing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..engine.safety import stops_in_one_line

CONFIGS = Path(__file__).resolve().parent / "configs"
# (stage, config, [(until step, overrides for that part)], model version)
# the adversarial terms, measured to change nothing at this weight and to cost 1.4x the time
# per step (models/default.md, "The adversarial term, on or off"), are off in every stage
NO_ADVERSARY = ("loss.adv_weight=0", "loss.fm_weight=0")
BASE = ("2.0", "realtime_real.toml", ((8600, NO_ADVERSARY),
                                      (12300, ("optim.g_lr=1e-4", "optim.d_lr=4e-5", *NO_ADVERSARY))), "2.0.0")
LSD = ("2.1", "realtime_lsd.toml", ((6400, NO_ADVERSARY),), "2.1.0")
AVERAGED = ("2.3", "realtime_lsd.toml", ((9000, ("optim.g_lr=5e-5", "optim.d_lr=2e-5", *NO_ADVERSARY,
                                                "schedule.keep_checkpoints=0",
                                                "schedule.checkpoint_every_steps=500", "schedule.seed=23")),), "2.3.0")
AVERAGE_FROM = 6000  # 2.3 averages its checkpoints from this step to its last
STEP_IN_NAME = re.compile(r"step(\d+)\.pt$")


@dataclass(frozen=True)
class Step:
    """One thing to do: done when `done()` says so, else `argv` run as a command (or `call`)."""

    what: str
    done: Callable[[], bool]
    argv: tuple[str, ...] = ()
    call: Callable[[], None] | None = field(default=None, compare=False)
    shown: str = ""  # what --dry-run prints for a `call`

    def line(self) -> str:
        return " ".join(self.argv) if self.argv else self.shown or f"({self.what})"


def run_step(run: Path) -> int:
    """The training step a run folder's history has reached (0 before its first epoch)."""
    try:
        rows = json.loads((run / "history.json").read_text())
    except (OSError, json.JSONDecodeError):
        return 0
    return int(rows[-1]["step"]) if rows else 0


def checkpoints_from(run: Path, first_step: int) -> list[Path]:
    """The run's checkpoints at `first_step` or later, one per step (the newest file of a
    step saved twice: at an epoch's end and on the step count)."""
    by_step: dict[int, Path] = {}
    for path in sorted((run / "checkpoints").glob("*.pt")):
        m = STEP_IN_NAME.search(path.name)
        if m and int(m.group(1)) >= first_step:
            by_step[int(m.group(1))] = path
    return [by_step[s] for s in sorted(by_step)]


def plan(out: Path, data: str, devset: Path | None, level_from: Path | None, scale: float = 1.0,
         device: str | None = None, overrides: tuple[str, ...] = ()) -> list[Step]:
    """Every step of the recipe, in order (see the module docstring)."""
    py = sys.executable
    train = (py, "-m", "reelrestore.training.train")
    export = (py, "-m", "reelrestore.export.cli")
    extra = (*((f"schedule.device={device}",) if device else ()), *overrides)
    steps: list[Step] = []

    def training(stage: tuple, init: Path | None) -> Path:
        name, config, parts, version = stage
        run = out / name
        for until, part in parts:
            target = max(1, round(until * scale))
            done = lambda run=run, target=target: run_step(run) >= target  # noqa: E731
            if (run / "last.pt").is_file() or steps and steps[-1].what.startswith(f"train {name}"):
                argv = (*train, "--resume", str(run / "last.pt"), "--steps", str(target), "-q", *part, *extra)
            else:
                # -y: the run folder is the recipe's own (one left by a run stopped before its first checkpoint)
                argv = (*train, "--config", str(CONFIGS / config), "--out", str(run), "-y", "--steps", str(target), "-q",
                        *(("--init", str(init)) if init else ()), f"data.source={data}", *part, *extra)
            steps.append(Step(f"train {name} to step {target}", done, argv))
        return run

    def exported(run: Path, model: Path, version: str, first_step: int | None = None) -> None:
        def argv() -> tuple[str, ...]:
            picked = [run / "last.pt"] if first_step is None else checkpoints_from(run, first_step)
            return (*export, *map(str, picked), "-o", str(model), "--model-version", version, "-y", "-q")

        picked = f"{run / 'last.pt'}" if first_step is None else f"{run / 'checkpoints'}/*.pt (steps {first_step} on)"
        shown = " ".join((*export, picked, "-o", str(model), "--model-version", version, "-y", "-q"))
        steps.append(Step(f"export {model.name}", model.is_file, call=lambda: _run(argv()), shown=shown))

    models = {name: out / f"{name}.onnx" for name in ("2.0", "2.1", "2.2", "net-2.3")}
    exported(training(BASE, None), models["2.0"], BASE[3])
    exported(training(LSD, models["2.0"]), models["2.1"], LSD[3])
    if level_from is not None:
        steps.append(Step(f"2.2: 2.1 with the band level of {level_from}", models["2.2"].is_file,
                          call=lambda: _copy_level(models["2.1"], models["2.2"], level_from, "2.2.0")))
    else:
        steps.append(Step("2.2: 2.1 with its band level fitted on the development set", models["2.2"].is_file,
                          (py, "-m", "reelrestore.training.band_level", "--devset", str(devset), "--model",
                           str(models["2.1"]), "--out", str(models["2.2"]), "-y", "--model-version", "2.2.0")))
    run = training(AVERAGED, models["2.2"])
    exported(run, models["net-2.3"], AVERAGED[3], first_step=max(1, round(AVERAGE_FROM * scale)))
    final = out / "default.onnx"
    steps.append(Step("default.onnx: the averaged network with 2.2's band level", final.is_file,
                      call=lambda: _copy_level(models["net-2.3"], final, models["2.2"], AVERAGED[3])))
    return steps


def _run(argv: tuple[str, ...]) -> None:
    print("$ " + " ".join(argv), file=sys.stderr, flush=True)
    # its own session: a terminal's Ctrl-C or hang-up reaches the recipe alone, which passes
    # it on once (a second one could cut short the run's saving where it was)
    child = subprocess.Popen(argv, start_new_session=True)
    try:
        code = child.wait()
    except KeyboardInterrupt as exc:
        child.send_signal(getattr(exc, "signum", signal.SIGINT))
        child.wait()  # the run saves where it was and stops
        raise
    if code != 0:
        raise RecipeError(f"{argv[2]} exited with {code}; fix what it said and run the recipe again (it resumes)")


def _copy_level(model: Path, dest: Path, level_of: Path, version: str) -> None:
    """`model` written to `dest` with the band level of `level_of` and the given version."""
    from ..engine.model import ModelError, OnnxModel
    from .band_level import write_model

    try:
        level = OnnxModel(level_of).spec.band_level  # read as the engine reads it
    except ModelError as exc:
        raise RecipeError(f"{level_of}: {exc}") from None
    if level is None:
        raise RecipeError(f"{level_of}: holds no band level to copy")
    write_model(model, dest, level, version)


class RecipeError(RuntimeError):
    """A stage that failed, or inputs the recipe cannot start from."""


@stops_in_one_line("recipe", "run the same command again to go on where it was")
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m reelrestore.training.recipe", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="the training folder (python -m reelrestore.training.realtrain)")
    ap.add_argument("--out", required=True, type=Path, help="the recipe's folder: one run folder per stage")
    level = ap.add_mutually_exclusive_group(required=True)
    level.add_argument("--devset", type=Path, help="a development set to fit 2.2's band level on "
                                                   "(python -m reelrestore.training.realset --development)")
    level.add_argument("--level-from", type=Path, help="copy the band level of this model instead of fitting one")
    ap.add_argument("--device", help="schedule.device for every training run (cuda, cpu; default: the configs' auto)")
    ap.add_argument("--scale", type=float, default=1.0, help="every stage's steps times this (a quick try: 0.01)")
    ap.add_argument("--dry-run", action="store_true", help="print what is left to run, run nothing")
    ap.add_argument("overrides", nargs="*", help="section.key=value for every training run, after the recipe's")
    a = ap.parse_args(argv)

    def fail(message: str) -> None:
        sys.exit(f"recipe: error: {message}")

    if not Path(a.data).is_dir():
        fail(f"--data {a.data}: no such folder; build it with python -m reelrestore.training.realtrain "
             f"(or unpack a pack: python -m reelrestore.training.trainpack unpack)")
    if a.devset is not None and not (a.devset / "manifest.json").is_file():
        fail(f"--devset {a.devset}: no manifest.json; build it with python -m reelrestore.training.realset "
             f"--out DIR --development REALSET, or give --level-from MODEL")
    if a.level_from is not None and not a.level_from.is_file():
        fail(f"--level-from {a.level_from}: no such file")
    if not 0.0 < a.scale <= 1.0:
        fail(f"--scale: expected a number above 0 and at most 1, got {a.scale:g}")
    bad = [o for o in a.overrides if "=" not in o]
    if bad:
        fail(f"expected overrides as section.key=value, got {bad[0]!r}")
    steps = plan(a.out, str(Path(a.data).resolve()), a.devset, a.level_from, a.scale, a.device, tuple(a.overrides))
    left = [s for s in steps if not s.done()]
    if a.dry_run:
        try:
            for s in left:
                print(f"# {s.what}\n{s.line()}")
            print(f"# {len(left)} of {len(steps)} steps left" if left else "# nothing left: the recipe is done",
                  flush=True)
        except BrokenPipeError:  # `--dry-run | head`: the reader has what it wanted
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return
    a.out.mkdir(parents=True, exist_ok=True)
    try:
        for i, s in enumerate(steps):
            if s.done():
                print(f"[{i + 1}/{len(steps)}] {s.what}: done", file=sys.stderr)
                continue
            print(f"[{i + 1}/{len(steps)}] {s.what}", file=sys.stderr, flush=True)
            s.call() if s.call is not None else _run(s.argv)
            if not s.done():
                raise RecipeError(f"{s.what}: did not finish (its command returned without reaching it)")
    except RecipeError as exc:
        fail(str(exc))
    print(f"{a.out / 'default.onnx'}")


if __name__ == "__main__":
    main()
