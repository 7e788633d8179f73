"""Issue 21's attack against the processor and the real product: ten honest applications and
four attacking holders (three with one application, one with three), a block every 4 s and
three confirmations (so that a resend of a reverted application would show). Each attacker
(devnet.attacker) watches the node's pool and front-runs the processor's transaction for its
application with approve(treasury, 0), then approves 100 USDT again so that a resend would
pass. One wallet, and two replicas on a pool of two: each attacking holder costs the pool at
most one paid revert, the honest applications land once each, and every attacked application
ends set aside with its reason (`reverted_on_chain`, or `holder_held` naming the revert)."""

from __future__ import annotations

import collections
import time

import pytest

from devnet.attacker import application_holder
from devnet.depeg import USD
from devnet.webapp import ulid
from tests.conftest import wait_until
from tests.integration.conftest import dead_letters
from tests.integration.real_replicas import (
    check_metrics_show_spend,
    describe,
    settled,
    start_replicas,
    submit_together,
)

pytestmark = pytest.mark.integration
HONEST = 10
ATTACKING = (1, 1, 1, 3)  # applications of each attacking holder
ALLOWANCE = 100 * USD
BLOCK_SECONDS = 4
CONFIRMATIONS = 3
ASIDE = {"reverted_on_chain", "holder_held"}


def paid_reverts(real_product, receipts: list[dict]) -> dict[str, list[int]]:
    """Gas used by each reverted transaction of ours, by the policy holder it applied for."""
    by_holder = collections.defaultdict(list)
    for receipt in receipts:
        if receipt["status"] == "0x1":
            continue
        tx = real_product.anvil.rpc("eth_getTransactionByHash", receipt["transactionHash"])
        holder = (application_holder(tx, real_product.address) or "?").lower()
        by_holder[holder].append(int(receipt["gasUsed"], 16))
    return dict(by_holder)


@pytest.mark.parametrize("replicas", [1, 2], ids=["one-wallet", "two-replicas-two-wallets"])
def test_each_attacking_holder_makes_the_pool_pay_for_one_revert_at_most(
    replicas, real_product, spawn, redis_server, redis_client, anvil, attack
):
    started = time.monotonic()
    bundle_id = real_product.new_bundle(HONEST + sum(ATTACKING) + 2)
    webapp = real_product.webapp(redis_client, bundle_id)
    depeg = real_product.depeg
    honest = {ulid(): webapp.application() for _ in range(HONEST)}
    attackers = [webapp.new_holder(ALLOWANCE) for _ in ATTACKING]
    attacked: dict[str, str] = {}  # entity id -> its attacking holder (lowercase)
    applications = dict(honest)
    for holder, count in zip(attackers, ATTACKING):
        for _ in range(count):
            entity_id = ulid()
            applications[entity_id] = webapp.application(holder)
            attacked[entity_id] = holder.address.lower()
        depeg.t.call(holder, depeg.token, "approve", depeg.treasury, ALLOWANCE)

    with real_product.interval_mining(BLOCK_SECONDS):
        start_block = anvil.block_number() + 1
        ports: list[int] = []
        wallets = start_replicas(
            replicas,
            spawn=spawn,
            redis_server=redis_server,
            redis_client=redis_client,
            real_product=real_product,
            ports=ports,
            CHAIN_MINUMUM_REQUIRED_CONFIRMATIONS=str(CONFIRMATIONS),
        )
        attacker = attack(attackers, allowance=ALLOWANCE)
        submit_together(redis_client, applications)
        wait_until(
            lambda: settled(redis_client, applications),
            timeout=300,
            what="every application confirmed or set aside",
        )
        anvil.mine(CONFIRMATIONS + 1)  # a resend, if any, would be mined by now
    receipts = real_product.our_receipts(wallets, start_block)
    paid = paid_reverts(real_product, receipts)
    letters = dead_letters(redis_client)
    policies = real_product.policies_of(
        {f["policyHolder"] for f in applications.values()}, start_block
    )
    outcome = (
        f"{describe(receipts)}; paid reverts by holder {paid}; attacker sent "
        f"{len(attacker.approvals)} approve(0); dead letters "
        f"{dict(collections.Counter(letter['kind'] for letter in letters.values()))}"
    )
    print(f"\n[{replicas} replica(s)] {outcome}; {time.monotonic() - started:.0f} s")

    assert attacker.approvals, "the attacker attacked"
    check_metrics_show_spend(receipts, ports)
    assert set(paid) <= set(attacked.values()), f"only attackers' reverts; {outcome}"
    assert all(len(gas) <= 1 for gas in paid.values()), f"one revert per holder; {outcome}"
    landed = collections.Counter(p["policyHolder"].lower() for p in policies)
    for fields in honest.values():
        assert landed[fields["policyHolder"].lower()] == 1, f"each honest one once; {outcome}"
    assert set(letters) <= set(attacked), f"only attacked applications set aside; {outcome}"
    # An attack can lose its race (the processor's transaction mined before the approval
    # reached the pool): that application lands. Each attacked one ends landed once or set
    # aside with its reason, and at least one attack won, or this run showed nothing.
    assert paid, f"no attack won its race; {outcome}"
    for holder in set(attacked.values()):
        mine = [e for e, h in attacked.items() if h == holder]
        aside = [e for e in mine if e in letters]
        assert landed[holder] + len(aside) == len(mine), (holder, landed[holder], aside, outcome)
    for entity_id, letter in letters.items():
        holder = attacked[entity_id]
        assert letter["kind"] in ASIDE, (letter["kind"], letter["reason"])
        if letter["kind"] == "holder_held":
            assert holder in letter["reason"] and "reverted on chain" in letter["reason"]
        else:
            assert "reverted on chain" in letter["reason"], letter["reason"]
