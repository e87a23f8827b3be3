"""The drain loop: claim a job, take it in Postgres, analyse it, write the result fenced.

Redis says what to run next; Postgres is the truth. Every write a consumer makes
carries the fencing token of its claim, so a consumer whose lease expired (a
Lambda that timed out, a worker killed mid-job, a Redis that lost its data) writes
nothing, and a job's result is written exactly once however often it is delivered.

numpy is imported only when the first job is analysed: app.py imports this module
for its Lambda handlers, and the API functions must start cold fast.
"""

from __future__ import annotations

import math
import os
import re
import socket
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from chalicelib import errors, isolated, logs, sweeper, wake, webhooks
from chalicelib.errors import ReferenceUnavailable
from chalicelib.rules import JobStatus
from chalicelib.storage import require_object

if TYPE_CHECKING:
    from chalicelib.deps import Deps
    from chalicelib.jobs import Job
    from chalicelib.queue import Claim

Outcome = Literal["completed", "failed", "retried", "fenced", "lost", "stalled", "interrupted"]
Analyse = Callable[["Deps", Path, "Job", dict[str, Any] | None], dict[str, Any]]

# A Lambda stops claiming when less than lease + this is left: a job it starts must
# be able to finish (or at least keep its lease) before the function is frozen.
LAMBDA_MARGIN_MS = 15_000
# Callback events a Lambda sends after its drain, at most this long (the rest next time).
WEBHOOK_BUDGET_S = 120.0
# A job past its ceiling (SOUNDCHECK_MAX_JOB_SECONDS) or cut short by its Lambda's time.
PROCESSING_TIMEOUT = errors.ProcessingTimeout.code
_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,8}$")


@dataclass(frozen=True)
class DrainResult:
    """What one drain did, for logs and for the Lambda's return value."""

    claimed: int = 0
    completed: int = 0
    failed: int = 0
    retried: int = 0
    fenced: int = 0
    lost: int = 0
    stalled: int = 0  # ran past the per-job ceiling: stopped, counted as a stall
    interrupted: int = 0  # stopped mid-job (SIGTERM): handed back to the queue
    stopped: str = ""  # empty | time | stop | max_jobs | claim_error

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def consumer_id(kind: str = "worker") -> str:
    """A name for this consumer in queue stats and logs: host and pid."""
    return f"{kind}:{socket.gethostname()}:{os.getpid()}"


# --- one job ---------------------------------------------------------------------------


class LeaseKeeper:
    """Renews a claim's lease while its job runs; the consumer's main thread calls `tick`.

    Renewing every lease/3 survives two missed renewals. If a renewal is refused
    the lease was lost (it expired and the sweeper handed the job to someone else,
    or Redis lost it): `lost` turns true and the job's result must not be written.
    A renewal that raises (a Redis hiccup) is retried at the next tick. Past the
    job's deadline the consumer stops calling `tick`: the lease runs out.
    """

    def __init__(self, deps: Deps, claim: Claim, lease_ms: int) -> None:
        self._deps = deps
        self._claim = claim
        self._lease_ms = lease_ms
        self._interval = lease_ms / 3000.0
        self._next = time.monotonic() + self._interval
        self.lost = False

    def tick(self) -> bool:
        """Renew if due; False once the lease is lost."""
        if self.lost or time.monotonic() < self._next:
            return not self.lost
        try:
            renewed = self._deps.queue.extend(self._claim.job_id, self._claim.token, self._lease_ms)
        except Exception as exc:
            logs.event("lease_extend_error", jobId=self._claim.job_id, error=logs.describe(exc))
            self._next = time.monotonic() + min(self._interval, 1.0)
            return True
        self._next = time.monotonic() + self._interval
        if not renewed:
            self.lost = True
            logs.event("lease_lost", jobId=self._claim.job_id, token=self._claim.token)
        return not self.lost

    def expire_now(self) -> None:
        """Give the lease up at once: the next sweep reclaims the job (a stall)."""
        self.lost = True
        _quietly(self._deps.queue.extend, self._claim.job_id, self._claim.token, 1)


