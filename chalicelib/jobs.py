"""The Postgres job store (pg8000) and the job state machine.

Postgres is the truth about jobs; Redis only says what to run next. Every write a
consumer makes is fenced by the lease token of its queue claim
(`WHERE lease_token = :token`), so a consumer whose lease was lost writes nothing.

    queued --start--> processing --complete--> completed
       ^                  |  \\--fail(final)--> failed --retry--> queued
       +--fail(not final)-+
    queued | processing --cancel--> cancelled (every write above then matches no row)
    completed --retention--> expired (result deleted; chalicelib/retention.py)
    completed | failed | cancelled | expired --delete_finished--> (row gone)
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import uuid
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pg8000.exceptions
import pg8000.native

from chalicelib import rules
from chalicelib.db import connect
from chalicelib.errors import (
    IdempotencyConflict,
    InvalidJobInput,
    JobNotFound,
    JobNotRetryable,
    shown,
)
from chalicelib.rules import JobStatus
from chalicelib.settings import Settings

if TYPE_CHECKING:
    from chalicelib.audit import Action

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
MAX_RETRIES = 5  # POST /api/jobs/{id}/retry of one job; each retry runs up to max_attempts
_MIGRATION_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# Server errors that mean "this connection is gone", worth one reconnect.
_CONNECTION_LOST = {"57P01", "57P02", "57P03", "08000", "08003", "08006"}
T = TypeVar("T")

# What a retry resets: the job is queued afresh (attempts, stalls and failures from 0).
_REQUEUE = (
    "status = 'queued', progress = 0, attempts = 0, stalls = 0, failures = 0,"
    " retries = retries + 1, error_code = NULL, error_message = NULL, result = NULL,"
    " started_at = NULL, completed_at = NULL, run_after = NULL, updated_at = now()"
)

_COLUMNS = (
    "id, owner, mode, genre, file_key, file_name, reference_file_key, reference_job_id, "
    "priority, status, progress, attempts, lease_token, error_code, error_message, result, "
    "idempotency_key, request_hash, created_at, updated_at, started_at, completed_at, "
    "stalls, failures, callback_url, consumer, run_after, retries, uploads_expired_at,"
    " result_expired_at"
)
# A job's columns without its result (lists: a result can be hundreds of kilobytes).
_LIST_COLUMNS = _COLUMNS.replace(" result,", " NULL AS result,")


class RetryLimit(JobNotRetryable):
    """The job was retried MAX_RETRIES times already (HTTP 409): submit it anew."""

    code = "retry_limit"
    status = 409


class UploadsExpired(JobNotRetryable):
    """Retention deleted the failed job's uploads (HTTP 409): upload and submit anew."""

    code = "uploads_expired"
    status = 409


@dataclass(frozen=True)
class JobSpec:
    """What a client asked for; the store adds identity, state and timestamps."""

    owner: str
    mode: str
    genre: str | None
    file_key: str
    file_name: str | None
    reference_file_key: str | None
    reference_job_id: str | None
    priority: int = 0
    callback_url: str | None = None  # checked by chalicelib.webhooks.urls before it gets here

    def request_hash(self) -> str:
        """A digest of the request, to tell a replay from a conflicting reuse of a key."""
        fields = asdict(self)
        if fields["callback_url"] is None:  # the digest of a request made before callbacks
            del fields["callback_url"]
        canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Job:
    id: str
    owner: str
    mode: str
    genre: str | None
    file_key: str
    file_name: str | None
    reference_file_key: str | None
    reference_job_id: str | None
    priority: int
    status: JobStatus
    progress: int
    attempts: int
    lease_token: int | None
    error_code: str | None
    error_message: str | None
    result: dict[str, Any] | None
    idempotency_key: str | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    # Deliveries that never reported back (consumer died, lost its lease, was stopped, or
    # ran past the per-job ceiling). Counted here, not only in Redis, so a Redis that
    # restarts empty cannot hand a job a fresh set of tries.
    stalls: int = 0
    failures: int = 0  # deliveries that reported an error; SOUNDCHECK_MAX_ATTEMPTS caps them
    callback_url: str | None = None  # where its job.completed / job.failed event goes
    consumer: str | None = None  # who took it last (the consumer of its current claim)
    run_after: datetime | None = None  # a retry's backoff: not to run before this
    retries: int = 0  # times it was retried after failing (POST .../retry)
    # Set by retention (chalicelib/retention.py) when it deleted the uploads / the result.
    uploads_expired_at: datetime | None = None
    result_expired_at: datetime | None = None

    def to_api(self, include_result: bool = True) -> dict[str, Any]:
        """The DESIGN "GET /api/jobs/{id}" body: camelCase, UTC 'Z' timestamps."""
        body: dict[str, Any] = {
            "jobId": self.id,
            "status": self.status,
            "mode": self.mode,
            "genre": self.genre,
            "fileName": self.file_name,
            "progress": self.progress,
            "attempts": self.attempts,
            "createdAt": iso_utc(self.created_at),
            "startedAt": iso_utc(self.started_at),
            "completedAt": iso_utc(self.completed_at),
        }
        if self.error_code is not None:
            body["error"] = {"code": self.error_code, "message": self.error_message or ""}
        if self.uploads_expired_at is not None:
            body["uploadsExpiredAt"] = iso_utc(self.uploads_expired_at)
        if self.result_expired_at is not None:
            body["resultExpiredAt"] = iso_utc(self.result_expired_at)
        if include_result and self.result is not None:
            body["result"] = self.result
        return body


