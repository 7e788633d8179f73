"""One batch of stream entries through consumer.Consumer.run_once, with a real wallet and a node
double: what is set aside, resumed, acknowledged for another wallet or sent."""

from __future__ import annotations

import json

import pytest

from depeg_processor import errors, keys
from depeg_processor.inbound import batch as batch_module
from depeg_processor.inbound.eip712 import SECP256K1_N
from depeg_processor.wallet.records import TxRecord

from .consumer_harness import KEY, Harness
from .helpers import ENTITY_ID, OTHER, signed_fields
from .wallet_harness import STREAM


@pytest.fixture
def h(fake_redis):
    harness = Harness(fake_redis)
    yield harness
    harness.close()


def test_one_signature_twice_in_a_batch_is_sent_once_and_the_copy_set_aside_unsimulated(h) -> None:
    h.enqueue(signed_fields(), entity_id="E1")
    h.enqueue(signed_fields(), entity_id="E2")  # the same signed message under another id
    assert h.run_once() == 1  # the copy waits for the next batch: no mark yet
    assert [entity for entity, _ in h.calls] == ["E1"]
    simulated = h.node.simulations
    assert h.run_once() == 1  # the deferred one, not read again: the first one's mark decides
    assert [entity for entity, _ in h.calls] == ["E1"] and h.node.simulations == simulated
    [dead] = h.dead_letters()
    assert dead["entityId"] == "E2" and dead["kind"] == "duplicate"
    assert "application E1" in dead["reason"] and h.tx_hash("E1") in dead["reason"]
    assert h.queue.backlog().group_pending == 0


def test_entry_without_entity_id_is_dead_lettered(h) -> None:
    h.redis.xadd(STREAM, {"foo": "bar"})
    h.run_once()
    [dead] = h.dead_letters()
    assert "no entityId" in dead["reason"]
    assert json.loads(dead["streamEntry"]) == {"foo": "bar"}
    assert h.queue.backlog().group_pending == 0 and h.calls == []


def test_entry_deleted_from_the_stream_while_pending_is_just_acked(h) -> None:
    entry_id = h.enqueue(signed_fields())
    h.node.answer = errors.TransientError("node busy")
    h.run_once()
    h.redis.xdel(STREAM, entry_id)
    h.node.answer = None
    h.run_once()
    assert h.queue.backlog().group_pending == 0
    assert h.dead_letters() == []


def test_missing_application_is_dead_lettered(h) -> None:
    h.enqueue(None)
    h.run_once()
    [dead] = h.dead_letters()
    assert dead["entityId"] == ENTITY_ID and "not found" in dead["reason"]
    assert h.queue.backlog().group_pending == 0 and h.calls == []


def test_malformed_field_is_dead_lettered_naming_it(h) -> None:
    fields = signed_fields(duration="thirty days")
    h.enqueue(fields)
    h.run_once()
    [dead] = h.dead_letters()
    assert "field duration" in dead["reason"]
    assert json.loads(dead["application"]) == fields
    assert not h.redis.exists(KEY)
    assert h.queue.backlog().group_pending == 0 and h.calls == []


def test_invalid_signature_is_dead_lettered_without_sending(h) -> None:
    h.enqueue(signed_fields(signer=OTHER))
    h.run_once()
    [dead] = h.dead_letters()
    assert "signature invalid" in dead["reason"]
    assert h.calls == [] and h.node.simulations == 0
    assert h.queue.backlog().group_pending == 0


def malleated(signature: str, *, high_s: bool) -> str:
    """A valid signature made one the product refuses: its high-s twin (s' = n - s, v
    flipped; the same signer) or the same with v as 0/1."""
    raw = bytes.fromhex(signature[2:])
    if not high_s:
        return "0x" + (raw[:64] + bytes([raw[64] - 27])).hex()
    s = SECP256K1_N - int.from_bytes(raw[32:64], "big")
    return "0x" + (raw[:32] + s.to_bytes(32, "big") + bytes([55 - raw[64]])).hex()


@pytest.mark.parametrize("high_s, reason", [(True, "s is above half"), (False, "v is ")])
def test_a_signature_the_products_ecdsa_refuses_is_set_aside_without_a_node_call(
    h, high_s, reason
) -> None:
    fields = signed_fields()
    h.enqueue({**fields, "signature": malleated(fields["signature"], high_s=high_s)})
    assert h.run_once() == 1
    [dead] = h.dead_letters()
    assert dead["kind"] == "signature_invalid" and reason in dead["reason"]
    assert h.calls == [] and h.node.simulations == 0 and h.node.balance_calls <= 1
    assert h.dead_lettered() == {"signature_invalid": 1}


def test_permanent_send_failure_is_dead_lettered(h) -> None:
    h.enqueue(signed_fields())
    h.node.answer = errors.PermanentError("reverted: ERROR:DMH-001:SIGNATURE_USED")
    h.run_once()
    [dead] = h.dead_letters()
    assert "DMH-001" in dead["reason"]
    assert h.queue.backlog().group_pending == 0 and not h.redis.exists(KEY)


def test_existing_record_is_resumed_without_sending_again(h) -> None:
    h.records.put(TxRecord(entity_id=ENTITY_ID, tx_hash="0x" + "cd" * 32, nonce=4, raw="0x00"))
    h.enqueue(signed_fields())
    assert h.run_once() == 1
    assert h.calls == []
    assert h.redis.hget(KEY, "transactionHash") == "0x" + "cd" * 32
    assert h.queue.backlog().group_pending == 0


