"""Settling what is mined: a confirmed transaction's application is purged, a reverted one is
set aside with its reason, and its policy holder held to account.

A purge removes the application, its record and its owner mark together, and leaves a done
marker so a late redelivery of its entry is recognised; its signature's mark then names the
mined transaction (the signature is used: a copy under another id is refused). Either way the
holder's busy mark goes (see holders): its next application may be sent.

A reverted transaction is paid for and is never sent again, whatever a new simulation says: a
call that "would succeed now" reverted because someone changed the state it reads between the
simulation and the block (an applicant who takes the premium's allowance away, then gives it
back, would otherwise make the pool pay again and again). Its receipt has no reason, so the
call is simulated again to learn one for the letter. Only a paused product (DP-010, the
owner's doing) sends the application back to the queue. Anything else sets it aside in the
dead-letter stream (`reverted_on_chain`) and holds its holder (HOLDER_HOLD_SECONDS), in the
same transaction that forgets the record. Its signature was never used, so its mark goes too.

A revert whose new simulation says the signature is used (`DMH-001`, `SMH-001`) asks which
transaction used it (see applied): the pool's own (a copy sent after Redis lost the original's
record) means the application is done: it is completed with that transaction's hash and purged
as confirmed, nobody held. Someone else's (the holder front-ran with their own signature) sets
it aside as `already_applied`, naming that transaction, and holds its holder as any revert.
"""

from __future__ import annotations

import logging

from .. import errors
from .applied import Used, UsedSignatures
from .context import WalletContext
from .holders import Hold
from .inflight import Mined
from .records import TxRecord

log = logging.getLogger(__name__)


