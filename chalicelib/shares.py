"""Share links: a read-only view of one job's report for anyone holding the link.

A share token is 256 random bits (`scs_...`), shown once to its owner; Postgres
keeps only its sha256, as for API keys, so the token is the capability and a
database dump hands out no working link. A share names one job, expires
(1 hour to 90 days) and can be revoked by its owner; what it reveals is the
report of that job and nothing else: no owner, no file keys, no job id, no
other job. The token travels in the page's URL fragment and an Authorization
header, never in a URL sent to the server.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chalicelib.auth import hash_key
from chalicelib.errors import ShareError, shown
from chalicelib.jobs import JobStore, iso_utc, parse_job_id

TOKEN_PREFIX = "scs_"
DEFAULT_HOURS = 7 * 24
MAX_HOURS = 90 * 24
MAX_SHARES_PER_JOB = 20
_COLUMNS = "id, job_id, owner, created_at, expires_at, revoked_at"


@dataclass(frozen=True)
class Share:
    id: str
    job_id: str
    owner: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None

    def to_api(self) -> dict[str, Any]:
        return {
            "shareId": self.id,
            "createdAt": iso_utc(self.created_at),
            "expiresAt": iso_utc(self.expires_at),
            "revokedAt": iso_utc(self.revoked_at),
        }


def is_share_token(value: str | None) -> bool:
    return bool(value) and str(value).startswith(TOKEN_PREFIX) and len(str(value)) < 200


def _share(row: dict[str, Any]) -> Share:
    return Share(
        id=str(row["id"]),
        job_id=str(row["job_id"]),
        owner=row["owner"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
    )


class ShareStore:
    """Shares in the job store's Postgres schema (migration 0004), on its connection pool."""

    def __init__(self, jobs: JobStore) -> None:
        self.jobs = jobs

    def create(self, job_id: str, owner: str, hours: int = DEFAULT_HOURS) -> tuple[Share, str]:
        """A new share of the owner's completed job: (share, token). The token is not kept.

        ShareError 404 for a job that is not the owner's, 409 for one not completed,
        400 for a lifetime outside 1 hour - 90 days, 409 past MAX_SHARES_PER_JOB live ones.
        """
        if isinstance(hours, bool) or not isinstance(hours, int) or not 1 <= hours <= MAX_HOURS:
            raise ShareError("invalid_field", f"expiresInHours must be 1-{MAX_HOURS}")
        job = self.jobs.get(job_id, owner)
        if job is None:
            raise ShareError("not_found", f"no job {shown(job_id)}")
        if job.status != "completed":
            raise ShareError("not_completed", f"job {job.id} is {job.status}: not shareable")
        live = self.list(job.id, owner)
        if sum(1 for s in live if s.revoked_at is None) >= MAX_SHARES_PER_JOB:
            raise ShareError("too_many_shares", "revoke an older link of this job first")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        rows = self.jobs._rows(
            f"INSERT INTO shares (id, job_id, owner, token_hash, expires_at)"
            f" VALUES (CAST(:id AS uuid), CAST(:job AS uuid), :owner, :hash,"
            f" now() + make_interval(hours => :hours)) RETURNING {_COLUMNS}",
            id=str(uuid.uuid4()),
            job=job.id,
            owner=owner,
            hash=hash_key(token),
            hours=hours,
        )
        return _share(rows[0]), token

    def list(self, job_id: str, owner: str) -> list[Share]:
        """The owner's shares of a job, newest first (revoked and expired ones too)."""
        canonical = parse_job_id(job_id)
        if canonical is None:
            return []
        rows = self.jobs._rows(
            f"SELECT {_COLUMNS} FROM shares WHERE job_id = CAST(:job AS uuid) AND owner = :owner"
            f" ORDER BY created_at DESC, id",
            job=canonical,
            owner=owner,
        )
        return [_share(row) for row in rows]

    def revoke(self, job_id: str, share_id: str, owner: str) -> Share:
        """Revoke one of the owner's shares (again is a no-op); ShareError 404 if not theirs."""
        canonical_job, canonical_share = parse_job_id(job_id), parse_job_id(share_id)
        if canonical_job is None or canonical_share is None:
            raise ShareError("not_found", "no such share")
        rows = self.jobs._rows(
            f"UPDATE shares SET revoked_at = COALESCE(revoked_at, now())"
            f" WHERE id = CAST(:id AS uuid) AND job_id = CAST(:job AS uuid) AND owner = :owner"
            f" RETURNING {_COLUMNS}",
            id=canonical_share,
            job=canonical_job,
            owner=owner,
        )
        if not rows:
            raise ShareError("not_found", "no such share")
        return _share(rows[0])

    def open(self, token: str | None) -> dict[str, Any]:
        """The shared report for a token: the job's display fields and result only.

        ShareError 404 `share_not_found` alike for an unknown, revoked or expired
        token, or a job that is gone: a link that does not work says nothing more.
        """
        if not is_share_token(token):
            raise ShareError("share_not_found", "this share link is invalid or has expired")
        rows = self.jobs._rows(
            "SELECT s.expires_at, j.file_name, j.mode, j.genre, j.status, j.created_at,"
            " j.completed_at, j.result FROM shares s JOIN jobs j ON j.id = s.job_id"
            " WHERE s.token_hash = :hash AND s.revoked_at IS NULL AND s.expires_at > now()"
            " AND j.owner = s.owner AND j.status = 'completed'",
            hash=hash_key(str(token)),
        )
        if not rows:
            raise ShareError("share_not_found", "this share link is invalid or has expired")
        row = rows[0]
        return {
            "shared": True,
            "expiresAt": iso_utc(row["expires_at"]),
            "fileName": row["file_name"],
            "mode": row["mode"],
            "genre": row["genre"],
            "status": row["status"],
            "createdAt": iso_utc(row["created_at"]),
            "completedAt": iso_utc(row["completed_at"]),
            "result": row["result"],
        }
