"""Transactions a private relay holds (CHAIN_SEND_URL): out of every public pool, included only
where they succeed, dropped unmined after some blocks, and holding the wallet's later nonces.

Without a relay an unmined transaction is looked up at the node: one the node forgot is resent,
one still pending re-priced. With one, every public node answers "unknown" until the block, so
that look tells nothing and is not made; and whatever is sent again goes to the relay alone
(the chain client routes every raw transaction there), never back to a public pool, where it
would be handed to anyone who races it. Instead:

- every TX_STUCK_BLOCKS the stored bytes go to the relay again (it keeps one copy; one it lost
  or never got is held again);
- after CHAIN_SEND_DROP_BLOCKS blocks unmined (what relays hold a transaction at most) the
  call is simulated again, at the latest block: one that would succeed is sent again at
  today's fees (a replacement of the same nonce, to the relay); one that fails is set aside
  with the product's reason (kind `not_included_by_relay`; DP-010, a paused product, goes back
  on the queue instead) and its nonce filled at once by a 0-value transfer of the wallet to
  itself, which the relay includes since it cannot fail, and which replaces the held one
  there, so the wallet's later nonces are never stuck behind a gap. Nothing of this was paid
  but the filler: the relay never mined the failing call. Its policy holder is held as for a
  revert on chain (see holders.py), so one holder costs the pool one filler at most.

A gap that outlives that (the filler lost, a crash between the set-aside and the fill) is
found by the nonce-gap check (`unmined.py`) and filled the same way (`fill`).
"""

from __future__ import annotations

import dataclasses
import logging

from .. import errors
from ..fees import Fees
from ..signer.policy import FILLER_GAS
from .context import WalletContext
from .holders import Hold
from .inflight import InFlight
from .lifecycle import Status
from .records import TxRecord

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Due:
    """What the wallet does with its relayed transactions this round."""

    resend: list[TxRecord] = dataclasses.field(default_factory=list)  # the same bytes again
    replace: list[TxRecord] = dataclasses.field(default_factory=list)  # again at today's fees


