"""Block-wise measurement: what one accumulator sees, and the result it writes into.

Every measurement is an accumulator object in the module it belongs to
(loudness, truepeak, dynamics, stereo, spectrum ...). `measure_stream` makes one
of each from a `Context`, hands every decoded `Block` to each accumulator's
`add()` in stream order, then calls their `finish()` in a fixed order with the
`Result` being built. State between blocks (filter memories, overlaps, sums)
lives in the accumulator, so memory stays flat whatever the track's length.

Adding a measurement: a class with `add(block)` and `finish(result)` in its own
module, and one line in `measure.METERS`. `finish()` may read the raw (unrounded)
values of the meters before it with `result.value("peaks.truePeakDbtp")`, and
intermediate arrays they `keep()` (`result.kept("loudness.momentary")`).
"""

from __future__ import annotations

import ctypes
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol

import numpy as np

from chalicelib.analysis import native

SUB_BLOCK = 128  # frames per entry of Block.peaks

_PREP = native.Function(
    "soundcheck_block_prep",
    ctypes.c_int64,
    native.array(np.float32, 2),
    ctypes.c_int64,
    ctypes.c_int64,
    ctypes.c_int64,
    native.array(np.float32, 2, writeable=True),
    native.array(np.float32, 2, writeable=True),
    native.array(np.float32, 2, writeable=True),
)


@dataclass(frozen=True)
class Context:
    """What every accumulator knows before the first block.

    `positions` are ffmpeg's channel names (FL FR FC LFE BL BR SL SR ...), one a
    channel; `full_scale` is the level at which a sample counts as clipped.
    """

    sample_rate: int
    channels: int
    positions: tuple[str, ...]
    lossy: bool = False
    full_scale: float = 1.0 - 2.0**-15


@dataclass
class Block:
    """Consecutive frames of the stream, channel-major: `samples` is float32 shaped
    (channels, n), C-contiguous; `start` is the index of its first frame.

    `Block.of_frames` makes one from decoded frames (n, channels) in one pass with
    its extremes; a Block made from channel-major samples finds them in numpy."""

    samples: np.ndarray
    start: int
    known_extremes: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    @classmethod
    def of_frames(cls, frames: np.ndarray, start: int) -> Block:
        """A Block from float32 frames shaped (n, channels): the samples turned
        channel-major and the extremes found in one pass (C kernel,
        kernels/blockprep.c). Other dtypes are converted to float32 first."""
        chunk = np.ascontiguousarray(frames, dtype=np.float32)
        n, channels = chunk.shape
        count = -(-n // SUB_BLOCK)
        samples = np.empty((channels, n), dtype=np.float32)
        lows = np.empty((channels, count), dtype=np.float32)
        highs = np.empty_like(lows)
        if _PREP(chunk, channels, n, SUB_BLOCK, samples, lows, highs) != 0:
            raise ValueError(f"the block kernel refused frames shaped {chunk.shape}")
        return cls(samples, start, (lows, highs))

    @property
    def frames(self) -> int:
        return int(self.samples.shape[1])

    @cached_property
    def extremes(self) -> tuple[np.ndarray, np.ndarray]:
        """(minima, maxima) of each SUB_BLOCK frames, float32 each shaped (channels,
        ceil(n / SUB_BLOCK)); NaN where a sub-block holds a NaN. One pass shared by
        the finiteness check, the peaks, the true-peak pruning and the waveform."""
        if self.known_extremes is not None:
            return self.known_extremes
        x = self.samples
        channels, n = x.shape
        full = n // SUB_BLOCK
        lows = np.empty((channels, -(-n // SUB_BLOCK)), dtype=np.float32)
        highs = np.empty_like(lows)
        if full:
            parts = x[:, : full * SUB_BLOCK].reshape(channels, full, SUB_BLOCK)
            parts.min(axis=2, out=lows[:, :full])
            parts.max(axis=2, out=highs[:, :full])
        if n % SUB_BLOCK:
            tail = x[:, full * SUB_BLOCK :]
            lows[:, full] = tail.min(axis=1)
            highs[:, full] = tail.max(axis=1)
        return lows, highs

    @cached_property
    def peaks(self) -> np.ndarray:
        """Largest |sample| of each SUB_BLOCK frames (see extremes), shaped like them."""
        lows, highs = self.extremes
        return np.maximum(highs, -lows)


class Accumulator(Protocol):
    def add(self, block: Block) -> None:
        """Take the next block. Called from a worker thread: touch only own state."""

    def finish(self, result: Result) -> None:
        """Write this measurement's fields (and reasons for its nulls) into `result`."""


@dataclass
class Result:
    """The result document under construction, with the raw values behind it.

    `put("loudness.rangeLu", value, reason=...)` stores the value rounded in the
    document and unrounded for later meters; a None (or a value that is not
    finite) needs a reason, which goes to the document's `reasons` map.
    """

    context: Context
    frames: int
    document: dict[str, Any] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    _values: dict[str, Any] = field(default_factory=dict)
    _kept: dict[str, Any] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return self.frames / self.context.sample_rate

    def put(self, path: str, value: Any, *, digits: int | None = 2, reason: str = "") -> None:
        """Set a field by its dotted path; floats are rounded to `digits` (None: as is)."""
        if isinstance(value, float | np.floating) and not math.isfinite(value):
            value = None
        if value is None:
            if not reason:
                raise ValueError(f"{path} is null without a reason")
            self.reasons[path] = reason
        self._values[path] = value
        section, _, name = path.rpartition(".")
        target = self.document
        for part in section.split(".") if section else ():
            target = target.setdefault(part, {})
        target[name] = _rounded(value, digits)

    def explain(self, path: str, why: str) -> None:
        """Give the reason a field (or a list item, `spectrum.air`) is null."""
        self.reasons[path] = why

    def value(self, path: str) -> Any:
        """The unrounded value put at `path` (None if null or not put)."""
        return self._values.get(path)

    def keep(self, name: str, value: Any) -> None:
        """Share an intermediate (an array, a series) with later meters; not output."""
        self._kept[name] = value

    def kept(self, name: str) -> Any:
        return self._kept.get(name)


def _rounded(value: Any, digits: int | None) -> Any:
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating) and digits is not None:
        return round(float(value), digits) + 0.0  # + 0.0: no negative zero
    if isinstance(value, np.floating):
        return float(value)
    return value


def rounded(value: float | None, digits: int = 2) -> float | None:
    """A JSON-safe rounded float for series: None stays None, and so does anything
    not finite."""
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits) + 0.0


BLOCK_FRAMES = 1 << 16


def blocks_of(samples: np.ndarray, size: int = BLOCK_FRAMES) -> Iterator[Block]:
    """Channel-major float32 blocks of an array shaped (frames, channels)."""
    for start in range(0, len(samples), size):
        yield Block.of_frames(samples[start : start + size], start)
