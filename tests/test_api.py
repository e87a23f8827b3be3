"""The HTTP API route by route, through chalice.test.Client, on real Redis and Postgres."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app import app
from chalicelib import api as api_module
from chalicelib import deps, sweeper
from chalicelib.deps import Deps, redis_url_hash
from chalicelib.jobs import JobSpec
from tests.pipeline_support import (
    app_http,
    build_deps,
    closed_port,
    installed,
    json_body,
    log_events,
    new_owner,
    put_upload,
    settings_for,
    wav_bytes,
)


@pytest.fixture
def env(make_env: Callable[..., dict[str, str]], service_database_url: str) -> dict[str, str]:
    return make_env(service_database_url)


@pytest.fixture
def service(env: dict[str, str]) -> Iterator[Deps]:
    """The app's dependencies, installed for the routes, on this test's queue and store."""
    with installed(env) as d:
        yield d


@pytest.fixture
def http(tmp_path: Path) -> Iterator[Any]:
    with app_http(tmp_path) as client:
        yield client


class User:
    def __init__(self, service: Deps) -> None:
        self.owner = new_owner()
        self.key = service.jobs.create_api_key(self.owner)
        self.headers = {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}


@pytest.fixture
def alice(service: Deps) -> User:
    return User(service)


@pytest.fixture
def bob(service: Deps) -> User:
    return User(service)


def post(http: Any, path: str, user: User | None, body: Any, **headers: str) -> Any:
    raw = body if isinstance(body, str | bytes) else json.dumps(body)
    all_headers = {**(user.headers if user else {}), **headers}
    return http.post(path, headers=all_headers, body=raw)


def get(http: Any, path: str, user: User | None) -> Any:
    return http.get(path, headers=user.headers if user else {})


def assert_error(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.body
    body = json_body(response)
    assert body["error"]["code"] == code
    assert body["error"]["message"]


def submit(http: Any, service: Deps, user: User, **extra: Any) -> Any:
    file_key = put_upload(service, user.owner, wav_bytes(0.2))
    return post(http, "/api/audio/analyze", user, {"fileKey": file_key, **extra})


# --- health --------------------------------------------------------------------------


def test_health_is_ok_without_a_key(http: Any) -> None:
    response = get(http, "/health", None)
    assert (response.status_code, json_body(response)) == (200, {"status": "ok"})


def admin_headers(service: Deps) -> dict[str, str]:
    key = service.jobs.create_api_key(new_owner(), role="admin")
    return {"Authorization": f"Bearer {key}"}


def test_ready_reports_both_services_and_the_queue_identity(
    http: Any, service: Deps, redis_url: str, redis_client: Any
) -> None:
    response = http.get("/health/ready", headers=admin_headers(service))
    assert response.status_code == 200
    body = json_body(response)
    assert (body["redis"], body["postgres"]) == ("ok", "ok")
    assert body["queue"]["name"] == service.settings.queue_name
    assert body["queue"]["redisUrlHash"] == redis_url_hash(redis_url)
    assert body["queue"]["redisRunId"] == redis_client.info()["run_id"]


@pytest.mark.parametrize("down", ["REDIS_URL", "DATABASE_URL"])
def test_ready_is_503_naming_the_service_that_is_down(
    http: Any, env: dict[str, str], service: Deps, down: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Public: only `unavailable`. The log (and an admin, when Postgres can check the
    key) names the service that is down."""
    scheme = "redis" if down == "REDIS_URL" else "postgresql"
    env = {**env, down: f"{scheme}://127.0.0.1:{closed_port()}/0"}
    headers = admin_headers(service)
    broken = build_deps(settings_for(env))
    previous = deps.override(broken)
    try:
        public = get(http, "/health/ready", None)
        response = http.get("/health/ready", headers=headers)
    finally:
        deps.override(previous)
    assert (public.status_code, json_body(public)) == (503, {"status": "unavailable"})
    assert response.status_code == 503
    name = "redis" if down == "REDIS_URL" else "postgres"
    other = "postgres" if name == "redis" else "redis"
    (logged, *_) = [e for e in log_events(capsys.readouterr().out) if e["event"] == "not_ready"]
    assert logged[name].startswith("error") and logged[other] == "ok"
    body = json_body(response)
    if name == "redis":  # Postgres up: the admin key is checked and sees the details
        assert body[name].startswith("error") and body[other] == "ok"
    else:
        assert body == {"status": "unavailable"}


