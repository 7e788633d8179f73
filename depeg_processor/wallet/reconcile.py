"""The chain is the truth about what the pool sent: before a batch, every wallet's nonce at the
node must be explained by its records.

A wallet's nonces from its mined count (`latest`) up to its pending count are its
transactions in the node's pool. Each was recorded before it was broadcast (write-ahead), so
each has a record in flight with that nonce. A nonce in that range without a record is a
transaction the processor no longer remembers: Redis lost the writes (a restart from a
snapshot, a failover to a replica that was behind). Such a transaction may carry an
application that is back in the stream as new; sending it again (from any wallet of the pool)
would revert on chain with its signature used, paid for, and a simulation cannot see it. So
the pool holds until every such transaction is mined (or the node drops it); the
applications then find their signatures used by the pool's transactions and are completed
(see applied).

The node is read before Redis: a transaction the node shows was recorded before it was sent,
so the records read afterwards hold it (a record purged in between was mined, and its nonce
is below a later `latest`: at worst one check holds for nothing).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import redis

from .. import errors
from ..chain.calls import ChainClient
from .records import TxRecords


@dataclasses.dataclass(frozen=True)
class Unexplained:
    """One wallet's transactions in the node's pool that no record accounts for."""

    address: str
    mined: int  # the node's mined count (`latest`)
    pending: int  # the node's pending count
    nonces: tuple[int, ...]  # the nonces between them without a record

    def __str__(self) -> str:
        shown = ", ".join(map(str, self.nonces[:5])) + (", …" if len(self.nonces) > 5 else "")
        return (
            f"wallet {self.address} has {len(self.nonces)} transaction(s) in the node's pool "
            f"that no record explains (nonces {shown}; mined {self.mined}, pending "
            f"{self.pending})"
        )


def unexplained(
    chain: ChainClient, client: redis.Redis, pool: Sequence[TxRecords]
) -> list[Unexplained]:
    """The pool's wallets whose pending nonces the records do not explain (one batch of node
    calls, then one Redis round trip reading only the records of the nonces between the mined
    and the pending count, none when they are equal: the in-flight sets also hold every mined
    record awaiting its confirmations, hundreds in a burst). Raises NodeUnavailable when the
    node does not say."""
    wallets = [records for records in pool if records.owner is not None]
    if not wallets:
        return []
    answers = chain.batch(
        [
            ("eth_getTransactionCount", [records.owner, tag])
            for records in wallets
            for tag in ("latest", "pending")
        ]
    )
    failed = [a for a in answers if isinstance(a, Exception)]
    if failed:
        raise errors.NodeUnavailable(f"the wallets' nonces could not be read: {failed[0]}")
    counts = [(int(answers[2 * n], 16), int(answers[2 * n + 1], 16)) for n in range(len(wallets))]
    waiting = [
        (r, mined, pending) for r, (mined, pending) in zip(wallets, counts) if pending > mined
    ]
    if not waiting:  # nothing in the node's pool: nothing to explain, no Redis read
        return []
    pipe = client.pipeline(transaction=False)
    for records, mined, pending in waiting:  # only the records of the nonces in question
        pipe.zrangebyscore(records.inflight_key, mined, pending - 1, withscores=True)
    found = []
    for (records, mined, pending), members in zip(waiting, pipe.execute()):
        known = {int(score) for _member, score in members}
        missing = tuple(nonce for nonce in range(mined, pending) if nonce not in known)
        if missing:
            found.append(Unexplained(str(records.owner), mined, pending, missing))
    return found
