"""Retention (chalicelib/retention.py) and `soundcheck owner purge` (chalicelib/purge.py).

Real Redis, Postgres and a real directory store (S3 through moto's server). Time is
moved by writing a job's end (`completed_at`) and a file's mtime, never by sleeping.
Each test checks what must go AND what must stay: recent jobs, unfinished jobs and
other owners' files.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from chalice.local import LambdaContext

from chalicelib import consumer, purge, retention
from chalicelib.deps import Deps
from chalicelib.jobs import Job, JobSpec, UploadsExpired
from chalicelib.keys import KeyStore, Role
from chalicelib.shares import ShareStore
from chalicelib.storage import LocalStorage, S3Storage, new_key, owner_id
from chalicelib.webhooks.store import WebhookStore
from tests.pipeline_support import (
    app_http,
    build_deps,
    installed,
    json_body,
    log_events,
    new_owner,
    put_upload,
    settings_for,
    wav_bytes,
)
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[1]
RESULT = {"schemaVersion": 2, "comparison": {"score": 87}, "waveform": [0.1, 0.2]}
DAY = 86400.0


@pytest.fixture
def env(make_env: Callable[..., dict[str, str]], service_database_url: str) -> dict[str, str]:
    return make_env(
        service_database_url,
        SOUNDCHECK_UPLOAD_RETENTION_DAYS="30",
        SOUNDCHECK_RESULT_RETENTION_DAYS="365",
    )


@pytest.fixture
def service(env: dict[str, str]) -> Iterator[Deps]:
    d = build_deps(settings_for(env))
    yield d
    d.close()


def make_job(
    service: Deps,
    owner: str | None = None,
    *,
    status: str = "completed",
    ended_days_ago: float | None = 0.0,
    file_key: str | None = None,
    reference: bool = False,
) -> Job:
    """A job in `status` that ended `ended_days_ago` (None: not ended), its upload stored."""
    owner = owner or new_owner()
    key = file_key or put_upload(service, owner, b"RIFF-audio")
    ref = put_upload(service, owner, b"RIFF-ref", "ref.wav") if reference else None
    job, _ = service.jobs.create(
        JobSpec(
            owner=owner,
            mode="reference" if reference else "genre",
            genre=None,
            file_key=key,
            file_name="mix.wav",
            reference_file_key=ref,
            reference_job_id=None,
        )
    )
    service.queue.enqueue(job.id, owner=owner)
    service.jobs._rows(
        "UPDATE jobs SET status = :status, result = CAST(:result AS jsonb),"
        " error_code = CASE WHEN :status = 'failed' THEN 'corrupt_file' END,"
        " error_message = CASE WHEN :status = 'failed' THEN 'damaged' END,"
        " completed_at = CASE WHEN CAST(:days AS float8) IS NULL THEN NULL"
        "   ELSE now() - make_interval(secs => CAST(:days AS float8) * 86400) END,"
        " created_at = now() - interval '1000 days'"
        " WHERE id = CAST(:id AS uuid)",
        id=job.id,
        status=status,
        result=json.dumps(RESULT) if status == "completed" else None,
        days=ended_days_ago,
    )
    if status not in ("queued", "processing"):
        service.queue.remove(job.id)
    found = service.jobs.get(job.id)
    assert found is not None
    return found


def ended(service: Deps, job: Job, days_ago: float) -> None:
    """Move a job's end `days_ago` into the past."""
    service.jobs._rows(
        "UPDATE jobs SET completed_at = now() - make_interval(secs => :s)"
        " WHERE id = CAST(:id AS uuid)",
        s=days_ago * DAY,
        id=job.id,
    )


def age_file(service: Deps, key: str, days: float) -> Path:
    storage = service.storage
    assert isinstance(storage, LocalStorage)
    path = storage._path(key)
    then = time.time() - days * DAY
    os.utime(path, (then, then))
    return path


