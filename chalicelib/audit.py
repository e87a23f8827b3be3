"""The audit log of admin actions (table `audit`, migration 0005): who, what, when, on what.

Every admin action is recorded in the same Postgres transaction as its effect: an
`Action` is handed to the job store's method (retry, cancel, delete, redrive), which
writes it beside its own change, so the row and the action commit together or not
at all. Pause and resume live in Redis, where no transaction reaches:
`AuditLog.record_then` writes the row, acts, and commits only once the action
returned (an action that raised leaves no row; only a commit that fails after
Redis acted can lose the row, and the route then answers 503). `GET
/api/admin/audit` reads the log back newest first. Rows are only ever added.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import pg8000.native

    from chalicelib.jobs import JobStore

T = TypeVar("T")

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


@dataclass(frozen=True)
class Action:
    """An admin action to record inside the transaction that does it.

    `actor` is the admin key's owner id, `action` e.g. `job.retry`; `write` adds the
    target and detail the action learns as it runs (the job's owner, the ids redriven).
    """

    actor: str
    action: str
    target: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def write(
        self, conn: pg8000.native.Connection, target: str | None = None, **detail: Any
    ) -> AuditEntry:
        from chalicelib.jobs import _fetch

        rows = _fetch(
            conn,
            "INSERT INTO audit (actor, action, target, detail)"
            " VALUES (:actor, :action, :target, CAST(:detail AS jsonb))"
            " RETURNING id, at, actor, action, target, detail",
            {
                "actor": self.actor,
                "action": self.action,
                "target": target if target is not None else self.target,
                "detail": json.dumps({**self.detail, **detail}, separators=(",", ":")),
            },
        )
        return _entry(rows[0])


class AuditLog:
    """The audit table in the job store's database (shares its connections)."""

    def __init__(self, jobs: JobStore) -> None:
        self._jobs = jobs

    def record(
        self, actor: str, action: str, target: str | None = None, **detail: Any
    ) -> AuditEntry:
        """Add one entry on its own; `actor` is the admin key's owner id, `action` e.g.
        `job.retry`. An action with a Postgres effect passes an `Action` to that effect instead."""
        entry = Action(actor, action, target, detail)
        return self._jobs._unit(entry.write)

    def record_then(self, action: Action, act: Callable[[], T]) -> T:
        """Write `action`, then `act()` (a Redis call), then commit: what `act` returns.

        If `act` raises, the transaction is rolled back: no row for an action that did
        not happen. `act` may run twice (a connection lost at commit re-runs the unit):
        it must be idempotent, as pause and resume are.
        """

        def work(conn: pg8000.native.Connection) -> T:
            action.write(conn)
            return act()

        return self._jobs._unit(work)

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
