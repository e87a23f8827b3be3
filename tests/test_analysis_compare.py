"""Targets, scores, severities and suggestions: pure Python over result dicts."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from chalicelib.analysis import AnalysisError, analyze, genres, targets
from chalicelib.analysis.compare import compare, metric_value
from chalicelib.analysis.score import overall, score_metric
from tests.music import music_like

REQUIRED = {
    "funk_mandela", "funk_bh", "funk_consciente", "eletrofunk", "trap", "rap_drill",
    "brazilian_phonk", "tech_house", "techno", "house", "edm", "progressive_trance", "pop",
    "rock_indie", "sertanejo", "piseiro_forro", "streaming", "club",
}  # fmt: skip


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    return analyze(music_like(12.0, 44100, seed=21), 44100, genre="pop")


def _with(result: dict[str, Any], block: str, name: str, value: float) -> dict[str, Any]:
    changed = copy.deepcopy(result)
    changed[block][name] = value
    return changed


def _row(comparison: dict[str, Any], metric: str) -> dict[str, Any]:
    return next(row for row in comparison["metrics"] if row["metric"] == metric)


def test_every_required_target_exists_with_documented_numbers() -> None:
    assert set(genres()) >= REQUIRED
    for name in genres():
        spec = targets.load(name)
        assert spec.targets, name
        for target in spec.targets.values():
            assert target.kind in targets.KINDS
            assert target.falloff > 0 and target.tolerance >= 0 and target.weight > 0
            assert len(target.why) > 20, f"{name}.{target.metric} needs its reasoning"


def test_destinations_override_the_loudness() -> None:
    assert targets.load("streaming").targets["integratedLufs"].target == -14.0
    assert targets.load("streaming").targets["truePeakDbtp"].target == -1.0
    combined = targets.load("trap+club")
    assert combined.name == "trap+club"
    assert (
        combined.targets["integratedLufs"].target
        == targets.load("club").targets["integratedLufs"].target
    )
    assert "band.sub" in combined.targets  # the genre's own targets stay
    assert targets.load(None).name == "streaming"
    assert targets.load(" Trap ").name == "trap"


@pytest.mark.parametrize("name", ["polka", "trap+pop", "streaming+trap", "a+b+c", ""])
def test_unknown_or_malformed_names(name: str) -> None:
    with pytest.raises(AnalysisError) as caught:
        targets.load(name or "   ")
    assert caught.value.code == "unknown_genre"


def test_score_curve() -> None:
    inside = score_metric("integratedLufs", -9.0, "range", -8.5, 1.5, 3.0)
    assert (inside.score, inside.severity) == (100.0, "ok")
    one_falloff = score_metric("integratedLufs", -13.0, "range", -8.5, 1.5, 3.0)
    assert one_falloff.score == pytest.approx(50.0) and one_falloff.severity == "high"
    two = score_metric("integratedLufs", -4.0 + 3.0, "range", -8.5, 1.5, 3.0)
    assert two.score == pytest.approx(20.0) and two.severity == "critical"
    near = score_metric("integratedLufs", -10.3, "range", -8.5, 1.5, 3.0)
    assert 99.0 < near.score < 100.0 and near.severity == "attention"
    assert overall([(100.0, 3.0), (50.0, 1.0)]) == 88
    assert overall([]) is None


def test_one_sided_targets() -> None:
    assert score_metric("truePeakDbtp", -3.0, "max", -1.0, 0.0, 1.0).severity == "ok"
    assert score_metric("correlation", 0.9, "min", 0.2, 0.1, 0.3).severity == "ok"
    assert score_metric("correlation", -0.4, "min", 0.2, 0.1, 0.3).severity == "critical"


def test_true_peak_over_zero_is_always_critical() -> None:
    # A club target allowing -0.3 dBTP: +0.1 is only 0.4 dB over, yet critical.
    assert score_metric("truePeakDbtp", 0.1, "max", -0.3, 0.0, 1.0).severity == "critical"
    assert score_metric("truePeakDbtp", -0.1, "max", -0.3, 0.0, 1.0).severity == "attention"


def test_suggestion_names_the_number_to_change(result: dict[str, Any]) -> None:
    hot = _with(result, "peaks", "truePeakDbtp", 0.3)
    comparison = compare(hot, "streaming")
    first = comparison["suggestions"][0]
    assert first["metric"] == "truePeakDbtp" and first["severity"] == "critical"
    assert first["message"].startswith("Lower the limiter ceiling by 1.3 dB to reach -1.0 dBTP")
    quiet = _with(result, "loudness", "integratedLufs", -20.0)
    suggestions = compare(quiet, "pop")["suggestions"]
    row_message = next(s["message"] for s in suggestions if s["metric"] == "integratedLufs")
    assert "Raise the loudness by 11.5 LU to reach -8.5 LUFS" in row_message


def test_score_falls_as_the_master_drifts(result: dict[str, Any]) -> None:
    scores = [
        compare(_with(result, "loudness", "integratedLufs", lufs), "pop")["score"]
        for lufs in (-8.5, -11.0, -14.0, -20.0)
    ]
    assert scores == sorted(scores, reverse=True) and scores[0] > scores[-1]


def test_reference_mode(result: dict[str, Any]) -> None:
    same = compare(result, reference=result)
    assert same["mode"] == "reference" and same["score"] == 100 and same["suggestions"] == []
    louder = _with(result, "loudness", "integratedLufs", result["loudness"]["integratedLufs"] + 4)
    comparison = compare(louder, reference=result)
    row = _row(comparison, "integratedLufs")
    assert row["target"] == result["loudness"]["integratedLufs"] and row["status"] != "ok"
    assert comparison["score"] < 100
    message = next(s for s in comparison["suggestions"] if s["metric"] == "integratedLufs")
    assert "Lower the loudness by 4.0 LU" in message["message"]
    assert "reference" in message["message"]


def test_reference_of_a_mono_track_skips_stereo(result: dict[str, Any]) -> None:
    mono = analyze(music_like(5.0, 44100, channels=1, seed=2), 44100)
    comparison = compare(result, reference=mono)
    assert "correlation" not in {row["metric"] for row in comparison["metrics"]}


@pytest.mark.parametrize("reference", [{"schemaVersion": 1}, "result", ["x"]])
def test_bad_reference(reference: Any) -> None:
    with pytest.raises(AnalysisError) as caught:
        analyze(np.zeros(4800, np.float32), 48000, reference=reference)
    assert caught.value.code == "invalid_reference"


def test_metric_values_from_a_result(result: dict[str, Any]) -> None:
    assert metric_value(result, "integratedLufs") == result["loudness"]["integratedLufs"]
    levels = [metric_value(result, f"band.{name}") for name in ("sub", "bass", "mid", "air")]
    assert all(level is not None and level <= 0.0 for level in levels)
    assert metric_value({"stereo": None}, "correlation") is None


def test_comparison_is_strict_json(result: dict[str, Any]) -> None:
    for name in genres():
        json.dumps(compare(result, name), allow_nan=False)


def test_importing_the_package_does_not_load_numpy() -> None:
    code = (
        "import sys, chalicelib.analysis as a, chalicelib.cli, chalicelib.report;"
        "a.genres(); a.targets.load('trap+streaming');"
        "print('numpy' in sys.modules, 'scipy' in sys.modules, 'soundfile' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "False"]


def test_the_targets_readme_table_is_what_the_model_computes() -> None:
    readme = (targets.TARGETS_DIR / "README.md").read_text(encoding="utf-8")
    rows = [line.split("|")[1:-1] for line in readme.splitlines() if line.startswith("| ")]
    table = {cells[0].strip(): [float(c) for c in cells[1:]] for cells in rows[2:]}
    genre_names = {n for n in genres() if "band.sub" in targets.load(n).targets}
    assert set(table) == genre_names
    bands = ("sub", "bass", "lowMid", "mid", "highMid", "presence", "air")
    for name, numbers in table.items():
        model = targets._read(name)["spectrum"]
        assert numbers[:3] == [model["tiltDbPerOctave"], model["bassDb"], model["highpassHz"]]
        spec = targets.load(name).targets
        assert numbers[3:] == [spec[f"band.{band}"].target for band in bands], name
