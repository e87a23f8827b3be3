"""The Chalice app: routes, the consumer and the scheduled sweeper. Thin wiring only.

Routes parse the request with chalicelib.api, call the job store, queue and
storage, and map every known exception to `{error: {code, message}}` with a 4xx
or 503. Nothing here imports numpy: the API functions must start cold fast.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from chalice import Chalice, Rate, Response

from chalicelib import api, deps, limits, logs, wake, webapp
from chalicelib import consumer as consuming
from chalicelib import settings as settings_module
from chalicelib.auth import bearer_token
from chalicelib.errors import ApiError, InternalError, StorageError, TooManyRequests, shown
from chalicelib.keys import KeyStore, Principal
from chalicelib.rules import JobStatus
from chalicelib.storage import LocalStorage, key_from_path, require_object
from chalicelib.webhooks import urls as callback_urls

if TYPE_CHECKING:
    from chalicelib.jobs import Job

app = Chalice(app_name="soundcheck")
app.log.setLevel(logging.INFO)  # Chalice defaults to ERROR unless debug=True
# The local store's upload route receives audio bodies; Chalice treats a body as
# binary only when its content type is listed here.
app.api.binary_types.extend(
    t
    for t in (
        "audio/x-wav",
        "audio/wave",
        "audio/vnd.wave",
        "audio/flac",
        "audio/x-flac",
        "audio/aiff",
        "audio/x-aiff",
        "audio/x-m4a",
    )
    if t not in app.api.binary_types
)

ANY_TYPE = ["*/*"]  # bodies are parsed here, so a wrong Content-Type gets our error format


def handled(view: Callable[..., Any]) -> Callable[..., Any]:
    """Answer every exception a route can meet with its JSON error; never a stack trace.

    The status and code come from the error itself (chalicelib.errors). A 5xx is
    logged with the details the client does not see, under the reference id the
    client's message quotes.
    """

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return view(*args, **kwargs)
        except Exception as exc:
            error = api.error_for(exc) or InternalError()
            if error.status >= 500:
                logs.event(
                    "api_error",
                    path=_path(),
                    error=logs.describe(exc),
                    code=error.code,
                    reference=getattr(error, "reference", None),
                )
            headers = {"Content-Type": "application/json"}
            if error.status == 401:
                headers["WWW-Authenticate"] = "Bearer"
            if getattr(error, "retry_after_s", None):
                headers["Retry-After"] = str(error.retry_after_s)
            return Response(body=error.body(), status_code=error.status, headers=headers)

    return wrapper


def _path() -> str:
    request = app.current_request
    return getattr(request, "path", "?") if request is not None else "?"


def _principal(d: deps.Deps) -> Principal:
    """Who the caller is, from `Authorization: Bearer <api key>`, else 401.

    A client that sent too many unknown keys gets 429 until its wait is over.
    """
    key = bearer_token(app.current_request.headers)
    if key is None:
        raise ApiError("unauthorized", "send Authorization: Bearer <api key>")
    client = _client_address()
    limits.check_sign_in(d.queue, d.settings, client)
    found = KeyStore(d.jobs).principal(key)
    if found is None:
        limits.sign_in_failed(d.queue, d.settings, client)
        raise ApiError("unauthorized", "unknown API key")
    return found


def _owner(d: deps.Deps) -> str:
    """The caller's owner id (any role), else 401."""
    return _principal(d).owner


def _admin(d: deps.Deps) -> Principal:
    """The caller, who must hold an `admin` key: 401 without a key, 403 `forbidden` for a user."""
    found = _principal(d)
    if not found.is_admin:
        raise ApiError("forbidden", "this needs an admin API key")
    return found


def _client_address() -> str:
    """The caller's address as API Gateway saw it (requestContext.identity.sourceIp)."""
    identity = (app.current_request.context or {}).get("identity") or {}
    return str(identity.get("sourceIp") or "unknown")


def _body() -> dict[str, Any]:
    return api.json_object(app.current_request.raw_body)


def _status_url(d: deps.Deps, job_id: str) -> str:
    path = f"/api/jobs/{job_id}"
    return f"{d.settings.public_url.rstrip('/')}{path}" if d.settings.public_url else path


def _accepted(d: deps.Deps, job: Job) -> Response:
    url = _status_url(d, job.id)
    return Response(
        body={"jobId": job.id, "status": job.status, "statusUrl": url},
        status_code=202,
        headers={"Location": url},
    )


