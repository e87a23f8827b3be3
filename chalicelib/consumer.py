"""The drain loop: claim a job, take it in Postgres, analyse it, write the result fenced.

Redis says what to run next; Postgres is the truth. Every write a consumer makes
carries the fencing token of its claim, so a consumer whose lease expired (a
Lambda that timed out, a worker killed mid-job, a Redis that lost its data) writes
nothing, and a job's result is written exactly once however often it is delivered.

numpy is imported only when the first job is analysed: app.py imports this module
for its Lambda handlers, and the API functions must start cold fast.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import socket
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from chalicelib import errors, logs, sweeper, wake
from chalicelib.errors import ReferenceUnavailable
from chalicelib.rules import JobStatus
from chalicelib.storage import require_object
from chalicelib.sweeper import sweep as sweep  # re-exported for callers of consumer.sweep

if TYPE_CHECKING:
    from chalicelib.deps import Deps
    from chalicelib.jobs import Job
    from chalicelib.queue import Claim

Outcome = Literal["completed", "failed", "retried", "fenced", "lost"]

# A Lambda stops claiming when less than lease + this is left: a job it starts must
# be able to finish (or at least keep its lease) before the function is frozen.
LAMBDA_MARGIN_MS = 15_000
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
    stopped: str = ""  # empty | time | stop | max_jobs | claim_error

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def consumer_id(kind: str = "worker") -> str:
    """A name for this consumer in queue stats and logs: host and pid."""
    return f"{kind}:{socket.gethostname()}:{os.getpid()}"


# --- one job ---------------------------------------------------------------------------


class LeaseKeeper:
    """Renews a claim's lease from a background thread while the job is analysed.

    Renewing every lease/3 survives two missed renewals. If a renewal is refused
    the lease was lost (it expired and the sweeper handed the job to someone else,
    or Redis lost it): `lost` turns true and the job's result must not be written.
    A renewal that raises (a Redis hiccup) is retried at the next tick.
    """

    def __init__(self, deps: Deps, claim: Claim, lease_ms: int) -> None:
        self._deps = deps
        self._claim = claim
        self._lease_ms = lease_ms
        self._stop = threading.Event()
        self._lost = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"lease-{claim.job_id[:8]}", daemon=True
        )

    @property
    def lost(self) -> bool:
        return self._lost.is_set()

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        interval = self._lease_ms / 3000.0
        while not self._stop.wait(interval):
            try:
                renewed = self._deps.queue.extend(
                    self._claim.job_id, self._claim.token, self._lease_ms
                )
            except Exception as exc:
                logs.event("lease_extend_error", jobId=self._claim.job_id, error=logs.describe(exc))
                continue
            if not renewed:
                self._lost.set()
                logs.event("lease_lost", jobId=self._claim.job_id, token=self._claim.token)
                return


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


@contextlib.contextmanager
def _downloaded(deps: Deps, key: str, name: str) -> Iterator[Path]:
    """The object at `key` in a temporary file, deleted afterwards whatever happens."""
    suffix = Path(key).suffix
    suffix = suffix if _SUFFIX.match(suffix) else ""
    require_object(deps.storage, key, deps.settings.max_upload_bytes)  # 404 / 413: final
    with tempfile.TemporaryDirectory(prefix="soundcheck-") as tmp:
        path = Path(tmp) / f"{name}{suffix}"
        deps.storage.download(key, path)
        yield path


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


def _reference(deps: Deps, job: Job, token: int) -> dict[str, Any] | None:
    """The analysed reference of a reference-mode job (a file, or an earlier job's result)."""
    if job.mode != "reference":
        return None
    if job.reference_job_id:
        ref = deps.jobs.get(job.reference_job_id, owner=job.owner)
        if ref is None or ref.status != JobStatus.COMPLETED or ref.result is None:
            raise ReferenceUnavailable(f"reference job {job.reference_job_id} has no result")
        return ref.result
    if not job.reference_file_key:
        raise ReferenceUnavailable("reference mode without a reference")
    with _downloaded(deps, job.reference_file_key, "reference") as path:
        from chalicelib.analysis import Limits, analyze_file

        result = analyze_file(path, limits=Limits.from_settings(deps.settings))
    deps.jobs.set_progress(job.id, token, 40)
    return result


@dataclass
class _Journal:
    """The log lines and metrics of one delivery: every event names job, attempt, token."""

    deps: Deps
    claim: Claim
    consumer: str
    started: float

    def __call__(self, name: str, *, code: str | None = None, **fields: Any) -> None:
        base = {"jobId": self.claim.job_id, "attempt": self.claim.attempt}
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
    analyse: Callable[[Deps, Path, Job, dict[str, Any] | None], dict[str, Any]] = _analyse,
) -> Outcome:
    """Run one claimed job to its end. Never raises: every failure becomes an outcome."""
    journal = _Journal(deps, claim, consumer, time.monotonic())
    lease_ms = int(deps.settings.lease_seconds * 1000)
    try:
        job = deps.jobs.start(claim.job_id, claim.token, claim.attempt)
        if job is None:
            # Finished already, or a newer claim owns it: drop this delivery.
            journal("fenced", stage="start")
            _quietly(deps.queue.ack, claim.job_id, claim.token)
            return "fenced"
        waited = (datetime.now(UTC) - job.created_at).total_seconds() * 1000
        journal("claimed", mode=job.mode, genre=job.genre, waitMs=round(waited, 1))
        with LeaseKeeper(deps, claim, lease_ms) as keeper:
            reference = _reference(deps, job, claim.token)
            with _downloaded(deps, job.file_key, "input") as path:
                deps.jobs.set_progress(job.id, claim.token, 50 if reference else 10)
                result = analyse(deps, path, job, reference)
        if keeper.lost:
            journal("fenced", stage="lease_lost")
            return "lost"
        if not deps.jobs.complete(job.id, claim.token, result):
            journal("fenced", stage="complete")
            _quietly(deps.queue.ack, claim.job_id, claim.token)
            return "fenced"
        _quietly(deps.queue.ack, claim.job_id, claim.token)
        journal("completed", durationMs=journal.elapsed_ms())
        return "completed"
    except Exception as exc:
        return _fail(deps, claim, journal, exc)


