"""Which callback URLs soundcheck will POST to: the SSRF guard, used at submission and delivery.

A callback must reach a public host. `parse` checks the URL's form without the network
(scheme, credentials, port, host syntax, IP literals and `localhost`); `resolve` looks
the host up and refuses it when ANY address it resolves to is loopback, private,
link-local, multicast, reserved or otherwise not globally routable, IPv4 and IPv6
alike, with IPv4 addresses embedded in IPv6 (`::ffff:127.0.0.1`, 6to4, NAT64) judged
as the IPv4 address they carry. Numeric host forms that resolvers read as IPv4
(`0x7f.1`, `2130706433`, `0177.0.0.1`, `127.1`) are refused outright: an address is
written as four decimal numbers. The deliverer connects only to an address `resolve`
returned, and checks the connected peer again (DNS rebinding).

`allow_loopback` (SOUNDCHECK_WEBHOOK_ALLOW_LOOPBACK, tests only, refused on Lambda)
admits 127.0.0.0/8 and ::1 and nothing else; `allow_http` admits http:// URLs.
Errors are ApiError `invalid_callback_url` (malformed, wrong scheme, does not
resolve) or `callback_url_forbidden` (names or resolves to an address not allowed).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn
from urllib.parse import urlsplit

from chalicelib import rules
from chalicelib.errors import ApiError, shown

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[..., Sequence[tuple[Any, ...]]]  # socket.getaddrinfo's shape

_LABEL = r"(?!-)[a-z0-9_-]{1,63}(?<!-)"
_HOST_NAME = re.compile(rf"^{_LABEL}(\.{_LABEL})*\.?$")
# The last label decides whether resolvers read a host as an IPv4 number (WHATWG URL).
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")
# The authority (no credentials by then): a name or a bracketed IPv6 literal, then an
# optional port, and nothing else (urlsplit reads "[2606:4700::1111]evil.com" as the IPv6).
_AUTHORITY = re.compile(r"(\[[^\[\]]+\]|[^\[\]:]+)(:[0-9]*)?")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


@dataclass(frozen=True)
class CallbackUrl:
    """A callback URL that passed `parse`: where and how to POST."""

    url: str
    scheme: str  # http | https
    host: str  # lower case; an IPv6 literal without brackets
    port: int
    target: str  # path and query, at least "/"
    address: IPAddress | None  # the host when it is an IP literal


def parse(raw: object, *, allow_http: bool, allow_loopback: bool = False) -> CallbackUrl:
    """A callback URL's form, checked without touching the network; ApiError otherwise."""
    url = rules.text(raw, "callbackUrl", rules.MAX_CALLBACK_URL, ApiError)
    if not url.isascii() or any(c.isspace() or ord(c) < 0x20 or c == "\x7f" for c in url):
        _invalid("callbackUrl must be ASCII without spaces (percent-encode it; punycode hosts)")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        _invalid(f"callbackUrl is not a URL: {exc}")
    if parts.scheme not in ("https", "http"):
        _invalid("callbackUrl must be an https:// URL")
    if parts.scheme == "http" and not allow_http:
        _invalid("callbackUrl must use https:// (http:// is refused on this deployment)")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        _invalid("callbackUrl must not carry credentials (user:password@)")
    if not _AUTHORITY.fullmatch(parts.netloc):
        _invalid(f"callbackUrl host and port {shown(parts.netloc)} are malformed")
    if parts.fragment or url.endswith("#"):
        _invalid("callbackUrl must not have a #fragment")
    host = (parts.hostname or "").lower()
    if not host:
        _invalid("callbackUrl has no host")
    if port == 0:
        _invalid("callbackUrl port must be 1-65535")
    address = _literal_address(host, bracketed="[" in parts.netloc)
    if address is not None:
        problem = refusal(address, allow_loopback=allow_loopback)
        if problem:
            _forbidden(f"callbackUrl host {shown(host)} is {problem}")
    elif not allow_loopback and _is_localhost(host):
        _forbidden("callbackUrl host localhost is a loopback address")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return CallbackUrl(
        url=url,
        scheme=parts.scheme,
        host=host,
        port=port or (443 if parts.scheme == "https" else 80),
        target=target,
        address=address,
    )


