"""What each streaming service will do to a master's level: the `platforms` block.

A pure function of a result's integrated loudness and true peak, with the services'
rules as data (`targets/_platforms.json`, each figure with its public source and a
confidence). Pure Python: a stored result can be re-judged without audio, and the
text report needs no numpy.

The rule, per service with a reference level R (LUFS), for a track at I LUFS with
true peak P dBTP:
- I > R: gain R - I (turned down; nothing else changes).
- I < R and the service turns up: with a limiter at L dB, gain R - I and the limiter
  acts when P + gain > L; without one, gain min(R - I, ceiling - P), never negative
  (Spotify's normal mode keeps 1 dB true-peak headroom).
- otherwise gain 0.
Resulting loudness is I + gain and resulting true peak P + gain (capped at L when a
limiter acts: approximate, a limiter lowers the loudness a little too).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

PLATFORMS_FILE = Path(__file__).parent / "targets" / "_platforms.json"
CONFIDENCES = ("high", "medium", "low")


@dataclass(frozen=True)
class Platform:
    id: str
    name: str
    reference_lufs: float | None  # None: the service does not normalise
    turns_up: bool
    up_peak_ceiling_dbtp: float | None
    limiter_db: float | None
    source: str
    confidence: str
    note: str


@cache
def load() -> tuple[Platform, ...]:
    """The services of `_platforms.json`, in file order; ValueError for a malformed entry."""
    data = json.loads(PLATFORMS_FILE.read_text(encoding="utf-8"))
    found = []
    for raw in data["platforms"]:
        entry = Platform(
            id=raw["id"],
            name=raw["name"],
            reference_lufs=_number(raw.get("referenceLufs")),
            turns_up=bool(raw.get("turnsUp")),
            up_peak_ceiling_dbtp=_number(raw.get("upPeakCeilingDbtp")),
            limiter_db=_number(raw.get("limiterDb")),
            source=raw["source"],
            confidence=raw["confidence"],
            note=raw.get("note", ""),
        )
        if entry.confidence not in CONFIDENCES or not entry.source.startswith("https://"):
            raise ValueError(f"platform {entry.id}: a source URL and a confidence are required")
        if entry.turns_up and entry.up_peak_ceiling_dbtp is None and entry.limiter_db is None:
            raise ValueError(f"platform {entry.id}: turning up needs a peak ceiling or a limiter")
        found.append(entry)
    return tuple(found)


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def policy(platform: Platform) -> str:
    """'none' (no normalisation), 'down-only' or 'up-and-down'."""
    if platform.reference_lufs is None:
        return "none"
    return "up-and-down" if platform.turns_up else "down-only"


def playback(
    platform: Platform, integrated_lufs: float | None, true_peak_dbtp: float | None
) -> dict[str, Any]:
    """One service's row: its rule, the gain in dB it applies, and what the listener gets.

    Loudness-dependent fields are None when the integrated loudness is unknown
    (silence); a raise limited by the peak ceiling needs the true peak too.
    """
    row: dict[str, Any] = {
        "id": platform.id,
        "name": platform.name,
        "referenceLufs": platform.reference_lufs,
        "policy": policy(platform),
        "upPeakCeilingDbtp": platform.up_peak_ceiling_dbtp,
        "limiterDb": platform.limiter_db,
        "gainDb": None,
        "resultingLufs": None,
        "resultingTruePeakDbtp": None,
        "limiterActs": False,
        "confidence": platform.confidence,
        "source": platform.source,
    }
    if integrated_lufs is None or not math.isfinite(integrated_lufs):
        return row
    peak = true_peak_dbtp if true_peak_dbtp is not None and math.isfinite(true_peak_dbtp) else None
    reference = platform.reference_lufs
    wanted = 0.0 if reference is None else reference - integrated_lufs
    if wanted <= 0.0:
        gain: float | None = wanted
    elif not platform.turns_up:
        gain = 0.0
    elif platform.limiter_db is not None:
        gain = wanted
    elif peak is None:
        gain = None  # the raise depends on a peak we do not know
    else:
        assert platform.up_peak_ceiling_dbtp is not None
        gain = max(0.0, min(wanted, platform.up_peak_ceiling_dbtp - peak))
    if gain is None:
        return row
    row["gainDb"] = _r(gain)
    row["resultingLufs"] = _r(integrated_lufs + gain)
    if peak is not None:
        raised = peak + gain
        acts = platform.limiter_db is not None and gain > 0.0 and raised > platform.limiter_db
        row["limiterActs"] = acts
        row["resultingTruePeakDbtp"] = _r(platform.limiter_db if acts else raised)
    return row


def platforms_block(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The `platforms` block of a result: one playback() row per service."""
    loudness = result.get("loudness") if isinstance(result.get("loudness"), dict) else {}
    peaks = result.get("peaks") if isinstance(result.get("peaks"), dict) else {}
    integrated = _finite(loudness.get("integratedLufs"))
    peak = _finite(peaks.get("truePeakDbtp"))
    return [playback(p, integrated, peak) for p in load()]


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _r(value: float) -> float:
    return round(value, 2) + 0.0  # + 0.0: no negative zero
