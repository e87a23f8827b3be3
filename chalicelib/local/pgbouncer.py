"""A real PgBouncer in transaction pooling in front of a Postgres, for tests and benches.

Managed Postgres puts a pooler like this in front of Lambda (RDS Proxy, Neon's and
Supabase's poolers): many client connections share a few server connections, and a
client keeps a server connection only for the length of one transaction. Code that
works through it holds nothing in the session between transactions.

Uses the Debian `pgbouncer` binary (1.18 on bookworm); `find_pgbouncer()` is None
where it is not installed, and callers skip with a clear message.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from chalicelib.db import connect_kwargs

DEFAULT_POOL_SIZE = 10
MISSING = "pgbouncer is not installed (Debian: apt-get install pgbouncer)"


def find_pgbouncer() -> str | None:
    """Path of the pgbouncer binary, or None."""
    return shutil.which("pgbouncer") or next(
        (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.access(p, os.X_OK)), None
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ini_value(value: str) -> str:
    """A libpq-style connect string value, quoted when it needs to be."""
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


@dataclass
class PgBouncer:
    """A running pgbouncer: `url` reaches the same database through the pool."""

    url: str
    process: subprocess.Popen[bytes] = field(repr=False)
    directory: Path = field(repr=False)

    def stop(self) -> None:
        """Stop pgbouncer (SIGTERM, then SIGKILL) and remove its files."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)

    def log(self) -> str:
        try:
            return (self.directory / "pgbouncer.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def __enter__(self) -> PgBouncer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_pgbouncer(
    database_url: str,
    *,
    pool_size: int = DEFAULT_POOL_SIZE,
    pool_mode: str = "transaction",
    max_client_conn: int = 2000,
    timeout: float = 30.0,
) -> PgBouncer:
    """Start pgbouncer in front of `database_url`; return it once it accepts connections.

    Listens on a free 127.0.0.1 port; every database name maps to the same server
    (`* = host=...`), `pool_size` server connections per database and user. As
    root it runs as another user (pgbouncer refuses root): the owner of Postgres's
    socket directory for an embedded server, else `nobody`; its files live in a
    fresh directory that user can read. Raises RuntimeError when pgbouncer is
    missing or does not come up (with its log).
    """
    binary = find_pgbouncer()
    if binary is None:
        raise RuntimeError(MISSING)
    target = connect_kwargs(database_url)
    user = str(target["user"])
    socket_dir: Path | None = None
    if "unix_sock" in target:
        sock = Path(str(target["unix_sock"]))
        socket_dir = sock.parent
        host, port = str(socket_dir), sock.name.rsplit(".", 1)[-1]
    else:
        host, port = str(target["host"]), str(target["port"])
    server = f"host={_ini_value(host)} port={port} user={_ini_value(user)}"
    if "password" in target:
        server += f" password={_ini_value(str(target['password']))}"

    directory = Path(tempfile.mkdtemp(prefix="soundcheck-pgbouncer-"))
    directory.chmod(0o755)
    listen_port = _free_port()
    (directory / "userlist.txt").write_text(f'"{user}" ""\n')
    ini = directory / "pgbouncer.ini"
    ini.write_text(
        "[databases]\n"
        f"* = {server}\n"
        "[pgbouncer]\n"
        "listen_addr = 127.0.0.1\n"
        f"listen_port = {listen_port}\n"
        "unix_socket_dir =\n"
        "auth_type = trust\n"
        f"auth_file = {directory / 'userlist.txt'}\n"
        f"pool_mode = {pool_mode}\n"
        f"default_pool_size = {pool_size}\n"
        "min_pool_size = 0\n"
        "reserve_pool_size = 0\n"
        f"max_client_conn = {max_client_conn}\n"
        "ignore_startup_parameters = extra_float_digits\n"
        "server_check_delay = 0\n"
        "log_connections = 0\n"
        "log_disconnections = 0\n"
    )
    for path in directory.iterdir():
        path.chmod(0o644)
    argv = [binary, str(ini)]
    if os.geteuid() == 0:
        argv[1:1] = ["-u", _unprivileged_user(socket_dir)]
    log = (directory / "pgbouncer.log").open("wb")
    try:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    finally:
        log.close()
    parts = urlsplit(database_url)
    netloc = quote(user, safe="") + f"@127.0.0.1:{listen_port}"
    url = urlunsplit(("postgresql", netloc, parts.path or "/postgres", "", ""))
    bouncer = PgBouncer(url=url, process=process, directory=directory)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            text = bouncer.log()
            bouncer.stop()
            raise RuntimeError(f"pgbouncer exited with {process.returncode}: {text[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", listen_port), timeout=1).close()
            return bouncer
        except OSError:
            if time.monotonic() > deadline:
                bouncer.stop()
                raise RuntimeError(f"pgbouncer did not listen within {timeout}s") from None
            time.sleep(0.02)


def _unprivileged_user(socket_dir: Path | None) -> str:
    """Who pgbouncer runs as under root: the owner of Postgres's socket directory
    (an embedded server's own user, who alone may enter it), else `nobody`."""
    if socket_dir is not None:
        with suppress(OSError, KeyError):
            owner = socket_dir.stat().st_uid
            if owner != 0:
                return pwd.getpwuid(owner).pw_name
    for name in ("nobody", "postgres", "daemon"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise RuntimeError("pgbouncer refuses to run as root and no unprivileged user exists")
