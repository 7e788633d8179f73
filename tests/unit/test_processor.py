"""processor.Processor.run_once over an in-memory Redis with a stub sender and balance."""

from __future__ import annotations

import json
import threading

import pytest

from depeg_processor import errors
from depeg_processor import processor as processor_module
from depeg_processor.clock import Clock as ServiceClock
from depeg_processor.errors import NodeUnavailable
from depeg_processor.inbound.stream import StreamQueue
from depeg_processor.processor import Processor, ProcessorConfig
from depeg_processor.state import SharedState
from depeg_processor.wallet.lease import Lease
from depeg_processor.wallet.nonce import NonceManager
from depeg_processor.wallet.records import TxRecord, TxRecords

from .helpers import CHAIN_ID, ENTITY_ID, MESSAGE_HELPER, OTHER, signed_fields

STREAM = "application:signatures"
KEY = f"PendingApplication:{ENTITY_ID}"
TX = "0x" + "ab" * 32
ETHER = 10**18


class StubSender:
    def finish_broadcast(self) -> None:
        self.finished = getattr(self, "finished", 0) + 1

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.error: Exception | None = None

    def submit(self, apps, *, entry_ids, commit) -> list:
        """Like Sender.submit: a simulation result (error) per application, a whole-batch
        failure (node unreachable, a bug) raised, the records committed before returning."""
        outcomes, records = [], []
        for app, entry_id in zip(apps, entry_ids):
            self.calls.append((app.entity_id, entry_id))
            if isinstance(self.error, NodeUnavailable) or (
                self.error is not None and not isinstance(self.error, errors.ProcessorError)
            ):
                raise self.error
            if self.error is not None:
                outcomes.append(self.error)
                continue
            record = TxRecord(
                entity_id=app.entity_id,
                tx_hash=TX,
                nonce=len(self.calls),
                raw="0x00",
                gas=100_000,
                max_fee_per_gas=10**9,
                stream_entry_id=entry_id,
            )
            records.append(record)
            outcomes.append(record)
        if records:
            commit(records)
        return outcomes


class StubBalance:
    def __init__(self, wei: int = 2 * ETHER) -> None:
        self.wei, self.calls, self.error = wei, 0, None

    def __call__(self) -> int:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return self.wei


class Clock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


class Harness:
    def __init__(self, client, owner: str | None = None) -> None:
        self.redis = client
        self.clock = Clock()
        self.sender = StubSender()
        self.balance = StubBalance()
        self.state = SharedState(monotonic=self.clock)
        self.stop = threading.Event()
        self.kinds: list[str] = []  # what the metrics would count
        self.queue = StreamQueue(
            client,
            stream=STREAM,
            group="g",
            consumer="c",
            dead_letter_key=STREAM + ":dead",
            clock=lambda: 1795830700.0,
            on_dead_letter=self.kinds.append,
        )
        self.queue.ensure_group()
        self.records = TxRecords(client, prefix=STREAM, owner=owner)
        self.nonces = NonceManager(
            chain_pending=lambda: 0, highest_recorded=self.records.highest_nonce
        )
        self.lease = Lease(
            client, key=STREAM + ":lease:w", owner="me", ttl=15.0, monotonic=self.clock
        )
        assert self.lease.acquire()  # what the lease keeper does in the service
        self.processor = Processor(
            config=ProcessorConfig(
                chain_id=CHAIN_ID,
                message_helper=MESSAGE_HELPER,
                min_balance=ETHER,
                read_count=20,
                read_block=0.001,
                balance_too_low_timeout=0,
                error_timeout=0,
                max_deliveries=3,
                balance_ttl=5.0,
            ),
            clock=ServiceClock(monotonic=self.clock),
            redis_client=client,
            queue=self.queue,
            records=self.records,
            sender=self.sender,
            nonces=self.nonces,
            lease=self.lease,
            state=self.state,
            stop=self.stop,
            balance=self.balance,
            wallet=owner,
        )

    def enqueue(self, fields: dict | None = None, entity_id: str = ENTITY_ID) -> str:
        if fields is not None:
            self.redis.hset(f"PendingApplication:{entity_id}", mapping=fields)
        return self.redis.xadd(STREAM, {"entityId": entity_id})

    def dead_letters(self) -> list[dict]:
        return [fields for _, fields in self.queue.dead_letters.list()]


