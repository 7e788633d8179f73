"""application: the web app's PendingApplication hash, validated, and its EIP-712 signature."""

from __future__ import annotations

import pytest

from depeg_processor.errors import PermanentError
from depeg_processor.inbound.application import (
    Application,
    check_entity_id,
    check_entry,
    parse_application,
    signature_id_bytes32,
)
from depeg_processor.inbound.eip712 import SECP256K1_HALF_N, SECP256K1_N

from .helpers import (
    CHAIN_ID,
    ENTITY_ID,
    HOLDER,
    MESSAGE_HELPER,
    OTHER,
    SIGNATURE_ID,
    WALLET,
    signed_fields,
)


def test_parses_what_the_web_app_writes(webapp) -> None:
    fields = webapp.application(HOLDER)
    app = parse_application(ENTITY_ID, fields)
    assert app.entity_id == ENTITY_ID
    assert app.policy_holder == HOLDER.address
    assert app.protected_wallet == fields["protectedWallet"]
    assert (app.protected_balance, app.duration, app.bundle_id) == (1199000000, 2592000, 2)
    assert app.signature_id == fields["signatureId"]
    assert app.signature == bytes.fromhex(fields["signature"][2:]) and len(app.signature) == 65
    assert app.timestamp == float(fields["timestamp"])
    assert app.transaction_hash is None
    app.check_signature(chain_id=CHAIN_ID, verifying_contract=MESSAGE_HELPER)


def test_contract_args_are_in_abi_order() -> None:
    app = parse_application(ENTITY_ID, signed_fields())
    assert app.contract_args() == (
        HOLDER.address,
        WALLET,
        1199000000,
        2592000,
        2,
        SIGNATURE_ID.encode() + b"\0" * 11,
        app.signature,
    )


def test_lower_case_addresses_are_checksummed() -> None:
    fields = signed_fields(policyHolder=HOLDER.address.lower(), protectedWallet=WALLET.lower())
    app = parse_application(ENTITY_ID, fields)
    assert (app.policy_holder, app.protected_wallet) == (HOLDER.address, WALLET)


def test_missing_hash_is_not_found() -> None:
    with pytest.raises(PermanentError, match=f"PendingApplication:{ENTITY_ID} not found"):
        parse_application(ENTITY_ID, {})


@pytest.mark.parametrize(
    "field, value",
    [
        ("policyHolder", "0x1234"),
        ("protectedWallet", "not-an-address"),
        ("protectedBalance", "-1"),
        ("protectedBalance", "1.5"),
        ("protectedBalance", str(2**256)),
        ("duration", "30 days"),
        ("bundleId", "0x02"),
        ("signatureId", "x" * 32),
        ("signature", "0x1234"),
        ("signature", "0x" + "zz" * 65),
        ("timestamp", "yesterday"),
        ("timestamp", "-inf"),
        ("timestamp", "nan"),
        ("transactionHash", "0xabc"),
    ],
)
def test_malformed_field_is_permanent_and_named(field: str, value: str) -> None:
    with pytest.raises(PermanentError) as caught:
        parse_application(ENTITY_ID, signed_fields(**{field: value}))
    assert f"field {field}" in caught.value.reason
    assert caught.value.kind == "invalid_field"


def test_a_long_value_is_cut_in_the_reason_stating_its_size() -> None:
    with pytest.raises(PermanentError) as caught:
        parse_application(ENTITY_ID, signed_fields(duration="9" * 50_000 + "x"))
    assert len(caught.value.reason) < 400 and "[50001 bytes]" in caught.value.reason


def test_a_code_in_a_field_is_an_invalid_field_not_a_revert() -> None:
    with pytest.raises(PermanentError) as caught:
        parse_application(ENTITY_ID, signed_fields(timestamp="ERROR:AB-17"))
    assert caught.value.kind == "invalid_field"


