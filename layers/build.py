"""Build the analysis layer (numpy, scipy, soundfile, ffmpeg, our C kernels) as Lambda layer zips.

Why more than `pip install -t`: the layer runs on Amazon Linux, not here. Its
wheels must match the Lambda runtime's Python, CPU and glibc (python3.10/3.11 run on
Amazon Linux 2, glibc 2.26; python3.12+ on Amazon Linux 2023, glibc 2.34), so pip
is told the target platform and takes binary wheels only. Then the result is
checked the way the loader will see it: every shared library is for the right CPU
and needs no newer glibc, soundfile brought its own libsndfile (its none-any
wheel has none), and imageio-ffmpeg brought its static, executable ffmpeg for the
target's CPU (the decoder of every upload: chalicelib/analysis/ffmpeg.py), and our
own C kernels (chalicelib/analysis/native.py) were compiled for the target's CPU
into `soundcheck_native/`: with this machine's `cc` for its own CPU, with zig's
clang (PyPI `ziglang`, a cross compiler that needs nothing else installed) for
the other, against the runtime's glibc. Tests,
caches, stubs and headers are stripped, and the build fails if the layer plus the
app would exceed Lambda's 250 MB unzipped limit.

    python layers/build.py                       # x86_64 and arm64, sizes printed
    python layers/build.py --target x86_64:3.11  # one target

Downloaded wheels are cached in layers/build/wheels/; zips land in layers/build/.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shlex
import shutil
import stat
import subprocess
import sys
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BUILD = HERE / "build"

MB = 1024 * 1024
# Lambda quotas: function code plus all its layers, unzipped; a zip uploaded directly.
UNZIPPED_LIMIT = 250 * MB
DIRECT_UPLOAD_LIMIT = 50 * MB

# Lambda runtime -> its operating system; the OS fixes glibc and the layer's pins.
RUNTIME_OS = {"3.10": "al2", "3.11": "al2", "3.12": "al2023", "3.13": "al2023"}
GLIBC = {"al2": (2, 26), "al2023": (2, 34)}
MACHINE = {"x86_64": "x86_64", "arm64": "aarch64"}
ELF_MACHINE = {"x86_64": 62, "aarch64": 183}  # e_machine in the ELF header

# Where native.library() looks on Lambda: /opt/python/soundcheck_native/.
NATIVE_FOLDER = "soundcheck_native"

# Not needed to run, only to build or test: removed from the layer (see strip).
STRIP_SUFFIXES = (".pyc", ".pyi", ".pxd", ".pyx", ".c", ".h", ".hpp", ".cpp", ".a")

_GLIBC_VERSION = re.compile(rb"GLIBC_(\d+)\.(\d+)")
_EXTENSION_TAG = re.compile(r"\.cpython-(\d+)-([a-z0-9_]+)-linux-gnu\.so$")


@dataclass(frozen=True)
class Target:
    """One layer to build: a CPU architecture and the runtime's Python version."""

    arch: str
    python: str

    def __post_init__(self) -> None:
        if self.arch not in MACHINE:
            raise ValueError(f"arch must be one of {', '.join(MACHINE)}, got {self.arch!r}")
        if self.python not in RUNTIME_OS:
            raise ValueError(f"python must be one of {', '.join(RUNTIME_OS)}, got {self.python!r}")

    @classmethod
    def parse(cls, text: str) -> Target:
        arch, _, python = text.partition(":")
        return cls(arch, python or current_python())

    @property
    def os(self) -> str:
        return RUNTIME_OS[self.python]

    @property
    def glibc(self) -> tuple[int, int]:
        return GLIBC[self.os]

    @property
    def machine(self) -> str:
        return MACHINE[self.arch]

    @property
    def tag(self) -> str:
        return f"{self.arch}-py{self.python.replace('.', '')}"

    @property
    def name(self) -> str:
        """The layer's name, also in the ARN that .chalice/config.json references."""
        return f"soundcheck-analysis-{self.tag}"

    @property
    def runtime(self) -> str:
        return f"python{self.python}"

    @property
    def requirements(self) -> Path:
        return HERE / f"requirements-{self.os}.txt"


