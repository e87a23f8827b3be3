"""Retention: uploads go N days after their job ends, results M days after.

`SOUNDCHECK_UPLOAD_RETENTION_DAYS` (default 30) and `SOUNDCHECK_RESULT_RETENTION_DAYS`
(default 365) count from a job's end (`completed_at`: completed, failed or
cancelled); 0 keeps forever. Queued and processing jobs have no end and are never
touched. The job row stays, so GET /api/jobs/{id} explains what went:

- uploads: `uploadsExpiredAt` is set; a failed job can no longer be retried
  (409 `uploads_expired`). Every upload the job names (main and reference) is
  deleted once no job whose uploads are kept still names it.
- result: a completed job becomes `expired`, its result (charts data included: it
  is all in the result JSON) is deleted, its share links are deleted, and its
  `error` is `result_expired`; `resultExpiredAt` says when.

One sweep works in batches of `BATCH` jobs, each batch one transaction whose rows
are taken `FOR UPDATE SKIP LOCKED`, until nothing is due or `BUDGET_S` is spent:
two sweepers at once take different jobs, and a sweep cut short (a crash, a
timeout) leaves its batch untouched for the next one, since the objects are deleted
inside the transaction that marks the rows and deleting twice is harmless.

Where the objects live decides who deletes them. The local store: this sweep,
and an orphan pass for files no kept job names (never submitted, or left behind
when DELETE /api/jobs/{id} could not delete them) once older than N days. S3: the
bucket's lifecycle rule (`s3_lifecycle`, docs/deploy.md), since the functions'
IAM policy grants no delete; this sweep still marks the rows.

The scheduled sweeper Lambda runs it every minute; the local stack and a
standalone worker every `PERIOD_S`, in a thread of its own (`start_thread`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pg8000.native

from chalicelib import logs
from chalicelib.errors import ResultExpired, StorageError
from chalicelib.jobs import _fetch, lock_owner_usage
from chalicelib.storage import LocalStorage, validate_key

if TYPE_CHECKING:
    from chalicelib.deps import Deps
    from chalicelib.jobs import JobStore
    from chalicelib.settings import Settings
    from chalicelib.storage import Storage

BATCH = 100  # jobs per transaction
BUDGET_S = 20.0  # one sweep's time (the sweeper Lambda has 60 s, shared with the queue sweep)
ORPHAN_BATCH = 500  # local files checked against Postgres per query
PERIOD_S = 60.0  # how often the local stack and a worker run it
PART_PREFIX = ".part-"  # an interrupted write's temporary file (chalicelib.storage)
SECONDS_PER_DAY = 86400.0


@dataclass(frozen=True)
class RetentionReport:
    """What one sweep removed; `finished` is False when its time ran out with work left."""

    results: int = 0  # completed jobs whose result went (now `expired`)
    shares: int = 0  # share links of those jobs
    upload_jobs: int = 0  # finished jobs whose uploads were marked expired
    uploads: int = 0  # objects deleted for them (0 on S3: the lifecycle rule deletes)
    orphans: int = 0  # local files no kept job names, deleted
    finished: bool = True

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @property
    def removed_anything(self) -> bool:
        return any((self.results, self.shares, self.upload_jobs, self.uploads, self.orphans))


def sweep(
    deps: Deps,
    *,
    batch: int = BATCH,
    budget_s: float = BUDGET_S,
    clock: Callable[[], float] = time.monotonic,
) -> RetentionReport:
    """Expire results, then uploads, then local orphans, until done or `budget_s` is spent."""
    settings = deps.settings
    deadline = clock() + budget_s

    def out_of_time() -> bool:
        return clock() >= deadline

    results = shares = upload_jobs = uploads = orphans = 0
    finished = True
    if settings.result_retention_days:
        days = settings.result_retention_days
        results, shares, finished = _in_batches(
            lambda: expire_results(deps.jobs, days, batch), batch, out_of_time
        )
    if settings.upload_retention_days and finished:
        days = settings.upload_retention_days
        upload_jobs, uploads, finished = _in_batches(
            lambda: expire_uploads(deps.jobs, deps.storage, days, batch), batch, out_of_time
        )
        if finished and isinstance(deps.storage, LocalStorage):
            orphans, finished = sweep_orphans(deps.jobs, deps.storage, days, out_of_time)
    return RetentionReport(results, shares, upload_jobs, uploads, orphans, finished)


def _in_batches(
    step: Callable[[], tuple[int, int]], batch: int, out_of_time: Callable[[], bool]
) -> tuple[int, int, bool]:
    """Run `step` (-> jobs, other count) until a batch comes back short or time is out:
    (jobs, other, finished)."""
    jobs = other = 0
    while True:
        done, more = step()
        jobs, other = jobs + done, other + more
        if done < batch:
            return jobs, other, True
        if out_of_time():
            return jobs, other, False


def sweep_logged(
    deps: Deps, who: str | None = None, budget_s: float = BUDGET_S
) -> RetentionReport | None:
    """sweep(), logged as `retention` when it removed something; None after logging
    `retention_error` (a database away for a moment must not stop the caller)."""
    by = {"consumer": who} if who else {}
    try:
        report = sweep(deps, budget_s=budget_s)
    except Exception as exc:
        logs.event("retention_error", **by, error=logs.describe(exc))
        return None
    if report.removed_anything or not report.finished:
        logs.event("retention", **by, **report.to_dict())
    return report


def expire_results(jobs: JobStore, days: int, batch: int = BATCH) -> tuple[int, int]:
    """Expire up to `batch` completed jobs that ended over `days` ago: (jobs, share links)."""
    error = ResultExpired(days)

    def work(conn: pg8000.native.Connection) -> tuple[int, int]:
        due = _fetch(
            conn,
            "SELECT CAST(id AS text) AS id, owner FROM jobs WHERE status = 'completed'"
            " AND completed_at < now() - make_interval(days => :days)"
            " ORDER BY completed_at LIMIT :batch FOR UPDATE SKIP LOCKED",
            {"days": days, "batch": batch},
        )
        if not due:
            return 0, 0
        ids = [row["id"] for row in due]
        lock_owner_usage(conn, (row["owner"] for row in due))
        conn.run(
            "UPDATE jobs SET status = 'expired', result = NULL, result_expired_at = now(),"
            " error_code = :code, error_message = :message, updated_at = now()"
            " WHERE id = ANY(CAST(:ids AS uuid[]))",
            ids=ids,
            code=error.code,
            message=error.message,
        )
        links = _fetch(
            conn,
            "DELETE FROM shares WHERE job_id = ANY(CAST(:ids AS uuid[])) RETURNING id",
            {"ids": ids},
        )
        return len(ids), len(links)

    return jobs._unit(work)


def expire_uploads(
    jobs: JobStore, storage: Storage, days: int, batch: int = BATCH
) -> tuple[int, int]:
    """Expire the uploads of up to `batch` jobs that ended over `days` ago: (jobs, objects).

    An upload another kept job still names (a file submitted twice) stays; it goes
    with the last job that names it. The objects are deleted before the rows are
    marked, in the same transaction: a crash in between leaves the rows for the
    next sweep, which deletes again (a no-op) and marks them.
    """

    def work(conn: pg8000.native.Connection) -> tuple[int, int]:
        rows = _fetch(
            conn,
            "SELECT CAST(id AS text) AS id, file_key, reference_file_key FROM jobs"
            " WHERE uploads_expired_at IS NULL"
            " AND status IN ('completed', 'failed', 'cancelled', 'expired')"
            " AND completed_at < now() - make_interval(days => :days)"
            " ORDER BY completed_at LIMIT :batch FOR UPDATE SKIP LOCKED",
            {"days": days, "batch": batch},
        )
        if not rows:
            return 0, 0
        ids = [row["id"] for row in rows]
        keys = list(
            dict.fromkeys(k for row in rows for k in (row["file_key"], row["reference_file_key"]))
        )
        keys = [k for k in keys if k]
        kept = _kept_keys(conn, keys, exclude=ids)
        gone = [k for k in keys if k not in kept]
        deleted = 0
        if storage.deletes_expired_uploads:
            for key in gone:
                deleted += _delete(storage, key)
        conn.run(
            "UPDATE jobs SET uploads_expired_at = now(), updated_at = now()"
            " WHERE id = ANY(CAST(:ids AS uuid[]))",
            ids=ids,
        )
        return len(ids), deleted

    return jobs._unit(work)


def _kept_keys(
    conn: pg8000.native.Connection, keys: list[str], exclude: list[str] | None = None
) -> set[str]:
    """The keys some job whose uploads are kept still names (jobs in `exclude` aside)."""
    if not keys:
        return set()
    rows = _fetch(
        conn,
        "SELECT k FROM unnest(CAST(:keys AS text[])) AS k WHERE EXISTS ("
        " SELECT 1 FROM jobs WHERE uploads_expired_at IS NULL"
        " AND id <> ALL(CAST(:exclude AS uuid[])) AND file_key = k)"
        " OR EXISTS (SELECT 1 FROM jobs WHERE uploads_expired_at IS NULL"
        " AND id <> ALL(CAST(:exclude AS uuid[])) AND reference_file_key = k)",
        {"keys": keys, "exclude": exclude or []},
    )
    return {row["k"] for row in rows}


def _delete(storage: Storage, key: str) -> int:
    """Delete one object; 0 for a key this service could not have made (nothing to
    delete) or one the store would not delete.

    A refusal is logged, not raised: it would roll the whole batch back, and the next
    sweep would take the same oldest rows again, so retention would stop for good.
    The row is marked all the same; on the local store the orphan pass tries the file
    again on every sweep.
    """
    try:
        validate_key(key)
    except StorageError:
        return 0
    try:
        storage.delete(key)
    except (OSError, StorageError) as exc:
        logs.event("retention_delete_failed", key=key, error=logs.describe(exc))
        return 0
    return 1


# Where the orphan pass stopped, per store root: the next pass starts after this owner
# folder, so a store too large for one budget is still covered, a slice at a time.
_orphan_cursor: dict[str, str] = {}


def sweep_orphans(
    jobs: JobStore, storage: LocalStorage, days: int, out_of_time: Callable[[], bool]
) -> tuple[int, bool]:
    """Delete local files older than `days` that no kept job names: (deleted, finished).

    Left-over `.part-` files of interrupted writes of that age go too. Time is
    checked between owner folders; an unfinished pass resumes after the last one.
    """
    cutoff = time.time() - days * SECONDS_PER_DAY
    root = str(storage.root)
    deleted = 0
    pending: list[str] = []
    current = ""

    def flush() -> int:
        kept = jobs._unit(lambda conn: _kept_keys(conn, pending))
        gone = [key for key in pending if key not in kept]
        for key in gone:
            storage.delete(key)
        pending.clear()
        return len(gone)

    for key, mtime, path in storage.uploads(after=_orphan_cursor.get(root, "")):
        owner_folder = key.split("/")[1]
        if owner_folder != current:
            if pending:
                deleted += flush()
            if current:
                _orphan_cursor[root] = current  # done with it
            current = owner_folder
            if out_of_time():
                return deleted, False
        if mtime >= cutoff:
            continue
        if path.name.startswith(PART_PREFIX):
            path.unlink(missing_ok=True)
            deleted += 1
            continue
        try:
            validate_key(key)
        except StorageError:
            continue  # not a key this service makes (someone's stray file): left alone
        pending.append(key)
        if len(pending) >= ORPHAN_BATCH:
            deleted += flush()
    if pending:
        deleted += flush()
    _orphan_cursor[root] = ""  # a whole pass: from the top next time
    return deleted, True


def start_thread(
    deps: Deps, stop: threading.Event, who: str | None = None, period_s: float = PERIOD_S
) -> threading.Thread:
    """Sweep now and every `period_s` until `stop`, in a daemon thread of its own.

    A worker runs it beside its claim loop, not inside it: a sweep takes up to
    BUDGET_S, during which the loop would claim nothing and a SIGTERM would wait.
    """

    def loop() -> None:
        while not stop.is_set():
            sweep_logged(deps, who)
            stop.wait(period_s)

    thread = threading.Thread(target=loop, name="retention", daemon=True)
    thread.start()
    return thread


def s3_lifecycle(settings: Settings) -> dict[str, Any] | None:
    """The bucket lifecycle configuration that expires uploads after the retention days.

    For `aws s3api put-bucket-lifecycle-configuration --lifecycle-configuration`;
    None when uploads are kept forever. S3 counts from an object's creation, not
    from its job's end: a job ends minutes after its upload, so the two agree
    but for a failed job retried later (docs/deploy.md).
    """
    days = settings.upload_retention_days
    if not days:
        return None
    return {
        "Rules": [
            {
                "ID": "soundcheck-upload-retention",
                "Filter": {"Prefix": f"{settings.storage_prefix}/"},
                "Status": "Enabled",
                "Expiration": {"Days": days},
                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
            }
        ]
    }
