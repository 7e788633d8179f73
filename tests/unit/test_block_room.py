"""The in-flight limit follows what the next blocks take by gas, and falls back to geth's 16
account slots while the node's pool shows it is full."""

from __future__ import annotations

from depeg_processor.errors import ReplacementUnderpriced, TransientError
from depeg_processor.wallet.block_room import ACCOUNT_SLOTS, FULL_POOL_SECONDS, BlockRoom
from depeg_processor.wallet.publish import pool_is_full


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_unmeasured_the_limit_is_geths_account_slots() -> None:
    room = BlockRoom()
    assert room.limit(upper=64, block_gas_limit=30_000_000) == ACCOUNT_SLOTS == 16
    room.measured(1_480_000)
    assert room.limit(upper=64, block_gas_limit=0) == 16  # no head read yet
    assert room.limit(upper=8, block_gas_limit=30_000_000) == 8  # the setting bounds it


def test_measured_one_wallet_keeps_a_block_and_a_half_of_the_real_product() -> None:
    room = BlockRoom()
    room.measured(1_480_000)
    assert room.limit(upper=64, block_gas_limit=30_000_000) == 31  # 1.5 x 30 M / 1.48 M
    assert room.limit(upper=24, block_gas_limit=30_000_000) == 24
    room.measured(10_000_000)  # heavy applications: never below the slots a pool keeps
    room.measured(10_000_000)
    assert room.limit(upper=64, block_gas_limit=30_000_000) >= 16


def test_a_full_pool_brings_the_limit_back_to_16_for_a_while() -> None:
    clock = Clock()
    room = BlockRoom(monotonic=clock)
    room.measured(1_480_000)
    room.pool_full("txpool is full")
    assert room.limit(upper=64, block_gas_limit=30_000_000) == 16
    clock.now += FULL_POOL_SECONDS + 1
    assert room.limit(upper=64, block_gas_limit=30_000_000) == 31


def test_the_answers_that_say_the_pool_is_full() -> None:
    assert pool_is_full(TransientError("node error -32000: txpool is full"))
    assert pool_is_full(ReplacementUnderpriced("transaction underpriced"))
    assert not pool_is_full(ReplacementUnderpriced("replacement transaction underpriced"))
    assert not pool_is_full(TransientError("nonce too low"))
