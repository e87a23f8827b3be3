"""Every measurement of one track, block by block, assembled into the result.

`measure_stream` reads the decoded stream once. Each block is checked (NaN and
infinity refused), turned channel-major, and handed to one accumulator per
measurement (`METERS`, see blockwise.py); with several cores each accumulator
runs in a thread of its own (their numpy/scipy kernels release the GIL) while
the calling thread decodes the next block. Memory is a few blocks, whatever the
track's length.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from chalicelib.analysis import (
    allocator,
    channels,
    clips,
    dynamics,
    ffmpeg,
    loudness,
    loudness_series,
    spectrum,
    spectrum_curve,
    stereo,
    truepeak,
    waveform,
)
from chalicelib.analysis.arrays import as_frames
from chalicelib.analysis.blockwise import Accumulator, Block, Context, Result
from chalicelib.analysis.decode import AudioInfo, AudioStream, array_stream
from chalicelib.analysis.errors import AnalysisError
from chalicelib.analysis.limits import Limits

SCHEMA_VERSION = 2

# One accumulator per measurement; finish() runs in this order, so a meter may use
# the values of those before it (dynamics reads the peaks and the loudness).
METERS: tuple[Callable[[Context], Accumulator], ...] = (
    loudness.LoudnessMeter,
    truepeak.PeakMeter,
    dynamics.LevelMeter,
    stereo.StereoMeter,
    spectrum.SpectrumMeter,
    # The web app's views (issue 9), after the meters whose kept values they read.
    loudness_series.MomentarySeriesMeter,
    clips.ClipRegionMeter,
    spectrum_curve.SpectrumCurveMeter,
    waveform.WaveformMeter,
)


def measure(
    samples: np.ndarray,
    sample_rate: int,
    *,
    file_info: dict[str, Any] | None = None,
    limits: Limits | None = None,
    workers: int | None = None,
) -> dict[str, Any]:
    """The result dict of DESIGN.md without its `comparison` block, for samples
    shaped (frames, channels) or (frames,); integers are scaled like PCM."""
    x = as_frames(samples)
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int | np.integer):
        raise AnalysisError("invalid_input", f"sample_rate must be an integer, not {sample_rate!r}")
    sample_rate = int(sample_rate)
    (limits or Limits()).check(len(x), x.shape[1], sample_rate)
    info = _array_info(x, sample_rate, np.asarray(samples).dtype, file_info or {})
    with array_stream(x, sample_rate, info) as stream:
        return measure_stream(stream, limits, workers=workers)


def _array_info(
    x: np.ndarray, sample_rate: int, dtype: np.dtype, file_info: dict[str, Any]
) -> AudioInfo:
    eight_bit = {np.dtype(np.int8): "PCM_S8", np.dtype(np.uint8): "PCM_U8"}
    return AudioInfo(
        format=file_info.get("format"),
        subtype=file_info.get("subtype") or eight_bit.get(np.dtype(dtype)),
        sample_rate=sample_rate,
        channels=x.shape[1],
        positions=tuple(file_info.get("positions") or ffmpeg.positions(0, x.shape[1])),
        lossy=bool(file_info.get("lossy", False)),
        frames_estimate=len(x),
    )


def measure_stream(
    stream: AudioStream, limits: Limits | None = None, *, workers: int | None = None
) -> dict[str, Any]:
    """Measure a decoded stream in one pass; the meters in threads of their own when
    `workers` > 1 (None: when there is more than one core), else in the calling thread.

    Raises AnalysisError: invalid_samples (NaN/inf), empty_audio, too_long, and
    the limits' codes for the stream's rate and channels.
    """
    allocator.reuse_freed_memory()
    info = stream.info
    limits = limits or Limits()
    limits.check_format(info.channels, info.sample_rate)
    context = Context(
        sample_rate=info.sample_rate,
        channels=info.channels,
        positions=tuple(info.positions) or ffmpeg.positions(0, info.channels),
        lossy=info.lossy,
        full_scale=dynamics.clip_level(info.subtype),
    )
    meters = [make(context) for make in METERS]
    frames = _feed(meters, _blocks(stream.blocks(), context, limits), workers)
    if frames == 0:
        raise AnalysisError("empty_audio", "the file holds no audio frames")
    result = Result(context, frames)
    result.document.update(schemaVersion=SCHEMA_VERSION, file=_file_block(info, context, frames))
    for meter in meters:
        meter.finish(result)
    result.document["reasons"] = result.reasons
    return result.document


def _file_block(info: AudioInfo, context: Context, frames: int) -> dict[str, Any]:
    return {
        "format": info.format,
        "subtype": info.subtype,
        "sampleRate": context.sample_rate,
        "channels": context.channels,
        "layout": channels.layout_name(context.positions),
        "positions": list(context.positions),
        "frames": frames,
        "durationSeconds": round(frames / context.sample_rate, 3),
        "lossy": context.lossy,
    }


def _blocks(chunks: Iterable[np.ndarray], context: Context, limits: Limits) -> Iterable[Block]:
    """Channel-major float32 blocks, refusing NaN/inf and audio past the duration limit."""
    start = 0
    for chunk in chunks:
        if chunk.ndim != 2 or chunk.shape[1] != context.channels:
            raise AnalysisError("invalid_input", f"a block shaped {chunk.shape} in the stream")
        if len(chunk) == 0:
            continue
        block = Block(np.ascontiguousarray(chunk.T, dtype=np.float32), start)
        if not np.isfinite(block.peaks).all():  # a NaN or an infinity is in a peak
            bad = int(np.count_nonzero(~np.isfinite(block.samples)))
            raise AnalysisError("invalid_samples", f"{bad:,} samples are NaN or infinite")
        block.wide  # noqa: B018 - made here, while the meters' threads work on the last block
        yield block
        start += block.frames
        limits.check_length(start, context.channels, context.sample_rate, so_far=True)


def _feed(meters: list[Accumulator], blocks: Iterable[Block], workers: int | None) -> int:
    """Give every block to every meter in order; returns the frame count.

    Threaded, each meter has its own thread and a short queue, so a slow meter
    (the K-weighting filter) does not hold the others at every block: the
    operating system balances them over the cores, and the queues bound memory.
    """
    threaded = (os.cpu_count() or 1) > 1 if workers is None else workers > 1
    frames = 0
    if not threaded:
        for block in blocks:
            for meter in meters:
                meter.add(block)
            frames += block.frames
        return frames
    lanes = [_Lane(meter) for meter in meters]
    for lane in lanes:
        lane.start()
    try:
        for block in blocks:  # decoded here while the meters work
            for lane in lanes:
                lane.inbox.put(block)
            frames += block.frames
            if any(lane.error for lane in lanes):
                break
    finally:
        for lane in lanes:
            lane.inbox.put(None)
        for lane in lanes:
            lane.join()
    for lane in lanes:
        if lane.error is not None:
            raise lane.error
    return frames


class _Lane(threading.Thread):
    """One meter's thread: adds the blocks of its queue in order until None."""

    DEPTH = 4  # blocks queued per meter

    def __init__(self, meter: Accumulator) -> None:
        super().__init__(name=f"measure-{type(meter).__name__}", daemon=True)
        self.meter = meter
        self.inbox: queue.Queue[Block | None] = queue.Queue(self.DEPTH)
        self.error: BaseException | None = None

    def run(self) -> None:
        while (block := self.inbox.get()) is not None:
            if self.error is None:  # after an error, only drain the queue
                try:
                    self.meter.add(block)
                except BaseException as exc:  # handed to the feeding thread
                    self.error = exc
