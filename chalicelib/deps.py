"""The long-lived clients of one process (one Lambda container): Redis, queue, jobs, storage.

Built lazily from `chalicelib.settings.get()` on first use, so importing the app
costs nothing and a warm Lambda reuses its connections. Tests and the local stack
install their own with `override`.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from chalicelib import settings as settings_module
from chalicelib.settings import Settings

if TYPE_CHECKING:
    import redis

    from chalicelib.jobs import JobStore
    from chalicelib.queue import Queue
    from chalicelib.storage import Storage

# Redis socket timeouts: long enough for `Queue.wait_for_job` blocking reads (a
# few seconds at most), short enough that a dead Redis fails a request instead of
# hanging it until API Gateway's 29 s limit.
REDIS_CONNECT_TIMEOUT_S = 5.0
REDIS_SOCKET_TIMEOUT_S = 15.0


def redis_url_hash(url: str) -> str:
    """A short digest of the Redis URL without its password: equal hashes, same Redis.

    /health/ready and every consumer's start-up log show it, so an API and a
    consumer talking to different Redis instances is visible at a glance.
    """
    parts = urlsplit(url)
    if parts.password is not None:
        netloc = f"{parts.username or ''}@{parts.hostname or ''}"
        if parts.port:
            netloc += f":{parts.port}"
        parts = parts._replace(netloc=netloc)
    return hashlib.sha256(urlunsplit(parts).encode()).hexdigest()[:12]


def redis_client(url: str) -> redis.Redis:
    """A Redis client for a URL with timeouts suited to API calls and blocking waits."""
    import redis

    return redis.Redis.from_url(
        url,
        socket_connect_timeout=REDIS_CONNECT_TIMEOUT_S,
        socket_timeout=REDIS_SOCKET_TIMEOUT_S,
        health_check_interval=30,
    )


@dataclass
class Deps:
    """Everything a route or the consumer talks to, built from one Settings."""

    settings: Settings
    redis: redis.Redis
    queue: Queue
    jobs: JobStore
    storage: Storage
    checked_server: bool = field(default=False, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Deps:
        from chalicelib.jobs import JobStore
        from chalicelib.queue import Queue
        from chalicelib.storage import storage_from_settings

        client = redis_client(settings.require("redis_url"))
        return cls(
            settings=settings,
            redis=client,
            queue=Queue.from_settings(client, settings),
            jobs=JobStore.from_settings(settings),
            storage=storage_from_settings(settings),
        )

    def check_server_once(self) -> None:
        """Refuse an evicting Redis before the first job (QueueConfigError), once per process."""
        if not self.checked_server:
            self.queue.check_server()
            self.checked_server = True

    def close(self) -> None:
        self.jobs.close()
        self.redis.close()


_lock = threading.Lock()
_current: Deps | None = None


def get() -> Deps:
    """This process's Deps, built from the environment on first use."""
    global _current
    with _lock:
        if _current is None:
            _current = Deps.from_settings(settings_module.get())
        return _current


def override(deps: Deps | None) -> Deps | None:
    """Install `deps` for this process (None: rebuild from settings next time); return the old."""
    global _current
    with _lock:
        previous, _current = _current, deps
        return previous
