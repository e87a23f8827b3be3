"""`soundcheck dev` in a child process, for `make demo` and the pipeline benchmark.

The child's output goes to a log file; `start()` returns once the stack has
written its state file (every worker ready); `stop()` sends SIGINT, as Ctrl-C
would, and waits. On shared servers (REDIS_URL / DATABASE_URL set) the stack
gets a queue and a schema of its own, so another stack on the same Redis db
never claims its jobs (and looks for their files in another directory).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from chalicelib.local.stack import StackInfo, read_state

START_TIMEOUT_S = 180.0  # a first run initialises an embedded Postgres cluster


class StackFailed(RuntimeError):
    """The stack exited or did not come up in time; the message ends with its log."""


class BackgroundStack:
    def __init__(
        self,
        data_dir: Path,
        *,
        consumers: int = 1,
        purpose: str = "demo",
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.log_path = self.data_dir / "stack.log"
        self.consumers = consumers
        self.env = self._isolated_env(purpose, extra_env or {})
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def throwaway(self) -> bool:
        """Whether its jobs live in a schema made for this run (dropped by `stop()`)."""
        return bool(self.env.get("DATABASE_URL")) and not os.environ.get("SOUNDCHECK_DB_SCHEMA")

    @staticmethod
    def _isolated_env(purpose: str, extra: dict[str, str]) -> dict[str, str]:
        env = {**os.environ, **extra}
        if env.get("REDIS_URL") and not env.get("QUEUE_NAME"):
            env["QUEUE_NAME"] = f"{purpose}-{uuid.uuid4().hex[:8]}"
        if env.get("DATABASE_URL") and not env.get("SOUNDCHECK_DB_SCHEMA"):
            env["SOUNDCHECK_DB_SCHEMA"] = f"sc_{purpose}_{uuid.uuid4().hex[:8]}"
        return env

    def start(self) -> StackInfo:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "chalicelib.cli", "dev", "--port", "0"]
        argv += ["--consumers", str(self.consumers), "--data-dir", str(self.data_dir)]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, env=self.env
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.process.poll() is not None:
                raise StackFailed(
                    f"soundcheck dev exited ({self.process.returncode}):\n{self.tail()}"
                )
            info = read_state(self.data_dir)
            if info is not None and info.pid == self.process.pid:
                return info
            if time.monotonic() > deadline:
                raise StackFailed(
                    f"soundcheck dev not ready after {START_TIMEOUT_S:.0f}s:\n{self.tail()}"
                )
            time.sleep(0.1)

    def stop(self) -> int:
        """SIGINT, wait (SIGKILL after a minute); the exit code. Cleans up its own queue."""
        code = 0
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                code = self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                code = self.process.wait()
        elif self.process is not None:
            code = self.process.returncode
        self._forget_queue()
        self._drop_schema()
        return code

    def _forget_queue(self) -> None:
        """Delete the keys of a queue made for this run, so a shared Redis stays tidy."""
        name = self.env.get("QUEUE_NAME", "")
        if os.environ.get("QUEUE_NAME") or not self.env.get("REDIS_URL") or not name:
            return
        from chalicelib.deps import redis_client
        from chalicelib.queue import Queue

        client = redis_client(self.env["REDIS_URL"])
        try:
            Queue(client, name).delete_all()
        finally:
            client.close()

    def _drop_schema(self) -> None:
        """Drop the schema made for this run (jobs left in it would be reconciled later)."""
        schema = self.env.get("SOUNDCHECK_DB_SCHEMA", "")
        if os.environ.get("SOUNDCHECK_DB_SCHEMA") or not self.env.get("DATABASE_URL") or not schema:
            return
        from chalicelib.db import drop_schema

        drop_schema(self.env["DATABASE_URL"], schema)

    def tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""
