"""What every command does so that an archive's masters are never harmed.

* `check_outputs`: no path a command writes may be a path it reads (by name, link or hard
  link), two outputs may not coincide, and an existing output is replaced only with
  ``-y`` (``-n`` refuses it without asking; neither: refused with a hint) — the ffmpeg way.
* `AtomicPath`: every output is written to a short hidden temporary name in its folder and
  renamed into place only when complete; an error or a signal removes it.
* `guarded`: a command's errors end in one line ``PROG: error: ...`` with exit 1, a stop
  by Ctrl-C (130), SIGTERM (143) or SIGHUP (129) in one line naming the signal, and no
  traceback unless ``--debug``.
* `stops_in_one_line`: the same stop for the training tools, whose ``main``
  parses its own arguments (argparse) and says its own errors.
* After a stop by a signal, a command ends at once (`end_after_stop`): its own cleanup has
  run, and the interpreter's teardown would only run native libraries' finalisers over the
  work the signal broke into.
* `signals_deferred`: held around the imports of native libraries (torch, ONNX Runtime),
  whose C++ start-up aborts the interpreter when an interrupt lands inside it.

Torch-free and light (click, stdlib): every command imports it before parsing.
"""

from __future__ import annotations

import errno
import functools
import os
import signal
import sys
import uuid
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import click


class OutputError(ValueError):
    """An output path that must not be written; the message says why and what to do."""


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised in the main thread so that every cleanup runs."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def exit_code(exc: KeyboardInterrupt) -> int:
    """The conventional status of a run stopped by a signal: 128 + its number."""
    return 128 + getattr(exc, "signum", signal.SIGINT)


def signal_name(exc: KeyboardInterrupt) -> str:
    return "Ctrl-C" if not isinstance(exc, Terminated) else signal.Signals(exc.signum).name


@contextmanager
def signals_as_interrupts():
    """SIGTERM and SIGHUP raise `Terminated`, SIGINT KeyboardInterrupt, so a service
    manager's stop cleans up exactly as Ctrl-C does. Yields the list of signals received
    (an interrupt inside a C extension may surface as another exception, e.g. an
    ImportError). Main thread only."""
    received: list[int] = []

    def handler(signum, frame):
        received.append(signum)
        raise KeyboardInterrupt() if signum == signal.SIGINT else Terminated(signum)

    def unraisable(info) -> None:
        """The interrupt was raised inside a C callback (numba compiling, ctypes), which
        swallows it: no traceback; `guarded` still stops with the signal's status when
        the command returns (or fails) — `received` remembers it."""
        if not (isinstance(info.exc_value, KeyboardInterrupt) and received):
            previous_hook(info)

    stops = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {s: signal.signal(s, handler) for s in stops}
    previous_hook, sys.unraisablehook = sys.unraisablehook, unraisable
    try:
        yield received
    finally:
        sys.unraisablehook = previous_hook
        for s, h in previous.items():
            signal.signal(s, h)


@contextmanager
def signals_deferred():
    """Hold Ctrl-C, SIGTERM and SIGHUP until the block ends, then let them through.

    For imports of native libraries: torch (and ONNX Runtime) run Python imports from
    C++ while they start, and a KeyboardInterrupt raised there escapes as a C++ exception
    that ends the interpreter with SIGABRT and a page of pybind11 text, not the one-line
    stop `guarded` promises. Held, the signal is delivered as the block ends, where it
    raises in Python like any other. Main thread only (elsewhere: a plain block).
    """
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise OutputError(f"{path}: cannot be resolved ({exc}); give a plain path") from None


