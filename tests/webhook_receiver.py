"""A real HTTP receiver of callback events on 127.0.0.1, for the webhook tests.

It answers each POST with the next status of its script (the last one repeats), records
what it got, and checks every signature with the snippet docs/api.md shows users, run
as written, so the documented check and the signer cannot drift apart.
"""

from __future__ import annotations

import contextlib
import json
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

API_MD = Path(__file__).resolve().parent.parent / "docs" / "api.md"


def documented_verify() -> Callable[..., bool]:
    """`verify_signature` exactly as docs/api.md prints it."""
    text = API_MD.read_text(encoding="utf-8")
    after = text.split("<!-- webhook-verify", 1)[1]
    block = after.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(compile(block, "docs/api.md (webhook-verify)", "exec"), namespace)
    return namespace["verify_signature"]


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def event(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class Receiver:
    url: str
    statuses: list[int]
    location: str | None = None  # sent with a 3xx
    hang: threading.Event | None = None  # set: answer; unset: keep the client waiting
    big_body: int = 0  # bytes of response body to send after the status
    requests: list[Received] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    receiver: Receiver

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        self.receiver.requests.append(
            Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        )
        if self.receiver.hang is not None:
            self.receiver.hang.wait(30)
            return
        script = self.receiver.statuses
        status = script.pop(0) if len(script) > 1 else script[0]
        self.send_response(status)
        if 300 <= status < 400 and self.receiver.location:
            self.send_header("Location", self.receiver.location)
        self.send_header("Content-Length", str(self.receiver.big_body or 2))
        self.end_headers()
        try:
            if self.receiver.big_body:
                chunk = b"x" * 65536
                for _ in range(self.receiver.big_body // len(chunk)):
                    self.wfile.write(chunk)
            else:
                self.wfile.write(b"ok")
        except OSError:  # the sender stops reading after its cap and closes
            pass

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def receiver(
    *statuses: int,
    location: str | None = None,
    hang: threading.Event | None = None,
    big_body: int = 0,
    tls: ssl.SSLContext | None = None,
) -> Iterator[Receiver]:
    """A receiver answering `statuses` in turn (default 200), at `<url>` = .../hook;
    https with the server context `tls`."""
    handler = type("Handler", (_Handler,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    port = server.server_address[1]
    found = Receiver(
        url=f"{'https' if tls else 'http'}://127.0.0.1:{port}/hook",
        statuses=list(statuses or (200,)),
        location=location,
        hang=hang,
        big_body=big_body,
    )
    handler.receiver = found  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield found
    finally:
        if hang is not None:
            hang.set()
        server.shutdown()
        server.server_close()
