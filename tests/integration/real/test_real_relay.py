"""Issue 21's attack against the real product, with the processor sending through a private
relay (CHAIN_SEND_URL, the emulator devnet.relay in front of the chain): ten honest
applications and four attacking holders (three with one application, one with three), whose
attackers watch the node's pool AND the `transactionHash` the web app shows them, and
front-run what they see with approve(treasury, 0). Nothing is paid for a revert: the relay
includes a transaction only where it succeeds. An attacked application lands once the holder
approves again, or, when the holder never does, is set aside after CHAIN_SEND_DROP_BLOCKS
with its nonce filled, so that the wallet's later transactions are not stuck behind it. The
processor's raw transactions reach the relay alone: the public node (behind a counting proxy)
is never sent one."""

from __future__ import annotations

import collections

import pytest

from devnet.attacker import shown_by_webapp
from devnet.depeg import USD
from devnet.proxy import RpcProxy
from tests.conftest import wait_until
from tests.integration.conftest import PROCESSOR, application, dead_letters

pytestmark = pytest.mark.integration
HONEST = 10
ATTACKING = (1, 1, 1, 3)  # applications of each attacking holder who approves again
ALLOWANCE = 100 * USD
BLOCK_SECONDS = 1.5
DROP_BLOCKS = 4
CONFIRMATIONS = 3


@pytest.fixture
def public_node(anvil):
    """A counting proxy in front of the chain: the processor's CHAIN_RPC_URL."""
    with RpcProxy(anvil.url) as proxy:
        yield proxy


def test_through_the_relay_no_revert_is_paid_and_nothing_reaches_the_public_pool(
    real_product, redis_client, anvil, attack, private_relay, public_node, start_service
):
    depeg = real_product.depeg
    webapp = real_product.webapp(redis_client, real_product.new_bundle(HONEST + sum(ATTACKING) + 2))
    honest = [webapp.application() for _ in range(HONEST)]
    attackers = [webapp.new_holder(ALLOWANCE) for _ in ATTACKING]
    stubborn = webapp.new_holder(ALLOWANCE)  # takes its allowance away and never gives it back
    attacked = [(h, webapp.application(h)) for h, n in zip(attackers, ATTACKING) for _ in range(n)]
    attacked.append((stubborn, webapp.application(stubborn)))
    for holder in [*attackers, stubborn]:
        depeg.t.call(holder, depeg.token, "approve", depeg.treasury, ALLOWANCE)
    ids = {webapp.submit(fields): fields for fields in honest}
    attacked_ids = {webapp.submit(fields): fields for _h, fields in attacked}
    holder_of = {e: f["policyHolder"] for e, f in {**ids, **attacked_ids}.items()}
    start_block = anvil.block_number() + 1

    relay = private_relay(block_time=BLOCK_SECONDS, max_blocks=DROP_BLOCKS + 2)
    seen = shown_by_webapp(redis_client, holder_of)
    racing = attack(attackers, allowance=ALLOWANCE, shown=seen, pool=True)
    never_again = attack([stubborn], allowance=0, shown=seen, pool=True)
    start_service(
        chain_rpc_url=public_node.url,
        chain_send_url=relay.url,
        send_drop_blocks=DROP_BLOCKS,
        min_confirmations=CONFIRMATIONS,
        stuck_blocks=2,
    )
    wait_until(
        lambda: not any(application(redis_client, e) for e in holder_of),
        timeout=240,
        what="every application confirmed or set aside",
    )
    wait_until(lambda: relay.held == 0, what="the relay holding nothing of ours (a filler mined)")

    receipts = real_product.our_receipts([PROCESSOR.address], start_block)
    assert [r for r in receipts if r["status"] != "0x1"] == [], "no revert paid"
    assert {r["transactionHash"] for r in receipts} <= set(relay.included), "all via the relay"
    assert public_node.calls["eth_sendRawTransaction"] == 0, "nothing sent to the public node"
    assert relay.calls["eth_sendRawTransaction"] >= len(holder_of)
    assert racing.errors == [] and never_again.errors == []
    assert racing.attacked, "the attackers saw the processor's transactions (by the web app)"

    created = collections.Counter(
        e["policyHolder"] for e in real_product.applications_created(start_block)
    )
    for fields in honest:
        assert created[fields["policyHolder"]] == 1, "each honest application landed once"
    letters = dead_letters(redis_client)
    assert set(letters) <= set(attacked_ids), "only attacked applications are set aside"
    for holder in attackers:
        mine = [e for e in attacked_ids if holder_of[e] == holder.address]
        landed, aside = created[holder.address], [e for e in mine if e in letters]
        assert landed + len(aside) == len(mine), (holder.address, landed, aside)
    [stubborn_id] = [e for e in attacked_ids if holder_of[e] == stubborn.address]
    fillers = [r for r in receipts if r["to"].lower() == PROCESSOR.address.lower()]
    if created[stubborn.address] == 0:  # attacked before the relay's block: never included
        letter = letters[stubborn_id]
        assert letter["kind"] == "not_included_by_relay", letter
        assert "ERROR:DP-015" in letter["reason"] and "filled by 0x" in letter["reason"]
        assert len(fillers) == 1, "its nonce was filled by a transfer to itself"
    else:  # the relay included it before the attacker's approval was mined
        assert stubborn_id not in letters and fillers == []
    latest, pending = (
        int(anvil.rpc("eth_getTransactionCount", PROCESSOR.address, block), 16)
        for block in ("latest", "pending")
    )
    assert latest == pending == len(receipts), "no nonce left unfilled"
    print(
        f"\nthrough the relay: {len(receipts)} transactions, 0 reverted; attacked: "
        f"{sum(created[h.address] for h in attackers)} landed, {len(letters)} set aside "
        f"({sorted(letter['kind'] for letter in letters.values())}); relay received "
        f"{relay.received}, included {len(relay.included)}, dropped {len(relay.dropped)}"
    )
