"""layers/build.py: the analysis layer loads on Lambda's Python, CPU and glibc.

The checks run on small synthetic trees; one slow test builds the real x86_64 layer
for this Python (the Lambda runtime Chalice deploys), unzips it and runs the
project's analysis with nothing but the layer's numpy, scipy, soundfile, pyloudnorm.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path
from types import ModuleType

import pytest


def _load_build_script() -> ModuleType:
    """layers/build.py is a script, not a package; load it under a name of its own."""
    path = Path(__file__).resolve().parent.parent / "layers" / "build.py"
    spec = importlib.util.spec_from_file_location("soundcheck_layer_build", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


build = _load_build_script()

ROOT = Path(__file__).resolve().parent.parent
X86 = build.Target("x86_64", "3.11")
ARM = build.Target("arm64", "3.12")


def fake_elf(machine: int, glibc: str = "GLIBC_2.17") -> bytes:
    """An ELF64 little-endian header naming `machine`, then a dynamic string table."""
    header = b"\x7fELF" + bytes([2, 1, 1]) + bytes(11) + machine.to_bytes(2, "little")
    return header + bytes(44) + b"\0libc.so.6\0" + glibc.encode() + b"\0GLIBC_2.2.5\0"


def fake_layer(
    root: Path, *, machine: int = 62, glibc: str = "GLIBC_2.17", abi: str = "311"
) -> None:
    for package in ("numpy", "scipy", "pyloudnorm"):
        (root / package).mkdir(parents=True)
        (root / package / "__init__.py").write_text("")
    (root / "soundfile.py").write_text("")
    (root / "_soundfile_data").mkdir()
    (root / "_soundfile_data" / "libsndfile_x86_64.so").write_bytes(fake_elf(machine, glibc))
    ext = root / "numpy" / f"_core.cpython-{abi}-x86_64-linux-gnu.so"
    ext.write_bytes(fake_elf(machine, glibc))
    (root / "imageio_ffmpeg" / "binaries").mkdir(parents=True)
    exe = root / "imageio_ffmpeg" / "binaries" / "ffmpeg-linux-x86_64-v7.0.2"
    exe.write_bytes(fake_elf(machine))
    exe.chmod(0o755)
    (root / "soundcheck_native").mkdir()
    (root / "soundcheck_native" / "_soundcheck_dsp.x86_64.so").write_bytes(fake_elf(machine))


# --- targets and platforms -----------------------------------------------------------


def test_platform_tags_stop_at_the_runtime_glibc() -> None:
    tags = build.platforms("x86_64", (2, 26))
    assert tags[0] == "manylinux_2_26_x86_64"
    assert "manylinux_2_17_x86_64" in tags and "manylinux2014_x86_64" in tags
    assert "manylinux_2_27_x86_64" not in tags and "manylinux_2_28_x86_64" not in tags
    assert build.platforms("aarch64", (2, 34))[0] == "manylinux_2_34_aarch64"


def test_targets_follow_the_runtime() -> None:
    assert (X86.glibc, X86.runtime, X86.name) == (
        (2, 26),
        "python3.11",
        "soundcheck-analysis-x86_64-py311",
    )
    assert ARM.glibc == (2, 34) and ARM.machine == "aarch64"
    assert X86.requirements.name == "requirements-al2.txt" and X86.requirements.exists()
    assert ARM.requirements.name == "requirements-al2023.txt" and ARM.requirements.exists()
    assert build.Target.parse("arm64:3.13") == build.Target("arm64", "3.13")
    with pytest.raises(ValueError, match="arch"):
        build.Target("mips", "3.11")
    with pytest.raises(ValueError, match="python"):
        build.Target("x86_64", "3.9")


def test_default_targets_put_arm64_on_amazon_linux_2023() -> None:
    targets = build.default_targets()
    assert [t.arch for t in targets] == ["x86_64", "arm64"]
    assert targets[0].python == build.current_python()
    assert targets[1].os == "al2023"


def test_pip_is_asked_for_binary_wheels_of_the_target() -> None:
    args = build.pip_target_args(X86)
    assert "--only-binary=:all:" in args
    assert args[args.index("--python-version") + 1] == "3.11"
    assert args[args.index("--abi") + 1] == "cp311"
    platforms = [args[i + 1] for i, a in enumerate(args) if a == "--platform"]
    assert platforms == build.platforms("x86_64", (2, 26))


# --- checks --------------------------------------------------------------------------


def test_elf_and_glibc_readers() -> None:
    assert build.elf_machine(fake_elf(62)[:20]) == 62
    assert build.elf_machine(fake_elf(183)[:20]) == 183
    assert build.elf_machine(b"#!/bin/sh\n" + bytes(20)) is None
    assert build.glibc_needed(fake_elf(62, "GLIBC_2.27")) == (2, 27)
    assert build.glibc_needed(b"GLIBC_2.3 GLIBC_2.14 GLIBC_2.9") == (2, 14)
    assert build.glibc_needed(b"no versions here") is None


def test_the_venv_numpy_is_a_real_elf_for_this_machine() -> None:
    import numpy

    libs = sorted(Path(numpy.__file__).parent.rglob("*.so"))
    assert libs
    assert build.elf_machine(libs[0].read_bytes()[:20]) == build.ELF_MACHINE["x86_64"]


def test_a_fitting_tree_has_no_problems(tmp_path: Path) -> None:
    fake_layer(tmp_path)
    assert build.problems(tmp_path, X86) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"glibc": "GLIBC_2.28"}, "needs glibc 2.28, python3.11 has 2.26"),
        ({"machine": 183}, "ELF machine 183"),
        ({"abi": "312"}, "built for cpython-312"),
    ],
)
def test_problems_name_what_would_not_load(tmp_path: Path, kwargs: dict, message: str) -> None:
    fake_layer(tmp_path, **kwargs)
    found = build.problems(tmp_path, X86)
    assert any(message in p for p in found), found


def test_a_soundfile_without_libsndfile_is_refused(tmp_path: Path) -> None:
    fake_layer(tmp_path)
    (tmp_path / "_soundfile_data" / "libsndfile_x86_64.so").unlink()
    found = build.problems(tmp_path, build.Target("arm64", "3.11"))
    assert any("no libsndfile" in p and "arm64 needs python3.12" in p for p in found), found
    (tmp_path / "scipy" / "__init__.py").unlink()
    (tmp_path / "scipy").rmdir()
    assert any("scipy is missing" in p for p in build.problems(tmp_path, X86))


def test_the_layer_ffmpeg_must_run_on_the_target(tmp_path: Path) -> None:
    """decode.py runs imageio-ffmpeg's static binary: it must be there, for the target's
    CPU, and executable (the zip keeps mode bits; Lambda's /opt is read-only)."""
    fake_layer(tmp_path)
    exe = tmp_path / "imageio_ffmpeg" / "binaries" / "ffmpeg-linux-x86_64-v7.0.2"
    exe.chmod(0o644)
    assert any("not executable" in p for p in build.problems(tmp_path, X86))
    assert any("ELF machine 62" in p for p in build.problems(tmp_path, ARM))
    exe.unlink()
    assert any("no ffmpeg binary" in p for p in build.problems(tmp_path, X86))


def test_the_layer_must_carry_our_kernels(tmp_path: Path) -> None:
    fake_layer(tmp_path)
    (tmp_path / "soundcheck_native" / "_soundcheck_dsp.x86_64.so").unlink()
    found = build.problems(tmp_path, X86)
    missing = "soundcheck_native/_soundcheck_dsp.x86_64.so is missing: the C kernels were not built"
    assert found == [missing]


def test_kernels_are_cross_compiled_for_the_other_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build.platform, "machine", lambda: "x86_64")
    monkeypatch.setenv("CC", "gcc -pipe")
    assert build.kernel_compiler(X86) == ["gcc", "-pipe"]
    if importlib.util.find_spec("ziglang") is None:
        with pytest.raises(SystemExit, match="pip install ziglang"):
            build.kernel_compiler(ARM)
    else:
        assert build.kernel_compiler(ARM)[-2:] == ["-target", "aarch64-linux-gnu.2.34"]


