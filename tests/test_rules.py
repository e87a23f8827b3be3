"""One rule, one code, one message: the API, the job store and the object store agree."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from chalicelib import api, jobs, rules
from chalicelib.errors import SoundcheckError
from chalicelib.storage import LocalStorage, check_owner_key, new_key

OWNER = "alice"
KEY = new_key("uploads", OWNER, "mix.wav")


def refusal(fn: Any, *args: Any, **kwargs: Any) -> tuple[int, str, str]:
    with pytest.raises(SoundcheckError) as info:
        fn(*args, **kwargs)
    return info.value.status, info.value.code, info.value.message


def at_the_api(field: str, value: Any) -> tuple[int, str, str]:
    body = {"fileKey": KEY, field: value}
    check_key = lambda owner, key: check_owner_key("uploads", owner, key)  # noqa: E731
    return refusal(api.parse_submit, OWNER, body, check_genre=api.genre_name, check_key=check_key)


def in_the_store(attribute: str, value: Any) -> tuple[int, str, str]:
    values: dict[str, Any] = {
        "owner": OWNER,
        "mode": "genre",
        "genre": None,
        "file_key": KEY,
        "file_name": None,
        "reference_file_key": None,
        "reference_job_id": None,
        "priority": 0,
        attribute: value,
    }
    return refusal(jobs._validate, jobs.JobSpec(**values), None)


@pytest.mark.parametrize(
    ("field", "attribute", "value"),
    [
        ("priority", "priority", 5000),
        ("priority", "priority", -1001),
        ("priority", "priority", True),
        ("priority", "priority", "high"),
        ("fileName", "file_name", "x" * 256),
        ("fileName", "file_name", "mix\x00.wav"),
        ("fileName", "file_name", "   "),
        ("genre", "genre", "x" * 65),
        ("mode", "mode", "karaoke"),
    ],
)
def test_a_submit_field_rule_reads_the_same_at_the_api_and_in_the_store(
    field: str, attribute: str, value: Any
) -> None:
    assert at_the_api(field, value) == in_the_store(attribute, value)


def test_the_idempotency_key_rule_reads_the_same_at_the_api_and_in_the_store() -> None:
    spec = jobs.JobSpec(OWNER, "genre", None, KEY, None, None, None, 0)
    for bad in ("", "with space", "x" * 256, "é"):
        header = refusal(api.idempotency_key, {"Idempotency-Key": bad})
        assert header == refusal(jobs._validate, spec, bad)
        assert header[:2] == (400, "invalid_idempotency_key")


@pytest.mark.parametrize(
    ("name", "content_type", "size"),
    [("x" * 256, "audio/wav", 10), ("a.wav", "audio wav", 10), ("a.wav", "audio/wav", 0)],
)
def test_an_upload_rule_reads_the_same_at_the_api_and_in_the_object_store(
    tmp_path: Path, name: str, content_type: str, size: int
) -> None:
    store = LocalStorage(tmp_path, "http://test", b"s" * 32, max_upload_bytes=1000)
    body = {"fileName": name, "contentType": content_type, "sizeBytes": size}
    assert refusal(api.parse_upload, body) == refusal(
        store.create_upload, OWNER, name, content_type, size
    )


def test_statuses_are_designs_and_compare_as_text() -> None:
    design = (Path(__file__).resolve().parent.parent / "docs" / "design.md").read_text()
    listed = re.search(r"GET /api/jobs/\{id\}` -> `\{jobId, status: ([a-z|]+),", design)
    assert listed is not None, "docs/design.md no longer lists the job statuses"
    assert tuple(listed[1].split("|")) == rules.STATUSES
    assert rules.JobStatus("failed") == "failed" and f"{rules.JobStatus.QUEUED}" == "queued"
