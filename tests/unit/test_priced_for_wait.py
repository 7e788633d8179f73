"""Wallet.submit prices each transaction of a batch for its wait behind the wallet's
transactions in flight (fees.FeePolicy.for_wait), from what the receipt watcher last saw of
the wallet."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from depeg_processor.fees import Block, FeePolicy
from depeg_processor.inbound.application import parse_application
from depeg_processor.wallet.preflight import GAS_HEADROOM

from .helpers import signed_fields
from .test_replacements import GWEI, Harness

GAS = int(100_000 * GAS_HEADROOM)  # the estimate below, with headroom for state changes


@pytest.fixture
def h(fake_redis) -> Iterator[Harness]:
    harness = Harness(
        fake_redis,
        # the latest block: 10 gwei, full at 1.2M gas (ten of these transactions)
        fees=FeePolicy(
            base_fee=lambda: Block(
                number=7, base_fee=10 * GWEI, gas_used=10 * GAS, gas_limit=10 * GAS
            ),
            suggested_tip=lambda: GWEI,
            cap=1000 * GWEI,
            keep=10**18,
        ),
        pending_nonce=100,  # and no record stored
    )
    harness.chain.respond = lambda param, attempt: (
        hex(100_000) if isinstance(param, dict) else "0x" + "00" * 32
    )  # estimates (and simulations), hashes
    yield harness
    harness.wallet.close()  # the publishing thread ends


def submit(h: Harness, count: int) -> list:
    apps = [
        parse_application(f"E{i:03}", signed_fields(signature_id=f"{i:021d}")) for i in range(count)
    ]
    outcomes = h.wallet.submit(apps, entry_ids=[f"1-{i}" for i in range(count)])
    h.wallet.finish()
    return outcomes


def test_each_transaction_gets_headroom_for_the_blocks_ahead_of_it(h) -> None:
    h.wallet.ctx.last_seen.observed(mined_nonce=0, balance=10**21)  # 100 in flight before the batch
    records = submit(h, 20)
    assert [r.nonce for r in records] == list(range(100, 120))
    fees = [r.max_fee_per_gas for r in records]
    assert fees == sorted(fees) and fees[0] < fees[-1], "the later, the more headroom"
    expected = [
        int(10 * GWEI * 1.125 ** (ahead // 10 + 1) * 1.25) + GWEI for ahead in range(100, 120)
    ]
    assert fees == expected
    assert {r.max_priority_fee_per_gas for r in records} == {GWEI}
    stored = h.records.get_many([r.entity_id for r in records])
    assert [stored[r.entity_id].max_fee_per_gas for r in records] == fees, "recorded as signed"


def test_before_the_watcher_saw_the_wallet_the_fees_are_twice_the_base_fee_plus_tip(h) -> None:
    assert {r.max_fee_per_gas for r in submit(h, 20)} == {21 * GWEI}


def test_the_headroom_fits_the_balance_above_the_minimum(h) -> None:
    spendable = 120 * GAS * 25 * GWEI  # 120 in flight after the batch, at most 25 gwei each
    h.wallet.ctx.last_seen.observed(mined_nonce=0, balance=10**18 + spendable)
    records = submit(h, 20)
    assert max(r.max_fee_per_gas for r in records) == 25 * GWEI
    h.wallet.ctx.last_seen.observed(mined_nonce=0, balance=10**18 // 2)  # below the minimum
    assert {r.max_fee_per_gas for r in submit(h, 2)} == {21 * GWEI}
