"""Where running `soundcheck dev` stacks are recorded, so the CLI finds them from any directory.

Each stack writes a record to a per-user directory (`$XDG_STATE_HOME/soundcheck/stacks/`,
else `~/.local/state/soundcheck/stacks/`, per the XDG Base Directory spec), named
after its data dir, as soon as its port is bound (`status: "starting"`) and again
when every worker is ready (`"ready"`); it removes the record when it stops. A
record whose process is gone is ignored (and deleted). The data dir itself is
held with an exclusive lock (`dev.lock`) for the stack's lifetime: a second stack
on the same data dir is refused before it touches anything.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

STACKS_DIR = "stacks"
LOCK_FILE = "dev.lock"
STARTING, READY = "starting", "ready"


@dataclass(frozen=True)
class StackInfo:
    """What a client needs to talk to a running stack (also `<data dir>/dev.json`)."""

    url: str
    api_key: str
    pid: int
    queue: str
    redis_url_hash: str
    embedded: list[str]
    pids: dict[str, int]  # what this stack started: workers and embedded servers
    data_dir: str = ""
    status: str = READY
    started_at: float = field(default_factory=time.time, compare=False)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_file(cls, path: Path) -> StackInfo | None:
        """The record in `path` if its process still runs, else None."""
        try:
            info = cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None
        return info if pid_alive(info.pid) else None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def state_home() -> Path:
    """The per-user directory of soundcheck's state (XDG_STATE_HOME, default ~/.local/state)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "soundcheck"


def record_path(data_dir: Path) -> Path:
    digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:16]
    return state_home() / STACKS_DIR / f"{digest}.json"


def write_atomic(path: Path, text: str) -> None:
    """Write a private file (it holds an API key) so readers never see half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write_private(tmp, text)
    tmp.replace(path)


def write_private(path: Path, text: str) -> None:
    """Write a file only its user can read, 0600 from its creation (no chmod after)."""
    path.unlink(missing_ok=True)  # an old file keeps its old mode through O_CREAT
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)


def running_stacks() -> list[StackInfo]:
    """Every recorded stack whose process runs, newest first; stale records are deleted."""
    found = []
    for path in sorted((state_home() / STACKS_DIR).glob("*.json")):
        info = StackInfo.from_file(path)
        if info is None:
            with contextlib.suppress(OSError):
                path.unlink()
            continue
        found.append(info)
    return sorted(found, key=lambda s: -s.started_at)


class DataDirBusy(RuntimeError):
    """Another `soundcheck dev` holds this data dir; `holder` is its record, if readable."""

    def __init__(self, data_dir: Path, holder: StackInfo | None) -> None:
        super().__init__(str(data_dir))
        self.data_dir = data_dir
        self.holder = holder


def lock_data_dir(data_dir: Path) -> IO[str]:
    """An exclusive lock on the data dir, held while the returned file stays open.

    The kernel releases it when the process exits, however it exits, so a crashed
    stack never leaves the data dir locked.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    handle = (data_dir / LOCK_FILE).open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise DataDirBusy(data_dir, StackInfo.from_file(record_path(data_dir))) from None
    return handle