def _trace(exc: BaseException) -> str:
    """The innermost frames of an unexpected exception, for the log line."""
    frames = traceback.format_exception(exc, limit=-6)
    return "".join(frames)[-3000:]


def classify(exc: BaseException) -> errors.SoundcheckError:
    """The error a job failed with; its `retryable` decides between retry and fail.

    Bad audio, a missing upload or a missing reference will fail the same way
    again: fail the job at once. Storage, Redis, Postgres hiccups and bugs may
    pass: retry with backoff until the attempts run out. A library's exception
    or a bug is stored with a fixed message and a reference id, never its text.
    """
    return errors.of(exc)


def _download(deps: Deps, key: str, directory: Path, name: str) -> Path:
    """The object at `key` as a file in `directory` (which its caller deletes)."""
    suffix = Path(key).suffix
    suffix = suffix if _SUFFIX.match(suffix) else ""
    require_object(deps.storage, key, deps.settings.max_upload_bytes)  # 404 / 413: final
    path = directory / f"{name}{suffix}"
    deps.storage.download(key, path)
    return path


def warm_up() -> None:
    """Load the analysis code (numpy, scipy, soundfile: a second or two) before the first job.

    Long-running workers call this at start, so the first submit is as fast as the next.
    """
    from chalicelib.analysis import compare, decode, measure  # noqa: F401


def _analyse(deps: Deps, path: Path, job: Job, reference: dict[str, Any] | None) -> dict[str, Any]:
    from chalicelib.analysis import Limits, analyze_file

    return analyze_file(
        path,
        genre=job.genre if job.mode == "genre" else None,
        reference=reference,
        limits=Limits.from_settings(deps.settings),
    )


def _reference_result(deps: Deps, job: Job) -> dict[str, Any] | None:
    """The earlier job's result a reference-mode job compares with (read in the parent)."""
    if job.mode != "reference" or not job.reference_job_id:
        return None
    ref = deps.jobs.get(job.reference_job_id, owner=job.owner)
    if ref is None or ref.status != JobStatus.COMPLETED or ref.result is None:
        raise ReferenceUnavailable(f"reference job {job.reference_job_id} has no result")
    return ref.result


def _work(
    deps: Deps,
    job: Job,
    reference: dict[str, Any] | None,
    analyse: Analyse,
    directory: Path,
    report: isolated.Report,
) -> dict[str, Any]:
    """In the job's child process: download, analyse a reference file if any, analyse."""
    if job.mode == "reference" and reference is None:
        if not job.reference_file_key:
            raise ReferenceUnavailable("reference mode without a reference")
        from chalicelib.analysis import Limits, analyze_file

        path = _download(deps, job.reference_file_key, directory, "reference")
        reference = analyze_file(path, limits=Limits.from_settings(deps.settings))
        path.unlink()
        report(40)
    path = _download(deps, job.file_key, directory, "input")
    report(50 if reference else 10)
    return analyse(deps, path, job, reference)


def _describe(exc: BaseException) -> isolated.Failed:
    """How the child reports an exception: its error, and what only the log may show."""
    error = classify(exc)
    return isolated.Failed(error.code, error.message, error.retryable, _details(exc, error))


def _details(exc: BaseException, error: errors.SoundcheckError) -> dict[str, Any]:
    """What the job's error does not show goes to the log, under the same reference id:
    a library's message and, for a bug, the traceback."""
    details: dict[str, Any] = {}
    if error is not exc:
        details = {"reference": getattr(error, "reference", None), "error": logs.describe(exc)}
    if error.code == "internal_error":
        details["trace"] = _trace(exc)
    return details