@pytest.fixture
def h(fake_redis) -> Harness:
    return Harness(fake_redis)


def test_good_entry_is_sent_marked_and_acked(h) -> None:
    entry_id = h.enqueue(signed_fields())
    assert h.processor.run_once() == 1
    assert h.sender.calls == [(ENTITY_ID, entry_id)]
    assert h.redis.hget(KEY, "transactionHash") == TX
    assert h.queue.backlog().group_pending == 0
    assert h.dead_letters() == []
    snap = h.state.snapshot()
    assert snap.processor_beat == h.clock.now and snap.balance == 2 * ETHER
    assert snap.holding is None


def test_several_entries_in_one_run(h) -> None:
    for entity in ("E1", "E2", "E3"):
        h.enqueue(signed_fields(signature_id=f"sig-{entity}"), entity_id=entity)
    assert h.processor.run_once() == 3
    assert [entity for entity, _ in h.sender.calls] == ["E1", "E2", "E3"]
    assert h.queue.backlog().group_pending == 0


def test_one_signature_twice_in_a_batch_is_sent_once_and_the_other_simulated_after(h) -> None:
    h.enqueue(signed_fields(), entity_id="E1")
    h.enqueue(signed_fields(), entity_id="E2")  # the same signed message under another id
    assert h.processor.run_once() == 1
    assert [entity for entity, _ in h.sender.calls] == ["E1"]
    h.sender.error = errors.PermanentError("reverted: ERROR:DMH-001:SIGNATURE_USED")
    assert h.processor.run_once() == 0  # waits until the first one's batch is broadcast ...
    assert h.sender.finished == 1
    assert h.processor.run_once() == 1  # ... then the deferred one, not read again
    assert [entity for entity, _ in h.sender.calls] == ["E1", "E2"]
    [dead] = h.dead_letters()
    assert dead["entityId"] == "E2" and "DMH-001" in dead["reason"]


def test_entry_without_entity_id_is_dead_lettered(h) -> None:
    h.redis.xadd(STREAM, {"foo": "bar"})
    h.processor.run_once()
    [dead] = h.dead_letters()
    assert "no entityId" in dead["reason"]
    assert json.loads(dead["streamEntry"]) == {"foo": "bar"}
    assert h.queue.backlog().group_pending == 0 and h.sender.calls == []


def test_entry_deleted_from_the_stream_while_pending_is_just_acked(h) -> None:
    entry_id = h.enqueue(signed_fields())
    h.sender.error = errors.TransientError("node busy")
    h.processor.run_once()
    h.redis.xdel(STREAM, entry_id)
    h.sender.error = None
    h.processor.run_once()
    assert h.queue.backlog().group_pending == 0
    assert h.dead_letters() == []


def test_missing_application_is_dead_lettered(h) -> None:
    h.enqueue(None)
    h.processor.run_once()
    [dead] = h.dead_letters()
    assert dead["entityId"] == ENTITY_ID and "not found" in dead["reason"]
    assert h.queue.backlog().group_pending == 0 and h.sender.calls == []


def test_malformed_field_is_dead_lettered_naming_it(h) -> None:
    fields = signed_fields(duration="thirty days")
    h.enqueue(fields)
    h.processor.run_once()
    [dead] = h.dead_letters()
    assert "field duration" in dead["reason"]
    assert json.loads(dead["application"]) == fields
    assert not h.redis.exists(KEY)
    assert h.queue.backlog().group_pending == 0 and h.sender.calls == []