def get_api(http: Any, service: Deps, job: Job) -> tuple[int, dict[str, Any]]:
    key = service.jobs.create_api_key(job.owner)
    response = http.get(f"/api/jobs/{job.id}", headers={"Authorization": f"Bearer {key}"})
    return response.status_code, json_body(response)


# --- results ----------------------------------------------------------------------------


def test_results_expire_after_m_days_and_nothing_else_changes(
    service: Deps, env: dict[str, str], tmp_path: Path
) -> None:
    shares = ShareStore(service.jobs)
    old = make_job(service)
    _, old_token = shares.create(old.id, old.owner)
    recent = make_job(service, old.owner)
    _, recent_token = shares.create(recent.id, recent.owner)
    ended(service, old, 366)
    ended(service, recent, 364)
    failed = make_job(service, status="failed", ended_days_ago=20)
    queued = make_job(service, status="queued", ended_days_ago=None)
    processing = make_job(service, status="processing", ended_days_ago=None)

    report = retention.sweep(service)
    assert (report.results, report.shares, report.finished) == (1, 1, True)
    assert report.upload_jobs == 2  # old and recent: both ended over 30 days ago

    gone = service.jobs.get(old.id)
    assert gone is not None and gone.status == "expired" and gone.result is None
    assert gone.error_code == "result_expired" and gone.result_expired_at is not None
    assert not service.storage.exists(old.file_key)  # 366 days: past the uploads' 30 too
    kept = service.jobs.get(recent.id)
    assert kept is not None and (kept.status, kept.result) == ("completed", RESULT)
    for job, status in ((failed, "failed"), (queued, "queued"), (processing, "processing")):
        still = service.jobs.get(job.id)
        assert still is not None and still.status == status and still.result_expired_at is None
    assert shares.open(recent_token)["result"] == RESULT
    usage = service.jobs._rows(
        "SELECT completed, expired FROM owner_usage WHERE owner = :o", o=old.owner
    )
    assert usage == [{"completed": 1, "expired": 1}]  # the console's counts follow
    with pytest.raises(Exception, match="invalid or has expired"):
        shares.open(old_token)
    assert shares.list(old.id, old.owner) == []  # the link itself is deleted

    with installed(env), app_http(tmp_path) as http:
        status, body = get_api(http, service, old)
        assert status == 200
        assert body["status"] == "expired" and "result" not in body
        assert body["error"]["code"] == "result_expired"
        assert "365 days" in body["error"]["message"] and body["resultExpiredAt"].endswith("Z")
        key = service.jobs.create_api_key(old.owner)
        listed = json_body(http.get("/api/jobs", headers={"Authorization": f"Bearer {key}"}))
        rows = {row["jobId"]: row for row in listed["jobs"]}
        assert rows[old.id]["score"] is None and rows[recent.id]["score"] == 87
        expired = http.get("/api/jobs?status=expired", headers={"Authorization": f"Bearer {key}"})
        assert [row["jobId"] for row in json_body(expired)["jobs"]] == [old.id]
        # an expired job can still be deleted by its owner
        deleted = http.delete(f"/api/jobs/{old.id}", headers={"Authorization": f"Bearer {key}"})
        assert (deleted.status_code, json_body(deleted)["status"]) == (200, "deleted")

    assert retention.sweep(service) == retention.RetentionReport()  # nothing left to do


# --- uploads ----------------------------------------------------------------------------


