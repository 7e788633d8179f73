"""A pending application as the web app writes it, validated and turned into contract arguments.

The web app stores `PendingApplication:<entityId>` as a plain hash of strings
(shared wire format); nothing here touches Redis or the chain.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping

from ..chain.hexaddr import checksum_address, is_hex_address
from ..errors import PermanentError
from ..keys import application_key
from .eip712 import check_strict, policy_digest, recover
from .untrusted import is_utf8, shown

UINT256_MAX = 2**256 - 1
# Used with fullmatch: `$` would also accept a trailing newline.
_DECIMAL = re.compile(r"[0-9]{1,78}")
_SIGNATURE = re.compile(r"0x[0-9a-fA-F]{130}")
_TX_HASH = re.compile(r"0x[0-9a-fA-F]{64}")
_ENTITY_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")
REQUIRED_FIELDS = (
    "policyHolder",
    "protectedWallet",
    "protectedBalance",
    "duration",
    "bundleId",
    "signatureId",
    "signature",
)


def checked_address(value: str) -> str | None:
    """The checksummed address, or None if `value` is not 0x and 40 hex digits or is mixed
    case with a wrong EIP-55 checksum."""
    if not is_hex_address(value):
        return None
    checksummed = checksum_address(value)
    body = value[2:]
    if body != body.lower() and body != body.upper() and value != checksummed:
        return None
    return checksummed


def is_valid_address(value: str) -> bool:
    return checked_address(value) is not None


def check_entity_id(entity_id: str | None) -> str:
    """The stream entry's `entityId`: a ULID in practice; anything key-safe is accepted."""
    if not entity_id:
        raise PermanentError("stream entry has no entityId", kind="invalid_entry")
    if not is_utf8(entity_id):
        raise PermanentError(f"entityId {shown(entity_id)} is not UTF-8", kind="not_utf8")
    if not _ENTITY_ID.fullmatch(entity_id):
        raise PermanentError(f"entityId {shown(entity_id)} is not a valid id", kind="invalid_entry")
    return entity_id


def check_entry(fields: Mapping[str, str]) -> str:
    """A stream entry as the web app writes it (`entityId` and perhaps more): its entity id."""
    for name, value in fields.items():
        if not is_utf8(name) or not is_utf8(value):
            raise PermanentError(f"stream entry field {shown(name)} is not UTF-8", kind="not_utf8")
    return check_entity_id(fields.get("entityId"))


def signature_id_bytes32(signature_id: str) -> bytes:
    """The nanoid as the contract's bytes32: UTF-8, right-padded with zeros (ethers'
    formatBytes32String), so at most 31 bytes."""
    raw = signature_id.encode("utf-8")
    if not raw or len(raw) > 31:
        raise ValueError("must be 1 to 31 bytes of UTF-8")
    return raw.ljust(32, b"\0")


@dataclasses.dataclass(frozen=True)
class Application:
    """One validated application, ready to be sent."""

    entity_id: str
    policy_holder: str
    protected_wallet: str
    protected_balance: int
    duration: int
    bundle_id: int
    signature_id: str
    signature: bytes = dataclasses.field(repr=False)
    timestamp: float | None = None
    transaction_hash: str | None = None

    def contract_args(self) -> tuple:
        """Arguments of `applyForPolicyWithBundleAndSignature`, in order."""
        return (
            self.policy_holder,
            self.protected_wallet,
            self.protected_balance,
            self.duration,
            self.bundle_id,
            signature_id_bytes32(self.signature_id),
            self.signature,
        )

    def policy_digest(self, *, chain_id: int, verifying_contract: str) -> bytes:
        """The EIP-712 digest of this application's `Policy` message."""
        values = (
            self.protected_wallet,
            self.protected_balance,
            self.duration,
            self.bundle_id,
            signature_id_bytes32(self.signature_id),
        )
        return policy_digest(values, chain_id=chain_id, verifying_contract=verifying_contract)

    def recover_signer(self, *, chain_id: int, verifying_contract: str) -> str:
        """The address that signed this application's EIP-712 `Policy` message."""
        digest = self.policy_digest(chain_id=chain_id, verifying_contract=verifying_contract)
        return recover(digest, self.signature)

    def check_signature(self, *, chain_id: int, verifying_contract: str) -> None:
        """Refuse, without a chain call, a signature the product's helper would reject: it
        recovers with OpenZeppelin's ECDSA (4.7.3), which takes only v = 27 or 28 and s in the
        lower half of the curve order (no malleable twin of a signature)."""
        check_strict(self.signature)
        try:
            signer = self.recover_signer(chain_id=chain_id, verifying_contract=verifying_contract)
        except Exception:  # malformed r/s/v cannot be recovered at all
            raise PermanentError(
                "signature invalid: cannot recover a signer", kind="signature_invalid"
            ) from None
        if signer != self.policy_holder:
            raise PermanentError(
                f"signature invalid: signed by {signer}, not by policyHolder {self.policy_holder}",
                kind="signature_invalid",
            )