def test_strip_keeps_what_runs(tmp_path: Path) -> None:
    files = {
        "numpy/__init__.py": 10,
        "numpy/testing/__init__.py": 10,  # numpy.testing is a runtime module
        "numpy/_core/tests/test_a.py": 100,
        "numpy/_core/tests/_natype.py": 10,  # imported by numpy.testing
        "numpy/_core/tests/data/x.csv": 100,
        "numpy/_core/include/numpy/x.h": 100,
        "numpy/__init__.pyi": 100,
        "numpy/__pycache__/x.cpython-311.pyc": 100,
        "scipy/linalg/cython_blas.pxd": 100,
        "scipy/linalg/_fblas.cpython-311-x86_64-linux-gnu.so": 10,
        "bin/f2py": 100,
        "numpy-2.2.6.dist-info/METADATA": 10,
    }
    for name, size in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x" * size)
    assert build.strip(tmp_path) == 700
    left = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    assert left == {
        "numpy/__init__.py",
        "numpy/testing/__init__.py",
        "numpy/_core/tests/_natype.py",
        "scipy/linalg/_fblas.cpython-311-x86_64-linux-gnu.so",
        "numpy-2.2.6.dist-info/METADATA",
    }


def test_zip_is_reproducible_and_under_python(tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "pkg").mkdir(parents=True)
    (source / "pkg" / "a.py").write_text("print(1)\n")
    lib = source / "pkg" / "lib.so"
    lib.write_bytes(b"\x7fELF" + bytes(100))
    lib.chmod(0o755)
    first = build.write_zip(source, tmp_path / "one.zip")
    os.utime(source / "pkg" / "a.py", (1, 1))  # a newer mtime must not change the bytes
    build.write_zip(source, tmp_path / "two.zip")
    assert (tmp_path / "one.zip").read_bytes() == (tmp_path / "two.zip").read_bytes()
    assert first == (tmp_path / "one.zip").stat().st_size
    with zipfile.ZipFile(tmp_path / "one.zip") as z:
        assert z.namelist() == ["python/pkg/a.py", "python/pkg/lib.so"]
        assert (z.getinfo("python/pkg/lib.so").external_attr >> 16) & 0o111
        assert z.read("python/pkg/a.py") == b"print(1)\n"


