"""Replicas with identical settings sharing a pool of wallets and one consumer group: each sends
from one wallet at a time, a spare stands by, a dry wallet leaves the queue to the others, and
an application never gets a second transaction from another wallet."""

from __future__ import annotations

import os
import signal
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from depeg_processor.keys import owner_key
from depeg_processor.wallet.pool import derive_accounts, pool
from devnet.nodes import TEST_MNEMONIC
from devnet.proxy import RpcProxy
from tests.conftest import wait_until
from tests.integration.conftest import (
    application,
    dead_letters,
    holder_pid,
    http_json,
    receipt,
    service_env,
    wallet_nonce,
)

STREAM = "application:signatures"
CONSUMER = "depeg-backend-processor-consumer"
WALLETS = pool(derive_accounts(TEST_MNEMONIC, 4), stream=STREAM, consumer=CONSUMER)


def nonces(anvil, count: int, block: str = "latest") -> list[int]:
    return [wallet_nonce(anvil, w.address, block) for w in WALLETS[:count]]


def landed(redis_client, entity_ids) -> int:
    """Applications recorded (transactionHash written) or already purged."""
    return sum(
        1
        for e in entity_ids
        if not (app := application(redis_client, e)) or app.get("transactionHash")
    )


def purged(redis_client, entity_ids) -> bool:
    return not any(application(redis_client, e) for e in entity_ids)


def pool_env(redis_server, rpc_url, product, **extra: str) -> dict:
    # INFO: each process logs to a file of the test's (see `spawn`), read when a test fails.
    return service_env(
        redis_server.url,
        rpc_url,
        product.address,
        **{"PROCESSOR_WALLETS": "3", "LOG_LEVEL": "INFO", **extra},
    )


def test_three_replicas_share_three_wallets_through_a_kill_and_a_late_start(
    redis_server, anvil, product, webapp, redis_client, spawn
):
    with RpcProxy(anvil.url, delay=0.02) as node:
        first, second, late = (pool_env(redis_server, node.url, product) for _ in range(3))
        a = spawn(first)
        wait_until(
            lambda: holder_pid(redis_client, WALLETS[0].lease_key) == a.pid, what="A on wallet 0"
        )
        b = spawn(second)
        wait_until(
            lambda: holder_pid(redis_client, WALLETS[1].lease_key) == b.pid, what="B on wallet 1"
        )

        entity_ids = [webapp.apply() for _ in range(100)]
        wait_until(lambda: landed(redis_client, entity_ids) >= 20, what="A and B sending")
        c = spawn(late)
        wait_until(
            lambda: holder_pid(redis_client, WALLETS[2].lease_key) == c.pid, what="C on wallet 2"
        )
        wait_until(lambda: landed(redis_client, entity_ids) >= 40, what="more sent")
        os.kill(a.pid, signal.SIGKILL)
        a.wait(10)
        restarted = spawn(first)
        entity_ids += [webapp.apply() for _ in range(200)]

        wait_until(
            lambda: purged(redis_client, entity_ids),
            timeout=90,
            what="all 300 confirmed and purged",
        )
        # A's wallet goes to the restarted replica, or to one with nothing in flight that
        # moves to it (then the restarted one takes the wallet left): one each, all held.
        live = {b.pid, c.pid, restarted.pid}
        wait_until(
            lambda: {holder_pid(redis_client, w.lease_key) for w in WALLETS[:3]} == live,
            what="the three live replicas on the three wallets once A's lease ran out",
        )
    assert product.application_count() == 300
    assert len(product.applications_created()) == 300
    sent = nonces(anvil, 3)
    assert sum(sent) == 300, f"one transaction per application, none reverted: {sent}"
    assert all(n > 0 for n in sent), f"every wallet sent some: {sent}"
    assert dead_letters(redis_client) == {}
    assert redis_client.keys(f"{STREAM}:owner:*") == [], "owner marks cleared with the records"


