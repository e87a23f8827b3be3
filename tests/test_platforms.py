"""The `platforms` block: each service's gain and result, on cases with known answers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from chalicelib import report
from chalicelib.analysis import analyze, platforms
from chalicelib.analysis.platforms import PLATFORMS_FILE, Platform, platforms_block, playback


def by_id(rows: list[dict]) -> dict[str, dict]:
    return {row["id"]: row for row in rows}


def service(name: str) -> Platform:
    return next(p for p in platforms.load() if p.id == name)


def test_spotifys_own_example_is_lifted_only_to_one_db_of_headroom() -> None:
    # Spotify for Artists: "a track at -20 LUFS with a true peak of -5 dBFS is only lifted to -16".
    row = playback(service("spotify_normal"), -20.0, -5.0)
    assert row["policy"] == "up-and-down"
    assert row["gainDb"] == 4.0
    assert row["resultingLufs"] == -16.0
    assert row["resultingTruePeakDbtp"] == -1.0
    assert row["limiterActs"] is False


def test_spotify_loud_lifts_all_the_way_and_its_limiter_acts() -> None:
    row = playback(service("spotify_loud"), -20.0, -5.0)
    assert row["gainDb"] == 9.0 and row["resultingLufs"] == -11.0
    assert row["limiterActs"] is True and row["resultingTruePeakDbtp"] == -1.0
    # With enough headroom the limiter does nothing.
    quiet_peaks = playback(service("spotify_loud"), -14.0, -12.0)
    assert quiet_peaks["gainDb"] == 3.0 and quiet_peaks["limiterActs"] is False
    assert quiet_peaks["resultingTruePeakDbtp"] == -9.0


def test_a_loud_master_is_turned_down_by_every_normalising_service() -> None:
    rows = by_id([playback(p, -8.0, -0.3) for p in platforms.load()])
    assert rows["spotify_normal"]["gainDb"] == -6.0
    assert rows["spotify_loud"]["gainDb"] == -3.0
    assert rows["apple_music"]["gainDb"] == -8.0
    assert rows["youtube"]["gainDb"] == -6.0
    assert rows["deezer"]["gainDb"] == -7.0
    assert rows["youtube"]["resultingTruePeakDbtp"] == -6.3
    assert rows["soundcloud"]["policy"] == "none" and rows["soundcloud"]["gainDb"] == 0.0
    assert not any(row["limiterActs"] for row in rows.values())


def test_down_only_services_leave_a_quiet_master_alone() -> None:
    row = playback(service("youtube"), -20.0, -5.0)
    assert row["policy"] == "down-only" and row["gainDb"] == 0.0 and row["resultingLufs"] == -20.0


def test_a_peak_already_above_the_ceiling_gets_no_raise() -> None:
    row = playback(service("spotify_normal"), -18.0, -0.5)
    assert row["gainDb"] == 0.0 and row["resultingTruePeakDbtp"] == -0.5


def test_silence_has_no_gain_and_no_loudness() -> None:
    rows = platforms_block({"loudness": {"integratedLufs": None}, "peaks": {"truePeakDbtp": None}})
    assert all(r["gainDb"] is None and r["resultingLufs"] is None for r in rows)
    assert platforms_block({}) == rows  # a result missing its blocks too


def test_every_service_has_a_source_and_a_confidence_and_the_file_is_checked(tmp_path) -> None:
    data = json.loads(PLATFORMS_FILE.read_text())
    assert {p["id"] for p in data["platforms"]} >= {
        "spotify_normal", "spotify_loud", "spotify_quiet", "apple_music", "youtube",
        "tidal", "amazon_music", "deezer", "soundcloud",
    }  # fmt: skip
    assert all(p.source.startswith("https://") for p in platforms.load())
    assert service("spotify_normal").confidence == "high"


def test_analyze_adds_platforms_from_the_measured_loudness() -> None:
    # A 997 Hz stereo sine peaking at -20 dBFS reads -20 LUFS (BS.1770: full scale in both = 0).
    rate = 48_000
    t = np.arange(rate * 5) / rate
    tone = 0.1 * np.sin(2 * np.pi * 997 * t)
    result = analyze(np.stack([tone, tone], axis=1), rate)
    assert result["schemaVersion"] == 2
    rows = by_id(result["platforms"])
    assert rows["spotify_normal"]["gainDb"] == pytest.approx(6.0, abs=0.05)
    assert rows["spotify_normal"]["resultingLufs"] == pytest.approx(-14.0, abs=0.01)
    assert rows["youtube"]["gainDb"] == 0.0
    json.dumps(result, allow_nan=False)


def test_the_text_report_has_the_platform_table() -> None:
    result = {"loudness": {"integratedLufs": -8.0}, "peaks": {"truePeakDbtp": -0.3}}
    result["platforms"] = platforms_block(result)
    text = report.render(result)
    line = next(x for x in text.splitlines() if x.strip().startswith("Spotify (normal"))
    assert "-14" in line and "-6.0" in line and "up+down" in line
    assert "Deezer" in text and "(low confidence)" in text
    assert "Streaming playback" not in report.render({"loudness": {}})
