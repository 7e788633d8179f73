"""fees.FeePolicy: EIP-1559 fees, never above the operator's cap, cached for a short while."""
from __future__ import annotations

from depeg_processor.fees import FeePolicy

GWEI = 10**9


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Node:
    def __init__(self, base: int, tip: int) -> None:
        self.base, self.tip, self.asked = base, tip, 0

    def base_fee(self) -> int:
        self.asked += 1
        return self.base

    def suggested_tip(self) -> int:
        return self.tip


def policy(node: Node, *, cap: int = 30 * GWEI, tip=None, clock=None) -> FeePolicy:
    return FeePolicy(base_fee=node.base_fee, suggested_tip=node.suggested_tip, cap=cap, tip=tip,
                     ttl=2.0, monotonic=clock or Clock())


def test_offers_twice_the_base_fee_plus_the_tip() -> None:
    fees = policy(Node(0, 0)).compute(10 * GWEI, 2 * GWEI)
    assert (fees.max_fee_per_gas, fees.max_priority_fee_per_gas, fees.base_fee) == \
        (22 * GWEI, 2 * GWEI, 10 * GWEI)
    assert not fees.below_base_fee


def test_max_fee_is_capped() -> None:
    fees = policy(Node(0, 0), cap=25 * GWEI).compute(20 * GWEI, 2 * GWEI)
    assert fees.max_fee_per_gas == 25 * GWEI
    assert fees.max_priority_fee_per_gas == 2 * GWEI


def test_tip_never_exceeds_the_max_fee() -> None:
    fees = policy(Node(0, 0), cap=3 * GWEI).compute(1 * GWEI, 5 * GWEI)
    assert fees.max_fee_per_gas == 3 * GWEI
    assert fees.max_priority_fee_per_gas == 3 * GWEI


def test_cap_below_the_base_fee_is_reported() -> None:
    assert policy(Node(0, 0), cap=5 * GWEI).compute(8 * GWEI, GWEI).below_base_fee


def test_current_is_cached_for_the_ttl() -> None:
    clock, node = Clock(), Node(10 * GWEI, GWEI)
    fees = policy(node, clock=clock)
    first = fees.current()
    node.base = 12 * GWEI
    clock.now += 1.9
    assert fees.current() == first and node.asked == 1
    clock.now += 0.1
    assert fees.current().base_fee == 12 * GWEI and node.asked == 2


def test_configured_tip_overrides_the_node() -> None:
    fees = policy(Node(10 * GWEI, 7 * GWEI), tip=GWEI).current()
    assert fees.max_priority_fee_per_gas == GWEI
    assert fees.max_fee_per_gas == 21 * GWEI


def test_node_tip_used_when_none_configured() -> None:
    assert policy(Node(10 * GWEI, 7 * GWEI)).current().max_priority_fee_per_gas == 7 * GWEI
