"""Removing everything of one owner: jobs, uploads, results, share links, API keys,
webhook secret, usage counts.

`soundcheck owner purge OWNER` runs `purge_owner`. In order, each step safe to
run again:

1. revoke the owner's keys (committed at once: no new job can arrive meanwhile);
2. take the owner's jobs off the queue (a consumer still analysing one is refused
   its next lease renewal; its writes match no row once step 3 is done);
3. one transaction: delete the share links, the jobs (results, callback deliveries
   and the console's attempt history with them), the keys, the webhook signing
   secret, the console's usage row, and record `owner.purge` in the audit table;
4. delete the owner's whole upload prefix from storage (so uploads no job names
   go too).

A crash anywhere leaves a state the next run finishes: before 3 commits the rows are
all still there; after it, step 4 deletes by prefix and needs no row to know what.
The audit table keeps its entries (the record of who did what, this purge
included); it holds owner ids, not the owner's data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pg8000.native

from chalicelib.audit import Action

if TYPE_CHECKING:
    from chalicelib.deps import Deps
    from chalicelib.jobs import JobStore


# (count, table) in the order they are deleted: shares before jobs (they would go with
# them, uncounted); a job's callback deliveries go with it, any left over by owner after.
_TABLES = (
    ("shares", "shares"),
    ("jobs", "jobs"),
    ("keys", "api_keys"),
    ("webhook_secrets", "webhook_secrets"),
    ("webhook_deliveries", "webhook_deliveries"),
    ("usage", "owner_usage"),  # the console's per-owner counts (after jobs: they keep it)
)


@dataclass(frozen=True)
class OwnerHoldings:
    """What an owner has in Postgres (for the confirmation prompt)."""

    jobs: int
    shares: int
    keys: int
    admin_keys: int = 0  # live admin keys: purging them locks their holders out

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @property
    def empty(self) -> bool:
        return self.jobs == self.shares == self.keys == 0


@dataclass(frozen=True)
class PurgeReport:
    """What one purge removed: rows, queue entries and stored objects."""

    owner: str
    jobs: int = 0
    shares: int = 0
    keys: int = 0
    webhook_secrets: int = 0
    queue_entries: int = 0
    uploads: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def holdings(jobs: JobStore, owner: str) -> OwnerHoldings:
    """Counts of the owner's jobs, share links and API keys (and live admin keys)."""
    row = jobs._rows(
        "SELECT (SELECT count(*) FROM jobs WHERE owner = :owner) AS jobs,"
        " (SELECT count(*) FROM shares WHERE owner = :owner) AS shares,"
        " (SELECT count(*) FROM api_keys WHERE owner = :owner) AS keys,"
        " (SELECT count(*) FROM api_keys WHERE owner = :owner AND role = 'admin'"
        "  AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())) AS admins",
        owner=owner,
    )[0]
    return OwnerHoldings(int(row["jobs"]), int(row["shares"]), int(row["keys"]), int(row["admins"]))


def purge_owner(deps: Deps, owner: str, actor: str) -> PurgeReport:
    """Remove everything of `owner` (steps above); `actor` is who asked, for the audit."""
    if not isinstance(owner, str) or not owner:
        raise ValueError("owner must be a non-empty string")
    jobs = deps.jobs
    jobs._rows(
        "UPDATE api_keys SET revoked_at = now() WHERE owner = :owner AND revoked_at IS NULL",
        owner=owner,
    )
    ids = [
        row["id"]
        for row in jobs._rows(
            "SELECT CAST(id AS text) AS id FROM jobs WHERE owner = :owner", owner=owner
        )
    ]
    dequeued = sum(1 for job_id in ids if deps.queue.remove(job_id))

    def work(conn: pg8000.native.Connection) -> dict[str, int]:
        counts: dict[str, int] = {}
        for field, table in _TABLES:
            conn.run(f"DELETE FROM {table} WHERE owner = :owner", owner=owner)
            counts[field] = max(conn.row_count, 0)
        Action(actor, "owner.purge", owner).write(conn, **counts, queue_entries=dequeued)
        return counts

    counts = jobs._unit(work)
    uploads = deps.storage.delete_owner(owner)
    return PurgeReport(
        owner,
        jobs=counts["jobs"],
        shares=counts["shares"],
        keys=counts["keys"],
        webhook_secrets=counts["webhook_secrets"],
        queue_entries=dequeued,
        uploads=uploads,
    )
