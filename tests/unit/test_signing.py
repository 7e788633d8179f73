"""signing.TransactionSigner produces exactly what eth-account produces."""

from __future__ import annotations

import pytest
from eth_account import Account
from web3 import Web3

from depeg_processor.chain.signing import TransactionSigner

KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
PRODUCT = "0x8464135c8F25Da09e49BC8782676a84730C318bC"


@pytest.mark.parametrize(
    "nonce, gas, max_fee, tip, data",
    [
        (0, 21_000, 1, 0, "0x"),
        (7, 103_399, 3 * 10**9, 10**9, "0x" + "ab" * 100),
        (2**40, 30_000_000, 10**12, 10**12, "0x" + "00" * 5 + "ff" * 600),
    ],
)
def test_byte_identical_to_eth_account(nonce, gas, max_fee, tip, data) -> None:
    signed = Account.sign_transaction(
        {
            "type": 2,
            "chainId": 31337,
            "nonce": nonce,
            "to": PRODUCT,
            "value": 0,
            "data": data,
            "gas": gas,
            "maxFeePerGas": max_fee,
            "maxPriorityFeePerGas": tip,
        },
        KEY,
    )
    tx_hash, raw = TransactionSigner(KEY).sign(
        chain_id=31337,
        nonce=nonce,
        to=PRODUCT,
        data=data,
        gas=gas,
        max_fee_per_gas=max_fee,
        max_priority_fee_per_gas=tip,
    )
    assert raw == Web3.to_hex(signed.raw_transaction)
    assert tx_hash == Web3.to_hex(signed.hash)


def test_the_signer_is_the_key_owner_and_hides_the_key() -> None:
    signer = TransactionSigner(KEY)
    assert signer.address == Account.from_key(KEY).address
    assert KEY.hex() not in repr(signer) and KEY.hex() not in str(signer)
