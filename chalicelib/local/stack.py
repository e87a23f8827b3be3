"""`soundcheck dev`: the whole service on one machine, from the same code as on AWS.

One process runs the real Chalice app on localhost (chalice's own local server),
the sweeper every SOUNDCHECK_SWEEP_SECONDS (`chalice local` never runs scheduled
functions), and supervises N `soundcheck worker` processes. Redis and Postgres
are the ones in REDIS_URL / DATABASE_URL, or embedded servers whose data lives
under `.soundcheck/`. A state file tells other commands (`soundcheck submit`,
`make demo`, tests) the URL and API key once everything is ready.
"""

from __future__ import annotations

import errno
import importlib.util
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType, ModuleType
from typing import IO, Any

from chalice.local import LocalChalice

from chalicelib import deps as deps_module
from chalicelib import logs, retention, sweeper
from chalicelib import settings as settings_module
from chalicelib.local.processes import Supervisor
from chalicelib.local.server import app_preflight, make_server
from chalicelib.local.state import (
    READY,
    STARTING,
    DataDirBusy,
    StackInfo,
    lock_data_dir,
    record_path,
    write_atomic,
    write_private,
)

DEV_OWNER = "dev"
STATE_FILE = "dev.json"
KEY_FILE = "api-key"
WORKER_START_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class StackOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    consumers: int = 1
    data_dir: Path = Path(".soundcheck")
    # The checkout this package lives in (app.py beside chalicelib/), not the current
    # directory: `soundcheck dev` and `make demo` work from wherever they are run.
    project_dir: Path = Path(__file__).resolve().parents[2]


def read_state(data_dir: Path = Path(".soundcheck")) -> StackInfo | None:
    """The stack running from this data dir once it is ready, else None."""
    info = StackInfo.from_file(data_dir / STATE_FILE)
    return info if info is not None and info.status == READY else None


def load_app(project_dir: Path) -> ModuleType:
    """The project's app.py module (imported once per process)."""
    if "app" in sys.modules and hasattr(sys.modules["app"], "app"):
        return sys.modules["app"]
    path = project_dir.resolve() / "app.py"
    spec = importlib.util.spec_from_file_location("app", path)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"no Chalice app at {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["app"] = module
    spec.loader.exec_module(module)
    return module


class StackError(RuntimeError):
    """The stack cannot start; the message says why in one line."""


def _busy_message(busy: DataDirBusy) -> str:
    holder = busy.holder
    who = f"pid {holder.pid}, {holder.url}" if holder is not None else "another process"
    return (
        f"another soundcheck dev ({who}) is running from {busy.data_dir}; it was left as it "
        "is. Use it (`soundcheck submit FILE` finds it), or start a second stack with its "
        "own data dir and port: soundcheck dev --data-dir .soundcheck-2 --port 8001"
    )


def _bind_message(options: StackOptions, exc: OSError) -> str:
    where = f"{options.host}:{options.port}"
    if exc.errno == errno.EADDRINUSE:
        return (
            f"port {options.port} on {options.host} is in use (another soundcheck dev?); "
            f"pick another: soundcheck dev --port {options.port + 1}"
        )
    return f"cannot listen on {where}: {exc.strerror}"


def _serve_from_threads(app: Any) -> None:
    """Give the app a per-thread `current_request`, as chalice's local mode does."""
    if not isinstance(app, LocalChalice):
        app.__class__ = type("ThreadedLocalChalice", (LocalChalice, type(app)), {})


