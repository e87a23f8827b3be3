"""Reconcile: Postgres is the truth, Redis may lose everything, no job stays stuck."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest
import redis

from chalicelib.db import drop_schema
from chalicelib.jobs import Job, JobSpec, JobStore
from chalicelib.queue import Queue
from chalicelib.reconcile import STALLED, Action, plan, reconcile

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def job(status: str = "queued", **changes: object) -> Job:
    base = Job(
        id=str(uuid.uuid4()),
        owner="o",
        mode="genre",
        genre="pop",
        file_key="k",
        file_name=None,
        reference_file_key=None,
        reference_job_id=None,
        priority=0,
        status=status,  # type: ignore[arg-type]
        progress=0,
        attempts=0,
        lease_token=None,
        error_code=None,
        error_message=None,
        result=None,
        idempotency_key=None,
        created_at=NOW,
        updated_at=NOW,
        started_at=None,
        completed_at=None,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


# --- the pure decision ---------------------------------------------------------------


@pytest.mark.parametrize("state", ["waiting", "delayed", "active"])
@pytest.mark.parametrize("status", ["queued", "processing"])
def test_jobs_redis_knows_about_are_left_alone(status: str, state: str) -> None:
    candidate = job(status, attempts=1, lease_token=5)
    assert plan([candidate], {candidate.id: state}) == []


@pytest.mark.parametrize("status", ["queued", "processing"])
def test_jobs_redis_lost_are_enqueued_again(status: str) -> None:
    candidate = job(status, attempts=1, lease_token=5)
    assert plan([candidate], {candidate.id: None}) == [Action(candidate, "enqueue")]
    assert plan([candidate], {}) == [Action(candidate, "enqueue")]  # not even asked


def test_a_dead_job_whose_consumer_died_is_marked_failed() -> None:
    stalled = job("processing", attempts=3, lease_token=9)
    errored = job(
        "queued", attempts=2, lease_token=8, error_code="download_failed", error_message="S3 down"
    )
    actions = plan([stalled, errored], {stalled.id: "dead", errored.id: "dead"})
    assert [(a.job.id, a.kind, a.error_code) for a in actions] == [
        (stalled.id, "fail", STALLED),
        (errored.id, "fail", "download_failed"),
    ]
    assert actions[1].error_message == "S3 down"
    assert actions[0].error_message


def test_a_retried_job_still_dead_in_redis_is_enqueued_not_failed() -> None:
    retried = job("queued", attempts=0, lease_token=7)  # retry() cleared attempts and error
    assert plan([retried], {retried.id: "dead"}) == [Action(retried, "enqueue")]


@pytest.mark.parametrize("status", ["completed", "failed"])
def test_finished_jobs_are_never_touched(status: str) -> None:
    finished = job(status)
    assert plan([finished], {finished.id: None}) == []
    assert plan([finished], {finished.id: "dead"}) == []


# --- against real Redis and Postgres -----------------------------------------------------


@pytest.fixture
def store(database_url: str, db_schema: str) -> Iterator[JobStore]:
    """A schema of this test's own: reconcile looks at every job in it."""
    schema = f"{db_schema}_{uuid.uuid4().hex[:6]}"
    store = JobStore(database_url, schema)
    store.migrate()
    yield store
    store.close()
    drop_schema(database_url, schema)


@pytest.fixture
def queue(redis_client: redis.Redis, queue_name: str) -> Queue:
    return Queue(redis_client, queue_name, max_attempts=1)


def lose_redis(client: redis.Redis, queue: Queue) -> None:
    """What FLUSHALL does to this queue (the test's db is shared with other tests' queues)."""
    assert queue.delete_all() > 0


def submit(store: JobStore, owner: str) -> Job:
    spec = JobSpec(owner, "genre", "pop", "uploads/k", None, None, None, priority=3)
    return store.create(spec)[0]


def test_losing_redis_loses_no_job(
    store: JobStore, queue: Queue, redis_client: redis.Redis
) -> None:
    owner = f"o-{uuid.uuid4().hex[:8]}"
    waiting, working, done = (submit(store, owner) for _ in range(3))
    never_enqueued = submit(store, owner)  # its enqueue failed after the INSERT
    for j in (waiting, working, done):
        queue.enqueue(j.id, j.priority)
    claims = {c.job_id: c for c in queue.claim("c1", lease_ms=60_000, count=2)}
    assert set(claims) == {waiting.id, working.id}  # FIFO within a priority
    old = claims[working.id]
    assert store.start(working.id, old.token, old.attempt) is not None
    finisher = claims[waiting.id]
    store.start(waiting.id, finisher.token, finisher.attempt)
    store.complete(waiting.id, finisher.token, {"ok": True})
    queue.ack(waiting.id, finisher.token)

    lose_redis(redis_client, queue)
    result = reconcile(store, queue, min_age_seconds=0)
    assert set(result.enqueued) == {working.id, done.id, never_enqueued.id}
    assert result.failed == []
    assert reconcile(store, queue, min_age_seconds=0).enqueued == []  # now Redis knows them

    # the processing job is taken over by a new claim; the old consumer is fenced out
    new_claims = {c.job_id: c for c in queue.claim("c2", lease_ms=60_000, count=10)}
    assert set(new_claims) == {working.id, done.id, never_enqueued.id}
    assert new_claims[working.id].token > old.token  # tokens survive the loss of Redis
    assert store.start(working.id, new_claims[working.id].token, 1) is not None
    assert not store.complete(working.id, old.token, {"by": "old"})
    assert store.complete(working.id, new_claims[working.id].token, {"by": "new"})
    assert store.get(working.id).result == {"by": "new"}  # type: ignore[union-attr]