def _literal_address(host: str, *, bracketed: bool) -> IPAddress | None:
    """The host as an IP address when it is one; None for a host name."""
    if bracketed:
        if "%" in host:
            _invalid("callbackUrl must not name an IPv6 zone (%)")
        try:
            return ipaddress.IPv6Address(host)
        except ValueError:
            _invalid(f"callbackUrl host {shown(host)} is not an IPv6 address")
    if not _HOST_NAME.match(host):
        _invalid(f"callbackUrl host {shown(host)} is not a host name")
    last = host.rstrip(".").rsplit(".", 1)[-1]
    if not _NUMERIC_LABEL.match(last):
        return None
    try:  # only the canonical dotted quad: resolvers read 0x7f.1 or 2130706433 as 127.0.0.1
        return ipaddress.IPv4Address(host)
    except ValueError:
        _invalid(
            f"callbackUrl host {shown(host)} is not a host name; write an IPv4 address as "
            "four decimal numbers (hex, octal and short forms are refused)"
        )


def _is_localhost(host: str) -> bool:
    """`localhost` and every name under it (RFC 6761), with or without the root's dot."""
    name = host.rstrip(".")
    return name == "localhost" or name.endswith(".localhost")


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, NAT64, compatible), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def refusal(address: IPAddress, *, allow_loopback: bool = False) -> str | None:
    """Why a callback may not go to `address` ("a private address", ...), or None."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = embedded_ipv4(address)
        if inner is not None:
            return refusal(inner, allow_loopback=allow_loopback)
    if address.is_loopback:
        return None if allow_loopback else "a loopback address"
    for flag, name in (
        ("is_unspecified", "the unspecified address"),
        ("is_link_local", "a link-local address"),
        ("is_multicast", "a multicast address"),
        ("is_private", "a private address"),
        ("is_reserved", "a reserved address"),
    ):
        if getattr(address, flag):
            return name
    if not address.is_global:
        return "not a public address"
    return None


def resolve(
    callback: CallbackUrl, *, allow_loopback: bool = False, resolver: Resolver | None = None
) -> list[IPAddress]:
    """Every address the callback's host resolves to, all of them allowed; else ApiError.

    One disallowed address refuses the URL (a name with a public and a private record
    must not reach the private one). An IP literal is its own answer.
    """
    if callback.address is not None:
        found = [callback.address]
    else:
        lookup = resolver or socket.getaddrinfo
        try:
            infos = lookup(callback.host, callback.port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            _invalid(f"callbackUrl host {shown(callback.host)} does not resolve ({exc})")
        found = []
        for info in infos:
            text = str(info[4][0]).split("%", 1)[0]
            address = ipaddress.ip_address(text)
            if address not in found:
                found.append(address)
        if not found:
            _invalid(f"callbackUrl host {shown(callback.host)} has no address")
    for address in found:
        problem = refusal(address, allow_loopback=allow_loopback)
        if problem:
            _forbidden(f"callbackUrl host {shown(callback.host)} resolves to {address}, {problem}")
    return found


def check(
    raw: object,
    *,
    allow_http: bool,
    allow_loopback: bool,
    resolver: Resolver | None = None,
) -> CallbackUrl:
    """parse + resolve: what POST /api/audio/analyze does with a callbackUrl."""
    callback = parse(raw, allow_http=allow_http, allow_loopback=allow_loopback)
    resolve(callback, allow_loopback=allow_loopback, resolver=resolver)
    return callback


def _invalid(message: str) -> NoReturn:
    raise ApiError("invalid_callback_url", message)


def _forbidden(message: str) -> NoReturn:
    raise ApiError("callback_url_forbidden", message)