def iso_utc(value: datetime | None) -> str | None:
    """ISO-8601 in UTC with a 'Z', millisecond precision (what JavaScript's Date prints)."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_job_id(value: object) -> str | None:
    """The canonical form of a job id, or None when it is not a UUID."""
    if not isinstance(value, str) or not 32 <= len(value) <= 36:
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def migrations(directory: Path = MIGRATIONS_DIR) -> list[tuple[str, str, str]]:
    """(version, name, sql) of every migration file, in order."""
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = _MIGRATION_FILE.match(path.name)
        if not match:
            raise ValueError(f"migration file {path.name!r} is not named NNNN_name.sql")
        found.append((match[1], match[2], path.read_text(encoding="utf-8")))
    versions = [v for v, _, _ in found]
    if len(set(versions)) != len(versions):
        raise ValueError(f"two migrations share a number in {directory}")
    return found


def _validate(spec: JobSpec, idempotency_key: str | None) -> None:
    """The store's own guard: the same rules (chalicelib.rules) the API checks at the door."""
    if not isinstance(spec.owner, str) or not spec.owner:
        raise InvalidJobInput("invalid_owner", "owner must be a non-empty string")
    rules.mode(spec.mode, InvalidJobInput)
    if not isinstance(spec.file_key, str) or not 0 < len(spec.file_key) <= rules.MAX_FILE_KEY:
        raise InvalidJobInput(
            "invalid_file_key", f"fileKey must be a string of 1-{rules.MAX_FILE_KEY} characters"
        )
    if spec.file_name is not None:
        rules.text(spec.file_name, "fileName", rules.MAX_FILE_NAME, InvalidJobInput)
    if spec.genre is not None:
        rules.text(spec.genre, "genre", rules.MAX_GENRE, InvalidJobInput)
    if spec.mode == rules.Mode.REFERENCE and not (spec.reference_file_key or spec.reference_job_id):
        raise InvalidJobInput(
            "missing_reference", "mode 'reference' needs referenceFileKey or referenceJobId"
        )
    if spec.reference_file_key is not None and (
        not isinstance(spec.reference_file_key, str)
        or not 0 < len(spec.reference_file_key) <= rules.MAX_FILE_KEY
    ):
        raise InvalidJobInput(
            "invalid_file_key",
            f"referenceFileKey must be a string of 1-{rules.MAX_FILE_KEY} characters",
        )
    if spec.reference_job_id is not None and parse_job_id(spec.reference_job_id) is None:
        raise InvalidJobInput("invalid_field", "referenceJobId must be a job id (a UUID)")
    rules.priority(spec.priority, InvalidJobInput)
    if spec.callback_url is not None:
        rules.text(spec.callback_url, "callbackUrl", rules.MAX_CALLBACK_URL, InvalidJobInput)
    if idempotency_key is not None:
        rules.idempotency_key(idempotency_key, InvalidJobInput)


def _job(row: dict[str, Any]) -> Job:
    values = {k: v for k, v in row.items() if k != "request_hash"}
    values["id"] = str(values["id"])
    values["status"] = JobStatus(values["status"])
    if values["reference_job_id"] is not None:
        values["reference_job_id"] = str(values["reference_job_id"])
    return Job(**values)


