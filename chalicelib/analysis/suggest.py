"""Plain sentences that say what to change, and by how much.

Each names the number to move and the amount: the distance from the value to
the target (for one-sided targets, to the limit itself), so following the
advice lands inside the tolerance with margin.
"""

from __future__ import annotations

from typing import Any

from chalicelib.analysis.bands import LABELS
from chalicelib.analysis.score import Scored

MAX_EQ_DB = 12.0  # beyond this a band needs other sounds, not EQ

# Centre frequency to name for an EQ move in each band.
_BAND_CENTRE_HZ = {
    "sub": "40 Hz",
    "bass": "100 Hz",
    "lowMid": "300 Hz",
    "mid": "1 kHz",
    "highMid": "3 kHz",
    "presence": "7 kHz",
    "air": "12 kHz",
}


def suggestion(metric: str, value: float, target: Any, outcome: Scored, mode: str) -> str:
    """One sentence for a metric outside its tolerance."""
    goal = target.target
    amount = abs(value - goal)
    up = outcome.direction < 0  # the value is too low: raise it
    whose = "the reference's" if mode == "reference" else "the target"
    if metric == "integratedLufs":
        if up:
            return (
                f"Raise the loudness by {amount:.1f} LU to reach {goal:.1f} LUFS ({whose}): "
                f"drive the limiter {amount:.1f} dB harder, keeping the true-peak ceiling."
            )
        return (
            f"Lower the loudness by {amount:.1f} LU to reach {goal:.1f} LUFS ({whose}): "
            f"{amount:.1f} dB less gain into the limiter."
        )
    if metric == "truePeakDbtp":
        clip = (
            " The peaks are above 0 dBTP: they clip in converters and lossy encoders."
            if (value > 0.0)
            else ""
        )
        return (
            f"Lower the limiter ceiling by {amount:.1f} dB to reach {goal:.1f} dBTP "
            f"(now {value:.1f} dBTP; use a true-peak limiter).{clip}"
        )
    if metric == "clippedSamples":
        return (
            f"{int(value)} sample{'s' if value != 1 else ''} at full scale: the signal was "
            "clipped. Lower the gain "
            "before the final limiter so no sample reaches 0 dBFS."
        )
    if metric == "rangeLu":
        if up:
            return (
                f"The loudness range is {value:.1f} LU, {amount:.1f} LU under {goal:.1f} LU "
                f"({whose}): ease off bus compression or let quiet sections stay quieter."
            )
        return (
            f"Reduce the loudness range by {amount:.1f} LU to about {goal:.1f} LU ({whose}): "
            "compress or automate the quiet and loud sections closer together."
        )
    if metric in ("plrDb", "psrDb"):
        name = "peak-to-loudness ratio" if metric == "plrDb" else "peak-to-short-term ratio"
        where = _beyond(value, target, whose, up, "{:.1f} dB")
        if up:
            return (
                f"The {name} is {value:.1f} dB, {where}: the master is over-limited; "
                f"back off about {amount:.1f} dB of limiting."
            )
        return (
            f"The {name} is {value:.1f} dB, {where}: there is room for about "
            f"{amount:.1f} dB more limiting at the same ceiling."
        )
    if metric == "correlation":
        if up:
            return (
                f"Stereo correlation is {value:.2f}, "
                f"{_beyond(value, target, whose, up, '{:.2f}', 'below')}: check for "
                "phase problems (polarity, wideners, stereo delays) and keep the low end "
                "mono below about 120 Hz."
            )
        return (
            f"Stereo correlation is {value:.2f}, "
            f"{_beyond(value, target, whose, up, '{:.2f}', 'above')}: the image is "
            "narrower; pan or widen the supporting parts."
        )
    if metric == "widthPercent":
        verb = "Widen" if up else "Narrow"
        return (
            f"{verb} the stereo image by about {amount:.0f} points: width is {value:.0f} %, "
            f"{whose} {goal:.0f} %."
        )
    if metric == "balanceDb":
        side = "left" if value > goal else "right"
        return (
            f"The mix leans {amount:.1f} dB to the {side}: bring the {side} side down by "
            f"{amount:.1f} dB or check the panning of the main parts."
        )
    if metric.startswith("band."):
        band = metric.split(".", 1)[1]
        action, relation = ("boost", "under") if up else ("cut", "over")
        if up and amount > MAX_EQ_DB:
            return (
                f"The {LABELS[band]} band is {amount:.1f} dB {relation} {whose} balance: it is "
                f"nearly empty, and an EQ boost of more than {MAX_EQ_DB:.0f} dB will not fill "
                "it; add parts or sounds with energy there."
            )
        return (
            f"The {LABELS[band]} band is {amount:.1f} dB {relation} {whose} balance: "
            f"{action} around {_BAND_CENTRE_HZ[band]} by about {amount:.1f} dB."
        )
    return f"{metric} is {value:g}; {whose} is {goal:g}."


def _beyond(value: float, target: Any, whose: str, up: bool, number: str, word: str = "") -> str:
    """Where the value sits, against the same number the report's table shows.

    A range target is its centre ("4.5 dB under 6.5 dB (the target)"). A one-sided
    target's table column shows its limit (target - tolerance for a minimum), so
    the sentence names that limit and then the centre to aim for, instead of
    calling the centre "the target" next to a different number.
    """
    goal = target.target
    if target.kind in ("min", "max") and target.tolerance:
        limit = goal - target.tolerance if target.kind == "min" else goal + target.tolerance
        side = "minimum" if target.kind == "min" else "maximum"
        owner = "the reference's" if whose == "the reference's" else "the target's"
        word = word or ("under" if up else "over")
        return (
            f"{word} {owner} {side} of {number.format(limit)} (aim for about {number.format(goal)})"
        )
    if word:
        return f"{word} {number.format(goal)} ({whose})"
    amount = number.format(abs(value - goal)).replace(" dB", "")
    return f"{amount} dB {'under' if up else 'over'} {number.format(goal)} ({whose})"