def test_uploads_go_n_days_after_the_job_ended_main_and_reference(
    service: Deps, env: dict[str, str], tmp_path: Path
) -> None:
    owner = new_owner()
    old = make_job(service, owner, ended_days_ago=31, reference=True)
    old_failed = make_job(service, owner, status="failed", ended_days_ago=31)
    old_cancelled = make_job(service, owner, status="cancelled", ended_days_ago=45)
    recent = make_job(service, owner, ended_days_ago=29, reference=True)
    queued = make_job(service, owner, status="queued", ended_days_ago=None)
    processing = make_job(service, owner, status="processing", ended_days_ago=None)
    other = make_job(service, ended_days_ago=1)  # another owner's recent job
    for job in (queued, processing):  # uploaded long ago; still waiting: never touched
        age_file(service, job.file_key, 400)

    report = retention.sweep(service)
    assert (report.upload_jobs, report.uploads, report.results) == (3, 4, 0)

    for job in (old, old_failed, old_cancelled):
        assert not service.storage.exists(job.file_key)
        swept = service.jobs.get(job.id)
        assert swept is not None and swept.uploads_expired_at is not None
        assert swept.status == job.status  # the outcome stays readable
    assert old.reference_file_key and not service.storage.exists(old.reference_file_key)
    assert service.jobs.get(old.id).result == RESULT  # type: ignore[union-attr]
    for job in (recent, queued, processing, other):
        assert service.storage.exists(job.file_key)
        assert service.jobs.get(job.id).uploads_expired_at is None  # type: ignore[union-attr]
    assert recent.reference_file_key and service.storage.exists(recent.reference_file_key)

    with pytest.raises(UploadsExpired):
        service.jobs.retry(old_failed.id, owner)
    with installed(env), app_http(tmp_path) as http:
        status, body = get_api(http, service, old)
        assert status == 200 and body["status"] == "completed" and body["result"] == RESULT
        assert body["uploadsExpiredAt"].endswith("Z")
        status, body = get_api(http, service, recent)
        assert "uploadsExpiredAt" not in body
        key = service.jobs.create_api_key(owner)
        retried = http.post(
            f"/api/jobs/{old_failed.id}/retry", headers={"Authorization": f"Bearer {key}"}
        )
        assert retried.status_code == 409
        assert json_body(retried)["error"]["code"] == "uploads_expired"

    again = retention.sweep(service)
    assert (again.upload_jobs, again.uploads) == (0, 0)


def test_an_upload_the_store_will_not_delete_does_not_stop_retention(
    service: Deps, capsys: pytest.CaptureFixture[str]
) -> None:
    """One file that cannot be deleted rolled the whole batch back, and every later sweep
    took the same oldest rows again: no upload ever expired after it."""
    stuck = make_job(service, ended_days_ago=40)
    others = [make_job(service, ended_days_ago=35) for _ in range(2)]
    path = age_file(service, stuck.file_key, 400)
    path.unlink()
    (path / "held").mkdir(parents=True)  # a folder in its place: unlink refuses it

    report = retention.sweep(service)
    assert (report.upload_jobs, report.uploads) == (3, 2)
    for job in (stuck, *others):
        assert service.jobs.get(job.id).uploads_expired_at is not None  # type: ignore[union-attr]
    assert not any(service.storage.exists(job.file_key) for job in others)
    (failed,) = [
        e for e in log_events(capsys.readouterr().out) if e["event"] == "retention_delete_failed"
    ]
    assert failed["key"] == stuck.file_key


def test_an_upload_a_kept_job_still_names_stays_until_that_job_expires(service: Deps) -> None:
    """The same fileKey submitted twice: it goes with the last job that names it."""
    first = make_job(service, ended_days_ago=40)
    second = make_job(service, first.owner, ended_days_ago=5, file_key=first.file_key)
    assert retention.sweep(service).upload_jobs == 1
    assert service.storage.exists(first.file_key)
    assert service.jobs.get(first.id).uploads_expired_at is not None  # type: ignore[union-attr]
    ended(service, second, 31)
    report = retention.sweep(service)
    assert (report.upload_jobs, report.uploads) == (1, 1)
    assert not service.storage.exists(first.file_key)


