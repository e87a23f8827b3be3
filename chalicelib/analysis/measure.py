"""Every measurement of one track, block by block, assembled into the result.

`measure_stream` reads the decoded stream once. Each block is checked (NaN and
infinity refused), turned channel-major, and handed to one accumulator per
measurement (`METERS`, see blockwise.py); with several cores each accumulator
runs in one of as many threads as CPUs (their C, numpy and scipy kernels release
the GIL) while the calling thread decodes the next block. Memory is a few blocks,
whatever the track's length.
"""

from __future__ import annotations

import collections
import os
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
    shaped (frames, channels) or (frames,); integers are scaled like PCM.

    `file_info` may give format, subtype, lossy and positions (one name per
    channel, else AnalysisError invalid_input)."""
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
    positions = file_info.get("positions") or ffmpeg.positions(0, x.shape[1])
    if isinstance(positions, str | bytes) or not (
        len(positions) == x.shape[1] and all(isinstance(p, str) for p in positions)
    ):
        raise AnalysisError(
            "invalid_input",
            f"positions {positions!r} do not name each of the {x.shape[1]} channels",
        )
    return AudioInfo(
        format=file_info.get("format"),
        subtype=file_info.get("subtype") or eight_bit.get(np.dtype(dtype)),
        sample_rate=sample_rate,
        channels=x.shape[1],
        positions=tuple(positions),
        lossy=bool(file_info.get("lossy", False)),
        frames_estimate=len(x),
    )


def measure_stream(
    stream: AudioStream, limits: Limits | None = None, *, workers: int | None = None
) -> dict[str, Any]:
    """Measure a decoded stream in one pass; the meters' work shared by `workers`
    threads, the calling thread included (None: as many as CPUs this process may
    run on; 1: all in the calling thread).

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
        block = Block.of_frames(chunk, start)  # channel-major, extremes found on the way
        if not np.isfinite(block.peaks).all():  # a NaN or an infinity is in a peak
            bad = int(np.count_nonzero(~np.isfinite(block.samples)))
            raise AnalysisError("invalid_samples", f"{bad:,} samples are NaN or infinite")
        yield block
        start += block.frames
        limits.check_length(start, context.channels, context.sample_rate, so_far=True)


def _feed(meters: list[Accumulator], blocks: Iterable[Block], workers: int | None) -> int:
    """Give every block to every meter in order; returns the frame count.

    With more than one thread (`workers`, None: the CPUs this process may run on)
    the work is shared by a `_Pool`; otherwise every meter runs in this thread.
    """
    threads = _threads() if workers is None else max(1, workers)
    if threads > 1:
        return _Pool(meters, helpers=threads - 1).feed(blocks)
    frames = 0
    for block in blocks:
        for meter in meters:
            meter.add(block)
        frames += block.frames
    return frames


def _threads() -> int:
    """The CPUs this process may run on (its affinity, where the system has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


class _Pool:
    """The meters' work, shared by the calling thread and `helpers` threads.

    A meter takes its blocks in order and in one thread at a time; any free thread
    runs the meter furthest behind, all of its queued blocks at once (one hand-off
    for several blocks). The calling thread reads and prepares the blocks, and runs
    meters too while DEPTH blocks wait: no thread sits idle while there is work, no
    more threads than CPUs contend for the GIL, and memory stays a few blocks.
    """

    DEPTH = 4  # blocks a meter may have queued before the reader helps

    def __init__(self, meters: list[Accumulator], helpers: int) -> None:
        self._meters = meters
        self._queues: list[collections.deque[Block]] = [collections.deque() for _ in meters]
        self._busy = [False] * len(meters)
        self._changed = threading.Condition()
        self._closed = False  # no more blocks will come
        self._abort = False  # stop: an error, here or in a meter
        self._error: BaseException | None = None
        self._helpers = [
            threading.Thread(target=self._help, name=f"measure-{i}", daemon=True)
            for i in range(helpers)
        ]

    def feed(self, blocks: Iterable[Block]) -> int:
        for thread in self._helpers:
            thread.start()
        frames = 0
        try:
            for block in blocks:  # read and prepared here while the meters work
                with self._changed:
                    for waiting in self._queues:
                        waiting.append(block)
                    self._changed.notify_all()
                frames += block.frames
                self._work(lambda: max(map(len, self._queues)) < self.DEPTH)
                if self._abort:
                    break
            with self._changed:
                self._closed = True
                self._changed.notify_all()
            self._work(lambda: not any(self._queues) and not any(self._busy))
        except BaseException:
            self._stop()
            raise
        finally:
            for thread in self._helpers:
                thread.join()
        if self._error is not None:
            raise self._error
        return frames

    def _stop(self) -> None:
        """Drop the queued blocks and end the helpers (a meter failed, or the reader)."""
        with self._changed:
            self._abort = self._closed = True
            for waiting in self._queues:
                waiting.clear()
            self._changed.notify_all()

    def _work(self, enough: Callable[[], bool]) -> None:
        """Run meters in this thread until `enough()` (checked under the lock)."""
        while (task := self._next(enough)) is not None:
            self._run(*task)

    def _help(self) -> None:
        """A helper thread: run meters until the blocks end and every queue is empty."""
        self._work(lambda: self._closed and not any(self._queues))

    def _next(self, enough: Callable[[], bool]) -> tuple[int, list[Block]] | None:
        """The next task, waiting while what is queued runs elsewhere; None when
        `enough()` or after an error."""
        with self._changed:
            while not (self._abort or enough()):
                task = self._take()
                if task is not None:
                    return task
                self._changed.wait()
            return None

    def _take(self) -> tuple[int, list[Block]] | None:
        """(meter, its queued blocks) of the free meter furthest behind; under the lock."""
        free = [i for i, waiting in enumerate(self._queues) if waiting and not self._busy[i]]
        if not free or self._abort:
            return None
        index = max(free, key=lambda i: len(self._queues[i]))
        self._busy[index] = True
        taken = list(self._queues[index])
        self._queues[index].clear()
        return index, taken

    def _run(self, index: int, blocks: list[Block]) -> None:
        try:
            for block in blocks:
                self._meters[index].add(block)
        except BaseException as error:  # raised in the calling thread by feed()
            with self._changed:
                if self._error is None:
                    self._error = error
            self._stop()
        finally:
            with self._changed:
                self._busy[index] = False
                self._changed.notify_all()
