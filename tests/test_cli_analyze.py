"""`soundcheck analyze` and the text report (which `soundcheck submit` reuses)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile

from chalicelib.cli import main
from chalicelib.report import render
from tests.music import music_like

RATE = 44100


@pytest.fixture(scope="module")
def mix(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "mix.wav"
    soundfile.write(path, music_like(8.0, RATE, seed=5), RATE, subtype="PCM_24")
    return path


def test_analyze_prints_the_report(mix: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", str(mix), "--genre", "house"]) == 0
    out = capsys.readouterr().out
    assert "soundcheck: mix.wav" in out
    assert "Integrated" in out and "LUFS" in out and "True peak" in out
    assert "Score" in out and "against House\n" in out  # not "House (genre)"
    assert "Suggestions" in out


def test_analyze_json_is_the_result(mix: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", str(mix), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["schemaVersion"] == 2 and result["file"]["format"] == "WAV"
    assert result["comparison"]["target"] == "streaming"


def test_reference_as_audio_or_saved_json(
    mix: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["analyze", str(mix), "--json", "--reference", str(mix)]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["comparison"]["mode"] == "reference" and first["comparison"]["score"] == 100
    saved = tmp_path / "ref.json"
    saved.write_text(json.dumps(first))
    assert main(["analyze", str(mix), "--json", "--reference", str(saved)]) == 0
    assert json.loads(capsys.readouterr().out)["comparison"]["score"] == 100


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--genre", "polka"], 1, "unknown_genre"),
        (["--reference", "missing.json"], 1, "invalid_reference"),
    ],
)
def test_errors_are_one_line_and_exit_1(
    mix: Path, args: list[str], code: int, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["analyze", str(mix), *args]) == code
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_bad_audio_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = tmp_path / "lyrics.wav"
    text.write_text("not audio at all\n" * 10)
    assert main(["analyze", str(text)]) == 1
    assert "unsupported_format" in capsys.readouterr().err


def test_genre_and_reference_are_exclusive(mix: Path) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["analyze", str(mix), "--genre", "pop", "--reference", str(mix)])
    assert caught.value.code == 2


def test_the_console_script(mix: Path) -> None:
    script = Path(sys.executable).with_name("soundcheck")
    out = subprocess.run(
        [str(script), "analyze", str(mix), "--json"], capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout)["file"]["sampleRate"] == RATE
    listed = subprocess.run([str(script), "genres"], capture_output=True, text=True, check=True)
    assert "funk_mandela" in listed.stdout.split()


def _minimal() -> dict[str, Any]:
    return {"schemaVersion": 1, "file": None, "loudness": {"integratedLufs": None}}


@pytest.mark.parametrize(
    "result",
    [
        {},
        _minimal(),
        {"stereo": None, "spectrum": {"bands": [{"name": "sub"}]}, "comparison": {"score": None}},
        {"comparison": {"metrics": [{"metric": "x", "value": "?", "target": None}]}},
    ],
)
def test_report_copes_with_partial_results(result: dict[str, Any]) -> None:
    """`soundcheck submit` renders whatever the API returned; it must never crash."""
    text = render(result)
    assert isinstance(text, str) and text.endswith("\n")


def test_report_shows_values_and_reasons() -> None:
    from chalicelib.analysis import analyze

    result = analyze(np.zeros(1000, np.float32), RATE)
    text = render(result, title="silence.wav")
    assert "n/a" in text and "Not measured" in text and "silence" in text
    assert "Score n/a" in text


def test_a_reader_that_leaves_early_gets_no_traceback() -> None:
    """`soundcheck genres | head -1`: the pipe closes before everything is written."""
    process = subprocess.Popen(
        [sys.executable, "-m", "chalicelib.cli", "genres"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # the reader is gone before the command writes a line
    err = process.stderr.read()
    assert process.wait(timeout=60) == 141, err
    assert "Traceback" not in err and "BrokenPipe" not in err
