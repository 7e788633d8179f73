"""Keccak-256 and Ethereum addresses in their three spellings: 20 bytes, lowercase hex, EIP-55.

eth-utils does these jobs too, but importing it brings pydantic and eth-typing along (about 80
ms of every start, for a hash and a checksum). Keccak comes from pycryptodome, the backend
eth-hash used for the processor all along; the rest is a few lines. What is accepted is what
eth-utils accepts (a unit test compares them on thousands of values), so no address that was
valid before is refused now, nor the other way round.
"""

from __future__ import annotations

import re

from Crypto.Hash import keccak as _keccak

# eth-utils' is_hex_address: 40 hex digits, 0x (any case) or no prefix, digits of any case.
_HEX_ADDRESS = re.compile("(0x)?[0-9a-f]{40}", re.IGNORECASE | re.ASCII)
# eth-utils' to_normalized_address reads a string as hex: 0x or 0X, or no prefix.
_HEX_TEXT = re.compile("(0[xX])?([0-9a-fA-F]{40})", re.ASCII)


def keccak256(data: bytes) -> bytes:
    """The 32-byte Keccak-256 of `data` (Ethereum's hash: not NIST's SHA3-256)."""
    return _keccak.new(digest_bits=256, data=data).digest()


def keccak_text(text: str) -> bytes:
    """Keccak-256 of a text's UTF-8: a function's or an event's signature."""
    return keccak256(text.encode("utf-8"))


def is_hex_address(value: object) -> bool:
    """A string of 40 hex digits, with or without 0x, in any case; the checksum is not checked."""
    return isinstance(value, str) and _HEX_ADDRESS.fullmatch(value) is not None


def normalized_address(value: str | bytes) -> str:
    """The address as 0x and 40 lowercase hex digits, from hex text or 20 bytes; ValueError for
    anything else (as eth-utils' to_normalized_address)."""
    if isinstance(value, (bytes, bytearray)):
        if len(value) != 20:
            raise ValueError(f"an address is 20 bytes, not {len(value)}")
        return "0x" + bytes(value).hex()
    if not isinstance(value, str):
        raise TypeError(f"an address is text or bytes, not {type(value).__name__}")
    match = _HEX_TEXT.fullmatch(value)
    if match is None:
        raise ValueError("not an address: 40 hex digits expected")
    return "0x" + match.group(2).lower()


def canonical_address(value: str | bytes) -> bytes:
    """The address as its 20 bytes."""
    return bytes.fromhex(normalized_address(value)[2:])


def checksum_address(value: str | bytes) -> str:
    """EIP-55: each letter of the lowercase hex upper-cased where the keccak of that hex has a
    nibble of 8 or more in the same place."""
    lower = normalized_address(value)[2:]
    nibbles = keccak256(lower.encode("ascii")).hex()
    return "0x" + "".join(
        char.upper() if int(nibble, 16) > 7 else char
        for char, nibble in zip(lower, nibbles, strict=False)
    )
