"""Timestamps as users have them (epoch s, ms, us, ns; ISO-8601 with or without a zone) and Prompt's input forms."""

from datetime import UTC, datetime

import pytest

from search.records import Prompt, parse_timestamp

T = 1_795_168_800.0  # 2026-11-20T10:00:00Z


@pytest.mark.parametrize(
    "value",
    [T, int(T), "1795168800", T * 1e3, int(T * 1e3), "1795168800000", T * 1e6, int(T) * 10**9, "1795168800000000000"],
)
def test_epoch_numbers_in_any_unit_are_told_apart_by_magnitude(value):
    assert parse_timestamp(value) == pytest.approx(T)


@pytest.mark.parametrize(("value", "unit"), [(T, "s"), (T * 1e3, "ms"), (T * 1e6, "us"), (T * 1e9, "ns")])
def test_an_explicit_unit_is_used_as_given(value, unit):
    assert parse_timestamp(value, unit) == pytest.approx(T)


def test_a_unit_that_does_not_fit_says_which_to_pass():
    with pytest.raises(ValueError, match=r"read as seconds is out of range.*--time-unit"):
        parse_timestamp(T * 1e3, "s")


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-20T10:00:00Z",
        "2026-11-20T10:00:00",  # no zone: UTC, the log convention
        "2026-11-20 10:00:00",  # a space, as SQL exports write it
        "2026-11-20T11:00:00+01:00",
        "2026-11-20T11:00:00+0100",
        "2026-11-20T10:00:00.000000000Z",
        "2026-11-20t10:00:00z",
    ],
)
def test_iso_forms_users_have(text):
    assert parse_timestamp(text) == T


def test_unparseable_times_say_what_is_expected():
    for bad in ("next tuesday", "2026-02-30", "2026-11-20T25:00", ""):
        with pytest.raises(ValueError, match="ISO-8601"):
            parse_timestamp(bad)
    with pytest.raises(ValueError, match="got missing"):
        parse_timestamp(None)
    with pytest.raises(ValueError, match="boolean"):
        parse_timestamp(True)


def test_a_prompt_takes_the_forms_every_path_takes_and_fails_at_once_on_others():
    """Prompt(..., "2026-…Z") used to be accepted and fail later, at the store."""
    prompt = Prompt("p1", "hello", "acct", "2026-11-20T10:00:00Z")
    assert prompt.timestamp == T and isinstance(prompt.timestamp, float)
    assert Prompt(7, "hello", 42, T * 1e3).id == "7" and Prompt(7, "hello", 42, T * 1e3).account_id == "42"
    assert Prompt("p", "t", "a", datetime(2026, 11, 20, 10, tzinfo=UTC)).timestamp == T
    with pytest.raises(ValueError, match="'account_id' must be a string"):
        Prompt("p", "t", 4.5, T)
    with pytest.raises(ValueError, match="ISO-8601"):
        Prompt("p", "t", "a", "yesterday")
