"""chain.abi encodes byte for byte as eth-abi, and decodes exactly what eth-abi 6 decodes:
the same values from valid data, a refusal for every datum eth-abi refuses (and only those)."""

from __future__ import annotations

import random

import eth_abi
import pytest

from depeg_processor.chain import abi
from depeg_processor.chain.product import APPLY, load_functions

SEED = 7_12_2026
STATIC = ["address", "bool", "bytes32", "bytes1", "bytes4", "bytes31", "uint256", "uint8"]
STATIC += ["uint64", "uint160", "uint248", "bytes20"]
DYNAMIC = ["bytes", "string"]
# The type lists the processor uses: the product's call and answer, its event, a revert, the
# EIP-712 words, the first three arguments of the call.
USED = [
    load_functions()[APPLY].types,
    ["address"],
    ["bytes32", "address", "address", "uint256", "uint256", "uint256"],
    ["string"],
    ["bytes32", "bytes32", "bytes32", "uint256", "address"],
    ["bytes32", "address", "uint256", "uint256", "uint256", "bytes32"],
    ["address", "address", "uint256"],
]


def value_of(rng: random.Random, type_name: str):
    if type_name == "address":
        raw = rng.randbytes(20)
        return rng.choice(["0x" + raw.hex(), eth_abi_checksum(raw), raw, raw.hex().upper()])
    if type_name == "bool":
        return rng.random() < 0.5
    if type_name.startswith("uint"):
        bits = int(type_name[4:])
        return rng.choice([0, 1, 2**bits - 1, rng.getrandbits(bits), rng.getrandbits(bits // 2)])
    if type_name == "bytes":
        return rng.randbytes(rng.choice([0, 1, 31, 32, 33, 65, 64, rng.randrange(300)]))
    if type_name == "string":
        return "".join(rng.choice("aZ09 é€𝄞\0") for _ in range(rng.randrange(80)))
    size = int(type_name[5:])
    return rng.randbytes(rng.randrange(size + 1))


def eth_abi_checksum(raw: bytes) -> str:
    import eth_utils

    return eth_utils.to_checksum_address(raw)


def types_of(rng: random.Random) -> list[str]:
    if rng.random() < 0.4:
        return list(rng.choice(USED))
    return [rng.choice(STATIC + DYNAMIC) for _ in range(rng.randrange(1, 8))]


def outcome(decode, types, data):
    try:
        return ("ok", decode(types, data))
    except Exception:  # eth-abi raises its DecodingErrors, UnicodeDecodeError and more
        return ("raised",)


def damage(rng: random.Random, data: bytes, types: list[str]) -> bytes:
    """One harm that may or may not make `data` invalid: truncated, a byte flipped, a word
    replaced (by a small, a huge or a random number, or a nearby offset), bytes appended."""
    data = bytearray(data)
    harm = rng.randrange(6)
    if harm == 0 or not data:
        return bytes(data[: rng.randrange(len(data) + 1)])
    if harm == 1:
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif harm == 2:
        word = rng.randrange(len(data) // 32 or 1) * 32
        value = rng.choice(
            [
                0,
                1,
                2**256 - 1,
                2**255,
                len(data),
                len(data) - 32,
                len(data) + 32,
                32 * len(types) - 32,
                32 * len(types) + rng.randrange(-40, 40),
                rng.getrandbits(256),
                rng.getrandbits(16),
            ]
        )
        data[word : word + 32] = (value % 2**256).to_bytes(32, "big")
    elif harm == 3:
        data += rng.randbytes(rng.randrange(1, 40))
    elif harm == 4:
        data[rng.randrange(len(data))] = rng.randrange(256)
    else:
        data[-1] = rng.randrange(1, 256)
    return bytes(data)


def test_encode_is_eth_abis_encode() -> None:
    rng = random.Random(SEED)
    for _ in range(3000):
        types = types_of(rng)
        values = [value_of(rng, t) for t in types]
        assert abi.encode(types, values) == eth_abi.encode(types, values), (types, values)


def test_decode_of_valid_data_is_eth_abis() -> None:
    rng = random.Random(SEED + 1)
    for _ in range(3000):
        types = types_of(rng)
        data = eth_abi.encode(types, [value_of(rng, t) for t in types])
        assert abi.decode(types, data) == eth_abi.decode(types, data)


def test_decode_refuses_exactly_what_eth_abi_refuses() -> None:
    rng = random.Random(SEED + 2)
    seen = {"ok": 0, "raised": 0}
    for _ in range(6000):
        types = types_of(rng)
        data = damage(rng, eth_abi.encode(types, [value_of(rng, t) for t in types]), types)
        ours = outcome(abi.decode, types, data)
        assert ours == outcome(eth_abi.decode, types, data), (types, data.hex())
        seen[ours[0]] += 1
    assert seen["ok"] > 500 and seen["raised"] > 2000  # both sides of the line are compared


def word(value: int) -> bytes:
    return value.to_bytes(32, "big")


@pytest.mark.parametrize(
    "types, data",
    [
        (["address"], b"\0" * 31),  # short
        (["address"], b"\1" + b"\0" * 31),  # padding of an address
        (["uint8"], word(256)),  # over 2^8
        (["uint248"], word(2**248)),
        (["bool"], word(2)),
        (["bool"], b"\1" + b"\0" * 30 + b"\1"),
        (["bytes4"], b"abcd" + b"\0" * 27 + b"\1"),  # right padding of a bytesN
        (["bytes"], word(0)),  # an offset into the head
        (["bytes"], word(32)),  # an offset to the end of the data
        (["bytes"], word(2**256 - 1) + word(0)),  # a huge offset
        (["bytes"], word(32) + word(2**256 - 1)),  # a huge length
        (["bytes"], word(32) + word(33) + b"\0" * 32),  # a length past the end
        (["bytes"], word(32) + word(1) + b"a" + b"\0" * 30 + b"\1"),  # tail padding
        (["string"], word(32) + word(1) + b"\xff" + b"\0" * 31),  # not UTF-8
        (["string", "uint256"], word(64)),  # the head itself is short
        (["uint256", "bytes"], word(1) + word(32) + word(0)),  # offset inside the head
    ],
)
def test_what_eth_abi_refuses_by_name(types, data) -> None:
    with pytest.raises(Exception):  # noqa: B017 - eth-abi's errors are its own classes
        eth_abi.decode(types, data)
    with pytest.raises(abi.AbiError):
        abi.decode(types, data)


def test_what_both_accept_besides_the_canonical_form() -> None:
    # trailing data, an offset that is no multiple of 32, two values sharing one tail
    shared = word(64) + word(64) + word(2) + b"hi" + b"\0" * 30
    odd = word(33) + b"\0" + word(1) + b"x" + b"\0" * 31
    for types, data in (
        (["bytes"], eth_abi.encode(["bytes"], [b"ab"]) + b"\xff" * 5),
        (["bytes"], odd),
        (["bytes", "string"], shared),
    ):
        assert abi.decode(types, data) == eth_abi.decode(types, data)


@pytest.mark.parametrize(
    "type_name, value",
    [
        ("uint256", -1),
        ("uint256", 2**256),
        ("uint8", 256),
        ("uint256", True),
        ("uint256", 1.0),
        ("uint256", "1"),
        ("bool", 1),
        ("bool", None),
        ("bytes32", b"\0" * 33),
        ("bytes4", "abcd"),
        ("bytes", "ab"),
        ("string", b"ab"),
        ("string", "\ud800"),  # a lone surrogate has no UTF-8
        ("address", "0x" + "00" * 19),
        ("address", b"\0" * 19),
        ("address", "0x" + "g" * 40),
        ("address", 5),
    ],
)
def test_what_eth_abi_cannot_encode_is_refused(type_name, value) -> None:
    with pytest.raises(Exception):  # noqa: B017
        eth_abi.encode([type_name], [value])
    with pytest.raises(abi.AbiError):
        abi.encode([type_name], [value])


def test_a_count_that_does_not_match_and_a_type_not_handled_are_refused() -> None:
    with pytest.raises(abi.AbiError):
        abi.encode(["uint256", "uint256"], [1])
    for type_name in ("int256", "uint7", "uint264", "uint", "bytes33", "bytes0", "address[]"):
        with pytest.raises(abi.AbiError):
            abi.encode([type_name], [1])
        with pytest.raises(abi.AbiError):
            abi.decode([type_name], word(1))