def test_redis_url_hash_ignores_the_password() -> None:
    assert redis_url_hash("rediss://u:secret@host:6380/0") == redis_url_hash(
        "rediss://u:other@host:6380/0"
    )
    assert redis_url_hash("redis://host:6379/0") != redis_url_hash("redis://host:6379/1")


# --- auth ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/audio/upload-url"),
        ("POST", "/api/audio/analyze"),
        ("GET", "/api/jobs"),
        ("GET", f"/api/jobs/{uuid.uuid4()}"),
        ("POST", f"/api/jobs/{uuid.uuid4()}/retry"),
        ("GET", "/api/queue/stats"),
    ],
)
def test_every_api_route_needs_a_known_key(
    http: Any, service: Deps, method: str, path: str
) -> None:
    for headers in ({}, {"Authorization": "Bearer sck_unknown"}, {"Authorization": "Basic x"}):
        response = http.request(method, path, headers=headers, body=b"{}")
        assert_error(response, 401, "unauthorized")
        assert response.headers["WWW-Authenticate"] == "Bearer"


# --- uploads -------------------------------------------------------------------------


def test_upload_url_then_local_put_stores_the_file(http: Any, service: Deps, alice: User) -> None:
    data = wav_bytes(0.1)
    response = post(
        http,
        "/api/audio/upload-url",
        alice,
        {"fileName": "My Mix.wav", "contentType": "audio/wav", "sizeBytes": len(data)},
    )
    assert response.status_code == 200
    upload = json_body(response)
    assert upload["method"] == "PUT" and upload["expiresIn"] > 0
    service.storage.check_key(alice.owner, upload["fileKey"])  # under alice's prefix
    url = urlsplit(upload["uploadUrl"])
    put = http.request("PUT", f"{url.path}?{url.query}", headers=upload["headers"], body=data)
    assert put.status_code == 200, put.body
    target = service.settings.storage_dir / upload["fileKey"]
    assert target.read_bytes() == data


def test_a_local_put_with_a_bad_signature_is_refused(http: Any, service: Deps, alice: User) -> None:
    body = {"fileName": "a.wav", "contentType": "audio/wav", "sizeBytes": 4}
    upload = json_body(post(http, "/api/audio/upload-url", alice, body))
    url = urlsplit(upload["uploadUrl"])
    tampered = url.query.replace("signature=", "signature=0")
    put = http.request("PUT", f"{url.path}?{tampered}", headers=upload["headers"], body=b"RIFF")
    assert_error(put, 403, "invalid_signature")
    assert not service.storage.exists(upload["fileKey"])


def test_upload_url_refuses_bad_requests(http: Any, service: Deps, alice: User) -> None:
    too_big = {"fileName": "a.wav", "contentType": "audio/wav", "sizeBytes": 10**12}
    assert_error(post(http, "/api/audio/upload-url", alice, too_big), 413, "too_large")
    assert_error(post(http, "/api/audio/upload-url", alice, "{nope"), 400, "invalid_json")
    missing = {"fileName": "a.wav", "contentType": "audio/wav"}
    assert_error(post(http, "/api/audio/upload-url", alice, missing), 400, "missing_field")


# --- submit ----------------------------------------------------------------------------


