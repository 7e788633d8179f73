"""What the replay reads of the pool's records: every record's hashes for each batch, its
calldata and gas once per transaction hash."""

from __future__ import annotations

import dataclasses

from depeg_processor.wallet.pool_flight import PoolInFlight
from depeg_processor.wallet.records import TxRecords
from depeg_processor.wallet.txrecord import TxRecord

WALLET_A, WALLET_B = "0x" + "a" * 40, "0x" + "b" * 40


def signed(entity_id: str, nonce: int, tx_hash: str, gas: int = 200_000) -> TxRecord:
    return TxRecord(
        entity_id=entity_id,
        tx_hash=tx_hash,
        nonce=nonce,
        raw="0x02",
        gas=gas,
        data=f"0x{nonce:08x}",
        signature=f"0x{nonce:0130x}",
    )


class CountingRedis:
    """The client, counting the record fields read of calldata."""

    def __init__(self, client) -> None:  # noqa: ANN001
        self._client = client
        self.data_reads = 0

    def pipeline(self, **kwargs):  # noqa: ANN003, ANN201
        pipe = self._client.pipeline(**kwargs)
        hmget = pipe.hmget

        def counted(key, fields):  # noqa: ANN001, ANN202
            self.data_reads += "data" in fields
            return hmget(key, fields)

        pipe.hmget = counted
        return pipe


def test_the_pool_in_flight_in_nonce_order_per_wallet(fake_redis) -> None:
    a = TxRecords(fake_redis, prefix="a", stream="s", owner=WALLET_A)
    b = TxRecords(fake_redis, prefix="b", stream="s", owner=WALLET_B)
    b.put_many([signed("b1", 4, "0xb1")])
    a.put_many([signed("a2", 8, "0xa2"), signed("a1", 7, "0xa1", gas=300_000)])
    found = PoolInFlight([b, a], fake_redis).read()
    assert [(t.sender, t.record.nonce, t.record.hashes) for t in found] == [
        (WALLET_A, 7, ("0xa1",)),
        (WALLET_A, 8, ("0xa2",)),
        (WALLET_B, 4, ("0xb1",)),
    ]
    assert (found[0].record.data, found[0].record.gas) == ("0x00000007", 300_000)


def read_once(fake_redis) -> tuple:
    """Wallet A's records of nonces 7 and 8, read once through a Redis that counts reads."""
    records = TxRecords(fake_redis, prefix="a", stream="s", owner=WALLET_A)
    records.put_many([signed("a1", 7, "0xa1"), signed("a2", 8, "0xa2")])
    counting = CountingRedis(fake_redis)
    pool = PoolInFlight([records], counting)
    pool.read()
    return records, counting, pool


def test_calldata_is_read_once_per_hash_and_a_replacement_is_seen(fake_redis) -> None:
    records, counting, pool = read_once(fake_redis)
    assert counting.data_reads == 2
    pool.read()
    assert counting.data_reads == 2  # nothing new: the hashes only
    replaced = dataclasses.replace(signed("a1", 7, "0xa1b"), previous_hashes=("0xa1",), gas=250_000)
    records.put_many([replaced, signed("a3", 9, "0xa3")])
    found = pool.read()
    assert counting.data_reads == 4  # the replacement's hash and the new record
    assert [(t.record.hashes, t.record.gas) for t in found] == [
        (("0xa1", "0xa1b"), 250_000),
        (("0xa2",), 200_000),
        (("0xa3",), 200_000),
    ]


def test_a_purged_record_is_not_replayed_nor_kept(fake_redis) -> None:
    records, counting, pool = read_once(fake_redis)
    records.complete_many([("a1", "0xa1")])
    fake_redis.delete(records.key("a2"))  # purged between the two reads of a batch
    assert pool.read() == []
    records.put_many([signed("a2", 8, "0xa2", gas=260_000)])  # written again: read again
    [again] = pool.read()
    assert (again.record.gas, counting.data_reads) == (260_000, 3)


def test_a_record_found_mined_is_not_read_again_until_its_block_is_lost(fake_redis) -> None:
    records = TxRecords(fake_redis, prefix="a", stream="s", owner=WALLET_A)
    records.put_many([signed("a1", 7, "0xa1"), signed("a2", 8, "0xa2")])
    counting = CountingRedis(fake_redis)
    pool = PoolInFlight([records], counting)
    block = {"0xa1"}

    def mined(record) -> bool:  # noqa: ANN001
        return any(h in block for h in record.hashes)

    assert len(pool.read(mined=mined)) == 2
    fake_redis.hset(records.key("a1"), "gas", "1")  # not read again while its block holds it
    again = pool.read(mined=mined)
    assert [t.record.gas for t in again] == [200_000, 200_000]
    records.put_many([signed("a3", 9, "0xa3")])
    assert [t.record.nonce for t in pool.read(mined=mined)] == [7, 8, 9]
    assert counting.data_reads == 3
    block.clear()  # a reorganisation: a1 is read again, hashes and all
    fake_redis.hset(records.key("a1"), "txHash", "0xa1c")
    first = pool.read(mined=mined)[0]
    assert (first.record.hashes, first.record.gas, counting.data_reads) == (("0xa1c",), 1, 4)


def test_records_below_the_highest_one_mined_are_not_read(fake_redis) -> None:
    """The simulated block holds wallet A's nonces up to 6: the next batch reads A from 6 on
    (no transaction below a used nonce can take effect), B whole (none of its is mined); a
    reorganisation that takes the block away has everything read again."""
    a = TxRecords(fake_redis, prefix="a", stream="s", owner=WALLET_A)
    b = TxRecords(fake_redis, prefix="b", stream="s", owner=WALLET_B)
    a.put_many([signed(f"a{n}", n, f"0xa{n}") for n in range(10)])
    b.put_many([signed(f"b{n}", n, f"0xb{n}") for n in range(20, 23)])
    block = {f"0xa{n}" for n in range(7)}

    def mined(record) -> bool:  # noqa: ANN001
        return any(h in block for h in record.hashes)

    pool = PoolInFlight([a, b], fake_redis)

    def nonces() -> list[tuple[str, int]]:
        return [(t.sender, t.record.nonce) for t in pool.read(mined=mined)]

    everything = [(WALLET_A, n) for n in range(10)] + [(WALLET_B, n) for n in range(20, 23)]
    assert nonces() == everything
    assert nonces() == [(WALLET_A, n) for n in range(6, 10)] + [
        (WALLET_B, n) for n in range(20, 23)
    ]
    assert nonces()[:4] == [(WALLET_A, n) for n in range(6, 10)]  # the floor stays found
    block.clear()
    assert nonces() == everything
