"""The pipeline's commands: dev, worker, submit, status, queue stats, migrate, keys, owner
purge, retention, demo.

`add_commands(subparsers)` registers them on the `soundcheck` command's argparse
subparsers (chalicelib/cli.py); `python -m chalicelib.cli_stack` runs them alone.
Every command sets `func(args) -> int` (the exit code).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from chalicelib.rules import STATUSES, storable


def _owner_id(value: str) -> str:
    """An owner argument Postgres can hold: a non-UTF-8 argument (its bytes decoded as
    lone surrogates) or NUL is a usage error, not a traceback from the database driver."""

    def refuse(code: str, message: str) -> argparse.ArgumentTypeError:
        return argparse.ArgumentTypeError(message)

    return storable(value, "owner", refuse)


def _dev(args: argparse.Namespace) -> int:
    from chalicelib.local.stack import StackOptions, run

    if args.consumers < 0:
        print("soundcheck dev: --consumers must be 0 or more", file=sys.stderr)
        return 2
    options = StackOptions(
        host=args.host, port=args.port, consumers=args.consumers, data_dir=Path(args.data_dir)
    )
    return run(options)


def _worker(args: argparse.Namespace) -> int:
    from chalicelib.local import worker

    return worker.main(args)


def _submit(args: argparse.Namespace) -> int:
    from chalicelib.local import submit

    for path in (args.file, args.reference):
        if path is not None and not path.is_file():
            print(f"soundcheck submit: no such file: {path}", file=sys.stderr)
            return 2
    problem = genre_problem(args.genre)
    if problem:
        print(f"soundcheck submit: {problem}", file=sys.stderr)
        return 2
    return submit.run(
        args.file,
        api=args.api,
        api_key=args.api_key,
        genre=args.genre,
        reference=args.reference,
        as_json=args.json,
        timeout=args.timeout,
        callback_url=args.callback_url,
    )


def genre_problem(genre: str | None) -> str | None:
    """Why a --genre name would be refused (checked here, before any upload), or None."""
    if genre is None:
        return None
    from chalicelib.analysis.errors import AnalysisError
    from chalicelib.analysis.targets import load

    try:
        load(genre)
    except AnalysisError as exc:
        return f"{exc.message}. `soundcheck genres` shows each with its targets."
    return None


def _status(args: argparse.Namespace) -> int:
    from chalicelib.local import submit

    return submit.status(
        args.job_id,
        api=args.api,
        api_key=args.api_key,
        as_json=args.json,
        wait=args.wait,
        timeout=args.timeout,
    )


def _jobs(args: argparse.Namespace) -> int:
    from chalicelib.local import submit

    return submit.jobs(
        api=args.api, api_key=args.api_key, status=args.status, limit=args.limit, as_json=args.json
    )


def _queue_stats(args: argparse.Namespace) -> int:
    """Straight from Redis/Postgres when REDIS_URL is set, else through the dev stack's API."""
    from chalicelib import settings

    current = settings.get()
    stats: dict[str, Any]
    if current.redis_url:
        from chalicelib.deps import redis_client
        from chalicelib.queue import Queue

        stats = {"queue": Queue.from_settings(redis_client(current.redis_url), current).stats()}
        if current.database_url:
            from chalicelib.jobs import JobStore

            stats["jobs"] = JobStore.from_settings(current).counts()
    else:
        from chalicelib.client import ClientError
        from chalicelib.local.connect import NotConnected, client_for, explain, resolve

        try:
            target = resolve(args.api, args.api_key)
            stats = client_for(target).request("GET", "/api/queue/stats")[1]
        except NotConnected as exc:
            print(f"soundcheck queue stats: {exc}", file=sys.stderr)
            return 2
        except ClientError as exc:
            print(f"soundcheck queue stats: {explain(exc, target.url)}", file=sys.stderr)
            return 2
    print(json.dumps(stats, indent=2))
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from chalicelib import settings
    from chalicelib.jobs import JobStore

    store = JobStore.from_settings(settings.get())
    applied = store.migrate()
    print("applied: " + ", ".join(applied) if applied else "up to date")
    return 0


