"""The rules a job's fields obey, written once: job statuses, modes, limits, field checks.

The API checks a request at the door (HTTP 400), the job store and the object
store check again what they are handed; all three use these functions, so one
rule gives one code and one message wherever it is broken. A check raises the
caller's own error family (`ApiError`, `InvalidJobInput`, `StorageError`: all
take `(code, message)`), so each layer keeps its error type.

Pure Python: the API functions import it without pg8000 or numpy.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any, NoReturn, Protocol


class JobStatus(StrEnum):
    """Where a job is (DESIGN: queued|processing|completed|failed|cancelled|expired).

    `expired`: a completed job whose result retention deleted (chalicelib/retention.py).
    """

    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class Mode(StrEnum):
    """What a track is compared with: a genre's targets or a reference track."""

    GENRE = "genre"
    REFERENCE = "reference"


STATUSES: tuple[str, ...] = tuple(JobStatus)
UNFINISHED: tuple[str, ...] = (JobStatus.QUEUED, JobStatus.PROCESSING)
FINISHED: tuple[str, ...] = (
    JobStatus.COMPLETED,
    JobStatus.FAILED,
    JobStatus.CANCELLED,
    JobStatus.EXPIRED,
)
MODES: tuple[str, ...] = tuple(Mode)
# Where a job is as the admin console lists it: a status, with `queued` split by the
# queue into waiting and delayed (a retry's backoff), `processing` read as active, and
# `failed` split into failed (at once: bad audio) and dead (its retries or stalls ran out).
# Every other status is its own state.
CONSOLE_STATES: tuple[str, ...] = (
    "waiting",
    "delayed",
    "active",
    "completed",
    "failed",
    "dead",
    "cancelled",
    "expired",
)

MIN_PRIORITY = -1000  # higher runs first
MAX_PRIORITY = 1000
MAX_FILE_NAME = 255
MAX_FILE_KEY = 1024
MAX_GENRE = 64
MAX_JOB_ID = 64  # a UUID is 36 characters; anything longer is refused before parsing
MAX_CONTENT_TYPE = 128
MAX_OWNER = 200  # an owner id: API keys are made for it, the queue keys its tenants by it
MAX_CALLBACK_URL = 2048  # a job's callbackUrl (chalicelib.webhooks.urls)
MAX_LIST_LIMIT = 100
DEFAULT_LIST_LIMIT = 20
# Idempotency-Key: 1-255 printable ASCII characters, no spaces.
IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")
CONTENT_TYPE = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,63}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,63}"
)


class ErrorFamily(Protocol):
    """What a check raises: any chalicelib.errors family, built as Family(code, message)."""

    def __call__(self, code: str, message: str) -> BaseException: ...


def _refuse(error: ErrorFamily, code: str, message: str) -> NoReturn:
    raise error(code, message)


def text(value: Any, name: str, max_len: int, error: ErrorFamily) -> str:
    """A non-empty string of at most `max_len` characters Postgres can store (`storable`),
    else `invalid_field`.

    Postgres text cannot hold NUL: it would fail the INSERT (a 503 instead of a 400).
    """
    if not isinstance(value, str) or not value.strip():
        _refuse(error, "invalid_field", f"{name} must be a non-empty string")
    if len(value) > max_len:
        _refuse(error, "invalid_field", f"{name} must be at most {max_len} characters")
    return storable(value, name, error)


def owner(value: Any, error: ErrorFamily) -> str:
    """An owner id: 1-MAX_OWNER characters Postgres can store, else `invalid_field`.

    Checked where owners are made (`keys create`) as well as where they are looked up:
    the queue refuses a longer one, so a key for it could submit jobs that never run.
    """
    return text(value, "owner", MAX_OWNER, error)


def storable(value: str, name: str, error: ErrorFamily) -> str:
    """A string Postgres text can hold, else `invalid_field`: no NUL, and no unpaired
    UTF-16 surrogate (U+D800-U+DFFF: what a JSON escape like "\\ud800" or a non-UTF-8
    command-line argument decodes to), which no UTF-8 encoder (pg8000's) accepts."""
    if "\x00" in value:
        _refuse(error, "invalid_field", f"{name} must not contain NUL characters")
    if has_surrogate(value):
        _refuse(error, "invalid_field", f"{name} must be text (it holds an unpaired surrogate)")
    return value


def has_surrogate(value: str) -> bool:
    """True if the string holds a UTF-16 surrogate code point (never valid text)."""
    return not value.isascii() and any("\ud800" <= c <= "\udfff" for c in value)


def integer(value: Any, name: str, error: ErrorFamily) -> int:
    """An int (not a bool), else `invalid_field`."""
    if isinstance(value, bool) or not isinstance(value, int):
        _refuse(error, "invalid_field", f"{name} must be an integer")
    return value


def priority(value: Any, error: ErrorFamily) -> int:
    """A job priority: an integer from MIN_PRIORITY to MAX_PRIORITY, else `invalid_field`."""
    integer(value, "priority", error)
    if not MIN_PRIORITY <= value <= MAX_PRIORITY:
        _refuse(
            error, "invalid_field", f"priority must be between {MIN_PRIORITY} and {MAX_PRIORITY}"
        )
    return int(value)


def size_bytes(value: Any, error: ErrorFamily) -> int:
    """An upload's declared size: a positive integer, else `invalid_field`."""
    integer(value, "sizeBytes", error)
    if value <= 0:
        _refuse(error, "invalid_field", "sizeBytes must be greater than zero")
    return int(value)


def mode(value: Any, error: ErrorFamily) -> Mode:
    """genre or reference, else `invalid_mode`."""
    if value not in MODES:
        _refuse(error, "invalid_mode", f"mode must be one of {', '.join(MODES)}")
    return Mode(value)


def status(value: Any, error: ErrorFamily) -> JobStatus:
    """A job status to filter by, else `invalid_status`."""
    if value not in STATUSES:
        _refuse(error, "invalid_status", f"status must be one of {', '.join(STATUSES)}")
    return JobStatus(value)


def list_limit(value: Any, error: ErrorFamily) -> int:
    """How many jobs a list returns: an integer from 1 to MAX_LIST_LIMIT, else `invalid_limit`."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LIST_LIMIT:
        _refuse(error, "invalid_limit", f"limit must be an integer from 1 to {MAX_LIST_LIMIT}")
    return value


def content_type(value: Any, error: ErrorFamily) -> str:
    """A MIME type like `audio/wav`, else `invalid_content_type`."""
    if not isinstance(value, str) or not CONTENT_TYPE.fullmatch(value):
        _refuse(error, "invalid_content_type", "contentType must look like 'audio/wav'")
    return value


def idempotency_key(value: Any, error: ErrorFamily) -> str:
    """An Idempotency-Key, else `invalid_idempotency_key`."""
    if not isinstance(value, str) or not IDEMPOTENCY_KEY.fullmatch(value):
        _refuse(
            error,
            "invalid_idempotency_key",
            "Idempotency-Key must be 1-255 printable ASCII characters",
        )
    return value
