"""The one place node errors are sorted into the processor's kinds.

Every JSON-RPC error object the node sends, whatever the call, goes through :func:`classify`
and comes out as a permanent or a transient error of :mod:`depeg_processor.errors`; callers
decide on the kind, never on a node's wording. A revert's Error(string) is decoded here too,
and a rate limit's Retry-After read, so that what a provider says is interpreted only here.
"""

from __future__ import annotations

from typing import Any

import requests

from .. import errors
from .abi import decode as abi_decode

ERROR_SELECTOR = "0x08c379a0"  # Error(string)
PRODUCT_NOT_ACTIVE = "ERROR:DP-010:PRODUCT_NOT_ACTIVE"
RATE_LIMIT_CODE = -32005  # "limit exceeded" (EIP-1474), used by hosted providers
SIMULATION_CAP_CODE = -38026  # eth_simulateV1's "client adjustable limit reached" (reth)
SIMULATION_CAP_PHRASES = ("gas cap", "gascap", "adjustable limit")
RATE_LIMIT_PHRASES = ("limit exceeded", "rate exceeded", "too many requests", "rate limit")


def revert_reason(data: Any, message: str) -> str:
    """The Error(string) of a revert, from the error's data, else from its message."""
    if isinstance(data, dict):  # some nodes nest the data one level deeper
        data = data.get("data")
    if isinstance(data, str) and data.startswith(ERROR_SELECTOR) and len(data) >= 10 + 128:
        try:
            return abi_decode(["string"], bytes.fromhex(data[10:]))[0]
        except Exception:
            pass
    prefix = "execution reverted"
    if message.startswith(prefix):
        rest = message[len(prefix) :].lstrip(": ").strip()
        return rest
    return message


def classify(error: dict) -> errors.ProcessorError:
    """Sort one JSON-RPC error object into the processor's error kinds."""
    message = str(error.get("message", ""))
    lowered = message.lower()
    if error.get("code") == 3 or "revert" in lowered:
        reason = revert_reason(error.get("data"), message) or "reverted without a reason"
        if PRODUCT_NOT_ACTIVE in reason:
            return errors.ProductInactive(reason)
        return errors.PermanentError(f"reverted: {reason}", kind=errors.revert_kind(reason))
    if error.get("code") == SIMULATION_CAP_CODE or any(
        phrase in lowered for phrase in SIMULATION_CAP_PHRASES
    ):
        return errors.SimulationTooLarge(f"node error {error.get('code')}: {message}")
    if error.get("code") == RATE_LIMIT_CODE or (
        "gas" not in lowered and any(phrase in lowered for phrase in RATE_LIMIT_PHRASES)
    ):
        return errors.RateLimited(f"node error {error.get('code')}: {message}")
    if "nonce too high" in lowered:
        return errors.NonceTooHigh(message)
    if "nonce too low" in lowered or "invalid nonce" in lowered:
        return errors.NonceConflict(message)
    if (
        "less than block base fee" in lowered
        or "fee cap less than block base fee" in lowered
        or "max fee per gas less than" in lowered
    ):
        return errors.FeeTooLow(message)
    if "underpriced" in lowered:
        return errors.ReplacementUnderpriced(message)
    if "already known" in lowered or "known transaction" in lowered:
        return errors.AlreadyKnown(message)
    if "insufficient funds" in lowered:
        return errors.InsufficientFunds(message)
    return errors.TransientError(f"node error {error.get('code')}: {message}")


def error_of(answer: Any) -> dict:
    """The error object in an answer: its own, or the first member's of an array."""
    for member in answer if isinstance(answer, list) else [answer]:
        if isinstance(member, dict) and isinstance(member.get("error"), dict):
            return member["error"]
        if isinstance(member, dict) and member.get("error") is not None:
            return {"message": str(member["error"])}
    return {"message": "an answer that does not match the calls"}


def retry_after(response: requests.Response) -> float | None:
    """The Retry-After header in seconds (its HTTP-date form is not used by providers)."""
    try:
        return max(0.0, float(response.headers.get("Retry-After", "")))
    except ValueError:
        return None
