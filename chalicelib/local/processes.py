"""Child processes of the local stack: started, restarted when they die, always stopped.

The old system's workers died silently and nobody noticed. Here a worker that
exits unexpectedly is logged and started again, and stopping the stack stops
every child it started (SIGTERM, then SIGKILL after a grace period), so Ctrl-C
leaves no orphans. A child also dies with its parent (see `die_with_parent`).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from chalicelib import logs

PARENT_PID_ENV = "SOUNDCHECK_PARENT_PID"
_PR_SET_PDEATHSIG = 1
RESTART_BACKOFF_S = (0.0, 1.0, 2.0, 5.0)  # by how many times it died recently


@dataclass
class Child:
    """One supervised process and its restart history."""

    name: str
    argv: list[str]
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    deaths: list[float] = field(default_factory=list)
    next_start: float = 0.0

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


class Supervisor:
    """Starts children, restarts the ones that die, stops them all."""

    def __init__(self) -> None:
        self.children: list[Child] = []
        self._stopping = False

    def start(self, name: str, argv: Sequence[str], env: Mapping[str, str]) -> Child:
        child = Child(name=name, argv=list(argv), env={**env, PARENT_PID_ENV: str(os.getpid())})
        self.children.append(child)
        self._spawn(child)
        return child

    def _spawn(self, child: Child) -> None:
        # A session of its own: a terminal's Ctrl-C reaches only the supervisor,
        # which then stops children in order instead of all dying at once.
        child.process = subprocess.Popen(child.argv, env=child.env, start_new_session=True)
        logs.event("process_started", process=child.name, pid=child.process.pid)

    def poll(self) -> list[Child]:
        """Restart children that died (with a backoff if they keep dying); return them."""
        if self._stopping:
            return []
        now = time.monotonic()
        restarted = []
        for child in self.children:
            if child.process is None or child.alive():
                continue
            if child.next_start == 0.0:
                code = child.process.returncode
                child.deaths = [t for t in child.deaths if now - t < 60] + [now]
                delay = RESTART_BACKOFF_S[min(len(child.deaths) - 1, len(RESTART_BACKOFF_S) - 1)]
                child.next_start = now + delay
                logs.event(
                    "process_exited", process=child.name, pid=child.pid, code=code, restartIn=delay
                )
            if now >= child.next_start:
                child.next_start = 0.0
                child.restarts += 1
                self._spawn(child)
                restarted.append(child)
        return restarted

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM every child, wait up to `grace_s`, SIGKILL the rest, reap all."""
        self._stopping = True
        live = [c for c in self.children if c.alive()]
        for child in live:
            _signal(child, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for child in live:
            assert child.process is not None
            try:
                child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal(child, signal.SIGKILL)
                child.process.wait()
                logs.event("process_killed", process=child.name, pid=child.pid)


def _signal(child: Child, signum: int) -> None:
    if child.process is not None:
        with contextlib.suppress(ProcessLookupError):
            child.process.send_signal(signum)


def die_with_parent() -> None:
    """In a child of the stack: exit when the stack process dies, even by SIGKILL.

    Linux delivers SIGTERM on the parent's death (prctl PR_SET_PDEATHSIG). If the
    parent died before we got here, exit now. Elsewhere this is a no-op.
    """
    parent = os.environ.get(PARENT_PID_ENV)
    if parent:
        exit_with_parent(int(parent), signal.SIGTERM)


def exit_with_parent(parent_pid: int, signum: int) -> None:
    """Have Linux send `signum` to this process when its parent dies; exit now if it has.

    A no-op where prctl(PR_SET_PDEATHSIG) is unavailable.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:
        sys.exit(0)
