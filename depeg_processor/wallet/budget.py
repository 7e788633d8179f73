"""What the pool paid in the last hour, for the two hourly ceilings that hold every wallet.

- The revert budget (MAX_REVERTED_GAS_PER_HOUR): anyone who can make the processor send a
  transaction that reverts spends Etherisc's money, so the gas the pool's reverted transactions
  used is kept in one ledger of the pool (`<stream>:reverted`), whichever wallet, replica or
  restart paid it. A transaction is written once (ZADD NX on "<tx hash>:<gas>:<wei>"): a revert
  settled again after a crash or by the next holder of its wallet is neither counted twice in
  the ledger nor in the metrics.
- The spending guard (MAX_GAS_SPEND_PER_HOUR) is the pool's too: each wallet keeps its own
  ledger of what its mined transactions paid (`<prefix>:spent`, `records.SpendLedger`) and
  publishes the most its transactions in flight can cost in one hash of the pool; the guard
  reads every wallet's ledger and that hash in one round trip. A wallet's in-flight figure
  older than the hour (its process gone, nobody sending from it) no longer counts.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis

from .. import keys
from .records import SpendLedger

WINDOW = 3600.0  # seconds: both ceilings are per hour


class RevertLedger:
    """The pool's reverted transactions of the last hour: their gas and wei."""

    def __init__(self, client: redis.Redis, *, stream: str) -> None:
        self._redis = client
        self.key = keys.reverted_key(stream)

    def add(self, reverts: Sequence[tuple[str, int, int]], now: float) -> tuple[set[str], int]:
        """Write these (tx hash, gas used, wei paid), trim what is older than the hour and
        sum its gas, in one round trip: (the hashes written for the first time, the last
        hour's reverted gas)."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.zremrangebyscore(self.key, "-inf", now - WINDOW)
        for tx_hash, gas, wei in reverts:
            pipe.zadd(self.key, {f"{tx_hash}:{gas}:{wei}": now}, nx=True)
        pipe.zrangebyscore(self.key, now - WINDOW, "+inf")
        pipe.expire(self.key, int(WINDOW) + 60)
        replies = pipe.execute()
        added = replies[1 : 1 + len(reverts)]
        new = {tx_hash for (tx_hash, _gas, _wei), count in zip(reverts, added) if count}
        return new, sum(int(member.split(":")[1]) for member in replies[-2])

    def last_hour(self, now: float) -> int:
        """The gas the pool's transactions that reverted in the last hour used."""
        return self.add((), now)[1]


class PoolSpend:
    """One wallet's view of the pool's spend: it writes its own ledger and in-flight figure,
    and reads everyone's."""

    def __init__(
        self, client: redis.Redis, *, stream: str, address: str, own: str, pool: Sequence[str]
    ) -> None:
        self._redis = client
        self._field = address
        self._key = keys.pool_in_flight_key(stream)
        self.own = SpendLedger(client, prefix=own)
        self._ledgers = [SpendLedger(client, prefix=prefix) for prefix in pool] or [self.own]

    def add_many(self, spends: list[tuple[str, int]], now: float) -> None:
        """What this wallet's mined transactions paid (its own ledger)."""
        self.own.add_many(spends, now)

    def last_hour(self, now: float, *, in_flight: int = 0) -> int:
        """Publish the most this wallet's transactions in flight can cost (`in_flight`), and
        return the pool's last hour: what every wallet's mined transactions paid plus what
        every wallet's in flight may cost."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(self._key, self._field, f"{in_flight}:{now}")
        for ledger in self._ledgers:
            pipe.zremrangebyscore(ledger.key, "-inf", now - WINDOW)
            pipe.zrangebyscore(ledger.key, now - WINDOW, "+inf")
        pipe.hgetall(self._key)
        replies = pipe.execute()
        paid = sum(
            int(member.rsplit(":", 1)[1])
            for members in replies[2 : 1 + 2 * len(self._ledgers) : 2]
            for member in members
        )
        return paid + sum(
            int(wei)
            for wei, at in (value.split(":", 1) for value in replies[-1].values())
            if float(at) > now - WINDOW
        )