def _enqueue(d: deps.Deps, job: Job) -> bool:
    """Enqueue; a failure does not fail the request: the row is in Postgres, and the
    sweeper enqueues what Redis is missing."""
    try:
        d.queue.enqueue(job.id, priority=job.priority, owner=job.owner)
    except Exception as exc:
        logs.event("enqueue_failed", jobId=job.id, error=logs.describe(exc))
        return False
    return True


def _enqueue_and_wake(d: deps.Deps, job: Job, reason: str) -> None:
    """Enqueue, then wake a consumer (a failed wake is caught up by the schedule)."""
    if _enqueue(d, job):
        wake.wake(d.settings.consumer_function_name, reason)


# --- health ----------------------------------------------------------------------------


@app.route("/health", methods=["GET"], content_types=ANY_TYPE)
def health() -> dict[str, str]:
    """Liveness: the function runs. Readiness (Redis, Postgres) is /health/ready."""
    return {"status": "ok"}


@app.route("/health/ready", methods=["GET"], content_types=ANY_TYPE)
@handled
def ready() -> Response:
    """Redis and Postgres reachable: `{status: ok|unavailable}` (200 or 503) for anyone.

    With an admin key the body adds each service's state and which queue this
    function talks to (API and consumers showing different queue identities is
    the "jobs wait forever" bug of the old system, visible at a glance). Those
    details (Redis version and run id, host names in an error) are not public.
    """
    d = deps.get()
    body: dict[str, Any] = {"redis": "ok", "postgres": "ok"}
    queue: dict[str, Any] = {
        "name": d.settings.queue_name,
        "redisUrlHash": deps.redis_url_hash(d.settings.require("redis_url")),
        "redisRunId": None,
    }
    try:
        server = d.queue.check_server()
        queue["redisRunId"] = server["run_id"]
        queue["redisVersion"] = server["redis_version"]
    except Exception as exc:
        body["redis"] = "error: " + logs.describe(exc, limit=293)
    postgres_up = d.jobs.ping()
    if not postgres_up:
        body["postgres"] = "error: not reachable"
    body["queue"] = queue
    ok = body["redis"] == "ok" and body["postgres"] == "ok"
    status = {"status": "ok" if ok else "unavailable"}
    if not ok:  # the operator's log keeps what the public answer leaves out
        logs.event("not_ready", redis=body["redis"], postgres=body["postgres"])
    if postgres_up and _asks_as_admin(d):
        status.update(body)
    return Response(body=status, status_code=200 if ok else 503)


def _asks_as_admin(d: deps.Deps) -> bool:
    """True if the request carries a working admin key; a wrong key counts as a failed
    sign-in (details for admins only must not become a key-guessing oracle)."""
    key = bearer_token(app.current_request.headers)
    if key is None:
        return False
    try:
        return _principal(d).is_admin
    except (ApiError, TooManyRequests):
        return False
    except Exception:  # Redis (the sign-in limiter) is down: the key alone decides
        found = KeyStore(d.jobs).principal(key)
        return found is not None and found.is_admin


