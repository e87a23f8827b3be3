"""The local stack's HTTP server over real sockets: backlog, limits before bodies, slow
clients, no echoed credentials. The real app, on real Redis and Postgres (issue 13)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
from chalice.config import Config

from app import app
from chalicelib import deps
from chalicelib.deps import Deps
from chalicelib.local.server import LocalServer, app_preflight, make_server
from chalicelib.local.stack import _serve_from_threads
from tests.pipeline_support import build_deps, new_owner, settings_for


@dataclass
class Served:
    server: LocalServer
    host: str
    port: int
    deps: Deps
    key: str

    def connect(self, timeout: float = 10.0) -> socket.socket:
        return socket.create_connection((self.host, self.port), timeout=timeout)

    def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> tuple[int, dict[str, str], bytes]:
        with self.connect() as sock:
            return exchange(sock, method, path, headers, body)


def exchange(
    sock: socket.socket,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    *,
    send_body: bool = True,
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 request on an open socket; (status, headers, body) of the answer."""
    all_headers = {"Host": "local", "Content-Length": str(len(body)), **(headers or {})}
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in all_headers.items()
    )
    sock.sendall((head + "\r\n").encode("utf-8") + (body if send_body else b""))
    return read_response(sock)


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a response: {data!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, headers, rest[:length]


def error_code(body: bytes) -> str:
    return str(json.loads(body)["error"]["code"])


@pytest.fixture
def served(make_env: Callable[..., dict[str, str]], service_database_url: str) -> Iterator[Served]:
    env = make_env(service_database_url)
    d = build_deps(settings_for(env))
    previous = deps.override(d)
    _serve_from_threads(app)
    config = Config.create(chalice_stage="dev", app_name=app.app_name, lambda_timeout=30)
    server = make_server(app, config, "127.0.0.1", 0, preflight=app_preflight(app, deps.get))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    try:
        yield Served(server, str(host), int(port), d, d.jobs.create_api_key(new_owner()))
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=30)
        deps.override(previous)
        d.close()


def test_64_concurrent_clients_are_all_answered(served: Served) -> None:
    """http.server's backlog of 5 reset 64 concurrent clients; all are answered now."""
    clients = 64
    barrier = threading.Barrier(clients)
    statuses: list[int] = []
    errors: list[str] = []

    def one() -> None:
        try:
            barrier.wait(timeout=30)
            status, _, _ = served.request("GET", "/health")
            statuses.append(status)
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=one) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == [] and statuses == [200] * clients
    assert served.server.request_queue_size >= clients


def test_an_unknown_route_never_echoes_credentials(served: Served) -> None:
    for auth in ("Bearer sck_secret_token_123", "AWS4-HMAC-SHA256 secret", "Bearer é-secret"):
        status, _, body = served.request("GET", "/api/nope", {"Authorization": auth})
        assert status == 403 and error_code(body) == "unknown_route"
        assert b"secret" not in body and b"Authorization" not in body


def test_a_huge_declared_body_is_refused_before_it_is_read(served: Served) -> None:
    """Content-Length: 1e12 was a MemoryError; 200 MiB were read before a 403."""
    auth = {"Authorization": f"Bearer {served.key}", "Content-Type": "application/json"}
    for length, status, code in (
        ("1e12", 400, "invalid_content_length"),
        ("-5", 400, "invalid_content_length"),
        ("١٢", 400, "invalid_content_length"),
        (str(10**12), 413, "too_large"),
        (str(200 * 1024 * 1024), 413, "too_large"),
    ):
        with served.connect() as sock:
            got = exchange(
                sock, "POST", "/api/audio/analyze", {**auth, "Content-Length": length}, b""
            )
        assert got[0] == status and error_code(got[2]) == code, (length, got)


def test_a_body_without_a_known_key_is_refused_before_it_is_read(served: Served) -> None:
    for headers in ({}, {"Authorization": "Bearer sck_wrong"}):
        with served.connect() as sock:
            status, answer, body = exchange(
                sock,
                "POST",
                "/api/audio/analyze",
                {**headers, "Content-Length": str(5 * 1024 * 1024)},
                send_body=False,  # never sent: the answer comes first
            )
        assert status == 401 and error_code(body) == "unauthorized"
        assert answer.get("connection") == "close"


def upload_url(served: Served, size: int, content_type: str = "audio/wav") -> dict[str, Any]:
    body = json.dumps({"fileName": "mix.wav", "contentType": content_type, "sizeBytes": size})
    status, _, answer = served.request(
        "POST",
        "/api/audio/upload-url",
        {"Authorization": f"Bearer {served.key}", "Content-Type": "application/json"},
        body.encode(),
    )
    assert status == 200, answer
    return dict(json.loads(answer))


def test_the_local_upload_url_binds_size_and_type_and_is_used_once(served: Served) -> None:
    upload = upload_url(served, 100)
    url = urlsplit(upload["uploadUrl"])
    target = f"{url.path}?{url.query}"
    # 5 MiB on a URL issued for 100 bytes: refused before the body is read.
    with served.connect() as sock:
        status, _, body = exchange(
            sock,
            "PUT",
            target,
            {"Content-Type": "audio/wav", "Content-Length": str(5 * 1024 * 1024)},
            send_body=False,
        )
    assert status == 403 and error_code(body) == "invalid_signature"
    wrong_type = served.request("PUT", target, {"Content-Type": "text/html"}, b"x" * 100)
    assert wrong_type[0] == 403 and error_code(wrong_type[2]) == "invalid_signature"
    ok = served.request("PUT", target, {"Content-Type": "audio/wav"}, b"R" * 100)
    assert ok[0] == 200, ok
    replay = served.request("PUT", target, {"Content-Type": "audio/wav"}, b"E" * 100)
    assert replay[0] == 403 and error_code(replay[2]) == "upload_used"
    assert served.deps.storage.size(upload["fileKey"]) == 100
    non_ascii = target.replace("signature=", "signature=%C3%A9")
    bad = served.request("PUT", non_ascii, {"Content-Type": "audio/wav"}, b"R" * 100)
    assert bad[0] == 403 and error_code(bad[2]) == "invalid_signature"


def test_slow_clients_neither_stall_health_nor_stay_forever(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    """16 clients sending a request line and then nothing held every thread of the
    old pool: /health waited 30 s. They now hold only their own connection's thread,
    and are cut off when their time to send the request runs out."""
    monkeypatch.setattr("chalicelib.local.server.READ_TIMEOUT_S", 1.0)
    slow = [served.connect() for _ in range(16)]
    try:
        for sock in slow:
            sock.sendall(b"POST /api/audio/analyze HTTP/1.1\r\nHost: x\r\n")  # and no more
        started = time.monotonic()
        status, _, _ = served.request("GET", "/health")
        assert status == 200 and time.monotonic() - started < 5
        for sock in slow:
            sock.settimeout(15)
            assert sock.recv(1024) == b""  # closed by the server once its time ran out
    finally:
        for sock in slow:
            sock.close()


def test_a_client_dribbling_its_request_is_cut_off_at_the_deadline(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A byte every 0.2 s never trips a per-read timeout; the request deadline does."""
    monkeypatch.setattr("chalicelib.local.server.READ_TIMEOUT_S", 1.0)
    with served.connect() as sock:
        sock.sendall(b"POST /api/audio/analyze HTTP/1.1\r\nX-Slow: ")
        started = time.monotonic()
        cut = False
        while time.monotonic() - started < 8:
            try:
                sock.sendall(b"a")
            except OSError:  # reset by the server
                cut = True
                break
            time.sleep(0.2)
        assert cut and time.monotonic() - started < 5
