"""Policy holders held to account: one paid revert per holder, across wallets, replicas and
restarts.

Whoever controls the state an application's call reads (the premium's allowance and balance,
the bundle's capital) can make the transaction revert after its simulation passed, and the
pool pays. So two marks per holder (lowercase address), under the stream's name:

- busy (`<stream>:holder-busy:<holder>` = the record key of its application in flight): the
  write-ahead writes it with the record and refuses (WATCH) a first record of a holder whose
  mark names another record that still exists; a batch reads it first, and the holder's other
  applications wait. One `approve(treasury, 0)` front-running a block then reverts one
  transaction, not all of the holder's. A mark whose record is gone is stale and ignored (a
  crash between the two leaves no holder stuck); it is released when its transaction settles.
- held (`<stream>:held:<holder>`, a hash: entityId, tx, block, reason, since, until): written
  with the settling of a revert on chain, in the same transaction that forgets its record, and
  kept HOLDER_HOLD_SECONDS. The holder's applications are set aside meanwhile; an operator
  lifts it with `python -m depeg_processor release-holder`.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterable, Sequence

import redis

from .. import keys
from .signatures import DONE_TTL
from .txrecord import TxRecord

DEFAULT_HOLD_SECONDS = 86400
BUSY_TTL = DONE_TTL  # a mark outlives any transaction; released when it settles
# Delete KEYS[1] only while it still names ARGV[1]: a mark of another record is never released.
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end"


@dataclasses.dataclass(frozen=True)
class Hold:
    """Why a holder is held: its application's transaction that reverted on chain, or (block
    0) that a private relay did not include since it would have reverted."""

    holder: str
    entity_id: str
    tx_hash: str
    block: int
    reason: str
    since: float
    until: float

    def to_fields(self) -> dict[str, str]:
        return {
            "entityId": self.entity_id,
            "tx": self.tx_hash,
            "block": str(self.block),
            "reason": self.reason,
            "since": f"{self.since:.3f}",
            "until": f"{self.until:.3f}",
        }

    @classmethod
    def from_fields(cls, holder: str, fields: dict[str, str]) -> Hold:
        return cls(
            holder=holder,
            entity_id=fields.get("entityId", ""),
            tx_hash=fields.get("tx", ""),
            block=int(fields.get("block") or 0),
            reason=fields.get("reason", ""),
            since=float(fields.get("since") or 0),
            until=float(fields.get("until") or 0),
        )

    def describe(self) -> str:
        until = datetime.datetime.fromtimestamp(self.until, datetime.UTC).isoformat(
            timespec="seconds"
        )
        what = (
            f"reverted on chain in block {self.block}"
            if self.block
            else "was not included by the private relay, since it would have reverted"
        )
        return (
            f"policy holder {self.holder} is held until {until}: its application "
            f"{self.entity_id}'s transaction {self.tx_hash} {what} ({self.reason}); "
            f"`release-holder {self.holder}` lifts it"
        )


@dataclasses.dataclass(frozen=True)
class HolderState:
    """What stops a holder's next application: a hold, or another one in flight (the record
    key named by its busy mark, while that record exists)."""

    hold: Hold | None = None
    busy: str | None = None


class Holders:
    """The holds and busy marks of one applications stream. The write-ahead checks them (see
    write_ahead) and stages its marks into its own transaction through `stage`."""

    def __init__(
        self, client: redis.Redis, *, stream: str, hold_seconds: int = DEFAULT_HOLD_SECONDS
    ) -> None:
        self._redis = client
        self._stream = stream
        self.hold_seconds = hold_seconds
        self._release = client.register_script(_RELEASE)  # no I/O until it is called

    def held_key(self, holder: str) -> str:
        return keys.held_key(self._stream, holder.lower())

    def busy_key(self, holder: str) -> str:
        return keys.holder_busy_key(self._stream, holder.lower())

    def states(self, holders: Sequence[str]) -> list[HolderState]:
        """Each holder's state, in order: one round trip, and a second only to tell which busy
        marks are stale."""
        if not holders:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for holder in holders:
            pipe.hgetall(self.held_key(holder))
            pipe.get(self.busy_key(holder))
        replies = pipe.execute()
        holds, marks = replies[0::2], replies[1::2]
        named = [mark for mark in marks if mark]
        live = set()
        if named:
            pipe = self._redis.pipeline(transaction=False)
            for record_key in named:
                pipe.exists(record_key)
            live = {key for key, exists in zip(named, pipe.execute()) if exists}
        return [
            HolderState(
                hold=Hold.from_fields(holder.lower(), hold) if hold else None,
                busy=mark if mark in live else None,
            )
            for holder, hold, mark in zip(holders, holds, marks)
        ]

    def stage(self, pipe: redis.client.Pipeline, first: Sequence[tuple[TxRecord, str]]) -> None:
        """In MULTI: each holder's busy mark names its record."""
        for record, key in first:
            if record.holder:
                pipe.set(self.busy_key(record.holder), key, ex=BUSY_TTL)

    def stage_hold(self, pipe: redis.client.Pipeline, hold: Hold) -> None:
        """In MULTI: hold `hold.holder` until `hold.until` (nothing with holding off)."""
        if self.hold_seconds > 0:
            key = self.held_key(hold.holder)
            pipe.delete(key)
            pipe.hset(key, mapping=hold.to_fields())
            pipe.expire(key, self.hold_seconds)

    def releasable(self, pipe: redis.client.Pipeline, holder: str, key: str) -> str | None:
        """Before MULTI: the holder's busy mark key if it names the record `key` (WATCHed
        from here on), else None."""
        if not holder:
            return None
        busy_key = self.busy_key(holder)
        pipe.watch(busy_key)
        return busy_key if pipe.get(busy_key) == key else None

    def release_busy(self, settled: Iterable[tuple[str, str]]) -> None:
        """These (holder, record key) settled: each busy mark that still names its record goes
        (one round trip; a mark left behind is stale once its record is gone)."""
        settled = [(holder, key) for holder, key in settled if holder]
        if not settled:
            return
        pipe = self._redis.pipeline(transaction=False)
        for holder, key in settled:
            self._release(keys=[self.busy_key(holder)], args=[key], client=pipe)
        pipe.execute()

    def release_hold(self, holder: str) -> Hold | None:
        """Lift a holder's hold (the operator's `release-holder`): what it held, or None."""
        key = self.held_key(holder)
        pipe = self._redis.pipeline(transaction=True)
        pipe.hgetall(key)
        pipe.delete(key)
        fields, _deleted = pipe.execute()
        return Hold.from_fields(holder.lower(), fields) if fields else None
