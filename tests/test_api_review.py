"""Review findings on request validation: inputs that used to end in a 500 or a 503."""

from __future__ import annotations

import pytest

from chalicelib import api
from chalicelib.storage import check_owner_key, new_key

OWNER = "alice"


def _check_key(owner: str, key: str) -> str:
    return check_owner_key("uploads", owner, key)


@pytest.mark.parametrize("limit", ["\u00b2", "1" * 5000, "\u0661"])
def test_a_limit_that_is_not_ascii_digits_is_400_not_500(limit: str) -> None:
    with pytest.raises(api.ApiError) as info:
        api.parse_list_query({"limit": limit})
    assert (info.value.status, info.value.code) == (400, "invalid_limit")


@pytest.mark.parametrize("field", ["fileName", "genre"])
def test_a_nul_character_is_400_not_a_database_error(field: str) -> None:
    body = {"fileKey": new_key("uploads", OWNER, "mix.wav"), field: "mix\x00.wav"}
    with pytest.raises(api.ApiError) as info:
        api.parse_submit(OWNER, body, check_genre=api.genre_name, check_key=_check_key)
    assert (info.value.status, info.value.code) == (400, "invalid_field")
