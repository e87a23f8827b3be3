"""The local stack's HTTP server: the Chalice app behind a server that holds up under load.

chalice's own local server (http.server underneath) listens with a backlog of 5
(64 concurrent clients got "connection reset"), reads any body it is sent before
the app can refuse it (a 200 MiB body before a 403, `Content-Length: 1e12` to a
MemoryError), lets slow clients hold its threads (16 stalled /health), and echoes
the caller's Authorization header in the 403 of an unknown route. Here:

- a listen backlog of LISTEN_BACKLOG and one I/O thread per connection (up to
  MAX_CONNECTIONS), while at most API_THREADS requests run the app at once (each
  may hold a Postgres connection);
- a request's head, and then its body, must each arrive within READ_TIMEOUT_S,
  and an idle keep-alive connection is closed after IDLE_TIMEOUT_S;
- before a body is read: its declared length is checked (digits, under the
  route's limit), an unknown route is refused, a signed upload URL is verified
  against the request's own length and type, and a request to an API route with
  a body must carry a known API key; a refused request's connection is closed
  with its body unread;
- errors are the API's `{error: {code, message}}`, never echoing a header.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import json
import socket
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from http.server import HTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from chalice.local import ChaliceRequestHandler, LocalGatewayException, RouteMatcher

from chalicelib import logs

API_THREADS = 16  # requests in the app at once (and at most this many Postgres connections)
MAX_CONNECTIONS = 512  # open client connections; more are answered 503 and closed
LISTEN_BACKLOG = 1024  # accepted by the kernel before the server takes them
READ_TIMEOUT_S = 10.0  # a request's head (line and headers), then its body, within this
IDLE_TIMEOUT_S = 5.0  # a keep-alive connection waiting for its next request
MAX_API_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's request limit
LINGER_BYTES = 1024 * 1024  # unread body drained after an early answer, at most
LINGER_S = 1.0


@dataclass(frozen=True)
class Refusal:
    """An answer given before the body is read."""

    status: int
    code: str
    message: str
    headers: Mapping[str, str] | None = None


# (method, path, headers, declared length) -> a refusal, or None to go on.
Preflight = Callable[[str, str, Mapping[str, str], int], Refusal | None]


class _Reaper:
    """Shuts down sockets whose deadline passed: one thread for every connection.

    A socket timeout bounds each recv, not a request: a client sending a byte
    every few seconds would hold its thread forever. Shutting the socket down
    wakes the blocked read at the deadline whatever the client does.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, socket.socket]] = []
        self._live: set[int] = set()
        self._ids = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def watch(self, sock: socket.socket, seconds: float) -> int:
        with self._cond:
            ticket = next(self._ids)
            heapq.heappush(self._heap, (time.monotonic() + seconds, ticket, sock))
            self._live.add(ticket)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="reaper", daemon=True)
                self._thread.start()
            self._cond.notify()
            return ticket

    def cancel(self, ticket: int) -> bool:
        """Stop watching; False when the deadline had already passed (socket shut)."""
        with self._cond:
            if ticket in self._live:
                self._live.discard(ticket)
                return True
            return False

    def alive(self, ticket: int) -> bool:
        with self._cond:
            return ticket in self._live

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._heap and self._heap[0][1] not in self._live:
                    heapq.heappop(self._heap)  # cancelled
                if not self._heap:
                    self._cond.wait()
                    continue
                deadline, ticket, sock = self._heap[0]
                wait = deadline - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
                self._live.discard(ticket)
            with suppress(OSError):  # already closed
                sock.shutdown(socket.SHUT_RDWR)


