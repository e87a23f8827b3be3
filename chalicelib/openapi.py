"""The OpenAPI 3.1 document of the HTTP API, built from the routes and the parsers' schemas.

Request bodies and query parameters come from chalicelib.api (the schemas its parsers
take their fields from); the error body and its codes from chalicelib.errors; paths
and methods from the Chalice app's own route table. What is declared here is only what
has no other home: each route's summary, whether it needs a key, and its response
shapes (Job.to_api, Share.to_api, Upload.to_api written as schemas).
Pure Python: `import app` stays free of numpy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chalicelib import api, errors, rules

NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}
_COUNT: dict[str, Any] = {"type": "integer", "minimum": 0}
_NULLABLE_COUNT: dict[str, Any] = {"type": ["integer", "null"], "minimum": 0}
_COUNTS = ("queued", "processing", "delayed", "completed", "failed", "dead", "cancelled", "expired")
_ERROR_DETAIL: dict[str, Any] = {
    "type": "object",
    "required": ["code", "message"],
    "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
}

SCHEMAS: dict[str, dict[str, Any]] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            }
        },
    },
    # Job.to_api (chalicelib.jobs)
    "Job": {
        "type": "object",
        "required": ["jobId", "status", "mode", "progress", "attempts", "createdAt"],
        "properties": {
            "jobId": {"type": "string", "format": "uuid"},
            "status": {"enum": list(rules.STATUSES)},
            "mode": {"enum": list(rules.MODES)},
            "genre": {"type": ["string", "null"]},
            "fileName": {"type": ["string", "null"]},
            "progress": {"type": "integer", "minimum": 0, "maximum": 100},
            "attempts": {"type": "integer", "minimum": 0},
            "createdAt": {"type": "string", "format": "date-time"},
            "startedAt": NULLABLE_TIME,
            "completedAt": NULLABLE_TIME,
            "uploadsExpiredAt": {"type": "string", "format": "date-time"},  # retention
            "resultExpiredAt": {"type": "string", "format": "date-time"},
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            },
            "result": {"type": "object"},
            "score": {"type": ["number", "null"]},
            "callback": {"$ref": "#/components/schemas/Callback"},
        },
    },
    # chalicelib.webhooks.store.callback_view: a job's callbackUrl and its latest event
    "Callback": {
        "type": "object",
        "required": ["url", "state", "attempts"],
        "properties": {
            "url": {"type": "string"},
            "state": {"enum": ["waiting", "pending", "delivered", "failed"]},
            "eventId": {"type": ["string", "null"]},
            "eventType": {"enum": ["job.completed", "job.failed", None]},
            "attempts": {"type": "integer", "minimum": 0},
            "lastStatus": {"type": ["integer", "null"]},
            "lastError": {"type": ["string", "null"]},
            "lastAttemptAt": NULLABLE_TIME,
            "nextAttemptAt": NULLABLE_TIME,
            "deliveredAt": NULLABLE_TIME,
        },
    },
    # chalicelib.webhooks.store.SigningSecret.to_api
    "SigningSecret": {
        "type": "object",
        "required": ["secret", "createdAt", "previousExpiresAt"],
        "properties": {
            "secret": {"type": "string"},
            "createdAt": {"type": "string", "format": "date-time"},
            "previousExpiresAt": NULLABLE_TIME,
        },
    },
    "Accepted": {
        "type": "object",
        "required": ["jobId", "status", "statusUrl"],
        "properties": {
            "jobId": {"type": "string", "format": "uuid"},
            "status": {"enum": list(rules.STATUSES)},
            "statusUrl": {"type": "string"},
        },
    },
    # Upload.to_api (chalicelib.storage)
    "Upload": {
        "type": "object",
        "required": ["fileKey", "uploadUrl", "method", "headers", "expiresIn"],
        "properties": {
            "fileKey": {"type": "string"},
            "uploadUrl": {"type": "string"},
            "method": {"const": "PUT"},
            "headers": {"type": "object", "additionalProperties": {"type": "string"}},
            "expiresIn": {"type": "integer", "minimum": 1},
        },
    },
    # Share.to_api (chalicelib.shares)
    "Share": {
        "type": "object",
        "required": ["shareId", "createdAt", "expiresAt", "revokedAt"],
        "properties": {
            "shareId": {"type": "string"},
            "createdAt": {"type": "string", "format": "date-time"},
            "expiresAt": {"type": "string", "format": "date-time"},
            "revokedAt": NULLABLE_TIME,
            "token": {"type": "string"},
        },
    },
    # chalicelib.console.overview
    "Overview": {
        "type": "object",
        "required": ["counts", "paused", "consumers", "series"],
        "properties": {
            "counts": {
                "type": "object",
                "required": list(_COUNTS),
                "properties": {name: _COUNT for name in _COUNTS},
            },
            "queue": {"type": "object"},
            "paused": {"type": "boolean"},
            "consumers": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["consumer", "jobs", "leaseLeftMs"],
                    "properties": {
                        "consumer": {"type": "string"},
                        "jobs": _COUNT,
                        "leaseLeftMs": _NULLABLE_COUNT,
                        "lastSeenAt": NULLABLE_TIME,
                    },
                },
            },
            "series": {
                "type": "object",
                "required": ["bucketSeconds", "buckets"],
                "properties": {
                    "bucketSeconds": {"const": 3600},
                    "buckets": {
                        "type": "array",
                        "minItems": 24,
                        "maxItems": 24,
                        "items": {
                            "type": "object",
                            "required": ["start", "completed", "failed", "waitMsP50", "waitMsP95"],
                            "properties": {
                                "start": {"type": "string", "format": "date-time"},
                                "completed": _COUNT,
                                "failed": _COUNT,
                                "retried": _COUNT,
                                "started": _COUNT,
                                "waitMsP50": _NULLABLE_COUNT,
                                "waitMsP95": _NULLABLE_COUNT,
                            },
                        },
                    },
                },
            },
        },
    },
    # chalicelib.console._row
    "ConsoleJob": {
        "type": "object",
        "required": [
            "jobId",
            "owner",
            "status",
            "state",
            "fileName",
            "createdAt",
            "ageSeconds",
            "priority",
            "consumer",
            "leaseLeftMs",
            "attempt",
            "progress",
            "nextRunAt",
            "error",
            "attempts",
        ],
        "properties": {
            "jobId": {"type": "string", "format": "uuid"},
            "owner": {"type": "string"},
            "status": {"enum": list(rules.STATUSES)},
            "state": {"enum": list(rules.CONSOLE_STATES)},
            "queueState": {"type": ["string", "null"]},
            "mode": {"enum": list(rules.MODES)},
            "genre": {"type": ["string", "null"]},
            "fileName": {"type": ["string", "null"]},
            "createdAt": {"type": "string", "format": "date-time"},
            "startedAt": NULLABLE_TIME,
            "completedAt": NULLABLE_TIME,
            "ageSeconds": {"type": "number", "minimum": 0},
            "priority": {"type": "integer"},
            "consumer": {"type": ["string", "null"]},
            "leaseLeftMs": _NULLABLE_COUNT,
            "attempt": _COUNT,
            "retries": _COUNT,
            "progress": {"type": ["integer", "null"], "minimum": 0, "maximum": 100},
            "nextRunAt": NULLABLE_TIME,
            "error": {"oneOf": [{"type": "null"}, _ERROR_DETAIL]},
            "attempts": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["attempt", "startedAt", "endedAt", "consumer", "outcome", "error"],
                    "properties": {
                        "attempt": _COUNT,
                        "run": _COUNT,
                        "consumer": {"type": ["string", "null"]},
                        "startedAt": {"type": "string", "format": "date-time"},
                        "endedAt": NULLABLE_TIME,
                        "outcome": {"enum": ["completed", "failed", "stalled", "cancelled", None]},
                        "error": {"oneOf": [{"type": "null"}, _ERROR_DETAIL]},
                    },
                },
            },
        },
    },
    # chalicelib.console.owners
    "OwnerUsage": {
        "type": "object",
        "required": ["owner", "role", "jobs", "audioSeconds", "lastSubmittedAt"],
        "properties": {
            "owner": {"type": "string"},
            "role": {"enum": ["user", "admin", None]},
            "jobs": {
                "type": "object",
                "required": ["queued", "processing", "completed", "failed", "cancelled"],
                "additionalProperties": _COUNT,
            },
            "audioSeconds": {"type": "number", "minimum": 0},
            "lastSubmittedAt": NULLABLE_TIME,
        },
    },
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _object(**properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": list(properties), "properties": properties}


def _page(items: str, schema: str) -> dict[str, Any]:
    """A keyset-paged list: `{<items>: [...], next: cursor | null}`."""
    page = {items: {"type": "array", "items": _ref(schema)}, "next": {"type": ["string", "null"]}}
    return _json(_object(**page), "one page")


@dataclass(frozen=True)
class Operation:
    """What the route table cannot say about one route."""

    summary: str
    auth: bool = True
    ok: dict[int, dict[str, Any]] = field(default_factory=dict)  # status -> response object
    body: dict[str, Any] | None = None  # JSON request body schema
    body_required: bool = True
    query: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: tuple[int, ...] = (400, 401, 404, 429, 503)
    tag: str = "jobs"


_FILE = {"description": "a web app file", "content": {"*/*": {"schema": {}}}}

OPERATIONS: dict[tuple[str, str], Operation] = {
    ("GET", "/health"): Operation(
        "Liveness",
        auth=False,
        ok={200: _json(_object(status={"const": "ok"}), "alive")},
        errors=(),
        tag="health",
    ),
    ("GET", "/health/ready"): Operation(
        "Readiness: Redis, Postgres and the queue's identity",
        auth=False,
        ok={
            200: _json({"type": "object", "required": ["status"]}, "ready"),
            503: _json({"type": "object", "required": ["status"]}, "a dependency is down"),
        },
        errors=(503,),
        tag="health",
    ),
    ("GET", "/openapi.json"): Operation(
        "This document",
        auth=False,
        ok={200: _json({"type": "object"}, "OpenAPI 3.1")},
        errors=(),
        tag="health",
    ),
    ("POST", "/api/audio/upload-url"): Operation(
        "An upload URL for one audio file",
        ok={200: _json(_ref("Upload"), "where and how to PUT the file")},
        body=api.UPLOAD_SCHEMA,
        errors=(400, 401, 413, 429, 503),
        tag="uploads",
    ),
    ("PUT", "/api/audio/local-upload/{key}"): Operation(
        "The local store's stand-in for a presigned S3 PUT (local stack only)",
        auth=False,
        ok={200: {"description": "stored", "content": {"text/plain": {"schema": {}}}}},
        errors=(400, 403, 404, 409, 413, 503),
        tag="uploads",
    ),
    ("POST", "/api/audio/analyze"): Operation(
        "Submit a job",
        ok={202: _json(_ref("Accepted"), "queued")},
        body=api.SUBMIT_SCHEMA,
        errors=(400, 401, 404, 409, 413, 429, 503),
    ),
    ("GET", "/api/jobs"): Operation(
        "The caller's jobs, newest first, without results",
        ok={200: _json(_object(jobs={"type": "array", "items": _ref("Job")}), "jobs")},
        query=api.LIST_QUERY_SCHEMA,
    ),
    ("GET", "/api/jobs/{job_id}"): Operation("One job", ok={200: _json(_ref("Job"), "the job")}),
    ("GET", "/api/webhooks/secret"): Operation(
        "The caller's signing secret for callback events (made on first use)",
        ok={200: _json(_ref("SigningSecret"), "the secret")},
        errors=(401, 429, 503),
        tag="webhooks",
    ),
    ("POST", "/api/webhooks/secret/rotate"): Operation(
        "A new signing secret; the previous one keeps signing for 24 hours",
        ok={200: _json(_ref("SigningSecret"), "the new secret")},
        errors=(401, 429, 503),
        tag="webhooks",
    ),
    ("POST", "/api/jobs/{job_id}/retry"): Operation(
        "Retry a failed job",
        ok={202: _json(_ref("Accepted"), "queued again")},
        errors=(400, 401, 404, 409, 429, 503),
    ),
    ("GET", "/api/me"): Operation(
        "Who the caller's key speaks for: owner, role, expiry",
        ok={
            200: _json(
                _object(
                    owner={"type": "string"},
                    role={"enum": ["user", "admin"]},
                    expiresAt=NULLABLE_TIME,
                ),
                "the caller",
            )
        },
        errors=(401, 429, 503),
        tag="keys",
    ),
    ("GET", "/api/queue/stats"): Operation(
        "Queue and job counts",
        ok={200: _json(_object(queue={"type": "object"}, jobs={"type": "object"}), "counts")},
        errors=(400, 401, 403, 429, 503),
        tag="queue",
    ),
    ("GET", "/api/genres"): Operation(
        "Target sets a job can be compared with",
        ok={
            200: _json(
                _object(
                    genres={"type": "array", "items": {"type": "object"}},
                    default={"type": "string"},
                ),
                "targets",
            )
        },
    ),
    ("POST", "/api/jobs/{job_id}/shares"): Operation(
        "A read-only link to a completed report (the token is shown this once)",
        ok={201: _json(_ref("Share"), "created")},
        body=api.SHARE_SCHEMA,
        body_required=False,
        errors=(400, 401, 404, 409, 429, 503),
        tag="shares",
    ),
    ("GET", "/api/jobs/{job_id}/shares"): Operation(
        "A job's share links",
        ok={200: _json(_object(shares={"type": "array", "items": _ref("Share")}), "links")},
        tag="shares",
    ),
    ("DELETE", "/api/jobs/{job_id}"): Operation(
        "Cancel an unfinished job, or delete a finished one with its uploads and result",
        ok={
            200: _json({"type": "object", "required": ["jobId", "status"]}, "cancelled or deleted")
        },
    ),
    ("POST", "/api/admin/jobs/{job_id}/retry"): Operation(
        "Admin: redrive any owner's failed job (audited)",
        ok={202: _json(_ref("Accepted"), "queued again")},
        errors=(400, 401, 403, 404, 409, 429, 503),
        tag="admin",
    ),
    ("GET", "/api/admin/overview"): Operation(
        "Admin: counts per state, paused, consumers, the last 24 hours by the hour",
        ok={200: _json(_ref("Overview"), "the queue at a glance")},
        errors=(400, 401, 403, 429, 503),
        tag="admin",
    ),
    ("GET", "/api/admin/jobs"): Operation(
        "Admin: any owner's jobs by state, owner, error code; newest first, keyset paged",
        ok={200: _page("jobs", "ConsoleJob")},
        query=api.ADMIN_JOBS_QUERY_SCHEMA,
        errors=(400, 401, 403, 429, 503),
        tag="admin",
    ),
    ("POST", "/api/admin/jobs/retry"): Operation(
        "Admin: redrive the failed or dead jobs of a filter, at most 100 a call (audited)",
        ok={
            200: _json(
                _object(
                    retried={"type": "integer", "minimum": 0},
                    jobIds={"type": "array", "items": {"type": "string", "format": "uuid"}},
                    more={"type": "boolean"},
                ),
                "queued again",
            )
        },
        body=api.REDRIVE_SCHEMA,
        errors=(400, 401, 403, 429, 503),
        tag="admin",
    ),
    ("DELETE", "/api/admin/jobs/{job_id}"): Operation(
        "Admin: cancel or delete any owner's job (audited)",
        ok={
            200: _json({"type": "object", "required": ["jobId", "status"]}, "cancelled or deleted")
        },
        errors=(400, 401, 403, 404, 429, 503),
        tag="admin",
    ),
    ("GET", "/api/admin/owners"): Operation(
        "Admin: per-owner usage in name order, keyset paged",
        ok={200: _page("owners", "OwnerUsage")},
        query=api.OWNERS_QUERY_SCHEMA,
        errors=(400, 401, 403, 429, 503),
        tag="admin",
    ),
    ("POST", "/api/admin/queue/pause"): Operation(
        "Admin: stop handing out jobs (audited)",
        ok={200: _json(_object(queue={"type": "string"}, paused={"type": "boolean"}), "paused")},
        errors=(400, 401, 403, 429, 503),
        tag="admin",
    ),
    ("POST", "/api/admin/queue/resume"): Operation(
        "Admin: hand out jobs again (audited)",
        ok={200: _json(_object(queue={"type": "string"}, paused={"type": "boolean"}), "resumed")},
        errors=(400, 401, 403, 429, 503),
        tag="admin",
    ),
    ("GET", "/api/admin/audit"): Operation(
        "Admin: the audit log, newest first",
        ok={200: _json(_object(entries={"type": "array", "items": {"type": "object"}}), "entries")},
        query={
            "limit": {"type": "integer", "minimum": 1, "maximum": 200},
            "before": {"type": "integer", "minimum": 0},
        },
        errors=(400, 401, 403, 429, 503),
        tag="admin",
    ),
    ("DELETE", "/api/jobs/{job_id}/shares/{share_id}"): Operation(
        "Revoke a share link", ok={200: _json(_ref("Share"), "revoked")}, tag="shares"
    ),
    ("GET", "/api/shared"): Operation(
        "The report a share token names (Authorization: Bearer scs_...)",
        ok={200: _json({"type": "object"}, "the shared report")},
        tag="shares",
    ),
    ("GET", "/"): Operation(
        "The web app",
        auth=False,
        ok={200: _FILE, 301: {"description": "add the slash"}},
        errors=(404,),
        tag="web",
    ),
    ("GET", "/web/{name}"): Operation(
        "A web app file", auth=False, ok={200: _FILE}, errors=(404,), tag="web"
    ),
    ("GET", "/web/{folder}/{name}"): Operation(
        "A web app file", auth=False, ok={200: _FILE}, errors=(404,), tag="web"
    ),
    ("GET", "/web/{folder}/{sub}/{name}"): Operation(
        "A web app file", auth=False, ok={200: _FILE}, errors=(404,), tag="web"
    ),
}


def _error_codes() -> dict[int, list[str]]:
    """HTTP status -> every error code that answers with it (chalicelib.errors)."""
    by_status: dict[int, set[str]] = {}
    for cls in errors.every_class():
        for code, status in cls.all_codes().items():
            by_status.setdefault(status, set()).add(code)
    return {status: sorted(codes) for status, codes in by_status.items()}


def _operation(
    method: str, path: str, op: Operation, codes: dict[int, list[str]]
) -> dict[str, Any]:
    responses: dict[str, Any] = {str(status): answer for status, answer in op.ok.items()}
    for status in op.errors:
        if str(status) in responses:
            continue
        known = ", ".join(codes.get(status, [])) or "see docs/api.md"
        responses[str(status)] = _json(_ref("Error"), f"error codes: {known}")
    if op.auth and "401" not in responses:
        responses["401"] = _json(_ref("Error"), "unauthorized")
    responses.setdefault("default", _json(_ref("Error"), "any other error, in the same format"))
    found: dict[str, Any] = {
        "operationId": f"{method.lower()}_{_slug(path)}",
        "summary": op.summary,
        "tags": [op.tag],
        "responses": responses,
    }
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
        for name in _path_parameters(path)
    ]
    parameters += [
        {"name": n, "in": "query", "required": False, "schema": s} for n, s in op.query.items()
    ]
    if parameters:
        found["parameters"] = parameters
    if op.body is not None:
        found["requestBody"] = {
            "required": op.body_required,
            "content": {"application/json": {"schema": op.body}},
        }
    found["security"] = [{"apiKey": []}] if op.auth else []
    return found


def _slug(path: str) -> str:
    return path.strip("/").replace("/", "_").replace("{", "").replace("}", "") or "index"


def _path_parameters(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{") and part.endswith("}")]


def document(routes: dict[str, dict[str, Any]], *, server: str | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document of a Chalice app's route table (`app.routes`).

    Raises KeyError naming a route that has no Operation here, so a new route cannot
    go undocumented.
    """
    codes = _error_codes()
    paths: dict[str, dict[str, Any]] = {}
    for path, methods in sorted(routes.items()):
        for method in sorted(methods):
            op = OPERATIONS.get((method, path))
            if op is None:
                raise KeyError(f"{method} {path} has no entry in chalicelib.openapi.OPERATIONS")
            paths.setdefault(path, {})[method.lower()] = _operation(method, path, op, codes)
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "soundcheck", "version": "1", "description": "See docs/api.md."},
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
        },
    }
    if server:
        doc["servers"] = [{"url": server}]
    return doc
