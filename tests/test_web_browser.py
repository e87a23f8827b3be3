"""The web app in a real browser: Chromium driven by Playwright against `soundcheck dev`.

Sign in with the printed link, upload real files through the page (one named like an
XSS attack), watch the status, read the report with drawn charts, compare, share the
report and open the link in a fresh browser without a key, and check that a second
owner sees nothing of the first's. Screenshots of every page at 1280 and 360 px go to
`test-artifacts/web/` (gitignored) for a person to look at.

Skips with a message where Chromium or Playwright is missing (`.ci/run` installs
Chromium; Playwright's own browser download is not used).
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import soundfile

from chalicelib.jobs import JobStore
from tests import web_support
from tests.music import music_like
from tests.web_support import ARTIFACTS, TIMEOUT_MS, Site, Watch, no_horizontal_scroll, shoot

XSS_NAME = "<img src=x onerror=window.__xss=1>.wav"

pytestmark = web_support.NEEDS_CHROMIUM
site = web_support.site
browser = web_support.browser


def write_tracks(folder: Path) -> dict[str, Path]:
    """Two real files: a WAV (with the XSS name) and an ffmpeg-encoded FLAC of a louder,
    clipped version of the same music (a "v2" to compare)."""
    rate = 44_100
    mix = music_like(12.0, rate, seed=3)
    wav = folder / "track.wav"
    soundfile.write(wav, mix, rate, subtype="PCM_16")
    louder = np.clip(mix * 4.0, -1.0, 1.0)
    loud_wav = folder / "louder.wav"
    soundfile.write(loud_wav, louder, rate, subtype="PCM_24")
    tracks = {"xss": wav}
    if shutil.which("ffmpeg"):
        flac = folder / "mix v2.flac"
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-i", str(loud_wav), "-c:a", "flac", str(flac)],
            check=True,
        )
        tracks["v2"] = flac
    else:
        tracks["v2"] = loud_wav
    return tracks


def test_a_musician_goes_from_sign_in_link_to_shared_report(site: Site, browser: Any) -> None:
    tracks = write_tracks(site.files)
    xss = site.files / XSS_NAME
    shutil.copyfile(tracks["xss"], xss)

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    watch = Watch(page)

    # Sign in with the link `soundcheck dev` prints: the key leaves the address bar.
    link = site.sign_in_link()
    assert link.startswith(site.url) and link.endswith(f"#key={site.key}")
    page.goto(link)
    page.get_by_role("heading", name="Analyse a mix").wait_for()
    assert site.key not in page.url
    assert page.evaluate("localStorage.getItem('soundcheck.apiKey')") == site.key
    page.locator("#genre option[value=pop]").wait_for(state="attached")
    shoot(page, "1-upload")

    # Two real files at once through the file picker, opened from the keyboard.
    with page.expect_file_chooser() as chooser:
        page.locator("label[for=file-input]").focus()
        page.keyboard.press("Enter")
    assert chooser.value.is_multiple()
    chooser.value.set_files([str(xss), str(tracks["v2"])])
    page.select_option("#genre", "pop")
    assert page.locator(".upload-name").all_inner_texts() == [XSS_NAME, tracks["v2"].name]
    page.get_by_role("button", name="Analyse 2 files").click()
    page.get_by_text("submitted: open report").nth(1).wait_for()
    assert page.locator("progress").evaluate_all("ps => ps.map(p => p.value)") == [1, 1]

    # History: the hostile name is text, never markup.
    history = page.locator("table.history")
    history.get_by_text(XSS_NAME).wait_for()
    assert page.evaluate("window.__xss") is None
    assert page.locator("main img").count() == 0
    page.locator("table.history .badge-completed").nth(1).wait_for()
    shoot(page, "2-history")

    # The report of the XSS-named file: status, then the drawn charts.
    history.get_by_role("link", name=XSS_NAME).click()
    page.locator("[data-state=drawn]").wait_for()
    assert page.locator("h1").inner_text() == XSS_NAME
    assert page.evaluate("window.__xss") is None
    assert page.locator(".score-value").inner_text().isdigit()
    assert "null" not in page.locator("main").inner_text().split()
    # Waveform, loudness over time, spectrum, stereo correlation: all drawn, none missing.
    assert page.locator(".plot[data-drawn=true] canvas").count() == 4
    assert page.locator(".chart.missing").count() == 0
    assert page.locator("#chart-spectrum .numbers tbody tr").count() >= 55
    assert page.locator("table.metrics tbody tr").count() >= 5
    assert page.locator("table.platforms tbody tr").count() >= 9
    assert page.locator(".status-ok, .status-warning, .status-critical").count() >= 1
    # Severity alone reads as a direction: a row outside its target names the direction too.
    assert "too quiet, " in page.locator("table.metrics").inner_text()
    shoot(page, "3-report")
    page.emulate_media(media="print")
    page.screenshot(path=str(ARTIFACTS / "3-report-print.png"), full_page=True)
    assert page.locator("#share-create").is_hidden() and page.locator(".top").is_hidden()
    page.emulate_media(media="screen")
    page.set_viewport_size({"width": 360, "height": 800})
    assert no_horizontal_scroll(page), "the report scrolls sideways at 360 px"
    page.set_viewport_size({"width": 1280, "height": 900})

    # Keyboard: Tab reaches the share button and Enter makes the link.
    page.locator("#share-create").focus()
    page.keyboard.press("Enter")
    link = page.locator("#share-url").input_value()
    assert "#/shared/scs_" in link and site.key not in link
    report_url = page.url

    # Compare the two versions.
    page.goto(f"{site.url}/#/compare")
    page.get_by_role("button", name="Compare").click()
    page.locator("#difference").wait_for()
    difference = page.locator("#difference").inner_text()
    assert "LU" in difference and "clipped region" in difference
    shoot(page, "4-compare")

    # Reference mode: the louder version against the first job, both drawn in the charts.
    first_job = report_url.rsplit("/", 1)[-1]
    page.goto(f"{site.url}/#/")
    page.locator(f"#reference-job option[value='{first_job}']").wait_for(state="attached")
    page.check("#mode-job")
    page.select_option("#reference-job", first_job)
    page.set_input_files("#file-input", str(tracks["v2"]))
    page.get_by_role("button", name="Analyse", exact=True).click()
    page.locator("[data-state=drawn]").wait_for()
    assert "reference" in page.locator(".summary").inner_text()
    page.get_by_text("Dashed orange lines: the reference track.").wait_for()
    legend = page.locator("#chart-loudness .u-legend")
    assert legend.get_by_text("reference short-term").count() == 1
    shoot(page, "3b-reference")

    # The key never went into a URL, and every API call carried it as a header only.
    assert not [u for u in watch.urls if site.key in u]
    assert watch.errors == [], watch.errors

    # The share link in a fresh browser, without a key: that report and nothing else.
    stranger = browser.new_context(viewport={"width": 1280, "height": 900})
    shared = stranger.new_page()
    shared.set_default_timeout(TIMEOUT_MS)
    shared_watch = Watch(shared)
    shared.goto(link)
    shared.locator("[data-state=drawn]").wait_for()
    assert shared.locator("h1").inner_text() == XSS_NAME
    assert shared.locator(".plot[data-drawn=true] canvas").count() == 4
    assert shared.locator("#share-create").count() == 0
    assert "null" not in shared.locator("main").inner_text().split()
    assert shared.evaluate("localStorage.length") == 0
    api_calls = [u for u in shared_watch.urls if "/api/" in u]
    assert api_calls and all(u.endswith("/api/shared") for u in api_calls), api_calls
    assert all(a.startswith("Bearer scs_") for a in shared_watch.authorizations)
    assert shared_watch.errors == [], shared_watch.errors
    shoot(shared, "5-shared")
    # The same stranger navigating to the owner's pages is asked to sign in.
    shared.goto(report_url)
    shared.get_by_label("API key").wait_for()
    stranger.close()

    # Revoking the link: a fresh browser now gets the clear message.
    page.goto(report_url)
    page.get_by_role("button", name="revoke").first.click()
    page.get_by_text("revoked").first.wait_for()
    late = browser.new_context()
    late_page = late.new_page()
    late_page.goto(link)
    late_page.get_by_text("invalid, was revoked or has expired").wait_for()
    late.close()

    # Sign out clears the key.
    page.get_by_role("button", name="Sign out").click()
    page.get_by_label("API key").wait_for()
    assert page.evaluate("localStorage.getItem('soundcheck.apiKey')") is None
    shoot(page, "6-signin")
    context.close()


def test_a_second_owner_sees_nothing_of_the_first(site: Site, browser: Any) -> None:
    store = JobStore(site.database_url, site.schema)
    try:
        other_key = store.create_api_key(f"bob-{uuid.uuid4().hex[:6]}")
        first_owner_jobs = store.list_for_owner("dev", limit=5)
    finally:
        store.close()
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    watch = Watch(page)
    page.goto(f"{site.url}/")
    page.get_by_label("API key").fill("sck_not_a_key")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("Your API key was not accepted").wait_for()
    page.get_by_label("API key").fill(other_key)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("No jobs yet").wait_for()
    for job in first_owner_jobs:  # the first test's jobs, if it ran first
        page.goto(f"{site.url}/#/jobs/{job.id}")
        page.get_by_text("Not found").wait_for()
        assert job.file_name is None or job.file_name not in page.content()
    # A bad request surfaces its code's message, not a blank page.
    page.goto(f"{site.url}/#/jobs/not-a-job")
    page.get_by_text("Not found").wait_for()
    assert [e for e in watch.errors if "404" not in e and "401" not in e] == []
    context.close()
