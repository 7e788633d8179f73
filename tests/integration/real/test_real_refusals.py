"""Every refusal of the real product, and the signatures it would reject, set aside as a dead
letter with its code as the letter's kind and its revert string as the reason, without a
transaction of ours: the simulation (or, for a malformed signature, the processor itself)
finds them before anything is signed."""

from __future__ import annotations

import pytest

from depeg_processor.inbound.application import signature_id_bytes32
from devnet.depeg import DAY, USD, bundle_capital_for
from devnet.webapp import ulid
from tests.conftest import wait_until
from tests.integration.conftest import PROCESSOR, dead_letters, wallet_nonce
from tests.integration.real_replicas import settled, submit_together

pytestmark = pytest.mark.integration
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def high_s(signature: str) -> str:
    """The same signature with s replaced by n - s and v flipped: ecrecover gives the same
    signer, but it is another byte string (a second use of one consent), which OpenZeppelin's
    ECDSA refuses."""
    raw = bytes.fromhex(signature.removeprefix("0x"))
    s = SECP256K1_N - int.from_bytes(raw[32:64], "big")
    return "0x" + (raw[:32] + s.to_bytes(32, "big") + bytes([55 - raw[64]])).hex()


def v_below_27(signature: str) -> str:
    raw = bytes.fromhex(signature.removeprefix("0x"))
    return "0x" + (raw[:64] + bytes([raw[64] - 27])).hex()


def apply_on_chain(real_product, fields: dict) -> None:
    """Send an application ourselves from another account, as anyone may: its signature is
    used once this is mined."""
    depeg = real_product.depeg
    depeg.t.call(
        depeg.actors.operator,
        depeg.product,
        "applyForPolicyWithBundleAndSignature",
        fields["policyHolder"],
        fields["protectedWallet"],
        int(fields["protectedBalance"]),
        int(fields["duration"]),
        int(fields["bundleId"]),
        signature_id_bytes32(fields["signatureId"]),
        bytes.fromhex(fields["signature"].removeprefix("0x")),
    )


def refusals(real_product, redis_client) -> dict[str, tuple[dict, str, str]]:
    """name: (application fields, expected kind, expected reason fragment)."""
    depeg = real_product.depeg
    webapp = real_product.webapp(redis_client, real_product.new_bundle(2))
    sized = dict(protected_balance=webapp.protected_balance, duration=webapp.duration)
    terms = dict(sized, bundle_id=webapp.bundle_id)
    premium = depeg.premium(webapp.protected_balance, webapp.duration, webapp.bundle_id)
    used = webapp.application()
    apply_on_chain(real_product, used)
    short = webapp.new_holder(premium)
    depeg.t.call(short, depeg.token, "approve", depeg.treasury, premium - 1)
    limited = depeg.create_bundle(
        bundle_capital_for(10, 10_000 * USD),
        min_protected=4_000 * USD,
        max_protected=6_000 * USD,
        min_duration=20 * DAY,
        max_duration=40 * DAY,
    )
    other_pool = depeg.add_riskpool(f"OtherRiskpool{len(depeg.bundle_ids)}")
    foreign = depeg.create_bundle(bundle_capital_for(2, 10_000 * USD), riskpool=other_pool)
    outside = {
        "below-min-protected": dict(protected_balance=3_000 * USD),
        "above-max-protected": dict(protected_balance=8_000 * USD),
        "below-min-duration": dict(duration=15 * DAY),
        "above-max-duration": dict(duration=60 * DAY),
    }
    underwriting = "ERROR:DP-016:UNDERWRITING_FAILED"
    cases = {
        # used by a transaction of someone else's (the holder applied directly): news, set
        # aside as already applied, naming that transaction, and no alert (issue 22)
        "signature-used": (dict(used), "already_applied", "was applied already by transaction"),
        "balance-too-low": (
            webapp.application(webapp.new_holder(premium - 1)),
            "DP-014",
            "ERROR:DP-014:BALANCE_TOO_LOW",
        ),
        "allowance-too-low": (
            webapp.webapp.application(short, **terms),
            "DP-015",
            "ERROR:DP-015:ALLOWANCE_TOO_LOW",
        ),
        **{
            name: (
                real_product.webapp(redis_client, limited, **{**sized, **change}).application(),
                "DP-016",
                underwriting,
            )
            for name, change in outside.items()
        },
        "bundle-full": (
            real_product.webapp(redis_client, real_product.new_bundle(0)).application(),
            "DP-016",
            underwriting,
        ),
        # the GIF bundle controller's code, a kind of its own like the product's
        "no-bundle": (
            webapp.webapp.application(**{**terms, "bundle_id": 999}),
            "BUC-060",
            "ERROR:BUC-060:BUNDLE_DOES_NOT_EXIST",
        ),
        "other-riskpool": (
            webapp.webapp.application(**{**terms, "bundle_id": foreign}),
            "DP-013",
            "ERROR:DP-013:RISKPOOL_MISMATCH",
        ),
    }
    for name, change in (("high-s", high_s), ("v-0-or-1", v_below_27)):
        fields = webapp.application()
        cases[name] = (
            {**fields, "signature": change(fields["signature"])},
            "signature_invalid",
            "",
        )
    return cases


def test_every_refusal_is_dead_lettered_with_its_code_and_nothing_is_sent(
    real_product, start_service, redis_client, anvil
):
    cases = refusals(real_product, redis_client)
    entity_ids = {name: ulid() for name in cases}
    submit_together(
        redis_client, {entity_ids[name]: fields for name, (fields, _k, _r) in cases.items()}
    )
    start_block = anvil.block_number() + 1
    nonce_before = wallet_nonce(anvil, block="pending")

    start_service()
    wait_until(
        lambda: settled(redis_client, entity_ids.values()),
        timeout=60,
        what="every application set aside",
    )
    letters = dead_letters(redis_client)
    found = {name: letters.get(entity_ids[name], {}) for name in cases}
    wrong = {
        name: (found[name].get("kind"), found[name].get("reason"))
        for name, (_f, kind, fragment) in cases.items()
        if found[name].get("kind") != kind or fragment not in found[name].get("reason", "")
    }
    assert wallet_nonce(anvil, block="pending") == nonce_before, "nothing sent"
    assert real_product.our_receipts([PROCESSOR.address], start_block) == []
    assert set(letters) == set(entity_ids.values())
    assert wrong == {}, "dead letters without the expected kind and reason"
