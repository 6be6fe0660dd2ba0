"""Hostile inputs to restore-train and restore-export: each is refused in one line
(``PROG: error: ...`` and status 1, or click's usage error and status 2 for a malformed
option), with no traceback; nothing is written (no output, no hidden temporary file) and no
input changes by a byte. A signal (Ctrl-C, SIGTERM, SIGHUP) at a random moment stops
either command with 130/143/129 and leaves nothing or complete files.

The commands run as subprocesses, so statuses, stderr and signals are real. Every case
is mostly Python and torch starting up, so the cases run a few at a time (one fixture
runs the selected ones, each test checks its own).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import signal
import stat
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

ROOT = Path(__file__).resolve().parents[1]
TINY_TEXT = (ROOT / "training" / "configs" / "realtime_tiny.toml").read_text()
PROGS = {"train": ("restore-train", [sys.executable, "-m", "reelrestore.training.train"]),
         "export": ("restore-export", [sys.executable, "-m", "reelrestore.export.cli"])}
WORKERS = 3  # commands at a time: 2 cores, and each waits on the disk now and then
TIMEOUT = 120  # s per command; a refusal takes a few


# ----------------------------------------------------------------------------- inputs
@dataclass(frozen=True)
class Shared:
    """Made once per module: a tiny real-time checkpoint (its bytes and its dict) and a
    tiny ONNX model."""

    checkpoint: bytes
    onnx_model: bytes

    def ckpt(self) -> dict:
        import io

        return torch.load(io.BytesIO(self.checkpoint), map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> Shared:
    from onnx import TensorProto, helper

    from reelrestore.training.trainers import load_config, new_trainer

    folder = tmp_path_factory.mktemp("shared")
    trainer = new_trainer(load_config(ROOT / "training" / "configs" / "realtime_tiny.toml"))
    path = folder / "tiny.pt"
    torch.save(trainer.checkpoint(), path)
    value = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "identity", [value],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    return Shared(path.read_bytes(), model.SerializeToString())


def put(path: Path, content: str | bytes) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return str(path)


def saved(path: Path, obj) -> str:
    torch.save(obj, path)
    return str(path)


def zip_of_junk(path: Path) -> str:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", b"junk" * 100)
        z.writestr("archive/version", b"3\n")
    return str(path)


def folder(path: Path, files: dict[str, str | bytes] | None = None) -> str:
    path.mkdir(parents=True, exist_ok=True)
    for name, content in (files or {}).items():
        put(path / name, content)
    return str(path)


def with_ckpt(s: Shared, change: Callable[[dict], object]) -> dict:
    ckpt = s.ckpt()
    change(ckpt)
    return ckpt


JUNK_WAVS = {f"take{i}.wav": b"RIFF junk, not audio " * (i + 1) for i in range(4)} | {"notes.txt": "notes"}


# ------------------------------------------------------------------------------- cases
@dataclass(frozen=True)
class Case:
    id: str
    prog: str  # "train" | "export"
    make: Callable[[Path, Shared], list[str]]  # writes the inputs into the folder; the arguments
    words: tuple[str, ...]  # the refusal names these
    usage: bool = False  # a malformed option: click's usage error, status 2
    fsize_kb: int | None = None  # ulimit -f: the disk fills up
    leaves_run: bool = False  # failed while saving: complete run files may stay, nothing partial


def takes(path: Path) -> str:
    """A folder of five clean 1.5 s recordings: 12 training and 3 validation segments,
    read in milliseconds (no corpus cache involved)."""
    import soundfile as sf

    rng = np.random.default_rng(0)
    t = np.arange(72000) / 48000
    folder(path)
    for i in range(5):
        x = 0.3 * np.sin(2 * np.pi * (220 + 50 * i) * t) + 0.01 * rng.standard_normal(t.size)
        sf.write(path / f"take{i}.wav", x, 48000, subtype="PCM_16")
    return str(path)


def train(*extra: str, config: str | None = None, out: str = "run", steps: str = "1", data: bool = False) -> Callable:
    """restore-train on the tiny real-time config (copied in), one step, the built-in data
    (or, with ``data``, a folder of recordings written in)."""
    def make(w: Path, s: Shared) -> list[str]:
        cfg = config if config is not None else put(w / "tiny.toml", TINY_TEXT)
        source = takes(w / "clean") if data else "builtin"
        return ["--config", cfg, "--data", source, "--out", str(w / out), "--steps", steps, *extra]
    return make


def train_file(name: str, content: str | bytes, *extra: str) -> Callable:
    return lambda w, s: train(*extra, config=put(w / name, content))(w, s)


def tiny_with(old: str, new: str) -> str:
    assert old in TINY_TEXT
    return TINY_TEXT.replace(old, new)


def resume(make_ckpt: Callable[[Path, Shared], str], *extra: str) -> Callable:
    return lambda w, s: ["--resume", make_ckpt(w, s), "--out", str(w / "run"), "--steps", "2", *extra]


def export(make_ckpt: Callable[[Path, Shared], str] | None = None, out: str = "m.onnx", *extra: str) -> Callable:
    """restore-export of the tiny checkpoint (copied in) to ``out`` in the case's folder."""
    def make(w: Path, s: Shared) -> list[str]:
        ckpt = make_ckpt(w, s) if make_ckpt else put(w / "last.pt", s.checkpoint)
        return [ckpt, "-o", str(w / out), *extra]
    return make


