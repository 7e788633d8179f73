"""The attacker of issue 21 (devnet.attacker) against the real product: a holder who sees the
transaction carrying its application, in the node's pool or by the hash the web app shows,
takes its premium's allowance away with a higher tip, so that the transaction reverts in the
same block with DP-015 and the sender pays; then approves again, so that a resend would pass."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from eth_account import Account

from depeg_processor.inbound.application import signature_id_bytes32
from devnet.attacker import application_holder
from devnet.depeg import USD
from tests.conftest import wait_until

pytestmark = pytest.mark.integration
ALLOWANCE = 100 * USD
GWEI = 10**9


def apply_call(real_product, fields: dict) -> dict:
    """The application's call as the processor sends it."""
    product = real_product.depeg.product
    data = product.encode_abi(
        "applyForPolicyWithBundleAndSignature",
        args=[
            fields["policyHolder"],
            fields["protectedWallet"],
            int(fields["protectedBalance"]),
            int(fields["duration"]),
            int(fields["bundleId"]),
            signature_id_bytes32(fields["signatureId"]),
            bytes.fromhex(fields["signature"].removeprefix("0x")),
        ],
    )
    return {"to": product.address, "data": data}


def send_unmined(real_product, call: dict) -> tuple[str, Callable[[str], object]]:
    """Send `call` from a funded account of our own into the pool (nothing is mined until the
    test says); returns its hash and a function that replays it as an eth_call at a block."""
    anvil = real_product.anvil
    sender = Account.create()
    anvil.set_balance(sender.address, 10**19)
    tx = {
        **call,
        "type": 2,
        "chainId": int(anvil.rpc("eth_chainId"), 16),
        "nonce": 0,
        "gas": 2_000_000,
        "maxPriorityFeePerGas": 2 * GWEI,
        "maxFeePerGas": 200 * GWEI,
    }
    tx_hash = anvil.rpc(
        "eth_sendRawTransaction", sender.sign_transaction(tx).raw_transaction.to_0x_hex()
    )
    return tx_hash, lambda block: anvil.rpc("eth_call", {"from": sender.address, **call}, block)


def allowance(real_product, holder: str) -> int:
    depeg = real_product.depeg
    return depeg.token.functions.allowance(holder, depeg.treasury).call()


def attacked_in_one_block(real_product, attacker, tx_hash: str, replay) -> dict:
    """Mine the block that holds the attacker's approval and our transaction; check the order
    and the revert; returns our receipt."""
    anvil = real_product.anvil
    wait_until(lambda: attacker.approvals, what="the attacker's approve(treasury, 0) sent")
    anvil.mine()
    ours = anvil.rpc("eth_getTransactionReceipt", tx_hash)
    theirs = anvil.rpc("eth_getTransactionReceipt", attacker.approvals[0])
    pick = ("blockNumber", "transactionIndex", "status", "effectiveGasPrice")
    assert theirs["status"] == "0x1" and ours["status"] == "0x0", [
        {k: r[k] for k in pick} for r in (ours, theirs)
    ]
    assert ours["blockNumber"] == theirs["blockNumber"], "in the same block"
    assert int(theirs["transactionIndex"], 16) < int(ours["transactionIndex"], 16)
    assert int(ours["gasUsed"], 16) > 100_000
    with pytest.raises(RuntimeError, match="ERROR:DP-015:ALLOWANCE_TOO_LOW"):
        replay("latest")  # the state ours ran in: the approval before it, nothing after yet
    return ours


def test_a_holder_watching_the_pool_makes_the_application_revert_with_dp015_then_approves_again(
    real_product, redis_client, attack
):
    webapp = real_product.webapp(redis_client, real_product.new_bundle(2))
    holder = webapp.new_holder(ALLOWANCE)
    fields = webapp.application(holder)
    call = apply_call(real_product, fields)
    assert (
        application_holder({**call, "input": call["data"]}, real_product.address) == holder.address
    )
    with real_product.interval_mining(None):
        attacker = attack([holder], allowance=ALLOWANCE)
        tx_hash, replay = send_unmined(real_product, call)
        replay("latest")  # it would succeed: what a simulation before the send saw
        attacked_in_one_block(real_product, attacker, tx_hash, replay)
        assert attacker.attacked == {tx_hash: holder.address.lower()}

        wait_until(lambda: attacker.restores, what="the attacker's approval again")
        real_product.anvil.mine()
        restore = real_product.anvil.rpc("eth_getTransactionReceipt", attacker.restores[0])
        assert restore["status"] == "0x1"
    assert allowance(real_product, holder.address) == ALLOWANCE
    replay("latest")  # a resend would succeed now: the bait for the next revert
    assert attacker.errors == []


def test_a_holder_watching_the_hash_the_web_app_shows_attacks_blind(
    real_product, redis_client, attack
):
    """Where the transaction is in no public pool, the holder still learns its hash from the
    web app (the processor writes `transactionHash` on the application) and front-runs it."""
    webapp = real_product.webapp(redis_client, real_product.new_bundle(2))
    holder = webapp.new_holder(ALLOWANCE)
    fields = webapp.application(holder)
    shown: dict[str, str] = {}
    with real_product.interval_mining(None):
        attacker = attack([holder], allowance=ALLOWANCE, shown=lambda: dict(shown))
        tx_hash, replay = send_unmined(real_product, apply_call(real_product, fields))
        assert attacker.approvals == [], "it does not look at the pool"
        shown[tx_hash] = holder.address
        attacked_in_one_block(real_product, attacker, tx_hash, replay)
        wait_until(lambda: attacker.restores, what="the attacker's approval again")
        real_product.anvil.mine()
    assert allowance(real_product, holder.address) == ALLOWANCE
