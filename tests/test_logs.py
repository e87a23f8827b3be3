"""Log lines are JSON, and metric lines are valid CloudWatch Embedded Metric Format."""

from __future__ import annotations

import io
import json
import math
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from chalicelib import logs, settings
from chalicelib.queue import Queue

DOCS = Path(__file__).resolve().parent.parent / "docs" / "cloudwatch.md"


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def assert_valid_emf(line: dict[str, Any]) -> None:
    """The rules CloudWatch applies before it turns a log line into metrics."""
    aws = line["_aws"]
    assert isinstance(aws["Timestamp"], int)
    assert abs(aws["Timestamp"] - time.time() * 1000) < 60_000
    for directive in aws["CloudWatchMetrics"]:
        assert 1 <= len(directive["Namespace"]) <= 255
        assert not directive["Namespace"].startswith("AWS/")
        for dim_set in directive["Dimensions"]:
            assert len(dim_set) <= logs.MAX_DIMENSIONS
            for dim in dim_set:
                assert isinstance(line[dim], str), f"dimension {dim} needs a string value"
        assert 1 <= len(directive["Metrics"]) <= logs.MAX_METRICS
        for metric in directive["Metrics"]:
            assert metric["Unit"] in logs.UNITS
            value = line[metric["Name"]]
            assert isinstance(value, int | float) and math.isfinite(value)


def test_event_is_one_json_line_with_ts_and_name() -> None:
    out = io.StringIO()
    before = time.time()
    logs.event("completed", stream=out, jobId="j1", attempt=2, durationMs=12.5)
    (line,) = lines(out)
    assert line["event"] == "completed"
    assert line["jobId"] == "j1" and line["attempt"] == 2 and line["durationMs"] == 12.5
    assert before - 1 <= line["ts"] <= time.time() + 1


def test_event_with_nan_anywhere_stays_valid_json() -> None:
    out = io.StringIO()
    logs.event("drained", stream=out, ratio=math.nan, nested={"peak": [1.0, -math.inf]})
    (line,) = lines(out)  # json.loads would accept NaN; check the text itself
    assert "NaN" not in out.getvalue() and "Infinity" not in out.getvalue()
    assert line["ratio"] is None and line["nested"] == {"peak": [1.0, None]}


def test_event_renders_unknown_types_as_text() -> None:
    out = io.StringIO()
    logs.event("x", stream=out, path=Path("/tmp/a.wav"))
    assert lines(out)[0]["path"] == "/tmp/a.wav"


def test_metrics_line_is_emf_with_catalogue_units() -> None:
    out = io.StringIO()
    returned = logs.metrics(
        {"QueueDepth": 3, "OldestWaitAge": 1500.0},
        dimensions={"Queue": "audio"},
        namespace="soundcheck/test",
        stream=out,
    )
    (line,) = lines(out)
    assert line == json.loads(json.dumps(returned))
    assert_valid_emf(line)
    directive = line["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "soundcheck/test"
    assert directive["Dimensions"] == [["Queue"]]
    assert directive["Metrics"] == [
        {"Name": "QueueDepth", "Unit": "Count"},
        {"Name": "OldestWaitAge", "Unit": "Milliseconds"},
    ]
    assert line["QueueDepth"] == 3 and line["OldestWaitAge"] == 1500.0 and line["Queue"] == "audio"
    assert line["event"] == "metrics"


def test_metrics_unit_override_and_extra_fields() -> None:
    out = io.StringIO()
    logs.metrics(
        {"Custom": 0.5, "Other": 2},
        unit={"Custom": "Seconds", "Other": "Bytes"},
        namespace="ns",
        stream=out,
        jobId="j9",
    )
    (line,) = lines(out)
    assert_valid_emf(line)
    units = {m["Name"]: m["Unit"] for m in line["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert units == {"Custom": "Seconds", "Other": "Bytes"}
    assert line["jobId"] == "j9"
    assert line["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [[]]


def test_metrics_drops_non_finite_values() -> None:
    out = io.StringIO()
    logs.metrics({"JobDuration": math.nan, "JobsCompleted": 1}, namespace="ns", stream=out)
    (line,) = lines(out)
    assert_valid_emf(line)
    assert [m["Name"] for m in line["_aws"]["CloudWatchMetrics"][0]["Metrics"]] == ["JobsCompleted"]
    assert "JobDuration" not in line


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"values": {"NoSuchMetric": 1}}, "has no unit"),
        ({"values": {"QueueDepth": 1}, "unit": "Furlongs"}, "not a CloudWatch unit"),
        ({"values": {"QueueDepth": "3"}}, "must be a number"),
        ({"values": {"QueueDepth": True}}, "must be a number"),
        ({"values": {"": 1}, "unit": "Count"}, "1-255 characters"),
        (
            {"values": {"QueueDepth": 1}, "dimensions": {"Queue": "a"}, "dimension_sets": [["X"]]},
            "no value in dimensions",
        ),
        ({"values": {"QueueDepth": 1}, "dimensions": {"QueueDepth": "a"}}, "used twice"),
        ({"values": {"QueueDepth": 1}, "ts": 5}, "used twice"),
        ({"values": {f"M{i}": 1 for i in range(101)}, "unit": "Count"}, "at most 100"),
        (
            {"values": {"QueueDepth": 1}, "dimensions": {f"D{i}": "x" for i in range(31)}},
            "at most 30",
        ),
    ],
)
def test_metrics_rejects_bad_input(kwargs: dict[str, Any], message: str) -> None:
    out = io.StringIO()
    with pytest.raises(ValueError, match=message):
        logs.metrics(namespace="ns", stream=out, **kwargs)
    assert out.getvalue() == ""


