"""Mask secrets and personal data in prompt text for keys without the `raw` scope.

Emails, phone numbers (Google's libphonenumber port, `phonenumbers`), API keys and tokens
(well-known prefixes, JWTs, bearer tokens, long random-looking strings), payment card
numbers (Luhn-checked) and IPv4/IPv6 addresses (validated by `ipaddress`) become [EMAIL],
[PHONE], [SECRET], [CARD] and [IP]. Masking is for triage without reading personal data;
the raw text needs the `raw` scope and is audit-logged.
"""

from __future__ import annotations

import functools
import ipaddress
import re

import phonenumbers

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_SECRETS = re.compile(
    r"\b(?:sk-(?:proj-)?[A-Za-z0-9_-]{20,}"  # OpenAI-style
    r"|sk-ant-[A-Za-z0-9_-]{20,}"  # Anthropic-style
    r"|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}"  # GitHub
    r"|xox[abposr]-[A-Za-z0-9-]{10,}"  # Slack
    r"|AKIA[0-9A-Z]{16}|ASIA[0-9A-Z]{16}"  # AWS access key ids
    r"|AIza[0-9A-Za-z_-]{35}"  # Google API keys
    r"|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"  # JWT
    r")"
    r"|(?i:bearer|token|api[_-]?key|secret|password)\s*[:=]?\s*[\"']?[A-Za-z0-9._~+/=-]{16,}"
    r"|\b(?=[A-Za-z0-9_-]*\d)(?=[A-Za-z0-9_-]*[A-Za-z])[A-Za-z0-9_-]{32,}\b"  # long random-looking strings
)
_CARD = re.compile(r"\b(?:\d[ -]?){12,18}\d\b")
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.]*\d)")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")


_DIGIT = re.compile(r"\d")  # any Unicode digit: phonenumbers reads fullwidth and Arabic-Indic ones too
_CACHED_CHARS = 2_000  # texts up to this long are remembered: at most 4,096 x 2,000 characters per worker


def redact(text: str) -> str:
    """The text with every detected secret and personal data masked."""
    # The same siblings come back for many searches (a campaign's prompts are each other's
    # hits), and masking 20 hits cost more than the search itself: remember short texts.
    return _redact_cached(text) if len(text) <= _CACHED_CHARS else _redact(text)


@functools.lru_cache(maxsize=4096)
def _redact_cached(text: str) -> str:
    return _redact(text)


def _redact(text: str) -> str:
    # Each test below skips a pattern that cannot match: an email needs "@", a card, an IPv4
    # address or a phone number a digit, an IPv6 address two colons. Most prompts have none.
    if "@" in text:
        text = _EMAIL.sub("[EMAIL]", text)
    text = _SECRETS.sub("[SECRET]", text)
    if _DIGIT.search(text):
        text = _CARD.sub(lambda m: "[CARD]" if _luhn(m.group()) else m.group(), text)
        text = _IPV4.sub(lambda m: "[IP]" if _is_ip(m.group()) else m.group(), text)
    if text.count(":") >= 2:
        text = _IPV6.sub(lambda m: "[IP]" if _is_ip(m.group()) else m.group(), text)
    return _phones(text) if _DIGIT.search(text) else text


def _phones(text: str) -> str:
    spans = [(m.start, m.end) for m in phonenumbers.PhoneNumberMatcher(text, "US")]
    for start, end in reversed(spans):
        text = text[:start] + "[PHONE]" + text[end:]
    return text


def _luhn(candidate: str) -> bool:
    digits = [int(c) for c in candidate if c.isdigit()]
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _is_ip(candidate: str) -> bool:
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        return False
    return True
