"""The docs hold up: every link resolves, and the commands they show run.

The `soundcheck` commands in README.md and docs/*.md are run as written (placeholders
such as `mix.wav` or `JOB_ID` filled in) where they can run on this machine: the
offline ones on their own, the client ones against a real `soundcheck dev`, from a
directory that is not the repository's, as a new user in another terminal would.
The rest (AWS, a Postgres to migrate) must at least parse, and every genre and make
target they name must exist.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import soundfile

from chalicelib.analysis import targets
from chalicelib.cli import build_parser
from tests.music import music_like
from tests.pipeline_support import own_schema
from tests.test_pipeline import start_stack, stop, wait_for_state

REPO = Path(__file__).resolve().parent.parent
DOCS = [
    REPO / "README.md",
    *sorted((REPO / "docs").glob("*.md")),
    REPO / "chalicelib" / "analysis" / "README.md",
    REPO / "chalicelib" / "analysis" / "targets" / "README.md",
]
OFFLINE = {"genres", "analyze", "demo-track"}
NEEDS_STACK = {"submit", "status", "jobs", "queue"}
PLACEHOLDERS = {
    "KEY": "sck_docs_placeholder",
    "$URL": "http://127.0.0.1:9",
    "OWNER": "me",
    "FILE": "mix.wav",
}


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _code(text: str) -> list[tuple[str, bool]]:
    """(text, is a code block line) of fenced code blocks and inline code spans."""
    blocks = re.findall(r"```[a-z]*\n(.*?)```", text, re.S)
    spans = re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.S))
    lines = [(line, True) for block in blocks for line in block.splitlines()]
    return lines + [(span, False) for span in spans]


def _parses(argv: list[str]) -> bool:
    try:
        build_parser().parse_args([a.replace("JOB_ID", "0") for a in argv])
    except SystemExit:
        return False
    return True


def documented_commands() -> list[tuple[str, list[str]]]:
    """(doc file, argv after `soundcheck`) for every soundcheck command shown: each line
    of a code block, and each inline span that is a whole command (an inline
    `soundcheck submit` in a sentence names the command; it is not one to run)."""
    found = []
    for path in DOCS:
        for line, in_block in _code(_text(path)):
            line = line.split("  #", 1)[0].strip()
            line = re.split(r"\s[|>]\s", line, maxsplit=1)[0]  # a pipe or redirect after it
            # a command line: optional VAR=value prefixes, then the command itself
            match = re.match(r"(?:[A-Z_]+=\S+\s+)*(?:\.venv/bin/)?soundcheck ([a-z].*)$", line)
            if not match or "[" in match.group(1) or "..." in match.group(1):
                continue  # a synopsis (`soundcheck dev [--port N]`), not a command
            argv = [PLACEHOLDERS.get(a, a) for a in shlex.split(match.group(1))]
            if in_block or _parses(argv):
                found.append((path.name, argv))
    return found


COMMANDS = documented_commands()


def test_the_docs_show_commands_at_all() -> None:
    shown = {argv[0] for _, argv in COMMANDS}
    assert {"genres", "submit", "jobs", "status", "dev", "migrate"} <= shown, shown


@pytest.mark.parametrize(("doc", "argv"), COMMANDS, ids=[" ".join(a) for _, a in COMMANDS])
def test_every_documented_command_parses_and_names_real_genres(doc: str, argv: list[str]) -> None:
    assert _parses(argv), f"{doc}: `soundcheck {' '.join(argv)}` does not parse"
    if "--genre" in argv:
        targets.load(argv[argv.index("--genre") + 1])


def test_every_genre_a_doc_names_exists() -> None:
    for path in DOCS:
        for genre in re.findall(r"GENRE=([\w+&-]+)|--genre ([\w+&-]+)", _text(path)):
            name = genre[0] or genre[1]
            if name not in ("G", "NAME", "GENRE"):
                targets.load(name)


def test_every_make_target_a_doc_names_exists() -> None:
    makefile = _text(REPO / "Makefile")
    defined = set(re.findall(r"^([a-z][\w-]*):", makefile, re.M))
    for path in DOCS:
        for target in re.findall(r"`make ([a-z][\w-]*)", _text(path)):
            assert target in defined, f"{path.name} names `make {target}`"


def test_every_relative_link_resolves() -> None:
    """The README once linked ../shared/DESIGN.md, which no clone has."""
    for path in DOCS:
        for target in re.findall(r"\]\(([^)\s]+)\)", _text(path)):
            if re.match(r"[a-z]+:", target):
                continue
            file, _, anchor = target.partition("#")
            linked = (path.parent / file).resolve() if file else path
            assert linked.is_file(), f"{path.name} links to {target}, which does not exist"
            assert REPO in linked.parents, f"{path.name} links outside the repository: {target}"
            if anchor:
                headings = re.findall(r"^#+ (.+)$", _text(linked), re.M)
                slugs = {
                    re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in headings
                }
                assert anchor in slugs, f"{path.name}: no heading #{anchor} in {file}"


@pytest.fixture(scope="module")
def music_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("music")
    for name, seed in (("mix.wav", 3), ("ref.wav", 4)):
        soundfile.write(folder / name, music_like(3.0, 44100, seed=seed), 44100, subtype="PCM_24")
    return folder


def run(
    argv: list[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chalicelib.cli", *argv],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


OFFLINE_COMMANDS = [(d, a) for d, a in COMMANDS if a[0] in OFFLINE]


@pytest.mark.parametrize(
    ("doc", "argv"), OFFLINE_COMMANDS, ids=[" ".join(a) for _, a in OFFLINE_COMMANDS]
)
def test_offline_commands_run(doc: str, argv: list[str], music_folder: Path) -> None:
    done = run(argv, music_folder)
    assert done.returncode == 0, f"{doc}: soundcheck {' '.join(argv)}\n{done.stderr}"
    assert "Traceback" not in done.stderr


@pytest.fixture(scope="module")
def running_stack(
    redis_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """`soundcheck dev` as the README starts it (one consumer here), found by the CLI
    through its per-user record alone: no --api, no key in the environment."""
    data_dir = tmp_path_factory.mktemp("docs-stack")
    with own_schema(database_url) as schema:
        env = {
            **os.environ,
            "REDIS_URL": redis_url,
            "DATABASE_URL": database_url,
            "SOUNDCHECK_DB_SCHEMA": schema,
            "QUEUE_NAME": f"docs-{uuid.uuid4().hex[:8]}",
        }
        env.pop("SOUNDCHECK_API_KEY", None)
        process = start_stack(data_dir, env, consumers=1)
        try:
            wait_for_state(process, data_dir)
            yield
        finally:
            assert stop(process) == 0


def test_the_readme_session_runs_in_order(running_stack: None, music_folder: Path) -> None:
    """The README's "in another terminal" block, line by line, from the music folder."""
    env = {k: v for k, v in os.environ.items() if k != "SOUNDCHECK_API_KEY"}
    env.pop("REDIS_URL", None)  # `queue stats` goes through the API, as on a laptop
    job_id = ""
    session = [a for d, a in COMMANDS if d == "README.md" and a[0] in NEEDS_STACK | OFFLINE]
    assert len(session) >= 5
    for argv in session:
        if "JOB_ID" in argv:
            assert job_id, "the README shows a job id before any submit"
            argv = [job_id if a == "JOB_ID" else a for a in argv]
        if "--api" in argv:
            continue  # the AWS example
        done = subprocess.run(
            [sys.executable, "-m", "chalicelib.cli", *argv],
            cwd=music_folder,
            env={**env, "PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, f"soundcheck {' '.join(argv)}\n{done.stderr}"
        assert "Traceback" not in done.stderr
        found = re.search(r"as job (\S+)", done.stderr)
        job_id = found.group(1) if found else job_id
