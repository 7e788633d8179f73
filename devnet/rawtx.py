"""A signed raw transaction read back: its sender, nonce and call, for the relay emulator
(devnet.relay), which must simulate and order what it holds without a node's help."""

from __future__ import annotations

import dataclasses

import rlp
from eth_account import Account
from eth_account.typed_transactions import TypedTransaction
from eth_utils import keccak
from hexbytes import HexBytes


@dataclasses.dataclass
class Held:
    """A raw transaction the relay holds, with what it needs to simulate and order it."""

    raw: str
    hash: str
    sender: str
    nonce: int
    call: dict  # from, to, data, value, gas: for eth_simulateV1
    since: int  # the relay's block count when it arrived


def decode(raw: str) -> Held:
    """Sender, nonce and call of a signed raw transaction (typed or legacy)."""
    data = bytes.fromhex(raw.removeprefix("0x"))
    sender = Account.recover_transaction(data)
    if data[0] < 0x80:  # EIP-2718 typed envelope
        fields = TypedTransaction.from_bytes(HexBytes(data)).as_dict()
        nonce, gas, to, value, payload = (
            fields["nonce"],
            fields["gas"],
            fields.get("to"),
            fields["value"],
            fields["data"],
        )
    else:
        nonce, _price, gas, to, value, payload, *_vrs = rlp.decode(data)
        nonce, gas, value = (int.from_bytes(x, "big") for x in (nonce, gas, value))
    call = {"from": sender, "gas": hex(gas), "value": hex(value), "data": _hex(payload)}
    if to:
        call["to"] = _hex(to)
    return Held(raw, "0x" + keccak(data).hex(), sender, nonce, call, since=0)


def _hex(value: bytes | str) -> str:
    return value if isinstance(value, str) else "0x" + value.hex()