def test_submit_inserts_then_enqueues_and_answers_202(
    http: Any, service: Deps, alice: User
) -> None:
    response = submit(http, service, alice, genre="Trap+Streaming")
    assert response.status_code == 202, response.body
    body = json_body(response)
    assert body["status"] == "queued"
    assert response.headers["Location"] == body["statusUrl"]
    assert body["statusUrl"] == f"http://testserver/api/jobs/{body['jobId']}"
    job = service.jobs.get(body["jobId"])
    assert job is not None and (job.owner, job.status) == (alice.owner, "queued")
    assert job.genre == "trap+streaming"
    assert service.queue.states([job.id]) == {job.id: "waiting"}


def test_submit_refuses_bad_input_with_codes(
    http: Any, service: Deps, alice: User, bob: User
) -> None:
    own = put_upload(service, alice.owner, b"x")
    bobs = put_upload(service, bob.owner, b"x")
    path = "/api/audio/analyze"
    assert_error(post(http, path, alice, "{not json"), 400, "invalid_json")
    assert_error(post(http, path, alice, []), 400, "invalid_json")
    assert_error(post(http, path, alice, {"fileKey": 7}), 400, "invalid_field")
    assert_error(post(http, path, alice, {"fileKey": own, "genre": "polka"}), 400, "unknown_genre")
    assert_error(post(http, path, alice, {"fileKey": bobs}), 400, "invalid_file_key")
    assert_error(
        post(http, path, alice, {"fileKey": "uploads/../../etc/passwd"}), 400, "invalid_file_key"
    )
    missing = own.rsplit("/", 2)[0] + f"/{uuid.uuid4().hex}/gone.wav"
    assert_error(post(http, path, alice, {"fileKey": missing}), 404, "not_found")
    reference = {"fileKey": own, "mode": "reference"}
    assert_error(post(http, path, alice, reference), 400, "missing_reference")
    # a wrong Content-Type still gets our error format, not Chalice's
    response = http.post(path, headers={**alice.headers, "Content-Type": "text/csv"}, body="a,b")
    assert_error(response, 400, "invalid_json")
    assert service.jobs.list_for_owner(alice.owner) == []


def test_submit_with_the_same_idempotency_key_creates_one_job(
    http: Any, service: Deps, alice: User
) -> None:
    file_key = put_upload(service, alice.owner, b"x")
    first = post(
        http, "/api/audio/analyze", alice, {"fileKey": file_key}, **{"Idempotency-Key": "k1"}
    )
    again = post(
        http, "/api/audio/analyze", alice, {"fileKey": file_key}, **{"Idempotency-Key": "k1"}
    )
    assert first.status_code == again.status_code == 202
    assert json_body(first)["jobId"] == json_body(again)["jobId"]
    assert len(service.jobs.list_for_owner(alice.owner)) == 1
    assert service.queue.stats()["waiting"] == 1
    other = post(
        http,
        "/api/audio/analyze",
        alice,
        {"fileKey": file_key, "priority": 3},
        **{"Idempotency-Key": "k1"},
    )
    assert_error(other, 409, "idempotency_conflict")


def test_submit_succeeds_while_redis_is_down_and_the_sweeper_enqueues_later(
    http: Any, service: Deps, env: dict[str, str], alice: User
) -> None:
    file_key = put_upload(service, alice.owner, b"x")
    no_redis = build_deps(
        settings_for({**env, "REDIS_URL": f"redis://127.0.0.1:{closed_port()}/0"})
    )
    previous = deps.override(no_redis)
    try:
        response = post(http, "/api/audio/analyze", alice, {"fileKey": file_key})
    finally:
        deps.override(previous)
    assert response.status_code == 202, response.body
    job_id = json_body(response)["jobId"]
    assert service.jobs.get(job_id).status == "queued"
    assert service.queue.states([job_id]) == {job_id: None}  # never reached Redis
    report = sweeper.sweep(service, min_age_s=0.0)
    assert report.requeued == 1
    assert service.queue.states([job_id]) == {job_id: "waiting"}