@app.route("/openapi.json", methods=["GET"], content_types=ANY_TYPE)
@handled
def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route (chalicelib.openapi); no key needed."""
    from chalicelib import openapi

    return openapi.document(app.routes)


# --- uploads ---------------------------------------------------------------------------


@app.route("/api/audio/upload-url", methods=["POST"], content_types=ANY_TYPE)
@handled
def upload_url() -> Response:
    d = deps.get()
    owner = _owner(d)
    request = api.parse_upload(_body())
    upload = d.storage.create_upload(
        owner, request.file_name, request.content_type, request.size_bytes
    )
    return Response(body=upload.to_api(), status_code=200)


@app.route("/api/audio/local-upload/{key}", methods=["PUT"], content_types=ANY_TYPE)
@handled
def local_upload(key: str) -> Response:
    """The local store's stand-in for a presigned S3 PUT (dev only).

    Signed for key, expiry, size and content type, and good for one upload. The
    local server checks the same before reading the body (chalicelib.local.server);
    here it is checked again against the body received.
    """
    d = deps.get()
    if not isinstance(d.storage, LocalStorage):
        raise ApiError("not_found", "uploads go to S3 on this deployment")
    request = app.current_request
    data = request.raw_body or b""
    if isinstance(data, str):
        data = data.encode("utf-8")
    file_key = key_from_path(key)
    params = request.query_params or {}
    content_type = (request.headers or {}).get("content-type")
    error = d.storage.check_put(
        file_key, params.get("expires"), params.get("signature"), len(data), content_type
    )
    if error is not None:
        raise error
    if not d.storage.put_new(file_key, data):
        raise StorageError("upload_used", "this upload URL was already used")
    return Response(body="", status_code=200, headers={"Content-Type": "text/plain"})


# --- jobs ------------------------------------------------------------------------------


@app.route("/api/audio/analyze", methods=["POST"], content_types=ANY_TYPE)
@handled
def analyze() -> Response:
    """Insert the job, then enqueue it, then wake a consumer: 202 even if Redis is down."""
    d = deps.get()
    owner = _owner(d)
    limits.admit_submission(d.queue, d.settings, owner)
    idempotency_key = api.idempotency_key(app.current_request.headers)
    spec = api.parse_submit(
        owner,
        _body(),
        check_genre=api.genre_name,
        check_key=d.storage.check_key,
        check_callback=functools.partial(_callback_form, d),
    )
    require_object(d.storage, spec.file_key, d.settings.max_upload_bytes)
    if spec.reference_file_key:
        require_object(d.storage, spec.reference_file_key, d.settings.max_upload_bytes)
    if spec.callback_url:  # where its host resolves to: last, it asks DNS
        callback_urls.resolve(
            _callback_form(d, spec.callback_url, parsed=True),
            allow_loopback=d.settings.webhook_allow_loopback,
        )
        _webhooks(d).secret(owner)  # the owner's signing secret exists before any event
    if spec.reference_job_id:
        reference = d.jobs.get(spec.reference_job_id, owner)
        if reference is None:
            raise ApiError("reference_not_found", "no such reference job")
        if reference.status != JobStatus.COMPLETED:
            raise ApiError("reference_not_ready", f"the reference job is {reference.status}")
    job, created = d.jobs.create(spec, idempotency_key)
    if created:
        _enqueue_and_wake(d, job, "submit")
        logs.event("submitted", jobId=job.id, owner=owner, mode=job.mode, genre=job.genre)
        logs.job_metrics("submitted", queue=d.settings.queue_name, jobId=job.id)
    return _accepted(d, job)


def _callback_form(d: deps.Deps, raw: object, parsed: bool = False) -> Any:
    """A callbackUrl's form under this deployment's settings (the URL, or the parsed one)."""
    callback = callback_urls.parse(
        raw,
        allow_http=d.settings.webhook_allow_http,
        allow_loopback=d.settings.webhook_allow_loopback,
    )
    return callback if parsed else callback.url


def _webhooks(d: deps.Deps) -> Any:
    from chalicelib.webhooks.store import WebhookStore

    return WebhookStore(d.jobs)


@app.route("/api/jobs", methods=["GET"], content_types=ANY_TYPE)
@handled
def list_jobs() -> dict[str, Any]:
    d = deps.get()
    owner = _owner(d)
    query = api.parse_list_query(app.current_request.query_params)
    jobs = d.jobs.list_for_owner(owner, status=query.status, limit=query.limit)
    return {"jobs": [_history_row(job) for job in jobs]}


def _history_row(job: Job) -> dict[str, Any]:
    """A job without its result, plus the result's score (the history's column)."""
    comparison = (job.result or {}).get("comparison")
    score = comparison.get("score") if isinstance(comparison, dict) else None
    return {**job.to_api(include_result=False), "score": score}


@app.route("/api/jobs/{job_id}", methods=["GET"], content_types=ANY_TYPE)
@handled
def get_job(job_id: str) -> dict[str, Any]:
    d = deps.get()
    job = d.jobs.get(job_id, owner=_owner(d))
    if job is None:
        raise ApiError("not_found", f"no job {shown(job_id)}")
    body = job.to_api()
    if job.callback_url:
        from chalicelib.webhooks.store import callback_view

        body["callback"] = callback_view(job.callback_url, _webhooks(d).latest(job.id))
    return body


@app.route("/api/webhooks/secret", methods=["GET"], content_types=ANY_TYPE)
@handled
def webhook_secret() -> dict[str, Any]:
    """The caller's signing secret for callback events (made on first use)."""
    d = deps.get()
    return _webhooks(d).secret(_owner(d)).to_api()


@app.route("/api/webhooks/secret/rotate", methods=["POST"], content_types=ANY_TYPE)
@handled
def rotate_webhook_secret() -> dict[str, Any]:
    """A new signing secret; the previous one keeps signing events for 24 hours."""
    d = deps.get()
    owner = _owner(d)
    secret = _webhooks(d).rotate(owner)
    logs.event("webhook_secret_rotated", owner=owner)
    return secret.to_api()


