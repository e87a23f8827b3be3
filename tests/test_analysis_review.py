"""Review findings on the comparison: suggestions name the same limit the table shows."""

from __future__ import annotations

from chalicelib.analysis.compare import compare
from chalicelib.report import render


def _result(plr: float, correlation: float) -> dict:  # type: ignore[type-arg]
    return {
        "loudness": {"integratedLufs": -7.5, "rangeLu": 5.0},
        "peaks": {"truePeakDbtp": -1.0, "clippedSamples": 0},
        "dynamics": {"plrDb": plr},
        "stereo": {"correlation": correlation, "widthPercent": 60.0, "balanceDb": 0.0},
        "spectrum": {"bands": []},
    }


def test_a_one_sided_target_suggestion_names_the_limit_the_table_shows() -> None:
    result = _result(plr=2.0, correlation=0.0)
    result["comparison"] = compare(result, "trap")
    messages = {s["metric"]: s["message"] for s in result["comparison"]["suggestions"]}
    text = render(result)
    # trap: PLR min 6.5 - 1.5, correlation min 0.2 - 0.1 (_base.json)
    assert ">= 5.00 dB" in text and ">= 0.10" in text
    assert "minimum of 5.0 dB" in messages["plrDb"] and "6.5 dB" in messages["plrDb"]
    assert "(the target)" not in messages["plrDb"]
    assert "minimum of 0.10" in messages["correlation"]
