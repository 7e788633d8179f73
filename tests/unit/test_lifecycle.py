"""A transaction's life in one wallet's receipt watcher, against a fake chain: sent, mined,
confirmed and purged; reverted and set aside; dropped and resent; stuck and replaced;
reorganised away and waiting again. Each round is `Wallet.watch_now()`, with the time set
by the test."""

from __future__ import annotations

import dataclasses
import logging

import pytest
from eth_utils import keccak

from depeg_processor import errors
from depeg_processor.chain.product import ProductCalls
from depeg_processor.clock import Clock
from depeg_processor.inbound.application import parse_application
from depeg_processor.wallet.context import WalletConfig
from depeg_processor.wallet.records import TxRecord

from .helpers import CHAIN_ID, signed_fields
from .wallet_harness import PRODUCT, build_wallet

ENTITY_ID = "app-1"
NOW = 1795830700.0


def tx_hash(n: int) -> str:
    return "0x" + f"{n:064x}"


class FakeChain:
    """The node as the wallet asks it (`batch`, `call`): canonical blocks of receipts, a pool
    of pending transactions (a raw transaction sent joins it at its hash, the keccak of its
    bytes), and the wallet's mined nonce."""

    def __init__(self, height: int = 10) -> None:
        self._forks = 0  # how often blocks were replaced: part of every later block's hash
        self.blocks: list[dict] = [self._block(n, []) for n in range(height + 1)]
        self.pool: dict[str, str] = {}  # pending hash -> raw
        self.nonce = 0  # the wallet's mined transactions
        self.sent: list[str] = []  # raw transactions sent to it
        self.call_error: Exception | None = None  # what simulating the call raises
        self.logs: list[dict] = []  # the product's logs, as eth_getLogs answers them
        self.transactions: dict[str, dict] = {}  # what eth_getTransactionByHash says of these

    def _block(self, number: int, receipts: list[dict]) -> dict:
        block_hash = "0x" + f"{number:032x}{self._forks:032x}"
        for receipt in receipts:
            receipt.update(blockNumber=hex(number), blockHash=block_hash)
        return {"number": number, "hash": block_hash, "receipts": receipts}

    @property
    def head(self) -> int:
        return len(self.blocks) - 1

    def mine(self, *hashes: str, status: int = 1) -> int:
        """A new block with these transactions (taken from the pool); returns its number."""
        receipts = []
        for h in hashes:
            self.pool.pop(h, None)
            receipts.append(
                {
                    "transactionHash": h,
                    "status": hex(status),
                    "gasUsed": hex(21_000),
                    "effectiveGasPrice": hex(10**9),
                }
            )
            self.nonce += 1
        self.blocks.append(self._block(len(self.blocks), receipts))
        return self.head

    def reorg(self, depth: int) -> None:
        """The last `depth` blocks are replaced by empty ones of other hashes; their
        transactions are pending again."""
        self._forks += 1
        for number in range(self.head - depth + 1, self.head + 1):
            for receipt in self.blocks[number]["receipts"]:
                self.pool[receipt["transactionHash"]] = "0x"
                self.nonce -= 1
            self.blocks[number] = self._block(number, [])

    def _receipt(self, h: str) -> dict | None:
        for block in self.blocks:
            for receipt in block["receipts"]:
                if receipt["transactionHash"] == h:
                    return dict(receipt)
        return None

    def _answer(self, method: str, params: list) -> object:
        if method == "eth_getBlockByNumber":
            number = self.head if params[0] == "latest" else int(params[0], 16)
            if number > self.head:
                return None
            block = self.blocks[number]
            return {"number": hex(number), "hash": block["hash"], "timestamp": hex(number * 2)}
        if method == "eth_getBalance":
            return hex(10**18)
        if method == "eth_getTransactionCount":
            return hex(self.nonce)
        if method == "eth_getBlockReceipts":
            return [dict(r) for r in self.blocks[int(params[0], 16)]["receipts"]]
        if method == "eth_getTransactionReceipt":
            return self._receipt(params[0])
        if method == "eth_getTransactionByHash":
            receipt = self._receipt(params[0])
            if receipt is not None:
                return {"hash": params[0], "blockNumber": receipt["blockNumber"]}
            return {"hash": params[0], "blockNumber": None} if params[0] in self.pool else None
        if method == "eth_sendRawTransaction":  # the node keeps it in its pool, by its hash
            raw = params[0]
            self.sent.append(raw)
            sent_hash = "0x" + keccak(bytes.fromhex(raw.removeprefix("0x"))).hex()
            self.pool[sent_hash] = raw
            return sent_hash
        raise AssertionError(f"unexpected call {method}")

    def batch(self, calls) -> list:
        return [self._answer(method, params) for method, params in calls]

    def request(self, method: str, params: list) -> object:
        if method == "eth_getLogs":
            low, high = int(params[0]["fromBlock"], 16), int(params[0]["toBlock"], 16)
            return [e for e in self.logs if low <= int(e["blockNumber"], 16) <= high]
        if method == "eth_getTransactionByHash" and params[0] in self.transactions:
            return self.transactions[params[0]]
        return self._answer(method, params)

    def call(self, tx: dict) -> str:
        if self.call_error is not None:
            raise self.call_error
        return "0x"


