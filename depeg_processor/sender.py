"""Turn a validated application into a transaction on chain: simulate, sign, record, broadcast.

The simulation (`eth_estimateGas`) runs first, so an application the contract would reject costs
no gas. The signed transaction is recorded before it is broadcast (write-ahead); from then on the
receipt watcher owns its delivery, so a send whose outcome is unknown is not an error here.
A stuck transaction is replaced the same way: same nonce, higher fees, recorded first.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from typing import Callable, Optional

from eth_account.signers.local import LocalAccount
from web3 import Web3

from . import errors
from .application import Application
from .chain import Chain, NodeUnavailable
from .faults import NO_FAULTS, Faults
from .fees import FeePolicy, Fees
from .nonce import NonceManager
from .records import TxRecord, TxRecords

log = logging.getLogger(__name__)

GAS_HEADROOM = 1.2  # state can change between simulation and inclusion
MAX_NONCE_RETRIES = 3
MAX_REPLACEMENT_BUMPS = 3


class LeaseLost(errors.TransientError):
    """This process no longer holds the wallet's lease: another processor may be sending."""


class Sender:
    def __init__(self, *, chain: Chain, account: LocalAccount, chain_id: int, product: str,
                 encode_call: Callable[[Application], str], nonces: NonceManager,
                 fees: FeePolicy, records: TxRecords, may_send: Callable[[], bool] = lambda: True,
                 faults: Faults = NO_FAULTS, clock: Callable[[], float] = time.time) -> None:
        self._chain = chain
        self._account = account
        self._chain_id = chain_id
        self.product = product
        self._encode_call = encode_call
        self._nonces = nonces
        self.fees = fees
        self._records = records
        self._may_send = may_send
        self._faults = faults
        self._clock = clock

    def simulate(self, app: Application) -> tuple[str, int]:
        """Calldata and gas limit; a revert raises PermanentError or ProductInactive."""
        data = self._encode_call(app)
        gas = self._chain.estimate_gas({"from": self._account.address, "to": self.product,
                                        "data": data})
        return data, int(gas * GAS_HEADROOM)

    def _sign(self, *, nonce: int, data: str, gas: int, fees: Fees) -> tuple[str, str]:
        signed = self._account.sign_transaction({
            "type": 2, "chainId": self._chain_id, "nonce": nonce, "to": self.product,
            "value": 0, "data": data, "gas": gas, "maxFeePerGas": fees.max_fee_per_gas,
            "maxPriorityFeePerGas": fees.max_priority_fee_per_gas})
        return Web3.to_hex(signed.hash), Web3.to_hex(signed.raw_transaction)

    def _check_lease(self) -> None:
        if not self._may_send():
            raise LeaseLost("the wallet's lease is not held; not sending")

    def submit(self, app: Application, *, stream_entry_id: str) -> TxRecord:
        data, gas = self.simulate(app)
        self._faults.hit("after-simulate")
        fees = self.fees.current()
        for _attempt in range(MAX_NONCE_RETRIES):
            self._check_lease()
            nonce = self._nonces.take()
            tx_hash, raw = self._sign(nonce=nonce, data=data, gas=gas, fees=fees)
            self._faults.hit("after-sign")
            record = TxRecord(
                entity_id=app.entity_id, tx_hash=tx_hash, nonce=nonce, raw=raw, gas=gas,
                max_fee_per_gas=fees.max_fee_per_gas,
                max_priority_fee_per_gas=fees.max_priority_fee_per_gas,
                stream_entry_id=stream_entry_id, signed_at=self._clock(),
                enqueued_at=app.timestamp, data=data)
            try:
                self._records.put(record)
            except Exception:
                self._nonces.give_back(nonce)
                raise
            self._faults.hit("after-record")
            try:
                self._check_lease()
                self._chain.send_raw(bytes.fromhex(raw[2:]))
            except (errors.AlreadyKnown, NodeUnavailable, LeaseLost) as error:
                # Recorded and possibly in the node's pool: the watcher of whoever holds the
                # lease confirms it or resends the very same bytes.
                log.warning("application %s tx %s: send outcome unknown (%s); the watcher "
                            "will resend it if the node does not have it",
                            app.entity_id, tx_hash, error)
                if isinstance(error, LeaseLost):
                    raise
            except errors.NonceConflict as error:
                log.warning("application %s: nonce %s refused (%s); resynchronising",
                            app.entity_id, nonce, error)
                self._records.forget(app.entity_id)
                self._nonces.sync()
                continue
            except errors.ProcessorError:
                self._records.forget(app.entity_id)
                self._nonces.give_back(nonce)
                raise
            self._faults.hit("after-broadcast")
            log.info("application %s sent as tx %s (nonce %s, max fee %s, tip %s, gas %s)",
                     app.entity_id, tx_hash, nonce, fees.max_fee_per_gas,
                     fees.max_priority_fee_per_gas, gas)
            return record
        raise errors.NonceConflict(f"nonce still refused after {MAX_NONCE_RETRIES} attempts")

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
            except (errors.AlreadyKnown, NodeUnavailable):
                pass
            log.warning("application %s tx %s replaced by %s (nonce %s, max fee %s -> %s, tip "
                        "%s -> %s)", record.entity_id, record.tx_hash, tx_hash, record.nonce,
                        record.max_fee_per_gas, fees.max_fee_per_gas,
                        record.max_priority_fee_per_gas, fees.max_priority_fee_per_gas)
            return replacement
        raise errors.FeeCapReached(f"nonce {record.nonce}: still refused after "
                                   f"{MAX_REPLACEMENT_BUMPS} bumps", current)
