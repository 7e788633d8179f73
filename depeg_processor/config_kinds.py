"""The kinds of value a setting holds: how a variable's text becomes a value, and the bounds a
value must keep. A parser raises ValueError with a message that completes "is not valid: …";
the mnemonic's parser never quotes its text, so the message is safe to print."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from . import hdkeys
from .chain.hexaddr import checksum_address
from .chain.urls import split_urls
from .inbound.application import is_valid_address

DERIVATION_PATH = "m/44'/60'/0'/0/0"
_UNITS = {"wei": 0, "kwei": 3, "mwei": 6, "gwei": 9, "szabo": 12, "finney": 15, "ether": 18}
_WEI = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def parse_wei(text: str) -> int:
    """A wei amount: an integer, or a number with a unit (`30 gwei`, `1 ether`)."""
    match = _WEI.match(text)
    if not match:
        raise ValueError("expected wei as an integer, or a number with a unit such as '30 gwei'")
    number, unit = match.group(1), (match.group(2).lower() or "wei")
    if unit not in _UNITS:
        raise ValueError(f"unknown unit {unit!r} (use one of {', '.join(_UNITS)})")
    amount = Decimal(number) * (Decimal(10) ** _UNITS[unit])
    if amount != amount.to_integral_value():
        raise ValueError("not a whole number of wei")
    return int(amount)


def parse_millis(text: str) -> float:
    """Milliseconds (a non-negative integer) as seconds."""
    value = int(text.strip())
    if value < 0:
        raise ValueError("must not be negative")
    return value / 1000.0


def parse_count(text: str) -> int:
    value = int(text.strip())
    if value < 0:
        raise ValueError("must not be negative")
    return value


def parse_port(text: str) -> int:
    value = int(text.strip())
    if not 0 <= value <= 65535:
        raise ValueError("must be a TCP port number")
    return value


def parse_address(text: str) -> str:
    if not is_valid_address(text.strip()):
        raise ValueError(
            "not a valid address (0x and 40 hex digits, correct checksum if mixed case)"
        )
    return checksum_address(text.strip())


def parse_log_level(text: str) -> str:
    level = text.strip().upper()
    if level not in LOG_LEVELS:
        raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
    return level


def check_mnemonic(mnemonic: str) -> str:
    """The mnemonic, normalised, if it is a valid BIP-39 mnemonic (its words in one list, its
    checksum); errors never contain it."""
    words = " ".join(mnemonic.split())
    hdkeys.check(words)
    return words


SIGNERS = ("mnemonic", "keystore", "pkcs11")


def parse_signer(text: str) -> str:
    signer = text.strip().lower()
    if signer not in SIGNERS:
        raise ValueError(f"must be one of {', '.join(SIGNERS)}")
    return signer


def parse_labels(text: str) -> tuple[str, ...]:
    """Comma-separated names, each non-empty and named once."""
    labels = tuple(label.strip() for label in text.split(","))
    if not all(labels):
        raise ValueError("an empty label in the list")
    if len(set(labels)) != len(labels):
        raise ValueError("a label named twice")
    return labels


def secret_line(text: str) -> str:
    """A password or PIN: the first line, as geth reads --password files; never quoted."""
    lines = text.splitlines()
    if not lines or not lines[0]:
        raise ValueError("is empty on its first line")
    return lines[0]


@dataclasses.dataclass(frozen=True)
class Kind:
    """How a variable's text becomes a value; `name` is what the docs call it."""

    name: str
    parse: Callable[[str], Any]
    type: type


TEXT = Kind("text", str, str)
URLS = Kind("URL list", str, str)  # kept as written: `Settings.chain_rpc_urls` splits it
URL = Kind("URL", str, str)
COUNT = Kind("integer", parse_count, int)
MILLIS = Kind("ms", parse_millis, float)
WEI = Kind("wei", parse_wei, int)
PORT = Kind("port", parse_port, int)
ADDRESS = Kind("address", parse_address, str)
LEVEL = Kind("log level", parse_log_level, str)
MNEMONIC = Kind("mnemonic", check_mnemonic, str)
SIGNER = Kind("signer", parse_signer, str)
LABELS = Kind("label list", parse_labels, tuple)
SECRET_LINE = Kind("text", secret_line, str)


@dataclasses.dataclass(frozen=True)
class Bound:
    """A condition on the parsed value. `text` completes "must be …" in the docs; `problem`
    says what is wrong with a value (None: it holds), without quoting it."""

    text: str
    problem: Callable[[Any], str | None]


def at_least(minimum: float, shown: str | None = None) -> Bound:
    text = f"at least {shown or minimum}"
    return Bound(text, lambda value: None if value >= minimum else f"must be {text}")


ABOVE_ZERO = Bound("above zero", lambda value: None if value > 0 else "must be above zero")

_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
REDIS_URL = Bound(
    "a redis://, rediss:// or unix:// URL",
    lambda url: (
        None if url.startswith(_REDIS_SCHEMES) else "must be a redis://, rediss:// or unix:// URL"
    ),
)


def _http_urls_problem(text: str) -> str | None:
    """The first URL of the list that is not http(s), named by its place (never quoted: a
    provider URL often carries a key)."""
    urls = split_urls(text)
    if not urls:
        return "must be an http:// or https:// URL"
    for index, url in enumerate(urls):
        if not url.startswith(("http://", "https://")):
            which = f"URL #{index} of the list" if len(urls) > 1 else "it"
            return f"must be http:// or https:// URLs ({which} is not)"
    return None


HTTP_URLS = Bound("http:// or https:// URLs", _http_urls_problem)
HTTP_URL = Bound(
    "an http:// or https:// URL",
    lambda text: (
        "must be one http:// or https:// URL"
        if len(split_urls(text)) > 1
        else _http_urls_problem(text)
    ),
)
