"""The signing policy: the one check every transaction passes before any key signs it.

The processor exists to send one call: `applyForPolicyWithBundleAndSignature` to the depeg
product, carrying an application its policy holder signed. Whatever else a record in Redis may
say (whoever can write there can change a record's `data` or `gas`, and a replacement signs
them again), a key signs only that: to DEPEG_PRODUCT_ADDRESS on the chain the node names,
value 0, calldata that is the canonical encoding of that call whose EIP-712 `Policy` signature
recovers to the policy holder it names (as the product's message helper will check), gas at
most MAX_GAS_PER_TRANSACTION and fees at most MAX_FEE_PER_GAS. The one other transaction it
signs moves nothing: a nonce filler (`wallet/relayed.py`), a 0-value transfer of the signing
wallet to itself with no calldata and 21000 gas, under the same fee cap.
`chain.signing.TransactionSigner` asks it on every signature: first sends, replacements,
anything added later. A refusal is logged at ERROR, counted
(`depeg_processor_signing_refused_total`) and raised as `SigningRefused`; the caller keeps what
it had (a record stays as it is stored).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable

from ..chain.abi import decode, encode
from ..chain.hexaddr import checksum_address
from ..chain.product import APPLY, apply_function
from ..config import Settings
from ..errors import PermanentError, SigningRefused
from ..inbound.eip712 import check_strict, policy_digest, recover

log = logging.getLogger(__name__)

FILLER_GAS = 21_000  # a plain transfer's gas: a nonce filler uses exactly this
# Calldata judged lately: a batch's calls are checked before their nonces are handed out and
# again when signed (an EIP-712 recovery each time, a third of a millisecond); the verdict is a
# function of the calldata, the chain and the message helper alone.
CHECKED_CALLS = 1024


@dataclasses.dataclass(frozen=True)
class SigningPolicy:
    """What may be signed, for one chain and product; `on_refused` counts a refusal."""

    chain_id: int
    product: str
    verifying_contract: str  # the product's message helper: the EIP-712 domain's contract
    max_gas: int
    max_fee_per_gas: int
    on_refused: Callable[[], None] = lambda: None

    @classmethod
    def for_node(
        cls, settings: Settings, chain_id: int, message_helper: str, *, on_refused: Callable
    ) -> SigningPolicy:
        """The policy for the chain and message helper the node named at start."""
        return cls(
            chain_id=chain_id,
            product=settings.product_address,
            verifying_contract=message_helper,
            max_gas=settings.max_gas_per_transaction,
            max_fee_per_gas=settings.max_fee_per_gas,
            on_refused=on_refused,
        )

    def check(
        self,
        *,
        to: str,
        data: str,
        gas: int,
        value: int = 0,
        chain_id: int | None = None,
        max_fee_per_gas: int | None = None,
        max_priority_fee_per_gas: int | None = None,
        nonce: int | None = None,
        sender: str | None = None,
    ) -> None:
        """Raise SigningRefused (reported) unless the transaction is one the processor may
        sign; the fees and chain are checked when given (a call is checked before it is
        priced)."""
        problem = self.problem(
            to=to,
            data=data,
            gas=gas,
            value=value,
            chain_id=chain_id,
            max_fee_per_gas=max_fee_per_gas,
            max_priority_fee_per_gas=max_priority_fee_per_gas,
            sender=sender,
        )
        if problem is None:
            return
        self.on_refused()
        log.error("signing refused (nonce %s): %s", nonce, problem)
        raise SigningRefused(problem)

    def problem(
        self,
        *,
        to: str,
        data: str,
        gas: int,
        value: int,
        chain_id: int | None,
        max_fee_per_gas: int | None,
        max_priority_fee_per_gas: int | None,
        sender: str | None = None,
    ) -> str | None:
        """What is wrong with the transaction, in words that quote no calldata; None: fine."""
        if chain_id is not None and chain_id != self.chain_id:
            return f"chain id {chain_id} is not the node's {self.chain_id}"
        to = checksum_address(to)
        filler = sender is not None and to == checksum_address(sender)
        if filler and (value, data.removeprefix("0x"), gas) == (0, "", FILLER_GAS):
            return self._fee_problem(max_fee_per_gas, max_priority_fee_per_gas)
        if to != self.product:
            return f"to {to} is not DEPEG_PRODUCT_ADDRESS"
        if value != 0:
            return f"value {value} wei is not 0"
        if not 0 < gas <= self.max_gas:
            return f"gas {gas} is not within 1 .. MAX_GAS_PER_TRANSACTION {self.max_gas}"
        return self._fee_problem(max_fee_per_gas, max_priority_fee_per_gas) or self._call_problem(
            data
        )

    def _fee_problem(self, max_fee: int | None, tip: int | None) -> str | None:
        if max_fee is not None and max_fee > self.max_fee_per_gas:
            return f"max fee {max_fee} wei is above MAX_FEE_PER_GAS"
        if tip is not None and tip > (max_fee or self.max_fee_per_gas):
            return f"tip {tip} wei is above the max fee"
        return None

    def _call_problem(self, data: str) -> str | None:
        return call_problem(data, self.chain_id, self.verifying_contract)


@functools.lru_cache(maxsize=CHECKED_CALLS)
def call_problem(data: str, chain_id: int, verifying_contract: str) -> str | None:
    """The calldata is `applyForPolicyWithBundleAndSignature`, canonically encoded, with a
    signature of its policy holder over its own `Policy` values."""
    function = apply_function()
    try:
        body = bytes.fromhex(data.removeprefix("0x"))
    except ValueError:
        return "the calldata is not hex"
    if body[:4] != function.selector:
        return f"the calldata does not call {APPLY}"
    try:
        args = decode(function.types, body[4:])
    except Exception:
        return f"the calldata is not an encoding of {APPLY}"
    if encode(function.types, list(args)) != body[4:]:
        return f"the calldata is not the canonical encoding of {APPLY}"
    holder, wallet, balance, duration, bundle, signature_id, signature = args
    if len(signature) != 65:
        return "the application's signature is not 65 bytes"
    digest = policy_digest(
        (wallet, balance, duration, bundle, signature_id),
        chain_id=chain_id,
        verifying_contract=verifying_contract,
    )
    try:
        check_strict(signature)
        signer = recover(digest, signature)
    except PermanentError as error:
        return f"the application's {error.reason}"
    except Exception:
        return "the application's signature recovers no signer"
    if signer != checksum_address(holder):
        return "the application's signature is not the policy holder's"
    return None
