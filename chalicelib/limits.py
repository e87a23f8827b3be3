"""The API's limits: submissions per owner, waiting jobs per owner, failed sign-ins per client.

Each is one round trip to the queue's Redis (`Queue.admit`, `Queue.sign_in_wait_ms`:
token buckets on the Redis clock, so every API function agrees). A refusal is a
TooManyRequests (429 with Retry-After); only the caller is limited. The defaults
(settings.py) are ones a person at a keyboard never meets and a script does.

The limits fail open: if Redis does not answer, the request goes on (a submission
is still accepted into Postgres and the sweeper enqueues it later), and the outage
is logged as `limits_unavailable`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from chalicelib import logs
from chalicelib.errors import TooManyRequests

if TYPE_CHECKING:
    from chalicelib.queue import Queue
    from chalicelib.settings import Settings

# While an owner has the most jobs waiting, try again after this long.
BUSY_RETRY_MS = 10_000


def _seconds(ms: int) -> int:
    return max(1, math.ceil(ms / 1000))


def admit_submission(queue: Queue, settings: Settings, owner: str) -> None:
    """Raise TooManyRequests if `owner` may not submit a job now (takes a token if it may)."""
    try:
        verdict = queue.admit(
            owner,
            per_minute=settings.submit_per_minute,
            burst=settings.submit_burst,
            max_waiting=settings.max_waiting_per_owner,
            busy_retry_ms=BUSY_RETRY_MS,
        )
    except Exception as exc:
        logs.event("limits_unavailable", limit="submit", error=logs.describe(exc))
        return
    if verdict.allowed:
        return
    if verdict.code == "too_many_waiting":
        raise TooManyRequests(
            "too_many_waiting",
            f"you already have {settings.max_waiting_per_owner} jobs waiting; submit more "
            "when some have started (SOUNDCHECK_MAX_WAITING_PER_OWNER)",
            _seconds(verdict.retry_after_ms),
        )
    raise TooManyRequests(
        "rate_limited",
        f"too many submissions: {settings.submit_burst} at once, then "
        f"{settings.submit_per_minute:g} a minute (SOUNDCHECK_SUBMIT_PER_MINUTE)",
        _seconds(verdict.retry_after_ms),
    )


def _sign_in_wait_ms(queue: Queue, settings: Settings, client: str, failed: bool) -> int:
    try:
        return queue.sign_in_wait_ms(
            client,
            per_minute=settings.sign_in_failures_per_minute,
            burst=settings.sign_in_failure_burst,
            failed=failed,
        )
    except Exception as exc:
        logs.event("limits_unavailable", limit="sign_in", error=logs.describe(exc))
        return 0


def check_sign_in(queue: Queue, settings: Settings, client: str) -> None:
    """Raise TooManyRequests while `client` has failed to sign in too often.

    Checked before the key is looked at: a blocked client learns nothing about
    any key, right or wrong, until the wait is over.
    """
    wait_ms = _sign_in_wait_ms(queue, settings, client, failed=False)
    if wait_ms > 0:
        raise TooManyRequests(
            "too_many_failed_sign_ins",
            "too many unknown API keys from this address; wait before trying again",
            _seconds(wait_ms),
        )


def sign_in_failed(queue: Queue, settings: Settings, client: str) -> None:
    """Count one failed sign-in (an unknown key) of `client`."""
    _sign_in_wait_ms(queue, settings, client, failed=True)
