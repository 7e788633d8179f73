"""What the pool has in flight, as the wallets' write-ahead records have it: the replay the
preflight simulates a batch after (`preflight.py`).

It is read before every batch, and the records in flight grow with what awaits its
confirmations (about a hundred on mainnet with 6). Reading each record whole (its raw
transaction too) took most of a batch's time, so only what a replay needs is read: each
record's hashes every time, and its calldata and gas once per transaction hash. A hash commits
to the calldata and gas it signed, so what was read for it stays true while it is in flight.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

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
    """Reads the pool's records in flight, keeping the calldata and gas of each transaction
    hash while it is in flight (see the module docstring)."""

    def __init__(self, pool: Sequence[TxRecords], client: redis.Redis) -> None:
        self._pool = pool
        self._redis = client
        self._signed: dict[str, tuple[str, int]] = {}  # tx hash -> (calldata, gas)

    def read(self) -> list[InFlightTx]:
        """Every record in flight of every wallet of the pool, in nonce order per wallet (two
        Redis round trips; three when a transaction is new since the last read)."""
        wallets = [records for records in self._pool if records.owner is not None]
        pipe = self._redis.pipeline(transaction=False)
        for records in wallets:
            pipe.zrange(records.inflight_key, 0, -1, withscores=True)
        wanted = [
            (str(records.owner), records.key(entity_id), int(nonce))
            for records, members in zip(wallets, pipe.execute())
            for entity_id, nonce in members
        ]
        pipe = self._redis.pipeline(transaction=False)
        for _sender, key, _nonce in wanted:
            pipe.hmget(key, HASHES)
        hashes = pipe.execute()
        known = self._signed
        new = [i for i, (h, _previous) in enumerate(hashes) if h is not None and h not in known]
        signed = {h: known[h] for h, _previous in hashes if h in known}
        if new:
            pipe = self._redis.pipeline(transaction=False)
            for i in new:
                pipe.hmget(wanted[i][1], SIGNED)
            for i, (tx_hash, previous, data, gas) in zip(new, pipe.execute()):
                hashes[i] = [tx_hash, previous]  # rewritten meanwhile: the newer one
                if tx_hash is not None:
                    signed[tx_hash] = (data or "", int(gas or 0))
        self._signed = signed  # the hashes no longer in flight are forgotten
        found = []
        for (sender, _key, nonce), (tx_hash, previous) in zip(wanted, hashes):
            if tx_hash is None:  # purged since the in-flight set was read
                continue
            data, gas = signed[tx_hash]
            previous_hashes = tuple(h for h in (previous or "").split(",") if h)
            found.append(InFlightTx(sender, Signed(nonce, data, gas, (*previous_hashes, tx_hash))))
        return sorted(found, key=lambda tx: (tx.sender, tx.record.nonce))
