"""One write-ahead record: an application's transaction as signed, and how it is stored (a
Redis hash of strings; fields added later are optional, so records of older versions read)."""

from __future__ import annotations

import dataclasses

from ..chain.product import holder_in_call, signature_in_call


@dataclasses.dataclass(frozen=True)
class TxRecord:
    """One application's transaction as signed (and perhaps broadcast). `signature` (0x-hex)
    is the application's, the one the call in `data` spends: read from `data` when not given
    (records of older versions did not store it)."""

    entity_id: str
    tx_hash: str
    nonce: int
    raw: str = dataclasses.field(repr=False)
    gas: int = 0
    max_fee_per_gas: int = 0
    max_priority_fee_per_gas: int = 0
    stream_entry_id: str = ""
    signed_at: float = 0.0
    enqueued_at: float | None = None
    data: str = dataclasses.field(default="", repr=False)
    previous_hashes: tuple[str, ...] = ()
    signature: str = dataclasses.field(default="", repr=False)

    def __post_init__(self) -> None:
        if not self.signature and self.data:
            object.__setattr__(self, "signature", signature_of(self.data))

    @property
    def holder(self) -> str:
        """The policy holder the call in `data` applies for (lowercase), or "" without one."""
        return holder_of(self.data)

    @property
    def hashes(self) -> tuple[str, ...]:
        """Every hash signed for this nonce, the current one last: any of them may be mined."""
        return (*self.previous_hashes, self.tx_hash)

    def to_fields(self) -> dict[str, str]:
        fields = {
            "entityId": self.entity_id,
            "txHash": self.tx_hash,
            "nonce": str(self.nonce),
            "raw": self.raw,
            "gas": str(self.gas),
            "maxFeePerGas": str(self.max_fee_per_gas),
            "maxPriorityFeePerGas": str(self.max_priority_fee_per_gas),
            "streamEntryId": self.stream_entry_id,
            "signedAt": f"{self.signed_at:.3f}",
            "data": self.data,
            "previousHashes": ",".join(self.previous_hashes),
        }
        if self.enqueued_at is not None:
            fields["enqueuedAt"] = f"{self.enqueued_at:.3f}"
        if self.signature:
            fields["signature"] = self.signature
        return fields

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> TxRecord:
        return cls(
            entity_id=fields["entityId"],
            tx_hash=fields["txHash"],
            nonce=int(fields["nonce"]),
            raw=fields.get("raw", ""),
            gas=int(fields.get("gas", 0)),
            max_fee_per_gas=int(fields.get("maxFeePerGas", 0)),
            max_priority_fee_per_gas=int(fields.get("maxPriorityFeePerGas", 0)),
            stream_entry_id=fields.get("streamEntryId", ""),
            signed_at=float(fields.get("signedAt", 0)),
            enqueued_at=float(fields["enqueuedAt"]) if fields.get("enqueuedAt") else None,
            data=fields.get("data", ""),
            previous_hashes=tuple(h for h in fields.get("previousHashes", "").split(",") if h),
            signature=fields.get("signature", ""),
        )


def signature_of(data: str | None) -> str:
    """The application's signature (0x-hex) in a product call's calldata, or ""."""
    found = signature_in_call(data) if data else None
    return "" if found is None else "0x" + found.hex()


def holder_of(data: str | None) -> str:
    """The policy holder (lowercase 0x-hex) a product call's calldata applies for, or ""."""
    return (holder_in_call(data) if data else None) or ""