def test_young_jobs_are_left_to_their_submitter(store: JobStore, queue: Queue) -> None:
    fresh = submit(store, f"o-{uuid.uuid4().hex[:8]}")
    result = reconcile(store, queue, min_age_seconds=3600)
    assert fresh.id not in result.enqueued
    assert queue.states([fresh.id]) == {fresh.id: None}


def test_a_job_the_queue_gave_up_on_is_failed(store: JobStore, queue: Queue) -> None:
    owner = f"o-{uuid.uuid4().hex[:8]}"
    crashed = submit(store, owner)
    queue.enqueue(crashed.id)
    claim = queue.claim("c1", lease_ms=60_000)[0]
    store.start(crashed.id, claim.token, claim.attempt)
    # the queue buries it, and the consumer dies before writing to Postgres
    assert queue.fail(crashed.id, claim.token, "boom", retryable=True).state == "dead"
    assert store.get(crashed.id).status == "processing"  # type: ignore[union-attr]

    result = reconcile(store, queue, min_age_seconds=0)
    assert crashed.id in result.failed
    failed = store.get(crashed.id)
    assert failed is not None and failed.status == "failed" and failed.error_code == STALLED

    # a user retry whose enqueue then failed: dead in Redis, fresh in Postgres
    store.retry(crashed.id, owner)
    result = reconcile(store, queue, min_age_seconds=0)
    assert crashed.id in result.enqueued and crashed.id not in result.failed
    assert queue.states([crashed.id]) == {crashed.id: "waiting"}


class RetriedMeanwhile(Queue):
    """A real queue; between reading Redis and acting, another sweeper fails the job and
    its owner retries it (the race of two sweeps and `POST /api/jobs/{id}/retry`)."""

    store: JobStore
    owner: str
    token: int

    def states(self, job_ids: list[str]) -> dict[str, str | None]:
        seen = super().states(job_ids)
        for job_id in job_ids:
            assert self.store.fail(job_id, self.token, STALLED, "by another sweeper", True)
            self.store.retry(job_id, self.owner)
            assert self.enqueue(job_id)
        return seen


def test_a_failure_decided_before_a_retry_never_fails_the_retried_job(
    store: JobStore, redis_client: redis.Redis, queue_name: str
) -> None:
    owner = f"o-{uuid.uuid4().hex[:8]}"
    queue = RetriedMeanwhile(redis_client, queue_name, max_attempts=1)
    crashed = submit(store, owner)
    queue.enqueue(crashed.id)
    claim = queue.claim("c1", lease_ms=60_000)[0]
    store.start(crashed.id, claim.token, claim.attempt)
    assert queue.fail(crashed.id, claim.token, "boom", retryable=True).state == "dead"
    queue.store, queue.owner, queue.token = store, owner, claim.token

    result = reconcile(store, queue, min_age_seconds=0)

    assert result.failed == []
    retried = store.get(crashed.id)
    assert retried is not None and retried.status == "queued" and retried.error_code is None
    assert Queue.states(queue, [crashed.id]) == {crashed.id: "waiting"}


def test_a_redis_restarted_empty_on_a_slow_clock_issues_tokens_above_postgres(
    store: JobStore, queue: Queue, redis_client: redis.Redis
) -> None:
    """Issue 13: Redis restarting empty on a clock 60 s behind handed out tokens 57 s
    below the last ones, and Postgres refused the re-claimed jobs until the clock caught
    up. The floor is in Postgres; the sweep's reconcile raises the queue to it."""
    owner = f"o-{uuid.uuid4().hex[:8]}"
    job = submit(store, owner)
    queue.enqueue(job.id, job.priority)
    claim = queue.claim("c1", lease_ms=60_000)[0]
    # The token Postgres accepted came from a clock 60 s ahead of the one Redis has now.
    ahead = claim.token + 60_000_000
    assert store.start(job.id, ahead, claim.attempt) is not None
    lose_redis(redis_client, queue)
    assert reconcile(store, queue, min_age_seconds=0).enqueued == [job.id]
    again = queue.claim("c2", lease_ms=60_000)[0]
    assert again.job_id == job.id and again.token > ahead
    assert store.start(job.id, again.token, again.attempt) is not None
