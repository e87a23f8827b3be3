"""The admin console and the API page in a real browser (Chromium + Playwright) against
a real `soundcheck dev` stack: its own admin key (owner `dev`) and user keys made in
its Postgres. Nothing of the backend is faked.

An admin redrives a failed job from the console and sees it complete (the job failed
for real on a file that is not audio; its upload is then replaced by real audio in
the stack's object store, which is what an operator would fix before a redrive);
retries all failed jobs of a filter; redrives a dead job (its upload unreadable, an
I/O error retried until its attempts ran out) once the object is repaired; pauses
and resumes the queue; cancels another owner's waiting and processing jobs and
deletes a finished one. A user key cannot open the console: no data in the page,
403 from the API. The API page lists every route of /openapi.json. Screenshots at
1280 and 360 px go to test-artifacts/web/.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from chalicelib.client import Client, ClientError
from chalicelib.jobs import JobStore
from chalicelib.storage import LocalStorage, local_secret
from tests import web_support
from tests.pipeline_support import slow_flac, wav_bytes
from tests.waiting import wait_until
from tests.web_support import TIMEOUT_MS, Site, Watch, no_horizontal_scroll, shoot

pytestmark = web_support.NEEDS_CHROMIUM
site = web_support.site
browser = web_support.browser

NOT_AUDIO = b"this is not audio at all, only text pretending to be a WAV file"


def user_key(site: Site, owner: str) -> str:
    store = JobStore(site.database_url, site.schema)
    try:
        return store.create_api_key(owner)
    finally:
        store.close()


def new_user(site: Site, prefix: str) -> tuple[str, Client]:
    """A new owner with a user key, and an HTTP client of the stack with that key."""
    owner = f"{prefix}-{uuid.uuid4().hex[:6]}"
    return owner, site.client(user_key(site, owner))


def submit(site: Site, client: Client, data: bytes, name: str) -> str:
    path = site.files / f"{uuid.uuid4().hex[:8]}-{name}"
    path.write_bytes(data)
    return str(client.submit(client.upload(path), file_name=name)["jobId"])


def wait_status(client: Client, job_id: str, status: str, timeout: float = 120) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        job = client.job(job_id)
        return job if job["status"] == status else None

    return wait_until(reached, timeout=timeout, interval=0.2, what=f"job {job_id} {status}")


def upload_key(site: Site, job_id: str) -> str:
    store = JobStore(site.database_url, site.schema)
    try:
        job = store.get(job_id)
    finally:
        store.close()
    assert job is not None
    return job.file_key


def local_store(site: Site) -> LocalStorage:
    """The stack's own object store (`objects/` in its data dir)."""
    root = site.data_dir / "objects"
    return LocalStorage(root, site.url, local_secret(root))


def replace_upload(site: Site, job_id: str, data: bytes) -> None:
    """Put real audio where a job's upload is, in the stack's own object store."""
    local_store(site).put_bytes(upload_key(site, job_id), data)


def admin_api(site: Site, path: str, key: str | None = None) -> tuple[int, dict[str, Any]]:
    """GET an admin route as `key` (the stack's admin key by default): (status, body)."""
    try:
        return site.client(key).request("GET", path)
    except ClientError as error:
        return error.status, {"error": {"code": error.code}}


def list_state(site: Site, job_id: str) -> str | None:
    """Which console list (failed or dead) holds a finished failed job, per the API."""
    for state in ("failed", "dead"):
        status, body = admin_api(site, f"/api/admin/jobs?state={state}&limit=200")
        assert status == 200, body
        if any(j["jobId"] == job_id for j in body["jobs"]):
            return state
    return None


@contextmanager
def signed_in(browser: Any, site: Site, key: str, width: int = 1280) -> Iterator[tuple[Any, Watch]]:
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    watch = Watch(page)
    page.goto(f"{site.url}/#key={key}")
    page.get_by_role("heading", name="Analyse a mix").wait_for()
    try:
        yield page, watch
    finally:
        context.close()