@pytest.mark.parametrize(
    "name, value",
    [
        ("signatureId", "WD1ww5ymMhuW\udcffJY5HqJ_"),
        ("duration", "2592000\udcfe"),
        ("extra\udcff", "1"),
    ],
)
def test_bytes_that_are_not_utf8_anywhere_in_the_hash_are_refused(name, value) -> None:
    with pytest.raises(PermanentError) as caught:
        parse_application(ENTITY_ID, signed_fields(**{name: value}))
    assert caught.value.kind == "not_utf8"
    assert f"field {name!r}" in caught.value.reason
    caught.value.reason.encode("utf-8")  # escaped: no lone surrogate left in it


def test_missing_fields_are_all_named() -> None:
    fields = signed_fields()
    del fields["bundleId"], fields["signature"]
    with pytest.raises(PermanentError) as caught:
        parse_application(ENTITY_ID, fields)
    assert "bundleId" in caught.value.reason and "signature" in caught.value.reason


def test_uint256_max_is_accepted() -> None:
    app = parse_application(ENTITY_ID, signed_fields(protectedBalance=str(2**256 - 1)))
    assert app.protected_balance == 2**256 - 1


def test_signature_id_is_right_padded_utf8() -> None:
    assert signature_id_bytes32("abc") == b"abc" + b"\0" * 29
    assert signature_id_bytes32("é" * 15) == "é".encode() * 15 + b"\0" * 2  # 30 bytes
    assert len(signature_id_bytes32("x" * 31)) == 32


@pytest.mark.parametrize("value", ["", "x" * 32, "é" * 16])
def test_signature_id_over_31_bytes_or_empty_is_rejected(value: str) -> None:
    with pytest.raises(ValueError):
        signature_id_bytes32(value)


@pytest.mark.parametrize(
    "entity_id",
    [None, "", "a b", "x" * 65, "PendingApplication:*", "a:b", ENTITY_ID + "\n", "x" * 10_000],
)
def test_bad_entity_id_is_permanent(entity_id) -> None:
    with pytest.raises(PermanentError) as caught:
        check_entity_id(entity_id)
    assert caught.value.kind == "invalid_entry"
    assert "\n" not in caught.value.reason and len(caught.value.reason) < 300


def test_a_stream_entry_with_bytes_that_are_not_utf8_is_refused() -> None:
    for fields in ({"entityId": "01HZX\udcff"}, {"entityId": ENTITY_ID, "x\udcff": "1"}):
        with pytest.raises(PermanentError) as caught:
            check_entry(fields)
        assert caught.value.kind == "not_utf8"
    assert check_entry({"entityId": ENTITY_ID, "extra": "ok"}) == ENTITY_ID


def test_ulid_entity_id_is_accepted() -> None:
    assert check_entity_id(ENTITY_ID) == ENTITY_ID


def app_from(**kwargs) -> Application:
    return parse_application(ENTITY_ID, signed_fields(**kwargs))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"signer": OTHER},
        {"chain_id": 1},
        {"message_helper": "0x5FbDB2315678afecb367f032d93F642f64180aa3"},
    ],
)
def test_signature_for_another_key_chain_or_contract_is_rejected(kwargs) -> None:
    app = app_from(**kwargs)
    with pytest.raises(PermanentError, match="signature invalid"):
        app.check_signature(chain_id=CHAIN_ID, verifying_contract=MESSAGE_HELPER)


def test_signature_over_other_data_is_rejected() -> None:
    app = app_from(protectedBalance="1199000001")  # changed after signing
    with pytest.raises(PermanentError, match="not by policyHolder"):
        app.check_signature(chain_id=CHAIN_ID, verifying_contract=MESSAGE_HELPER)


def test_unrecoverable_signature_is_rejected() -> None:
    app = app_from(signature="0x" + "00" * 64 + "1b")  # r = s = 0, v = 27
    with pytest.raises(PermanentError, match="cannot recover"):
        app.check_signature(chain_id=CHAIN_ID, verifying_contract=MESSAGE_HELPER)


