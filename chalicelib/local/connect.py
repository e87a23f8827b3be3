"""Which soundcheck API the CLI talks to, with which key, and what to say when it cannot.

Order: `--api` / `--api-key`, then SOUNDCHECK_API_KEY, then a running `soundcheck dev`
found through its per-user record (chalicelib.local.state), so `soundcheck submit`
works from any directory. A stack that is still starting is waited for. Every
failure becomes one sentence that says what to do next, never an HTTP status.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from chalicelib.client import Client, ClientError
from chalicelib.local.state import READY, StackInfo, running_stacks

DEFAULT_API = "http://127.0.0.1:8000"
START_WAIT_S = 120.0  # a first start initialises an embedded Postgres cluster


class NotConnected(RuntimeError):
    """No usable API: the message says what to do."""


@dataclass(frozen=True)
class Target:
    url: str
    api_key: str | None
    stack: StackInfo | None = None


def resolve(api: str | None, api_key: str | None, *, wait_s: float = START_WAIT_S) -> Target:
    """The API and key to use; waits for a `soundcheck dev` that is still starting."""
    key = api_key or os.environ.get("SOUNDCHECK_API_KEY") or None
    stack = _pick(api)
    if stack is not None and stack.status != READY:
        stack = _wait_ready(stack, wait_s)
    url = (api or (stack.url if stack else DEFAULT_API)).rstrip("/")
    if key is None and stack is not None:
        key = stack.api_key
    return Target(url, key, stack)


def _pick(api: str | None) -> StackInfo | None:
    """The running stack at `api`; without `api`, the one started from here, else the newest."""
    stacks = running_stacks()
    if api is not None:
        wanted = api.rstrip("/")
        return next((s for s in stacks if s.url == wanted), None)
    if not stacks:
        return None
    here = str((Path.cwd() / ".soundcheck").resolve())
    chosen = next((s for s in stacks if s.data_dir == here), stacks[0])
    if len(stacks) > 1:
        print(
            f"using the soundcheck dev at {chosen.url} (data dir {chosen.data_dir}); "
            f"{len(stacks) - 1} other running: pick one with --api URL",
            file=sys.stderr,
        )
    return chosen


def _wait_ready(stack: StackInfo, wait_s: float) -> StackInfo:
    print(f"waiting for soundcheck dev at {stack.url} to finish starting...", file=sys.stderr)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        now = next((s for s in running_stacks() if s.data_dir == stack.data_dir), None)
        if now is None:
            raise NotConnected(
                f"soundcheck dev at {stack.url} stopped while starting; see its output, "
                "then start it again with `soundcheck dev`"
            )
        if now.status == READY:
            return now
        time.sleep(0.1)
    raise NotConnected(
        f"soundcheck dev at {stack.url} is still starting after {wait_s:.0f} s; see its output"
    )


def client_for(target: Target, *, require_key: bool = True) -> Client:
    """A client for the target; NotConnected with the next step when there is no key."""
    if require_key and not target.api_key:
        raise NotConnected(_no_key(target.url))
    return Client(target.url, target.api_key)


def _no_key(url: str) -> str:
    try:
        Client(url, None, timeout=5).request("GET", "/health")
    except ClientError as exc:
        if exc.code == "unreachable":
            return explain(exc, url)
    return (
        f"no API key for {url}: pass --api-key KEY or set SOUNDCHECK_API_KEY. "
        "`soundcheck dev` prints its key when it starts (and the CLI finds it by itself "
        "while it runs); on AWS, `soundcheck keys create OWNER` makes one."
    )


def explain(exc: ClientError, url: str) -> str:
    """One sentence for a refused or failed request: what happened, what to do next."""
    if exc.code == "unreachable":
        return (
            f"no soundcheck at {url} - start it with `soundcheck dev` "
            "(or point at another with --api URL)"
        )
    if exc.code in ("unauthorized", "forbidden"):
        return (
            f"{url} refused the API key ({exc.message}). Use the key `soundcheck dev` "
            "printed (--api-key KEY or SOUNDCHECK_API_KEY), or make one with "
            "`soundcheck keys create OWNER`."
        )
    if exc.code == "http_error":
        return f"{url} did not answer like the soundcheck API; is --api right? ({exc.message})"
    return f"{exc.message} [{exc.code}]"
