"""One POST of one event to a callback URL, pinned to an address the SSRF guard allowed.

The host is resolved and every address checked (chalicelib.webhooks.urls) at the
moment of sending; the socket connects to one of those addresses, never to a name, and
the peer it is connected to is checked once more, so a DNS answer that changes between
the check and the connect (rebinding) cannot steer the request inside. TLS still
verifies the certificate for the host name (SNI and hostname check). No redirect is
followed: a 3xx is a failed attempt. Connect and every read time out after
`timeout_s`, the whole exchange after twice that; at most MAX_RESPONSE_BYTES of the
response body are read.

The standard library's http.client rather than urllib3: connecting to a chosen
address while verifying TLS for the host name takes a few lines here, whereas urllib3's
low-level connection API differs between the 1.26 line the Lambda runtime's botocore
ships and the 2.x installed locally.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import socket
import ssl
import threading
import time
from dataclasses import dataclass

from chalicelib.errors import ApiError
from chalicelib.webhooks import urls
from chalicelib.webhooks.urls import CallbackUrl, Resolver

MAX_RESPONSE_BYTES = 4096
MAX_ADDRESSES_TRIED = 3  # of a name's (all checked) addresses: bounds the time connecting
USER_AGENT = "soundcheck-webhooks/1"


@dataclass(frozen=True)
class Sent:
    """How one attempt ended: a status (any HTTP answer) or an error, and whether to give up."""

    status: int | None
    error: str | None
    final: bool = False  # refused by the SSRF guard: retrying cannot help

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def post(
    callback: CallbackUrl,
    body: bytes,
    headers: dict[str, str],
    *,
    timeout_s: float,
    allow_loopback: bool = False,
    resolver: Resolver | None = None,
) -> Sent:
    """POST `body` to the callback; never raises for the network or the receiver's doing.

    The whole attempt, DNS lookup and connects included, ends within 2 x `timeout_s`
    (the deliverer's lease is sized on that).
    """
    deadline = time.monotonic() + 2 * timeout_s
    addresses = _resolve_until(callback, deadline, allow_loopback, resolver)
    if isinstance(addresses, Sent):
        return addresses
    sock = _connect(addresses, callback.port, timeout_s, allow_loopback, deadline)
    if isinstance(sock, Sent):
        return sock
    left = deadline - time.monotonic()
    if left <= 0:
        sock.close()
        return Sent(None, "timed out")
    watchdog = threading.Timer(left, _shutdown, args=(sock,))
    watchdog.daemon = True
    watchdog.start()
    try:
        # A name written with the root's dot (`example.com.`) is the same name, but
        # certificates and virtual hosts name it without the dot.
        name = callback.host if callback.address is not None else callback.host.rstrip(".")
        if callback.scheme == "https":
            context = ssl.create_default_context()
            sock = context.wrap_socket(sock, server_hostname=name)
        conn = http.client.HTTPConnection(name, callback.port, timeout=timeout_s)
        conn.default_port = 443 if callback.scheme == "https" else 80  # Host: name, not name:443
        conn.sock = sock  # already connected to the checked address: no connect of its own
        conn.request(
            "POST",
            callback.target,
            body=body,
            headers={
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                "Connection": "close",
                **headers,
            },
        )
        response = conn.getresponse()
        response.read(MAX_RESPONSE_BYTES)
        status = response.status
    except ssl.SSLError as exc:
        return Sent(None, f"TLS: {exc.reason or exc}")
    except (OSError, http.client.HTTPException) as exc:
        timed_out = isinstance(exc, TimeoutError) or not watchdog.is_alive()
        return Sent(None, "timed out" if timed_out else f"{type(exc).__name__}: {exc}")
    finally:
        watchdog.cancel()
        sock.close()
    if 300 <= status < 400:
        return Sent(status, f"redirect not followed (HTTP {status})")
    if not 200 <= status < 300:
        return Sent(status, f"HTTP {status}")
    return Sent(status, None)


def _resolve_until(
    callback: CallbackUrl, deadline: float, allow_loopback: bool, resolver: Resolver | None
) -> list[urls.IPAddress] | Sent:
    """`urls.resolve` by the deadline. getaddrinfo takes no timeout, so a lookup that
    outlasts it is left to finish in a daemon thread and the attempt fails now."""
    found: list[list[urls.IPAddress] | Sent] = []

    def lookup() -> None:
        try:
            found.append(urls.resolve(callback, allow_loopback=allow_loopback, resolver=resolver))
        except ApiError as exc:
            final = exc.code == "callback_url_forbidden"
            found.append(Sent(None, f"refused: {exc.message}", final=final))

    thread = threading.Thread(target=lookup, name="webhook-dns", daemon=True)
    thread.start()
    thread.join(max(0.0, deadline - time.monotonic()))
    return found[0] if found else Sent(None, f"timed out resolving {callback.host}")


def _connect(
    addresses: list[urls.IPAddress],
    port: int,
    timeout_s: float,
    allow_loopback: bool,
    deadline: float,
) -> socket.socket | Sent:
    """A socket connected to the first address that answers by the deadline, the peer
    checked again; else the failed attempt."""
    error = "no address"
    for address in addresses[:MAX_ADDRESSES_TRIED]:
        left = deadline - time.monotonic()
        if left <= 0:
            return Sent(None, f"timed out ({error})")
        family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(min(timeout_s, left))
        try:
            sock.connect((str(address), port))
            peer = ipaddress.ip_address(sock.getpeername()[0].split("%", 1)[0])
        except TimeoutError:
            sock.close()
            error = f"connect to {address} timed out"
            continue
        except OSError as exc:
            sock.close()
            error = f"connect to {address}: {exc.strerror or exc}"
            continue
        problem = urls.refusal(peer, allow_loopback=allow_loopback)
        if peer != address or problem:
            sock.close()
            why = problem or "not the checked address"
            return Sent(None, f"refused: connected to {peer}, {why}", final=True)
        return sock
    return Sent(None, error)


def _shutdown(sock: socket.socket) -> None:
    """The whole exchange ran past its deadline: unblock the read in progress."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
