"""Decode an audio file into float32 samples, refusing bad files with a clear code.

The header is checked against the limits before any sample is read, so an
over-long or over-wide file costs milliseconds, and the read is capped at the
header's frame count so a lying header cannot make it allocate more.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from chalicelib.analysis.errors import AnalysisError
from chalicelib.analysis.limits import Limits

# libsndfile error numbers (sndfile.h): 1 unrecognised format, 4 unsupported encoding.
_UNSUPPORTED = {1, 4}
# Frame counts of these formats come from the container and are exact; MP3's may be
# an estimate, so only a clear shortfall there means a damaged file.
_ESTIMATED_LENGTH = {"MP3": 0.02}
# libsndfile notes a WAV whose data chunk claims more bytes than the file holds.
_WAV_SHORT = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
_UNFINISHED_SIZES = {0, 0xFFFFFFFF, 0x7FFFFFFF}


@dataclass(frozen=True)
class Decoded:
    samples: np.ndarray  # float32, shape (frames, channels)
    sample_rate: int
    info: dict[str, object]  # the result's `file` block (without the layout)


def decode(path: str | Path, limits: Limits | None = None) -> Decoded:
    """Read `path` as float32 (frames, channels); raise AnalysisError for bad input."""
    limits = limits or Limits()
    path = Path(path)
    if not path.is_file():
        raise AnalysisError("file_not_found", f"no such file: {path.name}")
    if path.stat().st_size == 0:
        raise AnalysisError("empty_audio", "the file is empty (0 bytes)")
    try:
        with soundfile.SoundFile(str(path)) as sound:
            frames, channels, rate = sound.frames, sound.channels, sound.samplerate
            limits.check(frames, channels, rate)
            _check_wav_length(sound.extra_info)
            try:
                samples = sound.read(frames=frames, dtype="float32", always_2d=True)
            except (RuntimeError, soundfile.SoundFileError) as exc:
                raise AnalysisError("corrupt_file", f"decoding failed: {_reason(exc)}") from None
            info = {
                "format": sound.format,
                "subtype": sound.subtype,
                "sampleRate": rate,
                "channels": channels,
            }
    except soundfile.LibsndfileError as exc:
        code = "unsupported_format" if exc.code in _UNSUPPORTED else "corrupt_file"
        raise AnalysisError(code, _reason(exc)) from None
    decoded = len(samples)
    if decoded == 0:
        raise AnalysisError("empty_audio", "the file holds no audio frames")
    slack = _ESTIMATED_LENGTH.get(str(info["format"]), 0.0)
    if decoded < frames * (1.0 - slack):
        raise AnalysisError(
            "corrupt_file",
            f"the file is truncated: {decoded:,} of {frames:,} frames could be decoded",
        )
    return Decoded(samples, rate, info)


def _check_wav_length(extra_info: str) -> None:
    match = _WAV_SHORT.search(extra_info or "")
    if match is None:
        return
    declared, present = int(match.group(1)), int(match.group(2))
    if declared in _UNFINISHED_SIZES or present >= declared:
        return  # a header never finalised by its writer, not a truncated file
    raise AnalysisError(
        "corrupt_file",
        f"the file is truncated: its data chunk declares {declared:,} bytes but holds {present:,}",
    )


def _reason(exc: Exception) -> str:
    """libsndfile's message without the temporary path it names."""
    text = str(exc).strip()
    text = re.sub(r"^Error opening '[^']*':\s*", "", text)
    text = re.sub(r"^Error\s*:\s*", "", text)
    return text or type(exc).__name__