class LocalServer(HTTPServer):
    """An HTTPServer with a deep backlog, a thread per connection and a bounded app."""

    request_queue_size = LISTEN_BACKLOG
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: Any,
        *,
        api_threads: int = API_THREADS,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self.app_slots = threading.BoundedSemaphore(api_threads)
        self.reaper = _Reaper()
        self._max_connections = max_connections
        self._open = 0
        self._open_lock = threading.Lock()
        super().__init__(address, handler)  # binds; on failure it calls server_close

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            full = self._open >= self._max_connections
            if not full:
                self._open += 1
        if full:
            _refuse_raw(request, 503, "busy", "too many connections; retry soon")
            self.shutdown_request(request)
            return
        thread = threading.Thread(
            target=self._serve_connection, args=(request, client_address), daemon=True
        )
        thread.start()

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            with self._open_lock:
                self._open -= 1

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that went away mid-request: nothing to report


def _refuse_raw(sock: socket.socket, status: int, code: str, message: str) -> None:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    head = (
        f"HTTP/1.1 {status} Error\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    try:
        sock.settimeout(1.0)
        sock.sendall(head + body)
    except OSError:
        pass


class LocalHandler(ChaliceRequestHandler):
    """chalice's request handler with limits checked before the body, and no access log."""

    timeout = IDLE_TIMEOUT_S
    server: LocalServer

    def __init__(self, *args: Any, preflight: Preflight | None = None, **kwargs: Any) -> None:
        self._preflight = preflight
        self._ticket: int | None = None
        super().__init__(*args, **kwargs)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the app logs JSON lines; http.server's access log would interleave

    def handle_one_request(self) -> None:
        self._ticket = None
        try:
            super().handle_one_request()
        finally:
            self._stop_watch()

    def parse_request(self) -> bool:
        # The request line has arrived: the rest of the head gets READ_TIMEOUT_S.
        self._ticket = self.server.reaper.watch(self.connection, READ_TIMEOUT_S)
        return bool(super().parse_request())

    def _stop_watch(self) -> None:
        if self._ticket is not None:
            self.server.reaper.cancel(self._ticket)
            self._ticket = None

    def _refuse(self, refusal: Refusal) -> None:
        """Answer without reading the body, and close: the body is still on the wire."""
        self.close_connection = True
        body = json.dumps({"error": {"code": refusal.code, "message": refusal.message}}).encode()
        self.send_response(refusal.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        for name, value in (refusal.headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
        self._linger()

    def _linger(self) -> None:
        """Half-close, then drain a little of the unread body before closing.

        Closing with unread bytes makes the kernel send a reset, which can destroy
        the answer before the client reads it; a client still sending a large body
        is cut off after LINGER_BYTES or LINGER_S.
        """
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(LINGER_S)
            deadline, drained = time.monotonic() + LINGER_S, 0
            while drained < LINGER_BYTES and time.monotonic() < deadline:
                chunk = self.connection.recv(65536)
                if not chunk:
                    break
                drained += len(chunk)
        except OSError:
            pass

    def _declared_length(self) -> int | Refusal:
        if self.headers.get("Transfer-Encoding"):
            return Refusal(411, "length_required", "send the body with a Content-Length")
        raw = self.headers.get("Content-Length")
        if raw is None:
            return 0
        raw = raw.strip()
        if not raw.isascii() or not raw.isdigit() or len(raw) > 15:
            return Refusal(400, "invalid_content_length", "Content-Length must be a byte count")
        return int(raw)

    def _read_body(self, length: int) -> bytes | None:
        """The body, or None when the client stopped sending (or its time ran out)."""
        chunks, left = [], length
        while left > 0:
            try:
                chunk = self.rfile.read(min(left, 1 << 20))
            except OSError:
                return None
            if not chunk:
                return None
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def _generic_handle(self) -> None:
        # The head is in. What follows until the body is read is our own work (the
        # preflight may ask Postgres, in turn with other requests): not the client's time.
        if self._ticket is not None and not self.server.reaper.cancel(self._ticket):
            self.close_connection = True  # its time ran out mid-head: the head is cut short
            return
        self._ticket = None
        length = self._declared_length()
        if isinstance(length, Refusal):
            self._refuse(length)
            return
        if self._preflight is not None:
            with self.server.app_slots:  # it may hold a Postgres connection too
                refusal = self._preflight(self.command, self.path, self.headers, length)
            if refusal is not None:
                self._refuse(refusal)
                return
        body = None
        if length > 0:
            self._ticket = self.server.reaper.watch(self.connection, READ_TIMEOUT_S)
            body = self._read_body(length)
            if body is None or not self.server.reaper.cancel(self._ticket):
                self.close_connection = True  # the client stopped, or its time ran out
                return
            self._ticket = None
        headers = dict(self.headers)
        try:
            with self.server.app_slots:
                response = self.local_gateway.handle_request(
                    method=self.command, path=self.path, headers=headers, body=body
                )
        except LocalGatewayException as exc:
            # chalice's own 403s echo the Authorization header: answer in the API's format.
            self._refuse(Refusal(exc.CODE, "forbidden", "this request is not allowed"))
            return
        status = response["statusCode"]
        out = response["headers"].copy()
        out.update(response["multiValueHeaders"])
        response = self._handle_binary(response)
        self._send_http_response(status, out, response["body"])

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = do_PATCH = do_OPTIONS = _generic_handle


def make_server(
    app: Any,
    config: Any,
    host: str,
    port: int,
    preflight: Preflight | None = None,
    *,
    api_threads: int = API_THREADS,
) -> LocalServer:
    """A bound LocalServer for `app` (chalice Config `config`); serve with serve_forever()."""
    handler = functools.partial(LocalHandler, app_object=app, config=config, preflight=preflight)
    return LocalServer((host, port), handler, api_threads=api_threads)


# --- the checks made before a body is read ---------------------------------------------


def route_matcher(app: Any) -> Callable[[str], bool]:
    """Whether a path matches one of the app's routes (as chalice will route it)."""
    matcher = RouteMatcher(list(app.routes))

    def known(path: str) -> bool:
        try:
            matcher.match_route(path)
        except ValueError:
            return False
        return True

    return known


def app_preflight(app: Any, deps_get: Callable[[], Any]) -> Preflight:
    """The soundcheck checks before a body: route, length, upload signature, API key.

    `deps_get()` gives the running Deps (storage, job store, settings).
    """
    from chalicelib.auth import bearer_token
    from chalicelib.storage import LOCAL_UPLOAD_ROUTE, LocalStorage, key_from_path

    known = route_matcher(app)
    upload_prefix = LOCAL_UPLOAD_ROUTE + "/"

    def check(method: str, path: str, headers: Mapping[str, str], length: int) -> Refusal | None:
        parts = urlsplit(path)
        if not known(parts.path):
            return Refusal(403, "unknown_route", "no such route (Missing Authentication Token)")
        d = deps_get()
        if parts.path.startswith(upload_prefix) and method == "PUT":
            storage = d.storage
            if not isinstance(storage, LocalStorage):
                return Refusal(404, "not_found", "uploads go to S3 on this deployment")
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            key = key_from_path(parts.path[len(upload_prefix) :])
            error = storage.check_put(
                key,
                query.get("expires"),
                query.get("signature"),
                length,
                headers.get("Content-Type"),
            )
            return None if error is None else Refusal(error.status, error.code, error.message)
        if length > MAX_API_BODY_BYTES:
            return Refusal(413, "too_large", f"a request body is limited to {MAX_API_BODY_BYTES}")
        if length > 0 and parts.path.startswith("/api/"):
            try:
                owner = d.jobs.owner_for_key(bearer_token(headers))
            except Exception as exc:  # Postgres away: the app will say so itself
                logs.event("preflight_error", error=logs.describe(exc))
                return None
            if owner is None:
                return Refusal(
                    401,
                    "unauthorized",
                    "send Authorization: Bearer <api key>",
                    {"WWW-Authenticate": "Bearer"},
                )
        return None

    return check
