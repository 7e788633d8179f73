"""A depeg burst into full blocks (bench/burst.py's scenario): 200 applications, blocks that
hold about ten, the base fee from 10 gwei and rising with every full block. Priced for the
wait, they land in at most 1.2x the blocks the chain's capacity needs, none reverted.

The wallet's cap on transactions in flight is set above the burst: at the default (16, seen
mined every 2 s) one wallet cannot fill blocks of ten a second, and the burst would not be one
(bench/burst.py measures what the cap costs)."""

from __future__ import annotations

import pytest

from bench.burst import GWEI, run_burst
from tests.integration.conftest import dead_letters

COUNT = 200


@pytest.fixture
def anvil_args() -> dict:
    return {"block_time": 1}  # blocks keep coming, full or not


def test_a_burst_lands_within_a_fifth_more_blocks_than_capacity_needs(
    start_service, webapp, anvil, product, redis_client
):
    result = run_burst(
        anvil=anvil,
        client=redis_client,
        webapp=webapp,
        product=product,
        start=lambda **settings: (
            start_service(  # the default poll interval
                receipt_poll_interval=2.0, **settings
            ).service
        ),
        count=COUNT,
        per_block=10,
        max_in_flight=COUNT,
    )
    print(
        f"{result.used} blocks for {COUNT} applications; capacity needs {result.needed} "
        f"({result.per_block} a block), ratio {result.ratio:.2f}, {result.replaced:.0f} "
        f"replacements\n{result.table()}"
    )
    assert result.landed == COUNT and product.application_count() == COUNT + 2
    assert result.reverted == 0
    assert not dead_letters(redis_client)
    assert 9 <= result.per_block <= 11, "a block holds about ten"
    assert result.blocks[-1].base_fee > 3 * result.blocks[0].base_fee, (
        "full blocks raise the base fee:\n" + result.table()
    )
    assert result.blocks[0].base_fee >= 8 * GWEI, result.table()
    assert result.used <= 1.2 * result.needed, result.table()
    assert result.replaced <= COUNT / 4, (
        "priced for their wait, transactions waiting their turn are not re-priced"
    )
