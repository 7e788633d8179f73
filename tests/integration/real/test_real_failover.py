"""Redis forgets, the chain remembers (issue 22), after a failover: a primary and its
asynchronous replica behind one endpoint (devnet.forward, as a hosted Redis's), the replica
cut off from the primary once it has the applications, so that it misses every write of the
processor (its consumer group, lease, write-ahead records, `transactionHash`es,
acknowledgements, signature marks). The primary dies with four of the eight applications'
transactions in the node's pool (the in-flight cap is four); the replica is promoted
(`REPLICAOF NO ONE`) and the endpoint, the processor's REDIS_URL, moves to it. The processor
holds while the node has transactions no record explains; once they are mined each of those
applications finds its signature used by the pool's transaction and is completed; the other
four are sent: every policy once, no paid revert, no dead letter, the processor up.
"""

from __future__ import annotations

import os
import signal

import pytest
import redis

from depeg_processor.inbound.untrusted import REDIS_DECODING
from devnet.forward import TcpForwarder
from devnet.nodes import RedisServer
from tests.conftest import wait_until
from tests.integration.conftest import service_env, wallet_nonce
from tests.integration.real.test_real_rollback import check_recovered, count, sent, settle_all
from tests.integration.real_replicas import STREAM, WALLET_ETH, WALLETS, submit_together

pytestmark = pytest.mark.integration
APPLICATIONS = 8
CAP = 4
WALLET = WALLETS[0]


def replica_of(server: RedisServer, link: TcpForwarder) -> RedisServer:
    """A replica of `server` reached through `link`, started and in sync."""
    replica = RedisServer(extra_args=("--replicaof", "127.0.0.1", str(link.port))).start()
    client = redis.Redis(port=replica.port, **REDIS_DECODING)
    wait_until(
        lambda: client.info("replication").get("master_link_status") == "up",
        timeout=30,
        what="the replica in sync",
    )
    client.close()
    return replica


def test_a_replica_promoted_after_it_missed_the_last_writes(real_product, spawn, tmp_path):
    anvil = real_product.anvil
    anvil.set_balance(WALLET.address, WALLET_ETH)
    with (
        RedisServer() as primary,
        TcpForwarder(primary.port) as link,
        TcpForwarder(primary.port) as endpoint,
    ):
        replica = replica_of(primary, link)
        try:
            client = redis.Redis.from_url(endpoint.url, **REDIS_DECODING)
            webapp = real_product.webapp(client, real_product.new_bundle(APPLICATIONS))
            applications = {f"failover-{n}": webapp.application() for n in range(APPLICATIONS)}
            holders = {f["policyHolder"].lower() for f in applications.values()}
            submit_together(client, applications)
            assert client.wait(1, 10_000) == 1, "the replica has the applications"
            link.cut()  # from here on the replica misses what the primary is told
            start_block = anvil.block_number() + 1
            first_nonce = wallet_nonce(anvil, WALLET.address)
            log = tmp_path / "processor.log"
            with real_product.interval_mining(None):  # no blocks: what is sent stays pending
                env = service_env(
                    endpoint.url,
                    anvil.url,
                    real_product.address,
                    LOG_LEVEL="INFO",
                    PROCESSOR_MAX_IN_FLIGHT=str(CAP),
                )
                env["PYTHONPATH"] = os.getcwd()
                process = spawn(env, log)
                wait_until(
                    lambda: (
                        wallet_nonce(anvil, WALLET.address, "pending") == first_nonce + CAP
                        and sent(client, applications) == CAP
                    ),
                    timeout=60,
                    what=f"{CAP} transactions in the node's pool",
                )
                assert primary.process is not None
                primary.process.send_signal(signal.SIGKILL)  # the primary dies
                primary.process.wait(10)
                promoted = redis.Redis(port=replica.port, **REDIS_DECODING)
                promoted.replicaof("NO", "ONE")
                assert promoted.info("replication")["role"] == "master"
                endpoint.point_at(replica.port)  # the endpoint moves to the promoted replica
                assert sent(client, applications) == 0, "the replica missed the hashes"
                assert client.xlen(STREAM) == APPLICATIONS
                wait_until(
                    lambda: (
                        count(log, "no record explains") >= 1
                        or count(log, "holding the wallet's lease") >= 2
                    ),
                    timeout=60,
                    what="the processor holding after the failover",
                )
                assert wallet_nonce(anvil, WALLET.address) == first_nonce, "nothing mined yet"
                settle_all(anvil, client, applications, process)
            text = log.read_text()
            completed = check_recovered(real_product, client, holders, start_block, text)
            client.close()
            promoted.close()
        finally:
            replica.stop()
    assert completed == CAP, completed
    assert text.count("; purged") == APPLICATIONS, "each one purged as confirmed"
