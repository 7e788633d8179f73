"""The pool's revert budget against the real product (issue 21): six attacking holders, one
application each, every one front-run by its holder (devnet.attacker) so that it reverts with
DP-015, and a budget of 500,000 gas, under three such reverts. The processor pays one revert
per holder until the budget is spent; then every wallet holds, readiness names the budget,
nothing more is sent, and /metrics shows what the reverts cost, to the wei of their receipts.

One transaction in flight per wallet (PROCESSOR_MAX_IN_FLIGHT=1), so the applications go one
block after another and the budget, not the block, stops them; one confirmation, so that the
reverted call simulated again still sees the allowance taken away and is set aside at once.
"""

from __future__ import annotations

import collections

import pytest

from devnet.attacker import application_holder
from devnet.depeg import USD
from devnet.webapp import ulid
from tests.conftest import wait_until
from tests.integration.conftest import dead_letters, http_json, service_env, wallet_nonce
from tests.integration.conftest import holder_pid as lease_holder
from tests.integration.real_replicas import WALLET_ETH, WALLETS, metric, submit_together

pytestmark = pytest.mark.integration
ATTACKERS = 6
HONEST = 2
BUDGET = 500_000  # gas: two DP-015 reverts (about 196 k each) stay under it, a third reaches it
ALLOWANCE = 100 * USD
BLOCK_SECONDS = 2


def start(count: int, *, spawn, redis_server, redis_client, real_product) -> list[int]:
    """`count` replicas on a pool of `count` wallets, each holding its own; their ports."""
    ports = []
    for wallet in WALLETS[:count]:
        real_product.anvil.set_balance(wallet.address, WALLET_ETH)
    for wallet in WALLETS[:count]:
        env = service_env(
            redis_server.url,
            real_product.anvil.url,
            real_product.address,
            PROCESSOR_WALLETS=str(count),
            PROCESSOR_MAX_IN_FLIGHT="1",
            MAX_REVERTED_GAS_PER_HOUR=str(BUDGET),
            CHAIN_MINUMUM_REQUIRED_CONFIRMATIONS="1",
            CHAIN_IDLE_POLL_INTERVAL="1000",  # a held replica sees the pool's ledger often
            LOG_LEVEL="INFO",
        )
        process = spawn(env)
        wait_until(
            lambda wallet=wallet, process=process: (
                lease_holder(redis_client, wallet.lease_key) == process.pid
            ),
            what=f"a replica holding wallet {wallet.index}",
        )
        ports.append(int(env["PORT"]))
    return ports


def held(port: int) -> dict | None:
    answer = http_json(port, "/api/monitor/readiness")
    if answer and answer[0] == 500 and "reverts" in answer[1]:
        return answer[1]
    return None


