"""The pool's nonce check reads only the records of the nonces the node has in its pool."""

from __future__ import annotations

from depeg_processor.wallet.reconcile import unexplained
from depeg_processor.wallet.records import TxRecords

WALLET = "0x00000000000000000000000000000000000000a1"


class Counts:
    """A node answering the nonce pair of one wallet: (mined, pending)."""

    def __init__(self, mined: int, pending: int) -> None:
        self.mined, self.pending = mined, pending

    def batch(self, calls: list) -> list:
        return [hex(self.mined if tag == "latest" else self.pending) for _m, (_a, tag) in calls]


class NoRedis:
    def pipeline(self, **_kwargs: object) -> None:
        raise AssertionError("Redis was read with nothing in the node's pool")


def records_at(fake_redis, nonces) -> TxRecords:
    records = TxRecords(fake_redis, prefix="s:w", stream="s", owner=WALLET)
    fake_redis.zadd(records.inflight_key, {f"E{n}": n for n in nonces})
    return records


def test_only_the_nonces_between_mined_and_pending_are_looked_at(fake_redis) -> None:
    """Hundreds of mined records await their confirmations; a gap among them (below the
    mined count) explains nothing and asks for nothing; one above it is unexplained."""
    records = records_at(fake_redis, [n for n in range(200) if n not in (150, 170)])
    [found] = unexplained(Counts(160, 175), fake_redis, [records])
    assert (found.mined, found.pending, found.nonces) == (160, 175, (170,))
    assert unexplained(Counts(171, 175), fake_redis, [records]) == []
    assert unexplained(Counts(200, 202), fake_redis, [records])[0].nonces == (200, 201)


def test_nothing_in_the_nodes_pool_reads_no_records(fake_redis) -> None:
    records = records_at(fake_redis, range(7))
    assert unexplained(Counts(7, 7), NoRedis(), [records]) == []
