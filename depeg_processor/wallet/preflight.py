"""The check before signing: would the product take these applications, given everything the
pool already has in flight?

The node's pending block holds only one block's worth of the transaction pool, by gas: with 40
real applications in flight (1.5 M gas each) it sees 19 of them, so a simulation against
"pending" misses what the others change (a bundle's free capital, a signature used, a holder's
premium balance or allowance), and such a transaction reverts on chain, paid for. So where the
node offers `eth_simulateV1`, the batch is simulated against the latest block (read afresh for
each batch: the web app's approval before an application is in it) after a replay of
every unmined transaction of every wallet of the pool (their write-ahead records hold sender,
calldata and gas), in one simulated block: each application sees all of them and the ones
before it in the batch. What is mined at that block (a nonce below the wallet's count there) is
not replayed, and the count and the simulation read the same block, so nothing counts twice.

Without `eth_simulateV1` each application is an `eth_call` against "pending", and the guarantee
is kept another way: the pool's gas in flight is held within the pending block's gas limit (so
that block holds all of it), and of one batch only the first application of a bundle and of a
policy holder goes out (the others wait for the next batch, which sees it pending).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

from .. import errors
from ..inbound.application import Application
from .context import WalletContext
from .records import TxRecord

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class InFlightTx:
    """One transaction of the pool in flight, as its record has it."""

    sender: str
    record: TxRecord


class Preflight:
    """Simulates one wallet's batches after what its pool has in flight."""

    def __init__(self, ctx: WalletContext) -> None:
        self._ctx = ctx

    @property
    def replays(self) -> bool:
        """Whether the node simulates with a replay (`eth_simulateV1`) or each call alone."""
        return self._ctx.shared.simulator.simulates

    def simulate(self, calls: list[dict]) -> list:
        """Each call's result (see `Simulator.simulate`), after everything in flight."""
        shared = self._ctx.shared
        if not self.replays:
            return shared.simulator.simulate(calls, "pending")
        shared.fees.current(fresh=True)  # the latest block now: what the web app did is in it
        block = shared.fees.last_block
        tag = hex(block) if block is not None else "latest"
        before = [
            self._ctx.call(t.record.data, t.record.gas) | {"from": t.sender}
            for t in self.unmined(tag)
        ]
        if before:
            log.debug("simulating %s call(s) after %s in flight", len(calls), len(before))
        return shared.simulator.simulate(calls, tag, before=before)

    def in_flight(self) -> list[InFlightTx]:
        """Every record in flight of every wallet of the pool, in nonce order per wallet (two
        Redis round trips)."""
        pool = self._ctx.shared.pool
        client = self._ctx.shared.redis
        pipe = client.pipeline(transaction=False)
        for records in pool:
            pipe.zrange(records.inflight_key, 0, -1)
        ids = pipe.execute()
        pipe = client.pipeline(transaction=False)
        wanted = [(records, entity_id) for records, found in zip(pool, ids) for entity_id in found]
        for records, entity_id in wanted:
            pipe.hgetall(records.key(entity_id))
        found = []
        for (records, _entity_id), fields in zip(wanted, pipe.execute()):
            if fields and records.owner is not None:
                found.append(InFlightTx(records.owner, TxRecord.from_fields(fields)))
        return sorted(found, key=lambda tx: (tx.sender, tx.record.nonce))

    def unmined(self, tag: str) -> list[InFlightTx]:
        """The transactions in flight not mined at block `tag`: those at or above their
        wallet's transaction count there."""
        txs = [tx for tx in self.in_flight() if tx.record.data and tx.record.gas]
        senders = sorted({tx.sender for tx in txs})
        if not senders:
            return []
        counts = self._ctx.shared.chain.batch(
            [("eth_getTransactionCount", [sender, tag]) for sender in senders]
        )
        for count in counts:
            if isinstance(count, Exception):
                raise count
        mined = {sender: int(count, 16) for sender, count in zip(senders, counts)}
        return [tx for tx in txs if tx.record.nonce >= mined[tx.sender]]

    def hold_back(self, apps: Sequence[Application], gas: Sequence[int]) -> list[bool]:
        """Without a replay: which applications wait for the next batch, so that the pending
        block holds everything in flight and no two of one batch depend on each other."""
        if self.replays:
            return [False] * len(apps)
        fees = self._ctx.shared.fees
        fees.current()  # the latest block's gas limit, cached for about a block
        room = fees.block_gas_limit or None
        if room is not None:
            room -= sum(tx.record.gas for tx in self.in_flight())
        held, seen = [], set()
        for app, limit in zip(apps, gas):
            keys = {("bundle", app.bundle_id), ("holder", app.policy_holder)}
            wait = bool(keys & seen) or (room is not None and limit > room)
            if not wait:
                seen |= keys
                room = None if room is None else room - limit
            held.append(wait)
        return held


def waiting_for_room(app: Application) -> errors.WaitingForRoom:
    return errors.WaitingForRoom(
        f"application {app.entity_id} waits for room: the node simulates each call alone, so "
        "it goes after what is in flight is pending"
    )
