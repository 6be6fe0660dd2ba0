"""Whole archives: a catalog of reels restored exactly once, on local processes or Ray.

`restore-batch` (``batch_cli.py``) turns a folder or a manifest into a `Catalog` of
`Reel`s and hands them to workers: a pool of local processes (`LocalPool`) or Ray
actors (`ray_outcomes`). A worker (`ReelWorker`) holds one model session for its life and
restores one reel at a time with `restore.restore_file`, the same path `restore-stream -o`
takes, so a reel restored in a catalog is the file `restore-stream` would have written.

Exactly once, whatever is killed when (a worker, the driver, the whole cluster):

* each output has a **sidecar**, ``<output>.restore.json``, holding the input's sha256,
  the model's sha256 and the reel's settings. The worker writes it (state ``writing``)
  *before* the output appears, so every output restore-batch ever wrote is claimed by a
  sidecar, and rewrites it (state ``done``, with the output's sha256) after;
* the output itself is written to a temporary name and renamed into place when complete
  (`safety.AtomicPath`), so it is whole or absent;
* a reel is skipped only when its sidecar is ``done`` for the same input, model and
  settings and the output on disk has the recorded sha256; anything else is redone.
  An output without any sidecar is not ours: it is replaced only with ``-y``;
* a lock file in the output folder keeps two drivers off one catalog; a driver that died
  leaves a stale lock and temporary files, which the next run takes over and removes;
* local workers die with their driver (``PR_SET_PDEATHSIG``; elsewhere they notice
  between reels) and are fed one reel at a time, so a killed driver leaves no worker
  writing behind the rerun's back; a reel whose worker dies is retried once.

A bad reel (unreadable, truncated, the wrong kind of file) becomes a failed `Outcome` with
its one-line reason; the catalog goes on. The engine stays torch-free; Ray is imported
only for ``--ray``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from .safety import Terminated, one_line, write_text

SIDECAR_SUFFIX = ".restore.json"
SIDECAR_FORMAT = "reelrestore-batch-1"
LOCK_NAME = ".restore-batch.lock"
# Inputs that are lossy: restored to FLAC with --format same (re-encoding would add loss).
LOSSY_FORMATS = {"OGG", "MP3", "OPUS"}
# Files with these extensions are reels even when they cannot be read (they fail, with the
# reason); other files are reels only when libsndfile reads them as audio.
AUDIO_EXTENSIONS = {".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc", ".au",
                    ".caf", ".w64", ".rf64", ".bwf"}
WORKER_ATTEMPTS = 2  # a reel whose worker died is tried this many times in all


class CatalogError(ValueError):
    """A catalog that cannot be run as asked; the message says why and what to do."""


# --------------------------------------------------------------------------- the catalog
@dataclass(frozen=True)
class Settings:
    """Everything besides input and model that makes an output what it is (recorded in
    the sidecar: a change redoes the reel)."""

    cutoff: str = "auto"  # "auto" or Hz
    mix: float = 1.0
    overlap: float = 0.5
    output_rate: int | None = None
    subtype: str | None = None

    def stream_config(self):
        from .stream import StreamConfig
        from .units import parse_cutoff

        return StreamConfig(overlap=self.overlap, cutoff_hz=parse_cutoff(self.cutoff), mix=self.mix)


@dataclass(frozen=True)
class Reel:
    """One input and the output it becomes."""

    input: Path
    output: Path
    settings: Settings
    audio_seconds: float = 0.0  # from the header; 0 when it cannot be read (the worker says why)

    @property
    def sidecar(self) -> Path:
        return sidecar_path(self.output)

    def outcome(self, status: str, reason: str = "", **more) -> Outcome:
        """This reel's `Outcome` (its audio seconds from the header unless given)."""
        return Outcome(str(self.input), str(self.output), status, reason,
                       **{"audio_seconds": self.audio_seconds, **more})