@dataclass
class _Journal:
    """The log lines and metrics of one delivery: every event names job, attempt, token."""

    deps: Deps
    claim: Claim
    consumer: str
    started: float
    attempt: int = 0  # Postgres' count once the job is started; the queue's before

    def __call__(self, name: str, *, code: str | None = None, **fields: Any) -> None:
        base = {"jobId": self.claim.job_id, "attempt": self.attempt or self.claim.attempt}
        extra = {"code": code} if code is not None else {}
        logs.event(name, **base, token=self.claim.token, consumer=self.consumer, **extra, **fields)
        duration = fields.get("durationMs")
        logs.job_metrics(
            name,
            queue=self.deps.settings.queue_name,
            duration_ms=duration,
            wait_ms=fields.get("waitMs"),
            code=code,
            **base,
        )

    def elapsed_ms(self) -> float:
        return _ms(self.started)


def process_claim(
    deps: Deps,
    claim: Claim,
    consumer: str,
    analyse: Analyse = _analyse,
    *,
    should_stop: Callable[[], bool] = lambda: False,
    seconds: float | None = None,
    ack: Callable[[Claim], None] | None = None,
) -> Outcome:
    """Run one claimed job to its end. Never raises: every failure becomes an outcome.

    A delivery that is done with (completed, or stale) is acked with `ack`, by
    default a plain `Queue.ack`; `drain` collects it instead, to ack it together
    with the next claim (`Queue.ack_and_claim`, one round trip per job).

    The download and analysis run in a child process (`chalicelib.isolated`) for
    at most `seconds` (default SOUNDCHECK_MAX_JOB_SECONDS); this thread renews the
    lease meanwhile. Past the ceiling the child is killed, the lease is no longer
    renewed and the job counts a stall; `should_stop` turning true (SIGTERM)
    kills the child within a fraction of a second and hands the job back.
    """
    warm_up()  # before the clock starts; imported once per process, shared by every child
    ack = ack or (lambda done: _quietly(deps.queue.ack, done.job_id, done.token))
    journal = _Journal(deps, claim, consumer, time.monotonic())
    lease_ms = int(deps.settings.lease_seconds * 1000)
    ceiling = deps.settings.max_job_seconds
    seconds = ceiling if seconds is None else min(seconds, ceiling)
    job = None
    try:
        job = deps.jobs.start(claim.job_id, claim.token, claim.attempt, consumer)
        if job is None:
            # Finished already, or a newer claim owns it: drop this delivery.
            journal("fenced", stage="start")
            ack(claim)
            return "fenced"
        journal.attempt = job.attempts
        waited = (datetime.now(UTC) - job.created_at).total_seconds() * 1000
        journal("claimed", mode=job.mode, genre=job.genre, waitMs=round(waited, 1))
        if job.stalls >= deps.settings.max_stalls:  # counted in Postgres: Redis lost the count
            error = errors.Stalled()
            return _record_failure(deps, claim, journal, job, error.code, error.message, False)
        reference = _reference_result(deps, job)
        keeper = LeaseKeeper(deps, claim, lease_ms)
        with tempfile.TemporaryDirectory(prefix="soundcheck-") as tmp:
            outcome = isolated.run(
                lambda report: _work(deps, job, reference, analyse, Path(tmp), report),
                describe=_describe,
                deadline=journal.started + seconds,
                should_stop=should_stop,
                keep_going=keeper.tick,
                on_progress=lambda p: deps.jobs.set_progress(claim.job_id, claim.token, p),
            )
    except Exception as exc:
        return _fail(deps, claim, journal, exc, job)
    if isinstance(outcome, isolated.Failed):
        return _record_failure(
            deps,
            claim,
            journal,
            job,
            outcome.code,
            outcome.message,
            outcome.retryable,
            outcome.details,
        )
    if isinstance(outcome, isolated.Stopped):
        return _stopped(deps, claim, journal, job, keeper, outcome, seconds, ceiling)
    try:
        if keeper.lost:
            journal("fenced", stage="lease_lost")
            return "lost"
        if not deps.jobs.complete(job.id, claim.token, outcome.value):
            journal("fenced", stage="complete")
            ack(claim)
            return "fenced"
    except Exception as exc:
        return _fail(deps, claim, journal, exc, job)
    ack(claim)
    journal("completed", durationMs=journal.elapsed_ms())
    return "completed"


