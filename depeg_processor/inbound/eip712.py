"""The EIP-712 `Policy` message the user signed, and the signatures the product accepts.

The digest is built from ABI words and keccak with the domain separator computed once per chain:
eth-account's generic encode_typed_data costs about ten times as much per application (a unit
test holds both equal). The product's message helper recovers the signer with OpenZeppelin's
ECDSA (4.7.3), which refuses some signatures before recovering anything; `recover` refuses the
same ones, so such an application is set aside without a chain call. Nothing here does I/O.
"""

from __future__ import annotations

import functools

from ..chain import secp256k1
from ..chain.abi import encode
from ..chain.hexaddr import keccak256, keccak_text
from ..errors import PermanentError

POLICY_TYPES = {
    "Policy": [
        {"name": "wallet", "type": "address"},
        {"name": "protectedBalance", "type": "uint256"},
        {"name": "duration", "type": "uint256"},
        {"name": "bundleId", "type": "uint256"},
        {"name": "signatureId", "type": "bytes32"},
    ]
}
DOMAIN_NAME, DOMAIN_VERSION = "EtheriscDepeg", "1"
DOMAIN_TYPEHASH = keccak_text(
    "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
POLICY_TYPEHASH = keccak_text(
    "Policy("
    + ",".join(f"{field['type']} {field['name']}" for field in POLICY_TYPES["Policy"])
    + ")"
)
SECP256K1_N = secp256k1.N
# OpenZeppelin's bound (0x7FFF…5D576E7357A4501DDFE92F46681B20A0): EIP-2's low s.
SECP256K1_HALF_N = secp256k1.HALF_N


@functools.lru_cache(maxsize=16)
def domain_separator(chain_id: int, verifying_contract: str) -> bytes:
    return keccak256(
        encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address"],
            [
                DOMAIN_TYPEHASH,
                keccak_text(DOMAIN_NAME),
                keccak_text(DOMAIN_VERSION),
                chain_id,
                verifying_contract,
            ],
        )
    )


def policy_digest(
    values: tuple[str, int, int, int, bytes], *, chain_id: int, verifying_contract: str
) -> bytes:
    """The digest of a `Policy` message: (wallet, protectedBalance, duration, bundleId,
    signatureId as bytes32)."""
    struct_hash = keccak256(
        encode(
            ["bytes32", "address", "uint256", "uint256", "uint256", "bytes32"],
            [POLICY_TYPEHASH, *values],
        )
    )
    return keccak256(b"\x19\x01" + domain_separator(chain_id, verifying_contract) + struct_hash)


def check_strict(signature: bytes) -> None:
    """Refuse what ECDSA.tryRecover refuses before it recovers: v other than 27 or 28, and s
    above half the curve order."""
    v, s = signature[64], int.from_bytes(signature[32:64], "big")
    if v not in (27, 28):
        raise PermanentError(
            f"signature invalid: v is {v}, the product accepts only 27 or 28",
            kind="signature_invalid",
        )
    if s > SECP256K1_HALF_N:
        raise PermanentError(
            "signature invalid: s is above half the curve order (the malleable twin of a "
            "signature); the product accepts only the lower s",
            kind="signature_invalid",
        )


@functools.lru_cache(maxsize=1024)
def recover(digest: bytes, signature: bytes) -> str:
    """The checksummed address that made the 65-byte signature (r, s, v) of `digest`; v = 0
    or 1 is recovered too (check_strict is what refuses it). The last 1024 are remembered: an
    application's signature is recovered when it is read and again by the signing policy."""
    v = signature[64]
    return secp256k1.recover_address(
        digest,
        v - 27 if v >= 27 else v,
        int.from_bytes(signature[:32], "big"),
        int.from_bytes(signature[32:64], "big"),
    )
