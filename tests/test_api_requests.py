"""Request validation (chalicelib.api): every kind of bad input becomes a 4xx with a code."""

from __future__ import annotations

import uuid

import pytest

from chalicelib import api, jobs
from chalicelib.analysis import AnalysisError
from chalicelib.storage import StorageError, check_owner_key, new_key

OWNER = "alice"


def check_key(owner: str, key: str) -> str:
    return check_owner_key("uploads", owner, key)


def key(owner: str = OWNER) -> str:
    return new_key("uploads", owner, "mix.wav")


def submit(body: dict) -> jobs.JobSpec:  # type: ignore[type-arg]
    return api.parse_submit(OWNER, body, check_genre=api.genre_name, check_key=check_key)


def refused(fn, *args, **kwargs) -> api.ApiError:  # type: ignore[no-untyped-def]
    """The HTTP error a call ends in (ApiError, or a data-layer error the routes map)."""
    with pytest.raises(Exception) as info:
        fn(*args, **kwargs)
    error = api.error_for(info.value)
    assert error is not None, f"unmapped {info.value!r}"
    return error


@pytest.mark.parametrize("raw", [None, b"", b"{bad", b"[1, 2]", b'"text"', b"\xff\xfe", b"null"])
def test_a_body_that_is_not_a_json_object_is_400_invalid_json(raw: bytes | None) -> None:
    error = refused(api.json_object, raw)
    assert (error.status, error.code) == (400, "invalid_json")


def test_a_json_object_body_parses() -> None:
    assert api.json_object(b'{"a": 1}') == {"a": 1}


def test_a_genre_submission_becomes_a_job_spec() -> None:
    file_key = key()
    spec = submit({"fileKey": file_key, "genre": "Techno", "fileName": "My Mix.wav"})
    assert spec == jobs.JobSpec(OWNER, "genre", "techno", file_key, "My Mix.wav", None, None, 0)


def test_a_reference_submission_by_job_id_is_canonicalised() -> None:
    ref = uuid.uuid4()
    spec = submit({"fileKey": key(), "mode": "reference", "referenceJobId": ref.hex.upper()})
    assert (spec.mode, spec.reference_job_id, spec.genre) == ("reference", str(ref), None)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "missing_field"),
        ({"fileKey": 42}, "invalid_field"),
        ({"fileKey": "  "}, "invalid_field"),
        ({"fileKey": "K", "mode": "karaoke"}, "invalid_mode"),
        ({"fileKey": "K", "genre": "polka"}, "unknown_genre"),
        ({"fileKey": "K", "genre": ["pop"]}, "invalid_field"),
        ({"fileKey": "K", "priority": "high"}, "invalid_field"),
        ({"fileKey": "K", "priority": True}, "invalid_field"),
        ({"fileKey": "K", "priority": 5000}, "invalid_field"),
        ({"fileKey": "K", "referenceJobId": str(uuid.uuid4())}, "invalid_field"),
        ({"fileKey": "K", "mode": "reference"}, "missing_reference"),
        ({"fileKey": "K", "mode": "reference", "genre": "pop"}, "invalid_field"),
        ({"fileKey": "K", "mode": "reference", "referenceJobId": "nope"}, "invalid_field"),
        ({"fileKey": "K", "filekey": "typo"}, "unknown_field"),
        ({"fileKey": "K", "fileName": "x" * 300}, "invalid_field"),
    ],
)
def test_bad_submissions_are_400_with_a_code(body: dict, code: str) -> None:
    body = {k: (key() if v == "K" else v) for k, v in body.items()}
    error = refused(submit, body)
    assert (error.status, error.code) == (400, code)


def test_both_references_at_once_are_refused() -> None:
    body = {
        "fileKey": key(),
        "mode": "reference",
        "referenceFileKey": key(),
        "referenceJobId": str(uuid.uuid4()),
    }
    assert refused(submit, body).code == "missing_reference"