@app.route("/api/jobs/{job_id}", methods=["DELETE"], content_types=ANY_TYPE)
@handled
def delete_job(job_id: str) -> dict[str, Any]:
    """Cancel an unfinished job, or delete a finished one with its uploads and result.

    A processing job's consumer is fenced out twice: Postgres refuses every write
    to a cancelled job, and the job leaves the queue, so the next lease renewal is
    refused and the consumer stops. Another owner's job is 404.
    """
    d = deps.get()
    owner = _owner(d)
    return _delete_or_cancel(d, job_id, owner)


def _delete_or_cancel(
    d: deps.Deps, job_id: str, owner: str | None, admin: str | None = None
) -> dict[str, Any]:
    """Cancel or delete owner's job (`owner=None`: any owner's, for `admin`, audited as
    `job.cancel` / `job.delete` in the same transaction as the change)."""
    from chalicelib.audit import Action
    from chalicelib.jobs import parse_job_id

    if parse_job_id(job_id) is None:
        raise ApiError("not_found", f"no job {shown(job_id)}")
    cancel_audit = Action(admin, "job.cancel") if admin else None
    cancelled = d.jobs.cancel(job_id, owner, audit=cancel_audit)
    if cancelled is not None:
        try:
            d.queue.remove(cancelled.id)
        except Exception as exc:  # a stale delivery is fenced by its status in Postgres
            logs.event("cancel_dequeue_failed", jobId=cancelled.id, error=logs.describe(exc))
        logs.event("cancelled", jobId=cancelled.id, owner=cancelled.owner, by=admin)
        return cancelled.to_api(include_result=False)
    delete_audit = Action(admin, "job.delete") if admin else None
    keys = d.jobs.delete_finished(job_id, owner, audit=delete_audit)
    if keys is None:
        raise ApiError("not_found", f"no job {shown(job_id)}")
    for key in keys:
        try:
            d.storage.delete(key)
        except Exception as exc:  # the row is gone; an orphan upload is retention's to sweep
            logs.event("upload_delete_failed", key=key, error=logs.describe(exc))
    logs.event("deleted", jobId=job_id, owner=owner, uploads=len(keys), by=admin)
    return {"jobId": parse_job_id(job_id), "status": "deleted"}


@app.route("/api/jobs/{job_id}/retry", methods=["POST"], content_types=ANY_TYPE)
@handled
def retry_job(job_id: str) -> Response:
    d = deps.get()
    owner = _owner(d)
    limits.admit_submission(d.queue, d.settings, owner)
    job = d.jobs.retry(job_id, owner)
    _enqueue_and_wake(d, job, "retry")
    logs.event("resubmitted", jobId=job.id)
    return _accepted(d, job)


@app.route("/api/me", methods=["GET"], content_types=ANY_TYPE)
@handled
def me() -> dict[str, Any]:
    """Who the caller's key speaks for (any role): the web app shows the console to admins."""
    from chalicelib.jobs import iso_utc

    found = _principal(deps.get())
    return {"owner": found.owner, "role": str(found.role), "expiresAt": iso_utc(found.expires_at)}


@app.route("/api/queue/stats", methods=["GET"], content_types=ANY_TYPE)
@handled
def queue_stats() -> dict[str, Any]:
    """Every tenant's counts and consumer host names: admins only."""
    d = deps.get()
    _admin(d)
    return {"queue": d.queue.stats(), "jobs": d.jobs.counts()}


# --- admin routes (an admin key; every action recorded in the audit table) ------------


def _audit(d: deps.Deps) -> Any:
    from chalicelib.audit import AuditLog

    return AuditLog(d.jobs)


def _action(admin: Principal, action: str, target: str | None = None, **detail: Any) -> Any:
    """An admin action to record in the same transaction as its effect (chalicelib.audit)."""
    from chalicelib.audit import Action

    return Action(admin.owner, action, target, detail)


@app.route("/api/admin/overview", methods=["GET"], content_types=ANY_TYPE)
@handled
def admin_overview() -> dict[str, Any]:
    """Counts per state, paused, consumers, and the last 24 hours by the hour."""
    from chalicelib import console

    d = deps.get()
    _admin(d)
    api.no_query(app.current_request.query_params)
    return console.overview(d.jobs, d.queue)


