"""`soundcheck submit FILE`, `status ID` and `jobs`: the HTTP API from the command line.

Talks to the API like any client (chalicelib.client); which API and key is
chalicelib.local.connect's business. Failures are one sentence on stderr that
says what to do next; Ctrl-C stops following a job (it keeps running) and says
how to pick it up again.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from chalicelib.client import Client, ClientError
from chalicelib.local.connect import NotConnected, client_for, explain, resolve
from chalicelib.rules import FINISHED

BAR_WIDTH = 30
INTERRUPTED = 130  # the shell's code for a command stopped by SIGINT


class Progress:
    """A one-line progress bar on a terminal; one line per status change otherwise."""

    def __init__(self, stream: TextIO = sys.stderr) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.started = time.monotonic()
        self.last = ""
        self.open_line = False

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
            self.open_line = status not in FINISHED
            if not self.open_line:
                self.stream.write("\n")
            self.stream.flush()
        elif f"{status}{retry}{note}" != self.last:
            self.stream.write(f"{elapsed:5.1f}s {status}{retry}{note}\n")
            self.stream.flush()
            self.last = f"{status}{retry}{note}"

    def end_line(self) -> None:
        """Leave the bar's line, so a following message starts on its own."""
        if self.open_line:
            self.stream.write("\n")
            self.stream.flush()
            self.open_line = False


def _fail(command: str, message: str, code: int = 2) -> int:
    print(f"soundcheck {command}: {message}", file=sys.stderr)
    return code


def _follow_hint(job_id: str) -> str:
    return (
        f"job {job_id} keeps running; `soundcheck status {job_id}` shows it, "
        f"`soundcheck status {job_id} --wait` follows it to the end"
    )


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
    command: str = "submit",
    on_interrupt_hint: bool = True,
    callback_url: str | None = None,
) -> int:
    """Exit code: 0 completed, 1 the job failed, 2 refused or unreachable, 130 Ctrl-C.

    With `on_interrupt_hint=False` Ctrl-C propagates (the demo stops its stack and
    says so itself); the job id is then on the KeyboardInterrupt's `job_id`.
    """
    try:
        target = resolve(api, api_key)
        client = client_for(target)
    except NotConnected as exc:
        return _fail(command, str(exc))
    job_id: str | None = None
    progress = Progress()
    try:
        file_key = client.upload(file)
        reference_key = client.upload(reference) if reference else None
        accepted = client.submit(
            file_key,
            genre=genre,
            reference_file_key=reference_key,
            file_name=file.name,
            callback_url=callback_url,
        )
        job_id = str(accepted["jobId"])
        print(f"submitted {file.name} as job {job_id}", file=sys.stderr)
        job = client.wait(job_id, timeout=timeout, on_update=progress.update)
    except ClientError as exc:
        progress.end_line()
        if exc.code == "timeout" and job_id:
            return _fail(command, f"{exc.message} after {timeout:g} s; {_follow_hint(job_id)}")
        return _fail(command, explain(exc, target.url))
    except KeyboardInterrupt as interrupt:
        progress.end_line()
        if not on_interrupt_hint:
            interrupt.job_id = job_id  # type: ignore[attr-defined]
            raise
        if job_id is None:
            return _fail(command, "stopped before the job was submitted; nothing was queued", 130)
        return _fail(command, f"stopped following (Ctrl-C); {_follow_hint(job_id)}", INTERRUPTED)
    return _print_outcome(job, file.name, as_json, out)


def _print_outcome(job: dict[str, Any], title: str | None, as_json: bool, out: TextIO) -> int:
    if job["status"] in ("failed", "cancelled", "expired"):
        error = job.get("error") or {}
        reason = f": {error.get('message')} [{error.get('code')}]" if error else ""
        print(f"job {job['jobId']} {job['status']}{reason}", file=sys.stderr)
        if as_json:
            print(json.dumps(job, indent=2), file=out)
        return 1
    if as_json:
        print(json.dumps(job["result"], indent=2), file=out)
    else:
        from chalicelib.report import render

        print(render(job["result"], title=title), end="", file=out)
    return 0


def status(
    job_id: str,
    *,
    api: str | None,
    api_key: str | None,
    as_json: bool,
    wait: bool = False,
    timeout: float = 600.0,
) -> int:
    """`soundcheck status ID [--wait]`: the job as the API reports it (followed with --wait)."""
    try:
        target = resolve(api, api_key)
        client = client_for(target)
    except NotConnected as exc:
        return _fail("status", str(exc))
    progress = Progress()
    try:
        if wait:
            job = client.wait(job_id, timeout=timeout, on_update=progress.update)
            return _print_outcome(job, job.get("fileName"), as_json, sys.stdout)
        job = client.job(job_id)
    except ClientError as exc:
        progress.end_line()
        if exc.code == "timeout":
            return _fail("status", f"{exc.message} after {timeout:g} s; {_follow_hint(job_id)}")
        return _fail("status", explain(exc, target.url))
    except KeyboardInterrupt:
        progress.end_line()
        return _fail("status", f"stopped following (Ctrl-C); {_follow_hint(job_id)}", INTERRUPTED)
    if as_json:
        print(json.dumps(job, indent=2))
        return 0
    fields = ("jobId", "status", "progress", "attempts", "createdAt", "startedAt", "completedAt")
    for name in fields:
        print(f"{name:<12} {job.get(name)}")
    if job.get("error"):
        print(f"{'error':<12} {job['error']['message']} [{job['error']['code']}]")
    if job.get("result"):
        from chalicelib.report import render

        print()
        print(render(job["result"]), end="")
    return 0


def jobs(
    *, api: str | None, api_key: str | None, status: str | None, limit: int, as_json: bool
) -> int:
    """`soundcheck jobs`: your analyses, newest first."""
    try:
        target = resolve(api, api_key)
        client: Client = client_for(target)
        listed = client.request("GET", "/api/jobs", query={"status": status, "limit": limit})[
            1
        ].get("jobs", [])
    except NotConnected as exc:
        return _fail("jobs", str(exc))
    except ClientError as exc:
        return _fail("jobs", explain(exc, target.url))
    if as_json:
        print(json.dumps(listed, indent=2))
        return 0
    if not listed:
        print("no jobs yet: `soundcheck submit FILE` analyses one", file=sys.stderr)
        return 0
    print(f"{'created':<20} {'status':<10} {'job id':<36}  file")
    for job in listed:
        created = str(job.get("createdAt") or "")[:19].replace("T", " ")
        error = job.get("error") or {}
        note = f"  ({error.get('code')})" if error else ""
        print(
            f"{created:<20} {job.get('status', ''):<10} {job.get('jobId', ''):<36}  "
            f"{job.get('fileName') or ''}{note}"
        )
    return 0
