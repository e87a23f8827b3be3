"""How a callback is signed: `Soundcheck-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>]`.

v1 is the hex HMAC-SHA256, keyed with the owner's signing secret (`whsec_...`, the whole
string as UTF-8), of the bytes `<t>.<body>`. A receiver recomputes it, compares in
constant time and refuses a `t` older than a few minutes (replays). During a secret's
rotation the event carries one v1 per live secret. docs/api.md holds the receiver's
side (a snippet the tests run as their receiver's check, so the two cannot drift).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable

HEADER = "Soundcheck-Signature"
SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    """A signing secret: `whsec_` and 256 random bits."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """hex HMAC-SHA256 of `<timestamp>.<body>` keyed with `secret`."""
    message = str(int(timestamp)).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def header_value(live_secrets: Iterable[str], timestamp: int, body: bytes) -> str:
    """The Soundcheck-Signature value: `t=...` then one `v1=...` per live secret."""
    parts = [f"t={int(timestamp)}"]
    parts += [f"v1={signature(s, timestamp, body)}" for s in live_secrets]
    return ",".join(parts)