def test_reference_job_must_be_the_callers_and_completed(
    http: Any, service: Deps, alice: User, bob: User
) -> None:
    bobs_job, _ = service.jobs.create(JobSpec(bob.owner, "genre", None, "k", None, None, None))
    alices_job, _ = service.jobs.create(JobSpec(alice.owner, "genre", None, "k", None, None, None))
    file_key = put_upload(service, alice.owner, b"x")
    body = {"fileKey": file_key, "mode": "reference"}
    response = post(http, "/api/audio/analyze", alice, {**body, "referenceJobId": bobs_job.id})
    assert_error(response, 404, "reference_not_found")
    response = post(http, "/api/audio/analyze", alice, {**body, "referenceJobId": alices_job.id})
    assert_error(response, 409, "reference_not_ready")


# --- jobs ----------------------------------------------------------------------------


def test_a_job_is_visible_to_its_owner_only(
    http: Any, service: Deps, alice: User, bob: User
) -> None:
    job_id = json_body(submit(http, service, alice))["jobId"]
    mine = get(http, f"/api/jobs/{job_id}", alice)
    assert mine.status_code == 200
    body = json_body(mine)
    assert (body["jobId"], body["status"], body["progress"], body["attempts"]) == (
        job_id,
        "queued",
        0,
        0,
    )
    assert body["createdAt"].endswith("Z") and body["startedAt"] is None
    assert_error(get(http, f"/api/jobs/{job_id}", bob), 404, "not_found")
    assert_error(post(http, f"/api/jobs/{job_id}/retry", bob, ""), 404, "not_found")
    assert_error(get(http, "/api/jobs/not-a-uuid", alice), 404, "not_found")
    assert json_body(get(http, "/api/jobs", bob)) == {"jobs": []}


def test_list_is_newest_first_and_filters_by_status(http: Any, service: Deps, alice: User) -> None:
    ids = [json_body(submit(http, service, alice))["jobId"] for _ in range(3)]
    listed = json_body(get(http, "/api/jobs?limit=2", alice))["jobs"]
    assert [j["jobId"] for j in listed] == ids[::-1][:2]
    assert all("result" not in j for j in listed)
    assert json_body(get(http, "/api/jobs?status=failed", alice)) == {"jobs": []}
    assert_error(get(http, "/api/jobs?status=done", alice), 400, "invalid_status")
    assert_error(get(http, "/api/jobs?limit=1000", alice), 400, "invalid_limit")


def _failed_job(service: Deps, owner: str) -> str:
    file_key = put_upload(service, owner, b"x")
    job, _ = service.jobs.create(JobSpec(owner, "genre", None, file_key, None, None, None))
    service.queue.enqueue(job.id)
    (claim,) = service.queue.claim("test", 60_000)
    assert service.jobs.start(job.id, claim.token, claim.attempt) is not None
    service.queue.fail(job.id, claim.token, "decode_error: bad", retryable=False)
    assert service.jobs.fail(job.id, claim.token, "decode_error", "bad", final=True)
    return job.id


def test_retry_requeues_a_failed_job_and_refuses_others(
    http: Any, service: Deps, alice: User
) -> None:
    job_id = _failed_job(service, alice.owner)
    assert service.queue.states([job_id]) == {job_id: "dead"}
    response = post(http, f"/api/jobs/{job_id}/retry", alice, "")
    assert response.status_code == 202, response.body
    assert json_body(response)["status"] == "queued"
    job = service.jobs.get(job_id)
    assert (job.status, job.attempts, job.error_code) == ("queued", 0, None)
    assert service.queue.states([job_id]) == {job_id: "waiting"}
    assert_error(post(http, f"/api/jobs/{job_id}/retry", alice, ""), 409, "not_retryable")


