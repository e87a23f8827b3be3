"""analyze_file(): formats, nasty files, and limits checked on the header before decoding."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile

from chalicelib import settings
from chalicelib.analysis import AnalysisError, Limits, analyze, analyze_file
from tests.music import music_like

RATE = 48000


@pytest.fixture(scope="module")
def track() -> np.ndarray:
    return music_like(6.0, RATE, seed=11)


def _code(path: Path, limits: Limits | None = None) -> str:
    with pytest.raises(AnalysisError) as caught:
        analyze_file(path, limits=limits)
    assert caught.value.retryable is False
    return caught.value.code


def _sparse_wav(path: Path, frames: int, channels: int, rate: int) -> Path:
    """A 16-bit WAV whose header declares `frames` and whose data is a hole in the
    file: huge on paper, nothing on disk."""
    data = frames * channels * 2
    header = b"RIFF" + struct.pack("<I", 36 + data) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * channels * 2,
                                    channels * 2, 16)  # fmt: skip
    header += b"data" + struct.pack("<I", data)
    path.write_bytes(header)
    os.truncate(path, len(header) + data)
    return path


@pytest.mark.parametrize(
    ("fmt", "subtype", "suffix", "tolerance"),
    [
        ("WAV", "PCM_16", ".wav", 0.01),
        ("WAV", "PCM_24", ".wav", 0.01),
        ("WAV", "FLOAT", ".wav", 0.01),
        ("FLAC", "PCM_24", ".flac", 0.01),
        ("AIFF", "PCM_16", ".aiff", 0.01),
        ("OGG", "VORBIS", ".ogg", 0.3),
        ("MP3", "MPEG_LAYER_III", ".mp3", 0.3),
    ],
)
def test_formats_decode_to_the_same_loudness(
    tmp_path: Path, track: np.ndarray, fmt: str, subtype: str, suffix: str, tolerance: float
) -> None:
    path = tmp_path / f"mix{suffix}"
    soundfile.write(path, track, RATE, format=fmt, subtype=subtype)
    result = analyze_file(path)
    assert result["file"]["format"] == fmt and result["file"]["subtype"] == subtype
    assert result["file"]["sampleRate"] == RATE and result["file"]["channels"] == 2
    expected = analyze(track, RATE)["loudness"]["integratedLufs"]
    assert result["loudness"]["integratedLufs"] == pytest.approx(expected, abs=tolerance)


def test_file_block_and_genre(tmp_path: Path, track: np.ndarray) -> None:
    path = tmp_path / "mix.wav"
    soundfile.write(path, track, RATE, subtype="PCM_24")
    result = analyze_file(path, genre="techno")
    assert result["file"] == {
        "format": "WAV",
        "subtype": "PCM_24",
        "sampleRate": RATE,
        "channels": 2,
        "layout": "stereo",
        "positions": ["FL", "FR"],
        "frames": len(track),
        "durationSeconds": 6.0,
        "lossy": False,
        "bandwidthHz": RATE / 2,
    }
    assert result["comparison"]["target"] == "techno"


def test_missing_empty_and_not_audio(tmp_path: Path) -> None:
    assert _code(tmp_path / "nope.wav") == "file_not_found"
    (tmp_path / "empty.wav").write_bytes(b"")
    assert _code(tmp_path / "empty.wav") == "empty_audio"
    (tmp_path / "notes.wav").write_text("these are my lyrics, not a wave file\n" * 20)
    assert _code(tmp_path / "notes.wav") == "unsupported_format"


def test_a_header_without_frames_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "nothing.wav"
    soundfile.write(path, np.zeros((0, 2), np.float32), RATE, subtype="PCM_16")
    assert _code(path) == "empty_audio"


@pytest.mark.parametrize(
    ("fmt", "subtype", "suffix"),
    [("FLAC", "PCM_16", ".flac"), ("WAV", "PCM_16", ".wav"), ("MP3", "MPEG_LAYER_III", ".mp3")],
)
def test_truncated_files_are_corrupt(
    tmp_path: Path, track: np.ndarray, fmt: str, subtype: str, suffix: str
) -> None:
    path = tmp_path / f"cut{suffix}"
    soundfile.write(path, track, RATE, format=fmt, subtype=subtype)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert _code(path) == "corrupt_file"


def test_nan_in_a_float_wav(tmp_path: Path, track: np.ndarray) -> None:
    broken = track.copy()
    broken[1000, 0] = np.nan
    path = tmp_path / "nan.wav"
    soundfile.write(path, broken, RATE, subtype="FLOAT")
    assert _code(path) == "invalid_samples"


def test_int16_and_int24_files_agree(tmp_path: Path, track: np.ndarray) -> None:
    results = []
    for subtype in ("PCM_16", "PCM_24"):
        path = tmp_path / f"{subtype}.wav"
        soundfile.write(path, track, RATE, subtype=subtype)
        results.append(analyze_file(path))
    for block, name in [("loudness", "integratedLufs"), ("peaks", "truePeakDbtp")]:
        assert results[0][block][name] == pytest.approx(results[1][block][name], abs=0.01)


def test_two_hours_is_too_long_from_the_header(tmp_path: Path) -> None:
    """1.4 GB of declared audio over a 1-hour limit: an uncompressed file's header
    is exact, so it is refused from the header, never decoded."""
    path = _sparse_wav(tmp_path / "long.wav", 2 * 3600 * RATE, 2, RATE)
    assert _code(path, Limits(max_duration_seconds=3600)) == "too_long"


def test_too_many_samples_even_within_duration(tmp_path: Path) -> None:
    """8 channels at 384 kHz for 10 minutes: within duration, channels and rate
    limits, but 1.8 billion samples (7.4 GB as float32) would not fit."""
    path = _sparse_wav(tmp_path / "wide.wav", 600 * 384_000, 8, 384_000)
    assert _code(path) == "too_large"


def test_channel_and_rate_limits(tmp_path: Path) -> None:
    nine = tmp_path / "nine.wav"
    soundfile.write(nine, np.zeros((100, 9), np.float32), RATE, subtype="PCM_16")
    assert _code(nine) == "too_many_channels"
    slow = tmp_path / "slow.wav"
    soundfile.write(slow, np.zeros(4000, np.float32), 4000, subtype="PCM_16")
    assert _code(slow) == "unsupported_sample_rate"


def test_limits_from_settings(tmp_path: Path, track: np.ndarray) -> None:
    path = tmp_path / "mix.wav"
    soundfile.write(path, track, RATE, subtype="PCM_16")
    limits = Limits.from_settings(settings.load({"SOUNDCHECK_MAX_DURATION_SECONDS": "5"}))
    assert _code(path, limits) == "too_long"
    limits = Limits.from_settings(settings.load({"SOUNDCHECK_MAX_SAMPLE_RATE": "44100"}))
    assert _code(path, limits) == "unsupported_sample_rate"


def test_unknown_genre_fails_before_decoding(tmp_path: Path) -> None:
    (tmp_path / "notes.wav").write_text("not audio")
    with pytest.raises(AnalysisError) as caught:
        analyze_file(tmp_path / "notes.wav", genre="polka")
    assert caught.value.code == "unknown_genre"
