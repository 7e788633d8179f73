"""What Redis forgot (issue 22): a used signature looked up on chain, and the pool held while
the node has transactions of its wallets that no record explains."""

from __future__ import annotations

import pytest
from eth_abi import encode

from depeg_processor import errors
from depeg_processor.chain.product import ProductCalls
from depeg_processor.inbound.application import parse_application
from depeg_processor.wallet.applied import APPLICATION_CREATED, Used, judge
from depeg_processor.wallet.records import TxRecord
from tests.unit.consumer_harness import ENTITY_ID, Harness
from tests.unit.helpers import HOLDER, signed_fields
from tests.unit.test_in_flight_cap import Waits
from tests.unit.test_lifecycle import ENTITY_ID as LIFE_ID
from tests.unit.test_lifecycle import World, signed_call
from tests.unit.wallet_harness import STREAM, build_consumer

USED = errors.PermanentError("reverted: ERROR:DMH-001:SIGNATURE_USED", kind="DMH-001")
OTHER_RELAYER = "0x00000000000000000000000000000000000000aa"
TX = "0x" + "ab" * 32


@pytest.fixture
def h(fake_redis):
    harness = Harness(fake_redis)
    harness.waits = Waits(harness)  # a hold's pause moves the injected clock on
    harness.consumer = build_consumer(
        harness.wallet,
        clock=harness.clock,
        state=harness.state,
        metrics=harness.metrics,
        stop=harness.waits,
    )
    yield harness
    harness.close()


def applied_on_chain(h: Harness, fields: dict, *, sender: str, block: int = 90) -> None:
    """The product's log and the transaction of an application made with `fields`."""
    app = parse_application(ENTITY_ID, fields)
    data = encode(
        ["bytes32", "address", "address", "uint256", "uint256", "uint256"],
        [b"\x01" * 32, app.policy_holder, app.protected_wallet, app.protected_balance, 1, 1],
    )
    other = encode(  # another application of the same holder, in a later block
        ["bytes32", "address", "address", "uint256", "uint256", "uint256"],
        [b"\x02" * 32, app.policy_holder, app.protected_wallet, app.protected_balance + 1, 1, 1],
    )
    h.node.logs = [
        {
            "transactionHash": TX,
            "blockNumber": hex(block),
            "topics": [APPLICATION_CREATED],
            "data": "0x" + data.hex(),
        },
        {
            "transactionHash": "0x" + "cd" * 32,
            "blockNumber": hex(block + 1),
            "topics": [APPLICATION_CREATED],
            "data": "0x" + other.hex(),
        },
    ]
    h.node.transactions[TX] = {
        "hash": TX,
        "from": sender,
        "input": ProductCalls().apply(app.contract_args()),
    }
    h.node.receipts[TX] = {"gasUsed": hex(200_000), "effectiveGasPrice": hex(3 * 10**9)}


def test_a_signature_used_by_the_pools_own_transaction_is_completed_not_set_aside(h) -> None:
    """Redis lost the record: the application came back as new and its simulation finds its
    signature used, by this wallet's transaction. It is done: purged as confirmed."""
    fields = signed_fields()
    h.enqueue(fields)
    applied_on_chain(h, fields, sender=h.wallet.address)
    h.node.answer = USED
    assert h.run_once() == 1
    assert h.dead_letters() == [] and h.dead_lettered() == {}
    assert not h.redis.exists(f"PendingApplication:{ENTITY_ID}")
    assert h.records.completed_as(ENTITY_ID) == TX
    assert h.queue.backlog().group_pending == 0
    [mark] = h.records.marks.get_many([bytes.fromhex(fields["signature"][2:])])
    assert mark.entity_id == ENTITY_ID and mark.tx_hash == TX and mark.confirmed
    assert h.node.sent == []
    spent = h.metrics.registry.get_sample_value("depeg_processor_gas_spent_wei_total")
    assert spent == 200_000 * 3 * 10**9, "its gas counted from its receipt"


def test_a_signature_used_by_someone_else_is_set_aside_as_already_applied(h) -> None:
    fields = signed_fields()
    h.enqueue(fields)
    applied_on_chain(h, fields, sender=OTHER_RELAYER)
    h.node.answer = USED
    h.run_once()
    [dead] = h.dead_letters()
    assert dead["kind"] == "already_applied"
    assert TX in dead["reason"] and OTHER_RELAYER in dead["reason"]
    assert h.dead_lettered() == {"already_applied": 1}
    assert h.queue.backlog().group_pending == 0


def test_the_pools_transaction_waits_for_its_confirmations() -> None:
    app = parse_application(ENTITY_ID, signed_fields())
    used = Used(TX, "0xPool", block=100)
    pool = ["0xpool"]
    waiting = judge(app, used, pool=pool, head=101, confirmations=3)
    assert isinstance(waiting, errors.WaitingForRoom) and TX in str(waiting)
    assert judge(app, used, pool=pool, head=102, confirmations=3) is used
    unknown = judge(app, None, pool=pool, head=102, confirmations=3)
    assert isinstance(unknown, errors.PermanentError) and unknown.kind == "already_applied"


def test_transactions_no_record_explains_hold_the_wallet_until_they_are_mined(h) -> None:
    """The node's pool holds two transactions of the wallet that Redis forgot: nothing is
    simulated or sent until they are mined (or dropped)."""
    h.enqueue(signed_fields())
    h.node.pending = 2
    assert h.run_once() == 0
    assert h.node.simulations == 0 and h.node.sent == [] and h.calls == []
    assert "no record explains" in (h.state.snapshot().holding or "")
    assert h.run_once() == 0  # still held, the entry kept
    h.node.pending = 0  # mined: the mined count reached it (here: the node shows none)
    assert h.run_once() == 1
    assert h.calls == [(ENTITY_ID, h.calls[0][1])]
    h.wallet.finish()
    assert len(h.node.sent) == 1


