"""How long `import app` takes in a fresh interpreter: the API functions' cold-start share.

Each run is a new `python -X importtime -c "import app"`; the number is the
cumulative import time of `app` (Python's own start-up excluded). Two cases:

- venv: the working tree with its .pyc cache warm, as on a laptop;
- package (with --package): the deployment.zip `make package` built, unzipped and
  imported with -S -B, so only what the zip holds is importable and every module
  of it is compiled from source, as on Lambda: Chalice's package ships no .pyc
  and /var/task is read-only, so none is ever written. The standard library keeps
  its .pyc, as in the Lambda runtime.

Also lists the heaviest modules `app` imports directly, and checks that none of
the analysis stack (numpy, scipy, soundfile, pyloudnorm) is among what it loads.

    python bench/imports.py [--runs 7] [--package out/prod/cloudformation/deployment.zip]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUDGET_MS = 150.0  # the target for the API package
HEAVY = ("numpy", "scipy", "soundfile", "pyloudnorm")

_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)\s*$")


@dataclass(frozen=True)
class Imported:
    """One line of -X importtime: a module, its own and cumulative time, its depth."""

    module: str
    self_us: int
    cumulative_us: int
    depth: int


def parse_importtime(stderr: str) -> list[Imported]:
    """The records of `python -X importtime` output; other lines are ignored."""
    found = []
    for line in stderr.splitlines():
        match = _LINE.match(line)
        if match:
            self_us, cumulative_us, indent, module = match.groups()
            found.append(Imported(module, int(self_us), int(cumulative_us), len(indent) // 2))
    return found


def import_once(cwd: Path, isolated: bool) -> list[Imported]:
    """Import app in a new interpreter; isolated: no site-packages, no .pyc written."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    flags = ["-S", "-B"] if isolated else []
    done = subprocess.run(
        [sys.executable, *flags, "-X", "importtime", "-c", "import app"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"import app failed in {cwd}:\n{done.stderr[-3000:]}")
    return parse_importtime(done.stderr)


def app_ms(records: list[Imported]) -> float:
    (app,) = [r for r in records if r.module == "app" and r.depth == 0]
    return app.cumulative_us / 1000


def heaviest(records: list[Imported], n: int = 8) -> list[Imported]:
    """The direct imports of app, most expensive first.

    importtime prints a module after everything it imported, so app's children are
    the depth-1 lines between the previous top-level line and app's own.
    """
    children: list[Imported] = []
    for r in records:
        if r.depth == 0:
            if r.module == "app":
                break
            children = []
        elif r.depth == 1:
            children.append(r)
    return sorted(children, key=lambda r: r.cumulative_us, reverse=True)[:n]


def measure(label: str, cwd: Path, isolated: bool, runs: int) -> list[Imported]:
    last: list[Imported] = []
    times = []
    for _ in range(runs):
        last = import_once(cwd, isolated)
        times.append(app_ms(last))
    print(
        f"  {label:<36} median {statistics.median(times):6.1f} ms  "
        f"min {min(times):6.1f}  max {max(times):6.1f}  (budget {BUDGET_MS:.0f} ms)"
    )
    return last


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--package", type=Path, help="a deployment.zip from make package")
    args = parser.parse_args(argv)
    import_once(ROOT, isolated=False)  # warm the working tree's .pyc cache
    print(f"python -X importtime -c 'import app'  ({args.runs} fresh processes each)")
    runs = [measure("venv, cached .pyc", ROOT, False, args.runs)]
    if args.package:
        with tempfile.TemporaryDirectory(prefix="soundcheck-package-") as unzipped:
            with zipfile.ZipFile(args.package) as archive:
                archive.extractall(unzipped)
            label = "deployment.zip, from source (Lambda)"
            runs.append(measure(label, Path(unzipped), True, args.runs))
    for records in runs:
        print("  heaviest direct imports of app (last run, cumulative):")
        for r in heaviest(records):
            print(f"    {r.cumulative_us / 1000:7.1f} ms  {r.module}")
        loaded = {r.module.split(".")[0] for r in records}
        print(f"  analysis stack imported: {sorted(loaded & set(HEAVY)) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
