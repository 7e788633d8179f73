"""Publishing: the one place where the node's answers to `eth_sendRawTransaction` are read.

First sends, resends of what the node forgot and replacements all go out through `publish`, in
one batch, and every answer is sorted into one `Answer`. A nonce the node calls used has one
policy, wherever it shows: if a transaction of the record's own (any hash signed for that
nonce) was mined, the receipt watcher confirms it; if the nonce went to another transaction,
the application goes back on the queue (`TxRecords.send_back`, fenced by the lease); if the
lookups cannot tell, nothing is done and the watcher looks again. A batch is sent only while
the wallet's lease is held.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Sequence

from .. import errors
from ..chain.calls import ChainClient
from ..errors import FenceLost, LeaseLost
from .lease import Lease
from .nonce import NonceManager
from .records import TxRecord, TxRecords

log = logging.getLogger(__name__)


class Answer(enum.Enum):
    """What became of one raw transaction sent to the node."""

    ACCEPTED = "accepted"  # the node took it
    KNOWN = "known"  # the node had it already
    WAITING = "waiting"  # its nonce is above the next: a lower one must fill the gap first
    FEE_TOO_LOW = "fee_too_low"  # its max fee is under the base fee: re-price it
    UNDERPRICED = "underpriced"  # a replacement of the same nonce must offer more
    NO_FUNDS = "no_funds"  # the wallet cannot pay for it at this fee
    NONCE_USED = "nonce_used"  # mined already (ours), or not clear yet: the watcher looks
    SENT_BACK = "sent_back"  # the nonce went to another transaction: back on the queue
    REFUSED = "refused"  # another refusal, for now
    UNANSWERED = "unanswered"  # no answer from the node: the outcome is unknown

    @property
    def in_pool(self) -> bool:
        return self in (Answer.ACCEPTED, Answer.KNOWN)


_SORTED = (
    (errors.AlreadyKnown, Answer.KNOWN),
    (errors.NonceTooHigh, Answer.WAITING),
    (errors.FeeTooLow, Answer.FEE_TOO_LOW),
    (errors.ReplacementUnderpriced, Answer.UNDERPRICED),
    (errors.InsufficientFunds, Answer.NO_FUNDS),
    (errors.NonceConflict, Answer.NONCE_USED),
)


def sort_answer(result: object) -> Answer:
    """The node's answer to one `eth_sendRawTransaction`, as an Answer."""
    if not isinstance(result, Exception):
        return Answer.ACCEPTED
    for kind, answer in _SORTED:
        if isinstance(result, kind):
            return answer
    if isinstance(result, errors.NodeUnavailable):
        return Answer.UNANSWERED
    return Answer.REFUSED


def pool_is_full(error: Exception) -> bool:
    """A first send refused because the node's pool is full: geth's "txpool is full", or
    "transaction underpriced" (not a replacement's: below the cheapest the full pool keeps)."""
    message = str(error).lower()
    return "txpool is full" in message or (
        "underpriced" in message and "replacement" not in message
    )


class Publisher:
    """Sends one wallet's signed transactions and tells what became of each."""

    def __init__(
        self,
        *,
        chain: ChainClient,
        address: str,
        lease: Lease,
        records: TxRecords,
        nonces: NonceManager,
        on_pool_full: Callable[[str], None] = lambda why: None,
    ) -> None:
        self._chain = chain
        self._on_pool_full = on_pool_full
        self._address = address
        self._lease = lease
        self._records = records
        self._nonces = nonces

    def publish(
        self, records: Sequence[TxRecord], *, first: bool = False
    ) -> list[tuple[Answer, object]]:
        """Send the records' raw transactions in one batch: per record its Answer and the
        node's own answer (a hash or an error). `first` for transactions never sent before:
        a nonce sent back then also resynchronises the wallet's next nonce. Raises LeaseLost
        when the lease is not held (nothing is sent)."""
        if not records:
            return []
        if not self._lease.held():
            raise LeaseLost("the wallet's lease is not held; not sending")
        try:
            results = self._chain.batch(
                [("eth_sendRawTransaction", [record.raw]) for record in records]
            )
        except errors.NodeUnavailable as error:
            results = [error] * len(records)
        answers = [sort_answer(result) for result in results]
        if first:
            full = [r for r in results if isinstance(r, Exception) and pool_is_full(r)]
            if full:
                self._on_pool_full(f"a first send refused: {full[0]}")
        conflicts = [i for i, answer in enumerate(answers) if answer is Answer.NONCE_USED]
        if conflicts:
            for i, answer in zip(conflicts, self._nonce_used([records[i] for i in conflicts])):
                answers[i] = answer
            if first and Answer.SENT_BACK in answers:
                self._nonces.sync()
        return list(zip(answers, results))

    def _nonce_used(self, records: list[TxRecord]) -> list[Answer]:
        """The one nonce-conflict policy (see the module docstring)."""
        hashes = [tx_hash for record in records for tx_hash in record.hashes]
        answers = self._chain.batch(
            [("eth_getTransactionReceipt", [h]) for h in hashes]
            + [("eth_getTransactionCount", [self._address, "latest"])]
        )
        *receipts, mined_count = answers
        mined = {h for h, receipt in zip(hashes, receipts) if receipt is not None}
        unclear = isinstance(mined_count, Exception) or any(
            isinstance(r, Exception) for r in receipts
        )
        outcome = []
        for record in records:
            if unclear or mined.intersection(record.hashes) or int(mined_count, 16) <= record.nonce:
                outcome.append(Answer.NONCE_USED)  # ours was mined, or not clear: wait
            else:
                outcome.append(self._send_back(record))
        return outcome

    def _send_back(self, record: TxRecord) -> Answer:
        try:
            self._records.send_back(record.entity_id, fence=self._lease.fence)
        except FenceLost:
            log.warning(
                "application %s tx %s: nonce %s already used on chain; not enqueued again: "
                "the lease is lost, the next holder settles it",
                record.entity_id,
                record.tx_hash,
                record.nonce,
            )
            return Answer.NONCE_USED
        log.warning(
            "application %s tx %s: nonce %s already used on chain by another transaction; "
            "enqueued again",
            record.entity_id,
            record.tx_hash,
            record.nonce,
        )
        return Answer.SENT_BACK