def _key_store() -> Any:
    from chalicelib import settings
    from chalicelib.jobs import JobStore
    from chalicelib.keys import KeyStore

    return KeyStore(JobStore.from_settings(settings.get()))


def _keys_create(args: argparse.Namespace) -> int:
    """Register an API key for an owner (DATABASE_URL); print it once: only its hash is kept."""
    from chalicelib.keys import Role

    try:
        key = _key_store().create(
            args.owner,
            args.key,
            role=Role.ADMIN if args.admin else Role.USER,
            expires_in_days=args.expires_days,
        )
    except ValueError as exc:
        print(f"soundcheck keys create: {exc}", file=sys.stderr)
        return 2
    print(key)
    return 0


def _keys_list(args: argparse.Namespace) -> int:
    """Every key (or one owner's): id, owner, role, created, expires, revoked."""
    keys = _key_store().list(args.owner)
    if args.json:
        print(json.dumps([k.to_api() for k in keys], indent=2))
        return 0
    print(f"{'id':<14}{'role':<7}{'created':<22}{'expires':<22}{'revoked':<22}owner")
    for k in keys:
        row = k.to_api()
        print(
            f"{k.id:<14}{k.role:<7}{row['createdAt'][:19]:<22}"
            f"{(row['expiresAt'] or '-')[:19]:<22}{(row['revokedAt'] or '-')[:19]:<22}{k.owner}"
        )
    return 0


def _keys_revoke(args: argparse.Namespace) -> int:
    """Revoke one key by its id (`keys list`); requests with it are 401 from now on."""
    try:
        revoked = _key_store().revoke(args.key_id)
    except ValueError as exc:
        print(f"soundcheck keys revoke: {exc}", file=sys.stderr)
        return 2
    if not revoked:
        print(f"soundcheck keys revoke: no live key {args.key_id}", file=sys.stderr)
        return 1
    print(f"revoked {args.key_id}")
    return 0


def _owner_purge(args: argparse.Namespace) -> int:
    """Remove every job, upload, result, share link and API key of one owner.

    Asks for the owner id again on a terminal unless --yes; without a terminal
    (CI, a pipe) it needs --yes and never waits for input.
    """
    import getpass
    import socket

    from chalicelib import purge, settings
    from chalicelib.deps import Deps

    command = "soundcheck owner purge"
    if not args.owner.strip():
        print(f"{command}: give a non-empty owner id", file=sys.stderr)
        return 2
    if not args.yes and not sys.stdin.isatty():
        print(f"{command}: no terminal to confirm on; pass --yes to purge", file=sys.stderr)
        return 2
    deps = Deps.from_settings(settings.get())
    try:
        held = purge.holdings(deps.jobs, args.owner)
        if held.empty:
            print(
                f"{command}: owner {args.owner!r} has no jobs, share links or API keys "
                "(check the spelling); removing any uploaded files left",
                file=sys.stderr,
            )
        if held.admin_keys:
            print(
                f"{command}: warning: {held.admin_keys} of owner {args.owner!r}'s keys are "
                "admin keys; whoever uses them (a running `soundcheck dev`, the console) "
                "is locked out",
                file=sys.stderr,
            )
        if not args.yes:
            print(
                f"This deletes owner {args.owner!r} for good: {held.jobs} jobs (uploads and "
                f"results), {held.shares} share links, {held.keys} API keys."
            )
            try:
                answer = input("Type the owner id to confirm: ")
            except EOFError:
                answer = ""
            if answer.strip() != args.owner:
                print(f"{command}: not confirmed; nothing was removed", file=sys.stderr)
                return 1
        actor = f"cli:{getpass.getuser()}@{socket.gethostname()}"
        report = purge.purge_owner(deps, args.owner, actor)
    finally:
        deps.close()
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(
            f"purged owner {args.owner!r}: {report.jobs} jobs, {report.shares} share links, "
            f"{report.keys} API keys, {report.webhook_secrets} webhook secrets, "
            f"{report.queue_entries} queue entries, "
            f"{report.uploads} uploaded files"
        )
    return 0


