"""Jobs that never finish on their own (issue 8 item 1), through the real drain loop.

Real Redis, real Postgres, real files: a WAV that sends libsndfile into an endless
C loop, and a 2.4 MB FLAC that decodes to 3 h 40 min of audio (slow for its size).
The consumer must stop them at the per-job ceiling, count the stall in Postgres
(where a Redis FLUSHALL cannot reset it), and stop at once when asked to.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from chalicelib import consumer, sweeper
from chalicelib.deps import Deps
from chalicelib.jobs import Job, JobSpec
from tests.pipeline_support import (
    build_deps,
    hanging_wav,
    log_events,
    new_owner,
    put_upload,
    settings_for,
    slow_flac,
    wav_bytes,
)
from tests.waiting import wait_until

CEILING_S = 1.5
ROOMY_CEILING_S = 60.0
LEASE_S = 1.0
MAX_STALLS = 2


def make_service(
    make_env: Callable[..., dict[str, str]], database_url: str, ceiling_s: float
) -> Iterator[Deps]:
    env = make_env(
        database_url,
        SOUNDCHECK_LEASE_SECONDS=str(LEASE_S),
        SOUNDCHECK_MAX_JOB_SECONDS=str(ceiling_s),
        SOUNDCHECK_MAX_ATTEMPTS="3",
        SOUNDCHECK_MAX_STALLS=str(MAX_STALLS),
    )
    d = build_deps(settings_for(env), backoff_ms=20)
    yield d
    d.close()


@pytest.fixture
def service(make_env: Callable[..., dict[str, str]], database_url: str) -> Iterator[Deps]:
    """A deployment whose jobs may run CEILING_S seconds."""
    yield from make_service(make_env, database_url, CEILING_S)


@pytest.fixture
def roomy(make_env: Callable[..., dict[str, str]], database_url: str) -> Iterator[Deps]:
    """A deployment with a ceiling no normal short job meets, even on a busy machine."""
    yield from make_service(make_env, database_url, ROOMY_CEILING_S)


def submit(service: Deps, data: bytes, name: str = "mix.wav", owner: str | None = None) -> Job:
    owner = owner or new_owner()
    key = put_upload(service, owner, data, name)
    job, _ = service.jobs.create(JobSpec(owner, "genre", None, key, name, None, None))
    assert service.queue.enqueue(job.id)
    return job


def drain_one(service: Deps, **kwargs: Any) -> tuple[consumer.DrainResult, float]:
    started = time.monotonic()
    result = consumer.drain(service, "c1", consumer.forever, max_jobs=1, **kwargs)
    return result, time.monotonic() - started


def current(service: Deps, job: Job) -> Job:
    found = service.jobs.get(job.id)
    assert found is not None
    return found


def _children() -> set[int]:
    return {c.pid for c in psutil.Process().children(recursive=True)}


@pytest.fixture(autouse=True)
def existing_children() -> None:
    """Processes this test run had before the test (embedded servers): not the job's."""
    global _BEFORE
    _BEFORE = _children()


_BEFORE: set[int] = set()


def no_children() -> bool:
    """No analysis process (or anything it started) outlived its job."""
    left = []
    for pid in _children() - _BEFORE:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                left.append(pid)
        except psutil.NoSuchProcess:
            continue
    return not left


def reclaim(service: Deps, job: Job) -> None:
    """The sweep after a given-up lease: the job waits again (its stall counted in Redis)."""
    wait_until(
        lambda: job.id in service.queue.sweep().reclaimed,
        timeout=5,
        what="the given-up lease to be reclaimed",
    )


# --- the ceiling -----------------------------------------------------------------------


def test_the_wav_that_hung_libsndfile_is_measured_or_refused_promptly(roomy: Deps) -> None:
    """Issue 8's file: libsndfile loops forever on it; the decoder must not."""
    job = submit(roomy, hanging_wav(), "hang.wav")
    result, took = drain_one(roomy)
    assert result.stalled == 0 and took < ROOMY_CEILING_S
    done = current(roomy, job)
    if done.status == "failed":
        assert done.error_code == "corrupt_file" and done.attempts == 1
        return
    assert done.status == "completed", done
    assert done.result is not None and done.result["file"]["durationSeconds"] == 1.0
    assert abs(done.result["loudness"]["integratedLufs"] - -20.0) < 0.2  # 1 kHz at -20 dBFS


