"""A result dict as a readable text report: the main numbers, the score, the advice.

Used by `soundcheck analyze` and by `soundcheck submit`, which gets the result as
JSON from the API, so this module needs nothing but the dict (no numpy) and
copes with any block or value being null.
"""

from __future__ import annotations

import math
from typing import Any

_WIDTH = 24  # label column
_BAR = 30  # characters of a 100 % share bar


def render(result: dict[str, Any], title: str | None = None) -> str:
    """The report as lines of text, headed by `title` (a file name) when given."""
    lines: list[str] = []
    if title:
        lines += [f"soundcheck: {title}", ""]
    lines += _file(result.get("file") or {})
    lines += _section(
        "Loudness",
        result.get("loudness"),
        [
            ("Integrated", "integratedLufs", "LUFS", 1),
            ("Loudness range", "rangeLu", "LU", 1),
            ("Momentary max", "momentaryMaxLufs", "LUFS", 1),
            ("Short-term max", "shortTermMaxLufs", "LUFS", 1),
        ],
    )
    peaks = [
        ("True peak", "truePeakDbtp", "dBTP", 1),
        ("Sample peak", "samplePeakDbfs", "dBFS", 1),
        ("Clipped samples", "clippedSamples", "", 0),
    ]
    if (result.get("file") or {}).get("lossy"):
        # Samples past full scale in a lossy decode are the codec's, not the master's:
        # shown apart, and not scored as clipping (see the comparison's lossy advice).
        peaks.append(("Codec overshoot", "overshootSamples", "", 0))
    lines += _section("Peaks", result.get("peaks"), peaks)
    lines += _section(
        "Dynamics",
        result.get("dynamics"),
        [
            ("RMS", "rmsDbfs", "dBFS", 1),
            ("Crest factor", "crestFactorDb", "dB", 1),
            ("PLR (peak to loudness)", "plrDb", "dB", 1),
            ("PSR (peak to short-term)", "psrDb", "dB", 1),
        ],
    )
    if result.get("stereo") is None:
        lines += ["Stereo", "  (mono: no stereo image)", ""]
    else:
        lines += _section(
            "Stereo",
            result["stereo"],
            [
                ("Correlation", "correlation", "", 2),
                ("Width", "widthPercent", "%", 0),
                ("Balance (+ = left)", "balanceDb", "dB", 1),
            ],
        )
    lines += _spectrum(result.get("spectrum") or {})
    lines += _platforms(result.get("platforms"))
    lines += _comparison(result.get("comparison") or {})
    reasons = result.get("reasons") or {}
    if reasons:
        lines.append("Not measured")
        lines += [f"  {field}: {why}" for field, why in reasons.items()]
    return "\n".join(lines).rstrip() + "\n"