def _fetch(
    conn: pg8000.native.Connection, sql: str, params: dict[str, Any]
) -> list[dict[str, Any]]:
    rows = conn.run(sql, **params)
    names = [c["name"] for c in conn.columns or []]
    return [dict(zip(names, row, strict=True)) for row in rows or ()]


def lock_owner_usage(conn: pg8000.native.Connection, owners: Iterable[str]) -> None:
    """Take the `owner_usage` rows of `owners` in owner order, before a statement that
    changes several owners' jobs at once.

    Migration 0006's trigger updates a job's owner row for every change of its
    status, in whatever order the statement visits the jobs; two such statements
    over shared owners (a retention batch, a redrive) would otherwise deadlock.
    """
    conn.run(
        "SELECT 1 FROM owner_usage WHERE owner = ANY(:owners) ORDER BY owner FOR UPDATE",
        owners=sorted(set(owners)),
    )


def _create_schema(conn: pg8000.native.Connection, schema: str) -> None:
    """CREATE SCHEMA IF NOT EXISTS, where a concurrent creator's win counts as done."""
    if schema == "public":
        return
    conn.run("SAVEPOINT create_schema")
    try:
        conn.run(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    except pg8000.exceptions.DatabaseError as exc:
        # IF NOT EXISTS is not atomic: the loser of a race gets a unique violation.
        if not (exc.args and isinstance(exc.args[0], dict) and exc.args[0].get("C") == "23505"):
            raise
        conn.run("ROLLBACK TO SAVEPOINT create_schema")


def _close_quietly(conn: pg8000.native.Connection) -> None:
    with suppress(Exception):
        conn.close()


class JobStore:
    """Jobs and API keys in Postgres.

    Thread-safe through a small pool: a statement borrows an idle connection (or
    opens one) and gives it back, so a server that starts a thread per request
    holds as many connections as it runs statements at once, never one per thread
    it ever started ("too many clients"). A dropped connection (Postgres
    restarted, a managed database's idle timeout) is reopened once and the
    statement re-run; the idle ones are dropped too, as they died with it.
    Re-running never does harm: `create` inserts an id made here (so a re-run finds
    its own row), and the fenced writes at worst report False for a write that did
    land, which the consumer treats like a lost lease and the sweeper repairs.
    """

    def __init__(
        self,
        database_url: str,
        schema: str = "public",
        *,
        timeout: float = 10.0,
        max_idle: int = 4,
        application_name: str = "soundcheck",
    ):
        if not schema.isidentifier() or schema != schema.lower():
            raise ValueError(f"schema must be a lower-case identifier, got {schema!r}")
        self.database_url = database_url
        self.schema = schema
        self.application_name = application_name
        self._timeout = timeout
        self._max_idle = max_idle
        self._lock = threading.Lock()
        self._idle: list[pg8000.native.Connection] = []

    @classmethod
    def from_settings(cls, settings: Settings) -> JobStore:
        return cls(settings.require("database_url"), settings.db_schema)

    # --- connections -------------------------------------------------------

    def _connect(self) -> pg8000.native.Connection:
        # No schema here: a session's search_path would not survive a transaction
        # pooler. Each unit of work sets it for its own transaction (`_unit`).
        return connect(
            self.database_url,
            timeout=self._timeout,
            application_name=self.application_name,
        )

    def _borrow(self) -> pg8000.native.Connection:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return self._connect()

    def _give_back(self, conn: pg8000.native.Connection) -> None:
        with self._lock:
            if len(self._idle) < self._max_idle:
                self._idle.append(conn)
                return
        _close_quietly(conn)

    def _drop(self, conn: pg8000.native.Connection) -> None:
        """Close a broken connection and every idle one: they share its fate."""
        with self._lock:
            stale, self._idle = self._idle, []
        for each in (conn, *stale):
            _close_quietly(each)

    def _unit(self, work: Callable[[pg8000.native.Connection], T]) -> T:
        """Run `work(conn)` as one unit of work: one explicit transaction, committed.

        The transaction opens with `BEGIN; SET LOCAL search_path` in one simple-query
        round trip, so nothing rests on session state: through a transaction pooler
        (PgBouncer, RDS Proxy, Neon's and Supabase's poolers) the next unit may get
        another server connection. Inside the transaction the pooler keeps ours, so
        pg8000's Parse / Describe / Bind+Execute round trips (each ends in a Sync)
        reach the one server that holds the unnamed statement they refer to.
        A lost connection re-runs the whole unit once on a fresh one.
        """
        begin = f'BEGIN; SET LOCAL search_path TO "{self.schema}"'
        for attempt in (1, 2):
            conn = self._borrow()
            try:
                try:
                    conn.run(begin)
                    result = work(conn)
                except pg8000.exceptions.DatabaseError:
                    conn.run("ROLLBACK")
                    raise
                conn.run("COMMIT")
            except (pg8000.exceptions.InterfaceError, OSError):
                # pg8000 reports a broken socket as either, depending on where it broke.
                self._drop(conn)
                if attempt == 2:
                    raise
                continue
            except pg8000.exceptions.DatabaseError as exc:
                details = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
                if details.get("C") not in _CONNECTION_LOST:
                    self._give_back(conn)  # an error in the statement, rolled back
                    raise
                self._drop(conn)
                if attempt == 2:
                    raise
                continue
            except BaseException:
                _close_quietly(conn)  # interrupted mid-transaction: its state is unknown
                raise
            self._give_back(conn)
            return result
        raise AssertionError("unreachable")

    def _rows(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        """Run one statement as its own unit of work and return rows as dicts."""
        return self._unit(lambda conn: _fetch(conn, sql, params))

    def close(self) -> None:
        """Close the idle connections; statements still running give theirs back later."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            _close_quietly(conn)

    def ping(self) -> bool:
        """True when Postgres answers (for /health/ready)."""
        try:
            return self._rows("SELECT 1 AS ok")[0]["ok"] == 1
        except (pg8000.exceptions.Error, OSError):
            return False

    # --- migrations --------------------------------------------------------

    def migrate(self, directory: Path = MIGRATIONS_DIR) -> list[str]:
        """Apply the migrations not yet recorded, in order; return their names.

        Safe to run twice and from two processes at once: one transaction holds a
        transaction-level advisory lock (`pg_advisory_xact_lock`; a session lock
        would outlive the transaction on a pooled server connection, or be released
        on another one), so migrators take turns and the second finds nothing to do.
        Each migration and its record sit behind a savepoint: a failing one leaves
        nothing of itself, the ones before it stay applied, and the error is raised.
        """
        pending = migrations(directory)
        self._unit(lambda conn: _create_schema(conn, self.schema))
        failure: list[BaseException] = []

        def apply(conn: pg8000.native.Connection) -> list[str]:
            conn.run(
                "SELECT pg_advisory_xact_lock(hashtext(:key))",
                key="soundcheck.migrate." + self.schema,
            )
            conn.run(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {row[0] for row in conn.run("SELECT version FROM schema_migrations")}
            applied: list[str] = []
            for version, name, sql in pending:
                if version in done:
                    continue
                conn.run("SAVEPOINT migration")
                try:
                    conn.run(sql)
                    conn.run(
                        "INSERT INTO schema_migrations (version, name) VALUES (:v, :n)",
                        v=version,
                        n=name,
                    )
                except pg8000.exceptions.DatabaseError as exc:
                    conn.run("ROLLBACK TO SAVEPOINT migration")
                    failure.append(exc)
                    break
                conn.run("RELEASE SAVEPOINT migration")
                applied.append(f"{version}_{name}")
            return applied

        applied = self._unit(apply)
        if failure:
            raise failure[0]
        return applied

    # --- jobs ----------------------------------------------------------------

    def create(self, spec: JobSpec, idempotency_key: str | None = None) -> tuple[Job, bool]:
        """Insert a queued job; return (job, created).

        With an idempotency key already used by this owner: the same request gives
        (the existing job, False), a different one raises IdempotencyConflict.
        """
        _validate(spec, idempotency_key)
        job_id = str(uuid.uuid4())  # made here, so re-running the INSERT is harmless
        request_hash = spec.request_hash()
        rows = self._rows(
            f"INSERT INTO jobs (id, owner, mode, genre, file_key, file_name,"
            f" reference_file_key, reference_job_id, priority, idempotency_key, request_hash,"
            f" callback_url)"
            f" VALUES (CAST(:id AS uuid), :owner, :mode, :genre, :file_key, :file_name,"
            f" :reference_file_key, CAST(:reference_job_id AS uuid), :priority, :key, :hash,"
            f" :callback_url)"
            f" ON CONFLICT DO NOTHING RETURNING {_COLUMNS}",
            id=job_id,
            owner=spec.owner,
            mode=spec.mode,
            genre=spec.genre,
            file_key=spec.file_key,
            file_name=spec.file_name,
            reference_file_key=spec.reference_file_key,
            reference_job_id=parse_job_id(spec.reference_job_id),
            priority=spec.priority,
            key=idempotency_key,
            hash=request_hash,
            callback_url=spec.callback_url,
        )
        if rows:
            return _job(rows[0]), True
        # Nothing inserted: our own INSERT already ran (a reconnect re-ran it), or the key is taken.
        rows = self._rows(
            f"SELECT {_COLUMNS} FROM jobs WHERE id = CAST(:id AS uuid)"
            f" OR (owner = :owner AND idempotency_key = :key)",
            id=job_id,
            owner=spec.owner,
            key=idempotency_key,
        )
        if not rows:
            raise RuntimeError("job insert conflicted with a row that is now gone")
        row = rows[0]
        if str(row["id"]) == job_id:
            return _job(row), True
        if row["request_hash"] != request_hash:
            raise IdempotencyConflict(
                "this Idempotency-Key was already used for a different request"
            )
        return _job(row), False

    def get(self, job_id: str, owner: str | None = None) -> Job | None:
        """The job, or None if it does not exist, the id is malformed, or owner differs."""
        canonical = parse_job_id(job_id)
        if canonical is None:
            return None
        rows = self._rows(
            f"SELECT {_COLUMNS} FROM jobs WHERE id = CAST(:id AS uuid)"
            f" AND (CAST(:owner AS text) IS NULL OR owner = :owner)",
            id=canonical,
            owner=owner,
        )
        return _job(rows[0]) if rows else None

    def list_for_owner(
        self, owner: str, status: str | None = None, limit: int = rules.DEFAULT_LIST_LIMIT
    ) -> list[Job]:
        """An owner's jobs, newest first, optionally with one status."""
        if status is not None:
            rules.status(status, InvalidJobInput)
        rules.list_limit(limit, InvalidJobInput)
        rows = self._rows(
            f"SELECT {_COLUMNS} FROM jobs WHERE owner = :owner"
            f" AND (CAST(:status AS text) IS NULL OR status = :status)"
            f" ORDER BY created_at DESC, id DESC LIMIT :limit",
            owner=owner,
            status=status,
            limit=limit,
        )
        return [_job(row) for row in rows]

    def start(
        self, job_id: str, token: int, attempt: int | None = None, consumer: str | None = None
    ) -> Job | None:
        """Take the job for the claim with `token`; None if done or a newer claim has it.

        A newer token takes over a `processing` job from an older one (its lease
        expired and the queue handed the job out again, or Redis lost the claim):
        that earlier delivery never reported back, so it counts as a stall.
        Postgres counts attempts and stalls itself: attempts is one more than
        before, or the queue's `attempt` if that is larger (a claim whose consumer
        died before it got here); a Redis that restarted empty, counting from 1
        again, cannot lower it. `consumer` names the claim's consumer (the console
        lists it; migration 0006's trigger records the delivery in `job_attempts`).
        """
        rows = self._rows(
            f"UPDATE jobs SET status = 'processing', lease_token = :token,"
            f" attempts = GREATEST(attempts + 1, COALESCE(CAST(:attempt AS integer), 0)),"
            f" stalls = stalls + CASE WHEN status = 'processing' THEN 1 ELSE 0 END,"
            f" progress = 0, started_at = now(), updated_at = now(),"
            f" consumer = CAST(:consumer AS text), run_after = NULL"
            f" WHERE id = CAST(:id AS uuid) AND status IN ('queued', 'processing')"
            f" AND (lease_token IS NULL OR lease_token < :token)"
            f" RETURNING {_COLUMNS}",
            id=parse_job_id(job_id),
            token=token,
            attempt=attempt,
            consumer=consumer[:200] if consumer else None,
        )
        return _job(rows[0]) if rows else None

    def stall(
        self, job_id: str, token: int, code: str, message: str, max_stalls: int
    ) -> JobStatus | None:
        """Count a stall the consumer itself noticed (it ran past its ceiling); None if fenced.

        The job goes back to `queued` with this error (the queue reclaims it once the
        lease runs out), or to `failed` when this was its `max_stalls`-th stall.
        Returns the new status.
        """
        rows = self._rows(
            "UPDATE jobs SET stalls = stalls + 1,"
            " status = CASE WHEN stalls + 1 >= :max THEN 'failed' ELSE 'queued' END,"
            " completed_at = CASE WHEN stalls + 1 >= :max THEN now() ELSE NULL END,"
            " error_code = :code, error_message = :message, updated_at = now()"
            " WHERE id = CAST(:id AS uuid) AND lease_token = :token AND status = 'processing'"
            " RETURNING status",
            id=parse_job_id(job_id),
            token=token,
            code=code,
            message=message[:2000],
            max=int(max_stalls),
        )
        return JobStatus(rows[0]["status"]) if rows else None

    def set_progress(self, job_id: str, token: int, progress: int) -> bool:
        """Record progress (clamped to 0-100); False when the lease was lost."""
        rows = self._rows(
            "UPDATE jobs SET progress = :progress, updated_at = now()"
            " WHERE id = CAST(:id AS uuid) AND lease_token = :token AND status = 'processing'"
            " RETURNING id",
            id=parse_job_id(job_id),
            token=token,
            progress=max(0, min(100, int(progress))),
        )
        return bool(rows)

    def complete(self, job_id: str, token: int, result: dict[str, Any]) -> bool:
        """Store the result; False (nothing written) when the lease was lost."""
        payload = json.dumps(result, allow_nan=False, separators=(",", ":"))
        rows = self._rows(
            "UPDATE jobs SET status = 'completed', progress = 100, result = CAST(:result AS jsonb),"
            " error_code = NULL, error_message = NULL, completed_at = now(), updated_at = now()"
            " WHERE id = CAST(:id AS uuid) AND lease_token = :token AND status = 'processing'"
            " RETURNING id",
            id=parse_job_id(job_id),
            token=token,
            result=payload,
        )
        return bool(rows)

    def fail(
        self,
        job_id: str,
        token: int | None,
        code: str,
        message: str,
        final: bool,
        *,
        attempts: int | None = None,
        retry_at_ms: int | None = None,
    ) -> bool:
        """Record a failure; False when the lease was lost.

        final: the job is `failed`. Not final: a retry waits in the queue, so the
        job reads `queued` with its attempts and this error. `token=None` matches a
        job never started (the sweeper failing a job the queue gave up on).
        `attempts`, when given, must match too: `retry` keeps the token (so older
        claims stay fenced out) but resets attempts to 0, so a failure decided from
        a read made before a retry cannot fail the retried job. `retry_at_ms` (Unix
        ms, the queue's due time) is when a job that is not final runs again: the
        console tells `delayed` from `waiting` by it.
        """
        rows = self._rows(
            "UPDATE jobs SET status = CASE WHEN :final THEN 'failed' ELSE 'queued' END,"
            " failures = failures + 1,"
            " error_code = :code, error_message = :message,"
            " completed_at = CASE WHEN :final THEN now() ELSE NULL END, updated_at = now(),"
            " run_after = CASE WHEN :final THEN NULL"
            " ELSE to_timestamp(CAST(:retry_at AS double precision) / 1000) END"
            " WHERE id = CAST(:id AS uuid) AND status IN ('queued', 'processing')"
            " AND lease_token IS NOT DISTINCT FROM :token"
            " AND (CAST(:attempts AS integer) IS NULL OR attempts = :attempts)"
            " RETURNING id",
            id=parse_job_id(job_id),
            token=token,
            attempts=attempts,
            code=code,
            message=message[:2000],
            final=bool(final),
            retry_at=retry_at_ms,
        )
        return bool(rows)

    def retry(self, job_id: str, owner: str | None, *, audit: Action | None = None) -> Job:
        """Queue a failed job again (error cleared, attempts from zero).

        `owner=None` is an admin's redrive: any owner's job, under the same rules;
        `audit` is recorded in the same transaction (target: the job, detail: its owner).

        Raises JobNotFound (404), JobNotRetryable (409) for a job that is not
        failed, or RetryLimit (409) after MAX_RETRIES retries of this job. The
        caller enqueues it (the queue restarts a dead job afresh). The lease token
        stays: the next claim's token is larger, and any older consumer stays fenced out.
        """

        def work(conn: pg8000.native.Connection) -> list[dict[str, Any]]:
            rows = _fetch(
                conn,
                f"UPDATE jobs SET {_REQUEUE} WHERE id = CAST(:id AS uuid) AND status = 'failed'"
                f" AND (CAST(:owner AS text) IS NULL OR owner = :owner)"
                f" AND retries < :max_retries AND uploads_expired_at IS NULL"
                f" RETURNING {_COLUMNS}",
                {"id": parse_job_id(job_id), "owner": owner, "max_retries": MAX_RETRIES},
            )
            if rows and audit is not None:
                audit.write(conn, target=str(rows[0]["id"]), owner=rows[0]["owner"])
            return rows

        rows = self._unit(work)
        if rows:
            return _job(rows[0])
        job = self.get(job_id, owner)
        if job is None:
            raise JobNotFound(f"no job {shown(job_id)}")
        if job.status == "failed" and job.uploads_expired_at is not None:
            raise UploadsExpired(
                f"job {job.id}'s uploads were deleted by retention on"
                f" {iso_utc(job.uploads_expired_at)}; upload the file again as a new job"
            )
        if job.status == "failed":
            raise RetryLimit(
                f"job {job.id} was retried {MAX_RETRIES} times; submit the file again as a new job"
            )
        raise JobNotRetryable(f"job {job.id} is {job.status}; only a failed job can be retried")

    def retry_matching(
        self,
        where: str,
        params: dict[str, Any],
        limit: int,
        *,
        audit: Action | None = None,
    ) -> tuple[list[Job], bool]:
        """Queue again, in one transaction, up to `limit` failed jobs matching `where`.

        `where` is a SQL condition over `jobs` with `params` (chalicelib.console
        builds it from a filter); only failed jobs under MAX_RETRIES retries are
        taken, newest first, and those another transaction holds are skipped (`FOR
        UPDATE SKIP LOCKED`: no deadlock with an owner's own retry). Each keeps its
        lease token, so its next claim's is larger (fenced as `retry`). `audit` is
        recorded in the same transaction with the ids (nothing when none matched).
        Returns (the jobs, whether more matched than `limit`).
        """

        def work(conn: pg8000.native.Connection) -> tuple[list[dict[str, Any]], bool]:
            picked = _fetch(
                conn,
                f"SELECT id, owner FROM jobs WHERE status = 'failed' AND retries < :max_retries"
                f" AND uploads_expired_at IS NULL"
                f" AND ({where}) ORDER BY created_at DESC, id DESC LIMIT :limit"
                f" FOR UPDATE SKIP LOCKED",
                {**params, "max_retries": MAX_RETRIES, "limit": limit + 1},
            )
            ids = [str(row["id"]) for row in picked[:limit]]
            if not ids:
                return [], False
            lock_owner_usage(conn, (row["owner"] for row in picked[:limit]))
            rows = _fetch(
                conn,
                f"UPDATE jobs SET {_REQUEUE} WHERE id = ANY(CAST(:ids AS uuid[]))"
                f" RETURNING {_COLUMNS}",
                {"ids": ids},
            )
            rows.sort(key=lambda row: ids.index(str(row["id"])))
            if audit is not None:
                audit.write(conn, jobIds=[str(row["id"]) for row in rows])
            return rows, len(picked) > limit

        rows, more = self._unit(work)
        return [_job(row) for row in rows], more

    def cancel(self, job_id: str, owner: str | None, *, audit: Action | None = None) -> Job | None:
        """Cancel an unfinished job of owner (`None`: any owner's): `cancelled`, fenced out.

        Returns the cancelled job, or None when owner has no such unfinished job.
        Every consumer write (start, progress, complete, fail) matches only
        `queued`/`processing` rows, so a consumer still analysing it writes
        nothing; the caller removes it from the queue, which refuses that
        consumer's next lease renewal. `audit` is recorded in the same transaction.
        """

        def work(conn: pg8000.native.Connection) -> list[dict[str, Any]]:
            rows = _fetch(
                conn,
                f"UPDATE jobs SET status = 'cancelled', completed_at = now(), updated_at = now(),"
                f" run_after = NULL"
                f" WHERE id = CAST(:id AS uuid)"
                f" AND (CAST(:owner AS text) IS NULL OR owner = :owner)"
                f" AND status IN ('queued', 'processing')"
                f" RETURNING {_COLUMNS}",
                {"id": parse_job_id(job_id), "owner": owner},
            )
            if rows and audit is not None:
                audit.write(conn, target=str(rows[0]["id"]), owner=rows[0]["owner"])
            return rows

        rows = self._unit(work)
        return _job(rows[0]) if rows else None

    def delete_finished(
        self, job_id: str, owner: str | None, *, audit: Action | None = None
    ) -> list[str] | None:
        """Delete a finished job of owner (`None`: any owner's), its result and share links.

        Returns the upload keys no other job of the job's owner still names (the caller
        deletes those objects; a file submitted twice stays for the other job), or
        None when there is no such finished job. `audit` is recorded in the same
        transaction.
        """

        def work(conn: pg8000.native.Connection) -> list[str] | None:
            rows = _fetch(
                conn,
                "DELETE FROM jobs WHERE id = CAST(:id AS uuid)"
                " AND (CAST(:owner AS text) IS NULL OR owner = :owner)"
                " AND status IN ('completed', 'failed', 'cancelled', 'expired')"
                " RETURNING owner, status, file_key, reference_file_key",
                {"id": parse_job_id(job_id), "owner": owner},
            )
            if not rows:
                return None
            found = rows[0]
            keys = [k for k in (found["file_key"], found["reference_file_key"]) if k]
            still = _fetch(
                conn,
                "SELECT file_key AS k FROM jobs WHERE owner = :owner AND file_key = ANY(:keys)"
                " UNION SELECT reference_file_key FROM jobs"
                " WHERE owner = :owner AND reference_file_key = ANY(:keys)",
                {"owner": found["owner"], "keys": keys},
            )
            used = {row["k"] for row in still}
            if audit is not None:
                audit.write(
                    conn, target=parse_job_id(job_id), owner=found["owner"], was=found["status"]
                )
            return [k for k in dict.fromkeys(keys) if k not in used]

        return self._unit(work)

    def token_floor(self) -> int:
        """The largest fencing token Postgres ever accepted (0 if none): the queue's floor.

        Jobs' own lease tokens (an index makes max() one lookup) and those of jobs
        deleted since (kept in `token_floor` by a trigger, migration 0003).
        """
        rows = self._rows(
            "SELECT GREATEST((SELECT token FROM token_floor),"
            " (SELECT max(lease_token) FROM jobs), 0) AS floor"
        )
        return int(rows[0]["floor"])

    def reconcile_candidates(self, min_age_seconds: float, limit: int = 500) -> list[Job]:
        """Unfinished jobs that have not changed for `min_age_seconds`, oldest first.

        The age keeps the sweeper away from a job whose row was just inserted and
        whose enqueue is still on its way.
        """
        rows = self._rows(
            f"SELECT {_COLUMNS} FROM jobs WHERE status IN ('queued', 'processing')"
            f" AND updated_at < now() - make_interval(secs => :age)"
            f" ORDER BY updated_at LIMIT :limit",
            age=float(min_age_seconds),
            limit=limit,
        )
        return [_job(row) for row in rows]

    def counts(self) -> dict[str, int]:
        """How many jobs are in each status (every status present, zeros included).

        Summed over `owner_usage` (one row per owner, kept by migration 0006's trigger
        in each job's own transaction), not counted over all jobs.
        """
        sums = ", ".join(f"COALESCE(sum({status}), 0) AS {status}" for status in rules.STATUSES)
        row = self._rows(f"SELECT {sums} FROM owner_usage")[0]
        return {status: int(row[status]) for status in rules.STATUSES}

    # --- API keys --------------------------------------------------------------

    def create_api_key(self, owner: str, key: str | None = None, *, role: str = "user") -> str:
        """Register a key for owner and return it (chalicelib.keys.KeyStore.create)."""
        from chalicelib.keys import KeyStore

        return KeyStore(self).create(owner, key, role=role)

    def owner_for_key(self, key: str | None) -> str | None:
        """The owner of a working API key, or None (unknown, empty, revoked, expired)."""
        from chalicelib.keys import KeyStore

        found = KeyStore(self).principal(key)
        return found.owner if found else None
