"""The failures the processor tells apart.

Every failure is either *permanent* (the application can never succeed as it is: set it aside
in the dead-letter stream) or *transient* (the world may change: keep the entry and retry).
Chain errors are sorted into these in exactly one place, :func:`depeg_processor.chain.classify`.
"""
from __future__ import annotations


class ProcessorError(Exception):
    """Base class of the processor's own errors."""


class ConfigError(ProcessorError):
    """The configuration is unusable; the message names the variable."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name = name
        self.problem = problem


class PermanentError(ProcessorError):
    """This application can never succeed as it is; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TransientError(ProcessorError):
    """A dependency failed or refused for now; retry later."""


class ProductInactive(TransientError):
    """The product is paused or depegged (DP-010); applications wait until it is active."""


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
