"""The error tree (chalicelib.errors): every code documented, one translation, nothing leaked."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import pg8000.exceptions
import pytest
import redis.exceptions

import chalicelib
from chalicelib import errors
from chalicelib.errors import (
    ApiError,
    InternalError,
    SoundcheckError,
    StorageError,
    Unavailable,
)

DOCS = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def all_error_classes() -> list[type[SoundcheckError]]:
    """Every SoundcheckError subclass in chalicelib, its modules all imported first."""
    for module in pkgutil.walk_packages(chalicelib.__path__, "chalicelib."):
        importlib.import_module(module.name)
    return errors.every_class()


def http_table() -> dict[str, set[int]]:
    """code -> the statuses docs/api.md's rows `| 400 | `code` ... |` give it."""
    found: dict[str, set[int]] = {}
    for line in DOCS.read_text(encoding="utf-8").splitlines():
        row = re.match(r"^\| (\d{3}) \| (.*?) \|", line)
        if row:
            for code in re.findall(r"`([a-z_]+)`", row[2]):
                found.setdefault(code, set()).add(int(row[1]))
    return found


def test_the_walk_finds_every_family() -> None:
    names = {cls.__name__ for cls in all_error_classes()}
    assert {"ApiError", "AnalysisError", "StorageError", "SettingsError", "InvalidJobInput"} <= (
        names
    )


def test_every_error_code_is_documented_in_api_md() -> None:
    documented = set(re.findall(r"`([a-z_]+)`", DOCS.read_text(encoding="utf-8")))
    missing = {
        f"{cls.__name__}.{code}"
        for cls in all_error_classes()
        for code in cls.all_codes()
        if code not in documented
    }
    assert not missing, f"codes missing from docs/api.md: {sorted(missing)}"


def test_the_http_table_gives_each_code_its_own_status() -> None:
    table = http_table()
    for code, status in ApiError.codes.items():
        assert table.get(code) == {status}, code
    wrong = {
        f"{cls.__name__}.{code}: {status} vs {table[code]}"
        for cls in all_error_classes()
        for code, status in cls.all_codes().items()
        if code in table and status < 500 and status not in table[code]
    }
    assert not wrong


def test_a_family_refuses_a_code_it_does_not_declare() -> None:
    with pytest.raises(TypeError, match="declare it"):
        ApiError("teapot", "short and stout")
    with pytest.raises(TypeError):
        ApiError(418, "teapot", "the old argument order")  # type: ignore[arg-type,call-arg]
    error = StorageError("too_large", "big")
    assert (error.status, error.code, error.retryable) == (413, "too_large", False)


def test_library_exceptions_become_unavailable_with_a_fixed_message() -> None:
    cases = [
        (redis.exceptions.ConnectionError("Error 111 connecting to 10.0.0.5:6379"), "queue"),
        (pg8000.exceptions.InterfaceError("password=hunter2 refused"), "database"),
        (ConnectionRefusedError("[Errno 111] /tmp/secret-path"), "io_error"),
    ]
    for exc, fragment in cases:
        error = errors.of(exc)
        assert isinstance(error, Unavailable) and error.retryable and error.status == 503
        assert fragment in error.code
        assert str(exc) not in error.message and error.reference in error.message
        public = error.for_http()
        assert (public.code, public.reference) == ("unavailable", error.reference)


def _pg_error(sqlstate: str) -> pg8000.exceptions.DatabaseError:
    return pg8000.exceptions.DatabaseError({"S": "ERROR", "C": sqlstate, "M": "secret detail"})


@pytest.mark.parametrize("sqlstate", ["22021", "22009", "23505", "42P01", "21000"])
def test_postgres_refusing_what_we_sent_is_a_bug_not_an_outage(sqlstate: str) -> None:
    """A NUL byte (22021) or an offset Postgres does not take (22009) in a query was a
    503 "retry soon" that no retry gets past: the same request fails the same way."""
    error = errors.of(_pg_error(sqlstate))
    assert isinstance(error, InternalError) and error.status == 500
    assert "secret detail" not in error.message


@pytest.mark.parametrize("sqlstate", ["40P01", "40001", "53300", "57P01", "08006", "55P03"])
def test_postgres_states_that_pass_stay_unavailable(sqlstate: str) -> None:
    """Deadlock, serialization, too many connections, shutdown, a lost connection, a
    lock not available: a retry can succeed."""
    error = errors.of(_pg_error(sqlstate))
    assert isinstance(error, Unavailable) and error.retryable and error.status == 503


def test_a_bug_is_an_internal_error_that_quotes_only_its_reference() -> None:
    error = errors.of(ZeroDivisionError("the secret sauce"))
    assert isinstance(error, InternalError) and error.retryable and error.status == 500
    assert "secret" not in error.message and "ZeroDivisionError" not in error.message
    assert re.fullmatch(r"an internal error occurred \(reference [0-9a-f]{12}\)", error.message)
    assert errors.of(ZeroDivisionError()).reference != error.reference


def test_our_own_errors_are_their_own_translation() -> None:
    error = ApiError("unauthorized", "who are you")
    assert errors.of(error) is error
    assert error.body() == {"error": {"code": "unauthorized", "message": "who are you"}}


def test_echoed_input_is_capped() -> None:
    assert errors.shown("x" * 60_000) == "x" * 79 + "…"
    assert errors.shown("short") == "short"
    long = ApiError("invalid_field", "y" * 60_000)
    assert len(long.message) == errors.MAX_MESSAGE