def test_zero_keeps_everything_forever(env: dict[str, str]) -> None:
    d = build_deps(
        settings_for(
            env | {"SOUNDCHECK_UPLOAD_RETENTION_DAYS": "0", "SOUNDCHECK_RESULT_RETENTION_DAYS": "0"}
        )
    )
    try:
        job = make_job(d, ended_days_ago=20_000)
        orphan = put_upload(d, new_owner(), b"x")
        age_file(d, orphan, 20_000)
        assert retention.sweep(d) == retention.RetentionReport()
        kept = d.jobs.get(job.id)
        assert kept is not None and kept.status == "completed" and d.storage.exists(job.file_key)
        assert d.storage.exists(orphan)
    finally:
        d.close()


# --- orphans on the local store ----------------------------------------------------------


def test_orphan_uploads_older_than_n_days_are_swept_from_the_local_store(
    service: Deps,
) -> None:
    owner = new_owner()
    never_submitted = put_upload(service, owner, b"old")
    fresh = put_upload(service, owner, b"new")
    queued = make_job(service, owner, status="queued", ended_days_ago=None)
    kept_by_recent = make_job(service, owner, ended_days_ago=2)
    deleted_row = make_job(service, owner, ended_days_ago=1)
    service.jobs._rows("DELETE FROM jobs WHERE id = CAST(:id AS uuid)", id=deleted_row.id)
    for key in (never_submitted, queued.file_key, kept_by_recent.file_key, deleted_row.file_key):
        age_file(service, key, 31)
    storage = service.storage
    assert isinstance(storage, LocalStorage)
    folder = storage._path(fresh).parent
    part = folder / ".part-abc123"
    part.write_bytes(b"half")
    os.utime(part, (time.time() - 31 * DAY,) * 2)
    stray = storage.root / "uploads" / "not-an-owner" / "x" / "notes.txt"
    stray.parent.mkdir(parents=True)
    stray.write_text("someone's file")
    os.utime(stray, (time.time() - 400 * DAY,) * 2)

    report = retention.sweep(service)
    assert report.orphans == 3  # the never-submitted upload, the deleted job's, the .part
    assert not storage.exists(never_submitted) and not storage.exists(deleted_row.file_key)
    assert not part.exists()
    assert not storage._path(never_submitted).parent.exists()  # its folder went with it
    for key in (fresh, queued.file_key, kept_by_recent.file_key):
        assert storage.exists(key)
    assert stray.exists()
    assert retention.sweep(service).orphans == 0


def test_the_orphan_pass_resumes_where_its_time_ran_out(service: Deps) -> None:
    storage = service.storage
    assert isinstance(storage, LocalStorage)
    keys = [put_upload(service, new_owner(), b"x") for _ in range(4)]
    for key in keys:
        age_file(service, key, 40)
    calls = iter([False, True] * 10)  # each pass may finish one owner folder, then stops
    passes = 0
    while any(storage.exists(k) for k in keys):
        passes += 1
        assert passes <= 8, "the orphan pass never got through the store"
        retention.sweep_orphans(service.jobs, storage, 30, lambda: next(calls))
    assert passes >= 2


# --- bounded, idempotent, concurrent ----------------------------------------------------


def test_a_sweep_stops_at_its_budget_and_the_next_one_goes_on(service: Deps) -> None:
    jobs = [make_job(service, ended_days_ago=400) for _ in range(5)]
    cut = retention.sweep(service, batch=2, budget_s=0.0)
    assert (cut.results, cut.finished) == (2, False)
    done = 2
    while True:
        report = retention.sweep(service, batch=2, budget_s=0.0)
        done += report.results
        if report.finished:
            break
    assert done == 5
    assert {service.jobs.get(j.id).status for j in jobs} == {"expired"}  # type: ignore[union-attr]
    assert all(not service.storage.exists(j.file_key) for j in jobs)


