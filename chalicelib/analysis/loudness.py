"""Loudness per ITU-R BS.1770-4 and EBU R 128 / Tech 3341 / Tech 3342.

Everything is built on one array: the K-weighted energy of each channel in
consecutive 100 ms sub-blocks. A 400 ms momentary block is 4 sub-blocks, a 3 s
short-term window is 30, and both step by one sub-block (10 Hz), so the
per-sample work is one filter pass and one sum of squares per channel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.signal import sosfilt

SUB_BLOCKS_PER_SECOND = 10
MOMENTARY_SUB_BLOCKS = 4  # 400 ms
SHORT_TERM_SUB_BLOCKS = 30  # 3 s
ABSOLUTE_GATE_LUFS = -70.0
RELATIVE_GATE_LU = -10.0
LRA_RELATIVE_GATE_LU = -20.0
LRA_PERCENTILES = (10.0, 95.0)
LRA_TAIL_SECONDS = 1.5  # Tech 3342: the signal is followed by 1.5 s of silence
CHUNK_SUB_BLOCKS = 50  # K-weighting works through the track 5 s at a time
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

# BS.1770-4 channel weights by channel count, in WAVE (SMPTE/ITU) channel order.
# 0 excludes the LFE; 1.41 is for surrounds at 60-120 degrees (Annex 3, Table 4).
_WEIGHTS: dict[int, tuple[float, ...]] = {
    1: (1.0,),
    2: (1.0, 1.0),
    3: (1.0, 1.0, 1.0),  # L R C
    4: (1.0, 1.0, 1.0, 1.0),  # quad: rear pair at 110-150 degrees, weight 1
    5: (1.0, 1.0, 1.0, 1.41, 1.41),  # 5.0: L R C Ls Rs
    6: (1.0, 1.0, 1.0, 0.0, 1.41, 1.41),  # 5.1: L R C LFE Ls Rs
    7: (1.0, 1.0, 1.0, 0.0, 1.0, 1.41, 1.41),  # 6.1: L R C LFE Cs Ls Rs
    8: (1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.41, 1.41),  # 7.1: L R C LFE Lb Rb Ls Rs
}
_LAYOUTS = {1: "mono", 2: "stereo", 3: "3.0", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


def channel_weights(channels: int) -> tuple[float, ...]:
    """BS.1770-4 weights G_i for a file with this many channels (WAVE order)."""
    return _WEIGHTS.get(channels, (1.0,) * channels)


def layout_name(channels: int) -> str:
    return _LAYOUTS.get(channels, f"{channels} channels")


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


def sub_block_bounds(frames: int, sample_rate: int) -> np.ndarray:
    """Start sample of each complete 100 ms sub-block, plus the end of the last.

    Sub-block k covers samples [k*rate/10, (k+1)*rate/10), rounded down, so rates
    that are not multiples of 10 Hz still get blocks "to the nearest sample".
    """
    count = frames * SUB_BLOCKS_PER_SECOND // sample_rate
    return np.arange(count + 1, dtype=np.int64) * sample_rate // SUB_BLOCKS_PER_SECOND


def _sum_squares(y: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Sum of y**2 over each sub-block [bounds[k], bounds[k+1]) as float64.

    Equal sub-blocks (rates that are multiples of 10 Hz) are a reshape, not a
    cumulative sum over every sample.
    """
    if len(bounds) < 2:
        return np.zeros(0)
    sizes = np.diff(bounds)
    start = int(bounds[0])
    if bool(np.all(sizes == sizes[0])):
        blocks = y[start : int(bounds[-1])].reshape(-1, int(sizes[0]))
        return np.einsum("ij,ij->i", blocks, blocks).astype(np.float64)
    squared = np.square(y[start : int(bounds[-1])], dtype=np.float64)
    return np.add.reduceat(squared, bounds[:-1] - start)


@dataclass
class ChannelEnergy:
    """One channel's K-weighted energy per 100 ms sub-block.

    `tail` continues `sub_blocks` over the 1.5 s of silence Tech 3342 appends for
    the loudness range: the filter keeps ringing after the last sample, so the
    tail is the filter's own ring-down, not zeros.
    """

    sub_blocks: np.ndarray  # float64 sums of squares, complete sub-blocks of the signal
    tail: np.ndarray  # the same for the sub-blocks that follow, over signal + 1.5 s


def channel_energy(x: np.ndarray, sample_rate: int, sos: np.ndarray) -> ChannelEnergy:
    """K-weight one channel (1-D, any stride) and reduce it to sub-block energies.

    Filtered CHUNK_SUB_BLOCKS sub-blocks at a time with the filter state carried
    across, so the filtered signal never exists in full: memory stays flat
    whatever the track's length.
    """
    sos32 = sos.astype(np.float32)
    state = np.zeros((sos.shape[0], 2), dtype=np.float32)
    bounds = sub_block_bounds(len(x), sample_rate)
    energies = np.zeros(len(bounds) - 1)
    for first in range(0, len(bounds) - 1, CHUNK_SUB_BLOCKS):
        edges = bounds[first : first + CHUNK_SUB_BLOCKS + 1]
        chunk = np.asarray(x[int(edges[0]) : int(edges[-1])], dtype=np.float32)
        y, state = sosfilt(sos32, chunk, zi=state)
        energies[first : first + len(edges) - 1] = _sum_squares(y, edges - edges[0])
    leftover = np.asarray(x[int(bounds[-1]) :], dtype=np.float32)
    if len(leftover):  # the part of a sub-block after the last complete one
        leftover, state = sosfilt(sos32, leftover, zi=state)
    tail_frames = round(LRA_TAIL_SECONDS * sample_rate)
    ring, _ = sosfilt(sos32, np.zeros(tail_frames, dtype=np.float32), zi=state)
    padded_bounds = sub_block_bounds(len(x) + tail_frames, sample_rate)[len(bounds) - 1 :]
    tail = _sum_squares(np.concatenate([leftover, ring]), padded_bounds - padded_bounds[0])
    return ChannelEnergy(energies, tail)


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