def test_invalid_signature_is_dead_lettered_without_sending(h) -> None:
    h.enqueue(signed_fields(signer=OTHER))
    h.processor.run_once()
    [dead] = h.dead_letters()
    assert "signature invalid" in dead["reason"]
    assert h.sender.calls == []
    assert h.queue.backlog().group_pending == 0


def test_permanent_send_failure_is_dead_lettered(h) -> None:
    h.enqueue(signed_fields())
    h.sender.error = errors.PermanentError("reverted: ERROR:DMH-001:SIGNATURE_USED")
    h.processor.run_once()
    [dead] = h.dead_letters()
    assert "DMH-001" in dead["reason"]
    assert h.queue.backlog().group_pending == 0 and not h.redis.exists(KEY)


def test_product_inactive_holds_the_entry_and_retries_it(h) -> None:
    entry_id = h.enqueue(signed_fields())
    h.sender.error = errors.ProductInactive("ERROR:DP-010:PRODUCT_NOT_ACTIVE")
    assert h.processor.run_once() == 0
    assert h.queue.backlog().group_pending == 1
    assert not h.redis.hexists(KEY, "transactionHash")
    assert "product not active" in h.state.snapshot().holding
    assert h.dead_letters() == []

    h.sender.error = None
    assert h.processor.run_once() == 1
    assert h.sender.calls == [(ENTITY_ID, entry_id)] * 2
    assert h.queue.backlog().group_pending == 0
    assert h.state.snapshot().holding is None


@pytest.mark.parametrize(
    "error",
    [
        errors.TransientError("node error -32000: busy"),
        NodeUnavailable("node unreachable (eth_estimateGas)"),
        RuntimeError("a bug"),
    ],
)
def test_transient_or_unexpected_failure_keeps_the_entry_for_the_next_run(h, error) -> None:
    entry_id = h.enqueue(signed_fields())
    h.sender.error = error
    assert h.processor.run_once() == 0
    assert h.queue.backlog().group_pending == 1 and h.dead_letters() == []

    h.sender.error = None
    assert h.processor.run_once() == 1
    assert h.sender.calls == [(ENTITY_ID, entry_id)] * 2
    assert h.redis.hget(KEY, "transactionHash") == TX


def test_node_unavailable_is_reported_to_the_monitor(h) -> None:
    h.balance.error = NodeUnavailable("node unreachable (eth_getBalance)")
    h.enqueue(signed_fields())
    h.processor.run_once()
    assert "unreachable" in h.state.snapshot().node_error
    assert h.sender.calls == []


def test_balance_below_minimum_reads_nothing_and_holds(h) -> None:
    h.balance.wei = ETHER - 1
    h.enqueue(signed_fields())
    assert h.processor.run_once() == 0
    assert h.queue.backlog().group_pending == 0  # not even delivered
    assert h.sender.calls == []
    assert "PROCESSOR_MIN_BALANCE" in h.state.snapshot().holding

    h.balance.wei = ETHER
    assert h.processor.run_once() == 1  # re-read at once after the hold, not cached
    assert h.state.snapshot().holding is None


def test_balance_is_lowered_locally_by_what_a_send_may_cost(h) -> None:
    h.balance.wei = ETHER + 50_000 * 10**9  # covers half of one transaction's worst case
    h.enqueue(signed_fields(signature_id="one"), entity_id="E1")
    assert h.processor.run_once() == 1
    h.enqueue(signed_fields(signature_id="two"), entity_id="E2")
    assert h.processor.run_once() == 0
    assert h.balance.calls == 1  # within the ttl: the node was not asked again
    assert [entity for entity, _ in h.sender.calls] == ["E1"]


def test_existing_record_is_resumed_without_sending_again(h) -> None:
    h.records.put(TxRecord(entity_id=ENTITY_ID, tx_hash="0x" + "cd" * 32, nonce=4, raw="0x00"))
    h.enqueue(signed_fields())
    assert h.processor.run_once() == 1
    assert h.sender.calls == []
    assert h.redis.hget(KEY, "transactionHash") == "0x" + "cd" * 32
    assert h.queue.backlog().group_pending == 0


