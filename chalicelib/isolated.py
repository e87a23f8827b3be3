"""Run a job's slow work in a child process that the consumer can always stop.

A decoder stuck in a C loop (libsndfile on a malformed chunk spins at 100 % CPU)
never returns to Python: no signal handler, timeout or thread can end it, only
killing its process can. So the consumer forks one child per job for everything
slow (download, decode, analysis) and keeps its own main thread free: it waits
on the child's pipe a fraction of a second at a time, renews the lease, watches
the job's deadline and stop requests, and SIGKILLs the child's process group
(the child and anything it started, e.g. an ffmpeg decoder) when it must.

Only fork and a one-way `Pipe` (an os.pipe underneath): Lambda has no /dev/shm,
so multiprocessing's Queue, Pool, Lock and Event (POSIX semaphores) fail there.
A forked child shares the parent's already imported numpy/scipy copy-on-write,
so it starts in milliseconds, and its memory is returned when it exits.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Literal

from chalicelib import errors
from chalicelib.local.processes import exit_with_parent

TICK_S = 0.2  # how often the parent looks at its stop flag, deadline and lease
EXIT_GRACE_S = 2.0  # a child that reported its outcome gets this long to exit on its own

Report = Callable[[int], None]  # the child reports progress (0-100) through this


@dataclass(frozen=True)
class Finished:
    """The work returned `value`."""

    value: Any


@dataclass(frozen=True)
class Failed:
    """The work raised; the child described the exception (`describe`)."""

    code: str
    message: str
    retryable: bool
    details: dict[str, Any] | None = None  # for the log only (a trace, a library's message)


@dataclass(frozen=True)
class Stopped:
    """The parent ended the child (`stop`, `deadline`, `lost`) or it died on its own (`died`)."""

    reason: Literal["stop", "deadline", "lost", "died"]
    detail: str = ""


Outcome = Finished | Failed | Stopped


def run(
    work: Callable[[Report], Any],
    *,
    describe: Callable[[BaseException], Failed],
    deadline: float,
    should_stop: Callable[[], bool] = lambda: False,
    keep_going: Callable[[], bool] = lambda: True,
    on_progress: Callable[[int], None] = lambda _: None,
    tick_s: float = TICK_S,
) -> Outcome:
    """Run `work(report)` in a forked child until it ends or must be stopped.

    deadline: a `time.monotonic()` instant; past it the child is killed (Stopped
    "deadline"). should_stop: polled every `tick_s`; True kills the child (Stopped
    "stop"). keep_going: called every tick (the lease renewal); False kills the
    child (Stopped "lost"). The value `work` returns and its progress reports
    cross the pipe pickled; an exception it raises comes back as `describe(exc)`.
    Never leaves a child running: every path out kills its process group.
    """
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(
        target=_child_main,
        args=(work, sender, os.getpid(), describe),
        name="soundcheck-job",
        daemon=False,  # a daemonic process may not start processes of its own (a decoder)
    )
    child.start()
    with contextlib.suppress(OSError):  # also done in the child; whichever runs first wins
        os.setpgid(child.pid, child.pid)  # type: ignore[arg-type]
    sender.close()
    grace = 0.0
    try:
        outcome = _watch(child, receiver, deadline, should_stop, keep_going, on_progress, tick_s)
        if not isinstance(outcome, Stopped):
            grace = EXIT_GRACE_S  # it reported back and is exiting: let it flush its output
        return outcome
    finally:
        _end(child, grace)
        receiver.close()


def _watch(
    child: Any,
    receiver: Connection,
    deadline: float,
    should_stop: Callable[[], bool],
    keep_going: Callable[[], bool],
    on_progress: Callable[[int], None],
    tick_s: float,
) -> Outcome:
    while True:
        if should_stop():
            return Stopped("stop")
        now = time.monotonic()
        if now >= deadline:
            return Stopped("deadline")
        if not keep_going():
            return Stopped("lost")
        if not receiver.poll(min(tick_s, max(deadline - now, 0.0))):
            continue
        try:
            kind, *payload = receiver.recv()
        except (EOFError, OSError):  # exited without a word: a crash, OOM kill, os._exit
            child.join(EXIT_GRACE_S)
            return Stopped("died", _exit_detail(child.exitcode))
        if kind == "progress":
            on_progress(int(payload[0]))
        elif kind == "done":
            return Finished(payload[0])
        else:
            return Failed(*payload)


def _exit_detail(code: int | None) -> str:
    if code is None:
        return "it closed its pipe and did not exit"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _end(child: Any, grace: float) -> None:
    """Give the child `grace` seconds to exit, kill its process group, reap it."""
    if grace > 0:
        child.join(grace)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGKILL)  # whatever it started (a decoder) goes too
    if child.exitcode is None:
        child.kill()
    child.join()
    child.close()


def _child_main(
    work: Callable[[Report], Any],
    sender: Connection,
    parent_pid: int,
    describe: Callable[[BaseException], Failed],
) -> None:
    """In the child: run the work, send its outcome, exit. Dies with the parent."""
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)  # a group of its own, so the parent can kill what it starts
    exit_with_parent(parent_pid, signal.SIGKILL)
    # The parent's handlers (a worker's "stop after this job") make no sense here.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        value = work(lambda progress: sender.send(("progress", progress)))
        message: tuple[Any, ...] = ("done", value)
    except BaseException as exc:
        failed = describe(exc)
        message = ("failed", failed.code, failed.message, failed.retryable, failed.details)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        sender.send(message)
    except Exception as exc:  # the value does not pickle: report that instead
        bug = errors.InternalError()
        details = {"reference": bug.reference, "error": f"result not sendable: {exc!r}"[:500]}
        sender.send(("failed", bug.code, bug.message, bug.retryable, details))
    sender.close()