@dataclass
class Outcome:
    """What became of one reel; a row of the summary."""

    input: str
    output: str
    status: str  # "done" | "skipped" | "failed"
    reason: str = ""  # why it failed or was skipped
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    cutoffs_hz: list = field(default_factory=list)  # per channel; None = no cut found (passed through)
    real_time_factor: float = 0.0
    worker: str = ""  # host:pid that did it


def sidecar_path(output: Path) -> Path:
    return output.with_name(output.name + SIDECAR_SUFFIX)


def audio_info(path: Path):
    """The soundfile header of `path`, or None when libsndfile does not read it as audio
    (read by content: the extension does not matter)."""
    import soundfile as sf

    try:
        return sf.info(str(path))
    except Exception:
        return None


def output_name(relative: Path, info, fmt: str) -> Path:
    """The output's path relative to the output folder: the input's, with the extension
    `fmt` asks for ("same": the input's, FLAC for a lossy input)."""
    if fmt == "same":
        lossy = info is not None and info.format in LOSSY_FORMATS
        return relative.with_suffix(".flac") if lossy else relative
    return relative.with_suffix("." + fmt)


def scan_folder(folder: Path, out: Path, settings: Settings, fmt: str = "same") -> tuple[list[Reel], int]:
    """Every audio file under `folder` (recursively, by content, or by an audio extension:
    a damaged .wav is a reel that fails with its reason) as a reel written to the same
    relative path under `out`; other files are left out and counted.
    The output folder, when inside `folder`, is not scanned."""
    reels, ignored = [], 0
    folder, out = folder.absolute(), out.absolute()  # a Ray node's working folder is not ours
    out_resolved = out.resolve()
    for root, dirs, files in os.walk(folder):
        here = Path(root)
        dirs[:] = sorted(d for d in dirs if (here / d).resolve() != out_resolved and not d.startswith("."))
        for name in sorted(files):
            path = here / name
            if name.startswith(".") or name.endswith(SIDECAR_SUFFIX) or not path.is_file():
                continue
            info = audio_info(path)
            if info is None and path.suffix.lower() not in AUDIO_EXTENSIONS:
                ignored += 1
                continue
            relative = path.relative_to(folder)
            reels.append(Reel(path, out / output_name(relative, info, fmt), settings, _seconds(info)))
    return reels, ignored


def read_manifest(manifest: Path, out: Path, settings: Settings, fmt: str = "same") -> list[Reel]:
    """A CSV (with a header) or JSON-lines manifest: ``input`` (required), ``output``,
    ``cutoff``, ``mix``, ``overlap`` per reel. Relative paths are relative to the
    manifest's folder; an output not given mirrors the input's path under `out`.
    Every row is a reel, readable or not (an unreadable one fails with its reason)."""
    text = manifest.read_text()
    if manifest.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        rows = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise CatalogError(f"{manifest}:{number}: not a JSON object ({exc.msg}); "
                                       "expected one {\"input\": ...} per line") from None
                if not isinstance(row, dict):
                    raise CatalogError(f"{manifest}:{number}: expected a JSON object per line")
                rows.append((number, row))
    else:
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames or "input" not in reader.fieldnames:
            raise CatalogError(f"{manifest}: expected a CSV header with an 'input' column "
                               f"(and optionally output, cutoff, mix, overlap), got {reader.fieldnames}")
        rows = [(number, row) for number, row in enumerate(reader, 2)]
    base, out = manifest.parent.absolute(), out.absolute()  # a Ray node's working folder is not ours
    known = {"input", "output", "cutoff", "mix", "overlap"}
    reels = []
    for number, row in rows:
        unknown = sorted(set(row) - known - {None})
        if unknown:
            raise CatalogError(f"{manifest}:{number}: unknown column(s) {unknown}; expected {sorted(known)}")
        if not row.get("input"):
            raise CatalogError(f"{manifest}:{number}: no input path")
        path = base / str(row["input"])
        info = audio_info(path) if path.is_file() else None
        if row.get("output"):
            dest = base / str(row["output"])
        else:
            try:
                relative = path.resolve().relative_to(base.resolve())
            except ValueError:
                raise CatalogError(f"{manifest}:{number}: {path} is outside the manifest's folder; "
                                   "give its output path in an 'output' column") from None
            dest = out / output_name(relative, info, fmt)
        try:
            own = replace(settings, **{k: _setting(k, row[k]) for k in ("cutoff", "mix", "overlap")
                                       if row.get(k) not in (None, "")})
        except ValueError as exc:
            raise CatalogError(f"{manifest}:{number}: {one_line(exc)}") from None
        reels.append(Reel(path, dest, own, _seconds(info)))
    return reels


