"""API keys: how they are made, stored (sha256 only) and read from a request.

A leaked database dump must not hand out working keys, so only a digest is
stored; keys are long random strings, so a fast unsalted hash is enough.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping

KEY_PREFIX = "sck_"


def new_api_key() -> str:
    """A fresh API key: a recognisable prefix and 256 random bits."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """The hex sha256 of a key, the only form in which keys are stored."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def bearer_token(headers: Mapping[str, str] | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None.

    Header names are matched case-insensitively (plain dicts from tests, Chalice's
    case-insensitive mapping from API Gateway), and so is the scheme, per RFC 7235.
    """
    if not headers:
        return None
    value = headers.get("authorization")
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == "authorization"), None)
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or any(c.isspace() for c in token):
        return None
    return token
