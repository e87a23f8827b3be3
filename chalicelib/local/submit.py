"""`soundcheck submit FILE`: upload, submit, watch the progress, print the report.

Talks to the HTTP API like any client (chalicelib.client). Where the API is and
which key to use: `--api` and SOUNDCHECK_API_KEY, else what a running
`soundcheck dev` wrote to `.soundcheck/dev.json`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from chalicelib.client import Client, ClientError
from chalicelib.local.stack import read_state

DEFAULT_API = "http://127.0.0.1:8000"
BAR_WIDTH = 30


def resolve(api: str | None, api_key: str | None) -> tuple[str, str | None]:
    """API URL and key: explicit values, then the environment, then a running dev stack."""
    state = read_state()
    url = api or (state.url if state else DEFAULT_API)
    key = api_key or os.environ.get("SOUNDCHECK_API_KEY") or (state.api_key if state else None)
    return url, key


class Progress:
    """A one-line progress bar on a terminal; one line per status change otherwise."""

    def __init__(self, stream: TextIO = sys.stderr) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.started = time.monotonic()
        self.last = ""

    def update(self, job: dict[str, Any]) -> None:
        status, progress = job["status"], int(job.get("progress") or 0)
        attempts = job.get("attempts") or 0
        retry = f"  attempt {attempts}" if attempts > 1 else ""
        error = job.get("error") if status == "queued" else None
        note = f"  (retrying after {error['code']})" if error else ""
        elapsed = time.monotonic() - self.started
        if self.tty:
            filled = BAR_WIDTH * progress // 100
            bar = "#" * filled + "-" * (BAR_WIDTH - filled)
            line = f"\r[{bar}] {progress:3d}% {status:<10} {elapsed:5.1f}s{retry}{note}"
            self.stream.write(line + "\033[K")
            if status in ("completed", "failed"):
                self.stream.write("\n")
            self.stream.flush()
        elif f"{status}{retry}{note}" != self.last:
            self.stream.write(f"{elapsed:5.1f}s {status}{retry}{note}\n")
            self.stream.flush()
            self.last = f"{status}{retry}{note}"


def run(
    file: Path,
    *,
    api: str | None = None,
    api_key: str | None = None,
    genre: str | None = None,
    reference: Path | None = None,
    as_json: bool = False,
    timeout: float = 600.0,
    out: TextIO = sys.stdout,
) -> int:
    """Exit code: 0 completed, 1 the job failed, 2 the request was refused or unreachable."""
    url, key = resolve(api, api_key)
    client = Client(url, key)
    try:
        file_key = client.upload(file)
        reference_key = client.upload(reference) if reference else None
        accepted = client.submit(
            file_key, genre=genre, reference_file_key=reference_key, file_name=file.name
        )
        print(f"submitted {file.name} as job {accepted['jobId']}", file=sys.stderr)
        job = client.wait(accepted["jobId"], timeout=timeout, on_update=Progress().update)
    except ClientError as exc:
        print(f"soundcheck submit: {exc}", file=sys.stderr)
        return 2
    if job["status"] == "failed":
        error = job.get("error") or {}
        print(
            f"job {job['jobId']} failed: {error.get('code')}: {error.get('message')}",
            file=sys.stderr,
        )
        if as_json:
            print(json.dumps(job, indent=2), file=out)
        return 1
    if as_json:
        print(json.dumps(job["result"], indent=2), file=out)
    else:
        from chalicelib.report import render

        print(render(job["result"], title=file.name), end="", file=out)
    return 0


def status(job_id: str, *, api: str | None, api_key: str | None, as_json: bool) -> int:
    """`soundcheck status ID`: the job as the API reports it."""
    url, key = resolve(api, api_key)
    try:
        job = Client(url, key).job(job_id)
    except ClientError as exc:
        print(f"soundcheck status: {exc}", file=sys.stderr)
        return 2
    if as_json:
        print(json.dumps(job, indent=2))
        return 0
    fields = ("jobId", "status", "progress", "attempts", "createdAt", "startedAt", "completedAt")
    for name in fields:
        print(f"{name:<12} {job.get(name)}")
    if job.get("error"):
        print(f"{'error':<12} {job['error']['code']}: {job['error']['message']}")
    if job.get("result"):
        from chalicelib.report import render

        print()
        print(render(job["result"]), end="")
    return 0
