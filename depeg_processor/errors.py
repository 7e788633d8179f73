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
    """The node rejected a transaction's nonce; the nonce must be resynchronised."""


class ReplacementUnderpriced(TransientError):
    """The node wants a higher fee to replace a pending transaction of the same nonce."""


class AlreadyKnown(TransientError):
    """The node already has this exact transaction."""


class InsufficientFunds(TransientError):
    """The wallet cannot pay for the transaction at the offered fee."""
