"""wallet.replace.Replacer.replace_many: a round's stuck transactions re-priced together (one
fee lookup, one fenced write, one batch), and every write of records and requeues fenced by
the lease; wallet.publish.Publisher's answer to a nonce the node calls used."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from depeg_processor import errors
from depeg_processor.chain.signing import TransactionSigner
from depeg_processor.clock import Clock
from depeg_processor.errors import LeaseLost
from depeg_processor.fees import FeePolicy, raised
from depeg_processor.signer.policy import SigningPolicy
from depeg_processor.wallet.preflight import Preflight
from depeg_processor.wallet.publish import Answer, Publisher
from depeg_processor.wallet.records import TxRecord
from depeg_processor.wallet.replace import MAX_REPLACEMENT_BUMPS, Replacer
from depeg_processor.wallet.submit import Submitter

from .helpers import CHAIN_ID
from .wallet_harness import GWEI, KEY, PRODUCT, STREAM, build_wallet

SIGNER = TransactionSigner(KEY)  # the wallet's own key


class StubChain:
    """Answers each eth_sendRawTransaction (and eth_estimateGas, eth_call) with
    `respond(param, attempt)` (a hash by default), `attempt` counting the batches that sent
    transactions; a receipt only for the hashes in `mined`, and `nonce` as the wallet's mined
    count. Keeps every batch it was sent."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[str, list]]] = []
        self.respond: Callable[[object, int], object] = lambda raw, attempt: "0x" + "00" * 32
        self.mined: set[str] = set()
        self.nonce = 0

    def batch(self, calls) -> list:
        calls = list(calls)
        self.batches.append(calls)
        attempt = len(self.sends())
        return [self._answer(method, params, attempt) for method, params in calls]

    def _answer(self, method: str, params: list, attempt: int) -> object:
        if method == "eth_getTransactionReceipt":
            return {"transactionHash": params[0]} if params[0] in self.mined else None
        if method == "eth_getTransactionCount":
            return hex(self.nonce)
        return self.respond(params[0], attempt)

    def sends(self) -> list[list[tuple[str, list]]]:
        return [c for c in self.batches if any(m == "eth_sendRawTransaction" for m, _p in c)]


class Harness:
    """One wallet over the stub chain, its lease held and adopted."""

    def __init__(
        self,
        client,
        *,
        cap: int = 100 * GWEI,
        base_fee: int = 10 * GWEI,
        fees: FeePolicy | None = None,
        pending_nonce: int = 0,
        policy: SigningPolicy | None = None,
    ) -> None:
        self.redis = client
        self.chain = StubChain()
        self.base_fee = base_fee
        self.fee_lookups = 0
        self.wallet = build_wallet(
            client,
            chain=self.chain,
            clock=Clock(now=lambda: 1795830700.25, monotonic=lambda: 100.0),
            fees=fees or FeePolicy(base_fee=self._base_fee, suggested_tip=lambda: GWEI, cap=cap),
            pending_nonce=pending_nonce,
            policy=policy,
        )
        self.records, self.queue, self.lease = (
            self.wallet.records,
            self.wallet.queue,
            self.wallet.lease,
        )
        assert self.wallet.keeper.run_once() and self.wallet.take_over()
        # A replacer of its own over the wallet's parts, as `Wallet` builds it.
        ctx, shared = self.wallet.ctx, self.wallet.ctx.shared
        publisher = Publisher(
            chain=shared.chain,
            address=ctx.address,
            lease=ctx.lease,
            records=ctx.records,
            nonces=ctx.nonces,
        )
        self.publisher = publisher
        submitter = Submitter(
            config=ctx.config,
            signer=ctx.signer,
            lease=ctx.lease,
            records=ctx.records,
            nonces=ctx.nonces,
            last_seen=ctx.last_seen,
            queue=ctx.queue,
            fees=shared.fees,
            clock=shared.clock,
            faults=shared.faults,
            preflight=Preflight(
                call=ctx.call,
                product=shared.product,
                chain=shared.chain,
                simulator=shared.simulator,
                fees=shared.fees,
                pool=shared.pool,
                client=shared.redis,
            ),
            publisher=publisher,
        )
        self.replacer = Replacer(
            lease=ctx.lease,
            records=ctx.records,
            fees=shared.fees,
            metrics=shared.metrics,
            clock=shared.clock,
            publisher=publisher,
            submitter=submitter,
        )

    def _base_fee(self) -> int:
        self.fee_lookups += 1
        return self.base_fee

    @property
    def bumps(self) -> float:
        """The fee bumps counted in the wallet's metrics."""
        registry = self.wallet.ctx.shared.metrics.registry
        return registry.get_sample_value("depeg_processor_fee_bumps_total") or 0

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
        """How many transactions each batch of sends sent."""
        return [len(calls) for calls in self.chain.sends()]


@pytest.fixture
def h(fake_redis) -> Harness:
    return Harness(fake_redis)


