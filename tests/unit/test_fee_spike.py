"""A base fee above MAX_FEE_PER_GAS: the node refuses the first send below the base fee, and
the receipt watcher's very next round (not TX_STUCK_BLOCKS later) finds the cap leaves no room
and reports the transaction stuck, which fails readiness and holds the consumer. Once the base
fee falls, the same transaction is resent, mined, and readiness recovers."""

from __future__ import annotations

import pytest
import rlp
from prometheus_client import CollectorRegistry

from depeg_processor import errors
from depeg_processor.clock import Clock
from depeg_processor.fees import Block, FeePolicy
from depeg_processor.metrics import Metrics
from depeg_processor.state import SharedState

from .helpers import ENTITY_ID, signed_fields
from .test_lifecycle import FakeChain
from .test_monitor import get
from .wallet_harness import ETHER, GWEI, STREAM, build_consumer, build_wallet

CAP = 30 * GWEI


def max_fee(raw: str) -> int:
    """The max fee per gas of a signed EIP-1559 transaction (0x02 || rlp([..., max fee, ...]))."""
    fields = rlp.decode(bytes.fromhex(raw.removeprefix("0x"))[1:])
    return int.from_bytes(fields[3], "big")


class SpikedChain(FakeChain):
    """The fake chain with a base fee: a raw transaction whose max fee is under it is refused
    as a node refuses it; simulations succeed; the balance is ample."""

    def __init__(self, base_fee: int) -> None:
        super().__init__()
        self.base_fee = base_fee
        self.refused: list[str] = []

    def balance(self, address: str) -> int:
        return 2 * ETHER

    def _answer(self, method: str, params: list) -> object:
        if method == "eth_estimateGas":
            return hex(100_000)
        if method == "eth_call":
            return "0x"
        if method == "eth_sendRawTransaction" and max_fee(params[0]) < self.base_fee:
            self.refused.append(params[0])
            return errors.FeeTooLow("max fee per gas less than block base fee")
        return super()._answer(method, params)


class Spike:
    """A wallet and its consumer over the spiked chain; the time moves only when told."""

    def __init__(self, client) -> None:
        self.mono = [100.0]
        self.chain = SpikedChain(base_fee=40 * GWEI)
        clock = Clock(now=lambda: 1795830700.0, monotonic=lambda: self.mono[0])
        self.state = SharedState(monotonic=clock.monotonic)
        metrics = Metrics(CollectorRegistry())
        fees = FeePolicy(
            base_fee=lambda: Block(number=self.chain.head, base_fee=self.chain.base_fee),
            suggested_tip=lambda: GWEI,
            cap=CAP,
            tip=GWEI,
        )
        self.wallet = build_wallet(
            client, chain=self.chain, clock=clock, fees=fees, state=self.state, metrics=metrics
        )
        assert self.wallet.keeper.run_once(), "this process holds the wallet's lease"
        self.consumer = build_consumer(self.wallet, clock=clock, state=self.state, metrics=metrics)
        self.redis = client

    def readiness(self) -> tuple[int, dict]:
        return get(self.state, "/api/monitor/readiness")


@pytest.fixture
def spike(fake_redis):
    world = Spike(fake_redis)
    yield world
    world.wallet.close()


def test_a_first_send_refused_above_the_cap_is_stuck_after_one_watcher_round(spike) -> None:
    spike.wallet.watch()  # the watcher's first round: the head is not due again for a while
    spike.redis.hset(f"PendingApplication:{ENTITY_ID}", mapping=signed_fields())
    spike.redis.xadd(STREAM, {"entityId": ENTITY_ID})
    assert spike.consumer.run_once() == 1
    spike.wallet.finish()
    assert len(spike.chain.refused) == 1, "the first send was refused below the base fee"
    assert spike.readiness()[0] == 200, "nothing is known to be stuck yet"

    spike.wallet.watch()  # one round, at the same instant: no block, no TX_STUCK_BLOCKS passed
    stuck = spike.wallet.last_seen().stuck
    assert stuck and "MAX_FEE_PER_GAS" in stuck and str(CAP) in stuck, stuck
    status, body = spike.readiness()
    assert status == 500 and "MAX_FEE_PER_GAS" in body["transactions"], body
    record = spike.wallet.records.get(ENTITY_ID)
    assert record.max_fee_per_gas == CAP, "priced at the cap, not beyond"
    assert spike.chain.pool == {}, "the node holds none of it"

    spike.redis.xadd(STREAM, {"entityId": "another"})
    assert spike.consumer.run_once() == 0, "the wallet takes no new entries meanwhile"
    assert spike.wallet.queue.backlog().lag == 1


def test_once_the_base_fee_falls_the_stuck_transaction_is_resent_mined_and_ready_again(
    spike,
) -> None:
    spike.wallet.watch()
    spike.redis.hset(f"PendingApplication:{ENTITY_ID}", mapping=signed_fields())
    spike.redis.xadd(STREAM, {"entityId": ENTITY_ID})
    spike.consumer.run_once()
    spike.wallet.finish()
    spike.wallet.watch()
    assert spike.readiness()[0] == 500

    spike.chain.base_fee = 5 * GWEI
    record = spike.wallet.records.get(ENTITY_ID)
    while record.tx_hash not in spike.chain.pool:  # looked up again after TX_STUCK_BLOCKS
        spike.chain.mine()
        spike.mono[0] += 1.0
        spike.wallet.watch()
        assert spike.chain.head < 20, "never resent"
    spike.chain.mine(record.tx_hash)
    spike.chain.mine()
    spike.mono[0] += 1.0
    assert spike.wallet.watch() == 1, "confirmed and purged"
    assert spike.wallet.last_seen().stuck is None
    assert spike.readiness()[0] == 200
