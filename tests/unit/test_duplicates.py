"""A duplicate (the same signature under another entity id) is caught before any chain call,
through consumer.Consumer.run_once with real wallets over one in-memory Redis: set aside as
`duplicate` naming the original and its transaction; the same entity id coming back is not a
duplicate; two wallets racing with two copies send one transaction."""

from __future__ import annotations

import pytest

from depeg_processor import errors

from .consumer_harness import Harness
from .helpers import signed_fields

SECOND = "0x" + "22" * 20


@pytest.fixture
def h(fake_redis):
    harness = Harness(fake_redis)
    yield harness
    harness.close()


def node_calls(h: Harness) -> tuple[int, int, int]:
    return h.node.simulations, len(h.node.sent), h.node.balance_calls


def test_a_copy_under_a_new_id_is_set_aside_naming_the_original_with_no_node_call(h) -> None:
    h.enqueue(signed_fields(), entity_id="E1")
    assert h.run_once() == 1
    h.wallet.finish()
    before = node_calls(h)
    h.enqueue(signed_fields(), entity_id="E2")  # the web app stored it again, under a new id
    assert h.run_once() == 1
    assert node_calls(h) == before, "no simulation, no transaction, no balance asked"
    [dead] = h.dead_letters()
    assert dead["entityId"] == "E2" and dead["kind"] == "duplicate"
    assert "application E1" in dead["reason"] and h.tx_hash("E1") in dead["reason"]
    assert "in flight" in dead["reason"]
    assert not h.redis.exists("PendingApplication:E2") and h.redis.exists("PendingApplication:E1")
    assert h.queue.backlog().group_pending == 0 and h.dead_lettered() == {"duplicate": 1}
    assert [entity for entity, _ in h.calls] == ["E1"]


def test_a_copy_of_a_confirmed_application_is_a_duplicate_too(h) -> None:
    h.enqueue(signed_fields(), entity_id="E1")
    h.run_once()
    record = h.records.get("E1")
    h.records.complete_many([("E1", record.tx_hash)], signatures={"E1": record.signature})
    h.enqueue(signed_fields(), entity_id="E2")
    simulated = h.node.simulations
    h.run_once()
    [dead] = h.dead_letters()
    assert dead["kind"] == "duplicate" and "confirmed" in dead["reason"]
    assert record.tx_hash in dead["reason"] and h.node.simulations == simulated


def test_the_same_id_redelivered_while_in_flight_is_resumed_not_a_duplicate(h) -> None:
    h.enqueue(signed_fields(), entity_id="E1")
    h.run_once()
    h.enqueue(None, entity_id="E1")  # its entry again (a redelivery, a second XADD)
    assert h.run_once() == 1
    assert h.dead_letters() == [] and [entity for entity, _ in h.calls] == ["E1"]
    assert h.queue.backlog().group_pending == 0


def test_the_same_id_sent_back_after_a_nonce_conflict_is_sent_again(h) -> None:
    h.enqueue(signed_fields(), entity_id="E1")
    h.run_once()
    h.wallet.finish()
    first = h.tx_hash("E1")
    h.records.send_back("E1", fence=h.lease.fence)  # what a nonce conflict leads to
    assert h.run_once() == 1
    assert h.dead_letters() == [] and [entity for entity, _ in h.calls] == ["E1", "E1"]
    [mark] = h.records.marks.get_many([bytes.fromhex(h.records.get("E1").signature[2:])])
    assert mark.entity_id == "E1" and mark.tx_hash == h.tx_hash("E1") != first