def _stopped(
    deps: Deps,
    claim: Claim,
    journal: _Journal,
    job: Job,
    keeper: LeaseKeeper,
    stopped: isolated.Stopped,
    seconds: float,
    ceiling: float,
) -> Outcome:
    """The child was ended before it reported: lease lost, stop request, deadline, crash."""
    if stopped.reason == "lost":
        journal("fenced", stage="lease_lost")
        return "lost"
    if stopped.reason == "died":  # a crash in C, the OOM killer: a bug, retried while allowed
        error = errors.InternalError()
        details = {"reference": error.reference, "error": f"analysis process {stopped.detail}"}
        return _record_failure(
            deps, claim, journal, job, error.code, error.message, error.retryable, details
        )
    if stopped.reason == "stop":
        # Left `processing` in Postgres: the next start counts the stall, as for a crash.
        keeper.expire_now()
        journal("interrupted", durationMs=journal.elapsed_ms())
        return "interrupted"
    if seconds < ceiling:
        message = f"the consumer ran out of time after {seconds:.0f} s"
    else:
        message = f"processing took longer than {ceiling:g} s (SOUNDCHECK_MAX_JOB_SECONDS)"
    try:
        status = deps.jobs.stall(
            job.id, claim.token, PROCESSING_TIMEOUT, message, deps.settings.max_stalls
        )
    except Exception as exc:  # Postgres is down: the lease runs out, the next start counts it
        logs.event("job_stall_error", jobId=claim.job_id, error=logs.describe(exc))
        status = "queued"
    if status is None:
        keeper.expire_now()
        journal("fenced", stage="stall", code=PROCESSING_TIMEOUT)
        return "fenced"
    if status == "failed":
        _quietly(
            deps.queue.fail, claim.job_id, claim.token, f"{PROCESSING_TIMEOUT}: {message}", False
        )
        journal("failed", code=PROCESSING_TIMEOUT, message=message, durationMs=journal.elapsed_ms())
        return "failed"
    keeper.expire_now()  # the lease is no longer renewed: the next sweep reclaims the job
    journal("stalled", code=PROCESSING_TIMEOUT, message=message, durationMs=journal.elapsed_ms())
    return "stalled"


def _fail(
    deps: Deps, claim: Claim, journal: _Journal, exc: Exception, job: Job | None = None
) -> Outcome:
    error = classify(exc)
    return _record_failure(
        deps, claim, journal, job, error.code, error.message, error.retryable, _details(exc, error)
    )


def _record_failure(
    deps: Deps,
    claim: Claim,
    journal: _Journal,
    job: Job | None,
    code: str,
    message: str,
    retryable: bool,
    details: dict[str, Any] | None = None,
) -> Outcome:
    """Fail the delivery in Redis and Postgres: retried later, or failed for good.

    Postgres' own count decides too: a job whose failures, this one included, reach
    SOUNDCHECK_MAX_ATTEMPTS fails for good even if Redis, restarted empty, would
    retry it. `details` go to the log line only.
    """
    details = details or {}
    if job is not None and retryable:
        retryable = job.failures + 1 < deps.settings.max_attempts
    outcome = None
    try:
        outcome = deps.queue.fail(claim.job_id, claim.token, f"{code}: {message}", retryable)
    except Exception as queue_exc:  # Redis is down: the lease expires, the sweeper retries
        logs.event("queue_fail_error", jobId=claim.job_id, error=logs.describe(queue_exc))
    if outcome is not None and outcome.state == "stale":
        journal("fenced", stage="fail", code=code, **details)
        return "lost"
    final = not retryable or (outcome is not None and outcome.state == "dead")
    try:
        written = deps.jobs.fail(
            claim.job_id,
            claim.token,
            code,
            message,
            final=final,
            attempts=job.attempts if job is not None else claim.attempt,
            retry_at_ms=outcome.retry_at_ms if outcome is not None else None,
        )
    except Exception as db_exc:  # Postgres is down: reconcile and the retry fix it later
        logs.event("job_fail_error", jobId=claim.job_id, error=logs.describe(db_exc))
        written = True
    if not written:
        journal("fenced", stage="fail", code=code, **details)
        return "fenced"
    retry_at = outcome.retry_at_ms if outcome is not None and not final else None
    journal(
        "failed" if final else "retried",
        code=code,
        message=message,
        retryAtMs=retry_at,
        durationMs=journal.elapsed_ms(),
        **details,
    )
    return "failed" if final else "retried"


