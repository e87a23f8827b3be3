"""API keys with roles: create, look up, list, revoke (table `api_keys`, migration 0005).

A key is `user` (its owner's jobs only) or `admin` (queue statistics, health
details, the admin routes). A revoked or expired key reads as unknown, so a
request with one is `401 unauthorized` like any wrong key. Only the sha256 of a
key is stored (chalicelib.auth); `keys list` names a key by the first 12 hex
digits of that digest, which is all `keys revoke` needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from chalicelib import auth, rules

if TYPE_CHECKING:
    from chalicelib.jobs import JobStore

MIN_CHOSEN_KEY = 24  # an operator's own key (`--key`): at least this many characters
MAX_EXPIRY_DAYS = 36500  # ~100 years; also keeps inf/NaN out of Postgres intervals
KEY_ID_LEN = 12  # hex digits of the key's sha256 shown as its id


class Role(StrEnum):
    USER = "user"
    ADMIN = "admin"


@dataclass(frozen=True)
class Principal:
    """Who a request's key speaks for: an owner id and a role."""

    owner: str
    role: Role
    expires_at: datetime | None = None  # when the key stops working; None: never

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN


@dataclass(frozen=True)
class ApiKey:
    """A key as `keys list` shows it (never the key itself: it is not stored)."""

    id: str
    owner: str
    role: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    def to_api(self) -> dict[str, Any]:
        from chalicelib.jobs import iso_utc

        return {
            "id": self.id,
            "owner": self.owner,
            "role": self.role,
            "createdAt": iso_utc(self.created_at),
            "expiresAt": iso_utc(self.expires_at),
            "revokedAt": iso_utc(self.revoked_at),
        }


def _refused(code: str, message: str) -> ValueError:
    """rules' checks raise this family here: KeyStore reports bad input as ValueError."""
    return ValueError(message)


def check_chosen_key(key: str) -> str:
    """An operator-chosen key: MIN_CHOSEN_KEY+ characters, no whitespace; else ValueError."""
    if len(key) < MIN_CHOSEN_KEY:
        raise ValueError(f"a chosen API key needs at least {MIN_CHOSEN_KEY} characters")
    if any(c.isspace() for c in key):
        raise ValueError("an API key cannot hold whitespace (it travels in a Bearer header)")
    return key


class KeyStore:
    """API keys in the job store's database (shares its connections)."""

    def __init__(self, jobs: JobStore) -> None:
        self._jobs = jobs

    def create(
        self,
        owner: str,
        key: str | None = None,
        *,
        role: Role | str = Role.USER,
        expires_in_days: float | None = None,
    ) -> str:
        """Register a key for owner (a new random one unless given); return the key.

        Registering the same key for the same owner again sets its role and expiry
        (the local stack does it on every start, so an older stack's `user` key
        becomes `admin`); for another owner it raises ValueError. A chosen key
        must pass check_chosen_key.
        """
        rules.owner(owner, _refused)
        role = Role(role)
        if key is not None:
            check_chosen_key(key)
        if expires_in_days is not None and not 0 < expires_in_days <= MAX_EXPIRY_DAYS:
            raise ValueError(f"expiry must be more than 0 and at most {MAX_EXPIRY_DAYS} days")
        key = key or auth.new_api_key()
        self._jobs._rows(
            "INSERT INTO api_keys (key_hash, owner, role, expires_at)"
            " VALUES (:h, :owner, :role, now() + make_interval(secs => :secs))"
            " ON CONFLICT (key_hash) DO UPDATE"
            " SET role = EXCLUDED.role, expires_at = EXCLUDED.expires_at"
            " WHERE api_keys.owner = EXCLUDED.owner",
            h=auth.hash_key(key),
            owner=owner,
            role=str(role),
            secs=None if expires_in_days is None else float(expires_in_days) * 86400.0,
        )
        found = self.principal(key)
        if found is None or found.owner != owner:
            raise ValueError("this API key is already registered to another owner (or revoked)")
        return key

    def principal(self, key: str | None) -> Principal | None:
        """Who a key speaks for, or None for an unknown, empty, revoked or expired key."""
        if not key:
            return None
        rows = self._jobs._rows(
            "SELECT owner, role, expires_at FROM api_keys WHERE key_hash = :h"
            " AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())",
            h=auth.hash_key(key),
        )
        if not rows:
            return None
        return Principal(rows[0]["owner"], Role(rows[0]["role"]), rows[0]["expires_at"])

    def list(self, owner: str | None = None) -> list[ApiKey]:
        """Every key (or one owner's), oldest first."""
        rows = self._jobs._rows(
            "SELECT key_hash, owner, role, created_at, expires_at, revoked_at FROM api_keys"
            " WHERE CAST(:owner AS text) IS NULL OR owner = :owner"
            " ORDER BY created_at, key_hash",
            owner=owner,
        )
        return [
            ApiKey(
                id=row["key_hash"][:KEY_ID_LEN],
                owner=row["owner"],
                role=row["role"],
                created_at=row["created_at"],
                expires_at=row["expires_at"],
                revoked_at=row["revoked_at"],
            )
            for row in rows
        ]

    def revoke(self, key_id: str) -> int:
        """Revoke the key whose id (a prefix of its sha256, at least 8 hex digits) matches.

        Returns how many keys were revoked (0 or 1); an ambiguous or malformed id
        raises ValueError and revokes nothing.
        """
        key_id = key_id.strip().lower()
        if len(key_id) < 8 or any(c not in "0123456789abcdef" for c in key_id):
            raise ValueError("a key id is 8 or more hex digits (see `soundcheck keys list`)")
        rows = self._jobs._rows(
            "SELECT key_hash FROM api_keys WHERE key_hash LIKE :p", p=key_id + "%"
        )
        if len(rows) > 1:
            raise ValueError(f"key id {key_id} matches {len(rows)} keys; give more digits")
        if not rows:
            return 0
        done = self._jobs._rows(
            "UPDATE api_keys SET revoked_at = now() WHERE key_hash = :h AND revoked_at IS NULL"
            " RETURNING key_hash",
            h=rows[0]["key_hash"],
        )
        return len(done)
