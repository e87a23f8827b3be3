"""The sweeper: promote due retries, reclaim expired leases, make Redis agree with Postgres.

Every consumer process, the consumer Lambda (before it drains), the scheduled sweeper
Lambda and the local stack run it; none of them may stop because a sweep failed, so
they call `sweep_logged`, the one place that logs a failed sweep and carries on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chalicelib import logs
from chalicelib.reconcile import STALLED, STALLED_MESSAGE, reconcile
from chalicelib.rules import UNFINISHED

if TYPE_CHECKING:
    from chalicelib.deps import Deps

# How long a queued/processing job must sit unchanged before reconcile looks at it:
# long enough for a submit to go from INSERT to enqueue.
RECONCILE_MIN_AGE_S = 2.0


@dataclass(frozen=True)
class SweepReport:
    """How many jobs one sweep promoted, reclaimed, found dead, requeued and failed."""

    promoted: int = 0
    reclaimed: int = 0
    dead: int = 0
    requeued: int = 0
    failed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def sweep(deps: Deps, min_age_s: float = RECONCILE_MIN_AGE_S) -> SweepReport:
    """Promote due retries, reclaim expired leases, then make Redis agree with Postgres.

    Postgres is the truth: a queued job missing from Redis (its enqueue failed, or
    Redis lost its data) is enqueued again, a processing job whose lease is gone
    too, and a job the queue gave up on is failed (`chalicelib.reconcile.plan`).
    """
    result = deps.queue.sweep()
    queue_name = deps.settings.queue_name
    if result.problem:
        logs.event("queue_misconfigured", error=result.problem)
    for job_id in result.dropped:  # its Redis record was gone; reconcile enqueues it again
        logs.event("dangling_dropped", jobId=job_id)
    for job_id in result.reclaimed:
        logs.event("reclaimed", jobId=job_id)
        logs.job_metrics("reclaimed", queue=queue_name, jobId=job_id)
    failed = 0
    for job_id in result.dead:  # stalled too often: its consumers kept dying
        job = deps.jobs.get(job_id)
        if job is None or job.status not in UNFINISHED:
            continue
        if deps.jobs.fail(
            job_id, job.lease_token, STALLED, STALLED_MESSAGE, final=True, attempts=job.attempts
        ):
            failed += 1
            logs.event("failed", jobId=job_id, attempt=job.attempts, code=STALLED)
            logs.job_metrics("failed", queue=queue_name, code=STALLED, jobId=job_id)
    reconciled = reconcile(deps.jobs, deps.queue, min_age_s)
    for job_id in reconciled.enqueued:
        logs.event("requeued", jobId=job_id)
    for job_id in reconciled.failed:
        logs.event("failed", jobId=job_id, code="reconciled")
        logs.job_metrics("failed", queue=queue_name, code="reconciled", jobId=job_id)
    return SweepReport(
        promoted=len(result.promoted),
        reclaimed=len(result.reclaimed),
        dead=len(result.dead),
        requeued=len(reconciled.enqueued),
        failed=failed + len(reconciled.failed),
    )


def sweep_logged(deps: Deps, consumer: str | None = None) -> SweepReport | None:
    """sweep(), or None after logging `sweep_error`: Redis or Postgres away for a moment
    must not stop the caller (a drain, a worker loop, the local stack's timer)."""
    try:
        return sweep(deps)
    except Exception as exc:
        who = {"consumer": consumer} if consumer else {}
        logs.event("sweep_error", **who, error=logs.describe(exc))
        return None
