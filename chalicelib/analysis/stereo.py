"""Stereo image of the front pair: correlation, width and left/right balance.

From three sums over the whole track in float64: LL, RR and LR, added up from
the sums of each second that stereo_series keeps for the correlation over time
(made in C from the float32 samples). Correlation is
the normalised cross product (+1 mono, 0 unrelated, -1 out of phase). Width is
the side energy as a share of the total, scaled so that mono is 0 %, unrelated
channels 100 % and fully out-of-phase 200 % (it equals 100 * (1 - correlation)
when both sides are equally loud). Balance is the left/right energy ratio in
dB, positive when the left is louder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from chalicelib.analysis import channels
from chalicelib.analysis.blockwise import Block, Context, Result
from chalicelib.analysis.stereo_series import CorrelationAccumulator


@dataclass(frozen=True)
class Stereo:
    correlation: float | None
    width_percent: float | None
    balance_db: float | None


def stereo_image(ll: float, rr: float, lr: float) -> Stereo:
    """The image from the sums of L*L, R*R and L*R."""
    both = ll + rr
    correlation = lr / math.sqrt(ll * rr) if ll > 0.0 and rr > 0.0 else None
    width = 100.0 * (both - 2.0 * lr) / both if both > 0.0 else None
    balance = 10.0 * math.log10(ll / rr) if ll > 0.0 and rr > 0.0 else None
    if correlation is not None:
        correlation = max(-1.0, min(1.0, correlation))
    if width is not None:
        width = max(0.0, min(200.0, width))
    return Stereo(correlation, width, balance)


class StereoMeter:
    """The stereo block of the front pair (FL/FR, else the first two channels): the
    image from LL, RR and LR over the whole track, and the views over time and of
    the low end (stereo_series); `stereo: null` for mono."""

    def __init__(self, context: Context) -> None:
        self._pair = channels.front_pair(context.positions)
        self._sums = CorrelationAccumulator(context.sample_rate)

    def add(self, block: Block) -> None:
        if self._pair is not None:
            self._sums.add_rows(block.samples, *self._pair)

    def finish(self, result: Result) -> None:
        if self._pair is None:
            result.put("stereo", None, reason="mono: a single channel has no stereo image")
            return
        image = stereo_image(*self._sums.sums())
        one_silent = "a channel of the front pair is silent"
        result.put("stereo.correlation", image.correlation, digits=3, reason=one_silent)
        both_silent = "silence: both channels of the front pair are zero"
        result.put("stereo.widthPercent", image.width_percent, digits=1, reason=both_silent)
        result.put("stereo.balanceDb", image.balance_db, reason=one_silent)
        found = self._sums.result()
        result.put("stereo.correlationSeries", found["correlationSeries"], digits=None)
        result.put(
            "stereo.lowEndCorrelation",
            found["lowEndCorrelation"],
            digits=3,
            reason="a channel of the front pair has nothing below 150 Hz",
        )
