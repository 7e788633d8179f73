"""A used signature is news, not always a failure: which transaction used it, and what that
means for its application.

The product takes a signature once (`DMH-001`, `SMH-001` on older deployments, after that).
When Redis loses writes (a restart from a snapshot, a failover to a replica that was behind)
the processor forgets what it sent: the application comes back as new, and its simulation
says its signature is used, by the pool's own transaction mined meanwhile. Setting it aside
as a failure would be false; so the transaction is looked up on chain. Each application the
product creates emits `LogDepegApplicationCreated(processId, policyHolder, protectedWallet,
protectedBalance, sumInsured, premium)` (no field indexed), so the product's logs of the last
LOOKBACK_BLOCKS are read newest first, those of the application's holder, wallet and balance
kept, and each one's transaction read: the one whose calldata carries this signature is it.

- sent by a wallet of the pool: the application is done. Once the transaction has its
  confirmations it is completed as usual (purged, its done marker naming the transaction, its
  signature marked as used) and its entry acknowledged: `Applied`.
- sent by anyone else (the holder applied with the signature themselves, another relayer):
  set aside with the kind `already_applied`, naming that transaction; not a failure of the
  processor, and the dead-letter alert does not count it.
- not found in the window: set aside as `already_applied` all the same (the chain says the
  signature is used), saying that the transaction was not found.

The same question comes after a transaction of ours reverted on chain with its signature used
(see settle): a copy sent after Redis lost the original's record (completed with the
original's hash, not a failure), or a holder who front-ran it with their own signature
(`already_applied`, and the holder held: one paid revert, not one per application).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Collection

from .. import errors
from ..chain.abi import decode
from ..chain.calls import ChainClient
from ..chain.hexaddr import keccak_text
from ..chain.product import signature_in_call
from ..inbound.application import Application
from .context import WalletContext
from .txrecord import TxRecord

log = logging.getLogger(__name__)

APPLICATION_CREATED = (
    "0x"
    + keccak_text(
        "LogDepegApplicationCreated(bytes32,address,address,uint256,uint256,uint256)"
    ).hex()
)
EVENT_TYPES = ["bytes32", "address", "address", "uint256", "uint256", "uint256"]
LOOKBACK_BLOCKS = 50_000  # about a week on mainnet: far beyond what a rollback forgets
CHUNK_BLOCKS = 2_000  # within what hosted providers answer in one eth_getLogs


@dataclasses.dataclass(frozen=True)
class Used:
    """The transaction that used an application's signature."""

    tx_hash: str
    sender: str
    block: int


@dataclasses.dataclass(frozen=True)
class Sought:
    """What an application's call says of it: enough to find the transaction that used its
    signature (an Application has the same fields)."""

    entity_id: str
    policy_holder: str
    protected_wallet: str
    protected_balance: int
    signature: bytes

    @classmethod
    def from_record(cls, record: TxRecord) -> Sought | None:
        """From the call a record signed (None: not an application's call)."""
        signature = signature_in_call(record.data)
        if signature is None:
            return None
        holder, wallet, balance = decode(  # the call's first three arguments, static
            ["address", "address", "uint256"], bytes.fromhex(record.data[10:])[:96]
        )
        return cls(record.entity_id, holder, wallet, balance, signature)


@dataclasses.dataclass(frozen=True)
class Applied:
    """An application whose policy a transaction of the pool created: completed and purged."""

    entity_id: str
    tx_hash: str
    sender: str


def used_by(
    app: Application | Sought, *, chain: ChainClient, product: str, head: int
) -> Used | None:
    """The transaction that applied with `app`'s signature, searched newest first in the
    product's logs of the LOOKBACK_BLOCKS up to `head`; None when none is found there."""
    low = max(0, head - LOOKBACK_BLOCKS)
    wanted = (app.policy_holder.lower(), app.protected_wallet.lower(), app.protected_balance)
    top = head
    while top >= low:
        bottom = max(low, top - CHUNK_BLOCKS + 1)
        logs = chain.request(
            "eth_getLogs",
            [
                {
                    "address": product,
                    "topics": [APPLICATION_CREATED],
                    "fromBlock": hex(bottom),
                    "toBlock": hex(top),
                }
            ],
        )
        for entry in reversed(logs or []):
            if _fields(entry) != wanted:
                continue
            tx = chain.request("eth_getTransactionByHash", [entry["transactionHash"]])
            if tx and signature_in_call(tx.get("input") or "") == app.signature:
                return Used(tx["hash"], tx["from"], int(entry["blockNumber"], 16))
        top = bottom - 1
    return None