class World:
    """One wallet built whole over the fake chain; the test sets the time and drives the
    lease as its keeper thread would."""

    def __init__(self, client, *, min_confirmations: int = 2) -> None:
        self.redis = client
        self.now, self.mono = [NOW], [100.0]
        self.chain = FakeChain()
        self.wallet = build_wallet(
            client,
            chain=self.chain,
            clock=Clock(now=lambda: self.now[0], monotonic=lambda: self.mono[0]),
            config=WalletConfig(
                chain_id=CHAIN_ID,
                product=PRODUCT,
                min_confirmations=min_confirmations,
                poll_interval=1.0,
                stuck_blocks=2,
                stuck_seconds=3600.0,
            ),
        )
        self.records, self.queue = self.wallet.records, self.wallet.queue
        assert self.wallet.keeper.run_once(), "this process holds the wallet's lease"

    def send(self, n: int = 1, *, pending: bool = True, data: str = "0x1234") -> TxRecord:
        """An application whose transaction was recorded and broadcast (or lost on the way)."""
        record = TxRecord(
            entity_id=ENTITY_ID,
            tx_hash=tx_hash(n),
            nonce=0,
            raw="0x02" + f"{n:02x}",
            gas=100_000,
            max_fee_per_gas=10**9,
            signed_at=self.now[0],
            data=data,
        )
        self.redis.hset(
            f"PendingApplication:{ENTITY_ID}",
            mapping={"entityId": ENTITY_ID, "transactionHash": record.tx_hash},
        )
        self.records.put(record)
        if pending:
            self.chain.pool[record.tx_hash] = record.raw
        return record

    def round(self) -> int:
        """A second later: the keeper renews the lease (or finds it taken), then one round
        of the receipt watcher that asks the node."""
        self.mono[0] += 1.0
        self.wallet.keeper.run_once()
        return self.wallet.watch_now()

    def lose_lease(self) -> None:
        """Another process takes the lease (this one's ran out unnoticed)."""
        self.redis.set(self.wallet.lease.key, "the-next-holder")
        assert not self.wallet.keeper.run_once() and not self.wallet.take_over()

    def regain_lease(self) -> None:
        """The other process stops and gives the lease up: the next round's renewal takes it."""
        self.redis.delete(self.wallet.lease.key)

    def tracked(self):
        return self.wallet.in_flight.get(ENTITY_ID)


@pytest.fixture
def world(fake_redis) -> World:
    return World(fake_redis)


def test_sent_then_mined_then_confirmed_and_purged(world: World) -> None:
    record = world.send()
    assert world.round() == 0
    assert world.tracked().mined is None and world.tracked().waiting is not None

    block = world.chain.mine(record.tx_hash)
    assert world.round() == 0  # one confirmation of two
    assert world.tracked().mined.block == block and world.tracked().waiting is None

    world.chain.mine()
    assert world.round() == 1
    assert world.records.get(ENTITY_ID) is None
    assert world.records.inflight_nonces() == {}
    assert not world.redis.exists(f"PendingApplication:{ENTITY_ID}")
    assert world.records.completed_as(ENTITY_ID) == record.tx_hash
    assert len(world.wallet.in_flight) == 0


def test_reverted_is_settled_with_the_simulated_reason(world: World) -> None:
    record = world.send()
    world.round()
    world.chain.mine(record.tx_hash, status=0)
    world.chain.mine()
    world.chain.call_error = errors.PermanentError("coverage too high", kind="revert")

    assert world.round() == 1
    [(_id, dead)] = world.queue.dead_letters.list()
    assert dead["entityId"] == ENTITY_ID
    assert record.tx_hash in dead["reason"] and "coverage too high" in dead["reason"]
    assert world.records.get(ENTITY_ID) is None
    assert len(world.wallet.in_flight) == 0


def signed_call() -> tuple[str, bytes]:
    """The calldata of a signed application's call, and its signature."""
    app = parse_application(ENTITY_ID, signed_fields())
    return ProductCalls().apply(app.contract_args()), app.signature


