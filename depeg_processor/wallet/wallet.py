"""One wallet of the pool, whole: its stores (`WalletContext`) and every step of its
transactions' life, built together in one phase.

A transaction's life, and the one module for each step:
- submit (simulate → sign → write-ahead): `submit.py`;
- publish (first send, resend, replacement; every node answer): `publish.py`;
- resend what the node forgot, replace what is stuck: `unmined.py`, `replace.py`;
- confirm and purge, or settle a revert (and hold its holder): `receipts.py`, `settle.py`,
  `holders.py`;
- a block reorganised away: `receipts.py` (`verify_canonical`);
- take-over of a wallet another holder left: `Wallet.take_over` here;
- what Redis forgot: the node's nonces explained by the records (`reconcile.py`), an
  application whose signature the pool's own transaction used completed (`applied.py`).

`Wallet` is the one door: the consumer and the service ask it for what they need (the
applications of a batch still to send, its holders' state, its balance, what the watcher
learned, a letter set aside) and never reach its stores.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence

from ..errors import SIGNATURE_USED, PermanentError, ProcessorError
from ..inbound.application import Application
from ..inbound.stream import Entry, StreamQueue
from ..inbound.untrusted import HashContent
from .applied import Applied, UsedSignatures
from .context import WalletContext
from .handover import claim_entries_left
from .holders import HolderState
from .inflight import InFlight
from .last_seen import LastSeen
from .lease import Lease, LeaseKeeper
from .preflight import Preflight
from .publish import Publisher
from .reconcile import unexplained
from .records import TxRecords
from .replace import Replacer
from .signatures import SignatureMark
from .stored import StoredApplications
from .submit import Outcome, Submitter
from .unmined import Unmined
from .watch import Watcher

log = logging.getLogger(__name__)


class Wallet:
    """Everything this process does with one wallet of the pool."""

    def __init__(self, ctx: WalletContext, *, keeper: LeaseKeeper) -> None:
        self.ctx = ctx
        self.keeper = keeper
        self.in_flight = InFlight(ctx.records, now=ctx.shared.clock.now)
        shared = ctx.shared
        publisher = Publisher(
            chain=shared.chain,
            address=ctx.address,
            lease=ctx.lease,
            records=ctx.records,
            nonces=ctx.nonces,
            on_pool_full=shared.room.pool_full,
        )
        self._submitter = Submitter(
            config=ctx.config,
            signer=ctx.signer,
            lease=ctx.lease,
            records=ctx.records,
            nonces=ctx.nonces,
            last_seen=ctx.last_seen,
            queue=ctx.queue,
            fees=shared.fees,
            clock=shared.clock,
            faults=shared.faults,
            durable=shared.durable,
            preflight=Preflight(
                call=ctx.call,
                product=shared.product,
                chain=shared.chain,
                simulator=shared.simulator,
                fees=shared.fees,
                pool=shared.pool,
                client=shared.redis,
                on_gas_used=shared.room.measured,
            ),
            publisher=publisher,
            on_below_base_fee=self.in_flight.refused_below_base_fee,
        )
        replacer = Replacer(
            lease=ctx.lease,
            records=ctx.records,
            fees=shared.fees,
            metrics=shared.metrics,
            clock=shared.clock,
            publisher=publisher,
            submitter=self._submitter,
        )
        unmined = Unmined(ctx, in_flight=self.in_flight, publisher=publisher, replacer=replacer)
        self.watcher = Watcher(ctx, in_flight=self.in_flight, unmined=unmined)
        self._stored = StoredApplications(
            ctx.shared.redis, records=ctx.records, queue=ctx.queue, address=ctx.address
        )
        self._used = UsedSignatures(ctx)
        self._adopting = threading.Lock()
        self._adopted: int | None = None  # the lease generation whose take-over is done

    @property
    def address(self) -> str:
        return self.ctx.address

    @property
    def lease(self) -> Lease:
        return self.ctx.lease

    @property
    def records(self) -> TxRecords:
        return self.ctx.records

    @property
    def queue(self) -> StreamQueue:
        return self.ctx.queue

    @property
    def adopted(self) -> int | None:
        """The lease generation whose take-over is done (None before the first)."""
        return self._adopted

    @property
    def next_nonce(self) -> int | None:
        """The nonce the next transaction takes (None while it is to be synchronised)."""
        return self.ctx.nonces.next

    def take_over(self) -> bool:
        """Whether this process sends from the wallet now: its lease is held, and what another
        holder may have left is adopted, once per lease gained (either thread may be first)."""
        lease = self.ctx.lease
        if not lease.held():
            return False
        with self._adopting:
            generation = lease.generation
            if generation != self._adopted:
                self._adopt()
                self._adopted = generation
        return True

    def _adopt(self) -> None:
        """Taking over (or back): another sender may have used nonces, replaced transactions
        and left entries unacknowledged. Unmarked applications in flight become this wallet's
        and their signatures are marked (records of older versions), the next nonce follows
        the chain and the records, the stream's backlog is read again and every record is read
        afresh by the watcher."""
        ctx = self.ctx
        ctx.records.claim_owners()
        ctx.records.mark_signatures()
        ctx.nonces.sync()
        ctx.queue.rewind()
        self.in_flight.invalidate()
        log.info(
            "holding the wallet's lease %s; sending (next nonce %s)", ctx.lease.key, ctx.nonces.next
        )

    def claim_entries_left(self) -> int:
        """The unacknowledged entries of the holder that released this wallet cleanly, made
        this consumer's at once (see handover); how many."""
        return claim_entries_left(self.ctx.shared.redis, self.queue, self.lease.handed_over())

    def unmined(self, *, fresh: bool = False) -> int:
        """How many of the wallet's transactions are signed and not yet mined, for the cap on
        them (PROCESSOR_MAX_IN_FLIGHT). Without I/O once both figures are known: the next
        nonce less the mined count the watcher last saw, so a transaction counts from its
        signing until the watcher's next look after it was mined: never fewer than the node's
        pool holds, and a mined one waiting for its confirmations takes no place. Before the
        watcher's first look, or while the next nonce is to be synchronised, the in-flight
        set's size (every record, mined or not). `fresh` (from the consumer's thread, the one
        that takes nonces) asks the node for the mined count and synchronises the next nonce
        if it is to be: mined ones waiting for their confirmations then take no place either."""
        # Not while the pool paid for reverts this hour: then what is mined waits for the
        # watcher, which counts its reverts first, so the revert budget is not outrun.
        if fresh and not self.ctx.last_seen.get().reverted_gas:
            self.ctx.last_seen.observed_mined(self.ctx.shared.chain.nonce(self.address, "latest"))
        if fresh and self.ctx.nonces.next is None:
            self.ctx.nonces.sync()
        next_nonce, mined = self.ctx.nonces.next, self.ctx.last_seen.get().mined_nonce
        if next_nonce is None or mined is None:
            return self.ctx.records.count()
        return max(0, next_nonce - mined)

    def in_flight_limit(self, upper: int) -> int:
        """How many transactions it may keep unmined, at most `upper` (see block_room)."""
        shared = self.ctx.shared
        return shared.room.limit(upper=upper, block_gas_limit=shared.fees.block_gas_limit)

    def last_seen(self) -> LastSeen:
        """What the receipt watcher (and the consumer) last learned of the wallet."""
        return self.ctx.last_seen.get()

    def read_balance(self) -> int:
        """The balance as the node says it now; the wallet's last seen figures keep it."""
        balance = self.ctx.shared.chain.balance(self.address)
        self.ctx.last_seen.observed(balance=balance)
        return balance

    def observed_balance(self, balance: int) -> None:
        """The balance read elsewhere (at start), for the wallet's last seen figures."""
        self.ctx.last_seen.observed(balance=balance)

    def count_spend(self, wei: int) -> None:
        """A transaction just recorded may cost `wei`: counted against the hourly ceiling
        until the watcher next counts from the ledger."""
        self.ctx.last_seen.add_spent(wei)

    def unsent(self, candidates: Sequence[tuple[Entry, str]]) -> list[HashContent | None]:
        """For each (stream entry, entity id) of a batch: its application hash while it is
        still to be sent, or None once its entry is settled (resumed, another wallet's, or
        confirmed already). One round trip for the batch; see `stored`."""
        return self._stored.unsent(candidates)

    def signature_marks(self, signatures: Sequence[bytes]) -> list[SignatureMark | None]:
        """The mark of each signature (which application sent it), in order."""
        return self.ctx.records.marks.get_many(signatures)

    def holders(self, holders: Sequence[str]) -> list[HolderState]:
        """The state of each policy holder (held, or busy with an application in flight),
        pool-wide, in order: see wallet.holders."""
        return self.ctx.records.holders.states(holders)

    def set_aside(
        self,
        entry: Entry,
        *,
        entity_id: str | None,
        reason: str,
        kind: str,
        application: HashContent | Mapping[str, str],
    ) -> str:
        """Set the application of `entry` aside for good (see inbound.dead_letters)."""
        return self.ctx.dead_letters.set_aside(
            entity_id=entity_id,
            reason=reason,
            kind=kind,
            application=application,
            entry_id=entry.entry_id,
            entry_fields=entry.fields,
        )

    def lost(self) -> None:
        """A write was refused for the lease: adopt again before the next send."""
        with self._adopting:
            self._adopted = None

    def unexplained(self) -> str | None:
        """Why the pool may not send now: transactions of its wallets in the node's pool that
        no record explains (see reconcile), or None."""
        shared = self.ctx.shared
        found = unexplained(shared.chain, shared.redis, shared.pool or (self.ctx.records,))
        return "; ".join(map(str, found)) or None

    def submit(
        self, apps: Sequence[Application], *, entry_ids: Sequence[str]
    ) -> list[Outcome | Applied]:
        """See `Submitter.submit`: only within the lease generation adopted. An application
        whose signature is used already is looked up on chain (see applied): `Applied` when
        the pool's own transaction created its policy."""
        generation = self._adopted if self._adopted is not None else -1
        outcomes: list = self._submitter.submit(apps, entry_ids=entry_ids, generation=generation)
        for i, outcome in enumerate(outcomes):
            if isinstance(outcome, PermanentError) and outcome.kind in SIGNATURE_USED:
                try:
                    outcomes[i] = self._used.settle(apps[i], entry_ids[i])
                except ProcessorError as error:  # the node did not say: tried again later
                    outcomes[i] = error
        return outcomes

    def watch(self) -> int:
        """One round of the receipt watcher at its schedule's pace."""
        return self.watcher.step(sending=self.take_over())

    def watch_now(self) -> int:
        """One round of the receipt watcher that asks the node whatever the schedule says."""
        return self.watcher.run_once(sending=self.take_over())

    def finish(self) -> None:
        """The batch being published is out."""
        self._submitter.finish()

    def close(self) -> None:
        """At shutdown: the last batch out, the publishing thread ended."""
        self._submitter.close()