def parse_application(entity_id: str, fields: Mapping[str, str]) -> Application:
    """Validate every field of a `PendingApplication` hash; a bad one is a permanent error
    naming the field. The checks run in a fixed order, so a hash with several faults is always
    refused for the same one."""
    _check_complete(entity_id, fields)
    signature_id = _signature_id(fields)
    signature = _signature(fields)
    timestamp = _timestamp(fields)
    transaction_hash = _transaction_hash(fields)
    return Application(
        entity_id=entity_id,
        policy_holder=_address(fields, "policyHolder"),
        protected_wallet=_address(fields, "protectedWallet"),
        protected_balance=_uint(fields, "protectedBalance"),
        duration=_uint(fields, "duration"),
        bundle_id=_uint(fields, "bundleId"),
        signature_id=signature_id,
        signature=signature,
        timestamp=timestamp,
        transaction_hash=transaction_hash,
    )


def _check_complete(entity_id: str, fields: Mapping[str, str]) -> None:
    """The hash exists, is text throughout, and has every required field."""
    if not fields:
        raise PermanentError(
            f"application {application_key(entity_id)} not found", kind="not_found"
        )
    for name, value in fields.items():
        if not is_utf8(name) or not is_utf8(value):
            raise PermanentError(f"field {shown(name)}: not UTF-8", kind="not_utf8")
    missing = [name for name in REQUIRED_FIELDS if not fields.get(name)]
    if missing:
        raise PermanentError(
            f"application is missing field(s): {', '.join(missing)}", kind="invalid_field"
        )


def _address(fields: Mapping[str, str], name: str) -> str:
    value = fields[name].strip()
    checksummed = checked_address(value)
    if checksummed is None:
        raise PermanentError(
            f"field {name}: {shown(value)} is not a valid address", kind="invalid_field"
        )
    return checksummed


def _uint(fields: Mapping[str, str], name: str, *, positive: bool = False) -> int:
    value = fields[name].strip()
    if not _DECIMAL.fullmatch(value) or int(value) > UINT256_MAX:
        raise PermanentError(
            f"field {name}: {shown(value)} is not a uint256 decimal string",
            kind="invalid_field",
        )
    if positive and int(value) == 0:
        raise PermanentError(f"field {name}: must be above zero", kind="invalid_field")
    return int(value)


def _signature_id(fields: Mapping[str, str]) -> str:
    signature_id = fields["signatureId"]
    try:
        signature_id_bytes32(signature_id)
    except ValueError as error:
        raise PermanentError(f"field signatureId: {error}", kind="invalid_field") from None
    return signature_id


def _signature(fields: Mapping[str, str]) -> bytes:
    signature = fields["signature"].strip()
    if not _SIGNATURE.fullmatch(signature):
        raise PermanentError(
            "field signature: not a 65-byte 0x-hex signature", kind="invalid_field"
        )
    return bytes.fromhex(signature[2:])


def _timestamp(fields: Mapping[str, str]) -> float | None:
    if not fields.get("timestamp"):
        return None
    try:
        timestamp = float(fields["timestamp"])
        if not math.isfinite(timestamp):
            raise ValueError(timestamp)
    except ValueError:
        raise PermanentError(
            f"field timestamp: {shown(fields['timestamp'])} is not a number",
            kind="invalid_field",
        ) from None
    return timestamp


def _transaction_hash(fields: Mapping[str, str]) -> str | None:
    transaction_hash = fields.get("transactionHash") or None
    if transaction_hash is not None and not _TX_HASH.fullmatch(transaction_hash):
        raise PermanentError(
            f"field transactionHash: {shown(transaction_hash)} is not a transaction hash",
            kind="invalid_field",
        )
    return transaction_hash
