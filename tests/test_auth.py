"""API keys: random, stored only as sha256, read from a Bearer header."""

import hashlib

import pytest

from chalicelib.auth import bearer_token, hash_key, new_api_key


def test_new_keys_are_long_random_and_recognisable() -> None:
    keys = {new_api_key() for _ in range(100)}
    assert len(keys) == 100
    for key in keys:
        assert key.startswith("sck_")
        assert len(key) >= 40
        assert bearer_token({"Authorization": f"Bearer {key}"}) == key  # survives a header


def test_hash_is_hex_sha256_of_the_key() -> None:
    assert hash_key("sck_abc") == hashlib.sha256(b"sck_abc").hexdigest()
    assert hash_key("sck_abc") != hash_key("sck_abd")


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Authorization": "Bearer tok123"}, "tok123"),
        ({"authorization": "bearer tok123"}, "tok123"),
        ({"AUTHORIZATION": "BEARER   tok123  "}, "tok123"),
        ({"Authorization": "Basic dXNlcjpwdw=="}, None),
        ({"Authorization": "Bearer"}, None),
        ({"Authorization": "Bearer "}, None),
        ({"Authorization": "Bearer two words"}, None),
        ({"Authorization": ""}, None),
        ({"X-Api-Key": "tok123"}, None),
        ({}, None),
        (None, None),
    ],
)
def test_bearer_token(headers: dict[str, str] | None, expected: str | None) -> None:
    assert bearer_token(headers) == expected