def _fail(deps: Deps, claim: Claim, journal: _Journal, exc: Exception) -> Outcome:
    error = classify(exc)
    code, message, retryable = error.code, error.message, error.retryable
    # What the job's error does not show goes to the log, under the same reference id:
    # a library's message and, for a bug, the traceback.
    details: dict[str, Any] = {}
    if error is not exc:
        details = {"reference": getattr(error, "reference", None), "error": logs.describe(exc)}
    if code == "internal_error":
        details["trace"] = _trace(exc)
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
            claim.job_id, claim.token, code, message, final=final, attempts=claim.attempt
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
    analyse: Callable[[Deps, Path, Job, dict[str, Any] | None], dict[str, Any]] = _analyse,
) -> DrainResult:
    """Process jobs one at a time until the queue is empty, time runs short, or told to stop.

    A job is claimed only while more than lease + margin is left, so it can finish
    inside the time we have. One job's exception never ends the loop.
    """
    lease_ms = int(deps.settings.lease_seconds * 1000)
    counts: Counter[str] = Counter()
    stopped = ""
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
            claims = deps.queue.claim(consumer, lease_ms, 1)
        except Exception as exc:
            logs.event("claim_error", consumer=consumer, error=logs.describe(exc))
            stopped = "claim_error"
            break
        if not claims:
            stopped = "empty"
            break
        for claim in claims:
            counts["claimed"] += 1
            counts[process_claim(deps, claim, consumer, analyse)] += 1
    return DrainResult(
        claimed=counts["claimed"],
        completed=counts["completed"],
        failed=counts["failed"],
        retried=counts["retried"],
        fenced=counts["fenced"],
        lost=counts["lost"],
        stopped=stopped,
    )


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
    return {"sweep": report.to_dict() if report else None, "drain": result.to_dict()}


def run_sweeper(deps: Deps, context: Any) -> dict[str, Any]:
    """The scheduled function, every minute: sweep, publish the queue gauges, wake consumers.

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
    return {
        "sweep": report.to_dict() if report else None,
        "waiting": stats["waiting"],
        "woke": woke,
        "drain": result.to_dict(),
    }
