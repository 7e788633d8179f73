"""The simulation that fits the node: only what the simulated block does not hold is
replayed, and a request stays under the node's simulation gas cap."""

from __future__ import annotations

from depeg_processor import errors
from depeg_processor.chain.classify import classify
from depeg_processor.chain.simulation import Simulator, fitting
from depeg_processor.fees import Block
from depeg_processor.wallet.mined import MinedBlocks
from depeg_processor.wallet.txrecord import TxRecord
from devnet.simcap import over_cap


def block(number: int, parent: str, *txs: str, tag: str = "") -> Block:
    return Block(
        number=number,
        base_fee=1,
        block_hash=f"0xb{number}{tag}",
        parent_hash=parent,
        transactions=txs,
    )


def record(tx_hash: str, *previous: str) -> TxRecord:
    return TxRecord(entity_id="e", tx_hash=tx_hash, nonce=0, raw="0x", previous_hashes=previous)


def test_a_transaction_in_the_simulated_block_or_below_is_not_replayed() -> None:
    mined = MinedBlocks(fetch=lambda numbers: [])
    mined.follow(block(10, "0xb9", "0xaa"))
    mined.follow(block(11, "0xb10", "0xBB"))
    assert mined.holds(record("0xaa")) and mined.holds(record("0xbb"))
    assert mined.holds(record("0xcc", "0xaa"))  # a replaced one whose first send was mined
    assert not mined.holds(record("0xcc"))


def test_a_reorganised_block_is_forgotten_and_its_transactions_replayed() -> None:
    mined = MinedBlocks(fetch=lambda numbers: [])
    mined.follow(block(10, "0xb9", "0xaa"))
    mined.follow(block(11, "0xb10", "0xbb"))
    mined.follow(block(11, "0xb10", "0xcc", tag="x"))  # 11 again, another hash
    assert not mined.holds(record("0xbb")) and mined.holds(record("0xaa"))
    mined.follow(block(12, "0xother", "0xdd"))  # its parent is not the block known
    assert not mined.holds(record("0xaa")) and mined.holds(record("0xdd"))


def test_a_gap_is_filled_with_one_fetch_and_linked() -> None:
    asked = []

    def fetch(numbers):
        asked.append(list(numbers))
        return [block(n, f"0xb{n - 1}", f"0x{n}") for n in numbers]

    mined = MinedBlocks(fetch=fetch)
    mined.follow(block(10, "0xb9", "0xaa"))
    mined.follow(block(13, "0xb12", "0xdd"))
    assert asked == [[11, 12]]
    assert mined.holds(record("0xaa")) and mined.holds(record("0x12")) and len(mined) == 4


def test_the_calls_that_fit_under_the_cap_after_the_replay() -> None:
    replay = [{"gas": hex(20_000_000)}] * 2
    calls = [{"gas": hex(2_000_000)}] * 10
    assert fitting(replay, calls, 50_000_000) == 5
    assert fitting(replay * 2, calls, 50_000_000) == 0
    assert fitting([], calls, 50_000_000) == 10


def test_a_refusal_for_the_cap_is_its_own_kind_and_teaches_the_simulator() -> None:
    refusal = over_cap(
        {
            "method": "eth_simulateV1",
            "id": 1,
            "params": [{"blockStateCalls": [{"calls": [{"gas": hex(60_000_000)}]}]}, "latest"],
        },
        50_000_000,
    )
    assert refusal is not None
    error = classify(refusal["error"])
    assert isinstance(error, errors.SimulationTooLarge)
    assert isinstance(error, errors.WaitingForRoom)

    class Node:
        def request(self, method, params):
            raise error

    simulator = Simulator(chain=Node(), gas_cap=100_000_000)
    calls = [{"to": "0x1", "data": "0x", "gas": hex(30_000_000)}] * 2
    try:
        simulator.simulate(calls, "latest")
    except errors.SimulationTooLarge:
        pass
    else:
        raise AssertionError("the refusal should reach the preflight")
    assert simulator.gas_cap == 50_000_000  # the cap the node named
    assert simulator.simulates  # not a strike: the node simulates, only not that much


def test_a_simulation_under_the_cap_passes_the_emulator() -> None:
    member = {
        "method": "eth_simulateV1",
        "params": [{"blockStateCalls": [{"calls": [{"gas": hex(50_000_000)}]}]}, "latest"],
    }
    assert over_cap(member, 50_000_000) is None
    assert over_cap({"method": "eth_call", "params": []}, 1) is None
