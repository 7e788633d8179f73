"""chain.rlp_encode is byte for byte the rlp package's encoding of bytes, ints and lists."""

from __future__ import annotations

import random

import pytest
import rlp

from depeg_processor.chain.rlp_encode import encode

SEED = 2026_12_07
EDGES = [0, 1, 0x7F, 0x80, 0xFF, 0x100, 2**64 - 1, 2**64, 2**256 - 1, 2**256]
EDGES += [b"", b"\0", b"\x7f", b"\x80", b"\xff", b"a" * 55, b"a" * 56, b"a" * 255, b"a" * 256]
EDGES += [b"a" * 65_536, [], [[]], [b""], [[], [[]]], [b"a" * 54], [b"a" * 55], [0] * 56]


def item(rng: random.Random, depth: int = 0):
    kind = rng.randrange(3 if depth < 3 else 2)
    if kind == 0:
        return rng.choice([0, rng.getrandbits(8), rng.getrandbits(rng.randrange(1, 300))])
    if kind == 1:
        return rng.randbytes(rng.choice([0, 1, 1, 2, 55, 56, rng.randrange(2000)]))
    return [item(rng, depth + 1) for _ in range(rng.randrange(0, 12))]


@pytest.mark.parametrize("value", EDGES, ids=range(len(EDGES)))
def test_the_edges_of_each_length_form(value) -> None:
    assert encode(value) == rlp.encode(value)


def test_random_items_encode_as_rlp_encodes_them() -> None:
    rng = random.Random(SEED)
    for _ in range(3000):
        value = item(rng)
        assert encode(value) == rlp.encode(value)


def test_a_transactions_fields() -> None:
    fields = [31337, 7, 10**9, 3 * 10**9, 103_399, b"\x84" * 20, 0, b"\xab" * 100, []]
    assert encode(fields) == rlp.encode(fields)
    assert encode(tuple(fields)) == rlp.encode(fields)


@pytest.mark.parametrize("value", [-1, None, 1.5])
def test_what_rlp_cannot_encode_is_refused(value) -> None:
    with pytest.raises(Exception):  # noqa: B017 - rlp's own error class
        rlp.encode(value)
    with pytest.raises((ValueError, TypeError)):
        encode(value)
