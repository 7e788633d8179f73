"""sender.Sender.replace_many: a round's stuck transactions re-priced together (one fee lookup,
one fenced write, one batch), and every write of records and requeues fenced by the lease."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from depeg_processor import errors
from depeg_processor.chain.signing import TransactionSigner
from depeg_processor.clock import Clock
from depeg_processor.fees import FeePolicy, raised
from depeg_processor.inbound.stream import StreamQueue
from depeg_processor.sender import MAX_REPLACEMENT_BUMPS, LeaseLost, Sender, SenderConfig
from depeg_processor.wallet.lease import Lease
from depeg_processor.wallet.nonce import NonceManager
from depeg_processor.wallet.records import TxRecord, TxRecords

from .helpers import CHAIN_ID

GWEI = 10**9
STREAM = "application:signatures"
PRODUCT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
SIGNER = TransactionSigner(bytes.fromhex("c3" * 32))


class StubChain:
    """Answers each eth_sendRawTransaction with `respond(raw, attempt)` (a hash by default);
    keeps every batch it was sent."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[str, list]]] = []
        self.respond: Callable[[str, int], object] = lambda raw, attempt: "0x" + "00" * 32

    def batch(self, calls) -> list:
        calls = list(calls)
        self.batches.append(calls)
        attempt = len(self.batches)
        return [self.respond(params[0], attempt) for _method, params in calls]

    def simulate(self, calls, block: str = "pending") -> list:
        return self.batch([("eth_call", [call, block]) for call in calls])


class Harness:
    def __init__(self, client, *, cap: int = 100 * GWEI, base_fee: int = 10 * GWEI) -> None:
        self.redis = client
        self.chain = StubChain()
        self.base_fee = base_fee
        self.fee_lookups = 0
        self.records = TxRecords(client, prefix=STREAM)
        self.queue = StreamQueue(
            client, stream=STREAM, group="g", consumer="c", dead_letter_key=STREAM + ":dead"
        )
        self.queue.ensure_group()
        self.lease = Lease(client, key=STREAM + ":lease:w", owner="me", ttl=15.0)
        assert self.lease.acquire()
        self.bumps = 0
        self.sender = Sender(
            config=SenderConfig(chain_id=CHAIN_ID, product=PRODUCT),
            clock=Clock(now=lambda: 1795830700.25),
            chain=self.chain,
            simulator=self.chain,  # the stub simulates with a batch of eth_call
            signer=SIGNER,
            encode_call=lambda app: "0x",
            fees=FeePolicy(base_fee=self._base_fee, suggested_tip=lambda: GWEI, cap=cap),
            nonces=NonceManager(
                chain_pending=lambda: 0, highest_recorded=self.records.highest_nonce
            ),
            records=self.records,
            requeue=self._requeue,
            may_send=self.lease.held,
            fence=self.lease.fence,
            on_fee_bump=self._bumped,
        )

    def _base_fee(self) -> int:
        self.fee_lookups += 1
        return self.base_fee

    def _bumped(self) -> None:
        self.bumps += 1

    def _requeue(self, record: TxRecord) -> None:  # as the service wires it
        self.queue.reissue(
            record.entity_id,
            forget=self.records.key(record.entity_id),
            inflight_key=self.records.inflight_key,
            fence=self.lease.fence,
        )

    def stored(self, count: int, *, max_fee: int = 2 * GWEI, tip: int = GWEI) -> list[TxRecord]:
        records = []
        for nonce in range(count):
            tx_hash, raw = SIGNER.sign(
                chain_id=CHAIN_ID,
                nonce=nonce,
                to=PRODUCT,
                data="0x1234",
                gas=100_000,
                max_fee_per_gas=max_fee,
                max_priority_fee_per_gas=tip,
            )
            records.append(
                TxRecord(
                    entity_id=f"E{nonce:03}",
                    tx_hash=tx_hash,
                    nonce=nonce,
                    raw=raw,
                    gas=100_000,
                    max_fee_per_gas=max_fee,
                    max_priority_fee_per_gas=tip,
                    data="0x1234",
                )
            )
        self.records.put_many(records)
        for record in records:
            self.redis.hset(
                f"PendingApplication:{record.entity_id}", "transactionHash", record.tx_hash
            )
        return records

    def sent(self) -> list[int]:
        """How many transactions each batch sent."""
        return [len(calls) for calls in self.chain.batches]


@pytest.fixture
def h(fake_redis) -> Harness:
    return Harness(fake_redis)


def test_a_rounds_replacements_go_out_in_one_batch_after_one_fee_lookup(h) -> None:
    old = h.stored(150)
    outcomes = h.sender.replace_many(old)
    assert h.sent() == [150], "one batch, not one request each"
    assert h.fee_lookups == 1
    assert all(method == "eth_sendRawTransaction" for method, _p in h.chain.batches[0])
    for before, after in zip(old, outcomes):
        assert isinstance(after, TxRecord) and after.nonce == before.nonce
        assert after.max_fee_per_gas >= raised(before.max_fee_per_gas)
        assert after.max_fee_per_gas >= 2 * h.base_fee + GWEI, "to the market"
        assert after.max_priority_fee_per_gas >= raised(before.max_priority_fee_per_gas)
        assert after.previous_hashes == (before.tx_hash,)
        assert h.records.get(before.entity_id) == after, "recorded"
    assert h.bumps == 150


