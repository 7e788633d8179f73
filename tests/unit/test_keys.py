"""keys: the Redis key names deployed data lives under, spelled out byte for byte."""

from __future__ import annotations

from depeg_processor import keys
from depeg_processor.wallet.pool import Member
from depeg_processor.wallet.records import SpendLedger, TxRecords

STREAM, ADDRESS, ENTITY = "application:signatures", "0x" + "Ab" * 20, "01HZX3Q4K8"


def test_the_web_apps_application_hash() -> None:
    assert keys.application_key(ENTITY) == "PendingApplication:01HZX3Q4K8"


def test_per_application_keys_live_under_the_stream() -> None:
    assert keys.owner_key(STREAM, ENTITY) == "application:signatures:owner:01HZX3Q4K8"
    assert keys.done_key(STREAM, ENTITY) == "application:signatures:done:01HZX3Q4K8"


def test_per_holder_keys_live_under_the_stream_and_collide_with_no_wallets() -> None:
    holder = "0x" + "ab" * 20
    assert keys.held_key(STREAM, holder) == f"application:signatures:held:{holder}"
    assert keys.holder_busy_key(STREAM, holder) == f"application:signatures:holder-busy:{holder}"
    wallet_zero = {keys.record_key(STREAM, ENTITY), keys.inflight_key(STREAM)}
    assert not {keys.held_key(STREAM, holder), keys.holder_busy_key(STREAM, holder)} & wallet_zero


def test_the_first_wallet_keeps_the_single_wallet_names() -> None:
    assert keys.wallet_prefix(STREAM, 0, ADDRESS) == STREAM
    assert keys.wallet_prefix(STREAM, 1, ADDRESS) == f"application:signatures:wallet:{ADDRESS}"
    assert keys.lease_key(STREAM, ADDRESS) == f"application:signatures:lease:{ADDRESS}"


def test_a_wallets_own_keys_live_under_its_prefix() -> None:
    assert keys.record_key(STREAM, ENTITY) == "application:signatures:tx:01HZX3Q4K8"
    assert keys.inflight_key(STREAM) == "application:signatures:inflight"
    assert keys.spent_key(STREAM) == "application:signatures:spent"


def test_wallets_records_and_ledger_use_these_names(fake_redis) -> None:
    second = Member(index=1, address=ADDRESS, stream=STREAM, base_consumer="c")
    assert second.prefix == keys.wallet_prefix(STREAM, 1, ADDRESS)
    assert second.lease_key == keys.lease_key(STREAM, ADDRESS)
    records = TxRecords(fake_redis, prefix=second.prefix, stream=STREAM)
    assert records.key(ENTITY) == f"{STREAM}:wallet:{ADDRESS}:tx:{ENTITY}"
    assert records.inflight_key == f"{STREAM}:wallet:{ADDRESS}:inflight"
    assert records.owner_key(ENTITY) == f"{STREAM}:owner:{ENTITY}"
    assert records.done_key(ENTITY) == f"{STREAM}:done:{ENTITY}"
    assert SpendLedger(fake_redis, prefix=second.prefix).key == f"{STREAM}:wallet:{ADDRESS}:spent"


def test_the_pools_ledgers_live_under_the_stream_beside_the_first_wallets_keys() -> None:
    """Wallet 0's prefix is the stream's name: the pool's keys must not be one of its own."""
    assert keys.reverted_key(STREAM) == "application:signatures:reverted"
    assert keys.pool_in_flight_key(STREAM) == "application:signatures:pool-in-flight"
    first = keys.wallet_prefix(STREAM, 0, ADDRESS)
    own = {keys.spent_key(first), keys.inflight_key(first), keys.record_key(first, "reverted")}
    assert own.isdisjoint({keys.reverted_key(STREAM), keys.pool_in_flight_key(STREAM)})
