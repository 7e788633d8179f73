"""chain.secp256k1 signs, recovers and names addresses as eth-keys does, and refuses the
signatures eth-keys refuses."""

from __future__ import annotations

import random

import pytest
from eth_keys import keys

from depeg_processor.chain import secp256k1
from depeg_processor.chain.secp256k1 import BadSignature, N

SEED = 12_07_2026


def eth_keys_recover(digest, v, r, s):
    return keys.Signature(vrs=(v, r, s)).recover_public_key_from_msg_hash(digest).to_bytes()


def outcome(recover, digest, v, r, s):
    try:
        return ("ok", recover(digest, v, r, s))
    except Exception:  # eth-keys raises BadSignature or ValidationError
        return ("raised",)


def test_keys_sign_and_name_their_address_as_eth_keys() -> None:
    rng = random.Random(SEED)
    for _ in range(1000):
        secret = rng.randrange(1, N).to_bytes(32, "big")
        digest = rng.randbytes(32)
        ours = secp256k1.private_key(secret)
        theirs = keys.PrivateKey(secret)
        assert secp256k1.public_key_of(ours) == theirs.public_key.to_bytes()
        assert secp256k1.address_of(secp256k1.public_key_of(ours)) == (
            theirs.public_key.to_checksum_address()
        )
        v, r, s = secp256k1.sign(ours, digest)
        assert (v, r, s) == theirs.sign_msg_hash(digest).vrs
        assert s <= N // 2  # EIP-2: the low s
        assert secp256k1.recover(digest, v, r, s) == theirs.public_key.to_bytes()
        assert secp256k1.recover_address(digest, v, r, s) == theirs.public_key.to_checksum_address()


def test_recover_answers_or_refuses_as_eth_keys_does() -> None:
    rng = random.Random(SEED + 1)
    seen = {"ok": 0, "raised": 0}
    for _ in range(3000):
        # half of them plain (r a point's x half the time), half with something at an edge
        digest, v, r, s = rng.randbytes(32), rng.randrange(2), rng.randrange(N), rng.randrange(N)
        if rng.random() < 0.5:
            digest = rng.choice([digest, rng.randbytes(31), rng.randbytes(33), b""])
            v = rng.choice([v, 2, 27, 28, -1])
            r, s = (rng.choice([x, 0, 1, N - 1, N, N + 1, 2**256 - 1]) for x in (r, s))
        ours = outcome(secp256k1.recover, digest, v, r, s)
        assert ours == outcome(eth_keys_recover, digest, v, r, s), (digest.hex(), v, r, s)
        seen[ours[0]] += 1
    assert seen["ok"] > 500 and seen["raised"] > 500


@pytest.mark.parametrize(
    "v, r, s",
    [(0, 0, 1), (0, 1, 0), (0, N, 1), (1, 1, N), (2, 1, 1), (-1, 1, 1), (True, 1, 1)],
)
def test_a_signature_eth_keys_refuses_is_a_bad_signature(v, r, s) -> None:
    digest = bytes(range(32))
    with pytest.raises(Exception):  # noqa: B017 - eth-keys' own classes
        eth_keys_recover(digest, v, r, s)
    with pytest.raises(BadSignature):
        secp256k1.recover(digest, v, r, s)


def test_an_r_that_is_no_points_x_recovers_nothing() -> None:
    # x = 5 has no y on secp256k1 (5^3 + 7 = 132 is not a square modulo p)
    with pytest.raises(BadSignature):
        secp256k1.recover(bytes(32), 0, 5, 1)


@pytest.mark.parametrize(
    "secret", [bytes(32), N.to_bytes(32, "big"), b"\xff" * 32, b"\1" * 31, "00" * 32]
)
def test_a_secret_that_is_no_key_is_refused_as_eth_keys_refuses_it(secret) -> None:
    with pytest.raises(Exception):  # noqa: B017
        keys.PrivateKey(secret)
    with pytest.raises(ValueError):
        secp256k1.private_key(secret)


def test_a_public_points_address_is_eth_keys() -> None:
    rng = random.Random(SEED + 2)
    for _ in range(1000):
        point = rng.randbytes(64)  # neither checks that the point is on the curve
        assert secp256k1.address_of(point) == keys.PublicKey(point).to_checksum_address()
    with pytest.raises(ValueError):
        secp256k1.address_of(rng.randbytes(65))