def test_underpriced_replacements_are_bumped_again_in_the_same_round(h) -> None:
    old = h.stored(3)
    refused_once = old[1].entity_id

    def respond(raw: str, attempt: int) -> object:
        record = next(
            r for r in h.records.get_many([e.entity_id for e in old]).values() if r.raw == raw
        )
        if record.entity_id == refused_once and attempt == 1:
            return errors.ReplacementUnderpriced("replacement transaction underpriced")
        return record.tx_hash

    h.chain.respond = respond
    first_try = {}
    put_many = h.records.put_many

    def spy(records, **kwargs):
        for record in records:
            first_try.setdefault(record.entity_id, record)
        return put_many(records, **kwargs)

    h.records.put_many = spy
    outcomes = h.sender.replace_many(old)
    assert h.sent() == [3, 1], "only the refused one again"
    again = outcomes[1]
    assert again.max_fee_per_gas >= raised(first_try[refused_once].max_fee_per_gas)
    assert again.previous_hashes == (old[1].tx_hash,), "the refused hash never reached a pool"
    assert h.records.get(refused_once) == again
    assert h.fee_lookups == 1


def test_outcomes_the_node_decides_per_transaction(h) -> None:
    old = h.stored(4)
    answers = {
        0: "0x" + "11" * 32,
        1: errors.NonceConflict("nonce too low"),
        2: errors.InsufficientFunds("insufficient funds for gas * price + value"),
        3: errors.TransientError("node error -32000: something odd"),
    }

    def respond(raw: str, attempt: int) -> object:
        stored = h.records.get_many([r.entity_id for r in old])
        nonce = next(r.nonce for r in stored.values() if r.raw == raw)
        return answers[nonce]

    h.chain.respond = respond
    sent, mined, poor, unclear = h.sender.replace_many(old)
    assert sent.tx_hash != old[0].tx_hash and h.records.get("E000") == sent
    assert mined == old[1] and h.records.get("E001") == old[1], "an older one was mined"
    assert isinstance(poor, errors.InsufficientFunds) and h.records.get("E002") == old[2]
    assert unclear.tx_hash != old[3].tx_hash and h.records.get("E003") == unclear, (
        "an unknown outcome keeps the replacement: it may be out"
    )
    assert h.sent() == [4]


def test_fee_cap_leaves_no_room(fake_redis) -> None:
    h = Harness(fake_redis, cap=2 * GWEI)
    old = h.stored(2, max_fee=2 * GWEI)
    outcomes = h.sender.replace_many(old)
    assert h.sent() == [], "nothing to send"
    assert all(
        isinstance(o, errors.FeeCapReached) and o.current == r for o, r in zip(outcomes, old)
    )


def test_still_refused_after_the_last_bump(h) -> None:
    old = h.stored(2)
    h.chain.respond = lambda raw, attempt: errors.ReplacementUnderpriced("underpriced")
    outcomes = h.sender.replace_many(old)
    assert h.sent() == [2] * MAX_REPLACEMENT_BUMPS, "a bounded loop"
    assert all(
        isinstance(o, errors.FeeCapReached) and o.current == r for o, r in zip(outcomes, old)
    )
    assert [h.records.get(r.entity_id) for r in old] == old, "the older transactions stand"


# -- fencing --------------------------------------------------------------------------------


def test_replacements_are_not_written_nor_sent_after_the_lease_was_lost(h) -> None:
    old = h.stored(3)
    h.redis.set(h.lease.key, "the-next-holder")  # it expired and another process took it
    assert h.lease.held(), "this process has not noticed yet"
    with pytest.raises(LeaseLost):
        h.sender.replace_many(old)
    assert h.sent() == []
    assert [h.records.get(r.entity_id) for r in old] == old


def test_a_used_nonce_is_not_requeued_after_the_lease_was_lost(h) -> None:
    (record,) = h.stored(1)
    h.chain.respond = lambda raw, attempt: errors.NonceConflict("nonce too low")
    h.redis.set(h.lease.key, "the-next-holder")
    h.sender._broadcast([record])
    assert h.redis.xlen(STREAM) == 0, "not enqueued again"
    assert h.records.get(record.entity_id) == record, "the next holder's to settle"

    h.redis.set(h.lease.key, "me")
    h.sender._broadcast([record])
    assert [f["entityId"] for _id, f in h.redis.xrange(STREAM)] == [record.entity_id]
    assert h.records.get(record.entity_id) is None


def test_fenced_reissue_and_transaction_hashes(h) -> None:
    (record,) = h.stored(1)
    key = f"PendingApplication:{record.entity_id}"
    h.redis.set(h.lease.key, "other")
    with pytest.raises(errors.FenceLost):
        h.queue.reissue(
            record.entity_id,
            forget=h.records.key(record.entity_id),
            inflight_key=h.records.inflight_key,
            fence=h.lease.fence,
        )
    with pytest.raises(errors.FenceLost):
        h.queue.set_transaction_hashes([(record.entity_id, "0xnew")], fence=h.lease.fence)
    assert h.redis.xlen(STREAM) == 0 and h.records.get(record.entity_id) == record
    assert h.redis.hget(key, "transactionHash") == record.tx_hash

    h.redis.set(h.lease.key, "me")
    h.queue.set_transaction_hashes(
        [(record.entity_id, "0xnew"), ("GONE", "0xother")], fence=h.lease.fence
    )
    assert h.redis.hget(key, "transactionHash") == "0xnew"
    assert not h.redis.exists("PendingApplication:GONE"), "a purged application stays purged"
