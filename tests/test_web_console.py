"""The API page (#/api) in a real browser (Chromium + Playwright) against a real
`soundcheck dev` stack: it lists every route of /openapi.json, readably. Screenshots
at 1280 and 360 px go to test-artifacts/web/.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from tests import web_support
from tests.web_support import TIMEOUT_MS, Site, Watch, no_horizontal_scroll, shoot

pytestmark = web_support.NEEDS_CHROMIUM
site = web_support.site
browser = web_support.browser


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