def mine_until_purged(anvil, redis_client, entity_ids) -> None:
    """Mine what is pending and every block after it, until each application is purged."""
    anvil.set_automine(True)
    anvil.mine(1)
    wait_until(
        lambda: purged(redis_client, entity_ids),
        timeout=60,
        what="every application confirmed and purged",
    )


def start_on_each_wallet(envs: list[dict], redis_client, spawn) -> list:
    """A replica per env, each started once the one before holds its wallet: replica i holds
    wallet i."""
    holders = []
    for wallet, env in zip(WALLETS, envs):
        holders.append(spawn(env))
        wait_until(
            lambda wallet=wallet: holder_pid(redis_client, wallet.lease_key) == holders[-1].pid,
            what=f"a replica on wallet {wallet.index}",
        )
    return holders


def test_a_spare_replica_stands_by_and_takes_over_a_killed_holders_wallet(
    redis_server, anvil, product, webapp, redis_client, spawn
):
    envs = [pool_env(redis_server, anvil.url, product) for _ in range(4)]
    holders = start_on_each_wallet(envs[:3], redis_client, spawn)
    spare = spawn(envs[3])
    port = int(envs[3]["PORT"])
    ready = wait_until(
        lambda: (r := http_json(port, "/api/monitor/readiness")) and "role" in r[1] and r,
        what="the spare's readiness",
    )
    assert ready[0] == 200 and ready[1]["role"].startswith("standby"), ready

    anvil.set_automine(False)  # what is sent stays in flight
    entity_ids = [webapp.apply() for _ in range(30)]
    wait_until(lambda: landed(redis_client, entity_ids) == 30, what="all 30 recorded")
    # (another wallet than the first, which the spare watched for its health while standing by)
    wallet = next(
        w
        for w in sorted(WALLETS[:3], key=lambda w: w.index == 0)
        if redis_client.zcard(f"{w.prefix}:inflight")
    )
    victim = holders[wallet.index]
    in_flight = redis_client.zcard(f"{wallet.prefix}:inflight")
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(10)

    wait_until(
        lambda: holder_pid(redis_client, wallet.lease_key) == spare.pid,
        timeout=20,
        what="the spare holding the dead replica's wallet",
    )
    mine_until_purged(anvil, redis_client, entity_ids)
    assert redis_client.zcard(f"{wallet.prefix}:inflight") == 0
    assert wallet_nonce(anvil, wallet.address) == in_flight, (
        "the spare finished the dead holder's transactions, nothing more from that wallet"
    )
    assert product.application_count() == 30 and sum(nonces(anvil, 3)) == 30
    assert dead_letters(redis_client) == {}
    wait_until(  # the first wallet's series, exported while standing by, are gone
        lambda: wallets_in_metrics(port) == {wallet.address},
        what=f"the spare's /metrics on wallet {wallet.index} alone",
    )


def test_a_wallet_left_with_transactions_in_flight_is_taken_by_a_replica_with_none(
    redis_server, anvil, product, webapp, redis_client, spawn
):
    """A scale-down: one of three replicas stops (its lease released) with transactions in
    flight and no spare runs. Once another replica's own wallet has nothing in flight, it
    moves to the wallet left behind and confirms and purges what its holder sent."""
    envs = [pool_env(redis_server, anvil.url, product) for _ in range(3)]
    holders = start_on_each_wallet(envs[:3], redis_client, spawn)
    anvil.set_automine(False)  # what is sent stays in flight
    entity_ids = [webapp.apply() for _ in range(30)]
    wait_until(lambda: landed(redis_client, entity_ids) == 30, what="all 30 recorded")
    wallet = next(w for w in WALLETS[:3] if redis_client.zcard(f"{w.prefix}:inflight"))
    in_flight = redis_client.zcard(f"{wallet.prefix}:inflight")
    stopped = holders[wallet.index]
    stopped.send_signal(signal.SIGTERM)
    assert stopped.wait(20) == 0
    assert holder_pid(redis_client, wallet.lease_key) == 0, "the stopped replica gave its lease up"
    assert redis_client.zcard(f"{wallet.prefix}:inflight") == in_flight

    mine_until_purged(anvil, redis_client, entity_ids)  # the stopped replica's too
    survivors = {p.pid for p in holders if p is not stopped}
    assert holder_pid(redis_client, wallet.lease_key) in survivors
    assert redis_client.zcard(f"{wallet.prefix}:inflight") == 0
    assert wallet_nonce(anvil, wallet.address) == in_flight
    assert product.application_count() == 30 and sum(nonces(anvil, 3)) == 30
    assert dead_letters(redis_client) == {}


