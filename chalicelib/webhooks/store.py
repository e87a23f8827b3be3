"""Webhook state in Postgres (migration 0007): owners' signing secrets and the deliveries.

A delivery row is written by a trigger in the same transaction that makes its job
`completed` or `failed`, so it exists exactly when that state has committed. Deliverers
claim due rows with `FOR UPDATE SKIP LOCKED` and push `next_attempt_at` ahead by a
lease; a deliverer that dies mid-send leaves the row to come due again (at-least-once).
An outcome is written only by the claim that made it (`attempts` must still match).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from chalicelib.jobs import _fetch, iso_utc, parse_job_id
from chalicelib.webhooks.signing import new_secret

if TYPE_CHECKING:
    import pg8000.native

    from chalicelib.jobs import JobStore

ROTATION_GRACE_HOURS = 24  # the previous secret signs too for this long after a rotation
_DELIVERY_COLUMNS = (
    "id, job_id, owner, url, event_type, data, state, attempts, next_attempt_at,"
    " last_attempt_at, last_status, last_error, delivered_at, created_at"
)
_SECRET_COLUMNS = "owner, secret, created_at, previous_secret, previous_until"


@dataclass(frozen=True)
class SigningSecret:
    """An owner's signing secret, and the previous one while it is still honoured."""

    owner: str
    secret: str
    created_at: datetime
    previous_secret: str | None = None
    previous_until: datetime | None = None
    previous_live: bool = False

    def live(self) -> list[str]:
        """The secrets a delivery is signed with now (newest first)."""
        old = [self.previous_secret] if self.previous_live and self.previous_secret else []
        return [self.secret, *old]

    def to_api(self) -> dict[str, Any]:
        return {
            "secret": self.secret,
            "createdAt": iso_utc(self.created_at),
            "previousExpiresAt": iso_utc(self.previous_until) if self.previous_live else None,
        }


@dataclass(frozen=True)
class Delivery:
    """One event for one job's callback URL, and how its delivery went so far."""

    id: str
    job_id: str
    owner: str
    url: str
    event_type: str  # job.completed | job.failed
    data: dict[str, Any]
    state: str  # pending | delivered | failed
    attempts: int
    next_attempt_at: datetime
    last_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime

    @property
    def event_id(self) -> str:
        return "evt_" + uuid.UUID(self.id).hex

    def body(self) -> bytes:
        """The event as sent: {id, type, createdAt, data}; the same bytes on every attempt."""
        event = {
            "id": self.event_id,
            "type": self.event_type,
            "createdAt": iso_utc(self.created_at),
            "data": self.data,
        }
        return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def callback_view(url: str, delivery: Delivery | None) -> dict[str, Any]:
    """The `callback` of GET /api/jobs/{id}; state `waiting` until the job has an event."""
    if delivery is None:
        return {
            "url": url,
            "state": "waiting",
            "eventId": None,
            "eventType": None,
            "attempts": 0,
            "lastStatus": None,
            "lastError": None,
            "lastAttemptAt": None,
            "nextAttemptAt": None,
            "deliveredAt": None,
        }
    return {
        "url": delivery.url,
        "state": delivery.state,
        "eventId": delivery.event_id,
        "eventType": delivery.event_type,
        "attempts": delivery.attempts,
        "lastStatus": delivery.last_status,
        "lastError": delivery.last_error,
        "lastAttemptAt": iso_utc(delivery.last_attempt_at),
        "nextAttemptAt": iso_utc(delivery.next_attempt_at) if delivery.state == "pending" else None,
        "deliveredAt": iso_utc(delivery.delivered_at),
    }


def _delivery(row: dict[str, Any]) -> Delivery:
    values = dict(row)
    values["id"] = str(values["id"])
    values["job_id"] = str(values["job_id"])
    if isinstance(values["data"], str):
        values["data"] = json.loads(values["data"])
    return Delivery(**values)


def _secret(row: dict[str, Any]) -> SigningSecret:
    return SigningSecret(**row)