@pytest.mark.parametrize(
    "replicas", [pytest.param(1, id="one-wallet"), pytest.param(2, id="two-replicas-two-wallets")]
)
def test_the_revert_budget_stops_attacking_holders_one_revert_each(
    replicas, real_product, spawn, redis_server, redis_client, attack
):
    anvil = real_product.anvil
    webapp = real_product.webapp(redis_client, real_product.new_bundle(ATTACKERS + HONEST))
    holders = [webapp.new_holder(ALLOWANCE) for _ in range(ATTACKERS)]
    attacking = {ulid(): webapp.application(holder) for holder in holders}
    honest = {ulid(): webapp.application() for _ in range(HONEST)}
    wallets = [w.address for w in WALLETS[:replicas]]

    with real_product.interval_mining(BLOCK_SECONDS):
        start_block = anvil.block_number() + 1
        ports = start(
            replicas,
            spawn=spawn,
            redis_server=redis_server,
            redis_client=redis_client,
            real_product=real_product,
        )
        attacker = attack(holders, allowance=ALLOWANCE)
        submit_together(redis_client, attacking)
        submit_together(redis_client, honest)
        readiness = wait_until(
            lambda: all(held(port) for port in ports) and [held(port) for port in ports],
            timeout=180,
            what="every replica holding for the revert budget",
        )
        # what was sent before the hold is mined; then nothing more is sent, block after block
        wait_until(
            lambda: all(
                wallet_nonce(anvil, w) == wallet_nonce(anvil, w, "pending") for w in wallets
            ),
            what="the wallets' last transactions mined",
        )
        sent = [wallet_nonce(anvil, w) for w in wallets]
        watched_from = anvil.block_number()
        wait_until(
            lambda: anvil.block_number() >= watched_from + 3, timeout=30, what="three more blocks"
        )
        assert [wallet_nonce(anvil, w, "pending") for w in wallets] == sent, "sent while held"
        assert all(held(port) for port in ports), "still held: the hour has not rolled"
        receipts = real_product.our_receipts(wallets, start_block)
        reverted_gas = sum(int(r["gasUsed"], 16) for r in receipts if r["status"] != "0x1")
        wait_until(  # each replica reads the pool's ledger at its watcher's next round
            lambda: all(
                metric(p, "depeg_processor_reverted_gas_last_hour") == reverted_gas for p in ports
            ),
            what="every replica showing the pool's reverted gas",
        )
        spent = {port: metric(port, "depeg_processor_reverted_spent_wei_total") for port in ports}
        counted = sum(metric(p, "depeg_processor_reverted_transactions_total") for p in ports)
        budget = [metric(p, "depeg_processor_revert_budget_gas") for p in ports]
    assert attacker.errors == []

    by_holder, sent_holders = collections.Counter(), collections.Counter()
    reverted_wei = 0
    for receipt in receipts:
        tx = anvil.rpc("eth_getTransactionByHash", receipt["transactionHash"])
        holder = (application_holder(tx, real_product.address) or "?").lower()
        sent_holders[holder] += 1
        if receipt["status"] != "0x1":
            by_holder[holder] += 1
            reverted_wei += int(receipt["gasUsed"], 16) * int(receipt["effectiveGasPrice"], 16)
    paid = sum(by_holder.values())
    outcome = (
        f"{paid} paid reverts ({reverted_gas:,} gas, {reverted_wei} wei) of "
        f"{len(receipts)} transactions; by holder {dict(by_holder)}; readiness {readiness}"
    )
    print("\n" + outcome)
    attackers = {h.address.lower() for h in holders}
    assert set(by_holder) <= attackers, outcome
    assert max(by_holder.values()) == 1, f"one revert per holder: {outcome}"
    # the budget is reached by the third revert; a wallet may have had one more in flight
    assert reverted_gas >= BUDGET and 3 <= paid <= 2 + replicas + 1, outcome
    assert paid < ATTACKERS, f"the budget stopped some: {outcome}"
    for checks in readiness:
        assert checks["reverts"].startswith("revert budget spent: "), checks
        assert f"reached MAX_REVERTED_GAS_PER_HOUR {BUDGET}" in checks["reverts"], checks
    # every wei shows, once across the replicas
    assert sum(spent.values()) == reverted_wei, (spent, reverted_wei)
    assert counted == paid
    assert budget == [BUDGET] * replicas
    # every reverted application set aside; what was never sent waits in its hash
    letters = dead_letters(redis_client)
    for entity_id, fields in {**attacking, **honest}.items():
        holder = fields["policyHolder"].lower()
        if by_holder[holder]:
            assert entity_id in letters, f"{entity_id} reverted and not set aside: {outcome}"
        elif not sent_holders[holder]:
            stored = redis_client.hgetall(f"PendingApplication:{entity_id}")
            assert stored and "transactionHash" not in stored, (entity_id, stored)
    assert any(
        not sent_holders[f["policyHolder"].lower()] for f in {**attacking, **honest}.values()
    ), f"some applications wait while held: {outcome}"
