"""The admin console's reads: overview, job lists, per-owner usage (docs/api.md "Admin routes").

Postgres is the truth about jobs; Redis adds what only the queue knows (who holds a
lease and for how long, when a delayed job is due, consumers, paused). Nothing here
scans all jobs: counts come from `owner_usage` (one row per owner), the 24-hour series
from `job_metrics` (hourly rows, pruned past 48 h), lists from an index, a page at a
time, newest first (`created_at DESC, id DESC`, keyset cursors). Migration 0006's
trigger keeps those tables in the same transaction as each job's change.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from chalicelib import errors, logs, rules
from chalicelib.api import JobFilter, Page, bad_request
from chalicelib.jobs import _LIST_COLUMNS, Job, _fetch, _job, iso_utc, parse_job_id

if TYPE_CHECKING:
    import pg8000.native

    from chalicelib.jobs import JobStore
    from chalicelib.queue import Queue

SERIES_HOURS = 24
# POST /api/admin/jobs/retry redrives at most this many jobs per call (one transaction,
# one audit row); `more: true` says to call again.
REDRIVE_BATCH = 100
WAIT_BINS_PER_OCTAVE = 4  # job_metrics.wait_bins: four bins per doubling of the wait
EXHAUSTED = errors.exhausted_codes()

# Each console state as a condition on `jobs` (rules.CONSOLE_STATES).
_STATE_SQL = {
    "waiting": "status = 'queued' AND (run_after IS NULL OR run_after <= now())",
    "delayed": "status = 'queued' AND run_after > now()",
    "active": "status = 'processing'",
    "completed": "status = 'completed'",
    "failed": "status = 'failed'"
    " AND NOT COALESCE(error_code = ANY(CAST(:exhausted AS text[])), false)",
    "dead": "status = 'failed' AND COALESCE(error_code = ANY(CAST(:exhausted AS text[])), false)",
    "cancelled": "status = 'cancelled'",
    "expired": "status = 'expired'",
}


def where(flt: JobFilter) -> tuple[str, dict[str, Any]]:
    """The filter as a SQL condition on `jobs` and its parameters (never input in the SQL)."""
    parts: list[str] = []
    params: dict[str, Any] = {}
    if flt.state is not None:
        parts.append(_STATE_SQL[flt.state])
        if flt.state in ("failed", "dead"):
            params["exhausted"] = EXHAUSTED
    if flt.owner is not None:
        parts.append("owner = :owner")
        params["owner"] = flt.owner
    if flt.code is not None:
        parts.append("error_code = :code")
        params["code"] = flt.code
    return " AND ".join(parts) or "true", params


def filter_detail(flt: JobFilter) -> dict[str, Any]:
    """The filter as an audit row's detail: only what was given."""
    return {"filter": {k: v for k, v in vars(flt).items() if v is not None}}


def state_of(job: Job, now: datetime) -> str:
    """A job's console state (rules.CONSOLE_STATES), from its row alone."""
    if job.status == "queued":
        return "delayed" if job.run_after is not None and job.run_after > now else "waiting"
    if job.status == "processing":
        return "active"
    if job.status == "failed":
        return "dead" if job.error_code in EXHAUSTED else "failed"
    return str(job.status)


# --- cursors: opaque to clients, base64url of JSON -----------------------------------


def _encode(value: Any) -> str:
    raw = json.dumps(value, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str) -> Any:
    try:
        return json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except ValueError:
        raise bad_request("invalid_field", "cursor must be the `next` of an earlier page") from None


def _job_cursor(cursor: str) -> tuple[datetime, str]:
    value = _decode(cursor)
    try:
        at, job_id = value
        when = datetime.fromisoformat(at)
        if when.tzinfo is None or parse_job_id(job_id) is None:
            raise ValueError(cursor)
        # In UTC, as `next` writes it: Python takes offsets up to +-24 h, Postgres +-15:59
        # (a forged "+23:59" was a 503); past year 9999 in UTC is OverflowError.
        when = when.astimezone(UTC)
    except (TypeError, ValueError, OverflowError):
        raise bad_request("invalid_field", "cursor must be the `next` of an earlier page") from None
    return when, str(job_id)


# --- GET /api/admin/jobs ----------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    """One delivery of a job (table job_attempts)."""

    attempt: int
    run: int
    consumer: str | None
    started_at: datetime
    ended_at: datetime | None
    outcome: str | None
    error_code: str | None
    error_message: str | None

    def to_api(self) -> dict[str, Any]:
        error = None
        if self.error_code is not None:
            error = {"code": self.error_code, "message": self.error_message or ""}
        return {
            "attempt": self.attempt,
            "run": self.run,
            "consumer": self.consumer,
            "startedAt": iso_utc(self.started_at),
            "endedAt": iso_utc(self.ended_at),
            "outcome": self.outcome,
            "error": error,
        }


