"""wallet.preflight: a batch is simulated after everything the pool has in flight (replayed
where the node offers eth_simulateV1), at the latest block read afresh; without a replay, the
pending block must hold all of it and one batch sends one application per bundle and holder."""

from __future__ import annotations

import pytest

from depeg_processor.clock import Clock
from depeg_processor.fees import Block, FeePolicy
from depeg_processor.inbound.application import parse_application
from depeg_processor.wallet.records import TxRecord, TxRecords

from .helpers import OTHER, signed_fields
from .wallet_harness import GWEI, STREAM, build_wallet

OTHER_WALLET = "0x" + "77" * 20
GAS = 1_800_000


class Node:
    """The latest block (its number rises with each look), transaction counts (none mined),
    estimates, and eth_call for simulations, which all succeed."""

    def __init__(self) -> None:
        self.number = 40
        self.calls: list[tuple[str, list]] = []

    def latest(self) -> Block:
        self.number += 1
        return Block(
            number=self.number,
            base_fee=GWEI,
            gas_used=0,
            gas_limit=30_000_000,
            block_hash=f"0x{self.number:064x}",
        )

    def batch(self, calls) -> list:
        calls = list(calls)
        self.calls += calls
        answers = []
        for method, _params in calls:
            if method == "eth_getTransactionCount":
                answers.append(hex(0))
            elif method == "eth_estimateGas":
                answers.append(hex(1_500_000))
            elif method == "eth_call":
                answers.append("0x")
            else:
                answers.append("0x" + "00" * 32)
        return answers


@pytest.fixture
def world(fake_redis):
    node = Node()
    fees = FeePolicy(base_fee=node.latest, suggested_tip=lambda: GWEI, cap=100 * GWEI)
    other = TxRecords(fake_redis, prefix=f"{STREAM}:wallet:{OTHER_WALLET}", owner=OTHER_WALLET)
    wallet = build_wallet(fake_redis, chain=node, clock=Clock(), fees=fees, others=(other,))
    wallet.lease.acquire()
    assert wallet.take_over()
    yield node, wallet, other
    wallet.close()


def record(entity_id: str, nonce: int) -> TxRecord:
    return TxRecord(
        entity_id=entity_id,
        tx_hash="0x" + f"{nonce:064x}",
        nonce=nonce,
        raw="0x02",
        gas=GAS,
        data="0xfeed",
    )


def apps(count: int, **fields: str) -> list:
    return [
        parse_application(f"A{i:03}", signed_fields(signature_id=f"{i:021d}", **fields))
        for i in range(count)
    ]


def test_the_batch_is_simulated_after_every_record_of_the_pool_at_the_latest_block(
    world, fake_redis
) -> None:
    """Every record in flight of every wallet is replayed, mined or not: the simulation alone
    tells which are mined (their signature is used there), so it reads one state."""
    from depeg_processor import errors

    node, wallet, other = world
    mine = TxRecords(fake_redis, prefix=STREAM, owner=wallet.address)
    mine.put_many([record("M0", 0), record("M1", 1)])
    other.put_many([record("O5", 5), record("O6", 6)])
    outcomes = wallet.submit(apps(2), entry_ids=["1-0", "1-1"])
    wallet.finish()
    assert all(isinstance(o, TxRecord) for o in outcomes)
    simulator = wallet.ctx.shared.simulator
    replayed = simulator.replayed[-1]
    assert sorted((call["from"], call["gas"]) for call in replayed) == sorted(
        [(OTHER_WALLET, hex(GAS))] * 2 + [(wallet.address, hex(GAS))] * 2
    ), "every record of every wallet"
    others = [call for call in replayed if call["from"] == OTHER_WALLET]
    assert others[0]["data"] == others[1]["data"] == "0xfeed"
    assert not [m for m, _p in node.calls if m == "eth_getTransactionCount"], "no other read"
    block = {"blockHash": f"0x{node.number:064x}"}  # the latest block, by hash
    simulated_at = [p[1] for m, p in node.calls if m == "eth_call"]
    assert simulated_at and all(tag == block for tag in simulated_at)
    done = simulator.done[-1]
    assert done(errors.PermanentError("reverted: ERROR:DMH-001:SIGNATURE_USED", kind="DMH-001"))
    assert done(errors.PermanentError("reverted: ERROR:SMH-001:SIGNATURE_USED", kind="SMH-001"))
    assert not done(errors.PermanentError("reverted: ERROR:DP-016:UNDERWRITING_F", kind="DP-016"))
    assert not done(errors.TransientError("out of gas"))


def test_nothing_in_flight_replays_nothing(world) -> None:
    node, wallet, _other = world
    wallet.submit(apps(1), entry_ids=["1-0"])
    wallet.finish()
    assert wallet.ctx.shared.simulator.replayed[-1] == []