def the_ckpt(w: Path, s: Shared) -> str:
    return put(w / "last.pt", s.checkpoint)


def linked(kind: str) -> Callable:
    def make(w: Path, s: Shared) -> list[str]:
        ckpt = the_ckpt(w, s)
        (os.symlink if kind == "symlink" else os.link)(ckpt, w / "m.onnx")
        return [ckpt, "-o", str(w / "m.onnx")]
    return make


def fifo_output(w: Path, s: Shared) -> list[str]:
    os.mkfifo(w / "m.onnx")
    return [the_ckpt(w, s), "-o", str(w / "m.onnx"), "-y"]


def respelled_output(w: Path, s: Shared) -> list[str]:
    folder(w / "sub")
    return [the_ckpt(w, s), "-o", str(w / "sub" / ".." / "last.pt")]


def wrong_weights(ckpt: dict) -> None:
    key = next(iter(ckpt["generator"]))
    ckpt["generator"][key] = torch.zeros(3, 3, 3)


UNREADABLE = {
    "garbage": lambda w, s: put(w / "last.pt", np.random.default_rng(3).bytes(5000)),
    "empty": lambda w, s: put(w / "last.pt", b""),
    "truncated": lambda w, s: put(w / "last.pt", s.checkpoint[: len(s.checkpoint) // 2]),
    "zip_of_junk": lambda w, s: zip_of_junk(w / "last.pt"),
    "onnx_model": lambda w, s: put(w / "model.onnx", s.onnx_model),
    "text": lambda w, s: put(w / "last.pt", "trainer = 'realtime'\n"),
}
NO_TRAINER = ("names no trainer", 'trainer = "thesis" | "realtime" | "unet"')

CASES = [
    # --------------------------------------------------------------- restore-train: config
    Case("train-config-missing", "train", train(config="nowhere.toml"), ("does not exist",), usage=True),
    Case("train-config-is-a-folder", "train", lambda w, s: train(config=folder(w / "c.toml"))(w, s),
         ("is a directory",), usage=True),
    Case("train-config-json", "train", train_file("c.json", '{"trainer": "realtime"}'),
         ("expected a .toml, .yaml or .yml",)),
    Case("train-toml-malformed", "train", train_file("c.toml", 'trainer = "realtime"\n[model\nwidth = 8\n'),
         ("not valid TOML",)),
    Case("train-yaml-malformed", "train", train_file("c.yaml", "trainer: realtime\nmodel: {width: 8\n"),
         ("not valid YAML",)),
    Case("train-yaml-a-list", "train", train_file("c.yml", "- realtime\n- 8\n"), ("expected a table",)),
    Case("train-toml-empty", "train", train_file("c.toml", ""), NO_TRAINER),
    Case("train-yaml-empty", "train", train_file("c.yaml", ""), NO_TRAINER),
    Case("train-toml-no-trainer", "train", train_file("c.toml", "[model]\nwidth = 8\n"), NO_TRAINER),
    Case("train-toml-binary", "train", train_file("c.toml", bytes(range(256)) * 4), ("UTF-8",)),
    Case("train-toml-unknown-trainer", "train", train_file("c.toml", 'trainer = "vae"\n'),
         ("expected trainer", "'vae'")),
    Case("train-toml-trainer-a-list", "train", train_file("c.toml", 'trainer = ["realtime"]\n'),
         ("expected trainer",)),
    Case("train-toml-unknown-section", "train", train_file("c.toml", TINY_TEXT + "\n[optimizer]\nlr = 1\n"),
         ("unknown", "optimizer")),
    Case("train-toml-text-for-an-integer", "train",
         train_file("c.toml", tiny_with("batch_size = 2", 'batch_size = "big"')), ("data.batch_size", "integer")),
    Case("train-toml-list-for-a-number", "train",
         train_file("c.toml", tiny_with("[data]", "[optim]\ng_lr = [0.001, 0.002]\n\n[data]")),
         ("optim.g_lr", "number")),
    Case("train-toml-fraction-for-an-integer", "train", train_file("c.toml", tiny_with("layers = 2", "layers = 2.5")),
         ("model.layers", "integer")),
    Case("train-toml-negative-batch-size", "train",
         train_file("c.toml", tiny_with("batch_size = 2", "batch_size = -1")), ("data.batch_size >= 1",)),
    Case("train-toml-section-a-number", "train", train_file("c.toml", 'trainer = "realtime"\nmodel = 5\n'),
         ("expected a table", "model")),
    Case("train-override-word-for-width", "train", train("model.width=wide"), ("model.width", "integer")),
    Case("train-override-without-equals", "train", train("epochs"), ("expected an override",)),
    Case("train-override-unknown-key", "train", train("loss.lr=1"), ("unknown config key",)),
    Case("train-override-nan", "train", train("optim.g_lr=nan"), ("optim.g_lr", "nan")),
    Case("train-override-checkpoint-every-0", "train", train("schedule.checkpoint_every=0"),
         ("schedule.checkpoint_every >= 1",)),
    Case("train-override-unknown-device", "train", train("schedule.device=banana"), ("schedule.device", "banana")),
    Case("train-steps-0", "train", train(steps="0"), ("--steps",), usage=True),
    Case("train-epochs-negative", "train", train("--epochs", "-1"), ("--epochs",), usage=True),
    # ----------------------------------------------------------------- restore-train: data
    Case("train-data-missing", "train", lambda w, s: train("--data", str(w / "nowhere"))(w, s), ("does not exist",)),
    Case("train-data-empty-folder", "train", lambda w, s: train("--data", folder(w / "clean"))(w, s),
         ("found none",)),
    Case("train-data-not-audio", "train", lambda w, s: train("--data", folder(w / "clean", JUNK_WAVS))(w, s),
         ("readable audio",)),
    # --------------------------------------------------------------- restore-train: resume
    *[Case(f"train-resume-{name}", "train", resume(make), ("not a readable checkpoint",))
      for name, make in UNREADABLE.items() if name in ("garbage", "empty", "truncated", "zip_of_junk", "onnx_model")],
    Case("train-resume-missing-keys", "train",
         resume(lambda w, s: saved(w / "last.pt", {"format": "reelrestore-train-2", "trainer": "realtime"})),
         ("missing", "config")),
    Case("train-resume-bad-config", "train",
         resume(lambda w, s: saved(w / "last.pt", with_ckpt(s, lambda c: c["config"]["data"].update(batch_size=-1)))),
         ("data.batch_size >= 1",)),
    Case("train-resume-with-config", "train",
         lambda w, s: resume(the_ckpt, "--config", put(w / "tiny.toml", TINY_TEXT))(w, s), ("--resume",), usage=True),
    Case("train-resume-a-folder", "train", resume(lambda w, s: folder(w / "last.pt")), ("is a directory",), usage=True),
    # ------------------------------------------------------------------ restore-train: --out
    Case("train-out-holds-other-files", "train",
         lambda w, s: (put(w / "run" / "notes.txt", "mine"), train()(w, s))[1], ("not empty", "-y")),
    Case("train-out-a-file", "train", lambda w, s: (put(w / "run", "mine"), train()(w, s))[1], ("is a file",),
         usage=True),
    Case("train-out-is-the-data-folder", "train",
         lambda w, s: train("--data", folder(w / "run", JUNK_WAVS), "-y")(w, s), ("data folder",)),
    Case("train-disk-full", "train", train(data=True), ("File too large",), fsize_kb=200, leaves_run=True),
    # --------------------------------------------------------------- restore-export: input
    Case("export-checkpoint-missing", "export", export(lambda w, s: str(w / "nowhere.pt")), ("no such file",)),
    Case("export-checkpoint-a-folder", "export", export(lambda w, s: folder(w / "last.pt")), ("folder",)),
    *[Case(f"export-checkpoint-{name}", "export", export(make), ("not a readable checkpoint",))
      for name, make in UNREADABLE.items()],
    Case("export-checkpoint-without-generator", "export",
         export(lambda w, s: saved(w / "last.pt", with_ckpt(s, lambda c: c.pop("generator")))),
         ("missing", "generator")),
    Case("export-checkpoint-a-tensor", "export", export(lambda w, s: saved(w / "last.pt", torch.zeros(3))),
         ("restore-train checkpoint",)),
    Case("export-checkpoint-unknown-class", "export",
         export(lambda w, s: saved(w / "last.pt", with_ckpt(s, lambda c: c.update(model_class="evil.Model")))),
         ("unknown model_class",)),
    Case("export-checkpoint-bad-model-config", "export",
         export(lambda w, s: saved(w / "last.pt", with_ckpt(s, lambda c: c["model_config"].update(width="wide")))),
         ("cannot rebuild",)),
    Case("export-checkpoint-wrong-weights", "export",
         export(lambda w, s: saved(w / "last.pt", with_ckpt(s, wrong_weights))), ("cannot rebuild",)),
    # -------------------------------------------------------------- restore-export: output
    Case("export-output-is-the-input", "export", export(out="last.pt"), ("would overwrite the input",)),
    Case("export-output-is-the-input-spelled-otherwise", "export", respelled_output, ("would overwrite the input",)),
    Case("export-output-symlink-to-the-input", "export", linked("symlink"), ("would overwrite the input",)),
    Case("export-output-hard-link-to-the-input", "export", linked("hardlink"), ("would overwrite the input",)),
    Case("export-output-folder-missing", "export", export(out="nowhere/m.onnx"), ("does not exist",)),
    Case("export-output-a-folder", "export", lambda w, s: (folder(w / "m.onnx"), export()(w, s))[1],
         ("is a folder",)),
    Case("export-output-exists", "export", lambda w, s: (put(w / "m.onnx", "mine"), export()(w, s))[1],
         ("exists", "-y")),
    Case("export-output-exists-n", "export",
         lambda w, s: (put(w / "m.onnx", "mine"), export(None, "m.onnx", "-n")(w, s))[1], ("-n never overwrites",)),
    Case("export-y-and-n", "export", export(None, "m.onnx", "-y", "-n"), ("not both",), usage=True),
    Case("export-output-a-fifo", "export", fifo_output, ("not a regular file",)),
    Case("export-disk-full", "export", export(), ("File too large",), fsize_kb=300),
    # ------------------------------------------------------------- restore-export: options
    Case("export-opset-12", "export", export(None, "m.onnx", "--opset", "12"), ("--opset",), usage=True),
    Case("export-opset-24", "export", export(None, "m.onnx", "--opset", "24"), ("--opset",), usage=True),
    Case("export-opset-a-word", "export", export(None, "m.onnx", "--opset", "seventeen"), ("--opset",), usage=True),
    *[Case(f"export-tolerance-{value}", "export", export(None, "m.onnx", "--tolerance", value), ("--tolerance",),
           usage=True) for value in ("-1", "0", "inf", "nan")],
]


# ------------------------------------------------------------------------------ running
def run(prog: str, args: list[str], cwd: Path, fsize_kb: int | None = None, timeout: float = TIMEOUT,
        python_flags: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    python, *module = PROGS[prog][1]
    cmd = [python, *python_flags, *module, *args]
    if fsize_kb is not None:  # files beyond the limit fail with EFBIG (Python ignores SIGXFSZ)
        cmd = ["bash", "-c", f'ulimit -f {fsize_kb} && exec "$0" "$@"', *cmd]
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired as exc:
        return subprocess.CompletedProcess(cmd, None, exc.stdout or "", f"timed out after {timeout} s")


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under ``root`` (hidden ones too) by relative path: a file by its sha256,
    a link by its target, a folder, or another kind (a FIFO is never opened)."""
    entries = {}
    for where, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(where, name)
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                entry = ("link", os.readlink(path))
            elif stat.S_ISDIR(mode):
                entry = ("folder",)
            elif stat.S_ISREG(mode):
                entry = ("file", hashlib.sha256(path.read_bytes()).hexdigest())
            else:
                entry = ("other", stat.S_IFMT(mode))
            entries[str(path.relative_to(root))] = entry
    return entries


@dataclass
class Outcome:
    work: Path
    before: dict[str, tuple]
    result: subprocess.CompletedProcess
    after: dict[str, tuple]


@pytest.fixture(scope="module")
def outcomes(request, tmp_path_factory, shared) -> dict[str, Outcome]:
    """Runs the selected cases, WORKERS at a time, each in a folder of its own."""
    selected = {item.callspec.params["case"].id for item in request.session.items
                if item.module is request.module and "case" in getattr(getattr(item, "callspec", None), "params", {})}
    jobs = []
    for case in (c for c in CASES if c.id in selected):
        work = tmp_path_factory.mktemp(case.id)
        jobs.append((case, work, case.make(work, shared), snapshot(work)))

    def one(job) -> tuple[str, Outcome]:
        case, work, args, before = job
        result = run(case.prog, args, work, case.fsize_kb)
        return case.id, Outcome(work, before, result, snapshot(work))

    with ThreadPoolExecutor(WORKERS) as pool:
        return dict(pool.map(one, jobs))


@pytest.mark.parametrize("prog, make, says", [
    ("train", train_file("c.toml", 'trainer = "vae"\n'), "expected trainer in"),
    ("train", train("optim.g_lr=nan"), "optim.g_lr"),
    ("train", train_file("c.yaml", "trainer: realtime\nmodel: {width: 8\n"), "YAML"),
    ("train", resume(UNREADABLE["truncated"]), "not a readable checkpoint"),
    ("train", resume(UNREADABLE["onnx_model"]), "not a readable checkpoint"),
    ("export", export(UNREADABLE["text"]), "not a readable checkpoint"),
    ("export", export(UNREADABLE["empty"]), "not a readable checkpoint"),
    ("train", lambda w, s: train("--data", str(w / "nowhere"))(w, s), "does not exist"),
    ("train", lambda w, s: train("--data", folder(w / "clean"))(w, s), "found none"),
    ("train", lambda w, s: train("--data", folder(w / "clean", JUNK_WAVS))(w, s), "readable audio"),
    ("train", lambda w, s: train("--data", folder(w / "data", JUNK_WAVS), "--out", str(w / "data"), "-y")(w, s),
     "data folder"),
], ids=["unknown-trainer", "bad-override", "malformed-yaml", "resume-truncated", "resume-onnx", "export-text",
        "export-empty", "data-missing", "data-empty", "data-not-audio", "out-is-the-data"])
def test_a_bad_config_checkpoint_or_data_folder_is_refused_before_torch_loads(prog, make, says, shared, tmp_path):
    # configs are read and checked without torch (`reelrestore.models.configs`), a file is
    # first checked to be the zip archive torch.save writes, and a new run's data are read
    # before torch loads (`training.dataset` needs none): the refusal comes at once, not
    # after torch's start-up (seconds on two cores)
    args = make(tmp_path, shared)
    result = run(prog, args, tmp_path, python_flags=("-X", "importtime"))
    said = [line for line in result.stderr.splitlines() if not line.startswith("import time:")]
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert result.returncode == 1 and len(said) == 1 and said[0].startswith(f"{PROGS[prog][0]}: error:"), result.stderr
    assert says in said[0] and "click" in imported and "torch" not in imported
    assert not (tmp_path / "run").exists() and not (tmp_path / "m.onnx").exists()


def test_every_trainer_has_its_config_registered_where_configs_are_read_without_torch():
    from reelrestore.training.config import RUN_CONFIGS
    from reelrestore.training.trainers import TRAINERS

    assert {name: cls.config_class for name, cls in TRAINERS.items()} == RUN_CONFIGS


def test_the_corpus_is_large_and_its_names_unique():
    assert len(CASES) >= 30 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_bad_input_is_refused_in_one_line_and_harms_nothing(case, outcomes):
    o = outcomes[case.id]
    prog = PROGS[case.prog][0]
    err, code = o.result.stderr, o.result.returncode
    assert code not in (0, None), f"not refused (status {code}): {o.result.stdout[-2000:]}{err[-2000:]}"
    assert "Traceback" not in err, err[-3000:]
    lines = [line for line in err.splitlines() if line.strip()]
    if case.usage:
        assert code == 2, err
        message = " ".join(line for line in lines if line.startswith("Error:"))
    else:
        assert code == 1 and len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), err
        message = lines[0]
    for word in case.words:
        assert word in message, message
    if not case.leaves_run:
        assert o.after == o.before  # no output, no temporary file, every input as it was
        return
    assert {k: v for k, v in o.after.items() if k in o.before} == o.before
    assert not any(name.endswith(".pt") for name in o.after), sorted(o.after)
    assert_complete(o.work, set(o.before))


# ------------------------------------------------------------------------- completeness
def assert_complete(root: Path, inputs: set[str] = frozenset()) -> list[str]:
    """Every file under ``root`` but the inputs is complete (parses as what it is) and none
    is a temporary one; returns their names."""
    names = []
    for rel, entry in snapshot(root).items():
        if rel in inputs or entry[0] == "folder":
            continue
        path = root / rel
        assert not path.name.startswith(".") and ".partial" not in path.name and not path.name.endswith(".tmp"), \
            f"temporary file left: {rel}"
        assert entry[0] == "file", f"{rel}: {entry}"
        names.append(rel)
        if path.suffix == ".pt":
            assert torch.load(path, map_location="cpu", weights_only=True)["format"] == "reelrestore-train-2"
        elif path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".csv":
            text = path.read_text()
            rows = list(csv.reader(text.splitlines()))
            assert text.endswith("\n") and len({len(r) for r in rows}) == 1, text
        elif path.suffix == ".png":
            assert path.read_bytes().endswith(b"IEND\xaeB`\x82"), rel
        elif path.suffix == ".onnx":
            from reelrestore.engine.model import OnnxModel

            onnx.checker.check_model(onnx.load(str(path)))
            OnnxModel(path, device="cpu")
        else:
            assert path.name == "model.txt" and path.read_text().endswith("\n"), rel
    return names


# ------------------------------------------------------------------------ interruptions
SIGNALS = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129}
RNG = np.random.default_rng(0)
EXPORT_DELAYS = RNG.uniform(0.5, 3.0, size=6)  # after the start: from imports to the last rename
TRAIN_DELAYS = RNG.uniform(0.2, 3.0, size=3)  # after the run folder's first files: steps, saves, plots


def interrupt(prog: str, args: list[str], cwd: Path, signum: int, delay: float,
              after: Path | None = None) -> subprocess.CompletedProcess:
    """Start ``prog``, wait until ``after`` exists (if given), ``delay`` seconds more, signal it."""
    proc = subprocess.Popen(PROGS[prog][1] + args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 60
    while after is not None and not after.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(delay)
    if proc.poll() is None:
        proc.send_signal(signum)
    out, err = proc.communicate(timeout=TIMEOUT)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def assert_stopped_cleanly(result: subprocess.CompletedProcess, signum: int, prog: str, finished: str) -> None:
    """Stopped with 128 + signum in one line, or done; or killed by the signal itself, which
    happens only outside the command (interpreter start-up on a loaded machine, or shutdown
    after the work was done) and which the caller checks left nothing or complete files."""
    code, err = result.returncode, result.stderr
    assert "Traceback" not in err, err[-3000:]
    if code == SIGNALS[signum]:
        lines = [line for line in err.splitlines() if line.strip()]
        assert lines and lines[-1].startswith(f"{prog}: stopped by "), err
    else:
        assert code == -signum or (code == 0 and finished in result.stdout), (code, err[-3000:])


def test_a_signal_during_export_leaves_no_model_or_a_complete_one(shared, tmp_path):
    cases = [(sig, float(delay)) for sig, delay in zip(list(SIGNALS) * 2, EXPORT_DELAYS)]

    def one(i: int):
        work = tmp_path / f"e{i}"
        ckpt = put(work / "last.pt", shared.checkpoint)
        sig, delay = cases[i]
        before = snapshot(work)
        result = interrupt("export", [ckpt, "-o", str(work / "m.onnx")], work, sig, delay)
        return work, before, sig, result

    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(one, range(len(cases))))
    for work, before, sig, result in runs:
        assert_stopped_cleanly(result, sig, "restore-export", '"output"')
        assert {k: v for k, v in snapshot(work).items() if k in before} == before
        left = assert_complete(work, set(before))
        assert left == ["m.onnx"] if result.returncode == 0 else set(left) <= {"m.onnx"}, left  # complete, or none


def test_a_signal_during_training_leaves_complete_run_files(tmp_path):
    def one(i: int):
        sig, delay = list(SIGNALS)[i], float(TRAIN_DELAYS[i])
        work = tmp_path / f"t{i}"
        args = train("schedule.epochs=1000", steps="3000", data=True)(work, None)
        before = snapshot(work)
        result = interrupt("train", args, work, sig, delay, after=work / "run" / "history.json")
        return work, before, sig, result

    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(one, range(len(SIGNALS))))
    for work, before, sig, result in runs:
        assert_stopped_cleanly(result, sig, "restore-train", "done:")
        assert result.returncode == SIGNALS[sig]  # 3000 steps take minutes
        assert {k: v for k, v in snapshot(work).items() if k in before} == before
        left = assert_complete(work, set(before))
        assert {"run/config.json", "run/model.txt", "run/history.json"} <= set(left), left


# ------------------------------------------------------------------- the run folder rule
def test_y_replaces_another_runs_files_and_a_resume_continues_its_own_folder(tmp_path):
    from click.testing import CliRunner

    from reelrestore.training.train import main

    config, data, out = put(tmp_path / "tiny.toml", TINY_TEXT), takes(tmp_path / "clean"), tmp_path / "run"
    put(out / "notes.txt", "mine")

    def train_(*args: str):
        return CliRunner().invoke(main, ["--config", config, "--data", data, "--out", str(out), "-q", *args])

    first = train_("--steps", "4", "-y", "schedule.epochs=2")  # a folder with files: -y
    assert first.exit_code == 0, first.output
    numbered = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert numbered == ["epoch0001-step00000003.pt", "epoch0001-step00000004.pt"]
    refused = train_("--steps", "1")
    assert refused.exit_code == 1 and "pass -y" in refused.stderr
    resumed = CliRunner().invoke(main, ["--resume", str(out / "last.pt"), "--steps", "5", "-q"])  # its own: no -y
    assert resumed.exit_code == 0, resumed.output
    assert len(list((out / "checkpoints").iterdir())) == 3
    second = train_("--steps", "1", "-y")  # another run's files: replaced, its numbered checkpoints removed
    assert second.exit_code == 0, second.output
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["epoch0000-step00000001.pt"]
    assert json.loads((out / "history.json").read_text())[-1]["step"] == 1
    assert torch.load(out / "last.pt", weights_only=True)["state"]["step"] == 1
    assert (out / "notes.txt").read_text() == "mine"  # not a run file: kept
    assert_complete(out, {"notes.txt"})
