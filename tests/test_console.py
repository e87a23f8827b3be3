"""The admin console's backend (issue 10): /api/me, overview, job lists, redrive, owners.

Real Redis, Postgres and the real consumer, through chalice.test's HTTP client like
tests/test_admin.py. Each route is checked for its role (user 403, no key 401), its
bad input (400 with a code) and, for actions, its audit row in the same transaction.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from chalicelib.deps import Deps
from chalicelib.jobs import Job
from chalicelib.keys import KeyStore, Role
from tests import test_admin
from tests.pipeline_support import (
    app_http,
    installed,
    json_body,
    new_owner,
)
from tests.test_consumer import LEASE_S, drain, submit
from tests.waiting import wait_until

service = test_admin.service  # the same deployment as the other admin routes' tests
http = test_admin.http


def key_headers(service: Deps, role: Role, owner: str | None = None, **create: Any) -> dict:
    key = KeyStore(service.jobs).create(owner or new_owner(), role=role, **create)
    return {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}


# --- /api/me -------------------------------------------------------------------------


def test_me_names_the_owner_role_and_expiry_of_any_key(http: Any, service: Deps) -> None:
    user = key_headers(service, Role.USER, owner="me-user", expires_in_days=2)
    body = json_body(http.get("/api/me", headers=user))
    assert (body["owner"], body["role"]) == ("me-user", "user")
    expires = datetime.fromisoformat(body["expiresAt"].replace("Z", "+00:00"))
    assert abs(expires - (datetime.now(UTC) + timedelta(days=2))) < timedelta(minutes=1)
    admin = key_headers(service, Role.ADMIN, owner="me-admin")
    assert json_body(http.get("/api/me", headers=admin)) == {
        "owner": "me-admin",
        "role": "admin",
        "expiresAt": None,
    }
    assert http.get("/api/me").status_code == 401
    wrong = {"Authorization": "Bearer sck_not-a-key-at-all-000000000"}
    assert http.get("/api/me", headers=wrong).status_code == 401


# --- helpers -------------------------------------------------------------------------


def buggy(*args: Any) -> dict[str, Any]:
    """An analysis that always raises: an internal error, retried until the attempts run out."""
    raise ZeroDivisionError("oops")


def dead_job(service: Deps, **spec: Any) -> Job:
    """A job whose every attempt failed with a retried error: failed, dead in the queue."""
    job = submit(service, **spec)
    for _ in range(service.settings.max_attempts):  # each claim promotes a due retry
        wait_until(
            lambda: drain(service, analyse=buggy, max_jobs=1).claimed,
            what="the retry to be due and claimed",
        )
    failed = service.jobs.get(job.id)
    assert failed is not None and (failed.status, failed.error_code) == (
        "failed",
        "internal_error",
    )
    return failed


def failed_job(service: Deps, **spec: Any) -> Job:
    """A job that failed at once (not audio): failed, never retried."""
    job = submit(service, b"not audio at all", **spec)
    assert drain(service, max_jobs=1).failed == 1
    return service.jobs.get(job.id)  # type: ignore[return-value]


def audit_rows(service: Deps) -> list[dict[str, Any]]:
    return service.jobs._rows("SELECT actor, action, target, detail FROM audit ORDER BY id")


def listed(http: Any, admin: dict, query: str = "") -> dict[str, Any]:
    response = http.get(f"/api/admin/jobs{query}", headers=admin)
    assert response.status_code == 200, response.body
    return json_body(response)


# --- roles, route by route -----------------------------------------------------------

CONSOLE_ROUTES = [
    ("GET", "/api/admin/overview", b""),
    ("GET", "/api/admin/jobs", b""),
    ("GET", "/api/admin/owners", b""),
    ("POST", "/api/admin/jobs/retry", b'{"state": "dead"}'),
    ("DELETE", f"/api/admin/jobs/{uuid.uuid4()}", b""),
]


@pytest.mark.parametrize(("method", "path", "body"), CONSOLE_ROUTES)
def test_every_console_route_is_403_for_a_user_401_without_a_key_ok_for_an_admin(
    http: Any, service: Deps, method: str, path: str, body: bytes
) -> None:
    job = failed_job(service)
    user = key_headers(service, Role.USER, owner=job.owner)
    response = http.request(method, path, headers=user, body=body)
    assert response.status_code == 403 and json_body(response)["error"]["code"] == "forbidden"
    response = http.request(method, path, headers={"Content-Type": "application/json"}, body=body)
    assert response.status_code == 401
    assert audit_rows(service) == []
    assert service.jobs.get(job.id).status == "failed"  # type: ignore[union-attr]
    response = http.request(method, path, headers=key_headers(service, Role.ADMIN), body=body)
    assert response.status_code == (404 if method == "DELETE" else 200), response.body


BAD_QUERIES = [
    ("/api/admin/jobs?state=stuck", "invalid_field"),
    ("/api/admin/jobs?state=", "invalid_field"),
    ("/api/admin/jobs?code=Not-A-Code", "invalid_field"),
    ("/api/admin/jobs?limit=0", "invalid_limit"),
    ("/api/admin/jobs?limit=201", "invalid_limit"),
    ("/api/admin/jobs?limit=ten", "invalid_limit"),
    ("/api/admin/jobs?cursor=%21%21", "invalid_field"),
    ("/api/admin/jobs?cursor=bm9wZQ", "invalid_field"),  # base64 of "nope"
    ("/api/admin/jobs?cursor=WyJ4IiwieSJd", "invalid_field"),  # ["x","y"]
    # ["9999-12-31T23:00:00-20:00", a job id]: past year 9999 in UTC
    (
        "/api/admin/jobs?cursor=WyI5OTk5LTEyLTMxVDIzOjAwOjAwLTIwOjAwIiwiMDAwMDAwMDAtMDAwMC0w"
        "MDAwLTAwMDAtMDAwMDAwMDAwMDAwIl0",
        "invalid_field",
    ),
    ("/api/admin/jobs?status=failed", "unknown_field"),
    ("/api/admin/owners?limit=500", "invalid_limit"),
    ("/api/admin/owners?cursor=WzFd", "invalid_field"),  # [1]
    # forged cursors whose string Postgres cannot hold (was 503 and 500)
    ("/api/admin/owners?cursor=Ilx1MDAwMCI", "invalid_field"),  # "\u0000"
    ("/api/admin/owners?cursor=ImFcdWQ4MDBiIg", "invalid_field"),  # "a\ud800b"
    ("/api/admin/owners?cursor=Ilx1ZGZmZiI", "invalid_field"),  # "\udfff"
    ("/api/admin/overview?x=1", "unknown_field"),
]


@pytest.mark.parametrize(("path", "code"), BAD_QUERIES)
def test_bad_filters_are_400_with_a_code(http: Any, service: Deps, path: str, code: str) -> None:
    response = http.get(path, headers=key_headers(service, Role.ADMIN))
    assert response.status_code == 400, (path, response.body)
    assert json_body(response)["error"]["code"] == code


def test_a_cursor_with_an_offset_postgres_does_not_take_is_read_in_utc(
    http: Any, service: Deps
) -> None:
    """Python reads offsets up to +-24 h, Postgres +-15:59: a forged
    ["2020-01-01T00:00:00+23:59", id] was a 503; it is a point in time like any other."""
    cursor = (
        "WyIyMDIwLTAxLTAxVDAwOjAwOjAwKzIzOjU5IiwiMDAwMDAwMDAtMDAwMC0w"
        "MDAwLTAwMDAtMDAwMDAwMDAwMDAwIl0"
    )
    old = failed_job(service)
    response = http.get(
        f"/api/admin/jobs?cursor={cursor}", headers=key_headers(service, Role.ADMIN)
    )
    assert response.status_code == 200, response.body
    assert old.id not in [job["jobId"] for job in json_body(response)["jobs"]]  # made after 2020


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"", "invalid_json"),
        (b"{}", "missing_field"),
        (b'{"state": "completed"}', "invalid_field"),
        (b'{"state": "dead", "owner": 7}', "invalid_field"),
        (b'{"state": "dead", "code": "DROP TABLE"}', "invalid_field"),
        (b'{"state": "dead", "all": true}', "unknown_field"),
    ],
)
def test_a_bad_redrive_is_400_and_retries_nothing(
    http: Any, service: Deps, body: bytes, code: str
) -> None:
    job = failed_job(service)
    admin = key_headers(service, Role.ADMIN)
    response = http.post("/api/admin/jobs/retry", headers=admin, body=body)
    assert response.status_code == 400 and json_body(response)["error"]["code"] == code
    assert service.jobs.get(job.id).status == "failed"  # type: ignore[union-attr]
    assert audit_rows(service) == []


# --- overview ------------------------------------------------------------------------


def test_the_overview_counts_states_and_draws_the_last_24_hours(http: Any, service: Deps) -> None:
    admin = key_headers(service, Role.ADMIN)
    done = submit(service)
    assert drain(service, max_jobs=1).completed == 1
    failed_job(service)
    waiting = submit(service)
    (claim,) = service.queue.claim("lambda:busy", int(LEASE_S * 1000) * 30)
    running = service.jobs.start(claim.job_id, claim.token, claim.attempt, "lambda:busy")
    assert running is not None and claim.job_id == waiting.id
    submit(service)  # waiting
    service.queue.pause()
    body = json_body(http.get("/api/admin/overview", headers=admin))
    assert body["counts"] == {
        "queued": 1,
        "processing": 1,
        "delayed": 0,
        "completed": 1,
        "failed": 1,
        "dead": 1,  # bad audio fails for good: the queue buries it too
        "cancelled": 0,
        "expired": 0,
    }
    assert body["paused"] is True and body["queue"]["waiting"] == 1
    busy = body["consumers"][0]
    assert (busy["consumer"], busy["jobs"]) == ("lambda:busy", 1)
    assert 0 < busy["leaseLeftMs"] <= LEASE_S * 30_000
    assert "c1" in [c["consumer"] for c in body["consumers"][1:]]  # seen, holding nothing
    buckets = body["series"]["buckets"]
    assert body["series"]["bucketSeconds"] == 3600 and len(buckets) == 24
    starts = [datetime.fromisoformat(b["start"].replace("Z", "+00:00")) for b in buckets]
    assert all(b - a == timedelta(hours=1) for a, b in itertools.pairwise(starts))
    assert starts[-1] <= datetime.now(UTC) < starts[-1] + timedelta(hours=1)
    now = buckets[-1]
    assert (now["completed"], now["failed"], now["started"]) == (1, 1, 3)
    assert now["waitMsP50"] is not None and now["waitMsP50"] <= now["waitMsP95"] < 60_000
    assert all(b["completed"] == 0 and b["waitMsP50"] is None for b in buckets[:-1])
    assert done.id  # (its completion is the bucket's one)


def test_the_wait_percentiles_come_from_the_histogram_within_9_percent() -> None:
    from chalicelib.console import percentile_ms

    bins = [0] * 120
    assert percentile_ms(bins, 0.5) is None
    for wait_ms, n in ((100, 90), (10_000, 10)):
        bins[int(4 * math.log2(wait_ms))] += n
    assert abs(percentile_ms(bins, 0.5) - 100) / 100 < 0.09  # type: ignore[operator]
    assert abs(percentile_ms(bins, 0.95) - 10_000) / 10_000 < 0.09  # type: ignore[operator]


def test_metrics_older_than_48_hours_are_pruned_when_an_hour_begins(service: Deps) -> None:
    service.jobs._rows(
        "INSERT INTO job_metrics (bucket, shard, completed)"
        " VALUES (date_trunc('hour', now()) - interval '49 hours', 0, 5),"
        " (date_trunc('hour', now()) - interval '47 hours', 0, 7)"
    )
    submit(service)
    assert drain(service).completed == 1
    kept = service.jobs._rows(
        "SELECT completed FROM job_metrics WHERE bucket < date_trunc('hour', now())"
    )
    assert [row["completed"] for row in kept] == [7]


# --- job lists ----------------------------------------------------------------------


def test_lists_filter_by_state_owner_and_code_with_attempt_history(
    http: Any, service: Deps
) -> None:
    admin = key_headers(service, Role.ADMIN)
    dead = dead_job(service, owner="ann")
    failed = failed_job(service, owner="bob")
    done = submit(service, owner="bob")
    assert drain(service, max_jobs=1).completed == 1
    cancelled = submit(service, owner="ann")
    service.jobs.cancel(cancelled.id, None)
    service.queue.remove(cancelled.id)
    delayed = submit(service, owner="cy")
    service.queue.backoff_base_ms = service.queue.backoff_max_ms = 600_000
    service.queue.jitter = lambda: 1.0
    assert drain(service, analyse=buggy, max_jobs=1).retried == 1
    active = submit(service, owner="cy")
    (claim,) = service.queue.claim("lambda:x", 30_000)
    assert service.jobs.start(claim.job_id, claim.token, claim.attempt, "lambda:x")
    service.jobs.set_progress(active.id, claim.token, 40)
    waiting = submit(service, owner="ann", priority=7)

    def ids(query: str) -> list[str]:
        return [j["jobId"] for j in listed(http, admin, query)["jobs"]]

    assert ids("?state=dead") == [dead.id]
    assert ids("?state=failed") == [failed.id]
    assert ids("?state=completed") == [done.id]
    assert ids("?state=cancelled") == [cancelled.id]
    assert ids("?state=delayed") == [delayed.id]
    assert ids("?state=active") == [active.id]
    assert ids("?state=waiting") == [waiting.id]
    assert ids("?owner=ann") == [waiting.id, cancelled.id, dead.id]  # newest first
    assert ids("?code=internal_error") == [delayed.id, dead.id]
    assert ids("?owner=bob&code=unsupported_format") == [failed.id]
    assert ids("?owner=nobody") == []

    (row,) = listed(http, admin, "?state=dead")["jobs"]
    assert (row["status"], row["state"], row["owner"], row["attempt"]) == (
        "failed",
        "dead",
        "ann",
        3,
    )
    assert row["error"]["code"] == "internal_error"
    assert [(a["attempt"], a["outcome"], a["consumer"]) for a in row["attempts"]] == [
        (1, "failed", "c1"),
        (2, "failed", "c1"),
        (3, "failed", "c1"),
    ]
    assert all(a["error"]["code"] == "internal_error" and a["endedAt"] for a in row["attempts"])
    assert row["consumer"] is None and row["leaseLeftMs"] is None and row["nextRunAt"] is None

    (row,) = listed(http, admin, "?state=active")["jobs"]
    assert (row["consumer"], row["progress"], row["attempt"]) == ("lambda:x", 40, 1)
    assert 0 < row["leaseLeftMs"] <= 30_000 and row["queueState"] == "active"
    assert [(a["outcome"], a["endedAt"]) for a in row["attempts"]] == [(None, None)]

    (row,) = listed(http, admin, "?state=delayed")["jobs"]
    due = datetime.fromisoformat(row["nextRunAt"].replace("Z", "+00:00"))
    assert timedelta(minutes=9) < due - datetime.now(UTC) <= timedelta(minutes=10, seconds=5)
    assert row["error"]["code"] == "internal_error" and row["queueState"] == "delayed"

    (row,) = listed(http, admin, "?state=waiting")["jobs"]
    assert (row["priority"], row["attempts"], row["progress"]) == (7, [], None)
    assert 0 <= row["ageSeconds"] < 60

    # Redis forgets everything: Postgres still tells each state, without lease or due times
    service.queue.delete_all()
    (row,) = listed(http, admin, "?state=delayed")["jobs"]
    assert row["nextRunAt"] is not None and row["queueState"] is None
    (row,) = listed(http, admin, "?state=active")["jobs"]
    assert (row["consumer"], row["leaseLeftMs"]) == ("lambda:x", None)


def test_lists_page_with_a_cursor_without_gaps_or_repeats(http: Any, service: Deps) -> None:
    admin = key_headers(service, Role.ADMIN)
    made = [submit(service, owner="pager").id for _ in range(7)]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        query = "?owner=pager&limit=3" + (f"&cursor={cursor}" if cursor else "")
        body = listed(http, admin, query)
        seen += [j["jobId"] for j in body["jobs"]]
        pages += 1
        cursor = body["next"]
        if cursor is None:
            break
    assert pages == 3 and seen == made[::-1]


# --- actions -------------------------------------------------------------------------


def test_retry_all_redrives_a_filter_fenced_and_audited_once(http: Any, service: Deps) -> None:
    admin = key_headers(service, Role.ADMIN, owner="ops-cleo")
    mine = [dead_job(service, owner="dora") for _ in range(2)]
    other = dead_job(service, owner="eve")
    at_once = failed_job(service, owner="dora")
    tokens = {job.id: job.lease_token for job in mine}
    body = {"state": "dead", "owner": "dora"}
    response = http.post("/api/admin/jobs/retry", headers=admin, body=json.dumps(body))
    assert response.status_code == 200, response.body
    answer = json_body(response)
    assert answer["retried"] == 2 and answer["more"] is False
    assert sorted(answer["jobIds"]) == sorted(job.id for job in mine)
    for job in mine:
        assert service.jobs.get(job.id).status == "queued"  # type: ignore[union-attr]
        assert service.queue.states([job.id]) == {job.id: "waiting"}
        assert service.jobs.start(job.id, tokens[job.id], 1) is None  # fenced
    assert service.jobs.get(other.id).status == "failed"  # type: ignore[union-attr]
    assert service.jobs.get(at_once.id).status == "failed"  # type: ignore[union-attr]
    (entry,) = audit_rows(service)
    assert (entry["actor"], entry["action"], entry["target"]) == (
        "ops-cleo",
        "job.retry_all",
        None,
    )
    assert entry["detail"] == {
        "filter": {"state": "dead", "owner": "dora"},
        "jobIds": answer["jobIds"],
    }
    assert drain(service).completed == 2
    for job in mine:
        done = service.jobs.get(job.id)
        assert done is not None and done.lease_token > tokens[job.id]  # type: ignore[operator]
        assert done.retries == 1
    # nothing left to redrive: no audit row for nothing
    response = http.post("/api/admin/jobs/retry", headers=admin, body=json.dumps(body))
    assert json_body(response) == {"retried": 0, "jobIds": [], "more": False}
    assert len(audit_rows(service)) == 1
    response = http.post(
        "/api/admin/jobs/retry",
        headers=admin,
        body=b'{"state": "failed", "code": "unsupported_format"}',
    )
    assert json_body(response)["jobIds"] == [at_once.id]


def test_retry_all_takes_a_bounded_batch(
    http: Any, service: Deps, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib import console

    monkeypatch.setattr(console, "REDRIVE_BATCH", 2)
    admin = key_headers(service, Role.ADMIN)
    made = [failed_job(service, owner="batch") for _ in range(3)]
    first = json_body(
        http.post("/api/admin/jobs/retry", headers=admin, body=b'{"state": "failed"}')
    )
    assert (first["retried"], first["more"]) == (2, True)
    assert first["jobIds"] == [made[2].id, made[1].id]  # newest first
    second = json_body(
        http.post("/api/admin/jobs/retry", headers=admin, body=b'{"state": "failed"}')
    )
    assert (second["jobIds"], second["more"]) == ([made[0].id], False)
    assert len(audit_rows(service)) == 2


def test_an_admin_cancels_and_deletes_another_owners_job_audited(http: Any, service: Deps) -> None:
    admin = key_headers(service, Role.ADMIN, owner="ops-finn")
    job = submit(service, owner="gus")
    response = http.delete(f"/api/admin/jobs/{job.id}", headers=admin)
    assert (response.status_code, json_body(response)["status"]) == (200, "cancelled")
    assert service.queue.states([job.id]) == {job.id: None}
    response = http.delete(f"/api/admin/jobs/{job.id}", headers=admin)
    assert json_body(response) == {"jobId": job.id, "status": "deleted"}
    assert service.jobs.get(job.id) is None and not service.storage.exists(job.file_key)
    assert http.delete(f"/api/admin/jobs/{job.id}", headers=admin).status_code == 404
    assert http.delete("/api/admin/jobs/not-a-uuid", headers=admin).status_code == 404
    assert [(e["actor"], e["action"], e["target"], e["detail"]) for e in audit_rows(service)] == [
        ("ops-finn", "job.cancel", job.id, {"owner": "gus"}),
        ("ops-finn", "job.delete", job.id, {"owner": "gus", "was": "cancelled"}),
    ]


# --- per-owner usage -----------------------------------------------------------------


def test_owners_show_usage_and_role_in_name_order(http: Any, service: Deps) -> None:
    admin = key_headers(service, Role.ADMIN, owner="a-admin")
    key_headers(service, Role.USER, owner="b-keyonly")
    first = submit(service, owner="c-busy")
    assert drain(service, max_jobs=1).completed == 1
    failed_job(service, owner="c-busy")
    submit(service, owner="c-busy")
    key_headers(service, Role.USER, owner="c-busy")
    body = json_body(http.get("/api/admin/owners", headers=admin))
    by_owner = {o["owner"]: o for o in body["owners"]}
    assert list(by_owner) == ["a-admin", "b-keyonly", "c-busy"] and body["next"] is None
    busy = by_owner["c-busy"]
    assert busy["role"] == "user"
    assert busy["jobs"] == {
        "queued": 1,
        "processing": 0,
        "completed": 1,
        "failed": 1,
        "cancelled": 0,
        "expired": 0,
    }
    assert busy["audioSeconds"] == pytest.approx(1.0, abs=0.01)
    assert (
        by_owner["a-admin"]["role"] == "admin" and by_owner["b-keyonly"]["lastSubmittedAt"] is None
    )
    # deleting a job lowers its status count, never the audio analysed
    key = KeyStore(service.jobs).create("c-busy")
    http.delete(f"/api/jobs/{first.id}", headers={"Authorization": f"Bearer {key}"})
    page = json_body(http.get("/api/admin/owners?limit=2", headers=admin))
    assert [o["owner"] for o in page["owners"]] == ["a-admin", "b-keyonly"]
    rest = json_body(http.get(f"/api/admin/owners?limit=2&cursor={page['next']}", headers=admin))
    (busy,) = rest["owners"]
    assert busy["jobs"]["completed"] == 0 and busy["audioSeconds"] == pytest.approx(1.0, abs=0.01)
    assert rest["next"] is None


def test_migration_0006_counts_the_jobs_already_there(database_url: str) -> None:
    from chalicelib.db import drop_schema
    from chalicelib.jobs import JobSpec, JobStore
    from tests.test_roles import _migrate_until

    schema = f"sc_console_{uuid.uuid4().hex[:8]}"
    store = JobStore(database_url, schema)
    try:
        _migrate_until(store, "0006")
        for owner in ("old-a", "old-a", "old-b"):
            store._rows(
                "INSERT INTO jobs (id, owner, mode, file_key, request_hash)"
                " VALUES (CAST(:id AS uuid), :owner, 'genre', 'k', 'h')",
                id=str(uuid.uuid4()),
                owner=owner,
            )
        store._rows("UPDATE jobs SET status = 'failed' WHERE owner = 'old-b'")
        assert "0006_console" in store.migrate()
        rows = store._rows("SELECT owner, queued, failed FROM owner_usage ORDER BY owner")
        assert [(r["owner"], r["queued"], r["failed"]) for r in rows] == [
            ("old-a", 2, 0),
            ("old-b", 0, 1),
        ]
        job, _ = store.create(JobSpec("old-b", "genre", None, "k2", None, None, None))
        assert store._rows("SELECT queued FROM owner_usage WHERE owner = 'old-b'")[0]["queued"] == 1
        assert job.owner == "old-b"
    finally:
        store.close()
        drop_schema(database_url, schema)


# --- audit in the action's own transaction ---------------------------------------------


@contextlib.contextmanager
def audit_refused(service: Deps) -> Iterator[None]:
    """Every INSERT INTO audit fails (a trigger raises) until exit: the audit step of an
    action breaks after its effect was written in the same transaction."""
    service.jobs._rows(
        "CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS"
        " $$ BEGIN RAISE EXCEPTION 'audit refused by the test'; END $$;"
        " CREATE TRIGGER refuse_audit BEFORE INSERT ON audit"
        " FOR EACH ROW EXECUTE FUNCTION refuse_audit()"
    )
    try:
        yield
    finally:
        service.jobs._rows("DROP TRIGGER refuse_audit ON audit; DROP FUNCTION refuse_audit()")


def check_audit_is_part_of_each_action(http: Any, service: Deps) -> None:
    """Each admin action, once with its audit refused (nothing happens, no row), once
    without (it happens, one row)."""
    admin = key_headers(service, Role.ADMIN, owner="ops-hal")
    failed = failed_job(service, owner="ivy")
    queued = submit(service, owner="ivy")
    service.queue.remove(queued.id)  # queued in Postgres only: the drains below leave it be
    actions = [
        ("POST", f"/api/admin/jobs/{failed.id}/retry", b"", "job.retry"),
        ("POST", "/api/admin/jobs/retry", b'{"state": "failed"}', "job.retry_all"),
        ("DELETE", f"/api/admin/jobs/{queued.id}", b"", "job.cancel"),
        ("DELETE", f"/api/admin/jobs/{queued.id}", b"", "job.delete"),
        ("POST", "/api/admin/queue/pause", b"", "queue.pause"),
        ("POST", "/api/admin/queue/resume", b"", "queue.resume"),
    ]
    for method, path, body, action in actions:
        before = (
            service.jobs.get(failed.id),
            service.jobs.get(queued.id),
            service.queue.is_paused(),
            service.queue.states([failed.id, queued.id]),
        )
        with audit_refused(service):
            response = http.request(method, path, headers=admin, body=body)
        assert response.status_code == 503, (action, response.body)
        after = (
            service.jobs.get(failed.id),
            service.jobs.get(queued.id),
            service.queue.is_paused(),
            service.queue.states([failed.id, queued.id]),
        )
        assert after == before, action  # nothing happened
        assert [e["action"] for e in audit_rows(service)] == [
            a for _, _, _, a in actions[: actions.index((method, path, body, action))]
        ]
        response = http.request(method, path, headers=admin, body=body)
        assert response.status_code in (200, 202), (action, response.body)
        assert audit_rows(service)[-1]["action"] == action
        if action == "job.retry":  # the retry-all that follows needs a failed job again
            assert drain(service, max_jobs=1).failed == 1
    assert service.jobs.get(queued.id) is None and not service.queue.is_paused()


def test_a_failed_admin_action_leaves_no_audit_row_and_a_done_one_always_has_one(
    http: Any, service: Deps
) -> None:
    check_audit_is_part_of_each_action(http, service)


def test_the_same_through_pgbouncer(
    make_env: Callable[..., dict[str, str]], pgbouncer_url: str, tmp_path: Path
) -> None:
    """Transaction pooling: the audit row and the action share one server transaction."""
    env = make_env(pgbouncer_url, SOUNDCHECK_LEASE_SECONDS=str(LEASE_S))
    with installed(env, backoff_ms=20) as service, app_http(tmp_path) as http:
        check_audit_is_part_of_each_action(http, service)
        admin = key_headers(service, Role.ADMIN)
        # the lists and counts read through the pooler too: the redriven job waits again
        (row,) = listed(http, admin, "?owner=ivy")["jobs"]
        assert (row["state"], row["retries"], len(row["attempts"])) == ("waiting", 2, 2)
        counts = json_body(http.get("/api/admin/overview", headers=admin))["counts"]
        assert (counts["queued"], counts["failed"], counts["cancelled"]) == (1, 0, 0)


def test_a_pause_redis_refuses_leaves_no_audit_row(http: Any, service: Deps) -> None:
    from chalicelib.deps import redis_client
    from chalicelib.queue import Queue
    from tests.pipeline_support import closed_port

    admin = key_headers(service, Role.ADMIN)
    working = service.queue
    service.queue = Queue(redis_client(f"redis://127.0.0.1:{closed_port()}/0"), working.name)
    try:
        for route in ("pause", "resume"):
            response = http.post(f"/api/admin/queue/{route}", headers=admin, body=b"")
            assert response.status_code == 503, response.body
    finally:
        service.queue = working
    assert audit_rows(service) == [] and not working.is_paused()


def test_an_expired_job_is_a_state_of_its_own(http: Any, service: Deps) -> None:
    """Retention deleted its result (status `expired`): listed and counted as such."""
    admin = key_headers(service, Role.ADMIN)
    job = submit(service)
    assert drain(service, max_jobs=1).completed == 1
    service.jobs._rows(
        "UPDATE jobs SET status = 'expired', result = NULL WHERE id = CAST(:id AS uuid)", id=job.id
    )
    (row,) = listed(http, admin, "?state=expired")["jobs"]
    assert (row["jobId"], row["state"], row["status"]) == (job.id, "expired", "expired")
    counts = json_body(http.get("/api/admin/overview", headers=admin))["counts"]
    assert (counts["completed"], counts["expired"]) == (0, 1)
