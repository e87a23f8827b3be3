"""`loudness.momentarySeries`: momentary loudness every 0.5 s, for the loudness chart.

From the loudness meter's 400 ms windows at 10 Hz (`result.kept("loudness.momentary")`,
the k-th window ending at (k + 4) / 10 s): the window ending at t for t = 0.5, 1.0,
... Silent windows are null, as in shortTermSeries.
"""

from __future__ import annotations

import numpy as np

from chalicelib.analysis.blockwise import Block, Context, Result, rounded

MOMENTARY_SUB_BLOCKS = 4  # 400 ms of 100 ms sub-blocks
STEP_SUB_BLOCKS = 5  # 0.5 s


def momentary_series(momentary: np.ndarray, duration: float) -> list[dict[str, float | None]]:
    """[{t, lufs}] every 0.5 s from 10 Hz momentary values (-inf for silence)."""
    series = []
    for step in range(1, int(duration * 2 + 1e-9) + 1):
        index = step * STEP_SUB_BLOCKS - MOMENTARY_SUB_BLOCKS
        if 0 <= index < len(momentary):
            series.append({"t": step / 2, "lufs": rounded(float(momentary[index]))})
    return series


class MomentarySeriesMeter:
    """Runs after the loudness meter, from what it kept."""

    def __init__(self, context: Context) -> None:
        pass

    def add(self, block: Block) -> None:
        pass  # the loudness meter accumulates the sub-block energies

    def finish(self, result: Result) -> None:
        momentary = result.kept("loudness.momentary")
        if momentary is not None:
            series = momentary_series(np.asarray(momentary), result.duration)
            result.put("loudness.momentarySeries", series, digits=None)
