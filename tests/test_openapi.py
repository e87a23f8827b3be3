"""GET /openapi.json: a valid OpenAPI 3.1 document of exactly the app's routes.

The document is built from the Chalice route table and the parsers' own schemas
(chalicelib.api), so these tests check the wiring: every route in, nothing extra,
the schemas the parsers use are the ones published, and it needs no key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from chalice.test import Client
from openapi_spec_validator import validate

from app import app
from chalicelib import api, openapi, rules, shares


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    with Client(app, project_dir=str(tmp_path_factory.mktemp("chalice"))) as client:
        answer = client.http.get("/openapi.json")  # no Authorization header
    assert answer.status_code == 200, answer.body
    return json.loads(answer.body)


def test_the_document_is_valid_openapi_3_1(served: dict[str, Any]) -> None:
    assert served["openapi"].startswith("3.1")
    validate(served)


def test_every_route_is_in_the_document_and_nothing_else(served: dict[str, Any]) -> None:
    routes = {(m, path) for path, methods in app.routes.items() for m in methods}
    documented = {(m.upper(), path) for path, ops in served["paths"].items() for m in ops}
    assert documented == routes
    assert set(openapi.OPERATIONS) == routes  # no stale entry for a removed route


def test_a_route_without_an_entry_is_refused() -> None:
    routes = {**app.routes, "/api/new": {"GET": object()}}
    with pytest.raises(KeyError, match="GET /api/new"):
        openapi.document(routes)


def test_request_schemas_are_the_parsers_own(served: dict[str, Any]) -> None:
    paths = served["paths"]

    def body(path: str) -> dict[str, Any]:
        return paths[path]["post"]["requestBody"]["content"]["application/json"]["schema"]

    assert body("/api/audio/analyze") == api.SUBMIT_SCHEMA
    assert set(api.SUBMIT_SCHEMA["properties"]) == api.SUBMIT_FIELDS
    assert body("/api/audio/upload-url") == api.UPLOAD_SCHEMA
    assert set(api.UPLOAD_SCHEMA["properties"]) == api.UPLOAD_FIELDS
    assert body("/api/jobs/{job_id}/shares") == api.SHARE_SCHEMA
    assert api.SHARE_SCHEMA["properties"]["expiresInHours"]["maximum"] == shares.MAX_HOURS
    query = {p["name"]: p["schema"] for p in paths["/api/jobs"]["get"]["parameters"]}
    assert query == api.LIST_QUERY_SCHEMA
    assert query["status"]["enum"] == list(rules.STATUSES)


def test_the_parser_refuses_what_the_schema_leaves_out() -> None:
    """A field the schema does not list is `unknown_field`, as additionalProperties says."""
    with pytest.raises(api.ApiError) as refused:
        api.parse_upload({"fileName": "a.wav", "contentType": "audio/wav", "sizeBytes": 1, "x": 1})
    assert refused.value.code == "unknown_field"
    assert api.UPLOAD_SCHEMA["additionalProperties"] is False
    with pytest.raises(api.ApiError) as refused:
        api.parse_list_query({"sort": "asc"})
    assert refused.value.code == "unknown_field"


def test_error_responses_name_their_codes(served: dict[str, Any]) -> None:
    responses = served["paths"]["/api/audio/analyze"]["post"]["responses"]
    assert "invalid_json" in responses["400"]["description"]
    assert responses["401"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }
    assert served["paths"]["/api/jobs"]["get"]["security"] == [{"apiKey": []}]
    assert served["paths"]["/health"]["get"]["security"] == []


def test_job_schema_matches_to_api() -> None:
    """Job.to_api's keys are the schema's: a field added there must be described here."""
    from chalicelib.jobs import Job

    fields = Job.to_api.__code__.co_consts
    keys = {c for c in fields if isinstance(c, str) and c[:1].islower() and c.isidentifier()}
    described = set(openapi.SCHEMAS["Job"]["properties"])
    assert keys - {"include_result"} <= described | {"code", "message"}


def test_an_odd_content_type_on_a_get_gets_our_error_format(tmp_path: Path) -> None:
    """Chalice answers 415 in its own format unless the route accepts any type."""
    with Client(app, project_dir=str(tmp_path)) as client:
        answer = client.http.get("/api/jobs", headers={"Content-Type": "text/x-odd"})
        health = client.http.get("/health", headers={"Content-Type": "text/x-odd"})
    assert answer.status_code != 415
    assert set(json.loads(answer.body)["error"]) == {"code", "message"}  # ours, not chalice's
    assert health.status_code == 200


def test_every_route_takes_any_content_type_so_errors_are_ours() -> None:
    """A route left at chalice's default (application/json) answers another type with
    chalice's own 415 `{Code, Message}` before our code runs (DELETE /api/jobs/{id} and
    GET /api/admin/audit did); bodies are parsed in the routes, with our error codes."""
    narrow = [
        f"{method} {path}"
        for path, methods in app.routes.items()
        for method, entry in methods.items()
        if entry.content_types != ["*/*"]
    ]
    assert narrow == []


def test_an_odd_content_type_on_a_delete_gets_our_error_format(tmp_path: Path) -> None:
    with Client(app, project_dir=str(tmp_path)) as client:
        answer = client.http.delete(
            "/api/jobs/00000000-0000-0000-0000-000000000000",
            headers={"Content-Type": "text/x-odd"},
        )
    # 401 (no key) where a database is configured, 503 where none is: ours either way,
    # never chalice's own 415 {Code, Message}
    assert answer.status_code in (401, 503)
    assert set(json.loads(answer.body)["error"]) == {"code", "message"}