def open_console(page: Any, site: Site) -> None:
    page.get_by_role("link", name="Console").click()
    page.get_by_role("heading", name="Admin console").wait_for()
    page.locator("#queue-toggle:not([disabled])").wait_for()


def show_list(page: Any, state: str, owner: str = "", code: str = "") -> Any:
    """Filter the console's job list; returns the list's box."""
    page.get_by_label("Owner", exact=True).fill(owner)
    page.get_by_label("Error code", exact=True).fill(code)
    page.get_by_label("State", exact=True).select_option(state)
    page.get_by_role("button", name="Apply").click()
    page.locator(
        f"#jobs .pager[data-loaded]:not([aria-busy]) :is(table.jobs-{state}, .empty)"
    ).wait_for()
    return page.locator("#jobs")


def row(page: Any, job_id: str) -> Any:
    return page.locator(f"#jobs tr[data-job-id='{job_id}']")


def confirm(page: Any, button: str) -> None:
    dialog = page.get_by_role("dialog")
    dialog.wait_for()
    dialog.get_by_role("button", name=button).click()
    dialog.wait_for(state="detached")


def test_a_user_key_cannot_open_the_console(site: Site, browser: Any) -> None:
    owner = f"uma-{uuid.uuid4().hex[:6]}"
    key = user_key(site, owner)
    status, body = admin_api(site, "/api/admin/overview", key)
    assert (status, body["error"]["code"]) == (403, "forbidden")
    status, body = admin_api(site, "/api/admin/jobs?state=failed", key)
    assert (status, body["error"]["code"]) == (403, "forbidden")
    with signed_in(browser, site, key) as (page, watch):
        page.locator("html[data-role=user]").wait_for(state="attached")  # GET /api/me answered
        assert page.get_by_role("link", name="Console").count() == 0
        page.goto(f"{site.url}/#/admin")
        page.get_by_role("heading", name="Admins only").wait_for()
        assert owner in page.locator("#admins-only").inner_text()
        assert (
            page.locator(".counts, table.jobs, table.audit, table.owners, #queue-toggle").count()
            == 0
        )
        assert not [u for u in watch.urls if "/api/admin/" in u], watch.urls
        shoot(page, "console-user")
        assert watch.errors == [], watch.errors


def test_an_admin_retries_failed_jobs_from_the_console_and_they_complete(
    site: Site, browser: Any
) -> None:
    owner, client = new_user(site, "ola")
    broken = submit(site, client, NOT_AUDIO, "broken.wav")
    failed = wait_status(client, broken, "failed")
    code = failed["error"]["code"]
    state = wait_until(lambda: list_state(site, broken), timeout=30, what="the failed job listed")
    with signed_in(browser, site, site.key) as (page, watch):
        open_console(page, site)
        jobs = show_list(page, state, owner=owner)
        line = row(page, broken)
        assert code in line.inner_text() and owner in line.inner_text()
        line.locator("summary").click()  # the attempt history
        assert code in line.locator(".attempts").inner_text()
        shoot(page, "console-failed")
        page.set_viewport_size({"width": 360, "height": 800})
        assert no_horizontal_scroll(page), "the console scrolls sideways at 360 px"
        page.set_viewport_size({"width": 1280, "height": 900})

        # The operator fixes the cause (real audio where the upload is), then redrives it.
        replace_upload(site, broken, wav_bytes(0.5))
        line.get_by_role("button", name=f"Retry job {broken[:8]}").focus()
        page.keyboard.press("Enter")
        page.get_by_text("queued again").wait_for()
        show_list(page, "completed", owner=owner)
        row(page, broken).wait_for()
        assert client.job(broken)["status"] == "completed"
        page.locator("table.audit").get_by_text("job.retry").first.wait_for()

        # Retry all of a filter: two more failures of the same code, one confirm.
        more = [submit(site, client, NOT_AUDIO, f"broken-{n}.wav") for n in range(2)]
        for job_id in more:
            wait_status(client, job_id, "failed")
            replace_upload(site, job_id, wav_bytes(0.5))
        wait_until(lambda: all(list_state(site, j) == state for j in more), timeout=30)
        show_list(page, state, owner=owner, code=code)
        for job_id in more:
            row(page, job_id).wait_for()
        page.get_by_role("button", name="Retry all matching").click()
        dialog = page.get_by_role("dialog")
        assert owner in dialog.inner_text() and code in dialog.inner_text()
        confirm(page, "Retry all")
        page.get_by_text("Retried 2 jobs.").wait_for()
        for job_id in more:
            wait_status(client, job_id, "completed")
        jobs.locator(".empty").wait_for()  # the failed list of that filter is empty now
        assert watch.errors == [], watch.errors