def test_the_same_id_stored_again_and_requeued_after_confirmation_is_not_a_duplicate(h) -> None:
    """Its mark names it: the node decides (here: the signature is used, by a transaction the
    product's logs do not show), never the mark."""
    fields = signed_fields()
    h.enqueue(fields, entity_id="E1")
    h.run_once()
    record = h.records.get("E1")
    h.records.complete_many([("E1", record.tx_hash)], signatures={"E1": record.signature})
    h.enqueue(fields, entity_id="E1")
    h.node.answer = errors.PermanentError("reverted: ERROR:DMH-001:SIGNATURE_USED", kind="DMH-001")
    h.run_once()
    [(letter_id, dead)] = h.queue.dead_letters.list()
    assert dead["kind"] == "already_applied" and "signature is used" in dead["reason"]
    h.queue.dead_letters.restore(letter_id)  # an operator requeues it
    h.run_once()
    assert [fields["kind"] for fields in h.dead_letters()] == ["already_applied"]
    assert h.dead_lettered() == {"already_applied": 2}


def test_the_same_id_claimed_by_another_wallet_is_not_a_duplicate(fake_redis, h) -> None:
    """The first wallet holds E1 through an outage; the other claims its entry (idle long
    enough) and sends it; the first's retry finds the entry claimed by the other consumer and
    lets it go: one transaction, no dead letter."""
    other = Harness(fake_redis, owner=SECOND, wallet_index=1)
    try:
        h.enqueue(signed_fields(), entity_id="E1")
        h.node.failure = errors.NodeUnavailable("node down")
        assert h.run_once() == 0  # E1 in hand, unacknowledged
        assert other.run_once() == 1  # claimed (no idle time asked here) and sent
        h.node.failure = None
        assert h.run_once() == 0  # the retry: the entry is the other consumer's now
        assert h.consumer.idle, "nothing kept in hand"
        assert h.dead_letters() == [] and h.node.sent == [] and len(other.calls) == 1
        assert h.queue.backlog().group_pending == 0
    finally:
        other.close()


def test_a_requeued_copy_is_refused_while_the_original_stands_then_sent_once_it_is_gone(
    h,
) -> None:
    h.enqueue(signed_fields(), entity_id="E1")
    h.run_once()
    h.enqueue(signed_fields(), entity_id="E2")
    h.run_once()
    [(letter_id, _dead)] = h.queue.dead_letters.list()
    h.queue.dead_letters.restore(letter_id)
    h.run_once()
    [(letter_id, dead)] = h.queue.dead_letters.list()
    assert dead["entityId"] == "E2" and dead["kind"] == "duplicate"
    h.wallet.finish()
    h.records.forget("E1")  # its transaction reverted on chain: the signature is unused
    h.queue.dead_letters.restore(letter_id)
    h.run_once()
    assert h.dead_letters() == [] and [entity for entity, _ in h.calls] == ["E1", "E2"]


def test_two_wallets_racing_with_two_copies_send_one_transaction(fake_redis) -> None:
    """The second wallet looked up no mark for its copy; while it simulates, the first wallet
    records the original. The second's write-ahead is refused: its copy is set aside, the rest
    of its batch goes out in the next one."""
    first = Harness(fake_redis, claim_idle=3600.0)  # neither claims the other's entries
    other = Harness(fake_redis, owner=SECOND, wallet_index=1, claim_idle=3600.0)
    h = first
    try:
        other.enqueue(signed_fields(), entity_id="E2")
        other.enqueue(signed_fields(signature_id="another-signature-id"), entity_id="E3")

        def first_wallet_sends_the_original() -> None:
            other.node.on_simulate = None
            h.enqueue(signed_fields(), entity_id="E1")
            assert h.run_once() == 1

        other.node.on_simulate = first_wallet_sends_the_original
        assert other.run_once() == 1  # E2 set aside; E3 kept for the next batch
        assert other.node.sent == [] and other.records.get("E3") is None
        assert other.run_once() == 1
        other.wallet.finish()
        h.wallet.finish()
        assert len(h.node.sent) == 1 and len(other.node.sent) == 1
        assert other.records.get("E2") is None and other.records.get("E3") is not None
        [dead] = other.dead_letters()
        assert dead["entityId"] == "E2" and dead["kind"] == "duplicate"
        assert "application E1" in dead["reason"] and h.tx_hash("E1") in dead["reason"]
    finally:
        other.close()
        first.close()
