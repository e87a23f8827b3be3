"""A long-running consumer process (`soundcheck worker`): the Lambda consumer's loop, forever.

It blocks in `Queue.wait_for_job`, so an enqueue wakes it at once (the local
stack's "invoker" is the queue itself). SIGTERM or SIGINT stops it within about a
second whatever its job is doing: the job runs in a child process (see
`chalicelib.isolated`), which is killed, and the job goes back to the queue
(counted as a stall). A second signal exits at once.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from types import FrameType

from chalicelib import consumer, logs, retention, sweeper
from chalicelib.deps import Deps, redis_url_hash
from chalicelib.local.processes import die_with_parent
from chalicelib.webhooks import deliver as webhooks

IDLE_WAIT_S = 1.0  # how often an idle worker checks for a stop request
ERROR_BACKOFF_S = 1.0


def run(
    deps: Deps,
    stop: threading.Event,
    *,
    consumer_id: str | None = None,
    sweep_seconds: float | None = None,
) -> None:
    """Drain, wait for work, repeat until `stop` is set; sweep every `sweep_seconds` if given."""
    me = consumer_id or consumer.consumer_id()
    server = deps.queue.check_server()
    consumer.warm_up()
    logs.event(
        "worker_started",
        consumer=me,
        queue=deps.settings.queue_name,
        redisUrlHash=redis_url_hash(deps.settings.require("redis_url")),
        redisRunId=server["run_id"],
        sweepSeconds=sweep_seconds,
    )
    webhooks.start_thread(deps, stop)  # callback events, beside the analysis
    if sweep_seconds:
        retention.start_thread(deps, stop, me)  # beside the analysis too: a sweep is long
    next_sweep = time.monotonic()
    while not stop.is_set():
        if sweep_seconds and time.monotonic() >= next_sweep:
            sweeper.sweep_logged(deps, me)
            next_sweep = time.monotonic() + sweep_seconds
        result = consumer.drain(deps, me, consumer.forever, should_stop=stop.is_set)
        if stop.is_set():
            break
        if result.stopped == "claim_error":
            stop.wait(ERROR_BACKOFF_S)
            continue
        wait = IDLE_WAIT_S
        if sweep_seconds:
            wait = min(wait, max(next_sweep - time.monotonic(), 0.01))
        try:
            deps.queue.wait_for_job(wait)
        except Exception as exc:
            logs.event("wait_error", consumer=me, error=logs.describe(exc))
            stop.wait(ERROR_BACKOFF_S)
    logs.event("worker_stopped", consumer=me)


def install_stop_handlers(stop: threading.Event) -> None:
    """First SIGTERM/SIGINT: stop the current job (it is handed back) and exit. Second: exit now."""

    def handle(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            raise SystemExit(128 + signum)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="soundcheck worker", description=__doc__)
    add_arguments(p)
    return p


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--no-sweep",
        action="store_true",
        help="do not run the sweeper here (the local stack runs its own)",
    )


def main(args: argparse.Namespace) -> int:
    """`soundcheck worker`: one consumer process until stopped."""
    from chalicelib import settings

    die_with_parent()
    stop = threading.Event()
    install_stop_handlers(stop)
    current = settings.get()
    deps = Deps.from_settings(current)
    try:
        run(deps, stop, sweep_seconds=None if args.no_sweep else current.sweep_seconds)
    finally:
        deps.close()
    # Everything is closed and logged: skip the interpreter's teardown of numpy, scipy &
    # co (a second or more on a busy machine), so a stopped worker is gone at once.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main(parser().parse_args()))
