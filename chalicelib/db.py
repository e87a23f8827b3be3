"""Postgres connections from a DATABASE_URL (pg8000, pure Python: no libpq in Lambda)."""

from __future__ import annotations

import ssl
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pg8000.native


def connect_kwargs(url: str) -> dict[str, object]:
    """pg8000 keyword arguments for a postgres:// URL.

    Understands `?host=/socket/dir` (how embedded servers and libpq spell a Unix
    socket) and `?sslmode=require|verify-full` (managed Postgres: RDS, Neon, Supabase).
    """
    parts = urlsplit(url)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    kwargs: dict[str, object] = {
        "user": unquote(parts.username or "postgres"),
        "database": unquote(parts.path.lstrip("/")) or "postgres",
    }
    if parts.password:
        kwargs["password"] = unquote(parts.password)
    socket_dir = query.get("host", "")
    if socket_dir.startswith("/"):
        port = parts.port or 5432
        kwargs["unix_sock"] = str(Path(socket_dir) / f".s.PGSQL.{port}")
    else:
        kwargs["host"] = parts.hostname or socket_dir or "127.0.0.1"
        kwargs["port"] = parts.port or 5432
    sslmode = query.get("sslmode", "disable")
    if sslmode in ("require", "prefer"):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        kwargs["ssl_context"] = context
    elif sslmode in ("verify-ca", "verify-full"):
        kwargs["ssl_context"] = ssl.create_default_context()
    return kwargs


def connect(
    url: str,
    schema: str = "public",
    timeout: float = 10.0,
    application_name: str = "soundcheck",
) -> pg8000.native.Connection:
    """A native pg8000 connection whose search_path is `schema` (created if missing).

    `application_name` shows in pg_stat_activity, so an operator can tell
    soundcheck's connections (and which part opened them) from everyone else's.
    """
    if not schema.isidentifier() or schema != schema.lower():
        raise ValueError(f"schema must be a lower-case identifier, got {schema!r}")
    conn = pg8000.native.Connection(
        timeout=timeout,
        application_name=application_name,
        **connect_kwargs(url),  # type: ignore[arg-type]
    )
    if schema != "public":
        try:
            conn.run(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        except pg8000.native.DatabaseError as exc:
            # Two processes creating the schema at once: IF NOT EXISTS is not atomic
            # and the loser gets a unique violation; the schema exists either way.
            if not (exc.args and isinstance(exc.args[0], dict) and exc.args[0].get("C") == "23505"):
                conn.close()
                raise
        conn.run(f'SET search_path TO "{schema}"')
    return conn


def drop_schema(url: str, schema: str) -> None:
    """Drop a schema and everything in it (a test run's, a demo's): the one teardown."""
    if not schema.isidentifier() or schema != schema.lower() or schema == "public":
        raise ValueError(f"refusing to drop schema {schema!r}")
    conn = connect(url)
    try:
        conn.run(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        conn.close()
