"""Reconcile Postgres (the truth) with Redis (what to run next), for the sweeper.

Redis can lose everything (FLUSHALL, a failover, a restart without persistence)
and a consumer can die between two writes; neither may leave a job stuck. For
each unfinished job that has not moved for a while, `plan` decides from its
Redis state what to do:

    Redis state          Postgres queued / processing
    waiting/delayed/active   nothing: the queue will run it or reclaim its lease
    None (lost)              enqueue again (a newer claim token takes it over)
    dead, never started      enqueue again (a retried job whose enqueue failed)
    dead                     mark failed: the queue gave up and the consumer died
                             before saying so (its last error, else `stalled`)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from chalicelib.errors import Stalled
from chalicelib.rules import UNFINISHED, JobStatus

if TYPE_CHECKING:
    from chalicelib.jobs import Job, JobStore
    from chalicelib.queue import Queue

STALLED = Stalled.code
STALLED_MESSAGE = Stalled().message


@dataclass(frozen=True)
class Action:
    job: Job
    kind: Literal["enqueue", "fail"]
    error_code: str | None = None
    error_message: str | None = None


@dataclass(frozen=True)
class ReconcileResult:
    enqueued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def plan(candidates: list[Job], states: dict[str, str | None]) -> list[Action]:
    """What to do for each unfinished job, given its state in Redis (pure)."""
    actions = []
    for job in candidates:
        if job.status not in UNFINISHED:
            continue
        state = states.get(job.id)
        fresh = job.status == JobStatus.QUEUED and job.attempts == 0 and job.error_code is None
        if state is None or (state == "dead" and fresh):
            actions.append(Action(job, "enqueue"))
        elif state == "dead":
            code = job.error_code or STALLED
            message = job.error_message if job.error_code else STALLED_MESSAGE
            actions.append(Action(job, "fail", code, message))
    return actions


def reconcile(
    store: JobStore, queue: Queue, min_age_seconds: float, limit: int = 500
) -> ReconcileResult:
    """Apply `plan` to the jobs unchanged for `min_age_seconds`; return what was done.

    The age must cover the gap between a submission's INSERT and its enqueue
    (seconds, not the lease). Before enqueuing lost jobs the queue's token floor is
    raised to the largest token Postgres holds (`JobStore.token_floor`). A consumer
    that claims a re-enqueued job which meanwhile finished gets None from
    `JobStore.start` and should just ack it.
    """
    candidates = store.reconcile_candidates(min_age_seconds, limit)
    if not candidates:
        return ReconcileResult()
    states = queue.states([job.id for job in candidates])
    actions = plan(candidates, states)
    if any(action.kind == "enqueue" for action in actions):
        # Redis lost these jobs, perhaps all its data, and its clock may run behind:
        # tokens must still outgrow every token Postgres accepted, or it refuses them.
        queue.raise_token_floor(store.token_floor())
    result = ReconcileResult()
    for action in actions:
        job = action.job
        if action.kind == "enqueue":
            if queue.enqueue(job.id, priority=job.priority, owner=job.owner):
                result.enqueued.append(job.id)
        elif store.fail(
            job.id,
            job.lease_token,
            action.error_code or STALLED,
            action.error_message or "",
            True,
            attempts=job.attempts,  # the job as read: a retry since then is left alone
        ):
            result.failed.append(job.id)
    return result
