"""Plain sentences that say what to change, and by how much.

Each names the number to move and the amount: the distance from the value to the
target (for one-sided targets, to the limit itself), rounded up to a tenth, so
following the advice lands inside the tolerance and never reads "by 0.0 dB".
Advice of an impossible size (an EQ move past MAX_EQ_DB) says what to do instead.

`ADVICE` maps each metric to a small function of one `Case`; bands share one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chalicelib.analysis.bands import LABELS
from chalicelib.analysis.score import Scored

MAX_EQ_DB = 12.0  # beyond this a band needs other sounds (or a full-band reference), not EQ

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


def step(amount: float, unit: float = 0.1) -> float:
    """A change to advise: rounded up to `unit`, never 0 (a hair outside still needs a move)."""
    return max(unit, math.ceil(round(abs(amount) / unit, 6)) * unit)


@dataclass(frozen=True)
class Case:
    """One metric outside its tolerance, with what every sentence needs."""

    metric: str
    value: float
    target: Any  # targets.Target
    outcome: Scored
    whose: str  # "the target" or "the reference's"
    reference: bool

    @property
    def goal(self) -> float:
        return float(self.target.target)

    @property
    def up(self) -> bool:
        """True when the value is too low (raise it)."""
        return self.outcome.direction < 0

    @property
    def limit(self) -> float:
        """The number the table shows: a one-sided target's limit, a range's centre."""
        tolerance = float(self.target.tolerance)
        if self.target.kind == "max":
            return self.goal + tolerance
        if self.target.kind == "min":
            return self.goal - tolerance
        return self.goal

    @property
    def amount(self) -> float:
        return step(self.value - self.goal)


def _loudness(c: Case) -> str:
    if c.up:
        return (
            f"Raise the loudness by {c.amount:.1f} LU to reach {c.goal:.1f} LUFS ({c.whose}): "
            f"drive the limiter {c.amount:.1f} dB harder, keeping the true-peak ceiling."
        )
    return (
        f"Lower the loudness by {c.amount:.1f} LU to reach {c.goal:.1f} LUFS ({c.whose}): "
        f"{c.amount:.1f} dB less gain into the limiter."
    )


def _true_peak(c: Case) -> str:
    ceiling = c.limit
    clip = (
        " The peaks are above 0 dBTP: they clip in converters and lossy encoders."
        if c.value > 0.0
        else ""
    )
    # "now -1.0 dBTP" beside "to reach -1.0 dBTP" would read as already there
    now = f"{c.value:.1f}" if round(c.value, 1) != round(ceiling, 1) else f"{c.value:.2f}"
    return (
        f"Lower the limiter ceiling by {step(c.value - ceiling):.1f} dB to reach "
        f"{ceiling:.1f} dBTP (now {now} dBTP; use a true-peak limiter).{clip}"
    )


def _clipped(c: Case) -> str:
    count = int(c.value)
    return (
        f"{count} sample{'s' if count != 1 else ''} at full scale: the signal was clipped. "
        "Lower the gain before the final limiter so no sample reaches 0 dBFS."
    )


def _range(c: Case) -> str:
    if c.up:
        return (
            f"The loudness range is {c.value:.1f} LU, {c.amount:.1f} LU under {c.goal:.1f} LU "
            f"({c.whose}): ease off bus compression or let quiet sections stay quieter."
        )
    return (
        f"Reduce the loudness range by {c.amount:.1f} LU to about {c.goal:.1f} LU ({c.whose}): "
        "compress or automate the quiet and loud sections closer together."
    )


def _peak_ratio(c: Case) -> str:
    name = "peak-to-loudness ratio" if c.metric == "plrDb" else "peak-to-short-term ratio"
    where = _beyond(c, "{:.1f} dB")
    if c.up:
        return (
            f"The {name} is {c.value:.1f} dB, {where}: the master is over-limited; "
            f"back off about {c.amount:.1f} dB of limiting."
        )
    return (
        f"The {name} is {c.value:.1f} dB, {where}: there is room for about "
        f"{c.amount:.1f} dB more limiting at the same ceiling."
    )


def _crest(c: Case) -> str:
    if c.up:
        return (
            f"The crest factor is {c.value:.1f} dB, {_beyond(c, '{:.1f} dB')}: the transients "
            f"are squashed; back off about {c.amount:.1f} dB of compression or limiting."
        )
    return (
        f"The crest factor is {c.value:.1f} dB, {_beyond(c, '{:.1f} dB')}: the peaks stand "
        f"far out of the mix; about {c.amount:.1f} dB more peak control would even it out."
    )


def _correlation(c: Case) -> str:
    if c.up:
        return (
            f"Stereo correlation is {c.value:.2f}, {_beyond(c, '{:.2f}', 'below')}: check for "
            "phase problems (polarity, wideners, stereo delays) and keep the low end "
            "mono below about 120 Hz."
        )
    return (
        f"Stereo correlation is {c.value:.2f}, {_beyond(c, '{:.2f}', 'above')}: the image is "
        "narrower; pan or widen the supporting parts."
    )


def _width(c: Case) -> str:
    verb = "Widen" if c.up else "Narrow"
    points = step(c.value - c.goal, 1.0)
    return (
        f"{verb} the stereo image by about {points:.0f} points: width is {c.value:.0f} %, "
        f"{c.whose} {c.goal:.0f} %."
    )


def _balance(c: Case) -> str:
    side = "left" if c.value > c.goal else "right"
    return (
        f"The mix leans {c.amount:.1f} dB to the {side}: bring the {side} side down by "
        f"{c.amount:.1f} dB or check the panning of the main parts."
    )


def _band(c: Case) -> str:
    band = c.metric.split(".", 1)[1]
    label = LABELS[band]
    relation = "under" if c.up else "over"
    head = f"The {label} band is {c.amount:.1f} dB {relation} {c.whose} balance"
    if c.amount > MAX_EQ_DB:
        if c.up:
            return (
                f"{head}: it is nearly empty, and an EQ boost of more than {MAX_EQ_DB:.0f} dB "
                "will not fill it; add parts or sounds with energy there."
            )
        if c.reference:
            return (
                f"{head}: more than EQ should take away. Check that the reference is "
                "full-band there (a lossy or low-sample-rate reference has little energy "
                "up top); otherwise thin out the parts that fill this band."
            )
        return (
            f"{head}: more than EQ should take away ({MAX_EQ_DB:.0f} dB at most); "
            "turn down or thin out the parts that fill this band."
        )
    action = "boost" if c.up else "cut"
    return f"{head}: {action} around {_BAND_CENTRE_HZ[band]} by about {c.amount:.1f} dB."


ADVICE: dict[str, Callable[[Case], str]] = {
    "integratedLufs": _loudness,
    "truePeakDbtp": _true_peak,
    "clippedSamples": _clipped,
    "rangeLu": _range,
    "plrDb": _peak_ratio,
    "psrDb": _peak_ratio,
    "crestFactorDb": _crest,
    "correlation": _correlation,
    "widthPercent": _width,
    "balanceDb": _balance,
    **{f"band.{band}": _band for band in LABELS},
}


def suggestion(metric: str, value: float, target: Any, outcome: Scored, mode: str) -> str:
    """One sentence for a metric outside its tolerance."""
    reference = mode == "reference"
    case = Case(
        metric, value, target, outcome, "the reference's" if reference else "the target", reference
    )
    advice = ADVICE.get(metric)
    if advice is None:
        return f"{metric} is {value:g}; {case.whose} is {case.goal:g}."
    return advice(case)


def _beyond(c: Case, number: str, word: str = "") -> str:
    """Where the value sits, against the same number the report's table shows.

    A range target is its centre ("4.5 dB under 6.5 dB (the target)"). A one-sided
    target's table column shows its limit (target - tolerance for a minimum), so
    the sentence names that limit and then the centre to aim for, instead of
    calling the centre "the target" next to a different number.
    """
    target = c.target
    if target.kind in ("min", "max") and target.tolerance:
        side = "minimum" if target.kind == "min" else "maximum"
        owner = "the reference's" if c.reference else "the target's"
        word = word or ("under" if c.up else "over")
        return (
            f"{word} {owner} {side} of {number.format(c.limit)} "
            f"(aim for about {number.format(c.goal)})"
        )
    if word:
        return f"{word} {number.format(c.goal)} ({c.whose})"
    amount = number.format(c.amount).replace(" dB", "")
    return f"{amount} dB {'under' if c.up else 'over'} {number.format(c.goal)} ({c.whose})"
