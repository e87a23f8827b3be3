"""DELETE /api/jobs/{id} (issue 10): cancel a queued or processing job, delete a finished one.

Real Redis, Postgres, a real directory store and the real consumer: a cancel
during processing must write nothing (fenced by status in Postgres, and the
queue refuses the consumer's next lease renewal).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from chalice.test import Client

from app import app
from chalicelib import consumer, deps
from chalicelib.deps import Deps
from chalicelib.jobs import Job, JobSpec
from chalicelib.keys import KeyStore, Role
from tests.pipeline_support import (
    build_deps,
    json_body,
    log_events,
    settings_for,
)
from tests.test_consumer import LEASE_S, Release, blocking, drain, submit
from tests.waiting import wait_until


@pytest.fixture
def service(make_env: Callable[..., dict[str, str]], service_database_url: str) -> Iterator[Deps]:
    env = make_env(service_database_url, SOUNDCHECK_LEASE_SECONDS=str(LEASE_S))
    d = build_deps(settings_for(env), backoff_ms=20)
    yield d
    d.close()


@pytest.fixture
def http(service: Deps, tmp_path: Path) -> Iterator[Any]:
    previous = deps.override(service)
    with Client(app, project_dir=str(tmp_path)) as client:
        yield client.http
    deps.override(previous)


def delete(http: Any, service: Deps, job: Job, owner: str | None = None) -> Any:
    key = service.jobs.create_api_key(owner or job.owner)
    return http.delete(f"/api/jobs/{job.id}", headers={"Authorization": f"Bearer {key}"})


def test_a_queued_job_is_cancelled_and_leaves_the_queue(http: Any, service: Deps) -> None:
    job = submit(service)
    response = delete(http, service, job)
    assert response.status_code == 200, response.body
    assert json_body(response)["status"] == "cancelled"
    assert service.jobs.get(job.id).status == "cancelled"  # type: ignore[union-attr]
    assert service.queue.states([job.id]) == {job.id: None}
    assert drain(service).completed == 0  # nothing left to run
    assert service.storage.exists(job.file_key)  # a cancelled job keeps its upload ...
    assert delete(http, service, job).status_code == 200  # ... until it is deleted
    assert service.jobs.get(job.id) is None and not service.storage.exists(job.file_key)


def test_another_owner_gets_404_and_changes_nothing(http: Any, service: Deps) -> None:
    job = submit(service)
    response = delete(http, service, job, owner=f"other-{uuid.uuid4().hex[:8]}")
    assert response.status_code == 404 and json_body(response)["error"]["code"] == "not_found"
    assert service.jobs.get(job.id).status == "queued"  # type: ignore[union-attr]
    assert service.queue.states([job.id]) == {job.id: "waiting"}
    for bad in ("not-a-uuid", str(uuid.uuid4())):
        key = service.jobs.create_api_key(job.owner)
        response = http.delete(f"/api/jobs/{bad}", headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == 404


def test_a_finished_job_is_deleted_with_its_upload_and_result(http: Any, service: Deps) -> None:
    job = submit(service)
    assert drain(service).completed == 1
    assert service.jobs.get(job.id).result is not None  # type: ignore[union-attr]
    response = delete(http, service, job)
    assert (response.status_code, json_body(response)["status"]) == (200, "deleted")
    assert service.jobs.get(job.id) is None
    assert not service.storage.exists(job.file_key)
    assert delete(http, service, job).status_code == 404  # gone is gone


def test_an_upload_another_job_still_names_is_kept(http: Any, service: Deps) -> None:
    """The same fileKey submitted twice: deleting one job must not break the other."""
    first = submit(service)
    again, _ = service.jobs.create(
        JobSpec(
            owner=first.owner,
            mode="genre",
            genre=None,
            file_key=first.file_key,
            file_name="mix.wav",
            reference_file_key=None,
            reference_job_id=None,
        )
    )
    assert delete(http, service, first).status_code == 200  # cancelled
    assert delete(http, service, first).status_code == 200  # deleted
    assert service.storage.exists(first.file_key)
    service.queue.enqueue(again.id)
    assert drain(service).completed == 1


@pytest.mark.parametrize("by", ["owner", "admin"])
def test_a_cancel_during_processing_writes_nothing(
    http: Any, service: Deps, capsys: pytest.CaptureFixture[str], by: str
) -> None:
    """The owner's DELETE /api/jobs/{id} and an admin's DELETE /api/admin/jobs/{id} alike."""
    job = submit(service)
    release = Release()  # seen by the job's child process (an Event is not)
    outcome: list[str] = []
    (claim,) = service.queue.claim("A", int(LEASE_S * 1000))
    thread = threading.Thread(
        target=lambda: outcome.append(
            consumer.process_claim(service, claim, "A", blocking(release))
        )
    )
    thread.start()
    wait_until(lambda: service.jobs.get(job.id).status == "processing", what="A to start")  # type: ignore[union-attr]
    if by == "owner":
        assert delete(http, service, job).status_code == 200
    else:
        admin = KeyStore(service.jobs).create("ops", role=Role.ADMIN)
        headers = {"Authorization": f"Bearer {admin}"}
        assert http.delete(f"/api/admin/jobs/{job.id}", headers=headers).status_code == 200
    wait_until(
        lambda: any(e["event"] == "lease_lost" for e in log_events(capsys.readouterr().out)),
        timeout=30,  # a lease renewal is due within LEASE_S; a loaded machine takes longer
        what="A's next lease renewal to be refused",
    )
    release.set()
    thread.join(20)
    assert outcome == ["lost"]
    after = service.jobs.get(job.id)
    assert after is not None
    assert (after.status, after.result, after.error_code) == ("cancelled", None, None)
    attempts = service.jobs._rows("SELECT outcome FROM job_attempts WHERE job_id = :id", id=job.id)
    assert attempts == [{"outcome": "cancelled"}]  # its one delivery, ended by the cancel


def test_postgres_alone_fences_a_cancelled_job(service: Deps) -> None:
    """The queue never heard of the cancel (Redis was down): complete() still refuses."""
    job = submit(service)
    release = Release()  # seen by the job's child process (an Event is not)
    outcome: list[str] = []
    (claim,) = service.queue.claim("A", int(LEASE_S * 1000))
    thread = threading.Thread(
        target=lambda: outcome.append(
            consumer.process_claim(service, claim, "A", blocking(release))
        )
    )
    thread.start()
    wait_until(lambda: service.jobs.get(job.id).progress == 10, what="A to start")  # type: ignore[union-attr]
    assert service.jobs.cancel(job.id, job.owner) is not None  # Postgres only
    assert not service.jobs.set_progress(job.id, claim.token, 70)
    release.set()
    thread.join(20)
    assert outcome == ["fenced"]
    after = service.jobs.get(job.id)
    assert after is not None and (after.status, after.result, after.progress) == (
        "cancelled",
        None,
        10,
    )
    assert service.jobs.start(job.id, claim.token + 100, 2) is None  # never runs again
    assert not service.jobs.fail(job.id, claim.token, "x", "y", final=True)


def test_a_cancelled_job_is_listed_and_filtered(http: Any, service: Deps) -> None:
    job = submit(service)
    delete(http, service, job)
    key = service.jobs.create_api_key(job.owner)
    response = http.get("/api/jobs?status=cancelled", headers={"Authorization": f"Bearer {key}"})
    assert [j["jobId"] for j in json_body(response)["jobs"]] == [job.id]
