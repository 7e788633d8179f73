"""Applications written exactly as the depeg web app writes them (shared/wire-format.md):
an EIP-712 `Policy` signature by the policy holder, `HSET PendingApplication:<ULID>` with string
fields, then `XADD application:signatures * entityId <ULID>`."""

from __future__ import annotations

import dataclasses
import os
import secrets
import time

import redis
from eth_account import Account
from eth_account.signers.local import LocalAccount

from depeg_processor.inbound.application import POLICY_TYPES, signature_id_bytes32

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
NANOID = "useandom-26T198340PX75pxJACKVERYMINDBUSHWOLF_GQZbfghjklqvwyzrict"


def ulid(now: float | None = None) -> str:
    """A 26-character ULID: 48 bits of milliseconds, 80 random bits, Crockford base32."""
    value = (int((time.time() if now is None else now) * 1000) << 80) | int.from_bytes(
        os.urandom(10), "big"
    )
    return "".join(CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def nanoid(size: int = 21) -> str:
    return "".join(secrets.choice(NANOID) for _ in range(size))


@dataclasses.dataclass
class WebApp:
    """The web app's side: signs as a user, writes the hash, enqueues the id."""

    redis: redis.Redis
    chain_id: int
    message_helper: str
    stream: str = "application:signatures"

    def sign(
        self,
        holder: LocalAccount,
        *,
        wallet: str,
        protected_balance: int,
        duration: int,
        bundle_id: int,
        signature_id: str,
    ) -> str:
        signed = Account.sign_typed_data(
            holder.key,
            domain_data={
                "name": "EtheriscDepeg",
                "version": "1",
                "chainId": self.chain_id,
                "verifyingContract": self.message_helper,
            },
            message_types=POLICY_TYPES,
            message_data={
                "wallet": wallet,
                "protectedBalance": protected_balance,
                "duration": duration,
                "bundleId": bundle_id,
                "signatureId": signature_id_bytes32(signature_id),
            },
        )
        return "0x" + signed.signature.hex().removeprefix("0x")

    def application(self, holder: LocalAccount | None = None, **overrides: str) -> dict:
        """A correctly signed application's fields; `overrides` replace fields after signing."""
        holder = holder or Account.create()
        wallet = Account.create().address
        fields = {
            "policyHolder": holder.address,
            "protectedWallet": wallet,
            "protectedBalance": "1199000000",
            "duration": "2592000",
            "bundleId": "2",
            "signatureId": nanoid(),
            "timestamp": f"{time.time():.3f}",
        }
        fields["signature"] = self.sign(
            holder,
            wallet=wallet,
            protected_balance=int(fields["protectedBalance"]),
            duration=int(fields["duration"]),
            bundle_id=int(fields["bundleId"]),
            signature_id=fields["signatureId"],
        )
        fields.update(overrides)
        return fields

    def submit(self, fields: dict, entity_id: str | None = None) -> str:
        """HSET the hash and XADD its id, as the web app does; returns the entity id."""
        entity_id = entity_id or ulid()
        self.redis.hset(f"PendingApplication:{entity_id}", mapping=fields)
        self.redis.xadd(self.stream, {"entityId": entity_id})
        return entity_id

    def apply(self, holder: LocalAccount | None = None, **overrides: str) -> str:
        return self.submit(self.application(holder, **overrides))
