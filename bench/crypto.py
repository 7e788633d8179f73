"""The two curve operations per application, with eth-keys' pure-Python backend and with
coincurve (libsecp256k1): signing a transaction and recovering an EIP-712 signer.

    python -m bench.crypto
"""

from __future__ import annotations

import time

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_keys import KeyAPI
from eth_keys.backends import CoinCurveECCBackend, NativeECCBackend
from eth_utils import keccak

from depeg_processor.inbound.eip712 import POLICY_TYPES

ROUNDS = 200


def per_call_ms(action) -> float:
    started = time.perf_counter()
    for _ in range(ROUNDS):
        action()
    return (time.perf_counter() - started) / ROUNDS * 1000


def main() -> None:
    account = Account.create()
    message = encode_typed_data(
        domain_data={
            "name": "EtheriscDepeg",
            "version": "1",
            "chainId": 1,
            "verifyingContract": "0x8398bCD4f633C72939F9043dB78c574A91C99c0A",
        },
        message_types=POLICY_TYPES,
        message_data={
            "wallet": account.address,
            "protectedBalance": 1199000000,
            "duration": 2592000,
            "bundleId": 2,
            "signatureId": b"x" * 32,
        },
    )
    signature = Account.sign_message(message, account.key).signature
    digest = keccak(b"\x19" + message.version + message.header + message.body)
    print(f"{'backend':<12} {'sign (ms)':>10} {'recover (ms)':>13}")
    for name, backend in (("pure Python", NativeECCBackend), ("coincurve", CoinCurveECCBackend)):
        api = KeyAPI(backend())  # the API's own calls use its backend (key objects do not)
        key = api.PrivateKey(account.key)
        sig = api.Signature(signature_bytes=signature[:64] + bytes([signature[64] - 27]))
        assert api.ecdsa_recover(digest, sig).to_checksum_address() == account.address
        sign = per_call_ms(lambda api=api, key=key: api.ecdsa_sign(digest, key))
        recover = per_call_ms(lambda api=api, sig=sig: api.ecdsa_recover(digest, sig))
        print(f"{name:<12} {sign:>10.3f} {recover:>13.3f}")


if __name__ == "__main__":
    main()