def wallets_in_metrics(port: int) -> set[str]:
    """The wallets that the wallet-labelled series of a process's /metrics name."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        sample.labels["wallet"]
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if "wallet" in sample.labels
    }


def test_a_dry_wallet_leaves_the_queue_to_the_others_and_says_why(
    redis_server, anvil, product, webapp, redis_client, spawn
):
    dry = WALLETS[1]
    anvil.set_balance(dry.address, 5 * 10**16)
    envs = [
        pool_env(
            redis_server,
            anvil.url,
            product,
            PROCESSOR_MIN_BALANCE="0.1 ether",
            PROCESSOR_ALERT_BALANCE="0.1 ether",
        )
        for _ in range(3)
    ]
    processes = [spawn(env) for env in envs]
    wait_until(
        lambda: all(holder_pid(redis_client, w.lease_key) for w in WALLETS[:3]),
        what="every wallet held",
    )
    entity_ids = [webapp.apply() for _ in range(60)]
    wait_until(
        lambda: purged(redis_client, entity_ids), timeout=60, what="all 60 confirmed and purged"
    )
    sent = nonces(anvil, 3)
    assert sent[1] == 0 and sent[0] + sent[2] == 60, sent
    assert product.application_count() == 60 and dead_letters(redis_client) == {}

    pid = holder_pid(redis_client, dry.lease_key)
    (port,) = [int(env["PORT"]) for p, env in zip(processes, envs) if p.pid == pid]
    status, body = http_json(port, "/api/monitor/readiness")
    assert status == 500, body
    assert dry.address in body["sending"] and "PROCESSOR_MIN_BALANCE" in body["sending"], body


def test_an_application_recorded_by_one_wallet_is_not_sent_by_another(
    redis_server, anvil, product, webapp, redis_client, spawn
):
    env = pool_env(
        redis_server, anvil.url, product, PROCESSOR_WALLETS="2", PROCESSOR_LEASE_TTL="10000"
    )
    anvil.set_automine(False)
    a = spawn(env)
    wait_until(
        lambda: holder_pid(redis_client, WALLETS[0].lease_key) == a.pid, what="A on wallet 0"
    )
    entity_id = webapp.apply()
    wait_until(lambda: redis_client.exists(f"{STREAM}:tx:{entity_id}"), what="recorded")
    assert redis_client.get(owner_key(STREAM, entity_id)) == WALLETS[0].address
    os.kill(a.pid, signal.SIGKILL)  # its transaction stays in flight, its lease until the TTL
    a.wait(10)

    # The application is enqueued again while its transaction is in flight and delivered to
    # the second wallet's consumer.
    redis_client.xadd(STREAM, {"entityId": entity_id})
    delivered = redis_client.xreadgroup(
        "depeg-backend-processor", WALLETS[1].consumer, {STREAM: ">"}
    )
    assert delivered and delivered[0][1][0][1] == {"entityId": entity_id}
    b = spawn(
        pool_env(
            redis_server, anvil.url, product, PROCESSOR_WALLETS="2", PROCESSOR_LEASE_TTL="10000"
        )
    )
    wait_until(
        lambda: holder_pid(redis_client, WALLETS[1].lease_key) == b.pid, what="B on wallet 1"
    )
    wait_until(
        lambda: redis_client.xpending(STREAM, "depeg-backend-processor")["pending"] == 0,
        what="the second delivery acknowledged",
    )
    assert wallet_nonce(anvil, WALLETS[1].address, "pending") == 0, "wallet 1 signed nothing"

    # Once A's lease ran out, wallet 0 is taken again and its transaction settled: by the
    # restarted replica, or by B, which leaves its idle wallet for one in flight that no
    # process holds (whichever sees the lease free first).
    restarted = spawn(env)
    wait_until(
        lambda: holder_pid(redis_client, WALLETS[0].lease_key) in (restarted.pid, b.pid),
        timeout=30,
        what="wallet 0 taken again",
    )
    anvil.set_automine(True)
    anvil.mine(1)
    wait_until(lambda: not application(redis_client, entity_id), timeout=30, what="purged")
    assert product.application_count() == 1
    assert nonces(anvil, 2) == [1, 0], "one transaction, from the wallet that owned it"
    assert dead_letters(redis_client) == {}


def test_a_single_wallet_upgrade_lands_what_was_in_flight_once(
    redis_server, anvil, product, webapp, redis_client, spawn
):
    """Redis data as a single-wallet processor before the pool left it: records and the
    in-flight set under the stream's own prefix, no owner marks."""
    anvil.set_automine(False)
    env = service_env(redis_server.url, anvil.url, product.address)
    before = spawn(env)
    entity_ids = [webapp.apply() for _ in range(5)]
    wait_until(lambda: redis_client.zcard(f"{STREAM}:inflight") == 5, what="5 in flight")
    before.send_signal(signal.SIGTERM)
    assert before.wait(20) == 0
    redis_client.delete(*redis_client.keys(f"{STREAM}:owner:*"))
    hashes = {e: application(redis_client, e)["transactionHash"] for e in entity_ids}

    after = spawn(env | {"PROCESSOR_WALLETS": "1"})
    wait_until(
        lambda: holder_pid(redis_client, WALLETS[0].lease_key) == after.pid, what="lease taken"
    )
    anvil.set_automine(True)
    anvil.mine(1)
    wait_until(lambda: purged(redis_client, entity_ids), timeout=60, what="all purged")
    assert product.application_count() == 5 and wallet_nonce(anvil) == 5
    assert all(
        receipt(anvil, h) and int(receipt(anvil, h)["status"], 16) == 1 for h in hashes.values()
    ), "the very transactions recorded before the upgrade"
    assert dead_letters(redis_client) == {}