def test_size_limit() -> None:
    fits = build.Sizes(200 * build.MB, 50 * build.MB, 50 * build.MB, 0)
    assert fits.over_limit() is None
    over = build.Sizes(200 * build.MB, 50 * build.MB, 50 * build.MB + 1, 0)
    assert "over Lambda's 250.0 MB" in (over.over_limit() or "")


# --- the real layer ------------------------------------------------------------------

PROBE = textwrap.dedent(
    """
    import json, sys
    import numpy as np, scipy, soundfile as sf, pyloudnorm as pyln
    from chalicelib.analysis import analyze_file, ffmpeg, native

    rate = 48000
    t = np.arange(rate * 5) / rate
    tone = 0.5 * np.sin(2 * np.pi * 997 * t)
    sf.write(sys.argv[1], np.stack([tone, tone], axis=1), rate, subtype="PCM_24")
    data, read_rate = sf.read(sys.argv[1])
    result = analyze_file(sys.argv[1])
    print(json.dumps({
        "numpy": np.__version__, "numpy_at": np.__file__, "scipy": scipy.__version__,
        "soundfile": sf.__version__,
        "libsndfile": [l.split()[-1] for l in open("/proc/self/maps") if "libsndfile" in l][0],
        "pyloudnorm": pyln.Meter(rate).integrated_loudness(data),
        "lufs": result["loudness"]["integratedLufs"], "rate": read_rate,
        "ffmpeg": ffmpeg.binary(), "kernels": native.library()._name,
    }))
    """
)


@pytest.mark.slow
def test_the_built_layer_runs_the_analysis(tmp_path: Path) -> None:
    target = build.Target("x86_64", build.current_python())
    if build.RUNTIME_OS[target.python] != "al2" or os.uname().machine != "x86_64":
        pytest.skip("the probe runs the x86_64 Amazon Linux 2 layer on this machine")
    zip_path, sizes = build.build(target, tmp_path / "out")
    assert sizes.over_limit() is None
    with zipfile.ZipFile(zip_path) as z:
        names = z.namelist()
        assert all(n.startswith("python/") for n in names)
        assert any(n.startswith("python/_soundfile_data/libsndfile") for n in names)
        assert not any("/tests/test_" in n or n.endswith(".pyc") for n in names)
        for entry in z.infolist():  # as Lambda unpacks it: with the entries' mode bits
            unpacked = z.extract(entry, tmp_path / "opt")
            os.chmod(unpacked, entry.external_attr >> 16 & 0o777)
    layer = tmp_path / "opt" / "python"
    # The app as Lambda gets it, without this machine's build of the kernels: they
    # must come from the layer.
    app = tmp_path / "app"
    shutil.copytree(ROOT / "chalicelib", app / "chalicelib", ignore=shutil.ignore_patterns("*.so"))
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": f"{layer}:{app}"}
    # -S: no site-packages, so nothing from the virtualenv can stand in for the layer
    done = subprocess.run(
        [sys.executable, "-S", "-c", PROBE, str(tmp_path / "tone.flac")],
        env=env,
        cwd=tmp_path,  # not the checkout: `-c` puts the working directory on sys.path
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    pins = dict(
        line.split("==") for line in target.requirements.read_text().splitlines() if "==" in line
    )
    assert (seen["numpy"], seen["scipy"], seen["soundfile"]) == (
        pins["numpy"],
        pins["scipy"],
        pins["soundfile"],
    )
    assert seen["numpy_at"].startswith(str(layer))
    assert seen["libsndfile"].startswith(str(layer))  # the bundled one, not the system's
    assert seen["ffmpeg"].startswith(str(layer))  # its static build decoded the FLAC tone
    assert seen["kernels"] == str(layer / "soundcheck_native" / "_soundcheck_dsp.x86_64.so")
    assert seen["rate"] == 48000
    # a 997 Hz sine at half scale in both channels: -3.01 + 3.01 - 6.02 = -6.02 LUFS
    assert seen["pyloudnorm"] == pytest.approx(-6.02, abs=0.05)
    assert seen["lufs"] == pytest.approx(seen["pyloudnorm"], abs=0.1)