def _setting(key: str, value) -> str | float:
    if key == "cutoff":
        from .units import parse_cutoff

        parse_cutoff(str(value))  # refuse nonsense up front, per row
        return str(value)
    number = float(value)
    if key == "mix" and not 0.0 <= number <= 1.0:
        raise ValueError(f"mix: expected 0..1, got {value!r}")
    if key == "overlap" and not 0.0 <= number <= 0.95:
        raise ValueError(f"overlap: expected 0..0.95, got {value!r}")
    return number


def _seconds(info) -> float:
    return info.frames / info.samplerate if info is not None and info.samplerate else 0.0


def check_catalog(reels: list[Reel]) -> None:
    """No output may be an input or another reel's output."""
    from .safety import same_file

    inputs = {p.resolve() for p in (r.input for r in reels)}
    seen: dict[Path, Path] = {}
    for reel in reels:
        dest = reel.output.resolve()
        if dest in inputs or (reel.output.exists() and same_file(reel.output, reel.input)):
            raise CatalogError(f"{reel.output}: would overwrite an input of the catalog; choose another output folder")
        if dest in seen:
            raise CatalogError(f"{reel.output}: the output of both {seen[dest]} and {reel.input}; "
                               "give them different outputs")
        seen[dest] = reel.input


def foreign_outputs(reels: Iterable[Reel]) -> list[Reel]:
    """Reels whose output exists without a sidecar: a file restore-batch did not write."""
    return [r for r in reels if (r.output.exists() or r.output.is_symlink()) and not r.sidecar.exists()]


