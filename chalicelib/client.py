"""A small HTTP client for the soundcheck API (stdlib urllib only).

Used by `soundcheck submit`, `make demo`, the end-to-end tests and the pipeline
benchmark: upload through the URL the API hands out, submit, poll until done.
No third-party HTTP library, so the CLI adds nothing to the API's dependencies.
"""

from __future__ import annotations

import json
import mimetypes
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from chalicelib.rules import FINISHED

FINAL_STATUSES = FINISHED
# Polling: start fast (a short job finishes in well under a second), back off to 1 s.
POLL_FIRST_S = 0.05
POLL_MAX_S = 1.0
POLL_FACTOR = 1.5


class ClientError(Exception):
    """The API refused a request (its error code and message) or could not be reached."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


@dataclass
class Client:
    base_url: str
    api_key: str | None
    timeout: float = 30.0

    def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        query: dict[str, Any] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """One JSON request; returns (status, body) for 2xx, raises ClientError otherwise."""
        url = self.base_url.rstrip("/") + path
        if query:
            url += "?" + urlencode({k: v for k, v in query.items() if v is not None})
        data = None if body is None else json.dumps(body).encode()
        all_headers = {"Accept": "application/json", **(headers or {})}
        if data is not None:
            all_headers["Content-Type"] = "application/json"
        if self.api_key:
            all_headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(url, data=data, method=method, headers=all_headers)
        return _send(request, self.timeout)

    def upload(self, path: Path) -> str:
        """Upload a file the way a browser would (upload URL, then PUT); return its fileKey."""
        size = path.stat().st_size
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        _, upload = self.request(
            "POST",
            "/api/audio/upload-url",
            {"fileName": path.name, "contentType": content_type, "sizeBytes": size},
        )
        with path.open("rb") as body:
            headers = {**upload["headers"], "Content-Length": str(size)}
            put = urllib.request.Request(
                upload["uploadUrl"], data=body, method=upload["method"], headers=headers
            )
            _send(put, self.timeout, expect_json=False)
        return str(upload["fileKey"])

    def submit(
        self,
        file_key: str,
        *,
        genre: str | None = None,
        reference_file_key: str | None = None,
        file_name: str | None = None,
        idempotency_key: str | None = None,
        callback_url: str | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"fileKey": file_key}
        if callback_url:
            body["callbackUrl"] = callback_url
        if reference_file_key:
            body.update(mode="reference", referenceFileKey=reference_file_key)
        else:
            body["mode"] = "genre"
            if genre:
                body["genre"] = genre
        if file_name:
            body["fileName"] = file_name
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return self.request("POST", "/api/audio/analyze", body, headers)[1]

    def job(self, job_id: str) -> dict[str, Any]:
        return self.request("GET", f"/api/jobs/{job_id}")[1]

    def wait(
        self,
        job_id: str,
        *,
        timeout: float = 600.0,
        on_update: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Poll the job until it is completed, failed or cancelled (or `timeout`); its last state.

        ClientError "timeout" when `timeout` seconds pass first (the job keeps running).
        """
        deadline = time.monotonic() + timeout
        interval = POLL_FIRST_S
        while True:
            job = self.job(job_id)
            if on_update is not None:
                on_update(job)
            if job["status"] in FINAL_STATUSES:
                return job
            if time.monotonic() + interval > deadline:
                raise ClientError(0, "timeout", f"job {job_id} is still {job['status']}")
            time.sleep(interval)
            interval = min(interval * POLL_FACTOR, POLL_MAX_S)


def _send(
    request: urllib.request.Request, timeout: float, expect_json: bool = True
) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            error = json.loads(raw)["error"]
            raise ClientError(exc.code, str(error["code"]), str(error["message"])) from None
        except (ValueError, KeyError, TypeError):
            text = raw.decode("utf-8", "replace")[:300]
            raise ClientError(exc.code, "http_error", text or exc.reason) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ClientError(0, "unreachable", f"{request.full_url}: {reason}") from None
    if not expect_json or not raw:
        return status, {}
    return status, json.loads(raw)
