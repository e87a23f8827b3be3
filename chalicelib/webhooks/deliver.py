"""Sending due webhook events: claim them in Postgres, sign, POST, record, schedule retries.

Runs beside the analysis, never inside it: a thread in every worker process
(`run_forever`), the consumer Lambda after its drain, and the scheduled sweeper
Lambda every minute, each with a time budget. The state lives in Postgres only, so a
deliverer that dies or a Redis that forgets everything loses no event; an event
whose deliverer died mid-send is sent again when its lease runs out (receivers dedupe
on the event id). A failed attempt is retried after SOUNDCHECK_WEBHOOK_BACKOFF_SECONDS,
then twice that, four times... (each with +-25 % jitter) until the event has had
SOUNDCHECK_WEBHOOK_MAX_ATTEMPTS; an address the SSRF guard refuses fails it at once.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chalicelib import logs
from chalicelib.errors import ApiError
from chalicelib.webhooks import send, urls, woken
from chalicelib.webhooks.signing import HEADER, header_value
from chalicelib.webhooks.store import Delivery, WebhookStore

if TYPE_CHECKING:
    from chalicelib.deps import Deps
    from chalicelib.settings import Settings

BATCH = 8  # deliveries claimed (and sent in parallel) at once by one deliverer
MAX_BACKOFF_S = 6 * 3600.0
POLL_S = 1.0  # a worker's deliverer looks for due events this often (at most)


@dataclass(frozen=True)
class DeliveryReport:
    delivered: int = 0
    retried: int = 0  # failed attempts with another one scheduled
    failed: int = 0  # given up: attempts exhausted or the address refused
    fenced: int = 0  # a newer claim owned the row by the time the outcome was written
    errors: int = 0  # our own side failed (Postgres): the lease runs out, it is sent again

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def backoff_seconds(attempt: int, base_s: float, rng: Callable[[], float] = random.random) -> float:
    """The wait after failed attempt `attempt` (1-based): base x 2^(attempt-1), +-25 %."""
    delay = min(base_s * 2 ** max(attempt - 1, 0), MAX_BACKOFF_S)
    return delay * (0.75 + 0.5 * rng())


def lease_seconds(settings: Settings) -> float:
    """How long a claimed event is left to its deliverer: longer than any one attempt."""
    return 2 * settings.webhook_timeout_seconds + 30.0


def deliver_due(
    deps: Deps, *, budget_s: float = 30.0, resolver: urls.Resolver | None = None
) -> DeliveryReport:
    """Send every due event once, BATCH at a time in parallel, until none is due or the
    budget (seconds) is spent. Raises only if Postgres cannot be reached to claim.

    Only the POSTs run in parallel; Postgres is used from this thread (one pooled
    connection, not one per send).
    """
    store = WebhookStore(deps.jobs)
    lease = lease_seconds(deps.settings)
    deadline = time.monotonic() + budget_s
    counts: Counter[str] = Counter()
    tried: set[str] = set()  # one attempt per event and pass: a retry waits for the next pass
    while time.monotonic() < deadline:
        claimed = store.claim_due(BATCH, lease, skip=tried)
        if not claimed:
            break
        tried.update(d.id for d in claimed)
        owners = {owner: store.secret(owner).live() for owner in {d.owner for d in claimed}}
        with ThreadPoolExecutor(len(claimed), thread_name_prefix="webhook") as pool:
            sent = list(
                pool.map(
                    lambda d, live: _attempt(deps.settings, d, live, resolver),
                    claimed,
                    [owners[d.owner] for d in claimed],
                )
            )
        for delivery, outcome in zip(claimed, sent, strict=True):
            counts[_record(deps.settings, store, delivery, outcome)] += 1
    return DeliveryReport(**{k: counts[k] for k in DeliveryReport.__dataclass_fields__})


def deliver_logged(deps: Deps, *, budget_s: float = 30.0) -> DeliveryReport | None:
    """deliver_due, or None after logging `webhook_error`: never stops its caller."""
    try:
        report = deliver_due(deps, budget_s=budget_s)
    except Exception as exc:
        logs.event("webhook_error", stage="claim", error=logs.describe(exc))
        return None
    if any(report.to_dict().values()):
        logs.event("webhooks_sent", **report.to_dict())
    return report


def run_forever(deps: Deps, stop: threading.Event, period_s: float | None = None) -> None:
    """A worker's deliverer thread: look for due events every `period_s`, and at once when
    this process ended a job (`chalicelib.webhooks.nudge`), until `stop`."""
    if period_s is None:
        period_s = max(0.05, min(POLL_S, deps.settings.webhook_backoff_seconds))
    while not stop.is_set():
        woken.wait(period_s)
        woken.clear()
        if stop.is_set():
            break
        deliver_logged(deps, budget_s=60.0)


def start_thread(deps: Deps, stop: threading.Event) -> threading.Thread:
    thread = threading.Thread(target=run_forever, args=(deps, stop), name="webhooks", daemon=True)
    thread.start()
    return thread


def _record(settings: Settings, store: WebhookStore, delivery: Delivery, sent: send.Sent) -> str:
    """Write one attempt's outcome; the report key it counts under."""
    if sent.ok:
        state, retry_in = "delivered", 0.0
    elif sent.final or delivery.attempts >= settings.webhook_max_attempts:
        state, retry_in = "failed", 0.0
    else:
        state = "pending"
        retry_in = backoff_seconds(delivery.attempts, settings.webhook_backoff_seconds)
    try:
        written = store.record(
            delivery, state=state, status=sent.status, error=sent.error, retry_in_seconds=retry_in
        )
    except Exception as exc:  # the lease runs out and the event is sent again
        logs.event("webhook_error", eventId=delivery.event_id, error=logs.describe(exc))
        return "errors"
    outcome = {"delivered": "delivered", "pending": "retried", "failed": "failed"}[state]
    logs.event(
        f"webhook_{outcome}" if written else "webhook_fenced",
        jobId=delivery.job_id,
        eventId=delivery.event_id,
        type=delivery.event_type,
        attempt=delivery.attempts,
        status=sent.status,
        error=sent.error,
        retryInS=round(retry_in, 3) if state == "pending" else None,
    )
    return outcome if written else "fenced"


def _attempt(
    settings: Settings,
    delivery: Delivery,
    live_secrets: list[str],
    resolver: urls.Resolver | None,
) -> send.Sent:
    """One POST of one event, signed with every live secret of its owner; never raises."""
    try:
        callback = urls.parse(
            delivery.url,
            allow_http=settings.webhook_allow_http,
            allow_loopback=settings.webhook_allow_loopback,
        )
    except ApiError as exc:  # accepted under other settings: refused by these
        return send.Sent(None, f"refused: {exc.message}", final=True)
    body = delivery.body()
    headers = {
        HEADER: header_value(live_secrets, int(time.time()), body),
        "Soundcheck-Event-Id": delivery.event_id,
        "Soundcheck-Event-Type": delivery.event_type,
        "Soundcheck-Delivery-Attempt": str(delivery.attempts),
    }
    return send.post(
        callback,
        body,
        headers,
        timeout_s=settings.webhook_timeout_seconds,
        allow_loopback=settings.webhook_allow_loopback,
        resolver=resolver,
    )
