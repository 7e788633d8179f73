"""The failures the processor tells apart.

Every failure is either *permanent* (the application can never succeed as it is: set it aside
in the dead-letter stream) or *transient* (the world may change: keep the entry and retry).
Chain errors are sorted into these in exactly one place,
:func:`depeg_processor.chain.classify.classify`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# What a dead letter is counted as (the metric's label): a small fixed set, never free text.
KINDS = frozenset(
    {
        "invalid_entry",
        "invalid_field",
        "not_utf8",
        "too_large",
        "not_found",
        "signature_invalid",
        "duplicate",
        "already_applied",
        "revert_other",
        "reverted_on_chain",
        "holder_held",
        "too_many_deliveries",
        "signing_refused",
        "other",
    }
)
# The highest revert code number each module of the GIF 2.0 framework and of the depeg
# product's own contracts ships (@etherisc/gif-contracts, gif-interface, depeg-contracts
# 1.2.0; their examples and test contracts left out), with DMH-003 and SMH-001 of older
# deployments (wire format). An application's transaction runs through the framework
# (policy, pool, bundle, treasury, ...), so a revert may come from any of these modules.
SHIPPED_CODES = {
    # GIF framework: access, registry, components, flows, modules, services, tokens
    "ACL": 4, "ACM": 6, "BOC": 74, "BTK": 5, "BUC": 73, "CCR": 27, "CMP": 4, "COS": 7,
    "CRC": 4, "CRP": 1, "IOS": 11, "IS": 2, "LIC": 1, "ORA": 1, "PFD": 5, "POC": 111,
    "POL": 50, "PRS": 2, "QUC": 42, "REC": 102, "RPL": 10, "RPS": 20, "TRS": 92,
    # the depeg product's contracts: riskpool, price feeds, product, message helper
    "ADP": 10, "BRP": 2, "DRP": 101, "PRD": 3, "UPDP": 30, "DMH": 3, "SMH": 1,
}  # fmt: skip
# The revert codes counted under their own name: every code up to the highest shipped per
# module (a fixed set of under a thousand, built here), and the product's DP- codes.
REVERT_CODES = frozenset(
    {
        *(f"{module}-{n:03d}" for module, top in SHIPPED_CODES.items() for n in range(1, top + 1)),
        *(f"DP-{n:03d}" for n in range(1, 100)),
    }
)
_REVERT_CODE = re.compile(r"ERROR:([A-Z]+-[0-9]{3}):")


def revert_kind(revert: str) -> str:
    """The kind of a revert string from the product or the framework under it: its code
    (`ERROR:DP-012:…`, `ERROR:BUC-060:…`) if it is a known one, else `revert_other`."""
    code = _REVERT_CODE.match(revert)
    return code.group(1) if code and code.group(1) in REVERT_CODES else "revert_other"


SIGNATURE_USED = frozenset({"DMH-001", "SMH-001"})  # this application's signature is spent


class ProcessorError(Exception):
    """Base class of the processor's own errors."""


class ConfigError(ProcessorError):
    """The configuration is unusable; the message names the variable."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name = name
        self.problem = problem

    def lines(self) -> list[str]:
        """One line per unusable variable."""
        return [str(self)]


class ConfigErrors(ConfigError):
    """Several variables are unusable at once; `name` and `problem` are the first's, `errors`
    all of them in the order of the settings table."""

    def __init__(self, errors: Sequence[ConfigError]) -> None:
        super().__init__(errors[0].name, errors[0].problem)
        self.errors = tuple(errors)

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def lines(self) -> list[str]:
        return [line for error in self.errors for line in error.lines()]


class StartupError(ProcessorError):
    """Redis, the node or the product is not what the processor needs; retrying will not help."""


class PermanentError(ProcessorError):
    """This application can never succeed as it is; `reason` says why, `kind` in one word
    (one of KINDS or REVERT_CODES)."""

    def __init__(self, reason: str, kind: str = "other") -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind


class SigningRefused(PermanentError):
    """The signing policy refused a transaction (signer.policy): nothing was signed."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"signing refused: {reason}", kind="signing_refused")