def _fields(entry: dict) -> tuple[str, str, int] | None:
    """(holder, protected wallet, protected balance) of one LogDepegApplicationCreated."""
    try:
        _id, holder, wallet, balance, *_rest = decode(
            EVENT_TYPES, bytes.fromhex(entry["data"].removeprefix("0x"))
        )
    except Exception:  # not the event's layout: not one of ours
        return None
    return holder.lower(), wallet.lower(), balance


def judge(
    app: Application | Sought,
    used: Used | None,
    *,
    pool: Collection[str],
    head: int,
    confirmations: int,
) -> Used | errors.ProcessorError:
    """What a used signature means: `used` itself when the pool's transaction is confirmed
    (the caller completes the application), WaitingForRoom while it waits for its
    confirmations, or an `already_applied` PermanentError (someone else's, or not found)."""
    if used is None:
        return errors.PermanentError(
            f"application {app.entity_id}: its signature is used on chain already, by a "
            f"transaction not found in the product's logs of the last {LOOKBACK_BLOCKS} blocks",
            kind="already_applied",
        )
    if used.sender.lower() not in {address.lower() for address in pool}:
        return errors.PermanentError(
            f"application {app.entity_id} was applied already by transaction {used.tx_hash} "
            f"from {used.sender} (not a wallet of this processor) in block {used.block}",
            kind="already_applied",
        )
    if head - used.block + 1 < confirmations:
        return errors.WaitingForRoom(
            f"application {app.entity_id} was applied by the pool's transaction "
            f"{used.tx_hash} in block {used.block}; it waits for its confirmations"
        )
    return used


class UsedSignatures:
    """One wallet's answer to a simulation that found an application's signature used."""

    def __init__(self, ctx: WalletContext) -> None:
        self._ctx = ctx

    def settle(self, app: Application, entry_id: str) -> Applied | errors.ProcessorError:
        """Complete the application if the pool's transaction used its signature (`Applied`),
        else the error to act on (see `judge`)."""
        ctx = self._ctx
        shared = ctx.shared
        product = ctx.config.product
        head = int(shared.chain.request("eth_blockNumber", []), 16)
        used = used_by(app, chain=shared.chain, product=product, head=head)
        pool = {records.owner for records in shared.pool if records.owner} | {ctx.address}
        verdict = judge(app, used, pool=pool, head=head, confirmations=ctx.config.min_confirmations)
        if not isinstance(verdict, Used):
            if isinstance(verdict, errors.PermanentError):
                log.warning("%s; set aside as already applied", verdict.reason)
            return verdict
        ctx.records.complete_many(
            [(app.entity_id, verdict.tx_hash)],
            signatures={app.entity_id: "0x" + app.signature.hex()},
        )
        ctx.queue.ack(entry_id)
        shared.metrics.confirmed.inc()
        self.count_gas(verdict)
        log.info(
            "application %s was applied by tx %s of the pool's wallet %s in block %s (its "
            "record was lost); purged as confirmed",
            app.entity_id,
            verdict.tx_hash,
            verdict.sender,
            verdict.block,
        )
        return Applied(app.entity_id, verdict.tx_hash, verdict.sender)

    def behind_revert(self, record: TxRecord, block: int) -> Used | errors.ProcessorError:
        """`record`'s transaction reverted in `block` because its signature was used: by the
        pool's transaction (`Used`: mined at or before `block`, so it has its confirmations
        as the revert has), or else the `already_applied` error naming what used it."""
        ctx = self._ctx
        sought = Sought.from_record(record)
        if sought is None:
            return errors.PermanentError(
                f"application {record.entity_id}: its signature is used on chain already",
                kind="already_applied",
            )
        used = used_by(sought, chain=ctx.shared.chain, product=ctx.config.product, head=block)
        pool = {records.owner for records in ctx.shared.pool if records.owner} | {ctx.address}
        return judge(sought, used, pool=pool, head=block, confirmations=1)

    def count_gas(self, used: Used) -> None:
        """What the pool's transaction paid, from its receipt, into the spend metric and the
        spending guard's ledger (its record, which would have counted it, was lost). Best
        effort: the application is done whether or not the node answers."""
        ctx = self._ctx
        try:
            receipt = ctx.shared.chain.request("eth_getTransactionReceipt", [used.tx_hash])
        except errors.ProcessorError as error:
            log.warning("the gas of tx %s could not be read: %s", used.tx_hash, error)
            return
        if not receipt:
            return
        cost = int(receipt.get("gasUsed") or "0x0", 16) * int(
            receipt.get("effectiveGasPrice") or "0x0", 16
        )
        ctx.shared.metrics.gas_spent.inc(cost)
        if ctx.spend is not None:
            ctx.spend.add_many([(used.tx_hash, cost)], ctx.shared.clock.now())