def test_without_a_replay_one_application_per_bundle_and_holder_and_gas_within_a_block(
    world, fake_redis
) -> None:
    node, wallet, other = world
    wallet.ctx.shared.simulator.simulates = False  # the node lacks eth_simulateV1
    other.put_many([record(f"O{n}", n) for n in range(15)])  # 27 M gas in flight of 30 M
    batch = apps(2) + apps(1, bundleId="3", signer=OTHER, policyHolder=OTHER.address)
    outcomes = wallet.submit(batch, entry_ids=["1-0", "1-1", "1-2"])
    wallet.finish()
    kinds = [type(o).__name__ for o in outcomes]
    assert kinds == ["TxRecord", "WaitingForRoom", "WaitingForRoom"], (
        "the second of one bundle waits for the next batch; the third does not fit the block"
    )


def test_a_replay_that_fails_sends_nothing_and_the_batch_waits(world, fake_redis) -> None:
    """A transaction in flight fails when replayed: the batch was simulated on a state it
    will not meet, so nothing of it is signed; it waits (not an attempt) for what is in flight."""
    from depeg_processor import errors

    node, wallet, other = world
    other.put_many([record("O5", 5)])
    simulator = wallet.ctx.shared.simulator
    replay_fails = errors.ReplayFailed("1 of 1 replayed transactions in flight fail")

    def simulate(calls, block="pending", *, before=(), done=lambda error: False):
        simulator.replayed.append(list(before))
        raise replay_fails

    simulator.simulate = simulate
    outcomes = wallet.submit(apps(2), entry_ids=["1-0", "1-1"])
    wallet.finish()
    assert outcomes == [replay_fails, replay_fails]
    assert isinstance(replay_fails, errors.WaitingForRoom)
    assert simulator.replayed[-1] and wallet.records.count() == 0
    assert not [m for m, _p in node.calls if m == "eth_sendRawTransaction"]


class SimulatingNode(Node):
    """Its simulations say how much gas each call used: less than the estimate."""

    def batch(self, calls) -> list:
        from depeg_processor.chain.simulation import Returned

        answers = super().batch(calls)
        return [
            Returned.of("0x", 1_200_000) if method == "eth_call" else answer
            for (method, _params), answer in zip(calls, answers)
        ]


def test_the_gas_limit_is_never_cut_to_the_simulated_gas_used(fake_redis) -> None:
    """The replay warms storage that the chain may find cold (a transaction of the pool that
    is never mined): a limit of 1.07 x the simulated gasUsed ran out of gas on chain, a paid
    revert against an honest applicant. Each is signed at the estimate with its headroom; the
    gasUsed only feeds the in-flight limit."""
    node = SimulatingNode()
    fees = FeePolicy(base_fee=node.latest, suggested_tip=lambda: GWEI, cap=100 * GWEI)
    wallet = build_wallet(fake_redis, chain=node, clock=Clock(), fees=fees)
    wallet.lease.acquire()
    assert wallet.take_over()
    try:
        outcomes = wallet.submit(apps(2), entry_ids=["1-0", "1-1"])
        wallet.finish()
    finally:
        wallet.close()
    assert [o.gas for o in outcomes] == [1_800_000, 1_800_000], "1.5 M estimated x 1.2"


class PoolWarmedNode(Node):
    """What the pool has in flight warms storage: a call estimated against the pending block
    needs less gas than against the latest one (a slot it writes first there); `cold` is the
    latest block's answer (an error where the call needs what is in flight)."""

    def __init__(self, cold) -> None:
        super().__init__()
        self.cold = cold

    def batch(self, calls) -> list:
        calls = list(calls)
        answers = super().batch(calls)
        return [
            self.cold if method == "eth_estimateGas" and params[1] == "latest" else answer
            for (method, params), answer in zip(calls, answers)
        ]


@pytest.mark.parametrize(
    ("cold", "gas"),
    [
        pytest.param(hex(1_600_000), 1_920_000, id="colder-latest-sets-the-limit"),
        pytest.param(hex(1_400_000), 1_800_000, id="warmer-latest-leaves-the-pending-one"),
        pytest.param(None, 1_800_000, id="latest-refuses-pending-estimate-taken"),
    ],
)
def test_the_gas_limit_covers_a_chain_without_what_is_in_flight(fake_redis, cold, gas) -> None:
    """A limit estimated only where the pool's transactions in flight warmed storage ran out of
    gas when replayed before them (and would on chain, mined first): the larger of the latest
    and the pending block's estimates sets it."""
    from depeg_processor import errors

    node = PoolWarmedNode(cold or errors.PermanentError("reverted: ERROR:DP-015:ALLOWANCE"))
    fees = FeePolicy(base_fee=node.latest, suggested_tip=lambda: GWEI, cap=100 * GWEI)
    wallet = build_wallet(fake_redis, chain=node, clock=Clock(), fees=fees)
    wallet.lease.acquire()
    assert wallet.take_over()
    try:
        outcomes = wallet.submit(apps(1), entry_ids=["1-0"])
        wallet.finish()
    finally:
        wallet.close()
    assert [o.gas for o in outcomes] == [gas]
    tags = [p[1] for m, p in node.calls if m == "eth_estimateGas"]
    assert tags == ["latest", "pending"], "both in one request"