def test_a_hold_settles_nothing_and_holds_while_nothing_is_left_to_send(h) -> None:
    """A hold keeps the batch whole: an application the web app deleted meanwhile is neither
    set aside nor acknowledged until the pool may send again, and the hold stays reported."""
    h.enqueue(signed_fields())
    h.node.pending = 2
    assert h.run_once() == 0
    h.redis.delete(f"PendingApplication:{ENTITY_ID}")
    assert h.run_once() == 0
    assert "no record explains" in (h.state.snapshot().holding or "")
    assert h.dead_letters() == [] and h.redis.xpending(STREAM, "g")["pending"] == 1


def test_a_nonce_check_that_fails_does_not_count_against_the_application(h) -> None:
    """A node answering the nonce check with nonsense is the node's fault: the application is
    neither set aside nor counted as delivered, however often the check fails."""
    h.enqueue(signed_fields())
    answer = h.node.batch

    def nonsense(calls):
        if any(method == "eth_getTransactionCount" for method, _params in calls):
            return [None for _call in calls]
        return answer(calls)

    h.node.batch = nonsense
    for _ in range(10):
        assert h.run_once() == 0
    assert h.dead_letters() == [] and h.consumer.held.attempts() == {}
    h.node.batch = answer
    assert h.run_once() == 1 and h.calls[0][0] == ENTITY_ID


def test_the_wallets_own_records_explain_its_pending_nonces(h) -> None:
    h.enqueue(signed_fields(), entity_id="E1")
    assert h.run_once() == 1
    h.wallet.finish()
    h.node.pending = 1  # its transaction, nonce 0, recorded
    assert h.wallet.unexplained() is None
    h.node.pending = 2  # and one more that nothing recorded
    assert "nonces 1;" in h.wallet.unexplained()


ORIGINAL = "0x" + "0e" * 32  # the pool's transaction that Redis forgot


def our_copy_reverted(world: World, *, sender: str | None = None) -> TxRecord:
    """The holder's application was applied by `ORIGINAL` from `sender` (the wallet itself
    when None); a copy of ours then reverted on chain and its new simulation says DMH-001."""
    data, _signature = signed_call()
    app = parse_application(LIFE_ID, signed_fields())
    event = encode(
        ["bytes32", "address", "address", "uint256", "uint256", "uint256"],
        [b"\x01" * 32, app.policy_holder, app.protected_wallet, app.protected_balance, 1, 1],
    )
    block = world.chain.mine(ORIGINAL)
    world.chain.logs.append(
        {
            "transactionHash": ORIGINAL,
            "blockNumber": hex(block),
            "topics": [APPLICATION_CREATED],
            "data": "0x" + event.hex(),
        }
    )
    world.chain.transactions[ORIGINAL] = {
        "hash": ORIGINAL,
        "from": sender or world.wallet.address,
        "input": data,
    }
    record = world.send(data=data)
    world.round()
    world.chain.mine(record.tx_hash, status=0)
    world.chain.mine()
    world.chain.call_error = USED
    assert world.round() == 1
    return record


def test_a_copy_that_reverted_on_the_pools_own_transaction_is_completed_by_it(
    fake_redis,
) -> None:
    """After a rollback a copy was sent and reverted (paid): the application is done all the
    same, by the original; nobody is held, no dead letter, its gas counted from its receipt."""
    world = World(fake_redis)
    metrics = world.wallet.ctx.shared.metrics
    record = our_copy_reverted(world)
    assert world.queue.dead_letters.list() == []
    assert world.records.completed_as(LIFE_ID) == ORIGINAL
    assert world.records.get(LIFE_ID) is None
    assert not fake_redis.exists(f"PendingApplication:{LIFE_ID}")
    [state] = world.records.holders.states([HOLDER.address])
    assert state.hold is None and state.busy is None
    [mark] = world.records.marks.get_many([signed_call()[1]])
    assert (mark.tx_hash, mark.confirmed) == (ORIGINAL, True)
    registry = metrics.registry
    assert registry.get_sample_value("depeg_processor_applications_confirmed_total") == 1
    # the original's receipt (21000 gas at 1 gwei); the copy's revert is counted apart
    assert registry.get_sample_value("depeg_processor_gas_spent_wei_total") == 21_000 * 10**9
    assert world.chain.sent == [] and record.tx_hash != ORIGINAL


def test_a_revert_on_someone_elses_use_of_the_signature_is_already_applied_and_held(
    fake_redis,
) -> None:
    """The holder front-ran our transaction with their own signature: set aside as
    `already_applied` naming their transaction, and the holder held (one paid revert, not
    one per application)."""
    world = World(fake_redis)
    record = our_copy_reverted(world, sender=OTHER_RELAYER)
    [(_id, dead)] = world.queue.dead_letters.list()
    assert dead["kind"] == "already_applied"
    assert ORIGINAL in dead["reason"] and OTHER_RELAYER in dead["reason"]
    assert record.tx_hash in dead["reason"]
    [state] = world.records.holders.states([HOLDER.address])
    assert state.hold is not None and state.hold.tx_hash == record.tx_hash
    assert world.records.completed_as(LIFE_ID) is None