def test_a_slow_input_is_stopped_at_its_ceiling_and_fails_after_max_stalls(
    service: Deps, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 2.4 MB upload that takes half a minute or more to analyse (3 h 40 min of silence)."""
    job = submit(service, slow_flac(), "hours.flac")
    result, took = drain_one(service)
    assert (result.claimed, result.stalled) == (1, 1)
    assert CEILING_S <= took < CEILING_S + 5, took  # (5 s: a machine shared by many)
    assert no_children()  # the analysis process (and anything it started) is gone
    after = current(service, job)
    assert (after.status, after.attempts, after.stalls) == ("queued", 1, 1)
    assert after.error_code == consumer.PROCESSING_TIMEOUT
    assert "SOUNDCHECK_MAX_JOB_SECONDS" in (after.error_message or "")
    # the lease is no longer renewed: the next sweep takes the job back, as for a crash
    reclaim(service, job)
    info = service.queue.job_info(job.id)
    assert info is not None and (info["state"], info["stalls"]) == ("waiting", 1)
    result, _ = drain_one(service)
    assert result.failed == 1
    failed = current(service, job)
    assert (failed.status, failed.attempts, failed.stalls) == ("failed", 2, MAX_STALLS)
    assert failed.error_code == consumer.PROCESSING_TIMEOUT
    assert service.queue.states([job.id]) == {job.id: "dead"}
    events = [e for e in log_events(capsys.readouterr().out) if e.get("jobId") == job.id]
    kinds = [(e["event"], e["attempt"]) for e in events if e["event"] != "metrics"]
    assert kinds == [("claimed", 1), ("stalled", 1), ("claimed", 2), ("failed", 2)], kinds


def test_a_job_within_its_ceiling_is_not_disturbed(service: Deps) -> None:
    job = submit(service, wav_bytes(1.0))
    result, _ = drain_one(service)
    assert result.completed == 1
    done = current(service, job)
    assert (done.status, done.attempts, done.stalls) == ("completed", 1, 0)


def test_a_lambda_short_of_time_stops_the_job_before_it_is_frozen(service: Deps) -> None:
    """The deadline is the ceiling or the function's time left less the margin, if sooner."""
    job = submit(service, slow_flac())
    left_ms = LEASE_S * 1000 + 1500  # time for a lease, not for the whole ceiling
    clock = time.monotonic()
    result = consumer.drain(
        service, "lambda", lambda: left_ms - (time.monotonic() - clock) * 1000, margin_ms=1000
    )
    assert (result.claimed, result.stalled, result.stopped) == (1, 1, "time")
    after = current(service, job)
    assert after.stalls == 1 and "ran out of time" in (after.error_message or "")


# --- counts that survive Redis --------------------------------------------------------


def test_after_redis_loses_everything_a_stalled_job_keeps_its_count(
    service: Deps, capsys: pytest.CaptureFixture[str]
) -> None:
    job = submit(service, slow_flac(), "hours.flac")
    assert drain_one(service)[0].stalled == 1
    service.queue.delete_all()  # this queue's share of a FLUSHALL
    assert sweeper.sweep(service, min_age_s=0.0).requeued == 1
    result, _ = drain_one(service)  # Redis says attempt 1; Postgres knows better
    assert result.failed == 1
    failed = current(service, job)
    assert (failed.status, failed.attempts, failed.stalls) == ("failed", 2, MAX_STALLS)
    claimed = [
        e["attempt"]
        for e in log_events(capsys.readouterr().out)
        if e["event"] == "claimed" and e.get("jobId") == job.id
    ]
    assert claimed == [1, 2]


def test_after_redis_loses_everything_a_dead_consumers_job_counts_a_stall(
    service: Deps,
) -> None:
    """A consumer died mid-job (no word to anyone), then Redis restarted empty."""
    job = submit(service, wav_bytes(1.0))
    for expected in (1, 2):
        (claim,) = service.queue.claim("dies", 60_000)
        started = service.jobs.start(job.id, claim.token, claim.attempt)
        assert started is not None and (started.attempts, started.stalls) == (
            expected,
            expected - 1,
        )
        service.queue.delete_all()
        assert sweeper.sweep(service, min_age_s=0.0).requeued == 1
    # the next delivery finds MAX_STALLS stalls counted in Postgres: it fails, unrun
    result, _ = drain_one(service)
    assert result.failed == 1
    failed = current(service, job)
    assert (failed.status, failed.error_code) == ("failed", "stalled")
    assert (failed.attempts, failed.stalls) == (3, MAX_STALLS)
    assert service.queue.states([job.id]) == {job.id: "dead"}


def test_after_redis_loses_everything_the_attempts_cap_still_holds(
    service: Deps, tmp_path: Path
) -> None:
    """Two retryable failures, a FLUSHALL, a third failure: failed for good (max 3)."""
    import dataclasses

    from chalicelib.storage import LocalStorage
    from tests.pipeline_support import UPLOAD_SECRET

    root = tmp_path / "not-a-directory"
    root.write_text("")
    broken = dataclasses.replace(
        service, storage=LocalStorage(root, "http://testserver", UPLOAD_SECRET.encode())
    )
    job = submit(service, wav_bytes(1.0))

    def failed_times(n: int) -> bool:
        consumer.drain(broken, "c1", consumer.forever, max_jobs=1)
        return current(service, job).attempts >= n

    wait_until(lambda: failed_times(2), timeout=60, what="two failed attempts")
    assert current(service, job).status == "queued"
    service.queue.delete_all()
    assert sweeper.sweep(service, min_age_s=0.0).requeued == 1
    assert consumer.drain(broken, "c1", consumer.forever, max_jobs=1).failed == 1
    failed = current(service, job)
    assert (failed.status, failed.attempts, failed.error_code) == ("failed", 3, "io_error")
    assert service.queue.states([job.id]) == {job.id: "dead"}


# --- stopping -------------------------------------------------------------------------


def test_a_stop_request_ends_a_stuck_job_at_once_and_hands_it_back(service: Deps) -> None:
    job = submit(service, slow_flac(), "hours.flac")
    asked: list[float] = []

    def stop_once_processing() -> bool:
        if not asked and current(service, job).status == "processing":
            asked.append(time.monotonic())
        return bool(asked) and time.monotonic() - asked[0] > 0.3

    result = consumer.drain(service, "c1", consumer.forever, should_stop=stop_once_processing)
    stopped_after = time.monotonic() - asked[0]
    assert (result.claimed, result.interrupted, result.stopped) == (1, 1, "stop")
    assert stopped_after < 1.5, stopped_after
    assert no_children()
    # handed back: the lease is given up, so the next sweep makes the job claimable again
    assert current(service, job).status == "processing"  # the next start counts the stall
    reclaim(service, job)
    assert current(service, job).stalls == 0


def test_an_analysis_process_that_dies_is_a_retryable_failure(
    service: Deps, capsys: pytest.CaptureFixture[str]
) -> None:
    job = submit(service, wav_bytes(1.0))

    def killed(*args: Any) -> dict[str, Any]:
        os.kill(os.getpid(), signal.SIGKILL)  # the OOM killer, a segfault in a decoder
        raise AssertionError("unreachable")

    result = consumer.drain(service, "c1", consumer.forever, max_jobs=1, analyse=killed)
    assert result.retried == 1
    after = current(service, job)
    assert (after.status, after.error_code) == ("queued", "internal_error")
    assert "reference" in (after.error_message or "")  # the details are in the log only
    (retried,) = [e for e in log_events(capsys.readouterr().out) if e["event"] == "retried"]
    assert retried["error"] == "analysis process killed by SIGKILL"
    assert no_children()
