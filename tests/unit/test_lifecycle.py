"""A transaction's life in the receipt watcher, against a fake chain: sent, mined, confirmed and
purged; reverted and set aside; dropped and resent; stuck and replaced; reorganised away and
waiting again. Each round is `run_once(ask_node=True)`, with the time set by the test."""

from __future__ import annotations

import dataclasses
import threading
import types

import pytest

from depeg_processor import errors
from depeg_processor.clock import Clock
from depeg_processor.inbound.stream import StreamQueue
from depeg_processor.state import SharedState
from depeg_processor.wallet.records import TxRecord, TxRecords
from depeg_processor.watcher import ReceiptWatcher, WatcherConfig

STREAM = "application:signatures"
WALLET = "0x" + "ab" * 20
PRODUCT = "0x" + "cd" * 20
ENTITY_ID = "app-1"
NOW = 1795830700.0


def tx_hash(n: int) -> str:
    return "0x" + f"{n:064x}"


class FakeChain:
    """The node as the watcher asks it (`batch`, `call`): canonical blocks of receipts, a pool
    of pending transactions, and the wallet's mined nonce."""

    def __init__(self, height: int = 10) -> None:
        self._forks = 0  # how often blocks were replaced: part of every later block's hash
        self.blocks: list[dict] = [self._block(n, []) for n in range(height + 1)]
        self.pool: dict[str, str] = {}  # pending hash -> raw
        self.nonce = 0  # the wallet's mined transactions
        self.sent: list[str] = []  # raw transactions sent to it
        self.call_error: Exception | None = None  # what simulating the call raises

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
        if method == "eth_sendRawTransaction":
            self.sent.append(params[0])
            return None
        raise AssertionError(f"unexpected call {method}")

    def batch(self, calls) -> list:
        return [self._answer(method, params) for method, params in calls]

    def call(self, tx: dict) -> str:
        if self.call_error is not None:
            raise self.call_error
        return "0x"


class StubSender:
    """What the watcher uses of the sender; a replacement is recorded and put in the pool as
    Sender.replace_many does, at a new hash."""

    product = PRODUCT

    def __init__(self, chain: FakeChain, records: TxRecords) -> None:
        self.chain, self.records = chain, records
        self.replaced: list[list[str]] = []
        self.fees = types.SimpleNamespace(cap=100 * 10**9)

    def observe_wallet(self, *, mined_nonce: int, balance: int) -> None:
        pass

    def replace_many(self, records: list[TxRecord]) -> list[TxRecord]:
        self.replaced.append([r.tx_hash for r in records])
        out = []
        for record in records:
            new = dataclasses.replace(
                record,
                tx_hash=tx_hash(int(record.tx_hash, 16) + 1000),
                max_fee_per_gas=record.max_fee_per_gas * 2,
                previous_hashes=record.hashes,
            )
            self.records.put(new)
            self.chain.pool[new.tx_hash] = new.raw
            out.append(new)
        return out


class World:
    def __init__(self, client, *, min_confirmations: int = 2) -> None:
        self.redis = client
        self.now, self.mono = [NOW], [100.0]
        self.sending = True  # this process holds the wallet's lease
        self.chain = FakeChain()
        self.records = TxRecords(client, prefix=STREAM + ":w")
        self.queue = StreamQueue(
            client, stream=STREAM, group="g", consumer="c", dead_letter_key=STREAM + ":dead"
        )
        self.queue.ensure_group()
        self.sender = StubSender(self.chain, self.records)
        self.state = SharedState(monotonic=lambda: self.mono[0])
        self.watcher = ReceiptWatcher(
            config=WatcherConfig(
                min_confirmations=min_confirmations,
                poll_interval=1.0,
                stuck_blocks=2,
                stuck_seconds=3600.0,
            ),
            clock=Clock(now=lambda: self.now[0], monotonic=lambda: self.mono[0]),
            chain=self.chain,
            records=self.records,
            queue=self.queue,
            sender=self.sender,
            redis_client=client,
            state=self.state,
            stop=threading.Event(),
            address=WALLET,
            may_send=lambda: self.sending,
        )

    def send(self, n: int = 1, *, pending: bool = True) -> TxRecord:
        """An application whose transaction was recorded and broadcast (or lost on the way)."""
        record = TxRecord(
            entity_id=ENTITY_ID,
            tx_hash=tx_hash(n),
            nonce=0,
            raw="0x02" + f"{n:02x}",
            gas=100_000,
            max_fee_per_gas=10**9,
            signed_at=self.now[0],
            data="0x1234",
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
        self.mono[0] += 1.0
        return self.watcher.run_once(ask_node=True)

    def tracked(self):
        return self.watcher._tracked.get(ENTITY_ID)


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
    assert world.watcher._tracked == {}


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
    assert world.watcher._tracked == {}


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
    assert world.sender.replaced == [[record.tx_hash]]
    new = world.records.get(ENTITY_ID)
    assert new.tx_hash != record.tx_hash and new.previous_hashes == (record.tx_hash,)
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
    world.sending = False
    world.round()  # a standby: another process holds the lease and replaces
    other = dataclasses.replace(record, tx_hash=tx_hash(7), previous_hashes=record.hashes)
    world.records.put(other)  # same nonce: only a fresh read can tell

    world.sending = True
    world.round()
    assert world.tracked().record == other
    world.chain.mine(other.tx_hash)
    world.chain.mine()
    assert world.round() == 1
    assert world.records.completed_as(ENTITY_ID) == other.tx_hash