def list_jobs(
    store: JobStore, queue: Queue, flt: JobFilter, page: Page
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of jobs matching `flt`, newest first, each with its attempts; and the
    cursor of the next page (None on the last). Redis adds lease and due times when
    it answers; without it those read null and the rest still comes from Postgres."""
    condition, params = where(flt)
    if page.cursor is not None:
        at, job_id = _job_cursor(page.cursor)
        condition += (
            " AND (created_at, id) < (CAST(:after_at AS timestamptz), CAST(:after_id AS uuid))"
        )
        params.update(after_at=at.isoformat(), after_id=job_id)
    params["limit"] = page.limit + 1

    def work(
        conn: pg8000.native.Connection,
    ) -> tuple[datetime, list[dict[str, Any]], list[dict[str, Any]]]:
        now = _fetch(conn, "SELECT now() AS now", {})[0]["now"]
        rows = _fetch(
            conn,
            f"SELECT {_LIST_COLUMNS} FROM jobs WHERE {condition}"
            f" ORDER BY created_at DESC, id DESC LIMIT :limit",
            params,
        )
        ids = [str(row["id"]) for row in rows[: page.limit]]
        attempts = _fetch(
            conn,
            "SELECT job_id, attempt, run, consumer, started_at, ended_at, outcome,"
            " error_code, error_message FROM job_attempts"
            " WHERE job_id = ANY(CAST(:ids AS uuid[])) ORDER BY job_id, started_at, token",
            {"ids": ids},
        )
        return now, rows, attempts

    now, rows, attempt_rows = store._unit(work)
    jobs = [_job(row) for row in rows[: page.limit]]
    by_job: dict[str, list[Attempt]] = {}
    for row in attempt_rows:
        attempt = Attempt(**{f.name: row[f.name] for f in fields(Attempt)})
        by_job.setdefault(str(row["job_id"]), []).append(attempt)
    unfinished = [job.id for job in jobs if job.status in ("queued", "processing")]
    redis_now, views = _inspect(queue, unfinished)
    out = [
        _row(job, state_of(job, now), now, by_job.get(job.id, []), views, redis_now) for job in jobs
    ]
    following = None
    if len(rows) > page.limit:
        last = jobs[-1]
        following = _encode([last.created_at.astimezone(UTC).isoformat(), last.id])
    return out, following


def _inspect(queue: Queue, ids: list[str]) -> tuple[int, dict[str, Any]]:
    try:
        return queue.inspect(ids)
    except Exception as exc:  # Redis away: the lists still show what Postgres knows
        logs.event("console_inspect_failed", error=logs.describe(exc))
        return 0, {}


def _left(until_ms: int | None, now_ms: int) -> int | None:
    return None if until_ms is None else max(0, until_ms - now_ms)


def _at(ms: int | None) -> str | None:
    return None if ms is None else iso_utc(datetime.fromtimestamp(ms / 1000, UTC))


def _row(
    job: Job,
    state: str,
    now: datetime,
    attempts: list[Attempt],
    views: dict[str, Any],
    redis_now: int,
) -> dict[str, Any]:
    view = views.get(job.id)
    active = state == "active"
    lease_left = _left(view.lease_until_ms, redis_now) if active and view is not None else None
    next_run = None
    if state == "delayed":
        due = view.due_ms if view is not None else None
        next_run = _at(due) if due is not None else iso_utc(job.run_after)
    error = None
    if job.error_code is not None:
        error = {"code": job.error_code, "message": job.error_message or ""}
    consumer = None
    if active:
        consumer = view.consumer if view is not None and view.consumer else job.consumer
    return {
        "jobId": job.id,
        "owner": job.owner,
        "status": str(job.status),
        "state": state,
        "queueState": view.state if view is not None else None,
        "mode": job.mode,
        "genre": job.genre,
        "fileName": job.file_name,
        "createdAt": iso_utc(job.created_at),
        "startedAt": iso_utc(job.started_at),
        "completedAt": iso_utc(job.completed_at),
        "ageSeconds": round(max(0.0, (now - job.created_at).total_seconds()), 3),
        "priority": job.priority,
        "consumer": consumer,
        "leaseLeftMs": lease_left,
        "attempt": job.attempts,
        "retries": job.retries,
        "progress": job.progress if active else None,
        "nextRunAt": next_run,
        "error": error,
        "attempts": [a.to_api() for a in attempts],
    }


# --- GET /api/admin/overview ----------------------------------------------------------


def percentile_ms(bins: list[int], fraction: float) -> int | None:
    """The wait at `fraction` (0..1) of a job_metrics histogram, to the bin's geometric
    middle (within 9 %); None for an empty one."""
    total = sum(bins)
    if total == 0:
        return None
    rank = fraction * total
    seen = 0
    for index, n in enumerate(bins):
        seen += n
        if n and seen >= rank:
            return round(2 ** ((index + 0.5) / WAIT_BINS_PER_OCTAVE))
    return round(2 ** ((len(bins) - 0.5) / WAIT_BINS_PER_OCTAVE))


def overview(store: JobStore, queue: Queue) -> dict[str, Any]:
    """Counts per state, paused, consumers, and the last 24 hours by the hour."""

    def work(conn: pg8000.native.Connection) -> tuple[datetime, list[dict[str, Any]]]:
        hour = _fetch(conn, "SELECT date_trunc('hour', now()) AS hour", {})[0]["hour"]
        series = _fetch(
            conn,
            "SELECT bucket, completed, failed, retried, started, wait_bins FROM job_metrics"
            " WHERE bucket > date_trunc('hour', now()) - make_interval(hours => :hours)",
            {"hours": SERIES_HOURS},
        )
        return hour, series

    hour, rows = store._unit(work)
    counts = store.counts()
    stats = queue.stats(top=1)
    redis_now, consumers = queue.consumers()
    buckets: dict[datetime, dict[str, Any]] = {}
    for offset in range(SERIES_HOURS - 1, -1, -1):
        start = hour - timedelta(hours=offset)
        buckets[start] = {"completed": 0, "failed": 0, "retried": 0, "started": 0, "bins": []}
    for row in rows:
        slot = buckets.get(row["bucket"])
        if slot is None:
            continue
        for name in ("completed", "failed", "retried", "started"):
            slot[name] += int(row[name])
        bins = slot["bins"]
        for index, n in enumerate(row["wait_bins"]):
            if index < len(bins):
                bins[index] += n
            else:
                bins.append(n)
    return {
        "counts": {
            "queued": int(counts["queued"]),
            "processing": int(counts["processing"]),
            "delayed": int(stats["delayed"]),
            "completed": int(counts["completed"]),
            "failed": int(counts["failed"]),
            "dead": int(stats["dead"]),
            "cancelled": int(counts["cancelled"]),
            "expired": int(counts.get("expired", 0)),
        },
        "queue": {
            "name": stats["name"],
            "waiting": int(stats["waiting"]),
            "delayed": int(stats["delayed"]),
            "active": int(stats["active"]),
            "dead": int(stats["dead"]),
            "oldestWaitingAgeMs": stats["oldestWaitingAgeMs"],
        },
        "paused": bool(stats["paused"]),
        "consumers": [
            {
                "consumer": c.consumer,
                "jobs": c.jobs,
                "leaseLeftMs": _left(c.lease_until_ms, redis_now),
                "lastSeenAt": _at(c.last_seen_ms),
            }
            for c in consumers
        ],
        "series": {
            "bucketSeconds": 3600,
            "buckets": [
                {
                    "start": iso_utc(start),
                    "completed": slot["completed"],
                    "failed": slot["failed"],
                    "retried": slot["retried"],
                    "started": slot["started"],
                    "waitMsP50": percentile_ms(slot["bins"], 0.5),
                    "waitMsP95": percentile_ms(slot["bins"], 0.95),
                }
                for start, slot in buckets.items()
            ],
        },
    }


# --- GET /api/admin/owners -------------------------------------------------------------


def owners(store: JobStore, page: Page) -> tuple[list[dict[str, Any]], str | None]:
    """Owners (of jobs or of keys) in name order: role, jobs per status, audio seconds
    analysed, last submission; and the next page's cursor."""
    after = None
    if page.cursor is not None:
        after = _decode(page.cursor)
        if not isinstance(after, str):
            raise bad_request("invalid_field", "cursor must be the `next` of an earlier page")
        rules.storable(after, "cursor", errors.ApiError)  # forged: NUL, a lone surrogate
    rows = store._rows(
        f"WITH names AS ("
        " SELECT owner FROM owner_usage WHERE CAST(:after AS text) IS NULL OR owner > :after"
        " UNION SELECT owner FROM api_keys WHERE CAST(:after AS text) IS NULL OR owner > :after"
        " ORDER BY owner LIMIT :limit)"
        f" SELECT n.owner, {', '.join('u.' + status for status in rules.STATUSES)},"
        " u.audio_seconds, u.last_submitted_at,"
        " (SELECT CASE WHEN bool_or(k.role = 'admin') THEN 'admin' ELSE min(k.role) END"
        "  FROM api_keys k WHERE k.owner = n.owner AND k.revoked_at IS NULL"
        "  AND (k.expires_at IS NULL OR k.expires_at > now())) AS role"
        " FROM names n LEFT JOIN owner_usage u ON u.owner = n.owner ORDER BY n.owner",
        after=after,
        limit=page.limit + 1,
    )
    out = [
        {
            "owner": row["owner"],
            "role": row["role"],
            "jobs": {name: int(row[name] or 0) for name in rules.STATUSES},
            "audioSeconds": round(float(row["audio_seconds"] or 0.0), 3),
            "lastSubmittedAt": iso_utc(row["last_submitted_at"]),
        }
        for row in rows[: page.limit]
    ]
    following = _encode(out[-1]["owner"]) if len(rows) > page.limit else None
    return out, following