def _retention_lifecycle(args: argparse.Namespace) -> int:
    """The S3 lifecycle configuration for the current SOUNDCHECK_UPLOAD_RETENTION_DAYS."""
    from chalicelib import retention, settings

    config = retention.s3_lifecycle(settings.get())
    if config is None:
        print(
            "soundcheck retention s3-lifecycle: SOUNDCHECK_UPLOAD_RETENTION_DAYS=0 keeps "
            "uploads forever: no lifecycle rule (delete an existing one with "
            "`aws s3api delete-bucket-lifecycle`)",
            file=sys.stderr,
        )
        return 1
    print(json.dumps(config, indent=2))
    return 0


def _retention_sweep(args: argparse.Namespace) -> int:
    """One retention sweep now (DATABASE_URL, REDIS_URL); prints what it removed."""
    from chalicelib import retention, settings
    from chalicelib.deps import Deps

    deps = Deps.from_settings(settings.get())
    try:
        report = retention.sweep(deps)
    finally:
        deps.close()
    print(json.dumps(report.to_dict(), indent=2))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from chalicelib.local import demo

    problem = genre_problem(args.genre)
    if problem:  # before the stack starts: a typo should not cost a minute
        print(f"demo: {problem}", file=sys.stderr)
        return 2
    return demo.run(args.file, genre=args.genre, as_json=args.json)


def _demo_track(args: argparse.Namespace) -> int:
    from chalicelib.local.demo import write_demo_track

    print(write_demo_track(args.out, seconds=args.seconds))
    return 0


