"""secp256k1 as Ethereum uses it: sign a 32-byte digest, recover the signer, name a key's address.

libsecp256k1 (through coincurve) does the curve arithmetic; this module only checks what goes
in and names what comes out, as eth-keys' coincurve backend did (eth-keys brings eth-utils and
pydantic, about 80 ms of every start). A signature is (v, r, s) with v the recovery id, 0 or 1:
callers that speak 27/28 convert. libsecp256k1 signs deterministically (RFC 6979) and always
with the lower s (EIP-2), so a signature made here is the one eth-keys made.

What eth-keys refuses is refused here, with BadSignature: v other than 0 or 1, r or s outside
0 .. n-1, a digest that is not 32 bytes, and whatever libsecp256k1 cannot recover from (r or s
of 0, an r that is no point's x). A hostile signature raises; it never answers a wrong signer.
"""

from __future__ import annotations

import coincurve

from .hexaddr import checksum_address, keccak256

N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141  # the curve's order
# The bound of a low s (EIP-2): for every signature (r, s) there is a twin (r, n - s) of the
# same signer, and only the one with s at most this is accepted.
HALF_N = N // 2


class BadSignature(ValueError):
    """A signature or digest from which no public key can be recovered."""


def private_key(secret: bytes) -> coincurve.PrivateKey:
    """The key of a 32-byte secret in 1 .. n-1; ValueError (never quoting it) otherwise."""
    if not isinstance(secret, bytes) or len(secret) != 32:
        raise ValueError("a private key is 32 bytes")
    if not 0 < int.from_bytes(secret, "big") < N:
        raise ValueError("a private key is a number from 1 to the curve's order less one")
    return coincurve.PrivateKey(secret)


def public_key_of(key: coincurve.PrivateKey) -> bytes:
    """The key's public point as 64 bytes, x then y."""
    return key.public_key.format(compressed=False)[1:]


def address_of(public_key: bytes) -> str:
    """The checksummed address of a 64-byte public point: the last 20 bytes of its keccak."""
    if not isinstance(public_key, bytes) or len(public_key) != 64:
        raise ValueError("a public key is 64 bytes, x then y")
    return checksum_address(keccak256(public_key)[12:])


def sign(key: coincurve.PrivateKey, digest: bytes) -> tuple[int, int, int]:
    """(v, r, s) of `digest`, v in {0, 1} and s in the lower half of the order."""
    if not isinstance(digest, bytes) or len(digest) != 32:
        raise ValueError("a digest to sign is 32 bytes")
    signature = key.sign_recoverable(digest, hasher=None)  # r (32), s (32), v (1)
    return (
        signature[64],
        int.from_bytes(signature[:32], "big"),
        int.from_bytes(signature[32:64], "big"),
    )


def recover(digest: bytes, v: int, r: int, s: int) -> bytes:
    """The 64-byte public key whose signature of `digest` is (v, r, s); BadSignature if there
    is none. Either s of a pair (s, n - s) recovers: the caller refuses the high one if it must."""
    if not isinstance(digest, (bytes, bytearray)) or len(digest) != 32:
        raise BadSignature("the digest is not 32 bytes")
    if not all(isinstance(x, int) and not isinstance(x, bool) for x in (v, r, s)):
        raise BadSignature("v, r and s must be integers")
    if v not in (0, 1):
        raise BadSignature(f"v is {v}, not 0 or 1")
    if not (0 <= r < N and 0 <= s < N):
        raise BadSignature("r or s is outside 0 .. n-1")
    compact = r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([v])
    try:
        point = coincurve.PublicKey.from_signature_and_message(compact, bytes(digest), hasher=None)
    except Exception as error:  # libsecp256k1 refuses it: r or s of 0, r no point's x
        raise BadSignature(str(error)) from None
    return point.format(compressed=False)[1:]


def recover_address(digest: bytes, v: int, r: int, s: int) -> str:
    """The checksummed address that signed `digest` with (v, r, s); BadSignature if none."""
    return address_of(recover(digest, v, r, s))