# -- what users send is untrusted ------------------------------------------------------------


def test_an_entity_id_that_is_not_utf8_is_set_aside_and_the_rest_go_on(h, raw_redis) -> None:
    bad_entry = raw_redis.xadd(STREAM, {b"entityId": b"01HZX\xff\xfe"}).decode()
    for entity in ("E1", "E2"):
        h.enqueue(signed_fields(signature_id=f"sig-{entity}"), entity_id=entity)
    assert h.run_once() == 3
    assert [entity for entity, _ in h.calls] == ["E1", "E2"]
    [dead] = h.dead_letters()
    assert dead["streamEntryId"] == bad_entry and dead["kind"] == "not_utf8"
    assert dead["entityId"] == "01HZX\\udcff\\udcfe"
    assert json.loads(dead["streamEntry"]) == {"entityId": "01HZX\\udcff\\udcfe"}
    assert h.queue.backlog().group_pending == 0 and h.dead_lettered() == {"not_utf8": 1}


@pytest.mark.parametrize("name, value", [(b"duration", b"2592\xff000"), (b"x\xc3\x28", b"1")])
def test_a_hash_with_bytes_that_are_not_utf8_is_set_aside_with_them_escaped(
    h, raw_redis, name, value
) -> None:
    h.enqueue(signed_fields())
    raw_redis.hset(KEY.encode(), name, value)
    h.enqueue(signed_fields(signature_id="good"), entity_id="E2")
    assert h.run_once() == 2
    assert [entity for entity, _ in h.calls] == ["E2"]
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
    assert h.run_once() == 2
    [dead] = h.dead_letters()
    assert dead["kind"] == "too_large" and "100002" in dead["reason"]
    assert json.loads(dead["application"]) == {}
    assert json.loads(dead["sizes"])["oversized"][0]["valueBytes"] == 100_002
    assert [entity for entity, _ in h.calls] == ["E2"] and not h.redis.exists(KEY)


@pytest.mark.parametrize("entity_id", ["a:b", "a b", ENTITY_ID + "\n", "z" * 10_000])
def test_an_invalid_entity_id_with_a_hash_is_set_aside_with_its_content(h, entity_id) -> None:
    fields = signed_fields()
    h.enqueue(fields, entity_id=entity_id)
    assert h.run_once() == 1
    [dead] = h.dead_letters()
    assert dead["kind"] == "invalid_entry" and "\n" not in dead["reason"]
    assert json.loads(dead["application"]) == fields
    assert not h.redis.exists(f"PendingApplication:{entity_id}")
    assert h.calls == [] and h.queue.backlog().group_pending == 0


def test_an_unforeseen_error_with_one_application_holds_only_that_one(h, monkeypatch) -> None:
    real = batch_module.parse_application

    def parse(entity_id, fields):
        if entity_id == "BAD":
            raise KeyError("a bug")
        return real(entity_id, fields)

    monkeypatch.setattr(batch_module, "parse_application", parse)
    h.enqueue(signed_fields(signature_id="bad"), entity_id="BAD")
    h.enqueue(signed_fields(signature_id="good"), entity_id="GOOD")
    h.run_once()
    assert [entity for entity, _ in h.calls] == ["GOOD"]  # the good one is sent at once
    assert h.redis.hget("PendingApplication:GOOD", "transactionHash") == h.tx_hash("GOOD")
    assert h.run_once() == 0 and h.dead_letters() == []
    assert h.run_once() == 1  # third attempt (max_deliveries=3): set aside
    [dead] = h.dead_letters()
    assert dead["entityId"] == "BAD" and dead["kind"] == "other"
    assert "unexpected error 3 times in a row: KeyError" in dead["reason"]
    assert json.loads(dead["application"]) == signed_fields(signature_id="bad")
    assert h.queue.backlog().group_pending == 0 and h.consumer.held.attempts() == {}


# -- one wallet of a pool ----------------------------------------------------------------------

WALLET, ELSEWHERE = "0x" + "11" * 20, "0x" + "22" * 20


@pytest.fixture
def pooled(fake_redis):
    harness = Harness(fake_redis, owner=WALLET)
    yield harness
    harness.close()


def test_an_application_another_wallet_owns_is_acknowledged_not_sent(pooled, fake_redis) -> None:
    h = pooled
    h.enqueue(signed_fields())
    fake_redis.set(keys.owner_key(STREAM, ENTITY_ID), ELSEWHERE)  # recorded by the other wallet
    assert h.run_once() == 1
    assert h.calls == [] and h.queue.backlog().group_pending == 0
    assert h.dead_letters() == [] and fake_redis.exists(KEY), "left to its owner"


def test_a_commit_refused_for_another_wallets_application_is_retried_then_left(
    pooled, fake_redis
) -> None:
    h = pooled
    h.enqueue(signed_fields())

    def owned_meanwhile() -> None:  # the other wallet records it after this one loaded it
        fake_redis.set(keys.owner_key(STREAM, ENTITY_ID), ELSEWHERE)

    h.node.on_simulate = owned_meanwhile
    assert h.run_once() == 0
    assert h.records.get(ENTITY_ID) is None and h.queue.backlog().group_pending == 1, (
        "nothing written"
    )
    h.node.on_simulate = None
    assert h.run_once() == 1
    assert h.calls == [(ENTITY_ID, h.calls[0][1])], "signed once, never recorded"
    assert h.queue.backlog().group_pending == 0 and h.dead_letters() == []
    assert h.node.sent == [], "nothing published"
