"""Signature marks: one signature, one application, across wallets, replicas and restarts.

The product's message helper takes a signature once (`DMH-001` after that). The web app may
store one signed application twice under two entity ids (a double submit, a retried request):
the copy's transaction could only revert, on gas this service pays, or be caught by a
simulation. So every write-ahead marks the signatures of its records
(`<stream>:signature:<keccak of the signature>`, naming the entity id and its current
transaction) in the same Redis transaction as the records, and refuses as a whole (WATCH) a
first record whose signature another entity id has marked: two replicas racing with two copies
cannot both send. The batch reads the marks before anything asks the node, and sets a copy
aside as `duplicate`.

A mark stands for a signature that is, or may be, used on chain: while a record holds it (a
replacement moves it to the current hash) and, once its transaction is confirmed, for the
marks' lifetime (at least the stream's retention). It is released as soon as the signature
turns out unused (the transaction reverted on chain, or the application went back to the
queue), so a mark never refuses an application whose signature the product would still take.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence

import redis

from .. import keys

DONE_TTL = 7 * 24 * 3600  # seconds a completed application is remembered


@dataclasses.dataclass(frozen=True)
class SignatureMark:
    """The application a signature was sent for, and its transaction."""

    entity_id: str
    tx_hash: str
    confirmed: bool = False

    def to_value(self) -> str:
        return json.dumps(
            {"entityId": self.entity_id, "txHash": self.tx_hash, "confirmed": self.confirmed}
        )

    @classmethod
    def from_value(cls, value: str | None) -> SignatureMark | None:
        """The mark stored, or None (none, or not one of ours: it refuses nothing)."""
        if value is None:
            return None
        try:
            data = json.loads(value)
            return cls(str(data["entityId"]), str(data["txHash"]), bool(data.get("confirmed")))
        except (ValueError, KeyError, TypeError):
            return None

    def describe(self) -> str:
        state = "confirmed" if self.confirmed else "in flight"
        return f"application {self.entity_id} (tx {self.tx_hash}, {state})"


def mark_lifetime(retention: float) -> int | None:
    """Seconds a mark is kept after its last write: the stream's retention
    (REDIS_STREAM_RETENTION), and at least as long as the done marker. With the retention off
    the stream is never trimmed, so neither do the marks expire (None)."""
    if retention <= 0:
        return None
    return max(DONE_TTL, math.ceil(retention))


class SignatureMarks:
    """The marks of one applications stream. The write-ahead checks them (see write_ahead)
    and stages its marks into its own transaction through `stage`."""

    def __init__(self, client: redis.Redis, *, stream: str, ttl: int | None = DONE_TTL) -> None:
        self._redis = client
        self._stream = stream
        self.ttl = ttl

    def key(self, signature: str | bytes) -> str:
        """The mark's key of a signature (its bytes, or 0x-hex)."""
        if isinstance(signature, str):
            signature = bytes.fromhex(signature.removeprefix("0x"))
        return keys.signature_key(self._stream, signature)

    def get_many(self, signatures: Sequence[bytes]) -> list[SignatureMark | None]:
        """The mark of each signature, in order (one round trip)."""
        if not signatures:
            return []
        values = self._redis.mget([self.key(signature) for signature in signatures])
        return [SignatureMark.from_value(value) for value in values]

    def stage(self, pipe: redis.client.Pipeline, mark: SignatureMark, signature: str) -> None:
        """In MULTI: mark `signature` as sent for `mark`'s application, for the lifetime."""
        pipe.set(self.key(signature), mark.to_value(), ex=self.ttl)

    def releasable(self, pipe: redis.client.Pipeline, entity_id: str, signature: str) -> str | None:
        """Before MULTI: the key of `signature`'s mark if it names `entity_id` (WATCHed from
        here on), else None: a mark of another application is never released for this one."""
        if not signature:
            return None
        key = self.key(signature)
        pipe.watch(key)
        mark = SignatureMark.from_value(pipe.get(key))
        return key if mark is not None and mark.entity_id == entity_id else None

    def mark_missing(self, marks: Sequence[tuple[SignatureMark, str]]) -> int:
        """Mark these (mark, signature) where no mark exists yet (records written before
        signatures were marked); how many were marked."""
        if not marks:
            return 0
        pipe = self._redis.pipeline(transaction=False)
        for mark, signature in marks:
            pipe.set(self.key(signature), mark.to_value(), ex=self.ttl, nx=True)
        return sum(1 for marked in pipe.execute() if marked)
