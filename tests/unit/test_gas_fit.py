"""Gas limits fitted to the gas used, only where a simulation at exactly them succeeded, and
only while what is in flight and the batch exceed a block."""

from __future__ import annotations

import math

import fakeredis

from depeg_processor import errors
from depeg_processor.chain.simulation import Returned
from depeg_processor.fees import Block
from depeg_processor.inbound.application import Application
from depeg_processor.wallet.gas_fit import DRIFT, NEED, NEED_STEP, GasFit
from depeg_processor.wallet.preflight import Preflight

USED = 1_480_000  # what each application uses in the simulation
NEEDED = 1_495_000  # the least limit each succeeds at (63/64 of a call, refunds at the end)
ESTIMATE = 1_700_000


class Node:
    """eth_simulateV1 and eth_estimateGas as a node answers them for these calls."""

    def __init__(self, needed: int = NEEDED) -> None:
        self.simulates, self.gas_cap = True, 50_000_000
        self.needed = needed
        self.colder, self.cold_call = 0, 0
        self.proofs, self.proof_fails = 0, False
        self.asked: list[list[int]] = []  # the gas limits of each simulation's calls

    def simulate(self, calls, block="pending", *, before=(), done=None):
        self.asked.append([int(c["gas"], 16) for c in calls])
        return [
            Returned.of("0x", USED)
            if int(c["gas"], 16) >= self.needed
            else errors.PermanentError("out of gas", kind="out_of_gas")
            for c in calls
        ]

    def simulate_v1(self, calls, block):
        """The fitting's proof: each first request after all in flight, each second after the
        wallet's own only (here nothing is in flight; `colder` is what call `cold_call` needs
        in the second)."""
        if self.proof_fails:
            raise errors.NodeUnavailable("no answer")
        self.proofs += 1
        results = self.simulate(calls, block)
        if self.proofs % 2 == 0 and int(calls[self.cold_call]["gas"], 16) < self.colder:
            results[self.cold_call] = errors.PermanentError("out of gas", kind="out_of_gas")
        return results

    def batch(self, requests):
        assert all(method == "eth_estimateGas" for method, _params in requests)
        return [hex(ESTIMATE)] * len(requests)


class Fees:
    def __init__(self, block_gas_limit: int) -> None:
        self.block_gas_limit = block_gas_limit
        self.latest = Block(number=7, base_fee=1, gas_limit=block_gas_limit, block_hash="0xb7")

    def current(self, *, fresh: bool = False) -> None:
        return None


class Product:
    def apply(self, args: tuple) -> str:
        return "0x" + bytes(args[4].to_bytes(4, "big")).hex()


def apps(count: int) -> list[Application]:
    return [
        Application(f"e{n}", f"0xh{n}", "0xw", 1, 1, n, f"0x{n}", b"\x01") for n in range(count)
    ]


def preflight(node: Node, block_gas_limit: int) -> Preflight:
    return Preflight(
        call=lambda data, gas=None: (
            {"from": "0xMe", "data": data} | ({"gas": hex(gas)} if gas else {})
        ),
        product=Product(),
        chain=node,
        simulator=node,
        fees=Fees(block_gas_limit),
        pool=[],
        client=fakeredis.FakeRedis(decode_responses=True),
    )


def test_in_a_crowded_block_the_limits_are_fitted_and_proven_at_exactly_them() -> None:
    node = Node()
    outcomes = preflight(node, block_gas_limit=30_000_000).check(apps(20))
    fitted = math.ceil(USED * NEED) + DRIFT
    assert fitted < int(ESTIMATE * 1.2)
    assert [gas for _data, gas in outcomes] == [fitted] * 20
    assert node.asked[-1] == [fitted] * 20, "the last simulation ran at the limits signed"
    assert (30_000_000 - 19 * USED) >= fitted, "a 30 M block takes 20 of them"


def test_below_a_blocks_worth_the_limit_it_succeeded_at_is_kept_with_one_simulation() -> None:
    node = Node()
    outcomes = preflight(node, block_gas_limit=30_000_000).check(apps(5))
    assert [gas for _data, gas in outcomes] == [int(ESTIMATE * 1.2)] * 5
    assert len(node.asked) == 1


def test_a_call_short_at_the_fitted_limit_keeps_the_batch_at_its_limit_and_raises_need() -> None:
    node = Node(needed=math.ceil(USED * NEED) + DRIFT + 1)
    check = preflight(node, block_gas_limit=30_000_000)
    outcomes = check.check(apps(20))
    assert [gas for _data, gas in outcomes] == [int(ESTIMATE * 1.2)] * 20
    node.asked.clear()
    outcomes = check.check(apps(20))
    refitted = math.ceil(USED * (NEED * NEED_STEP)) + DRIFT
    assert [gas for _data, gas in outcomes] == [refitted] * 20
    assert node.asked[-1] == [refitted] * 20


def test_a_call_short_of_gas_without_the_others_in_flight_keeps_its_limit() -> None:
    """As the first policy of a fresh bundle does, where another wallet's is replayed."""
    fitted, generous = math.ceil(USED * NEED) + DRIFT, int(ESTIMATE * 1.2)
    node = Node()
    node.colder, node.cold_call = fitted + 1, 19
    outcomes = preflight(node, block_gas_limit=30_000_000).check(apps(20))
    assert [gas for _data, gas in outcomes] == [fitted] * 19 + [generous]


def test_a_wallets_limits_never_fall_from_one_nonce_to_the_next() -> None:
    """A block builder that skips one that does not fit must not find the next one fitting."""
    fitted, generous = math.ceil(USED * NEED) + DRIFT, int(ESTIMATE * 1.2)
    node = Node()
    node.colder, node.cold_call = fitted + 1, 3
    outcomes = preflight(node, block_gas_limit=30_000_000).check(apps(20))
    assert [gas for _data, gas in outcomes] == [fitted] * 3 + [generous] * 17


def test_a_proof_without_an_answer_keeps_the_limits_it_succeeded_at() -> None:
    node = Node()
    node.proof_fails = True
    outcomes = preflight(node, block_gas_limit=30_000_000).check(apps(20))
    assert [gas for _data, gas in outcomes] == [int(ESTIMATE * 1.2)] * 20


def test_the_fitted_limit_is_never_above_the_limit_proven() -> None:
    fit = GasFit()
    assert fit.limit(60_000, proven=75_000) == 75_000
    assert fit.limit(1_000_000, proven=2_000_000) == math.ceil(1_000_000 * NEED) + DRIFT
    for _ in range(20):
        fit.short()
    assert fit.need == 1.2
