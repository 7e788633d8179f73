"""The unmined: transactions the node forgot are resent, stuck ones replaced, and a nonce
nothing in flight uses is reported.

A transaction unmined for `stuck_blocks` blocks or `stuck_seconds` seconds (or signed before
this process held the lease, or whose first send the node refused below the base fee) is
looked up at the node: one it no longer knows is resent with
its stored bytes; one still pending is re-priced, unless it waits its turn in a line that
moves. Resends and replacements go out as batches, so a round costs a few requests however
many transactions are due. With a private relay (CHAIN_SEND_URL) no public node knows an
unmined transaction: `relayed.RelayHeld` says what is sent again instead, and a nonce gap is
filled rather than only reported.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from .. import errors
from ..fees import raised
from .context import WalletContext
from .inflight import InFlight, Waiting
from .lifecycle import Status
from .publish import Answer, Publisher
from .records import TxRecord
from .relayed import RelayHeld
from .replace import Replacer

log = logging.getLogger(__name__)


class Unmined:
    """Looks after one wallet's unmined transactions."""

    def __init__(
        self, ctx: WalletContext, *, in_flight: InFlight, publisher: Publisher, replacer: Replacer
    ) -> None:
        self._ctx = ctx
        self._in_flight = in_flight
        self._publisher = publisher
        self._replacer = replacer
        self._gap: tuple[int, Waiting] | None = None  # the chain nonce nothing in flight uses
        self._gap_reason: str | None = None  # the nonce problem, once reported as stuck
        self._line_moved: tuple[int, float] | None = None  # (head, monotonic) it last moved
        drop_blocks = ctx.config.relay_drop_blocks
        self._relay = (
            None
            if drop_blocks is None
            else RelayHeld(ctx, in_flight=in_flight, drop_blocks=drop_blocks)
        )

    def line_moved(self, head: int) -> None:
        """A nonce of the wallet was mined at about `head`."""
        self._line_moved = (head, self._ctx.shared.clock.monotonic())

    def gap_reasons(self) -> set[str]:
        return {self._gap_reason} if self._gap_reason else set()

    def look_after(self, unmined: list[TxRecord], head: int, *, mined_nonce: int | None) -> bool:
        """Resend what the node no longer knows, replace what is stuck, then judge a nonce
        gap; True while a gap waits to be judged on a fresh nonce."""
        self._gap_reason = None  # said again below while the gap lasts
        if self._relay is not None:
            held = self._relay.look_after(unmined, head)
            self._resend(held.resend, to_relay=True)
            self._ctx.shared.state.watcher_beat()
            self._replace(held.replace)
            unmined = [r for r in unmined if self._in_flight.get(r.entity_id) is not None]
            return mined_nonce is not None and self._check_gap(unmined, mined_nonce, head)
        due = self._due(unmined, head)
        if due:
            dropped, stuck = self._sort(due, head)
            stuck += self._resend(dropped)
            self._ctx.shared.state.watcher_beat()
            self._replace(stuck)
        return mined_nonce is not None and self._check_gap(unmined, mined_nonce, head)

    def _stale(self, waiting: Waiting, head: int, now: float) -> bool:
        config = self._ctx.config
        return head - waiting.head >= config.stuck_blocks or now - waiting.since >= (
            config.stuck_seconds
        )

    def _due(self, unmined: list[TxRecord], head: int) -> list[TxRecord]:
        """The transactions to look up at the node now."""
        now = self._ctx.shared.clock.monotonic()
        due = []
        for record in unmined:
            tracked = self._in_flight[record.entity_id]
            first_look = tracked.waiting is None
            if first_look:
                tracked.waiting = Waiting(head, now)
            if tracked.status is Status.REFUSED:
                tracked.move(Status.SENT)  # looked after at once: the fee cap may be reached
                due.append(record)
            elif first_look and record.signed_at < self._in_flight.sending_since:
                due.append(record)  # from before this process held the lease: look now
            elif self._stale(tracked.waiting, head, now):
                due.append(record)
        return due

    def _sort(self, due: list[TxRecord], head: int) -> tuple[list[TxRecord], list[TxRecord]]:
        """(dropped, stuck) among `due`, as the node knows them."""
        now = self._ctx.shared.clock.monotonic()
        known = self._ctx.shared.chain.batch(
            [("eth_getTransactionByHash", [r.tx_hash]) for r in due]
        )
        self._ctx.shared.state.watcher_beat()
        dropped, stuck = [], []
        waiting_turn = self._waiting_turn(head, now)
        for record, tx in zip(due, known):
            if isinstance(tx, Exception):
                continue
            waiting = self._in_flight[record.entity_id].waiting
            if tx is None:
                dropped.append(record)
            elif (
                tx.get("blockNumber") is None
                and (waiting.checked or self._stale(waiting, head, now))
                and not waiting_turn(record)
            ):
                stuck.append(record)  # still pending: re-price it (a mined one needs nothing)
            waiting.head, waiting.since, waiting.checked = head, now, True
        if dropped:
            known = [r.nonce for r, tx in zip(due, known) if isinstance(tx, dict)]
            if known and min(r.nonce for r in dropped) < max(known):
                self._ctx.shared.room.pool_full(
                    f"the node forgot nonce {min(r.nonce for r in dropped)} while it keeps "
                    f"nonce {max(known)}"
                )
        return dropped, stuck

    def _waiting_turn(self, head: int, now: float) -> Callable[[TxRecord], bool]:
        """While the wallet's line moves (a nonce was mined within `stuck_blocks` blocks and
        `stuck_seconds`), a pending transaction whose max fee still covers the next block's
        base fee is waiting its turn, not stuck: re-pricing it would gain nothing. One priced
        under that is replaced before its turn comes; when the line stops, everything due is
        re-priced, as a low tip would hold the whole line."""
        moved = self._line_moved
        if moved is None or self._stale(Waiting(*moved), head, now):
            return lambda record: False
        floor = raised(self._ctx.shared.fees.current().base_fee)
        return lambda record: record.max_fee_per_gas >= floor

    def _resend(self, records: list[TxRecord], *, to_relay: bool = False) -> list[TxRecord]:
        """Send again the stored bytes of transactions the node no longer knows (or, `to_relay`,
        that the relay holds unmined); returns those it refuses below the base fee, to be
        replaced at a higher fee."""
        answers = self._publisher.publish(records)
        for answer, result in answers:
            if answer is Answer.UNANSWERED:  # the node is down: tell the monitor
                raise result
        to_replace = []
        for record, (answer, result) in zip(records, answers):
            if answer.in_pool and to_relay:
                log.debug(
                    "application %s tx %s sent to the relay again", record.entity_id, record.tx_hash
                )
            elif answer is Answer.ACCEPTED:
                log.warning(
                    "application %s tx %s was unknown to the node; resent (nonce %s)",
                    record.entity_id,
                    record.tx_hash,
                    record.nonce,
                )
            elif answer is Answer.FEE_TOO_LOW:
                log.warning(
                    "application %s tx %s: the node refuses it below the base fee; "
                    "replacing it at a higher fee",
                    record.entity_id,
                    record.tx_hash,
                )
                to_replace.append(record)
            elif answer in (Answer.REFUSED, Answer.NO_FUNDS, Answer.UNDERPRICED):
                log.error(
                    "application %s tx %s: resend refused: %s",
                    record.entity_id,
                    record.tx_hash,
                    result,
                )
        return to_replace

    def _replace(self, records: list[TxRecord]) -> None:
        """Re-price stuck transactions together and point their applications at the new
        hashes."""
        if not records:
            return
        try:
            outcomes = self._replacer.replace_many(records)
        except Exception:
            self._in_flight.read_again([record.entity_id for record in records])
            raise
        moved = []
        for record, outcome in zip(records, outcomes):
            tracked = self._in_flight[record.entity_id]
            if isinstance(outcome, errors.FeeCapReached):
                current = outcome.current
                tracked.move(
                    Status.STUCK,
                    stuck=(
                        "transactions cannot be mined: max fee per gas is at the "
                        f"MAX_FEE_PER_GAS cap {self._ctx.shared.fees.cap} wei"
                    ),
                )
                log.error(
                    "application %s tx %s is stuck: %s", record.entity_id, current.tx_hash, outcome
                )
            elif isinstance(outcome, TxRecord):
                current = outcome
                tracked.move(Status.SENT)
            elif isinstance(outcome, errors.NonceConflict):  # sent back to the queue
                continue
            else:  # InsufficientFunds: the older transaction stands
                log.error(
                    "application %s tx %s: replacement refused: %s",
                    record.entity_id,
                    record.tx_hash,
                    outcome,
                )
                continue
            tracked.record = current
            if current.tx_hash != record.tx_hash:
                moved.append((record.entity_id, current.tx_hash))
        self._ctx.queue.set_transaction_hashes(moved, fence=self._ctx.lease.fence)

    def _check_gap(self, unmined: list[TxRecord], chain_nonce: int, head: int) -> bool:
        """A nonce problem: the wallet's next nonce on chain is used by no transaction in
        flight, so none of those after it can be mined. Once that has lasted `stuck_blocks`
        blocks or `stuck_seconds`, it is reported as stuck (which holds the wallet's reading)
        until the gap is gone. True while there is a gap."""
        lowest = min((record.nonce for record in unmined), default=None)
        if lowest is None or lowest <= chain_nonce:
            self._gap = None
            return False
        now = self._ctx.shared.clock.monotonic()
        if self._gap is None or self._gap[0] != chain_nonce:
            self._gap = (chain_nonce, Waiting(head, now))
        since = self._gap[1]
        if self._stale(since, head, now):
            self._gap_reason = (
                f"nonce problem: nonce {chain_nonce} of wallet {self._ctx.address} is used by "
                f"no transaction in flight; the {len(unmined)} after it cannot be mined"
            )
            if not since.checked:  # said once per gap
                since.checked = True
                log.error("%s", self._gap_reason)
            if self._relay is not None:  # nothing in flight will ever use these: fill them
                for nonce in range(chain_nonce, lowest):
                    self._relay.fill(nonce)
        return True
