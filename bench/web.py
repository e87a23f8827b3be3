"""The web app's numbers on the local stack: page weight and time to first chart.

Starts `soundcheck dev` (REDIS_URL / DATABASE_URL when set, else embedded servers),
analyses one music-like track (3 minutes by default) through the API, then opens
pages in a fresh Chromium context each time (nothing cached) and prints:
- page weight: bytes of every response the page loaded (HTML, CSS, JS, the API's
  JSON), for the sign-in page (the peer: the shell without charts) and the report;
- time to first chart: from navigation start to the report's first drawn chart, and
  to all charts drawn (median and max over --loads fresh loads).

Needs Chromium (`chromium` on PATH) and PyPI playwright. Prints numbers; asserts
nothing. `.venv/bin/python -P bench/web.py [--loads 7] [--seconds 180]`
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import soundfile

from chalicelib.client import Client
from chalicelib.local.background import BackgroundStack

VIEWPORT = {"width": 1280, "height": 900}


def music(path: Path, seconds: float) -> Path:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.music import music_like

    soundfile.write(str(path), music_like(seconds, 44_100, seed=11), 44_100, subtype="PCM_16")
    return path


def record_sizes(page: Any) -> dict[str, int]:
    """Bytes of each response body the page receives, by URL."""
    sizes: dict[str, int] = {}

    def on_response(response: Any) -> None:
        try:
            sizes[response.url] = len(response.body())
        except Exception:
            sizes[response.url] = 0

    page.on("response", on_response)
    return sizes


def load_signin(browser: Any, url: str) -> tuple[dict[str, int], float]:
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    sizes = record_sizes(page)
    page.goto(url)
    page.wait_for_selector("#api-key", timeout=60_000)
    shown = float(page.evaluate("performance.now()"))
    page.wait_for_load_state("networkidle")
    context.close()
    return sizes, shown


def load_report(
    browser: Any, base: str, key: str, job_id: str
) -> tuple[dict[str, int], float, float]:
    """A fresh context already signed in (the key put in localStorage before any script
    runs), opening the report: (bytes per URL, ms to first chart, ms to all charts)."""
    context = browser.new_context(viewport=VIEWPORT)
    context.add_init_script(f"localStorage.setItem('soundcheck.apiKey', {key!r})")
    page = context.new_page()
    sizes = record_sizes(page)
    page.goto(f"{base}/#/jobs/{job_id}")
    page.wait_for_selector(".plot[data-drawn=true]", timeout=60_000)
    first = float(page.evaluate("performance.now()"))
    page.wait_for_selector("[data-state=drawn]", timeout=60_000)
    done = float(page.evaluate("performance.now()"))
    page.wait_for_load_state("networkidle")
    context.close()
    return sizes, first, done


def kb(sizes: dict[str, int]) -> str:
    return f"{sum(sizes.values()) / 1024:.1f} KB in {len(sizes)} files"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--loads", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=180.0)
    args = parser.parse_args()
    chromium = shutil.which("chromium")
    if chromium is None:
        print("chromium is not installed: nothing to measure")
        return 1
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="soundcheck-bench-web-") as tmp:
        stack = BackgroundStack(Path(tmp) / "stack", consumers=1, purpose="benchweb")
        info = stack.start()
        try:
            client = Client(info.url, info.api_key, timeout=60)
            key = client.upload(music(Path(tmp) / "track.wav", args.seconds))
            job_id = client.submit(key, file_name="track.wav", genre="pop")["jobId"]
            job = client.wait(job_id, timeout=600)
            if job["status"] != "completed":
                print(f"the job did not complete: {job.get('error')}")
                return 1
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
                sizes, shown = load_signin(browser, f"{info.url}/")
                print(f"sign-in page (the shell, no charts): {kb(sizes)}, form at {shown:.0f} ms")
                firsts, dones = [], []
                for _ in range(args.loads):
                    sizes, first, done = load_report(browser, info.url, info.api_key, job_id)
                    firsts.append(first)
                    dones.append(done)
                print(f"report page ({args.seconds:.0f} s track, genre pop): {kb(sizes)}")
                for url, size in sorted(sizes.items(), key=lambda kv: -kv[1])[:8]:
                    print(f"  {size / 1024:8.1f} KB  {url.replace(info.url, '')[:90]}")
                print(
                    f"time to first chart: median {statistics.median(firsts):.0f} ms,"
                    f" max {max(firsts):.0f} ms ({args.loads} fresh loads)"
                )
                print(
                    f"time to all charts:  median {statistics.median(dones):.0f} ms,"
                    f" max {max(dones):.0f} ms"
                )
                browser.close()
        finally:
            stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
