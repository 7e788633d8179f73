"""Applications that can never succeed cost no gas and lose nothing: each lands in the
dead-letter stream with its reason, and the good applications around them go through."""

from __future__ import annotations

import json

from devnet.proxy import RpcProxy
from tests.conftest import wait_until
from tests.integration.conftest import application, dead_letters, wallet_nonce

ZERO = "0x0000000000000000000000000000000000000000"


def signed_with(webapp, **message):
    """A correctly signed application for other message values (the contract judges them)."""
    fields = webapp.application()
    fields.update({k: str(v) for k, v in message.items()})
    from eth_account import Account

    holder = Account.create()
    fields["policyHolder"] = holder.address
    fields["signature"] = webapp.sign(
        holder,
        wallet=fields["protectedWallet"],
        protected_balance=int(fields["protectedBalance"]),
        duration=int(fields["duration"]),
        bundle_id=int(fields["bundleId"]),
        signature_id=fields["signatureId"],
    )
    return fields


def test_each_permanent_failure_is_dead_lettered_and_good_ones_pass(
    start_service, webapp, anvil, product, redis_client
):
    goods, bads = [], {}
    goods.append(webapp.apply())
    bads["no-entity"] = redis_client.xadd("application:signatures", {"somethingElse": "x"})
    missing_id = "01M8G0F2E6VJ6V4CJ0GFBHWAAA"
    redis_client.xadd("application:signatures", {"entityId": missing_id})
    bads["malformed"] = webapp.apply(protectedBalance="1.199e+21")
    bads["bad-address"] = webapp.apply(policyHolder="0x1234")
    other_signer = webapp.application()
    other_signer["policyHolder"] = webapp.application()["policyHolder"]
    bads["wrong-signer"] = webapp.submit(other_signer)
    goods.append(webapp.apply())
    bads["bundle-closed"] = webapp.submit(signed_with(webapp, bundleId=9))
    bads["bundle-zero"] = webapp.submit(signed_with(webapp, bundleId=0))
    bads["wallet-zero"] = webapp.submit(signed_with(webapp, protectedWallet=ZERO))
    reused = webapp.application()
    goods.append(webapp.submit(reused))
    bads["signature-used"] = webapp.submit(dict(reused))
    goods.append(webapp.apply())

    start_service()
    expected = {
        "malformed": "field protectedBalance",
        "bad-address": "field policyHolder",
        "wrong-signer": "signature invalid",
        "bundle-closed": "ERROR:DP-013:BUNDLE_NOT_ACTIVE",
        "bundle-zero": "ERROR:DP-012:BUNDLE_ID_ZERO",
        "wallet-zero": "ERROR:DP-011:WALLET_ADDRESS_ZERO",
        "signature-used": f"duplicate of application {goods[2]}",
    }
    wait_until(
        lambda: len(dead_letters(redis_client)) == len(expected) + 2,
        what="every bad entry dead-lettered",
    )
    wait_until(
        lambda: not any(application(redis_client, e) for e in goods),
        what="good applications confirmed",
    )

    letters = dead_letters(redis_client)
    for name, fragment in expected.items():
        letter = letters[bads[name]]
        assert fragment in letter["reason"], (name, letter["reason"])
        assert letter["streamEntryId"], name
        stored = json.loads(letter["application"])
        assert stored["signature"].startswith("0x"), "the full application is kept"
        assert not application(redis_client, bads[name]), "hash removed once set aside"
    assert "no entityId" in letters[bads["no-entity"]]["reason"]
    assert json.loads(letters[bads["no-entity"]]["streamEntry"]) == {"somethingElse": "x"}
    assert "not found" in letters[missing_id]["reason"]

    assert wallet_nonce(anvil) == len(goods), "no transaction was sent for a bad application"
    assert product.application_count() == len(goods)
    assert (
        redis_client.xpending("application:signatures", "depeg-backend-processor")["pending"] == 0
    )


def test_reverts_found_by_one_eth_simulate_v1_call_are_set_aside_with_their_reasons(
    start_service, webapp, anvil, product, redis_client
):
    """Once the gas limit is learned, a batch is simulated in one eth_simulateV1 call: each
    application's revert reason still reaches its dead letter, and the good ones go out; a
    copy of one of them (the same signature under another id) is set aside as a duplicate
    before it is simulated."""
    with RpcProxy(anvil.url) as node:
        running = start_service(chain_rpc_url=node.url)
        first = webapp.apply()  # its batch learns the gas limit with eth_estimateGas
        wait_until(lambda: redis_client.get(f"application:signatures:done:{first}"), what="first")
        node.reset_counts()
        reused = webapp.application()
        bads = {
            "bundle-closed": webapp.submit(signed_with(webapp, bundleId=9)),
            "wallet-zero": webapp.submit(signed_with(webapp, protectedWallet=ZERO)),
        }
        goods = [webapp.submit(reused), webapp.apply()]
        bads["signature-used"] = webapp.submit(dict(reused))
        wait_until(lambda: len(dead_letters(redis_client)) == 3, what="three dead letters")
        wait_until(
            lambda: not any(application(redis_client, e) for e in goods),
            what="the good ones confirmed",
        )
        calls = dict(node.calls)

    assert running.service.wallets[0].ctx.shared.simulator.simulates
    assert calls.get("eth_estimateGas", 0) == 0 and calls["eth_simulateV1"] >= 1, calls
    letters = dead_letters(redis_client)
    assert "ERROR:DP-013:BUNDLE_NOT_ACTIVE" in letters[bads["bundle-closed"]]["reason"]
    assert "ERROR:DP-011:WALLET_ADDRESS_ZERO" in letters[bads["wallet-zero"]]["reason"]
    assert f"duplicate of application {goods[0]}" in letters[bads["signature-used"]]["reason"]
    assert letters[bads["signature-used"]]["kind"] == "duplicate"
    assert wallet_nonce(anvil) == 1 + len(goods), "no transaction for a bad application"
    assert product.application_count() == 1 + len(goods)


