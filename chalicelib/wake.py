"""Wake a consumer after a submit, fire and forget.

On AWS the API asynchronously invokes the consumer Lambda (`InvocationType="Event"`),
so a job starts within a cold start instead of waiting for the next scheduled sweep.
Locally no function name is configured: the long-running workers block in
`Queue.wait_for_job` and the enqueue itself wakes them, so waking is a no-op.
A failed wake never fails a submit: the scheduled sweeper drains the queue anyway.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Literal

from chalicelib import logs

WakeOutcome = Literal["invoked", "skipped", "failed"]

_client_lock = threading.Lock()
_clients: dict[str, Any] = {}


def lambda_client() -> Any:
    """One boto3 Lambda client per process: building one costs ~100 ms.

    boto3 is imported here, not at module level, to keep the API's cold start small.
    Endpoint and region come from the usual AWS environment (`AWS_ENDPOINT_URL`...).
    """
    with _client_lock:
        client = _clients.get("lambda")
        if client is None:
            import boto3
            from botocore.config import Config

            config = Config(
                connect_timeout=2, read_timeout=5, retries={"max_attempts": 2, "mode": "standard"}
            )
            client = boto3.client("lambda", config=config)
            _clients["lambda"] = client
        return client


def invoke_consumer(function_name: str, reason: str, client: Any | None = None) -> WakeOutcome:
    """Async-invoke the consumer Lambda; log and swallow any failure."""
    started = time.perf_counter()
    try:
        response = (client or lambda_client()).invoke(
            FunctionName=function_name,
            InvocationType="Event",
            Payload=json.dumps({"source": "soundcheck.wake", "reason": reason}).encode(),
        )
    except Exception as exc:  # a wake is best effort: the schedule catches up
        logs.event(
            "wake_failed",
            function=function_name,
            error=logs.describe(exc),
            durationMs=_ms_since(started),
        )
        return "failed"
    status = int(response.get("StatusCode", 0))
    if status != 202:
        logs.event("wake_failed", function=function_name, status=status)
        return "failed"
    logs.event("woke", function=function_name, reason=reason, durationMs=_ms_since(started))
    return "invoked"


def wake(
    function_name: str | None, reason: str = "submit", client: Any | None = None
) -> WakeOutcome:
    """Wake a consumer if one is deployed as a Lambda; otherwise the queue wakes workers."""
    if not function_name:
        return "skipped"
    return invoke_consumer(function_name, reason, client)


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