class WebhookStore:
    """Signing secrets and deliveries, in the job store's database (its connections)."""

    def __init__(self, jobs: JobStore) -> None:
        self._jobs = jobs

    # --- signing secrets ----------------------------------------------------------------

    def secret(self, owner: str) -> SigningSecret:
        """The owner's signing secret, made on first use."""

        def work(conn: pg8000.native.Connection) -> SigningSecret:
            _fetch(
                conn,
                "INSERT INTO webhook_secrets (owner, secret) VALUES (:owner, :secret)"
                " ON CONFLICT (owner) DO NOTHING",
                {"owner": owner, "secret": new_secret()},
            )
            rows = _fetch(
                conn,
                f"SELECT {_SECRET_COLUMNS}, COALESCE(previous_until > now(), false)"
                f" AS previous_live FROM webhook_secrets WHERE owner = :owner",
                {"owner": owner},
            )
            return _secret(rows[0])

        return self._jobs._unit(work)

    def rotate(self, owner: str, grace_hours: float = ROTATION_GRACE_HOURS) -> SigningSecret:
        """A new secret for owner; the current one keeps signing for `grace_hours`."""
        rows = self._jobs._rows(
            f"INSERT INTO webhook_secrets (owner, secret) VALUES (:owner, :secret)"
            f" ON CONFLICT (owner) DO UPDATE SET previous_secret = webhook_secrets.secret,"
            f" previous_until = now() + make_interval(secs => :grace),"
            f" secret = EXCLUDED.secret, created_at = now()"
            f" RETURNING {_SECRET_COLUMNS}, COALESCE(previous_until > now(), false)"
            f" AS previous_live",
            owner=owner,
            secret=new_secret(),
            grace=float(grace_hours) * 3600.0,
        )
        return _secret(rows[0])

    # --- deliveries -----------------------------------------------------------------------

    def claim_due(
        self, limit: int, lease_seconds: float, skip: Collection[str] = ()
    ) -> list[Delivery]:
        """Take up to `limit` due pending deliveries for `lease_seconds`, counting an attempt.

        Concurrent deliverers skip each other's rows; a row whose deliverer died comes
        due again when its lease runs out. Ids in `skip` (tried already in this pass)
        are left for the next pass, however short their backoff.
        """
        rows = self._jobs._rows(
            f"UPDATE webhook_deliveries SET attempts = attempts + 1, last_attempt_at = now(),"
            f" next_attempt_at = now() + make_interval(secs => :lease)"
            f" WHERE id IN (SELECT id FROM webhook_deliveries"
            f"   WHERE state = 'pending' AND next_attempt_at <= now()"
            f"   AND NOT (CAST(id AS text) = ANY(CAST(:skip AS text[])))"
            f"   ORDER BY next_attempt_at LIMIT :limit FOR UPDATE SKIP LOCKED)"
            f" RETURNING {_DELIVERY_COLUMNS}",
            lease=float(lease_seconds),
            limit=int(limit),
            skip=list(skip),
        )
        return [_delivery(row) for row in rows]

    def record(
        self,
        delivery: Delivery,
        *,
        state: str,
        status: int | None,
        error: str | None,
        retry_in_seconds: float = 0.0,
    ) -> bool:
        """Write an attempt's outcome; False if a newer claim owns the row (nothing written).

        state `pending` schedules the next attempt `retry_in_seconds` from now.
        """
        rows = self._jobs._rows(
            "UPDATE webhook_deliveries SET state = CAST(:state AS text),"
            " last_status = CAST(:status AS integer), last_error = CAST(:error AS text),"
            " delivered_at = CASE WHEN CAST(:state AS text) = 'delivered' THEN now() END,"
            " next_attempt_at = now() + make_interval(secs => :delay)"
            " WHERE id = CAST(:id AS uuid) AND attempts = :attempts AND state = 'pending'"
            " RETURNING id",
            id=delivery.id,
            attempts=delivery.attempts,
            state=state,
            status=status,
            error=None if error is None else error[:500],
            delay=float(retry_in_seconds) if state == "pending" else 0.0,
        )
        return bool(rows)

    def latest(self, job_id: str) -> Delivery | None:
        """The job's newest event (a retried job that failed, then completed, has two)."""
        canonical = parse_job_id(job_id)
        if canonical is None:
            return None
        rows = self._jobs._rows(
            f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries"
            f" WHERE job_id = CAST(:id AS uuid) ORDER BY created_at DESC, attempts DESC LIMIT 1",
            id=canonical,
        )
        return _delivery(rows[0]) if rows else None

    def for_job(self, job_id: str) -> list[Delivery]:
        """Every event of a job, oldest first."""
        rows = self._jobs._rows(
            f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries"
            f" WHERE job_id = CAST(:id AS uuid) ORDER BY created_at, id",
            id=parse_job_id(job_id),
        )
        return [_delivery(row) for row in rows]
