"""The receipt watcher's round over one wallet's transactions in flight.

When the head is due (see `head.py`: about once a block while transactions are in flight,
every CHAIN_IDLE_POLL_INTERVAL otherwise) the node is asked for the latest block (with the
wallet's balance and nonce while busy or when their refresh is due); then, as a flat list of
named steps: find receipts → verify the blocks still stand → settle what has its
confirmations → look after the unmined (resend what the node forgot, replace what is stuck)
→ report a nonce gap. Only the holder of the wallet's lease settles or sends; a standby
watches health only.
"""

from __future__ import annotations

import logging

import redis

from .. import errors
from ..errors import FenceLost, LeaseLost
from .context import WalletContext
from .head import Head, HeadSchedule
from .inflight import InFlight
from .lifecycle import Status
from .receipts import Receipts
from .settle import Settler
from .unmined import Unmined

log = logging.getLogger(__name__)


class Watcher:
    """One wallet's receipt watcher; `step(sending=...)` is one round at the schedule's pace."""

    def __init__(self, ctx: WalletContext, *, in_flight: InFlight, unmined: Unmined) -> None:
        self._ctx = ctx
        self._in_flight = in_flight
        self._unmined = unmined
        self._receipts = Receipts(ctx, in_flight)
        self._settler = Settler(ctx)
        config = ctx.config
        self._schedule = HeadSchedule(
            min_interval=config.poll_interval,
            idle_interval=(
                config.poll_interval if config.idle_interval is None else config.idle_interval
            ),
            monotonic=ctx.shared.clock.monotonic,
        )
        self._busy = False  # transactions of ours in flight at the last read
        self._mined_nonce: int | None = None  # the wallet's mined count, as last asked
        self._lease_lost_said = False  # a lost lease is said once, not every round until retaken

    def step(self, *, sending: bool) -> int:
        """A round at the schedule's pace: the node is asked only when the head is due, or when
        a first send was refused below the base fee (see `InFlight.refused_below_base_fee`)."""
        due = self._schedule.due(busy=self._busy) or self._in_flight.refusals_waiting
        return self.run_once(sending=sending, ask_node=due)

    def run_once(self, *, sending: bool, ask_node: bool = True) -> int:
        """One round; returns how many applications it settled (purged or set aside). Without
        `ask_node` it only reads Redis. `sending`: this process holds the wallet's lease and
        has adopted what another holder left (`Wallet.take_over`)."""
        state = self._ctx.shared.state
        state.watcher_beat()
        head = None
        if ask_node:
            try:
                head = self._ask_head()  # before the records are read: see receipts.py
            except (errors.NodeUnavailable, errors.TransientError) as error:
                self._node_failed(error)
        try:
            records = self._read(sending=sending)
        except redis.RedisError as error:
            self._redis_failed(error, "read")
            return 0
        if head is None:
            return 0
        try:
            settled = self._round(records, head) if sending else self._standby(records, head)
            state.node_ok("watcher")
            self._lease_lost_said = False
            return settled
        except (LeaseLost, FenceLost) as error:
            log.log(
                logging.DEBUG if self._lease_lost_said else logging.WARNING,
                "receipt watcher: %s; the next holder settles what is in flight",
                error,
            )
            self._lease_lost_said = True
        except (errors.NodeUnavailable, errors.TransientError) as error:
            self._node_failed(error)
        except redis.RedisError as error:
            self._redis_failed(error, "write")
        return 0

    def _read(self, *, sending: bool) -> list:
        """The records in flight and the stream's figures, for the monitor and the metrics."""
        ctx = self._ctx
        records, started_over = self._in_flight.read()
        if started_over:
            self._receipts.start_over()
        backlog = ctx.queue.backlog()
        metrics, state = ctx.shared.metrics, ctx.shared.state
        state.set_non_ack_pending(backlog.own_pending)
        metrics.unacknowledged.set(backlog.group_pending)
        metrics.own_unacknowledged.set(backlog.own_pending)
        if backlog.lag is not None:
            metrics.stream_lag.set(backlog.lag)
        state.redis_ok("watcher")
        self._busy = bool(records) and sending  # a standby settles nothing
        gauges = metrics.wallet(ctx.address)
        gauges.in_flight.set(len(records))
        gauges.oldest_in_flight.set(
            max(0.0, ctx.shared.clock.now() - min(r.signed_at for r in records)) if records else 0
        )
        return records

    def _standby(self, records: list, head: int) -> int:
        self._ctx.shared.state.set_in_flight(len(records), head)
        return 0

    def _round(self, records: list, head: int) -> int:
        """The named steps of one round, with the heartbeat renewed between them."""
        state = self._ctx.shared.state
        state.set_in_flight(len(records), head)
        if records:
            log.debug("head %s, %s transaction(s) in flight", head, len(records))
        self._receipts.find(records, head)
        state.watcher_beat()
        self._receipts.verify_canonical(records, head)
        settled = self._settle(records, head)
        state.watcher_beat()
        unmined = [
            r
            for r in records
            if (t := self._in_flight.get(r.entity_id)) and t.status is not Status.MINED
        ]
        if self._unmined.look_after(unmined, head, mined_nonce=self._mined_nonce):
            self._schedule.refresh_soon()  # a nonce gap is judged on the next head's nonce
        reasons = self._in_flight.stuck_reasons() | self._unmined.gap_reasons()
        stuck = "; ".join(sorted(reasons)) or None
        state.set_stuck(stuck)
        self._ctx.last_seen.set_stuck(stuck)
        return settled

    def _settle(self, records: list, head: int) -> int:
        """Purge what has its confirmations, settle what reverted."""
        confirmed, reverted = [], []
        for record in records:
            mined = self._in_flight[record.entity_id].mined
            if mined is not None and head - mined.block + 1 >= self._ctx.config.min_confirmations:
                (confirmed if mined.status == 1 else reverted).append((record, mined))
        self._settler.confirm(confirmed, head)
        self._settler.count_spend(confirmed + reverted, records)
        self._settler.count_reverts(reverted)
        for record, mined in reverted:
            self._settler.reverted(record, mined)
            self._ctx.shared.state.watcher_beat()
        for status, settled in ((Status.CONFIRMED, confirmed), (Status.REVERTED, reverted)):
            for record, _mined in settled:
                self._in_flight[record.entity_id].move(status)
                self._in_flight.forget(record.entity_id)
        if confirmed or reverted:
            self._schedule.refresh_soon()
        return len(confirmed) + len(reverted)

    def _ask_head(self) -> int:
        """The latest block, with the wallet's balance and nonce when their refresh is due, in
        one batch; the schedule learns the block time from it."""
        ctx = self._ctx
        refresh = self._busy or self._schedule.refresh_due()  # busy: the line's place prices
        calls = [("eth_getBlockByNumber", ["latest", False])]
        if refresh:
            calls += [
                ("eth_getBalance", [ctx.address, "latest"]),
                ("eth_getTransactionCount", [ctx.address, "latest"]),
            ]
        results = ctx.shared.chain.batch(calls)
        for result in results:
            if isinstance(result, Exception):
                raise result
        head = Head.from_block(results[0])
        self._schedule.asked(head, busy=self._busy, refreshed=refresh)
        ctx.last_seen.set_block_time(self._schedule.block_time)
        if refresh:
            balance, nonce = int(results[1], 16), int(results[2], 16)
            ctx.shared.state.set_balance(balance)
            ctx.last_seen.observed(balance=balance, mined_nonce=nonce)
            gauges = ctx.shared.metrics.wallet(ctx.address)
            gauges.balance.set(balance)
            gauges.chain_nonce.set(nonce)
            if nonce != self._mined_nonce:  # the wallet's line moved (the first look: unknown)
                if self._mined_nonce is not None:
                    self._unmined.line_moved(head.number)
                self._mined_nonce = nonce
        ctx.shared.state.node_ok("watcher")
        return head.number

    def _node_failed(self, error: Exception) -> None:
        if isinstance(error, errors.NodeUnavailable):
            self._ctx.shared.state.node_failed(str(error), "watcher")
            log.error("receipt watcher cannot reach the node: %s", error)
        else:
            log.error("receipt watcher: %s", error)

    def _redis_failed(self, error: redis.RedisError, what: str) -> None:
        self._ctx.shared.metrics.redis_error(error)
        self._ctx.shared.state.redis_failed(f"{type(error).__name__}: {error}", "watcher")
        log.error("receipt watcher cannot %s redis: %s", what, error)