@pytest.mark.parametrize(
    "chain_id, helper",
    [
        (CHAIN_ID, MESSAGE_HELPER),
        (1, "0x" + "ab" * 20),
        (137, "0x0000000000000000000000000000000000000001"),
    ],
)
def test_policy_digest_matches_eth_accounts_eip712(chain_id, helper) -> None:
    from eth_account.messages import encode_typed_data
    from eth_utils import keccak, to_checksum_address

    from depeg_processor.inbound.application import signature_id_bytes32
    from depeg_processor.inbound.eip712 import POLICY_TYPES

    app = parse_application(ENTITY_ID, signed_fields())
    helper = to_checksum_address(helper)
    message = encode_typed_data(
        domain_data={
            "name": "EtheriscDepeg",
            "version": "1",
            "chainId": chain_id,
            "verifyingContract": helper,
        },
        message_types=POLICY_TYPES,
        message_data={
            "wallet": app.protected_wallet,
            "protectedBalance": app.protected_balance,
            "duration": app.duration,
            "bundleId": app.bundle_id,
            "signatureId": signature_id_bytes32(app.signature_id),
        },
    )
    expected = keccak(b"\x19" + message.version + message.header + message.body)
    assert app.policy_digest(chain_id=chain_id, verifying_contract=helper) == expected


def twin(signature: str) -> str:
    """The malleable twin of a signature: the same signer from (r, n - s) with v flipped."""
    raw = bytes.fromhex(signature[2:])
    s = SECP256K1_N - int.from_bytes(raw[32:64], "big")
    return "0x" + (raw[:32] + s.to_bytes(32, "big") + bytes([55 - raw[64]])).hex()


def test_the_high_s_twin_of_a_good_signature_is_refused_like_the_product_does() -> None:
    fields = signed_fields()
    app = parse_application(ENTITY_ID, {**fields, "signature": twin(fields["signature"])})
    # the same signer, recovered (ecrecover would take it; OpenZeppelin's ECDSA does not)
    assert app.recover_signer(chain_id=CHAIN_ID, verifying_contract=MESSAGE_HELPER) == (
        HOLDER.address
    )
    with pytest.raises(PermanentError, match="s is above half the curve order") as caught:
        app.check_signature(chain_id=CHAIN_ID, verifying_contract=MESSAGE_HELPER)
    assert caught.value.kind == "signature_invalid"


@pytest.mark.parametrize("v", [0, 1, 29, 255])
def test_a_signature_with_v_other_than_27_or_28_is_refused(v) -> None:
    fields = signed_fields()
    signature = bytes.fromhex(fields["signature"][2:])
    other_v = "0x" + (signature[:64] + bytes([v])).hex()
    app = parse_application(ENTITY_ID, {**fields, "signature": other_v})
    with pytest.raises(PermanentError, match=f"v is {v}, the product accepts only 27 or 28"):
        app.check_signature(chain_id=CHAIN_ID, verifying_contract=MESSAGE_HELPER)


def test_a_signature_with_v_0_or_1_is_refused_though_it_recovers_the_holder() -> None:
    fields = signed_fields()
    signature = bytes.fromhex(fields["signature"][2:])
    low_v = "0x" + (signature[:64] + bytes([signature[64] - 27])).hex()
    app = parse_application(ENTITY_ID, {**fields, "signature": low_v})
    assert app.recover_signer(chain_id=CHAIN_ID, verifying_contract=MESSAGE_HELPER) == (
        HOLDER.address
    )
    with pytest.raises(PermanentError, match="signature invalid: v is"):
        app.check_signature(chain_id=CHAIN_ID, verifying_contract=MESSAGE_HELPER)


def test_the_products_bound_on_s_is_half_the_curve_order() -> None:
    assert SECP256K1_HALF_N == 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0