def _window_loudness(energy: np.ndarray, counts: np.ndarray, width: int) -> np.ndarray:
    """Loudness of every window of `width` sub-blocks, stepping one sub-block (10 Hz).

    Silent windows give -inf here; callers gate them out or report None.
    """
    if len(energy) < width:
        return np.zeros(0)
    csum = np.concatenate([[0.0], np.cumsum(energy)])
    ccount = np.concatenate([[0], np.cumsum(counts)])
    power = (csum[width:] - csum[:-width]) / (ccount[width:] - ccount[:-width])
    with np.errstate(divide="ignore"):
        return _OFFSET + 10.0 * np.log10(np.maximum(power, 0.0))


def integrated_loudness(block_power: np.ndarray) -> float | None:
    """BS.1770-4 gated loudness from the mean-square power of each 400 ms block."""
    with np.errstate(divide="ignore"):
        block_lufs = _OFFSET + 10.0 * np.log10(block_power)
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
    channels: list[ChannelEnergy], weights: tuple[float, ...], frames: int, sample_rate: int
) -> Loudness:
    """Momentary, short-term, integrated loudness and LRA from per-channel energies."""
    energy = sum(w * ch.sub_blocks for w, ch in zip(weights, channels, strict=True))
    tail = sum(w * ch.tail for w, ch in zip(weights, channels, strict=True))
    counts = np.diff(sub_block_bounds(frames, sample_rate))
    padded = sub_block_bounds(frames + round(LRA_TAIL_SECONDS * sample_rate), sample_rate)
    padded_counts = np.diff(padded)
    energy = np.asarray(energy, dtype=np.float64).reshape(-1)
    padded_energy = np.concatenate([energy, np.asarray(tail, dtype=np.float64).reshape(-1)])

    reasons: dict[str, str] = {}
    momentary = _window_loudness(energy, counts, MOMENTARY_SUB_BLOCKS)
    short_term = _window_loudness(energy, counts, SHORT_TERM_SUB_BLOCKS)
    duration = frames / sample_rate

    integrated: float | None = None
    if len(momentary) == 0:
        reasons["integratedLufs"] = (
            f"the audio ({duration:.3f} s) is shorter than one 400 ms gating block"
        )
        reasons["momentaryMaxLufs"] = reasons["integratedLufs"]
    else:
        csum = np.concatenate([[0.0], np.cumsum(energy)])
        ccount = np.concatenate([[0], np.cumsum(counts)])
        w = MOMENTARY_SUB_BLOCKS
        block_power = (csum[w:] - csum[:-w]) / (ccount[w:] - ccount[:-w])
        integrated = integrated_loudness(block_power)
        if integrated is None:
            reasons["integratedLufs"] = (
                "silence: no 400 ms block is above the -70 LUFS absolute gate"
            )

    short_term_max = _finite_max(short_term)
    if len(short_term) == 0:
        reasons["shortTermMaxLufs"] = f"the audio ({duration:.3f} s) is shorter than 3 s"
    elif short_term_max is None:
        reasons["shortTermMaxLufs"] = "silence"
    momentary_max = _finite_max(momentary)
    if momentary_max is None and "momentaryMaxLufs" not in reasons:
        reasons["momentaryMaxLufs"] = "silence"

    padded_short_term = _window_loudness(padded_energy, padded_counts, SHORT_TERM_SUB_BLOCKS)
    range_lu = loudness_range(padded_short_term) if len(padded_short_term) else None
    if range_lu is None:
        reasons["rangeLu"] = (
            f"the audio ({duration:.3f} s) is shorter than 1.5 s"
            if len(padded_short_term) == 0
            else "silence: no 3 s window is above the -70 LUFS absolute gate"
        )

    # One point per second for plots: the 3 s window that ends at t seconds.
    series: list[tuple[int, float | None]] = []
    for t in range(3, int(duration) + 1):
        value = short_term[t * SUB_BLOCKS_PER_SECOND - SHORT_TERM_SUB_BLOCKS]
        series.append((t, float(value) if math.isfinite(value) else None))

    return Loudness(
        integrated, range_lu, momentary_max, short_term_max, series, reasons, momentary, short_term
    )


def loudness_of(samples: np.ndarray, sample_rate: int) -> Loudness:
    """Loudness alone of float samples shaped (frames, channels), BS.1770 weights."""
    x = np.asarray(samples, dtype=np.float32)
    x = x[:, np.newaxis] if x.ndim == 1 else x
    sos = k_weighting_sos(sample_rate)
    weights = channel_weights(x.shape[1])
    used = [c for c in range(x.shape[1]) if weights[c] > 0.0]
    energies = [channel_energy(x[:, c], sample_rate, sos) for c in used]
    return measure_loudness(energies, tuple(weights[c] for c in used), len(x), sample_rate)


def _finite_max(values: np.ndarray) -> float | None:
    if len(values) == 0:
        return None
    top = float(values.max())
    return top if math.isfinite(top) else None
