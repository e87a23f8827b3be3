"""What the browser tests share: a `soundcheck dev` stack, Chromium, and page helpers.

`site` is one real local stack per test module (its own Redis queue and Postgres
schema; the stack's key is an admin key of owner `dev`); `browser` is Chromium driven
by PyPI Playwright (`executable_path` the system's Chromium, Playwright's own browser
download is not used). A test module using them imports the fixtures by name
(`site = web_support.site`) and skips where Chromium is missing (`NEEDS_CHROMIUM`).
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from chalicelib.client import Client
from tests.pipeline_support import own_schema
from tests.test_pipeline import start_stack, stop, wait_for_state

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "web"
TIMEOUT_MS = 90_000

playwright_sync = pytest.importorskip(
    "playwright.sync_api", reason="PyPI playwright is not installed (requirements-dev.txt)"
)
NEEDS_CHROMIUM = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install chromium)"
)


@dataclass
class Site:
    url: str
    key: str
    database_url: str
    schema: str
    files: Path
    log: Path

    @property
    def data_dir(self) -> Path:
        """The stack's --data-dir (its local object store is `objects/` in it)."""
        return self.log.parent

    def client(self, key: str | None = None) -> Client:
        """An HTTP client of this stack with `key` (the stack's admin key by default)."""
        return Client(self.url, self.key if key is None else key)

    def sign_in_link(self) -> str:
        """The link `soundcheck dev` prints ("web app  http://.../#key=..."); where the
        stack prints it only to a terminal, the same link built from its state."""
        found = re.search(r"web app\s+(\S+#key=\S+)", self.log.read_text(errors="replace"))
        return found[1] if found else f"{self.url}/#key={self.key}"


@pytest.fixture(scope="module")
def site(
    redis_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    data_dir = tmp_path_factory.mktemp("webstack")
    with own_schema(database_url) as schema:
        env = {
            **os.environ,
            "REDIS_URL": redis_url,
            "DATABASE_URL": database_url,
            "SOUNDCHECK_DB_SCHEMA": schema,
            "QUEUE_NAME": f"web-{uuid.uuid4().hex[:8]}",
            "SOUNDCHECK_SWEEP_SECONDS": "0.5",
            "SOUNDCHECK_API_KEY": f"sck_web_{uuid.uuid4().hex}",
        }
        process = start_stack(data_dir, env, consumers=1)
        try:
            state = wait_for_state(process, data_dir)
            files = data_dir / "files"
            files.mkdir()
            yield Site(
                state.url, state.api_key, database_url, schema, files, data_dir / "stack.log"
            )
        finally:
            assert stop(process) == 0


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_sync.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


class Watch:
    """Everything a page did that a test wants to assert on: errors, CSP reports, URLs."""

    def __init__(self, page: Any) -> None:
        self.errors: list[str] = []
        self.urls: list[str] = []
        self.authorizations: list[str] = []
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        page.on(
            "console",
            lambda m: self.errors.append(f"console: {m.text}") if m.type == "error" else None,
        )
        page.on("request", self._request)

    def _request(self, request: Any) -> None:
        self.urls.append(request.url)
        auth = request.headers.get("authorization")
        if auth:
            self.authorizations.append(auth)


def shoot(page: Any, name: str) -> None:
    """Screenshots at 1280 and 360 px wide (full page) into test-artifacts/web/."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for width in (1280, 360):
        page.set_viewport_size({"width": width, "height": 900})
        page.wait_for_timeout(150)  # let the charts' ResizeObserver redraw (a screenshot only)
        page.screenshot(path=str(ARTIFACTS / f"{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})


def no_horizontal_scroll(page: Any) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"))