@pytest.mark.parametrize(
    "bad_key",
    [
        key("mallory"),  # another owner's upload
        "uploads/../../etc/passwd",
        "/uploads/x",
        "uploads\\x",
    ],
)
def test_a_file_key_outside_the_callers_prefix_is_refused(bad_key: str) -> None:
    for field in ("fileKey", "referenceFileKey"):
        body = {"fileKey": key(), field: bad_key}
        if field == "referenceFileKey":
            body["mode"] = "reference"
        with pytest.raises(StorageError) as info:
            submit(body)
        assert (info.value.status, info.value.code) == (400, "invalid_file_key")


def test_upload_requests_are_typed() -> None:
    request = api.parse_upload({"fileName": "a.wav", "contentType": "audio/wav", "sizeBytes": 9})
    assert request == api.UploadRequest("a.wav", "audio/wav", 9)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"contentType": "audio/wav", "sizeBytes": 9}, "missing_field"),
        ({"fileName": "a.wav", "contentType": "wav", "sizeBytes": 9}, "invalid_content_type"),
        ({"fileName": "a.wav", "contentType": "audio/wav"}, "missing_field"),
        ({"fileName": "a.wav", "contentType": "audio/wav", "sizeBytes": "9"}, "invalid_field"),
        ({"fileName": "a.wav", "contentType": "audio/wav", "sizeBytes": 0}, "invalid_field"),
        (
            {"fileName": "a.wav", "contentType": "audio/wav", "sizeBytes": 1, "x": 1},
            "unknown_field",
        ),
    ],
)
def test_bad_upload_requests_are_400(body: dict, code: str) -> None:
    error = refused(api.parse_upload, body)
    assert (error.status, error.code) == (400, code)


def test_list_query_defaults_and_limits() -> None:
    assert api.parse_list_query(None) == api.ListQuery(None, 20)
    assert api.parse_list_query({"status": "failed", "limit": "5"}) == api.ListQuery("failed", 5)
    for params, code in [
        ({"status": "done"}, "invalid_status"),
        ({"limit": "0"}, "invalid_limit"),
        ({"limit": "101"}, "invalid_limit"),
        ({"limit": "-1"}, "invalid_limit"),
        ({"limit": "ten"}, "invalid_limit"),
        ({"order": "asc"}, "unknown_field"),
    ]:
        assert refused(api.parse_list_query, params).code == code


def test_idempotency_key_header() -> None:
    assert api.idempotency_key({"Idempotency-Key": "abc-123"}) == "abc-123"
    assert api.idempotency_key({"idempotency-key": "abc"}) == "abc"
    assert api.idempotency_key({}) is None
    for bad in ("", "with space", "x" * 256, "é"):
        assert refused(api.idempotency_key, {"Idempotency-Key": bad}).code == (
            "invalid_idempotency_key"
        )


def test_genres_are_checked_with_the_analysis_targets() -> None:
    assert api.genre_name("Techno") == "techno"
    assert api.genre_name("trap+streaming") == "trap+streaming"
    for bad in ("polka", "techno+house", "_base"):
        with pytest.raises(AnalysisError) as info:
            api.genre_name(bad)
        error = api.error_for(info.value)
        assert error is not None and (error.status, error.code) == (400, "unknown_genre")


def test_errors_of_the_data_layer_map_to_statuses() -> None:
    cases = [
        (StorageError("not_found", "gone"), 404, "not_found"),
        (jobs.InvalidJobInput("invalid_limit", "bad"), 400, "invalid_limit"),
        (jobs.IdempotencyConflict("reused"), 409, "idempotency_conflict"),
        (jobs.JobNotFound("no"), 404, "not_found"),
        (jobs.JobNotRetryable("no"), 409, "not_retryable"),
        (ConnectionRefusedError("down"), 503, "unavailable"),
    ]
    for exc, status, code in cases:
        error = api.error_for(exc)
        assert error is not None and (error.status, error.code) == (status, code)
    assert api.error_for(ZeroDivisionError()) is None  # a bug: a 500, not a 4xx