def test_an_admin_redrives_a_dead_job_once_the_store_is_fixed(site: Site, browser: Any) -> None:
    """A job whose upload the store cannot read (an I/O error, retried) dies after its
    attempts; the operator repairs the object and redrives it from the console."""
    owner, client = new_user(site, "dan")
    admin = site.client()
    admin.request("POST", "/api/admin/queue/pause")
    try:  # break the object before any consumer reads it: a directory where the file was
        job_id = submit(site, client, wav_bytes(0.5), "stored.wav")
        broken = local_store(site).root / upload_key(site, job_id)
        broken.unlink()
        broken.mkdir()
    finally:
        admin.request("POST", "/api/admin/queue/resume")
    dead = wait_status(client, job_id, "failed")
    assert dead["error"]["code"] == "io_error" and dead["attempts"] >= 2
    assert list_state(site, job_id) == "dead"
    with signed_in(browser, site, site.key) as (page, watch):
        open_console(page, site)
        show_list(page, "dead", owner=owner)
        line = row(page, job_id)
        assert "io_error" in line.inner_text()
        line.locator("summary").click()
        history = line.locator(".attempts li")
        assert history.count() == dead["attempts"]
        assert "io_error" in history.first.inner_text()
        shoot(page, "console-dead")

        broken.rmdir()
        replace_upload(site, job_id, wav_bytes(0.5))
        line.get_by_role("button", name=f"Retry job {job_id[:8]}").click()
        page.get_by_text("queued again").wait_for()
        show_list(page, "completed", owner=owner)
        row(page, job_id).wait_for()
        assert client.job(job_id)["status"] == "completed"
        assert watch.errors == [], watch.errors


