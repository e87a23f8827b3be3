"""Job callbacks: the SSRF guard, signing, the Postgres outbox and the deliverer.

Real Postgres, real Redis and real HTTP receivers on 127.0.0.1 (allowed here by
SOUNDCHECK_WEBHOOK_ALLOW_LOOPBACK, a setting refused on Lambda). Backoff is made
short through settings; every wait is on a condition with a deadline.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from chalice.local import LambdaContext

from chalicelib import consumer, webhooks
from chalicelib.deps import Deps
from chalicelib.errors import ApiError, SettingsError
from chalicelib.jobs import Job, JobSpec
from chalicelib.settings import load
from chalicelib.webhooks import deliver, send, signing, urls
from chalicelib.webhooks.store import WebhookStore, callback_view
from tests.pipeline_support import (
    app_http,
    build_deps,
    installed,
    json_body,
    new_owner,
    put_upload,
    settings_for,
    wav_bytes,
)
from tests.waiting import wait_until
from tests.webhook_receiver import documented_verify, receiver

REPO = Path(__file__).resolve().parent.parent
TEST_SETTINGS = {
    "SOUNDCHECK_WEBHOOK_ALLOW_HTTP": "1",
    "SOUNDCHECK_WEBHOOK_ALLOW_LOOPBACK": "1",
    "SOUNDCHECK_WEBHOOK_BACKOFF_SECONDS": "0.05",
    "SOUNDCHECK_WEBHOOK_MAX_ATTEMPTS": "3",
    "SOUNDCHECK_WEBHOOK_TIMEOUT_SECONDS": "1",
}
verify_signature = documented_verify()

# --- the guard, without the network ------------------------------------------------------

FORBIDDEN_FORMS = [
    "https://localhost/hook",
    "https://LOCALHOST./hook",
    "https://api.localhost/hook",
    "https://api.localhost./hook",  # the root's dot after a name under localhost
    "https://127.0.0.1/hook",
    "https://127.8.9.10:8443/hook",
    "https://10.1.2.3/hook",
    "https://172.16.0.1/hook",
    "https://192.168.1.1/hook",
    "https://100.64.0.1/hook",
    "https://169.254.169.254/latest/meta-data/",
    "https://0.0.0.0/hook",
    "https://224.0.0.1/hook",
    "https://240.0.0.1/hook",
    "https://255.255.255.255/hook",
    "https://[::1]/hook",
    "https://[::]/hook",
    "https://[::ffff:127.0.0.1]/hook",
    "https://[::ffff:a9fe:a9fe]/hook",  # 169.254.169.254, mapped
    "https://[::127.0.0.1]/hook",  # IPv4-compatible
    "https://[2002:7f00:1::]/hook",  # 6to4 of 127.0.0.1
    "https://[64:ff9b::a00:1]/hook",  # NAT64 of 10.0.0.1
    "https://[fe80::1]/hook",
    "https://[fc00::1]/hook",
    "https://[ff02::1]/hook",
    "https://[2001:db8::1]/hook",
]
INVALID_FORMS = [
    "https://0x7f.1/hook",
    "https://2130706433/hook",
    "https://0177.0.0.1/hook",
    "https://127.1/hook",
    "https://0x7f000001/hook",
    "https://017700000001/hook",
    "https://1.2.3.4.5/hook",
    "https://[fe80::1%25eth0]/hook",
    "ftp://hooks.example.com/x",
    "file:///etc/passwd",
    "gopher://hooks.example.com/",
    "https://user:pw@hooks.example.com/x",
    "https://hooks.example.com@10.0.0.1/x",
    "https://hooks.example.com/x#frag",
    "https://hooks.example.com:0/x",
    "https://hooks.example.com:99999/x",
    "https:///x",
    "https://hooks example.com/",
    "https://hôoks.example.com/",
    "https://-bad-.example.com/",
    "https://" + "a" * 2050 + ".com/",
    # text after an IPv6 literal's bracket, which urlsplit drops without a word
    "https://[2606:4700::1111]evil.com/hook",
    "https://[2606:4700::1111]evil.com:443/hook",
]


@pytest.mark.parametrize("url", FORBIDDEN_FORMS)
def test_private_loopback_link_local_and_reserved_literals_are_forbidden(url: str) -> None:
    with pytest.raises(ApiError) as refused:
        urls.parse(url, allow_http=False)
    assert refused.value.code == "callback_url_forbidden", refused.value.message


@pytest.mark.parametrize("url", INVALID_FORMS)
def test_malformed_urls_and_odd_ipv4_forms_are_invalid(url: str) -> None:
    with pytest.raises(ApiError) as refused:
        urls.parse(url, allow_http=False)
    assert refused.value.code in ("invalid_callback_url", "invalid_field"), refused.value.message
    assert refused.value.status == 400


def test_odd_ipv4_forms_are_what_resolvers_read_as_loopback() -> None:
    """Why they are refused: the C resolver reads them as 127.0.0.1."""
    for host in ("0x7f.1", "2130706433", "127.1"):
        found = {info[4][0] for info in socket.getaddrinfo(host, 443, type=socket.SOCK_STREAM)}
        assert found == {"127.0.0.1"}


def test_public_https_urls_pass_the_form_check() -> None:
    for url, host, port, target in [
        ("https://hooks.example.com/x?y=1", "hooks.example.com", 443, "/x?y=1"),
        ("https://Hooks.Example.com:8443", "hooks.example.com", 8443, "/"),
        ("https://93.184.216.34/h", "93.184.216.34", 443, "/h"),
        ("https://[2606:4700:4700::1111]/h", "2606:4700:4700::1111", 443, "/h"),
    ]:
        found = urls.parse(url, allow_http=False)
        assert (found.host, found.port, found.target) == (host, port, target)


def test_http_only_where_a_setting_allows_it() -> None:
    with pytest.raises(ApiError, match="https"):
        urls.parse("http://hooks.example.com/x", allow_http=False)
    assert urls.parse("http://hooks.example.com/x", allow_http=True).port == 80


def test_loopback_is_allowed_only_by_the_test_setting_and_nothing_else_is() -> None:
    assert urls.parse("http://127.0.0.1:9/x", allow_http=True, allow_loopback=True)
    assert urls.parse("http://[::1]:9/x", allow_http=True, allow_loopback=True)
    for url in ("http://10.0.0.1/", "http://169.254.169.254/", "http://[fe80::1]/"):
        with pytest.raises(ApiError):
            urls.parse(url, allow_http=True, allow_loopback=True)


def _resolver(*answers: str) -> Any:
    """A DNS stand-in answering every name with `answers` (getaddrinfo's shape)."""

    def lookup(host: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
        out = []
        for text in answers:
            family = socket.AF_INET6 if ":" in text else socket.AF_INET
            out.append((family, socket.SOCK_STREAM, 6, "", (text, port)))
        return out

    return lookup


def test_a_name_that_resolves_to_loopback_is_forbidden() -> None:
    """`localhost` through the real resolver: refused by where it resolves to as well."""
    callback = urls.parse("https://localhost/x", allow_http=False, allow_loopback=True)
    with pytest.raises(ApiError) as refused:
        urls.resolve(callback)
    assert refused.value.code == "callback_url_forbidden"
    assert "127.0.0.1" in refused.value.message


@pytest.mark.parametrize(
    "answers",
    [
        ("10.0.0.7",),
        ("169.254.169.254",),
        ("::1",),
        ("::ffff:127.0.0.1",),
        ("fd00::5",),
        ("93.184.216.34", "192.168.0.10"),  # one private record is enough
    ],
)
def test_a_name_that_resolves_to_a_private_address_is_forbidden(answers: tuple[str]) -> None:
    callback = urls.parse("https://hooks.example.com/x", allow_http=False)
    with pytest.raises(ApiError) as refused:
        urls.resolve(callback, resolver=_resolver(*answers))
    assert refused.value.code == "callback_url_forbidden"


def test_a_name_with_public_addresses_resolves() -> None:
    callback = urls.parse("https://hooks.example.com/x", allow_http=False)
    found = urls.resolve(callback, resolver=_resolver("93.184.216.34", "2606:2800:220:1::1"))
    assert found == [
        ipaddress.ip_address("93.184.216.34"),
        ipaddress.ip_address("2606:2800:220:1::1"),
    ]


def test_a_name_that_does_not_resolve_is_invalid() -> None:
    def nothing(host: str, port: int, **_: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    callback = urls.parse("https://nowhere.invalid/x", allow_http=False)
    with pytest.raises(ApiError) as refused:
        urls.resolve(callback, resolver=nothing)
    assert refused.value.code == "invalid_callback_url"


def test_the_loopback_setting_is_refused_on_lambda() -> None:
    assert load({"SOUNDCHECK_WEBHOOK_ALLOW_LOOPBACK": "1"}).webhook_allow_loopback
    with pytest.raises(SettingsError, match="SOUNDCHECK_WEBHOOK_ALLOW_LOOPBACK"):
        load({"SOUNDCHECK_WEBHOOK_ALLOW_LOOPBACK": "1", "AWS_LAMBDA_FUNCTION_NAME": "x"})
    production = load({})
    assert not production.webhook_allow_loopback and not production.webhook_allow_http


def test_no_deployed_stage_allows_loopback_or_http() -> None:
    config = (REPO / ".chalice" / "config.json").read_text()
    assert "SOUNDCHECK_WEBHOOK_ALLOW_LOOPBACK" not in config
    assert "SOUNDCHECK_WEBHOOK_ALLOW_HTTP" not in config


def test_backoff_doubles_with_jitter_and_spans_about_an_hour() -> None:
    lows = [deliver.backoff_seconds(n, 120, rng=lambda: 0.0) for n in range(1, 6)]
    highs = [deliver.backoff_seconds(n, 120, rng=lambda: 1.0) for n in range(1, 6)]
    assert lows == [90, 180, 360, 720, 1440]
    assert highs == [150, 300, 600, 1200, 2400]
    assert sum(lows) > 40 * 60 and sum(highs) < 80 * 60  # 6 attempts: 5 waits


# --- the outbox and the deliverer, on Postgres ------------------------------------------


@pytest.fixture
def env(make_env: Callable[..., dict[str, str]], database_url: str) -> dict[str, str]:
    return make_env(database_url, **TEST_SETTINGS)


@pytest.fixture
def deps(env: dict[str, str]) -> Iterator[Deps]:
    d = build_deps(settings_for(env))
    try:
        yield d
    finally:
        d.close()


def _job(deps: Deps, owner: str, callback_url: str | None) -> str:
    spec = JobSpec(owner, "genre", None, f"uploads/{owner}/x/mix.wav", "mix.wav", None, None)
    job, _ = deps.jobs.create(JobSpec(**{**spec.__dict__, "callback_url": callback_url}), None)
    return job.id


def _queued(deps: Deps, owner: str, callback_url: str) -> Job:
    """A job on real audio with a callback, stored and on the queue for a consumer."""
    key = put_upload(deps, owner, wav_bytes(0.5))
    spec = JobSpec(owner, "genre", None, key, None, None, None, callback_url=callback_url)
    job, _ = deps.jobs.create(spec)
    deps.queue.enqueue(job.id, owner=owner)
    return job


def _complete(deps: Deps, job_id: str, token: int = 1) -> None:
    assert deps.jobs.start(job_id, token)
    assert deps.jobs.complete(job_id, token, {"comparison": {"score": 81.5}})


def _state(deps: Deps, job_id: str) -> dict[str, Any]:
    job = deps.jobs.get(job_id)
    assert job is not None and job.callback_url
    return callback_view(job.callback_url, WebhookStore(deps.jobs).latest(job_id))


@contextmanager
def deliverer(deps: Deps, period_s: float = 0.02) -> Iterator[None]:
    """A worker's deliverer thread, as `soundcheck worker` runs it."""
    stop = threading.Event()
    thread = threading.Thread(target=deliver.run_forever, args=(deps, stop, period_s), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        webhooks.nudge()  # wakes it from its wait
        thread.join(10)
        assert not thread.is_alive()


def test_an_event_exists_only_once_the_job_has_ended(deps: Deps) -> None:
    owner = new_owner()
    store = WebhookStore(deps.jobs)
    job_id = _job(deps, owner, "http://127.0.0.1:9/hook")
    assert deps.jobs.start(job_id, 1)
    assert deps.jobs.fail(job_id, 1, "io_error", "retry me", final=False)  # will be retried
    assert store.for_job(job_id) == []
    assert _state(deps, job_id)["state"] == "waiting"
    assert deps.jobs.start(job_id, 2)
    assert deps.jobs.set_progress(job_id, 2, 50)
    assert store.for_job(job_id) == []
    assert deps.jobs.complete(job_id, 2, {"comparison": {"score": 70}})
    [event] = store.for_job(job_id)
    assert (event.event_type, event.state, event.attempts) == ("job.completed", "pending", 0)
    assert event.data["jobId"] == job_id and event.data["score"] == 70

    failed = _job(deps, owner, "http://127.0.0.1:9/hook")
    assert deps.jobs.start(failed, 1)
    assert deps.jobs.fail(failed, 1, "corrupt_file", "bad audio", final=True)
    [event] = store.for_job(failed)
    assert event.event_type == "job.failed"
    assert event.data["error"] == {"code": "corrupt_file", "message": "bad audio"}
    deps.jobs.retry(failed, owner)  # failed -> queued -> completed: a second, distinct event
    _complete(deps, failed, token=2)
    first, second = store.for_job(failed)
    assert (first.event_type, second.event_type) == ("job.failed", "job.completed")
    assert first.event_id != second.event_id

    cancelled = _job(deps, owner, "http://127.0.0.1:9/hook")
    assert deps.jobs.cancel(cancelled, owner)
    without = _job(deps, owner, None)
    _complete(deps, without)
    assert store.for_job(cancelled) == [] and store.for_job(without) == []


def test_the_receiver_verifies_signature_and_timestamp(deps: Deps) -> None:
    owner = new_owner()
    with receiver(200) as hook:
        job_id = _job(deps, owner, hook.url)
        _complete(deps, job_id)
        report = deliver.deliver_due(deps)
        assert report.delivered == 1
        [got] = hook.requests
    secret = WebhookStore(deps.jobs).secret(owner).secret
    header = got.headers["soundcheck-signature"]
    assert verify_signature(secret, got.body, header)
    stamp = int(header.split(",")[0].removeprefix("t="))
    assert abs(time.time() - stamp) < 60
    assert not verify_signature(secret, got.body + b" ", header)  # tampered body
    assert not verify_signature("whsec_" + "x" * 43, got.body, header)  # another secret
    old = int(time.time()) - 600  # a replay signed ten minutes ago
    replay = f"t={old},v1={signing.signature(secret, old, got.body)}"
    assert not verify_signature(secret, got.body, replay)

    event = got.event()
    assert event["type"] == "job.completed" and event["id"].startswith("evt_")
    assert event["data"]["jobId"] == job_id and event["data"]["status"] == "completed"
    assert event["data"]["score"] == 81.5 and event["data"]["error"] is None
    assert got.headers["soundcheck-event-id"] == event["id"]
    assert got.headers["content-type"] == "application/json"
    assert got.path == "/hook"
    state = _state(deps, job_id)
    assert state["state"] == "delivered" and state["attempts"] == 1
    assert state["lastStatus"] == 200 and state["deliveredAt"] and state["eventId"] == event["id"]


def test_a_receiver_that_fails_twice_gets_the_event_on_the_third_attempt(deps: Deps) -> None:
    owner = new_owner()
    with receiver(500, 503, 200) as hook, deliverer(deps):
        job_id = _job(deps, owner, hook.url)
        _complete(deps, job_id)
        wait_until(lambda: _state(deps, job_id)["state"] == "delivered", what="delivered")
        got = list(hook.requests)
    assert len(got) == 3
    assert [r.headers["soundcheck-delivery-attempt"] for r in got] == ["1", "2", "3"]
    assert len({r.body for r in got}) == 1  # the same event, byte for byte
    secret = WebhookStore(deps.jobs).secret(owner).secret
    assert all(verify_signature(secret, r.body, r.headers["soundcheck-signature"]) for r in got)
    state = _state(deps, job_id)
    assert state["attempts"] == 3 and state["lastStatus"] == 200 and state["lastError"] is None


def test_attempts_are_bounded(deps: Deps) -> None:
    with receiver(500) as hook, deliverer(deps):
        job_id = _job(deps, new_owner(), hook.url)
        _complete(deps, job_id)
        wait_until(lambda: _state(deps, job_id)["state"] == "failed", what="given up")
        state = _state(deps, job_id)
        assert state["attempts"] == 3 == len(hook.requests)
        assert state["lastStatus"] == 500 and state["lastError"] == "HTTP 500"
        assert state["nextAttemptAt"] is None


def test_redirects_are_not_followed(deps: Deps) -> None:
    with receiver(200) as elsewhere, receiver(302, location=elsewhere.url) as hook:
        with deliverer(deps):
            job_id = _job(deps, new_owner(), hook.url)
            _complete(deps, job_id)
            wait_until(lambda: _state(deps, job_id)["state"] == "failed", what="given up")
        assert elsewhere.requests == []
    state = _state(deps, job_id)
    assert state["lastStatus"] == 302 and "redirect not followed" in state["lastError"]


def test_loopback_accepted_under_test_settings_is_refused_at_delivery_in_production(
    env: dict[str, str],
) -> None:
    """Settings change between submit and delivery: the address is checked again."""
    production = {k: v for k, v in env.items() if k != "SOUNDCHECK_WEBHOOK_ALLOW_LOOPBACK"}
    testing = build_deps(settings_for(env))
    strict = build_deps(settings_for(production))
    try:
        with receiver(200) as hook:
            job_id = _job(testing, new_owner(), hook.url)
            _complete(testing, job_id)
            assert deliver.deliver_due(strict).failed == 1
            assert hook.requests == []
        state = _state(strict, job_id)
        assert state["state"] == "failed" and state["attempts"] == 1  # at once: no retry
        assert state["lastError"].startswith("refused:") and "loopback" in state["lastError"]
    finally:
        testing.close()
        strict.close()


def test_dns_rebinding_to_a_private_address_is_refused_at_delivery(env: dict[str, str]) -> None:
    """The name was public at submission; at delivery it answers 127.0.0.1."""
    production = {k: v for k, v in env.items() if k != "SOUNDCHECK_WEBHOOK_ALLOW_LOOPBACK"}
    d = build_deps(settings_for(production))
    try:
        with receiver(200) as hook:
            port = hook.url.split(":")[2].split("/")[0]
            url = f"http://hooks.example.com:{port}/hook"
            urls.check(
                url, allow_http=True, allow_loopback=False, resolver=_resolver("93.184.216.34")
            )
            job_id = _job(d, new_owner(), url)
            _complete(d, job_id)
            rebound = _resolver("127.0.0.1")
            assert deliver.deliver_due(d, resolver=rebound).failed == 1
            assert hook.requests == []
        state = _state(d, job_id)
        assert state["state"] == "failed" and "resolves to 127.0.0.1" in state["lastError"]
    finally:
        d.close()


def test_an_event_survives_a_dead_deliverer_and_an_empty_redis(deps: Deps) -> None:
    store = WebhookStore(deps.jobs)
    with receiver(200) as hook:
        job_id = _job(deps, new_owner(), hook.url)
        _complete(deps, job_id)
        [taken] = store.claim_due(8, lease_seconds=1.5)  # then its deliverer died
        deps.redis.flushdb()  # and Redis forgot everything
        assert deliver.deliver_due(deps).delivered == 0  # still leased
        wait_until(lambda: deliver.deliver_due(deps).delivered, what="the lease to run out")
        assert len(hook.requests) == 1
    state = _state(deps, job_id)
    assert state["state"] == "delivered" and state["attempts"] == 2
    assert not store.record(taken, state="failed", status=None, error="late")  # fenced


def test_a_receiver_that_never_answers_times_out(deps: Deps) -> None:
    hang = threading.Event()
    with receiver(200, hang=hang) as hook:
        job_id = _job(deps, new_owner(), hook.url)
        _complete(deps, job_id)
        started = time.monotonic()
        report = deliver.deliver_due(deps)
        took = time.monotonic() - started
    assert report.retried == 1
    assert took < 2 * 1.0 + 1.5  # SOUNDCHECK_WEBHOOK_TIMEOUT_SECONDS=1: at most twice that
    assert _state(deps, job_id)["lastError"] == "timed out"


def test_only_the_first_addresses_of_a_name_are_tried() -> None:
    from chalicelib.webhooks import send
    from tests.pipeline_support import closed_port

    port = closed_port()
    callback = urls.parse(
        f"http://hooks.example.com:{port}/x", allow_http=True, allow_loopback=True
    )
    many = _resolver(*(f"127.0.0.{n}" for n in range(2, 8)))
    sent = send.post(callback, b"{}", {}, timeout_s=1, allow_loopback=True, resolver=many)
    assert sent.status is None and not sent.final
    last = 1 + send.MAX_ADDRESSES_TRIED
    assert f"connect to 127.0.0.{last}:" in sent.error, sent.error


def test_a_large_response_is_not_read(deps: Deps) -> None:
    with receiver(200, big_body=64 * 1024 * 1024) as hook:
        job_id = _job(deps, new_owner(), hook.url)
        _complete(deps, job_id)
        started = time.monotonic()
        assert deliver.deliver_due(deps).delivered == 1
        assert time.monotonic() - started < 5


def test_a_rotated_secret_signs_alongside_the_new_one(deps: Deps) -> None:
    owner = new_owner()
    store = WebhookStore(deps.jobs)
    old = store.secret(owner)
    new = store.rotate(owner)
    assert new.secret != old.secret and new.live() == [new.secret, old.secret]
    with receiver(200) as hook:
        _complete(deps, _job(deps, owner, hook.url))
        deliver.deliver_due(deps)
        [got] = hook.requests
    header = got.headers["soundcheck-signature"]
    assert header.count("v1=") == 2
    assert verify_signature(old.secret, got.body, header)
    assert verify_signature(new.secret, got.body, header)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A test CA and a certificate it signed for 127.0.0.1 and hooks.example (openssl)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (Debian package openssl)")
    where = tmp_path_factory.mktemp("tls")
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    (where / "leaf.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:hooks.example\nbasicConstraints=CA:FALSE\n"
    )
    ca = ["-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=soundcheck CA"]
    leaf = ["-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=127.0.0.1"]
    sign = ["-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial"]
    sign += ["-out", "leaf.pem", "-days", "2", "-extfile", "leaf.ext"]
    for argv in (["req", "-x509", *ec, *ca], ["req", *ec, *leaf], ["x509", "-req", *sign]):
        subprocess.run(["openssl", *argv], cwd=where, check=True, capture_output=True)
    return where


def test_https_verifies_the_receivers_certificate(
    deps: Deps, certificates: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(certificates / "leaf.pem", certificates / "leaf.key")
    owner = new_owner()
    with receiver(200, tls=tls) as hook:
        untrusted = _job(deps, owner, hook.url)
        _complete(deps, untrusted)
        assert deliver.deliver_due(deps).retried == 1  # signed by a CA nobody trusts
        assert "CERTIFICATE_VERIFY_FAILED" in _state(deps, untrusted)["lastError"]
        assert hook.requests == []
        monkeypatch.setenv("SSL_CERT_FILE", str(certificates / "ca.pem"))
        trusted = _job(deps, owner, hook.url)
        _complete(deps, trusted, token=1)
        wait_until(lambda: deliver.deliver_due(deps).delivered, what="the https delivery")
        assert _state(deps, trusted)["state"] == "delivered"
        [got] = [r for r in hook.requests if r.event()["data"]["jobId"] == trusted]
    secret = WebhookStore(deps.jobs).secret(owner).secret
    assert verify_signature(secret, got.body, got.headers["soundcheck-signature"])


def test_an_attempt_whose_dns_lookup_hangs_ends_within_twice_the_timeout() -> None:
    """getaddrinfo has no timeout of its own: a slow authoritative server held an attempt
    past the deliverer's lease (2 x timeout + 30 s) and the event was sent twice."""
    stuck = threading.Event()

    def slow_dns(name: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
        stuck.wait(30)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    callback = urls.parse("https://hooks.example/hook", allow_http=False)
    started = time.monotonic()
    try:
        sent = send.post(callback, b"{}", {}, timeout_s=0.25, resolver=slow_dns)
    finally:
        stuck.set()
    assert (sent.status, sent.error, sent.final) == (
        None,
        "timed out resolving hooks.example",
        False,
    )
    assert time.monotonic() - started < 0.25 * 2 + 1.0


@pytest.mark.parametrize("host", ["hooks.example", "hooks.example.", "HOOKS.Example."])
def test_a_name_is_sent_to_as_its_certificate_names_it(
    host: str, certificates: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`example.com.` (the root's dot) and `EXAMPLE.com` are the same host as
    `example.com`: TLS checks the certificate for the name without the dot (with it,
    every attempt failed 'Hostname mismatch'). This machine has no DNS: the name
    resolves to the receiver through a resolver of the test's."""
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(certificates / "leaf.pem", certificates / "leaf.key")
    monkeypatch.setenv("SSL_CERT_FILE", str(certificates / "ca.pem"))

    def to_receiver(name: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
        assert name == host.lower()
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    with receiver(200, tls=tls) as hook:
        port = hook.url.split(":")[2].split("/")[0]
        callback = urls.parse(f"https://{host}:{port}/hook", allow_http=False, allow_loopback=True)
        sent = send.post(
            callback, b"{}", {}, timeout_s=10, allow_loopback=True, resolver=to_receiver
        )
        assert (sent.status, sent.error) == (200, None)
        assert hook.requests[0].headers["host"] == f"hooks.example:{port}"


def test_the_lambda_functions_deliver_after_their_drain(deps: Deps) -> None:
    """On AWS the consumer sends due events once its drain is done, and the scheduled
    sweeper every minute picks up whatever is due."""
    owner = new_owner()
    with receiver(500, 200) as hook:
        job = _queued(deps, owner, hook.url)
        woken = consumer.run_consumer(deps, LambdaContext("consumer", 2048, max_runtime_ms=300_000))
        assert woken["drain"]["completed"] == 1
        assert woken["webhooks"]["retried"] == 1  # the receiver's 500, then backoff
        scheduled = LambdaContext("sweeper", 256, max_runtime_ms=60_000)
        wait_until(
            lambda: (consumer.run_sweeper(deps, scheduled)["webhooks"] or {}).get("delivered"),
            what="the scheduled sweeper to deliver",
        )
        assert len(hook.requests) == 2
    assert _state(deps, job.id)["state"] == "delivered"


def test_a_job_this_worker_ends_is_sent_without_waiting_for_the_poll(deps: Deps) -> None:
    owner = new_owner()
    with receiver(200) as hook, deliverer(deps, period_s=600):
        job = _queued(deps, owner, hook.url)
        assert consumer.drain(deps, "c1", consumer.forever).completed == 1
        wait_until(lambda: hook.requests, timeout=30, what="the event, long before the poll")
    assert hook.requests[0].event()["data"]["jobId"] == job.id


# --- through the HTTP API ---------------------------------------------------------------

SUBMIT_REFUSALS = [
    ("http://hooks.example.com/x", "invalid_callback_url"),  # http in production
    ("https://localhost/x", "callback_url_forbidden"),
    ("https://10.0.0.1/x", "callback_url_forbidden"),
    ("https://169.254.169.254/latest/meta-data/", "callback_url_forbidden"),
    ("https://[::1]/x", "callback_url_forbidden"),
    ("https://[::ffff:127.0.0.1]/x", "callback_url_forbidden"),
    ("https://0x7f.1/x", "invalid_callback_url"),
    ("https://2130706433/x", "invalid_callback_url"),
    ("https://hooks.invalid/x", "invalid_callback_url"),  # does not resolve
]


def _submit(http: Any, key: str, file_key: str, callback: Any) -> Any:
    return http.post(
        "/api/audio/analyze",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        body=json.dumps({"fileKey": file_key, "callbackUrl": callback}),
    )


def test_submission_refuses_forbidden_and_malformed_callbacks(
    env: dict[str, str], tmp_path: Path
) -> None:
    production = {k: v for k, v in env.items() if not k.startswith("SOUNDCHECK_WEBHOOK_ALLOW")}
    with installed(production) as d, app_http(tmp_path) as http:
        owner = new_owner()
        key = d.jobs.create_api_key(owner)
        file_key = put_upload(d, owner, wav_bytes(0.2))
        for callback, code in [
            *SUBMIT_REFUSALS,
            (
                f"https://{socket.gethostname()}/x",
                "callback_url_forbidden",
            ),  # /etc/hosts: 127.0.0.1
            (12, "invalid_field"),
            ("https://x.example.com/" + "a" * 2048, "invalid_field"),
        ]:
            answer = _submit(http, key, file_key, callback)
            assert answer.status_code == 400, (callback, answer.body)
            assert json_body(answer)["error"]["code"] == code, (callback, answer.body)
        assert d.jobs.list_for_owner(owner) == []


def test_submission_with_a_callback_shows_it_on_the_job(
    env: dict[str, str], tmp_path: Path
) -> None:
    with installed(env) as d, app_http(tmp_path) as http, receiver(200) as hook:
        owner = new_owner()
        key = d.jobs.create_api_key(owner)
        auth = {"Authorization": f"Bearer {key}"}
        file_key = put_upload(d, owner, wav_bytes(0.2))
        answer = _submit(http, key, file_key, hook.url)
        assert answer.status_code == 202, answer.body
        job_id = json_body(answer)["jobId"]
        job = json_body(http.get(f"/api/jobs/{job_id}", headers=auth))
        assert job["callback"]["url"] == hook.url and job["callback"]["state"] == "waiting"
        secret = json_body(http.get("/api/webhooks/secret", headers=auth))
        assert secret["secret"].startswith("whsec_") and secret["previousExpiresAt"] is None
        rotated = json_body(http.post("/api/webhooks/secret/rotate", headers=auth))
        assert rotated["secret"] != secret["secret"] and rotated["previousExpiresAt"]
        assert http.get("/api/webhooks/secret").status_code == 401
        _complete(d, job_id)
        deliver.deliver_due(d)
        job = json_body(http.get(f"/api/jobs/{job_id}", headers=auth))
        assert job["callback"]["state"] == "delivered"
        assert verify_signature(
            rotated["secret"],
            hook.requests[0].body,
            hook.requests[0].headers["soundcheck-signature"],
        )
        other = d.jobs.create_api_key(new_owner())  # another owner's secret is another one
        theirs = json_body(
            http.get("/api/webhooks/secret", headers={"Authorization": f"Bearer {other}"})
        )
        assert theirs["secret"] not in (secret["secret"], rotated["secret"])


def test_the_same_idempotency_key_with_another_callback_is_a_conflict(
    env: dict[str, str], tmp_path: Path
) -> None:
    with installed(env) as d, app_http(tmp_path) as http:
        owner = new_owner()
        key = d.jobs.create_api_key(owner)
        file_key = put_upload(d, owner, wav_bytes(0.2))
        headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": uuid.uuid4().hex}
        first = http.post(
            "/api/audio/analyze",
            headers=headers,
            body=json.dumps({"fileKey": file_key, "callbackUrl": "http://127.0.0.1:9/a"}),
        )
        again = http.post(
            "/api/audio/analyze",
            headers=headers,
            body=json.dumps({"fileKey": file_key, "callbackUrl": "http://127.0.0.1:9/b"}),
        )
        assert first.status_code == 202 and again.status_code == 409
