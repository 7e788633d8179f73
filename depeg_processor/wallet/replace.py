"""Replacement: stuck transactions re-priced under the fee cap.

Same nonce and call, both fees raised (at least 12.5%, and to the market now), never above
MAX_FEE_PER_GAS. One fee lookup, one fenced write-ahead of all the replacements, one batch to
publish them; those the node refuses as underpriced or below the base fee are bumped again, at
most MAX_REPLACEMENT_BUMPS times in all. Every hash signed for a nonce is kept in its record,
since any of them may be the one mined.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

from .. import errors
from ..clock import Clock
from ..errors import FenceLost, LeaseLost
from ..fees import FeePolicy, Fees
from ..metrics import Metrics
from .lease import Lease
from .publish import Answer, Publisher
from .records import TxRecord, TxRecords
from .submit import Submitter

log = logging.getLogger(__name__)

MAX_REPLACEMENT_BUMPS = 3

Replaced = TxRecord | errors.ProcessorError


class Replacer:
    """Re-prices one wallet's stuck transactions."""

    def __init__(
        self,
        *,
        lease: Lease,
        records: TxRecords,
        fees: FeePolicy,
        metrics: Metrics,
        clock: Clock,
        publisher: Publisher,
        submitter: Submitter,
    ) -> None:
        self._lease = lease
        self._records = records
        self._fees = fees
        self._metrics = metrics
        self._clock = clock
        self._publisher = publisher
        self._submitter = submitter  # signs the same call again at other fees

    def replace_many(self, records: Sequence[TxRecord]) -> list[Replaced]:
        """One outcome per record: the record now current; FeeCapReached (carrying it) when the
        cap leaves no room for a transaction the node would take; InsufficientFunds; or
        NonceConflict when the nonce went to another transaction and the application is back
        on the queue; SigningRefused when the signing policy refuses what the record holds (kept
        unchanged). Raises LeaseLost when the lease is gone: nothing more is written or sent."""
        if not self._lease.held():
            raise LeaseLost("the wallet's lease is not held; not replacing")
        fees = self._fees
        market = fees.current(fresh=True)
        current = {r.entity_id: r for r in records}  # stored now: what the node should have
        floor = {
            r.entity_id: Fees(r.max_fee_per_gas, r.max_priority_fee_per_gas, market.base_fee)
            for r in records
        }
        outcomes: dict[str, Replaced] = {}
        due = list(records)
        for _bump in range(MAX_REPLACEMENT_BUMPS):
            signed = []
            for record in due:
                bumped = fees.bump(floor[record.entity_id], market)
                if bumped is None:
                    outcomes[record.entity_id] = errors.FeeCapReached(
                        f"nonce {record.nonce}: max fee {current[record.entity_id].max_fee_per_gas}"
                        f" wei cannot rise under the cap {fees.cap} wei (base fee "
                        f"{market.base_fee} wei)",
                        current[record.entity_id],
                    )
                else:
                    try:
                        replacement = self._resign(current[record.entity_id], bumped)
                    except errors.SigningRefused as refused:  # the stored record stays as is
                        outcomes[record.entity_id] = refused
                        continue
                    signed.append((record, bumped, replacement))
            if not signed:
                due = []
                break
            due, below_base_fee = self._send(signed, current, floor, outcomes)
            if below_base_fee and due:
                market = fees.current(fresh=True)
        for record in due:
            outcomes[record.entity_id] = errors.FeeCapReached(
                f"nonce {record.nonce}: still refused after {MAX_REPLACEMENT_BUMPS} bumps",
                current[record.entity_id],
            )
        return [outcomes[record.entity_id] for record in records]

    def _send(
        self,
        signed: list[tuple[TxRecord, Fees, TxRecord]],
        current: dict[str, TxRecord],
        floor: dict[str, Fees],
        outcomes: dict[str, Replaced],
    ) -> tuple[list[TxRecord], bool]:
        """Write the replacements ahead, publish them, and sort the answers: returns the
        records to bump again and whether the base fee was above an offer."""
        self._write([replacement for _r, _f, replacement in signed])
        answers = self._publisher.publish([replacement for _r, _f, replacement in signed])
        restore, due, below_base_fee = [], [], False
        for (record, fees, replacement), (answer, result) in zip(signed, answers):
            entity_id = record.entity_id
            if answer is Answer.UNDERPRICED:
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
            elif answer is Answer.FEE_TOO_LOW:
                # Neither this nor the older one is in the pool: keep the higher one, go on.
                log.warning(
                    "application %s: max fee %s is below the base fee; bumping further",
                    entity_id,
                    fees.max_fee_per_gas,
                )
                current[entity_id], floor[entity_id] = replacement, fees
                due.append(record)
                below_base_fee = True
            elif answer is Answer.SENT_BACK:  # its record is gone with it
                outcomes[entity_id] = errors.NonceConflict(f"nonce {record.nonce} sent back")
            elif answer in (Answer.NONCE_USED, Answer.NO_FUNDS):
                restore.append(current[entity_id])  # the older transaction stands
                outcomes[entity_id] = current[entity_id] if answer is Answer.NONCE_USED else result
            else:
                self._replaced(record, replacement, answer, result)
                current[entity_id] = outcomes[entity_id] = replacement
        if restore:  # the node refused these replacements: the older transactions stand
            self._write(restore)
        return due, below_base_fee

    def _replaced(
        self, record: TxRecord, replacement: TxRecord, answer: Answer, result: object
    ) -> None:
        if not answer.in_pool:
            log.warning(
                "application %s: replacement %s sent with an unknown outcome (%s)",
                record.entity_id,
                replacement.tx_hash,
                result,
            )
        self._metrics.fee_bumps.inc()
        log.warning(
            "application %s tx %s replaced by %s (nonce %s, max fee %s -> %s, tip %s -> %s)",
            record.entity_id,
            record.tx_hash,
            replacement.tx_hash,
            record.nonce,
            record.max_fee_per_gas,
            replacement.max_fee_per_gas,
            record.max_priority_fee_per_gas,
            replacement.max_priority_fee_per_gas,
        )

    def _resign(self, current: TxRecord, fees: Fees) -> TxRecord:
        """`current`'s transaction signed again at `fees`; every earlier hash is kept."""
        tx_hash, raw = self._submitter.sign(
            nonce=current.nonce, data=current.data, gas=current.gas, fees=fees
        )
        return dataclasses.replace(
            current,
            tx_hash=tx_hash,
            raw=raw,
            max_fee_per_gas=fees.max_fee_per_gas,
            max_priority_fee_per_gas=fees.max_priority_fee_per_gas,
            signed_at=self._clock.now(),
            previous_hashes=current.hashes,
        )

    def _write(self, records: list[TxRecord]) -> None:
        """Store records only while this process holds the lease (WATCHed in the transaction):
        one that lost it must not overwrite what the next holder wrote."""
        if not self._lease.held():
            raise LeaseLost("the wallet's lease is not held; not replacing")
        try:
            self._records.put_many(records, fence=self._lease.fence)
        except FenceLost as error:
            raise LeaseLost(str(error)) from None