def _number(value: Any, unit: str = "", digits: int = 1) -> str:
    """A right-aligned number and its unit in fixed columns, or n/a."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return f"{'n/a':>9} {'':<4}"
    return f"{round(value, digits) + 0.0:>9.{digits}f} {unit:<4}"


def _file(info: dict[str, Any]) -> list[str]:
    parts = [
        " ".join(str(info[k]) for k in ("format", "subtype") if info.get(k)),
        f"{info['sampleRate']} Hz" if info.get("sampleRate") else "",
        str(info.get("layout") or (f"{info['channels']} ch" if info.get("channels") else "")),
        _duration(info.get("durationSeconds")),
        _lossy(info),
    ]
    return [f"{'File':<{_WIDTH + 2}}" + ", ".join(p for p in parts if p), ""]


def _lossy(info: dict[str, Any]) -> str:
    """ "lossy, audio up to 16.9 kHz": what a lossy source can and cannot show."""
    if not info.get("lossy"):
        return ""
    bandwidth = info.get("bandwidthHz")
    nyquist = (info.get("sampleRate") or 0) / 2
    if isinstance(bandwidth, int | float) and bandwidth < nyquist:
        return f"lossy, audio up to {bandwidth / 1000:.1f} kHz"
    return "lossy"


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return ""
    minutes, rest = divmod(float(seconds), 60.0)
    return f"{int(minutes)}:{rest:04.1f}"


def _section(name: str, block: Any, rows: list[tuple[str, str, str, int]]) -> list[str]:
    block = block if isinstance(block, dict) else {}
    lines = [name]
    for label, key, unit, digits in rows:
        lines.append(f"  {label:<{_WIDTH}}{_number(block.get(key), unit, digits)}".rstrip())
    return [*lines, ""]


def _spectrum(spectrum: dict[str, Any]) -> list[str]:
    """Each band under its one name, on the comparison's scale: dB relative to the whole
    mix (the bar is the same number as a share of the energy)."""
    from chalicelib.analysis.bands import LABELS

    bands = [b for b in spectrum.get("bands") or [] if isinstance(b, dict)]
    if not bands:
        return []
    levels = [b.get("energyDb") for b in bands]
    present = [v for v in levels if isinstance(v, int | float)]
    total = 10.0 * math.log10(sum(10.0 ** (v / 10.0) for v in present)) if present else None
    lines = [f"{'Spectrum (vs the whole mix)':<{_WIDTH + 2}}{'level':>9}"]
    for band, level in zip(bands, levels, strict=True):
        name = str(band.get("name"))
        label = LABELS.get(name) or f"{name} {_hz(band.get('lowHz'))}-{_hz(band.get('highHz'))}"
        relative = level - total if isinstance(level, int | float) and total is not None else None
        share = 100.0 * 10.0 ** (relative / 10.0) if relative is not None else 0.0
        bar = "#" * round(_BAR * share / 100.0)
        lines.append(f"  {label:<{_WIDTH}}{_number(relative, 'dB')} {bar}".rstrip())
    lines.append(f"  {'Centroid':<{_WIDTH}}{_number(spectrum.get('centroidHz'), 'Hz', 0)}".rstrip())
    return [*lines, ""]


_POLICIES = {"up-and-down": "up+down", "down-only": "down only", "none": "not normalised"}


def _platforms(rows: Any) -> list[str]:
    """Streaming services: their level, what they do, the gain and what listeners get."""
    rows = [r for r in rows or [] if isinstance(r, dict)] if isinstance(rows, list) else []
    if not rows:
        return []
    lines = [
        f"{'Streaming playback':<{_WIDTH + 10}}{'ref':>4}  {'policy':<15}{'gain':>7}"
        f"{'plays at':>10}{'peak':>8}  limiter"
    ]
    for row in rows:
        reference = row.get("referenceLufs")
        ref = f"{reference:.0f}" if isinstance(reference, int | float) else "-"
        limiter = "acts" if row.get("limiterActs") else ""
        confidence = row.get("confidence")
        name = str(row.get("name") or row.get("id") or "?")
        lines.append(
            f"  {name[: _WIDTH + 7]:<{_WIDTH + 8}}{ref:>4}  "
            f"{_POLICIES.get(str(row.get('policy')), '?'):<15}"
            f"{_signed(row.get('gainDb')):>7}{_plain(row.get('resultingLufs'), 1):>10}"
            f"{_plain(row.get('resultingTruePeakDbtp'), 1):>8}  "
            f"{limiter}{'' if confidence == 'high' else f' ({confidence} confidence)'}".rstrip()
        )
    lines.append("  (gain in dB; plays at in LUFS; peak in dBTP)")
    return [*lines, ""]


def _signed(value: Any) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "n/a"
    return f"{round(value, 1) + 0.0:+.1f}"


def _hz(value: Any) -> str:
    if not isinstance(value, int | float):
        return "?"
    return f"{value / 1000:g}k" if value >= 1000 else f"{value:g}"


def _comparison(comparison: dict[str, Any]) -> list[str]:
    if not comparison:
        return []
    score = comparison.get("score")
    against = comparison.get("targetTitle") or comparison.get("target") or "?"
    mode = comparison.get("mode") or "genre"
    heading = f"Score {score}/100" if isinstance(score, int | float) else "Score n/a"
    # "against Streaming (genre)" read as if streaming were a genre: name the mode only
    # where it is not the name itself.
    lines = [f"{heading} against {against}" + (" (reference)" if mode == "reference" else "")]
    if comparison.get("reason"):
        lines.append(f"  ({comparison['reason']})")
    rows = [m for m in comparison.get("metrics") or [] if isinstance(m, dict)]
    if rows:
        lines.append(f"  {'metric':<{_WIDTH + 4}}{'value':>14}  {'target':<20}status")
    for row in rows:
        unit = row.get("unit") or ""
        digits = 0 if row.get("metric") == "clippedSamples" else 2
        value = _plain(row.get("value"), digits)
        if value != "n/a" and unit:
            value += f" {unit}"
        target = _target(row, digits) + (
            f" {unit}" if unit and row.get("target") is not None else ""
        )
        lines.append(
            f"  {row.get('label') or row.get('metric')!s:<{_WIDTH + 4}}"
            f"{value:>14}  {target:<20}{_status(row)}"
        )
    suggestions = [s for s in comparison.get("suggestions") or [] if isinstance(s, dict)]
    lines.append("")
    if suggestions:
        lines.append("Suggestions")
        for item in suggestions:
            lines.append(f"  [{item.get('severity')}] {item.get('message')}")
    elif isinstance(score, int | float):
        lines.append("Suggestions: none, everything is within its target.")
    return [*lines, ""]


def _status(row: dict[str, Any]) -> str:
    """Direction and severity apart: "too quiet, high"; "ok"; "n/a" when not measured."""
    severity = row.get("status") or ""
    if severity == "unavailable":
        return "n/a"
    verdict = row.get("verdict")
    return f"{verdict}, {severity}" if verdict and severity != "ok" else str(severity)


def _plain(value: Any, digits: int) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "n/a"
    return f"{round(value, digits) + 0.0:.{digits}f}"


def _target(row: dict[str, Any], digits: int) -> str:
    target, tolerance = row.get("target"), row.get("tolerance")
    if not isinstance(target, int | float):
        return "n/a"
    kind = row.get("kind", "range")
    if kind == "max":
        return f"<= {target + (tolerance or 0):.{digits}f}"
    if kind == "min":
        return f">= {target - (tolerance or 0):.{digits}f}"
    if tolerance:
        return f"{target:.{digits}f} ±{tolerance:g}"
    return f"{target:.{digits}f}"