class TransientError(ProcessorError):
    """A dependency failed or refused for now; retry later."""


class NodeUnavailable(TransientError):
    """The node did not answer (connection refused, timeout, bad HTTP status)."""


class RateLimited(NodeUnavailable):
    """The node (a hosted provider) refused for now: too many calls. Waited out and retried;
    never counted against an application (as for any node that does not answer)."""


class BatchRefused(TransientError):
    """The node would not take a JSON-RPC batch this large; the chain client splits it."""


class ProductInactive(TransientError):
    """The product is paused or depegged (DP-010); applications wait until it is active."""


class WaitingForRoom(TransientError):
    """Held for the next batch, so that what is in flight is seen first (a node that
    simulates each call alone); not an attempt of the application's."""


class ReplayFailed(WaitingForRoom):
    """A transaction in flight failed when replayed before a batch: the simulation does not
    show the state the batch will meet on chain, so nothing of it is sent on its word; the
    batch waits until what is in flight is mined (or settled) and is simulated again."""


class SimulationTooLarge(WaitingForRoom):
    """The node refused an `eth_simulateV1` for its simulation gas cap (reth's -38026, geth's
    --rpc.gascap): the batch is shortened to fit, the rest waits; not an attempt."""


class PoolChanged(TransientError):
    """A write-ahead refused as a whole: another wallet of the pool recorded transactions
    after this batch was simulated, so it is simulated again; nothing was written."""


class NonceConflict(TransientError):
    """The nonce is used on chain already ("nonce too low"); the nonce must be resynchronised."""


class NonceTooHigh(TransientError):
    """The node will not queue a nonce above the next one (a gap below it must fill first)."""


class ReplacementUnderpriced(TransientError):
    """The node wants a higher fee to replace a pending transaction of the same nonce."""


class AlreadyKnown(TransientError):
    """The node already has this exact transaction."""


class FeeTooLow(TransientError):
    """The offered max fee is below the base fee: the node will not keep the transaction."""


class FeeCapReached(TransientError):
    """A stuck transaction cannot be re-priced: MAX_FEE_PER_GAS leaves no room."""

    def __init__(self, message: str, current: object) -> None:
        super().__init__(message)
        self.current = current


class InsufficientFunds(TransientError):
    """The wallet cannot pay for the transaction at the offered fee."""


class LeaseLost(TransientError):
    """This process no longer holds the wallet's lease: another processor may be sending."""


class FenceLost(TransientError):
    """A write was refused: this process no longer holds the lease it was fenced by."""


class OwnedElsewhere(TransientError):
    """A write-ahead refused as a whole: another wallet already recorded a transaction for
    some of these applications (`taken`: entity id, owner address); nothing was written."""

    def __init__(self, taken: list[tuple[str, str]]) -> None:
        super().__init__(
            "owned by another wallet: "
            + ", ".join(f"{entity_id!r} ({owner})" for entity_id, owner in taken)
        )
        self.taken = taken


class SignatureTaken(TransientError):
    """A write-ahead refused as a whole: the signature of some of these applications was sent
    for another application (`taken`: entity id, the other application described); nothing
    was written. The copies are set aside; the rest of the batch is tried again."""

    def __init__(self, taken: list[tuple[str, str]]) -> None:
        super().__init__(
            "signature sent already: "
            + ", ".join(f"{entity_id!r} (as {other})" for entity_id, other in taken)
        )
        self.taken = taken


class HolderBusy(TransientError):
    """A write-ahead refused as a whole: the policy holder of some of these applications has
    another application in flight, or is held (`busy`: entity ids); nothing was written. They
    wait for the next batch, where the holder's state decides; the rest are tried again."""

    def __init__(self, busy: list[str]) -> None:
        super().__init__("policy holder busy or held: " + ", ".join(map(repr, busy)))
        self.busy = busy


class NodeBehind(NodeUnavailable):
    """No provider that answered was at the block asked about: nothing is decided on it."""


class IllegalMove(ProcessorError):
    """A bug: a transaction in flight was moved between statuses that the table of
    `wallet/lifecycle.py` does not allow. Nothing catches it but the watcher loop's last
    resort, which logs it with its traceback."""
