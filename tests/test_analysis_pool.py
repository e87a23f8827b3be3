"""measure._feed: the meters' work shared by a few threads.

Every meter gets every block, in order, one thread at a time; an error in a meter
or in the reader reaches the caller and leaves no thread behind; the blocks read
ahead stay bounded however slow a meter is; one CPU means no threads at all.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np
import pytest

from chalicelib.analysis import measure
from chalicelib.analysis.blockwise import Block
from chalicelib.analysis.errors import AnalysisError

BLOCKS = 60


class Recorder:
    """Records the blocks it is given and the threads that gave them; `work` makes it
    slow (real arithmetic, no sleeping)."""

    def __init__(self, work: int = 0, fail_at: int | None = None) -> None:
        self.starts: list[int] = []
        self.threads: set[str] = set()
        self.inside = 0  # threads in add() now: must never exceed 1
        self.most_inside = 0
        self.work = work
        self.fail_at = fail_at

    def add(self, block: Block) -> None:
        self.inside += 1
        self.most_inside = max(self.most_inside, self.inside)
        self.threads.add(threading.current_thread().name)
        if self.fail_at is not None and len(self.starts) == self.fail_at:
            self.inside -= 1
            raise ValueError(f"meter failed at block {self.fail_at}")
        if self.work:
            np.sort(np.random.default_rng(len(self.starts)).random(self.work))
        self.starts.append(block.start)
        self.inside -= 1

    def finish(self, result: object) -> None:
        pass


def blocks(count: int = BLOCKS, frames: int = 100) -> Iterator[Block]:
    for i in range(count):
        yield Block(np.full((2, frames), i, dtype=np.float32), i * frames)


def helpers_alive() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("measure-")]


@pytest.mark.parametrize("workers", [1, 2, 3, 8])
def test_every_meter_gets_every_block_in_order(workers: int) -> None:
    meters = [Recorder(work=20_000 * (i % 3)) for i in range(9)]
    frames = measure._feed(meters, blocks(), workers)
    assert frames == BLOCKS * 100
    for meter in meters:
        assert meter.starts == [i * 100 for i in range(BLOCKS)]
        assert meter.most_inside == 1
    assert not helpers_alive()
    if workers == 1:
        assert {name for m in meters for name in m.threads} == {"MainThread"}


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_a_meter_error_reaches_the_caller_and_stops_the_rest(workers: int) -> None:
    meters = [Recorder(), Recorder(fail_at=7), Recorder(work=50_000)]
    read = 0

    def counted() -> Iterator[Block]:
        nonlocal read
        for block in blocks():
            read += 1
            yield block

    with pytest.raises(ValueError, match="failed at block 7"):
        measure._feed(meters, counted(), workers)
    assert not helpers_alive()
    assert read < BLOCKS  # reading stopped soon after the failure
    assert meters[1].starts == [i * 100 for i in range(7)]


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_a_reader_error_reaches_the_caller(workers: int) -> None:
    def failing() -> Iterator[Block]:
        yield from blocks(5)
        raise AnalysisError("invalid_samples", "1 samples are NaN or infinite")

    meters = [Recorder(work=10_000) for _ in range(3)]
    with pytest.raises(AnalysisError, match="NaN"):
        measure._feed(meters, failing(), workers)
    assert not helpers_alive()
    for meter in meters:  # what was given was given in order
        assert meter.starts == [i * 100 for i in range(len(meter.starts))]


@pytest.mark.parametrize("workers", [2, 3])
def test_blocks_read_ahead_stay_bounded_behind_a_slow_meter(workers: int) -> None:
    slow, fast = Recorder(work=200_000), Recorder()
    most_ahead = 0

    def watched() -> Iterator[Block]:
        nonlocal most_ahead
        for i, block in enumerate(blocks()):
            most_ahead = max(most_ahead, i - len(slow.starts))
            yield block

    measure._feed([fast, slow], watched(), workers)
    assert slow.starts == [i * 100 for i in range(BLOCKS)]
    # Queued (DEPTH), taken by a running meter (DEPTH) and the one being read.
    assert most_ahead <= 2 * measure._Pool.DEPTH + 1


def test_one_cpu_means_no_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(measure.os, "sched_getaffinity", lambda pid: {0}, raising=False)
    meters = [Recorder() for _ in range(3)]
    measure._feed(meters, blocks(10), None)
    assert {name for m in meters for name in m.threads} == {"MainThread"}
    monkeypatch.setattr(measure.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    measure._feed(meters, blocks(10), None)
    assert meters[0].starts == [i * 100 for i in range(10)] * 2
