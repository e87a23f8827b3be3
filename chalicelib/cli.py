"""The `soundcheck` command.

Each command is a small function taking the parsed arguments and returning the
exit code, registered on the subparsers by an `add_*` function. This module
imports no analysis code at load time: `soundcheck submit` and friends stay
light, and `analyze` loads numpy only when it runs. The pipeline's commands
(dev, worker, submit, status, queue stats, migrate, demo) live in cli_stack.py.

Exit codes: 0 done, 1 the audio could not be analysed, 2 bad usage or settings.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from chalicelib import cli_stack


def add_analyze(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "analyze",
        help="analyse an audio file here, without the service",
        description="Measure loudness, true peak, dynamics, stereo and spectrum of FILE "
        "(WAV, FLAC, OGG, MP3, AIFF...) and score it against a genre or a reference.",
    )
    p.add_argument("file", type=Path, help="the track to analyse")
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--genre", help="compare with this genre's targets (default: streaming); see --list"
    )
    group.add_argument(
        "--reference",
        type=Path,
        metavar="FILE",
        help="compare with this reference track, or a result saved with --json",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=_analyze)

    p = subparsers.add_parser("genres", help="list the genre and destination targets")
    p.set_defaults(func=_genres)


def _analyze(args: argparse.Namespace) -> int:
    from chalicelib import settings
    from chalicelib.analysis import AnalysisError, Limits, analyze_file
    from chalicelib.report import render

    limits = Limits.from_settings(settings.get())
    try:
        reference = _reference(args.reference, limits) if args.reference else None
        result = analyze_file(args.file, genre=args.genre, reference=reference, limits=limits)
    except AnalysisError as exc:
        print(f"soundcheck analyze: {exc.code}: {exc.message}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, indent=2, allow_nan=False))
    else:
        print(render(result, title=args.file.name), end="")
    return 0


def _reference(path: Path, limits: Any) -> dict[str, Any]:
    """A reference result: a saved `--json` result, or the analysis of an audio file."""
    from chalicelib.analysis import AnalysisError, analyze_file

    if path.suffix.lower() == ".json":
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise AnalysisError("invalid_reference", f"{path.name}: {exc}") from None
    return analyze_file(path, limits=limits)


def _genres(args: argparse.Namespace) -> int:
    from chalicelib.analysis import genres

    print("\n".join(genres()))
    return 0


# Registration functions, in the order `soundcheck --help` lists them.
COMMANDS = [add_analyze, cli_stack.add_commands]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="soundcheck", description="Mix analysis: loudness, peaks, dynamics, stereo, spectrum."
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in COMMANDS:
        register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    return cli_stack.run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