def test_stop_request_leaves_entries_unsettled(h) -> None:
    h.enqueue(signed_fields())
    h.stop.set()
    assert h.processor.run_once() == 0
    assert h.sender.calls == []


def test_a_simulation_error_that_keeps_coming_back_is_set_aside_not_retried_forever(h) -> None:
    h.enqueue(signed_fields())
    h.sender.error = errors.TransientError("node error -32000: gas required exceeds allowance")
    for _ in range(2):  # max_deliveries=3 in this harness
        assert h.processor.run_once() == 0
        assert h.dead_letters() == []
    h.processor.run_once()
    [dead] = h.dead_letters()
    assert "simulation failed 3 times" in dead["reason"] and "gas required" in dead["reason"]
    assert h.queue.backlog().group_pending == 0


def test_a_paused_product_is_held_without_limit(h) -> None:
    h.enqueue(signed_fields())
    h.sender.error = errors.ProductInactive("ERROR:DP-010:PRODUCT_NOT_ACTIVE")
    for _ in range(6):
        assert h.processor.run_once() == 0
    assert h.dead_letters() == [] and h.queue.backlog().group_pending == 1


def test_entries_settled_before_a_batch_failure_are_not_retried(h) -> None:
    h.redis.xadd(STREAM, {"foo": "bar"})  # dead-lettered at once
    h.enqueue(signed_fields())
    h.sender.error = NodeUnavailable("node unreachable (batch)")
    assert h.processor.run_once() == 0
    h.sender.error = None
    assert h.processor.run_once() == 1
    assert len(h.dead_letters()) == 1, "the odd entry was set aside once, not twice"


def test_an_idle_processor_asks_the_node_nothing(h) -> None:
    h.balance.wei = ETHER
    h.processor.run_once()  # nothing known yet: one read
    assert h.balance.calls == 1
    for _ in range(5):
        h.clock.now += 10.0  # past the balance's time to live, but no work in hand
        assert h.lease.acquire()  # what the lease keeper does meanwhile
        assert h.processor.run_once() == 0
    assert h.balance.calls == 1

    h.enqueue(signed_fields())
    assert h.processor.run_once() == 1  # work in hand and a stale figure: read again
    assert h.balance.calls == 2


# -- what users send is untrusted ------------------------------------------------------------


def test_an_entity_id_that_is_not_utf8_is_set_aside_and_the_rest_go_on(h, raw_redis) -> None:
    bad_entry = raw_redis.xadd(STREAM, {b"entityId": b"01HZX\xff\xfe"}).decode()
    for entity in ("E1", "E2"):
        h.enqueue(signed_fields(signature_id=f"sig-{entity}"), entity_id=entity)
    assert h.processor.run_once() == 3
    assert [entity for entity, _ in h.sender.calls] == ["E1", "E2"]
    [dead] = h.dead_letters()
    assert dead["streamEntryId"] == bad_entry and dead["kind"] == "not_utf8"
    assert dead["entityId"] == "01HZX\\udcff\\udcfe"
    assert json.loads(dead["streamEntry"]) == {"entityId": "01HZX\\udcff\\udcfe"}
    assert h.queue.backlog().group_pending == 0 and h.kinds == ["not_utf8"]


