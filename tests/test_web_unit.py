"""The web app's pure ES modules (format, compare) checked with node: CSV quoting and
formula neutralising, number formatting, the compare sentence. Skips without node."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

NODE = shutil.which("node")


@pytest.mark.skipif(NODE is None, reason="node is not installed (Debian: apt-get install nodejs)")
def test_pure_modules_with_node() -> None:
    script = Path(__file__).parent / "web" / "unit.mjs"
    done = subprocess.run(
        [str(NODE), "--experimental-detect-module", str(script)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
