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
    p.add_argument("file", type=Path, nargs="?", help="the track to analyse")
    p.add_argument(
        "--list", action="store_true", help="list the genres and destinations, then exit"
    )
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--genre",
        help="compare with this genre's targets, or genre+destination (default: streaming); "
        "see --list",
    )
    group.add_argument(
        "--reference",
        type=Path,
        metavar="FILE",
        help="compare with this reference track, or a result saved with --json",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=_analyze)

    p = subparsers.add_parser(
        "genres", help="list the genres and destinations with their loudness and peak targets"
    )
    p.set_defaults(func=_genres)


def _analyze(args: argparse.Namespace) -> int:
    from chalicelib import settings
    from chalicelib.analysis import AnalysisError, Limits, analyze_file
    from chalicelib.report import render

    if args.list:
        return _genres(args)
    if args.file is None:
        print("soundcheck analyze: give a FILE to analyse (or --list)", file=sys.stderr)
        return 2

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
    """Each target set with its loudness and true-peak targets and one line on what it is."""
    from chalicelib.analysis import targets

    sets = {name: targets.load(name) for name in targets.names()}
    kinds = {name: targets._read(name)["kind"] for name in sets}
    sections = [
        ("Genres", "genre"),
        ("Destinations (their loudness and peak replace a genre's: trap+streaming)", "destination"),
    ]
    width = max(len(name) for name in sets) + 2
    for heading, kind in sections:
        print(f"{heading}\n  {'name':<{width}}{'loudness':<18}{'true peak':<14}what it is")
        for name, spec in sets.items():
            if kinds[name] == kind:
                print(f"  {name:<{width}}{_loudness(spec):<18}{_peak(spec):<14}{spec.description}")
        print()
    print(
        "Use: soundcheck submit FILE --genre NAME, or --genre GENRE+DESTINATION (e.g.\n"
        f"trap+club, podcast+broadcast_ebu). No --genre: {targets.DEFAULT_TARGET}.\n"
        f"Also understood: {_aliases()}.\n"
        "Sources and reasoning for every number: chalicelib/analysis/targets/README.md"
    )
    return 0


def _loudness(spec: Any) -> str:
    target = spec.targets.get("integratedLufs")
    if target is None:
        return "-"
    return f"{target.target:.1f} ±{target.tolerance:g} LUFS"


def _peak(spec: Any) -> str:
    target = spec.targets.get("truePeakDbtp")
    if target is None:
        return "-"
    return f"<= {target.target + target.tolerance:.1f} dBTP"


def _aliases() -> str:
    from chalicelib.analysis import targets

    return "; ".join(
        f"{', '.join(targets._read(name)['aliases'])} = {name}"
        for name in targets.names()
        if targets._read(name).get("aliases")
    )


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
