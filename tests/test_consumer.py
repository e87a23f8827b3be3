"""The consumer's drain loop on real Redis, Postgres, a real directory and the real analysis."""

from __future__ import annotations

import dataclasses
import json
import re
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from chalice.local import LambdaContext
from chalice.test import Client

from chalicelib import consumer, deps, sweeper
from chalicelib.deps import Deps
from chalicelib.jobs import Job, JobSpec
from chalicelib.storage import LocalStorage
from tests.pipeline_support import (
    UPLOAD_SECRET,
    build_deps,
    log_events,
    new_owner,
    put_upload,
    settings_for,
    wav_bytes,
)
from tests.waiting import wait_until

LEASE_S = 1.0  # renewed every 1/3 s: 2/3 s of slack on a busy machine


@pytest.fixture
def env(make_env: Callable[..., dict[str, str]], service_database_url: str) -> dict[str, str]:
    return make_env(
        service_database_url,
        SOUNDCHECK_LEASE_SECONDS=str(LEASE_S),
        SOUNDCHECK_MAX_ATTEMPTS="3",
        SOUNDCHECK_MAX_STALLS="2",
    )


@pytest.fixture
def service(env: dict[str, str]) -> Iterator[Deps]:
    d = build_deps(settings_for(env), backoff_ms=20)
    yield d
    d.close()


@pytest.fixture(autouse=True)
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The consumer's temporary files go here, so a test can see that none is left."""
    directory = tmp_path / "tmp"
    directory.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(directory))
    return directory


def submit(service: Deps, data: bytes | None = None, **spec: Any) -> Job:
    """What the API does: insert the row, then enqueue."""
    owner = spec.pop("owner", None) or new_owner()
    file_key = put_upload(service, owner, wav_bytes(1.0) if data is None else data)
    fields = {"mode": "genre", "genre": None, "file_name": "mix.wav"} | spec
    job, _ = service.jobs.create(
        JobSpec(
            owner=owner,
            file_key=file_key,
            reference_file_key=fields.pop("reference_file_key", None),
            reference_job_id=fields.pop("reference_job_id", None),
            **fields,
        )
    )
    assert service.queue.enqueue(job.id)
    return job


def drain(service: Deps, name: str = "c1", **kwargs: Any) -> consumer.DrainResult:
    return consumer.drain(service, name, consumer.forever, **kwargs)


def events(capsys: pytest.CaptureFixture[str], name: str, job_id: str) -> list[dict[str, Any]]:
    out = capsys.readouterr().out
    return [e for e in log_events(out) if e["event"] == name and e.get("jobId") == job_id]


# --- the happy path --------------------------------------------------------------------


