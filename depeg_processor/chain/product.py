"""The depeg product's two functions this service calls, encoded straight from the ABI.

`abi` encodes the arguments with the selector computed once; going through a contract object
of a client library looks the function up on every call and costs about 20 times as much.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .abi import decode, encode
from .hexaddr import checksum_address, keccak_text

ABI_PATH = Path(__file__).with_name("product_abi.json")
APPLY = "applyForPolicyWithBundleAndSignature"
MESSAGE_HELPER = "getMessageHelperAddress"


class Function:
    """One ABI function: its selector and argument types."""

    def __init__(self, entry: dict) -> None:
        self.name = entry["name"]
        self.types = [item["type"] for item in entry["inputs"]]
        self.output_types = [item["type"] for item in entry.get("outputs", [])]
        self.signature = f"{self.name}({','.join(self.types)})"
        self.selector = keccak_text(self.signature)[:4]

    def encode(self, args: Sequence[Any] = ()) -> str:
        return "0x" + (self.selector + encode(self.types, list(args))).hex()

    def decode_result(self, data: str) -> tuple:
        return decode(self.output_types, bytes.fromhex(data[2:]))


def load_functions(path: Path = ABI_PATH) -> dict[str, Function]:
    return {
        entry["name"]: Function(entry)
        for entry in json.loads(path.read_text())
        if entry.get("type") == "function"
    }


@functools.lru_cache(maxsize=1)
def apply_function() -> Function:
    """`applyForPolicyWithBundleAndSignature`, read from the ABI once."""
    return load_functions()[APPLY]


def signature_in_call(data: str) -> bytes | None:
    """The `signature` argument of an `applyForPolicyWithBundleAndSignature` calldata, or None
    for any other data: what a signed transaction spends, read from the transaction itself
    (records written before they stored the signature carry only the calldata)."""
    args = _apply_args(data)
    return None if args is None else args[-1]


def holder_in_call(data: str) -> str | None:
    """The `policyHolder` argument of an `applyForPolicyWithBundleAndSignature` calldata
    (lowercase 0x-hex), or None for any other data: whom a transaction's revert is held
    against, read from what was signed."""
    args = _apply_args(data)
    return None if args is None else str(args[0]).lower()


def _apply_args(data: str) -> tuple | None:
    function = apply_function()
    if not data.startswith("0x" + function.selector.hex()):
        return None
    try:
        return decode(function.types, bytes.fromhex(data[10:]))
    except Exception:  # not the call's encoding after all
        return None


class ProductCalls:
    """Calldata for the product and the decoding of its answers."""

    def __init__(self) -> None:
        functions = load_functions()
        self._apply = functions[APPLY]
        self._helper = functions[MESSAGE_HELPER]

    def apply(self, contract_args: Sequence[Any]) -> str:
        return self._apply.encode(contract_args)

    def message_helper_call(self) -> str:
        return self._helper.encode()

    def message_helper_result(self, data: str) -> str:
        return checksum_address(self._helper.decode_result(data)[0])
