"""A job that does nothing: what RQ's worker runs in bench/queue.py (it must be importable)."""


def noop() -> None:
    """Nothing, so the benchmark measures the queue and not the work."""
