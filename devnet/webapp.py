"""Applications written exactly as the depeg web app writes them (shared/wire-format.md):
an EIP-712 `Policy` signature by the policy holder, `HSET PendingApplication:<ULID>` with string
fields, then `XADD application:signatures * entityId <ULID>`."""

from __future__ import annotations

import dataclasses
import os
import secrets
import time
from typing import TYPE_CHECKING

import redis
from eth_account import Account
from eth_account.signers.local import LocalAccount

from depeg_processor.inbound.application import signature_id_bytes32
from depeg_processor.inbound.eip712 import POLICY_TYPES

if TYPE_CHECKING:
    from devnet.depeg import Depeg

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

    def application(
        self,
        holder: LocalAccount | None = None,
        *,
        protected_balance: int = 1199000000,
        duration: int = 2592000,
        bundle_id: int = 2,
        **overrides: str,
    ) -> dict:
        """A correctly signed application's fields; `overrides` replace fields after signing.
        The terms' defaults suit the test double, which checks none of them."""
        holder = holder or Account.create()
        wallet = Account.create().address
        fields = {
            "policyHolder": holder.address,
            "protectedWallet": wallet,
            "protectedBalance": str(protected_balance),
            "duration": str(duration),
            "bundleId": str(bundle_id),
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


@dataclasses.dataclass
class ProductWebApp:
    """The web app's way against the real depeg product, which checks what the test double
    does not: before signing, the policy holder approves the instance's treasury for the
    premium the product will charge, and the web app waits for that approval's receipt (the
    product checks balance and allowance when the application is sent). Holders are new
    accounts that the token owner gives ETH for the approval and the premium in tokens."""

    webapp: WebApp
    depeg: Depeg
    bundle_id: int
    protected_balance: int = 5_000 * 10**6
    duration: int = 30 * 24 * 3600
    holder_eth: int = 10**17

    def new_holder(self, tokens: int) -> LocalAccount:
        """A fresh policy holder with ETH for its approval and `tokens` premium tokens."""
        holder = Account.create()
        operator, t = self.depeg.actors.operator, self.depeg.t
        t.send(operator, {"to": holder.address, "value": self.holder_eth, "gas": 21_000})
        t.call(operator, self.depeg.token, "transfer", holder.address, tokens)
        return holder

    def application(self, holder: LocalAccount | None = None, **overrides: str) -> dict:
        """Fields of an application the product will accept: premium approved, then signed."""
        premium = self.depeg.premium(self.protected_balance, self.duration, self.bundle_id)
        holder = holder or self.new_holder(premium)
        self.depeg.t.call(holder, self.depeg.token, "approve", self.depeg.treasury, premium)
        return self.webapp.application(
            holder,
            protected_balance=self.protected_balance,
            duration=self.duration,
            bundle_id=self.bundle_id,
            **overrides,
        )

    def submit(self, fields: dict, entity_id: str | None = None) -> str:
        return self.webapp.submit(fields, entity_id)

    def apply(self, holder: LocalAccount | None = None, **overrides: str) -> str:
        return self.submit(self.application(holder, **overrides))
