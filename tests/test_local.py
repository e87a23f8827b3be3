"""The local stack's process handling: restart the dead, stop everyone, die with the parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest

from chalicelib.db import drop_schema
from chalicelib.jobs import JobStore
from chalicelib.local.processes import PARENT_PID_ENV, Supervisor
from chalicelib.local.stack import StackInfo, read_state
from tests.waiting import wait_until

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]


def stubborn(marker: Path) -> list[str]:
    """A child that ignores SIGTERM, and says so in `marker` once it does."""
    code = (
        "import pathlib, signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
        " pathlib.Path(sys.argv[1]).write_text('ready'); time.sleep(120)"
    )
    return [sys.executable, "-c", code, str(marker)]


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_child_that_dies_is_started_again() -> None:
    supervisor = Supervisor()
    child = supervisor.start("sleeper", SLEEPER, dict(os.environ))
    first = child.pid
    assert first is not None
    try:
        os.kill(first, signal.SIGKILL)
        wait_until(lambda: supervisor.poll() and child.pid != first, timeout=10, what="restart")
        assert child.restarts == 1 and child.alive()
    finally:
        supervisor.stop(grace_s=5)
    assert not alive(child.pid or 0) and not alive(first)


def test_stop_kills_a_child_that_ignores_sigterm(tmp_path: Path) -> None:
    supervisor = Supervisor()
    marker = tmp_path / "ready"
    child = supervisor.start("stubborn", stubborn(marker), dict(os.environ))
    wait_until(marker.exists, what="the child to ignore SIGTERM")
    supervisor.stop(grace_s=0.5)
    assert child.process is not None and child.process.returncode == -signal.SIGKILL
    assert supervisor.poll() == []  # a stopped supervisor restarts nothing


def test_children_get_their_own_session_and_know_their_parent() -> None:
    supervisor = Supervisor()
    child = supervisor.start("sleeper", SLEEPER, dict(os.environ))
    try:
        assert child.pid is not None
        assert os.getsid(child.pid) == child.pid  # Ctrl-C in a terminal reaches only us
        assert child.env[PARENT_PID_ENV] == str(os.getpid())
    finally:
        supervisor.stop(grace_s=5)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_worker_dies_with_its_parent_even_on_sigkill(tmp_path: Path) -> None:
    armed = tmp_path / "armed"
    child_code = (
        "import pathlib, sys, time; from chalicelib.local.processes import die_with_parent;"
        " die_with_parent(); pathlib.Path(sys.argv[1]).write_text('armed'); time.sleep(120)"
    )
    parent_code = textwrap.dedent(
        f"""
        import os, subprocess, sys, time
        subprocess.Popen(
            [sys.executable, "-c", {child_code!r}, {str(armed)!r}],
            env={{**os.environ, "{PARENT_PID_ENV}": str(os.getpid())}},
        )
        time.sleep(120)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", parent_code])
    try:
        wait_until(armed.exists, timeout=20, what="the child to arm its death signal")
        (child,) = psutil.Process(parent.pid).children()
        parent.kill()  # SIGKILL: the parent runs no cleanup at all
        parent.wait()
        wait_until(lambda: not alive(child.pid), timeout=10, what="the orphan to exit")
    finally:
        parent.kill()


def test_read_state_ignores_a_stack_that_is_gone(tmp_path: Path) -> None:
    assert read_state(tmp_path) is None
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    info = StackInfo("http://x", "k", gone.pid, "audio", "abc", [], {})
    (tmp_path / "dev.json").write_text(info.to_json())
    assert read_state(tmp_path) is None
    (tmp_path / "dev.json").write_text(
        StackInfo("http://x", "k", os.getpid(), "a", "b", [], {}).to_json()
    )
    assert read_state(tmp_path) == StackInfo("http://x", "k", os.getpid(), "a", "b", [], {})


def test_soundcheck_migrate_applies_once(database_url: str) -> None:
    schema = f"sc_t_{os.getpid()}_{id(database_url) % 10_000}"
    env = {**os.environ, "DATABASE_URL": database_url, "SOUNDCHECK_DB_SCHEMA": schema}
    command = [sys.executable, "-m", "chalicelib.cli", "migrate"]
    try:
        first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
        again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    finally:
        drop_schema(database_url, schema)
    assert (first.returncode, again.returncode) == (0, 0), first.stderr + again.stderr
    assert first.stdout.startswith("applied: 0001_")
    assert again.stdout.strip() == "up to date"


def test_soundcheck_keys_create_registers_a_working_key(database_url: str) -> None:
    schema = f"sc_k_{os.getpid()}_{id(database_url) % 10_000}"
    env = {**os.environ, "DATABASE_URL": database_url, "SOUNDCHECK_DB_SCHEMA": schema}
    cli = [sys.executable, "-m", "chalicelib.cli"]
    try:
        subprocess.run([*cli, "migrate"], env=env, check=True, capture_output=True, timeout=60)
        made = subprocess.run(
            [*cli, "keys", "create", "alice"], env=env, capture_output=True, text=True, timeout=60
        )
        store = JobStore(database_url, schema)
        key = made.stdout.strip()
        assert made.returncode == 0, made.stderr
        assert store.owner_for_key(key) == "alice"
        assert store.owner_for_key(key + "x") is None
        store.close()
    finally:
        drop_schema(database_url, schema)


def test_commands_name_a_missing_setting_instead_of_a_traceback() -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    done = subprocess.run(
        [sys.executable, "-m", "chalicelib.cli", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "DATABASE_URL" in done.stderr and "Traceback" not in done.stderr
