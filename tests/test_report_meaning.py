"""The report says what it means: direction apart from severity, units, one name and scale
per band, suggestions by severity, and a reference mode that cannot contradict itself."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from chalicelib.analysis import analyze
from chalicelib.analysis.compare import SEVERITY_RANK, compare
from chalicelib.analysis.suggest import MAX_EQ_DB, step
from chalicelib.report import render
from tests.music import music_like


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    return analyze(music_like(12.0, 44100, seed=21), 44100, genre="pop")


def _row(comparison: dict[str, Any], metric: str) -> dict[str, Any]:
    return next(row for row in comparison["metrics"] if row["metric"] == metric)


def _with(result: dict[str, Any], block: str, name: str, value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(result)
    changed[block][name] = value
    return changed


def _set_band(result: dict[str, Any], band: str, energy_db: float) -> dict[str, Any]:
    changed = copy.deepcopy(result)
    for item in changed["spectrum"]["bands"]:
        if item["name"] == band:
            item["energyDb"] = energy_db
    return changed


def test_direction_and_severity_are_separate(result: dict[str, Any]) -> None:
    quiet = _with(result, "loudness", "integratedLufs", -20.0)
    comparison = compare(quiet, "pop")
    row = _row(comparison, "integratedLufs")
    assert row["direction"] == "below" and row["verdict"] == "too quiet"
    assert row["status"] in ("high", "critical")  # the severity, as before
    loud = _row(compare(_with(result, "loudness", "integratedLufs", -3.0), "pop"), "integratedLufs")
    assert (loud["direction"], loud["verdict"]) == ("above", "too loud")
    line = next(line for line in render({**quiet, "comparison": comparison}).splitlines()
                if line.strip().startswith("Integrated loudness") and "±" in line)  # fmt: skip
    assert line.rstrip().endswith(f"too quiet, {row['status']}")
    ok = _row(compare(result, "pop"), "truePeakDbtp")
    assert ok["direction"] is None or ok["status"] != "ok"


def test_values_carry_their_units(result: dict[str, Any]) -> None:
    text = render({**result, "comparison": compare(result, "pop")})
    table = text.split("Score", 1)[1]
    lufs = result["loudness"]["integratedLufs"]
    assert re.search(rf"Integrated loudness\s+{lufs:.2f} LUFS\s", table)
    assert re.search(r"True peak\s+-?\d+\.\d\d dBTP\s", table)


def test_each_band_has_one_name_and_one_scale(result: dict[str, Any]) -> None:
    """The spectrum section and the comparison table name a band alike and show the same
    number (dB relative to the whole mix)."""
    comparison = compare(result, "pop")
    text = render({**result, "comparison": comparison})
    spectrum, table = text.split("Score", 1)
    for row in comparison["metrics"]:
        if not row["metric"].startswith("band."):
            continue
        label = row["label"]
        shown = re.search(rf"{re.escape(label)}\s+(-?\d+\.\d) dB", spectrum)
        assert shown, f"{label} missing from the spectrum section"
        assert float(shown.group(1)) == pytest.approx(row["value"], abs=0.051)
        assert re.search(rf"{re.escape(label)}\s+{row['value']:.2f} dB", table)
    assert "Balance sub" not in text and "sub 20-60" not in text  # the old second names


def test_suggestions_are_sorted_by_severity(result: dict[str, Any]) -> None:
    """Even where a fix would win back more points: loudness just outside its window
    (attention, weight 3: 60 points) comes after a critical lean (weight 0.5: 44)."""
    bad = _with(result, "loudness", "integratedLufs", -11.4)  # pop: -8.5 +- 1.5, attention
    bad = _with(bad, "stereo", "balanceDb", 5.0)  # critical
    suggestions = compare(bad, "pop")["suggestions"]
    ranks = [SEVERITY_RANK[s["severity"]] for s in suggestions]
    assert len(ranks) >= 2 and ranks == sorted(ranks, reverse=True)
    order = [s["metric"] for s in suggestions]
    assert order.index("balanceDb") < order.index("integratedLufs")


def test_a_track_against_itself_scores_100_with_nothing_to_fix(result: dict[str, Any]) -> None:
    assert result["peaks"]["truePeakDbtp"] <= -1.0
    same = compare(result, reference=result)
    assert same["score"] == 100 and same["suggestions"] == []
    assert {row["status"] for row in same["metrics"]} == {"ok"}


def test_a_reference_that_clips_does_not_become_the_target_peak(result: dict[str, Any]) -> None:
    clipping = _with(result, "peaks", "truePeakDbtp", 0.4)
    comparison = compare(clipping, reference=clipping)
    row = _row(comparison, "truePeakDbtp")
    assert row["target"] + row["tolerance"] == -1.0  # the standard's limit, not +0.4 (+0.5)
    assert row["status"] == "critical" and comparison["score"] < 100  # never 100 beside critical
    advice = next(s["message"] for s in comparison["suggestions"] if s["metric"] == "truePeakDbtp")
    assert "by 1.4 dB to reach -1.0 dBTP" in advice
    quieter_ref = _with(result, "peaks", "truePeakDbtp", -3.0)
    own = _row(compare(result, reference=quieter_ref), "truePeakDbtp")
    assert own["target"] == -3.0 and own["tolerance"] == 0.5  # a stricter reference still counts


def test_no_advice_of_zero(result: dict[str, Any]) -> None:
    """0.03 dB over a limit is advised as 0.1 dB, never "by 0.0 dB"."""
    hair = _with(result, "peaks", "truePeakDbtp", -0.97)
    for comparison in (compare(hair, "pop"), compare(hair, reference=hair)):
        messages = " ".join(s["message"] for s in comparison["suggestions"])
        assert "by 0.1 dB to reach -1.0 dBTP (now -0.97 dBTP" in messages
        assert not re.search(r"\b0\.0 (dB|LU)\b", messages)
    assert step(0.03) == pytest.approx(0.1) and step(1.21) == pytest.approx(1.3)
    assert step(0.0) == pytest.approx(0.1) and step(2.0) == pytest.approx(2.0)


def test_no_eq_advice_of_an_impossible_size(result: dict[str, Any]) -> None:
    """A reference with no air (a lossy or 22 kHz file) gives no air target; a genre's
    band far off gets advice that is not an EQ move of 40 dB."""
    dull = _set_band(result, "air", -90.0)
    comparison = compare(result, reference=dull)
    assert "band.air" not in {row["metric"] for row in comparison["metrics"]}
    heavy = compare(_set_band(result, "air", 0.0), "pop")
    for item in heavy["suggestions"]:
        sizes = [float(x) for x in re.findall(r"(?:cut|boost) around \S+ \S+ by about ([\d.]+)",
                                             item["message"])]  # fmt: skip
        assert all(size <= MAX_EQ_DB for size in sizes), item["message"]
    air = next(s["message"] for s in heavy["suggestions"] if s["metric"] == "band.air")
    assert "more than EQ should take away" in air


def test_clipping_is_not_excused_by_the_reference(result: dict[str, Any]) -> None:
    clipped = _with(result, "peaks", "clippedSamples", 500)
    row = _row(compare(clipped, reference=clipped), "clippedSamples")
    assert row["target"] == 0 and row["status"] != "ok"


def test_a_lossy_source_shows_codec_overshoot_apart_and_never_as_clipping(
    tmp_path: Any,
) -> None:
    """A master peaking at full scale, encoded to MP3 by ffmpeg (libmp3lame) as real
    encoders write it: the decode overshoots 0 dBFS. The report lists the overshoot
    apart, says the file is lossy and where its audio ends, and scores no clipping."""
    import shutil
    import subprocess

    import numpy as np
    import soundfile

    from chalicelib.analysis import analyze_file

    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed (apt-get install ffmpeg)")
    mix = music_like(6.0, 44100, seed=8)
    mix = (mix / np.max(np.abs(mix))).astype(np.float32)  # peaks at exactly 0 dBFS
    wav, mp3 = tmp_path / "hot.wav", tmp_path / "hot.mp3"
    soundfile.write(wav, mix, 44100, subtype="PCM_16")
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-i", str(wav), "-b:a", "128k", str(mp3)],
        check=True,
        timeout=120,
    )
    result = analyze_file(mp3, genre="pop")
    assert result["file"]["lossy"] and result["peaks"]["overshootSamples"] > 0
    text = render(result, title="hot.mp3")
    assert re.search(rf"Codec overshoot\s+{result['peaks']['overshootSamples']}\b", text)
    assert re.search(r"lossy, audio up to \d+\.\d kHz", text.splitlines()[2])
    clipped = _row(result["comparison"], "clippedSamples")
    assert clipped["value"] == result["peaks"]["clippedSamples"] and clipped["status"] == "ok"
    assert not any(s["metric"] == "clippedSamples" for s in result["comparison"]["suggestions"])
