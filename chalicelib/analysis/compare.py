"""The `comparison` block: a result against a genre's targets or a reference track.

Both modes produce the same rows (metric, value, target, tolerance, status) and
use the same scoring; they differ only in where the targets come from. Pure
Python on the result dict, so a stored result can be re-compared without audio.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from chalicelib.analysis import targets as target_sets
from chalicelib.analysis.bands import BANDS, LABELS
from chalicelib.analysis.errors import AnalysisError
from chalicelib.analysis.score import SEVERITIES, overall, score_metric
from chalicelib.analysis.suggest import suggestion


@dataclass(frozen=True)
class Metric:
    label: str
    unit: str
    path: tuple[str, str]  # (block, field) in the result
    below: str  # what a value under its target means, in words ("too quiet")
    above: str  # and one over it ("too loud")


METRICS: dict[str, Metric] = {
    "integratedLufs": Metric(
        "Integrated loudness", "LUFS", ("loudness", "integratedLufs"), "too quiet", "too loud"
    ),
    "truePeakDbtp": Metric("True peak", "dBTP", ("peaks", "truePeakDbtp"), "low", "too hot"),
    "clippedSamples": Metric(
        "Clipped samples", "samples", ("peaks", "clippedSamples"), "", "clipped"
    ),
    "rangeLu": Metric("Loudness range", "LU", ("loudness", "rangeLu"), "too even", "too uneven"),
    "plrDb": Metric(
        "Peak-to-loudness ratio", "dB", ("dynamics", "plrDb"), "over-limited", "under-limited"
    ),
    "psrDb": Metric(
        "Peak-to-short-term ratio", "dB", ("dynamics", "psrDb"), "over-limited", "under-limited"
    ),
    "crestFactorDb": Metric(
        "Crest factor", "dB", ("dynamics", "crestFactorDb"), "squashed", "too peaky"
    ),
    "correlation": Metric(
        "Stereo correlation", "", ("stereo", "correlation"), "out of phase", "too narrow"
    ),
    "widthPercent": Metric("Stereo width", "%", ("stereo", "widthPercent"), "narrow", "wide"),
    "balanceDb": Metric(
        "L/R balance (+ = left)", "dB", ("stereo", "balanceDb"), "leans right", "leans left"
    ),
    # A band's one name (LABELS) and one scale (dB relative to the whole mix) are the
    # same here and in the report's spectrum section.
    **{
        f"band.{name}": Metric(LABELS[name], "dB", ("spectrum", name), "too little", "too much")
        for name, _, _ in BANDS
    },
}
SEVERITY_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}


def metric_value(result: dict[str, Any], metric: str) -> float | None:
    """The number a metric compares, from a result; None when it does not exist.

    A band's value is its energy relative to the 20 Hz - 20 kHz total, in dB (its
    share, on a scale where a tolerance means the same for bass and air).
    """
    block, name = METRICS[metric].path
    section = result.get(block)
    if not isinstance(section, dict):
        return None
    if block == "spectrum":
        levels = {
            band.get("name"): band.get("energyDb")
            for band in section.get("bands") or []
            if isinstance(band, dict)
        }
        present = [v for v in levels.values() if isinstance(v, int | float)]
        level = levels.get(name)
        if not isinstance(level, int | float) or not present:
            return None
        total = 10.0 * math.log10(sum(10.0 ** (v / 10.0) for v in present))
        return round(level - total, 2)
    value = section.get(name)
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def compare(
    result: dict[str, Any], genre: str | None = None, reference: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The comparison block: against `reference` (a result) if given, else a genre."""
    if reference is not None:
        check_reference(reference)
        spec = target_sets.load_reference(reference, metric_value)
        mode = "reference"
    else:
        spec = target_sets.load(genre)
        mode = "genre"
    rows, scored, suggestions = [], [], []
    for metric, target in spec.targets.items():
        info = METRICS[metric]
        value = metric_value(result, metric)
        row: dict[str, Any] = {
            "metric": metric,
            "label": info.label,
            "unit": info.unit,
            "value": value,
            "target": target.target,
            "tolerance": target.tolerance,
            "kind": target.kind,
            "status": "unavailable",  # the severity: ok, attention, high, critical
            "direction": None,  # "below" or "above" the target when outside it
            "verdict": None,  # the direction in words: "too quiet", "too hot"
            "score": None,
        }
        rows.append(row)
        if value is None:
            continue
        outcome = score_metric(
            metric, value, target.kind, target.target, target.tolerance, target.falloff
        )
        row["status"] = outcome.severity
        row["score"] = round(outcome.score)
        if outcome.direction:
            row["direction"] = "above" if outcome.direction > 0 else "below"
            row["verdict"] = info.above if outcome.direction > 0 else info.below
        scored.append((outcome.score, target.weight))
        if outcome.severity != "ok":
            message = suggestion(metric, value, target, outcome, mode)
            # Most severe first; within a severity, the score points a fix would
            # win back; peaks above 0 dBTP lead whatever their weight.
            urgent = metric == "truePeakDbtp" and value > 0.0
            impact = float("inf") if urgent else target.weight * (100.0 - outcome.score)
            rank = SEVERITY_RANK[outcome.severity]
            item = {"metric": metric, "severity": outcome.severity, "message": message}
            suggestions.append((item, (rank, impact)))
    suggestions.sort(key=lambda pair: (-pair[1][0], -pair[1][1]))
    advice = lossy_source_advice(result)
    if advice is not None:  # about the file, not the mix: after the mix's own advice
        suggestions.append((advice, (0, 0.0)))
    block: dict[str, Any] = {
        "mode": mode,
        "target": spec.name,
        "targetTitle": spec.title,
        "score": overall(scored),
        "metrics": rows,
        "suggestions": [item for item, _ in suggestions],
    }
    if "integratedLufs" in spec.targets and metric_value(result, "integratedLufs") is None:
        # Without a loudness there is nothing a mastering score could stand on.
        block["score"] = None
        block["reason"] = "no integrated loudness (silence or shorter than 400 ms): not scored"
    return block


