"""Loudness per ITU-R BS.1770-4 and EBU R 128 / Tech 3341 / Tech 3342, block by block.

Everything is built on one series: the K-weighted, channel-weighted energy of
consecutive 100 ms sub-blocks. `LoudnessMeter` filters each decoded block with
the filter state carried over from the last, so a sub-block or a window may
straddle blocks freely. A 400 ms momentary block is 4 sub-blocks, a 3 s
short-term window 30, and both step by one sub-block (10 Hz): the per-sample
work is one filter pass and one weighted sum of squares, done together in C
(`kernels/kweighting.c`, through `native`).
"""

from __future__ import annotations

import ctypes
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from chalicelib.analysis import channels, ffmpeg, native
from chalicelib.analysis.blockwise import Block, Context, Result, blocks_of, rounded

SUB_BLOCKS_PER_SECOND = 10
MOMENTARY_SUB_BLOCKS = 4  # 400 ms
SHORT_TERM_SUB_BLOCKS = 30  # 3 s
ABSOLUTE_GATE_LUFS = -70.0
RELATIVE_GATE_LU = -10.0
LRA_RELATIVE_GATE_LU = -20.0
LRA_PERCENTILES = (10.0, 95.0)
_OFFSET = -0.691  # BS.1770: cancels the K-weighting gain at 997 Hz

# K-weighting as analogue prototypes (libebur128's parameters, "DeMan" in
# pyloudnorm), mapped to any rate by the bilinear transform. At 48 kHz they give
# the coefficients of BS.1770-4 Tables 1 and 2 to within 1e-8.
_SHELF_HZ = 1681.974450955533
_SHELF_GAIN_DB = 3.999843853973347
_SHELF_Q = 0.7071752369554196
_SHELF_VB_EXPONENT = 0.4996667741545416
_HIGHPASS_HZ = 38.13547087602444
_HIGHPASS_Q = 0.5003270373238773


def k_weighting_sos(sample_rate: int) -> np.ndarray:
    """The two K-weighting stages as second-order sections for this sample rate."""
    k = math.tan(math.pi * _SHELF_HZ / sample_rate)
    vh = 10.0 ** (_SHELF_GAIN_DB / 20.0)
    vb = vh**_SHELF_VB_EXPONENT
    a0 = 1.0 + k / _SHELF_Q + k * k
    shelf = [
        (vh + vb * k / _SHELF_Q + k * k) / a0,
        2.0 * (k * k - vh) / a0,
        (vh - vb * k / _SHELF_Q + k * k) / a0,
        1.0,
        2.0 * (k * k - 1.0) / a0,
        (1.0 - k / _SHELF_Q + k * k) / a0,
    ]
    k = math.tan(math.pi * _HIGHPASS_HZ / sample_rate)
    a0 = 1.0 + k / _HIGHPASS_Q + k * k
    highpass = [
        1.0,
        -2.0,
        1.0,
        1.0,
        2.0 * (k * k - 1.0) / a0,
        (1.0 - k / _HIGHPASS_Q + k * k) / a0,
    ]
    return np.array([shelf, highpass])


def sub_block_bounds(count: int, sample_rate: int) -> np.ndarray:
    """Start sample of sub-blocks 0 .. count-1, plus the end of the last.

    Sub-block k covers samples [k*rate/10, (k+1)*rate/10), rounded down, so rates
    that are not multiples of 10 Hz still get blocks "to the nearest sample".
    """
    return np.arange(count + 1, dtype=np.int64) * sample_rate // SUB_BLOCKS_PER_SECOND


_KWEIGHTING = native.Function(
    "soundcheck_kweighting",
    None,
    native.array(np.float32, 2),  # samples (channels, frames)
    ctypes.c_int64,  # frames
    native.array(np.int64),  # used channels
    native.array(np.float64),  # their gains
    ctypes.c_int64,  # how many
    native.array(np.float64, 2),  # sos (2, 6)
    native.array(np.float64, 2, writeable=True),  # state (used, 4)
    native.array(np.int64),  # segment ends
    ctypes.c_int64,  # segments
    native.array(np.float64, writeable=True),  # energies (segments,)
)