@app.route("/api/admin/jobs", methods=["GET"], content_types=ANY_TYPE)
@handled
def admin_jobs() -> dict[str, Any]:
    """Any owner's jobs by state, owner, error code: newest first, keyset paged."""
    from chalicelib import console

    d = deps.get()
    _admin(d)
    flt, page = api.parse_admin_jobs_query(app.current_request.query_params)
    jobs, following = console.list_jobs(d.jobs, d.queue, flt, page)
    return {"jobs": jobs, "next": following}


@app.route("/api/admin/jobs/retry", methods=["POST"], content_types=ANY_TYPE)
@handled
def admin_retry_all() -> dict[str, Any]:
    """Redrive the failed (or dead) jobs of a filter, REDRIVE_BATCH at most per call."""
    from chalicelib import console

    d = deps.get()
    admin = _admin(d)
    flt = api.parse_redrive(_body())
    condition, params = console.where(flt)
    audit = _action(admin, "job.retry_all", **console.filter_detail(flt))
    jobs, more = d.jobs.retry_matching(condition, params, console.REDRIVE_BATCH, audit=audit)
    enqueued = sum(_enqueue(d, job) for job in jobs)
    # As many consumers as may run at once, as the sweeper wakes them: not one
    # synchronous invoke per job (100 of them could outlast API Gateway's 29 s).
    for _ in range(min(enqueued, d.settings.max_in_flight or 1)):
        wake.wake(d.settings.consumer_function_name, "admin_retry")
    logs.event("redriven", jobs=len(jobs), more=more, by=admin.owner)
    return {"retried": len(jobs), "jobIds": [job.id for job in jobs], "more": more}


@app.route("/api/admin/jobs/{job_id}", methods=["DELETE"], content_types=ANY_TYPE)
@handled
def admin_delete_job(job_id: str) -> dict[str, Any]:
    """Cancel or delete any owner's job, as DELETE /api/jobs/{id} does for one's own."""
    d = deps.get()
    admin = _admin(d)
    return _delete_or_cancel(d, job_id, None, admin=admin.owner)


@app.route("/api/admin/owners", methods=["GET"], content_types=ANY_TYPE)
@handled
def admin_owners() -> dict[str, Any]:
    """Per-owner usage in name order, keyset paged."""
    from chalicelib import console

    d = deps.get()
    _admin(d)
    page = api.parse_owners_query(app.current_request.query_params)
    found, following = console.owners(d.jobs, page)
    return {"owners": found, "next": following}


@app.route("/api/admin/jobs/{job_id}/retry", methods=["POST"], content_types=ANY_TYPE)
@handled
def admin_retry_job(job_id: str) -> Response:
    """Redrive any owner's failed (or dead) job: queued afresh with a newer fencing token."""
    d = deps.get()
    admin = _admin(d)
    job = d.jobs.retry(job_id, None, audit=_action(admin, "job.retry"))
    _enqueue_and_wake(d, job, "admin_retry")
    logs.event("resubmitted", jobId=job.id, by=admin.owner)
    return _accepted(d, job)


@app.route("/api/admin/queue/pause", methods=["POST"], content_types=ANY_TYPE)
@handled
def admin_pause() -> dict[str, Any]:
    """Stop handing out jobs (enqueues, leases and sweeps go on).

    Audited first, then done, then committed (AuditLog.record_then): Redis is outside
    Postgres' transaction, and a pause that failed leaves no row.
    """
    d = deps.get()
    admin = _admin(d)
    _audit(d).record_then(_action(admin, "queue.pause", d.settings.queue_name), d.queue.pause)
    return {"queue": d.settings.queue_name, "paused": True}


@app.route("/api/admin/queue/resume", methods=["POST"], content_types=ANY_TYPE)
@handled
def admin_resume() -> dict[str, Any]:
    d = deps.get()
    admin = _admin(d)
    _audit(d).record_then(_action(admin, "queue.resume", d.settings.queue_name), d.queue.resume)
    wake.wake(d.settings.consumer_function_name, "resume")
    return {"queue": d.settings.queue_name, "paused": False}


@app.route("/api/admin/audit", methods=["GET"], content_types=ANY_TYPE)
@handled
def admin_audit() -> dict[str, Any]:
    """The audit log, newest first: `?limit=1..200` (default 50), `?before=<id>` pages on."""
    d = deps.get()
    _admin(d)
    limit, before = api.parse_audit_query(app.current_request.query_params)
    entries = _audit(d).list(limit=limit, before=before)
    return {"entries": [e.to_api() for e in entries]}


# --- the web app and share links ------------------------------------------------------


