"""Every error soundcheck raises on purpose, and what each means to a client and a retry.

    SoundcheckError            code, message, status (HTTP), retryable: read off the error
    ├── ApiError               a request the API refuses (400 401 403 404 409 413 429)
    ├── InvalidJobInput        a job spec the store cannot accept (400)
    ├── JobNotFound            no such job for this owner (404 not_found)
    ├── JobNotRetryable        retry of a job that is not failed (409 not_retryable)
    ├── IdempotencyConflict    an Idempotency-Key reused for another request (409)
    ├── StorageError           an object-store request that cannot be served (400 404 413)
    ├── TooManyRequests        a limit refused the request (429, with Retry-After)
    ├── AnalysisError          bad audio, genre or reference (400; chalicelib.analysis.errors)
    ├── ReferenceUnavailable   a reference job without a result (a job error, never retried)
    ├── Stalled                a job whose consumers kept dying (a job error, never retried)
    ├── ProcessingTimeout      a job that ran past its ceiling (stopped; a stall each time)
    ├── Misconfigured          a setting is missing or wrong (503 misconfigured, retried)
    │   ├── SettingsError      ... in the environment (chalicelib.settings)
    │   └── QueueConfigError   ... in the Redis server (chalicelib.queue)
    ├── Unavailable            Redis, Postgres, S3 or the disk failed (503, retried)
    └── InternalError          a bug (500 internal_error, retried; details in the log only)

An ErrorFamily (ApiError, StorageError, InvalidJobInput, AnalysisError, Unavailable) is
raised as `Family(code, message)`; its `codes` table gives each code's HTTP status,
so a code nobody declared cannot be raised. A single-code class is raised as
`Class(message)`. Every code is documented in docs/api.md (tests/test_errors.py
checks that). Exceptions from libraries (redis, pg8000, botocore, OSError, bugs)
become an Unavailable or an InternalError through `of()`, the one translation:
the API answers them with a fixed message, and the job stores a fixed message
with a reference id that the log line carrying the details also holds.

Pure Python with no imports from the rest of soundcheck: the API functions, the
analysis package and the settings module all build on it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, ClassVar

# Messages are capped: a message may quote input (a key, a field name, an id),
# and a 60 KB job id must not come back whole in a 404 or fill a log line.
MAX_MESSAGE = 500
MAX_SHOWN = 80


def shown(value: object, limit: int = MAX_SHOWN) -> str:
    """A piece of client input fit to quote in a message: at most `limit` characters."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


def _capped(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE else f"{message[: MAX_MESSAGE - 1]}…"


class SoundcheckError(Exception):
    """Base of every error soundcheck raises on purpose.

    `code` (machine-readable, stable, documented), `message` (for people),
    `status` (the HTTP status the API answers) and `retryable` (whether the
    consumer should try the job again) are class attributes; a family's
    instance takes its code and status from the family's `codes` table.
    """

    code: str = "internal_error"
    status: int = 500
    retryable: bool = False
    # code -> HTTP status, for a family raised as Family(code, message); empty for one-code classes.
    codes: ClassVar[Mapping[str, int]] = {}

    def __init__(self, message: str) -> None:
        self.message = _capped(str(message))
        super().__init__(self.message)

    @classmethod
    def all_codes(cls) -> dict[str, int]:
        """Every code this class can carry, with its HTTP status."""
        return dict(cls.codes) if cls.codes else {cls.code: cls.status}

    def for_http(self) -> SoundcheckError:
        """The error as the API answers it (itself, unless a subclass hides a detail)."""
        return self

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}

    def body(self) -> dict[str, Any]:
        """The HTTP error body: {error: {code, message}}."""
        return {"error": {"code": self.code, "message": self.message}}


class ErrorFamily(SoundcheckError):
    """An error class with several codes, each with its own HTTP status (`codes`)."""

    def __init__(self, code: str, message: str) -> None:
        if not isinstance(code, str) or code not in self.codes:
            raise TypeError(
                f"{type(self).__name__}(code, message) has no code {code!r}: declare it in "
                f"{type(self).__name__}.codes and document it in docs/api.md"
            )
        self.code = code
        self.status = self.codes[code]
        super().__init__(message)


# --- requests ------------------------------------------------------------------------


