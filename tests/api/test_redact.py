"""api/redact.py on its own: what each detector masks, and the look-alikes it must leave alone."""

import pytest

from api.redact import _luhn, redact


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("write to jane.doe@example.com today", "write to [EMAIL] today"),
        ("key sk-proj-abcdefghijklmnopqrstuvwx1234 leaked", "key [SECRET] leaked"),
        ("aws AKIAABCDEFGHIJKLMNOP in the log", "aws [SECRET] in the log"),
        ("pay with 4111 1111 1111 1111 now", "pay with [CARD] now"),
        ("ping 10.0.0.7 first", "ping [IP] first"),
        ("then fe80::1ff:fe23:4567:890a second", "then [IP] second"),
        ("call (650) 253-0000 tomorrow", "call [PHONE] tomorrow"),
    ],
)
def test_each_kind_is_replaced_by_its_marker_and_nothing_else_changes(text, masked):
    assert redact(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "Explain step by step how photosynthesis works.",
        "version 1.2.3 shipped at 12:30:45 on 2026-12-07",  # not IPs, not a phone, not a card
        "the address 999.10.10.10 is not one",  # an octet above 255
        "card-like 4111 1111 1111 1112 fails the Luhn check",
    ],
)
def test_ordinary_text_and_look_alikes_are_left_as_they_are(text):
    assert redact(text) == text


def test_a_password_assignment_is_masked_with_its_value():
    masked = redact("config: password = hunter2hunter2hunter2 and more")
    assert "hunter2" not in masked and "[SECRET]" in masked and masked.endswith("and more")


def test_luhn_accepts_valid_card_numbers_of_card_lengths_only():
    assert _luhn("4111111111111111") and _luhn("5500 0000 0000 0004") and _luhn("378282246310005")
    assert not _luhn("4111111111111112")
    assert not _luhn("0000000000")  # passes the checksum, but ten digits is no card
