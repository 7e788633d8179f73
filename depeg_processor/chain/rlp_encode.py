"""RLP encoding (the yellow paper's appendix B), for the signed transaction's envelope.

The processor only encodes, and only byte strings, non-negative integers and lists of them:
the fields of a type-2 transaction. The rlp package does the same and far more (sedes,
decoding) and brings eth-utils with pydantic along; a unit test holds this to rlp.encode.
"""

from __future__ import annotations

from collections.abc import Sequence

Item = bytes | int | Sequence["Item"]


def encode(item: Item) -> bytes:
    """The RLP of `item`: bytes as they are, an int as its minimal big-endian bytes (0 is
    the empty string), a list or tuple as the list of its items."""
    if isinstance(item, (bytes, bytearray)):
        data = bytes(item)
        if len(data) == 1 and data[0] < 0x80:
            return data
        return _length_prefix(len(data), 0x80) + data
    if isinstance(item, int) and not isinstance(item, bool):
        if item < 0:
            raise ValueError("RLP encodes no negative integer")
        return encode(item.to_bytes((item.bit_length() + 7) // 8, "big"))
    if isinstance(item, (list, tuple)):
        payload = b"".join(encode(member) for member in item)
        return _length_prefix(len(payload), 0xC0) + payload
    raise TypeError(f"RLP does not encode {type(item).__name__}")


def _length_prefix(length: int, offset: int) -> bytes:
    """One byte for a payload under 56 bytes; else a byte saying how long the length is, and
    the length."""
    if length < 56:
        return bytes([offset + length])
    length_bytes = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([offset + 55 + len(length_bytes)]) + length_bytes
