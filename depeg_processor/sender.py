"""Turn a validated application into a transaction on chain: simulate, sign, record, broadcast.

The simulation (at a learned gas limit, `eth_estimateGas` where that does not fit)
runs first, so an application the contract would reject costs no gas. The signed transaction
is recorded before it is broadcast (write-ahead); from then on the receipt watcher owns its
delivery, so a send whose outcome is unknown is not an error here.
Stuck transactions are replaced the same way, in batches: same nonces, higher fees, recorded
first. Every write of records is fenced by the wallet's lease.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from . import errors
from .chain import Chain, NodeUnavailable
from .clock import SYSTEM, Clock
from .config import Settings
from .errors import FenceLost, LeaseLost
from .faults import NO_FAULTS, Faults
from .fees import Backlog, FeePolicy, Fees
from .inbound.application import Application
from .lease import Fence
from .nonce import NonceManager
from .records import TxRecord, TxRecords
from .signing import TransactionSigner

log = logging.getLogger(__name__)

GAS_HEADROOM = 1.2  # state can change between simulation and inclusion
MAX_REPLACEMENT_BUMPS = 3


@dataclasses.dataclass(frozen=True)
class SenderConfig:
    """What every transaction of the wallet is signed for: the chain (as the node names it at
    start) and the product contract."""

    chain_id: int
    product: str

    @classmethod
    def from_settings(cls, settings: Settings, *, chain_id: int) -> SenderConfig:
        return cls(chain_id=chain_id, product=settings.product_address)


class Sender:
    def __init__(
        self,
        *,
        config: SenderConfig,
        clock: Clock = SYSTEM,
        chain: Chain,
        signer: TransactionSigner,
        encode_call: Callable[[Application], str],
        nonces: NonceManager,
        fees: FeePolicy,
        records: TxRecords,
        requeue: Callable[[TxRecord], None],
        may_send: Callable[[], bool] = lambda: True,
        fence: Fence | None = None,
        on_fee_bump: Callable[[], None] = lambda: None,
        faults: Faults = NO_FAULTS,
    ) -> None:
        self._chain = chain
        self._signer = signer
        self._chain_id = config.chain_id
        self.product = config.product
        self._encode_call = encode_call
        self._nonces = nonces
        self.fees = fees
        self._records = records
        self.requeue = requeue  # back to the queue, record dropped; fenced by the lease
        self._may_send = may_send
        self._fence = fence
        self._on_fee_bump = on_fee_bump
        self._wallet_seen: tuple[int, int] | None = None  # (mined nonce, balance)
        self._gas_limit: int | None = None  # learned from eth_estimateGas, see simulate()
        self._broadcaster = ThreadPoolExecutor(max_workers=1, thread_name_prefix="broadcast")
        self._broadcasting: Future | None = None
        self._faults = faults
        self._clock = clock.now

    def simulate(
        self, apps: Sequence[Application]
    ) -> list[tuple[str, int] | errors.ProcessorError]:
        """Calldata and gas limit per application, simulated in one JSON-RPC batch against the
        pending state (so a signature used by a transaction still in the pool is seen as used);
        a revert gives PermanentError or ProductInactive in that application's place.

        Once a gas limit is known, the applications are simulated at that limit (one EVM run
        each; success there means the transaction succeeds with it), one after another in one
        `eth_simulateV1` request where the node offers it (each then also sees what the ones
        before it in the batch change), else each with an `eth_call`. `eth_estimateGas` (a
        search over many runs, five times the cost on anvil) sets the limit on the first batch
        and takes over for any application that does not fit it.
        """
        calldata = [self._encode_call(app) for app in apps]
        outcomes: list = [None] * len(apps)
        estimate = list(range(len(apps)))
        if self._gas_limit is not None:
            results = self._chain.simulate(
                [self._call(data, self._gas_limit) for data in calldata], "pending"
            )
            estimate = []
            for i, result in enumerate(results):
                if not isinstance(result, errors.ProcessorError):
                    outcomes[i] = (calldata[i], self._gas_limit)
                elif isinstance(result, (errors.ProductInactive, NodeUnavailable)) or (
                    isinstance(result, errors.PermanentError) and "ERROR:" in result.reason
                ):
                    outcomes[i] = result  # a reasoned revert: the same at any gas limit
                else:
                    estimate.append(i)  # out of gas at the limit, or unclear: estimate it
        if estimate:
            results = self._chain.batch(
                [("eth_estimateGas", [self._call(calldata[i]), "pending"]) for i in estimate]
            )
            for i, result in zip(estimate, results):
                if isinstance(result, errors.ProcessorError):
                    outcomes[i] = result
                else:
                    gas = int(int(result, 16) * GAS_HEADROOM)
                    self._gas_limit = max(self._gas_limit or 0, gas)
                    outcomes[i] = (calldata[i], gas)
        return outcomes

    def _call(self, data: str, gas: int | None = None) -> dict:
        call = {"from": self._signer.address, "to": self.product, "data": data}
        if gas is not None:
            call["gas"] = hex(gas)
        return call

    def _sign(self, *, nonce: int, data: str, gas: int, fees: Fees) -> tuple[str, str]:
        return self._signer.sign(
            chain_id=self._chain_id,
            nonce=nonce,
            to=self.product,
            data=data,
            gas=gas,
            max_fee_per_gas=fees.max_fee_per_gas,
            max_priority_fee_per_gas=fees.max_priority_fee_per_gas,
        )

    def _check_lease(self) -> None:
        if not self._may_send():
            raise LeaseLost("the wallet's lease is not held; not sending")

    def submit(
        self,
        apps: Sequence[Application],
        *,
        entry_ids: Sequence[str],
        commit: Callable[[list[TxRecord]], None],
    ) -> list[TxRecord | errors.ProcessorError]:
        """Simulate, sign, record and broadcast a batch of applications; one outcome each: the
        record of its transaction, or the error that stopped it before anything was written.

        `commit` stores the records (write-ahead) together with whatever must happen with them
        atomically (the caller's acknowledgements); broadcasting starts only after it.
        """
        outcomes: list[TxRecord | errors.ProcessorError] = list(self.simulate(apps))
        self._faults.hit("after-simulate")
        ready = [i for i, outcome in enumerate(outcomes) if isinstance(outcome, tuple)]
        if not ready:
            return outcomes
        self.finish_broadcast()  # the previous batch is out (and its nonce answers known)
        self._check_lease()
        nonces = [self._nonces.take() for _i in ready]
        priced = self.fees.for_wait(
            self.fees.current(),
            gas=max(outcomes[i][1] for i in ready),
            backlog=self._backlog(nonces[0]),
            count=len(ready),
        )
        records = []
        for i, nonce, fees in zip(ready, nonces, priced):
            data, gas = outcomes[i]
            tx_hash, raw = self._sign(nonce=nonce, data=data, gas=gas, fees=fees)
            records.append(
                TxRecord(
                    entity_id=apps[i].entity_id,
                    tx_hash=tx_hash,
                    nonce=nonce,
                    raw=raw,
                    gas=gas,
                    max_fee_per_gas=fees.max_fee_per_gas,
                    max_priority_fee_per_gas=fees.max_priority_fee_per_gas,
                    stream_entry_id=entry_ids[i],
                    signed_at=self._clock(),
                    enqueued_at=apps[i].timestamp,
                    data=data,
                )
            )
        self._faults.hit("after-sign")
        try:
            self._check_lease()
            commit(records)
        except FenceLost as error:
            self._nonces.sync_later()
            raise LeaseLost(str(error)) from None
        except Exception:
            self._nonces.sync_later()
            raise
        self._faults.hit("after-record")
        for i, record in zip(ready, records):
            outcomes[i] = record
        # The batch is recorded and acknowledged: it is broadcast from a worker thread while
        # the loop reads, validates and simulates the next batch (whose signing waits for it).
        self._broadcasting = self._broadcaster.submit(self._broadcast_in_background, records)
        return outcomes

    def observe_wallet(self, *, mined_nonce: int, balance: int) -> None:
        """What the chain says of the wallet now (the receipt watcher tells each round): how
        many of its transactions are mined, and its balance; the next batch is priced by it."""
        self._wallet_seen = (mined_nonce, balance)

    def _backlog(self, first_nonce: int) -> Backlog:
        """The wallet's transactions in flight before `first_nonce`, and what the balance
        above PROCESSOR_MIN_BALANCE leaves for reservations (unknown before the watcher's
        first round: then no headroom beyond today's is given)."""
        seen = self._wallet_seen
        if seen is None:
            return Backlog(ahead=0, spendable=0)
        mined_nonce, balance = seen
        return Backlog(ahead=max(0, first_nonce - mined_nonce), spendable=balance - self.fees.keep)

    def finish_broadcast(self) -> None:
        """Wait until the batch being broadcast is out."""
        if self._broadcasting is not None:
            self._broadcasting.result()
            self._broadcasting = None

    def _broadcast_in_background(self, records: list[TxRecord]) -> None:
        try:
            self._broadcast(records)
        except Exception:  # recorded already: the receipt watcher resends what did not go out
            log.exception(
                "broadcasting %s recorded transaction(s) failed; the watcher resends them",
                len(records),
            )
        self._faults.hit("after-broadcast")

    def _broadcast(self, records: list[TxRecord]) -> None:
        """Send the recorded transactions in one batch. They are recorded and acknowledged
        already, so a refusal never loses one: the receipt watcher resends or re-prices what the
        node did not take, and a nonce the chain has used already sends the application back to
        the queue."""
        if not self._may_send():
            log.warning(
                "lease lost before broadcasting %s recorded transaction(s); the next "
                "holder sends them",
                len(records),
            )
            return
        try:
            results = self._chain.batch([("eth_sendRawTransaction", [r.raw]) for r in records])
        except NodeUnavailable as error:
            log.warning(
                "%s recorded transaction(s) not broadcast (%s); the watcher resends them",
                len(records),
                error,
            )
            return
        conflicts = []
        for record, result in zip(records, results):
            if isinstance(result, errors.NonceConflict):  # "nonce too low"
                conflicts.append(record)
            elif isinstance(result, errors.ProcessorError) and not isinstance(
                result, errors.AlreadyKnown
            ):
                log.warning(
                    "application %s tx %s: the node refused it for now (%s); the watcher retries",
                    record.entity_id,
                    record.tx_hash,
                    result,
                )
            else:
                log.info(
                    "application %s sent as tx %s (nonce %s, max fee %s, tip %s, gas %s)",
                    record.entity_id,
                    record.tx_hash,
                    record.nonce,
                    record.max_fee_per_gas,
                    record.max_priority_fee_per_gas,
                    record.gas,
                )
        if conflicts:
            for record in conflicts:
                try:
                    self.requeue(record)  # fenced: only the lease holder enqueues again
                except FenceLost:
                    log.warning(
                        "application %s tx %s: nonce %s already used on chain; not "
                        "enqueued again: the lease is lost, the next holder settles "
                        "it",
                        record.entity_id,
                        record.tx_hash,
                        record.nonce,
                    )
                    continue
                log.warning(
                    "application %s tx %s: nonce %s already used on chain; enqueued again",
                    record.entity_id,
                    record.tx_hash,
                    record.nonce,
                )
            self._nonces.sync()

    def replace_many(self, records: Sequence[TxRecord]) -> list[TxRecord | errors.ProcessorError]:
        """Replace stuck transactions: same nonce and call, both fees raised (at least 12.5% and
        to the market now), never above the cap. One fee lookup, one fenced write-ahead of all
        the replacements, one batch to send them; those refused as underpriced or below the base
        fee are bumped again, at most MAX_REPLACEMENT_BUMPS times in all. One outcome per
        record: the record now current, FeeCapReached (carrying it) when the cap leaves no room
        for a transaction the node would take, or InsufficientFunds. Raises LeaseLost when the
        lease is gone: then nothing more is written or sent."""
        self._check_lease()
        market = self.fees.current(fresh=True)
        current = {r.entity_id: r for r in records}  # stored now: what the node should have
        floor = {
            r.entity_id: Fees(r.max_fee_per_gas, r.max_priority_fee_per_gas, market.base_fee)
            for r in records
        }
        outcomes: dict[str, TxRecord | errors.ProcessorError] = {}
        due = list(records)
        for _bump in range(MAX_REPLACEMENT_BUMPS):
            signed = []
            for record in due:
                fees = self.fees.bump(floor[record.entity_id], market)
                if fees is None:
                    outcomes[record.entity_id] = errors.FeeCapReached(
                        f"nonce {record.nonce}: max fee {current[record.entity_id].max_fee_per_gas}"
                        f" wei cannot rise under the cap {self.fees.cap} wei (base fee "
                        f"{market.base_fee} wei)",
                        current[record.entity_id],
                    )
                else:
                    signed.append((record, fees, self._resign(current[record.entity_id], fees)))
            due = []
            if not signed:
                break
            self._check_lease()
            self._write_fenced([replacement for _r, _f, replacement in signed])  # write-ahead
            try:
                results = self._chain.batch(
                    [
                        ("eth_sendRawTransaction", [replacement.raw])
                        for _r, _f, replacement in signed
                    ]
                )
            except NodeUnavailable as error:
                results = [error] * len(signed)
            restore, below_base_fee = [], False
            for (record, fees, replacement), result in zip(signed, results):
                entity_id = record.entity_id
                if isinstance(result, errors.ReplacementUnderpriced):
                    log.warning(
                        "application %s: replacement of nonce %s at max fee %s refused "
                        "as underpriced; bumping further",
                        entity_id,
                        record.nonce,
                        fees.max_fee_per_gas,
                    )
                    restore.append(current[entity_id])
                    floor[entity_id] = fees
                    due.append(record)
                elif isinstance(result, errors.FeeTooLow):
                    # Neither this nor the older one is in the pool: keep the higher one, go on.
                    log.warning(
                        "application %s: max fee %s is below the base fee; bumping further",
                        entity_id,
                        fees.max_fee_per_gas,
                    )
                    current[entity_id], floor[entity_id] = replacement, fees
                    due.append(record)
                    below_base_fee = True
                elif isinstance(result, (errors.NonceConflict, errors.InsufficientFunds)):
                    # NonceConflict: one of the earlier ones was mined meanwhile.
                    restore.append(current[entity_id])
                    outcomes[entity_id] = (
                        current[entity_id] if isinstance(result, errors.NonceConflict) else result
                    )
                else:
                    if isinstance(result, errors.ProcessorError) and not isinstance(
                        result, errors.AlreadyKnown
                    ):
                        log.warning(
                            "application %s: replacement %s sent with an unknown outcome (%s)",
                            entity_id,
                            replacement.tx_hash,
                            result,
                        )
                    self._on_fee_bump()
                    log.warning(
                        "application %s tx %s replaced by %s (nonce %s, max fee %s -> "
                        "%s, tip %s -> %s)",
                        entity_id,
                        record.tx_hash,
                        replacement.tx_hash,
                        record.nonce,
                        record.max_fee_per_gas,
                        fees.max_fee_per_gas,
                        record.max_priority_fee_per_gas,
                        fees.max_priority_fee_per_gas,
                    )
                    current[entity_id] = outcomes[entity_id] = replacement
            if restore:  # the node refused these replacements: the older transactions stand
                self._write_fenced(restore)
            if below_base_fee and due:
                market = self.fees.current(fresh=True)
        for record in due:
            outcomes[record.entity_id] = errors.FeeCapReached(
                f"nonce {record.nonce}: still refused after {MAX_REPLACEMENT_BUMPS} bumps",
                current[record.entity_id],
            )
        return [outcomes[record.entity_id] for record in records]

    def _resign(self, current: TxRecord, fees: Fees) -> TxRecord:
        """`current`'s transaction signed again at `fees`; every earlier hash is kept."""
        tx_hash, raw = self._sign(
            nonce=current.nonce, data=current.data, gas=current.gas, fees=fees
        )
        return dataclasses.replace(
            current,
            tx_hash=tx_hash,
            raw=raw,
            max_fee_per_gas=fees.max_fee_per_gas,
            max_priority_fee_per_gas=fees.max_priority_fee_per_gas,
            signed_at=self._clock(),
            previous_hashes=current.hashes,
        )

    def _write_fenced(self, records: list[TxRecord]) -> None:
        """Store records only while this process holds the lease (WATCHed in the transaction):
        one that lost it must not overwrite what the next holder wrote."""
        try:
            self._records.put_many(records, fence=self._fence)
        except FenceLost as error:
            raise LeaseLost(str(error)) from None
