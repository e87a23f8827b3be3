"""Roles of API keys (issue 10): user and admin, revocation, expiry, route by route.

Real Redis and Postgres, through chalice.test.Client like tests/test_api.py.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from chalicelib import deps
from chalicelib.db import connect
from chalicelib.deps import Deps
from chalicelib.keys import MIN_CHOSEN_KEY, KeyStore, Role
from chalicelib.local.state import write_atomic, write_private
from tests.pipeline_support import (
    app_http,
    build_deps,
    closed_port,
    installed,
    json_body,
    new_owner,
    settings_for,
)
from tests.test_api import assert_error, get, submit


@pytest.fixture
def env(make_env: Callable[..., dict[str, str]], service_database_url: str) -> dict[str, str]:
    return make_env(service_database_url)


@pytest.fixture
def service(env: dict[str, str]) -> Iterator[Deps]:
    with installed(env) as d:
        yield d


@pytest.fixture
def http(service: Deps, tmp_path: Path) -> Iterator[Any]:
    with app_http(tmp_path) as client:
        yield client


class Caller:
    def __init__(self, service: Deps, role: Role) -> None:
        self.owner = new_owner()
        self.key = KeyStore(service.jobs).create(self.owner, role=role)
        self.headers = {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}


@pytest.fixture
def user(service: Deps) -> Caller:
    return Caller(service, Role.USER)


@pytest.fixture
def admin(service: Deps) -> Caller:
    return Caller(service, Role.ADMIN)


# --- the key store -------------------------------------------------------------------


def test_keys_carry_a_role_and_a_revoked_or_expired_key_is_unknown(service: Deps) -> None:
    keys = KeyStore(service.jobs)
    owner = new_owner()
    plain = keys.create(owner)
    boss = keys.create(owner, role=Role.ADMIN)
    assert keys.principal(plain).role == Role.USER
    assert keys.principal(boss).is_admin
    listed = {k.id: k for k in keys.list(owner)}
    assert {k.role for k in listed.values()} == {"user", "admin"}
    assert all(len(k) == 12 for k in listed)
    plain_id = next(i for i, k in listed.items() if k.role == "user")
    assert keys.revoke(plain_id) == 1
    assert keys.principal(plain) is None and service.jobs.owner_for_key(plain) is None
    assert keys.revoke(plain_id) == 0  # already revoked
    assert keys.principal(boss) is not None  # only that one
    soon = keys.create(owner, expires_in_days=1)
    assert keys.principal(soon) is not None
    conn = connect(service.settings.database_url, service.jobs.schema)
    conn.run(
        "UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE owner = :o", o=owner
    )
    conn.close()
    assert keys.principal(soon) is None and keys.principal(boss) is None


def test_a_chosen_key_needs_24_characters(service: Deps) -> None:
    keys = KeyStore(service.jobs)
    owner = new_owner()
    for short in ("a", "x" * (MIN_CHOSEN_KEY - 1)):
        with pytest.raises(ValueError, match="at least 24"):
            keys.create(owner, short)
        assert keys.principal(short) is None
    with pytest.raises(ValueError, match="whitespace"):
        keys.create(owner, "a" * 20 + " " + "b" * 10)
    chosen = "é" * MIN_CHOSEN_KEY  # any characters
    assert keys.create(owner, chosen) == chosen and keys.principal(chosen).owner == owner


@pytest.mark.parametrize("owner", ["o" * 201, "   ", "a\x00b", "\udcff"])
def test_a_key_is_made_only_for_an_owner_id_the_queue_accepts(service: Deps, owner: str) -> None:
    """The queue refuses owners over 200 characters: a key made for one could submit
    jobs (202) that never reach the queue. One rule (rules.owner) where keys are made."""
    with pytest.raises(ValueError, match="owner must"):
        KeyStore(service.jobs).create(owner)
    assert all(k.owner != owner for k in KeyStore(service.jobs).list())


def test_re_registering_a_key_sets_its_role_but_never_moves_it(service: Deps) -> None:
    keys = KeyStore(service.jobs)
    owner = new_owner()
    key = keys.create(owner)
    keys.create(owner, key, role=Role.ADMIN)  # the local stack upgrading an older data dir
    assert keys.principal(key).is_admin
    with pytest.raises(ValueError, match="another owner"):
        keys.create(new_owner(), key, role=Role.ADMIN)
    assert keys.principal(key).owner == owner
    with pytest.raises(ValueError, match="8 or more hex digits"):
        keys.revoke("abc")  # too short to name one key


def test_existing_keys_become_users_in_migration_0005(database_url: str) -> None:
    from chalicelib.jobs import JobStore

    schema = f"sc_roles_{uuid.uuid4().hex[:8]}"
    store = JobStore(database_url, schema)
    try:
        _migrate_until(store, "0005")
        conn = connect(database_url, schema)
        conn.run("INSERT INTO api_keys (key_hash, owner) VALUES ('h1', 'old')")
        conn.close()
        assert store.migrate()[0] == "0005_roles_cancel_audit"  # later ones follow
        conn = connect(database_url, schema)
        assert conn.run("SELECT role FROM api_keys WHERE owner = 'old'") == [["user"]]
        conn.close()
    finally:
        store.close()
        from chalicelib.db import drop_schema

        drop_schema(database_url, schema)


def _migrate_until(store: Any, version: str) -> None:
    """Apply the migrations before `version` only (a database as it was before it)."""
    import shutil
    import tempfile

    from chalicelib.jobs import MIGRATIONS_DIR

    with tempfile.TemporaryDirectory() as tmp:
        for path in MIGRATIONS_DIR.glob("*.sql"):
            if path.name < version:
                shutil.copy(path, tmp)
        store.migrate(Path(tmp))


# --- route by route ------------------------------------------------------------------

ADMIN_ROUTES = [("GET", "/api/queue/stats")]
USER_ROUTES = [
    (
        "POST",
        "/api/audio/upload-url",
        {"fileName": "a.wav", "contentType": "audio/wav", "sizeBytes": 9},
        200,
    ),
    ("GET", "/api/jobs", None, 200),
    ("GET", f"/api/jobs/{uuid.uuid4()}", None, 404),
    ("POST", f"/api/jobs/{uuid.uuid4()}/retry", None, 404),
    ("GET", "/api/genres", None, 200),
]


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES)
def test_admin_routes_refuse_a_user_with_403_forbidden(
    http: Any, admin: Caller, user: Caller, method: str, path: str
) -> None:
    response = http.request(method, path, headers=user.headers, body=b"")
    assert_error(response, 403, "forbidden")
    assert http.request(method, path, headers=admin.headers, body=b"").status_code == 200
    response = http.request(method, path, headers={"Authorization": "Bearer sck_nobody"}, body=b"")
    assert_error(response, 401, "unauthorized")


@pytest.mark.parametrize(("method", "path", "body", "status"), USER_ROUTES)
def test_user_routes_serve_both_roles(
    http: Any, admin: Caller, user: Caller, method: str, path: str, body: Any, status: int
) -> None:
    import json

    raw = b"" if body is None else json.dumps(body).encode()
    for caller in (user, admin):
        response = http.request(method, path, headers=caller.headers, body=raw)
        assert response.status_code == status, (caller.owner, response.body)


def test_an_admin_key_does_not_open_another_owners_job(
    http: Any, service: Deps, admin: Caller, user: Caller
) -> None:
    job_id = json_body(submit(http, service, user))["jobId"]  # type: ignore[arg-type]
    assert_error(get(http, f"/api/jobs/{job_id}", admin), 404, "not_found")  # type: ignore[arg-type]


def test_a_revoked_key_is_401_on_the_next_request(http: Any, service: Deps, admin: Caller) -> None:
    assert get(http, "/api/queue/stats", admin).status_code == 200  # type: ignore[arg-type]
    keys = KeyStore(service.jobs)
    key_id = next(k.id for k in keys.list(admin.owner))
    keys.revoke(key_id)
    assert_error(get(http, "/api/queue/stats", admin), 401, "unauthorized")  # type: ignore[arg-type]


# --- /health/ready ----------------------------------------------------------------------


def test_ready_says_only_ok_in_public_and_details_to_admins(
    http: Any, service: Deps, admin: Caller, user: Caller, redis_client: Any
) -> None:
    for caller in (None, user, "Bearer sck_wrong"):
        headers = (
            {}
            if caller is None
            else {"Authorization": caller}
            if isinstance(caller, str)
            else caller.headers
        )
        response = http.get("/health/ready", headers=headers)
        assert (response.status_code, json_body(response)) == (200, {"status": "ok"})
    body = json_body(http.get("/health/ready", headers=admin.headers))
    assert (body["status"], body["redis"], body["postgres"]) == ("ok", "ok", "ok")
    assert body["queue"]["redisRunId"] == redis_client.info()["run_id"]
    assert body["queue"]["redisVersion"] == redis_client.info()["redis_version"]


def test_an_outage_names_its_host_to_admins_only(
    http: Any, env: dict[str, str], service: Deps, admin: Caller
) -> None:
    port = closed_port()
    broken = build_deps(settings_for({**env, "REDIS_URL": f"redis://127.0.0.1:{port}/0"}))
    previous = deps.override(broken)
    try:
        public = http.get("/health/ready", headers={})
        detailed = http.get("/health/ready", headers=admin.headers)
    finally:
        deps.override(previous)
        broken.close()
    assert (public.status_code, json_body(public)) == (503, {"status": "unavailable"})
    assert str(port) not in public.body.decode()
    body = json_body(detailed)
    assert detailed.status_code == 503 and body["redis"].startswith("error")
    assert body["postgres"] == "ok"


# --- the CLI and the local stack's key files --------------------------------------------


def test_keys_commands_create_list_and_revoke(service: Deps) -> None:
    cli_env = {
        **os.environ,
        "DATABASE_URL": service.settings.database_url,
        "SOUNDCHECK_DB_SCHEMA": service.jobs.schema,
    }
    cli = [sys.executable, "-m", "chalicelib.cli", "keys"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*cli, *args], env=cli_env, capture_output=True, text=True, timeout=60
        )

    owner = new_owner()
    made = run("create", owner, "--admin", "--expires-days", "2")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert KeyStore(service.jobs).principal(key).is_admin
    for days in ("0", "-1", "nan", "inf", "1e9"):
        refused = run("create", owner, "--expires-days", days)
        assert refused.returncode == 2 and "expiry" in refused.stderr, (days, refused.stderr)
    short = run("create", owner, "--key", "a")
    assert short.returncode == 2 and "at least 24" in short.stderr
    listed = run("list", "--owner", owner)
    assert listed.returncode == 0 and key not in listed.stdout
    (line,) = [x for x in listed.stdout.splitlines() if owner in x]
    key_id = line.split()[0]
    assert line.split()[1] == "admin"
    assert run("revoke", key_id).returncode == 0
    assert KeyStore(service.jobs).principal(key) is None
    assert run("revoke", key_id).returncode == 1


def test_private_files_are_0600_from_their_creation(tmp_path: Path) -> None:
    old = os.umask(0)  # the mode must not lean on a friendly umask
    try:
        write_private(tmp_path / "api-key", "k\n")
        write_atomic(tmp_path / "dev.json", "{}")
        (tmp_path / "open").write_text("x")
        os.chmod(tmp_path / "open", 0o644)
        write_private(tmp_path / "open", "y")  # an existing file does not keep its mode
    finally:
        os.umask(old)
    for name in ("api-key", "dev.json", "open"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name