class ApiError(ErrorFamily):
    """A request the API refuses. Raise as ApiError(code, message)."""

    codes: ClassVar[Mapping[str, int]] = {
        "invalid_json": 400,
        "missing_field": 400,
        "invalid_field": 400,
        "unknown_field": 400,
        "invalid_mode": 400,
        "missing_reference": 400,
        "invalid_content_type": 400,
        "unsupported_format": 400,
        "invalid_status": 400,
        "invalid_limit": 400,
        "invalid_idempotency_key": 400,
        "invalid_callback_url": 400,
        "callback_url_forbidden": 400,
        "unauthorized": 401,
        "forbidden": 403,
        "invalid_signature": 403,
        "not_found": 404,
        "reference_not_found": 404,
        "reference_not_ready": 409,
        "too_large": 413,
    }


class InvalidJobInput(ErrorFamily, ValueError):
    """A job spec or query the store cannot accept (HTTP 400)."""

    codes: ClassVar[Mapping[str, int]] = {
        "invalid_owner": 400,
        "invalid_mode": 400,
        "invalid_field": 400,
        "invalid_file_key": 400,
        "missing_reference": 400,
        "invalid_idempotency_key": 400,
        "invalid_status": 400,
        "invalid_limit": 400,
    }


class JobNotFound(SoundcheckError, LookupError):
    """No such job for this owner (HTTP 404): another owner's job reads the same."""

    code = "not_found"
    status = 404


class JobNotRetryable(SoundcheckError):
    """Only a failed job can be retried (HTTP 409)."""

    code = "not_retryable"
    status = 409


class IdempotencyConflict(SoundcheckError):
    """The same Idempotency-Key was used before for a different request (HTTP 409)."""

    code = "idempotency_conflict"
    status = 409


class StorageError(ErrorFamily):
    """An object-store request that cannot be served. Raise as StorageError(code, message).

    None is worth a retry: an upload that is not there or too large stays so.
    """

    codes: ClassVar[Mapping[str, int]] = {
        "invalid_file_key": 400,
        "invalid_field": 400,
        "invalid_content_type": 400,
        "invalid_signature": 403,  # a local upload URL tampered with, or another size/type
        "expired": 403,  # a local upload URL past its expiry
        "upload_used": 403,  # a local upload URL is good for one upload
        "not_found": 404,
        "too_large": 413,
    }


class TooManyRequests(ErrorFamily):
    """A limit refused the request (HTTP 429); `retry_after_s` is sent as Retry-After.

    Raise as TooManyRequests(code, message, retry_after_s). Only the caller is
    limited: other owners and clients are unaffected.
    """

    codes: ClassVar[Mapping[str, int]] = {
        "rate_limited": 429,
        "too_many_waiting": 429,
        "too_many_failed_sign_ins": 429,
    }

    def __init__(self, code: str, message: str, retry_after_s: int) -> None:
        self.retry_after_s = max(1, int(retry_after_s))
        super().__init__(code, message)


class ShareError(ErrorFamily):
    """A share-link request refused (chalicelib.shares). Raise as ShareError(code, message).

    An unknown, revoked or expired link all read `share_not_found`: a link that
    does not work says nothing more.
    """

    codes: ClassVar[Mapping[str, int]] = {
        "invalid_field": 400,
        "not_found": 404,
        "share_not_found": 404,
        "not_completed": 409,
        "too_many_shares": 409,
    }


# --- jobs ----------------------------------------------------------------------------


class ReferenceUnavailable(SoundcheckError):
    """The reference job of a reference-mode job has no result: a permanent failure."""

    code = "reference_unavailable"
    status = 409


class ResultExpired(SoundcheckError):
    """Retention deleted a completed job's result: the job reads `expired` with this error.

    Never raised by a route: GET /api/jobs/{id} answers 200 with the job, whose
    `error` carries this code (chalicelib/retention.py).
    """

    code = "result_expired"
    status = 410

    def __init__(self, days: int = 0) -> None:
        when = f"{days} days after the job ended" if days else "by retention"
        super().__init__(f"the result was deleted {when} (retention); submit the file again")


class Stalled(SoundcheckError):
    """A job whose consumers kept dying (its lease expired too often): given up, not retried."""

    code = "stalled"
    status = 500

    def __init__(
        self, message: str = "the job stopped making progress too many times and was given up"
    ) -> None:
        super().__init__(message)


class ProcessingTimeout(SoundcheckError):
    """A job that ran past its processing ceiling (SOUNDCHECK_MAX_JOB_SECONDS, or its Lambda's
    time): stopped, counted as a stall, and failed with this once its stalls reach
    SOUNDCHECK_MAX_STALLS."""

    code = "processing_timeout"
    status = 500


# --- the service itself --------------------------------------------------------------


class Misconfigured(SoundcheckError):
    """A setting is missing or wrong (HTTP 503). A job waits and retries: a fixed
    deployment lets it finish."""

    code = "misconfigured"
    status = 503
    retryable = True