def add_commands(subparsers: Any) -> None:
    """Register the pipeline's commands on an argparse subparsers object."""
    p = subparsers.add_parser("dev", help="run the local stack: API, consumers, sweeper")
    p.add_argument("--port", type=int, default=8000, help="API port (0: any free port)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--consumers", type=int, default=2, help="consumer processes (0 allowed)")
    p.add_argument("--data-dir", default=".soundcheck", help="embedded servers' data and state")
    p.set_defaults(func=_dev)

    from chalicelib.local.worker import add_arguments

    p = subparsers.add_parser("worker", help="run one consumer process until stopped")
    add_arguments(p)
    p.set_defaults(func=_worker)

    p = subparsers.add_parser("submit", help="analyse a file through the HTTP API")
    p.add_argument("file", type=Path)
    group = p.add_mutually_exclusive_group()
    group.add_argument("--genre", help="compare with this genre's targets (`soundcheck genres`)")
    group.add_argument("--reference", type=Path, help="compare with this reference track")
    _add_api_options(p)
    p.add_argument("--json", action="store_true", help="print the raw result as JSON")
    p.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        help="seconds to follow the job (it keeps running after; `soundcheck status ID --wait`)",
    )
    p.add_argument(
        "--callback-url",
        metavar="URL",
        help="also POST a signed job.completed / job.failed event here (docs/api.md, Callbacks)",
    )
    p.set_defaults(func=_submit)

    p = subparsers.add_parser("status", help="show a job (--wait: follow it to the end)")
    p.add_argument("job_id")
    _add_api_options(p)
    p.add_argument("--json", action="store_true")
    p.add_argument("--wait", action="store_true", help="follow the job until it finishes")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds to follow with --wait")
    p.set_defaults(func=_status)

    p = subparsers.add_parser("jobs", help="list your analyses, newest first")
    _add_api_options(p)
    p.add_argument("--status", choices=STATUSES)
    p.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_jobs)

    p = subparsers.add_parser("queue", help="queue commands")
    queue_commands = p.add_subparsers(dest="queue_command", required=True)
    stats = queue_commands.add_parser("stats", help="counts per state, oldest wait, consumers")
    _add_api_options(stats)
    stats.set_defaults(func=_queue_stats)

    p = subparsers.add_parser("migrate", help="apply database migrations (DATABASE_URL)")
    p.set_defaults(func=_migrate)

    p = subparsers.add_parser("keys", help="API key commands")
    key_commands = p.add_subparsers(dest="keys_command", required=True)
    create = key_commands.add_parser("create", help="make an API key for an owner and print it")
    create.add_argument("owner", type=_owner_id, help="an opaque owner id; jobs belong to it")
    create.add_argument(
        "--key", help="use this key (at least 24 characters) instead of a new random one"
    )
    create.add_argument("--admin", action="store_true", help="an admin key (default: user)")
    create.add_argument(
        "--expires-days", type=float, metavar="DAYS", help="the key stops working after DAYS"
    )
    create.set_defaults(func=_keys_create)
    listing = key_commands.add_parser("list", help="list keys: id, role, created, expiry, owner")
    listing.add_argument("--owner", type=_owner_id, help="only this owner's keys")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=_keys_list)
    revoke = key_commands.add_parser("revoke", help="revoke a key by its id (`keys list`)")
    revoke.add_argument("key_id", help="the id `keys list` shows (8+ hex digits of its sha256)")
    revoke.set_defaults(func=_keys_revoke)

    p = subparsers.add_parser("owner", help="owner commands")
    owner_commands = p.add_subparsers(dest="owner_command", required=True)
    purge = owner_commands.add_parser(
        "purge", help="remove every job, upload, result, share link and API key of an owner"
    )
    purge.add_argument("owner", type=_owner_id, help="the owner id (as in `keys list`)")
    purge.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    purge.add_argument("--json", action="store_true", help="print the counts as JSON")
    purge.set_defaults(func=_owner_purge)

    p = subparsers.add_parser("retention", help="retention commands")
    retention_commands = p.add_subparsers(dest="retention_command", required=True)
    sweep = retention_commands.add_parser(
        "sweep", help="expire old uploads and results now (the sweeper does it every minute)"
    )
    sweep.set_defaults(func=_retention_sweep)
    lifecycle = retention_commands.add_parser(
        "s3-lifecycle", help="print the S3 lifecycle rule for SOUNDCHECK_UPLOAD_RETENTION_DAYS"
    )
    lifecycle.set_defaults(func=_retention_lifecycle)

    p = subparsers.add_parser("demo", help="start the stack, analyse one track, stop")
    p.add_argument("file", nargs="?", type=Path, help="a track (default: a synthetic mix)")
    p.add_argument("--genre")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_demo)

    p = subparsers.add_parser("demo-track", help="write the demo's synthetic mix to a WAV")
    p.add_argument("out", type=Path)
    p.add_argument("--seconds", type=float, default=8.0)
    p.set_defaults(func=_demo_track)


def _add_api_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--api", metavar="URL", help="API base URL (default: the running `soundcheck dev`)"
    )
    p.add_argument(
        "--api-key",
        metavar="KEY",
        help="API key (default: SOUNDCHECK_API_KEY, else the running `soundcheck dev`'s)",
    )


def run(args: argparse.Namespace) -> int:
    """Run a parsed command; a bad setting or Ctrl-C is a one-line message, not a traceback."""
    from chalicelib.settings import SettingsError

    try:
        return int(args.func(args))
    except SettingsError as exc:
        print(f"soundcheck {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\nsoundcheck {args.command}: stopped (Ctrl-C)", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `soundcheck queue stats | head`: the reader left; no traceback, and none at exit
        # when Python flushes stdout again (the documented way: point it at devnull).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="soundcheck")
    add_commands(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