def test_queue_stats_counts_jobs_and_queue_states(http: Any, service: Deps, alice: User) -> None:
    submit(http, service, alice)
    assert_error(get(http, "/api/queue/stats", alice), 403, "forbidden")  # a user key
    response = http.get("/api/queue/stats", headers=admin_headers(service))
    assert response.status_code == 200
    body = json_body(response)
    assert body["queue"]["name"] == service.settings.queue_name
    assert body["queue"]["waiting"] == 1
    assert body["jobs"]["queued"] >= 1


def test_unknown_paths_are_not_500(http: Any) -> None:
    assert http.get("/api/nope").status_code in (403, 404)


def test_a_bug_in_a_route_is_a_json_500_without_a_trace(
    http: Any, env: dict[str, str], alice: User, service: Deps, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = build_deps(settings_for(env))
    broken.jobs = None  # type: ignore[assignment]  # any attribute access now raises
    previous = deps.override(broken)
    try:
        response = get(http, "/api/jobs", alice)
    finally:
        deps.override(previous)
    assert_error(response, 500, "internal_error")
    assert "Traceback" not in response.body.decode()
    # The client gets a fixed message with a reference id; the log line with that id has the bug.
    message = json_body(response)["error"]["message"]
    assert "NoneType" not in message and "owner_for_key" not in message
    reference = re.fullmatch(r"an internal error occurred \(reference ([0-9a-f]{12})\)", message)
    assert reference is not None, message
    (logged,) = [e for e in log_events(capsys.readouterr().out) if e["event"] == "api_error"]
    assert logged["reference"] == reference[1] and "NoneType" in logged["error"]


def test_echoed_input_is_capped(http: Any, service: Deps, alice: User) -> None:
    long_id = "7" * 60_000
    response = get(http, f"/api/jobs/{long_id}", alice)
    assert_error(response, 404, "not_found")
    assert len(response.body) < 1000
    body = {"fileKey": "k", "x" * 60_000: 1}
    response = post(http, "/api/audio/analyze", alice, body)
    assert_error(response, 400, "unknown_field")
    assert len(response.body) < 1000


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
FIELDS = st.sampled_from(
    ["fileKey", "mode", "genre", "referenceFileKey", "referenceJobId", "fileName", "priority"]
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.dictionaries(FIELDS, JSON, max_size=5) | JSON,
    raw=st.binary(max_size=40),
    use_raw=st.booleans(),
    path=st.sampled_from(["/api/audio/analyze", "/api/audio/upload-url"]),
)
def test_no_input_makes_the_api_answer_500(
    http: Any, service: Deps, alice: User, body: Any, raw: bytes, use_raw: bool, path: str
) -> None:
    response = post(http, path, alice, raw if use_raw else json.dumps(body))
    assert 400 <= response.status_code < 500 or response.status_code in (200, 202), response.body
    if response.status_code >= 400:
        assert json_body(response)["error"]["code"]


# --- odd input on every route and field (issue 13) -----------------------------------
# The kind: input that reaches a library which raises something the routes do not map
# (pg8000 on a lone surrogate in fileName, hmac on a non-ASCII signature). Every
# route of the app, every path parameter, query parameter, body field and header
# gets strings that are not quite text: lone surrogates, NUL, other scripts, digits
# that are not ASCII, very long ones; any answer is < 500.

ODD = st.sampled_from(
    [
        "\ud800 mix.wav",
        "\udfff",
        "mix\x00.wav",
        "é",
        "🎵",
        "\u202egnp.exe",
        "١٢٣",
        "²",
        "1e12",
        "-1",
        "x" * 3000,
        "",
        " ",
        "../../etc/passwd",
        "%00",
        "\r\nX-Evil: 1",
        "null",
        "ＡＢＣ",
    ]
) | st.text(alphabet=st.characters(exclude_categories=()), max_size=12)
ODD_JSON = ODD | JSON | st.integers(min_value=-(10**30), max_value=10**30)
HEADER_TEXT = st.text(alphabet=st.characters(max_codepoint=0xFF, exclude_categories=("Cc",)))
FIELDS_OF = {
    "/api/audio/upload-url": ["fileName", "contentType", "sizeBytes"],
    "/api/audio/analyze": sorted(api_module.SUBMIT_FIELDS),
}
QUERY_OF = {
    "/api/jobs": ["status", "limit"],
    "/api/audio/local-upload/{key}": ["expires", "signature"],
}


def _segment(value: str) -> str:
    """A path segment or query value as a client would percent-encode its UTF-8."""
    return quote(value.encode("utf-8", "surrogatepass"), safe="")


ROUTES = sorted((path, method) for path, entry in app.routes.items() for method in entry)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data(), route=st.sampled_from(ROUTES))
def test_odd_input_on_any_route_and_field_is_never_a_500(
    http: Any, service: Deps, alice: User, data: st.DataObject, route: tuple[str, str]
) -> None:
    path, method = route
    # Non-empty: an empty segment is an unknown route, which API Gateway answers (and
    # locally chalicelib.local.server; tests/test_local_server.py).
    segment = ODD.filter(bool)
    url = re.sub(r"\{[a-z_]+\}", lambda _: _segment(data.draw(segment, "path param")), path)
    names = QUERY_OF.get(path, []) + data.draw(st.lists(ODD, max_size=1), "extra query")
    query = {n: data.draw(ODD, f"query {n!r}") for n in names if data.draw(st.booleans())}
    if query:
        url += "?" + "&".join(f"{_segment(k)}={_segment(v)}" for k, v in query.items())
    headers = dict(alice.headers)
    if data.draw(st.booleans(), "odd headers"):
        for name in ("Authorization", "Idempotency-Key", "Content-Type"):
            if data.draw(st.booleans()):
                headers[name] = data.draw(HEADER_TEXT, name)
    fields = FIELDS_OF.get(path, [])
    body: Any = {f: data.draw(ODD_JSON, f) for f in fields if data.draw(st.booleans())}
    if not fields or data.draw(st.booleans(), "odd body"):
        body = data.draw(ODD_JSON | st.dictionaries(ODD, ODD_JSON, max_size=3), "body")
    if path == "/api/audio/analyze" and isinstance(body, dict) and data.draw(st.booleans()):
        # A real upload of the caller's, so the other fields reach the job store.
        body["fileKey"] = put_upload(service, alice.owner, b"RIFF....WAVE")
    raw = json.dumps(body).encode() if method in ("POST", "PUT") else b""
    response = http.request(method, url, headers=headers, body=raw)
    assert response.status_code < 500, (method, url, headers, raw[:300], response.body[:300])
    if response.status_code == 415:  # chalice's own check of a GET route's Content-Type
        assert json_body(response)["Code"] == "UnsupportedMediaType"
    elif response.status_code >= 400:
        assert json_body(response)["error"]["code"]


def test_the_security_probes_odd_inputs_are_4xx(http: Any, service: Deps, alice: User) -> None:
    """The two inputs the probe found: a lone surrogate in fileName, a non-ASCII signature."""
    for path, body in (
        (
            "/api/audio/upload-url",
            {"fileName": "\ud800 mix.wav", "contentType": "audio/wav", "sizeBytes": 10},
        ),
        (
            "/api/audio/analyze",
            {
                "fileKey": put_upload(service, alice.owner, wav_bytes()),
                "fileName": "\ud800 mix.wav",
            },
        ),
    ):
        response = post(http, path, alice, json.dumps(body))  # ensure_ascii: "\\ud800"
        assert_error(response, 400, "invalid_json")
    upload = json_body(
        post(
            http,
            "/api/audio/upload-url",
            alice,
            {"fileName": "a.wav", "contentType": "audio/wav", "sizeBytes": 4},
        )
    )
    url = urlsplit(upload["uploadUrl"])
    query = url.query.replace("signature=", "signature=%C3%A9")
    put = http.request("PUT", f"{url.path}?{query}", headers=upload["headers"], body=b"RIFF")
    assert_error(put, 403, "invalid_signature")
