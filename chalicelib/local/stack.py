"""`soundcheck dev`: the whole service on one machine, from the same code as on AWS.

One process runs the real Chalice app on localhost (chalice's own local server),
the sweeper every SOUNDCHECK_SWEEP_SECONDS (`chalice local` never runs scheduled
functions), and supervises N `soundcheck worker` processes. Redis and Postgres
are the ones in REDIS_URL / DATABASE_URL, or embedded servers whose data lives
under `.soundcheck/`. A state file tells other commands (`soundcheck submit`,
`make demo`, tests) the URL and API key once everything is ready.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from http.server import HTTPServer
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any

from chalice.local import ChaliceRequestHandler, LocalChalice, LocalDevServer

from chalicelib import consumer, logs
from chalicelib import deps as deps_module
from chalicelib import settings as settings_module
from chalicelib.local.processes import Supervisor

DEV_OWNER = "dev"
STATE_FILE = "dev.json"
KEY_FILE = "api-key"
WORKER_START_TIMEOUT_S = 120.0
API_THREADS = 16  # concurrent HTTP requests (and at most this many Postgres connections)


@dataclass(frozen=True)
class StackOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    consumers: int = 1
    data_dir: Path = Path(".soundcheck")
    project_dir: Path = Path(".")


@dataclass(frozen=True)
class StackInfo:
    """What a client needs to talk to a running stack (written to `<data dir>/dev.json`)."""

    url: str
    api_key: str
    pid: int
    queue: str
    redis_url_hash: str
    embedded: list[str]
    pids: dict[str, int]  # what this stack started: workers and embedded servers

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def read_state(data_dir: Path = Path(".soundcheck")) -> StackInfo | None:
    """The running stack's info, or None if none is running from this data dir."""
    try:
        info = StackInfo(**json.loads((data_dir / STATE_FILE).read_text()))
    except (FileNotFoundError, ValueError, TypeError):
        return None
    try:
        os.kill(info.pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return info


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


class _QuietHandler(ChaliceRequestHandler):
    """chalice's request handler without http.server's access log: one JSON object per line.

    An idle keep-alive connection is dropped after `timeout` seconds so it cannot
    hold one of the pool's threads (or the exit) for long.
    """

    timeout = 5

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _PooledHTTPServer(HTTPServer):
    """An HTTP server answering from a fixed pool of threads.

    chalice's own local server starts a thread per request, and the job store keeps
    a Postgres connection per thread: a few hundred requests exhausted Postgres's
    connections ("too many clients"). A pool bounds both threads and connections.
    """

    def __init__(self, address: tuple[str, int], handler: Any) -> None:
        self._pool = ThreadPoolExecutor(API_THREADS, thread_name_prefix="api")
        super().__init__(address, handler)  # binds; on failure it calls server_close

    def process_request(self, request: Any, client_address: Any) -> None:
        self._pool.submit(self._handle, request, client_address)

    def _handle(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)

    def server_close(self) -> None:
        super().server_close()
        self._pool.shutdown(wait=False, cancel_futures=True)


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
        """SOUNDCHECK_API_KEY, else the key this data dir had last time, else a new one."""
        from chalicelib.auth import new_api_key

        key_file = self.data_dir / KEY_FILE
        key = configured or (key_file.read_text().strip() if key_file.exists() else "")
        key = key or new_api_key()
        jobs.create_api_key(DEV_OWNER, key)
        if not configured:
            key_file.write_text(key + "\n")
            key_file.chmod(0o600)
        return key

    def start(self) -> StackInfo:
        from chalice.config import Config

        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / STATE_FILE).unlink(missing_ok=True)
        os.environ.update(self._environment())
        module = load_app(self.options.project_dir)
        config = Config.create(chalice_stage="dev", app_name=module.app.app_name, lambda_timeout=30)
        _serve_from_threads(module.app)
        try:
            self._server = LocalDevServer(
                module.app,
                config,
                self.options.host,
                self.options.port,
                handler_cls=_QuietHandler,
                server_cls=_PooledHTTPServer,
            )
        except OSError as exc:
            where = f"{self.options.host}:{self.options.port}"
            raise StackError(f"cannot listen on {where}: {exc.strerror}; try --port") from None
        host, port = self._server.server.server_address[:2]
        url = f"http://{host}:{port}"
        os.environ.setdefault("SOUNDCHECK_PUBLIC_URL", url)
        settings_module.get.cache_clear()
        settings = settings_module.get()

        deps = deps_module.Deps.from_settings(settings)
        deps.queue.check_server()
        applied = deps.jobs.migrate()
        if applied:
            logs.event("migrated", applied=applied)
        api_key = self._api_key(deps.jobs, settings.api_key)
        deps_module.override(deps)
        self._deps = deps

        self._server_thread = threading.Thread(
            target=self._server.server.serve_forever, name="api", daemon=True
        )
        self._server_thread.start()
        self._sweeper_thread = threading.Thread(
            target=self._sweep_forever, args=(settings.sweep_seconds,), name="sweeper", daemon=True
        )
        self._sweeper_thread.start()
        worker_env = {**os.environ, "SOUNDCHECK_API_KEY": api_key}
        argv = [sys.executable, "-m", "chalicelib.local.worker", "--no-sweep"]
        for n in range(self.options.consumers):
            self._supervisor.start(f"worker-{n + 1}", argv, worker_env)

        self._wait_for_workers(deps)

        self.info = StackInfo(
            url=url,
            api_key=api_key,
            pid=os.getpid(),
            queue=settings.queue_name,
            redis_url_hash=deps_module.redis_url_hash(settings.require("redis_url")),
            embedded=[s.kind for s in self._embedded],
            pids={
                **{c.name: c.pid for c in self._supervisor.children if c.pid},
                **{s.kind: s.pid for s in self._embedded if s.pid},
            },
        )
        state = self.data_dir / STATE_FILE
        tmp = state.with_suffix(".tmp")
        tmp.write_text(self.info.to_json())
        tmp.chmod(0o600)
        tmp.replace(state)
        return self.info

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
            try:
                consumer.sweep(self._deps)
            except Exception as exc:  # Redis or Postgres away for a moment: try next period
                logs.event("sweep_error", error=logs.describe(exc))

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
        (self.data_dir / STATE_FILE).unlink(missing_ok=True)
        self._supervisor.stop()
        if self._server is not None:
            if self._server_thread is not None and self._server_thread.is_alive():
                self._server.server.shutdown()
            self._server.server.server_close()
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


def run(options: StackOptions) -> int:
    """`soundcheck dev`: start, print where it is, serve until Ctrl-C, stop everything."""
    stack = LocalStack(options)
    stack.install_signal_handlers()
    try:
        started = time.monotonic()
        info = stack.start()
        print(
            f"\nsoundcheck dev is up in {time.monotonic() - started:.1f}s\n"
            f"  API       {info.url}\n"
            f"  API key   {info.api_key}\n"
            f"  queue     {info.queue} (redis {info.redis_url_hash})"
            f"  consumers {options.consumers}\n"
            f"  try       soundcheck submit FILE --api {info.url}\n"
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
