"""The Solidity ABI encoding of the few types the processor reads and writes.

The product's call (`address, address, uint256, uint256, uint256, bytes32, bytes`), the EIP-712
words, a revert's `string` and the product's event are all a flat list of static words
(`address`, `bool`, `uintN`, `bytesN`) and top-level dynamic `bytes` or `string`. eth-abi
encodes any type, but it parses type strings with a grammar library and brings eth-utils with
pydantic: about 100 ms of every start. This module does exactly these types and nothing else
(arrays, tuples, signed and fixed-point numbers raise AbiError).

Decoding is as strict as eth-abi 6's (a unit test compares them on thousands of values, valid
and damaged): data too short for a word, an address, a uintN or a bytesN with non-zero
padding, a bool other than 0 or 1, an offset into the head or past the end of the data, a
length past the end, non-zero bytes after a dynamic value or text that is not UTF-8 all raise
AbiError. Like eth-abi, trailing data is ignored and an offset need not be a multiple of 32:
the signing policy re-encodes what it decoded and compares, which refuses such calldata.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Any

from .hexaddr import canonical_address, is_hex_address

WORD = 32
_UINT = re.compile(r"uint([0-9]{1,3})", re.ASCII)
_BYTES_N = re.compile(r"bytes([0-9]{1,2})", re.ASCII)
_ZERO_WORD = bytes(WORD)


class AbiError(ValueError):
    """A value that cannot be encoded as its type, or data that is not an encoding."""


@functools.lru_cache(maxsize=64)
def _kind(type_name: str) -> tuple[str, int]:
    """(kind, size) of a type: ("uint", bits), ("bytesN", bytes) or (name, 0)."""
    if type_name in ("address", "bool", "bytes", "string"):
        return type_name, 0
    if match := _UINT.fullmatch(type_name):
        bits = int(match.group(1))
        if 8 <= bits <= 256 and bits % 8 == 0 and not match.group(1).startswith("0"):
            return "uint", bits
    if match := _BYTES_N.fullmatch(type_name):
        size = int(match.group(1))
        if 1 <= size <= WORD and not match.group(1).startswith("0"):
            return "bytesN", size
    raise AbiError(f"type {type_name!r} is not one this encoder handles")


def _is_dynamic(type_name: str) -> bool:
    return _kind(type_name)[0] in ("bytes", "string")


def encode(types: Sequence[str], values: Sequence[Any]) -> bytes:
    """The head-tail encoding of `values` as `types`, byte for byte eth-abi's."""
    if not isinstance(values, (list, tuple)) or len(values) != len(types):
        raise AbiError(f"{len(types)} values expected as a list or tuple")
    heads, tails = [], []
    tail_offset = WORD * len(types)
    for type_name, value in zip(types, values, strict=True):
        if _is_dynamic(type_name):
            tail = _encode_dynamic(type_name, value)
            heads.append(tail_offset.to_bytes(WORD, "big"))
            tails.append(tail)
            tail_offset += len(tail)
        else:
            heads.append(_encode_static(type_name, value))
    return b"".join(heads + tails)


def _encode_static(type_name: str, value: Any) -> bytes:
    kind, size = _kind(type_name)
    if kind == "address":
        if not (is_hex_address(value) or _is_bytes(value) and len(value) == 20):
            raise AbiError(f"{type_name}: not an address")
        return canonical_address(value).rjust(WORD, b"\0")
    if kind == "bool":
        if not isinstance(value, bool):
            raise AbiError(f"{type_name}: not a bool")
        return int(value).to_bytes(WORD, "big")
    if kind == "uint":
        if not isinstance(value, int) or isinstance(value, bool):
            raise AbiError(f"{type_name}: not an integer")
        if not 0 <= value < 2**size:
            raise AbiError(f"{type_name}: out of range")
        return value.to_bytes(WORD, "big")
    if not _is_bytes(value) or len(value) > size:  # bytesN: at most N bytes, right-padded
        raise AbiError(f"{type_name}: not at most {size} bytes")
    return bytes(value).ljust(WORD, b"\0")


def _encode_dynamic(type_name: str, value: Any) -> bytes:
    if type_name == "string":
        if not isinstance(value, str):
            raise AbiError("string: not text")
        try:
            value = value.encode("utf-8")
        except UnicodeEncodeError:
            raise AbiError("string: not encodable as UTF-8") from None
    elif not _is_bytes(value):
        raise AbiError("bytes: not bytes")
    padded = -(-len(value) // WORD) * WORD
    return len(value).to_bytes(WORD, "big") + bytes(value).ljust(padded, b"\0")


def _is_bytes(value: Any) -> bool:
    return isinstance(value, (bytes, bytearray))


def decode(types: Sequence[str], data: bytes) -> tuple:
    """The values of `types` encoded in `data`: addresses as lowercase 0x-hex (as eth-abi
    gives them), uintN as int, bool, bytesN and bytes as bytes, string as str."""
    if not _is_bytes(data):
        raise AbiError("the data to decode is not bytes")
    data = bytes(data)
    head_end = WORD * len(types)
    values = []
    for index, type_name in enumerate(types):
        word = _word(data, WORD * index)
        if _is_dynamic(type_name):
            offset = int.from_bytes(word, "big")
            if not head_end <= offset < len(data):
                raise AbiError(f"value {index}: its offset points outside the data's tail")
            values.append(_decode_dynamic(type_name, data, offset))
        else:
            values.append(_decode_static(type_name, word))
    return tuple(values)


def _word(data: bytes, start: int) -> bytes:
    word = data[start : start + WORD]
    if len(word) != WORD:
        raise AbiError(f"the data ends at byte {len(data)}, inside the word at {start}")
    return word


def _decode_static(type_name: str, word: bytes) -> Any:
    kind, size = _kind(type_name)
    if kind == "address":
        if word[:12] != _ZERO_WORD[:12]:
            raise AbiError("address: non-zero padding")
        return "0x" + word[12:].hex()
    if kind == "bool":
        if word[:31] != _ZERO_WORD[:31] or word[31] > 1:
            raise AbiError("bool: neither 0 nor 1")
        return word[31] == 1
    if kind == "uint":
        value = int.from_bytes(word, "big")
        if value >> size:
            raise AbiError(f"{type_name}: above its {size} bits")
        return value
    if word[size:] != _ZERO_WORD[size:]:
        raise AbiError(f"{type_name}: non-zero padding")
    return word[:size]


def _decode_dynamic(type_name: str, data: bytes, offset: int) -> bytes | str:
    length = int.from_bytes(_word(data, offset), "big")
    start = offset + WORD
    padded = -(-length // WORD) * WORD
    if start + padded > len(data):
        raise AbiError(f"{type_name}: its length runs past the end of the data")
    if data[start + length : start + padded] != bytes(padded - length):
        raise AbiError(f"{type_name}: non-zero padding")
    value = data[start : start + length]
    if type_name == "bytes":
        return value
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise AbiError("string: not UTF-8") from None
