"""What the pool has in flight, as the wallets' write-ahead records have it: the replay the
preflight simulates a batch after (`preflight.py`).

It is read before every batch, and the records in flight grow with what awaits its
confirmations (about a hundred on mainnet with 6). Reading each record whole (its raw
transaction too) took most of a batch's time, so only what a replay needs is read: each
record's hashes, and its calldata and gas once per transaction hash (a hash commits to the
calldata and gas it signed, so what was read for it stays true while it is in flight); and
not even the hashes of a record found mined at the simulated block last time (see `read`),
nor any record of a wallet below the highest one found so (see `_floor`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import redis

from .records import TxRecords

HASHES = ("txHash", "previousHashes")
SIGNED = (*HASHES, "data", "gas")


@dataclasses.dataclass(frozen=True)
class Signed:
    """What a record in flight signed that a replay needs."""

    nonce: int
    data: str
    gas: int
    hashes: tuple[str, ...]  # every hash signed for the nonce, the current one last


@dataclasses.dataclass(frozen=True)
class InFlightTx:
    """One transaction of the pool in flight, as its record has it."""

    sender: str
    record: Signed


class PoolInFlight:
    """Reads the pool's records in flight, keeping what it read of each (see the module
    docstring)."""

    def __init__(self, pool: Sequence[TxRecords], client: redis.Redis) -> None:
        self._pool = pool
        self._redis = client
        self._kept: dict[str, InFlightTx] = {}  # record key -> what the last read found

    def _floor(self, sender: str, mined: Callable[[Signed], bool] | None) -> int:
        """The lowest nonce of `sender` worth reading: that of its highest record read last
        time that `mined` says the simulated block holds (0: read all). A wallet's nonces are
        used in order, so every nonce below one the block holds is used at that block: no
        transaction of a record below it can take effect, and the replay has nothing to take
        from them (they are most of the set: mined records awaiting their confirmations).
        The record at the floor itself is read again, so the next batch finds it too; after a
        reorganisation the block no longer holds it and everything is read once more."""
        if mined is None:
            return 0
        held = [
            tx.record.nonce
            for tx in self._kept.values()
            if tx.sender == sender and mined(tx.record)
        ]
        return max(held, default=0)

    def read(self, *, mined: Callable[[Signed], bool] | None = None) -> list[InFlightTx]:
        """The records in flight of every wallet of the pool that may still take effect, in nonce
        order per wallet (two Redis round trips; three when a transaction is new since the
        last read). Without `mined`, every record in flight.

        `mined` says which transactions the simulated block holds (or a block below it): a
        record found so last time, at the same nonce, is not read again. That nonce is used
        on chain, so no transaction the record may hold now can take effect (a replacement
        or one written again for it never mines); they are the most of the records in flight
        (waiting for the watcher's purge). A block lost to a reorganisation no longer holds
        them, and they are read again."""
        wallets = [records for records in self._pool if records.owner is not None]
        pipe = self._redis.pipeline(transaction=False)
        for records in wallets:
            floor = self._floor(str(records.owner), mined)
            if floor:
                pipe.zrangebyscore(records.inflight_key, floor, "+inf", withscores=True)
            else:
                pipe.zrange(records.inflight_key, 0, -1, withscores=True)
        wanted = [
            (str(records.owner), records.key(entity_id), int(nonce))
            for records, members in zip(wallets, pipe.execute())
            for entity_id, nonce in members
        ]
        kept, found = self._kept, {}
        for sender, key, nonce in wanted:
            prior = kept[key].record if key in kept else None
            if mined is not None and prior is not None and prior.nonce == nonce and mined(prior):
                found[key] = InFlightTx(sender, prior)
        unsettled = [(sender, key, nonce) for sender, key, nonce in wanted if key not in found]
        pipe = self._redis.pipeline(transaction=False)
        for _sender, key, _nonce in unsettled:
            pipe.hmget(key, HASHES)
        hashes = pipe.execute()
        new = [
            i
            for i, ((_sender, key, _nonce), (tx_hash, _previous)) in enumerate(
                zip(unsettled, hashes)
            )
            if tx_hash is not None and (key not in kept or kept[key].record.hashes[-1] != tx_hash)
        ]
        signed: dict[int, tuple[str, int]] = {}  # read now, by index in `unsettled`
        if new:
            pipe = self._redis.pipeline(transaction=False)
            for i in new:
                pipe.hmget(unsettled[i][1], SIGNED)
            for i, (tx_hash, previous, data, gas) in zip(new, pipe.execute()):
                hashes[i] = [tx_hash, previous]  # rewritten meanwhile: the newer one
                signed[i] = (data or "", int(gas or 0))
        for i, ((sender, key, nonce), (tx_hash, previous)) in enumerate(zip(unsettled, hashes)):
            if tx_hash is None:  # purged since the in-flight set was read
                continue
            # a hash commits to the calldata and gas it signed: what was read for it holds
            data, gas = signed[i] if i in signed else (kept[key].record.data, kept[key].record.gas)
            previous_hashes = tuple(h for h in (previous or "").split(",") if h)
            found[key] = InFlightTx(sender, Signed(nonce, data, gas, (*previous_hashes, tx_hash)))
        self._kept = found
        return sorted(found.values(), key=lambda tx: (tx.sender, tx.record.nonce))