def test_an_admin_pauses_resumes_cancels_and_deletes_another_owners_jobs(
    site: Site, browser: Any
) -> None:
    owner, client = new_user(site, "pia")
    with signed_in(browser, site, site.key) as (page, watch):
        open_console(page, site)
        page.get_by_role("button", name="Pause queue").click()
        page.locator("#queue-state").get_by_text("paused", exact=True).wait_for()
        assert admin_api(site, "/api/admin/overview")[1]["paused"] is True

        # While paused, jobs wait: the waiting list shows them with owner, age and priority.
        waiting = submit(site, client, wav_bytes(0.5), "waits.wav")
        kept = submit(site, client, wav_bytes(0.5), "kept.wav")
        show_list(page, "waiting", owner=owner)
        row(page, waiting).wait_for()
        row(page, kept).wait_for()
        assert owner in row(page, waiting).inner_text()
        shoot(page, "console-waiting")

        row(page, waiting).get_by_role("button", name="Cancel").click()
        confirm(page, "Cancel job")
        row(page, waiting).wait_for(state="detached")
        assert client.job(waiting)["status"] == "cancelled"

        page.get_by_role("button", name="Resume queue").click()
        page.locator("#queue-state").get_by_text("running", exact=True).wait_for()
        wait_status(client, kept, "completed")

        # A processing job: the active list shows its consumer and lease; cancel stops it.
        slow = submit(site, client, slow_flac(), "slow.flac")
        wait_status(client, slow, "processing")
        show_list(page, "active", owner=owner)
        line = row(page, slow)
        line.wait_for()
        assert "lease left" in page.locator("table.jobs-active thead").inner_text()
        shoot(page, "console-active")
        line.get_by_role("button", name="Cancel").click()
        confirm(page, "Cancel job")
        assert wait_status(client, slow, "cancelled")["status"] == "cancelled"

        # A finished job of another owner: delete it (asked first; keyboard only).
        show_list(page, "completed", owner=owner)
        row(page, kept).get_by_role("button", name="Delete").click()
        dialog = page.get_by_role("dialog")
        dialog.wait_for()
        page.keyboard.press("Tab")  # from "Go back" (focused first) to "Delete job"
        page.keyboard.press("Enter")
        row(page, kept).wait_for(state="detached")
        # The row is gone: keyboard focus lands on the list's heading, not the page top.
        # (expect polls from Python: wait_for_function evaluates a string, which the
        # app's CSP refuses after its first try)
        web_support.playwright_sync.expect(page.locator("#jobs-h")).to_be_focused(
            timeout=TIMEOUT_MS
        )
        with pytest.raises(ClientError) as gone:
            client.job(kept)
        assert gone.value.status == 404

        # Every action is in the audit log, newest first, with the admin's owner id.
        audit = page.locator("table.audit")
        for action in ("queue.pause", "queue.resume"):
            audit.get_by_text(action).first.wait_for()
        entries = admin_api(site, "/api/admin/audit?limit=50")[1]["entries"]
        targets = {(e["action"], e["target"]) for e in entries}
        assert {e["actor"] for e in entries} == {"dev"}
        assert any(t == kept for _, t in targets) and any(t == waiting for _, t in targets)
        page.locator("table.owners").get_by_text(owner).wait_for()
        shoot(page, "console")
        assert watch.errors == [], watch.errors


def test_the_api_page_lists_every_route_of_openapi_json(site: Site, browser: Any) -> None:
    with urllib.request.urlopen(f"{site.url}/openapi.json", timeout=30) as response:
        document = json.load(response)
    routes = [
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in {"get", "put", "post", "delete", "patch"}
    ]
    context = browser.new_context(viewport={"width": 1280, "height": 900})  # no key needed
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    watch = Watch(page)
    page.goto(f"{site.url}/#/api")
    page.get_by_role("heading", name="HTTP API").wait_for()
    page.locator("article.op").first.wait_for()
    assert page.locator("article.op").count() == len(routes)
    for method, path in routes:
        op = page.locator(f'article.op[data-method="{method}"][data-path="{path}"]')
        assert op.count() == 1, (method, path)
        summary = document["paths"][path][method.lower()]["summary"]
        assert summary in op.inner_text()
    # A route's parameters, request body and responses are written out readably.
    submit_op = page.locator('article.op[data-method="POST"][data-path="/api/audio/analyze"]')
    text = submit_op.inner_text()
    assert "fileKey required" in text and "priority" in text and "-1000 to 1000" in text
    assert "202" in text and "400" in text
    jobs_op = page.locator('article.op[data-method="GET"][data-path="/api/jobs"]')
    assert "limit" in jobs_op.locator("table.params").inner_text()
    shoot(page, "api")
    page.set_viewport_size({"width": 360, "height": 800})
    assert no_horizontal_scroll(page), "the API page scrolls sideways at 360 px"
    page.get_by_label("Filter routes").fill("analyze")
    shown = page.locator("article.op:visible")
    assert shown.count() == 1 and shown.get_attribute("data-path") == "/api/audio/analyze"
    shoot(page, "api-submit")
    page.get_by_label("Filter routes").fill("admin")
    assert 0 < page.locator("article.op:visible").count() < len(routes)
    assert watch.errors == [], watch.errors
    context.close()