def test_a_wallet_with_a_nonce_gap_holds_and_another_carries_the_queue(
    redis_server, anvil, product, webapp, redis_client, spawn
):
    env = pool_env(redis_server, anvil.url, product, PROCESSOR_WALLETS="2", TX_STUCK_TIMEOUT="1000")
    anvil.set_automine(False)
    first = spawn(env)
    wait_until(
        lambda: holder_pid(redis_client, WALLETS[0].lease_key) == first.pid, what="on wallet 0"
    )
    lost = webapp.apply()
    record = wait_until(lambda: redis_client.hgetall(f"{STREAM}:tx:{lost}"), what="recorded")
    # (the record is written ahead of the broadcast: dropped before it, the transaction
    # would reach the node afterwards and fill the gap)
    wait_until(lambda: anvil.rpc("eth_getTransactionByHash", record["txHash"]), what="broadcast")
    # Its transaction and its record vanish (node and Redis both lost them): nonce 0 of
    # wallet 0 is now used by nothing, and what wallet 0 sends next waits behind it.
    anvil.rpc("anvil_dropTransaction", record["txHash"])
    redis_client.delete(f"{STREAM}:tx:{lost}")
    redis_client.zrem(f"{STREAM}:inflight", lost)
    behind = webapp.apply()
    wait_until(lambda: redis_client.exists(f"{STREAM}:tx:{behind}"), what="sent behind the gap")
    port = int(env["PORT"])
    status, body = wait_until(
        lambda: (
            (r := http_json(port, "/api/monitor/readiness"))
            and "nonce problem" in r[1].get("sending", "")
            and r
        ),
        what="readiness naming the nonce problem",
    )
    assert status == 500 and WALLETS[0].address in body["sending"], body

    second = spawn(pool_env(redis_server, anvil.url, product, PROCESSOR_WALLETS="2"))
    wait_until(
        lambda: holder_pid(redis_client, WALLETS[1].lease_key) == second.pid, what="on wallet 1"
    )
    anvil.set_automine(True)
    anvil.mine(1)
    later = [webapp.apply() for _ in range(5)]
    wait_until(lambda: purged(redis_client, later), timeout=30, what="the later ones purged")
    assert wallet_nonce(anvil, WALLETS[1].address) == 5 and wallet_nonce(anvil) == 0
    assert dead_letters(redis_client) == {}


