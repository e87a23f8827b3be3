"""The web app's files and the routes it needs (genres, share links), through chalice.test.

The browser itself is driven in tests/test_web_browser.py; here: what is served, with
which headers, what the share routes reveal and to whom.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from app import app
from chalicelib import webapp
from chalicelib.db import connect
from chalicelib.deps import Deps
from chalicelib.jobs import JobSpec
from tests.pipeline_support import (
    app_http,
    installed,
    json_body,
    new_owner,
)

WEB = webapp.WEB_DIR


@pytest.fixture
def env(make_env: Callable[..., dict[str, str]], database_url: str) -> dict[str, str]:
    return make_env(database_url)


@pytest.fixture
def service(env: dict[str, str]) -> Iterator[Deps]:
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


def completed_job(service: Deps, user: User, name: str = "mix.wav") -> str:
    spec = JobSpec(
        owner=user.owner,
        mode="genre",
        genre="pop",
        file_key=f"uploads/{user.owner}/x/{name}",
        file_name=name,
        reference_file_key=None,
        reference_job_id=None,
    )
    job, _ = service.jobs.create(spec)
    assert service.jobs.start(job.id, 1, 1) is not None
    result = {"schemaVersion": 2, "loudness": {"integratedLufs": -9.1}, "comparison": {"score": 77}}
    assert service.jobs.complete(job.id, 1, result)
    return job.id


# --- static files ----------------------------------------------------------------------


def test_the_page_is_served_with_a_csp_without_inline_script(http: Any) -> None:
    response = http.get("/")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self';" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    html = response.body.decode()
    # Relative URLs only: the app lives under a stage path (/v1/) on API Gateway.
    for url in re.findall(r'(?:src|href)="([^"]+)"', html):
        assert not url.startswith(("/", "http:", "https:", "//")), url


def test_the_page_behind_a_stage_path_without_its_slash_redirects() -> None:
    # API Gateway passes the stage path in requestContext.path; `/v1` must become `/v1/`
    # or every relative URL would resolve outside the stage.
    from chalice.app import Request

    event = {
        "multiValueQueryStringParameters": None,
        "headers": {},
        "pathParameters": None,
        "requestContext": {"httpMethod": "GET", "resourcePath": "/", "path": "/v1"},
        "body": None,
        "stageVariables": None,
        "isBase64Encoded": False,
    }
    app.current_request = Request(event)
    try:
        response = app.routes["/"]["GET"].view_function()
    finally:
        app.current_request = None
    assert response.status_code == 301 and response.headers["Location"] == "/v1/"


def test_every_file_is_served_with_its_content_type_and_nothing_else_is(http: Any) -> None:
    files = webapp.manifest()
    assert {"index.html", "app.css", "js/main.js", "vendor/uplot-1.6.32/uPlot.iife.min.js"} <= set(
        files
    )
    for relative in files:
        response = http.get(f"/web/{relative}")
        assert response.status_code == 200, relative
        expected = webapp.CONTENT_TYPES.get(Path(relative).suffix, "text/plain; charset=utf-8")
        assert response.headers["Content-Type"] == expected, relative
        assert "Content-Security-Policy" in response.headers
    for bad in ("/web/nope.js", "/web/js/../../app.py", "/web/..%2F..%2Fapp.py", "/web/js/x/y"):
        response = http.get(bad)
        assert response.status_code in (403, 404), bad
        assert b"Chalice" not in response.body


def test_vendored_files_match_their_recorded_checksums() -> None:
    vendor = WEB / "vendor"
    lines = (vendor / "SHA256SUMS").read_text().splitlines()
    assert lines
    for line in lines:
        digest, name = line.split(maxsplit=1)
        assert hashlib.sha256((vendor / name).read_bytes()).hexdigest() == digest, name
    for folder in vendor.iterdir():
        if folder.is_dir():
            assert (folder / "LICENSE").is_file(), f"{folder.name} has no licence file"


def test_the_page_never_parses_strings_as_html() -> None:
    """Safe by construction: no API that turns a string into markup or code."""
    forbidden = re.compile(
        r"\.innerHTML|\.outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function\(|"
        r"setTimeout\(\s*['\"`]|createContextualFragment"
    )
    for path in (WEB / "js").rglob("*.js"):
        text = path.read_text()
        assert not forbidden.search(text), f"{path.name}: {forbidden.search(text)}"
    html = (WEB / "index.html").read_text()
    assert all(" src=" in tag for tag in re.findall(r"<script[^>]*>", html)), "inline script"
    assert "style=" not in html and "<style" not in html
    assert not re.search(r"\son[a-z]+=", html), "inline event handler"


def test_the_api_key_is_never_put_in_a_url() -> None:
    """The key goes in the Authorization header only; the sign-in link's fragment is
    read by the page and removed from the address bar."""
    api_js = (WEB / "js" / "api.js").read_text()
    assert "Authorization = `Bearer ${bearer}`" in api_js
    session_js = (WEB / "js" / "session.js").read_text()
    assert "history.replaceState" in session_js
    for path in (WEB / "js").rglob("*.js"):
        assert not re.search(r"[?&](api_?key|key|token)=", path.read_text()), path.name


# --- genres ------------------------------------------------------------------------------


def test_genres_lists_titles_and_kinds_for_a_signed_in_user(http: Any, service: Deps) -> None:
    assert http.get("/api/genres").status_code == 401
    user = User(service)
    body = json_body(http.get("/api/genres", headers=user.headers))
    names = {g["name"]: g for g in body["genres"]}
    assert names["pop"]["kind"] == "genre" and names["streaming"]["kind"] == "destination"
    assert body["default"] == "streaming"
    assert "platforms" not in names and "_base" not in names


# --- share links -----------------------------------------------------------------------


def share(http: Any, user: User, job_id: str, **body: Any) -> Any:
    return http.post(f"/api/jobs/{job_id}/shares", headers=user.headers, body=json.dumps(body))


def open_shared(http: Any, token: str) -> Any:
    return http.get("/api/shared", headers={"Authorization": f"Bearer {token}"})


def test_a_share_link_shows_one_report_and_nothing_else(http: Any, service: Deps) -> None:
    alice = User(service)
    job_id = completed_job(service, alice, "<img src=x onerror=alert(1)>.wav")
    other_job = completed_job(service, alice, "other.wav")
    created = share(http, alice, job_id)
    assert created.status_code == 201, created.body
    token = json_body(created)["token"]
    assert token.startswith("scs_") and len(token) > 40

    body = json_body(open_shared(http, token))
    assert body["result"]["comparison"]["score"] == 77
    assert body["fileName"] == "<img src=x onerror=alert(1)>.wav"  # data; the page shows it as text
    text = json.dumps(body)
    for secret in (alice.owner, alice.key, job_id, other_job, "uploads/"):
        assert secret not in text
    # The token opens nothing else: not the owner's jobs, not the job by id.
    share_headers = {"Authorization": f"Bearer {token}"}
    assert http.get("/api/jobs", headers=share_headers).status_code == 401
    assert http.get(f"/api/jobs/{job_id}", headers=share_headers).status_code == 401
    # Only a hash of the token is stored.
    conn = connect(service.settings.database_url, service.settings.db_schema)
    try:
        stored = conn.run("SELECT token_hash FROM shares")
    finally:
        conn.close()
    assert [row[0] for row in stored] == [hashlib.sha256(token.encode()).hexdigest()]


def test_bad_tokens_and_api_keys_open_nothing(http: Any, service: Deps) -> None:
    alice = User(service)
    token = json_body(share(http, alice, completed_job(service, alice)))["token"]
    for bad in (token[:-1] + ("A" if token[-1] != "A" else "B"), alice.key, "scs_", "x" * 300):
        response = open_shared(http, bad)
        assert response.status_code == 404 and json_body(response)["error"]["code"] == (
            "share_not_found"
        ), bad
    assert http.get("/api/shared").status_code == 404


def test_revoked_and_expired_links_stop_working(http: Any, service: Deps) -> None:
    alice = User(service)
    job_id = completed_job(service, alice)
    first = json_body(share(http, alice, job_id))
    second = json_body(share(http, alice, job_id, expiresInHours=1))
    assert open_shared(http, first["token"]).status_code == 200

    revoked = http.delete(f"/api/jobs/{job_id}/shares/{first['shareId']}", headers=alice.headers)
    assert revoked.status_code == 200 and json_body(revoked)["revokedAt"]
    assert open_shared(http, first["token"]).status_code == 404
    assert open_shared(http, second["token"]).status_code == 200

    conn = connect(service.settings.database_url, service.settings.db_schema)
    try:
        conn.run(
            "UPDATE shares SET expires_at = now() - interval '1 second'"
            " WHERE id = CAST(:id AS uuid)",
            id=second["shareId"],
        )
    finally:
        conn.close()
    assert open_shared(http, second["token"]).status_code == 404

    listed = json_body(http.get(f"/api/jobs/{job_id}/shares", headers=alice.headers))["shares"]
    assert [s["shareId"] for s in listed] == [second["shareId"], first["shareId"]]
    assert all("token" not in s for s in listed)


def test_another_owner_cannot_share_list_or_revoke(http: Any, service: Deps) -> None:
    alice, bob = User(service), User(service)
    job_id = completed_job(service, alice)
    made = json_body(share(http, alice, job_id))
    assert share(http, bob, job_id).status_code == 404
    assert http.get(f"/api/jobs/{job_id}/shares", headers=bob.headers).status_code == 404
    path = f"/api/jobs/{job_id}/shares/{made['shareId']}"
    assert http.delete(path, headers=bob.headers).status_code == 404
    assert open_shared(http, made["token"]).status_code == 200
    assert share(http, alice, job_id, expiresInHours=1).status_code == 201
    assert http.post(f"/api/jobs/{job_id}/shares", body="").status_code == 401


def test_share_requests_are_checked(http: Any, service: Deps) -> None:
    alice = User(service)
    job_id = completed_job(service, alice)
    for body, code in (
        ({"expiresInHours": 0}, "invalid_field"),
        ({"expiresInHours": 24 * 91}, "invalid_field"),
        ({"expiresInHours": "7"}, "invalid_field"),
        ({"expiresInHours": True}, "invalid_field"),
        ({"forever": True}, "unknown_field"),
    ):
        response = share(http, alice, job_id, **body)
        assert response.status_code == 400 and json_body(response)["error"]["code"] == code, body
    queued, _ = service.jobs.create(
        JobSpec(alice.owner, "genre", None, f"uploads/{alice.owner}/q/a.wav", None, None, None)
    )
    response = share(http, alice, queued.id)
    assert response.status_code == 409 and json_body(response)["error"]["code"] == "not_completed"
    assert share(http, alice, "not-a-uuid").status_code == 404
    response = http.delete(f"/api/jobs/{job_id}/shares/nope", headers=alice.headers)
    assert response.status_code == 404


def test_history_rows_carry_the_score(http: Any, service: Deps) -> None:
    alice = User(service)
    completed_job(service, alice)
    jobs = json_body(http.get("/api/jobs", headers=alice.headers))["jobs"]
    assert jobs[0]["score"] == 77 and "result" not in jobs[0]
