"""One JSON object per log line, and CloudWatch Embedded Metric Format metrics.

Lambda sends stdout to CloudWatch Logs; JSON lines are queryable field by field in
Logs Insights, and EMF lines become metrics without any API call (no PutMetricData,
no extra latency, no IAM permission beyond writing logs).

Log lines (`event`): `{"ts": <epoch seconds>, "event": <name>, ...fields}`. Fields
are camelCase like the HTTP API. The job lifecycle uses these names, and
docs/cloudwatch.md's queries rely on them:

    event       submitted | claimed | completed | retried | failed | fenced |
                reclaimed | requeued | resubmitted | drained | ... (one word, snake_case)
    jobId       the job's id (every job event)
    attempt     1 for the first delivery, 2 for the first retry, ...
    token       the claim's fencing token
    consumer    who claimed it: "lambda:<aws request id>" or "worker:<host>:<pid>"
    durationMs  wall time of the step the event ends (a job's processing time on
                completed / retried / failed)
    code        error code on retried / failed / fenced (e.g. "decode_error")
    message     the error's human message on retried / failed
    retryAtMs   epoch ms when a retried job becomes due again
    stage       on fenced: where the stale token was noticed (start, complete, fail...)
    trigger     on drained: invoke | schedule

Never log secrets: an API key, a URL with a password, a presigned URL.

Metrics (`metrics`, `job_metrics`, `queue_metrics`): one EMF line each, in the
namespace `SOUNDCHECK_METRICS_NAMESPACE` (default "soundcheck"), with the names and
units of `METRIC_UNITS` and the dimension `Queue` (plus `ErrorCode` for failures).
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

# Every metric soundcheck emits, and its CloudWatch unit. Alarms and dashboards
# (docs/cloudwatch.md) are written against these names.
METRIC_UNITS: dict[str, str] = {
    # queue gauges, from Queue.stats(), once a minute by the sweeper
    "QueueDepth": "Count",  # jobs waiting to be claimed now
    "QueueDelayed": "Count",  # retries waiting for their backoff to pass
    "QueueActive": "Count",  # jobs leased by a consumer
    "QueueDead": "Count",  # jobs the queue gave up on
    "OldestWaitAge": "Milliseconds",  # how long the oldest waiting job has waited
    # job lifecycle counters (value 1 per event) and timings
    "JobsSubmitted": "Count",
    "JobsClaimed": "Count",
    "JobsCompleted": "Count",
    "JobsRetried": "Count",
    "JobsFailed": "Count",
    "JobsReclaimed": "Count",
    "JobsFenced": "Count",
    "JobsStalled": "Count",  # stopped at the per-job ceiling (SOUNDCHECK_MAX_JOB_SECONDS)
    "JobsInterrupted": "Count",  # stopped mid-job by a worker shutting down
    "JobDuration": "Milliseconds",  # claim to result, on completed
    "JobWait": "Milliseconds",  # submit to claim, on claimed
}

# The units CloudWatch accepts (its StandardUnit enumeration).
UNITS = frozenset(
    {
        "Seconds",
        "Microseconds",
        "Milliseconds",
        "Bytes",
        "Kilobytes",
        "Megabytes",
        "Gigabytes",
        "Terabytes",
        "Bits",
        "Kilobits",
        "Megabits",
        "Gigabits",
        "Terabits",
        "Percent",
        "Count",
        "Bytes/Second",
        "Kilobytes/Second",
        "Megabytes/Second",
        "Gigabytes/Second",
        "Terabytes/Second",
        "Bits/Second",
        "Kilobits/Second",
        "Megabits/Second",
        "Gigabits/Second",
        "Terabits/Second",
        "Count/Second",
        "None",
    }
)

# EMF limits: more are rejected by CloudWatch (the line stays a plain log line).
MAX_METRICS = 100
MAX_DIMENSIONS = 30

# job lifecycle event -> the counter it increments
_JOB_COUNTERS: dict[str, str] = {
    "submitted": "JobsSubmitted",
    "claimed": "JobsClaimed",
    "completed": "JobsCompleted",
    "retried": "JobsRetried",
    "failed": "JobsFailed",
    "reclaimed": "JobsReclaimed",
    "fenced": "JobsFenced",
    "stalled": "JobsStalled",
    "interrupted": "JobsInterrupted",
}


def _write(line: Mapping[str, Any], stream: TextIO | None) -> None:
    try:
        text = json.dumps(line, default=str, separators=(",", ":"), allow_nan=False)
    except ValueError:  # a NaN somewhere: logging must never fail the caller
        text = json.dumps(_finite(line), default=str, separators=(",", ":"))
    # One write call per line: print() writes the text and the newline separately,
    # and with PYTHONUNBUFFERED (Docker, CI) another thread or process sharing the
    # stream can slip its line in between, gluing two JSON objects together.
    out = stream or sys.stdout
    out.write(text + "\n")
    out.flush()


def _finite(value: Any) -> Any:
    """JSON has no NaN or Infinity, and a line holding one is not parsed as JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def event(name: str, *, stream: TextIO | None = None, **fields: Any) -> None:
    """Write one log line: {"ts", "event", **fields}."""
    _write({"ts": round(time.time(), 3), "event": name, **fields}, stream)


