"""chain.hexaddr answers as eth-utils does: keccak, EIP-55, what counts as a hex address."""

from __future__ import annotations

import random

import eth_utils
import pytest

from depeg_processor.chain.hexaddr import (
    canonical_address,
    checksum_address,
    is_hex_address,
    keccak256,
    keccak_text,
    normalized_address,
)

SEED = 20261207


def outcome(function, value):
    """What a function makes of a value: its answer, or that it raised."""
    try:
        return ("ok", function(value))
    except (ValueError, TypeError):
        return ("raised",)


def spellings(rng: random.Random, raw: bytes) -> list:
    lower = raw.hex()
    mixed = "".join(c.upper() if rng.random() < 0.5 else c for c in lower)
    return [
        "0x" + lower,
        "0x" + lower.upper(),
        "0X" + lower,
        lower,
        "0x" + mixed,
        eth_utils.to_checksum_address(raw),
        raw,
        bytearray(raw),
    ]


def damaged(rng: random.Random, raw: bytes) -> list:
    lower = raw.hex()
    cut = rng.randrange(40)
    return [
        "0x" + lower[:cut],
        "0x" + lower + rng.choice("0123456789abcdef"),
        "0x" + lower[:cut] + rng.choice("gxz ?-") + lower[cut + 1 :],
        " 0x" + lower,
        "0x" + lower + "\n",
        "0x0x" + lower,
        "x" + lower,
        raw[: cut // 2],
        raw + b"\0",
        "",
        "0x",
    ]


def test_keccak_is_eth_utils_keccak() -> None:
    rng = random.Random(SEED)
    for length in list(range(0, 300)) + [rng.randrange(10_000) for _ in range(200)]:
        data = rng.randbytes(length)
        assert keccak256(data) == eth_utils.keccak(data)
    for text in ("", "Policy(address wallet)", "héllo", "applyForPolicy(uint256)"):
        assert keccak_text(text) == eth_utils.keccak(text=text)
    # the known answer: keccak of nothing (not SHA3-256's a7ffc6f8…)
    assert keccak256(b"").hex().startswith("c5d2460186f7233c927e7db2dcc703c0")


def test_every_spelling_of_an_address_is_read_as_eth_utils_reads_it() -> None:
    rng = random.Random(SEED)
    for _ in range(2000):
        raw = rng.randbytes(20)
        for value in spellings(rng, raw):
            assert checksum_address(value) == eth_utils.to_checksum_address(value)
            assert canonical_address(value) == eth_utils.to_canonical_address(value) == raw
            assert normalized_address(value) == eth_utils.to_normalized_address(value)
            assert is_hex_address(value) == eth_utils.is_hex_address(value)


def test_what_eth_utils_refuses_is_refused() -> None:
    rng = random.Random(SEED + 1)
    refused = 0
    for _ in range(2000):
        for value in damaged(rng, rng.randbytes(20)):
            assert is_hex_address(value) == eth_utils.is_hex_address(value), value
            ours = outcome(checksum_address, value)
            assert ours == outcome(eth_utils.to_checksum_address, value), value
            assert outcome(canonical_address, value) == outcome(
                eth_utils.to_canonical_address, value
            )
            refused += ours == ("raised",)
    assert refused > 10_000  # the damage is mostly fatal, so the comparison covers refusals


@pytest.mark.parametrize("value", [None, 5, 1.5, ["0x" + "00" * 20]])
def test_a_value_that_is_neither_text_nor_bytes_is_no_address(value) -> None:
    assert is_hex_address(value) is eth_utils.is_hex_address(value) is False
    with pytest.raises(TypeError):
        checksum_address(value)


def test_the_eip55_examples() -> None:
    for address in (
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
        "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
        "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
    ):
        assert checksum_address(address.lower()) == address