class LocalStack:
    """Start with `start()`, block in `serve()` until `request_stop()`, then `close()`."""

    def __init__(self, options: StackOptions) -> None:
        self.options = options
        self.data_dir = options.data_dir.resolve()
        self._embedded: list[Any] = []
        self._stop = threading.Event()
        self._supervisor = Supervisor()
        self._server: Any = None
        self._server_thread: threading.Thread | None = None
        self._sweeper_thread: threading.Thread | None = None
        self._deps: deps_module.Deps | None = None
        self.info: StackInfo | None = None
        self._lock: IO[str] | None = None
        self._key = ""
        self._settings: settings_module.Settings | None = None

    # --- start ------------------------------------------------------------------------

    def _environment(self) -> dict[str, str]:
        """Settings every part of the stack shares, embedded servers started as needed."""
        from chalicelib.local.embedded import start_postgres, start_redis

        env: dict[str, str] = {}
        if not os.environ.get("REDIS_URL"):
            server = start_redis(self.data_dir / "redis")
            self._embedded.append(server)
            env["REDIS_URL"] = server.url
        if not os.environ.get("DATABASE_URL"):
            server = start_postgres(self.data_dir / "pg")
            self._embedded.append(server)
            env["DATABASE_URL"] = server.url
        if not os.environ.get("SOUNDCHECK_STORAGE_DIR"):
            env["SOUNDCHECK_STORAGE_DIR"] = str(self.data_dir / "objects")
        return env

    def _api_key(self, jobs: Any, configured: str | None) -> str:
        """SOUNDCHECK_API_KEY, else the key this data dir had last time, else a new one.

        It is an `admin` key: the local operator reads queue statistics with it.
        The key file is created 0600 (never readable by others, not even briefly).
        """
        from chalicelib.auth import new_api_key
        from chalicelib.keys import KeyStore, Role

        key_file = self.data_dir / KEY_FILE
        key = configured or (key_file.read_text().strip() if key_file.exists() else "")
        key = key or new_api_key()
        try:
            KeyStore(jobs).create(DEV_OWNER, key, role=Role.ADMIN)
        except ValueError as exc:
            raise StackError(f"API key: {exc}") from None
        if not configured:
            write_private(key_file, key + "\n")
        return key

    def start(self) -> StackInfo:
        """Claim the data dir, bind the port, start what is missing, wait for the workers.

        The order matters: nothing shared is touched until the data dir's lock is
        held and the port is bound, so a second stack that cannot run leaves the
        first one untouched (its embedded servers, its state files).
        """
        self._claim_data_dir()
        url = self._bind()
        self._publish(url, api_key="", status=STARTING)
        os.environ.update(self._environment())
        os.environ.setdefault("SOUNDCHECK_PUBLIC_URL", url)
        os.environ.setdefault("SOUNDCHECK_WEBHOOK_ALLOW_HTTP", "1")  # local receivers
        settings_module.get.cache_clear()
        settings = settings_module.get()
        deps = self._prepare(settings)
        self._start_threads(settings.sweep_seconds)
        self._start_workers(deps)
        return self._publish(url, api_key=self._key, status=READY)

    def _claim_data_dir(self) -> None:
        try:
            self._lock = lock_data_dir(self.data_dir)
        except DataDirBusy as busy:
            raise StackError(_busy_message(busy)) from None
        (self.data_dir / STATE_FILE).unlink(missing_ok=True)  # a crashed stack's, if any

    def _bind(self) -> str:
        """Load the app and bind its server; the URL it answers on."""
        from chalice.config import Config

        module = load_app(self.options.project_dir)
        config = Config.create(chalice_stage="dev", app_name=module.app.app_name, lambda_timeout=30)
        _serve_from_threads(module.app)
        try:
            self._server = make_server(
                module.app,
                config,
                self.options.host,
                self.options.port,
                preflight=app_preflight(module.app, deps_module.get),
            )
        except OSError as exc:
            raise StackError(_bind_message(self.options, exc)) from None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def _prepare(self, settings: settings_module.Settings) -> deps_module.Deps:
        """Connect, check Redis, migrate, register the API key; the app uses these deps."""
        deps = deps_module.Deps.from_settings(settings)
        deps.queue.check_server()
        applied = deps.jobs.migrate()
        if applied:
            logs.event("migrated", applied=applied)
        self._key = self._api_key(deps.jobs, settings.api_key)
        deps_module.override(deps)
        self._deps = deps
        self._settings = settings
        return deps

    def _start_threads(self, sweep_seconds: float) -> None:
        assert self._server is not None
        self._server_thread = threading.Thread(
            target=self._server.serve_forever, name="api", daemon=True
        )
        self._server_thread.start()
        self._sweeper_thread = threading.Thread(
            target=self._sweep_forever, args=(sweep_seconds,), name="sweeper", daemon=True
        )
        self._sweeper_thread.start()
        assert self._deps is not None
        retention.start_thread(self._deps, self._stop)  # apart: a sweep takes up to 20 s

    def _start_workers(self, deps: deps_module.Deps) -> None:
        worker_env = {**os.environ, "SOUNDCHECK_API_KEY": self._key}
        argv = [sys.executable, "-m", "chalicelib.local.worker", "--no-sweep"]
        for n in range(self.options.consumers):
            self._supervisor.start(f"worker-{n + 1}", argv, worker_env)
        self._wait_for_workers(deps)

    def _publish(self, url: str, *, api_key: str, status: str) -> StackInfo:
        """Record where this stack is: per user (found from any directory) and, once
        ready, in `<data dir>/dev.json`."""
        settings = self._settings
        info = StackInfo(
            url=url,
            api_key=api_key,
            pid=os.getpid(),
            queue=settings.queue_name if settings else "",
            redis_url_hash=(
                deps_module.redis_url_hash(settings.require("redis_url")) if settings else ""
            ),
            embedded=[s.kind for s in self._embedded],
            pids={
                **{c.name: c.pid for c in self._supervisor.children if c.pid},
                **{s.kind: s.pid for s in self._embedded if s.pid},
            },
            data_dir=str(self.data_dir),
            status=status,
        )
        if self.info is not None:
            info = replace(info, started_at=self.info.started_at)
        self.info = info
        write_atomic(record_path(self.data_dir), info.to_json())
        if status == READY:
            write_atomic(self.data_dir / STATE_FILE, info.to_json())
        return info

    def _wait_for_workers(self, deps: deps_module.Deps) -> None:
        """Return once every worker has loaded the analysis and polled the queue.

        A worker shows up in the queue's consumer list (`worker:<host>:<pid>`) on its
        first claim, which comes after its warm-up, so a stack reported ready
        starts a submitted job at once.
        """
        deadline = time.monotonic() + WORKER_START_TIMEOUT_S
        while True:
            pids = {str(c.pid) for c in self._supervisor.children}
            seen = {name.rsplit(":", 1)[-1] for name in deps.queue.stats()["consumers"]}
            if pids <= seen:
                return
            dead = [c.name for c in self._supervisor.children if not c.alive()]
            if dead:
                raise StackError(f"{', '.join(dead)} exited during start-up; see its output")
            if time.monotonic() > deadline:
                raise StackError(f"workers not ready after {WORKER_START_TIMEOUT_S:.0f}s")
            time.sleep(0.05)

    def _sweep_forever(self, period_s: float) -> None:
        assert self._deps is not None
        while not self._stop.wait(period_s):
            sweeper.sweep_logged(self._deps)  # a failure is logged; the next period retries

    # --- run and stop -----------------------------------------------------------------

    def serve(self) -> None:
        """Supervise until asked to stop: restart workers that die."""
        while not self._stop.wait(0.2):
            self._supervisor.poll()

    def request_stop(self) -> None:
        self._stop.set()

    def install_signal_handlers(self) -> None:
        def handle(signum: int, frame: FrameType | None) -> None:
            self.request_stop()

        signal.signal(signal.SIGINT, handle)
        signal.signal(signal.SIGTERM, handle)

    def close(self) -> None:
        """Stop everything this stack started, in reverse order."""
        self._stop.set()
        if self._lock is None:
            return  # another stack owns this data dir: touch nothing of it
        (self.data_dir / STATE_FILE).unlink(missing_ok=True)
        record_path(self.data_dir).unlink(missing_ok=True)
        self._supervisor.stop()
        if self._server is not None:
            if self._server_thread is not None and self._server_thread.is_alive():
                self._server.shutdown()
            self._server.server_close()
        if self._sweeper_thread is not None:
            self._sweeper_thread.join(timeout=30)
        if self._deps is not None:
            deps_module.override(None)
            self._deps.close()
        for server in reversed(self._embedded):
            try:
                server.stop()
            except Exception as exc:
                logs.event("embedded_stop_error", kind=server.kind, error=str(exc)[:300])
        self._embedded.clear()
        self._lock.close()
        self._lock = None


def run(options: StackOptions) -> int:
    """`soundcheck dev`: start, print where it is, serve until Ctrl-C, stop everything."""
    stack = LocalStack(options)
    stack.install_signal_handlers()
    try:
        started = time.monotonic()
        info = stack.start()
        # The key goes to a terminal only: under `make demo` or tests stderr is a log file.
        key = info.api_key if sys.stderr.isatty() else None
        where_key = f"in {stack.data_dir / KEY_FILE}" if key is None else key
        link = f"{info.url}/#key={key}" if key else f"{info.url}/ (sign in with the API key)"
        print(
            f"\nsoundcheck dev is up in {time.monotonic() - started:.1f}s\n"
            f"  web app   {link}\n"
            f"  API       {info.url}\n"
            f"  API key   {where_key} (admin)\n"
            f"  queue     {info.queue} (redis {info.redis_url_hash})"
            f"  consumers {options.consumers}\n"
            f"  try       soundcheck submit FILE   (from any directory)\n"
            f"Ctrl-C stops everything.\n",
            file=sys.stderr,
            flush=True,
        )
        stack.serve()
    except StackError as exc:
        print(f"soundcheck dev: {exc}", file=sys.stderr)
        return 1
    finally:
        stack.close()
    return 0
