"""signer.policy.SigningPolicy: nothing is signed but the product's application call, carrying
its holder's signature, to the product, at value 0, under the gas and fee caps; a record whose
`data`, `to` or `gas` was changed in Redis is refused when a replacement would sign it again,
reported and kept as it is stored."""

from __future__ import annotations

import dataclasses
import logging

import pytest
import rlp
from eth_abi import encode
from eth_account import Account

from depeg_processor import errors
from depeg_processor.chain.product import ProductCalls, apply_function
from depeg_processor.chain.signing import TransactionSigner
from depeg_processor.inbound.application import parse_application
from depeg_processor.signer.policy import SigningPolicy
from depeg_processor.wallet.records import TxRecord

from .helpers import CHAIN_ID, ENTITY_ID, MESSAGE_HELPER, OTHER, signed_fields
from .test_replacements import Harness
from .wallet_harness import GWEI, KEY, PRODUCT

CAP = 100 * GWEI
MAX_GAS = 3_000_000
ATTACKER = "0x000000000000000000000000000000000000dEaD"


def call_data(**fields: str) -> str:
    """The calldata the processor builds for an application signed as the web app signs it."""
    app = parse_application(ENTITY_ID, signed_fields(**fields))
    return ProductCalls().apply(app.contract_args())


GOOD = call_data()


class Refusals:
    count = 0

    def inc(self) -> None:
        self.count += 1


@pytest.fixture
def refusals() -> Refusals:
    return Refusals()


@pytest.fixture
def policy(refusals) -> SigningPolicy:
    return SigningPolicy(
        chain_id=CHAIN_ID,
        product=PRODUCT,
        verifying_contract=MESSAGE_HELPER,
        max_gas=MAX_GAS,
        max_fee_per_gas=CAP,
        on_refused=refusals.inc,
    )


def transaction(**changes: object) -> dict:
    fields = {
        "chain_id": CHAIN_ID,
        "to": PRODUCT,
        "value": 0,
        "data": GOOD,
        "gas": 1_700_000,
        "max_fee_per_gas": 30 * GWEI,
        "max_priority_fee_per_gas": GWEI,
    }
    return fields | changes


def with_signature(signature: bytes) -> str:
    """GOOD with its signature argument replaced."""
    function = apply_function()
    app = parse_application(ENTITY_ID, signed_fields())
    args = list(app.contract_args())
    args[-1] = signature
    return "0x" + (function.selector + encode(function.types, args)).hex()


def test_the_processors_own_call_is_signed(policy, refusals) -> None:
    signer = TransactionSigner(KEY, policy=policy)
    tx_hash, raw = signer.sign(nonce=0, **transaction())
    assert tx_hash.startswith("0x") and raw.startswith("0x02")
    assert refusals.count == 0


FILLER = {"data": "0x", "gas": 21_000}  # what wallet/relayed.py sends to fill a nonce


def test_a_nonce_filler_of_the_wallet_to_itself_is_signed(policy, refusals) -> None:
    signer = TransactionSigner(KEY, policy=policy)
    tx_hash, raw = signer.sign(nonce=3, **transaction(to=signer.address, **FILLER))
    assert raw.startswith("0x02") and refusals.count == 0


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"to": ATTACKER, **FILLER}, "is not DEPEG_PRODUCT_ADDRESS"),  # a transfer elsewhere
        ({"value": 1, **FILLER}, "is not DEPEG_PRODUCT_ADDRESS"),  # moves value: no filler
        ({"data": "0x00", "gas": 21_000}, "is not DEPEG_PRODUCT_ADDRESS"),
        ({"data": "0x", "gas": 30_000}, "is not DEPEG_PRODUCT_ADDRESS"),
        ({"max_fee_per_gas": CAP + 1, **FILLER}, "above MAX_FEE_PER_GAS"),
    ],
)
def test_only_that_filler_is_signed_besides_the_call(policy, refusals, changes, words) -> None:
    signer = TransactionSigner(KEY, policy=policy)
    fields = transaction(**({"to": signer.address} | changes))
    with pytest.raises(errors.SigningRefused) as refused:
        signer.sign(nonce=3, **fields)
    assert words in str(refused.value) and refusals.count == 1


HIGH_S = (lambda sig: sig[:32] + (2**256 - 1).to_bytes(32, "big") + sig[64:])(
    parse_application(ENTITY_ID, signed_fields()).signature
)


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"to": ATTACKER}, "is not DEPEG_PRODUCT_ADDRESS"),
        ({"value": 1}, "value 1 wei is not 0"),
        ({"gas": MAX_GAS + 1}, "MAX_GAS_PER_TRANSACTION"),
        ({"gas": 0}, "MAX_GAS_PER_TRANSACTION"),
        ({"max_fee_per_gas": CAP + 1}, "above MAX_FEE_PER_GAS"),
        ({"max_priority_fee_per_gas": 31 * GWEI}, "tip"),
        ({"chain_id": 1}, "chain id 1"),
        ({"data": "0x"}, "does not call"),
        ({"data": "0xa9059cbb" + "00" * 64}, "does not call"),  # an ERC-20 transfer
        ({"data": GOOD[:-2]}, "not an encoding"),
        ({"data": GOOD + "00" * 32}, "not the canonical encoding"),
        ({"data": call_data(signer=OTHER)}, "not the policy holder's"),
        ({"data": call_data(chain_id=1)}, "not the policy holder's"),  # another domain
        ({"data": with_signature(HIGH_S)}, "signature invalid"),
        ({"data": with_signature(b"\x01" * 64)}, "not 65 bytes"),
    ],
)
def test_anything_else_is_refused_reported_and_not_signed(
    policy, refusals, caplog, changes, words
) -> None:
    signer = TransactionSigner(KEY, policy=policy)
    with caplog.at_level(logging.ERROR), pytest.raises(errors.SigningRefused) as refused:
        signer.sign(nonce=7, **transaction(**changes))
    assert words in str(refused.value)
    assert refused.value.kind == "signing_refused"
    assert refusals.count == 1
    assert any(
        "signing refused" in r.getMessage() and "nonce 7" in r.getMessage()
        for r in caplog.records
        if r.levelno == logging.ERROR
    )