def test_a_rounds_replacements_go_out_in_one_batch_after_one_fee_lookup(h) -> None:
    old = h.stored(150)
    outcomes = h.replacer.replace_many(old)
    assert h.sent() == [150], "one batch, not one request each"
    assert len(h.chain.batches) == 1, "and nothing else asked"
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
    outcomes = h.replacer.replace_many(old)
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
    h.chain.mined, h.chain.nonce = {old[1].tx_hash}, 2  # the older one of nonce 1 was mined
    sent, mined, poor, unclear = h.replacer.replace_many(old)
    assert sent.tx_hash != old[0].tx_hash and h.records.get("E000") == sent
    assert mined == old[1] and h.records.get("E001") == old[1], "an older one was mined"
    assert isinstance(poor, errors.InsufficientFunds) and h.records.get("E002") == old[2]
    assert unclear.tx_hash != old[3].tx_hash and h.records.get("E003") == unclear, (
        "an unknown outcome keeps the replacement: it may be out"
    )
    assert h.sent() == [4]
    *receipts, count = h.chain.batches[-1]  # the one lookup the used nonce took
    assert len(receipts) == 2, "both hashes signed for nonce 1"
    assert receipts[0] == ("eth_getTransactionReceipt", [old[1].tx_hash])
    assert receipts[1][0] == "eth_getTransactionReceipt"
    assert count == ("eth_getTransactionCount", [h.wallet.address, "latest"])
    assert h.redis.xlen(STREAM) == 0, "a mined one is the watcher's to confirm"


def test_a_replacement_whose_nonce_went_to_another_transaction_is_sent_back(h) -> None:
    old = h.stored(2)
    h.chain.respond = lambda raw, attempt: errors.NonceConflict("nonce too low")
    h.chain.nonce = 2  # both nonces used on chain, by none of the records' hashes
    outcomes = h.replacer.replace_many(old)
    assert all(isinstance(o, errors.NonceConflict) for o in outcomes)
    assert [h.records.get(r.entity_id) for r in old] == [None, None]
    assert [f["entityId"] for _id, f in h.redis.xrange(STREAM)] == ["E000", "E001"]
    assert h.sent() == [2] and h.bumps == 0


def test_fee_cap_leaves_no_room(fake_redis) -> None:
    h = Harness(fake_redis, cap=2 * GWEI)
    old = h.stored(2, max_fee=2 * GWEI)
    outcomes = h.replacer.replace_many(old)
    assert h.sent() == [], "nothing to send"
    assert all(
        isinstance(o, errors.FeeCapReached) and o.current == r for o, r in zip(outcomes, old)
    )


def test_still_refused_after_the_last_bump(h) -> None:
    old = h.stored(2)
    h.chain.respond = lambda raw, attempt: errors.ReplacementUnderpriced("underpriced")
    outcomes = h.replacer.replace_many(old)
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
        h.replacer.replace_many(old)
    assert h.sent() == []
    assert [h.records.get(r.entity_id) for r in old] == old


def test_a_used_nonce_is_not_requeued_after_the_lease_was_lost(h) -> None:
    """At the first broadcast, a nonce the node calls used sends the application back only
    once the receipts show none of its hashes mined and the chain's nonce past it."""
    (record,) = h.stored(1)
    h.chain.respond = lambda raw, attempt: errors.NonceConflict("nonce too low")
    h.chain.nonce = 1  # used on chain, by none of the record's hashes
    h.redis.set(h.lease.key, "the-next-holder")
    [(answer, _result)] = h.publisher.publish([record], first=True)
    assert answer is Answer.NONCE_USED
    assert h.redis.xlen(STREAM) == 0, "not enqueued again"
    assert h.records.get(record.entity_id) == record, "the next holder's to settle"

    h.redis.set(h.lease.key, "me")
    h.chain.nonce = 0  # not used yet on chain: the watcher looks again
    assert [a for a, _r in h.publisher.publish([record], first=True)] == [Answer.NONCE_USED]
    h.chain.nonce, h.chain.mined = 1, {record.tx_hash}  # used by its own: the watcher confirms
    assert [a for a, _r in h.publisher.publish([record], first=True)] == [Answer.NONCE_USED]
    assert h.redis.xlen(STREAM) == 0 and h.records.get(record.entity_id) == record

    h.chain.mined = set()  # used by another transaction
    [(answer, _result)] = h.publisher.publish([record], first=True)
    assert answer is Answer.SENT_BACK
    assert [f["entityId"] for _id, f in h.redis.xrange(STREAM)] == [record.entity_id]
    assert h.records.get(record.entity_id) is None


def test_fenced_send_back_and_transaction_hashes(h) -> None:
    (record,) = h.stored(1)
    key = f"PendingApplication:{record.entity_id}"
    h.redis.set(h.lease.key, "other")
    with pytest.raises(errors.FenceLost):
        h.records.send_back(record.entity_id, fence=h.lease.fence)
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