class RelayHeld:
    """One wallet's transactions held by the private relay."""

    def __init__(self, ctx: WalletContext, *, in_flight: InFlight, drop_blocks: int) -> None:
        self._ctx = ctx
        self._in_flight = in_flight
        self.drop_blocks = drop_blocks
        self._since: dict[str, int] = {}  # current hash -> the head it was first seen unmined at
        self._sent: dict[str, int] = {}  # current hash -> the head it was last sent again at

    def look_after(self, unmined: list[TxRecord], head: int) -> Due:
        """Sort the unmined: sent again as they are, re-simulated (then sent again at today's
        fees, or set aside and their nonces filled here), or left waiting."""
        current = {record.tx_hash for record in unmined}
        for table in (self._since, self._sent):
            for tx_hash in list(table):
                if tx_hash not in current:
                    del table[tx_hash]
        due, dropped = Due(), []
        for record in unmined:
            tracked = self._in_flight[record.entity_id]
            first_look = record.tx_hash not in self._since
            since = self._since.setdefault(record.tx_hash, head)
            if tracked.status is Status.REFUSED:  # the relay refused it: judge it now
                tracked.move(Status.SENT)
                dropped.append(record)
            elif head - since >= self.drop_blocks:
                dropped.append(record)
            elif first_look and record.signed_at < self._in_flight.sending_since:
                due.resend.append(record)  # signed by another holder: the relay may not have it
                self._sent[record.tx_hash] = head
            elif head - self._sent.setdefault(record.tx_hash, since) >= (
                self._ctx.config.stuck_blocks
            ):
                due.resend.append(record)
                self._sent[record.tx_hash] = head
        if dropped:
            due.replace = self._judge(dropped, head)
        return due

    def _judge(self, dropped: list[TxRecord], head: int) -> list[TxRecord]:
        """Simulate each call again; returns those that would succeed (to be sent again)."""
        ctx = self._ctx
        results = ctx.shared.chain.batch(
            [("eth_call", [ctx.call(r.data, r.gas), "latest"]) for r in dropped]
        )
        again = []
        for record, result in zip(dropped, results):
            if not isinstance(result, Exception):
                log.warning(
                    "application %s tx %s (nonce %s) not included by the relay in %s blocks; "
                    "it would succeed now: sent again at today's fees",
                    record.entity_id,
                    record.tx_hash,
                    record.nonce,
                    head - self._since.get(record.tx_hash, head),
                )
                again.append(record)
                self._since[record.tx_hash] = head  # not judged again before another drop
            elif isinstance(result, errors.ProductInactive):
                self._send_back(record, result)
            elif isinstance(result, errors.PermanentError):
                self._set_aside(record, result, head)
            else:  # the node did not answer: judged again next round
                log.warning("application %s: simulation failed: %s", record.entity_id, result)
        return again

    def _set_aside(self, record: TxRecord, error: errors.PermanentError, head: int) -> None:
        ctx = self._ctx
        blocks = head - self._since.get(record.tx_hash, head)
        filler = self.fill(record.nonce, above=record)
        hold = self._hold(record, error.reason)

        ctx.dead_letters.set_aside(
            entity_id=record.entity_id,
            kind="not_included_by_relay",
            application=ctx.queue.load_application(record.entity_id),
            reason=(
                f"transaction {record.tx_hash} (nonce {record.nonce}) was not included by the "
                f"private relay in {blocks} blocks (nothing paid); simulated again: "
                f"{error.reason}; its nonce is filled by {filler or 'a transfer to itself'}"
            ),
            entry_id=record.stream_entry_id or None,
            entry_fields={"entityId": record.entity_id},
            commit=ctx.records.forget_holding(record.entity_id, hold),
        )
        if hold is not None:
            log.warning("%s", hold.describe())
        self._in_flight.forget(record.entity_id)
        log.warning(
            "application %s tx %s set aside: not included by the relay, and it fails now (%s); "
            "nonce %s filled by %s",
            record.entity_id,
            record.tx_hash,
            error.reason,
            record.nonce,
            filler,
        )

    def _hold(self, record: TxRecord, reason: str) -> Hold | None:
        """The hold of the record's policy holder (None: no holder known, or holding off)."""
        holders = self._ctx.records.holders
        if not record.holder or holders.hold_seconds <= 0:
            return None
        since = self._ctx.shared.clock.now()
        return Hold(
            holder=record.holder,
            entity_id=record.entity_id,
            tx_hash=record.tx_hash,
            block=0,
            reason=reason,
            since=since,
            until=since + holders.hold_seconds,
        )

    def _send_back(self, record: TxRecord, error: errors.ProductInactive) -> None:
        ctx = self._ctx
        filler = self.fill(record.nonce, above=record)
        ctx.records.send_back(record.entity_id, fence=ctx.lease.fence)
        self._in_flight.forget(record.entity_id)
        log.warning(
            "application %s tx %s not included by the relay: the product is not active (%s); "
            "enqueued again, nonce %s filled by %s",
            record.entity_id,
            record.tx_hash,
            error,
            record.nonce,
            filler,
        )

    def fill(self, nonce: int, *, above: TxRecord | None = None) -> str | None:
        """Send a 0-value transfer of the wallet to itself at `nonce` to the relay, priced
        above `above` (the held transaction it replaces) and the market; its hash, or None
        when it could not be sent (the nonce-gap check fills it later)."""
        ctx = self._ctx
        if not ctx.lease.held():
            return None
        fees = ctx.shared.fees
        market = fees.current()
        price = market
        if above is not None:
            held = Fees(above.max_fee_per_gas, above.max_priority_fee_per_gas, market.base_fee)
            price = fees.bump(held, market) or market
        tx_hash, raw = ctx.signer.sign(
            chain_id=ctx.config.chain_id,
            nonce=nonce,
            to=ctx.address,
            data="0x",
            gas=FILLER_GAS,  # a plain transfer: it cannot fail, so the relay includes it
            max_fee_per_gas=price.max_fee_per_gas,
            max_priority_fee_per_gas=price.max_priority_fee_per_gas,
        )
        try:
            [answer] = ctx.shared.chain.batch([("eth_sendRawTransaction", [raw])])
        except errors.NodeUnavailable as error:
            answer = error
        if isinstance(answer, Exception):
            log.warning(
                "nonce %s: the relay did not take its filler %s: %s", nonce, tx_hash, answer
            )
            return None
        log.info("nonce %s of wallet %s filled by %s (to the relay)", nonce, ctx.address, tx_hash)
        return tx_hash