def pool_slots(anvil, wallets) -> list[int]:
    """Each wallet's transactions in the node's pool now (pending count less mined count: the
    slots geth's txpool.accountslots limits). Pending is asked first, so a block mined between
    the two questions can only make a figure smaller."""
    pending = nonces_at(anvil, wallets, "pending")
    return [p - mined for p, mined in zip(pending, nonces_at(anvil, wallets, "latest"))]


def nonces_at(anvil, wallets, block: str) -> list[int]:
    return [wallet_nonce(anvil, w.address, block) for w in wallets]


def test_a_burst_is_spread_over_the_pool_with_no_wallet_above_its_cap_in_flight(
    redis_server, anvil, product, webapp, redis_client, spawn
):
    """300 applications queued at once on three wallets, a block a second: each wallet keeps
    at most PROCESSOR_MAX_IN_FLIGHT (set to 16, geth's account slots: the limit that follows
    the blocks stays under it) transactions unmined, so the other wallets take what one cannot
    (without the cap two wallets took them all, 180 and 120)."""
    cap = 16
    envs = [
        pool_env(redis_server, anvil.url, product) | {"PROCESSOR_MAX_IN_FLIGHT": str(cap)}
        for _ in range(3)
    ]
    ports = [int(env["PORT"]) for env in envs]
    start_on_each_wallet(envs, redis_client, spawn)
    anvil.set_automine(False)
    anvil.rpc("evm_setIntervalMining", 1)  # what is sent stays in flight up to a second
    applications = [webapp.application() for _ in range(300)]
    entity_ids = [webapp.submit(fields) for fields in applications]
    peaks = [0, 0, 0]
    held_at_cap: set[int] = set()

    def sampled_until_purged() -> bool:
        for i, slots in enumerate(pool_slots(anvil, WALLETS[:3])):
            peaks[i] = max(peaks[i], slots)
        for i, port in enumerate(ports):
            status, body = http_json(port, "/api/monitor/readiness")
            assert status == 200, f"the cap is back-pressure, not a failure: {body}"
            if "PROCESSOR_MAX_IN_FLIGHT" in body.get("inFlight", ""):
                held_at_cap.add(i)
        return purged(redis_client, entity_ids)

    wait_until(sampled_until_purged, timeout=120, what="all 300 confirmed and purged")
    sent = nonces(anvil, 3)
    assert all(0 < peak <= cap for peak in peaks), f"in the node's pool at most: {peaks}"
    assert max(peaks) == cap, f"the cap was reached: {peaks}"
    assert held_at_cap, "readiness showed a wallet at its cap"
    assert sum(sent) == 300 and all(n > 0 for n in sent), f"every wallet sent: {sent}"
    assert product.application_count() == 300
    assert len(product.applications_created()) == 300, "each application once"
    assert dead_letters(redis_client) == {}
