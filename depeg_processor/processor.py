"""The main loop: read the stream, hand each application to the sender, settle its entry.

`run_once()` is one iteration (tests drive it directly); `run()` repeats it until the stop event
is set. Every wait is `stop.wait(...)`, so a stop request is honoured within a second.

Entries that fail for a transient reason stay in memory and are retried in order after a
pause, without being read again: a stream entry's delivery count then grows only when a
processor restarts or takes over, which is what `max_deliveries` guards against (an entry
that kills the process every time it is handled). An error nobody foresaw counts as an attempt
of the entries in hand: after `max_deliveries` in a row they are set aside too, so no entry is
held forever.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable

import redis

from . import errors
from .chain import NodeUnavailable
from .clock import SYSTEM, Clock
from .config import Settings
from .faults import NO_FAULTS, Faults
from .inbound.application import Application, check_entry, parse_application
from .inbound.stream import Entry, StreamQueue
from .inbound.untrusted import HashContent, HashGuard, shown
from .keys import application_key
from .lease import Lease
from .metrics import Metrics, null_metrics
from .nonce import NonceManager
from .records import TxRecord, TxRecords
from .sender import LeaseLost, Sender
from .state import SharedState

log = logging.getLogger(__name__)

STOP_CHECK_INTERVAL = 1.0  # the longest a blocking read may delay a stop request (seconds)
STANDBY_CHECK_INTERVAL = 0.5  # how soon a standby notices that the lease keeper gained the lease
FIRST_BACKOFF = 0.5  # seconds; doubled per consecutive failure up to ERROR_TIMEOUT


@dataclasses.dataclass(frozen=True)
class ProcessorConfig:
    """The processor loop's numbers: from the settings, and the chain id and message helper
    the node names at start (the signatures are checked against them)."""

    chain_id: int
    message_helper: str
    min_balance: int
    read_count: int
    read_block: float
    balance_too_low_timeout: float
    error_timeout: float
    max_deliveries: int
    balance_ttl: float = 5.0
    max_spend_per_hour: int | None = None
    claim_interval: float | None = None  # how often abandoned entries are claimed (lease TTL)

    @classmethod
    def from_settings(
        cls, settings: Settings, *, chain_id: int, message_helper: str
    ) -> ProcessorConfig:
        return cls(
            chain_id=chain_id,
            message_helper=message_helper,
            min_balance=settings.min_balance,
            read_count=settings.read_count,
            read_block=settings.read_block_timeout,
            balance_too_low_timeout=settings.balance_too_low_timeout,
            error_timeout=settings.error_timeout,
            max_deliveries=settings.max_deliveries,
            max_spend_per_hour=settings.max_gas_spend_per_hour,
        )


class Processor:
    def __init__(
        self,
        *,
        config: ProcessorConfig,
        clock: Clock = SYSTEM,
        redis_client: redis.Redis,
        queue: StreamQueue,
        records: TxRecords,
        sender: Sender,
        nonces: NonceManager,
        lease: Lease,
        state: SharedState,
        stop: threading.Event,
        balance: Callable[[], int],
        faults: Faults = NO_FAULTS,
        metrics: Metrics | None = None,
        on_beat: Callable[[], None] = lambda: None,
        wallet: str | None = None,
    ) -> None:
        self._redis = redis_client
        self._wallet = wallet  # the address, named in the reasons for holding
        self._claim_interval = lease.ttl if config.claim_interval is None else config.claim_interval
        self._claimed_at: float | None = None  # when abandoned entries were last claimed
        self._queue = queue
        self._records = records
        self._sender = sender
        self._nonces = nonces
        self._lease = lease
        self._state = state
        self._stop = stop
        self._balance = balance
        self._min_balance = config.min_balance
        self._chain_id = config.chain_id
        self._message_helper = config.message_helper
        self._read_count = config.read_count
        self._read_block = config.read_block
        self._balance_too_low_timeout = config.balance_too_low_timeout
        self._error_timeout = config.error_timeout
        self._max_deliveries = config.max_deliveries
        self._balance_ttl = config.balance_ttl
        self._faults = faults
        self._max_spend_per_hour = config.max_spend_per_hour
        self._metrics = metrics or null_metrics()
        self._on_beat = on_beat
        self._clock = clock.now
        self._monotonic = clock.monotonic
        self._known_balance: int | None = None
        self._balance_read_at = 0.0
        self._holding_for: set[str] = set()  # guards holding now: "balance", "spend"
        self._active = False
        self._generation = 0  # the lease generation whose take-over is done
        self._failures = 0
        self._unsettled: list[Entry] = []
        self._attempts: dict[str, int] = {}
        self._last_signatures: set[bytes] = set()

    @property
    def idle(self) -> bool:
        """Between batches with nothing in hand (no entry waiting for a retry)."""
        return not self._unsettled

    def run(self) -> None:
        log.info(
            "processor loop started (stream %s, group %s, consumer %s)",
            self._queue.stream,
            self._queue.group,
            self._queue.consumer,
        )
        while not self._stop.is_set():
            self.run_once()
        self._sender.finish_broadcast()  # the batch in hand goes out before the lease does
        log.info("processor loop stopped")

    def _beat(self) -> None:
        self._state.processor_beat()
        self._on_beat()

    def run_once(self) -> int:
        """One iteration over a batch of entries; returns how many were settled."""
        self._beat()
        reading = False  # from here on an unforeseen error is the entries' (or the read's)
        try:
            if (
                not self._hold_lease()
                or not self._within_spending_limit()
                or not self._nothing_stuck()
            ):
                return 0
            if not self._unsettled:
                if not self._balance_sufficient(working=False):
                    return 0
                self._claim_if_due()
                reading = True
                self._unsettled = self._read()
                reading = False
            self._state.redis_ok("processor")
            entries = self._unsettled
            if not entries or self._stop.is_set() or not self._balance_sufficient(working=True):
                return 0
            reading = True
            retry, problem = self.handle_batch(entries)
            self._unsettled = retry
            in_hand = {entry.entry_id for entry in retry}
            self._attempts = {i: n for i, n in self._attempts.items() if i in in_hand}
            if problem is None:
                self._state.node_ok("processor")
            self._faults.hit("after-ack")
            if problem is not None:
                raise problem
            self._state.set_holding(None)
            self._failures = 0
            return len(entries) - len(retry)
        except errors.ProductInactive as error:
            self._hold(f"product not active ({error}); retrying in {self._error_timeout:.0f}s")
        except LeaseLost as error:
            self._active = False
            log.warning("%s", error)
        except NodeUnavailable as error:
            self._state.node_failed(str(error), "processor")
            self._retry_later(str(error))
        except errors.TransientError as error:
            self._retry_later(str(error))
        except redis.RedisError as error:
            self._metrics.redis_error(error)
            self._state.redis_failed(f"{type(error).__name__}: {error}", "processor")
            self._retry_later(f"redis: {type(error).__name__}: {error}")
        except Exception as error:  # a bug must not kill the loop nor hold its entries forever
            log.exception("unexpected error; retrying in %.0fs", self._error_timeout)
            if reading:
                self._count_unexpected(error)
            self._pause(self._error_timeout)
        return 0

    def _count_unexpected(self, error: Exception) -> None:
        """An unclassified error is an attempt of every entry in hand (each is set aside after
        REDIS_QUEUE_MAX_DELIVERIES in a row). With none in hand the read itself failed: the
        entries it delivered are read again from this consumer's backlog, which raises their
        delivery counts (see _drop_poisonous)."""
        try:
            if not self._unsettled:
                self._queue.rewind()
            for entry in list(self._unsettled):
                self._attempt_failed(entry, error)
        except Exception:
            log.exception("could not count the failed attempt; retrying")

    def _settled(self, entry: Entry) -> None:
        """`entry` needs no retry, whatever happens to the rest of its batch."""
        self._unsettled = [e for e in self._unsettled if e is not entry]
        self._attempts.pop(entry.entry_id, None)

    def _read(self) -> list[Entry]:
        backlog = self._queue.reading_backlog
        entries = self._queue.read(count=self._read_count, block_ms=self._block_ms())
        if backlog and entries:
            entries = self._drop_poisonous(entries)
        return entries

    def _drop_poisonous(self, entries: list[Entry]) -> list[Entry]:
        """Entries delivered too often (each delivery a process that died or gave up while
        handling them) are set aside rather than tried forever."""
        counts = self._queue.delivery_counts([e.entry_id for e in entries])
        keep = []
        for entry in entries:
            delivered = counts.get(entry.entry_id, 0)
            if (
                delivered > self._max_deliveries
                and entry.entity_id
                and self._records.get(entry.entity_id) is None
            ):
                self._queue.dead_letters.set_aside(
                    entity_id=entry.entity_id,
                    kind="too_many_deliveries",
                    reason=f"delivered {delivered} times without being settled "
                    f"(more than REDIS_QUEUE_MAX_DELIVERIES {self._max_deliveries})",
                    application=self._queue.load_application(entry.entity_id),
                    entry_id=entry.entry_id,
                    entry_fields=entry.fields,
                )
            else:
                keep.append(entry)
        return keep

    def handle_batch(self, entries: list[Entry]) -> tuple[list[Entry], Exception | None]:
        """Settle a batch: submit the good applications together, set aside the hopeless ones.
        Returns the entries to retry (a transient failure of theirs) and that failure."""
        candidates: list[tuple[Entry, str]] = []
        retry: list[Entry] = []
        problem: Exception | None = None
        unforeseen: Exception | None = None
        seen: set[str] = set()
        for entry in entries:
            log.debug("stream entry %s: application %s", entry.entry_id, shown(entry.entity_id))
            try:
                entity_id = check_entry(entry.fields)
            except errors.PermanentError as error:
                self._set_aside_entry(entry, error)
                self._settled(entry)
                continue
            if entity_id in seen:  # the same application twice: after the first is recorded
                retry.append(entry)
            else:
                seen.add(entity_id)
                candidates.append((entry, entity_id))

        to_send: list[tuple[Entry, Application, HashContent]] = []
        signatures: set[bytes] = set()
        waits_for_broadcast = False
        for (entry, entity_id), (record, content, done, owner) in zip(
            candidates, self._load([entity_id for _entry, entity_id in candidates])
        ):
            if record is None and owner is not None and owner != self._records.owner:
                # Another wallet recorded a transaction for it (a requeue or a claim brought
                # the application here as well): its watcher completes it.
                log.info(
                    "application %s belongs to wallet %s; entry %s acknowledged",
                    entity_id,
                    owner,
                    entry.entry_id,
                )
                self._queue.ack(entry.entry_id)
                self._settled(entry)
            elif record is not None:  # already signed: resume it instead of signing again
                log.info(
                    "application %s already has tx %s (nonce %s); resuming",
                    entity_id,
                    record.tx_hash,
                    record.nonce,
                )
                self._queue.set_transaction_hashes(
                    [(entity_id, record.tx_hash)], ack=entry.entry_id
                )
                self._settled(entry)
            elif not content.fields and content.sizes is None and done:
                log.info(
                    "application %s was already confirmed as tx %s; entry %s acknowledged",
                    entity_id,
                    done,
                    entry.entry_id,
                )
                self._queue.ack(entry.entry_id)
                self._settled(entry)
            else:
                try:
                    content.check(application_key(entity_id))
                    app = parse_application(entity_id, content.fields)
                    app.check_signature(
                        chain_id=self._chain_id, verifying_contract=self._message_helper
                    )
                except errors.PermanentError as error:
                    self._set_aside(entry, entity_id, content, error)
                    self._settled(entry)
                    continue
                except Exception as error:  # unforeseen, with this application alone
                    log.exception("application %s: unexpected error", entity_id)
                    if not self._attempt_failed(entry, error):
                        retry.append(entry)
                        unforeseen = unforeseen or errors.TransientError(
                            f"application {entity_id}: unexpected {type(error).__name__}"
                        )
                    continue
                if app.signature in signatures or app.signature in self._last_signatures:
                    retry.append(entry)  # one signature succeeds once: simulate this again
                    waits_for_broadcast |= app.signature in self._last_signatures
                    continue  # once the first one is out
                signatures.add(app.signature)
                to_send.append((entry, app, content))
        if waits_for_broadcast:
            self._sender.finish_broadcast()  # its next simulation must see the first one
        self._last_signatures = set()
        if not to_send:
            return retry, unforeseen

        outcomes = self._sender.submit(
            [app for _e, app, _f in to_send],
            entry_ids=[entry.entry_id for entry, _a, _f in to_send],
            commit=self._commit,
        )
        for (entry, app, content), outcome in zip(to_send, outcomes):
            if isinstance(outcome, TxRecord):
                self._last_signatures.add(app.signature)
                self._metrics.submitted.inc()
                if app.timestamp is not None:
                    self._metrics.submit_latency.observe(max(0.0, self._clock() - app.timestamp))
                worst_case = outcome.gas * outcome.max_fee_per_gas
                if self._known_balance is not None:
                    self._known_balance -= worst_case
                if self._max_spend_per_hour is not None:
                    self._state.add_spent(worst_case)
            elif isinstance(outcome, errors.PermanentError):
                self._set_aside(entry, app.entity_id, content, outcome)
            elif self._too_many_attempts(entry, outcome):
                self._set_aside(
                    entry,
                    app.entity_id,
                    content,
                    errors.PermanentError(
                        f"simulation failed {self._max_deliveries} times in a row: {outcome}",
                        kind="too_many_deliveries",
                    ),
                )
            else:
                retry.append(entry)
                problem = problem or outcome
        retry.sort(key=lambda e: entries.index(e))
        return retry, problem or unforeseen

    def _too_many_attempts(self, entry: Entry, error: Exception) -> bool:
        """An error of this application's own simulation (not the node's, not a paused
        product) that keeps coming back would block the queue: after REDIS_QUEUE_MAX_DELIVERIES
        attempts in a row the application is set aside with it."""
        if isinstance(error, (errors.ProductInactive, NodeUnavailable)):
            return False
        return self._attempt(entry) >= self._max_deliveries

    def _attempt(self, entry: Entry) -> int:
        """Count one more failed attempt at `entry`; how many in a row so far."""
        attempts = self._attempts.get(entry.entry_id, 0) + 1
        self._attempts[entry.entry_id] = attempts
        return attempts

    def _attempt_failed(self, entry: Entry, error: Exception) -> bool:
        """An unforeseen error with `entry`: after REDIS_QUEUE_MAX_DELIVERIES in a row it is
        set aside (True), or only acknowledged if its transaction is already recorded (the
        receipt watcher owns it then)."""
        attempts = self._attempt(entry)
        if attempts < self._max_deliveries:
            return False
        entity_id = entry.entity_id
        if entity_id and (
            self._records.get(entity_id) is not None or self._records.owned_elsewhere(entity_id)
        ):
            log.warning(
                "application %s: entry %s failed %s times but its transaction is "
                "recorded; acknowledged",
                shown(entity_id),
                entry.entry_id,
                attempts,
            )
            self._queue.ack(entry.entry_id)
        else:
            self._queue.dead_letters.set_aside(
                entity_id=entity_id,
                kind="other",
                entry_id=entry.entry_id,
                entry_fields=entry.fields,
                reason=f"unexpected error {attempts} times in a row: {type(error).__name__}: "
                f"{shown(str(error))}",
                application=self._queue.load_application(entity_id) if entity_id else {},
            )
        self._settled(entry)
        return True

    def _load(
        self, entity_ids: list[str]
    ) -> list[tuple[TxRecord | None, HashContent, str | None, str | None]]:
        """Each application's record (this wallet's), hash (guarded by size), done marker and
        owning wallet, in one round trip."""
        if not entity_ids:
            return []

        def read() -> list:
            pipe = self._redis.pipeline(transaction=False)
            for entity_id in entity_ids:
                pipe.hgetall(self._records.key(entity_id))
                self._queue.hashes.stage(pipe, application_key(entity_id))
                pipe.get(self._records.done_key(entity_id))
                pipe.get(self._records.owner_key(entity_id))
            return pipe.execute()

        replies = self._queue.hashes.run(read)
        return [
            (
                TxRecord.from_fields(replies[i]) if replies[i] else None,
                HashGuard.parse(replies[i + 1]),
                replies[i + 2],
                replies[i + 3],
            )
            for i in range(0, len(replies), 4)
        ]

    def _commit(self, records: list[TxRecord]) -> None:
        """Write-ahead: the records, each application's transactionHash and the entries'
        acknowledgements, in one transaction, before anything is broadcast."""
        if self._lease.generation != self._generation:  # lost and gained again meanwhile:
            raise LeaseLost("the wallet's lease changed hands during the batch; not sending")
        self._records.put_many(
            records,
            fence=self._lease.fence,
            also=lambda pipe: self._queue.stage_submitted(
                pipe, [(r.entity_id, r.stream_entry_id, r.tx_hash) for r in records]
            ),
        )

    def _set_aside_entry(self, entry: Entry, error: errors.PermanentError) -> None:
        if not entry.fields:  # deleted from the stream while pending: nothing to keep
            log.info("stream entry %s no longer exists; acknowledged", entry.entry_id)
            self._queue.ack(entry.entry_id)
            return
        # Whatever the id, a hash under it goes into the letter (by size) before it is removed.
        application = (
            self._queue.load_application(entry.entity_id) if entry.entity_id else HashContent({})
        )
        self._queue.dead_letters.set_aside(
            entity_id=entry.entity_id,
            reason=error.reason,
            kind=error.kind,
            application=application,
            entry_id=entry.entry_id,
            entry_fields=entry.fields,
        )

    def _set_aside(
        self, entry: Entry, entity_id: str, content: HashContent, error: errors.PermanentError
    ) -> None:
        self._queue.dead_letters.set_aside(
            entity_id=entity_id,
            reason=error.reason,
            kind=error.kind,
            application=content,
            entry_id=entry.entry_id,
            entry_fields=entry.fields,
        )

    def _hold_lease(self) -> bool:
        """Send only while the wallet's lease is held (the lease keeper takes and renews it on
        its own schedule); on gaining it, adopt what another holder may have left: its
        unacknowledged entries and the nonce after its records, once per gain, before sending."""
        if self._lease.held():
            generation = self._lease.generation
            if generation != self._generation or not self._active:
                # Taking over (or back): another sender may have used nonces and left entries.
                # This process's own unsettled entries stay in memory; a redelivery of one
                # that the other sender settled is recognised by its record or done marker.
                self._records.claim_owners()
                self._nonces.sync()
                self._queue.rewind()
                self._claimed_at = None  # and claim what dead consumers left, before reading
                self._generation, self._active = generation, True
                log.info(
                    "holding the wallet's lease %s; sending (next nonce %s)",
                    self._lease.key,
                    self._nonces.next,
                )
                self._state.set_holding(None)
            return True
        holder = self._lease.holder()
        if self._active:
            log.warning(
                "lost the wallet's lease %s (now held by %s); standing by", self._lease.key, holder
            )
        self._active = False
        self._state.set_holding(
            f"standby: another processor ({holder}) holds the wallet's lease"
            if holder and holder != self._lease.owner
            else "standby: waiting for the wallet's lease"
        )
        self._pause(STANDBY_CHECK_INTERVAL)
        return False

    def _claim_if_due(self) -> None:
        """On taking the wallet and then every lease TTL, while this wallet can send: claim
        the entries that consumers gone meanwhile left unacknowledged (a wallet on hold claims
        nothing, so it does not keep entries from the others)."""
        now = self._monotonic()
        if self._claimed_at is None or now - self._claimed_at >= self._claim_interval:
            self._claimed_at = now
            self._queue.claim_abandoned()

    def _current_balance(self, *, working: bool) -> int:
        """The wallet balance as far as it matters now. It is read from the node only with
        entries in hand (at most every `balance_ttl` seconds) or while holding for a low
        balance; an idle processor asks the node nothing and keeps the last figure (the
        receipt watcher refreshes the monitor's). Each transaction sent lowers it locally by
        what it may cost."""
        now = self._monotonic()
        holding = "balance" in self._holding_for  # a hold's pause is over: look again
        if self._known_balance is None and not working and not holding:
            self._known_balance = self._state.snapshot().balance  # the watcher's last figure
        stale = now - self._balance_read_at >= self._balance_ttl
        if self._known_balance is None or holding or (working and stale):
            self._known_balance = self._balance()
            self._balance_read_at = now
            self._state.set_balance(self._known_balance)
            self._state.node_ok("processor")
        return self._known_balance

    def _balance_sufficient(self, *, working: bool) -> bool:
        balance = self._current_balance(working=working)
        if self._guard(
            "balance",
            None
            if balance >= self._min_balance
            else (
                f"balance {balance} wei is below PROCESSOR_MIN_BALANCE {self._min_balance} wei; "
                f"nothing is sent, re-checking in {self._balance_too_low_timeout:.0f}s"
            ),
            resumed=f"balance {balance} wei is sufficient again; resuming",
        ):
            return True
        self._known_balance = None  # read it afresh after the wait
        return False

    def _within_spending_limit(self) -> bool:
        """The spending guard: with MAX_GAS_SPEND_PER_HOUR set, hold while the last hour's
        spend has reached the ceiling: what confirmed transactions paid plus the most the ones
        in flight can cost (counted by the receipt watcher each round, and raised here at once
        by each transaction sent). It is checked per batch of stream entries."""
        if self._max_spend_per_hour is None:
            return True
        spent = self._state.snapshot().spent_last_hour
        over = spent is not None and spent >= self._max_spend_per_hour
        return self._guard(
            "spend",
            (
                f"spending guard: {spent} wei spent in the last hour (confirmed and in flight) "
                f"reached MAX_GAS_SPEND_PER_HOUR {self._max_spend_per_hour} wei"
            )
            if over
            else None,
            resumed=f"spending guard: {spent} wei in the last hour, below the ceiling again; "
            "resuming",
        )

    def _nothing_stuck(self) -> bool:
        """A transaction of this wallet that cannot be mined under the fee cap (the receipt
        watcher says so) holds reading: new ones would queue behind it, while other wallets of
        the pool can send them."""
        stuck = self._state.snapshot().stuck
        return self._guard(
            "stuck",
            f"{stuck}; taking no new entries" if stuck else None,
            resumed="no transaction is stuck any more; resuming",
        )

    def _guard(self, kind: str, blocked: str | None, *, resumed: str) -> bool:
        """Hold for BALANCE_TOO_LOW_TIMEOUT while `blocked` says why; once it no longer does,
        say so once and clear the hold. True when sending may go on."""
        if blocked is None:
            if kind in self._holding_for:
                log.info("%s", resumed)
                self._holding_for.discard(kind)
                self._state.set_holding(None)
            return True
        self._holding_for.add(kind)
        self._hold(blocked, self._balance_too_low_timeout)
        return False

    def _hold(self, reason: str, timeout: float | None = None) -> None:
        if self._wallet is not None:
            reason = f"wallet {self._wallet}: {reason}"
        log.warning("holding: %s", reason)
        self._state.set_holding(reason)
        self._pause(self._error_timeout if timeout is None else timeout)

    def _retry_later(self, reason: str) -> None:
        """Capped exponential backoff over consecutive failures, at most ERROR_TIMEOUT."""
        self._failures += 1
        delay = min(self._error_timeout, FIRST_BACKOFF * 2 ** (self._failures - 1))
        log.error("transient failure, retrying in %.1fs: %s", delay, reason)
        self._pause(delay)

    def _pause(self, seconds: float) -> None:
        """Wait without going silent: the heartbeat shows the loop is alive while it holds."""
        deadline = self._monotonic() + seconds
        while not self._stop.is_set():
            remaining = deadline - self._monotonic()
            if remaining <= 0:
                return
            self._beat()
            self._stop.wait(min(remaining, STOP_CHECK_INTERVAL))

    def _block_ms(self) -> int:
        return max(1, int(min(self._read_block, STOP_CHECK_INTERVAL) * 1000))