def same_file(a: Path, b: Path) -> bool:
    """Whether `a` and `b` name the same file: by name, through links, or hard links."""
    if _resolved(a) == _resolved(b):
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_outputs(inputs: Iterable[Path | None], outputs: Iterable[tuple[str, Path | None]],
                  overwrite: bool | None = None) -> None:
    """Refuse outputs that would harm an input, each other, or an existing file.

    inputs: paths the command reads. outputs: (option, path) it writes (None: not given).
    overwrite: True (-y) replaces existing files, False (-n) never does, None refuses an
    existing file with a hint to pass -y.
    """
    ins = [Path(p) for p in inputs if p is not None]
    outs = [(name, Path(p)) for name, p in outputs if p is not None]
    for name, out in outs:
        for src in ins:
            if same_file(src, out):
                raise OutputError(f"{out}: {name} would overwrite the input {src}; choose another name")
    for i, (name, out) in enumerate(outs):
        for other, path in outs[i + 1 :]:
            if same_file(out, path):
                raise OutputError(f"{out}: {name} and {other} name the same file; choose two names")
    for name, out in outs:
        if out.is_dir():
            raise OutputError(f"{out}: {name} is a folder; expected a file name")
        folder = out.parent
        if not folder.is_dir():
            raise OutputError(f"{out}: the folder {folder} does not exist")
        if not os.access(folder, os.W_OK):
            raise OutputError(f"{out}: the folder {folder} is not writable")
        if out.exists() and not out.is_file():
            raise OutputError(f"{out}: {name} is not a regular file (a device, pipe or socket); "
                              "expected a file name")
        if out.exists() or out.is_symlink():
            if overwrite is False:
                raise OutputError(f"{out}: exists, and -n never overwrites")
            if overwrite is None:
                raise OutputError(f"{out}: exists; pass -y to overwrite it (or -n never to)")


