"""Sample peak, true peak and clipped samples, block by block (BS.1770-4 Annex 2).

Oversampling is 4x below 96 kHz, 2x below 192 kHz and none above, as Annex 2
allows. The interpolator is a Kaiser-windowed sinc that passes every original
sample unchanged (a Nyquist filter: sinc zeros fall on the original instants),
so the true peak is never below the sample peak and only the L-1 in-between
phases need computing. 12 taps per phase, beta 6: at most 0.02 dB over-read for
tones up to 0.45 fs; the under-read is the sampling one of Annex 2, Attachment 1
(at most 0.55 dB at 0.45 fs for 4x).

Across blocks the interpolator's 11 samples of context are carried over. At the
file's edges nothing is invented: an instant counts only when all 12 samples
the interpolator reads are in the file, so the first 5 and last 6 intervals
(0.1 ms at 48 kHz) read their samples only. Padding invents a waveform: zeros
or a held value put a step into a file that starts on its crest (a -1.00 dBFS
cosine read -0.66 dBTP), a mirror image a kink into one that ends mid-slope.

Most of a track cannot hold the peak: an interpolated value is at most
`overshoot` (the largest sum of absolute taps of a phase, 1.86 at 4x) times the
largest nearby sample. That bound is loose, so it is taken over short sub-blocks
(Block.peaks, 128 samples: a 2048-sample granularity left 31 % of a dynamic
track's instants to compute, 128 leaves 6 %). The sub-blocks that can beat the
running maximum are oversampled in order, each raising the bar for the rest; a
limited track (every sub-block near its peak) is oversampled whole.

The work is done in C (kernels/truepeak.c, through native.py): float32 products
summed in float32, as numpy's einsum did, vectorised across instants (with AVX
where an x86-64 CPU has it, to the bit the same), the 4x phases folded.
"""

from __future__ import annotations

import ctypes
from functools import cache

import numpy as np

from chalicelib.analysis import dynamics, native
from chalicelib.analysis.blockwise import SUB_BLOCK, Block, Context, Result, blocks_of

TAPS_PER_PHASE = 12
KAISER_BETA = 6.0
LEFT = TAPS_PER_PHASE // 2 - 1  # samples before an instant the interpolator reads
RIGHT = TAPS_PER_PHASE // 2  # ... and after
CONTEXT = LEFT + RIGHT  # kernels/truepeak.c's CONTEXT
# Above this sample peak the kernel's float32 sums may overflow (|taps| sum to < 2 a
# phase, and a folded pair adds two samples): PeakMeter then sums at 1/4 the level.
_HUGE = float(np.finfo(np.float32).max) / 4


def oversampling_factor(sample_rate: int) -> int:
    if sample_rate < 96_000:
        return 4
    if sample_rate < 192_000:
        return 2
    return 1


@cache
def interpolator(factor: int) -> np.ndarray:
    """Coefficients (factor-1, TAPS_PER_PHASE) for the in-between phases.

    Row p-1 gives the value at n + p/factor from samples n-5 .. n+6. Each row is
    scaled to sum to 1 so DC and low frequencies read exactly.
    """
    half = TAPS_PER_PHASE // 2
    offsets = np.arange(-(half - 1), half + 1)  # sample offsets k
    span = half * factor  # window half-length in output samples
    rows = []
    for p in range(1, factor):
        m = p - offsets * factor  # distance in output samples, |m| < span
        window = np.kaiser(2 * span + 1, KAISER_BETA)[m + span]
        row = np.sinc(m / factor) * window
        rows.append(row / row.sum())
    return np.array(rows, dtype=np.float32)


def overshoot(factor: int) -> float:
    """Largest possible interpolated value for samples bounded by 1."""
    if factor == 1:
        return 1.0
    return float(np.abs(interpolator(factor)).sum(axis=1).max())


