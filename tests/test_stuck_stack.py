"""Issue 8 item 1 on the local stack: stuck uploads must not hold the service.

What was seen: two hanging uploads held both workers at 100 % CPU for minutes, the
lease kept being renewed, SIGTERM was ignored, another owner's 1 s job waited 209 s,
and after a restart both came back as attempt 1. Here `soundcheck dev` runs two
real workers on real Redis and Postgres with a 5 s per-job ceiling; the stuck
inputs are real files: the WAV that sends libsndfile into an endless loop and a
2.4 MB FLAC of silence holding 3 h 40 min.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator

import psutil
import pytest
import redis

from chalicelib.client import Client
from chalicelib.jobs import Job, JobStore
from tests.conftest import _LOCK_KEY, RUN_ID
from tests.pipeline_support import hanging_wav, slow_flac, wav_bytes
from tests.test_pipeline import (
    Stack,
    _alive,
    running_stack,
    wait_done,
    workers_ready,
)
from tests.waiting import wait_until

CEILING_S = 5.0
LEASE_S = 2.0
MAX_STALLS = 2


@pytest.fixture(scope="module")
def stack(
    redis_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    data_dir = tmp_path_factory.mktemp("stuck")
    queue_name = f"stuck-{uuid.uuid4().hex[:8]}"
    with running_stack(
        redis_url,
        database_url,
        database_url,
        data_dir,
        queue_name,
        SOUNDCHECK_LEASE_SECONDS=str(LEASE_S),
        SOUNDCHECK_MAX_JOB_SECONDS=str(CEILING_S),
        SOUNDCHECK_MAX_STALLS=str(MAX_STALLS),
    ) as stack:
        yield stack


@pytest.fixture
def store(stack: Stack) -> Iterator[JobStore]:
    jobs = JobStore(stack.database_url, stack.schema)
    yield jobs
    jobs.close()


def row(store: JobStore, job_id: str) -> Job:
    found = store.get(job_id)
    assert found is not None
    return found


def busy_workers(stack: Stack, job_ids: list[str]) -> set[int]:
    """Pids of the workers holding one of these jobs right now."""
    pids = set()
    for job_id in job_ids:
        info = stack.queue.job_info(job_id)
        if info and info["state"] == "active" and info["consumer"]:
            pids.add(int(info["consumer"].rsplit(":", 1)[-1]))
    return pids


def claimed_attempts(stack: Stack, job_id: str) -> list[int]:
    return [e["attempt"] for e in stack.events("claimed", job_id)]


def test_stuck_uploads_do_not_hold_up_another_owners_job(stack: Stack, store: JobStore) -> None:
    wait_until(lambda: workers_ready(stack), timeout=60, what="both workers to be ready")
    stuck = [
        stack.submit(slow_flac(), "hours-1.flac"),
        stack.submit(slow_flac(), "hours-2.flac"),
        stack.submit(hanging_wav(), "hang.wav"),
    ]
    wait_until(lambda: len(busy_workers(stack, stuck)) == 2, timeout=30, what="both workers stuck")
    other = Client(stack.client.base_url, store.create_api_key(f"owner-b-{uuid.uuid4().hex[:6]}"))
    path = stack.data_dir / "b-mix.wav"
    path.write_bytes(wav_bytes(1.0))
    started = time.monotonic()
    job_b = str(other.submit(other.upload(path), file_name="b-mix.wav")["jobId"])

    def b_done() -> bool:
        return other.job(job_b)["status"] in ("completed", "failed")

    wait_until(b_done, timeout=90, interval=0.1, what="the other owner's job")
    waited = time.monotonic() - started
    print(f"the other owner's 1 s job finished {waited:.1f} s after submit (issue: 209 s)")
    assert other.job(job_b)["status"] == "completed"
    # at worst both workers finish their stuck jobs' runs first: MAX_STALLS ceilings each
    assert waited < MAX_STALLS * CEILING_S + 20, waited
    jobs = wait_done(stack, stuck, timeout=120)
    for job_id in stuck[:2]:
        assert jobs[job_id]["status"] == "failed", jobs[job_id]
        assert jobs[job_id]["error"]["code"] == "processing_timeout"
        assert jobs[job_id]["attempts"] == MAX_STALLS
        assert row(store, job_id).stalls == MAX_STALLS
        assert claimed_attempts(stack, job_id) == [1, 2]
    hang = jobs[stuck[2]]
    assert hang["status"] == "completed" or hang["error"]["code"] == "corrupt_file", hang


def test_a_worker_stops_within_seconds_on_sigterm_mid_job(stack: Stack, store: JobStore) -> None:
    wait_until(lambda: workers_ready(stack), timeout=60, what="both workers to be ready")
    job_id = stack.submit(slow_flac(), "hours.flac")
    (victim,) = wait_until(lambda: busy_workers(stack, [job_id]), timeout=30, what="a claim")
    # the analysis runs in a child of the worker (and ffmpeg in a child of that)
    analysis = wait_until(
        lambda: psutil.Process(victim).children(recursive=True), timeout=30, what="the analysis"
    )
    asked = time.monotonic()
    os.kill(victim, signal.SIGTERM)
    wait_until(lambda: not _alive(victim), timeout=15, what="the worker to exit")
    took = time.monotonic() - asked
    print(f"worker stopped {took:.2f} s after SIGTERM, mid-analysis")
    assert took < 5, took
    assert [p.pid for p in analysis if _alive(p.pid)] == []  # nothing it started lives on
    exited = wait_until(
        lambda: [e for e in stack.events("process_exited") if e["pid"] == victim],
        timeout=10,
        what="the supervisor to see the worker's exit",
    )
    assert exited[0]["code"] == 0
    (interrupted,) = stack.events("interrupted", job_id)
    assert interrupted["consumer"].endswith(f":{victim}")
    # handed back: another worker takes the job over at once (no wait for the lease)
    wait_until(
        lambda: claimed_attempts(stack, job_id) == [1, 2], timeout=30, what="the job taken over"
    )
    jobs = wait_done(stack, [job_id], timeout=60)
    assert jobs[job_id]["error"]["code"] == "processing_timeout"
    assert row(store, job_id).stalls == MAX_STALLS  # the interrupted run, then the ceiling


def test_after_redis_restarts_empty_a_job_keeps_its_attempts_and_stalls(
    stack: Stack, store: JobStore, redis_url: str
) -> None:
    wait_until(lambda: workers_ready(stack), timeout=60, what="both workers to be ready")
    job_id = stack.submit(slow_flac(), "hours.flac")
    wait_until(
        lambda: (row(store, job_id).stalls, row(store, job_id).status) == (1, "processing"),
        timeout=60,
        what="the job's second run",
    )
    client = redis.Redis.from_url(redis_url)
    try:
        client.flushdb()  # Redis restarts empty: claims, counts and tokens are gone
        client.set(_LOCK_KEY, RUN_ID, ex=6 * 3600)  # the test run's claim on this db
    finally:
        client.close()
    jobs = wait_done(stack, [job_id], timeout=90)
    assert jobs[job_id]["status"] == "failed"
    assert jobs[job_id]["error"]["code"] in ("processing_timeout", "stalled")
    attempts = claimed_attempts(stack, job_id)
    assert attempts == sorted(set(attempts)) and attempts[0] == 1, attempts  # never 1 again
    assert jobs[job_id]["attempts"] == attempts[-1] >= 2
    assert row(store, job_id).stalls == MAX_STALLS
    assert stack.events("requeued", job_id)  # the sweeper took it back from Postgres


def test_a_worker_killed_mid_analysis_leaves_no_analysis_running(
    stack: Stack, store: JobStore
) -> None:
    """SIGKILL gives the worker no chance to clean up: its child must die with it."""
    wait_until(lambda: workers_ready(stack), timeout=60, what="both workers to be ready")
    job_id = stack.submit(slow_flac(), "hours.flac")
    (victim,) = wait_until(lambda: busy_workers(stack, [job_id]), timeout=30, what="a claim")
    analysis = wait_until(
        lambda: psutil.Process(victim).children(recursive=True), timeout=30, what="the analysis"
    )
    os.kill(victim, signal.SIGKILL)
    wait_until(
        lambda: not [p for p in analysis if _alive(p.pid)],
        timeout=10,
        what="the orphaned analysis to die",
    )
    jobs = wait_done(stack, [job_id], timeout=90)  # the lease expires, another worker goes on
    assert jobs[job_id]["error"]["code"] == "processing_timeout"
    assert row(store, job_id).stalls == MAX_STALLS  # the killed run, then the ceiling
