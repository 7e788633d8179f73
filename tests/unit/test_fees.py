"""fees.FeePolicy: EIP-1559 fees, never above the operator's cap, cached for a short while."""

from __future__ import annotations

from depeg_processor.fees import HEADROOM_MARGIN, Backlog, Block, FeePolicy, Fees

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
    return FeePolicy(
        base_fee=node.base_fee,
        suggested_tip=node.suggested_tip,
        cap=cap,
        tip=tip,
        ttl=2.0,
        monotonic=clock or Clock(),
    )


def test_offers_twice_the_base_fee_plus_the_tip() -> None:
    fees = policy(Node(0, 0)).compute(10 * GWEI, 2 * GWEI)
    assert (fees.max_fee_per_gas, fees.max_priority_fee_per_gas, fees.base_fee) == (
        22 * GWEI,
        2 * GWEI,
        10 * GWEI,
    )
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


# -- priced for the wait -------------------------------------------------------------------------

GAS = 100_000


def seen(fees: FeePolicy, *blocks: tuple[int, int, int]) -> FeePolicy:
    """`fees` after observing blocks given as (number, gas used, gas limit)."""
    for number, used, limit in blocks:
        fees.observe(Block(number, 10 * GWEI, used, limit))
    return fees


def market(base: int = 10 * GWEI, tip: int = GWEI) -> Fees:
    return Fees(max_fee_per_gas=2 * base + tip, max_priority_fee_per_gas=tip, base_fee=base)


def test_gas_per_block_follows_the_gas_used_within_the_target_and_the_limit() -> None:
    fees = policy(Node(0, 0))
    assert fees.gas_per_block() is None
    assert seen(fees, (1, 1_000_000, 1_000_000)).gas_per_block() == 1_000_000
    seen(fees, (1, 0, 1_000_000))  # the same block again counts once
    assert fees.gas_per_block() == 1_000_000
    seen(fees, (2, 800_000, 1_000_000))
    assert fees.gas_per_block() == 900_000  # the average of the two
    seen(fees, (3, 0, 1_000_000), (4, 0, 1_000_000), (5, 0, 1_000_000))
    assert fees.gas_per_block() == 500_000, "never below the target: half the limit"


def test_blocks_to_wait_counts_the_gas_ahead() -> None:
    fees = seen(policy(Node(0, 0)), (1, 1_000_000, 1_000_000))  # ten transactions a block
    assert [fees.blocks_to_wait(ahead, GAS) for ahead in (0, 9, 10, 19, 20, 199)] == [
        0,
        0,
        1,
        1,
        2,
        19,
    ]


def test_without_a_block_seen_no_headroom_beyond_todays() -> None:
    fees = policy(Node(0, 0), cap=1000 * GWEI)
    priced = fees.for_wait(market(), gas=GAS, backlog=Backlog(ahead=150), count=3)
    assert priced == [market()] * 3  # 1.125 x margin is below twice the base fee


def test_headroom_grows_with_the_place_in_line() -> None:
    fees = seen(policy(Node(0, 0), cap=1000 * GWEI), (1, 1_000_000, 1_000_000))
    priced = fees.for_wait(market(), gas=GAS, backlog=Backlog(ahead=0), count=200)
    for i in (0, 10, 100, 199):
        blocks = i // 10
        wanted = int(10 * GWEI * 1.125 ** (blocks + 1) * HEADROOM_MARGIN) + GWEI
        assert priced[i].max_fee_per_gas == max(21 * GWEI, wanted)
        assert priced[i].max_priority_fee_per_gas == GWEI
        assert priced[i].base_fee == 10 * GWEI
    assert priced[0].max_fee_per_gas == 21 * GWEI, "never less than twice the base fee + tip"
    assert priced[199].max_fee_per_gas > 10 * GWEI * 1.125**20, "covers the 20th block"
    later = fees.for_wait(market(), gas=GAS, backlog=Backlog(ahead=100), count=1)
    assert later[0] == priced[100], "the transactions in flight count as ahead"


def test_headroom_stays_under_the_cap() -> None:
    fees = seen(policy(Node(0, 0), cap=50 * GWEI), (1, 1_000_000, 1_000_000))
    priced = fees.for_wait(market(), gas=GAS, backlog=Backlog(ahead=0), count=200)
    assert max(f.max_fee_per_gas for f in priced) == 50 * GWEI
    low_cap = policy(Node(0, 0), cap=15 * GWEI)
    capped = seen(low_cap, (1, 1_000_000, 1_000_000)).for_wait(
        low_cap.compute(10 * GWEI, GWEI), gas=GAS, backlog=Backlog(ahead=50), count=1
    )
    assert capped[0].max_fee_per_gas == 15 * GWEI


def test_headroom_fits_what_the_balance_leaves_above_the_minimum() -> None:
    fees = seen(policy(Node(0, 0), cap=1000 * GWEI), (1, 1_000_000, 1_000_000))
    spendable = 200 * GAS * 30 * GWEI  # 200 in flight at 30 gwei each at most
    priced = fees.for_wait(
        market(), gas=GAS, backlog=Backlog(ahead=100, spendable=spendable), count=100
    )
    assert max(f.max_fee_per_gas for f in priced) == 30 * GWEI
    assert sum(f.max_fee_per_gas * GAS for f in priced) * 2 <= spendable
    broke = fees.for_wait(market(), gas=GAS, backlog=Backlog(ahead=100, spendable=0), count=2)
    assert broke == [market()] * 2, "no room: today's fees, never less"
