"""Request validation for the HTTP API: pure functions from raw input to typed requests.

Every way a client can get a request wrong ends here as an ApiError with a status
and a machine-readable code, so app.py never answers bad input with a 500. Nothing
here touches Redis, Postgres or S3; the routes do that with what these return.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chalicelib import errors, formats, rules
from chalicelib.errors import ApiError, InternalError, SoundcheckError, shown

if TYPE_CHECKING:
    from chalicelib.jobs import JobSpec


def text_schema(max_len: int) -> dict[str, Any]:
    """JSON Schema of rules.text: 1-max_len characters, not blank, no NUL."""
    return {
        "type": "string",
        "minLength": 1,
        "maxLength": max_len,
        "pattern": r"^[^\x00]*\S[^\x00]*$",
    }


# Each request body's JSON Schema (OpenAPI 3.1), declared once: the parser below takes
# its allowed fields from it and chalicelib.openapi publishes it at GET /openapi.json.
UPLOAD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["fileName", "contentType", "sizeBytes"],
    "properties": {
        "fileName": text_schema(rules.MAX_FILE_NAME),
        "contentType": {"type": "string", "pattern": f"^{rules.CONTENT_TYPE.pattern}$"},
        "sizeBytes": {"type": "integer", "minimum": 1},
    },
}
SUBMIT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["fileKey"],
    "properties": {
        "fileKey": text_schema(rules.MAX_FILE_KEY),
        "mode": {"enum": list(rules.MODES), "default": rules.Mode.GENRE.value},
        "genre": text_schema(rules.MAX_GENRE),
        "referenceFileKey": text_schema(rules.MAX_FILE_KEY),
        "referenceJobId": {"type": "string", "format": "uuid"},
        "fileName": text_schema(rules.MAX_FILE_NAME),
        "priority": {
            "type": "integer",
            "minimum": rules.MIN_PRIORITY,
            "maximum": rules.MAX_PRIORITY,
            "default": 0,
        },
        # Checked by chalicelib.webhooks.urls: https (http only where a setting allows it),
        # no credentials or fragment, a public host (IPv4 as four decimal numbers).
        "callbackUrl": {
            "type": "string",
            "format": "uri",
            "minLength": 1,
            "maxLength": rules.MAX_CALLBACK_URL,
            "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://[^\\s#]+$",
        },
    },
}
SHARE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"expiresInHours": {"type": "integer", "minimum": 1, "maximum": 90 * 24}},
}
# GET /api/jobs query parameters: name -> schema
LIST_QUERY_SCHEMA: dict[str, dict[str, Any]] = {
    "status": {"enum": list(rules.STATUSES)},
    "limit": {
        "type": "integer",
        "minimum": 1,
        "maximum": rules.MAX_LIST_LIMIT,
        "default": rules.DEFAULT_LIST_LIMIT,
    },
}
# The admin console (docs/api.md "Admin routes"): filters, paging and the redrive body.
MAX_CONSOLE_LIMIT = 200
MAX_CURSOR = 200
ERROR_CODE_SCHEMA: dict[str, Any] = {"type": "string", "pattern": "^[a-z0-9_]{1,64}$"}
OWNER_SCHEMA: dict[str, Any] = text_schema(200)
_CONSOLE_PAGE: dict[str, dict[str, Any]] = {
    "limit": {"type": "integer", "minimum": 1, "maximum": MAX_CONSOLE_LIMIT, "default": 50},
    "cursor": {"type": "string", "minLength": 1, "maxLength": MAX_CURSOR},
}
ADMIN_JOBS_QUERY_SCHEMA: dict[str, dict[str, Any]] = {
    "state": {"enum": list(rules.CONSOLE_STATES)},
    "owner": OWNER_SCHEMA,
    "code": ERROR_CODE_SCHEMA,
    **_CONSOLE_PAGE,
}
OWNERS_QUERY_SCHEMA: dict[str, dict[str, Any]] = dict(_CONSOLE_PAGE)
REDRIVE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["state"],
    "properties": {
        "state": {"enum": ["failed", "dead"]},
        "owner": OWNER_SCHEMA,
        "code": ERROR_CODE_SCHEMA,
    },
}
SUBMIT_FIELDS = frozenset(SUBMIT_SCHEMA["properties"])
UPLOAD_FIELDS = frozenset(UPLOAD_SCHEMA["properties"])


def error_for(exc: BaseException) -> SoundcheckError | None:
    """The HTTP error for an exception a route let through; None for a bug (a 500).

    Every soundcheck error carries its own status and code (chalicelib.errors);
    a library's exception becomes 503 `unavailable` when its service failed.
    """
    error = errors.of(exc)
    return None if isinstance(error, InternalError) else error.for_http()


def bad_request(code: str, message: str) -> ApiError:
    return ApiError(code, message)


@dataclass(frozen=True)
class UploadRequest:
    file_name: str
    content_type: str
    size_bytes: int


@dataclass(frozen=True)
class ListQuery:
    status: str | None
    limit: int


def json_object(raw: bytes | str | None) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 that says what is wrong with it."""
    if raw is None or raw in (b"", ""):
        raise bad_request("invalid_json", "the request body must be a JSON object")
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request("invalid_json", f"the request body is not valid JSON: {exc}") from None
    except RecursionError:  # "[[[[..." a hundred thousand deep
        raise bad_request("invalid_json", "the request body is nested too deeply") from None
    if not isinstance(value, dict):
        raise bad_request("invalid_json", "the request body must be a JSON object")
    if _has_lone_surrogate(value):
        # JSON may escape one half of a UTF-16 pair ("\\ud800"): not text, and
        # whatever receives it next (pg8000, boto3, a file name) raises.
        raise bad_request(
            "invalid_json", "the request body holds a lone surrogate (\\ud800-\\udfff)"
        )
    return value