# -------------------------------------------------------------------- the output folder
class OutputLock:
    """``OUT/.restore-batch.lock``: one driver per output folder. A lock left by a driver
    that died (its process is gone) is taken over, and the temporary files its workers
    left are removed."""

    def __init__(self, folder: Path):
        self.path = folder / LOCK_NAME
        self.held = False

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = {"host": socket.gethostname(), "pid": os.getpid()}
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self._owner()
                if owner is not None and _alive(owner):
                    raise CatalogError(f"{self.path.parent}: another restore-batch (pid {owner['pid']} on "
                                       f"{owner['host']}) is writing there; wait for it, or remove {self.path} "
                                       "if it is gone") from None
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as fh:
                json.dump(me, fh)
            self.held = True
            return
        raise CatalogError(f"{self.path}: cannot take the lock; remove it if no restore-batch is running")

    def _owner(self) -> dict | None:
        try:
            owner = json.loads(self.path.read_text())
            return owner if isinstance(owner, dict) and "pid" in owner else None
        except (OSError, ValueError):
            return None

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> OutputLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _alive(owner: dict) -> bool:
    if owner.get("host") != socket.gethostname():
        return True  # another machine's driver: cannot tell, so assume it runs
    try:
        os.kill(int(owner["pid"]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, TypeError):
        return True
    return True


def remove_partials(folder: Path) -> int:
    """Remove the temporary files (``.rr-*.partial*``) a killed run left under `folder`."""
    removed = 0
    for path in folder.rglob(".rr-*.partial*"):
        if path.is_file():
            path.unlink(missing_ok=True)
            removed += 1
    return removed


# ------------------------------------------------------------------------------ workers
class ReelWorker:
    """One model session, restoring one reel at a time (a local process or a Ray actor)."""

    def __init__(self, model_path: str, device: str = "cpu", threads: int = 1, block_size: int = 96000):
        from .model import OnnxModel

        self.model = OnnxModel(model_path, device=device, threads=threads)
        self.block_size = block_size
        self.name = f"{socket.gethostname()}:{os.getpid()}"

    def restore(self, reel: Reel) -> Outcome:
        """Restore `reel` unless its sidecar says it is done; never raises for a bad reel."""
        from .model import file_sha256
        from .restore import restore_file

        start = time.perf_counter()
        outcome = reel.outcome("failed", worker=self.name)
        claimed = False
        try:
            if not reel.input.is_file():
                raise ValueError(f"{reel.input}: no such file")
            claim = {"format": SIDECAR_FORMAT, "input": str(reel.input), "input_sha256": file_sha256(reel.input),
                     "model_sha256": self.model.sha256, "settings": asdict(reel.settings)}
            done = _done_sidecar(reel, claim)
            if done is not None:
                outcome.status, outcome.reason = "skipped", "done before (same input, model and settings)"
                outcome.audio_seconds = done["report"]["audio_seconds"]
                outcome.cutoffs_hz = done["cutoffs_hz"]
                outcome.real_time_factor = done["report"]["real_time_factor"]
                return outcome
            reel.output.parent.mkdir(parents=True, exist_ok=True)
            write_text(reel.sidecar, json.dumps({**claim, "state": "writing"}, indent=2) + "\n")
            claimed = True
            s = reel.settings
            report = restore_file(reel.input, reel.output, self.model, s.stream_config(), self.block_size,
                                  output_rate=s.output_rate, subtype=s.subtype)
            cutoffs = [c["hz"] if c else None for c in report.cutoffs]
            write_text(reel.sidecar, json.dumps({**claim, "state": "done", "output": str(reel.output),
                                                 "output_sha256": file_sha256(reel.output),
                                                 "cutoffs_hz": cutoffs, "report": report.to_dict()},
                                                indent=2) + "\n")
            outcome.status = "done"
            outcome.audio_seconds, outcome.real_time_factor = report.audio_seconds, report.real_time_factor
            outcome.cutoffs_hz = cutoffs
        except (KeyboardInterrupt, MemoryError):
            raise
        except Exception as exc:  # a bad reel: its reason, and the catalog goes on
            reason = one_line(exc) if isinstance(exc, (ValueError, OSError)) else f"{type(exc).__name__}: {one_line(exc)}"
            outcome.reason = reason.removeprefix(f"{reel.input}: ")  # the summary names the reel
        finally:
            if claimed and outcome.status == "failed" and not reel.output.exists():
                reel.sidecar.unlink(missing_ok=True)  # failed or stopped before writing: no claim either
            outcome.wall_seconds = time.perf_counter() - start
        return outcome


def _done_sidecar(reel: Reel, claim: dict) -> dict | None:
    """The reel's sidecar when it says done for `claim` and the output matches it."""
    from .model import file_sha256

    try:
        side = json.loads(reel.sidecar.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(side, dict) or side.get("state") != "done":
        return None
    if any(side.get(key) != value for key, value in claim.items() if key != "input"):
        return None
    try:
        return side if reel.output.is_file() and file_sha256(reel.output) == side.get("output_sha256") else None
    except OSError:
        return None


# --------------------------------------------------------------------- the local pool
def _die_with_parent() -> None:
    """Ask Linux to send SIGTERM when the driver dies (elsewhere: noticed between reels)."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


def _serve(conn, model: str, device: str, threads: int, block_size: int) -> None:
    """A local worker process: one `ReelWorker`, reels from the driver's end of `conn`
    until None; each outcome goes back on it. One pipe per worker, no lock shared with
    other workers: a worker killed at any moment cannot jam the others."""
    parent = os.getppid()
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver decides; it stops us with SIGTERM
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # blocked by `LocalPool._start`

    def terminate(signum, frame):
        raise Terminated(signum)  # unwinds: the output being written is removed

    signal.signal(signal.SIGTERM, terminate)
    try:
        try:
            worker = ReelWorker(model, device, threads, block_size)
        except Exception as exc:
            conn.send(("broken", one_line(exc)))
            return
        conn.send(("ready", None))
        while os.getppid() == parent:
            if not conn.poll(1.0):
                continue
            reel = conn.recv()
            if reel is None:
                break
            conn.send(("done", worker.restore(reel)))
    except (Terminated, EOFError, BrokenPipeError):
        pass  # stopped by the driver, or the driver is gone
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # nothing is being written any more


class LocalPool:
    """`workers` local processes (spawned: a clean interpreter each), one `ReelWorker`
    apiece, each fed one reel at a time through its own pipe. A worker that dies is
    replaced and its reel retried (failed after WORKER_ATTEMPTS tries)."""

    def __init__(self, model: str, workers: int, threads: int, device: str = "cpu", block_size: int = 96000):
        import multiprocessing as mp

        self.ctx = mp.get_context("spawn")
        self.args = (model, device, threads, block_size)
        self.workers = workers
        self.procs: dict[int, tuple] = {}  # worker id -> (process, the driver's end of its pipe)
        self.running: dict[int, tuple[int, Reel]] = {}  # worker id -> (catalog index, reel)
        self.started = 0
        self.pending: deque[tuple[int, Reel]] = deque()
        self.attempts: list[int] = []
        self.max_starts = 0

    def outcomes(self, reels: list[Reel]) -> Iterator[Outcome]:
        """Each reel's `Outcome` as it finishes."""
        from multiprocessing.connection import wait

        self.pending = deque(enumerate(reels))
        self.attempts = [0] * len(reels)
        self.max_starts = self.workers + len(reels) * WORKER_ATTEMPTS
        for _ in range(min(self.workers, len(reels))):
            self._start()
        finished = False
        try:
            while self.pending or self.running:
                ends = {conn: wid for wid, (_, conn) in self.procs.items()}
                for conn in wait(list(ends), timeout=0.5):
                    wid = ends[conn]
                    try:
                        kind, payload = conn.recv()
                    except (EOFError, OSError):  # it died; `_reap` sees to its reel
                        continue
                    if kind == "broken":
                        raise CatalogError(f"a worker could not load the model: {payload}")
                    if kind == "done":
                        self.running.pop(wid, None)
                        yield payload
                    self._feed(wid)
                yield from self._reap()
            finished = True
        finally:
            self.close(wait=5.0 if finished else 0.0)

    def close(self, wait: float = 0.0) -> None:
        """Stop the workers: those told to finish get `wait` seconds to exit on their
        own, the rest SIGTERM (a worker removes the output it was writing)."""
        deadline = time.monotonic() + wait
        for proc, _ in self.procs.values():
            proc.join(timeout=max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.terminate()
        for proc, conn in self.procs.values():
            proc.join(timeout=10)
            conn.close()
        self.procs.clear()

    def _start(self) -> None:
        ours, theirs = self.ctx.Pipe()
        wid = self.started
        proc = self.ctx.Process(target=_serve, args=(theirs, *self.args), name=f"restore-batch-worker-{wid}",
                                daemon=True)
        # Started with SIGINT blocked (the mask survives exec): a Ctrl-C at the terminal
        # reaches the whole process group, and a worker still starting must not print a
        # traceback; the driver stops the workers itself.
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            proc.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        theirs.close()
        self.procs[wid] = (proc, ours)
        self.started += 1

    def _feed(self, wid: int) -> None:
        proc, conn = self.procs[wid]
        task = None
        if self.pending:
            index, reel = task = self.pending.popleft()
            self.attempts[index] += 1
            self.running[wid] = task
        try:
            conn.send(None if task is None else task[1])
        except (BrokenPipeError, OSError):
            pass  # it died: `_reap` retries its reel

    def _reap(self) -> Iterator[Outcome]:
        """Workers that died: retry or fail their reel, start a replacement while there is work."""
        for wid, (proc, conn) in list(self.procs.items()):
            if proc.is_alive():
                continue
            del self.procs[wid]
            conn.close()
            if wid in self.running:
                index, reel = self.running.pop(wid)
                code = proc.exitcode or 0
                how = f"signal {-code}" if code < 0 else f"exit code {code}"
                if self.attempts[index] < WORKER_ATTEMPTS:
                    self.pending.appendleft((index, reel))
                else:
                    yield reel.outcome("failed", f"the worker restoring it died ({how}), {self.attempts[index]} times")
            if self.pending and self.started < self.max_starts:
                self._start()
        if self.pending and not self.procs:
            raise CatalogError("the workers keep dying (out of memory?); nothing more can be restored")


# ------------------------------------------------------------------------------- Ray
def connect_ray(address: str):
    """(the ray module, whether this call started it): joins or starts Ray as `ray_outcomes`
    describes; a missing Ray or cluster is a `CatalogError` in one line."""
    try:
        import ray
    except ImportError:
        raise CatalogError("--ray needs Ray: pip install 'reelrestore[ray]' (or pip install ray)") from None
    if ray.is_initialized():
        return ray, False
    try:
        ray.init(address=None if address == "local" else address, include_dashboard=False,
                 log_to_driver=False, logging_level="ERROR")
    except ConnectionError as exc:
        raise CatalogError(f"--ray {address}: no Ray cluster there ({one_line(exc).split('.')[0]}); start one "
                           "with 'ray start --head', or give --ray alone to run Ray on this machine") from None
    return ray, True


def ray_outcomes(reels: list[Reel], model: str, workers: int | None, threads: int, address: str,
                 device: str = "cpu", block_size: int = 96000) -> Iterator[Outcome]:
    """Restore `reels` on Ray actors, one `ReelWorker` each (``threads`` CPUs apiece),
    yielding outcomes as they finish. ``address``: "local" starts a Ray instance on this
    machine, "auto" joins the running cluster, else a cluster's address. Inputs, outputs
    and the model must lie on storage every node sees. Ray restarts a dead actor and
    retries its reel once (restoring a reel twice is harmless: it is written atomically)."""
    ray, _ = connect_ray(address)
    if workers is None:
        workers = max(1, int(ray.cluster_resources().get("CPU", 1) // threads))
    actor = ray.remote(num_cpus=threads, max_restarts=-1, max_task_retries=WORKER_ATTEMPTS - 1)(ReelWorker)
    actors = [actor.remote(model, device, threads, block_size) for _ in range(min(workers, len(reels)))]
    pending = deque(reels)
    busy: dict = {}  # object ref -> (reel, actor)

    def submit(worker) -> None:
        reel = pending.popleft()
        busy[worker.restore.remote(reel)] = (reel, worker)

    try:
        for worker in actors:
            if pending:
                submit(worker)
        while busy:
            ready, _ = ray.wait(list(busy), num_returns=1)
            reel, worker = busy.pop(ready[0])
            try:
                yield ray.get(ready[0])
            except ray.exceptions.RayError as exc:
                yield reel.outcome("failed", f"Ray: {one_line(exc)}")
            if pending:
                submit(worker)
    finally:
        for worker in actors:
            ray.kill(worker)


# --------------------------------------------------------------------------- summary
def duration(seconds: float) -> str:
    """"42.0 s", "12.5 min", "3.21 h"."""
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.2f} h"


@dataclass
class Summary:
    """The catalog's outcomes and totals."""

    outcomes: list[Outcome]
    wall_seconds: float
    workers: int | None  # None: as many as the Ray cluster has CPUs for
    executor: str  # "local" | "ray"

    @property
    def counts(self) -> dict[str, int]:
        return {s: sum(o.status == s for o in self.outcomes) for s in ("done", "skipped", "failed")}

    @property
    def audio_seconds(self) -> float:
        return sum(o.audio_seconds for o in self.outcomes if o.status == "done")

    @property
    def hours_per_hour(self) -> float:
        """Hours of audio restored (not skipped) per hour of wall time."""
        return self.audio_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0

    @property
    def where(self) -> str:
        if self.workers is None:
            return "a Ray cluster"
        return f"{self.workers} {'Ray' if self.executor == 'ray' else 'local'} worker{'s' if self.workers != 1 else ''}"

    def to_dict(self) -> dict:
        return {"executor": self.executor, "workers": self.workers, "wall_seconds": round(self.wall_seconds, 3),
                **self.counts, "audio_hours_restored": round(self.audio_seconds / 3600, 6),
                "hours_per_hour": round(self.hours_per_hour, 2),
                "reels": [asdict(o) for o in self.outcomes]}

    def lines(self) -> list[str]:
        c = self.counts
        out = [f"{c['done']} restored, {c['skipped']} skipped, {c['failed']} failed of "
               f"{len(self.outcomes)} reels; {duration(self.audio_seconds)} of audio in "
               f"{self.wall_seconds:.1f} s on {self.where}: "
               f"{self.hours_per_hour:.1f} h of audio per hour"]
        out += [f"failed: {o.input}: {o.reason}" for o in self.outcomes if o.status == "failed"]
        return out

    def write(self, path: Path) -> None:
        """``--summary``: JSON (``.json``) or CSV (anything else), written whole."""
        if path.suffix.lower() == ".json":
            write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")
            return
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, [f.name for f in fields(Outcome)])
        writer.writeheader()
        for o in self.outcomes:
            row = asdict(o)
            row["cutoffs_hz"] = " ".join("none" if hz is None else f"{hz:.0f}" for hz in o.cutoffs_hz)
            writer.writerow(row)
        write_text(path, buffer.getvalue())


def run_catalog(reels: list[Reel], model: str, workers: int, threads: int, ray_address: str | None = None,
                device: str = "cpu", block_size: int = 96000,
                on_outcome: Callable[[Outcome], None] | None = None) -> Summary:
    """Restore the catalog under its output folders' locks; outcomes in catalog order."""
    check_catalog(reels)
    roots = _roots(reels)
    locks = [OutputLock(root) for root in roots]
    start = time.perf_counter()
    by_output: dict[str, Outcome] = {}
    ray, started = connect_ray(ray_address) if ray_address is not None else (None, False)
    try:  # Ray is joined before anything is written: a missing cluster leaves no trace
        for lock in locks:
            lock.acquire()
        for root in roots:
            remove_partials(root)
        if ray_address is not None:
            stream = ray_outcomes(reels, model, workers, threads, ray_address, device, block_size)
        else:
            stream = LocalPool(model, workers, threads, device, block_size).outcomes(reels)
        for outcome in stream:
            by_output[outcome.output] = outcome
            if on_outcome is not None:
                on_outcome(outcome)
    finally:
        for lock in locks:
            lock.release()
        if started:
            ray.shutdown()
    outcomes = [by_output[str(r.output)] for r in reels if str(r.output) in by_output]
    return Summary(outcomes, time.perf_counter() - start, workers, "local" if ray_address is None else "ray")


def _roots(reels: list[Reel]) -> list[Path]:
    """The fewest folders that hold every output (one lock each)."""
    folders = sorted({r.output.parent.resolve() for r in reels}, key=lambda p: len(p.parts))
    roots: list[Path] = []
    for folder in folders:
        if not any(folder == root or root in folder.parents for root in roots):
            roots.append(folder)
    return roots
