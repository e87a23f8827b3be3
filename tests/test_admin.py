"""Admin routes (issue 10): redrive a failed job, pause/resume the queue, the audit log.

Real Redis, Postgres and the real consumer; every route refuses a user key (403)
and every action shows in the audit log with who, what, when and on what.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from chalicelib.deps import Deps
from chalicelib.keys import KeyStore, Role
from tests.pipeline_support import (
    app_http,
    installed,
    json_body,
    new_owner,
)
from tests.test_consumer import LEASE_S, drain, submit


@pytest.fixture
def service(make_env: Callable[..., dict[str, str]], service_database_url: str) -> Iterator[Deps]:
    env = make_env(service_database_url, SOUNDCHECK_LEASE_SECONDS=str(LEASE_S))
    with installed(env, backoff_ms=20) as d:
        yield d


@pytest.fixture
def http(service: Deps, tmp_path: Path) -> Iterator[Any]:
    with app_http(tmp_path) as client:
        yield client


def headers(service: Deps, role: Role, owner: str | None = None) -> dict[str, str]:
    key = KeyStore(service.jobs).create(owner or new_owner(), role=role)
    return {"Authorization": f"Bearer {key}"}


ADMIN_ROUTES = [
    ("POST", f"/api/admin/jobs/{uuid.uuid4()}/retry"),
    ("POST", "/api/admin/queue/pause"),
    ("POST", "/api/admin/queue/resume"),
    ("GET", "/api/admin/audit"),
    ("GET", "/api/queue/stats"),
]


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES)
def test_every_admin_route_is_403_for_a_user_and_401_without_a_key(
    http: Any, service: Deps, method: str, path: str
) -> None:
    response = http.request(method, path, headers=headers(service, Role.USER), body=b"")
    assert response.status_code == 403 and json_body(response)["error"]["code"] == "forbidden"
    response = http.request(method, path, headers={}, body=b"")
    assert response.status_code == 401
    assert not service.queue.is_paused()
    assert service.jobs._rows("SELECT count(*) AS n FROM audit")[0]["n"] == 0


def test_an_admin_redrives_another_owners_failed_job_and_it_completes(
    http: Any, service: Deps
) -> None:
    job = submit(service, b"not audio at all")
    assert drain(service).failed == 1
    failed = service.jobs.get(job.id)
    assert failed is not None and failed.status == "failed"
    old_token = failed.lease_token
    admin = headers(service, Role.ADMIN, owner="ops-anna")
    # a user (even the owner) cannot use the admin route
    owner_headers = headers(service, Role.USER, owner=job.owner)
    response = http.post(f"/api/admin/jobs/{job.id}/retry", headers=owner_headers, body=b"")
    assert response.status_code == 403
    # the upload is replaced by real audio, then the admin redrives the job
    from tests.pipeline_support import wav_bytes

    service.storage.put_bytes(job.file_key, wav_bytes(0.5))
    response = http.post(f"/api/admin/jobs/{job.id}/retry", headers=admin, body=b"")
    assert response.status_code == 202, response.body
    assert service.queue.states([job.id]) == {job.id: "waiting"}
    # fenced: the failed attempt's token can no longer take or write the job
    assert service.jobs.start(job.id, old_token, 1) is None  # type: ignore[arg-type]
    assert drain(service).completed == 1
    done = service.jobs.get(job.id)
    assert done is not None and done.status == "completed" and done.lease_token > old_token  # type: ignore[operator]
    response = http.post(f"/api/admin/jobs/{job.id}/retry", headers=admin, body=b"")
    assert response.status_code == 409  # only a failed job
    response = http.post(f"/api/admin/jobs/{uuid.uuid4()}/retry", headers=admin, body=b"")
    assert response.status_code == 404
    (entry,) = json_body(http.get("/api/admin/audit", headers=admin))["entries"]
    assert (entry["actor"], entry["action"], entry["target"]) == ("ops-anna", "job.retry", job.id)
    assert entry["detail"] == {"owner": job.owner}
    at = datetime.fromisoformat(entry["at"].replace("Z", "+00:00"))
    assert abs(datetime.now(UTC) - at) < timedelta(minutes=1)


def test_pause_and_resume_steer_the_queue_and_are_audited(http: Any, service: Deps) -> None:
    admin = headers(service, Role.ADMIN, owner="ops-ben")
    job = submit(service)
    response = http.post("/api/admin/queue/pause", headers=admin, body=b"")
    assert (response.status_code, json_body(response)["paused"]) == (200, True)
    assert service.queue.is_paused()
    assert service.queue.claim("c", 1000) == []  # nothing handed out while paused
    response = http.post("/api/admin/queue/resume", headers=admin, body=b"")
    assert (response.status_code, json_body(response)["paused"]) == (200, False)
    assert drain(service).completed == 1
    assert service.jobs.get(job.id).status == "completed"  # type: ignore[union-attr]
    entries = json_body(http.get("/api/admin/audit", headers=admin))["entries"]
    assert [(e["actor"], e["action"]) for e in entries] == [
        ("ops-ben", "queue.resume"),
        ("ops-ben", "queue.pause"),
    ]
    assert entries[0]["target"] == service.settings.queue_name


def test_the_audit_log_pages_and_refuses_bad_queries(http: Any, service: Deps) -> None:
    from chalicelib.audit import AuditLog

    log = AuditLog(service.jobs)
    made = [log.record("ops", "queue.pause", "q", n=n).id for n in range(5)]
    admin = headers(service, Role.ADMIN)
    page = json_body(http.get("/api/admin/audit?limit=2", headers=admin))["entries"]
    assert [e["id"] for e in page] == made[::-1][:2]
    rest = json_body(
        http.get(f"/api/admin/audit?limit=200&before={page[-1]['id']}", headers=admin)
    )["entries"]
    assert [e["id"] for e in rest] == made[::-1][2:]
    for query in ("limit=0", "limit=201", "limit=x", "before=-1", "before=1e3", "who=me"):
        response = http.get(f"/api/admin/audit?{query}", headers=admin)
        assert response.status_code == 400, (query, response.body)
    assert json.loads(json.dumps(rest))  # plain JSON
