"""The API's limits through the HTTP routes, on real Redis and Postgres: 429, Retry-After, a code,
and only the caller limited. Also /health/ready against a Redis whose eviction policy changes.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from chalicelib import deps, settings
from chalicelib.deps import Deps
from chalicelib.queue import MAX_LEASE_MS
from tests.pipeline_support import (
    app_http,
    build_deps,
    installed,
    json_body,
    new_owner,
    own_schema,
    put_upload,
    service_env,
    settings_for,
    wav_bytes,
)
from tests.test_queue import _private_redis

LIMITS = {
    "SOUNDCHECK_SUBMIT_BURST": "3",
    "SOUNDCHECK_SUBMIT_PER_MINUTE": "6",
    "SOUNDCHECK_MAX_WAITING_PER_OWNER": "5",
    "SOUNDCHECK_SIGN_IN_FAILURE_BURST": "4",
    "SOUNDCHECK_SIGN_IN_FAILURES_PER_MINUTE": "1",
}


@pytest.fixture
def service(
    make_env: Callable[..., dict[str, str]], database_url: str, request: Any
) -> Iterator[Deps]:
    env = make_env(database_url, **getattr(request, "param", LIMITS))
    with installed(env) as d:
        yield d


@pytest.fixture
def http(tmp_path: Path) -> Iterator[Any]:
    with app_http(tmp_path) as client:
        yield client


def _headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}


def _submit(http: Any, d: Deps, owner: str, key: str) -> Any:
    file_key = put_upload(d, owner, wav_bytes(0.1))
    return http.post(
        "/api/audio/analyze", headers=_headers(key), body=json.dumps({"fileKey": file_key})
    )


def _user(d: Deps) -> tuple[str, str]:
    owner = new_owner()
    return owner, d.jobs.create_api_key(owner)


def _assert_429(response: Any, code: str, most_s: int) -> None:
    assert response.status_code == 429, response.body
    assert json_body(response)["error"]["code"] == code
    assert 1 <= int(response.headers["Retry-After"]) <= most_s


def test_rapid_submissions_are_rate_limited_per_owner(http: Any, service: Deps) -> None:
    alice, alice_key = _user(service)
    bob, bob_key = _user(service)
    answers = [_submit(http, service, alice, alice_key) for _ in range(5)]
    assert [r.status_code for r in answers] == [202, 202, 202, 429, 429]
    _assert_429(answers[-1], "rate_limited", 10)  # one token per 10 s
    assert _submit(http, service, bob, bob_key).status_code == 202  # bob is unaffected
    assert len(service.jobs.list_for_owner(alice, limit=100)) == 3  # refused: not in Postgres
    service.queue.time_offset_ms = 10_000
    assert _submit(http, service, alice, alice_key).status_code == 202


def test_an_owners_waiting_jobs_are_capped(http: Any, service: Deps) -> None:
    alice, alice_key = _user(service)
    bob, bob_key = _user(service)
    for i in range(5):
        service.queue.enqueue(f"queued-{i}", owner=alice)
    _assert_429(_submit(http, service, alice, alice_key), "too_many_waiting", 10)
    assert _submit(http, service, bob, bob_key).status_code == 202
    service.queue.claim("w", 60_000)  # one of alice's starts
    assert _submit(http, service, alice, alice_key).status_code == 202


def test_retries_are_submissions_too(http: Any, service: Deps) -> None:
    alice, alice_key = _user(service)
    for _ in range(3):
        assert _submit(http, service, alice, alice_key).status_code == 202
    response = http.post(f"/api/jobs/{uuid.uuid4()}/retry", headers=_headers(alice_key), body="")
    _assert_429(response, "rate_limited", 10)


def test_failed_sign_ins_are_limited_per_client(http: Any, service: Deps) -> None:
    _, alice_key = _user(service)
    wrong = [http.get("/api/jobs", headers=_headers(f"sck_wrong{i}")) for i in range(6)]
    assert [r.status_code for r in wrong] == [401] * 4 + [429] * 2
    _assert_429(wrong[-1], "too_many_failed_sign_ins", 60)
    # while it lasts, even a right key from that address is refused before it is looked at
    _assert_429(http.get("/api/jobs", headers=_headers(alice_key)), "too_many_failed_sign_ins", 60)
    service.queue.time_offset_ms = 60_000
    assert http.get("/api/jobs", headers=_headers(alice_key)).status_code == 200


def test_limits_fail_open_when_redis_is_down(
    http: Any, service: Deps, monkeypatch: pytest.MonkeyPatch
) -> None:
    import redis

    alice, alice_key = _user(service)

    def down(*args: Any, **kwargs: Any) -> Any:
        raise redis.exceptions.ConnectionError("Redis is down")

    monkeypatch.setattr(service.queue, "_run", down)
    assert _submit(http, service, alice, alice_key).status_code == 202  # enqueued by the sweeper
    assert http.get("/api/jobs", headers=_headers("sck_wrong")).status_code == 401


def test_every_limit_setting_has_a_default_and_parses() -> None:
    loaded = settings.load({})
    assert (loaded.submit_burst, loaded.submit_per_minute, loaded.max_waiting_per_owner) == (
        30,
        30.0,
        100,
    )
    for name in LIMITS:
        with pytest.raises(settings.SettingsError, match=name):
            settings.load({name: "0"})
        with pytest.raises(settings.SettingsError, match=name):
            settings.load({name: "inf" if "MINUTE" in name else "x"})
    names = {settings.env_name(f.name) for f in fields(settings.Settings)}
    assert set(LIMITS) <= names


def test_the_lease_setting_has_the_queues_upper_bound() -> None:
    assert settings.MAX_LEASE_SECONDS * 1000 == MAX_LEASE_MS
    assert settings.load({"SOUNDCHECK_LEASE_SECONDS": "3600"}).lease_seconds == 3600
    with pytest.raises(settings.SettingsError, match="SOUNDCHECK_LEASE_SECONDS"):
        settings.load({"SOUNDCHECK_LEASE_SECONDS": str(3600 * 24 * 365 * 31)})


def test_ready_is_unavailable_while_redis_may_evict(
    http: Any, tmp_root: Path, database_url: str, queue_name: str, tmp_path: Path
) -> None:
    with (
        _private_redis(tmp_root, queue_name, "noeviction") as client,
        own_schema(database_url) as schema,
    ):
        socket = client.connection_pool.connection_kwargs["path"]
        env = service_env(f"unix://{socket}", database_url, schema, queue_name, tmp_path / "o")
        d = build_deps(settings_for(env))
        previous = deps.override(d)
        try:
            assert http.get("/health/ready").status_code == 200
            client.config_set("maxmemory-policy", "allkeys-lru")  # switched on after start-up
            key = d.jobs.create_api_key(f"admin-{queue_name}", role="admin")
            response = http.get("/health/ready", headers={"Authorization": f"Bearer {key}"})
            assert response.status_code == 503
            body = json_body(response)
            assert body["status"] == "unavailable" and "allkeys-lru" in body["redis"]
            client.config_set("maxmemory-policy", "noeviction")
            assert http.get("/health/ready").status_code == 200
        finally:
            deps.override(previous)
            d.close()