def test_a_confirmed_transactions_signature_stays_marked_with_the_mined_hash(world) -> None:
    data, signature = signed_call()
    record = world.send(data=data)
    world.round()
    world.chain.mine(record.tx_hash)
    world.chain.mine()
    assert world.round() == 1
    [mark] = world.records.marks.get_many([signature])
    assert (mark.entity_id, mark.tx_hash, mark.confirmed) == (ENTITY_ID, record.tx_hash, True)


@pytest.mark.parametrize("simulated", ["a revert", "success now"])
def test_a_reverted_transactions_signature_is_released(world: World, simulated) -> None:
    """Set aside (reverts again) or sent back (would succeed now): the signature was never
    used, so a resubmission under another id is not refused."""
    data, signature = signed_call()
    record = world.send(data=data)
    world.round()
    world.chain.mine(record.tx_hash, status=0)
    world.chain.mine()
    if simulated == "a revert":
        world.chain.call_error = errors.PermanentError("ERROR:DP-013:BUNDLE_NOT_ACTIVE")
    assert world.round() == 1
    assert world.records.marks.get_many([signature]) == [None]


def test_dropped_is_resent_with_its_stored_bytes(world: World) -> None:
    record = world.send(pending=False)  # the node never kept it
    world.round()
    world.chain.mine()
    world.round()
    assert world.chain.sent == []  # one block: not yet looked up

    world.chain.mine()
    world.round()
    assert world.chain.sent == [record.raw]
    assert world.records.get(ENTITY_ID) == record  # still in flight, same transaction
    assert world.tracked().waiting.checked


def test_stuck_is_replaced_and_the_application_points_at_the_new_hash(world: World) -> None:
    record = world.send()
    world.round()
    world.chain.mine()
    world.chain.mine()
    world.round()
    new = world.records.get(ENTITY_ID)
    assert world.chain.sent == [new.raw], "replaced once, by one new transaction"
    assert new.tx_hash != record.tx_hash and new.previous_hashes == (record.tx_hash,)
    assert new.nonce == record.nonce and new.max_fee_per_gas > record.max_fee_per_gas
    assert new.tx_hash in world.chain.pool, "the node took the replacement"
    assert world.redis.hget(f"PendingApplication:{ENTITY_ID}", "transactionHash") == new.tx_hash
    assert world.tracked().record == new

    world.chain.mine(new.tx_hash)
    world.chain.mine()
    assert world.round() == 1
    assert world.records.completed_as(ENTITY_ID) == new.tx_hash


def test_a_reorganised_block_puts_the_transaction_back_to_waiting(fake_redis) -> None:
    world = World(fake_redis, min_confirmations=3)
    record = world.send()
    world.round()
    mined_in = world.chain.mine(record.tx_hash)
    world.round()
    assert world.tracked().mined.block == mined_in

    world.chain.mine()
    world.chain.reorg(2)  # the including block and the next are replaced
    world.chain.mine()  # three blocks on: the purge would be due
    assert world.round() == 0
    assert world.tracked().mined is None and world.tracked().waiting is not None
    assert world.records.get(ENTITY_ID) == record

    again = world.chain.mine(record.tx_hash)
    world.round()
    assert world.tracked().mined.block == again
    world.chain.mine()
    world.chain.mine()
    assert world.round() == 1
    assert world.records.completed_as(ENTITY_ID) == record.tx_hash


def test_after_the_lease_is_regained_the_records_are_read_again(world: World) -> None:
    record = world.send()
    world.round()
    world.lose_lease()
    assert world.round() == 0  # a standby: another process holds the lease and replaces
    other = dataclasses.replace(record, tx_hash=tx_hash(7), previous_hashes=record.hashes)
    world.records.put(other)  # same nonce: only a fresh read can tell

    world.regain_lease()
    world.round()
    assert world.wallet.adopted == world.wallet.lease.generation == 2
    assert world.tracked().record == other
    world.chain.mine(other.tx_hash)
    world.chain.mine()
    assert world.round() == 1
    assert world.records.completed_as(ENTITY_ID) == other.tx_hash


def test_a_lost_lease_is_said_once_not_every_round(world: World, caplog) -> None:
    """The lease gone while this process still thinks it holds it (Redis rolled back, or it
    expired unnoticed): each round's refused replacement of a stuck transaction says so once,
    then quietly until a round succeeds again."""
    world.send()
    world.round()
    world.redis.set(world.wallet.lease.key, "the-next-holder")  # the keeper has not looked
    with caplog.at_level(logging.DEBUG, logger="depeg_processor.wallet.watch"):
        for _ in range(5):
            world.chain.mine()
            world.chain.mine()
            world.mono[0] += 1.0
            world.wallet.watch_now()
    said = [r for r in caplog.records if "receipt watcher" in r.getMessage()]
    assert [r.levelno for r in said] == [logging.WARNING] + [logging.DEBUG] * 4
    assert world.chain.sent == [], "nothing replaced without the lease"