def current_python() -> str:
    """Chalice deploys the Python it runs on; the layer must match it."""
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def default_targets() -> list[Target]:
    """x86_64 for this Python, and arm64 for the oldest runtime that can have it.

    On Amazon Linux 2 (python3.10/3.11) no soundfile wheel for aarch64 bundles a
    libsndfile old enough for glibc 2.26, so arm64 needs python3.12 or newer.
    """
    python = current_python()
    arm_python = python if RUNTIME_OS.get(python) == "al2023" else "3.12"
    return [Target("x86_64", python), Target("arm64", arm_python)]


def platforms(machine: str, glibc: tuple[int, int]) -> list[str]:
    """pip --platform tags a loader with this glibc accepts, newest first.

    pip matches --platform exactly, without the older manylinux tags a native
    install would also accept, so the whole range is listed.
    """
    major, newest = glibc
    tags = [f"manylinux_{major}_{minor}_{machine}" for minor in range(newest, 16, -1)]
    return [*tags, f"manylinux2014_{machine}"]


def pip_target_args(target: Target) -> list[str]:
    args = ["--only-binary=:all:", "--implementation", "cp"]
    args += ["--python-version", target.python, "--abi", f"cp{target.python.replace('.', '')}"]
    for tag in platforms(target.machine, target.glibc):
        args += ["--platform", tag]
    return args


def pip(*args: str) -> None:
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet", *args]
    subprocess.run(command, check=True)


def install(target: Target, requirements: Path, dest: Path, wheels: Path) -> None:
    """Download the target's wheels into the cache, then install offline from it."""
    wheels.mkdir(parents=True, exist_ok=True)
    pip("download", "--dest", str(wheels), *pip_target_args(target), "-r", str(requirements))
    if dest.exists():
        shutil.rmtree(dest)
    pip(
        "install",
        "--no-index",
        "--find-links",
        str(wheels),
        "--target",
        str(dest),
        "--no-compile",
        "--no-warn-conflicts",
        *pip_target_args(target),
        "-r",
        str(requirements),
    )


def kernel_compiler(target: Target) -> list[str]:
    """The command that compiles our C kernels for the target.

    This machine's `cc` (or $CC) for its own CPU: the kernels call nothing in libc,
    so the glibc they were built against does not matter (problems() checks it).
    For the other CPU, zig's clang from PyPI `ziglang`, told the runtime's glibc.
    Raises SystemExit with the fix if no cross compiler is installed.
    """
    if target.machine == platform.machine():
        return shlex.split(os.environ.get("CC", "cc"))
    try:
        import ziglang  # noqa: F401 - only its presence is checked
    except ImportError:
        raise SystemExit(
            f"building the {target.arch} layer on {platform.machine()} needs a cross "
            "compiler for our C kernels: pip install ziglang (`make layer` does)"
        ) from None
    major, minor = target.glibc
    zig_target = f"{target.machine}-linux-gnu.{major}.{minor}"
    return [sys.executable, "-m", "ziglang", "cc", "-target", zig_target]


def build_kernels(target: Target, root: Path) -> Path:
    """Compile chalicelib/analysis/kernels/*.c for the target into root/soundcheck_native/."""
    from chalicelib.analysis import native  # the project's own build of its kernels

    try:
        return native.build(
            root / NATIVE_FOLDER, compiler=kernel_compiler(target), machine=target.machine
        )
    except native.BuildError as error:
        raise SystemExit(f"{target.name}: the C kernels did not build: {error}") from None