@pytest.mark.parametrize("name, value", [(b"duration", b"2592\xff000"), (b"x\xc3\x28", b"1")])
def test_a_hash_with_bytes_that_are_not_utf8_is_set_aside_with_them_escaped(
    h, raw_redis, name, value
) -> None:
    h.enqueue(signed_fields())
    raw_redis.hset(KEY.encode(), name, value)
    h.enqueue(signed_fields(signature_id="good"), entity_id="E2")
    assert h.processor.run_once() == 2
    assert [entity for entity, _ in h.sender.calls] == ["E2"]
    [dead] = h.dead_letters()
    assert dead["entityId"] == ENTITY_ID and dead["kind"] == "not_utf8"
    application = json.loads(dead["application"])  # \udcNN escapes, decoded to surrogates
    assert application[name.decode("utf-8", "surrogateescape")] == value.decode(
        "utf-8", "surrogateescape"
    )
    assert not h.redis.exists(KEY)


def test_a_hash_too_large_is_set_aside_with_its_sizes(h) -> None:
    h.enqueue(signed_fields(signature="0x" + "ab" * 50_000))
    h.enqueue(signed_fields(signature_id="good"), entity_id="E2")
    assert h.processor.run_once() == 2
    [dead] = h.dead_letters()
    assert dead["kind"] == "too_large" and "100002" in dead["reason"]
    assert json.loads(dead["application"]) == {}
    assert json.loads(dead["sizes"])["oversized"][0]["valueBytes"] == 100_002
    assert [entity for entity, _ in h.sender.calls] == ["E2"] and not h.redis.exists(KEY)


@pytest.mark.parametrize("entity_id", ["a:b", "a b", ENTITY_ID + "\n", "z" * 10_000])
def test_an_invalid_entity_id_with_a_hash_is_set_aside_with_its_content(h, entity_id) -> None:
    fields = signed_fields()
    h.enqueue(fields, entity_id=entity_id)
    assert h.processor.run_once() == 1
    [dead] = h.dead_letters()
    assert dead["kind"] == "invalid_entry" and "\n" not in dead["reason"]
    assert json.loads(dead["application"]) == fields
    assert not h.redis.exists(f"PendingApplication:{entity_id}")
    assert h.sender.calls == [] and h.queue.backlog().group_pending == 0


def test_an_unforeseen_error_with_one_application_holds_only_that_one(h, monkeypatch) -> None:
    real = processor_module.parse_application

    def parse(entity_id, fields):
        if entity_id == "BAD":
            raise KeyError("a bug")
        return real(entity_id, fields)

    monkeypatch.setattr(processor_module, "parse_application", parse)
    h.enqueue(signed_fields(signature_id="bad"), entity_id="BAD")
    h.enqueue(signed_fields(signature_id="good"), entity_id="GOOD")
    h.processor.run_once()
    assert [entity for entity, _ in h.sender.calls] == ["GOOD"]  # the good one is sent at once
    assert h.redis.hget("PendingApplication:GOOD", "transactionHash") == TX
    assert h.processor.run_once() == 0 and h.dead_letters() == []
    assert h.processor.run_once() == 1  # third attempt (max_deliveries=3): set aside
    [dead] = h.dead_letters()
    assert dead["entityId"] == "BAD" and dead["kind"] == "other"
    assert "unexpected error 3 times in a row: KeyError" in dead["reason"]
    assert json.loads(dead["application"]) == signed_fields(signature_id="bad")
    assert h.queue.backlog().group_pending == 0 and h.processor._attempts == {}


def test_an_unforeseen_error_with_the_whole_batch_ends_in_the_dead_letters(h) -> None:
    h.enqueue(signed_fields())
    h.sender.error = RuntimeError("a bug")
    for _ in range(2):
        assert h.processor.run_once() == 0
        assert h.dead_letters() == [] and h.queue.backlog().group_pending == 1
    h.processor.run_once()
    [dead] = h.dead_letters()
    assert "RuntimeError" in dead["reason"] and dead["kind"] == "other"
    assert h.queue.backlog().group_pending == 0 and h.kinds == ["other"]
    h.enqueue(signed_fields(signature_id="next"), entity_id="E2")
    h.sender.error = None
    assert h.processor.run_once() == 1  # the loop goes on