def _has_lone_surrogate(value: Any) -> bool:
    """True if any string in a parsed JSON value (keys too) holds U+D800-U+DFFF."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if rules.has_surrogate(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _no_unknown(body: Mapping[str, Any], allowed: Collection[str]) -> None:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise bad_request(
            "unknown_field",
            f"unknown field(s) {', '.join(shown(name, 40) for name in unknown[:5])}; "
            f"allowed: {', '.join(sorted(allowed))}",
        )


def _string(body: Mapping[str, Any], name: str, *, required: bool, max_len: int) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise bad_request("missing_field", f"{name} is required")
        return None
    return rules.text(value, name, max_len, ApiError)


def parse_upload(body: Mapping[str, Any]) -> UploadRequest:
    """POST /api/audio/upload-url: {fileName, contentType, sizeBytes}.

    The size limit itself is the store's (StorageError 413), so it lives in one place.
    A name or content type that cannot be audio is ApiError unsupported_format
    (chalicelib.formats), with the accepted formats in its message.
    """
    _no_unknown(body, UPLOAD_FIELDS)
    file_name = _string(body, "fileName", required=True, max_len=rules.MAX_FILE_NAME)
    content_type = _string(body, "contentType", required=True, max_len=rules.MAX_CONTENT_TYPE)
    rules.content_type(content_type, ApiError)
    assert file_name is not None and content_type is not None
    formats.check_upload(file_name, content_type)  # MIDI, text, images: before any byte moves
    if "sizeBytes" not in body or body["sizeBytes"] is None:
        raise bad_request("missing_field", "sizeBytes is required")
    size = rules.size_bytes(body["sizeBytes"], ApiError)
    return UploadRequest(file_name=file_name, content_type=content_type, size_bytes=size)


def parse_submit(
    owner: str,
    body: Mapping[str, Any],
    *,
    check_genre: Callable[[str], str],
    check_key: Callable[[str, str], str],
    check_callback: Callable[[object], str] | None = None,
) -> JobSpec:
    """POST /api/audio/analyze body -> JobSpec, or ApiError.

    `check_genre(name)` returns the canonical target name or raises (the analysis
    package's AnalysisError "unknown_genre", a 400; see `genre_name`).
    `check_key(owner, key)` is the store's ownership check (Storage.check_key): it
    returns the normalised key or raises StorageError 400 for a key outside the
    owner's prefix. Whether the object exists is for the route to ask the store.
    `check_callback(raw)` returns a callbackUrl whose form is acceptable or raises
    ApiError (chalicelib.webhooks.urls.parse; where its host resolves to is for the
    route to ask, after the cheaper checks). Without it a callbackUrl is refused.
    """
    from chalicelib.jobs import JobSpec, parse_job_id

    _no_unknown(body, SUBMIT_FIELDS)
    file_key = _string(body, "fileKey", required=True, max_len=rules.MAX_FILE_KEY)
    assert file_key is not None
    mode = rules.mode(body.get("mode", rules.Mode.GENRE), ApiError)
    genre = _string(body, "genre", required=False, max_len=rules.MAX_GENRE)
    reference_key = _string(body, "referenceFileKey", required=False, max_len=rules.MAX_FILE_KEY)
    reference_job = _string(body, "referenceJobId", required=False, max_len=rules.MAX_JOB_ID)
    file_name = _string(body, "fileName", required=False, max_len=rules.MAX_FILE_NAME)
    priority = rules.priority(body.get("priority", 0), ApiError)
    callback_url = None
    if body.get("callbackUrl") is not None:
        if check_callback is None:
            raise bad_request("invalid_callback_url", "callbacks are not available here")
        callback_url = check_callback(body["callbackUrl"])

    if mode == rules.Mode.GENRE:
        if reference_key is not None or reference_job is not None:
            raise bad_request(
                "invalid_field", "referenceFileKey/referenceJobId need mode 'reference'"
            )
        if genre is not None:
            genre = check_genre(genre)
    else:
        if genre is not None:
            raise bad_request("invalid_field", "genre applies to mode 'genre' only")
        if (reference_key is None) == (reference_job is None):
            raise bad_request(
                "missing_reference",
                "mode 'reference' needs exactly one of referenceFileKey or referenceJobId",
            )
        if reference_job is not None:
            canonical = parse_job_id(reference_job)
            if canonical is None:
                raise bad_request("invalid_field", "referenceJobId must be a job id (a UUID)")
            reference_job = canonical
        if reference_key is not None:
            reference_key = check_key(owner, reference_key)

    return JobSpec(
        owner=owner,
        mode=mode,
        genre=genre,
        file_key=check_key(owner, file_key),
        file_name=file_name,
        reference_file_key=reference_key,
        reference_job_id=reference_job,
        priority=priority,
        callback_url=callback_url,
    )


def parse_list_query(params: Mapping[str, str] | None) -> ListQuery:
    """GET /api/jobs?status=&limit= -> ListQuery, or ApiError."""
    params = params or {}
    _no_unknown(params, LIST_QUERY_SCHEMA)
    status = params.get("status") or None
    if status is not None:
        status = rules.status(status, ApiError)
    raw_limit = params.get("limit") or str(rules.DEFAULT_LIST_LIMIT)
    # ASCII digits only: str.isdigit() accepts "²", which int() refuses (a 500).
    limit = int(raw_limit) if re.fullmatch(r"[0-9]{1,3}", raw_limit) else None
    return ListQuery(status=status, limit=rules.list_limit(limit, ApiError))


def parse_audit_query(params: Mapping[str, str] | None) -> tuple[int, int | None]:
    """GET /api/admin/audit?limit=&before= -> (limit 1..200, default 50; before id or None)."""
    params = params or {}
    _no_unknown(params, ("limit", "before"))
    raw_limit = params.get("limit") or "50"
    limit = int(raw_limit) if re.fullmatch(r"[0-9]{1,3}", raw_limit) else 0
    if not 1 <= limit <= 200:
        raise bad_request("invalid_limit", "limit must be an integer from 1 to 200")
    raw_before = params.get("before")
    if raw_before is None:
        return limit, None
    if not re.fullmatch(r"[0-9]{1,18}", raw_before):
        raise bad_request("invalid_field", "before must be an audit entry id (a positive integer)")
    return limit, int(raw_before)


@dataclass(frozen=True)
class JobFilter:
    """Which jobs an admin means: a console state (rules.CONSOLE_STATES), an owner, an
    error code; None matches any."""

    state: str | None = None
    owner: str | None = None
    code: str | None = None


@dataclass(frozen=True)
class Page:
    """One page of a keyset-paged list: how many, and the cursor the last page returned."""

    limit: int
    cursor: str | None


def _page(params: Mapping[str, str]) -> Page:
    raw_limit = params.get("limit") or "50"
    limit = int(raw_limit) if re.fullmatch(r"[0-9]{1,3}", raw_limit) else 0
    if not 1 <= limit <= MAX_CONSOLE_LIMIT:
        raise bad_request(
            "invalid_limit", f"limit must be an integer from 1 to {MAX_CONSOLE_LIMIT}"
        )
    cursor = params.get("cursor")
    if cursor is not None and not re.fullmatch(rf"[A-Za-z0-9_-]{{1,{MAX_CURSOR}}}", cursor):
        raise bad_request("invalid_field", "cursor must be the `next` of an earlier page")
    return Page(limit, cursor)


def _filter(values: Mapping[str, Any], states: Collection[str]) -> JobFilter:
    state = values.get("state")
    if state is not None and state not in states:
        raise bad_request("invalid_field", f"state must be one of {', '.join(states)}")
    owner = values.get("owner")
    if owner is not None:
        rules.owner(owner, ApiError)
    code = values.get("code")
    if code is not None and not (isinstance(code, str) and re.fullmatch(r"[a-z0-9_]{1,64}", code)):
        raise bad_request("invalid_field", "code must be an error code like corrupt_file")
    return JobFilter(state=state, owner=owner, code=code)


def parse_admin_jobs_query(params: Mapping[str, str] | None) -> tuple[JobFilter, Page]:
    """GET /api/admin/jobs?state=&owner=&code=&limit=1..200&cursor= -> (filter, page)."""
    params = params or {}
    _no_unknown(params, ADMIN_JOBS_QUERY_SCHEMA)
    return _filter(params, rules.CONSOLE_STATES), _page(params)


def no_query(params: Mapping[str, str] | None) -> None:
    """A route that takes no query parameters refuses any (`unknown_field`)."""
    _no_unknown(params or {}, ())


def parse_owners_query(params: Mapping[str, str] | None) -> Page:
    """GET /api/admin/owners?limit=1..200&cursor= -> page."""
    params = params or {}
    _no_unknown(params, OWNERS_QUERY_SCHEMA)
    return _page(params)


def parse_redrive(body: Mapping[str, Any]) -> JobFilter:
    """POST /api/admin/jobs/retry body {state: failed|dead, owner?, code?} -> filter."""
    _no_unknown(body, REDRIVE_SCHEMA["properties"])
    if body.get("state") is None:
        raise bad_request("missing_field", "state is required (failed or dead)")
    return _filter(body, REDRIVE_SCHEMA["properties"]["state"]["enum"])


SHARE_FIELDS = frozenset(SHARE_SCHEMA["properties"])


def parse_share(body: Mapping[str, Any]) -> int:
    """POST /api/jobs/{id}/shares body {expiresInHours?} -> hours (default a week).

    The range (1 hour - 90 days) is the share store's to check, in one place.
    """
    _no_unknown(body, SHARE_FIELDS)
    if body.get("expiresInHours") is None:
        return 7 * 24
    return rules.integer(body["expiresInHours"], "expiresInHours", ApiError)


def idempotency_key(headers: Mapping[str, str] | None) -> str | None:
    """The Idempotency-Key header (1-255 printable ASCII characters), if sent."""
    if not headers:
        return None
    value = headers.get("idempotency-key")
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == "idempotency-key"), None)
    if value is None:
        return None
    return rules.idempotency_key(value, ApiError)


def genre_name(name: str) -> str:
    """The canonical name of a genre target (`trap`, `trap+streaming`), or AnalysisError.

    The analysis package's targets module is pure Python (no numpy): the API can
    validate a genre at submit with the very code the consumer uses.
    """
    from chalicelib.analysis import targets

    return targets.load(name).name
