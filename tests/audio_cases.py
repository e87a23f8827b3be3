"""Audio files written the way real encoders and writers write them, for the decode tests.

`issue_cases` runs tests/cases/make_cases.py (the issue's cases with their
expected.json); the helpers run ffmpeg and lame as a user's tools would. Tests
needing a tool skip with a message saying which one is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from chalicelib.analysis import ffmpeg

HERE = Path(__file__).resolve().parent


def ffmpeg_exe() -> str:
    exe = ffmpeg.binary()
    if exe is None:
        pytest.skip(
            "ffmpeg is not installed (apt-get install ffmpeg, or pip install imageio-ffmpeg)"
        )
    return exe


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"`{name}` is not installed (apt-get install {name})")
    return found


def run_ffmpeg(*args: str | Path) -> None:
    """ffmpeg as a user runs it: quiet, overwriting, failing loudly."""
    command = [ffmpeg_exe(), "-nostdin", "-v", "error", "-y", *map(str, args)]
    subprocess.run(command, check=True, timeout=120)


def tools_path(tmp: Path) -> dict[str, str]:
    """An environment whose PATH has `ffmpeg` (the one decode.py runs) and `lame`."""
    tool("lame")
    bin_dir = tmp / "bin"
    bin_dir.mkdir(exist_ok=True)
    link = bin_dir / "ffmpeg"
    if not link.exists():
        link.symlink_to(ffmpeg_exe())
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}


def make_issue_cases(out: Path) -> dict[str, Any]:
    """Write the issue's cases into `out`; return expected.json."""
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "expected.json").exists():
        script = HERE / "cases" / "make_cases.py"
        env = tools_path(out.parent)
        subprocess.run([sys.executable, str(script), str(out)], check=True, env=env, timeout=300)
    return json.loads((out / "expected.json").read_text())


# --- Ogg pages -------------------------------------------------------------------------


def _ogg_crc(data: bytes) -> int:
    """The Ogg page checksum: CRC-32, polynomial 0x04C11DB7, not reflected, initial 0."""
    crc = 0
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
            crc &= 0xFFFFFFFF
    return crc


def move_last_granule(path: Path, frames: int) -> None:
    """Add `frames` to the granule position of the file's last Ogg page (CRC fixed).

    Positive: the header claims more audio than decodes (a released Vorbis file
    ends 5,806 frames before its last granule); the audio itself is untouched.
    """
    data = bytearray(path.read_bytes())
    start = data.rfind(b"OggS")
    (granule,) = struct.unpack_from("<q", data, start + 6)
    struct.pack_into("<q", data, start + 6, granule + frames)
    segments = data[start + 26]
    end = start + 27 + segments + sum(data[start + 27 : start + 27 + segments])
    struct.pack_into("<I", data, start + 22, 0)
    struct.pack_into("<I", data, start + 22, _ogg_crc(bytes(data[start:end])))
    path.write_bytes(bytes(data))