def strip(root: Path) -> int:
    """Remove what only building or testing needs; return the bytes saved.

    In `tests` folders the private helper modules stay: numpy.testing imports
    numpy._core.tests._natype, and scipy imports numpy.testing.
    """
    saved = 0
    scripts = root / "bin"  # console scripts (f2py, numpy-config): nothing runs them
    if scripts.is_dir():
        saved += tree_size(scripts)
        shutil.rmtree(scripts)
    for path in sorted(root.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_dir() and path.name == "__pycache__":
            saved += tree_size(path)
            shutil.rmtree(path)
        elif path.is_dir() and path.name == "tests":
            for child in path.iterdir():
                if child.is_dir():
                    saved += tree_size(child)
                    shutil.rmtree(child)
                elif not _helper_module(child.name):
                    saved += child.stat().st_size
                    child.unlink()
        elif path.is_file() and path.name.endswith(STRIP_SUFFIXES):
            saved += path.stat().st_size
            path.unlink()
    return saved


def _helper_module(name: str) -> bool:
    return name == "__init__.py" or (name.startswith("_") and name.endswith(".py"))


def tree_size(root: Path) -> int:
    """Bytes of the regular files under root (what Lambda counts once unzipped)."""
    if root.is_file():
        return root.stat().st_size
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def elf_machine(head: bytes) -> int | None:
    """e_machine of an ELF file from its first 20 bytes; None if it is not ELF."""
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    return int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")


def glibc_needed(data: bytes) -> tuple[int, int] | None:
    """The newest GLIBC_x.y symbol version a shared library refers to, if any.

    These names sit in the library's dynamic string table; the loader refuses a
    library needing a version the system glibc lacks.
    """
    versions = [(int(a), int(b)) for a, b in _GLIBC_VERSION.findall(data)]
    return max(versions) if versions else None


def problems(root: Path, target: Target) -> list[str]:
    """Every reason the installed tree at root would not load on the target runtime."""
    found: list[str] = []
    want_machine = ELF_MACHINE[target.machine]
    want_abi = target.python.replace(".", "")
    for path in sorted(root.rglob("*.so*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        machine = elf_machine(data[:20])
        if machine is None:
            continue
        rel = path.relative_to(root)
        if machine != want_machine:
            found.append(f"{rel}: ELF machine {machine}, the target needs {want_machine}")
        needed = glibc_needed(data)
        if needed and needed > target.glibc:
            found.append(
                f"{rel}: needs glibc {needed[0]}.{needed[1]}, {target.runtime} has "
                f"{target.glibc[0]}.{target.glibc[1]}"
            )
        tag = _EXTENSION_TAG.search(path.name)
        if tag and (tag.group(1) != want_abi or tag.group(2) != target.machine):
            found.append(f"{rel}: built for cpython-{tag.group(1)}-{tag.group(2)}")
    if not any((root / "_soundfile_data").glob("libsndfile*.so")):
        hint = " (arm64 needs python3.12 or newer)" if target.os == "al2" else ""
        found.append(f"soundfile brought no libsndfile*.so: its wheel was the none-any one{hint}")
    kernels = root / NATIVE_FOLDER / f"_soundcheck_dsp.{target.machine}.so"
    if not kernels.is_file():
        found.append(f"{NATIVE_FOLDER}/{kernels.name} is missing: the C kernels were not built")
    found += ffmpeg_problems(root, target)
    for package in ("numpy", "scipy", "soundfile.py", "pyloudnorm", "imageio_ffmpeg"):
        if not (root / package).exists():
            found.append(f"{package} is missing")
    return found


def ffmpeg_problems(root: Path, target: Target) -> list[str]:
    """Why the layer's ffmpeg would not run: missing, another CPU's, or not executable.

    The binary is static (no glibc needed); Lambda keeps a zip entry's mode bits.
    """
    binaries = sorted((root / "imageio_ffmpeg" / "binaries").glob("ffmpeg-*"))
    if not binaries:
        return ["imageio_ffmpeg brought no ffmpeg binary: its wheel was not the platform one"]
    found: list[str] = []
    for path in binaries:
        rel = path.relative_to(root)
        machine = elf_machine(path.read_bytes()[:20])
        if machine != ELF_MACHINE[target.machine]:
            found.append(f"{rel}: ELF machine {machine}, the target needs {target.machine}")
        if not path.stat().st_mode & stat.S_IXUSR:
            found.append(f"{rel}: not executable")
    return found


def write_zip(source: Path, zip_path: Path, prefix: str = "python") -> int:
    """Zip source under `prefix/` (where Lambda puts layers on sys.path); return its size.

    Entries are sorted with fixed timestamps, so the same wheels give the same bytes
    and an unchanged layer needs no new version.
    """
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    partial = zip_path.with_suffix(".zip.part")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(f"{prefix}/{path.relative_to(source).as_posix()}")
            info.date_time = (1980, 1, 1, 0, 0, 0)
            executable = path.stat().st_mode & stat.S_IXUSR
            info.external_attr = (0o755 if executable else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    os.replace(partial, zip_path)
    return zip_path.stat().st_size


def app_size(target: Target, work: Path) -> int:
    """Unzipped size of what `chalice package` ships: app.py, chalicelib/, requirements.txt."""
    deps = work / f"app-{target.tag}"
    install(target, ROOT / "requirements.txt", deps, BUILD / "wheels" / target.tag)
    own = [ROOT / "app.py", *(ROOT / "chalicelib").rglob("*.py")]
    data = [p for p in (ROOT / "chalicelib").rglob("*") if p.suffix in (".sql", ".json", ".c")]
    return tree_size(deps) + sum(p.stat().st_size for p in [*own, *data])


@dataclass(frozen=True)
class Sizes:
    """What the limits are checked against, in bytes."""

    layer_unzipped: int
    layer_zipped: int
    app_unzipped: int
    stripped: int

    @property
    def total_unzipped(self) -> int:
        return self.layer_unzipped + self.app_unzipped

    def over_limit(self) -> str | None:
        if self.total_unzipped <= UNZIPPED_LIMIT:
            return None
        return (
            f"layer {mb(self.layer_unzipped)} + app {mb(self.app_unzipped)} = "
            f"{mb(self.total_unzipped)} unzipped, over Lambda's {mb(UNZIPPED_LIMIT)}"
        )


def mb(n: int) -> str:
    return f"{n / MB:.1f} MB"


def build(target: Target, out: Path = BUILD) -> tuple[Path, Sizes]:
    """Build, check and zip one target's layer; raise SystemExit with the reasons if unfit."""
    staging = out / "staging" / target.tag
    install(target, target.requirements, staging, BUILD / "wheels" / target.tag)
    stripped = strip(staging)
    build_kernels(target, staging)
    found = problems(staging, target)
    if found:
        raise SystemExit(
            f"{target.name} would not load on {target.runtime} {target.arch}:\n  "
            + "\n  ".join(found)
        )
    zip_path = out / f"{target.name}.zip"
    zipped = write_zip(staging, zip_path)
    sizes = Sizes(tree_size(staging), zipped, app_size(target, out / "staging"), stripped)
    problem = sizes.over_limit()
    if problem:
        raise SystemExit(f"{target.name}: {problem}")
    return zip_path, sizes


def report(target: Target, zip_path: Path, sizes: Sizes) -> str:
    lines = [
        f"{target.name}  ({target.runtime}, {target.arch}, glibc <= "
        f"{target.glibc[0]}.{target.glibc[1]})",
        f"  zip            {mb(sizes.layer_zipped):>10}  {zip_path.relative_to(ROOT)}",
        f"  layer unzipped {mb(sizes.layer_unzipped):>10}  ({mb(sizes.stripped)} stripped)",
        f"  app unzipped   {mb(sizes.app_unzipped):>10}",
        f"  total          {mb(sizes.total_unzipped):>10}  of {mb(UNZIPPED_LIMIT)} allowed",
    ]
    if sizes.layer_zipped > DIRECT_UPLOAD_LIMIT:
        lines.append(
            f"  over {mb(DIRECT_UPLOAD_LIMIT)} zipped: publish it from S3 (docs/deploy.md)"
        )
    return "\n".join(lines)


def publish_hint(targets: Iterable[Target]) -> str:
    lines = ["Publish (docs/deploy.md), then put the LayerVersionArn in .chalice/config.json:"]
    for t in targets:
        lines += [
            f"  aws s3 cp layers/build/{t.name}.zip s3://$ARTIFACTS_BUCKET/layers/{t.name}.zip",
            f"  aws lambda publish-layer-version --layer-name {t.name} \\",
            f"    --content S3Bucket=$ARTIFACTS_BUCKET,S3Key=layers/{t.name}.zip \\",
            f"    --compatible-runtimes {t.runtime} --compatible-architectures {t.arch}",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--target",
        action="append",
        type=Target.parse,
        help="ARCH[:PYTHON], e.g. x86_64:3.11 or arm64:3.12 (repeatable; default: both)",
    )
    args = parser.parse_args(argv)
    targets: list[Target] = args.target or default_targets()
    for target in targets:
        zip_path, sizes = build(target)
        print(report(target, zip_path, sizes), flush=True)
    print(publish_hint(targets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