def sweep_at_once(
    env: dict[str, str], *, sweepers: int, batch: int, timeout_s: float
) -> tuple[list[retention.RetentionReport], list[BaseException]]:
    """Run `sweepers` sweeps at the same instant, each with its own connections
    (as separate sweeper invocations have); their reports and what they raised."""
    others = [build_deps(settings_for(env)) for _ in range(sweepers)]
    reports: list[retention.RetentionReport] = []
    errors: list[BaseException] = []
    start = threading.Barrier(sweepers)

    def run(d: Deps) -> None:
        start.wait()
        try:
            reports.append(retention.sweep(d, batch=batch))
        except BaseException as exc:
            errors.append(exc)

    try:
        threads = [threading.Thread(target=run, args=(d,)) for d in others]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout_s)
    finally:
        for d in others:
            d.close()
    return reports, errors


def test_two_sweepers_at_once_take_each_job_once(env: dict[str, str], service: Deps) -> None:
    jobs = [make_job(service, ended_days_ago=400) for _ in range(40)]
    reports, errors = sweep_at_once(env, sweepers=2, batch=3, timeout_s=60)
    assert errors == []
    assert sum(r.results for r in reports) == 40  # none twice, none left out
    assert sum(r.upload_jobs for r in reports) == 40
    assert sum(r.uploads for r in reports) == 40
    assert all(not service.storage.exists(j.file_key) for j in jobs)


def test_the_scheduled_sweeper_runs_retention(
    service: Deps, capsys: pytest.CaptureFixture[str]
) -> None:
    job = make_job(service, ended_days_ago=400)
    # retention comes last and only with time left over: none here
    short = LambdaContext("sweeper", 256, max_runtime_ms=consumer.LAMBDA_MARGIN_MS)
    assert consumer.run_sweeper(service, short)["retention"] is None
    assert service.jobs.get(job.id).status == "completed"  # type: ignore[union-attr]
    answer = consumer.run_sweeper(service, LambdaContext("sweeper", 256, max_runtime_ms=60_000))
    assert answer["retention"]["results"] == 1 and answer["retention"]["uploads"] == 1
    assert service.jobs.get(job.id).status == "expired"  # type: ignore[union-attr]
    lines = [e for e in log_events(capsys.readouterr().out) if e.get("event") == "retention"]
    assert lines and lines[0]["results"] == 1


