"""Finding where the wallet's transactions were mined, and whether those blocks still stand.

When blocks arrived since the last look, the receipts of the unmined transactions are asked:
every receipt of each new block in one `eth_getBlockReceipts` call where the node serves it
and that takes fewer calls, else the receipts of every hash a record's replacement chain
produced. The head is asked before the records are read, so a record not seen yet was
broadcast after that head: the blocks up to it never need looking at again (`scanned`).
Before a purge, each receipt's block is checked against the chain's block at that height; a
block reorganised away puts its transactions back to waiting.
"""

from __future__ import annotations

import logging

from .. import errors
from .context import WalletContext
from .inflight import InFlight, Mined
from .lifecycle import Status
from .records import TxRecord

log = logging.getLogger(__name__)


class Receipts:
    """Receipts and canonical checks for one wallet's transactions in flight."""

    def __init__(self, ctx: WalletContext, in_flight: InFlight) -> None:
        self._ctx = ctx
        self._in_flight = in_flight
        self.scanned: int | None = None  # receipts of every block up to it looked at
        self._block_receipts = True  # the node serves eth_getBlockReceipts (until it says not)

    def start_over(self) -> None:
        """Look at every record again (another sender may have sent meanwhile)."""
        self.scanned = None

    def find(self, records: list[TxRecord], head: int) -> None:
        """Look for the unmined records' transactions in the blocks after `scanned` up to
        `head`. A record not seen before gets its hashes asked one by one."""
        unmined = [r for r in records if self._in_flight[r.entity_id].status is not Status.MINED]
        if self.scanned is not None and self.scanned > head:
            self.scanned = None  # the node went back (a reorg, another node behind it)
        if not unmined:
            self.scanned = head  # records not seen yet are sent after this head
            return
        if self.scanned == head:
            return  # no block since the last look
        first = None if self.scanned is None else self.scanned + 1
        by_hash = {tx_hash: record for record in unmined for tx_hash in record.hashes}
        receipts = None
        if first is not None and self._block_receipts and head - first + 1 < len(by_hash):
            receipts = self._of_blocks(range(first, head + 1))
        complete = True
        if receipts is None:
            receipts, complete = self._of_hashes(by_hash)
        found = {}  # entity id -> its receipt (the last one seen, should there be two)
        for receipt in receipts:
            record = by_hash.get(receipt.get("transactionHash", ""))
            if record is not None and receipt.get("blockNumber") and receipt.get("blockHash"):
                found[record.entity_id] = receipt
        for entity_id, receipt in found.items():
            self._in_flight[entity_id].move(
                Status.MINED, mined=Mined.from_receipt(receipt, head=head)
            )
        self.scanned = head if complete else None

    def _of_hashes(self, by_hash: dict[str, TxRecord]) -> tuple[list[dict], bool]:
        """The receipts of these hashes that exist, and whether every lookup answered."""
        wanted = list(by_hash)
        results = self._ctx.shared.chain.batch([("eth_getTransactionReceipt", [h]) for h in wanted])
        receipts, complete = [], True
        for tx_hash, receipt in zip(wanted, results):
            if isinstance(receipt, Exception):
                complete = False
                log.warning(
                    "application %r tx %s: receipt lookup failed: %s",
                    by_hash[tx_hash].entity_id,
                    tx_hash,
                    receipt,
                )
            elif receipt:
                receipts.append(receipt)
        return receipts, complete

    def _of_blocks(self, numbers: range) -> list[dict] | None:
        """Every receipt of these blocks, or None when the node could not say (then the caller
        asks per hash; a node without the method is not asked again)."""
        results = self._ctx.shared.chain.batch(
            [("eth_getBlockReceipts", [hex(n)]) for n in numbers]
        )
        receipts: list[dict] = []
        for result in results:
            if isinstance(result, Exception) or not isinstance(result, list):
                if (
                    isinstance(result, Exception)
                    and not isinstance(result, errors.NodeUnavailable)
                    and "method" in str(result).lower()
                ):
                    log.info(
                        "the node does not serve eth_getBlockReceipts (%s); asking for "
                        "receipts one by one",
                        result,
                    )
                    self._block_receipts = False
                return None
            receipts.extend(result)
        return receipts

    def verify_canonical(self, records: list[TxRecord], head: int) -> None:
        """Before a purge, check that each receipt's block is still the chain's block at that
        height; one lookup per block, shared by the transactions in it. A receipt fetched at
        the current head needs none: it came from the canonical chain just now."""
        confirmations = self._ctx.config.min_confirmations
        due = {
            mined.block
            for r in records
            if (mined := self._in_flight[r.entity_id].mined)
            and mined.seen_at_head != head
            and head - mined.block + 1 >= confirmations
        }
        if not due:
            return
        blocks = sorted(due)
        results = self._ctx.shared.chain.batch(
            [("eth_getBlockByNumber", [hex(b), False]) for b in blocks]
        )
        canonical = {}
        for number, block in zip(blocks, results):
            if isinstance(block, Exception):
                raise block
            canonical[number] = block.get("hash") if block else None
        for record in records:
            tracked = self._in_flight[record.entity_id]
            mined = tracked.mined
            if (
                mined is not None
                and canonical.get(mined.block, mined.block_hash) != mined.block_hash
            ):
                log.warning(
                    "application %s tx %s: block %s (%s) was reorganised away; waiting again",
                    record.entity_id,
                    mined.tx_hash,
                    mined.block,
                    mined.block_hash,
                )
                tracked.move(Status.SENT)
                self.scanned = None  # it may be mined again in a block already looked at