class PeakMeter:
    """Accumulates the sample peak, true peak, clipped and (lossy) overshoot samples.

    On a lossy source, samples past full scale are the codec's overshoot (its
    reconstruction of a master that peaked near 0 dBFS), not clipping in the
    master: they are counted apart, as `overshootSamples`.
    """

    def __init__(self, context: Context) -> None:
        self._factor = oversampling_factor(context.sample_rate)
        self._phases = interpolator(self._factor) if self._factor > 1 else None
        self._bound = overshoot(self._factor)
        self._level = context.full_scale
        self._lossy = context.lossy
        self.sample_peak = 0.0
        self.true_peak = 0.0
        self._clipped = 0
        self._overshoot = 0
        # The last CONTEXT samples of each channel; the first `_kept` are valid.
        self._history = np.zeros((context.channels, CONTEXT), dtype=np.float32)
        self._kept = ctypes.c_int64(0)
        # Addresses passed to C: both arrays are this object's and never move (a numpy
        # argument costs microseconds of checks a call).
        self._fixed = (
            self._history.ctypes.data,
            0 if self._phases is None else self._phases.ctypes.data,
        )

    def add(self, block: Block) -> None:
        x, peaks = block.samples, block.peaks
        self._count(x, peaks)
        if self._phases is None or x.shape[1] == 0:
            return
        x = np.ascontiguousarray(x, dtype=np.float32)
        peaks = np.ascontiguousarray(peaks, dtype=np.float32)
        channels, n = x.shape
        if peaks.shape != (channels, -(-n // SUB_BLOCK)) or channels != len(self._history):
            raise ValueError(f"peaks {peaks.shape} do not fit samples {x.shape}")
        if self.sample_peak > _HUGE:  # before the kernel moves the history on
            self.true_peak = max(self.true_peak, self._scaled_max(x))
        history, phases = self._fixed
        value = _BLOCK(
            x.ctypes.data,
            channels,
            n,
            peaks.ctypes.data,
            peaks.shape[1],
            SUB_BLOCK,
            history,
            ctypes.byref(self._kept),
            phases,
            len(self._phases),
            self._bound,
            self.true_peak,
        )
        if value < 0.0:
            raise ValueError(f"the true-peak kernel takes 1 to 3 phases, not {len(self._phases)}")
        self.true_peak = value if self.sample_peak <= _HUGE else self.true_peak

    def _scaled_max(self, x: np.ndarray) -> float:
        """The largest |interpolated value| of every instant of the history and x
        (channels, n), summed at 1/4 of the level (exact: a power of two): beyond
        _HUGE, the kernel's float32 sums of taps (and folded pairs) overflow to inf,
        which would read as no true peak at all."""
        assert self._phases is not None
        kept = self._kept.value
        top = 0.0
        for old, row in zip(self._history[:, :kept], x, strict=True):
            segment = np.concatenate((old, row)) * np.float32(0.25)
            top = max(top, 4.0 * _interpolated_max(segment, self._phases))
        return top

    def _count(self, x: np.ndarray, peaks: np.ndarray) -> None:
        top = float(peaks.max()) if peaks.size else 0.0
        self.sample_peak = max(self.sample_peak, top)
        self.true_peak = max(self.true_peak, self.sample_peak)
        if top < self._level:
            return
        magnitude = np.abs(x)
        if self._lossy:
            over = int(np.count_nonzero(magnitude > 1.0))
            self._overshoot += over
            self._clipped += int(np.count_nonzero(magnitude >= self._level)) - over
        else:
            self._clipped += int(np.count_nonzero(magnitude >= self._level))

    def finish(self, result: Result) -> None:
        true_peak_db = dynamics.amplitude_db(self.true_peak)
        sample_peak_db = dynamics.amplitude_db(self.sample_peak)
        silence = "silence: every sample is zero"
        result.put("peaks.truePeakDbtp", true_peak_db, reason=silence)
        result.put("peaks.samplePeakDbfs", sample_peak_db, reason=silence)
        result.put("peaks.clippedSamples", self._clipped)
        result.put("peaks.overshootSamples", self._overshoot)
        result.put("peaks.oversampling", self._factor)


# kernels/truepeak.c; PeakMeter checks what it passes
_BLOCK = native.Function(
    "soundcheck_truepeak_block",
    ctypes.c_double,
    ctypes.c_void_p,  # samples, float32 (channels, n)
    ctypes.c_int64,  # channels
    ctypes.c_int64,  # n
    ctypes.c_void_p,  # peaks, float32 (channels, npeaks): Block.peaks
    ctypes.c_int64,  # npeaks
    ctypes.c_int64,  # frames a peak
    ctypes.c_void_p,  # history, float32 (channels, CONTEXT)
    ctypes.POINTER(ctypes.c_int64),  # samples of history kept
    ctypes.c_void_p,  # phases, float32 (factor - 1, TAPS_PER_PHASE)
    ctypes.c_int64,  # phases
    ctypes.c_double,  # overshoot
    ctypes.c_double,  # the true peak so far
)
_EVERY = native.Function(
    "soundcheck_interpolated_max",
    ctypes.c_double,
    native.array(np.float32, 1),  # samples
    ctypes.c_int64,  # their count
    native.array(np.float32, 2),  # phases
    ctypes.c_int64,  # phases
    ctypes.c_int64,  # 0: the baseline code even where the AVX copy could run
)


def _interpolated_max(segment: np.ndarray, phases: np.ndarray, *, wide: bool = True) -> float:
    """Largest |value| at the in-between instants of segment[LEFT:-RIGHT] (1-D):
    every instant, no pruning (what PeakMeter must agree with). `wide=False` runs
    the baseline (SSE2/NEON) code even where the AVX copy would run. Raises
    ValueError for phases not shaped (1 to 3, TAPS_PER_PHASE): the C reads 12 taps
    a phase."""
    x = np.ascontiguousarray(segment, dtype=np.float32)
    h = np.ascontiguousarray(phases, dtype=np.float32)
    if h.ndim != 2 or h.shape[1] != TAPS_PER_PHASE or not 1 <= len(h) <= 3:
        raise ValueError(f"the true-peak kernel takes phases shaped (1-3, 12), not {h.shape}")
    return float(_EVERY(x, len(x), h, len(h), int(wide)))


def true_peak_of(samples: np.ndarray, sample_rate: int) -> float:
    """Linear true peak of float samples shaped (frames, channels), fed block by block."""
    x = np.asarray(samples, dtype=np.float32)
    x = x[:, np.newaxis] if x.ndim == 1 else x
    meter = PeakMeter(Context(sample_rate, x.shape[1], ("C",) * x.shape[1]))
    for block in blocks_of(x):
        meter.add(block)
    return meter.true_peak