def test_transaction_reverted_on_chain_is_dead_lettered_with_its_reason(
    start_service, webapp, anvil, product, redis_client
):
    """The bundle closes between simulation and mining: the transaction reverts on chain and the
    application is set aside with the reason, not retried forever nor silently dropped."""
    anvil.set_automine(False)
    entity_id = webapp.apply()
    running = start_service()
    wait_until(lambda: application(redis_client, entity_id).get("transactionHash"), what="sent")
    product.send_first(product.contract.functions.closeBundle(2))
    anvil.mine(1)
    wait_until(lambda: entity_id in dead_letters(redis_client), what="revert dead-lettered")
    reason = dead_letters(redis_client)[entity_id]["reason"]
    assert "reverted on chain" in reason and "ERROR:DP-013:BUNDLE_NOT_ACTIVE" in reason
    # the letter is stored first; the application and the wallet's record then go together
    wait_until(lambda: not application(redis_client, entity_id), what="application removed")
    assert redis_client.zcard("application:signatures:inflight") == 0
    assert product.application_count() == 0
    assert running.get("/api/monitor")[0] == 200


def test_revert_because_product_paused_waits_and_lands_after_reactivation(
    start_service, webapp, anvil, product, redis_client
):
    anvil.set_automine(False)
    entity_id = webapp.apply()
    start_service()
    first_hash = wait_until(
        lambda: application(redis_client, entity_id).get("transactionHash"), what="sent"
    )
    product.send_first(product.contract.functions.setActive(False))
    anvil.mine(1)
    assert receipt_status(anvil, first_hash) == 0
    wait_until(
        lambda: application(redis_client, entity_id).get("transactionHash") is None,
        what="application back to waiting",
    )
    assert entity_id not in dead_letters(redis_client)

    anvil.set_automine(True)
    product.set_active(True)
    wait_until(lambda: not application(redis_client, entity_id), what="landed and purged")
    assert product.application_count() == 1
    assert redis_client.xlen("application:signatures:dead") == 0


def receipt_status(anvil, tx_hash):
    return int(anvil.rpc("eth_getTransactionReceipt", tx_hash)["status"], 16)


def test_revert_that_would_succeed_now_is_set_aside_not_sent_again_and_its_holder_held(
    start_service, webapp, anvil, product, redis_client
):
    """The bundle closes between simulation and mining and opens again before the revert is
    settled: the call would succeed now, but someone changed the state it reads between the
    simulation and the block (issue 21's attack does it on purpose), so the application is
    set aside, not sent again, and its policy holder is held: its next application is set
    aside too, naming the revert."""
    from eth_account import Account

    from tests.integration.test_chain_faults import mining_until

    anvil.set_automine(False)
    holder = Account.create()
    fields = webapp.application(holder)
    entity_id = webapp.submit(fields)
    start_service(min_confirmations=3)
    first = wait_until(
        lambda: application(redis_client, entity_id).get("transactionHash"), what="sent"
    )
    product.send_first(product.contract.functions.closeBundle(2))
    anvil.mine(1)
    assert receipt_status(anvil, first) == 0
    product.send_first(product.contract.functions.openBundle(2))
    wait_until(
        mining_until(anvil, lambda: entity_id in dead_letters(redis_client)),
        what="set aside once settled",
    )
    letter = dead_letters(redis_client)[entity_id]
    assert letter["kind"] == "reverted_on_chain" and first in letter["reason"]
    assert "would succeed now" in letter["reason"]
    assert product.application_count() == 0, "not sent again"
    held = holder.address.lower()
    assert redis_client.hget(f"application:signatures:held:{held}", "tx") == first

    second = webapp.submit(webapp.application(holder))
    wait_until(lambda: second in dead_letters(redis_client), what="the held holder's next")
    letter = dead_letters(redis_client)[second]
    assert letter["kind"] == "holder_held" and held in letter["reason"]
    assert first in letter["reason"] and entity_id in letter["reason"]
    assert product.application_count() == 0