def test_job_metrics_failure_counts_per_error_code_too() -> None:
    out = io.StringIO()
    logs.job_metrics("failed", queue="audio", code="decode_error", stream=out, jobId="j1")
    (line,) = lines(out)
    assert_valid_emf(line)
    directive = line["_aws"]["CloudWatchMetrics"][0]
    assert directive["Dimensions"] == [["Queue"], ["Queue", "ErrorCode"]]
    assert directive["Metrics"] == [{"Name": "JobsFailed", "Unit": "Count"}]
    assert line["JobsFailed"] == 1 and line["ErrorCode"] == "decode_error"
    assert line["job"] == "failed" and line["jobId"] == "j1"


def test_job_metrics_completed_carries_duration() -> None:
    out = io.StringIO()
    logs.job_metrics("completed", queue="audio", duration_ms=2345.6, code="ignored", stream=out)
    (line,) = lines(out)
    assert_valid_emf(line)
    assert line["JobsCompleted"] == 1 and line["JobDuration"] == 2345.6
    assert "ErrorCode" not in line
    assert line["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Queue"]]


def test_job_metrics_claimed_carries_wait() -> None:
    out = io.StringIO()
    logs.job_metrics("claimed", queue="audio", wait_ms=80, stream=out)
    (line,) = lines(out)
    assert line["JobsClaimed"] == 1 and line["JobWait"] == 80


def test_job_metrics_unknown_event_is_an_error() -> None:
    with pytest.raises(ValueError, match="no job metric"):
        logs.job_metrics("exploded", queue="audio", stream=io.StringIO())


def test_queue_metrics_from_a_real_queue(redis_client: redis.Redis, queue_name: str) -> None:
    queue = Queue(redis_client, queue_name)
    queue.enqueue("job-a")
    queue.enqueue("job-b")
    queue.enqueue("job-c", delay_ms=60_000)
    assert len(queue.claim("consumer-1", lease_ms=60_000)) == 1
    out = io.StringIO()
    logs.queue_metrics(queue.stats(), stream=out)
    (line,) = lines(out)
    assert_valid_emf(line)
    assert line["Queue"] == queue_name
    assert (line["QueueDepth"], line["QueueDelayed"], line["QueueActive"]) == (1, 1, 1)
    assert line["QueueDead"] == 0
    assert line["OldestWaitAge"] >= 0


def test_empty_queue_publishes_zero_wait_not_nothing(
    redis_client: redis.Redis, queue_name: str
) -> None:
    out = io.StringIO()
    logs.queue_metrics(Queue(redis_client, queue_name).stats(), stream=out)
    (line,) = lines(out)
    assert line["QueueDepth"] == 0 and line["OldestWaitAge"] == 0


def test_default_namespace_is_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOUNDCHECK_METRICS_NAMESPACE", "soundcheck/staging")
    settings.get.cache_clear()
    try:
        out = io.StringIO()
        logs.metrics({"QueueDepth": 1}, stream=out)
        assert lines(out)[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "soundcheck/staging"
    finally:
        settings.get.cache_clear()


def test_every_metric_and_job_field_is_documented() -> None:
    text = DOCS.read_text()
    for name in logs.METRIC_UNITS:
        assert f"`{name}`" in text, f"docs/cloudwatch.md does not document metric {name}"
    for field in ("jobId", "attempt", "token", "consumer", "durationMs", "code", "retryAtMs"):
        assert f"`{field}`" in text, f"docs/cloudwatch.md does not document field {field}"