def test_a_job_is_analysed_written_once_and_acked(
    service: Deps, private_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job = submit(service, genre="techno")
    result = drain(service)
    assert (result.claimed, result.completed, result.stopped) == (1, 1, "empty")
    done = service.jobs.get(job.id)
    assert done is not None
    assert (done.status, done.progress, done.attempts, done.error_code) == (
        "completed",
        100,
        1,
        None,
    )
    assert done.result is not None and done.result["schemaVersion"] == 2
    assert done.result["comparison"]["target"]
    assert done.started_at is not None and done.completed_at is not None
    assert service.queue.states([job.id]) == {job.id: None}  # acked: Redis forgot it
    assert list(private_tmp.iterdir()) == []  # the downloaded copy is gone
    out = log_events(capsys.readouterr().out)
    kinds = [e["event"] for e in out if e.get("jobId") == job.id and e["event"] != "metrics"]
    assert kinds == ["claimed", "completed"]
    completed = next(e for e in out if e["event"] == "completed")
    assert completed["attempt"] == 1 and completed["durationMs"] > 0
    assert completed["consumer"] == "c1"


def test_reference_mode_compares_with_an_earlier_jobs_result(service: Deps) -> None:
    owner = new_owner()
    reference = submit(service, wav_bytes(1.0, amplitude=0.6), owner=owner)
    drain(service)
    job = submit(service, owner=owner, mode="reference", reference_job_id=reference.id)
    drain(service)
    done = service.jobs.get(job.id)
    assert done is not None and done.status == "completed", done
    assert done.result["comparison"]["mode"] == "reference"


def test_reference_mode_with_a_reference_file(service: Deps) -> None:
    owner = new_owner()
    reference_key = put_upload(service, owner, wav_bytes(1.0, amplitude=0.6), "ref.wav")
    job = submit(service, owner=owner, mode="reference", reference_file_key=reference_key)
    drain(service)
    done = service.jobs.get(job.id)
    assert done is not None and done.status == "completed", done
    assert done.result["comparison"]["mode"] == "reference"


# --- failures ----------------------------------------------------------------------------


def test_bad_audio_fails_at_once_with_its_code(
    service: Deps, private_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job = submit(service, b"this is not audio, it is a text file")
    result = drain(service)
    assert (result.claimed, result.failed, result.retried) == (1, 1, 0)
    failed = service.jobs.get(job.id)
    assert failed is not None
    assert (failed.status, failed.attempts, failed.error_code) == (
        "failed",
        1,
        "unsupported_format",
    )
    assert failed.to_api()["error"]["code"] == "unsupported_format"
    assert service.queue.states([job.id]) == {job.id: "dead"}
    assert list(private_tmp.iterdir()) == []
    (event,) = events(capsys, "failed", job.id)
    assert event["code"] == "unsupported_format" and event["attempt"] == 1


def test_a_missing_upload_fails_at_once(service: Deps) -> None:
    job = submit(service)
    service.storage.delete(job.file_key)
    drain(service)
    failed = service.jobs.get(job.id)
    assert failed is not None and (failed.status, failed.error_code) == ("failed", "not_found")
    assert failed.attempts == 1


def test_a_reference_job_without_a_result_fails_the_job(service: Deps) -> None:
    owner = new_owner()
    unfinished, _ = service.jobs.create(JobSpec(owner, "genre", None, "k", None, None, None))
    job = submit(service, owner=owner, mode="reference", reference_job_id=unfinished.id)
    drain(service)
    failed = service.jobs.get(job.id)
    assert failed is not None and failed.error_code == "reference_unavailable"


def broken_storage(service: Deps, tmp_path: Path) -> Deps:
    """The same deployment, but its storage root is a regular file: every read is an OSError."""
    root = tmp_path / "not-a-directory"
    root.write_text("")
    storage = LocalStorage(root, "http://testserver", UPLOAD_SECRET.encode())
    return dataclasses.replace(service, storage=storage)


def test_a_storage_hiccup_is_retried_and_the_job_reads_queued_meanwhile(
    service: Deps, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job = submit(service)
    result = drain(broken_storage(service, tmp_path), max_jobs=1)  # the retry is due in ~20 ms
    assert (result.claimed, result.retried) == (1, 1)
    waiting = service.jobs.get(job.id)
    assert waiting is not None
    assert (waiting.status, waiting.attempts, waiting.error_code) == ("queued", 1, "io_error")
    api_view = waiting.to_api()
    assert api_view["status"] == "queued" and api_view["error"]["code"] == "io_error"
    assert service.queue.states([job.id]) == {job.id: "delayed"}
    (retried,) = events(capsys, "retried", job.id)
    assert retried["retryAtMs"] > 0
    # the backoff passes; the storage is back: the retry completes and clears the error
    wait_until(lambda: drain(service).completed == 1, timeout=10, what="the retry to run")
    done = service.jobs.get(job.id)
    assert done is not None
    assert (done.status, done.attempts, done.error_code) == ("completed", 2, None)


def test_a_job_fails_for_good_when_its_retries_run_out(service: Deps, tmp_path: Path) -> None:
    job = submit(service)
    broken = broken_storage(service, tmp_path)

    def attempts() -> int:
        drain(broken)
        current = service.jobs.get(job.id)
        assert current is not None
        return current.status == "failed"

    wait_until(attempts, timeout=10, what="three failed attempts")
    failed = service.jobs.get(job.id)
    assert failed is not None and (failed.attempts, failed.error_code) == (3, "io_error")
    assert service.queue.states([job.id]) == {job.id: "dead"}


def test_one_bad_job_never_stops_the_loop(service: Deps) -> None:
    bad = submit(service, b"garbage")
    good = submit(service)
    missing = submit(service)
    service.storage.delete(missing.file_key)
    result = drain(service)
    assert (result.claimed, result.completed, result.failed) == (3, 1, 2)
    statuses = {j: service.jobs.get(j).status for j in (bad.id, good.id, missing.id)}  # type: ignore[union-attr]
    assert statuses == {bad.id: "failed", good.id: "completed", missing.id: "failed"}


def test_a_bug_in_the_analysis_is_retried_not_fatal(
    service: Deps, capsys: pytest.CaptureFixture[str]
) -> None:
    job = submit(service)

    def buggy(*args: Any) -> dict[str, Any]:
        raise ZeroDivisionError("oops")

    result = drain(service, analyse=buggy, max_jobs=1)
    assert (result.retried, result.stopped) == (1, "max_jobs")
    current = service.jobs.get(job.id)
    assert current is not None and (current.status, current.error_code) == (
        "queued",
        "internal_error",
    )
    assert "Traceback" not in (current.error_message or "")  # users see no stack trace
    # ... nor the exception's text: a fixed message with the reference of the log line
    assert "oops" not in (current.error_message or "")
    assert "ZeroDivisionError" not in (current.error_message or "")
    reference = re.search(r"\(reference ([0-9a-f]{12})\)$", current.error_message or "")
    assert reference is not None, current.error_message
    (retried,) = events(capsys, "retried", job.id)
    assert "in buggy" in retried["trace"] and "ZeroDivisionError" in retried["trace"]
    assert retried["reference"] == reference[1] and "oops" in retried["error"]


# --- leases and fencing ----------------------------------------------------------------


class Release:
    """A flag the test sets and the job's child process sees: a file appears.

    (multiprocessing.Event would do, but a child killed while waiting on it leaves
    its Condition locked and the test's `set` hangs.)
    """

    def __init__(self) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="release-", dir="/tmp")) / "go"

    def set(self) -> None:
        self.path.touch()

    def wait(self, timeout: float) -> bool:
        return bool(wait_until(self.path.exists, timeout=timeout, interval=0.02, what="release"))


def blocking(until: Any) -> Any:
    """The real analysis, started only once `until` is set (a slow job, made deterministic).

    It runs in the job's child process, so `until` is a `Release`.
    """

    def analyse(d: Deps, path: Path, job: Job, reference: dict[str, Any] | None) -> dict[str, Any]:
        assert until.wait(20), "the test never released the analysis"
        return consumer._analyse(d, path, job, reference)

    return analyse


def test_the_lease_is_extended_while_a_long_analysis_runs(service: Deps) -> None:
    job = submit(service)
    release = Release()
    reclaimed: list[str] = []

    def sweep_past_the_lease() -> None:
        # three lease periods go by; a sweep must not take the job away
        for _ in range(3):
            threading.Event().wait(LEASE_S)
            reclaimed.extend(service.queue.sweep().reclaimed)
        release.set()

    threading.Thread(target=sweep_past_the_lease, daemon=True).start()
    result = drain(service, analyse=blocking(release))
    assert result.completed == 1 and reclaimed == []
    done = service.jobs.get(job.id)
    assert done is not None and (done.status, done.attempts) == ("completed", 1)


def test_two_consumers_never_both_write_a_result(
    service: Deps, capsys: pytest.CaptureFixture[str]
) -> None:
    """A stalls past its lease; the sweeper gives the job to B, who finishes; A writes nothing."""
    job = submit(service)
    release_a = Release()
    outcome_a: list[str] = []

    def run_a() -> None:
        (claim,) = service.queue.claim("A", int(LEASE_S * 1000))
        # A's lease keeper cannot renew: A is "frozen" until released
        outcome_a.append(
            consumer.process_claim(
                dataclasses.replace(service, queue=frozen_queue(service)),
                claim,
                "A",
                blocking(release_a),
            )
        )

    thread = threading.Thread(target=run_a)
    thread.start()
    wait_until(lambda: service.jobs.get(job.id).status == "processing", what="A to start")  # type: ignore[union-attr]
    wait_until(lambda: service.queue.sweep().reclaimed == [job.id], timeout=5, what="A's lease")
    result_b = drain(service, "B")
    assert result_b.completed == 1
    written = service.jobs.get(job.id)
    assert written is not None and written.status == "completed" and written.attempts == 2
    release_a.set()
    thread.join(20)
    assert outcome_a in (["lost"], ["fenced"])
    after = service.jobs.get(job.id)
    assert after == written  # A changed nothing: same token, attempts, result, timestamps
    out = [e for e in log_events(capsys.readouterr().out) if e.get("jobId") == job.id]
    assert [e["consumer"] for e in out if e["event"] == "completed"] == ["B"]
    assert any(e["event"] == "fenced" and e["consumer"] == "A" for e in out)


def frozen_queue(service: Deps) -> Any:
    """The queue as seen by a consumer frozen in a GC pause: its renewals never arrive."""

    class Frozen:
        def __getattr__(self, name: str) -> Any:
            return getattr(service.queue, name)

        def extend(self, job_id: str, token: int, lease_ms: int) -> bool:
            return True  # pretends to renew; Redis never hears of it

    return Frozen()


def test_a_stale_delivery_of_a_finished_job_is_dropped(
    service: Deps, capsys: pytest.CaptureFixture[str]
) -> None:
    job = submit(service)
    (stale,) = service.queue.claim("A", 50)
    wait_until(lambda: service.queue.sweep().reclaimed == [job.id], timeout=5, what="expiry")
    assert drain(service, "B").completed == 1
    written = service.jobs.get(job.id)
    assert consumer.process_claim(service, stale, "A") == "fenced"
    assert service.jobs.get(job.id) == written
    fenced = [e for e in events(capsys, "fenced", job.id) if e["consumer"] == "A"]
    assert [e["stage"] for e in fenced] == ["start"]


def test_a_job_whose_consumers_keep_dying_is_failed_as_stalled(service: Deps) -> None:
    job = submit(service)

    def expired() -> bool:
        sweeper.sweep(service, min_age_s=60)  # reconcile stays out of this
        return _state(service, job) != "active"

    for _ in range(2):  # SOUNDCHECK_MAX_STALLS=2: claimed, never finished, lease expires
        (claim,) = service.queue.claim("dies", 50)
        assert service.jobs.start(job.id, claim.token, claim.attempt) is not None
        wait_until(expired, timeout=5, what="the lease to expire")
    assert _state(service, job) == "dead"
    failed = service.jobs.get(job.id)
    assert failed is not None
    assert (failed.status, failed.error_code, failed.attempts) == ("failed", "stalled", 2)


def test_a_consumer_that_lost_its_lease_writes_nothing(
    service: Deps, capsys: pytest.CaptureFixture[str]
) -> None:
    """Redis forgets A's claim mid-analysis: A's renewal fails, A finishes but keeps quiet."""
    job = submit(service)
    release_a = Release()
    outcome_a: list[str] = []
    (claim_a,) = service.queue.claim("A", int(LEASE_S * 1000))

    def forget_then_release() -> None:
        assert service.queue.remove(job.id)  # the queue's record of A's claim is gone
        wait_until(
            lambda: any(e["event"] == "lease_lost" for e in log_events(capsys.readouterr().out)),
            timeout=5,
            what="A's renewal to fail",
        )

    thread = threading.Thread(
        target=lambda: outcome_a.append(
            consumer.process_claim(service, claim_a, "A", blocking(release_a))
        )
    )
    thread.start()
    wait_until(lambda: service.jobs.get(job.id).status == "processing", what="A to start")  # type: ignore[union-attr]
    forget_then_release()
    release_a.set()
    thread.join(20)
    assert outcome_a == ["lost"]
    untouched = service.jobs.get(job.id)
    assert untouched is not None and (untouched.status, untouched.result) == ("processing", None)
    # reconcile: Postgres says processing, Redis knows nothing -> enqueued; B completes it
    assert sweeper.sweep(service, min_age_s=0.0).requeued == 1
    assert drain(service, "B").completed == 1
    done = service.jobs.get(job.id)
    # Redis forgot the claim, Postgres did not: B's is attempt 2, and A's a stall
    assert done is not None and (done.status, done.attempts, done.stalls) == ("completed", 2, 1)


def _state(service: Deps, job: Job) -> str | None:
    return service.queue.states([job.id])[job.id]


def _failed(service: Deps, job: Job) -> bool:
    current = service.jobs.get(job.id)
    return current is not None and current.status == "failed"


# --- one round trip per job ----------------------------------------------------------


def test_finishing_a_job_claims_the_next_in_the_same_round_trip(
    service: Deps, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = [submit(service, wav_bytes(0.3)) for _ in range(3)]
    scripts: list[str] = []
    run = service.queue._run

    def counted(script: str, *args: Any, **kwargs: Any) -> Any:
        scripts.append(script)
        return run(script, *args, **kwargs)

    monkeypatch.setattr(service.queue, "_run", counted)
    result = drain(service)
    assert (result.claimed, result.completed, result.stopped) == (3, 3, "empty")
    # claim, then each finish acks and claims the next: 4 round trips for 3 jobs, not 6
    moves = [s for s in scripts if s in ("claim", "ack", "ack_and_claim")]
    assert moves == ["claim", "ack_and_claim", "ack_and_claim", "ack_and_claim"], moves
    for job in jobs:
        done = service.jobs.get(job.id)
        assert done is not None and done.status == "completed"
    assert service.queue.states([j.id for j in jobs]) == {j.id: None for j in jobs}


def test_the_last_job_of_a_drain_is_acked_on_its_own(service: Deps) -> None:
    job = submit(service)
    assert drain(service, max_jobs=1).completed == 1
    assert service.queue.states([job.id]) == {job.id: None}


# --- drain's limits ---------------------------------------------------------------------


def test_drain_claims_nothing_without_time_for_a_whole_lease(service: Deps) -> None:
    job = submit(service)
    result = consumer.drain(service, "c1", lambda: LEASE_S * 1000 + 100, margin_ms=1000)
    assert (result.claimed, result.stopped) == (0, "time")
    assert _state(service, job) == "waiting"


def test_drain_stops_when_asked(service: Deps) -> None:
    submit(service)
    result = drain(service, should_stop=lambda: True)
    assert (result.claimed, result.stopped) == (0, "stop")


def test_drain_survives_redis_going_away(env: dict[str, str], service: Deps) -> None:
    from tests.pipeline_support import closed_port

    gone = build_deps(settings_for({**env, "REDIS_URL": f"redis://127.0.0.1:{closed_port()}/0"}))
    result = drain(gone)
    assert (result.claimed, result.stopped) == (0, "claim_error")


def test_a_failed_sweep_is_logged_and_its_caller_goes_on(
    env: dict[str, str], service: Deps, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.pipeline_support import closed_port

    gone = build_deps(settings_for({**env, "REDIS_URL": f"redis://127.0.0.1:{closed_port()}/0"}))
    assert sweeper.sweep_logged(gone, "c1") is None
    (event,) = [e for e in log_events(capsys.readouterr().out) if e["event"] == "sweep_error"]
    assert event["consumer"] == "c1" and "ConnectionError" in event["error"]


# --- Redis loses everything ------------------------------------------------------------


def test_after_redis_loses_its_data_the_sweeper_requeues_from_postgres(service: Deps) -> None:
    started = submit(service)
    (claim,) = service.queue.claim("gone", 60_000)
    assert service.jobs.start(started.id, claim.token, claim.attempt) is not None
    waiting = submit(service)
    service.queue.delete_all()  # this queue's share of a FLUSHALL
    assert service.queue.states([waiting.id, started.id]) == {waiting.id: None, started.id: None}
    report = sweeper.sweep(service, min_age_s=0.0)
    assert report.requeued == 2
    result = drain(service)
    assert result.completed == 2
    for job in (waiting, started):
        done = service.jobs.get(job.id)
        assert done is not None and done.status == "completed"


# --- the Lambda entry point ------------------------------------------------------------


def test_the_consumer_function_sweeps_then_drains_while_time_is_left(service: Deps) -> None:
    job = submit(service)
    context = LambdaContext("consumer", 2048, max_runtime_ms=60_000)
    payload = consumer.run_consumer(service, context)
    assert payload["drain"]["completed"] == 1, json.dumps(payload)
    assert payload["drain"]["stopped"] == "empty"
    done = service.jobs.get(job.id)
    assert done is not None and done.status == "completed"


def test_the_deployed_handler_claims_nothing_without_time_for_a_lease(
    service: Deps, tmp_path: Path
) -> None:
    """chalice's test context gives 3 s: less than lease + margin, so the job is left alone."""
    from app import app

    job = submit(service)
    previous = deps.override(service)
    try:
        with Client(app, project_dir=str(tmp_path)) as client:
            response = client.lambda_.invoke("consumer", {"source": "soundcheck.wake"})
    finally:
        deps.override(previous)
    assert response.payload["drain"] == {
        **response.payload["drain"],
        "claimed": 0,
        "stopped": "time",
    }
    assert _state(service, job) == "waiting"
