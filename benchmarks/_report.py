"""What every benchmark shares: its verdicts and exit status, its progress, and its refusal
when an optional part is missing.

Exit status: 0 every target met (parts skipped for a stated reason included), 1 a target
missed (MISS printed beside it), 2 the benchmark cannot run here (one line on stderr: a
missing extra and the command that installs it, a server it cannot reach), 3 the benchmark
itself went wrong (no figure to judge).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import sys
import threading
import time
import traceback
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, NoReturn

#: The benchmark's name, as it names itself in progress and refusals (``bench_sql``).
NAME = Path(sys.argv[0]).stem
#: Longest a running benchmark stays quiet: a progress line on stderr at least this often.
QUIET = 5.0

MET, MISSED, CANNOT_RUN, FAILED = 0, 1, 2, 3
_missed: list[str] = []


class Failed(Exception):
    """The benchmark went wrong (not a figure that missed): one line, exit status 3."""


def verdict(met: bool, target: str) -> str:
    """``ok``, or ``MISS`` (remembered: the exit status becomes 1) for ``target``."""
    if not met:
        _missed.append(target)
    return "ok" if met else "MISS"


def refuse(reason: str) -> NoReturn:
    """Stop before measuring: ``reason`` on one line of stderr, exit status 2."""
    print(f"{NAME}: {reason}", file=sys.stderr, flush=True)
    raise SystemExit(CANNOT_RUN)


@contextlib.contextmanager
def needs(extra: str) -> Iterator[None]:
    """Around the imports of an optional extra: one missing refuses to run, naming the
    extra's install command (a module of queue_runtime itself missing is a real error)."""
    try:
        yield
    except ImportError as exc:
        if not exc.name or exc.name.startswith("queue_runtime"):
            raise
        print(
            f"{NAME} needs the {extra} extra (no module {exc.name!r}): pip install -e '.[{extra}]'",
            file=sys.stderr,
            flush=True,
        )
        raise SystemExit(CANNOT_RUN) from None


def require(extra: str, *modules: str) -> None:
    """Refuse to run, as `needs` does, unless every one of ``modules`` imports."""
    with needs(extra):
        for module in modules:
            importlib.import_module(module)


class Progress:
    """What is running and how far it is, on stderr: `step` prints a line; while a step runs,
    a thread that sleeps in between prints one whenever nothing was printed for `QUIET`
    seconds. The loop being measured only ever sets `done` (no printing there)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._step = ""
        self._step_started = self._printed = time.monotonic()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.done: int | None = None
        self.total: int | None = None

    def step(self, what: str, total: int | None = None) -> None:
        """``what`` starts now (``total``: of how many, counted in `done` as it goes)."""
        self.done, self.total = None, total
        with self._lock:
            self._step, self._step_started = what, time.monotonic()
            self._say(f"  {NAME}: {what}")
        if self._thread is None:
            self._thread = threading.Thread(target=self._beat, name="progress", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _say(self, line: str) -> None:
        print(line, file=sys.stderr, flush=True)
        self._printed = time.monotonic()

    def _beat(self) -> None:
        while not self._stop.wait(0.5):
            with self._lock:
                now = time.monotonic()
                if now - self._printed < QUIET:
                    continue
                done, total = self.done, self.total
                far = "" if done is None else f", {done:,}" + (f"/{total:,}" if total else "")
                self._say(f"  ... {NAME}: {self._step}{far}, {now - self._step_started:.0f} s")


progress = Progress()


def run(main: Callable[[], Coroutine[Any, Any, None] | None]) -> NoReturn:
    """Run ``main`` (its coroutine, if it returns one, in a new event loop) and exit with
    the status its verdicts call for."""
    status = MET
    try:
        outcome = main()
        if outcome is not None:
            asyncio.run(outcome)
    except Failed as exc:
        print(f"{NAME} failed: {exc}", file=sys.stderr, flush=True)
        status = FAILED
    except Exception:
        traceback.print_exc()
        status = FAILED
    finally:
        progress.stop()
    if status == MET and _missed:
        print(f"MISS: {'; '.join(_missed)}", flush=True)
        status = MISSED
    sys.exit(status)