def test_an_unforeseen_error_while_reading_reads_the_delivered_entries_again(
    h, monkeypatch
) -> None:
    h.enqueue(signed_fields())
    real = h.redis.xreadgroup

    def read_then_fail(*args, **kwargs):
        real(*args, **kwargs)
        raise RuntimeError("a bug after the delivery")

    monkeypatch.setattr(h.redis, "xreadgroup", read_then_fail)
    assert h.processor.run_once() == 0
    monkeypatch.undo()
    assert h.processor.run_once() == 1  # from this consumer's backlog, not left pending
    assert h.sender.calls == [(ENTITY_ID, h.redis.xrange(STREAM)[0][0])]
    assert h.queue.backlog().group_pending == 0


def test_attempts_are_forgotten_once_their_entries_are_out_of_hand(h) -> None:
    h.enqueue(signed_fields())
    h.sender.error = errors.TransientError("node error -32000: gas required exceeds allowance")
    h.processor.run_once()
    assert list(h.processor._attempts.values()) == [1]
    h.sender.error = None
    assert h.processor.run_once() == 1
    assert h.processor._attempts == {}


def test_an_unforeseen_error_before_reading_holds_the_entries_without_counting(h) -> None:
    h.enqueue(signed_fields())
    h.sender.error = errors.TransientError("node busy")
    h.processor.run_once()  # the entry is in hand, one attempt counted
    h.balance.error = RuntimeError("a bug in the balance check")
    h.processor._known_balance = None
    for _ in range(5):
        assert h.processor.run_once() == 0
    assert h.dead_letters() == [] and h.queue.backlog().group_pending == 1
    h.balance.error = h.sender.error = None
    assert h.processor.run_once() == 1


# -- one wallet of a pool ----------------------------------------------------------------------

WALLET, ELSEWHERE = "0x" + "11" * 20, "0x" + "22" * 20


def test_an_application_another_wallet_owns_is_acknowledged_not_sent(fake_redis) -> None:
    h = Harness(fake_redis, owner=WALLET)
    h.enqueue(signed_fields())
    fake_redis.set(f"{STREAM}:owner:{ENTITY_ID}", ELSEWHERE)  # recorded by the other wallet
    assert h.processor.run_once() == 1
    assert h.sender.calls == [] and h.queue.backlog().group_pending == 0
    assert h.dead_letters() == [] and fake_redis.exists(KEY), "left to its owner"


def test_a_commit_refused_for_another_wallets_application_is_retried_then_left(fake_redis) -> None:
    h = Harness(fake_redis, owner=WALLET)
    h.enqueue(signed_fields())
    load = h.processor._load

    def owned_meanwhile(entity_ids):  # the other wallet records it after this one loaded it
        loaded = load(entity_ids)
        fake_redis.set(f"{STREAM}:owner:{ENTITY_ID}", ELSEWHERE)
        return loaded

    h.processor._load = owned_meanwhile
    assert h.processor.run_once() == 0
    assert h.records.get(ENTITY_ID) is None and h.queue.backlog().group_pending == 1, (
        "nothing written"
    )
    h.processor._load = load
    assert h.processor.run_once() == 1
    assert h.sender.calls == [(ENTITY_ID, h.sender.calls[0][1])], "signed once, never recorded"
    assert h.queue.backlog().group_pending == 0 and h.dead_letters() == []


def test_a_stuck_transaction_holds_reading_and_the_hold_names_the_wallet(fake_redis) -> None:
    h = Harness(fake_redis, owner=WALLET)
    h.enqueue(signed_fields())
    h.state.set_stuck("transactions cannot be mined: max fee per gas is at the cap")
    assert h.processor.run_once() == 0
    assert h.sender.calls == [] and h.queue.backlog().group_pending == 0, "not even read"
    holding = h.state.snapshot().holding
    assert holding.startswith(f"wallet {WALLET}: ") and "cannot be mined" in holding
    h.state.set_stuck(None)
    assert h.processor.run_once() == 1
    assert h.state.snapshot().holding is None