class SettingsError(Misconfigured, ValueError):
    """A setting is missing or malformed; the message names the variable, never a secret."""


class QueueConfigError(Misconfigured, RuntimeError):
    """The Redis server cannot hold the queue safely (evicting, too old)."""


class Unavailable(ErrorFamily):
    """A backing service did not answer (HTTP 503 `unavailable`; the job is retried).

    The job's error names which one; the API answers `unavailable` whatever it was.
    """

    codes: ClassVar[Mapping[str, int]] = {
        "unavailable": 503,
        "queue_unavailable": 503,
        "database_unavailable": 503,
        "storage_unavailable": 503,
        "io_error": 503,
    }
    retryable = True
    MESSAGES: ClassVar[Mapping[str, str]] = {
        "unavailable": "a backing service did not answer",
        "queue_unavailable": "the job queue (Redis) did not answer",
        "database_unavailable": "the database (Postgres) did not answer",
        "storage_unavailable": "the object store did not answer",
        "io_error": "reading or writing a file failed",
    }

    def __init__(self, code: str, message: str | None = None, *, reference: str = "") -> None:
        self.reference = reference or new_reference()
        text = message or self.MESSAGES.get(code, code)
        super().__init__(code, f"{text} (reference {self.reference})")

    def for_http(self) -> Unavailable:
        """Clients are told only that a backing service failed, not which one."""
        if self.code == "unavailable":
            return self
        return Unavailable(
            "unavailable", "a backing service is unavailable; retry soon", reference=self.reference
        )


class InternalError(SoundcheckError):
    """A bug. Users see a fixed message and a reference id; the log has the details."""

    code = "internal_error"
    status = 500
    retryable = True  # a bug may depend on timing or data that changes; attempts are capped

    def __init__(self, reference: str = "") -> None:
        self.reference = reference or new_reference()
        super().__init__(f"an internal error occurred (reference {self.reference})")


def new_reference() -> str:
    """A short id that ties what a user sees to the log line holding the details."""
    return uuid.uuid4().hex[:12]


# Libraries whose exceptions mean "that service did not answer", by top-level module.
_SERVICES = {
    "redis": "queue_unavailable",
    "pg8000": "database_unavailable",
    "botocore": "storage_unavailable",
    "boto3": "storage_unavailable",
    "urllib3": "storage_unavailable",
    "socket": "io_error",
}


def of(exc: BaseException) -> SoundcheckError:
    """The SoundcheckError an exception stands for: itself, an Unavailable, or an InternalError.

    The one translation of foreign exceptions; everything after it reads
    `code`, `status`, `retryable` and `message` off the result.
    """
    if isinstance(exc, SoundcheckError):
        return exc
    service = _SERVICES.get(type(exc).__module__.split(".")[0])
    if service is not None and _sqlstate(exc)[:2] in _OUR_SQL_FAULTS:
        return InternalError()
    if service is not None:
        return Unavailable(service)
    if isinstance(exc, OSError):
        return Unavailable("io_error")
    return InternalError()


# SQLSTATE classes that Postgres answers for what we sent, never for its own state:
# cardinality, data exception (a NUL, an out-of-range time zone), integrity, syntax or
# an undefined name. A bug to fix (500 internal_error), not a service to wait for (503
# "retry soon", which the same request can never get past).
_OUR_SQL_FAULTS = frozenset({"21", "22", "23", "42"})


def _sqlstate(exc: BaseException) -> str:
    """A pg8000 DatabaseError's SQLSTATE (its first argument's "C"), else ""."""
    detail = exc.args[0] if exc.args else None
    return str(detail.get("C", "")) if isinstance(detail, dict) else ""


def exhausted_codes() -> list[str]:
    """A failed job's error codes that say the queue gave up on it ("dead"): codes that
    are retried (so a final one means its attempts ran out), and the stall codes.
    Any other code failed the job at once (bad audio, a missing upload)."""
    codes = {Stalled.code, ProcessingTimeout.code}
    for cls in every_class():
        if cls.retryable:
            codes.update(cls.all_codes())
    return sorted(codes)


def every_class() -> list[type[SoundcheckError]]:
    """SoundcheckError and all its subclasses loaded so far (for docs and tests)."""
    found: list[type[SoundcheckError]] = []
    pending: list[type[SoundcheckError]] = [SoundcheckError]
    while pending:
        cls = pending.pop()
        if cls not in found:
            found.append(cls)
            pending.extend(cls.__subclasses__())
    return found