def _quietly(fn: Callable[..., Any], *args: Any) -> Any:
    """Call a queue operation whose failure a later sweep repairs (an ack, mostly)."""
    try:
        return fn(*args)
    except Exception as exc:
        logs.event("queue_call_error", call=getattr(fn, "__name__", "?"), error=logs.describe(exc))
        return None


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)


# --- the loop ------------------------------------------------------------------------


def drain(
    deps: Deps,
    consumer: str,
    time_left_ms: Callable[[], float],
    *,
    margin_ms: float = 0.0,
    max_jobs: int | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    analyse: Analyse = _analyse,
) -> DrainResult:
    """Process jobs one at a time until the queue is empty, time runs short, or told to stop.

    A job is claimed only while more than lease + margin is left, and runs for at
    most SOUNDCHECK_MAX_JOB_SECONDS or until only `margin_ms` is left, whichever
    comes first (then it counts a stall and goes back to the queue). One job's
    exception never ends the loop.
    """
    lease_ms = int(deps.settings.lease_seconds * 1000)
    counts: Counter[str] = Counter()
    stopped = ""
    done: list[Claim] = []  # a finished delivery, acked together with the next claim
    while True:
        if should_stop():
            stopped = "stop"
            break
        if max_jobs is not None and counts["claimed"] >= max_jobs:
            stopped = "max_jobs"
            break
        if time_left_ms() < lease_ms + margin_ms:
            stopped = "time"
            break
        try:
            claims = _next_claims(deps, consumer, lease_ms, done)
        except Exception as exc:
            logs.event("claim_error", consumer=consumer, error=logs.describe(exc))
            stopped = "claim_error"
            break
        if not claims:
            stopped = "empty"
            break
        for claim in claims:
            counts["claimed"] += 1
            seconds = (time_left_ms() - margin_ms) / 1000
            outcome = process_claim(
                deps,
                claim,
                consumer,
                analyse,
                should_stop=should_stop,
                seconds=seconds,
                ack=done.append,
            )
            counts[outcome] += 1
            if outcome in ("completed", "failed"):
                webhooks.nudge()  # its callback event, if any, is due now
    for claim in done:  # the last job's ack, with nothing to claim after it
        _quietly(deps.queue.ack, claim.job_id, claim.token)
    return DrainResult(
        claimed=counts["claimed"],
        completed=counts["completed"],
        failed=counts["failed"],
        retried=counts["retried"],
        fenced=counts["fenced"],
        lost=counts["lost"],
        stalled=counts["stalled"],
        interrupted=counts["interrupted"],
        stopped=stopped,
    )


def _next_claims(deps: Deps, consumer: str, lease_ms: int, done: list[Claim]) -> list[Claim]:
    """Claim the next job; with a finished one in `done`, ack it in the same round trip.

    The finished job's result is already in Postgres (written before its ack), and the
    ack is fenced by its token like any other.
    """
    if not done:
        return deps.queue.claim(consumer, lease_ms, 1)
    finished = done[-1]
    _, claim = deps.queue.ack_and_claim(finished.job_id, finished.token, consumer, lease_ms)
    done.clear()
    return [claim] if claim is not None else []