class AtomicPath:
    """A temporary path beside `path` to write to; `commit` renames it into place with the
    usual mode, `discard` (or leaving a `with` block by an exception) removes it. Used as a
    context manager, a failed write (OSError) is reported with `path`, not the temporary
    name.

    The temporary name is short (``.rr-<8 hex>.partial<suffix>``), so any legal output
    name works, and keeps the suffix, so format detection by extension still works.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.temp = self.path.parent / f".rr-{uuid.uuid4().hex[:8]}.partial{self.path.suffix}"

    def commit(self) -> None:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.temp, 0o666 & ~umask)
        os.replace(self.temp, self.path)

    def discard(self) -> None:
        self.temp.unlink(missing_ok=True)

    def __enter__(self) -> Path:
        return self.temp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.discard()
            if isinstance(exc, OSError):  # a full disk, a read-only folder: name the output
                raise OSError(exc.errno, exc.strerror or str(exc), str(self.path)) from exc
            return
        try:
            self.commit()
        except OSError as error:
            self.discard()
            raise OSError(error.errno, error.strerror or str(error), str(self.path)) from error
        except BaseException:  # a signal between chmod and rename
            self.discard()
            raise


def write_text(path: str | Path, text: str) -> None:
    """Write `text` to `path` atomically."""
    with AtomicPath(path) as temp:
        temp.write_text(text)


def one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def describe_os_error(exc: OSError) -> str:
    """"File too large: out.wav; is the disk full?" — the file only when the error names one."""
    where = f": {exc.filename}" if exc.filename else ""
    full = exc.errno in (errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC))
    return f"{exc.strerror or one_line(exc)}{where}" + ("; is the disk full?" if full else "")


def end_after_stop(code: int | str | None) -> NoReturn:
    """End a process that a signal stopped, now, with `code` (as `sys.exit` reads it).

    Its own cleanup has run by then (outputs removed or complete, workers stopped, the one
    line said). What is left is the interpreter's teardown, which runs the native
    libraries' finalisers (ONNX Runtime's sessions and thread pools, numba's and LLVM's
    objects) over work the signal broke into, and that can crash: restore-stream ended
    with SIGSEGV instead of 129 after its one line in a fresh-clone CI run of 56fe7da
    (`test_signals_at_random_moments`, SIGHUP; the runs before had passed). Standard
    streams are flushed; atexit handlers do not run."""
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more to say there
            pass
    os._exit(code)


def stopped(prog: str, signum: int) -> None:
    """End with a signal's status and one line (the signal's work is done or undone)."""
    name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
    click.echo(f"{prog}: stopped by {name}; nothing was left half-written", err=True)
    end_after_stop(128 + signum)


def _quiet(info) -> None:
    """An unraisable-exception hook that says nothing (see `guarded`)."""


def guarded(prog: str) -> Callable:
    """Decorate a click command's function (below ``@click.command``): adds ``--debug``,
    turns SIGTERM/SIGHUP into a clean stop, and ends every error in one line.

    After a stop, errors raised in finalisers while the interpreter winds down are not
    printed: an interrupt inside a native library's work (numba compiling a kernel) leaves
    its half-built objects behind, and their ``__del__`` complains at exit ("Exception
    ignored in ... ObjectRef.__del__", seen in CI) after the command's one line."""

    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args, debug: bool = False, **kwargs):
            received: list[int] = []
            try:
                with signals_as_interrupts() as received:
                    result = fn(*args, **kwargs)
                if received:  # a stop swallowed by a C callback: the work went on to the end
                    stopped(prog, received[0])
                return result
            except SystemExit as exc:
                if received and exc.code not in (0, None, 128 + received[0]):  # failed because of the stop
                    stopped(prog, received[0])
                if received:  # the command said how it stopped
                    end_after_stop(exc.code)
                raise
            except (click.exceptions.Exit, click.exceptions.Abort, click.UsageError):
                raise
            except click.ClickException as exc:  # a command's own one-line refusal
                click.echo(f"{prog}: error: {exc.format_message()}", err=True)
                sys.exit(exc.exit_code)
            except KeyboardInterrupt as exc:
                if received:  # a real signal: say so and end at once
                    stopped(prog, getattr(exc, "signum", signal.SIGINT))
                click.echo(f"{prog}: stopped by {signal_name(exc)}; nothing was left half-written", err=True)
                sys.exit(exit_code(exc))
            except MemoryError:
                click.echo(f"{prog}: error: out of memory; try a shorter input or a smaller model/batch", err=True)
                sys.exit(1)
            except Exception as exc:
                if received:  # the interrupt surfaced as another exception
                    stopped(prog, received[0])
                if debug:
                    raise
                expected = isinstance(exc, (ValueError, OSError, RuntimeError))
                what = describe_os_error(exc) if isinstance(exc, OSError) else one_line(exc)
                hint = "" if expected else f" ({type(exc).__name__}; rerun with --debug for the traceback)"
                click.echo(f"{prog}: error: {what}{hint}", err=True)
                sys.exit(1)
            finally:
                if received and not debug:  # the stop's one line is said: nothing after it
                    sys.unraisablehook = _quiet

        params = list(getattr(fn, "__click_params__", []))
        wrapper.__click_params__ = params
        return click.option("--debug", is_flag=True, help="Show the full traceback of an error.")(wrapper)

    return decorate


def stops_in_one_line(prog: str, after: str = "nothing was left half-written") -> Callable:
    """Decorate an argparse tool's ``main``: Ctrl-C (130), SIGTERM (143) or SIGHUP (129)
    end it in one line, ``PROG: stopped by SIGNAL; AFTER``, with no traceback. `after`
    says what the stop left (the tool's own cleanup has run by then: a stop is raised in
    the main thread, as `signals_as_interrupts` raises it)."""

    def decorate(main: Callable) -> Callable:
        @functools.wraps(main)
        def wrapper(*args, **kwargs):
            received: list[int] = []
            try:
                with signals_as_interrupts() as received:
                    result = main(*args, **kwargs)
            except KeyboardInterrupt as exc:
                signum = getattr(exc, "signum", signal.SIGINT)
            except Exception:
                if not received:
                    raise
                signum = received[0]  # the interrupt surfaced as another exception
            else:
                if not received:
                    return result
                signum = received[0]  # a stop swallowed by a C callback: the work went on to the end
            name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
            print(f"{prog}: stopped by {name}; {after}", file=sys.stderr)
            if received:
                end_after_stop(128 + signum)
            sys.unraisablehook = _quiet  # nothing after the stop's one line
            sys.exit(128 + signum)

        return wrapper

    return decorate
