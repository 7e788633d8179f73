"""Submitting: a batch of validated applications becomes recorded, signed transactions.

simulate → sign → write-ahead → publish. The simulation runs first, so an application the
contract would refuse costs no gas. The signed transactions are recorded, together with each
application's `transactionHash` and its entry's acknowledgement, in one Redis transaction
fenced by the lease, before anything is broadcast (write-ahead): from then on the receipt
watcher owns their delivery, so a send whose outcome is unknown is not an error here. The
batch is published from a worker thread while the consumer prepares the next one, whose
signing waits for it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from .. import errors
from ..chain.signing import TransactionSigner
from ..clock import Clock
from ..errors import FenceLost, LeaseLost, PoolChanged
from ..faults import Faults
from ..fees import Backlog, FeePolicy, Fees
from ..inbound.application import Application
from ..inbound.stream import StreamQueue
from .context import WalletConfig
from .last_seen import LastSeenHolder
from .lease import Lease
from .nonce import NonceManager
from .preflight import Preflight
from .publish import Answer, Publisher
from .records import TxRecord, TxRecords

log = logging.getLogger(__name__)

PREFLIGHT_TRIES = 5  # simulations of one batch while other wallets keep recording theirs

Outcome = TxRecord | errors.ProcessorError


class Submitter:
    """One wallet's way from applications to transactions in flight."""

    def __init__(
        self,
        *,
        config: WalletConfig,
        signer: TransactionSigner,
        lease: Lease,
        records: TxRecords,
        nonces: NonceManager,
        last_seen: LastSeenHolder,
        queue: StreamQueue,
        fees: FeePolicy,
        clock: Clock,
        faults: Faults,
        preflight: Preflight,
        publisher: Publisher,
        on_below_base_fee: Callable[[list[TxRecord]], None] = lambda records: None,
        durable: Callable[[str], bool] | None = None,
    ) -> None:
        self._config = config
        self._signer = signer
        self._lease = lease
        self._records = records
        self._nonces = nonces
        self._last_seen = last_seen
        self._queue = queue
        self._fees = fees
        self._clock = clock
        self._faults = faults
        self._publisher = publisher
        self._preflight = preflight
        self._on_below_base_fee = on_below_base_fee  # tells the watcher's in-flight view
        self._durable = durable or (lambda tx_hash: True)  # see durable: WAIT / WAITAOF
        self._broadcaster = ThreadPoolExecutor(max_workers=1, thread_name_prefix="broadcast")
        self._broadcasting: Future | None = None

    def submit(
        self, apps: Sequence[Application], *, entry_ids: Sequence[str], generation: int
    ) -> list[Outcome]:
        """Simulate, sign, record and publish a batch; one outcome per application: the record
        of its transaction, or the error that stopped it before anything was written. The
        records are written only while the lease is still in `generation` (the one whose
        take-over is done): else LeaseLost, nothing written."""
        monotonic = self._clock.monotonic
        for _try in range(PREFLIGHT_TRIES):
            # The previous batch out (and its nonce answers known) before the simulation, not
            # after it: what is judged by the simulation should reach the node at once.
            self.finish()
            version = self._records.pool_version()  # before the simulation reads the pool
            outcomes: list = list(self._preflight.check(apps))
            simulated = monotonic()
            self._faults.hit("after-simulate")
            ready = [i for i, outcome in enumerate(outcomes) if isinstance(outcome, tuple)]
            ready = [i for i in ready if self._allowed(outcomes, i)]
            if not ready:
                return outcomes
            self._check_lease(generation)
            records = self._sign([(apps[i], entry_ids[i], *outcomes[i]) for i in ready])
            signed = monotonic()
            self._faults.hit("after-sign")
            try:
                self._write_ahead(records, generation, version)
                break
            except PoolChanged:  # what this batch was simulated after is not all there is
                log.info("another wallet recorded transactions meanwhile; simulating again")
        else:
            return [errors.WaitingForRoom("the pool kept changing during the simulation")] * len(
                apps
            )
        self._faults.hit("after-record")
        for i, record in zip(ready, records):
            outcomes[i] = record
        times = (simulated, signed, monotonic())
        self._broadcasting = self._broadcaster.submit(self._publish, records, times)
        return outcomes

    def _allowed(self, outcomes: list, i: int) -> bool:
        """Whether the signing policy takes the call simulated for application `i`; if not,
        its outcome becomes the refusal (set aside), before any nonce is handed out."""
        data, gas = outcomes[i]
        try:
            self._signer.check_call(to=self._config.product, data=data, gas=gas)
        except errors.SigningRefused as refused:
            outcomes[i] = refused
            return False
        return True

    def _sign(self, items: list[tuple[Application, str, str, int]]) -> list[TxRecord]:
        """(application, entry id, calldata, gas) each signed with the next nonce, priced for
        its place in the wallet's line."""
        nonces = [self._nonces.take() for _item in items]
        fees = self._fees
        priced = fees.for_wait(
            fees.current(),
            gas=max(gas for *_rest, gas in items),
            backlog=self._backlog(nonces[0]),
            count=len(items),
        )
        now = self._clock.now()
        records = []
        for (app, entry_id, data, gas), nonce, price in zip(items, nonces, priced):
            tx_hash, raw = self.sign(nonce=nonce, data=data, gas=gas, fees=price)
            records.append(
                TxRecord(
                    entity_id=app.entity_id,
                    tx_hash=tx_hash,
                    nonce=nonce,
                    raw=raw,
                    gas=gas,
                    max_fee_per_gas=price.max_fee_per_gas,
                    max_priority_fee_per_gas=price.max_priority_fee_per_gas,
                    stream_entry_id=entry_id,
                    signed_at=now,
                    enqueued_at=app.timestamp,
                    data=data,
                )
            )
        return records

    def sign(self, *, nonce: int, data: str, gas: int, fees: Fees) -> tuple[str, str]:
        """The product call signed by this wallet: (hash, raw transaction)."""
        return self._signer.sign(
            chain_id=self._config.chain_id,
            nonce=nonce,
            to=self._config.product,
            data=data,
            gas=gas,
            max_fee_per_gas=fees.max_fee_per_gas,
            max_priority_fee_per_gas=fees.max_priority_fee_per_gas,
        )

    def _backlog(self, first_nonce: int) -> Backlog:
        """The wallet's transactions in flight before `first_nonce`, and what the balance
        above PROCESSOR_MIN_BALANCE leaves for reservations (unknown before the watcher's
        first look: then no headroom beyond today's is given)."""
        seen = self._last_seen.get()
        if seen.mined_nonce is None or seen.balance is None:
            return Backlog(ahead=0, spendable=0)
        return Backlog(
            ahead=max(0, first_nonce - seen.mined_nonce),
            spendable=seen.balance - self._fees.keep,
        )

    def _check_lease(self, generation: int) -> None:
        lease = self._lease
        if not lease.held():
            raise LeaseLost("the wallet's lease is not held; not sending")
        if lease.generation != generation:  # lost and gained again meanwhile
            raise LeaseLost("the wallet's lease changed hands during the batch; not sending")

    def _write_ahead(self, records: list[TxRecord], generation: int, version: str) -> None:
        """The records, each application's transactionHash and the entries' acknowledgements
        in one transaction fenced by the lease, and only if the pool is at `version` still. A
        batch not written frees its nonces."""
        try:
            self._check_lease(generation)
            self._records.put_many(
                records,
                fence=self._lease.fence,
                version=version,
                also=lambda pipe: self._queue.stage_submitted(
                    pipe, [(r.entity_id, r.stream_entry_id, r.tx_hash) for r in records]
                ),
            )
        except FenceLost as error:
            self._nonces.sync_later()
            self._lease.refused()
            raise LeaseLost(str(error)) from None
        except Exception:
            self._nonces.sync_later()
            raise

    def finish(self) -> None:
        """Wait until the batch being published is out."""
        if self._broadcasting is not None:
            self._broadcasting.result()
            self._broadcasting = None

    def close(self) -> None:
        """The last batch out, then the worker thread ends."""
        self.finish()
        self._broadcaster.shutdown(wait=True)

    def _publish(self, records: list[TxRecord], times: tuple[float, float, float]) -> None:
        """The first send of a recorded batch. Nothing is lost by a refusal: the watcher
        resends or re-prices what the node did not take; those refused below the base fee it
        is told of at once (a spike above the fee cap is then reported within its round).
        `times`: when the simulation answered, the batch was signed and written ahead."""
        try:
            self._durable(records[0].tx_hash)  # bounded; broadcast whether reached or not
            sending = self._clock.monotonic()
            answers = self._publisher.publish(records, first=True)
            _log_race_window(len(records), *times, sending, self._clock.monotonic())
        except LeaseLost:
            log.warning(
                "lease lost before broadcasting %s recorded transaction(s); the next "
                "holder sends them",
                len(records),
            )
            return
        except Exception:  # recorded already: the receipt watcher resends what did not go out
            log.exception(
                "broadcasting %s recorded transaction(s) failed; the watcher resends them",
                len(records),
            )
            return
        finally:
            self._faults.hit("after-broadcast")
        below = [
            r for r, (answer, _result) in zip(records, answers) if answer is Answer.FEE_TOO_LOW
        ]
        if below:
            self._on_below_base_fee(below)
        for record, (answer, result) in zip(records, answers):
            if answer.in_pool:
                log.info(
                    "application %s sent as tx %s (nonce %s, max fee %s, tip %s, gas %s)",
                    record.entity_id,
                    record.tx_hash,
                    record.nonce,
                    record.max_fee_per_gas,
                    record.max_priority_fee_per_gas,
                    record.gas,
                )
            elif answer is Answer.UNANSWERED:
                log.warning(
                    "application %s tx %s not broadcast (%s); the watcher resends it",
                    record.entity_id,
                    record.tx_hash,
                    result,
                )
            elif answer is not Answer.SENT_BACK:
                log.warning(
                    "application %s tx %s: the node refused it for now (%s); the watcher retries",
                    record.entity_id,
                    record.tx_hash,
                    result,
                )


def _log_race_window(
    count: int, simulated: float, signed: float, written: float, sending: float, answered: float
) -> None:
    """The time between the simulation's answer and the broadcast: the window in which a
    holder can change what the simulation saw (issue 21), and what it is spent on."""
    log.debug(
        "batch of %s: %.1f ms from the simulation's answer to the broadcast (signing %.1f, "
        "write-ahead %.1f, hand-over %.1f); the node answered in %.1f ms",
        count,
        (sending - simulated) * 1000,
        (signed - simulated) * 1000,
        (written - signed) * 1000,
        (sending - written) * 1000,
        (answered - sending) * 1000,
    )