def test_a_call_is_checked_before_it_is_priced(policy) -> None:
    signer = TransactionSigner(KEY, policy=policy)
    signer.check_call(to=PRODUCT, data=GOOD, gas=MAX_GAS)
    with pytest.raises(errors.SigningRefused):
        signer.check_call(to=PRODUCT, data=GOOD, gas=MAX_GAS + 1)


# --- a record changed in Redis, then replaced -----------------------------------------------


def stored_record(h: Harness, nonce: int = 0) -> TxRecord:
    """A real application's transaction, signed and recorded as the processor records it."""
    signer = TransactionSigner(KEY)
    tx_hash, raw = signer.sign(nonce=nonce, **transaction(max_fee_per_gas=2 * GWEI))
    record = TxRecord(
        entity_id=f"E{nonce:03}",
        tx_hash=tx_hash,
        nonce=nonce,
        raw=raw,
        gas=1_700_000,
        max_fee_per_gas=2 * GWEI,
        max_priority_fee_per_gas=GWEI,
        data=GOOD,
    )
    h.records.put(record)
    return record


@pytest.fixture
def guarded(fake_redis, policy) -> Harness:
    return Harness(fake_redis, policy=policy)


def test_an_untouched_record_is_replaced(guarded) -> None:
    record = stored_record(guarded)
    [outcome] = guarded.replacer.replace_many([record])
    assert isinstance(outcome, TxRecord) and outcome.previous_hashes == (record.tx_hash,)
    assert guarded.sent() == [1]


@pytest.mark.parametrize(
    "field, value",
    [
        ("data", call_data(signer=OTHER)),  # an application its holder never signed
        ("data", "0xa9059cbb" + "00" * 64),  # another call altogether
        ("gas", str(30_000_000)),  # a block's worth of gas
    ],
)
def test_a_tampered_record_is_never_signed_and_is_kept(
    guarded, refusals, fake_redis, field, value
) -> None:
    record = stored_record(guarded)
    key = guarded.records.key(record.entity_id)
    fake_redis.hset(key, field, value)
    tampered = guarded.records.get(record.entity_id)
    stored = fake_redis.hgetall(key)

    [outcome] = guarded.replacer.replace_many([tampered])

    assert isinstance(outcome, errors.SigningRefused)
    assert guarded.sent() == [], "nothing signed, nothing sent"
    assert refusals.count == 1
    assert fake_redis.hgetall(key) == stored, "the record is kept as it is stored"
    assert guarded.records.get(record.entity_id).tx_hash == record.tx_hash


def test_a_to_written_into_a_record_is_not_where_a_replacement_goes(guarded, fake_redis) -> None:
    """Records hold no `to`: the product's address comes from the settings, and the policy
    checks it again. A `to` written into a record changes nothing."""
    record = stored_record(guarded)
    fake_redis.hset(guarded.records.key(record.entity_id), "to", ATTACKER)
    [outcome] = guarded.replacer.replace_many([guarded.records.get(record.entity_id)])
    assert isinstance(outcome, TxRecord)
    [[(_method, [raw])]] = guarded.chain.sends()
    assert Account.recover_transaction(raw) == TransactionSigner(KEY).address
    sent = rlp.decode(bytes.fromhex(raw[4:]))  # after the type byte
    assert sent[5] == bytes.fromhex(PRODUCT[2:]) and ATTACKER.lower()[2:] not in raw.lower()


def test_a_remembered_verdict_is_the_one_for_its_chain_and_message_helper(policy) -> None:
    """The verdict on a calldata is remembered (checked before its nonce and when signed), but
    only for the chain and message helper it was judged for: the same calldata for another
    domain is judged again, and refused."""
    policy.check(to=PRODUCT, data=GOOD, gas=1_700_000)
    policy.check(to=PRODUCT, data=GOOD, gas=1_700_000)  # remembered: still taken
    for other in (
        dataclasses.replace(policy, chain_id=CHAIN_ID + 1),
        dataclasses.replace(policy, verifying_contract=OTHER.address),
    ):
        with pytest.raises(
            errors.SigningRefused, match="not the policy holder's|recovers no signer"
        ):
            other.check(to=PRODUCT, data=GOOD, gas=1_700_000)