def describe(exc: BaseException, limit: int = 500) -> str:
    """An exception as a log field ("Type: message"), bounded: a driver's message can
    carry a whole query or response, and one log line should stay one readable line."""
    return f"{type(exc).__name__}: {exc}"[:limit]


def default_namespace() -> str:
    """The stage's namespace, so dev and prod metrics never mix in one graph."""
    from chalicelib import settings

    return settings.get().metrics_namespace


def metrics(
    values: Mapping[str, float],
    *,
    dimensions: Mapping[str, str] | None = None,
    dimension_sets: Sequence[Sequence[str]] | None = None,
    unit: str | Mapping[str, str] | None = None,
    namespace: str | None = None,
    stream: TextIO | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """Write one EMF line publishing `values` as CloudWatch metrics; return it.

    Units come from `unit` (one for all, or per name) else from METRIC_UNITS; a name
    with neither is a programming error (ValueError), as is a bad unit or dimension.
    `dimension_sets` lists which dimension combinations to aggregate by (default:
    all of `dimensions` together). Non-finite values are dropped, not published.
    Extra `fields` ride along as plain properties (Logs Insights can read them).
    """
    dims = {str(k): str(v) for k, v in (dimensions or {}).items()}
    sets = [list(s) for s in dimension_sets] if dimension_sets is not None else [list(dims)]
    for dim_set in sets:
        if len(dim_set) > MAX_DIMENSIONS:
            raise ValueError(f"a dimension set holds at most {MAX_DIMENSIONS} dimensions")
        missing = [d for d in dim_set if d not in dims]
        if missing:
            raise ValueError(f"dimension set names {missing} with no value in dimensions")
    if len(values) > MAX_METRICS:
        raise ValueError(f"one EMF line carries at most {MAX_METRICS} metrics")
    declared: list[dict[str, str]] = []
    published: dict[str, float] = {}
    for name, value in values.items():
        metric_unit = _unit_for(name, unit)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"metric {name} must be a number, got {value!r}")
        if not math.isfinite(value):
            continue
        declared.append({"Name": name, "Unit": metric_unit})
        published[name] = value
    clashes = (
        (set(values) & set(dims))
        | (set(fields) & (set(values) | set(dims)))
        | ({"ts", "event", "_aws"} & (set(values) | set(dims)))
        | ({"ts", "_aws"} & set(fields))
    )
    if clashes:
        raise ValueError(f"names used twice in one EMF line: {sorted(clashes)}")
    line: dict[str, Any] = {"ts": round(time.time(), 3), "event": "metrics", **fields}
    line.update(dims)
    line.update(published)
    line["_aws"] = {
        "Timestamp": int(time.time() * 1000),
        "CloudWatchMetrics": [
            {
                "Namespace": namespace or default_namespace(),
                "Dimensions": sets,
                "Metrics": declared,
            }
        ],
    }
    _write(line, stream)
    return line


def _unit_for(name: str, unit: str | Mapping[str, str] | None) -> str:
    if not name or len(name) > 255:
        raise ValueError(f"metric name must be 1-255 characters, got {name!r}")
    chosen = unit.get(name) if isinstance(unit, Mapping) else unit
    chosen = chosen or METRIC_UNITS.get(name)
    if chosen is None:
        raise ValueError(f"metric {name} has no unit: pass unit= or add it to METRIC_UNITS")
    if chosen not in UNITS:
        raise ValueError(f"{chosen!r} is not a CloudWatch unit")
    return chosen


def job_metrics(
    name: str,
    *,
    queue: str,
    duration_ms: float | None = None,
    wait_ms: float | None = None,
    code: str | None = None,
    stream: TextIO | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """Count one job lifecycle event (see _JOB_COUNTERS), with its timing if any.

    Failures and retries are also counted per `ErrorCode`, so an alarm can watch
    all failures while a dashboard splits them by cause.
    """
    counter = _JOB_COUNTERS.get(name)
    if counter is None:
        raise ValueError(f"no job metric for event {name!r}; one of {sorted(_JOB_COUNTERS)}")
    values: dict[str, float] = {counter: 1}
    if duration_ms is not None and name == "completed":
        values["JobDuration"] = duration_ms
    if wait_ms is not None and name == "claimed":
        values["JobWait"] = wait_ms
    dimensions = {"Queue": queue}
    sets: list[list[str]] = [["Queue"]]
    if code is not None and name in ("failed", "retried", "stalled"):
        dimensions["ErrorCode"] = code
        sets.append(["Queue", "ErrorCode"])
    return metrics(
        values, dimensions=dimensions, dimension_sets=sets, stream=stream, job=name, **fields
    )


def queue_metrics(stats: Mapping[str, Any], *, stream: TextIO | None = None) -> dict[str, Any]:
    """Publish the gauges of one `Queue.stats()` result (the sweeper, once a minute).

    An empty queue publishes OldestWaitAge 0, so "no data" always means "no sweeper".
    """
    values = {
        "QueueDepth": int(stats["waiting"]),
        "QueueDelayed": int(stats["delayed"]),
        "QueueActive": int(stats["active"]),
        "QueueDead": int(stats["dead"]),
        "OldestWaitAge": int(stats.get("oldestWaitingAgeMs") or 0),
    }
    return metrics(values, dimensions={"Queue": str(stats["name"])}, stream=stream)