# The codec as musicians name it, for advice (file.subtype keeps libsndfile's names).
_CODEC_NAMES = {
    "MPEG_LAYER_III": "MP3",
    "MPEG_LAYER_II": "MP2",
    "VORBIS": "Ogg Vorbis",
    "OPUS": "Opus",
    "AAC": "AAC",
    "AC3": "AC-3",
    "EAC3": "E-AC-3",
}


def lossy_source_advice(result: dict[str, Any]) -> dict[str, Any] | None:
    """For a lossy file: what it cannot show, and to upload the lossless master instead.

    A lossy encoder removes what is above its low-pass and adds overshoot past
    full scale; neither is a fault of the mix, so neither is scored.
    """
    file = result.get("file")
    if not isinstance(file, dict) or not file.get("lossy"):
        return None
    subtype = file.get("subtype")
    name = _CODEC_NAMES.get(str(subtype), subtype or file.get("format") or "lossy")
    bandwidth = file.get("bandwidthHz")
    ends = (
        f"its bandwidth ends at {bandwidth / 1000:.1f} kHz (the encoder's low-pass), "
        "so the bands above are not scored, and "
        if isinstance(bandwidth, int | float) and bandwidth < file.get("sampleRate", 0) / 2
        else ""
    )
    return {
        "metric": "file",
        "severity": "attention",
        "message": (
            f"This is a lossy file ({name}): {ends}samples past full scale are the codec's "
            "overshoot, not clipping. Upload the lossless master (WAV, FLAC or AIFF) to "
            "measure the mix itself."
        ),
    }


def check_reference(reference: Any) -> None:
    if not isinstance(reference, dict) or not all(
        isinstance(reference.get(block), dict) for block in ("loudness", "peaks", "dynamics")
    ):
        raise AnalysisError(
            "invalid_reference", "the reference must be an analysis result (a dict with its blocks)"
        )
