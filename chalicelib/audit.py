"""The audit log of admin actions (table `audit`, migration 0005): who, what, when, on what.

Every admin route records its action here after it took effect; `GET
/api/admin/audit` reads it back newest first. Rows are only ever added.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chalicelib.jobs import JobStore

MAX_AUDIT_LIMIT = 200


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    target: str | None
    detail: dict[str, Any]

    def to_api(self) -> dict[str, Any]:
        from chalicelib.jobs import iso_utc

        return {
            "id": self.id,
            "at": iso_utc(self.at),
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "detail": self.detail,
        }


def _entry(row: dict[str, Any]) -> AuditEntry:
    detail = row["detail"]
    if isinstance(detail, str):
        detail = json.loads(detail)
    return AuditEntry(
        id=int(row["id"]),
        at=row["at"],
        actor=row["actor"],
        action=row["action"],
        target=row["target"],
        detail=detail or {},
    )


class AuditLog:
    """The audit table in the job store's database (shares its connections)."""

    def __init__(self, jobs: JobStore) -> None:
        self._jobs = jobs

    def record(
        self, actor: str, action: str, target: str | None = None, **detail: Any
    ) -> AuditEntry:
        """Add one entry; `actor` is the admin key's owner id, `action` e.g. `job.retry`."""
        rows = self._jobs._rows(
            "INSERT INTO audit (actor, action, target, detail)"
            " VALUES (:actor, :action, :target, CAST(:detail AS jsonb))"
            " RETURNING id, at, actor, action, target, detail",
            actor=actor,
            action=action,
            target=target,
            detail=json.dumps(detail, separators=(",", ":")),
        )
        return _entry(rows[0])

    def list(self, limit: int = 50, before: int | None = None) -> list[AuditEntry]:
        """Entries newest first, at most `limit` (1..MAX_AUDIT_LIMIT); `before`: ids below it."""
        rows = self._jobs._rows(
            "SELECT id, at, actor, action, target, detail FROM audit"
            " WHERE CAST(:before AS bigint) IS NULL OR id < :before"
            " ORDER BY id DESC LIMIT :limit",
            before=before,
            limit=max(1, min(MAX_AUDIT_LIMIT, int(limit))),
        )
        return [_entry(row) for row in rows]