class KWeighting:
    """BS.1770-4 K-weighting of the measured channels of float32 blocks, with the
    weighted energy of each segment of a block, in one pass (C: kernels/kweighting.c).

    `gains`: one weight per channel of the blocks (BS.1770-4 Table 3); channels of
    weight 0 (the LFE) are not filtered at all. The filter runs in float64 straight
    from the float32 samples (no float64 copy), as two cascaded biquads
    (`k_weighting_sos`, scipy.signal.sosfilt's operations) whose memories, `state`
    (measured channels, 4) as sosfilt's zi, carry over from one call to the next.
    Raises RuntimeError when the C kernels are not built (see `native`).
    """

    def __init__(self, sample_rate: int, gains: Sequence[float]) -> None:
        self.channels = len(gains)
        self.used = np.array([c for c, g in enumerate(gains) if g > 0.0], dtype=np.int64)
        self.gains = np.array([gains[c] for c in self.used], dtype=np.float64)
        self.sos = np.ascontiguousarray(k_weighting_sos(sample_rate), dtype=np.float64)
        self.state = np.zeros((len(self.used), 4))
        if len(self.used):
            native.library()  # fail here, before any audio, if the kernels are missing

    def energies(self, samples: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """Energy per segment of a block.

        samples: float32 (channels, n), C-contiguous. ends: int64, ascending within
        [0, n]: segment k is [ends[k-1], ends[k]), the first starts at 0, the last
        [ends[-1], n) (empty when ends[-1] == n). Returns float64 (len(ends) + 1,):
        per segment, the sum over measured channels of gain x the sum of squared
        K-weighted samples. Raises ValueError for another channel count or bad
        ends, ctypes.ArgumentError for another dtype or a non-contiguous array.
        """
        if samples.ndim != 2 or samples.shape[0] != self.channels:
            raise ValueError(f"samples shaped {samples.shape}, not ({self.channels}, n)")
        n = samples.shape[1]
        if ends.ndim != 1 or (
            len(ends) and not (ends[0] >= 0 and ends[-1] <= n and (ends[1:] >= ends[:-1]).all())
        ):
            raise ValueError(f"segment ends {ends} are not ascending within 0..{n}")
        energies = np.zeros(len(ends) + 1)
        if len(self.used):
            _KWEIGHTING(
                samples, n, self.used, self.gains, len(self.used), self.sos, self.state,
                ends, len(energies), energies,
            )  # fmt: skip
        return energies


class LoudnessMeter:
    """Accumulates the K-weighted energy of every complete 100 ms sub-block.

    The filter runs in float64 (a float32 square overflows at 1.8e19 and
    underflows below 1e-23, and float files hold both) straight from the float32
    samples, on the measured channels only (the LFE has weight 0), with its state
    carried between blocks (`KWeighting`). Raises RuntimeError when the C kernels
    are not built (see `native`).
    """

    def __init__(self, context: Context) -> None:
        self._filter = KWeighting(context.sample_rate, channels.weights(context.positions))
        self._rate = context.sample_rate
        self._energies: list[np.ndarray] = []
        self._partial = 0.0  # energy of the sub-block under way
        self._completed = 0  # complete sub-blocks so far
        self._frames = 0

    def add(self, block: Block) -> None:
        start, stop = self._frames, self._frames + block.frames
        self._frames = stop
        if not self.measured:
            return
        # The ends of the sub-blocks that complete in this block, relative to it:
        # sub-block k ends at k*rate//10 (sub_block_bounds), complete once <= stop.
        last = (SUB_BLOCKS_PER_SECOND * stop + SUB_BLOCKS_PER_SECOND - 1) // self._rate
        ends = np.arange(self._completed + 1, last + 1, dtype=np.int64)
        ends = ends * self._rate // SUB_BLOCKS_PER_SECOND - start
        sums = self._filter.energies(block.samples, ends)
        sums[0] += self._partial
        if len(ends):
            self._energies.append(sums[:-1])
        self._partial = float(sums[-1])
        self._completed += len(ends)

    @property
    def measured(self) -> bool:
        """False when every channel has weight 0 (a file of LFE channels only)."""
        return len(self._filter.used) > 0

    def energies(self) -> tuple[np.ndarray, np.ndarray]:
        """(energy, sample count) of each complete sub-block so far."""
        energy = np.concatenate(self._energies) if self._energies else np.zeros(0)
        return energy, np.diff(sub_block_bounds(len(energy), self._rate))

    def finish(self, result: Result) -> None:
        loud = measure_loudness(*self.energies(), result.duration, self.measured)
        result.keep("loudness.momentary", loud.momentary)
        result.keep("loudness.shortTerm", loud.short_term)
        for name, value in (
            ("integratedLufs", loud.integrated),
            ("rangeLu", loud.range_lu),
            ("momentaryMaxLufs", loud.momentary_max),
            ("shortTermMaxLufs", loud.short_term_max),
        ):
            result.put(f"loudness.{name}", value, reason=loud.reasons.get(name, ""))
        series = [{"t": t, "lufs": rounded(v)} for t, v in loud.short_term_series]
        result.put("loudness.shortTermSeries", series, digits=None)


@dataclass
class Loudness:
    """The loudness block of a result; None where a value does not exist, with a reason."""

    integrated: float | None
    range_lu: float | None
    momentary_max: float | None
    short_term_max: float | None
    short_term_series: list[tuple[int, float | None]]
    reasons: dict[str, str] = field(default_factory=dict)
    # Every 400 ms and 3 s window at 10 Hz (-inf for silence), for meters and tests.
    momentary: np.ndarray = field(default_factory=lambda: np.zeros(0))
    short_term: np.ndarray = field(default_factory=lambda: np.zeros(0))


def window_power(energy: np.ndarray, counts: np.ndarray, width: int) -> np.ndarray:
    """Mean-square power of every window of `width` sub-blocks, stepping one
    sub-block (10 Hz); windows are complete, none runs past the end."""
    if len(energy) < width:
        return np.zeros(0)
    csum = np.concatenate([[0.0], np.cumsum(energy)])
    ccount = np.concatenate([[0], np.cumsum(counts)])
    return (csum[width:] - csum[:-width]) / (ccount[width:] - ccount[:-width])


def lufs(power: np.ndarray) -> np.ndarray:
    """BS.1770 loudness of mean-square powers; zero power gives -inf."""
    with np.errstate(divide="ignore"):
        return _OFFSET + 10.0 * np.log10(np.maximum(power, 0.0))


def integrated_loudness(block_power: np.ndarray) -> float | None:
    """BS.1770-4 gated loudness from the mean-square power of each 400 ms block."""
    block_lufs = lufs(block_power)
    above_absolute = block_lufs > ABSOLUTE_GATE_LUFS
    if not above_absolute.any():
        return None
    relative_gate = _OFFSET + 10.0 * math.log10(block_power[above_absolute].mean())
    relative_gate += RELATIVE_GATE_LU
    gated = above_absolute & (block_lufs > relative_gate)
    return _OFFSET + 10.0 * math.log10(block_power[gated].mean())


def loudness_range(short_term: np.ndarray) -> float | None:
    """EBU Tech 3342 LRA from short-term loudness values (10 Hz, silence as -inf).

    Percentiles by nearest rank, as in Tech 3342's reference implementation.
    """
    values = short_term[short_term >= ABSOLUTE_GATE_LUFS]
    if len(values) == 0:
        return None
    absolute_gated = 10.0 * math.log10(np.mean(10.0 ** (values / 10.0)))
    values = np.sort(values[values >= absolute_gated + LRA_RELATIVE_GATE_LU])
    n = len(values)
    low, high = (values[math.floor((n - 1) * p / 100.0 + 0.5)] for p in LRA_PERCENTILES)
    return float(high - low)


def measure_loudness(
    energy: np.ndarray, counts: np.ndarray, duration: float, measured: bool = True
) -> Loudness:
    """Momentary, short-term, integrated loudness and LRA from sub-block energies.

    LRA (Tech 3342 v3 and later): short-term values every 100 ms from complete
    3 s windows of the programme only, nothing appended: a steady tone reads 0 LU.
    """
    momentary_power = window_power(energy, counts, MOMENTARY_SUB_BLOCKS)
    momentary = lufs(momentary_power)
    short_term = lufs(window_power(energy, counts, SHORT_TERM_SUB_BLOCKS))
    integrated = integrated_loudness(momentary_power) if len(momentary_power) else None
    loud = Loudness(
        integrated=integrated,
        range_lu=loudness_range(short_term) if len(short_term) else None,
        momentary_max=_finite_max(momentary),
        short_term_max=_finite_max(short_term),
        short_term_series=_series(short_term, duration),
        momentary=momentary,
        short_term=short_term,
    )
    loud.reasons = _reasons(loud, duration, measured)
    return loud


def _reasons(loud: Loudness, duration: float, measured: bool) -> dict[str, str]:
    """Why each null loudness value is null."""
    reasons: dict[str, str] = {}
    if not measured:
        why = "no channel is measured for loudness (only LFE channels)"
        return dict.fromkeys(
            ("integratedLufs", "rangeLu", "momentaryMaxLufs", "shortTermMaxLufs"), why
        )
    short = f"the audio ({duration:.3f} s) is shorter than"
    if len(loud.momentary) == 0:
        reasons["integratedLufs"] = f"{short} one 400 ms gating block"
        reasons["momentaryMaxLufs"] = reasons["integratedLufs"]
    elif loud.integrated is None and loud.momentary_max is None:
        reasons["integratedLufs"] = "silence: every 400 ms block holds only zeros"
    elif loud.integrated is None:
        reasons["integratedLufs"] = (
            f"every 400 ms block is below the -70 LUFS absolute gate "
            f"(the loudest is {loud.momentary_max:.1f} LUFS)"
        )
    if len(loud.short_term) == 0:
        reasons["shortTermMaxLufs"] = f"{short} one 3 s short-term window"
        reasons["rangeLu"] = reasons["shortTermMaxLufs"]
    elif loud.range_lu is None and loud.short_term_max is None:
        reasons["rangeLu"] = "silence: every 3 s window holds only zeros"
    elif loud.range_lu is None:
        reasons["rangeLu"] = "every 3 s window is below the -70 LUFS absolute gate"
    if loud.short_term_max is None and "shortTermMaxLufs" not in reasons:
        reasons["shortTermMaxLufs"] = "silence: every 3 s window holds only zeros"
    if loud.momentary_max is None and "momentaryMaxLufs" not in reasons:
        reasons["momentaryMaxLufs"] = "silence: every 400 ms block holds only zeros"
    return reasons


def _series(short_term: np.ndarray, duration: float) -> list[tuple[int, float | None]]:
    """One point per second for plots: the 3 s window that ends at t seconds."""
    series: list[tuple[int, float | None]] = []
    for t in range(3, int(duration) + 1):
        index = t * SUB_BLOCKS_PER_SECOND - SHORT_TERM_SUB_BLOCKS
        if index >= len(short_term):
            break
        value = short_term[index]
        series.append((t, float(value) if math.isfinite(value) else None))
    return series


def loudness_of(
    samples: np.ndarray, sample_rate: int, positions: tuple[str, ...] | None = None
) -> Loudness:
    """Loudness alone of float samples shaped (frames, channels), fed block by block
    (`positions` default by the channel count)."""
    x = np.asarray(samples, dtype=np.float32)
    x = x[:, np.newaxis] if x.ndim == 1 else x
    positions = positions or ffmpeg.positions(0, x.shape[1])
    meter = LoudnessMeter(Context(sample_rate, x.shape[1], positions))
    for block in blocks_of(x):
        meter.add(block)
    return measure_loudness(*meter.energies(), len(x) / sample_rate, meter.measured)


def _finite_max(values: np.ndarray) -> float | None:
    if len(values) == 0:
        return None
    top = float(values.max())
    return top if math.isfinite(top) else None