class Settler:
    """Settles one wallet's mined transactions."""

    def __init__(self, ctx: WalletContext) -> None:
        self._ctx = ctx
        self._used = UsedSignatures(ctx)

    def confirm(self, confirmed: list[tuple[TxRecord, Mined]], head: int) -> None:
        if not confirmed:
            return
        ctx = self._ctx
        ctx.records.complete_many(
            [(r.entity_id, m.tx_hash) for r, m in confirmed],
            signatures={r.entity_id: r.signature for r, _m in confirmed},
        )
        ctx.records.holders.release_busy(
            (r.holder, ctx.records.key(r.entity_id)) for r, _m in confirmed
        )
        now, metrics = ctx.shared.clock.now(), ctx.shared.metrics
        for record, mined in confirmed:
            log.info(
                "application %s tx %s confirmed (%s confirmations, block %s); purged",
                record.entity_id,
                mined.tx_hash,
                head - mined.block + 1,
                mined.block,
            )
            metrics.confirmed.inc()
            metrics.gas_spent.inc(mined.cost)
            if record.enqueued_at is not None:
                metrics.confirm_latency.observe(max(0.0, now - record.enqueued_at))

    def count_spend(self, mined: list[tuple[TxRecord, Mined]], records: list[TxRecord]) -> None:
        """For the spending guard, which is the pool's: log what was paid, publish the most
        this wallet's transactions still in flight can cost, and keep (with what the watcher
        last saw) the pool's last hour, both counted."""
        ctx = self._ctx
        if ctx.spend is None:
            return
        now = ctx.shared.clock.now()
        ctx.spend.add_many([(m.tx_hash, m.cost) for _r, m in mined], now)
        settled = {r.entity_id for r, _m in mined}
        in_flight = sum(r.gas * r.max_fee_per_gas for r in records if r.entity_id not in settled)
        ctx.last_seen.set_spent(ctx.spend.last_hour(now, in_flight=in_flight))

    def count_reverts(self, reverted: list[tuple[TxRecord, Mined]]) -> None:
        """Every wei paid shows, and the pool's revert budget sees it: each transaction that
        reverted on chain goes into the pool's ledger once (before its application is
        settled, so a crash in between loses nothing), and its gas and wei into the metrics
        the first time any process writes it. Called every round, so the last hour's figure
        rolls down as the hour passes even when nothing reverts."""
        ctx = self._ctx
        ledger, metrics = ctx.shared.reverts, ctx.shared.metrics
        if ledger is None:
            return
        paid = [(m.tx_hash, m.gas_used, m.cost) for _r, m in reverted]
        new, gas = ledger.add(paid, ctx.shared.clock.now())
        for tx_hash, _gas, wei in paid:
            if tx_hash in new:
                metrics.reverted_spent.inc(wei)
                metrics.reverted_transactions.inc()
        metrics.reverted_gas_last_hour.set(gas)
        ctx.last_seen.set_reverted_gas(gas)

    def reverted(self, record: TxRecord, mined: Mined) -> None:
        """Simulate the reverted call again for its reason; set aside and hold its holder, or
        send back when the product is paused; complete it when the pool's own transaction
        used its signature. Raises NodeUnavailable when that cannot be looked up now (the
        watcher's next round asks again)."""
        ctx = self._ctx
        kind = "reverted_on_chain"
        try:
            ctx.shared.chain.call(ctx.call(record.data))
            now = (
                "would succeed now: the state it reads changed between the simulation and "
                "the block; not sent again"
            )
        except errors.ProductInactive as error:
            log.warning(
                "application %s tx %s reverted in block %s because the product is not "
                "active (%s); enqueued again",
                record.entity_id,
                mined.tx_hash,
                mined.block,
                error,
            )
            ctx.records.send_back(record.entity_id, fence=ctx.lease.fence)
            return
        except errors.PermanentError as error:
            now = error.reason
            if error.kind in errors.SIGNATURE_USED:
                verdict = self._used.behind_revert(record, mined.block)
                if isinstance(verdict, Used):
                    self._done_before(record, mined, verdict)
                    return
                kind, now = "already_applied", f"{now}; {verdict}"
        reason = (
            f"transaction {mined.tx_hash} reverted on chain in block {mined.block} "
            f"(gas used {mined.gas_used}); simulated again: {now}"
        )
        hold = self._hold(record, mined, now)

        ctx.dead_letters.set_aside(
            entity_id=record.entity_id,
            kind=kind,
            application=ctx.queue.load_application(record.entity_id),
            reason=reason,
            entry_id=record.stream_entry_id or None,
            entry_fields={"entityId": record.entity_id},
            commit=ctx.records.forget_holding(record.entity_id, hold),
        )
        if hold is not None and ctx.records.holders.hold_seconds > 0:
            log.warning("%s", hold.describe())

    def _done_before(self, record: TxRecord, mined: Mined, used: Used) -> None:
        """The pool's transaction `used` created the policy before `record`'s copy reverted:
        completed with its hash, as if it had been confirmed from its record."""
        ctx = self._ctx
        ctx.records.complete_many(
            [(record.entity_id, used.tx_hash)], signatures={record.entity_id: record.signature}
        )
        ctx.records.holders.release_busy([(record.holder, ctx.records.key(record.entity_id))])
        ctx.shared.metrics.confirmed.inc()
        self._used.count_gas(used)
        log.warning(
            "application %s tx %s reverted in block %s: its signature was used by tx %s of the "
            "pool's wallet %s in block %s (a copy sent after its record was lost); purged as "
            "confirmed",
            record.entity_id,
            mined.tx_hash,
            mined.block,
            used.tx_hash,
            used.sender,
            used.block,
        )

    def _hold(self, record: TxRecord, mined: Mined, reason: str) -> Hold | None:
        """The hold of the record's policy holder for this revert (None: no holder known)."""
        if not record.holder:
            return None
        since = self._ctx.shared.clock.now()
        return Hold(
            holder=record.holder,
            entity_id=record.entity_id,
            tx_hash=mined.tx_hash,
            block=mined.block,
            reason=reason,
            since=since,
            until=since + self._ctx.records.holders.hold_seconds,
        )
