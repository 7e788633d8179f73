"""The node, over JSON-RPC: a thin client whose errors are sorted in one place.

web3's HTTPProvider carries the requests (one HTTP session per thread); the processor keeps its
own retry policy, so the provider's is switched off. Every RPC error is turned by
:func:`classify` into a permanent or a transient error of :mod:`depeg_processor.errors`.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Iterable, Sequence

import requests
from eth_abi import decode as abi_decode
from web3 import HTTPProvider, Web3

from . import errors

log = logging.getLogger(__name__)

ERROR_SELECTOR = "0x08c379a0"  # Error(string)
PRODUCT_NOT_ACTIVE = "ERROR:DP-010:PRODUCT_NOT_ACTIVE"
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
        rest = message[len(prefix):].lstrip(": ").strip()
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
    if "nonce too high" in lowered:
        return errors.NonceTooHigh(message)
    if "nonce too low" in lowered or "invalid nonce" in lowered:
        return errors.NonceConflict(message)
    if "less than block base fee" in lowered or "fee cap less than block base fee" in lowered \
            or "max fee per gas less than" in lowered:
        return errors.FeeTooLow(message)
    if "underpriced" in lowered:
        return errors.ReplacementUnderpriced(message)
    if "already known" in lowered or "known transaction" in lowered:
        return errors.AlreadyKnown(message)
    if "insufficient funds" in lowered:
        return errors.InsufficientFunds(message)
    return errors.TransientError(f"node error {error.get('code')}: {message}")


class NodeUnavailable(errors.TransientError):
    """The node did not answer (connection refused, timeout, bad HTTP status)."""


class Chain:
    """JSON-RPC calls the processor makes, each returning plain Python values."""

    def __init__(self, provider: HTTPProvider, *,
                 on_error: Callable[[Exception], None] = lambda error: None) -> None:
        self._provider = provider
        self._on_error = on_error

    @classmethod
    def from_url(cls, url: str, *, timeout: float,
                 on_error: Callable[[Exception], None] = lambda error: None) -> "Chain":
        provider = HTTPProvider(url, request_kwargs={"timeout": timeout},
                                exception_retry_configuration=None)
        return cls(provider, on_error=on_error)

    def _failed(self, error: errors.ProcessorError) -> errors.ProcessorError:
        self._on_error(error)
        return error

    def request(self, method: str, params: Sequence[Any]) -> Any:
        try:
            response = self._provider.make_request(method, list(params))
        except (requests.RequestException, OSError, ValueError) as error:
            raise self._failed(NodeUnavailable(
                f"node unreachable ({method}): {type(error).__name__}")) from None
        if "error" in response:
            raise self._failed(classify(response["error"]))
        return response.get("result")

    def batch(self, calls: Iterable[tuple[str, Sequence[Any]]]) -> list[Any]:
        """Several calls in one HTTP request; each result is a value or an error instance."""
        calls = list(calls)
        if not calls:
            return []
        if len(calls) == 1:
            try:
                return [self.request(*calls[0])]
            except errors.ProcessorError as error:
                if isinstance(error, NodeUnavailable):
                    raise
                return [error]
        try:
            responses = self._provider.make_batch_request([(m, list(p)) for m, p in calls])
        except (requests.RequestException, OSError, ValueError) as error:
            raise self._failed(NodeUnavailable(
                f"node unreachable (batch): {type(error).__name__}")) from None
        if not isinstance(responses, list):
            raise self._failed(classify(responses.get("error", {"message": "batch refused"})))
        return [self._failed(classify(r["error"])) if "error" in r else r.get("result")
                for r in responses]

    # -- typed helpers -------------------------------------------------------------------------
    def chain_id(self) -> int:
        return int(self.request("eth_chainId", []), 16)

    def base_fee(self) -> int:
        block = self.request("eth_getBlockByNumber", ["latest", False])
        return int(block.get("baseFeePerGas") or "0x0", 16)

    def max_priority_fee(self) -> int:
        return int(self.request("eth_maxPriorityFeePerGas", []), 16)

    def balance(self, address: str) -> int:
        return int(self.request("eth_getBalance", [address, "latest"]), 16)

    def nonce(self, address: str, block: str = "pending") -> int:
        return int(self.request("eth_getTransactionCount", [address, block]), 16)

    def code(self, address: str) -> bytes:
        return bytes.fromhex(self.request("eth_getCode", [address, "latest"])[2:])

    def call(self, tx: dict) -> str:
        return self.request("eth_call", [tx, "latest"])

    def send_raw(self, raw: bytes) -> str:
        return self.request("eth_sendRawTransaction", [Web3.to_hex(raw)])
