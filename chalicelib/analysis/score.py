"""From a value and its target to a 0-100 score and a severity.

Inside the tolerance a metric scores 100. Beyond it, with e the excess over the
tolerance edge and f the metric's falloff, the score is 100 / (1 + (e/f)^2): a
smooth curve (flat at the edge, so a hair outside costs almost nothing) that is
50 at one falloff, 20 at two and 10 at three, and never quite 0, so further
improvement always shows. The track's score is the weighted mean of its metrics'.

Severity follows the excess: ok inside the tolerance, attention up to half a
falloff beyond it, high up to one and a half, critical past that. A true peak
above 0 dBTP is critical whatever the target: it clips in converters and codecs.
"""

from __future__ import annotations

from dataclasses import dataclass

SEVERITIES = ("ok", "attention", "high", "critical")


@dataclass(frozen=True)
class Scored:
    score: float
    severity: str
    excess: float  # distance beyond the tolerance edge, 0 inside
    direction: int  # +1 above the target window, -1 below, 0 inside


def excess(value: float, kind: str, target: float, tolerance: float) -> tuple[float, int]:
    """(how far beyond the tolerance, which side) for range / max / min targets."""
    above = value - (target + tolerance)
    below = (target - tolerance) - value
    if kind in ("range", "max") and above > 0:
        return above, 1
    if kind in ("range", "min") and below > 0:
        return below, -1
    return 0.0, 0


def score_metric(
    metric: str, value: float, kind: str, target: float, tolerance: float, falloff: float
) -> Scored:
    over, direction = excess(value, kind, target, tolerance)
    ratio = over / falloff if falloff > 0 else float("inf") if over > 0 else 0.0
    score = 100.0 / (1.0 + ratio * ratio)
    if over == 0.0:
        severity = "ok"
    elif ratio <= 0.5:
        severity = "attention"
    elif ratio <= 1.5:
        severity = "high"
    else:
        severity = "critical"
    if metric == "truePeakDbtp" and value > 0.0:
        severity = "critical"
    return Scored(score, severity, over, direction)


def overall(scores: list[tuple[float, float]]) -> int | None:
    """Weighted mean of (score, weight) pairs, rounded; None when nothing was scored."""
    weight = sum(w for _, w in scores)
    if weight <= 0:
        return None
    return round(sum(s * w for s, w in scores) / weight)
