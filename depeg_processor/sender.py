"""Turn a validated application into a transaction on chain: simulate, sign, record, broadcast.

The simulation (`eth_call` at a learned gas limit, `eth_estimateGas` where that does not fit)
runs first, so an application the contract would reject costs no gas. The signed transaction is recorded before it is broadcast (write-ahead); from then on the
receipt watcher owns its delivery, so a send whose outcome is unknown is not an error here.
A stuck transaction is replaced the same way: same nonce, higher fees, recorded first.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Optional, Sequence, Union


from . import errors
from .application import Application
from .chain import Chain, NodeUnavailable
from .faults import NO_FAULTS, Faults
from .fees import FeePolicy, Fees
from .nonce import NonceManager
from .records import FenceLost, TxRecord, TxRecords
from .signing import TransactionSigner

log = logging.getLogger(__name__)

GAS_HEADROOM = 1.2  # state can change between simulation and inclusion
MAX_REPLACEMENT_BUMPS = 3


class LeaseLost(errors.TransientError):
    """This process no longer holds the wallet's lease: another processor may be sending."""


class Sender:
    def __init__(self, *, chain: Chain, signer: TransactionSigner, chain_id: int, product: str,
                 encode_call: Callable[[Application], str], nonces: NonceManager,
                 fees: FeePolicy, records: TxRecords, requeue: Callable[[TxRecord], None],
                 may_send: Callable[[], bool] = lambda: True,
                 on_fee_bump: Callable[[], None] = lambda: None,
                 faults: Faults = NO_FAULTS, clock: Callable[[], float] = time.time) -> None:
        self._chain = chain
        self._signer = signer
        self._chain_id = chain_id
        self.product = product
        self._encode_call = encode_call
        self._nonces = nonces
        self.fees = fees
        self._records = records
        self._requeue = requeue
        self._may_send = may_send
        self._on_fee_bump = on_fee_bump
        self._gas_limit: Optional[int] = None  # learned from eth_estimateGas, see simulate()
        self._broadcaster = ThreadPoolExecutor(max_workers=1, thread_name_prefix="broadcast")
        self._broadcasting: Optional[Future] = None
        self._faults = faults
        self._clock = clock

    def simulate(self, apps: Sequence[Application]) -> list[Union[tuple[str, int], errors.ProcessorError]]:
        """Calldata and gas limit per application, simulated in one JSON-RPC batch against the
        pending state (so a signature used by a transaction still in the pool is seen as used);
        a revert gives PermanentError or ProductInactive in that application's place.

        Once a gas limit is known, each application is simulated with `eth_call` at that limit
        (one EVM run; success there means the transaction succeeds with it). `eth_estimateGas`
        (a search over many runs, five times the cost on anvil) sets the limit on the first
        batch and takes over for any application that does not fit it.
        """
        calldata = [self._encode_call(app) for app in apps]
        outcomes: list = [None] * len(apps)
        estimate = list(range(len(apps)))
        if self._gas_limit is not None:
            results = self._chain.batch([("eth_call", [self._call(data, self._gas_limit),
                                                       "pending"]) for data in calldata])
            estimate = []
            for i, result in enumerate(results):
                if not isinstance(result, errors.ProcessorError):
                    outcomes[i] = (calldata[i], self._gas_limit)
                elif isinstance(result, (errors.ProductInactive, NodeUnavailable)) or (
                        isinstance(result, errors.PermanentError) and "ERROR:" in result.reason):
                    outcomes[i] = result  # a reasoned revert: the same at any gas limit
                else:
                    estimate.append(i)  # out of gas at the limit, or unclear: estimate it
        if estimate:
            results = self._chain.batch([("eth_estimateGas", [self._call(calldata[i]), "pending"])
                                         for i in estimate])
            for i, result in zip(estimate, results):
                if isinstance(result, errors.ProcessorError):
                    outcomes[i] = result
                else:
                    gas = int(int(result, 16) * GAS_HEADROOM)
                    self._gas_limit = max(self._gas_limit or 0, gas)
                    outcomes[i] = (calldata[i], gas)
        return outcomes

    def _call(self, data: str, gas: Optional[int] = None) -> dict:
        call = {"from": self._signer.address, "to": self.product, "data": data}
        if gas is not None:
            call["gas"] = hex(gas)
        return call

    def _sign(self, *, nonce: int, data: str, gas: int, fees: Fees) -> tuple[str, str]:
        return self._signer.sign(chain_id=self._chain_id, nonce=nonce, to=self.product,
                                 data=data, gas=gas, max_fee_per_gas=fees.max_fee_per_gas,
                                 max_priority_fee_per_gas=fees.max_priority_fee_per_gas)

    def _check_lease(self) -> None:
        if not self._may_send():
            raise LeaseLost("the wallet's lease is not held; not sending")

    def submit(self, apps: Sequence[Application], *, entry_ids: Sequence[str],
               commit: Callable[[list[TxRecord]], None]) -> list[Union[TxRecord, errors.ProcessorError]]:
        """Simulate, sign, record and broadcast a batch of applications; one outcome each: the
        record of its transaction, or the error that stopped it before anything was written.

        `commit` stores the records (write-ahead) together with whatever must happen with them
        atomically (the caller's acknowledgements); broadcasting starts only after it.
        """
        outcomes: list[Union[TxRecord, errors.ProcessorError]] = list(self.simulate(apps))
        self._faults.hit("after-simulate")
        ready = [i for i, outcome in enumerate(outcomes) if isinstance(outcome, tuple)]
        if not ready:
            return outcomes
        self.finish_broadcast()  # the previous batch is out (and its nonce answers known)
        self._check_lease()
        fees = self.fees.current()
        records = []
        for i in ready:
            data, gas = outcomes[i]
            nonce = self._nonces.take()
            tx_hash, raw = self._sign(nonce=nonce, data=data, gas=gas, fees=fees)
            records.append(TxRecord(
                entity_id=apps[i].entity_id, tx_hash=tx_hash, nonce=nonce, raw=raw, gas=gas,
                max_fee_per_gas=fees.max_fee_per_gas,
                max_priority_fee_per_gas=fees.max_priority_fee_per_gas,
                stream_entry_id=entry_ids[i], signed_at=self._clock(),
                enqueued_at=apps[i].timestamp, data=data))
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

    def finish_broadcast(self) -> None:
        """Wait until the batch being broadcast is out."""
        if self._broadcasting is not None:
            self._broadcasting.result()
            self._broadcasting = None

    def _broadcast_in_background(self, records: list[TxRecord]) -> None:
        try:
            self._broadcast(records)
        except Exception:  # recorded already: the receipt watcher resends what did not go out
            log.exception("broadcasting %s recorded transaction(s) failed; the watcher resends "
                          "them", len(records))
        self._faults.hit("after-broadcast")

    def _broadcast(self, records: list[TxRecord]) -> None:
        """Send the recorded transactions in one batch. They are recorded and acknowledged
        already, so a refusal never loses one: the receipt watcher resends or re-prices what the
        node did not take, and a nonce the chain has used already sends the application back to
        the queue."""
        if not self._may_send():
            log.warning("lease lost before broadcasting %s recorded transaction(s); the next "
                        "holder sends them", len(records))
            return
        try:
            results = self._chain.batch([("eth_sendRawTransaction", [r.raw]) for r in records])
        except NodeUnavailable as error:
            log.warning("%s recorded transaction(s) not broadcast (%s); the watcher resends "
                        "them", len(records), error)
            return
        conflicts = []
        for record, result in zip(records, results):
            if isinstance(result, errors.NonceConflict):  # "nonce too low"
                conflicts.append(record)
            elif isinstance(result, errors.ProcessorError) \
                    and not isinstance(result, errors.AlreadyKnown):
                log.warning("application %s tx %s: the node refused it for now (%s); the "
                            "watcher retries", record.entity_id, record.tx_hash, result)
            else:
                log.info("application %s sent as tx %s (nonce %s, max fee %s, tip %s, gas %s)",
                         record.entity_id, record.tx_hash, record.nonce, record.max_fee_per_gas,
                         record.max_priority_fee_per_gas, record.gas)
        if conflicts:
            for record in conflicts:
                log.warning("application %s tx %s: nonce %s already used on chain; enqueued "
                            "again", record.entity_id, record.tx_hash, record.nonce)
                self._requeue(record)
            self._nonces.sync()

    def replace(self, record: TxRecord) -> TxRecord:
        """Replace a stuck transaction: same nonce and call, both fees raised (at least 12.5%
        and to the market now), never above the cap; returns the record now current. Raises
        FeeCapReached (carrying the record now current) when the cap leaves no room for a
        transaction the node would take."""
        self._check_lease()
        market = self.fees.current(fresh=True)
        current = record  # the record stored now: the transaction the node should have
        floor = Fees(record.max_fee_per_gas, record.max_priority_fee_per_gas, market.base_fee)
        for _bump in range(MAX_REPLACEMENT_BUMPS):
            fees = self.fees.bump(floor, market)
            if fees is None:
                raise errors.FeeCapReached(
                    f"nonce {record.nonce}: max fee {current.max_fee_per_gas} wei cannot rise "
                    f"under the cap {self.fees.cap} wei (base fee {market.base_fee} wei)", current)
            tx_hash, raw = self._sign(nonce=record.nonce, data=record.data, gas=record.gas,
                                      fees=fees)
            replacement = dataclasses.replace(
                current, tx_hash=tx_hash, raw=raw, max_fee_per_gas=fees.max_fee_per_gas,
                max_priority_fee_per_gas=fees.max_priority_fee_per_gas, signed_at=self._clock(),
                previous_hashes=current.hashes)
            self._records.put(replacement)  # write-ahead, as for the first transaction
            try:
                self._chain.send_raw(bytes.fromhex(raw[2:]))
            except errors.ReplacementUnderpriced:
                log.warning("application %s: replacement of nonce %s at max fee %s refused as "
                            "underpriced; bumping further", record.entity_id, record.nonce,
                            fees.max_fee_per_gas)
                self._records.put(current)
                floor = fees
                continue
            except errors.FeeTooLow:
                # Neither this nor the older one is in the pool: keep the higher one, go on.
                log.warning("application %s: max fee %s is below the base fee; bumping further",
                            record.entity_id, fees.max_fee_per_gas)
                current, floor = replacement, fees
                market = self.fees.current(fresh=True)
                continue
            except errors.NonceConflict:  # one of the earlier ones was mined meanwhile
                self._records.put(current)
                return current
            except errors.InsufficientFunds:
                self._records.put(current)
                raise
            except errors.TransientError as error:  # outcome unknown: keep it, it may be out
                log.warning("application %s: replacement %s sent with an unknown outcome (%s)",
                            record.entity_id, tx_hash, error)
            self._on_fee_bump()
            log.warning("application %s tx %s replaced by %s (nonce %s, max fee %s -> %s, tip "
                        "%s -> %s)", record.entity_id, record.tx_hash, tx_hash, record.nonce,
                        record.max_fee_per_gas, fees.max_fee_per_gas,
                        record.max_priority_fee_per_gas, fees.max_priority_fee_per_gas)
            return replacement
        raise errors.FeeCapReached(f"nonce {record.nonce}: still refused after "
                                   f"{MAX_REPLACEMENT_BUMPS} bumps", current)