def test_the_sweep_is_logged_not_raised_when_postgres_is_away(
    env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    broken = build_deps(settings_for(env | {"DATABASE_URL": "postgresql://u@127.0.0.1:9/x"}))
    try:
        assert retention.sweep_logged(broken, "w1") is None
    finally:
        broken.close()
    events = [e["event"] for e in log_events(capsys.readouterr().out)]
    assert "retention_error" in events


def test_a_worker_stops_at_once_while_its_retention_sweep_runs(service: Deps) -> None:
    """Retention ran inside the worker's claim loop: for up to BUDGET_S the worker
    claimed nothing and a SIGTERM waited. It runs in a thread of its own now."""
    from chalicelib.local import worker

    entered, hold = threading.Event(), threading.Event()
    real = retention.sweep

    def slow_sweep(deps: Deps, **kwargs: Any) -> retention.RetentionReport:
        entered.set()
        hold.wait(30)
        return real(deps, **kwargs)

    stop = threading.Event()
    retention.sweep = slow_sweep  # type: ignore[assignment]
    try:
        thread = threading.Thread(
            target=worker.run, args=(service, stop), kwargs={"sweep_seconds": 0.05}, daemon=True
        )
        thread.start()
        assert entered.wait(30), "the worker never started its retention sweep"
        job = make_job(service, status="queued", ended_days_ago=None)  # claimed meanwhile
        wait_until(
            lambda: service.jobs.get(job.id).status != "queued",  # type: ignore[union-attr]
            timeout=30,
            what="the worker to claim a job while retention runs",
        )
        stopped_at = time.monotonic()
        stop.set()
        thread.join(10)
        assert not thread.is_alive() and time.monotonic() - stopped_at < 5
    finally:
        hold.set()
        retention.sweep = real  # type: ignore[assignment]


# --- purge ------------------------------------------------------------------------------


def owner_with_everything(service: Deps) -> tuple[str, list[Job], list[str]]:
    """An owner with a completed job (shared), a failed one, a queued one, keys, a webhook
    secret and an upload never submitted."""
    owner = new_owner()
    done = make_job(service, owner, ended_days_ago=1, reference=True)
    ShareStore(service.jobs).create(done.id, owner)
    jobs = [
        done,
        make_job(service, owner, status="failed", ended_days_ago=3),
        make_job(service, owner, status="queued", ended_days_ago=None),
    ]
    keys = [service.jobs.create_api_key(owner) for _ in range(2)]
    WebhookStore(service.jobs).secret(owner)
    put_upload(service, owner, b"never submitted")
    return owner, jobs, keys


def state_of(service: Deps, owner: str, jobs: list[Job]) -> dict[str, Any]:
    storage = service.storage
    assert isinstance(storage, LocalStorage)
    folder = storage.root / "uploads" / owner_id(owner)
    return {
        "holdings": purge.holdings(service.jobs, owner).to_dict(),
        "secrets": service.jobs._rows(
            "SELECT count(*) AS n FROM webhook_secrets WHERE owner = :o", o=owner
        )[0]["n"],
        "usage": service.jobs._rows(
            "SELECT count(*) AS n FROM owner_usage WHERE owner = :o", o=owner
        )[0]["n"],
        "queued": service.queue.states([j.id for j in jobs]),
        "files": sorted(p.name for p in folder.rglob("*") if p.is_file()),
    }


def test_purge_removes_everything_of_one_owner_and_nothing_of_another(service: Deps) -> None:
    owner, jobs, keys = owner_with_everything(service)
    other, other_jobs, other_keys = owner_with_everything(service)
    before_other = state_of(service, other, other_jobs)
    assert before_other["holdings"] == {"jobs": 3, "shares": 1, "keys": 2, "admin_keys": 0}

    report = purge.purge_owner(service, owner, "test")
    assert report.to_dict() == {
        "owner": owner,
        "jobs": 3,
        "shares": 1,
        "keys": 2,
        "webhook_secrets": 1,
        "queue_entries": 1,  # the queued job; the finished ones had left the queue
        "uploads": 5,  # 3 mains, a reference, the never-submitted one
    }
    after = state_of(service, owner, jobs)
    assert after["holdings"] == {"jobs": 0, "shares": 0, "keys": 0, "admin_keys": 0}
    assert after["secrets"] == 0 and after["usage"] == 0
    assert set(after["queued"].values()) == {None} and after["files"] == []
    assert all(service.jobs.get(j.id) is None for j in jobs)
    assert all(service.jobs.owner_for_key(k) is None for k in keys)

    assert state_of(service, other, other_jobs) == before_other
    assert all(service.jobs.owner_for_key(k) == other for k in other_keys)
    audit = service.jobs._rows("SELECT actor, action, target, detail FROM audit")
    assert [(a["actor"], a["action"], a["target"]) for a in audit] == [
        ("test", "owner.purge", owner)
    ]

    again = purge.purge_owner(service, owner, "test")  # idempotent
    assert again == purge.PurgeReport(owner)


def test_a_purge_cut_short_is_finished_by_running_it_again(
    service: Deps, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner, jobs, keys = owner_with_everything(service)
    # 1. crashes while taking jobs off the queue: no row deleted yet, keys revoked
    calls = {"n": 0}
    remove = service.queue.remove

    def remove_then_crash(job_id: str) -> bool:
        calls["n"] += 1
        if calls["n"] == 2:
            raise ConnectionError("redis went away")
        return remove(job_id)

    monkeypatch.setattr(service.queue, "remove", remove_then_crash)
    with pytest.raises(ConnectionError):
        purge.purge_owner(service, owner, "test")
    assert purge.holdings(service.jobs, owner).jobs == 3
    assert all(service.jobs.owner_for_key(k) is None for k in keys)  # no new jobs meanwhile
    monkeypatch.setattr(service.queue, "remove", remove)
    # 2. crashes after the rows went, before the files did
    storage = service.storage

    def crash(owner: str) -> int:
        raise OSError("disk went away")

    monkeypatch.setattr(storage, "delete_owner", crash)
    with pytest.raises(OSError):
        purge.purge_owner(service, owner, "test")
    assert purge.holdings(service.jobs, owner).to_dict() == {
        "jobs": 0,
        "shares": 0,
        "keys": 0,
        "admin_keys": 0,
    }
    assert state_of(service, owner, jobs)["files"]  # the files are still there
    monkeypatch.undo()
    # 3. run again: the files go
    report = purge.purge_owner(service, owner, "test")
    assert (report.jobs, report.uploads) == (0, 5)
    assert state_of(service, owner, jobs)["files"] == []


def cli(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "chalicelib.cli", *args],
        cwd=ROOT,
        env={"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"), **env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_owner_purge_command_needs_yes_without_a_terminal(
    service: Deps, env: dict[str, str]
) -> None:
    owner, _, _ = owner_with_everything(service)
    refused = cli(env, "owner", "purge", owner, stdin="")
    assert refused.returncode == 2 and "--yes" in refused.stderr
    assert purge.holdings(service.jobs, owner).jobs == 3  # nothing removed, no input read

    done = cli(env, "owner", "purge", owner, "--yes")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        f"purged owner {owner!r}: 3 jobs, 1 share links, 2 API keys, 1 webhook secrets, "
        "1 queue entries, 5 uploaded files"
    )
    assert done.stderr == ""
    again = cli(env, "owner", "purge", owner, "--yes", "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["jobs"] == 0
    assert "has no jobs, share links or API keys (check the spelling)" in again.stderr


def test_owner_purge_warns_before_it_locks_out_an_admin(service: Deps, env: dict[str, str]) -> None:
    """Purging the local stack's own owner (`dev`, an admin) silently revoked the key the
    stack, the CLI and the console use; it now says so, on a terminal or with --yes."""
    admin = f"ops-{new_owner()}"
    KeyStore(service.jobs).create(admin, role=Role.ADMIN)
    KeyStore(service.jobs).create(admin)
    assert purge.holdings(service.jobs, admin).admin_keys == 1
    done = cli(env, "owner", "purge", admin, "--yes")
    assert done.returncode == 0, done.stderr
    assert f"warning: 1 of owner {admin!r}'s keys are admin keys" in done.stderr


@pytest.mark.parametrize("command", [("owner", "purge"), ("keys", "create"), ("keys", "list")])
def test_an_owner_argument_that_is_not_text_is_a_usage_error(
    env: dict[str, str], command: tuple[str, ...]
) -> None:
    """Bytes that are not UTF-8 reach Python as lone surrogates, which the database
    driver cannot encode: a usage error (exit 2), never a traceback."""
    for raw in (b"\xff", b"caf\xe9"):
        owner = os.fsdecode(raw)
        args = [*command, "--owner", owner] if command[1] == "list" else [*command, owner]
        done = cli(env, *args, "--yes") if command[1] == "purge" else cli(env, *args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr and "owner must be text" in done.stderr


def test_retention_commands(service: Deps, env: dict[str, str]) -> None:
    job = make_job(service, ended_days_ago=400)
    swept = cli(env, "retention", "sweep")
    assert swept.returncode == 0, swept.stderr
    assert json.loads(swept.stdout)["results"] == 1
    assert service.jobs.get(job.id).status == "expired"  # type: ignore[union-attr]
    rule = cli(env, "retention", "s3-lifecycle")
    assert json.loads(rule.stdout) == retention.s3_lifecycle(service.settings)
    forever = cli(env | {"SOUNDCHECK_UPLOAD_RETENTION_DAYS": "0"}, "retention", "s3-lifecycle")
    assert forever.returncode == 1 and "forever" in forever.stderr
    bad = cli(env | {"SOUNDCHECK_RESULT_RETENTION_DAYS": "-3"}, "retention", "sweep")
    assert bad.returncode == 2 and "SOUNDCHECK_RESULT_RETENTION_DAYS" in bad.stderr


# --- S3 (moto server) -------------------------------------------------------------------


@pytest.fixture
def bucket(moto_server: str) -> Iterator[tuple[Any, str]]:
    import boto3

    client = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1")
    name = f"sc-retention-{uuid.uuid4().hex[:10]}"
    client.create_bucket(Bucket=name)
    yield client, name


def test_purge_on_s3_deletes_the_owner_prefix_only(bucket: tuple[Any, str]) -> None:
    client, name = bucket
    store = S3Storage(name, client=client)
    mine, theirs = new_owner(), new_owner()

    my_keys = [new_key("uploads", mine, f"m{i}.wav") for i in range(5)]
    their_key = new_key("uploads", theirs, "t.wav")
    for key in (*my_keys, their_key):
        store.put_bytes(key, wav_bytes(0.01))
    assert store.delete_owner(mine, page_size=2) == 5  # three pages
    assert not any(store.exists(k) for k in my_keys)
    assert store.exists(their_key)
    assert store.delete_owner(mine) == 0
    assert store.deletes_expired_uploads is False


def test_the_lifecycle_rule_is_one_s3_accepts(bucket: tuple[Any, str], service: Deps) -> None:
    client, name = bucket
    config = retention.s3_lifecycle(service.settings)
    assert config is not None
    client.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration=config)
    rules = client.get_bucket_lifecycle_configuration(Bucket=name)["Rules"]
    assert rules[0]["Expiration"] == {"Days": 30}
    assert rules[0]["Filter"] == {"Prefix": "uploads/"}


def test_on_s3_the_sweep_marks_rows_and_leaves_objects_to_the_lifecycle_rule(
    bucket: tuple[Any, str], env: dict[str, str], moto_server: str
) -> None:
    client, name = bucket
    d = build_deps(settings_for(env))
    d.storage = S3Storage(name, client=client)
    try:
        old = make_job(d, ended_days_ago=31)
        report = retention.sweep(d)
        assert (report.upload_jobs, report.uploads, report.orphans) == (1, 0, 0)
        assert d.storage.exists(old.file_key)  # the functions may not delete: S3 does
        assert d.jobs.get(old.id).uploads_expired_at is not None  # type: ignore[union-attr]
    finally:
        d.close()


def test_a_worker_with_its_own_sweeper_runs_retention(service: Deps) -> None:
    """`soundcheck worker` (and the local stack's sweeper thread, the same two calls)."""
    from chalicelib.local import worker

    job = make_job(service, ended_days_ago=400)
    stop = threading.Event()
    thread = threading.Thread(
        target=worker.run, args=(service, stop), kwargs={"sweep_seconds": 0.05}, daemon=True
    )
    thread.start()
    try:
        wait_until(
            lambda: service.jobs.get(job.id).status == "expired",  # type: ignore[union-attr]
            timeout=30,
            what="the worker's sweeper to expire the job",
        )
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()
    assert not service.storage.exists(job.file_key)


def test_two_sweepers_over_the_same_owners_never_deadlock(
    env: dict[str, str], service: Deps
) -> None:
    """The console's trigger updates one owner_usage row per expired job: two sweepers
    whose batches share owners must take those rows in one order."""
    owners = [new_owner() for _ in range(4)]
    order = random.Random(7)  # batches meet the owners in every order
    jobs = [
        make_job(service, owners[order.randrange(4)], ended_days_ago=order.uniform(366, 400))
        for _ in range(64)
    ]
    reports, errors = sweep_at_once(env, sweepers=3, batch=4, timeout_s=120)
    assert errors == []
    assert sum(r.results for r in reports) == 64
    assert {service.jobs.get(j.id).status for j in jobs} == {"expired"}  # type: ignore[union-attr]
