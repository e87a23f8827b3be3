"""A file that cannot be audio we decode is refused at upload-url, before any byte moves."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.deps import Deps
from chalicelib.formats import ACCEPTED, accepted_list
from tests.pipeline_support import json_body
from tests.test_api import User, alice, assert_error, env, http, post, service

__all__ = ["alice", "env", "http", "service"]  # fixtures used by name


@pytest.mark.parametrize(
    ("name", "content_type", "says"),
    [
        ("song.mid", "audio/midi", "MIDI"),
        ("song.midi", "application/octet-stream", "MIDI"),
        ("groove.wav", "audio/x-midi", "MIDI"),  # a MIDI file named .wav by its sender
        ("set.m3u8", "application/vnd.apple.mpegurl", "playlist"),
        ("cover.png", "image/png", "image"),
        ("mix.wav", "image/png", "not as audio"),
        ("notes.txt", "text/plain", "text file"),
        ("mix.mp3", "text/plain", "not as audio"),  # a text file renamed .mp3 by a browser
        ("Project.als", "application/octet-stream", "DAW project"),
        ("track.xyz", "audio/wav", "not an audio format"),
        ("mix", "application/octet-stream", "no file extension"),
    ],
)
def test_not_audio_is_refused_with_the_accepted_list(
    http: Any, service: Deps, alice: User, name: str, content_type: str, says: str
) -> None:
    body = {"fileName": name, "contentType": content_type, "sizeBytes": 1000}
    response = post(http, "/api/audio/upload-url", alice, body)
    assert_error(response, 400, "unsupported_format")
    message = json_body(response)["error"]["message"]
    assert says in message
    assert "WAV (.wav .wave)" in message and "FLAC" in message and "M4A (AAC or ALAC)" in message
    assert "uploadUrl" not in json_body(response)  # refused before any byte can move


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("mix.m4a", "audio/mp4"),
        ("mix.m4a", "audio/x-m4a"),
        ("Master.AIFF", "audio/aiff"),
        ("take.opus", "audio/opus"),
        ("long.rf64", "application/octet-stream"),
        ("song.ogg", "application/ogg"),
        ("My Mix (v2) é.mp3", "audio/mpeg"),
        ("stem.caf", "audio/x-caf"),
        ("noext", "audio/flac"),
        ("live.wv", "application/octet-stream"),
        ("old.wma", "audio/x-ms-wma"),
        ("video.mp4", "video/mp4"),  # its first audio stream is analysed
        ("clip.mov", "video/quicktime"),
        ("set.mkv", "video/x-matroska"),
    ],
)
def test_audio_formats_the_decoder_reads_are_accepted(
    http: Any, service: Deps, alice: User, name: str, content_type: str
) -> None:
    body = {"fileName": name, "contentType": content_type, "sizeBytes": 1000}
    upload = json_body(post(http, "/api/audio/upload-url", alice, body))
    assert upload["method"] == "PUT" and upload["uploadUrl"]


def test_the_accepted_list_names_every_extension_once() -> None:
    listed = accepted_list()
    for extension in ACCEPTED:
        assert listed.count(f"{extension} ") + listed.count(f"{extension})") == 1, extension