def _web_response(relative: str) -> Response:
    """A web app file with its CSP and security headers; 404 for anything else."""
    found = webapp.asset(relative)
    if found is None:
        error = ApiError("not_found", "no such file")
        return Response(body=error.body(), status_code=404)
    settings = settings_module.get()
    csp = webapp.content_security_policy(
        webapp.upload_origins(settings.storage_bucket, os.environ.get("AWS_ENDPOINT_URL_S3"))
    )
    # Vendored files carry their version in their path: cache them; the app's own revalidate.
    cache = 86400 if relative.startswith("vendor/") else 0
    return Response(
        body=found.body,
        status_code=200,
        headers=webapp.headers(found.content_type, csp, cache_seconds=cache),
    )


@app.route("/", methods=["GET"], content_types=ANY_TYPE)
def web_index() -> Response:
    """The web app. Behind a stage path (`/v1`) it must end in `/` for its relative URLs."""
    request = app.current_request
    context_path = str((request.context or {}).get("path") or "/") if request else "/"
    if not context_path.endswith("/"):
        return Response(body="", status_code=301, headers={"Location": context_path + "/"})
    return _web_response("index.html")


@app.route("/web/{name}", methods=["GET"], content_types=ANY_TYPE)
def web_file(name: str) -> Response:
    return _web_response(name)


@app.route("/web/{folder}/{name}", methods=["GET"], content_types=ANY_TYPE)
def web_file_2(folder: str, name: str) -> Response:
    return _web_response(f"{folder}/{name}")


@app.route("/web/{folder}/{sub}/{name}", methods=["GET"], content_types=ANY_TYPE)
def web_file_3(folder: str, sub: str, name: str) -> Response:
    return _web_response(f"{folder}/{sub}/{name}")


@app.route("/api/genres", methods=["GET"], content_types=ANY_TYPE)
@handled
def list_genres() -> dict[str, Any]:
    """Target sets a job can be compared with: name, title, kind (genre or destination)."""
    from chalicelib.analysis import targets

    _owner(deps.get())
    return {"genres": targets.catalogue(), "default": targets.DEFAULT_TARGET}


def _shares(d: deps.Deps) -> Any:
    from chalicelib.shares import ShareStore

    return ShareStore(d.jobs)


@app.route("/api/jobs/{job_id}/shares", methods=["POST"], content_types=ANY_TYPE)
@handled
def create_share(job_id: str) -> Response:
    """A read-only link to one completed report; the token is shown this once."""
    d = deps.get()
    owner = _owner(d)
    raw = app.current_request.raw_body
    body = api.json_object(raw) if raw not in (None, b"", "") else {}
    hours = api.parse_share(body)
    share, token = _shares(d).create(job_id, owner, hours)
    logs.event("share_created", jobId=job_id, shareId=share.id, owner=owner)
    return Response(body={**share.to_api(), "token": token}, status_code=201)


@app.route("/api/jobs/{job_id}/shares", methods=["GET"], content_types=ANY_TYPE)
@handled
def list_shares(job_id: str) -> dict[str, Any]:
    d = deps.get()
    owner = _owner(d)
    if d.jobs.get(job_id, owner) is None:
        raise ApiError("not_found", f"no job {shown(job_id)}")
    return {"shares": [s.to_api() for s in _shares(d).list(job_id, owner)]}


@app.route("/api/jobs/{job_id}/shares/{share_id}", methods=["DELETE"], content_types=ANY_TYPE)
@handled
def revoke_share(job_id: str, share_id: str) -> dict[str, Any]:
    d = deps.get()
    owner = _owner(d)
    share = _shares(d).revoke(job_id, share_id, owner)
    logs.event("share_revoked", jobId=job_id, shareId=share.id, owner=owner)
    return share.to_api()


@app.route("/api/shared", methods=["GET"], content_types=ANY_TYPE)
@handled
def open_share() -> dict[str, Any]:
    """The report a share token names (`Authorization: Bearer scs_...`), nothing else."""
    return _shares(deps.get()).open(bearer_token(app.current_request.headers))


# --- the consumer and the sweeper -----------------------------------------------------


@app.lambda_function(name="consumer")
def consumer(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Drains the queue; woken by the API after a submit (async invoke)."""
    return consuming.run_consumer(deps.get(), context)


@app.schedule(Rate(1, unit=Rate.MINUTES), name="sweeper")
def sweeper(event: Any) -> dict[str, Any]:
    """Every minute: promote delayed jobs, reclaim expired leases, reconcile, wake consumers."""
    return consuming.run_sweeper(deps.get(), event.context)
