"""Turn a validated application into a transaction on chain: simulate, sign, record, broadcast.

The simulation (`eth_estimateGas`) runs first, so an application the contract would reject costs
no gas. The signed transaction is recorded before it is broadcast (write-ahead); from then on the
receipt watcher owns its delivery, so a send whose outcome is unknown is not an error here.
"""
from __future__ import annotations

import logging
import time
from typing import Callable

from eth_account.signers.local import LocalAccount
from web3 import Web3

from . import errors
from .application import Application
from .chain import Chain, NodeUnavailable
from .fees import FeePolicy
from .nonce import NonceManager
from .records import TxRecord, TxRecords

log = logging.getLogger(__name__)

GAS_HEADROOM = 1.2  # state can change between simulation and inclusion
MAX_NONCE_RETRIES = 3


class Sender:
    def __init__(self, *, chain: Chain, account: LocalAccount, chain_id: int, product: str,
                 encode_call: Callable[[Application], str], nonces: NonceManager,
                 fees: FeePolicy, records: TxRecords,
                 clock: Callable[[], float] = time.time) -> None:
        self._chain = chain
        self._account = account
        self._chain_id = chain_id
        self._product = product
        self._encode_call = encode_call
        self._nonces = nonces
        self._fees = fees
        self._records = records
        self._clock = clock

    def simulate(self, app: Application) -> tuple[str, int]:
        """Calldata and gas limit; a revert raises PermanentError or ProductInactive."""
        data = self._encode_call(app)
        gas = self._chain.estimate_gas({"from": self._account.address, "to": self._product,
                                        "data": data})
        return data, int(gas * GAS_HEADROOM)

    def submit(self, app: Application, *, stream_entry_id: str) -> TxRecord:
        data, gas = self.simulate(app)
        fees = self._fees.current()
        for _attempt in range(MAX_NONCE_RETRIES):
            nonce = self._nonces.take()
            signed = self._account.sign_transaction({
                "type": 2, "chainId": self._chain_id, "nonce": nonce, "to": self._product,
                "value": 0, "data": data, "gas": gas,
                "maxFeePerGas": fees.max_fee_per_gas,
                "maxPriorityFeePerGas": fees.max_priority_fee_per_gas,
            })
            record = TxRecord(
                entity_id=app.entity_id, tx_hash=Web3.to_hex(signed.hash), nonce=nonce,
                raw=Web3.to_hex(signed.raw_transaction), gas=gas,
                max_fee_per_gas=fees.max_fee_per_gas,
                max_priority_fee_per_gas=fees.max_priority_fee_per_gas,
                stream_entry_id=stream_entry_id, signed_at=self._clock(),
                enqueued_at=app.timestamp)
            try:
                self._records.put(record)
            except Exception:
                self._nonces.give_back(nonce)
                raise
            try:
                self._chain.send_raw(signed.raw_transaction)
            except (errors.AlreadyKnown, NodeUnavailable) as error:
                # Recorded and possibly in the node's pool: the watcher confirms or resends it.
                log.warning("application %s tx %s: send outcome unknown (%s); the watcher "
                            "will resend it if the node does not have it",
                            app.entity_id, record.tx_hash, error)
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
            log.info("application %s sent as tx %s (nonce %s, max fee %s, tip %s, gas %s)",
                     app.entity_id, record.tx_hash, nonce, fees.max_fee_per_gas,
                     fees.max_priority_fee_per_gas, gas)
            return record
        raise errors.NonceConflict(f"nonce still refused after {MAX_NONCE_RETRIES} attempts")