def forever() -> float:
    """time_left_ms for a long-running worker."""
    return math.inf


# --- Lambda entry points -------------------------------------------------------------


def run_consumer(deps: Deps, context: Any) -> dict[str, Any]:
    """The consumer function (woken by a submit): sweep, then drain while time is left."""
    deps.check_server_once()
    me = f"lambda:{getattr(context, 'aws_request_id', None) or os.getpid()}"
    report = sweeper.sweep_logged(deps, me)
    result = drain(deps, me, context.get_remaining_time_in_millis, margin_ms=LAMBDA_MARGIN_MS)
    logs.event("drained", consumer=me, trigger="invoke", **result.to_dict())
    sent = _deliver_webhooks(deps, context, cap_s=WEBHOOK_BUDGET_S)
    return {
        "sweep": report.to_dict() if report else None,
        "drain": result.to_dict(),
        "webhooks": sent.to_dict() if sent else None,
    }


def _deliver_webhooks(deps: Deps, context: Any, cap_s: float) -> Any:
    """Send due callback events with what is left of the invocation (at most cap_s):
    after the drain, so they never hold up an analysis."""
    from chalicelib.webhooks import deliver

    left_s = (context.get_remaining_time_in_millis() - LAMBDA_MARGIN_MS) / 1000
    budget = min(cap_s, left_s - 2 * deps.settings.webhook_timeout_seconds)  # one last batch
    return deliver.deliver_logged(deps, budget_s=budget) if budget > 0 else None


def _retention(deps: Deps, context: Any, me: str) -> Any:
    """One retention sweep in what is left of the invocation (at most its own budget)."""
    from chalicelib import retention  # here: `import app` stays light for the API

    left_s = (context.get_remaining_time_in_millis() - LAMBDA_MARGIN_MS) / 1000
    budget = min(retention.BUDGET_S, left_s)
    return retention.sweep_logged(deps, me, budget_s=budget) if budget > 0 else None


def run_sweeper(deps: Deps, context: Any) -> dict[str, Any]:
    """The scheduled function, every minute: sweep, publish the queue gauges, wake
    consumers, deliver due callbacks, then retention (chalicelib.retention) with what is
    left of the invocation: the least urgent, last.

    The sweeper Lambda is small and short-lived (no analysis layer, a 60 s timeout),
    so it hands waiting work to the consumer function (one wake per waiting job, at
    most SOUNDCHECK_MAX_IN_FLIGHT or 1). Deployed without a consumer function, it
    drains in place while its time allows.
    """
    deps.check_server_once()
    me = f"sweeper:{getattr(context, 'aws_request_id', None) or os.getpid()}"
    report = sweeper.sweep_logged(deps, me)
    stats = deps.queue.stats()
    logs.queue_metrics(stats)  # the once-a-minute heartbeat the alarms watch
    woke: list[str] = []
    result = DrainResult(stopped="skipped")
    function = deps.settings.consumer_function_name
    if stats["waiting"] and function:
        for _ in range(min(int(stats["waiting"]), deps.settings.max_in_flight or 1)):
            woke.append(wake.wake(function, "schedule"))
    elif stats["waiting"]:
        result = drain(deps, me, context.get_remaining_time_in_millis, margin_ms=LAMBDA_MARGIN_MS)
    logs.event("drained", consumer=me, trigger="schedule", woke=len(woke), **result.to_dict())
    sent = _deliver_webhooks(deps, context, cap_s=WEBHOOK_BUDGET_S)
    kept = _retention(deps, context, me)
    return {
        "sweep": report.to_dict() if report else None,
        "retention": kept.to_dict() if kept else None,
        "waiting": stats["waiting"],
        "woke": woke,
        "drain": result.to_dict(),
        "webhooks": sent.to_dict() if sent else None,
    }
